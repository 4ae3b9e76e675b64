//! Reads the live state of every workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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
    // One shared copy each, since a fleet's state is large and every workspace task reads it.
    let shared_config = Arc::new(config.clone());
    let shared_state = Arc::new(state.clone());
    let mut tasks = JoinSet::new();
    for workspace in &config.workspaces {
        let client = workspaces.client(&workspace.name).clone();
        let config = shared_config.clone();
        let state = shared_state.clone();
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

/// Workspace identities that this process verified, by workspace URL: the id and the time of the
/// check.
static VERIFIED_IDENTITIES: Mutex<BTreeMap<String, (String, Instant)>> = Mutex::new(BTreeMap::new());

/// How long an identity that this process verified counts as verified for [`verified_recently`].
const VERIFIED_IDENTITY_REUSE: Duration = Duration::from_secs(60);

/// Tells whether this process verified, less than a minute ago, that the workspace behind
/// `client` has `workspace_id`, so that apply right after a refresh need not ask again.
pub fn verified_recently(client: &WorkspaceClient, workspace_id: &str) -> bool {
    let verified = VERIFIED_IDENTITIES.lock().unwrap_or_else(PoisonError::into_inner);
    verified
        .get(client.base_url())
        .is_some_and(|(id, at)| id == workspace_id && at.elapsed() < VERIFIED_IDENTITY_REUSE)
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
    let mut verified = VERIFIED_IDENTITIES.lock().unwrap_or_else(PoisonError::into_inner);
    verified.insert(client.base_url().to_owned(), (actual.clone(), Instant::now()));
    Ok(actual)
}

/// Reads one workspace in one wave of concurrent requests. The wave reads the identity, the
/// managed group and service principal (one SCIM filter each, which also matches the ids recorded
/// in state), the token list, both permission objects, and the secrets and ACLs of every managed
/// scope. A second wave follows only for secret values whose last update time changed and, in
/// authoritative mode, for groups with token permissions that were not read yet.
async fn read_workspace(config: &Config, state: &State, name: &str, client: &WorkspaceClient) -> Result<LiveWorkspace, EngineError> {
    let wrap = |source| EngineError::refresh(name, source);
    let is_registry = config.links.iter().any(|link| link.registry == name);
    let is_reader = config.links.iter().any(|link| link.reader == name);

    let identity = verify_identity(config, name, client);
    let groups = async { client.list_groups(Some(&group_filter(config, state, name))).await };
    let registry = async {
        if is_registry { read_registry(config, state, name, client).await.map(Some) } else { Ok(None) }
    };
    let scopes = async {
        if is_reader { read_scopes(config, state, name, client).await } else { Ok(Vec::new()) }
    };
    let (identity, reads) = tokio::join!(identity, async { tokio::try_join!(groups, registry, scopes) });
    // A wrong workspace is reported as such, even when its other reads failed too.
    let workspace_id = identity?;
    let (groups, registry, scopes) = reads.map_err(wrap)?;

    let mut live = LiveWorkspace { name: name.to_owned(), workspace_id, ..LiveWorkspace::default() };
    live.groups = groups.into_iter().map(live_group).collect();
    live.scopes = scopes;
    if let Some(registry) = registry {
        live.service_principals = registry.service_principals;
        live.tokens = registry.tokens;
        live.token_permissions = registry.token_permissions;
        live.registry_permissions = registry.registry_permissions;
    }
    if config.token_usage.mode == mlops_config::TokenUsageMode::Authoritative {
        read_grantee_groups(config, state, client, &mut live).await.map_err(wrap)?;
    }
    Ok(live)
}

/// Returns the SCIM filter of the groups a refresh reads: the managed group by name and by the id
/// recorded in state, and in authoritative mode also `admins` and the configured token usage
/// groups, which usually hold token permissions.
fn group_filter(config: &Config, state: &State, name: &str) -> String {
    let mut clauses = vec![scim_eq("displayName", &config.names.group)];
    if config.token_usage.mode == mlops_config::TokenUsageMode::Authoritative {
        let expected_grantees = std::iter::once("admins").chain(config.additional_token_usage_groups.iter().map(String::as_str));
        clauses.extend(expected_grantees.map(|group| scim_eq("displayName", group)));
    }
    if let Some(recorded) = state.get(&single(name, Kind::Group))
        && !recorded.remote_id.is_empty()
    {
        clauses.push(scim_eq("id", &recorded.remote_id));
    }
    let mut seen = BTreeSet::new();
    clauses.retain(|clause| seen.insert(clause.clone()));
    clauses.join(" or ")
}

/// Returns the SCIM filter clause `<attribute> eq "<value>"`, escaping quotes and backslashes.
fn scim_eq(attribute: &str, value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{attribute} eq \"{escaped}\"")
}

