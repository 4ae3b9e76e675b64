//! Permissions API and model registry search against mock servers.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use common::{client, json_response, serve};
use mlops_databricks::{AccessControlRequest, Permission, PermissionObject, Principal};
use serde_json::{Value, json};

const TOKEN_PERMISSIONS: &str = "/api/2.0/permissions/authorization/tokens";

fn token_permissions_body() -> Value {
    json!({
        "object_id": "/authorization/tokens",
        "object_type": "tokens",
        "access_control_list": [
            { "group_name": "admins", "all_permissions": [{ "permission_level": "CAN_MANAGE", "inherited": false }] },
            { "service_principal_name": "0b9f1a52-1111-4222-8333-944455556666", "display_name": "mlops-reader-dev",
              "all_permissions": [{ "permission_level": "CAN_USE", "inherited": false }] },
            { "user_name": "someone@example.com",
              "all_permissions": [{ "permission_level": "CAN_USE", "inherited": true, "inherited_from_object": ["/authorization/"] }] }
        ]
    })
}

#[tokio::test]
async fn get_permissions_reads_all_principal_kinds() {
    let router = Router::new().route(
        TOKEN_PERMISSIONS,
        get(|| async { Json(token_permissions_body()) }),
    );
    let base = serve(router).await;

    let permissions = client(&base)
        .get_permissions(PermissionObject::Tokens)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(permissions.object_id, "/authorization/tokens");
    assert_eq!(permissions.object_type, "tokens");
    let acl = &permissions.access_control_list;
    assert_eq!(acl[0].principal, Principal::Group("admins".to_owned()));
    assert_eq!(
        acl[1].principal,
        Principal::ServicePrincipal("0b9f1a52-1111-4222-8333-944455556666".to_owned())
    );
    assert_eq!(acl[1].display_name.as_deref(), Some("mlops-reader-dev"));
    assert_eq!(
        acl[2].principal,
        Principal::User("someone@example.com".to_owned())
    );
    assert_eq!(
        acl[2].permissions,
        [Permission {
            level: "CAN_USE".to_owned(),
            inherited: true,
            inherited_from_object: vec!["/authorization/".to_owned()],
        }]
    );
}

#[tokio::test]
async fn missing_token_permissions_object_is_none() {
    let router = Router::new().route(
        TOKEN_PERMISSIONS,
        get(|| async {
            json_response(404, r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"tokens tokens does not exist"}"#)
        }),
    );
    let base = serve(router).await;

    let permissions = client(&base)
        .get_permissions(PermissionObject::Tokens)
        .await
        .unwrap();

    assert_eq!(permissions, None);
}

#[tokio::test]
async fn patch_and_put_send_access_control_list() {
    let requests: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let (patched, put) = (requests.clone(), requests.clone());
    let router = Router::new().route(
        "/api/2.0/permissions/registered-models/root",
        axum::routing::patch(move |Json(body): Json<Value>| async move {
            patched.lock().unwrap().push(("PATCH".to_owned(), body));
            Json(json!({ "object_id": "/registered-models/root", "object_type": "registered-model" }))
        })
        .put(move |Json(body): Json<Value>| async move {
            put.lock().unwrap().push(("PUT".to_owned(), body));
            Json(json!({
                "object_id": "/registered-models/root",
                "object_type": "registered-model",
                "access_control_list": [
                    { "group_name": "admins", "all_permissions": [{ "permission_level": "CAN_MANAGE" }] }
                ]
            }))
        }),
    );
    let base = serve(router).await;
    let client = client(&base);
    let acl = [
        AccessControlRequest {
            principal: Principal::Group("admins".to_owned()),
            permission_level: "CAN_MANAGE".to_owned(),
        },
        AccessControlRequest {
            principal: Principal::ServicePrincipal("app-1".to_owned()),
            permission_level: "CAN_READ".to_owned(),
        },
        AccessControlRequest {
            principal: Principal::User("a@example.com".to_owned()),
            permission_level: "CAN_READ".to_owned(),
        },
    ];

    let patched = client
        .update_permissions(PermissionObject::RegistryRoot, &acl)
        .await
        .unwrap();
    let replaced = client
        .set_permissions(PermissionObject::RegistryRoot, &acl[..1])
        .await
        .unwrap();

    assert!(patched.access_control_list.is_empty());
    assert_eq!(replaced.access_control_list.len(), 1);
    assert!(!replaced.access_control_list[0].permissions[0].inherited);
    let requests = requests.lock().unwrap();
    assert_eq!(requests[0].0, "PATCH");
    assert_eq!(
        requests[0].1,
        json!({ "access_control_list": [
            { "group_name": "admins", "permission_level": "CAN_MANAGE" },
            { "service_principal_name": "app-1", "permission_level": "CAN_READ" },
            { "user_name": "a@example.com", "permission_level": "CAN_READ" }
        ] })
    );
    assert_eq!(requests[1].0, "PUT");
    assert_eq!(
        requests[1].1,
        json!({ "access_control_list": [{ "group_name": "admins", "permission_level": "CAN_MANAGE" }] })
    );
}

#[tokio::test]
async fn put_without_admins_error_surfaces() {
    let router = Router::new().route(
        TOKEN_PERMISSIONS,
        axum::routing::put(|| async {
            json_response(
                400,
                r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"Cannot change permissions for group 'admins' to None."}"#,
            )
        }),
    );
    let base = serve(router).await;

    let error = client(&base)
        .set_permissions(PermissionObject::Tokens, &[])
        .await
        .unwrap_err();

    assert_eq!(
        error.to_string(),
        "PUT /api/2.0/permissions/authorization/tokens failed: 400 INVALID_PARAMETER_VALUE: Cannot change permissions for group 'admins' to None."
    );
}

#[tokio::test]
async fn search_registered_models_follows_page_tokens() {
    let queries: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
    let recorded = queries.clone();
    let router = Router::new().route(
        "/api/2.0/mlflow/registered-models/search",
        get(move |Query(query): Query<HashMap<String, String>>| async move {
            recorded.lock().unwrap().push(query.clone());
            let page = match query.get("page_token").map(String::as_str) {
                None => json!({
                    "registered_models": [{ "name": "churn", "creation_timestamp": 1, "last_updated_timestamp": "2",
                        "latest_versions": [{ "name": "churn", "version": 3, "current_stage": "Production" }] }],
                    "next_page_token": "p2"
                }),
                Some("p2") => json!({ "registered_models": [{ "name": "fraud" }], "next_page_token": "" }),
                Some(other) => panic!("unexpected page token {other}"),
            };
            Json(page)
        }),
    );
    let base = serve(router).await;

    let models = client(&base)
        .search_registered_models(Some("name LIKE '%'"))
        .await
        .unwrap();

    let names: Vec<&str> = models.iter().map(|model| model.name.as_str()).collect();
    assert_eq!(names, ["churn", "fraud"]);
    assert_eq!(models[0].last_updated_timestamp, Some(2));
    assert_eq!(models[0].latest_versions[0].version, "3");
    let queries = queries.lock().unwrap();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0]["filter"], "name LIKE '%'");
    assert_eq!(queries[0]["max_results"], "1000");
    assert_eq!(queries[1]["page_token"], "p2");
}

#[tokio::test]
async fn search_stops_on_repeated_page_token() {
    let router = Router::new().route(
        "/api/2.0/mlflow/registered-models/search",
        get(|| async {
            Json(json!({ "registered_models": [{ "name": "m" }], "next_page_token": "same" }))
        }),
    );
    let base = serve(router).await;

    let models = client(&base).search_registered_models(None).await.unwrap();

    assert_eq!(models.len(), 2);
}
