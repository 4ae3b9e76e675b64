//! OAuth machine-to-machine authentication against a mock workspace.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{Counter, fast_options, json_response, serve};
use mlops_databricks::{Credentials, Error, SecretString, WorkspaceClient};
use serde_json::{Value, json};

const CLIENT_ID: &str = "0b9f1a52-1111-4222-8333-944455556666";
const CLIENT_SECRET: &str = "dose0123456789abcdef0123456789abcdef";
const SCOPES_LIST: &str = "/api/2.0/secrets/scopes/list";

/// How the mock token endpoint behaves.
#[derive(Clone)]
struct TokenEndpoint {
    /// `expires_in` value of every token response.
    expires_in: Value,
    /// Access token that the API rejects with `revoked_status`.
    revoked: Option<&'static str>,
    /// Status of the rejection: 401, or 403 as some workspaces send.
    revoked_status: u16,
    /// Token endpoint URL to advertise instead of the mock's own.
    advertised_endpoint: Option<&'static str>,
}

impl Default for TokenEndpoint {
    fn default() -> Self {
        Self {
            expires_in: json!("3600"),
            revoked: None,
            revoked_status: 401,
            advertised_endpoint: None,
        }
    }
}

/// Counters and the bearer tokens the API saw.
#[derive(Clone, Default)]
struct Observed {
    discoveries: Counter,
    token_requests: Counter,
    api_tokens: Arc<Mutex<Vec<String>>>,
}

