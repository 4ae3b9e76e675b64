//! The live state that a refresh read from the workspaces, in a form free of HTTP details.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The live state of every configured workspace, by workspace name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Live {
    pub workspaces: BTreeMap<String, LiveWorkspace>,
}

/// The objects read from one workspace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LiveWorkspace {
    pub name: String,
    /// The id from the `X-Databricks-Org-Id` response header.
    pub workspace_id: String,
    /// Groups found by the managed group name or by an id recorded in state.
    pub groups: Vec<LiveGroup>,
    /// Service principals found by the managed display name or by an id recorded in state.
    pub service_principals: Vec<LiveServicePrincipal>,
    /// Every token of the workspace, from token management.
    pub tokens: Vec<LiveToken>,
    /// The token permissions; `None` while the workspace has no token at all, because the
    /// permissions object does not exist until a first token does.
    pub token_permissions: Option<Vec<LiveGrant>>,
    /// The permissions on the registry root.
    pub registry_permissions: Vec<LiveGrant>,
    /// Every scope name, with details filled in for the managed scopes.
    pub scopes: Vec<LiveScope>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveGroup {
    pub id: String,
    pub display_name: String,
    /// SCIM ids of the direct members.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveServicePrincipal {
    pub id: String,
    pub application_id: String,
    pub display_name: String,
    pub active: bool,
    pub entitlements: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveToken {
    pub token_id: String,
    /// SCIM id of the principal the token belongs to.
    pub owner_id: Option<String>,
    pub comment: String,
    /// Epoch milliseconds.
    pub creation_time: i64,
    /// Epoch milliseconds, or -1 for a token that never expires.
    pub expiry_time: i64,
}

/// One direct or inherited permission of one principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveGrant {
    /// `group:<name>`, `user:<email>` or `service_principal:<application id>`.
    pub principal: String,
    pub level: String,
    pub inherited: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveScope {
    pub name: String,
    /// Whether `secrets` and `acls` were read; only managed scopes are read.
    pub read: bool,
    pub secrets: Vec<LiveSecret>,
    pub acls: Vec<LiveAcl>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSecret {
    pub key: String,
    /// Epoch milliseconds of the last write.
    pub last_updated_timestamp: i64,
    /// SHA-256 of the value, when the value was read.
    pub value_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveAcl {
    pub principal: String,
    pub permission: String,
}

impl LiveWorkspace {
    /// Returns the group with this id.
    pub fn group_by_id(&self, id: &str) -> Option<&LiveGroup> {
        self.groups.iter().find(|group| group.id == id)
    }

    /// Returns the groups with this display name.
    pub fn groups_named(&self, name: &str) -> Vec<&LiveGroup> {
        self.groups.iter().filter(|group| group.display_name == name).collect()
    }

    /// Returns the service principal with this SCIM id.
    pub fn service_principal_by_id(&self, id: &str) -> Option<&LiveServicePrincipal> {
        self.service_principals.iter().find(|principal| principal.id == id)
    }

    /// Returns the scope with this name; scope names are case-insensitive.
    pub fn scope(&self, name: &str) -> Option<&LiveScope> {
        self.scopes.iter().find(|scope| scope.name.eq_ignore_ascii_case(name))
    }

    /// Returns the direct token-permission level of a principal, if any.
    pub fn token_permission(&self, principal: &str) -> Option<&LiveGrant> {
        self.token_permissions
            .as_ref()?
            .iter()
            .find(|grant| grant.principal == principal && !grant.inherited)
    }

    /// Returns the token with this id.
    pub fn token(&self, token_id: &str) -> Option<&LiveToken> {
        self.tokens.iter().find(|token| token.token_id == token_id)
    }
}

impl LiveScope {
    /// Returns the secret with this key.
    pub fn secret(&self, key: &str) -> Option<&LiveSecret> {
        self.secrets.iter().find(|secret| secret.key == key)
    }

    /// Returns the ACL of this principal.
    pub fn acl(&self, principal: &str) -> Option<&LiveAcl> {
        self.acls.iter().find(|acl| acl.principal == principal)
    }
}

/// Returns the principal string of a group.
pub fn group_principal(name: &str) -> String {
    format!("group:{name}")
}

/// Returns the principal string of a service principal.
pub fn service_principal_principal(application_id: &str) -> String {
    format!("service_principal:{application_id}")
}
