//! SCIM endpoints: the caller's identity, groups and service principals.

use std::collections::HashSet;

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::client::none_if_not_found;
use crate::{Error, WorkspaceClient, lenient};

/// Response header that carries the numeric workspace id.
const ORG_ID_HEADER: &str = "x-databricks-org-id";

/// Number of resources requested per SCIM list page.
const PAGE_SIZE: usize = 100;

const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const SERVICE_PRINCIPAL_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM reference to another resource, such as a group member.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ComplexValue {
    /// Id of the referenced resource, or the entitlement name.
    #[serde(default, deserialize_with = "lenient::optional_string")]
    pub value: Option<String>,
    /// Display name of the referenced resource.
    #[serde(default)]
    pub display: Option<String>,
    /// Relative reference such as `Groups/123`.
    #[serde(default, rename = "$ref")]
    pub reference: Option<String>,
}

/// The authenticated caller, from SCIM `Me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// SCIM id of the user or service principal.
    pub id: String,
    /// Email of a user, or the application id of a service principal.
    pub user_name: String,
    /// Display name, when the workspace has one.
    pub display_name: Option<String>,
    /// Workspace id from the `X-Databricks-Org-Id` response header.
    pub workspace_id: Option<String>,
    /// Groups the caller belongs to directly.
    pub groups: Vec<ComplexValue>,
}

#[derive(Deserialize)]
struct MeBody {
    #[serde(deserialize_with = "lenient::string")]
    id: String,
    #[serde(rename = "userName")]
    user_name: String,
    #[serde(default, rename = "displayName")]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    groups: Vec<ComplexValue>,
}

/// A workspace-local SCIM group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Group {
    /// SCIM id.
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    /// Group name, which permission and secret ACLs use as the principal.
    #[serde(default, rename = "displayName")]
    pub display_name: String,
    /// Direct members (users, service principals and groups).
    #[serde(default, deserialize_with = "lenient::list")]
    pub members: Vec<ComplexValue>,
    /// Groups this group belongs to.
    #[serde(default, deserialize_with = "lenient::list")]
    pub groups: Vec<ComplexValue>,
    /// Entitlements such as `workspace-access`.
    #[serde(default, deserialize_with = "lenient::list")]
    pub entitlements: Vec<ComplexValue>,
    /// Id in an external identity provider.
    #[serde(default, rename = "externalId")]
    pub external_id: Option<String>,
}

/// A workspace SCIM service principal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServicePrincipal {
    /// SCIM id.
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    /// Application id (a UUID), which ACLs and on-behalf-of tokens use.
    #[serde(rename = "applicationId", deserialize_with = "lenient::string")]
    pub application_id: String,
    /// Display name.
    #[serde(default, rename = "displayName")]
    pub display_name: String,
    /// Whether the service principal may authenticate.
    #[serde(default = "active_by_default", deserialize_with = "lenient::boolean")]
    pub active: bool,
    /// Entitlements such as `workspace-access`.
    #[serde(default, deserialize_with = "lenient::list")]
    pub entitlements: Vec<ComplexValue>,
    /// Groups the service principal belongs to directly.
    #[serde(default, deserialize_with = "lenient::list")]
    pub groups: Vec<ComplexValue>,
    /// Id in an external identity provider.
    #[serde(default, rename = "externalId")]
    pub external_id: Option<String>,
}

fn active_by_default() -> bool {
    true
}

/// One page of a SCIM list. The server omits `Resources` when the page is empty.
#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct ScimPage<T> {
    #[serde(default, rename = "Resources", deserialize_with = "lenient::list")]
    resources: Vec<T>,
    /// Number of resources that match the filter, over all pages.
    #[serde(default, rename = "totalResults", deserialize_with = "lenient::optional_integer")]
    total_results: Option<i64>,
}

/// A SCIM resource with an id, for de-duplicating pages.
trait ScimResource {
    fn id(&self) -> &str;
}

impl ScimResource for Group {
    fn id(&self) -> &str {
        &self.id
    }
}

impl ScimResource for ServicePrincipal {
    fn id(&self) -> &str {
        &self.id
    }
}

impl WorkspaceClient {
    /// Fetches the caller's identity and the workspace id.
    pub async fn me(&self) -> Result<Me, Error> {
        let call = self
            .call(Method::GET, &["preview", "scim", "v2", "Me"])
            .query("excludedAttributes", "entitlements");
        let (call_id, response) = self.send(call).await?;
        let body: MeBody = crate::response::decode_json(&call_id, &response)?;

        let workspace_id = response
            .headers
            .get(ORG_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned);

        Ok(Me {
            id: body.id,
            user_name: body.user_name,
            display_name: body.display_name,
            workspace_id,
            groups: body.groups,
        })
    }

    /// Lists groups, optionally with a SCIM filter such as `displayName eq "x"`.
    pub async fn list_groups(&self, filter: Option<&str>) -> Result<Vec<Group>, Error> {
        self.list_scim("Groups", filter).await
    }

    /// Fetches a group by SCIM id, or returns `None` when it does not exist.
    pub async fn get_group(&self, id: &str) -> Result<Option<Group>, Error> {
        let call = self.call(Method::GET, &["preview", "scim", "v2", "Groups", id]);
        none_if_not_found(self.send_json(call).await)
    }

    /// Creates a group. The server returns 200 or 201.
    pub async fn create_group(&self, display_name: &str) -> Result<Group, Error> {
        let body = json!({ "schemas": [GROUP_SCHEMA], "displayName": display_name });
        let call = self
            .call(Method::POST, &["preview", "scim", "v2", "Groups"])
            .json(&body)
            .create();
        self.send_json(call).await
    }

