//! Secret scopes, secrets and scope ACLs. Every write is a POST with a JSON body.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::model::{
    ScopePermission, SecretAcl, SecretBytes, SecretScope, StoredSecret, USERS_GROUP, Workspace,
};
use crate::server::{AppState, Params, parse_body};

/// Maximum size of a secret value: 128 KiB.
const MAX_VALUE_BYTES: usize = 128 * 1024;

/// Maximum number of secrets in one scope.
const MAX_SECRETS_PER_SCOPE: usize = 1000;

/// Maximum number of scopes in one workspace.
const MAX_SCOPES: usize = 1000;

/// Maximum length of a scope name or secret key.
const MAX_NAME_LENGTH: usize = 128;

/// Routes of the secrets endpoints.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/2.0/secrets/scopes/create", post(create_scope))
        .route("/api/2.0/secrets/scopes/list", get(list_scopes))
        .route("/api/2.0/secrets/scopes/delete", post(delete_scope))
        .route("/api/2.0/secrets/put", post(put_secret))
        .route("/api/2.0/secrets/list", get(list_secrets))
        .route("/api/2.0/secrets/get", get(get_secret))
        .route("/api/2.0/secrets/delete", post(delete_secret))
        .route("/api/2.0/secrets/acls/put", post(put_acl))
        .route("/api/2.0/secrets/acls/get", get(get_acl))
        .route("/api/2.0/secrets/acls/list", get(list_acls))
        .route("/api/2.0/secrets/acls/delete", post(delete_acl))
}

/// Request body fields shared by the secrets endpoints.
#[derive(Deserialize)]
struct SecretsRequest {
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    initial_manage_principal: Option<String>,
    #[serde(default)]
    scope_backend_type: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    string_value: Option<String>,
    #[serde(default)]
    bytes_value: Option<String>,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    permission: Option<String>,
}

/// Returns a required request field, or 400 naming it.
fn required<'a>(value: Option<&'a str>, name: &str) -> ApiResult<&'a str> {
    value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| ApiError::invalid_parameter(format!("Missing required field: {name}")))
}

/// Returns whether `name` has 1 to 128 characters from `[A-Za-z0-9_.-]`, plus `@` when `allow_at`.
fn valid_name(name: &str, allow_at: bool) -> bool {
    let allowed = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') || (allow_at && c == '@')
    };
    !name.is_empty() && name.len() <= MAX_NAME_LENGTH && name.chars().all(allowed)
}

/// Returns the 404 for a scope that does not exist, in the real server's wording.
fn scope_missing(scope: &str) -> ApiError {
    ApiError::not_found(format!("Scope {scope} does not exist!"))
}

/// Finds a scope by name, ignoring case.
fn find_scope<'a>(ws: &'a Workspace, scope: &str) -> ApiResult<&'a SecretScope> {
    ws.scopes
        .get(&scope.to_lowercase())
        .ok_or_else(|| scope_missing(scope))
}

/// Finds a scope by name for writing, ignoring case.
fn find_scope_mut<'a>(ws: &'a mut Workspace, scope: &str) -> ApiResult<&'a mut SecretScope> {
    ws.scopes
        .get_mut(&scope.to_lowercase())
        .ok_or_else(|| scope_missing(scope))
}

/// Returns the caller's permission on a scope: MANAGE for admins, otherwise the highest ACL
/// granted to the caller's name or to any of its groups (`users` included).
fn permission_of(ws: &Workspace, caller: &Caller, scope: &SecretScope) -> Option<ScopePermission> {
    if caller.is_admin(ws) {
        return Some(ScopePermission::Manage);
    }
    let group_names: Vec<&str> = ws
        .group_ids_of(caller.principal)
        .iter()
        .filter_map(|id| ws.groups.get(id).map(|group| group.display_name.as_str()))
        .collect();
    scope
        .acls
        .iter()
        .filter(|acl| {
            acl.principal == caller.user_name || group_names.contains(&acl.principal.as_str())
        })
        .map(|acl| acl.permission)
        .max()
}

