//! `mlops verify`: checks each link end to end, as a remote MLflow reader would use it.
//!
//! For every link it reads the three secrets from the reader's scope, checks that the host and
//! workspace id name the registry workspace, and that the token authenticates as the registry's
//! service principal and can search the registry. It prints one line per link on stdout. It
//! never prints a secret value, so a stored host or id is quoted only when it has the shape of one.

use std::path::Path;

use mlops_config::{Config, Link, Workspace};
use mlops_databricks::{Credentials, Error as ClientError, WorkspaceClient};
use mlops_plan::address::{Kind, single};
use mlops_state::State;
use secrecy::{ExposeSecret, SecretString};

use super::hinted;
use crate::session::Session;

/// Longest stored host or workspace id that a message may quote.
const MAX_QUOTED_LENGTH: usize = 200;

pub async fn run(config_path: &Path) -> anyhow::Result<u8> {
    let session = Session::open(config_path, "verify").await?;
    let state = session.store.read()?.unwrap_or_else(State::new);
    let total = session.config.links.len();
    let mut broken = Vec::new();

    for link in &session.config.links {
        let name = format!("{} -> {}", link.reader, link.registry);
        match check_link(&session, &state, link).await {
            Ok(()) => super::print_stdout(&format!("ok      {name} (scope `{}`, prefix `{}`)\n", link.scope, link.prefix))?,
            Err(problem) => {
                super::print_stdout(&format!("broken  {name}: {problem}\n"))?;
                broken.push(name);
            }
        }
    }

    if broken.is_empty() {
        super::print_stdout(&format!("All {total} links work.\n"))?;
        return Ok(0);
    }
    Err(hinted(
        format!("{} of {total} links are broken: {}", broken.len(), broken.join(", ")),
        "the lines above give each reason; run `mlops plan` to see the repair, then `mlops apply`",
    ))
}

/// Checks one link, and returns what is wrong with it as the error.
async fn check_link(session: &Session, state: &State, link: &Link) -> Result<(), String> {
    let reader = session.workspaces.client(&link.reader);
    let registry_client = session.workspaces.client(&link.registry);
    let registry = session.config.workspace(&link.registry).ok_or("the registry workspace is not configured")?;

    check_readers(&session.config, reader, link).await?;
    let host = read_secret(reader, link, "host").await?;
    check_host(link, registry, host.expose_secret())?;

    let workspace_id = read_secret(reader, link, "workspace-id").await?;
    check_workspace_id(link, registry, registry_client, workspace_id.expose_secret()).await?;

    let token = read_secret(reader, link, "token").await?;
    let as_principal = registry_client
        .with_credentials(Credentials::Bearer(token))
        .map_err(|error| format!("cannot build a client for the stored token: {error}"))?;
    check_principal(&session.config, state, link, registry_client, &as_principal).await?;

    as_principal
        .search_registered_models(None)
        .await
        .map_err(|error| format!("the stored token cannot search the registry: {}", describe_error(&error)))?;
    Ok(())
}

/// Checks that every configured scope reader may read the link's scope, as MLflow running as
/// that reader needs.
async fn check_readers(config: &mlops_config::Config, reader: &WorkspaceClient, link: &Link) -> Result<(), String> {
    let acls = reader
        .list_acls(&link.scope)
        .await
        .map_err(|error| format!("cannot list the ACLs of scope `{}`: {error}", link.scope))?;
    for principal in &config.names.scope_readers {
        if !acls.iter().any(|acl| &acl.principal == principal) {
            return Err(format!("`{principal}` has no READ on scope `{}`, so its notebooks and jobs cannot read the registry", link.scope));
        }
    }
    Ok(())
}

/// Reads `<prefix>-<suffix>` from the link's scope in the reader workspace.
async fn read_secret(reader: &WorkspaceClient, link: &Link, suffix: &str) -> Result<SecretString, String> {
    let key = format!("{}-{suffix}", link.prefix);
    reader
        .get_secret(&link.scope, &key)
        .await
        .map_err(|error| format!("cannot read secret `{}/{key}`: {error}", link.scope))?
        .ok_or_else(|| format!("secret `{}/{key}` is missing", link.scope))
}

