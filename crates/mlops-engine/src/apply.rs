//! Carries out a plan step by step.
//!
//! Steps run in stages (see [`Kind::stage`]): every step of a stage depends only on steps of
//! earlier stages, so the steps of one stage run concurrently, each workspace client capping its
//! own concurrency. State is written after every step, and an intent is written before every
//! create that is not idempotent (service principal, token), so a crash leaves a state that the
//! next run can reconcile. Token rotation is create-before-destroy: the old token is revoked
//! only after every reader scope holds the new one and the new one has been verified.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use jiff::Timestamp;
use mlops_config::{Config, TokenUsageMode};
use mlops_databricks::{AccessControlRequest, AclPermission, PermissionObject, Principal, WorkspaceClient};
use mlops_plan::address::{Kind, single};
use mlops_plan::diff::token_comment;
use mlops_plan::plan::{Attributes, string_list};
use mlops_plan::{Action, Change, Plan, fingerprint};
use mlops_state::{Intent, Resource, State, StateStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::connect::Workspaces;
use crate::error::EngineError;
use crate::report::{Event, Reporter};

mod batch;
mod look_first;
mod persist;

/// Lifetime of the personal token that brings a workspace's token permissions into existence.
const FIRST_TOKEN_LIFETIME_SECONDS: i64 = 600;

/// Time between writing a new token into every reader scope and revoking the old one, so that a
/// reader that fetched the old value just before the write can still finish its request.
const REVOKE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Counts of what apply did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ApplyOutcome {
    pub added: usize,
    pub changed: usize,
    pub destroyed: usize,
    pub imported: usize,
    pub rotated: usize,
}

/// Settings of one apply run.
pub struct ApplyOptions {
    pub now: Timestamp,
}

/// Applies the plan.
///
/// # Errors
///
/// Fails before any write when a workspace's identity does not match, or when the plan takes
/// `CAN_USE` from a principal that `token_usage.allow_revoke` does not list. Fails after the
/// failing step otherwise; the state then records every step that completed.
pub async fn apply(
    config: &Config,
    plan: &Plan,
    workspaces: &Workspaces,
    store: &StateStore,
    state: State,
    options: ApplyOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<(State, ApplyOutcome), EngineError> {
    check_revocations(config, plan)?;
    let preflight = batch::preflight(config, plan, workspaces).await?;
    let context = Arc::new(Context::new(config, plan, workspaces, store, state, preflight.workspace_ids, options, reporter));

    context.reporter.report(Event::ApplyStarted { steps: plan.actionable().count() });
    let first_tokens = batch::create_first_tokens(&context, preflight.without_token_permissions).await?;
    let result = run_stages(&context, plan).await;
    let (recorded, ()) = tokio::join!(batch::record_secret_times(&context, plan), batch::revoke_first_tokens(&context, first_tokens));
    result?;
    recorded?;

    let outcome = context.outcome();
    let state = Arc::try_unwrap(context).map_or_else(|context| context.state().clone(), |context| context.state.into_inner().unwrap_or_else(|poison| poison.into_inner()));
    Ok((state, outcome))
}

async fn run_stages(context: &Arc<Context>, plan: &Plan) -> Result<(), EngineError> {
    let (deletions, others): (Vec<&Change>, Vec<&Change>) = plan.actionable().partition(|change| change.action == Action::Delete);
    for stage in 0..=4 {
        let steps: Vec<Change> = others.iter().filter(|change| change.kind.stage() == stage).map(|change| (*change).clone()).collect();
        run_concurrently(context, steps).await?;
    }
    finish_rotations(context).await?;
    for stage in (0..=4).rev() {
        let steps: Vec<Change> = deletions.iter().filter(|change| change.kind.stage() == stage).map(|change| (*change).clone()).collect();
        run_concurrently(context, steps).await?;
    }
    Ok(())
}

/// Runs steps concurrently and returns the first error after every started step has ended.
async fn run_concurrently(context: &Arc<Context>, steps: Vec<Change>) -> Result<(), EngineError> {
    let mut tasks = JoinSet::new();
    for change in steps {
        let context = context.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let action = action_name(change.action).to_owned();
            context.reporter.report(Event::StepStarted { address: change.address.clone(), action: action.clone() });
            let result = persist::run_as_step(run_step(&context, &change)).await;
            // The step counts as done only once the state file holds what it recorded.
            let result = match (result, context.persist().await) {
                (Ok(remote_id), Ok(())) => Ok(remote_id),
                (Err(error), _) | (Ok(_), Err(error)) => Err(error),
            };
            match result {
                Ok(remote_id) => {
                    context.count(change.action);
                    context.reporter.report(Event::StepFinished {
                        address: change.address.clone(),
                        action,
                        elapsed: started.elapsed(),
                        remote_id,
                    });
                    Ok(())
                }
                Err(error) => Err(EngineError::Step { address: change.address.clone(), action, source: Box::new(error) }),
            }
        });
    }

    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|error| Err(EngineError::Invalid(format!("an apply task failed: {error}"))));
        if let Err(error) = result {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "destroy",
        Action::Rotate => "rotate",
        Action::Import => "import",
        Action::NoOp => "no-op",
    }
}

