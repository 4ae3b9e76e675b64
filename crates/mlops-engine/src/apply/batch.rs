//! The requests of apply that are not steps, sent to all workspaces at once: the identity check,
//! the short-lived first tokens, and the last update times of the secrets that apply wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mlops_config::Config;
use mlops_databricks::PermissionObject;
use mlops_plan::address::Kind;
use mlops_plan::diff::FIRST_TOKEN_COMMENT;
use mlops_plan::{Action, Plan};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{Context, FIRST_TOKEN_LIFETIME_SECONDS};
use crate::connect::Workspaces;
use crate::error::EngineError;
use crate::refresh::{verified_recently, verify_identity};
use crate::report::Event;

/// Waits for every task and returns the results in the order the tasks were spawned, so that the
/// error reported first does not depend on timing.
async fn join_in_order<T: 'static>(mut tasks: JoinSet<(usize, T)>) -> Vec<T> {
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic())));
    }
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Facts that apply gathers before its first write.
pub(super) struct Preflight {
    /// Verified workspace ids, by workspace name.
    pub workspace_ids: BTreeMap<String, String>,
    /// Workspaces that need a first token before their token permissions can be granted.
    pub without_token_permissions: Vec<String>,
}

/// Checks every workspace's identity and finds the workspaces without token permissions, with
/// one wave of requests.
///
/// When this process verified every identity less than a minute ago, the plan comes from its own
/// refresh, so the identities and the plan's `needs_first_token` are taken as they are and no
/// request is sent.
pub(super) async fn preflight(config: &Config, plan: &Plan, workspaces: &Workspaces) -> Result<Preflight, EngineError> {
    if let Some(workspace_ids) = recently_verified_ids(config, plan, workspaces) {
        let granting = granting_workspaces(plan);
        let without_token_permissions = plan
            .workspaces
            .iter()
            .filter(|workspace| workspace.needs_first_token && granting.contains(workspace.name.as_str()))
            .map(|workspace| workspace.name.clone())
            .collect();
        return Ok(Preflight { workspace_ids, without_token_permissions });
    }

    let (workspace_ids, without_token_permissions) =
        tokio::join!(check_identities(config, plan, workspaces), workspaces_without_token_permissions(plan, workspaces));
    Ok(Preflight { workspace_ids: workspace_ids?, without_token_permissions: without_token_permissions? })
}

/// Returns the ids the plan saw when each matches the configuration and this process verified
/// it recently, or `None` when any workspace falls short.
fn recently_verified_ids(config: &Config, plan: &Plan, workspaces: &Workspaces) -> Option<BTreeMap<String, String>> {
    plan.workspaces
        .iter()
        .map(|workspace| {
            let configured = config.workspace(&workspace.name).and_then(|configured| configured.workspace_id.as_deref());
            let trusted = !workspace.workspace_id.is_empty()
                && configured.is_none_or(|id| id == workspace.workspace_id)
                && verified_recently(workspaces.client(&workspace.name), &workspace.workspace_id);
            trusted.then(|| (workspace.name.clone(), workspace.workspace_id.clone()))
        })
        .collect()
}

/// Returns the workspaces where the plan creates token permission grants.
fn granting_workspaces(plan: &Plan) -> BTreeSet<&str> {
    plan.actionable()
        .filter(|change| change.kind == Kind::TokenPermission && change.action == Action::Create)
        .map(|change| change.workspace.as_str())
        .collect()
}

/// Checks every workspace the plan writes to against its configured id and the id the plan saw,
/// and returns the ids by workspace name.
async fn check_identities(config: &Config, plan: &Plan, workspaces: &Workspaces) -> Result<BTreeMap<String, String>, EngineError> {
    let config = Arc::new(config.clone());
    let mut tasks = JoinSet::new();
    for (index, workspace) in plan.workspaces.iter().enumerate() {
        let (config, client) = (config.clone(), workspaces.client(&workspace.name).clone());
        let (name, seen) = (workspace.name.clone(), workspace.workspace_id.clone());
        tasks.spawn(async move {
            let checked = match verify_identity(&config, &name, &client).await {
                Ok(actual) if !seen.is_empty() && seen != actual => {
                    Err(EngineError::WorkspaceMismatch { workspace: name.clone(), expected: seen, actual })
                }
                Ok(actual) => Ok((name, actual)),
                Err(error) => Err(error),
            };
            (index, checked)
        });
    }
    join_in_order(tasks).await.into_iter().collect()
}