/// Checks that the stored host is the registry's configured host.
fn check_host(link: &Link, registry: &Workspace, stored: &str) -> Result<(), String> {
    if stored.trim_end_matches('/') == registry.host {
        return Ok(());
    }
    let shaped = (stored.starts_with("https://") || stored.starts_with("http://"))
        && !stored.contains(|character: char| character.is_whitespace() || character == '?' || character == '@');
    Err(format!(
        "`{}-host` contains {}, expected {}",
        link.prefix,
        quote_if(stored, shaped, "a host"),
        registry.host
    ))
}

/// Checks that the stored workspace id is the configured one and the one the registry reports.
async fn check_workspace_id(link: &Link, registry: &Workspace, registry_client: &WorkspaceClient, stored: &str) -> Result<(), String> {
    let shaped = !stored.is_empty() && stored.bytes().all(|byte| byte.is_ascii_digit());
    let quoted = quote_if(stored, shaped, "a workspace id");
    if let Some(configured) = &registry.workspace_id
        && stored != configured
    {
        return Err(format!("`{}-workspace-id` contains {quoted}, but workspace `{}` is configured as {configured}", link.prefix, link.registry));
    }

    let me = registry_client
        .me()
        .await
        .map_err(|error| format!("cannot reach registry workspace `{}` with its configured credentials: {error}", link.registry))?;
    match me.workspace_id {
        Some(live) if live == stored => Ok(()),
        Some(live) => Err(format!("`{}-workspace-id` contains {quoted}, but the registry reports workspace {live}", link.prefix)),
        None => Err(format!("registry workspace `{}` sent no X-Databricks-Org-Id header, so its id cannot be checked", link.registry)),
    }
}

/// Checks that the stored token authenticates as the registry's service principal.
async fn check_principal(
    config: &Config,
    state: &State,
    link: &Link,
    registry_client: &WorkspaceClient,
    as_principal: &WorkspaceClient,
) -> Result<(), String> {
    let me = as_principal
        .me()
        .await
        .map_err(|error| format!("the stored token does not authenticate to the registry: {}", describe_error(&error)))?;
    let expected = expected_application_ids(config, state, link, registry_client).await?;
    if expected.contains(&me.user_name) {
        return Ok(());
    }
    Err(format!(
        "the stored token authenticates as `{}`, not as the service principal `{}` ({})",
        me.user_name,
        config.names.service_principal,
        expected.join(", ")
    ))
}

/// Returns the application ids that the link's token may belong to: the service principal in
/// the state, else the pinned one, else every live one with the configured display name.
async fn expected_application_ids(config: &Config, state: &State, link: &Link, registry_client: &WorkspaceClient) -> Result<Vec<String>, String> {
    let recorded = state
        .get(&single(&link.registry, Kind::ServicePrincipal))
        .and_then(|resource| resource.attributes.get("application_id"))
        .and_then(serde_json::Value::as_str)
        .filter(|id| !id.is_empty());
    if let Some(id) = recorded {
        return Ok(vec![id.to_owned()]);
    }
    let pinned = config.workspace(&link.registry).and_then(|workspace| workspace.service_principal_application_id.clone());
    if let Some(id) = pinned {
        return Ok(vec![id]);
    }

    let filter = format!("displayName eq \"{}\"", config.names.service_principal);
    let live = registry_client
        .list_service_principals(Some(&filter))
        .await
        .map_err(|error| format!("cannot list the service principals of `{}`: {error}", link.registry))?;
    if live.is_empty() {
        return Err(format!("registry workspace `{}` has no service principal `{}`", link.registry, config.names.service_principal));
    }
    Ok(live.into_iter().map(|principal| principal.application_id).collect())
}

/// Describes a client error of a call made with the stored token.
fn describe_error(error: &ClientError) -> String {
    match error {
        ClientError::Auth { status, message, .. } => format!("{status} {message}; the token was revoked, has expired or belongs to another workspace"),
        other => other.to_string(),
    }
}

/// Quotes a stored value when it has the expected shape, and otherwise withholds it, because a
/// value in the wrong secret may be a token.
fn quote_if(value: &str, shaped: bool, description: &str) -> String {
    if shaped && value.len() <= MAX_QUOTED_LENGTH {
        format!("`{value}`")
    } else {
        format!("a value that is not {description} (not shown)")
    }
}
