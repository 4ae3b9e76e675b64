//! The objects a configuration declares.

use std::collections::BTreeSet;

use mlops_config::{Config, Link};

use crate::address::{Kind, keyed, single};

/// The secret key suffixes written into every reader scope.
pub const SECRET_SUFFIXES: [&str; 3] = ["host", "token", "workspace-id"];

/// One object that the configuration declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredResource {
    pub address: String,
    pub kind: Kind,
    pub workspace: String,
    pub detail: Detail,
}

/// The properties that distinguish one desired object from another of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    Group { display_name: String },
    ServicePrincipal { display_name: String, entitlements: Vec<String> },
    GroupMember,
    /// A `CAN_USE` grant on the token permissions, to a group.
    TokenPermission { group: String },
    RegistryPermission,
    Token { lifetime_days: u32 },
    SecretScope { name: String },
    Secret { scope: String, key: String, value: SecretValue },
    SecretAcl { scope: String, principal: String },
}

/// The value a managed secret must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretValue {
    /// A value known from the configuration: the registry host or workspace id.
    Plain { text: String, registry: String },
    /// The value of the registry workspace's service principal token.
    Token { registry: String },
}

/// Lists every object the configuration declares, registry workspaces first, in creation order
/// within each workspace.
pub fn desired(config: &Config) -> Vec<DesiredResource> {
    let mut resources = Vec::new();
    for workspace in config.registry_workspaces() {
        push_registry_objects(config, &workspace.name, &mut resources);
    }
    for workspace in &config.workspaces {
        push_reader_objects(config, &workspace.name, &mut resources);
    }
    resources
}

/// Returns the group names that must hold `CAN_USE` on token permissions, the managed group first.
pub fn token_usage_groups(config: &Config) -> Vec<String> {
    let mut groups = vec![config.names.group.clone()];
    for group in &config.additional_token_usage_groups {
        if !groups.contains(group) {
            groups.push(group.clone());
        }
    }
    groups
}

fn push_registry_objects(config: &Config, workspace: &str, resources: &mut Vec<DesiredResource>) {
    let mut push = |kind: Kind, address: String, detail: Detail| {
        resources.push(DesiredResource { address, kind, workspace: workspace.to_owned(), detail });
    };

    push(
        Kind::Group,
        single(workspace, Kind::Group),
        Detail::Group { display_name: config.names.group.clone() },
    );
    for group in token_usage_groups(config) {
        push(
            Kind::TokenPermission,
            keyed(workspace, Kind::TokenPermission, &group),
            Detail::TokenPermission { group },
        );
    }
    push(
        Kind::ServicePrincipal,
        single(workspace, Kind::ServicePrincipal),
        Detail::ServicePrincipal {
            display_name: config.names.service_principal.clone(),
            entitlements: config.names.service_principal_entitlements.clone(),
        },
    );
    push(Kind::GroupMember, single(workspace, Kind::GroupMember), Detail::GroupMember);
    push(Kind::RegistryPermission, single(workspace, Kind::RegistryPermission), Detail::RegistryPermission);
    push(
        Kind::Token,
        single(workspace, Kind::Token),
        Detail::Token { lifetime_days: config.tokens.lifetime_days },
    );
}

fn push_reader_objects(config: &Config, reader: &str, resources: &mut Vec<DesiredResource>) {
    let links: Vec<&Link> = config.links_from(reader).collect();
    let mut scopes = BTreeSet::new();
    for link in &links {
        if scopes.insert(link.scope.clone()) {
            resources.push(DesiredResource {
                address: keyed(reader, Kind::SecretScope, &link.scope),
                kind: Kind::SecretScope,
                workspace: reader.to_owned(),
                detail: Detail::SecretScope { name: link.scope.clone() },
            });
        }
    }

    for link in &links {
        let registry = config.workspace(&link.registry).expect("validated link registry");
        for suffix in SECRET_SUFFIXES {
            let key = format!("{}-{suffix}", link.prefix);
            let value = match suffix {
                "host" => SecretValue::Plain { text: registry.host.clone(), registry: registry.name.clone() },
                "workspace-id" => SecretValue::Plain {
                    text: registry.workspace_id.clone().unwrap_or_default(),
                    registry: registry.name.clone(),
                },
                _ => SecretValue::Token { registry: registry.name.clone() },
            };
            resources.push(DesiredResource {
                address: keyed(reader, Kind::Secret, &format!("{}/{key}", link.scope)),
                kind: Kind::Secret,
                workspace: reader.to_owned(),
                detail: Detail::Secret { scope: link.scope.clone(), key, value },
            });
        }
    }

    for scope in &scopes {
        for principal in scope_reader_principals(config, reader) {
            resources.push(DesiredResource {
                address: keyed(reader, Kind::SecretAcl, &format!("{scope}/{principal}")),
                kind: Kind::SecretAcl,
                workspace: reader.to_owned(),
                detail: Detail::SecretAcl { scope: scope.clone(), principal },
            });
        }
    }
}

/// Returns the principals that get `READ` on the reader's scopes whatever the live state: the
/// configured scope readers, plus the managed group where this workspace is also a registry.
/// The managed group of a pure reader is added by the diff only when it exists live.
pub fn scope_reader_principals(config: &Config, reader: &str) -> Vec<String> {
    let mut principals = config.names.scope_readers.clone();
    let is_registry = config.links.iter().any(|link| link.registry == reader);
    if is_registry && !principals.contains(&config.names.group) {
        principals.push(config.names.group.clone());
    }
    principals
}
