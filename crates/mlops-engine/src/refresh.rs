//! Reads the live state of every workspace.

use std::collections::BTreeSet;
use std::sync::Arc;

use mlops_config::Config;
use mlops_databricks::{AccessControl, ObjectPermissions, PermissionObject, Principal, WorkspaceClient};
use mlops_plan::address::{Kind, single};
use mlops_plan::live::{LiveAcl, LiveGrant, LiveGroup, LiveScope, LiveSecret, LiveServicePrincipal, LiveToken, LiveWorkspace};
use mlops_plan::{Live, fingerprint};
use mlops_state::State;
use secrecy::ExposeSecret;
use tokio::task::JoinSet;

use crate::connect::Workspaces;
use crate::error::EngineError;
use crate::report::{Event, Reporter};

/// Reads every workspace of the configuration, all of them at once.
///
/// # Errors
///
/// Fails when any workspace cannot be read completely, or when a workspace's
/// `X-Databricks-Org-Id` differs from its configured `workspace_id`: a plan is never made from
/// partial data.
pub async fn refresh(config: &Config, state: &State, workspaces: &Workspaces, reporter: Arc<dyn Reporter>) -> Result<Live, EngineError> {
    let mut tasks = JoinSet::new();
    for workspace in &config.workspaces {
        let client = workspaces.client(&workspace.name).clone();
        let config = config.clone();
        let state = state.clone();
        let name = workspace.name.clone();
        let reporter = reporter.clone();
        tasks.spawn(async move {
            let live = read_workspace(&config, &state, &name, &client).await?;
            reporter.report(Event::Refreshed { workspace: name, requests: 0 });
            Ok::<_, EngineError>(live)
        });
    }

    let mut live = Live::default();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(workspace)) => {
                live.workspaces.insert(workspace.name.clone(), workspace);
            }
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(error) => {
                first_error.get_or_insert(EngineError::Invalid(format!("a refresh task failed: {error}")));
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(live),
    }
}

/// Reads the workspace identity and checks it against the configuration.
///
/// # Errors
///
/// Fails when the identity cannot be read or does not match.
pub async fn verify_identity(config: &Config, name: &str, client: &WorkspaceClient) -> Result<String, EngineError> {
    let me = client.me().await.map_err(|source| EngineError::refresh(name, source))?;
    let Some(actual) = me.workspace_id else {
        return Err(EngineError::MissingWorkspaceId { workspace: name.to_owned() });
    };
    let expected = config.workspace(name).and_then(|workspace| workspace.workspace_id.clone());
    if let Some(expected) = expected
        && expected != actual
    {
        return Err(EngineError::WorkspaceMismatch { workspace: name.to_owned(), expected, actual });
    }
    Ok(actual)
}

async fn read_workspace(config: &Config, state: &State, name: &str, client: &WorkspaceClient) -> Result<LiveWorkspace, EngineError> {
    let workspace_id = verify_identity(config, name, client).await?;
    let wrap = |source| EngineError::refresh(name, source);
    let is_registry = config.links.iter().any(|link| link.registry == name);
    let is_reader = config.links.iter().any(|link| link.reader == name);

    let mut live = LiveWorkspace { name: name.to_owned(), workspace_id, ..LiveWorkspace::default() };
    let groups = read_groups(config, state, name, client);
    let registry = async {
        if is_registry { read_registry(config, state, name, client).await.map(Some) } else { Ok(None) }
    };
    let scopes = async {
        if is_reader { read_scopes(config, state, name, client).await } else { Ok(Vec::new()) }
    };
    let (groups, registry, scopes) = tokio::try_join!(groups, registry, scopes).map_err(wrap)?;

    live.groups = groups;
    live.scopes = scopes;
    if let Some(registry) = registry {
        live.service_principals = registry.service_principals;
        live.tokens = registry.tokens;
        live.token_permissions = registry.token_permissions;
        live.registry_permissions = registry.registry_permissions;
    }
    if config.token_usage.mode == mlops_config::TokenUsageMode::Authoritative {
        read_grantee_groups(client, &mut live).await.map_err(wrap)?;
    }
    Ok(live)
}