/// Refuses a plan that takes `CAN_USE` from a principal the configuration does not allow.
fn check_revocations(config: &Config, plan: &Plan) -> Result<(), EngineError> {
    if config.token_usage.mode != TokenUsageMode::Authoritative {
        return Ok(());
    }
    for change in plan.actionable().filter(|change| change.kind == Kind::TokenPermission && change.action == Action::Delete) {
        let Some(principal) = change.before.as_ref().and_then(|before| before.get("principal")).and_then(Value::as_str) else { continue };
        let name = principal.split_once(':').map_or(principal, |(_, name)| name);
        let made_by_mlops = change.before.as_ref().and_then(|before| before.get("granted_by_mlops")).and_then(Value::as_bool).unwrap_or(false);
        if !made_by_mlops && !config.token_usage.allow_revoke.iter().any(|allowed| allowed == name) {
            return Err(EngineError::Invalid(format!(
                "{}: refusing to take CAN_USE on tokens from `{name}`, which revokes its tokens at once; list `{name}` in token_usage.allow_revoke to allow it",
                change.address
            )));
        }
    }
    Ok(())
}

/// Runs one step and returns the object's id.
async fn run_step(context: &Context, change: &Change) -> Result<Option<String>, EngineError> {
    match (change.kind, change.action) {
        (_, Action::Delete) => delete(context, change).await.map(|()| change.remote_id.clone()),
        (Kind::Group, _) => group(context, change).await.map(Some),
        (Kind::TokenPermission, _) => token_permission(context, change).await.map(Some),
        (Kind::ServicePrincipal, _) => service_principal(context, change).await.map(Some),
        (Kind::GroupMember, _) => group_member(context, change).await.map(Some),
        (Kind::RegistryPermission, _) => registry_permission(context, change).await.map(Some),
        (Kind::Token, _) => token(context, change).await.map(Some),
        (Kind::SecretScope, _) => secret_scope(context, change).await.map(Some),
        (Kind::Secret, _) => secret(context, change).await.map(Some),
        (Kind::SecretAcl, _) => secret_acl(context, change).await.map(Some),
    }
}

async fn group(context: &Context, change: &Change) -> Result<String, EngineError> {
    let client = context.client(&change.workspace);
    let name = after_str(change, "display_name")?;
    let recorded_baseline = context.recorded(&change.address).and_then(|resource| resource.attributes.get("baseline_members").cloned());

    let (id, baseline) = match (change.action, &change.remote_id) {
        (Action::Update, Some(id)) => {
            for member in after_list(change, "remove_members") {
                client.remove_group_member(id, &member).await?;
            }
            (id.clone(), recorded_baseline.unwrap_or_else(|| json!([])))
        }
        (Action::Import, Some(id)) => {
            let members: Vec<String> = client
                .get_group(id)
                .await?
                .map(|group| group.members.into_iter().filter_map(|member| member.value).collect())
                .unwrap_or_default();
            (id.clone(), json!(members))
        }
        _ => match client.create_group(&name).await {
            Ok(group) => (group.id, json!([])),
            Err(error) if error.is_already_exists() => (find_group(client, &name).await?, json!([])),
            Err(error) => return Err(error.into()),
        },
    };
    context.runtime().group_ids.insert(change.workspace.clone(), id.clone());
    context.record(change, &id, attributes([("display_name", json!(name)), ("baseline_members", baseline)]), None)?;
    Ok(id)
}