async fn serve_oauth_workspace(endpoint: TokenEndpoint) -> (String, Observed) {
    let observed = Observed::default();
    let (discovery, token, api) = (observed.clone(), observed.clone(), observed.clone());
    let advertised = endpoint.advertised_endpoint;
    let expires_in = endpoint.expires_in.clone();
    let revoked = endpoint.revoked;
    let revoked_status = endpoint.revoked_status;

    let router = Router::new()
        .route(
            "/oidc/.well-known/oauth-authorization-server",
            get(move |headers: HeaderMap| async move {
                discovery.discoveries.increment();
                assert!(headers.get("authorization").is_none());
                let host = headers["host"].to_str().unwrap().to_owned();
                let token_endpoint = advertised
                    .map(str::to_owned)
                    .unwrap_or(format!("http://{host}/oidc/v1/token"));
                Json(json!({
                    "authorization_endpoint": format!("http://{host}/oidc/v1/authorize"),
                    "token_endpoint": token_endpoint
                }))
            }),
        )
        .route(
            "/oidc/v1/token",
            post(move |headers: HeaderMap, body: String| async move {
                let number = token.token_requests.increment();
                assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
                assert_eq!(body, "grant_type=client_credentials&scope=all-apis");
                let expected = format!(
                    "Basic {}",
                    base64_encode(&format!("{CLIENT_ID}:{CLIENT_SECRET}"))
                );
                assert_eq!(headers["authorization"].to_str().unwrap(), expected);
                Json(json!({
                    "access_token": format!("access-{number}"),
                    "token_type": "Bearer",
                    "expires_in": expires_in,
                    "scope": "all-apis"
                }))
            }),
        )
        .route(
            SCOPES_LIST,
            get(move |headers: HeaderMap| async move {
                let bearer = headers["authorization"].to_str().unwrap().to_owned();
                api.api_tokens.lock().unwrap().push(bearer.clone());
                if revoked.is_some_and(|token| bearer == format!("Bearer {token}")) {
                    return json_response(
                        revoked_status,
                        r#"{"error_code":403,"message":"Invalid access token."}"#,
                    );
                }
                json_response(200, "{}")
            }),
        );

    (serve(router).await, observed)
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn oauth_client(base: &str) -> WorkspaceClient {
    let credentials = Credentials::OAuthM2m {
        client_id: CLIENT_ID.to_owned(),
        client_secret: SecretString::from(CLIENT_SECRET),
    };
    WorkspaceClient::new(base, credentials, fast_options()).unwrap()
}

#[tokio::test]
async fn token_is_fetched_once_and_cached() {
    let (base, observed) = serve_oauth_workspace(TokenEndpoint::default()).await;
    let client = oauth_client(&base);

    client.list_scopes().await.unwrap();
    client.list_scopes().await.unwrap();

    assert_eq!(observed.discoveries.get(), 1);
    assert_eq!(observed.token_requests.get(), 1);
    assert_eq!(
        *observed.api_tokens.lock().unwrap(),
        ["Bearer access-1", "Bearer access-1"]
    );
}

#[tokio::test]
async fn concurrent_calls_share_one_token_fetch() {
    let (base, observed) = serve_oauth_workspace(TokenEndpoint::default()).await;
    let client = oauth_client(&base);

    let mut calls = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        calls.push(tokio::spawn(async move { client.list_scopes().await }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }

    assert_eq!(observed.token_requests.get(), 1);
    assert_eq!(observed.api_tokens.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn token_inside_refresh_margin_is_replaced() {
    // A 30 s lifetime is inside the 60 s refresh margin, so every call needs a new token.
    let endpoint = TokenEndpoint {
        expires_in: json!(30),
        ..TokenEndpoint::default()
    };
    let (base, observed) = serve_oauth_workspace(endpoint).await;
    let client = oauth_client(&base);

    client.list_scopes().await.unwrap();
    client.list_scopes().await.unwrap();

    assert_eq!(observed.discoveries.get(), 1);
    assert_eq!(observed.token_requests.get(), 2);
    assert_eq!(
        *observed.api_tokens.lock().unwrap(),
        ["Bearer access-1", "Bearer access-2"]
    );
}

#[tokio::test]
async fn token_is_refetched_after_expiry() {
    // A 61 s lifetime minus the 60 s refresh margin leaves one second of reuse.
    let endpoint = TokenEndpoint {
        expires_in: json!(61),
        ..TokenEndpoint::default()
    };
    let (base, observed) = serve_oauth_workspace(endpoint).await;
    let client = oauth_client(&base);

    client.list_scopes().await.unwrap();
    client.list_scopes().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    client.list_scopes().await.unwrap();

    assert_eq!(
        *observed.api_tokens.lock().unwrap(),
        ["Bearer access-1", "Bearer access-1", "Bearer access-2"]
    );
}

#[tokio::test]
async fn rejected_token_is_refreshed_once() {
    let endpoint = TokenEndpoint {
        revoked: Some("access-1"),
        ..TokenEndpoint::default()
    };
    let (base, observed) = serve_oauth_workspace(endpoint).await;

    oauth_client(&base).list_scopes().await.unwrap();

    assert_eq!(observed.token_requests.get(), 2);
    assert_eq!(
        *observed.api_tokens.lock().unwrap(),
        ["Bearer access-1", "Bearer access-2"]
    );
}

#[tokio::test]
async fn token_rejected_with_403_is_refreshed_once() {
    let endpoint = TokenEndpoint {
        revoked: Some("access-1"),
        revoked_status: 403,
        ..TokenEndpoint::default()
    };
    let (base, observed) = serve_oauth_workspace(endpoint).await;

    oauth_client(&base).list_scopes().await.unwrap();

    assert_eq!(observed.token_requests.get(), 2);
}

#[tokio::test]
async fn token_endpoint_on_other_host_is_rejected() {
    let endpoint = TokenEndpoint {
        advertised_endpoint: Some("http://127.0.0.2:9/oidc/v1/token"),
        ..TokenEndpoint::default()
    };
    let (base, observed) = serve_oauth_workspace(endpoint).await;

    let error = oauth_client(&base).list_scopes().await.unwrap_err();

    assert!(
        matches!(
            error,
            Error::OAuth {
                step: "discovery",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("not on the workspace host"),
        "{error}"
    );
    assert_eq!(observed.token_requests.get(), 0);
}

async fn serve_token_error(status: StatusCode, body: &'static str) -> String {
    let router = Router::new()
        .route(
            "/oidc/.well-known/oauth-authorization-server",
            get(|headers: HeaderMap| async move {
                let host = headers["host"].to_str().unwrap().to_owned();
                Json(json!({ "token_endpoint": format!("http://{host}/oidc/v1/token") }))
            }),
        )
        .route(
            "/oidc/v1/token",
            post(move || async move {
                (status, [("content-type", "application/json")], body).into_response()
            }),
        );
    serve(router).await
}

#[tokio::test]
async fn invalid_client_is_oauth_error() {
    let base = serve_token_error(
        StatusCode::UNAUTHORIZED,
        r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
    )
    .await;

    let error = oauth_client(&base).list_scopes().await.unwrap_err();

    let Error::OAuth {
        step,
        status,
        message,
        ..
    } = &error
    else {
        panic!("expected an OAuth error, got {error:?}");
    };
    assert_eq!(*step, "token request");
    assert_eq!(*status, Some(401));
    assert!(
        message.contains("invalid_client: Client authentication failed"),
        "{message}"
    );
    assert!(
        message.contains("check the OAuth client id and client secret"),
        "{message}"
    );
    assert!(!error.to_string().contains(CLIENT_SECRET));
    assert!(error.is_auth());
}

#[tokio::test]
async fn token_response_without_access_token_is_oauth_error() {
    let base = serve_token_error(
        StatusCode::OK,
        r#"{"token_type":"Bearer","expires_in":3600}"#,
    )
    .await;

    let error = oauth_client(&base).list_scopes().await.unwrap_err();

    assert!(error.to_string().contains("no access_token"), "{error}");
}

#[tokio::test]
async fn discovery_404_means_oauth_unsupported() {
    let router = Router::new().route(SCOPES_LIST, get(|| async { json_response(200, "{}") }));
    let base = serve(router).await;

    let error = oauth_client(&base).list_scopes().await.unwrap_err();

    let Error::OAuth {
        step,
        status,
        message,
        ..
    } = &error
    else {
        panic!("expected an OAuth error, got {error:?}");
    };
    assert_eq!(*step, "discovery");
    assert_eq!(*status, Some(404));
    assert!(message.contains("does not support OAuth"), "{message}");
}

#[tokio::test]
async fn token_endpoint_502_is_retried() {
    let attempts = Counter::default();
    let counted = attempts.clone();
    let router = Router::new()
        .route(
            "/oidc/.well-known/oauth-authorization-server",
            get(|headers: HeaderMap| async move {
                let host = headers["host"].to_str().unwrap().to_owned();
                Json(json!({ "token_endpoint": format!("http://{host}/oidc/v1/token") }))
            }),
        )
        .route(
            "/oidc/v1/token",
            post(move || {
                let attempt = counted.increment();
                async move {
                    if attempt == 1 {
                        return StatusCode::BAD_GATEWAY.into_response();
                    }
                    Json(json!({ "access_token": "fresh", "expires_in": 3600 })).into_response()
                }
            }),
        )
        .route(
            SCOPES_LIST,
            get(|headers: HeaderMap| async move {
                assert_eq!(headers["authorization"], "Bearer fresh");
                json_response(200, "{}")
            }),
        );
    let base = serve(router).await;

    oauth_client(&base).list_scopes().await.unwrap();

    assert_eq!(attempts.get(), 2);
}

#[test]
fn credentials_debug_hides_secret() {
    let credentials = Credentials::OAuthM2m {
        client_id: CLIENT_ID.to_owned(),
        client_secret: SecretString::from(CLIENT_SECRET),
    };

    let debug = format!("{credentials:?}");

    assert!(debug.contains(CLIENT_ID), "{debug}");
    assert!(!debug.contains(CLIENT_SECRET), "{debug}");
}
