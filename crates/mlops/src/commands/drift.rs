//! `mlops drift`: exit 0 in sync, 2 on drift or a rotation due, 1 on any error.

use std::path::Path;

use mlops_plan::{Action, Operation, Plan, render};
use serde_json::json;

use crate::cli::Format;
use crate::session::Session;

pub async fn run(config_path: &Path, format: Format) -> anyhow::Result<u8> {
    let session = Session::open(config_path, "drift").await?;
    let (state, _) = session.read_state()?;
    let (_, plan) = session.plan(&state, Operation::Apply).await?;

    let findings: Vec<&mlops_plan::Change> =
        plan.actionable().filter(|change| change.drift || change.action == Action::Rotate).collect();
    let pending = plan.actionable().filter(|change| !change.drift && change.action != Action::Rotate && !follows_rotation(change)).count();
    let text = match format {
        Format::Json => json_report(&plan, &findings, pending),
        Format::Markdown => markdown_report(&plan, &findings, pending),
        Format::Text => text_report(&plan, &findings, pending),
    };
    super::print_stdout(&text)?;
    Ok(if findings.is_empty() && plan.warnings.is_empty() { 0 } else { 2 })
}

/// Returns whether a change only carries out a rotation or finishes an interrupted one.
fn follows_rotation(change: &mlops_plan::Change) -> bool {
    change.reasons.iter().any(|reason| reason.starts_with("follows the new token") || reason.contains("after an interrupted rotation"))
}

fn text_report(plan: &Plan, findings: &[&mlops_plan::Change], pending: usize) -> String {
    let mut out = String::new();
    if findings.is_empty() && plan.warnings.is_empty() {
        out.push_str("In sync: no object changed outside mlops and no token is due for rotation.\n");
    } else if findings.is_empty() {
        out.push_str("No drift, but the warnings below need attention.\n");
    } else {
        out.push_str(&format!("Drift: {} finding(s).\n\n", findings.len()));
        for change in findings {
            out.push_str(&format!("  {} {}: {}\n", change.action.symbol(), change.address, change.reasons.join("; ")));
        }
        out.push_str("\nRun `mlops apply` to repair and rotate.\n");
    }
    if pending > 0 {
        out.push_str(&format!("{pending} change(s) from the configuration are not applied yet; see `mlops plan`.\n"));
    }
    for warning in &plan.warnings {
        out.push_str(&format!("Warning: {warning}\n"));
    }
    let _ = render::summary_line(&plan.summary);
    out
}

fn markdown_report(plan: &Plan, findings: &[&mlops_plan::Change], pending: usize) -> String {
    let mut out = String::from("### mlops drift\n\n");
    if findings.is_empty() && plan.warnings.is_empty() {
        out.push_str("In sync: no object changed outside mlops and no token is due for rotation.\n");
    } else if findings.is_empty() {
        out.push_str("No drift, but the warnings below need attention.\n");
    } else {
        out.push_str("| object | action | reason |\n|---|---|---|\n");
        for change in findings {
            out.push_str(&format!("| `{}` | {} due | {} |\n", change.address, action_noun(change.action), change.reasons.join("; ")));
        }
    }
    if pending > 0 {
        out.push_str(&format!("\n{pending} change(s) from the configuration are not applied yet.\n"));
    }
    for warning in &plan.warnings {
        out.push_str(&format!("\n- Warning: {warning}\n"));
    }
    out
}

fn action_noun(action: Action) -> &'static str {
    match action {
        Action::Rotate => "rotation",
        Action::Create => "re-creation",
        Action::Delete => "removal",
        Action::Import => "import",
        _ => "repair",
    }
}

fn json_report(plan: &Plan, findings: &[&mlops_plan::Change], pending: usize) -> String {
    let items: Vec<serde_json::Value> = findings
        .iter()
        .map(|change| {
            json!({
                "address": change.address,
                "workspace": change.workspace,
                "kind": change.kind,
                "action": change.action,
                "reasons": change.reasons,
            })
        })
        .collect();
    let report = json!({
        "format_version": 1,
        "in_sync": findings.is_empty() && plan.warnings.is_empty(),
        "drift": items,
        "rotation_due": findings.iter().filter(|change| change.action == Action::Rotate).count(),
        "pending_config_changes": pending,
        "warnings": plan.warnings,
    });
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
    text.push('\n');
    text
}
