//! The permissions API for `/authorization/tokens` and `/registered-models/root`.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::access::{CAN_MANAGE, CAN_USE};
use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::model::{ADMINS_GROUP, AclEntry, PrincipalId, Workspace};
use crate::server::{AppState, parse_body};

/// Registry permission levels from lowest to highest.
pub(crate) const REGISTRY_LEVELS: [&str; 5] = [
    "CAN_READ",
    "CAN_EDIT",
    "CAN_MANAGE_STAGING_VERSIONS",
    "CAN_MANAGE_PRODUCTION_VERSIONS",
    "CAN_MANAGE",
];

/// A permissions object that the emulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PermissionObject {
    Tokens,
    RegistryRoot,
}

impl PermissionObject {
    fn object_id(self) -> &'static str {
        match self {
            Self::Tokens => "/authorization/tokens",
            Self::RegistryRoot => "/registered-models/root",
        }
    }

    fn object_type(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::RegistryRoot => "registered-model",
        }
    }

    /// Levels from lowest to highest, with their descriptions.
    fn levels(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Tokens => &[
                (CAN_USE, "Can use tokens"),
                (CAN_MANAGE, "Can manage tokens"),
            ],
            Self::RegistryRoot => &[
                ("CAN_READ", "Can read registered models"),
                ("CAN_EDIT", "Can edit registered models"),
                (
                    "CAN_MANAGE_STAGING_VERSIONS",
                    "Can manage staging versions of registered models",
                ),
                (
                    "CAN_MANAGE_PRODUCTION_VERSIONS",
                    "Can manage production versions of registered models",
                ),
                ("CAN_MANAGE", "Can manage registered models"),
            ],
        }
    }

    /// Returns the rank of a level, or `None` when the object does not support it.
    fn level_rank(self, level: &str) -> Option<usize> {
        self.levels().iter().position(|(name, _)| *name == level)
    }

    fn acl(self, ws: &Workspace) -> Option<&Vec<AclEntry>> {
        match self {
            Self::Tokens => ws.token_permissions.as_ref(),
            Self::RegistryRoot => Some(&ws.registry_permissions),
        }
    }

    fn acl_mut(self, ws: &mut Workspace) -> Option<&mut Vec<AclEntry>> {
        match self {
            Self::Tokens => ws.token_permissions.as_mut(),
            Self::RegistryRoot => Some(&mut ws.registry_permissions),
        }
    }
}

/// Routes of the permissions endpoints.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/2.0/permissions/authorization/tokens",
            object_routes(PermissionObject::Tokens),
        )
        .route(
            "/api/2.0/permissions/authorization/tokens/permissionLevels",
            levels_route(PermissionObject::Tokens),
        )
        .route(
            "/api/2.0/permissions/registered-models/root",
            object_routes(PermissionObject::RegistryRoot),
        )
        .route(
            "/api/2.0/permissions/registered-models/root/permissionLevels",
            levels_route(PermissionObject::RegistryRoot),
        )
}

/// GET, PUT and PATCH of one object.
fn object_routes(object: PermissionObject) -> axum::routing::MethodRouter<AppState> {
    get(move |state: State<AppState>, caller: Caller| get_permissions(object, state, caller))
        .put(move |state: State<AppState>, caller: Caller, body: Bytes| {
            change_permissions(object, Change::Replace, state, caller, body)
        })
        .patch(move |state: State<AppState>, caller: Caller, body: Bytes| {
            change_permissions(object, Change::Update, state, caller, body)
        })
}

/// GET of the permission levels of one object.
fn levels_route(object: PermissionObject) -> axum::routing::MethodRouter<AppState> {
    get(move |state: State<AppState>, caller: Caller| get_levels(object, state, caller))
}

/// Fails unless the caller is an admin.
// NOTE: the message for a non-admin caller is unconfirmed.
fn require_admin(ws: &Workspace, caller: &Caller, object: PermissionObject) -> ApiResult<()> {
    caller.require_admin(
        ws,
        &format!(
            "Only workspace admins can manage permissions of {}.",
            object.object_id()
        ),
    )
}

