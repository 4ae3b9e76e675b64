//! Token management (`/token-management`, admins only) and personal tokens (`/token`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::access::CAN_MANAGE;
use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::credentials::{new_personal_token, sha256_hex};
use crate::model::{AclEntry, PrincipalId, Token, Workspace};
use crate::server::{AppState, Params, parse_body};

/// Message for a non-admin caller of token management.
// NOTE: status and message for non-admins are unconfirmed; 403 PERMISSION_DENIED is the default.
const ADMINS_ONLY: &str = "Only Admins can access token management APIs.";

/// Message for a caller of `/token/create` without token permission, as the real server words it.
const NO_TOKEN_PERMISSION: &str = "User does not have permission to use tokens.";

/// Routes of the token endpoints.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/2.0/token-management/on-behalf-of/tokens",
            post(create_obo_token),
        )
        .route("/api/2.0/token-management/tokens", get(list_tokens))
        .route(
            "/api/2.0/token-management/tokens/{token_id}",
            get(get_token).delete(delete_token),
        )
        .route("/api/2.0/token/create", post(create_personal_token))
        .route("/api/2.0/token/list", get(list_personal_tokens))
        .route("/api/2.0/token/delete", post(delete_personal_token))
}

/// The owner, creator, lifetime and comment of a token to create.
pub(crate) struct NewToken {
    pub owner: PrincipalId,
    pub created_by: PrincipalId,
    pub lifetime_seconds: Option<i64>,
    pub comment: String,
}

/// Creates a token and returns its value and record. The first token of a workspace brings the token
/// permissions object into existence, with `admins` holding `CAN_MANAGE`.
pub(crate) fn mint_token(ws: &mut Workspace, request: NewToken, now_ms: i64) -> (String, Token) {
    let value = new_personal_token();
    // token_id is the hex SHA-256 of the value: the SDK documents token ids as "the SHA-256 hash
    // of the token", and it lets the emulator authenticate without storing the value.
    let token_id = sha256_hex(&value);
    let expiry_time = match request.lifetime_seconds {
        Some(seconds) if seconds > 0 => now_ms.saturating_add(seconds.saturating_mul(1000)),
        _ => -1,
    };
    let created_by_username = ws
        .principal_name(request.created_by)
        .unwrap_or_default()
        .to_owned();

    let token = Token {
        token_id: token_id.clone(),
        owner: request.owner,
        created_by: request.created_by,
        created_by_username,
        creation_time: now_ms,
        expiry_time,
        comment: request.comment,
    };
    ws.tokens.insert(token_id, token.clone());

    if ws.token_permissions.is_none() {
        let admins = AclEntry {
            principal: PrincipalId::Group(ws.admins_group_id),
            level: CAN_MANAGE.to_owned(),
        };
        ws.token_permissions = Some(vec![admins]);
    }
    (value, token)
}

/// Renders a TokenInfo of token management.
fn token_info(ws: &Workspace, token: &Token) -> Value {
    json!({
        "token_id": token.token_id,
        "creation_time": token.creation_time,
        "expiry_time": token.expiry_time,
        "comment": token.comment,
        "created_by_id": token.created_by.id(),
        "created_by_username": token.created_by_username,
        "owner_id": token.owner.id(),
        "workspace_id": ws.workspace_id.parse::<i64>().unwrap_or_default(),
    })
}

/// Renders a PublicTokenInfo of `/token/list` and `/token/create`.
fn public_token_info(token: &Token) -> Value {
    json!({
        "token_id": token.token_id,
        "creation_time": token.creation_time,
        "expiry_time": token.expiry_time,
        "comment": token.comment,
    })
}

/// Builds `{"token_infos": [...]}`, leaving an empty list out, as several real endpoints do.
fn token_infos(infos: Vec<Value>) -> Value {
    let mut body = Map::new();
    if !infos.is_empty() {
        body.insert("token_infos".to_owned(), Value::Array(infos));
    }
    Value::Object(body)
}

/// Body of token create requests.
#[derive(Deserialize)]
struct CreateTokenRequest {
    #[serde(default)]
    application_id: Option<String>,
    #[serde(default)]
    lifetime_seconds: Option<i64>,
    #[serde(default)]
    comment: Option<String>,
}

/// Checks a requested lifetime; absent or 0 means no expiry, as the SDKs omit a zero lifetime.
fn validate_lifetime(lifetime_seconds: Option<i64>) -> ApiResult<()> {
    match lifetime_seconds {
        Some(seconds) if seconds < 0 => Err(ApiError::invalid_parameter(format!(
            "Invalid lifetime_seconds {seconds}: expected a positive number of seconds, or none for no expiry."
        ))),
        _ => Ok(()),
    }
}