/// Reads the members of every group that holds token permissions, and of `admins`, so that a
/// plan can count the tokens that authoritative mode would revoke.
async fn read_grantee_groups(client: &WorkspaceClient, live: &mut LiveWorkspace) -> Result<(), mlops_databricks::Error> {
    let mut names: BTreeSet<String> = BTreeSet::from(["admins".to_owned()]);
    for grant in live.token_permissions.iter().flatten() {
        if let Some(name) = grant.principal.strip_prefix("group:") {
            names.insert(name.to_owned());
        }
    }
    for name in names {
        if live.groups.iter().any(|group| group.display_name == name) {
            continue;
        }
        let filter = format!("displayName eq \"{name}\"");
        live.groups.extend(client.list_groups(Some(&filter)).await?.into_iter().map(live_group));
    }
    Ok(())
}

async fn read_groups(config: &Config, state: &State, name: &str, client: &WorkspaceClient) -> Result<Vec<LiveGroup>, mlops_databricks::Error> {
    let filter = format!("displayName eq \"{}\"", config.names.group);
    let mut groups: Vec<LiveGroup> = client.list_groups(Some(&filter)).await?.into_iter().map(live_group).collect();
    if let Some(recorded) = state.get(&single(name, Kind::Group))
        && !groups.iter().any(|group| group.id == recorded.remote_id)
        && let Some(group) = client.get_group(&recorded.remote_id).await?
    {
        groups.push(live_group(group));
    }
    Ok(groups)
}

fn live_group(group: mlops_databricks::Group) -> LiveGroup {
    LiveGroup {
        id: group.id,
        display_name: group.display_name,
        members: group.members.into_iter().filter_map(|member| member.value).collect(),
    }
}

struct RegistryRead {
    service_principals: Vec<LiveServicePrincipal>,
    tokens: Vec<LiveToken>,
    token_permissions: Option<Vec<LiveGrant>>,
    registry_permissions: Vec<LiveGrant>,
}

async fn read_registry(config: &Config, state: &State, name: &str, client: &WorkspaceClient) -> Result<RegistryRead, mlops_databricks::Error> {
    let pinned = config.workspace(name).and_then(|workspace| workspace.service_principal_application_id.clone());
    let filter = match &pinned {
        Some(application_id) => format!("applicationId eq \"{application_id}\""),
        None => format!("displayName eq \"{}\"", config.names.service_principal),
    };
    let principals = async {
        let mut principals: Vec<LiveServicePrincipal> =
            client.list_service_principals(Some(&filter)).await?.into_iter().map(live_service_principal).collect();
        if let Some(recorded) = state.get(&single(name, Kind::ServicePrincipal))
            && !recorded.remote_id.is_empty()
            && !principals.iter().any(|principal| principal.id == recorded.remote_id)
            && let Some(principal) = client.get_service_principal(&recorded.remote_id).await?
        {
            principals.push(live_service_principal(principal));
        }
        Ok(principals)
    };
    let tokens = async { client.list_tokens().await };
    let token_permissions = async { client.get_permissions(PermissionObject::Tokens).await };
    let registry_permissions = async { client.get_permissions(PermissionObject::RegistryRoot).await };
    let (service_principals, tokens, token_permissions, registry_permissions) =
        tokio::try_join!(principals, tokens, token_permissions, registry_permissions)?;

    Ok(RegistryRead {
        service_principals,
        tokens: tokens.into_iter().map(live_token).collect(),
        token_permissions: token_permissions.map(grants),
        registry_permissions: registry_permissions.map(grants).unwrap_or_default(),
    })
}

