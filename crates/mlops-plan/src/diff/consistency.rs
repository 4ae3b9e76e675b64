//! Checks that every state entry fits the configuration and the live workspaces before a plan
//! acts on it. A state edited by hand or copied from another setup then stops the plan, instead
//! of steering deletes at the wrong object or workspace.

use mlops_state::Resource;

use super::{PlanError, PlanInput};
use crate::address::Kind;

/// Fails on the first state entry whose kind, workspace, address or workspace id is wrong.
pub(super) fn check_state(input: &PlanInput<'_>) -> Result<(), PlanError> {
    for resource in &input.state.resources {
        check_resource(input, resource).map_err(|problem| PlanError::InconsistentState {
            path: input.config.state_path.display().to_string(),
            address: resource.address.clone(),
            problem: problem.text,
            fix: problem.fix,
        })?;
    }
    Ok(())
}

/// Problem of one state entry, with its fix.
struct Problem {
    text: String,
    fix: String,
}

/// Fix for an entry that a person or another tool changed.
const RESTORE: &str = "restore the state file from git history, or delete this entry from it so that the next plan adopts the live object";

fn check_resource(input: &PlanInput<'_>, resource: &Resource) -> Result<(), Problem> {
    let Some(kind) = Kind::parse(&resource.kind) else {
        return Err(Problem { text: format!("kind `{}` is not a kind that mlops manages", resource.kind), fix: RESTORE.to_owned() });
    };

    if input.config.workspace(&resource.workspace).is_none() {
        return Err(Problem {
            text: format!("workspace `{}` is not in the configuration", resource.workspace),
            fix: format!(
                "add workspace `{}` back to the configuration so that apply can remove its objects, or forget them with `mlops state rm ADDRESS...` (see `mlops state list`)",
                resource.workspace
            ),
        });
    }

    let prefix = format!("{}/{}", resource.workspace, kind.as_str());
    let fits = resource.address == prefix || resource.address.strip_prefix(&prefix).is_some_and(|rest| rest.starts_with('/'));
    if !fits {
        return Err(Problem {
            text: format!("the address does not match its workspace `{}` and kind `{}`", resource.workspace, resource.kind),
            fix: RESTORE.to_owned(),
        });
    }

    if let Some(live) = input.live.workspaces.get(&resource.workspace)
        && !live.workspace_id.is_empty()
        && live.workspace_id != resource.workspace_id
    {
        return Err(Problem {
            text: format!(
                "it was recorded in workspace id {}, but workspace `{}` is now {}",
                resource.workspace_id, resource.workspace, live.workspace_id
            ),
            fix: format!(
                "this state belongs to other workspaces: point `{}` at the workspace it was made for, or use another state file",
                resource.workspace
            ),
        });
    }
    Ok(())
}
