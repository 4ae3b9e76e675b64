//! SCIM identity, groups and service principals against mock servers.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use common::{Counter, assert_api_headers, client, json_response, serve};
use mlops_databricks::Error;
use serde_json::{Value, json};

const GROUPS: &str = "/api/2.0/preview/scim/v2/Groups";
const SERVICE_PRINCIPALS: &str = "/api/2.0/preview/scim/v2/ServicePrincipals";

#[tokio::test]
async fn me_reads_org_id_header() {
    let router = Router::new().route(
        "/api/2.0/preview/scim/v2/Me",
        get(
            |headers: HeaderMap, Query(query): Query<HashMap<String, String>>| async move {
                assert_api_headers(&headers);
                assert_eq!(
                    query.get("excludedAttributes").map(String::as_str),
                    Some("entitlements")
                );
                let body = json!({
                    "id": 7001,
                    "userName": "4a1f0c8e-0000-4000-8000-000000000001",
                    "displayName": "deployer",
                    "groups": [{ "value": "55", "display": "admins", "$ref": "Groups/55" }]
                });
                ([("x-databricks-org-id", "900800700600")], Json(body))
            },
        ),
    );
    let base = serve(router).await;

    let me = client(&base).me().await.unwrap();

    assert_eq!(me.id, "7001");
    assert_eq!(me.user_name, "4a1f0c8e-0000-4000-8000-000000000001");
    assert_eq!(me.display_name.as_deref(), Some("deployer"));
    assert_eq!(me.workspace_id.as_deref(), Some("900800700600"));
    assert_eq!(me.groups.len(), 1);
    assert_eq!(me.groups[0].value.as_deref(), Some("55"));
    assert_eq!(me.groups[0].reference.as_deref(), Some("Groups/55"));
}

#[tokio::test]
async fn me_without_org_id_header() {
    let router = Router::new().route(
        "/api/2.0/preview/scim/v2/Me",
        get(|| async { Json(json!({ "id": "1", "userName": "a@example.com" })) }),
    );
    let base = serve(router).await;

    let me = client(&base).me().await.unwrap();

    assert_eq!(me.workspace_id, None);
    assert!(me.groups.is_empty());
    assert_eq!(me.display_name, None);
}

#[tokio::test]
async fn create_group_accepts_200_and_201() {
    for status in [200u16, 201] {
        let router = Router::new().route(
            GROUPS,
            post(
                move |headers: HeaderMap, Json(body): Json<Value>| async move {
                    assert_api_headers(&headers);
                    assert_eq!(headers.get("content-type").unwrap(), "application/json");
                    assert_eq!(body["displayName"], "mlops-readers");
                    assert_eq!(
                        body["schemas"][0],
                        "urn:ietf:params:scim:schemas:core:2.0:Group"
                    );
                    let created = json!({ "id": 123456, "displayName": "mlops-readers" });
                    json_response(status, &created.to_string())
                },
            ),
        );
        let base = serve(router).await;

        let group = client(&base).create_group("mlops-readers").await.unwrap();

        assert_eq!(group.id, "123456", "status {status}");
        assert_eq!(group.display_name, "mlops-readers", "status {status}");
        assert!(group.members.is_empty(), "status {status}");
    }
}

