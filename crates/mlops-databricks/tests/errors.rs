//! Error bodies and undecodable responses against mock servers.

mod common;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use common::{RawAction, TOKEN, client, raw_json, serve, serve_raw};
use mlops_databricks::{Error, MAX_BODY_BYTES, SecretString};

/// Serves one route that always returns `status`, `content_type` and `body`.
async fn serve_fixed(
    method: &str,
    path: &str,
    status: u16,
    content_type: &'static str,
    body: String,
) -> String {
    let handler = move || {
        let body = body.clone();
        async move {
            let status = axum::http::StatusCode::from_u16(status).unwrap();
            (status, [("content-type", content_type)], body).into_response()
        }
    };
    let route = match method {
        "GET" => get(handler),
        _ => post(handler),
    };
    serve(Router::new().route(path, route)).await
}

fn api_parts(error: &Error) -> (u16, &str, &str) {
    match error {
        Error::Api {
            status,
            error_code,
            message,
            ..
        } => (*status, error_code.as_str(), message.as_str()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn api_error_message_names_method_and_path() {
    let body = r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Scope x does not exist!"}"#;
    let base = serve_fixed(
        "POST",
        "/api/2.0/secrets/put",
        404,
        "application/json",
        body.into(),
    )
    .await;

    let error = client(&base)
        .put_secret("x", "k", &SecretString::from("value"))
        .await
        .unwrap_err();

    assert_eq!(
        error.to_string(),
        "POST /api/2.0/secrets/put failed: 404 RESOURCE_DOES_NOT_EXIST: Scope x does not exist!"
    );
    assert!(error.is_not_found());
    assert_eq!(error.status(), Some(404));
}

#[tokio::test]
async fn numeric_error_code_becomes_text() {
    let body = r#"{"error_code":1001,"message":"quota exceeded"}"#;
    let base = serve_fixed(
        "POST",
        "/api/2.0/token/create",
        400,
        "application/json",
        body.into(),
    )
    .await;

    let error = client(&base)
        .create_personal_token(None, "c")
        .await
        .unwrap_err();

    assert_eq!(api_parts(&error), (400, "1001", "quota exceeded"));
}

#[tokio::test]
async fn already_exists_with_400_and_409() {
    for status in [400u16, 409] {
        let body =
            r#"{"error_code":"RESOURCE_ALREADY_EXISTS","message":"Scope mlops already exists!"}"#;
        let base = serve_fixed(
            "POST",
            "/api/2.0/secrets/scopes/create",
            status,
            "application/json",
            body.into(),
        )
        .await;

        let error = client(&base).create_scope("mlops").await.unwrap_err();

        assert!(error.is_already_exists(), "status {status}: {error}");
        assert!(!error.is_not_found(), "status {status}");
        assert_eq!(api_parts(&error).0, status);
    }
}

#[tokio::test]
async fn invalid_token_403_is_auth_error() {
    let body = r#"{"error_code":403,"message":"Invalid access token."}"#;
    let base = serve_fixed(
        "GET",
        "/api/2.0/secrets/scopes/list",
        403,
        "application/json",
        body.into(),
    )
    .await;

    let error = client(&base).list_scopes().await.unwrap_err();

    let Error::Auth {
        status, message, ..
    } = &error
    else {
        panic!("expected an auth error, got {error:?}");
    };
    assert_eq!(*status, 403);
    assert_eq!(message, "Invalid access token.");
    assert!(
        error.to_string().contains("check that the token"),
        "{error}"
    );
    assert!(!error.to_string().contains(TOKEN));
    assert!(!error.is_permission_denied());
}

#[tokio::test]
async fn status_401_is_auth_error() {
    let base = serve_fixed(
        "GET",
        "/api/2.0/secrets/scopes/list",
        401,
        "text/plain",
        String::new(),
    )
    .await;

    let error = client(&base).list_scopes().await.unwrap_err();

    assert!(
        matches!(error, Error::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert!(error.is_auth());
}

#[tokio::test]
async fn permission_denied_stays_api_error() {
    let body = r#"{"error_code":"PERMISSION_DENIED","message":"User is not an admin"}"#;
    let base = serve_fixed(
        "GET",
        "/api/2.0/token-management/tokens",
        403,
        "application/json",
        body.into(),
    )
    .await;

    let error = client(&base).list_tokens().await.unwrap_err();

    assert!(error.is_permission_denied(), "{error:?}");
    assert_eq!(
        api_parts(&error),
        (403, "PERMISSION_DENIED", "User is not an admin")
    );
}

#[tokio::test]
async fn scim_error_with_numeric_status() {
    let body = r#"{"detail":"User not authorized","status":403}"#;
    let base = serve_fixed(
        "GET",
        "/api/2.0/preview/scim/v2/Groups",
        403,
        "application/scim+json",
        body.into(),
    )
    .await;

    let error = client(&base).list_groups(None).await.unwrap_err();

    assert_eq!(api_parts(&error), (403, "SCIM_403", "User not authorized"));
    assert!(error.is_permission_denied());
}

#[tokio::test]
async fn html_error_page_is_masked_and_cut() {
    let filler = "lorem ipsum ".repeat(60);
    let body = format!(
        "<html><head><title>Bad Gateway</title></head><body>upstream rejected Bearer {TOKEN} {filler}</body></html>"
    );
    let base = serve_fixed(
        "GET",
        "/api/2.0/secrets/scopes/list",
        502,
        "text/html",
        body,
    )
    .await;

    let error = client(&base).list_scopes().await.unwrap_err();

    let (status, error_code, message) = api_parts(&error);
    assert_eq!(status, 502);
    assert_eq!(error_code, "BAD_GATEWAY");
    assert!(
        message.chars().count() <= 201,
        "{} characters",
        message.chars().count()
    );
    assert!(message.contains("upstream rejected"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
    assert!(!error.to_string().contains(TOKEN));
}

#[tokio::test]
async fn html_pre_block_is_the_message() {
    let body = "<html><body><h1>Error</h1><pre>Workspace is being restarted</pre></body></html>";
    let base = serve_fixed(
        "GET",
        "/api/2.0/secrets/scopes/list",
        500,
        "text/html",
        body.into(),
    )
    .await;

    let error = client(&base).list_scopes().await.unwrap_err();

    assert_eq!(
        api_parts(&error),
        (500, "INTERNAL_SERVER_ERROR", "Workspace is being restarted")
    );
}

#[tokio::test]
async fn invalid_json_is_decode_error() {
    let base = serve_fixed(
        "GET",
        "/api/2.0/secrets/scopes/list",
        200,
        "application/json",
        r#"{"scopes": ["#.into(),
    )
    .await;

    let error = client(&base).list_scopes().await.unwrap_err();

    let Error::Decode {
        method,
        path,
        message,
    } = &error
    else {
        panic!("expected a decode error, got {error:?}");
    };
    assert_eq!(method, "GET");
    assert_eq!(path, "/api/2.0/secrets/scopes/list");
    assert!(message.starts_with("invalid JSON"), "{message}");
}

#[tokio::test]
async fn html_success_is_decode_error_naming_content_type() {
    let body = format!("<html>login page {}</html>", "x".repeat(500));
    let base = serve_fixed(
        "GET",
        "/api/2.0/secrets/scopes/list",
        200,
        "text/html; charset=utf-8",
        body,
    )
    .await;

    let error = client(&base).list_scopes().await.unwrap_err();

    let Error::Decode { message, .. } = &error else {
        panic!("expected a decode error, got {error:?}");
    };
    assert!(message.contains("`text/html`"), "{message}");
    assert!(message.contains("login page"), "{message}");
    assert!(
        message.len() < 400,
        "message quotes too much: {} bytes",
        message.len()
    );
}

#[tokio::test]
async fn missing_field_is_decode_error() {
    let body = r#"{"token_info":{"token_id":"abc","creation_time":1,"expiry_time":-1}}"#;
    let base = serve_fixed(
        "POST",
        "/api/2.0/token/create",
        200,
        "application/json",
        body.into(),
    )
    .await;

    let error = client(&base)
        .create_personal_token(None, "c")
        .await
        .unwrap_err();

    let Error::Decode { message, .. } = &error else {
        panic!("expected a decode error, got {error:?}");
    };
    assert!(message.contains("missing field `token_value`"), "{message}");
}

#[tokio::test]
async fn oversized_body_is_decode_error() {
    let body = format!(
        r#"{{"scopes":[],"padding":"{}"}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    let base = serve_fixed(
        "GET",
        "/api/2.0/secrets/scopes/list",
        200,
        "application/json",
        body,
    )
    .await;

    let error = client(&base).list_scopes().await.unwrap_err();

    let Error::Decode { message, .. } = &error else {
        panic!("expected a decode error, got {error:?}");
    };
    assert!(message.contains("16 MiB"), "{message}");
    assert!(!message.contains("xxxx"), "{message}");
}

#[tokio::test]
async fn oversized_chunked_body_is_decode_error() {
    let chunk = vec![b'x'; 1024 * 1024];
    let mut response = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..17 {
        response.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        response.extend_from_slice(&chunk);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let (base, requests) = serve_raw(vec![RawAction::Respond(response)]).await;

    let error = client(&base).list_scopes().await.unwrap_err();

    assert!(
        matches!(&error, Error::Decode { message, .. } if message.contains("16 MiB")),
        "{error:?}"
    );
    assert_eq!(requests.get(), 1, "an oversized body must not be retried");
}

#[tokio::test]
async fn error_without_code_uses_reason_phrase() {
    let (base, _) = serve_raw(vec![raw_json(409, r#"{"message":"conflict"}"#)]).await;

    let error = client(&base).create_scope("s").await.unwrap_err();

    assert_eq!(api_parts(&error), (409, "CONFLICT", "conflict"));
    assert!(!error.is_already_exists());
}

#[tokio::test]
async fn plain_text_error_with_code_prefix() {
    let base = serve_fixed(
        "GET",
        "/api/2.0/secrets/scopes/list",
        400,
        "text/plain",
        "INVALID_PARAMETER_VALUE: scope name is too long".into(),
    )
    .await;

    let error = client(&base).list_scopes().await.unwrap_err();

    assert_eq!(
        api_parts(&error),
        (400, "INVALID_PARAMETER_VALUE", "scope name is too long")
    );
}

#[tokio::test]
async fn html_success_on_void_call_is_decode_error() {
    let body = "<html><body>Sign in to continue</body></html>".to_owned();
    let base = serve_fixed(
        "POST",
        "/api/2.0/secrets/acls/delete",
        200,
        "text/html",
        body,
    )
    .await;

    let error = client(&base).delete_acl("s", "p").await.unwrap_err();

    let Error::Decode { message, .. } = &error else {
        panic!("expected a decode error, got {error:?}");
    };
    assert!(message.contains("`text/html`"), "{message}");
    assert!(message.contains("Sign in to continue"), "{message}");
}
