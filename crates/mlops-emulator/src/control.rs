//! Emulator-only control endpoints under `/_emulator`: the clock, fault rules, service
//! principal OAuth secrets and user access tokens. Every one needs an admin caller.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::faults::{FaultRule, FaultSet};
use crate::server::{AppState, parse_body};

/// Routes of the control endpoints.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/_emulator/clock", get(get_clock).post(set_clock))
        .route(
            "/_emulator/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route(
            "/_emulator/service-principals/{id}/secret",
            post(create_service_principal_secret),
        )
        .route(
            "/_emulator/users/{id}/access-token",
            post(create_user_access_token),
        )
}

/// Fails unless the caller is an admin of the workspace.
fn require_admin(state: &AppState, caller: &Caller) -> ApiResult<()> {
    state.read(|ws, _| {
        caller.require_admin(
            ws,
            "Only workspace admins can use the emulator control endpoints.",
        )
    })
}

/// Body of `POST /_emulator/clock`.
/// Reads a field that is present, keeping `null` apart from a missing field (which `default`
/// turns into `None`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    /// Frozen instant in RFC 3339; `null` lets the clock follow system time again.
    #[serde(default, deserialize_with = "present")]
    now: Option<Option<String>>,
    /// Seconds to move the frozen clock forward.
    #[serde(default)]
    advance_seconds: Option<i64>,
}

/// Returns the clock as JSON.
fn clock_body(state: &AppState) -> Value {
    let clock = state.emulator.clock();
    json!({ "now": clock.now().to_string(), "now_ms": clock.now_ms(), "frozen": clock.frozen().is_some() })
}

async fn get_clock(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    require_admin(&state, &caller)?;
    Ok(Json(clock_body(&state)))
}

async fn set_clock(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    require_admin(&state, &caller)?;
    let request: ClockRequest = parse_body(&body)?;
    let clock = state.emulator.clock();

    match request.now {
        Some(Some(text)) => {
            let now = text.parse::<Timestamp>().map_err(|_| {
                ApiError::invalid_parameter(format!("invalid now `{text}`: expected an RFC 3339 timestamp such as 2026-01-01T00:00:00Z"))
            })?;
            clock.set(Some(now));
        }
        Some(None) => clock.set(None),
        None => {}
    }
    if let Some(seconds) = request.advance_seconds {
        clock.advance(seconds).map_err(|_| {
            ApiError::invalid_parameter(format!(
                "invalid advance_seconds {seconds}: the time is out of range"
            ))
        })?;
    }
    Ok(Json(clock_body(&state)))
}

async fn get_faults(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    require_admin(&state, &caller)?;
    let faults = state.emulator.faults();
    let set = faults.get(&*state.workspace).cloned().unwrap_or_default();
    Ok(Json(json!(set)))
}

/// Replaces the fault rules of the workspace with the JSON list in the body.
async fn set_faults(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    require_admin(&state, &caller)?;
    let rules: Vec<FaultRule> = serde_json::from_slice(&body)
        .map_err(|error| ApiError::malformed(format!("invalid fault rules: {error}")))?;
    for (index, rule) in rules.iter().enumerate() {
        rule.validate().map_err(|message| {
            ApiError::invalid_parameter(format!("invalid fault rule {index}: {message}"))
        })?;
    }

    let count = rules.len();
    state
        .emulator
        .faults()
        .insert(state.workspace.to_string(), FaultSet::new(rules));
    tracing::info!(workspace = %state.workspace, count, "fault rules set");
    Ok(Json(json!({ "rules": count })))
}

async fn clear_faults(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    require_admin(&state, &caller)?;
    state.emulator.faults().remove(&*state.workspace);
    tracing::info!(workspace = %state.workspace, "fault rules cleared");
    Ok(Json(json!({})))
}

/// Creates OAuth client credentials for a service principal; its client id is its applicationId.
/// A new secret replaces the previous one.
async fn create_service_principal_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&state, &caller)?;
    let (client_id, secret) = state.write(|ws, _| {
        let sp = id
            .parse::<u64>()
            .ok()
            .and_then(|numeric| ws.service_principals.get(&numeric))
            .ok_or_else(|| {
                ApiError::not_found(format!("Service principal with id {id} does not exist."))
            })?;
        let client_id = sp.application_id.clone();
        let owner = crate::model::PrincipalId::ServicePrincipal(sp.id);
        let secret = crate::oauth::register_client(ws, &client_id, owner);
        Ok((client_id, secret))
    })?;
    Ok(Json(json!({ "client_id": client_id, "client_secret": secret })).into_response())
}

/// Issues an OAuth access token for a user, as an interactive (user-to-machine) login would, so a
/// test can act as a non-admin user. Unlike a personal access token it needs no token permission.
async fn create_user_access_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&state, &caller)?;
    let access_token = state.write(|ws, ctx| {
        let user = id
            .parse::<u64>()
            .ok()
            .and_then(|numeric| ws.users.get(&numeric))
            .filter(|user| user.active)
            .ok_or_else(|| {
                ApiError::not_found(format!("Active user with id {id} does not exist."))
            })?;
        let owner = crate::model::PrincipalId::User(user.id);
        Ok(crate::oauth::issue_access_token(ws, owner, ctx.now_ms))
    })?;
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": crate::ACCESS_TOKEN_LIFETIME_SECONDS,
    });
    Ok(Json(body).into_response())
}