/// Fails with 403 unless the caller has at least `needed` on the scope.
fn require_permission(
    ws: &Workspace,
    caller: &Caller,
    scope: &SecretScope,
    needed: ScopePermission,
) -> ApiResult<()> {
    if permission_of(ws, caller, scope).is_some_and(|held| held >= needed) {
        return Ok(());
    }
    // NOTE: the real message is unconfirmed; PERMISSION_DENIED with 403 is documented.
    Err(ApiError::permission_denied(format!(
        "User {} does not have {} permission on scope {}",
        caller.user_name,
        needed.as_str(),
        scope.name
    )))
}

/// Returns whether an ACL principal names a user, a service principal or a group of the workspace.
fn principal_exists(ws: &Workspace, principal: &str) -> bool {
    ws.users.values().any(|user| user.user_name == principal)
        || ws
            .service_principals
            .values()
            .any(|sp| sp.application_id == principal)
        || ws
            .groups
            .values()
            .any(|group| group.display_name == principal)
}

async fn create_scope(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: SecretsRequest = parse_body(&body)?;
    let scope = required(request.scope.as_deref(), "scope")?.to_owned();
    validate_new_scope(&request, &scope)?;

    state.write(|ws, _| {
        if ws.scopes.contains_key(&scope.to_lowercase()) {
            // NOTE: the real status is unconfirmed (400 or 409); 400 is the choice here, and
            // clients should rely on the error_code.
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "RESOURCE_ALREADY_EXISTS",
                format!("Scope {scope} already exists!"),
            ));
        }
        if ws.scopes.len() >= MAX_SCOPES {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "RESOURCE_LIMIT_EXCEEDED",
                format!("Cannot create more than {MAX_SCOPES} scopes in a workspace."),
            ));
        }

        // The creator gets MANAGE, unless `initial_manage_principal` hands it to `users`.
        let manager = match request.initial_manage_principal.as_deref() {
            Some(USERS_GROUP) => USERS_GROUP.to_owned(),
            _ => caller.user_name.clone(),
        };
        let acl = SecretAcl {
            principal: manager,
            permission: ScopePermission::Manage,
        };
        let new_scope = SecretScope {
            name: scope.clone(),
            secrets: Default::default(),
            acls: vec![acl],
        };
        ws.scopes.insert(scope.to_lowercase(), new_scope);
        tracing::info!(workspace = %ws.name, scope = %scope, "secret scope created");
        Ok(Json(json!({})))
    })
}

/// Checks the name, backend and initial manager of a scope to create.
fn validate_new_scope(request: &SecretsRequest, scope: &str) -> ApiResult<()> {
    if !valid_name(scope, true) {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid scope name {scope}: use 1 to 128 letters, digits, dashes, underscores, periods or at signs."
        )));
    }
    match request.scope_backend_type.as_deref() {
        None | Some("DATABRICKS") => {}
        Some("AZURE_KEYVAULT") => {
            return Err(ApiError::invalid_parameter(
                "Scope with Azure KeyVault must have userAADToken defined!",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid scope_backend_type {other}."
            )));
        }
    }
    match request.initial_manage_principal.as_deref() {
        None | Some(USERS_GROUP) => Ok(()),
        Some(other) => Err(ApiError::invalid_parameter(format!(
            "Invalid initial_manage_principal {other}: the only supported value is users."
        ))),
    }
}

