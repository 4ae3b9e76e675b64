//! Token management and personal token endpoints against mock servers.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use common::{client, json_response, serve};
use mlops_databricks::{ExposeSecret, NO_EXPIRY, TokenInfo};
use serde_json::{Value, json};

const TOKENS: &str = "/api/2.0/token-management/tokens";

fn expected_info() -> TokenInfo {
    TokenInfo {
        token_id: "5715498424f15ee0213be729257b53fc35a47d5953e3bdfd8ed22a0b93b339f4".to_owned(),
        creation_time: 1_700_000_000_000,
        expiry_time: NO_EXPIRY,
        comment: "mlops: dev reads staging".to_owned(),
        created_by_id: Some("4545454545".to_owned()),
        created_by_username: Some("admin@example.com".to_owned()),
        owner_id: Some("7777777777".to_owned()),
        workspace_id: Some("900800700600".to_owned()),
    }
}

#[tokio::test]
async fn token_ids_as_numbers_or_strings() {
    let numeric = json!({
        "token_id": "5715498424f15ee0213be729257b53fc35a47d5953e3bdfd8ed22a0b93b339f4",
        "creation_time": 1_700_000_000_000_i64,
        "expiry_time": -1,
        "comment": "mlops: dev reads staging",
        "created_by_id": 4_545_454_545_i64,
        "created_by_username": "admin@example.com",
        "owner_id": 7_777_777_777_i64,
        "workspace_id": 900_800_700_600_i64
    });
    let textual = json!({
        "token_id": "5715498424f15ee0213be729257b53fc35a47d5953e3bdfd8ed22a0b93b339f4",
        "creation_time": "1700000000000",
        "expiry_time": "-1",
        "comment": "mlops: dev reads staging",
        "created_by_id": "4545454545",
        "created_by_username": "admin@example.com",
        "owner_id": "7777777777",
        "workspace_id": "900800700600"
    });
    let router = Router::new().route(
        TOKENS,
        get(move || async move { Json(json!({ "token_infos": [numeric, textual] })) }),
    );
    let base = serve(router).await;

    let tokens = client(&base).list_tokens().await.unwrap();

    assert_eq!(tokens, [expected_info(), expected_info()]);
}

#[tokio::test]
async fn empty_token_list_as_empty_object() {
    let router = Router::new().route(TOKENS, get(|| async { json_response(200, "{}") }));
    let base = serve(router).await;

    let tokens = client(&base).list_tokens().await.unwrap();

    assert!(tokens.is_empty());
}

#[tokio::test]
async fn personal_token_info_without_owner_fields() {
    let router = Router::new().route(
        "/api/2.0/token/create",
        post(|Json(body): Json<Value>| async move {
            assert_eq!(body, json!({ "comment": "bootstrap" }));
            Json(json!({
                "token_value": "dapi-personal-secret-value",
                "token_info": { "token_id": "abc", "creation_time": 1, "expiry_time": 2, "comment": null }
            }))
        }),
    );
    let base = serve(router).await;

    let created = client(&base)
        .create_personal_token(None, "bootstrap")
        .await
        .unwrap();

    assert_eq!(created.value.expose_secret(), "dapi-personal-secret-value");
    assert_eq!(created.info.token_id, "abc");
    assert_eq!(created.info.comment, "");
    assert_eq!(created.info.owner_id, None);
    assert!(!format!("{created:?}").contains("dapi-personal-secret-value"));
}

#[tokio::test]
async fn create_obo_token_sends_request_fields() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let recorded = bodies.clone();
    let router = Router::new().route(
        "/api/2.0/token-management/on-behalf-of/tokens",
        post(move |Json(body): Json<Value>| async move {
            recorded.lock().unwrap().push(body);
            Json(json!({
                "token_value": "dapi-obo-secret",
                "token_info": {
                    "token_id": "t1",
                    "creation_time": 10,
                    "expiry_time": 8_640_000_010_i64,
                    "comment": "c",
                    "owner_id": 42,
                    "created_by_id": 7
                }
            }))
        }),
    );
    let base = serve(router).await;
    let client = client(&base);

    let created = client
        .create_obo_token("app-uuid", Some(8_640_000), "c")
        .await
        .unwrap();
    client
        .create_obo_token("app-uuid", None, "c")
        .await
        .unwrap();

    assert_eq!(created.info.owner_id.as_deref(), Some("42"));
    assert_eq!(created.info.expiry_time, 8_640_000_010);
    assert_eq!(created.value.expose_secret(), "dapi-obo-secret");
    let bodies = bodies.lock().unwrap();
    assert_eq!(
        bodies[0],
        json!({ "application_id": "app-uuid", "lifetime_seconds": 8_640_000, "comment": "c" })
    );
    assert_eq!(
        bodies[1],
        json!({ "application_id": "app-uuid", "comment": "c" })
    );
}

#[tokio::test]
async fn get_token_found_and_missing() {
    let router = Router::new().route(
        &format!("{TOKENS}/{{id}}"),
        get(|Path(id): Path<String>| async move {
            if id == "known" {
                json_response(
                    200,
                    r#"{"token_info":{"token_id":"known","creation_time":"5","expiry_time":6}}"#,
                )
            } else {
                json_response(
                    404,
                    r#"{"error_code":"NOT_FOUND","message":"Token does not exist"}"#,
                )
            }
        }),
    );
    let base = serve(router).await;
    let client = client(&base);

    let found = client.get_token("known").await.unwrap().unwrap();
    let missing = client.get_token("gone").await.unwrap();

    assert_eq!(found.creation_time, 5);
    assert_eq!(found.expiry_time, 6);
    assert_eq!(missing, None);
}

#[tokio::test]
async fn delete_token_reports_already_gone() {
    let router = Router::new().route(
        &format!("{TOKENS}/{{id}}"),
        delete(|Path(id): Path<String>| async move {
            if id == "known" {
                StatusCode::OK.into_response()
            } else {
                json_response(404, r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Token gone does not exist"}"#)
            }
        }),
    );
    let base = serve(router).await;
    let client = client(&base);

    assert!(client.delete_token("known").await.unwrap());
    assert!(!client.delete_token("gone").await.unwrap());
}

#[tokio::test]
async fn revoke_personal_token_sends_id() {
    let router = Router::new().route(
        "/api/2.0/token/delete",
        post(|Json(body): Json<Value>| async move {
            assert_eq!(body, json!({ "token_id": "abc" }));
            Json(json!({}))
        }),
    );
    let base = serve(router).await;

    client(&base).revoke_personal_token("abc").await.unwrap();
}
