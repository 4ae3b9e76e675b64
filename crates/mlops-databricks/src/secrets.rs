//! Secret scopes, secrets and secret ACLs.
//!
//! Every write is a POST with a JSON body, because the secrets API has no DELETE verbs.

use std::fmt;

use base64::Engine as _;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::client::none_if_not_found;
use crate::response::CallId;
use crate::{Error, WorkspaceClient, lenient};

/// A secret scope.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SecretScope {
    /// Scope name. Databricks compares scope names case-insensitively.
    pub name: String,
    /// `DATABRICKS` or `AZURE_KEYVAULT`.
    #[serde(default)]
    pub backend_type: Option<String>,
}

/// Metadata of a secret, without its value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SecretMetadata {
    /// Secret key.
    pub key: String,
    /// Last write time in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "lenient::integer")]
    pub last_updated_timestamp: i64,
}

/// Permission level of a secret ACL. Each level includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AclPermission {
    /// List and read secrets.
    Read,
    /// Read and write secrets.
    Write,
    /// Write secrets and change ACLs.
    Manage,
}

impl AclPermission {
    /// Returns the API name: `READ`, `WRITE` or `MANAGE`.
    pub fn as_str(self) -> &'static str {
        match self {
            AclPermission::Read => "READ",
            AclPermission::Write => "WRITE",
            AclPermission::Manage => "MANAGE",
        }
    }
}

impl fmt::Display for AclPermission {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One entry of a scope's ACL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AclItem {
    /// User name, group name or service principal application id.
    pub principal: String,
    /// Granted level.
    pub permission: AclPermission,
}

#[derive(Deserialize)]
struct ScopeList {
    #[serde(default, deserialize_with = "lenient::list")]
    scopes: Vec<SecretScope>,
}

#[derive(Deserialize)]
struct SecretList {
    #[serde(default, deserialize_with = "lenient::list")]
    secrets: Vec<SecretMetadata>,
}

#[derive(Deserialize)]
struct AclList {
    #[serde(default, deserialize_with = "lenient::list")]
    items: Vec<AclItem>,
}

#[derive(Deserialize)]
struct SecretValue {
    value: Option<String>,
}

impl WorkspaceClient {
    /// Lists every secret scope in the workspace.
    pub async fn list_scopes(&self) -> Result<Vec<SecretScope>, Error> {
        let call = self.call(Method::GET, &["secrets", "scopes", "list"]);
        let list: ScopeList = self.send_json(call).await?;
        Ok(list.scopes)
    }

    /// Creates a Databricks-backed scope, on which the server grants the caller `MANAGE`.
    pub async fn create_scope(&self, scope: &str) -> Result<(), Error> {
        let call = self
            .call(Method::POST, &["secrets", "scopes", "create"])
            .json(&json!({ "scope": scope }))
            .create();
        self.send_void(call).await
    }

    /// Deletes a scope with its secrets and ACLs.
    pub async fn delete_scope(&self, scope: &str) -> Result<(), Error> {
        let call = self
            .call(Method::POST, &["secrets", "scopes", "delete"])
            .json(&json!({ "scope": scope }));
        self.send_void(call).await
    }

    /// Writes a secret as a UTF-8 string, replacing any previous value.
    pub async fn put_secret(
        &self,
        scope: &str,
        key: &str,
        value: &SecretString,
    ) -> Result<(), Error> {
        let body = json!({ "scope": scope, "key": key, "string_value": value.expose_secret() });
        let call = self.call(Method::POST, &["secrets", "put"]).json(&body);
        self.send_void(call).await
    }

    /// Lists the keys of a scope with their last update times.
    pub async fn list_secrets(&self, scope: &str) -> Result<Vec<SecretMetadata>, Error> {
        let call = self
            .call(Method::GET, &["secrets", "list"])
            .query("scope", scope);
        let list: SecretList = self.send_json(call).await?;
        Ok(list.secrets)
    }

    /// Reads a secret value, or returns `None` when the scope or key does not exist.
    ///
    /// The API returns the value base64-encoded, and it must be UTF-8 text.
    pub async fn get_secret(&self, scope: &str, key: &str) -> Result<Option<SecretString>, Error> {
        let call = self
            .call(Method::GET, &["secrets", "get"])
            .query("scope", scope)
            .query("key", key);
        let sent = none_if_not_found(self.send(call).await)?;
        let Some((call_id, response)) = sent else {
            return Ok(None);
        };

        let body: SecretValue = crate::response::decode_json(&call_id, &response)?;
        decode_secret_value(&call_id, body.value).map(Some)
    }

    /// Deletes a secret.
    pub async fn delete_secret(&self, scope: &str, key: &str) -> Result<(), Error> {
        let call = self
            .call(Method::POST, &["secrets", "delete"])
            .json(&json!({ "scope": scope, "key": key }));
        self.send_void(call).await
    }

    /// Grants `permission` on a scope to a principal, replacing its previous level.
    pub async fn put_acl(
        &self,
        scope: &str,
        principal: &str,
        permission: AclPermission,
    ) -> Result<(), Error> {
        let body =
            json!({ "scope": scope, "principal": principal, "permission": permission.as_str() });
        let call = self
            .call(Method::POST, &["secrets", "acls", "put"])
            .json(&body);
        self.send_void(call).await
    }

    /// Lists the ACL entries of a scope.
    pub async fn list_acls(&self, scope: &str) -> Result<Vec<AclItem>, Error> {
        let call = self
            .call(Method::GET, &["secrets", "acls", "list"])
            .query("scope", scope);
        let list: AclList = self.send_json(call).await?;
        Ok(list.items)
    }

    /// Removes a principal's ACL entry from a scope.
    pub async fn delete_acl(&self, scope: &str, principal: &str) -> Result<(), Error> {
        let call = self
            .call(Method::POST, &["secrets", "acls", "delete"])
            .json(&json!({ "scope": scope, "principal": principal }));
        self.send_void(call).await
    }
}

/// Decodes the base64 `value` of a secrets/get response without quoting it in errors.
fn decode_secret_value(call_id: &CallId, value: Option<String>) -> Result<SecretString, Error> {
    let encoded = value.ok_or_else(|| call_id.decode_error("missing field `value`"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| call_id.decode_error("field `value` is not valid base64"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| call_id.decode_error("the secret value is not UTF-8 text"))?;
    Ok(SecretString::from(text))
}