/// Lists every scope; scope names are not secret, so any caller may list them.
async fn list_scopes(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Value>> {
    state.read(|ws, _| {
        let scopes: Vec<Value> = ws
            .scopes
            .values()
            .map(|scope| json!({ "name": scope.name, "backend_type": "DATABRICKS" }))
            .collect();
        Ok(Json(optional_list("scopes", scopes)))
    })
}

/// Builds `{"<key>": [...]}`, leaving an empty list out, as several real endpoints do.
fn optional_list(key: &str, items: Vec<Value>) -> Value {
    let mut body = Map::new();
    if !items.is_empty() {
        body.insert(key.to_owned(), Value::Array(items));
    }
    Value::Object(body)
}

async fn delete_scope(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: SecretsRequest = parse_body(&body)?;
    let scope = required(request.scope.as_deref(), "scope")?.to_owned();
    state.write(|ws, _| {
        require_permission(
            ws,
            &caller,
            find_scope(ws, &scope)?,
            ScopePermission::Manage,
        )?;
        ws.scopes.remove(&scope.to_lowercase());
        tracing::info!(workspace = %ws.name, scope = %scope, "secret scope deleted");
        Ok(Json(json!({})))
    })
}

async fn put_secret(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: SecretsRequest = parse_body(&body)?;
    let scope = required(request.scope.as_deref(), "scope")?.to_owned();
    let key = required(request.key.as_deref(), "key")?.to_owned();
    if !valid_name(&key, false) {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid secret key {key}: use 1 to 128 letters, digits, dashes, underscores or periods."
        )));
    }
    let value = secret_value(&request)?;

    state.write(|ws, ctx| {
        require_permission(ws, &caller, find_scope(ws, &scope)?, ScopePermission::Write)?;
        let target = find_scope_mut(ws, &scope)?;
        if !target.secrets.contains_key(&key) && target.secrets.len() >= MAX_SECRETS_PER_SCOPE {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "RESOURCE_LIMIT_EXCEEDED",
                format!("Cannot store more than {MAX_SECRETS_PER_SCOPE} secrets in scope {scope}."),
            ));
        }
        let stored = StoredSecret {
            value: SecretBytes(value),
            last_updated_timestamp: ctx.now_ms,
        };
        target.secrets.insert(key.clone(), stored);
        tracing::info!(workspace = %ws.name, scope = %scope, key = %key, "secret written");
        Ok(Json(json!({})))
    })
}

/// Returns the bytes of exactly one of `string_value` (UTF-8) or `bytes_value` (base64).
fn secret_value(request: &SecretsRequest) -> ApiResult<Vec<u8>> {
    let value = match (&request.string_value, &request.bytes_value) {
        (Some(text), None) => text.as_bytes().to_vec(),
        (None, Some(encoded)) => BASE64
            .decode(encoded.as_bytes())
            .map_err(|_| ApiError::invalid_parameter("Invalid bytes_value: expected base64."))?,
        _ => {
            return Err(ApiError::invalid_parameter(
                "Exactly one of string_value or bytes_value must be specified.",
            ));
        }
    };
    if value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::invalid_parameter(format!(
            "Secret value is {} bytes, over the limit of {MAX_VALUE_BYTES} bytes.",
            value.len()
        )));
    }
    Ok(value)
}

async fn list_secrets(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let scope = params.require("scope")?.to_owned();
    state.read(|ws, _| {
        let target = find_scope(ws, &scope)?;
        require_permission(ws, &caller, target, ScopePermission::Read)?;
        let secrets: Vec<Value> = target
            .secrets
            .iter()
            .map(|(key, secret)| json!({ "key": key, "last_updated_timestamp": secret.last_updated_timestamp }))
            .collect();
        Ok(Json(optional_list("secrets", secrets)))
    })
}

/// Returns the 404 for a missing secret.
// NOTE: the real message is unconfirmed.
fn secret_missing(scope: &str, key: &str) -> ApiError {
    ApiError::not_found(format!(
        "Secret does not exist with scope: {scope} and key: {key}"
    ))
}

/// Returns a secret value as base64 of the stored bytes to a caller with READ.
async fn get_secret(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let scope = params.require("scope")?.to_owned();
    let key = params.require("key")?.to_owned();
    state.read(|ws, _| {
        let target = find_scope(ws, &scope)?;
        require_permission(ws, &caller, target, ScopePermission::Read)?;
        let secret = target
            .secrets
            .get(&key)
            .ok_or_else(|| secret_missing(&scope, &key))?;
        Ok(Json(
            json!({ "key": key, "value": BASE64.encode(&secret.value.0) }),
        ))
    })
}

