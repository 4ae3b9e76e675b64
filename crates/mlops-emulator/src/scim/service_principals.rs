//! SCIM ServicePrincipals.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::patch::{self, PatchRequest};
use super::{
    ListQuery, SERVICE_PRINCIPAL_SCHEMA, ValueItem, forget_principal, insert_list, item_values,
    list_response, parent_groups, parse_id, parse_scim_body, require_admin, resolve_parent_groups,
    set_parent_groups, validate_entitlements, value_list,
};
use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::model::{PrincipalId, ServicePrincipal, Workspace};
use crate::server::{AppState, Params};

/// Attributes that list filters may use.
const FILTER_ATTRIBUTES: &[&str] = &["id", "displayName", "applicationId", "externalId", "active"];

/// Attributes that PATCH may change.
const PATCH_ATTRIBUTES: &[&str] = &[
    "displayName",
    "active",
    "entitlements",
    "roles",
    "externalId",
];

/// Returns the SCIM 404 for a missing service principal.
// NOTE: the detail follows the observed group wording; the service principal wording is unconfirmed.
fn service_principal_missing(id: &str) -> ApiError {
    ApiError::scim(
        StatusCode::NOT_FOUND,
        format!("Service principal with id {id} is not found"),
    )
}

/// Renders a service principal.
pub(super) fn render(ws: &Workspace, sp: &ServicePrincipal) -> Value {
    let mut body = Map::new();
    body.insert("schemas".to_owned(), json!([SERVICE_PRINCIPAL_SCHEMA]));
    body.insert("id".to_owned(), json!(sp.id.to_string()));
    body.insert("applicationId".to_owned(), json!(sp.application_id));
    body.insert("displayName".to_owned(), json!(sp.display_name));
    body.insert("active".to_owned(), json!(sp.active));
    if let Some(external_id) = &sp.external_id {
        body.insert("externalId".to_owned(), json!(external_id));
    }
    insert_list(
        &mut body,
        "groups",
        parent_groups(ws, PrincipalId::ServicePrincipal(sp.id)),
    );
    insert_list(&mut body, "entitlements", value_list(&sp.entitlements));
    insert_list(&mut body, "roles", value_list(&sp.roles));
    Value::Object(body)
}

/// Finds a service principal by its SCIM id.
fn find<'a>(ws: &'a Workspace, id: &str) -> ApiResult<&'a ServicePrincipal> {
    parse_id(id)
        .and_then(|numeric| ws.service_principals.get(&numeric))
        .ok_or_else(|| service_principal_missing(id))
}

/// Lists service principals; admins only.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let query = ListQuery::parse(&params, FILTER_ATTRIBUTES)?;
    state.read(|ws, _| {
        require_admin(ws, &caller)?;
        let resources = ws
            .service_principals
            .values()
            .map(|sp| render(ws, sp))
            .collect();
        Ok(Json(list_response(resources, &query)))
    })
}

pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.read(|ws, _| {
        require_admin(ws, &caller)?;
        Ok(Json(render(ws, find(ws, &id)?)))
    })
}

/// Body of create and PUT.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServicePrincipalBody {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    application_id: Option<String>,
    #[serde(default)]
    active: Option<Value>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    groups: Vec<ValueItem>,
    #[serde(default)]
    entitlements: Vec<ValueItem>,
    #[serde(default)]
    roles: Vec<ValueItem>,
}

/// A service principal built from a body, with the groups it should belong to.
struct ServicePrincipalDraft {
    service_principal: ServicePrincipal,
    parents: Vec<u64>,
}

/// Builds a service principal from a body. A missing applicationId gets a new UUID, as for
/// Databricks-managed service principals.
fn draft_from_body(
    ws: &Workspace,
    id: u64,
    body: ServicePrincipalBody,
) -> ApiResult<ServicePrincipalDraft> {
    let display_name = body
        .display_name
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| patch::invalid_value("displayName is required."))?;
    let application_id = body
        .application_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let active = body
        .active
        .as_ref()
        .map(patch::parse_active)
        .transpose()?
        .unwrap_or(true);
    let entitlements = item_values(&body.entitlements)?;
    validate_entitlements(&entitlements)?;
    let parents = resolve_parent_groups(ws, &item_values(&body.groups)?)?;

    let service_principal = ServicePrincipal {
        id,
        application_id,
        display_name,
        active,
        entitlements,
        roles: item_values(&body.roles)?,
        external_id: body.external_id,
    };
    Ok(ServicePrincipalDraft {
        service_principal,
        parents,
    })
}