async fn find_group(client: &WorkspaceClient, name: &str) -> Result<String, EngineError> {
    let groups = client.list_groups(Some(&format!("displayName eq \"{name}\""))).await?;
    groups
        .into_iter()
        .next()
        .map(|group| group.id)
        .ok_or_else(|| EngineError::Invalid(format!("group `{name}` was reported as existing but cannot be found")))
}

async fn token_permission(context: &Context, change: &Change) -> Result<String, EngineError> {
    let principal = after_str(change, "principal")?;
    let group = principal.trim_start_matches("group:").to_owned();
    let granted_by_mlops = change.action != Action::Import;
    if granted_by_mlops {
        let request = AccessControlRequest { principal: Principal::Group(group), permission_level: "CAN_USE".to_owned() };
        context.client(&change.workspace).update_permissions(PermissionObject::Tokens, &[request]).await?;
    }
    let attributes = attributes([
        ("principal", json!(principal)),
        ("permission_level", json!("CAN_USE")),
        ("granted_by_mlops", json!(granted_by_mlops)),
    ]);
    context.record(change, "tokens", attributes, None)?;
    Ok("tokens".to_owned())
}

async fn service_principal(context: &Context, change: &Change) -> Result<String, EngineError> {
    let client = context.client(&change.workspace);
    let display_name = after_str(change, "display_name")?;
    let entitlements: Vec<String> = change
        .after
        .as_ref()
        .and_then(|after| after.get("entitlements"))
        .and_then(|value| serde_json::from_value(value.clone()).ok())
        .unwrap_or_default();

    let principal = match (change.action, &change.remote_id) {
        (Action::Create, _) | (_, None) => {
            context.record_intent(change, "create", &display_name)?;
            look_first::create_service_principal(context, change, &display_name, &entitlements).await?
        }
        (_, Some(id)) => {
            if change.action == Action::Update {
                client.set_service_principal_active(id, true).await?;
                client.add_service_principal_entitlements(id, &entitlements).await?;
            }
            client
                .get_service_principal(id)
                .await?
                .ok_or_else(|| EngineError::Invalid(format!("service principal {id} disappeared during apply")))?
        }
    };

    let live_entitlements: Vec<String> = principal.entitlements.iter().filter_map(|entitlement| entitlement.value.clone()).collect();
    context
        .runtime()
        .principals
        .insert(change.workspace.clone(), (principal.id.clone(), principal.application_id.clone()));
    let attributes = attributes([
        ("display_name", json!(principal.display_name)),
        ("application_id", json!(principal.application_id)),
        ("active", json!(principal.active)),
        ("entitlements", json!(live_entitlements)),
    ]);
    context.record(change, &principal.id, attributes, None)?;
    Ok(principal.id)
}

async fn group_member(context: &Context, change: &Change) -> Result<String, EngineError> {
    let group_id = context.group_id(&change.workspace)?;
    let (member_id, _) = context.principal(&change.workspace)?;
    if change.action != Action::Import {
        context.client(&change.workspace).add_group_member(&group_id, &member_id).await?;
    }
    let remote_id = format!("{group_id}/{member_id}");
    context.record(change, &remote_id, attributes([("group_id", json!(group_id)), ("member_id", json!(member_id))]), None)?;
    Ok(remote_id)
}

async fn registry_permission(context: &Context, change: &Change) -> Result<String, EngineError> {
    let (_, application_id) = context.principal(&change.workspace)?;
    if change.action != Action::Import {
        let request = AccessControlRequest {
            principal: Principal::ServicePrincipal(application_id.clone()),
            permission_level: "CAN_READ".to_owned(),
        };
        context.client(&change.workspace).update_permissions(PermissionObject::RegistryRoot, &[request]).await?;
    }
    let attributes = attributes([
        ("principal", json!(format!("service_principal:{application_id}"))),
        ("permission_level", json!("CAN_READ")),
    ]);
    context.record(change, "root", attributes, None)?;
    Ok("root".to_owned())
}

