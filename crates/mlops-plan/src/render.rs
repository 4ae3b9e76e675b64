//! Renders a plan as text, JSON or a Markdown pull-request comment.

use std::fmt::Write as _;

use serde_json::Value;

use crate::plan::{Action, Attributes, Change, Plan, Summary};

mod markdown;

pub use markdown::{MARKDOWN_LIMIT, markdown};

/// Terminal colors for the text rendering; all empty when color is off.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub green: &'static str,
    pub yellow: &'static str,
    pub red: &'static str,
    pub bold: &'static str,
    pub reset: &'static str,
}

impl Palette {
    /// Returns ANSI colors when `enabled`, else no styling at all.
    pub fn new(enabled: bool) -> Palette {
        if enabled {
            Palette { green: "\x1b[32m", yellow: "\x1b[33m", red: "\x1b[31m", bold: "\x1b[1m", reset: "\x1b[0m" }
        } else {
            Palette { green: "", yellow: "", red: "", bold: "", reset: "" }
        }
    }

    fn of(&self, action: Action) -> &'static str {
        match action {
            Action::Create | Action::Import => self.green,
            Action::Update | Action::Rotate => self.yellow,
            Action::Delete | Action::Replace => self.red,
            Action::NoOp => "",
        }
    }
}

/// Renders the plan for a reader at a terminal or in a log.
pub fn text(plan: &Plan, palette: Palette) -> String {
    let mut out = String::new();
    for workspace in plan.workspaces.iter().filter(|workspace| workspace.needs_first_token) {
        let _ = writeln!(
            out,
            "Note: workspace `{}` has no token yet, so its token permissions do not exist. Apply creates a short-lived personal token as the admin, sets the permissions, then revokes that token.\n",
            workspace.name
        );
    }

    let drift: Vec<&Change> = plan.actionable().filter(|change| change.drift).collect();
    if !drift.is_empty() {
        let _ = writeln!(out, "{}Objects changed outside mlops:{}", palette.bold, palette.reset);
        for change in &drift {
            let _ = writeln!(out, "  {}: {}", change.address, change.reasons.join("; "));
        }
        out.push('\n');
    }

    if plan.summary.has_changes() {
        let _ = writeln!(out, "mlops will perform the following actions:\n");
        for change in plan.actionable() {
            write_change(&mut out, change, palette);
        }
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "Warning: {warning}");
    }
    if !plan.warnings.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "{}{}{}", palette.bold, summary_line(&plan.summary), palette.reset);
    out
}

/// Returns `Plan: N to add, N to change, N to destroy.` or `No changes.`, with imports and
/// rotations named when there are any.
pub fn summary_line(summary: &Summary) -> String {
    if !summary.has_changes() {
        return "No changes. The workspaces match the configuration.".to_owned();
    }
    let mut line = String::from("Plan: ");
    if summary.import > 0 {
        let _ = write!(line, "{} to import, ", summary.import);
    }
    let _ = write!(line, "{} to add, {} to change, {} to destroy.", summary.add, summary.change, summary.destroy);
    if summary.rotate > 0 {
        let _ = write!(line, " {} token(s) to rotate.", summary.rotate);
    }
    line
}

fn write_change(out: &mut String, change: &Change, palette: Palette) {
    let color = palette.of(change.action);
    let reasons = if change.reasons.is_empty() { String::new() } else { format!(" ({})", change.reasons.join("; ")) };
    let _ = writeln!(out, "  # {} will be {}{}", change.address, change.action.verb(), reasons);
    let _ = writeln!(out, "{color}  {} {}{}", change.action.symbol(), change.address, palette.reset);
    let empty = Attributes::new();
    let before = change.before.as_ref().unwrap_or(&empty);
    let after = change.after.as_ref().unwrap_or(&empty);
    let width = before.keys().chain(after.keys()).map(String::len).max().unwrap_or(0);
    let mut keys: Vec<&String> = after.keys().collect();
    if change.action == Action::Delete {
        keys = before.keys().collect();
    }
    for key in keys {
        let old = before.get(key);
        let new = after.get(key);
        match (old, new) {
            (Some(old), Some(new)) if old != new => {
                let _ = writeln!(out, "      {key:width$} = {} -> {}", show(old), show(new));
            }
            (_, Some(value)) | (Some(value), None) => {
                let _ = writeln!(out, "      {key:width$} = {}", show(value));
            }
            (None, None) => {}
        }
    }
    out.push('\n');
}

fn show(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

/// Renders the plan as the versioned JSON document described in `docs/plan-format.md`.
pub fn json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
    text.push('\n');
    text
}