/// Checks that no other service principal has the same applicationId.
fn validate_application_id(ws: &Workspace, sp: &ServicePrincipal) -> ApiResult<()> {
    let duplicate = ws
        .service_principals
        .values()
        .any(|other| other.id != sp.id && other.application_id == sp.application_id);
    if duplicate {
        return Err(ApiError::scim(
            StatusCode::CONFLICT,
            format!(
                "Service principal with application ID {} already exists.",
                sp.application_id
            ),
        ));
    }
    Ok(())
}

/// Creates a service principal and responds 201 with it.
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let body: ServicePrincipalBody = parse_scim_body(&body)?;
    state.write(|ws, ctx| {
        require_admin(ws, &caller)?;
        let id = ctx.ids.allocate();
        let draft = draft_from_body(ws, id, body)?;
        validate_application_id(ws, &draft.service_principal)?;

        ws.service_principals.insert(id, draft.service_principal);
        set_parent_groups(ws, PrincipalId::ServicePrincipal(id), &draft.parents);
        tracing::info!(workspace = %ws.name, service_principal_id = id, "service principal created");
        Ok((StatusCode::CREATED, Json(render(ws, &ws.service_principals[&id]))).into_response())
    })
}

/// Replaces a service principal with the PUT body; the applicationId cannot change.
pub(super) async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mut body: ServicePrincipalBody = parse_scim_body(&body)?;
    state.write(|ws, _| {
        require_admin(ws, &caller)?;
        let existing = find(ws, &id)?;
        let numeric = existing.id;
        let application_id = existing.application_id.clone();
        if body.application_id.as_ref().is_some_and(|requested| *requested != application_id) {
            return Err(patch::invalid_value("applicationId cannot be changed."));
        }
        body.application_id = Some(application_id);
        let draft = draft_from_body(ws, numeric, body)?;

        ws.service_principals.insert(numeric, draft.service_principal);
        set_parent_groups(ws, PrincipalId::ServicePrincipal(numeric), &draft.parents);
        tracing::info!(workspace = %ws.name, service_principal_id = numeric, "service principal replaced");
        Ok(Json(render(ws, &ws.service_principals[&numeric])))
    })
}

/// Applies PATCH operations to a copy of the service principal, then stores it and responds 204.
/// Deactivating it revokes its tokens.
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
        let mut sp = find(ws, &id)?.clone();
        for operation in &operations {
            apply(&mut sp, operation)?;
        }
        validate_entitlements(&sp.entitlements)?;

        tracing::info!(workspace = %ws.name, service_principal_id = sp.id, active = sp.active, "service principal patched");
        ws.service_principals.insert(sp.id, sp);
        Ok(StatusCode::NO_CONTENT)
    })
}

/// Applies one PATCH operation to a service principal.
fn apply(sp: &mut ServicePrincipal, operation: &patch::Operation) -> ApiResult<()> {
    match operation.attribute.as_str() {
        "displayName" => {
            sp.display_name = patch::string_value(operation)?
                .ok_or_else(|| patch::invalid_value("displayName cannot be removed."))?;
        }
        "active" => {
            let value = operation
                .value
                .as_ref()
                .ok_or_else(|| patch::invalid_value("active cannot be removed."))?;
            sp.active = patch::parse_active(value)?;
        }
        "externalId" => sp.external_id = patch::string_value(operation)?,
        "entitlements" => patch::apply_to_list(&mut sp.entitlements, operation)?,
        "roles" => patch::apply_to_list(&mut sp.roles, operation)?,
        other => return Err(patch::no_such_attribute(other)),
    }
    Ok(())
}

/// Deletes a service principal, its group memberships and ACL entries; its tokens are revoked.
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.write(|ws, _| {
        require_admin(ws, &caller)?;
        let numeric = find(ws, &id)?.id;
        ws.service_principals.remove(&numeric);
        forget_principal(ws, PrincipalId::ServicePrincipal(numeric));
        tracing::info!(workspace = %ws.name, service_principal_id = numeric, "service principal deleted");
        Ok(StatusCode::NO_CONTENT)
    })
}
