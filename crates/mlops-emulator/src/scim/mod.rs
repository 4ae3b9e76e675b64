//! SCIM 2.0 endpoints under `/api/2.0/preview/scim/v2`: Groups, ServicePrincipals, Users and Me.

pub(crate) mod filter;
mod groups;
mod me;
mod patch;
mod service_principals;
mod users;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::model::{PrincipalId, Workspace};
use crate::server::AppState;
use crate::server::Params;

use filter::Filter;

/// Schema URN of groups.
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Schema URN of service principals.
const SERVICE_PRINCIPAL_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal";

/// Schema URN of list responses.
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Entitlements that a workspace supports.
const ENTITLEMENTS: [&str; 5] = [
    "allow-cluster-create",
    "allow-instance-pool-create",
    "databricks-sql-access",
    "workspace-access",
    "workspace-consume",
];

/// Routes of the SCIM endpoints.
pub(crate) fn routes() -> Router<AppState> {
    const BASE: &str = "/api/2.0/preview/scim/v2";
    Router::new()
        .route(
            &format!("{BASE}/Groups"),
            get(groups::list).post(groups::create),
        )
        .route(
            &format!("{BASE}/Groups/{{id}}"),
            get(groups::get)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route(
            &format!("{BASE}/ServicePrincipals"),
            get(service_principals::list).post(service_principals::create),
        )
        .route(
            &format!("{BASE}/ServicePrincipals/{{id}}"),
            get(service_principals::get)
                .put(service_principals::replace)
                .patch(service_principals::patch)
                .delete(service_principals::delete),
        )
        .route(
            &format!("{BASE}/Users"),
            get(users::list).post(users::create),
        )
        .route(
            &format!("{BASE}/Users/{{id}}"),
            get(users::get).delete(users::delete),
        )
        .route(&format!("{BASE}/Me"), get(me::me))
}

/// Fails with a SCIM 403 unless the caller is an admin.
// NOTE: the real detail for a non-admin caller is unconfirmed.
fn require_admin(ws: &Workspace, caller: &Caller) -> ApiResult<()> {
    if caller.is_admin(ws) {
        return Ok(());
    }
    Err(ApiError::scim(
        StatusCode::FORBIDDEN,
        "Only workspace admins can perform this operation.",
    ))
}

/// Parses a SCIM request body; a malformed body is a SCIM 400 `invalidSyntax`.
fn parse_scim_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::scim_typed(
            StatusCode::BAD_REQUEST,
            "invalidSyntax",
            format!(
                "Request body is not valid SCIM JSON at line {} column {}.",
                error.line(),
                error.column()
            ),
        )
    })
}

/// Parses a numeric SCIM id from a path.
fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

/// Renders a member or group reference: `value`, `display` and a relative `$ref`.
fn principal_ref(ws: &Workspace, principal: PrincipalId) -> Value {
    let kind = match principal {
        PrincipalId::User(_) => "Users",
        PrincipalId::ServicePrincipal(_) => "ServicePrincipals",
        PrincipalId::Group(_) => "Groups",
    };
    json!({
        "value": principal.id().to_string(),
        "display": ws.principal_display_name(principal).unwrap_or_default(),
        "$ref": format!("{kind}/{}", principal.id()),
    })
}

/// Renders the groups that directly contain a principal, with `type: direct`.
fn parent_groups(ws: &Workspace, principal: PrincipalId) -> Vec<Value> {
    ws.direct_group_ids(principal)
        .into_iter()
        .map(|id| {
            let mut reference = principal_ref(ws, PrincipalId::Group(id));
            reference["type"] = json!("direct");
            reference
        })
        .collect()
}

/// Renders string values as `[{"value": ...}]`.
fn value_list(values: &[String]) -> Vec<Value> {
    values
        .iter()
        .map(|value| json!({ "value": value }))
        .collect()
}

/// Inserts a list attribute unless it is empty, as the real server leaves empty lists out.
fn insert_list(object: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    if !items.is_empty() {
        object.insert(key.to_owned(), Value::Array(items));
    }
}

