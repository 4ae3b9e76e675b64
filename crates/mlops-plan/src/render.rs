//! Renders a plan as text or JSON.

use std::fmt::Write as _;

use serde_json::Value;

use crate::plan::{Action, Attributes, Change, Plan, Summary};

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

/// The largest pull-request comment GitHub accepts is 65,536 characters; this leaves room.
pub const MARKDOWN_LIMIT: usize = 65_000;

/// Renders the plan as a pull-request comment: a summary per workspace above the fold, loud
/// lines for credential changes, and the full change list collapsed.
pub fn markdown(plan: &Plan) -> String {
    let mut head = String::new();
    let _ = writeln!(head, "### mlops plan\n");
    let _ = writeln!(head, "{}\n", summary_line(&plan.summary));
    let _ = writeln!(head, "| workspace | add | change | destroy | import | rotate |\n|---|---|---|---|---|---|");
    for workspace in &plan.workspaces {
        let changes: Vec<Change> = plan.changes.iter().filter(|change| change.workspace == workspace.name).cloned().collect();
        let summary = Summary::of(&changes);
        let _ = writeln!(
            head,
            "| {} | {} | {} | {} | {} | {} |",
            workspace.name, summary.add, summary.change, summary.destroy, summary.import, summary.rotate
        );
    }
    head.push('\n');
    for line in loud_lines(plan) {
        let _ = writeln!(head, "- **{line}**");
    }
    for warning in &plan.warnings {
        let _ = writeln!(head, "- Warning: {warning}");
    }

    let footer = format!(
        "\n<sub>Fingerprint: lineage `{}`, serial {}, configuration sha256 `{}`.</sub>\n",
        plan.lineage, plan.serial, plan.config_sha256
    );
    let mut details = String::new();
    for workspace in &plan.workspaces {
        let changes: Vec<&Change> = plan.actionable().filter(|change| change.workspace == workspace.name).collect();
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(details, "\n<details><summary>{}: {} change(s)</summary>\n\n```diff", workspace.name, changes.len());
        for change in changes {
            details.push_str(&diff_lines(change));
        }
        let _ = writeln!(details, "```\n</details>");
    }

    let budget = MARKDOWN_LIMIT.saturating_sub(head.len() + footer.len() + 200);
    if details.len() > budget {
        let mut cut = budget;
        while !details.is_char_boundary(cut) {
            cut -= 1;
        }
        details.truncate(cut);
        details.push_str("\n```\n</details>\n\n**The change list is cut here to fit the comment size limit; run `mlops plan` for the full list.**\n");
    }
    format!("{head}{details}{footer}")
}

/// Returns one loud line for each change that grants, revokes or rotates credentials.
fn loud_lines(plan: &Plan) -> Vec<String> {
    plan.actionable()
        .filter_map(|change| match (change.kind, change.action) {
            (crate::Kind::Token, Action::Rotate) => Some(format!("rotates token `{}` ({})", change.address, change.reasons.join("; "))),
            (crate::Kind::Token, Action::Create) => Some(format!("mints token `{}`", change.address)),
            (crate::Kind::Token, Action::Delete) => Some(format!("revokes token `{}`", change.address)),
            (crate::Kind::TokenPermission, Action::Delete) => Some(format!("revokes CAN_USE on tokens: `{}` ({})", change.address, change.reasons.join("; "))),
            (crate::Kind::TokenPermission, Action::Create) => Some(format!("grants CAN_USE on tokens: `{}`", change.address)),
            (crate::Kind::RegistryPermission, Action::Create) => Some(format!("grants CAN_READ on the registry: `{}`", change.address)),
            (crate::Kind::RegistryPermission, Action::Delete) => Some(format!("removes CAN_READ on the registry: `{}`", change.address)),
            _ => None,
        })
        .collect()
}

fn diff_lines(change: &Change) -> String {
    let marker = match change.action {
        Action::Create | Action::Import => "+",
        Action::Delete => "-",
        _ => "!",
    };
    let mut out = format!("{marker} {} {} ({})\n", change.action.symbol(), change.address, change.reasons.join("; "));
    if let (Some(before), Some(after)) = (&change.before, &change.after) {
        for (key, value) in after {
            if let Some(old) = before.get(key).filter(|old| *old != value) {
                let _ = writeln!(out, "-     {key} = {}", show(old));
                let _ = writeln!(out, "+     {key} = {}", show(value));
            }
        }
    }
    out
}
