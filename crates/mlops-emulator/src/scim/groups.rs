//! SCIM Groups.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::patch::{self, PatchRequest};
use super::{
    GROUP_SCHEMA, ListQuery, ValueItem, forget_principal, insert_list, item_values, list_response,
    parent_groups, parse_id, parse_scim_body, principal_ref, require_admin, resolve_member,
    resolve_parent_groups, select_attributes, set_parent_groups, users_members_fixed,
    validate_entitlements, value_list,
};
use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::model::{ADMINS_GROUP, Group, PrincipalId, USERS_GROUP, Workspace};
use crate::server::{AppState, Params};

/// Attributes that list filters may use.
const FILTER_ATTRIBUTES: &[&str] = &["id", "displayName", "externalId"];

/// Attributes that PATCH may change.
const PATCH_ATTRIBUTES: &[&str] = &[
    "displayName",
    "members",
    "entitlements",
    "roles",
    "externalId",
];

/// Attributes that are returned to a non-admin caller.
const PUBLIC_ATTRIBUTES: [&str; 2] = ["id", "displayName"];

/// Returns the SCIM 404 for a missing group, in the real server's wording.
fn group_missing(id: &str) -> ApiError {
    ApiError::scim(
        StatusCode::NOT_FOUND,
        format!("Group with id {id} is not found"),
    )
}

/// Renders a group. The members of `users` are every user and service principal.
fn render(ws: &Workspace, group: &Group) -> Value {
    let members: Vec<Value> = if group.id == ws.users_group_id {
        let users = ws.users.keys().map(|id| PrincipalId::User(*id));
        let service_principals = ws
            .service_principals
            .keys()
            .map(|id| PrincipalId::ServicePrincipal(*id));
        users
            .chain(service_principals)
            .map(|member| principal_ref(ws, member))
            .collect()
    } else {
        group
            .members
            .iter()
            .map(|member| principal_ref(ws, *member))
            .collect()
    };

    let mut body = Map::new();
    body.insert("schemas".to_owned(), json!([GROUP_SCHEMA]));
    body.insert("id".to_owned(), json!(group.id.to_string()));
    body.insert("displayName".to_owned(), json!(group.display_name));
    if let Some(external_id) = &group.external_id {
        body.insert("externalId".to_owned(), json!(external_id));
    }
    insert_list(&mut body, "members", members);
    insert_list(
        &mut body,
        "groups",
        parent_groups(ws, PrincipalId::Group(group.id)),
    );
    insert_list(&mut body, "entitlements", value_list(&group.entitlements));
    insert_list(&mut body, "roles", value_list(&group.roles));
    body.insert(
        "meta".to_owned(),
        json!({ "resourceType": "WorkspaceGroup" }),
    );
    Value::Object(body)
}

/// Renders a group for the caller: non-admins see only ids and display names.
fn render_for(ws: &Workspace, caller: &Caller, group: &Group) -> Value {
    let rendered = render(ws, group);
    if caller.is_admin(ws) {
        return rendered;
    }
    let public: Vec<String> = PUBLIC_ATTRIBUTES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    select_attributes(rendered, Some(&public), &[])
}

/// Lists groups; any caller may list them.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let query = ListQuery::parse(&params, FILTER_ATTRIBUTES)?;
    state.read(|ws, _| {
        let groups = ws
            .groups
            .values()
            .map(|group| render_for(ws, &caller, group))
            .collect();
        Ok(Json(list_response(groups, &query)))
    })
}

pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.read(|ws, _| {
        let group = parse_id(&id)
            .and_then(|numeric| ws.groups.get(&numeric))
            .ok_or_else(|| group_missing(&id))?;
        Ok(Json(render_for(ws, &caller, group)))
    })
}

/// Body of create and PUT.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupBody {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    members: Vec<ValueItem>,
    #[serde(default)]
    groups: Vec<ValueItem>,
    #[serde(default)]
    entitlements: Vec<ValueItem>,
    #[serde(default)]
    roles: Vec<ValueItem>,
}

/// A group built from a body, with the groups it should belong to.
struct GroupDraft {
    group: Group,
    parents: Vec<u64>,
}

/// Builds a group with id `id` from a create or PUT body.
fn draft_from_body(ws: &Workspace, id: u64, body: GroupBody) -> ApiResult<GroupDraft> {
    let display_name = body
        .display_name
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| patch::invalid_value("displayName is required."))?;
    let members = item_values(&body.members)?
        .iter()
        .map(|member| resolve_member(ws, member))
        .collect::<ApiResult<Vec<_>>>()?;
    let parents = resolve_parent_groups(ws, &item_values(&body.groups)?)?;

    let group = Group {
        id,
        display_name,
        members,
        entitlements: item_values(&body.entitlements)?,
        roles: item_values(&body.roles)?,
        external_id: body.external_id,
    };
    Ok(GroupDraft { group, parents })
}

/// Checks a new or changed group against the workspace before it is stored.
fn validate(ws: &Workspace, group: &Group) -> ApiResult<()> {
    let duplicate = ws
        .groups
        .values()
        .any(|other| other.id != group.id && other.display_name == group.display_name);
    if duplicate {
        // NOTE: the real status is unconfirmed; SCIM 409 is the default, and the detail is the
        // exact text that clients compare against.
        return Err(ApiError::scim(
            StatusCode::CONFLICT,
            format!("Group with name {} already exists.", group.display_name),
        ));
    }
    if let Some(existing) = ws.groups.get(&group.id)
        && is_builtin(ws, group.id)
        && existing.display_name != group.display_name
    {
        return Err(patch::invalid_value(format!(
            "The built-in group {} cannot be renamed.",
            existing.display_name
        )));
    }
    validate_entitlements(&group.entitlements)?;
    validate_members(ws, group)
}