/// Creates or rotates the service principal token; the old token of a rotation is revoked later,
/// in [`finish_rotations`].
async fn token(context: &Context, change: &Change) -> Result<String, EngineError> {
    if change.action == Action::Update {
        return revoke_superseded(context, change).await;
    }
    if change.action == Action::Import {
        return import_token(context, change).await;
    }
    let (owner_id, application_id) = context.principal(&change.workspace)?;
    let comment = token_comment(&change.address);
    let lifetime = i64::from(context.config.tokens.lifetime_days) * 86_400;

    let mut superseded: Vec<String> = context
        .recorded(&change.address)
        .and_then(|resource| resource.attributes.get("superseded_token_ids").cloned())
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default();
    if let Some(old) = &change.remote_id
        && !old.is_empty()
        && !superseded.contains(old)
    {
        superseded.push(old.clone());
    }
    for old in after_list(change, "superseded_token_ids") {
        if !superseded.contains(&old) {
            superseded.push(old);
        }
    }

    context.record_intent(change, "create", &comment)?;
    let request = look_first::TokenRequest {
        change,
        owner_id: &owner_id,
        application_id: &application_id,
        lifetime_seconds: lifetime,
        comment: &comment,
        keep: &superseded,
    };
    let created = look_first::create_token(context, &request).await?;
    let token_id = created.info.token_id.clone();
    let value_sha256 = fingerprint(created.value.expose_secret());
    context.runtime().tokens.insert(change.workspace.clone(), created.value);

    let mut attributes = attributes([
        ("token_id", json!(token_id)),
        ("owner_id", json!(owner_id)),
        ("owner_application_id", json!(application_id)),
        ("creation_time", json!(created.info.creation_time)),
        ("expiry_time", json!(created.info.expiry_time)),
        ("comment", json!(comment)),
        ("value_sha256", json!(value_sha256)),
    ]);
    if !superseded.is_empty() {
        attributes.insert("superseded_token_ids".to_owned(), json!(superseded));
    }
    context.record(change, &token_id, attributes, None)?;
    Ok(token_id)
}

/// Adopts an existing token after checking, through a copy in a reader scope, that its value
/// authenticates as the service principal.
async fn import_token(context: &Context, change: &Change) -> Result<String, EngineError> {
    let token_id = change.remote_id.clone().unwrap_or_default();
    let wanted = after_str(change, "value_sha256")?;
    let (owner_id, application_id) = context.principal(&change.workspace)?;
    let value = read_copy(context, &change.workspace, &change.address, &wanted).await?;
    verify_token(context, &change.workspace, value).await?;

    let info = context
        .client(&change.workspace)
        .get_token(&token_id)
        .await?
        .ok_or_else(|| EngineError::Invalid(format!("{}: token {token_id} disappeared during apply", change.address)))?;
    let attributes = attributes([
        ("token_id", json!(token_id)),
        ("owner_id", json!(owner_id)),
        ("owner_application_id", json!(application_id)),
        ("creation_time", json!(info.creation_time)),
        ("expiry_time", json!(info.expiry_time)),
        ("comment", json!(info.comment)),
        ("value_sha256", json!(wanted)),
    ]);
    context.record(change, &token_id, attributes, None)?;
    Ok(token_id)
}

/// Finishes an interrupted rotation: verifies the current token through a copy that a reader
/// scope holds, then revokes the tokens it replaced.
async fn revoke_superseded(context: &Context, change: &Change) -> Result<String, EngineError> {
    let resource = context
        .recorded(&change.address)
        .ok_or_else(|| EngineError::Invalid(format!("{}: not in state", change.address)))?;
    let wanted = resource.attributes.get("value_sha256").and_then(Value::as_str).unwrap_or_default().to_owned();
    let value = read_copy(context, &change.workspace, &change.address, &wanted).await?;
    verify_token(context, &change.workspace, value).await?;

    let superseded: Vec<String> = string_list(&resource.attributes, "superseded_token_ids");
    for token_id in &superseded {
        context.client(&change.workspace).delete_token(token_id).await?;
    }
    let mut resource = resource.clone();
    resource.attributes.remove("superseded_token_ids");
    context.save(resource)?;
    Ok(change.remote_id.clone().unwrap_or_default())
}