/// Reads the members of every group with token permissions, and of `admins`, so that a plan
/// can count the tokens that authoritative mode would revoke. The groups that the first
/// wave did not read are fetched with one SCIM filter. Groups of the first wave that are neither
/// managed nor grantees are dropped, so the plan sees the same groups however they were read.
async fn read_grantee_groups(config: &Config, state: &State, client: &WorkspaceClient, live: &mut LiveWorkspace) -> Result<(), mlops_databricks::Error> {
    let mut names: BTreeSet<String> = BTreeSet::from(["admins".to_owned()]);
    for grant in live.token_permissions.iter().flatten() {
        if let Some(name) = grant.principal.strip_prefix("group:") {
            names.insert(name.to_owned());
        }
    }
    let recorded_id = state.get(&single(&live.name, Kind::Group)).map(|recorded| recorded.remote_id.clone());
    live.groups.retain(|group| {
        names.contains(&group.display_name) || group.display_name == config.names.group || Some(&group.id) == recorded_id.as_ref()
    });
    names.retain(|name| !live.groups.iter().any(|group| group.display_name == *name));
    if names.is_empty() {
        return Ok(());
    }

    let filter = names.iter().map(|name| scim_eq("displayName", name)).collect::<Vec<_>>().join(" or ");
    live.groups.extend(client.list_groups(Some(&filter)).await?.into_iter().map(live_group));
    Ok(())
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
    let filter = service_principal_filter(config, state, name);
    let principals = async { client.list_service_principals(Some(&filter)).await };
    let tokens = async { client.list_tokens().await };
    let token_permissions = async { client.get_permissions(PermissionObject::Tokens).await };
    let registry_permissions = async { client.get_permissions(PermissionObject::RegistryRoot).await };
    let (service_principals, tokens, token_permissions, registry_permissions) =
        tokio::try_join!(principals, tokens, token_permissions, registry_permissions)?;

    Ok(RegistryRead {
        service_principals: service_principals.into_iter().map(live_service_principal).collect(),
        tokens: tokens.into_iter().map(live_token).collect(),
        token_permissions: token_permissions.map(grants),
        registry_permissions: registry_permissions.map(grants).unwrap_or_default(),
    })
}

/// Returns the SCIM filter of the managed service principal: by the pinned application id, else by
/// display name, and also by the id recorded in state.
fn service_principal_filter(config: &Config, state: &State, name: &str) -> String {
    let pinned = config.workspace(name).and_then(|workspace| workspace.service_principal_application_id.clone());
    let mut filter = match &pinned {
        Some(application_id) => scim_eq("applicationId", application_id),
        None => scim_eq("displayName", &config.names.service_principal),
    };
    if let Some(recorded) = state.get(&single(name, Kind::ServicePrincipal))
        && !recorded.remote_id.is_empty()
    {
        filter.push_str(" or ");
        filter.push_str(&scim_eq("id", &recorded.remote_id));
    }
    filter
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

/// Inputs of the read of one managed scope.
struct ScopeRead {
    /// The scope name as the configuration spells it; the service compares names without case.
    name: String,
    /// Keys that the configuration or the state manages, with the last update time recorded in
    /// state (`None` when state has none).
    managed_keys: BTreeMap<String, Option<i64>>,
}

/// Reads the secrets and ACLs of every managed scope, all scopes at once. A scope is read by the
/// name the configuration gives it, so no scope list is needed: a scope that does not exist is
/// left out. A secret value is read only when the server's last update time differs from the
/// recorded one, and only its SHA-256 is kept.
async fn read_scopes(config: &Config, state: &State, name: &str, client: &WorkspaceClient) -> Result<Vec<LiveScope>, mlops_databricks::Error> {
    let mut tasks = JoinSet::new();
    for scope in managed_scopes(config, state, name) {
        let client = client.clone();
        tasks.spawn(async move { read_scope(&client, scope).await });
    }

    let mut scopes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let read = joined.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        scopes.extend(read?);
    }
    scopes.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(scopes)
}