/// Returns the 404 of the token permissions object before the first token of the workspace exists.
fn object_missing(object: PermissionObject) -> ApiError {
    ApiError::not_found(format!(
        "{} {} does not exist",
        object.object_type(),
        object.object_type()
    ))
}

/// Renders an object's ACL in the ObjectPermissions shape.
fn render(ws: &Workspace, object: PermissionObject, acl: &[AclEntry]) -> Value {
    let entries: Vec<Value> = acl
        .iter()
        .filter_map(|entry| render_entry(ws, entry))
        .collect();
    json!({
        "object_id": object.object_id(),
        "object_type": object.object_type(),
        "access_control_list": entries,
    })
}

/// Renders one ACL entry; users and service principals carry a `display_name`.
fn render_entry(ws: &Workspace, entry: &AclEntry) -> Option<Value> {
    let name = ws.principal_name(entry.principal)?;
    let mut body = Map::new();
    let key = match entry.principal {
        PrincipalId::User(_) => "user_name",
        PrincipalId::ServicePrincipal(_) => "service_principal_name",
        PrincipalId::Group(_) => "group_name",
    };
    body.insert(key.to_owned(), json!(name));
    if !matches!(entry.principal, PrincipalId::Group(_)) {
        body.insert(
            "display_name".to_owned(),
            json!(ws.principal_display_name(entry.principal)),
        );
    }
    body.insert(
        "all_permissions".to_owned(),
        json!([{ "permission_level": entry.level, "inherited": false }]),
    );
    Some(Value::Object(body))
}

async fn get_permissions(
    object: PermissionObject,
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    state.read(|ws, _| {
        require_admin(ws, &caller, object)?;
        let acl = object.acl(ws).ok_or_else(|| object_missing(object))?;
        Ok(Json(render(ws, object, acl)))
    })
}

async fn get_levels(
    object: PermissionObject,
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    state.read(|ws, _| {
        require_admin(ws, &caller, object)?;
        let levels: Vec<Value> = object
            .levels()
            .iter()
            .map(|(level, description)| json!({ "permission_level": level, "description": description }))
            .collect();
        Ok(Json(json!({ "permission_levels": levels })))
    })
}

/// PUT replaces the whole ACL; PATCH upserts per principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Replace,
    Update,
}

/// Body of PUT and PATCH.
#[derive(Deserialize)]
struct PermissionsRequest {
    #[serde(default)]
    access_control_list: Vec<AccessControlRequest>,
}

/// One requested entry; exactly one principal key must be set.
#[derive(Deserialize)]
struct AccessControlRequest {
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    group_name: Option<String>,
    #[serde(default)]
    service_principal_name: Option<String>,
    #[serde(default)]
    permission_level: Option<String>,
}

async fn change_permissions(
    object: PermissionObject,
    change: Change,
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: PermissionsRequest = parse_body(&body)?;
    state.write(|ws, _| {
        require_admin(ws, &caller, object)?;
        if object.acl(ws).is_none() {
            return Err(object_missing(object));
        }

        let requested = resolve_entries(ws, object, &request.access_control_list)?;
        let admins = PrincipalId::Group(ws.admins_group_id);
        if change == Change::Replace && !requested.iter().any(|entry| entry.principal == admins) {
            // NOTE: the status of this observed message is unconfirmed; 400 is the default.
            return Err(ApiError::invalid_parameter(format!(
                "Cannot change permissions for group '{ADMINS_GROUP}' to None."
            )));
        }

        let acl = object.acl_mut(ws).ok_or_else(|| object_missing(object))?;
        match change {
            Change::Replace => *acl = requested,
            Change::Update => upsert(acl, requested),
        }
        let acl = object.acl(ws).ok_or_else(|| object_missing(object))?;
        Ok(Json(render(ws, object, acl)))
    })
}