/// Reads the value of a registry's token from the first reader scope whose live value has the
/// fingerprint `wanted`, skipping the secret at `skip`.
async fn read_copy(context: &Context, registry: &str, skip: &str, wanted: &str) -> Result<SecretString, EngineError> {
    for link in context.config.links.iter().filter(|link| link.registry == registry) {
        let key = format!("{}-token", link.prefix);
        let address = mlops_plan::address::keyed(&link.reader, Kind::Secret, &format!("{}/{key}", link.scope));
        if address == skip {
            continue;
        }
        if let Some(value) = context.client(&link.reader).get_secret(&link.scope, &key).await?
            && fingerprint(value.expose_secret()) == wanted
        {
            return Ok(value);
        }
    }
    Err(EngineError::Invalid(format!(
        "{registry}/token: no reader scope still holds the token value; run `mlops plan` again, which then rotates the token"
    )))
}

/// Verifies each new token against its registry, waits [`REVOKE_GRACE`] once, then revokes the
/// tokens the new ones replaced.
async fn finish_rotations(context: &Arc<Context>) -> Result<(), EngineError> {
    let minted: Vec<(String, SecretString)> =
        context.runtime().tokens.iter().map(|(workspace, value)| (workspace.clone(), value.clone())).collect();
    let mut rotated = Vec::new();
    for (workspace, value) in minted {
        let address = single(&workspace, Kind::Token);
        let Some(resource) = context.recorded(&address) else { continue };
        let superseded: Vec<String> = string_list(&resource.attributes, "superseded_token_ids");
        if superseded.is_empty() {
            continue;
        }
        verify_token(context, &workspace, value).await?;
        rotated.push((workspace, address, resource, superseded));
    }
    if rotated.is_empty() {
        return Ok(());
    }

    tokio::time::sleep(REVOKE_GRACE).await;
    for (workspace, address, mut resource, superseded) in rotated {
        let client = context.client(&workspace);
        for token_id in &superseded {
            client.delete_token(token_id).await?;
            context.reporter.report(Event::Note { message: format!("{address}: revoked the old token {token_id}") });
        }
        resource.attributes.remove("superseded_token_ids");
        context.save(resource)?;
    }
    Ok(())
}

/// Checks that a new token authenticates as the service principal and can search the registry.
async fn verify_token(context: &Context, workspace: &str, value: SecretString) -> Result<(), EngineError> {
    let (_, application_id) = context.principal(workspace)?;
    let client = context.client(workspace).with_credentials(mlops_databricks::Credentials::Bearer(value))?;
    let me = client.me().await?;
    if me.user_name != application_id {
        return Err(EngineError::Invalid(format!(
            "{workspace}/token: the new token authenticates as `{}` instead of the service principal {application_id}; the old token was kept",
            me.user_name
        )));
    }
    client.search_registered_models(None).await?;
    Ok(())
}

async fn secret_scope(context: &Context, change: &Change) -> Result<String, EngineError> {
    let client = context.client(&change.workspace);
    let name = after_str(change, "name")?;
    let recorded_baseline = context.recorded(&change.address).and_then(|resource| resource.attributes.get("baseline_principals").cloned());

    if change.action == Action::Create {
        match client.create_scope(&name).await {
            Ok(()) => {}
            Err(error) if error.is_already_exists() => {}
            Err(error) => return Err(error.into()),
        }
    }
    for principal in after_list(change, "remove_principals") {
        ignore_missing(client.delete_acl(&name, &principal).await)?;
    }
    let baseline = match (change.action, recorded_baseline) {
        (Action::Update, Some(baseline)) => baseline,
        _ => {
            let principals: Vec<String> = client.list_acls(&name).await?.into_iter().map(|acl| acl.principal).collect();
            json!(principals)
        }
    };
    context.record(change, &name, attributes([("name", json!(name)), ("baseline_principals", baseline)]), None)?;
    Ok(name)
}

async fn secret(context: &Context, change: &Change) -> Result<String, EngineError> {
    let client = context.client(&change.workspace);
    let scope = after_str(change, "scope")?;
    let key = after_str(change, "key")?;
    let remote_id = format!("{scope}/{key}");

    if change.action != Action::Import {
        let value = secret_value(context, change, &key).await?;
        client.put_secret(&scope, &key, &value).await?;
    }
    let value_sha256 = match change.action {
        Action::Import => change.before.as_ref().and_then(|before| before.get("value_sha256")).cloned().unwrap_or(Value::Null),
        _ => json!(context.secret_sha256(change, &key).await?),
    };
    let attributes = attributes([
        ("scope", json!(scope)),
        ("key", json!(key)),
        ("value_sha256", value_sha256),
        // Filled in by `batch::record_secret_times` with one list per scope.
        ("last_updated_timestamp", Value::Null),
    ]);
    context.record(change, &remote_id, attributes, None)?;
    Ok(remote_id)
}