fn live_service_principal(principal: mlops_databricks::ServicePrincipal) -> LiveServicePrincipal {
    LiveServicePrincipal {
        id: principal.id,
        application_id: principal.application_id,
        display_name: principal.display_name,
        active: principal.active,
        entitlements: principal.entitlements.into_iter().filter_map(|entitlement| entitlement.value).collect(),
    }
}

fn live_token(token: mlops_databricks::TokenInfo) -> LiveToken {
    LiveToken {
        token_id: token.token_id,
        owner_id: token.owner_id,
        comment: token.comment,
        creation_time: token.creation_time,
        expiry_time: token.expiry_time,
    }
}

/// Flattens an access control list into one grant per principal and level.
pub fn grants(permissions: ObjectPermissions) -> Vec<LiveGrant> {
    let mut grants = Vec::new();
    for entry in permissions.access_control_list {
        let principal = principal_name(&entry);
        for permission in entry.permissions {
            grants.push(LiveGrant { principal: principal.clone(), level: permission.level, inherited: permission.inherited });
        }
    }
    grants
}

fn principal_name(entry: &AccessControl) -> String {
    match &entry.principal {
        Principal::Group(name) => format!("group:{name}"),
        Principal::User(name) => format!("user:{name}"),
        Principal::ServicePrincipal(application_id) => format!("service_principal:{application_id}"),
    }
}

/// Reads every scope name, and the secrets and ACLs of the managed scopes. A secret value is read
/// only when the server's last update time differs from the recorded one, and only its SHA-256 is
/// kept.
async fn read_scopes(config: &Config, state: &State, name: &str, client: &WorkspaceClient) -> Result<Vec<LiveScope>, mlops_databricks::Error> {
    let managed: BTreeSet<String> = config.links_from(name).map(|link| link.scope.to_lowercase()).collect();
    let mut scopes: Vec<LiveScope> = client
        .list_scopes()
        .await?
        .into_iter()
        .map(|scope| LiveScope { name: scope.name, ..LiveScope::default() })
        .collect();

    for scope in scopes.iter_mut().filter(|scope| managed.contains(&scope.name.to_lowercase())) {
        let (secrets, acls) = tokio::try_join!(client.list_secrets(&scope.name), client.list_acls(&scope.name))?;
        scope.read = true;
        scope.acls = acls.into_iter().map(|acl| LiveAcl { principal: acl.principal, permission: acl.permission.to_string() }).collect();
        for secret in secrets {
            let address = format!("{name}/secret/{}/{}", config_scope_name(config, name, &scope.name), secret.key);
            let recorded_time = state
                .get(&address)
                .and_then(|resource| resource.attributes.get("last_updated_timestamp"))
                .and_then(serde_json::Value::as_i64);
            let managed_key = state.get(&address).is_some() || is_managed_key(config, name, &scope.name, &secret.key);
            let value_sha256 = if managed_key && recorded_time != Some(secret.last_updated_timestamp) {
                client.get_secret(&scope.name, &secret.key).await?.map(|value| fingerprint(value.expose_secret()))
            } else {
                None
            };
            scope.secrets.push(LiveSecret { key: secret.key, last_updated_timestamp: secret.last_updated_timestamp, value_sha256 });
        }
    }
    Ok(scopes)
}

/// Returns the scope name as the configuration spells it, since live names may differ in case.
fn config_scope_name(config: &Config, reader: &str, live_name: &str) -> String {
    config
        .links_from(reader)
        .find(|link| link.scope.eq_ignore_ascii_case(live_name))
        .map_or_else(|| live_name.to_owned(), |link| link.scope.clone())
}

fn is_managed_key(config: &Config, reader: &str, scope: &str, key: &str) -> bool {
    config.links_from(reader).filter(|link| link.scope.eq_ignore_ascii_case(scope)).any(|link| {
        mlops_plan::desired::SECRET_SUFFIXES.iter().any(|suffix| key == format!("{}-{suffix}", link.prefix))
    })
}
