//! Builds one API client per configured workspace.

use std::collections::BTreeMap;
use std::env;

use mlops_config::{Auth, Config};
use mlops_databricks::{ClientOptions, Credentials, WorkspaceClient, profile};
use secrecy::SecretString;

use crate::error::EngineError;

/// The address and credentials of a workspace, when they are not the configured host and auth.
pub struct Endpoint {
    pub base_url: String,
    pub credentials: Credentials,
}

/// The clients of every configured workspace, by workspace name.
#[derive(Clone)]
pub struct Workspaces {
    clients: BTreeMap<String, WorkspaceClient>,
}

impl Workspaces {
    /// Returns the client of a workspace.
    ///
    /// # Panics
    ///
    /// Panics when the workspace is not configured, which the configuration's validation rules out.
    pub fn client(&self, workspace: &str) -> &WorkspaceClient {
        &self.clients[workspace]
    }

    /// Returns every workspace name with its client.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &WorkspaceClient)> {
        self.clients.iter()
    }
}

/// Connects to every workspace: through `endpoints` where given (the embedded emulator), else
/// through the configured host and credentials.
///
/// # Errors
///
/// Fails when a credential named by the configuration is missing.
pub fn connect(config: &Config, mut endpoints: BTreeMap<String, Endpoint>) -> Result<Workspaces, EngineError> {
    let mut clients = BTreeMap::new();
    for workspace in &config.workspaces {
        let (base_url, credentials) = match endpoints.remove(&workspace.name) {
            Some(endpoint) => (endpoint.base_url, endpoint.credentials),
            None => (workspace.host.clone(), credentials(&workspace.name, &workspace.auth, &workspace.host)?),
        };
        let client = WorkspaceClient::new(&base_url, credentials, client_options()?)?;
        clients.insert(workspace.name.clone(), client);
    }
    Ok(Workspaces { clients })
}

fn credentials(workspace: &str, auth: &Auth, host: &str) -> Result<Credentials, EngineError> {
    match auth {
        Auth::TokenEnv(variable) => Ok(Credentials::Bearer(read_env(workspace, variable)?)),
        Auth::OAuthEnv { client_id_env, client_secret_env } => {
            let client_id = read_env(workspace, client_id_env)?;
            let client_secret = read_env(workspace, client_secret_env)?;
            Ok(Credentials::OAuthM2m { client_id: secrecy::ExposeSecret::expose_secret(&client_id).to_owned(), client_secret })
        }
        Auth::Profile(name) => profile_credentials(workspace, name, host),
    }
}

fn profile_credentials(workspace: &str, name: &str, host: &str) -> Result<Credentials, EngineError> {
    let credentials_error = |message: String, hint: String| EngineError::Credentials { workspace: workspace.to_owned(), message, hint };
    let file = profile::config_file_path(env::var_os(profile::CONFIG_FILE_ENV), env::home_dir())
        .map_or_else(|| "~/.databrickscfg".to_owned(), |path| format!("`{}`", path.display()));
    let profile = profile::load_profile(name).map_err(|error| {
        credentials_error(
            error.to_string(),
            format!("add a `[{name}]` section with `token`, or `client_id` and `client_secret`, to {file}; {} selects another file", profile::CONFIG_FILE_ENV),
        )
    })?;

    if let Some(profile_host) = &profile.host {
        let normalized = profile_host.trim_end_matches('/');
        // The Databricks CLI accepts a host without a scheme and means https.
        let with_scheme = if normalized.contains("://") { normalized.to_owned() } else { format!("https://{normalized}") };
        if !with_scheme.eq_ignore_ascii_case(host) {
            return Err(credentials_error(
                format!("profile `{name}` in {file} is for host {normalized}, not {host}"),
                format!("point workspace `{workspace}` at a profile for {host}, or fix the `host` of `[{name}]`"),
            ));
        }
    }

    // Like the Databricks SDKs, a profile with both kinds of credentials is ambiguous.
    match (profile.token, profile.client_id, profile.client_secret) {
        (Some(token), None, None) => Ok(Credentials::Bearer(token)),
        (None, Some(client_id), Some(client_secret)) => Ok(Credentials::OAuthM2m { client_id, client_secret }),
        (Some(_), _, _) => Err(credentials_error(
            format!("profile `{name}` in {file} sets both `token` and OAuth client credentials"),
            format!("keep either `token` or `client_id` with `client_secret` in the `[{name}]` section"),
        )),
        (None, Some(_), None) => Err(credentials_error(
            format!("profile `{name}` in {file} has `client_id` but no `client_secret`"),
            format!("add `client_secret` to the `[{name}]` section"),
        )),
        (None, None, Some(_)) => Err(credentials_error(
            format!("profile `{name}` in {file} has `client_secret` but no `client_id`"),
            format!("add `client_id` to the `[{name}]` section"),
        )),
        (None, None, None) => Err(credentials_error(
            format!("profile `{name}` in {file} has no credentials"),
            format!("add `token`, or `client_id` and `client_secret`, to the `[{name}]` section"),
        )),
    }
}

fn read_env(workspace: &str, variable: &str) -> Result<SecretString, EngineError> {
    match env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Ok(SecretString::from(value.trim().to_owned())),
        Ok(_) => Err(EngineError::Credentials {
            workspace: workspace.to_owned(),
            message: format!("environment variable {variable} is empty"),
            hint: format!("export {variable} with the credential of workspace `{workspace}`"),
        }),
        Err(_) => Err(EngineError::Credentials {
            workspace: workspace.to_owned(),
            message: format!("environment variable {variable} is not set"),
            hint: format!("export {variable} with the credential of workspace `{workspace}`"),
        }),
    }
}

/// Returns the client options, with two settings from the environment when set:
/// `MLOPS_RETRY_BUDGET_SECONDS` (default five minutes) and `MLOPS_MAX_CONCURRENT_REQUESTS` per
/// workspace (default 4; 1 makes every workspace's requests sequential).
fn client_options() -> Result<ClientOptions, EngineError> {
    let mut options = ClientOptions::default();
    if let Some(seconds) = env_number("MLOPS_RETRY_BUDGET_SECONDS", "a whole number of seconds")? {
        options.retry_budget = std::time::Duration::from_secs(seconds);
    }
    if let Some(count) = env_number("MLOPS_MAX_CONCURRENT_REQUESTS", "a whole number of at least 1")? {
        if count == 0 {
            return Err(EngineError::Invalid("invalid MLOPS_MAX_CONCURRENT_REQUESTS `0`: expected a whole number of at least 1".to_owned()));
        }
        options.max_concurrent_requests = usize::try_from(count).unwrap_or(usize::MAX);
    }
    Ok(options)
}

fn env_number(variable: &str, expected: &str) -> Result<Option<u64>, EngineError> {
    let Ok(text) = env::var(variable) else { return Ok(None) };
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| EngineError::Invalid(format!("invalid {variable} `{text}`: expected {expected}")))
}