#[tokio::test]
async fn patch_accepts_204_and_200_with_body() {
    let responses: [fn() -> Response; 2] = [
        || StatusCode::NO_CONTENT.into_response(),
        || {
            json_response(
                200,
                r#"{"id":"9","displayName":"g","members":[{"value":"42"}]}"#,
            )
        },
    ];

    for make_response in responses {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let recorded = bodies.clone();
        let router = Router::new().route(
            &format!("{GROUPS}/{{id}}"),
            patch(
                move |Path(id): Path<String>, Json(body): Json<Value>| async move {
                    assert_eq!(id, "9");
                    recorded.lock().unwrap().push(body);
                    make_response()
                },
            ),
        );
        let base = serve(router).await;
        let client = client(&base);

        client.add_group_member("9", "42").await.unwrap();
        client.remove_group_member("9", "42").await.unwrap();

        let bodies = bodies.lock().unwrap();
        assert_eq!(
            bodies[0]["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:PatchOp"
        );
        assert_eq!(
            bodies[0]["Operations"],
            json!([{ "op": "add", "path": "members", "value": [{ "value": "42" }] }])
        );
        assert_eq!(
            bodies[1]["Operations"],
            json!([{ "op": "remove", "path": "members[value eq \"42\"]" }])
        );
    }
}

#[tokio::test]
async fn delete_accepts_200_and_204() {
    for status in [200u16, 204] {
        let router = Router::new().route(
            &format!("{GROUPS}/{{id}}"),
            axum::routing::delete(move || async move { StatusCode::from_u16(status).unwrap() }),
        );
        let base = serve(router).await;

        client(&base).delete_group("9").await.unwrap();
    }
}

#[tokio::test]
async fn list_accepts_empty_object_and_missing_resources() {
    for body in [
        "{}",
        r#"{"totalResults":0,"startIndex":1,"itemsPerPage":0}"#,
        r#"{"Resources":null}"#,
    ] {
        let router =
            Router::new().route(GROUPS, get(move || async move { json_response(200, body) }));
        let base = serve(router).await;

        let groups = client(&base).list_groups(None).await.unwrap();

        assert!(groups.is_empty(), "body {body}");
    }
}

#[tokio::test]
async fn list_pages_until_total_and_dedupes() {
    let all: Vec<Value> = (1..=5)
        .map(|n| json!({ "id": format!("g{n}"), "displayName": format!("group {n}") }))
        .collect();
    let start_indexes = Arc::new(Mutex::new(Vec::new()));
    let recorded = start_indexes.clone();

    // Pages after the first start one item early, as when a group is created between
    // two page requests, so one item repeats.
    let router = Router::new().route(
        GROUPS,
        get(move |Query(query): Query<HashMap<String, String>>| {
            let all = all.clone();
            let recorded = recorded.clone();
            async move {
                assert_eq!(
                    query.get("filter").map(String::as_str),
                    Some("displayName sw \"group\"")
                );
                let start: usize = query["startIndex"].parse().unwrap();
                recorded.lock().unwrap().push(start);
                let first = if start == 1 { 0 } else { start - 2 };
                let page: Vec<Value> = all.iter().skip(first).take(2).cloned().collect();
                Json(json!({ "totalResults": 5, "Resources": page }))
            }
        }),
    );
    let base = serve(router).await;

    let groups = client(&base)
        .list_groups(Some("displayName sw \"group\""))
        .await
        .unwrap();

    let ids: Vec<&str> = groups.iter().map(|group| group.id.as_str()).collect();
    assert_eq!(ids, ["g1", "g2", "g3", "g4", "g5"]);
    // The third page brings the fifth distinct group, which `totalResults` says is the last.
    assert_eq!(*start_indexes.lock().unwrap(), [1, 3, 5]);
}

#[tokio::test]
async fn list_stops_on_short_page_that_reaches_total() {
    let requests = Counter::default();
    let counted = requests.clone();
    let router = Router::new().route(
        GROUPS,
        get(move || {
            counted.increment();
            async { Json(json!({ "totalResults": 1, "Resources": [{ "id": "1", "displayName": "a" }] })) }
        }),
    );
    let base = serve(router).await;

    let groups = client(&base).list_groups(None).await.unwrap();

    assert_eq!(groups.len(), 1);
    assert_eq!(requests.get(), 1);
}

#[tokio::test]
async fn list_reads_on_when_short_page_is_below_total() {
    let start_indexes = Arc::new(Mutex::new(Vec::new()));
    let recorded = start_indexes.clone();
    let router = Router::new().route(
        GROUPS,
        get(move |Query(query): Query<HashMap<String, String>>| {
            let recorded = recorded.clone();
            async move {
                let start: usize = query["startIndex"].parse().unwrap();
                recorded.lock().unwrap().push(start);
                let page = match start {
                    1 => json!([{ "id": "1", "displayName": "a" }]),
                    2 => json!([{ "id": "2", "displayName": "b" }]),
                    _ => json!([]),
                };
                Json(json!({ "totalResults": 2, "Resources": page }))
            }
        }),
    );
    let base = serve(router).await;

    let groups = client(&base).list_groups(None).await.unwrap();

    assert_eq!(groups.len(), 2);
    assert_eq!(*start_indexes.lock().unwrap(), [1, 2]);
}

#[tokio::test]
async fn list_stops_when_server_ignores_start_index() {
    let requests = Counter::default();
    let counted = requests.clone();
    let router = Router::new().route(
        GROUPS,
        get(move || {
            counted.increment();
            async { Json(json!({ "Resources": [{ "id": "1", "displayName": "a" }] })) }
        }),
    );
    let base = serve(router).await;

    let groups = client(&base).list_groups(None).await.unwrap();

    assert_eq!(groups.len(), 1);
    assert_eq!(requests.get(), 2);
}

#[tokio::test]
async fn get_group_returns_none_on_scim_404() {
    let router = Router::new().route(
        &format!("{GROUPS}/{{id}}"),
        get(|| async {
            json_response(
                404,
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"Group with id 1234 is not found","status":"404"}"#,
            )
        }),
    );
    let base = serve(router).await;

    let group = client(&base).get_group("1234").await.unwrap();

    assert_eq!(group, None);
}

#[tokio::test]
async fn scim_conflict_is_already_exists() {
    let router = Router::new().route(
        GROUPS,
        post(|| async {
            json_response(
                409,
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"Group with name mlops-readers already exists.","status":"409","scimType":"uniqueness"}"#,
            )
        }),
    );
    let base = serve(router).await;

    let error = client(&base)
        .create_group("mlops-readers")
        .await
        .unwrap_err();

    assert!(error.is_already_exists(), "{error}");
    let Error::Api {
        status,
        error_code,
        message,
        ..
    } = &error
    else {
        panic!("expected an API error, got {error:?}");
    };
    assert_eq!(*status, 409);
    assert_eq!(error_code, "SCIM_409");
    assert_eq!(
        message,
        "uniqueness Group with name mlops-readers already exists."
    );
    assert_eq!(
        error.to_string(),
        "POST /api/2.0/preview/scim/v2/Groups failed: 409 SCIM_409: uniqueness Group with name mlops-readers already exists."
    );
}