/// Returns the workspaces where the plan grants token permissions but the permissions object
/// does not exist yet, because the workspace has no token at all.
async fn workspaces_without_token_permissions(plan: &Plan, workspaces: &Workspaces) -> Result<Vec<String>, EngineError> {
    let granting = granting_workspaces(plan);

    let mut tasks = JoinSet::new();
    for (index, name) in granting.into_iter().enumerate() {
        let (client, name) = (workspaces.client(name).clone(), name.to_owned());
        tasks.spawn(async move {
            let exists = client.get_permissions(PermissionObject::Tokens).await.map(|permissions| permissions.is_some());
            (index, exists.map(|exists| (!exists).then_some(name)))
        });
    }
    let missing: Result<Vec<Option<String>>, mlops_databricks::Error> = join_in_order(tasks).await.into_iter().collect();
    Ok(missing?.into_iter().flatten().collect())
}

/// Creates a short-lived personal token in each of `workspaces`, since the token permissions
/// object does not exist before a first token does. Returns the workspace and token id of each.
///
/// On an error, the tokens that were created are revoked before the error is returned.
pub(super) async fn create_first_tokens(context: &Arc<Context>, workspaces: Vec<String>) -> Result<Vec<(String, String)>, EngineError> {
    let mut tasks = JoinSet::new();
    for (index, workspace) in workspaces.into_iter().enumerate() {
        let context = context.clone();
        tasks.spawn(async move {
            context.reporter.report(Event::Note {
                message: format!("{workspace}: creating a short-lived personal token so that token permissions exist"),
            });
            let created = context.client(&workspace).create_personal_token(Some(FIRST_TOKEN_LIFETIME_SECONDS), FIRST_TOKEN_COMMENT).await;
            (index, created.map(|token| (workspace, token.info.token_id)))
        });
    }

    let mut created = Vec::new();
    let mut first_error = None;
    for result in join_in_order(tasks).await {
        match result {
            Ok(token) => created.push(token),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        None => Ok(created),
        Some(error) => {
            revoke_first_tokens(context, created).await;
            Err(error.into())
        }
    }
}

/// Revokes the short-lived personal tokens, all at once, reporting each outcome.
pub(super) async fn revoke_first_tokens(context: &Arc<Context>, tokens: Vec<(String, String)>) {
    let mut tasks = JoinSet::new();
    for (workspace, token_id) in tokens {
        let context = context.clone();
        tasks.spawn(async move {
            let message = match context.client(&workspace).revoke_personal_token(&token_id).await {
                Ok(()) => format!("{workspace}: revoked the short-lived personal token {token_id}"),
                Err(error) => format!("{workspace}: failed to revoke the short-lived personal token {token_id}, which expires by itself: {error}"),
            };
            context.reporter.report(Event::Note { message });
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Records the server's last update time of every secret that this run wrote or adopted, with
/// one secrets list per scope for all of its secrets, in one state write.
///
/// A secret step records no time, because a list right after each write would cost a request
/// and a round trip per secret. Until its time is recorded, a secret's value is read and
/// fingerprinted on refresh, so a crash before this point costs requests but not correctness.
pub(super) async fn record_secret_times(context: &Arc<Context>, plan: &Plan) -> Result<(), EngineError> {
    let mut scopes: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for change in plan.actionable().filter(|change| change.kind == Kind::Secret && change.action != Action::Delete) {
        let Some(resource) = context.recorded(&change.address) else { continue };
        let untimed = resource.attributes.get("last_updated_timestamp").is_none_or(Value::is_null);
        let Some(scope) = resource.attributes.get("scope").and_then(Value::as_str) else { continue };
        if untimed {
            scopes.entry((resource.workspace.clone(), scope.to_owned())).or_default().push(change.address.clone());
        }
    }
    if scopes.is_empty() {
        return Ok(());
    }

    let mut tasks = JoinSet::new();
    for (index, ((workspace, scope), addresses)) in scopes.into_iter().enumerate() {
        let client = context.client(&workspace).clone();
        tasks.spawn(async move {
            let listed = client.list_secrets(&scope).await;
            (index, listed.map(|secrets| (addresses, secrets)))
        });
    }

    let mut first_error = None;
    let mut stamped = Vec::new();
    for result in join_in_order(tasks).await {
        let (addresses, secrets) = match result {
            Ok(listed) => listed,
            Err(error) => {
                first_error.get_or_insert(error);
                continue;
            }
        };
        for address in addresses {
            let Some(mut resource) = context.recorded(&address) else { continue };
            let key = resource.attributes.get("key").and_then(Value::as_str).unwrap_or_default().to_owned();
            let time = secrets.iter().find(|secret| secret.key == key).map(|secret| secret.last_updated_timestamp);
            resource.attributes.insert("last_updated_timestamp".to_owned(), json!(time));
            stamped.push(resource);
        }
    }
    if !stamped.is_empty() {
        context.save_all(stamped)?;
    }
    first_error.map_or(Ok(()), |error| Err(error.into()))
}