/// Returns the value a secret must hold: the registry host or id, or the registry token, minted
/// in this run or copied from another reader scope that holds it.
async fn secret_value(context: &Context, change: &Change, key: &str) -> Result<SecretString, EngineError> {
    let source = after_str(change, "source")?;
    if source == "configuration" {
        return Ok(SecretString::from(plain_value(context, change, key)?));
    }
    let registry = source.split('/').next().unwrap_or_default().to_owned();
    if let Some(value) = context.runtime().tokens.get(&registry) {
        return Ok(value.clone());
    }

    let wanted = after_str(change, "value_sha256")?;
    read_copy(context, &registry, &change.address, &wanted).await
}

/// Returns the host or workspace id that a plain secret holds.
fn plain_value(context: &Context, change: &Change, key: &str) -> Result<String, EngineError> {
    let link = context
        .config
        .links_from(&change.workspace)
        .find(|link| key.starts_with(&format!("{}-", link.prefix)) && change.address.contains(&format!("/{}/", link.scope)))
        .ok_or_else(|| EngineError::Invalid(format!("{}: no link of the configuration writes this secret", change.address)))?;
    let registry = context.config.workspace(&link.registry).ok_or_else(|| EngineError::Invalid(format!("unknown workspace `{}`", link.registry)))?;
    if key.ends_with("-host") {
        return Ok(registry.host.clone());
    }
    context
        .workspace_ids
        .get(&registry.name)
        .cloned()
        .ok_or_else(|| EngineError::Invalid(format!("the id of workspace `{}` is unknown", registry.name)))
}

async fn secret_acl(context: &Context, change: &Change) -> Result<String, EngineError> {
    let scope = after_str(change, "scope")?;
    let principal = after_str(change, "principal")?;
    if change.action != Action::Import {
        context.client(&change.workspace).put_acl(&scope, &principal, AclPermission::Read).await?;
    }
    let remote_id = format!("{scope}/{principal}");
    let attributes = attributes([("scope", json!(scope)), ("principal", json!(principal)), ("permission", json!("READ"))]);
    context.record(change, &remote_id, attributes, None)?;
    Ok(remote_id)
}

async fn delete(context: &Context, change: &Change) -> Result<(), EngineError> {
    let client = context.client(&change.workspace);
    let before = change.before.clone().unwrap_or_default();
    let text = |key: &str| before.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let remote_id = change.remote_id.clone().unwrap_or_default();
    let made_by_mlops = before.get("granted_by_mlops").and_then(Value::as_bool).unwrap_or(true);
    if before.get("adopted").and_then(Value::as_bool) == Some(true) {
        return context.forget(&change.address);
    }

    match change.kind {
        Kind::Group => ignore_missing(client.delete_group(&remote_id).await)?,
        Kind::ServicePrincipal => ignore_missing(client.delete_service_principal(&remote_id).await)?,
        Kind::GroupMember => ignore_missing(client.remove_group_member(&text("group_id"), &text("member_id")).await)?,
        Kind::Token => {
            client.delete_token(&remote_id).await?;
        }
        Kind::TokenPermission if made_by_mlops || context.config.token_usage.mode == TokenUsageMode::Authoritative => {
            let _guard = context.permission_lock(&change.workspace).lock().await;
            remove_grant(client, PermissionObject::Tokens, &text("principal")).await?;
        }
        Kind::TokenPermission => {}
        Kind::RegistryPermission => {
            let _guard = context.permission_lock(&change.workspace).lock().await;
            remove_grant(client, PermissionObject::RegistryRoot, &text("principal")).await?;
        }
        Kind::SecretScope => ignore_missing(client.delete_scope(&text("name")).await)?,
        Kind::Secret => ignore_missing(client.delete_secret(&text("scope"), &text("key")).await)?,
        Kind::SecretAcl => ignore_missing(client.delete_acl(&text("scope"), &text("principal")).await)?,
    }
    context.forget(&change.address)
}