/// Checks that the workspace supports every entitlement.
fn validate_entitlements(entitlements: &[String]) -> ApiResult<()> {
    match entitlements
        .iter()
        .find(|value| !ENTITLEMENTS.contains(&value.as_str()))
    {
        Some(unknown) => Err(patch::invalid_value(format!(
            "Unknown entitlement {unknown}: expected one of {}.",
            ENTITLEMENTS.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Resolves a member id to a principal of the workspace.
// NOTE: the real response to an unknown member id is unconfirmed; SCIM 400 invalidValue is the default.
fn resolve_member(ws: &Workspace, id: &str) -> ApiResult<PrincipalId> {
    parse_id(id)
        .and_then(|numeric| ws.principal_by_id(numeric))
        .ok_or_else(|| patch::invalid_value(format!("Principal with id {id} does not exist.")))
}

/// Resolves the ids of groups that a new or replaced principal should belong to.
fn resolve_parent_groups(ws: &Workspace, ids: &[String]) -> ApiResult<Vec<u64>> {
    ids.iter()
        .map(
            |id| match parse_id(id).filter(|numeric| ws.groups.contains_key(numeric)) {
                Some(numeric) if numeric == ws.users_group_id => Err(users_members_fixed()),
                Some(numeric) => Ok(numeric),
                None => Err(patch::invalid_value(format!(
                    "Group with id {id} does not exist."
                ))),
            },
        )
        .collect()
}

/// Returns the 400 for an attempt to change the implicit members of `users`.
fn users_members_fixed() -> ApiError {
    patch::invalid_value(
        "The members of the built-in group users are managed by the workspace and cannot be changed.",
    )
}

/// Sets the groups that directly contain `principal` to exactly `parents`.
fn set_parent_groups(ws: &mut Workspace, principal: PrincipalId, parents: &[u64]) {
    for group in ws.groups.values_mut() {
        let expected = parents.contains(&group.id);
        let present = group.members.contains(&principal);
        if expected && !present {
            group.members.push(principal);
        } else if !expected && present {
            group.members.retain(|member| *member != principal);
        }
    }
}

/// Removes a deleted principal from every group and permissions ACL. Secret scope ACLs name
/// principals by text and keep their entries.
// NOTE: whether the real service drops the secret ACLs of a deleted principal is unconfirmed.
fn forget_principal(ws: &mut Workspace, principal: PrincipalId) {
    for group in ws.groups.values_mut() {
        group.members.retain(|member| *member != principal);
    }
    if let Some(acl) = ws.token_permissions.as_mut() {
        acl.retain(|entry| entry.principal != principal);
    }
    ws.registry_permissions
        .retain(|entry| entry.principal != principal);
}

/// Reference to one of a body's `members`, `groups`, `entitlements` or `roles` items.
#[derive(Deserialize)]
struct ValueItem {
    value: Value,
}

/// Returns the text of body items.
fn item_values(items: &[ValueItem]) -> ApiResult<Vec<String>> {
    items
        .iter()
        .map(|item| match &item.value {
            Value::String(text) => Ok(text.clone()),
            Value::Number(number) => Ok(number.to_string()),
            _ => Err(patch::invalid_value("Each item value must be a string.")),
        })
        .collect()
}

/// Query parameters of a SCIM list request.
struct ListQuery {
    filter: Option<Filter>,
    start_index: usize,
    count: Option<usize>,
    sort_by: Option<String>,
    descending: bool,
    attributes: Option<Vec<String>>,
    excluded_attributes: Vec<String>,
}

impl ListQuery {
    /// Parses `filter`, `startIndex` (1-based), `count`, `sortBy`, `sortOrder`, `attributes`
    /// and `excludedAttributes`.
    fn parse(params: &Params, filter_attributes: &[&str]) -> ApiResult<Self> {
        let filter = params
            .get("filter")
            .map(|text| filter::parse(text, filter_attributes))
            .transpose()
            .map_err(|message| {
                ApiError::scim_typed(
                    StatusCode::BAD_REQUEST,
                    "invalidFilter",
                    format!("Invalid filter: {message}"),
                )
            })?;
        let start_index = parse_count(params, "startIndex")?.unwrap_or(1).max(1);
        let count = parse_count(params, "count")?;
        let descending = params
            .get("sortOrder")
            .is_some_and(|order| order.eq_ignore_ascii_case("descending"));

        Ok(Self {
            filter,
            start_index,
            count,
            sort_by: params.get("sortBy").map(str::to_owned),
            descending,
            attributes: params.get("attributes").map(split_attributes),
            excluded_attributes: params
                .get("excludedAttributes")
                .map(split_attributes)
                .unwrap_or_default(),
        })
    }
}

/// Parses a non-negative integer parameter.
fn parse_count(params: &Params, name: &str) -> ApiResult<Option<usize>> {
    params
        .get(name)
        .map(|text| {
            text.parse::<usize>().map_err(|_| {
                patch::invalid_value(format!(
                    "Invalid {name} {text}: expected a non-negative integer."
                ))
            })
        })
        .transpose()
}

/// Splits a comma-separated attribute list.
fn split_attributes(text: &str) -> Vec<String> {
    text.split(',')
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Keeps only the requested attributes of a resource (always with `id` and `schemas`), or drops
/// the excluded ones. Names compare without regard to case.
fn select_attributes(resource: Value, attributes: Option<&[String]>, excluded: &[String]) -> Value {
    let Value::Object(object) = resource else {
        return resource;
    };
    let listed =
        |list: &[String], key: &str| list.iter().any(|name| name.eq_ignore_ascii_case(key));
    let selected = object
        .into_iter()
        .filter(|(key, _)| match attributes {
            Some(attributes) => key == "id" || key == "schemas" || listed(attributes, key),
            None => !listed(excluded, key) || key == "id",
        })
        .collect();
    Value::Object(selected)
}

/// Filters, sorts and pages rendered resources into a ListResponse. A page past the end has no
/// `Resources`, so clients that page until an empty page stop there.
fn list_response(mut resources: Vec<Value>, query: &ListQuery) -> Value {
    if let Some(filter) = &query.filter {
        resources.retain(|resource| filter.matches(resource));
    }
    if let Some(sort_by) = &query.sort_by {
        resources.sort_by_key(|resource| {
            resource
                .get(sort_by)
                .map(|value| value.to_string().to_lowercase())
        });
    }
    if query.descending {
        resources.reverse();
    }

    let total = resources.len();
    let page: Vec<Value> = resources
        .into_iter()
        .skip(query.start_index - 1)
        .take(query.count.unwrap_or(usize::MAX))
        .map(|resource| {
            select_attributes(
                resource,
                query.attributes.as_deref(),
                &query.excluded_attributes,
            )
        })
        .collect();

    let mut body = Map::new();
    body.insert("schemas".to_owned(), json!([LIST_SCHEMA]));
    body.insert("totalResults".to_owned(), json!(total));
    body.insert("startIndex".to_owned(), json!(query.start_index));
    body.insert("itemsPerPage".to_owned(), json!(page.len()));
    insert_list(&mut body, "Resources", page);
    Value::Object(body)
}