/// Replaces or appends the entry of each requested principal, keeping the order of the others.
fn upsert(acl: &mut Vec<AclEntry>, requested: Vec<AclEntry>) {
    for entry in requested {
        match acl
            .iter_mut()
            .find(|existing| existing.principal == entry.principal)
        {
            Some(existing) => existing.level = entry.level,
            None => acl.push(entry),
        }
    }
}

/// Validates the requested entries and resolves their principals. A principal named twice keeps
/// its highest level.
fn resolve_entries(
    ws: &Workspace,
    object: PermissionObject,
    requests: &[AccessControlRequest],
) -> ApiResult<Vec<AclEntry>> {
    let admins = PrincipalId::Group(ws.admins_group_id);
    let mut entries: Vec<AclEntry> = Vec::new();
    for request in requests {
        let principal = resolve_principal(ws, request)?;
        let level = request.permission_level.as_deref().unwrap_or_default();
        let rank = object
            .level_rank(level)
            .ok_or_else(|| invalid_level(object, level))?;

        if principal == admins && level != CAN_MANAGE {
            return Err(ApiError::invalid_parameter(format!(
                "Cannot change permissions for group '{ADMINS_GROUP}' to {level}."
            )));
        }
        if object == PermissionObject::Tokens && level == CAN_MANAGE && principal != admins {
            // NOTE: the real message is unconfirmed; the rule itself is documented.
            return Err(ApiError::invalid_parameter(format!(
                "Permission CAN_MANAGE on tokens can only be granted to group '{ADMINS_GROUP}'."
            )));
        }

        match entries
            .iter_mut()
            .find(|entry| entry.principal == principal)
        {
            Some(entry) if object.level_rank(&entry.level) < Some(rank) => {
                entry.level = level.to_owned()
            }
            Some(_) => {}
            None => entries.push(AclEntry {
                principal,
                level: level.to_owned(),
            }),
        }
    }
    Ok(entries)
}

/// Returns the 400 for a level that the object does not support.
// NOTE: the real message is unconfirmed.
fn invalid_level(object: PermissionObject, level: &str) -> ApiError {
    let valid: Vec<&str> = object.levels().iter().map(|(name, _)| *name).collect();
    ApiError::invalid_parameter(format!(
        "Permission level '{level}' is not supported for {}; supported levels: {}",
        object.object_type(),
        valid.join(", ")
    ))
}

/// Finds the principal of a requested entry by user name, group display name or service
/// principal application id.
fn resolve_principal(ws: &Workspace, request: &AccessControlRequest) -> ApiResult<PrincipalId> {
    let keys = [
        &request.user_name,
        &request.group_name,
        &request.service_principal_name,
    ];
    if keys.iter().filter(|key| key.is_some()).count() != 1 {
        return Err(ApiError::invalid_parameter(
            "Each access control entry needs exactly one of user_name, group_name or service_principal_name.",
        ));
    }

    // NOTE: the status of "Principal: ... does not exist" is unconfirmed; 400 is the default.
    if let Some(name) = &request.user_name {
        let user = ws.users.values().find(|user| &user.user_name == name);
        return user.map(|user| PrincipalId::User(user.id)).ok_or_else(|| {
            ApiError::invalid_parameter(format!("Principal: UserName({name}) does not exist"))
        });
    }
    if let Some(name) = &request.group_name {
        let group = ws.groups.values().find(|group| &group.display_name == name);
        return group
            .map(|group| PrincipalId::Group(group.id))
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!("Principal: GroupName({name}) does not exist"))
            });
    }
    let name = request
        .service_principal_name
        .as_deref()
        .unwrap_or_default();
    let sp = ws
        .service_principals
        .values()
        .find(|sp| sp.application_id == name);
    sp.map(|sp| PrincipalId::ServicePrincipal(sp.id))
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "Principal: ServicePrincipalName({name}) does not exist"
            ))
        })
}
