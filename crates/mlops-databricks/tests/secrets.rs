//! Secret scopes, secrets and ACLs against mock servers.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{client, json_response, serve};
use mlops_databricks::{AclItem, AclPermission, Error, ExposeSecret, SecretString};
use serde_json::{Value, json};

/// Builds a mock that stores secret values and returns them base64-encoded, as Databricks does.
fn secret_store_router(writes: Arc<Mutex<Vec<Value>>>) -> Router {
    let store: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let written = store.clone();

    Router::new()
        .route(
            "/api/2.0/secrets/put",
            post(move |Json(body): Json<Value>| async move {
                let key = body["key"].as_str().unwrap().to_owned();
                let value = body["string_value"].as_str().unwrap().to_owned();
                written.lock().unwrap().insert(key, value);
                writes.lock().unwrap().push(body);
                Json(json!({}))
            }),
        )
        .route(
            "/api/2.0/secrets/get",
            get(move |Query(query): Query<HashMap<String, String>>| async move {
                assert_eq!(query["scope"], "mlops-registry");
                let stored = store.lock().unwrap().get(&query["key"]).cloned();
                match stored {
                    Some(value) => {
                        let encoded = base64_encode(value.as_bytes());
                        json_response(200, &json!({ "key": query["key"], "value": encoded }).to_string())
                    }
                    None => json_response(
                        404,
                        r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Secret does not exist"}"#,
                    ),
                }
            }),
        )
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn put_then_get_secret_roundtrip() {
    let writes = Arc::new(Mutex::new(Vec::new()));
    let base = serve(secret_store_router(writes.clone())).await;
    let client = client(&base);
    let value = SecretString::from("dapi-remote-registry-token");

    client
        .put_secret("mlops-registry", "prod-token", &value)
        .await
        .unwrap();
    let read = client
        .get_secret("mlops-registry", "prod-token")
        .await
        .unwrap()
        .unwrap();
    let missing = client.get_secret("mlops-registry", "absent").await.unwrap();

    assert_eq!(read.expose_secret(), "dapi-remote-registry-token");
    assert!(missing.is_none());
    assert_eq!(
        writes.lock().unwrap()[0],
        json!({ "scope": "mlops-registry", "key": "prod-token", "string_value": "dapi-remote-registry-token" })
    );
}

#[tokio::test]
async fn invalid_base64_secret_is_decode_error_without_value() {
    let router = Router::new().route(
        "/api/2.0/secrets/get",
        get(|| async { Json(json!({ "key": "k", "value": "not*base64*dapi-leak" })) }),
    );
    let base = serve(router).await;

    let error = client(&base).get_secret("s", "k").await.unwrap_err();

    let Error::Decode { message, .. } = &error else {
        panic!("expected a decode error, got {error:?}");
    };
    assert_eq!(message, "field `value` is not valid base64");
    assert!(!error.to_string().contains("dapi-leak"));
}

#[tokio::test]
async fn list_secrets_timestamps_as_number_or_string() {
    let router = Router::new().route(
        "/api/2.0/secrets/list",
        get(|Query(query): Query<HashMap<String, String>>| async move {
            assert_eq!(query["scope"], "s");
            Json(json!({ "secrets": [
                { "key": "a", "last_updated_timestamp": 1_700_000_000_123_i64 },
                { "key": "b", "last_updated_timestamp": "1700000000456" }
            ] }))
        }),
    );
    let base = serve(router).await;

    let secrets = client(&base).list_secrets("s").await.unwrap();

    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[0].last_updated_timestamp, 1_700_000_000_123);
    assert_eq!(secrets[1].last_updated_timestamp, 1_700_000_000_456);
}

#[tokio::test]
async fn empty_lists_as_empty_objects() {
    let router = Router::new()
        .route(
            "/api/2.0/secrets/list",
            get(|| async { json_response(200, "{}") }),
        )
        .route(
            "/api/2.0/secrets/scopes/list",
            get(|| async { json_response(200, "{}") }),
        )
        .route(
            "/api/2.0/secrets/acls/list",
            get(|| async { json_response(200, "{}") }),
        );
    let base = serve(router).await;
    let client = client(&base);

    assert!(client.list_secrets("s").await.unwrap().is_empty());
    assert!(client.list_scopes().await.unwrap().is_empty());
    assert!(client.list_acls("s").await.unwrap().is_empty());
}

#[tokio::test]
async fn list_scopes_and_acls() {
    let router = Router::new()
        .route(
            "/api/2.0/secrets/scopes/list",
            get(|| async {
                Json(json!({ "scopes": [
                    { "name": "mlops-registry", "backend_type": "DATABRICKS", "is_databricks_managed": false }
                ] }))
            }),
        )
        .route(
            "/api/2.0/secrets/acls/list",
            get(|| async {
                Json(json!({ "items": [
                    { "principal": "admin@example.com", "permission": "MANAGE" },
                    { "principal": "mlops-readers", "permission": "READ" }
                ] }))
            }),
        );
    let base = serve(router).await;
    let client = client(&base);

    let scopes = client.list_scopes().await.unwrap();
    let acls = client.list_acls("mlops-registry").await.unwrap();

    assert_eq!(scopes[0].name, "mlops-registry");
    assert_eq!(scopes[0].backend_type.as_deref(), Some("DATABRICKS"));
    assert_eq!(
        acls,
        [
            AclItem {
                principal: "admin@example.com".to_owned(),
                permission: AclPermission::Manage
            },
            AclItem {
                principal: "mlops-readers".to_owned(),
                permission: AclPermission::Read
            },
        ]
    );
}

#[tokio::test]
async fn write_calls_send_expected_bodies() {
    let bodies: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let mut router = Router::new();
    for path in [
        "/api/2.0/secrets/scopes/create",
        "/api/2.0/secrets/scopes/delete",
        "/api/2.0/secrets/delete",
        "/api/2.0/secrets/acls/put",
        "/api/2.0/secrets/acls/delete",
    ] {
        let recorded = bodies.clone();
        router = router.route(
            path,
            post(move |Json(body): Json<Value>| async move {
                recorded.lock().unwrap().push((path.to_owned(), body));
                json_response(200, "{}")
            }),
        );
    }
    let base = serve(router).await;
    let client = client(&base);

    client.create_scope("s").await.unwrap();
    client
        .put_acl("s", "mlops-readers", AclPermission::Read)
        .await
        .unwrap();
    client.delete_acl("s", "mlops-readers").await.unwrap();
    client.delete_secret("s", "k").await.unwrap();
    client.delete_scope("s").await.unwrap();

    let bodies = bodies.lock().unwrap();
    let expected = [
        ("/api/2.0/secrets/scopes/create", json!({ "scope": "s" })),
        (
            "/api/2.0/secrets/acls/put",
            json!({ "scope": "s", "principal": "mlops-readers", "permission": "READ" }),
        ),
        (
            "/api/2.0/secrets/acls/delete",
            json!({ "scope": "s", "principal": "mlops-readers" }),
        ),
        (
            "/api/2.0/secrets/delete",
            json!({ "scope": "s", "key": "k" }),
        ),
        ("/api/2.0/secrets/scopes/delete", json!({ "scope": "s" })),
    ];
    assert_eq!(bodies.len(), expected.len());
    for ((path, body), (expected_path, expected_body)) in bodies.iter().zip(expected) {
        assert_eq!(path, expected_path);
        assert_eq!(body, &expected_body, "body of {path}");
    }
}