fn ignore_missing(result: Result<(), mlops_databricks::Error>) -> Result<(), EngineError> {
    match result {
        Err(error) if !error.is_not_found() => Err(error.into()),
        _ => Ok(()),
    }
}

/// Removes one principal from a permissions object with a `PUT` of every other direct grant.
async fn remove_grant(client: &WorkspaceClient, object: PermissionObject, principal: &str) -> Result<(), EngineError> {
    let Some(current) = client.get_permissions(object).await? else { return Ok(()) };
    let mut keep = Vec::new();
    for entry in current.access_control_list {
        let name = match &entry.principal {
            Principal::Group(name) => format!("group:{name}"),
            Principal::User(name) => format!("user:{name}"),
            Principal::ServicePrincipal(id) => format!("service_principal:{id}"),
        };
        if name == principal {
            continue;
        }
        for permission in entry.permissions.iter().filter(|permission| !permission.inherited) {
            keep.push(AccessControlRequest { principal: entry.principal.clone(), permission_level: permission.level.clone() });
        }
    }
    client.set_permissions(object, &keep).await?;
    Ok(())
}

fn after_list(change: &Change, key: &str) -> Vec<String> {
    change
        .after
        .as_ref()
        .and_then(|after| after.get(key))
        .cloned()
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default()
}

fn after_str(change: &Change, key: &str) -> Result<String, EngineError> {
    change
        .after
        .as_ref()
        .and_then(|after| after.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| EngineError::Invalid(format!("{}: the plan has no `{key}` for this change", change.address)))
}

fn attributes<const N: usize>(pairs: [(&str, Value); N]) -> Attributes {
    pairs.into_iter().map(|(key, value)| (key.to_owned(), value)).collect()
}

/// Values that steps hand to later steps; token values live only here, in memory.
#[derive(Default)]
struct Runtime {
    group_ids: BTreeMap<String, String>,
    /// SCIM id and application id of each workspace's service principal.
    principals: BTreeMap<String, (String, String)>,
    /// Values of the tokens minted in this run, by registry workspace.
    tokens: BTreeMap<String, SecretString>,
    outcome: ApplyOutcome,
}

struct Context {
    config: Config,
    workspaces: Workspaces,
    store: StateStore,
    state: Mutex<State>,
    /// Shares state file writes between steps that finish together.
    journal: persist::Journal,
    runtime: Mutex<Runtime>,
    workspace_ids: BTreeMap<String, String>,
    /// Serializes the read-modify-write of permission objects within each workspace, since two
    /// concurrent `PUT`s of one object would each drop the other's change.
    permission_locks: BTreeMap<String, tokio::sync::Mutex<()>>,
    options: ApplyOptions,
    reporter: Arc<dyn Reporter>,
}