    /// Adds a user, service principal or group (by SCIM id) to a group.
    pub async fn add_group_member(&self, group_id: &str, member_id: &str) -> Result<(), Error> {
        let operation =
            json!({ "op": "add", "path": "members", "value": [{ "value": member_id }] });
        self.patch_scim("Groups", group_id, operation).await
    }

    /// Removes a member (by SCIM id) from a group.
    pub async fn remove_group_member(&self, group_id: &str, member_id: &str) -> Result<(), Error> {
        let filter_path = format!("members[value eq \"{}\"]", escape_filter_value(member_id));
        let operation = json!({ "op": "remove", "path": filter_path });
        self.patch_scim("Groups", group_id, operation).await
    }

    /// Deletes a group.
    pub async fn delete_group(&self, id: &str) -> Result<(), Error> {
        let call = self.call(Method::DELETE, &["preview", "scim", "v2", "Groups", id]);
        self.send_void(call).await
    }

    /// Lists service principals, optionally with a SCIM filter such as `applicationId eq "…"`.
    pub async fn list_service_principals(
        &self,
        filter: Option<&str>,
    ) -> Result<Vec<ServicePrincipal>, Error> {
        self.list_scim("ServicePrincipals", filter).await
    }

    /// Fetches a service principal by SCIM id, or returns `None` when it does not exist.
    pub async fn get_service_principal(&self, id: &str) -> Result<Option<ServicePrincipal>, Error> {
        let call = self.call(
            Method::GET,
            &["preview", "scim", "v2", "ServicePrincipals", id],
        );
        none_if_not_found(self.send_json(call).await)
    }

    /// Creates an active, Databricks-managed service principal, whose application id the
    /// server picks.
    pub async fn create_service_principal(
        &self,
        display_name: &str,
        entitlements: &[String],
    ) -> Result<ServicePrincipal, Error> {
        let mut body = json!({
            "schemas": [SERVICE_PRINCIPAL_SCHEMA],
            "displayName": display_name,
            "active": true,
        });
        if !entitlements.is_empty() {
            body["entitlements"] = complex_values(entitlements);
        }

        let call = self
            .call(
                Method::POST,
                &["preview", "scim", "v2", "ServicePrincipals"],
            )
            .json(&body)
            .duplicable_create();
        self.send_json(call).await
    }

    /// Activates or deactivates a service principal.
    pub async fn set_service_principal_active(&self, id: &str, active: bool) -> Result<(), Error> {
        // The value is the string "true" or "false", as in the databricks-sdk-py example
        // that deactivates a service principal.
        let operation = json!({ "op": "replace", "path": "active", "value": active.to_string() });
        self.patch_scim("ServicePrincipals", id, operation).await
    }

    /// Adds entitlements such as `workspace-access` to a service principal.
    pub async fn add_service_principal_entitlements(
        &self,
        id: &str,
        entitlements: &[String],
    ) -> Result<(), Error> {
        let operation =
            json!({ "op": "add", "path": "entitlements", "value": complex_values(entitlements) });
        self.patch_scim("ServicePrincipals", id, operation).await
    }

    /// Deletes a service principal.
    pub async fn delete_service_principal(&self, id: &str) -> Result<(), Error> {
        let call = self.call(
            Method::DELETE,
            &["preview", "scim", "v2", "ServicePrincipals", id],
        );
        self.send_void(call).await
    }

    /// Sends one PATCH operation. The server returns 200 with the resource, or 204.
    async fn patch_scim(&self, resource: &str, id: &str, operation: Value) -> Result<(), Error> {
        let body = json!({ "schemas": [PATCH_SCHEMA], "Operations": [operation] });
        let call = self
            .call(Method::PATCH, &["preview", "scim", "v2", resource, id])
            .json(&body);
        self.send_void(call).await
    }

    /// Reads every page of a SCIM list.
    ///
    /// Paging stops on an empty page, on a page shorter than `count` that reaches
    /// `totalResults`, or on a page that brings no new ids, which guards against a
    /// server that ignores `startIndex`. Resources seen on an
    /// earlier page are skipped.
    async fn list_scim<T>(&self, resource: &str, filter: Option<&str>) -> Result<Vec<T>, Error>
    where
        T: ScimResource + DeserializeOwned,
    {
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        let mut start_index = 1;

        loop {
            let mut call = self
                .call(Method::GET, &["preview", "scim", "v2", resource])
                .query("startIndex", &start_index.to_string())
                .query("count", &PAGE_SIZE.to_string());
            if let Some(filter) = filter {
                call = call.query("filter", filter);
            }

            let page: ScimPage<T> = self.send_json(call).await?;
            if page.resources.is_empty() {
                return Ok(items);
            }

            let short_page = page.resources.len() < PAGE_SIZE;
            let total_results = page.total_results;
            start_index += page.resources.len();
            let before = items.len();
            for item in page.resources {
                if seen.insert(item.id().to_owned()) {
                    items.push(item);
                }
            }

            // A short page that brings the distinct resources up to `totalResults` is the last
            // one, which saves the request for the empty page. `totalResults` alone is not
            // trusted: after a full page the next one is always requested.
            let complete = total_results
                .is_some_and(|total| i64::try_from(items.len()).is_ok_and(|read| read >= total));
            if items.len() == before || (short_page && complete) {
                return Ok(items);
            }
        }
    }
}

fn complex_values(values: &[String]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|value| json!({ "value": value }))
            .collect(),
    )
}

/// Escapes a value for use inside a double-quoted SCIM filter string.
fn escape_filter_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}