/// Lists the scopes that the links from `reader` write, once each, with their managed keys.
fn managed_scopes(config: &Config, state: &State, reader: &str) -> Vec<ScopeRead> {
    let mut scopes: BTreeMap<String, ScopeRead> = BTreeMap::new();
    for link in config.links_from(reader) {
        let scope = scopes
            .entry(link.scope.to_lowercase())
            .or_insert_with(|| ScopeRead { name: link.scope.clone(), managed_keys: BTreeMap::new() });
        for suffix in mlops_plan::desired::SECRET_SUFFIXES {
            let key = format!("{}-{suffix}", link.prefix);
            let recorded = recorded_time(state, &format!("{reader}/secret/{}/{key}", scope.name));
            scope.managed_keys.insert(key, recorded);
        }
    }

    let prefix = format!("{reader}/secret/");
    for resource in state.resources.iter().filter(|resource| resource.kind == "secret" && resource.address.starts_with(&prefix)) {
        let Some((scope_name, key)) = resource.address[prefix.len()..].split_once('/') else { continue };
        if let Some(scope) = scopes.get_mut(&scope_name.to_lowercase()) {
            scope.managed_keys.entry(key.to_owned()).or_insert_with(|| recorded_time(state, &resource.address));
        }
    }
    scopes.into_values().collect()
}

fn recorded_time(state: &State, address: &str) -> Option<i64> {
    state
        .get(address)
        .and_then(|resource| resource.attributes.get("last_updated_timestamp"))
        .and_then(serde_json::Value::as_i64)
}

/// Reads one scope's secrets and ACLs together, then the values of the managed secrets whose
/// last update time differs from the recorded one. Returns `None` when the scope does not exist.
async fn read_scope(client: &WorkspaceClient, scope: ScopeRead) -> Result<Option<LiveScope>, mlops_databricks::Error> {
    let (secrets, acls) = tokio::join!(client.list_secrets(&scope.name), client.list_acls(&scope.name));
    let (secrets, acls) = match (secrets, acls) {
        (Ok(secrets), Ok(acls)) => (secrets, acls),
        (Err(error), _) | (_, Err(error)) if error.is_not_found() => return Ok(None),
        (Err(error), _) | (_, Err(error)) => return Err(error),
    };

    let changed: Vec<String> = secrets
        .iter()
        .filter(|secret| scope.managed_keys.get(&secret.key).is_some_and(|recorded| *recorded != Some(secret.last_updated_timestamp)))
        .map(|secret| secret.key.clone())
        .collect();
    let mut fingerprints = read_fingerprints(client, &scope.name, changed).await?;

    let secrets = secrets
        .into_iter()
        .map(|secret| LiveSecret {
            value_sha256: fingerprints.remove(&secret.key).flatten(),
            key: secret.key,
            last_updated_timestamp: secret.last_updated_timestamp,
        })
        .collect();
    let acls = acls.into_iter().map(|acl| LiveAcl { principal: acl.principal, permission: acl.permission.to_string() }).collect();
    Ok(Some(LiveScope { name: scope.name, read: true, secrets, acls }))
}

/// Reads the values of `keys` concurrently and returns the SHA-256 of each, by key; a secret that
/// vanished in between has `None`.
async fn read_fingerprints(client: &WorkspaceClient, scope: &str, keys: Vec<String>) -> Result<BTreeMap<String, Option<String>>, mlops_databricks::Error> {
    let mut tasks = JoinSet::new();
    for key in keys {
        let client = client.clone();
        let scope = scope.to_owned();
        tasks.spawn(async move {
            let value = client.get_secret(&scope, &key).await?;
            Ok::<_, mlops_databricks::Error>((key, value.map(|value| fingerprint(value.expose_secret()))))
        });
    }

    let mut fingerprints = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (key, sha256) = joined.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))?;
        fingerprints.insert(key, sha256);
    }
    Ok(fingerprints)
}
