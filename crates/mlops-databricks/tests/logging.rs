//! Log output: request lines are written, secrets and headers never are.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{TOKEN, client, serve};
use mlops_databricks::SecretString;
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

const SECRET_VALUE: &str = "dapi-value-stored-in-scope";
const CREATED_TOKEN: &str = "dapi-freshly-created-token";

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn logs_name_requests_but_no_secrets() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let router = Router::new()
        .route("/api/2.0/secrets/put", post(|| async { Json(json!({})) }))
        .route(
            "/api/2.0/secrets/get",
            get(|Query(_): Query<Vec<(String, String)>>| async {
                Json(json!({ "key": "k", "value": "ZGFwaS12YWx1ZS1zdG9yZWQtaW4tc2NvcGU=" }))
            }),
        )
        .route(
            "/api/2.0/token/create",
            post(|| async {
                Json(json!({ "token_value": CREATED_TOKEN, "token_info": { "token_id": "t" } }))
            }),
        );
    let base = serve(router).await;
    let client = client(&base);

    client
        .put_secret(
            "mlops-registry",
            "prod-token",
            &SecretString::from(SECRET_VALUE),
        )
        .await
        .unwrap();
    client
        .get_secret("mlops-registry", "prod-token")
        .await
        .unwrap()
        .unwrap();
    client.create_personal_token(None, "c").await.unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("/api/2.0/secrets/put"), "{logs}");
    assert!(
        logs.contains("/api/2.0/secrets/get?scope=mlops-registry&key=prod-token"),
        "{logs}"
    );
    assert!(logs.contains("status=200"), "{logs}");
    for secret in [
        TOKEN,
        SECRET_VALUE,
        CREATED_TOKEN,
        "ZGFwaS12YWx1ZS1zdG9yZWQtaW4tc2NvcGU=",
    ] {
        assert!(!logs.contains(secret), "log contains {secret}:\n{logs}");
    }
    assert!(
        !logs.to_ascii_lowercase().contains("authorization"),
        "{logs}"
    );
}
