//! Recovery from an apply that died midway: tokens it minted but never recorded, and creates it
//! recorded an intent for but did not finish.
//!
//! Apply records an intent in state before it creates a service principal or a token, and the
//! token carries the comment `mlops:<address>`. A run that dies between the create and the
//! record leaves a live object that state does not name. The service principal is found again by
//! its display name and adopted by the regular diff. A token cannot be adopted, because its value
//! existed only in the memory of the dead process, so it is revoked here.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Builder, token_comment};
use crate::address::{Kind, keyed, single};
use crate::live::LiveToken;
use crate::plan::{Action, Change};

/// Comment of the short-lived personal token that apply creates so that token permissions exist;
/// apply revokes it before it ends.
pub const FIRST_TOKEN_COMMENT: &str = "mlops: first token of the workspace";

/// Reason given for revoking a token that a dead apply left behind.
const ORPHANED: &str = "orphaned by an interrupted apply";

impl Builder<'_> {
    /// Plans the revocation of every live token that an interrupted apply minted and never
    /// recorded: tokens of the service principal with the `mlops:<address>` comment that are
    /// neither the token the plan keeps nor one that the token change revokes itself, and first
    /// tokens that apply did not get to revoke.
    pub(super) fn orphaned_token_changes(&self, changes: &[Change]) -> Vec<Change> {
        let mut orphans = Vec::new();
        for workspace in self.input.config.registry_workspaces() {
            let Some(live) = self.input.live.workspaces.get(&workspace.name) else { continue };
            let address = single(&workspace.name, Kind::Token);
            let Some(token_change) = changes.iter().find(|change| change.address == address) else { continue };
            let handled = self.tokens_handled_by(token_change);
            let principal_id = self.registries.get(&workspace.name).and_then(|facts| facts.service_principal_id.clone());
            let marker = token_comment(&address);

            for token in &live.tokens {
                let ours = principal_id.is_some() && token.owner_id == principal_id && token.comment == marker;
                let first = token.comment == FIRST_TOKEN_COMMENT;
                if (ours || first) && !handled.contains(&token.token_id) {
                    orphans.push(orphan_change(&workspace.name, token));
                }
            }
        }
        orphans
    }

    /// Returns the token ids that the token change keeps or revokes by itself: its own token,
    /// and for a rotation or a finished-rotation update, the superseded tokens recorded in state.
    fn tokens_handled_by(&self, change: &Change) -> BTreeSet<String> {
        let mut handled: BTreeSet<String> = change.remote_id.iter().filter(|id| !id.is_empty()).cloned().collect();
        if matches!(change.action, Action::Rotate | Action::Update)
            && let Some(recorded) = self.recorded(&change.address)
            && let Some(Value::Array(superseded)) = recorded.attributes.get("superseded_token_ids")
        {
            handled.extend(superseded.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        handled
    }

    /// Rewrites the changes of objects whose create an interrupted apply started, as recorded by
    /// an intent without a remote id, so that the plan does not call them deleted outside mlops.
    pub(super) fn explain_interrupted_creates(&self, changes: &mut [Change]) {
        for change in changes.iter_mut().filter(|change| change.action != Action::Delete) {
            let Some(recorded) = self.recorded(&change.address) else { continue };
            if recorded.intent.is_none() || !recorded.remote_id.is_empty() {
                continue;
            }
            match change.action {
                Action::Create | Action::Rotate => {
                    change.action = Action::Create;
                    change.drift = false;
                    change.remote_id = None;
                    change.before = None;
                    change.reasons = vec!["an interrupted apply did not finish creating it".to_owned()];
                }
                Action::Import => {
                    let id = change.remote_id.clone().unwrap_or_default();
                    change.drift = false;
                    change.reasons = vec![format!("created by an interrupted apply as {id}, which this apply adopts")];
                }
                _ => {}
            }
        }
    }
}

/// Returns the revocation of a token that no state entry names.
fn orphan_change(workspace: &str, token: &LiveToken) -> Change {
    let before = [
        ("token_id", json!(token.token_id)),
        ("comment", json!(token.comment)),
        ("owner_id", json!(token.owner_id)),
        ("expiry_time", json!(token.expiry_time)),
    ];
    Change {
        address: keyed(workspace, Kind::Token, &token.token_id),
        kind: Kind::Token,
        workspace: workspace.to_owned(),
        action: Action::Delete,
        reasons: vec![ORPHANED.to_owned()],
        // A live token that nobody holds is reported by `mlops drift`, like a change outside mlops.
        drift: true,
        remote_id: Some(token.token_id.clone()),
        before: Some(before.into_iter().map(|(key, value)| (key.to_owned(), value)).collect()),
        after: None,
    }
}
