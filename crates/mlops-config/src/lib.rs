//! Loads `mlops.yaml` and turns it into a validated [`Config`].
//!
//! Loading happens in two stages: a strict serde pass over the YAML (unknown keys, duplicate keys
//! and wrong types fail with file, line and column), then semantic validation into the resolved
//! types below, with defaults filled in and relative paths resolved against the file's folder.
//! The semantic stage reports every problem it finds, not only the first. Nothing here touches
//! the network. `docs/configuration.md` is the user's reference for every key.

mod error;
mod formats;
mod host;
mod raw;
#[cfg(test)]
mod tests;
mod validate;
mod yaml;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use error::{ConfigError, Position, Problem};

/// Reads and validates the configuration file; no network access.
///
/// # Errors
///
/// Returns [`ConfigError`] when the file cannot be read, is not UTF-8, or fails [`parse`].
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|source| ConfigError::NotUtf8 {
        path: path.to_owned(),
        source,
    })?;

    parse(path, text)
}

/// Parses and validates configuration text.
///
/// `path` names the file in messages, as given, and its folder is the base of relative paths
/// in the file. A relative `path` is taken from the current directory.
///
/// # Errors
///
/// Returns [`ConfigError`] for an empty file, invalid YAML, a duplicate or unknown key, a value of
/// the wrong type, or a broken rule ([`ConfigError::Invalid`] lists every such problem).
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let absolute = std::path::absolute(path).map_err(|source| ConfigError::ResolvePath {
        path: path.to_owned(),
        source,
    })?;
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));

    let raw = yaml::read_raw(path, text)?;
    validate::validate(&absolute, sha256, raw).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Absolute path of the configuration file.
    pub path: PathBuf,
    /// Hex SHA-256 of the configuration file's bytes, recorded in saved plans.
    pub sha256: String,
    /// Workspaces in the order they are declared.
    pub workspaces: Vec<Workspace>,
    /// Groups that get `CAN_USE` on token permissions beside the service principal group.
    pub additional_token_usage_groups: Vec<String>,
    /// Token permission settings.
    pub token_usage: TokenUsage,
    /// Lifetime and rotation window of the service principal tokens.
    pub tokens: TokenPolicy,
    /// Links in declaration order; the default is dev → staging, dev → prod, staging → prod.
    pub links: Vec<Link>,
    /// Names of the managed objects.
    pub names: Names,
    /// Absolute path of the state file.
    pub state_path: PathBuf,
    /// Set when every workspace is served by the embedded emulator.
    pub emulator: Option<EmulatorSettings>,
}

/// One Databricks workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The name used in links, addresses and output names (`dev`, `staging`, `prod`).
    pub name: String,
    /// The workspace origin: scheme and host, no path, no trailing slash.
    pub host: String,
    /// The numeric workspace id, required for a registry workspace.
    pub workspace_id: Option<String>,
    /// Credential setting of this workspace.
    pub auth: Auth,
    /// Pins the service principal by application id when several share the display name.
    pub service_principal_application_id: Option<String>,
}

/// How `mlops` authenticates to one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A section of `~/.databrickscfg` or of `$DATABRICKS_CONFIG_FILE`.
    Profile(String),
    /// A personal access token in this environment variable.
    TokenEnv(String),
    /// OAuth machine-to-machine credentials in these environment variables.
    OAuthEnv {
        client_id_env: String,
        client_secret_env: String,
    },
}

/// Mode of token permission management (`token_usage.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUsageMode {
    /// Grant with `PATCH` and remove only grants that mlops made.
    Additive,
    /// Make the token permissions exactly the declared set.
    Authoritative,
}

/// Token permission settings (`token_usage`).
#[derive(Debug, Clone)]
pub struct TokenUsage {
    /// `additive` by default.
    pub mode: TokenUsageMode,
    /// Principals that authoritative mode may take `CAN_USE` away from.
    pub allow_revoke: Vec<String>,
}

/// Lifetime and rotation window of the service principal tokens.
#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy {
    /// Days from creation to expiry, 100 by default.
    pub lifetime_days: u32,
    /// Days before expiry when a token is due for rotation, 30 by default.
    pub rotate_before_days: u32,
}

/// One reader → registry link and the secret scope that carries it.
#[derive(Debug, Clone)]
pub struct Link {
    pub reader: String,
    pub registry: String,
    /// Secret scope in the reader workspace, `remote-mr-<registry>` by default.
    pub scope: String,
    /// Secret key prefix, the registry workspace's name by default.
    pub prefix: String,
}

/// Names of the managed objects; each has the Terraform module's value as default.
#[derive(Debug, Clone)]
pub struct Names {
    /// `mlops-service-principals`.
    pub group: String,
    /// `READ-only Model Registry Service Principal`.
    pub service_principal: String,
    /// Entitlements of the service principal, `[allow-cluster-create]`.
    pub service_principal_entitlements: Vec<String>,
    /// Principals that get `READ` on every reader scope, `[users]`.
    pub scope_readers: Vec<String>,
}

/// Settings of the embedded emulator (`emulator`).
#[derive(Debug, Clone)]
pub struct EmulatorSettings {
    /// Absolute path of the emulator's data file.
    pub data: PathBuf,
}

impl Config {
    /// Returns the workspace with this name.
    pub fn workspace(&self, name: &str) -> Option<&Workspace> {
        self.workspaces
            .iter()
            .find(|workspace| workspace.name == name)
    }

    /// Returns the workspaces that are the registry of at least one link, in declaration order.
    pub fn registry_workspaces(&self) -> Vec<&Workspace> {
        self.workspaces
            .iter()
            .filter(|workspace| {
                self.links
                    .iter()
                    .any(|link| link.registry == workspace.name)
            })
            .collect()
    }

    /// Returns the links whose reader is this workspace.
    pub fn links_from<'a>(&'a self, reader: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links.iter().filter(move |link| link.reader == reader)
    }
}