async fn create_obo_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: CreateTokenRequest = parse_body(&body)?;
    validate_lifetime(request.lifetime_seconds)?;

    state.write(|ws, ctx| {
        caller.require_admin(ws, ADMINS_ONLY)?;
        let application_id = request
            .application_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ApiError::invalid_parameter("Missing required field: application_id"))?;
        // NOTE: the real response to an unknown application id is unconfirmed; 400 is the default.
        let sp = ws
            .service_principals
            .values()
            .find(|sp| sp.application_id == application_id)
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "Service principal with application ID {application_id} does not exist."
                ))
            })?;
        let owner = PrincipalId::ServicePrincipal(sp.id);
        if !ws.may_use_tokens(owner) {
            return Err(ApiError::permission_denied(format!(
                "Service principal {application_id} does not have permission to use tokens."
            )));
        }

        let new_token = NewToken {
            owner,
            created_by: caller.principal,
            lifetime_seconds: request.lifetime_seconds,
            comment: request.comment.unwrap_or_default(),
        };
        let (value, token) = mint_token(ws, new_token, ctx.now_ms);
        let info = token_info(ws, &token);
        Ok(Json(json!({ "token_info": info, "token_value": value })))
    })
}

async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let created_by_id = params
        .get("created_by_id")
        .map(|value| {
            value.parse::<u64>().map_err(|_| {
                ApiError::invalid_parameter(format!(
                    "Invalid created_by_id `{value}`: expected a number."
                ))
            })
        })
        .transpose()?;
    let created_by_username = params.get("created_by_username");

    state.read(|ws, _| {
        caller.require_admin(ws, ADMINS_ONLY)?;
        let infos = ws
            .tokens
            .values()
            .filter(|token| created_by_id.is_none_or(|id| token.created_by.id() == id))
            .filter(|token| {
                created_by_username.is_none_or(|name| token.created_by_username == name)
            })
            .map(|token| token_info(ws, token))
            .collect();
        Ok(Json(token_infos(infos)))
    })
}

/// Returns the 404 for an unknown token id.
// NOTE: the real error_code may be NOT_FOUND; RESOURCE_DOES_NOT_EXIST is the default here.
fn token_not_found(token_id: &str) -> ApiError {
    ApiError::not_found(format!("Token with id {token_id} does not exist."))
}

async fn get_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.read(|ws, _| {
        caller.require_admin(ws, ADMINS_ONLY)?;
        let token = ws
            .tokens
            .get(&token_id)
            .ok_or_else(|| token_not_found(&token_id))?;
        Ok(Json(json!({ "token_info": token_info(ws, token) })))
    })
}

async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.write(|ws, _| {
        caller.require_admin(ws, ADMINS_ONLY)?;
        ws.tokens
            .remove(&token_id)
            .ok_or_else(|| token_not_found(&token_id))?;
        tracing::info!(workspace = %ws.name, token_id = %token_id, "token deleted");
        Ok(Json(json!({})))
    })
}

async fn create_personal_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: CreateTokenRequest = parse_body(&body)?;
    validate_lifetime(request.lifetime_seconds)?;

    state.write(|ws, ctx| {
        if !ws.may_use_tokens(caller.principal) {
            return Err(ApiError::permission_denied(NO_TOKEN_PERMISSION));
        }
        let new_token = NewToken {
            owner: caller.principal,
            created_by: caller.principal,
            lifetime_seconds: request.lifetime_seconds,
            comment: request.comment.unwrap_or_default(),
        };
        let (value, token) = mint_token(ws, new_token, ctx.now_ms);
        let info = public_token_info(&token);
        Ok(Json(json!({ "token_value": value, "token_info": info })))
    })
}

/// Lists the caller's tokens that have not expired.
async fn list_personal_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    state.read(|ws, now_ms| {
        if !ws.may_use_tokens(caller.principal) {
            return Err(ApiError::permission_denied(NO_TOKEN_PERMISSION));
        }
        let infos = ws
            .tokens
            .values()
            .filter(|token| token.owner == caller.principal && !token.is_expired(now_ms))
            .map(public_token_info)
            .collect();
        Ok(Json(token_infos(infos)))
    })
}

/// Body of `/token/delete`.
#[derive(Deserialize)]
struct DeleteTokenRequest {
    #[serde(default)]
    token_id: Option<String>,
}

/// Revokes one of the caller's own tokens.
async fn delete_personal_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: DeleteTokenRequest = parse_body(&body)?;
    let token_id = request
        .token_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::invalid_parameter("Missing required field: token_id"))?;

    state.write(|ws, _| {
        if !ws.may_use_tokens(caller.principal) {
            return Err(ApiError::permission_denied(NO_TOKEN_PERMISSION));
        }
        let owned = ws
            .tokens
            .get(&token_id)
            .is_some_and(|token| token.owner == caller.principal);
        if !owned {
            return Err(token_not_found(&token_id));
        }
        ws.tokens.remove(&token_id);
        tracing::info!(workspace = %ws.name, token_id = %token_id, "personal token revoked");
        Ok(Json(json!({})))
    })
}