impl Context {
    #[expect(clippy::too_many_arguments, reason = "built once, from the arguments of apply")]
    fn new(
        config: &Config,
        plan: &Plan,
        workspaces: &Workspaces,
        store: &StateStore,
        state: State,
        workspace_ids: BTreeMap<String, String>,
        options: ApplyOptions,
        reporter: Arc<dyn Reporter>,
    ) -> Context {
        let mut runtime = Runtime::default();
        for change in &plan.changes {
            let Some(remote_id) = change.remote_id.clone() else { continue };
            if change.action == Action::Delete {
                continue;
            }
            match change.kind {
                Kind::Group => {
                    runtime.group_ids.insert(change.workspace.clone(), remote_id);
                }
                Kind::ServicePrincipal => {
                    let application_id = change
                        .after
                        .as_ref()
                        .and_then(|after| after.get("application_id"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    runtime.principals.insert(change.workspace.clone(), (remote_id, application_id));
                }
                _ => {}
            }
        }
        Context {
            config: config.clone(),
            workspaces: workspaces.clone(),
            store: StateStore::new(store.path()),
            state: Mutex::new(state),
            journal: persist::Journal::default(),
            runtime: Mutex::new(runtime),
            permission_locks: config.workspaces.iter().map(|workspace| (workspace.name.clone(), tokio::sync::Mutex::new(()))).collect(),
            workspace_ids,
            options,
            reporter,
        }
    }

    fn permission_lock(&self, workspace: &str) -> &tokio::sync::Mutex<()> {
        &self.permission_locks[workspace]
    }

    fn client(&self, workspace: &str) -> &WorkspaceClient {
        self.workspaces.client(workspace)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn runtime(&self) -> MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn recorded(&self, address: &str) -> Option<Resource> {
        self.state().get(address).cloned()
    }

    fn group_id(&self, workspace: &str) -> Result<String, EngineError> {
        self.runtime()
            .group_ids
            .get(workspace)
            .cloned()
            .ok_or_else(|| EngineError::Invalid(format!("the group of workspace `{workspace}` is not known yet")))
    }

    fn principal(&self, workspace: &str) -> Result<(String, String), EngineError> {
        self.runtime()
            .principals
            .get(workspace)
            .cloned()
            .ok_or_else(|| EngineError::Invalid(format!("the service principal of workspace `{workspace}` is not known yet")))
    }

    /// Returns the fingerprint of the value just written to a secret.
    async fn secret_sha256(&self, change: &Change, key: &str) -> Result<String, EngineError> {
        let source = after_str(change, "source")?;
        if source == "configuration" {
            return Ok(fingerprint(&plain_value(self, change, key)?));
        }
        let registry = source.split('/').next().unwrap_or_default();
        if let Some(value) = self.runtime().tokens.get(registry) {
            return Ok(fingerprint(value.expose_secret()));
        }
        after_str(change, "value_sha256")
    }

    /// Records an object in state; within a step the write happens when the step ends (see
    /// `persist`), elsewhere at once.
    fn record(&self, change: &Change, remote_id: &str, mut attributes: Attributes, intent: Option<Intent>) -> Result<(), EngineError> {
        let was_adopted = self
            .recorded(&change.address)
            .is_some_and(|resource| resource.attributes.get("adopted").and_then(Value::as_bool) == Some(true));
        let adopted = match change.action {
            Action::Import => true,
            Action::Create | Action::Rotate | Action::Replace => false,
            _ => was_adopted,
        };
        if adopted && change.kind != Kind::TokenPermission {
            attributes.insert("adopted".to_owned(), json!(true));
        }
        let resource = Resource {
            address: change.address.clone(),
            kind: change.kind.as_str().to_owned(),
            workspace: change.workspace.clone(),
            workspace_id: self.workspace_ids.get(&change.workspace).cloned().unwrap_or_default(),
            remote_id: remote_id.to_owned(),
            attributes,
            intent,
        };
        self.record_outcome(|state| {
            state.upsert(resource);
            true
        })
    }

    /// Records that a create which is not idempotent is about to start, keeping what state knew.
    fn record_intent(&self, change: &Change, operation: &str, marker: &str) -> Result<(), EngineError> {
        let intent = Intent { operation: operation.to_owned(), marker: marker.to_owned(), started_at: self.options.now.to_string() };
        let mut resource = self.recorded(&change.address).unwrap_or_else(|| Resource {
            address: change.address.clone(),
            kind: change.kind.as_str().to_owned(),
            workspace: change.workspace.clone(),
            workspace_id: self.workspace_ids.get(&change.workspace).cloned().unwrap_or_default(),
            remote_id: String::new(),
            attributes: Attributes::new(),
            intent: None,
        });
        resource.intent = Some(intent);
        self.save(resource)
    }

    fn save(&self, resource: Resource) -> Result<(), EngineError> {
        self.save_all(vec![resource])
    }

    fn forget(&self, address: &str) -> Result<(), EngineError> {
        self.record_outcome(|state| state.remove(address).is_some())
    }

    fn count(&self, action: Action) {
        let outcome = &mut self.runtime().outcome;
        match action {
            Action::Create => outcome.added += 1,
            Action::Update => outcome.changed += 1,
            Action::Replace => {
                outcome.added += 1;
                outcome.destroyed += 1;
            }
            Action::Delete => outcome.destroyed += 1,
            Action::Rotate => outcome.rotated += 1,
            Action::Import => outcome.imported += 1,
            Action::NoOp => {}
        }
    }

    fn outcome(&self) -> ApplyOutcome {
        self.runtime().outcome
    }
}