/// Checks the members of a group: `users` has none stored, no cycles, and `admins` keeps a user.
fn validate_members(ws: &Workspace, group: &Group) -> ApiResult<()> {
    if group.id == ws.users_group_id && !group.members.is_empty() {
        return Err(users_members_fixed());
    }

    let containing = ws.group_ids_of(PrincipalId::Group(group.id));
    for member in &group.members {
        if let PrincipalId::Group(member_id) = member
            && (*member_id == group.id || containing.contains(member_id))
        {
            return Err(patch::invalid_value(format!(
                "Adding group {member_id} to group {} would create a cycle.",
                group.id
            )));
        }
    }

    // The workspace must keep an admin user, because otherwise no user could administer it.
    let keeps_admin_user = group
        .members
        .iter()
        .any(|member| matches!(member, PrincipalId::User(_)));
    if group.id == ws.admins_group_id && !keeps_admin_user {
        return Err(patch::invalid_value(format!(
            "The group {ADMINS_GROUP} must keep at least one user."
        )));
    }
    Ok(())
}

/// Returns whether the group is `admins` or `users`.
fn is_builtin(ws: &Workspace, id: u64) -> bool {
    id == ws.admins_group_id || id == ws.users_group_id
}

/// Creates a group and responds 201 with it.
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let body: GroupBody = parse_scim_body(&body)?;
    state.write(|ws, ctx| {
        require_admin(ws, &caller)?;
        let id = ctx.ids.allocate();
        let draft = draft_from_body(ws, id, body)?;
        validate(ws, &draft.group)?;

        ws.groups.insert(id, draft.group);
        set_parent_groups(ws, PrincipalId::Group(id), &draft.parents);
        tracing::info!(workspace = %ws.name, group_id = id, "group created");
        Ok((StatusCode::CREATED, Json(render(ws, &ws.groups[&id]))).into_response())
    })
}

/// Replaces a group with the PUT body; omitted members, parents and entitlements are removed.
pub(super) async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: GroupBody = parse_scim_body(&body)?;
    state.write(|ws, _| {
        require_admin(ws, &caller)?;
        let numeric = parse_id(&id)
            .filter(|numeric| ws.groups.contains_key(numeric))
            .ok_or_else(|| group_missing(&id))?;
        let draft = draft_from_body(ws, numeric, body)?;
        validate(ws, &draft.group)?;

        ws.groups.insert(numeric, draft.group);
        set_parent_groups(ws, PrincipalId::Group(numeric), &draft.parents);
        tracing::info!(workspace = %ws.name, group_id = numeric, "group replaced");
        Ok(Json(render(ws, &ws.groups[&numeric])))
    })
}

/// Applies PATCH operations to a copy of the group, validates it, then stores it and responds 204.
pub(super) async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let request: PatchRequest = parse_scim_body(&body)?;
    let operations = patch::parse_operations(request, PATCH_ATTRIBUTES)?;
    state.write(|ws, _| {
        require_admin(ws, &caller)?;
        let mut group = parse_id(&id)
            .and_then(|numeric| ws.groups.get(&numeric))
            .cloned()
            .ok_or_else(|| group_missing(&id))?;
        for operation in &operations {
            apply(ws, &mut group, operation)?;
        }
        validate(ws, &group)?;

        tracing::info!(workspace = %ws.name, group_id = group.id, "group patched");
        ws.groups.insert(group.id, group);
        Ok(StatusCode::NO_CONTENT)
    })
}

/// Applies one PATCH operation to a group.
fn apply(ws: &Workspace, group: &mut Group, operation: &patch::Operation) -> ApiResult<()> {
    match operation.attribute.as_str() {
        "displayName" => {
            group.display_name = patch::string_value(operation)?
                .ok_or_else(|| patch::invalid_value("displayName cannot be removed."))?;
        }
        "externalId" => group.external_id = patch::string_value(operation)?,
        "entitlements" => patch::apply_to_list(&mut group.entitlements, operation)?,
        "roles" => patch::apply_to_list(&mut group.roles, operation)?,
        "members" => {
            if group.id == ws.users_group_id {
                return Err(users_members_fixed());
            }
            let mut ids: Vec<String> = group
                .members
                .iter()
                .map(|member| member.id().to_string())
                .collect();
            patch::apply_to_list(&mut ids, operation)?;
            group.members = ids
                .iter()
                .map(|member| resolve_member(ws, member))
                .collect::<ApiResult<_>>()?;
        }
        other => return Err(patch::no_such_attribute(other)),
    }
    Ok(())
}

/// Deletes a group and removes it from other groups and ACLs; built-in groups cannot be deleted.
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.write(|ws, _| {
        require_admin(ws, &caller)?;
        let numeric = parse_id(&id)
            .filter(|numeric| ws.groups.contains_key(numeric))
            .ok_or_else(|| group_missing(&id))?;
        if is_builtin(ws, numeric) {
            let name = if numeric == ws.admins_group_id {
                ADMINS_GROUP
            } else {
                USERS_GROUP
            };
            // NOTE: the real status and detail are unconfirmed; SCIM 400 is the default.
            return Err(patch::invalid_value(format!(
                "The built-in group {name} cannot be deleted."
            )));
        }

        ws.groups.remove(&numeric);
        forget_principal(ws, PrincipalId::Group(numeric));
        tracing::info!(workspace = %ws.name, group_id = numeric, "group deleted");
        Ok(StatusCode::NO_CONTENT)
    })
}