#[tokio::test]
async fn create_service_principal_sends_entitlements() {
    let router = Router::new().route(
        SERVICE_PRINCIPALS,
        post(|Json(body): Json<Value>| async move {
            assert_eq!(body["displayName"], "mlops-reader-dev");
            assert_eq!(body["active"], true);
            assert_eq!(
                body["entitlements"],
                json!([{ "value": "workspace-access" }])
            );
            assert!(body.get("applicationId").is_none());
            let created = json!({
                "id": 8_123_456_789_u64,
                "applicationId": "0b9f1a52-1111-4222-8333-944455556666",
                "displayName": "mlops-reader-dev",
                "active": "true",
                "entitlements": [{ "value": "workspace-access" }]
            });
            json_response(201, &created.to_string())
        }),
    );
    let base = serve(router).await;

    let principal = client(&base)
        .create_service_principal("mlops-reader-dev", &["workspace-access".to_owned()])
        .await
        .unwrap();

    assert_eq!(principal.id, "8123456789");
    assert_eq!(
        principal.application_id,
        "0b9f1a52-1111-4222-8333-944455556666"
    );
    assert!(principal.active);
    assert_eq!(
        principal.entitlements[0].value.as_deref(),
        Some("workspace-access")
    );
}

#[tokio::test]
async fn service_principal_patches() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let recorded = bodies.clone();
    let router = Router::new().route(
        &format!("{SERVICE_PRINCIPALS}/{{id}}"),
        patch(move |Json(body): Json<Value>| async move {
            recorded.lock().unwrap().push(body);
            StatusCode::NO_CONTENT
        }),
    );
    let base = serve(router).await;
    let client = client(&base);

    client
        .set_service_principal_active("77", false)
        .await
        .unwrap();
    client
        .add_service_principal_entitlements("77", &["workspace-access".to_owned()])
        .await
        .unwrap();

    let bodies = bodies.lock().unwrap();
    assert_eq!(
        bodies[0]["Operations"],
        json!([{ "op": "replace", "path": "active", "value": "false" }])
    );
    assert_eq!(
        bodies[1]["Operations"],
        json!([{ "op": "add", "path": "entitlements", "value": [{ "value": "workspace-access" }] }])
    );
}

#[tokio::test]
async fn list_service_principals_with_filter() {
    let router = Router::new().route(
        SERVICE_PRINCIPALS,
        get(|Query(query): Query<HashMap<String, String>>| async move {
            assert_eq!(query["filter"], "applicationId eq \"abc\"");
            if query["startIndex"] != "1" {
                return Json(json!({ "totalResults": 1 }));
            }
            Json(json!({
                "totalResults": 1,
                "Resources": [{ "id": "5", "applicationId": "abc", "displayName": "sp", "active": false }]
            }))
        }),
    );
    let base = serve(router).await;

    let principals = client(&base)
        .list_service_principals(Some("applicationId eq \"abc\""))
        .await
        .unwrap();

    assert_eq!(principals.len(), 1);
    assert!(!principals[0].active);
}

#[tokio::test]
async fn service_principal_without_application_id() {
    let router = Router::new().route(
        &format!("{SERVICE_PRINCIPALS}/{{id}}"),
        get(|| async { Json(json!({ "id": "5", "displayName": "sp" })) }),
    );
    let base = serve(router).await;

    let error = client(&base).get_service_principal("5").await.unwrap_err();

    let Error::Decode { message, path, .. } = &error else {
        panic!("expected a decode error, got {error:?}");
    };
    assert!(message.contains("applicationId"), "{message}");
    assert_eq!(path, "/api/2.0/preview/scim/v2/ServicePrincipals/5");
}

#[tokio::test]
async fn with_credentials_sends_other_token() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let router = Router::new().route(
        "/api/2.0/preview/scim/v2/Me",
        get(move |headers: HeaderMap| async move {
            let bearer = headers["authorization"].to_str().unwrap().to_owned();
            recorded.lock().unwrap().push(bearer);
            Json(json!({ "id": "1", "userName": "0b9f1a52-1111-4222-8333-944455556666" }))
        }),
    );
    let base = serve(router).await;
    let original = client(&base);

    let derived = original
        .with_credentials(mlops_databricks::Credentials::Bearer(
            "dapi-other-token".into(),
        ))
        .unwrap();
    derived.me().await.unwrap();
    original.me().await.unwrap();

    assert_eq!(derived.base_url(), original.base_url());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "Bearer dapi-other-token".to_owned(),
            format!("Bearer {}", common::TOKEN)
        ]
    );
}
