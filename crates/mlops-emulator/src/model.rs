//! The persisted state of an emulated world: workspaces, principals, tokens, ACLs, secrets and models.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Version of the data file format written by [`crate::Emulator::save`].
pub(crate) const DATA_VERSION: u32 = 1;

/// Name of the built-in group whose members administer the workspace.
pub(crate) const ADMINS_GROUP: &str = "admins";

/// Name of the built-in group that implicitly contains every user and service principal.
pub(crate) const USERS_GROUP: &str = "users";

/// User name of the seeded workspace admin.
pub(crate) const ADMIN_USER_NAME: &str = "admin@example.com";

/// Every workspace of one emulator, with the id counter they share.
#[derive(Serialize, Deserialize)]
pub(crate) struct World {
    pub version: u32,
    /// Next numeric id for a user, group or service principal; ids are unique across the world.
    pub next_id: u64,
    pub workspaces: BTreeMap<String, Workspace>,
}

/// One emulated Databricks workspace.
#[derive(Serialize, Deserialize)]
pub(crate) struct Workspace {
    pub name: String,
    pub workspace_id: String,
    pub admin_user_id: u64,
    pub admins_group_id: u64,
    pub users_group_id: u64,
    pub users: BTreeMap<u64, User>,
    pub groups: BTreeMap<u64, Group>,
    pub service_principals: BTreeMap<u64, ServicePrincipal>,
    /// Personal and on-behalf-of tokens by token id, the hex SHA-256 of the token value.
    pub tokens: BTreeMap<String, Token>,
    /// OAuth access tokens by the hex SHA-256 of their value.
    pub access_tokens: BTreeMap<String, AccessToken>,
    /// OAuth clients by client id.
    pub oauth_clients: BTreeMap<String, OAuthClient>,
    /// Client id of the admin's OAuth client.
    pub admin_client_id: String,
    /// Secret of the admin's OAuth client, kept so that `admin_client_credentials` can return it.
    pub admin_client_secret: Secret,
    /// ACL of `/authorization/tokens`; `None` until the first token of the workspace exists.
    pub token_permissions: Option<Vec<AclEntry>>,
    /// ACL of `/registered-models/root`.
    pub registry_permissions: Vec<AclEntry>,
    /// Secret scopes by lower-case name, because scope names are case-insensitive.
    pub scopes: BTreeMap<String, SecretScope>,
    /// Registered models by name.
    pub models: BTreeMap<String, RegisteredModel>,
}

/// A reference to a user, service principal or group by its numeric id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub(crate) enum PrincipalId {
    User(u64),
    ServicePrincipal(u64),
    Group(u64),
}

impl PrincipalId {
    /// Returns the numeric id.
    pub fn id(self) -> u64 {
        match self {
            Self::User(id) | Self::ServicePrincipal(id) | Self::Group(id) => id,
        }
    }
}

/// A workspace user.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct User {
    pub id: u64,
    pub user_name: String,
    pub display_name: String,
    pub active: bool,
    pub entitlements: Vec<String>,
}

/// A SCIM group; members of `users` are implicit and never stored.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Group {
    pub id: u64,
    pub display_name: String,
    pub members: Vec<PrincipalId>,
    pub entitlements: Vec<String>,
    pub roles: Vec<String>,
    pub external_id: Option<String>,
}

/// A Databricks-managed service principal.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct ServicePrincipal {
    pub id: u64,
    pub application_id: String,
    pub display_name: String,
    pub active: bool,
    pub entitlements: Vec<String>,
    pub roles: Vec<String>,
    pub external_id: Option<String>,
}

/// A personal access token or an on-behalf-of token; the token value itself is never stored.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Token {
    pub token_id: String,
    pub owner: PrincipalId,
    pub created_by: PrincipalId,
    pub created_by_username: String,
    /// Epoch milliseconds.
    pub creation_time: i64,
    /// Epoch milliseconds, or -1 for a token without expiry.
    pub expiry_time: i64,
    pub comment: String,
}

impl Token {
    /// Returns whether the token has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expiry_time >= 0 && now_ms > self.expiry_time
    }
}

/// An OAuth access token issued by `/oidc/v1/token` or `Emulator::admin_access_token`.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct AccessToken {
    pub owner: PrincipalId,
    /// Epoch milliseconds.
    pub expiry_time: i64,
}

/// An OAuth client of the client-credentials flow.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct OAuthClient {
    pub owner: PrincipalId,
    /// Hex SHA-256 of the client secret.
    pub secret_sha256: String,
}

/// One entry of a permissions ACL: a principal and its level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AclEntry {
    pub principal: PrincipalId,
    pub level: String,
}

/// A Databricks-backed secret scope.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SecretScope {
    /// The name as it was created; lookups ignore case.
    pub name: String,
    pub secrets: BTreeMap<String, StoredSecret>,
    pub acls: Vec<SecretAcl>,
}

/// A secret value and the time it was last written.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredSecret {
    pub value: SecretBytes,
    /// Epoch milliseconds.
    pub last_updated_timestamp: i64,
}

/// One ACL of a secret scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SecretAcl {
    /// A user name, a service principal's application id, or a group's display name.
    pub principal: String,
    pub permission: ScopePermission,
}

/// A secret-scope permission; the order is READ < WRITE < MANAGE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum ScopePermission {
    Read,
    Write,
    Manage,
}

impl ScopePermission {
    /// Returns the wire name, such as `READ`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::Manage => "MANAGE",
        }
    }

    /// Parses a wire name; the match is exact, as on the real API.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "READ" => Some(Self::Read),
            "WRITE" => Some(Self::Write),
            "MANAGE" => Some(Self::Manage),
            _ => None,
        }
    }
}

/// A registered model of the workspace model registry.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct RegisteredModel {
    /// The Databricks model id used by the permissions API (32 hex digits).
    pub id: String,
    pub name: String,
    pub description: String,
    pub user_id: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub tags: Vec<ModelTag>,
    pub versions: Vec<ModelVersion>,
}

/// A key and value tag of a model or model version.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct ModelTag {
    pub key: String,
    pub value: String,
}

/// One version of a registered model.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct ModelVersion {
    pub version: u32,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    /// `None`, `Staging`, `Production` or `Archived`.
    pub current_stage: String,
    pub description: String,
    pub source: String,
    pub run_id: String,
    pub status: String,
    pub user_id: String,
}

/// A secret string, such as an OAuth client secret, that `Debug` never prints.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// Returns the secret string.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret([redacted])")
    }
}

/// The bytes of a secret-scope value, stored as base64 in the data file; `Debug` never prints them.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SecretBytes(pub Vec<u8>);

impl fmt::Debug for SecretBytes {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SecretBytes([redacted; {} bytes])", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = BASE64
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        Ok(Self(bytes))
    }
}
