//! `mlops verify`: checks each link end to end, as a remote MLflow client would use it.

use std::path::Path;

use mlops_databricks::Credentials;
use mlops_plan::address::{Kind, single};
use secrecy::ExposeSecret;

use super::hinted;
use crate::session::Session;

pub async fn run(config_path: &Path) -> anyhow::Result<u8> {
    let session = Session::open(config_path, "verify").await?;
    let state = session.store.read()?.unwrap_or_else(mlops_state::State::new);
    let mut broken = Vec::new();

    for link in &session.config.links {
        let name = format!("{} -> {}", link.reader, link.registry);
        match check_link(&session, &state, link).await {
            Ok(()) => eprintln!("ok: {name} (scope `{}`, prefix `{}`)", link.scope, link.prefix),
            Err(problem) => {
                eprintln!("broken: {name}: {problem}");
                broken.push(format!("{name}: {problem}"));
            }
        }
    }
    if broken.is_empty() {
        super::print_stdout(&format!("All {} links work.\n", session.config.links.len()))?;
        return Ok(0);
    }
    Err(hinted(
        format!("{} of {} links are broken:\n  {}", broken.len(), session.config.links.len(), broken.join("\n  ")),
        "run `mlops plan` to see the repair, then `mlops apply`",
    ))
}

async fn check_link(session: &Session, state: &mlops_state::State, link: &mlops_config::Link) -> Result<(), String> {
    let reader = session.workspaces.client(&link.reader);
    let registry_client = session.workspaces.client(&link.registry);
    let registry = session.config.workspace(&link.registry).ok_or("the registry workspace is not configured")?;
    let read = |suffix: &'static str| {
        let key = format!("{}-{suffix}", link.prefix);
        async move {
            reader
                .get_secret(&link.scope, &key)
                .await
                .map_err(|error| format!("cannot read secret `{}/{key}`: {error}", link.scope))?
                .ok_or_else(|| format!("secret `{}/{key}` is missing", link.scope))
        }
    };

    let host = read("host").await?;
    if host.expose_secret() != registry.host {
        return Err(format!("`{}-host` holds {}, expected {}", link.prefix, host.expose_secret(), registry.host));
    }
    let workspace_id = read("workspace-id").await?;
    let live_id = registry_client.me().await.map_err(|error| format!("cannot reach the registry: {error}"))?.workspace_id.unwrap_or_default();
    if workspace_id.expose_secret() != live_id {
        return Err(format!("`{}-workspace-id` holds {}, but the registry is workspace {live_id}", link.prefix, workspace_id.expose_secret()));
    }

    let token = read("token").await?;
    let as_principal = registry_client
        .with_credentials(Credentials::Bearer(token))
        .map_err(|error| format!("cannot build a client: {error}"))?;
    let me = as_principal.me().await.map_err(|error| format!("the stored token does not authenticate: {error}"))?;
    let expected = state
        .get(&single(&link.registry, Kind::ServicePrincipal))
        .and_then(|resource| resource.attributes.get("application_id"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if !expected.is_empty() && me.user_name != expected {
        return Err(format!("the stored token authenticates as `{}`, not as the service principal {expected}", me.user_name));
    }
    as_principal
        .search_registered_models(None)
        .await
        .map_err(|error| format!("the stored token cannot search the registry: {error}"))?;
    Ok(())
}