async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: SecretsRequest = parse_body(&body)?;
    let scope = required(request.scope.as_deref(), "scope")?.to_owned();
    let key = required(request.key.as_deref(), "key")?.to_owned();
    state.write(|ws, _| {
        require_permission(ws, &caller, find_scope(ws, &scope)?, ScopePermission::Write)?;
        let target = find_scope_mut(ws, &scope)?;
        target
            .secrets
            .remove(&key)
            .ok_or_else(|| secret_missing(&scope, &key))?;
        tracing::info!(workspace = %ws.name, scope = %scope, key = %key, "secret deleted");
        Ok(Json(json!({})))
    })
}

/// Returns the 404 for a missing ACL.
// NOTE: the real message is unconfirmed.
fn acl_missing(scope: &str, principal: &str) -> ApiError {
    ApiError::not_found(format!(
        "No ACL for principal {principal} in scope {scope}."
    ))
}

/// Grants a permission on a scope, overwriting the principal's previous ACL.
async fn put_acl(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: SecretsRequest = parse_body(&body)?;
    let scope = required(request.scope.as_deref(), "scope")?.to_owned();
    let principal = required(request.principal.as_deref(), "principal")?.to_owned();
    let permission_name = required(request.permission.as_deref(), "permission")?;
    let permission = ScopePermission::parse(permission_name).ok_or_else(|| {
        ApiError::invalid_parameter(format!(
            "Invalid permission {permission_name}: expected READ, WRITE or MANAGE."
        ))
    })?;

    state.write(|ws, _| {
        require_permission(ws, &caller, find_scope(ws, &scope)?, ScopePermission::Manage)?;
        if !principal_exists(ws, &principal) {
            // NOTE: the real response to an unknown principal is unconfirmed; 400 is the default.
            return Err(ApiError::invalid_parameter(format!("Principal {principal} does not exist")));
        }
        let target = find_scope_mut(ws, &scope)?;
        match target.acls.iter_mut().find(|acl| acl.principal == principal) {
            Some(acl) => acl.permission = permission,
            None => target.acls.push(SecretAcl { principal: principal.clone(), permission }),
        }
        tracing::info!(workspace = %ws.name, scope = %scope, principal = %principal, permission = permission.as_str(), "secret ACL written");
        Ok(Json(json!({})))
    })
}

async fn get_acl(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let scope = params.require("scope")?.to_owned();
    let principal = params.require("principal")?.to_owned();
    state.read(|ws, _| {
        let target = find_scope(ws, &scope)?;
        require_permission(ws, &caller, target, ScopePermission::Manage)?;
        let acl = target
            .acls
            .iter()
            .find(|acl| acl.principal == principal)
            .ok_or_else(|| acl_missing(&scope, &principal))?;
        Ok(Json(
            json!({ "principal": acl.principal, "permission": acl.permission.as_str() }),
        ))
    })
}

/// Lists the ACLs of a scope under the key `items`.
async fn list_acls(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let scope = params.require("scope")?.to_owned();
    state.read(|ws, _| {
        let target = find_scope(ws, &scope)?;
        require_permission(ws, &caller, target, ScopePermission::Manage)?;
        let items: Vec<Value> = target
            .acls
            .iter()
            .map(|acl| json!({ "principal": acl.principal, "permission": acl.permission.as_str() }))
            .collect();
        Ok(Json(optional_list("items", items)))
    })
}

async fn delete_acl(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: SecretsRequest = parse_body(&body)?;
    let scope = required(request.scope.as_deref(), "scope")?.to_owned();
    let principal = required(request.principal.as_deref(), "principal")?.to_owned();
    state.write(|ws, _| {
        require_permission(ws, &caller, find_scope(ws, &scope)?, ScopePermission::Manage)?;
        let target = find_scope_mut(ws, &scope)?;
        let index = target
            .acls
            .iter()
            .position(|acl| acl.principal == principal)
            .ok_or_else(|| acl_missing(&scope, &principal))?;
        target.acls.remove(index);
        tracing::info!(workspace = %ws.name, scope = %scope, principal = %principal, "secret ACL deleted");
        Ok(Json(json!({})))
    })
}
