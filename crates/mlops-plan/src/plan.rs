//! The plan: every change apply will make, with its reasons.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::address::Kind;

/// The version of the plan format, in saved plans and `--format json`.
pub const FORMAT_VERSION: u32 = 1;

/// Attributes of an object, as shown in a plan and kept in state. Never a secret value.
pub type Attributes = BTreeMap<String, Value>;

/// Returns an attribute that contains a list of strings, or an empty list when it is missing or of
/// another type.
pub fn string_list(attributes: &Attributes, key: &str) -> Vec<String> {
    attributes.get(key).cloned().and_then(|value| serde_json::from_value(value).ok()).unwrap_or_default()
}

/// The purpose of a plan: to apply the configuration or to destroy what mlops made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Apply,
    Destroy,
}

/// A complete plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub format_version: u32,
    pub operation: Operation,
    /// RFC 3339 time the plan was made.
    pub created_at: String,
    /// Lineage of the state the plan was made against.
    pub lineage: String,
    /// Serial of the state the plan was made against.
    pub serial: u64,
    /// SHA-256 of the configuration file.
    pub config_sha256: String,
    pub workspaces: Vec<PlanWorkspace>,
    /// Every managed object, unchanged ones included with action `no-op`.
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
    pub summary: Summary,
}

/// One workspace as the plan saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanWorkspace {
    pub name: String,
    pub workspace_id: String,
    /// Whether the workspace has no token yet, so apply creates a short-lived personal token
    /// before it can set token permissions.
    pub needs_first_token: bool,
}

/// The action apply takes on one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
    Rotate,
    Import,
}

impl Action {
    /// Returns the symbol shown before the address.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Rotate => "+/-",
            Action::Import => "<=",
        }
    }

    /// Returns the phrase that completes "will be ...".
    pub fn verb(self) -> &'static str {
        match self {
            Action::NoOp => "left unchanged",
            Action::Create => "created",
            Action::Update => "updated in place",
            Action::Replace => "replaced",
            Action::Delete => "destroyed",
            Action::Rotate => "rotated",
            Action::Import => "imported",
        }
    }

    /// Returns whether this action changes anything.
    pub fn is_change(self) -> bool {
        self != Action::NoOp
    }
}

/// One object and what apply does to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub address: String,
    pub kind: Kind,
    pub workspace: String,
    pub action: Action,
    /// Why, for example `missing`, `deleted outside mlops`, `expires 2027-03-14, in 12 days`.
    pub reasons: Vec<String>,
    /// Whether the change repairs something changed outside mlops.
    pub drift: bool,
    /// The object's id in the API, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// Attributes before the change; secret values appear only as fingerprints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Attributes>,
    /// Attributes after the change; `"(known after apply)"` where apply decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Attributes>,
}

/// Counts of the changes of a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Objects created, replacements included.
    pub add: usize,
    /// Objects updated in place or rotated.
    pub change: usize,
    /// Objects destroyed, replacements included.
    pub destroy: usize,
    pub import: usize,
    pub rotate: usize,
}

impl Summary {
    /// Counts the actions of these changes.
    pub fn of(changes: &[Change]) -> Summary {
        let mut summary = Summary::default();
        for change in changes {
            match change.action {
                Action::NoOp => {}
                Action::Create => summary.add += 1,
                Action::Update => summary.change += 1,
                Action::Replace => {
                    summary.add += 1;
                    summary.destroy += 1;
                }
                Action::Delete => summary.destroy += 1,
                Action::Rotate => {
                    summary.change += 1;
                    summary.rotate += 1;
                }
                Action::Import => summary.import += 1,
            }
        }
        summary
    }

    /// Returns whether the plan changes anything.
    pub fn has_changes(&self) -> bool {
        self.add + self.change + self.destroy + self.import + self.rotate > 0
    }
}

impl Plan {
    /// Returns whether the plan changes anything, in the workspaces or in the state.
    pub fn has_changes(&self) -> bool {
        self.summary.has_changes() || self.workspaces.iter().any(|workspace| workspace.needs_first_token && self.summary.add > 0)
    }

    /// Returns the changes that do something.
    pub fn actionable(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|change| change.action.is_change())
    }

    /// Returns the change of this address.
    pub fn change(&self, address: &str) -> Option<&Change> {
        self.changes.iter().find(|change| change.address == address)
    }
}
