//! SCIM Users: create, get, list and delete workspace users.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::me::USER_SCHEMAS;
use super::{
    ListQuery, ValueItem, forget_principal, insert_list, item_values, list_response, parent_groups,
    parse_id, parse_scim_body, patch, require_admin, resolve_parent_groups, set_parent_groups,
    validate_entitlements, value_list,
};
use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::model::{PrincipalId, User, Workspace};
use crate::server::{AppState, Params};

/// Attributes that list filters may use.
const FILTER_ATTRIBUTES: &[&str] = &["id", "userName", "displayName", "active"];

/// Returns the SCIM 404 for a missing user.
// NOTE: the detail follows the observed group wording; the user wording is unconfirmed.
fn user_missing(id: &str) -> ApiError {
    ApiError::scim(
        StatusCode::NOT_FOUND,
        format!("User with id {id} is not found"),
    )
}

/// Renders a user; its one email is its userName.
pub(super) fn render(ws: &Workspace, user: &User) -> Value {
    let mut body = Map::new();
    body.insert("schemas".to_owned(), json!(USER_SCHEMAS));
    body.insert("id".to_owned(), json!(user.id.to_string()));
    body.insert("userName".to_owned(), json!(user.user_name));
    body.insert("displayName".to_owned(), json!(user.display_name));
    body.insert("active".to_owned(), json!(user.active));
    body.insert(
        "emails".to_owned(),
        json!([{ "value": user.user_name, "type": "work", "primary": true }]),
    );
    insert_list(
        &mut body,
        "groups",
        parent_groups(ws, PrincipalId::User(user.id)),
    );
    insert_list(&mut body, "entitlements", value_list(&user.entitlements));
    Value::Object(body)
}

/// Finds a user by its SCIM id.
fn find<'a>(ws: &'a Workspace, id: &str) -> ApiResult<&'a User> {
    parse_id(id)
        .and_then(|numeric| ws.users.get(&numeric))
        .ok_or_else(|| user_missing(id))
}

/// Lists users; admins only.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let query = ListQuery::parse(&params, FILTER_ATTRIBUTES)?;
    state.read(|ws, _| {
        require_admin(ws, &caller)?;
        let resources = ws.users.values().map(|user| render(ws, user)).collect();
        Ok(Json(list_response(resources, &query)))
    })
}

/// Returns a user to an admin, or a user to itself.
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.read(|ws, _| {
        let user = find(ws, &id)?;
        if caller.principal != PrincipalId::User(user.id) {
            require_admin(ws, &caller)?;
        }
        Ok(Json(render(ws, user)))
    })
}

/// Body of create.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserBody {
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    active: Option<Value>,
    #[serde(default)]
    groups: Vec<ValueItem>,
    #[serde(default)]
    entitlements: Vec<ValueItem>,
}

/// Creates a user and responds 201 with it. The userName is unique without regard to case,
/// and the displayName defaults to it.
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let body: UserBody = parse_scim_body(&body)?;
    state.write(|ws, ctx| {
        require_admin(ws, &caller)?;
        let user_name = body
            .user_name
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| patch::invalid_value("userName is required."))?;
        // NOTE: the real wording and status of a duplicate userName are unconfirmed.
        if ws
            .users
            .values()
            .any(|user| user.user_name.eq_ignore_ascii_case(&user_name))
        {
            return Err(ApiError::scim(
                StatusCode::CONFLICT,
                format!("User with username {user_name} already exists."),
            ));
        }
        let active = body
            .active
            .as_ref()
            .map(patch::parse_active)
            .transpose()?
            .unwrap_or(true);
        let entitlements = item_values(&body.entitlements)?;
        validate_entitlements(&entitlements)?;
        let parents = resolve_parent_groups(ws, &item_values(&body.groups)?)?;

        let id = ctx.ids.allocate();
        let user = User {
            id,
            display_name: body
                .display_name
                .filter(|name| !name.trim().is_empty())
                .unwrap_or_else(|| user_name.clone()),
            user_name,
            active,
            entitlements,
        };
        ws.users.insert(id, user);
        set_parent_groups(ws, PrincipalId::User(id), &parents);
        tracing::info!(workspace = %ws.name, user_id = id, "user created");
        Ok((StatusCode::CREATED, Json(render(ws, &ws.users[&id]))).into_response())
    })
}

/// Deletes a user, its group memberships and ACL entries; its tokens are revoked. The seeded
/// workspace admin stays, because the emulator's own admin credentials belong to it.
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.write(|ws, _| {
        require_admin(ws, &caller)?;
        let numeric = find(ws, &id)?.id;
        if numeric == ws.admin_user_id {
            return Err(patch::invalid_value(
                "The seeded workspace admin cannot be deleted in the emulator.",
            ));
        }
        ws.users.remove(&numeric);
        forget_principal(ws, PrincipalId::User(numeric));
        tracing::info!(workspace = %ws.name, user_id = numeric, "user deleted");
        Ok(StatusCode::NO_CONTENT)
    })
}
