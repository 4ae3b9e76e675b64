//! Resource kinds and the addresses that name managed objects.
//!
//! An address is `<workspace>/<kind>` for the one-per-workspace objects and
//! `<workspace>/<kind>/<key>` otherwise, for example `dev/secret/remote-mr-prod/prod-token`.

use serde::{Deserialize, Serialize};

/// The kinds of objects that `mlops` manages, in the order apply creates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Group,
    SecretScope,
    TokenPermission,
    ServicePrincipal,
    GroupMember,
    RegistryPermission,
    Token,
    Secret,
    SecretAcl,
}

impl Kind {
    /// Every kind, in creation order.
    pub const ALL: [Kind; 9] = [
        Kind::Group,
        Kind::SecretScope,
        Kind::TokenPermission,
        Kind::ServicePrincipal,
        Kind::GroupMember,
        Kind::RegistryPermission,
        Kind::Token,
        Kind::Secret,
        Kind::SecretAcl,
    ];

    /// Returns the name used in addresses and in the state file.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Group => "group",
            Kind::SecretScope => "secret_scope",
            Kind::TokenPermission => "token_permission",
            Kind::ServicePrincipal => "service_principal",
            Kind::GroupMember => "group_member",
            Kind::RegistryPermission => "registry_permission",
            Kind::Token => "token",
            Kind::Secret => "secret",
            Kind::SecretAcl => "secret_acl",
        }
    }

    /// Parses a kind name as written in the state file.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Returns the apply stage: steps of one stage depend only on steps of earlier stages.
    pub fn stage(self) -> usize {
        match self {
            Kind::Group | Kind::SecretScope => 0,
            Kind::TokenPermission | Kind::ServicePrincipal | Kind::SecretAcl => 1,
            Kind::GroupMember | Kind::RegistryPermission => 2,
            Kind::Token => 3,
            Kind::Secret => 4,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Returns the address of a one-per-workspace object.
pub fn single(workspace: &str, kind: Kind) -> String {
    format!("{workspace}/{kind}")
}

/// Returns the address of a keyed object.
pub fn keyed(workspace: &str, kind: Kind, key: &str) -> String {
    format!("{workspace}/{kind}/{key}")
}
