//! SCIM `Me`: the caller as a User resource.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::{insert_list, parent_groups, value_list};
use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::model::{PrincipalId, Workspace};
use crate::server::{AppState, Params};

/// Schema URNs of a workspace user.
pub(super) const USER_SCHEMAS: [&str; 2] = [
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:extension:workspace:2.0:User",
];

/// Returns the caller. A service principal appears as a user whose userName is its applicationId.
pub(super) async fn me(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let excluded = params
        .get("excludedAttributes")
        .unwrap_or_default()
        .to_owned();
    state.read(|ws, _| {
        let mut body = render_caller(ws, &caller).ok_or_else(ApiError::invalid_token)?;
        for name in excluded
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty() && *name != "id")
        {
            body.retain(|key, _| !key.eq_ignore_ascii_case(name));
        }
        Ok(Json(Value::Object(body)))
    })
}

/// Renders the caller's User resource, or `None` when the caller no longer exists.
fn render_caller(ws: &Workspace, caller: &Caller) -> Option<Map<String, Value>> {
    let (display_name, active, entitlements) = match caller.principal {
        PrincipalId::User(id) => {
            let user = ws.users.get(&id)?;
            (
                user.display_name.clone(),
                user.active,
                user.entitlements.clone(),
            )
        }
        PrincipalId::ServicePrincipal(id) => {
            let sp = ws.service_principals.get(&id)?;
            (sp.display_name.clone(), sp.active, sp.entitlements.clone())
        }
        PrincipalId::Group(_) => return None,
    };

    let mut body = Map::new();
    body.insert("schemas".to_owned(), json!(USER_SCHEMAS));
    body.insert("id".to_owned(), json!(caller.principal.id().to_string()));
    body.insert("userName".to_owned(), json!(caller.user_name));
    body.insert("displayName".to_owned(), json!(display_name));
    body.insert("active".to_owned(), json!(active));
    if let PrincipalId::User(_) = caller.principal {
        body.insert(
            "emails".to_owned(),
            json!([{ "value": caller.user_name, "type": "work", "primary": true }]),
        );
    }
    insert_list(&mut body, "groups", parent_groups(ws, caller.principal));
    insert_list(&mut body, "entitlements", value_list(&entitlements));
    Some(body)
}
