//! OAuth machine-to-machine endpoints: host metadata, discovery and the client-credentials token
//! grant.

use std::collections::HashMap;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::ACCESS_TOKEN_LIFETIME_SECONDS;
use crate::api_error::{ApiError, ApiResult};
use crate::credentials::{new_access_token, new_client_secret, sha256_hex};
use crate::model::{AccessToken, OAuthClient, PrincipalId, Workspace};
use crate::server::AppState;

/// Scope that the SDKs request by default.
const DEFAULT_SCOPE: &str = "all-apis";

/// Routes of the OAuth endpoints; they need no bearer token.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/oidc/.well-known/oauth-authorization-server",
            get(discovery),
        )
        .route("/oidc/v1/token", post(token))
        .route("/.well-known/databricks-config", get(host_metadata))
}

/// Issues an access token for `owner`, valid for one hour from `now_ms`, and drops expired ones.
pub(crate) fn issue_access_token(ws: &mut Workspace, owner: PrincipalId, now_ms: i64) -> String {
    ws.access_tokens
        .retain(|_, token| token.expiry_time >= now_ms);
    let value = new_access_token();
    let expiry_time = now_ms + ACCESS_TOKEN_LIFETIME_SECONDS * 1000;
    ws.access_tokens
        .insert(sha256_hex(&value), AccessToken { owner, expiry_time });
    value
}

/// Registers OAuth client credentials for `owner` under `client_id` and returns the new secret;
/// only the secret's SHA-256 is stored.
pub(crate) fn register_client(ws: &mut Workspace, client_id: &str, owner: PrincipalId) -> String {
    let secret = new_client_secret();
    ws.oauth_clients.insert(
        client_id.to_owned(),
        OAuthClient {
            owner,
            secret_sha256: sha256_hex(&secret),
        },
    );
    secret
}

/// Returns the base URL of the OIDC endpoints, built from the request's Host header.
fn oidc_base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/oidc")
}

/// Returns the host metadata that newer SDKs read before they authenticate: the workspace id and
/// the OIDC root, under which the SDKs find `.well-known/oauth-authorization-server`. It needs no
/// bearer token.
async fn host_metadata(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    Json(json!({
        "workspace_id": &*state.workspace_id,
        "oidc_endpoint": oidc_base(&headers),
        "cloud": "AWS",
    }))
}

/// Returns the authorization-server metadata with absolute URLs built from the request's Host.
async fn discovery(headers: HeaderMap) -> Json<Value> {
    let base = oidc_base(&headers);
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/v1/authorize"),
        "token_endpoint": format!("{base}/v1/token"),
    }))
}

/// Handles `grant_type=client_credentials` with HTTP Basic client authentication (client id and
/// secret in the form body are accepted too).
async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> ApiResult<Json<Value>> {
    let Form(form) = form.map_err(|_| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body must be form-encoded.",
        )
    })?;
    let grant_type = form
        .get("grant_type")
        .map(String::as_str)
        .unwrap_or_default();
    if grant_type != "client_credentials" {
        let message =
            format!("Unsupported grant_type `{grant_type}`: only client_credentials is supported.");
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &message,
        ));
    }

    let (client_id, client_secret) =
        client_credentials(&headers, &form).ok_or_else(invalid_client)?;
    let scope = form
        .get("scope")
        .filter(|scope| !scope.is_empty())
        .cloned()
        .unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
    let access_token = state.write(|ws, ctx| {
        let owner = authenticate_client(ws, &client_id, &client_secret)?;
        Ok(issue_access_token(ws, owner, ctx.now_ms))
    })?;

    Ok(Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_LIFETIME_SECONDS,
        "scope": scope,
    })))
}

/// Reads the client id and secret from the Basic Authorization header or the form body.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, String)> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    {
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        return Some((id.to_owned(), secret.to_owned()));
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
    ))
}

/// Returns the owner of valid, active client credentials.
fn authenticate_client(
    ws: &Workspace,
    client_id: &str,
    client_secret: &str,
) -> ApiResult<PrincipalId> {
    let client = ws.oauth_clients.get(client_id).ok_or_else(invalid_client)?;
    if client.secret_sha256 != sha256_hex(client_secret) || !ws.principal_active(client.owner) {
        return Err(invalid_client());
    }
    Ok(client.owner)
}

/// 401 `invalid_client`.
fn invalid_client() -> ApiError {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed.",
    )
}

/// Builds an OAuth 2.0 error response.
fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> ApiError {
    ApiError::OAuth {
        status,
        error,
        description: description.to_owned(),
    }
}
