//! The Markdown rendering of a plan, written to be posted as a pull-request comment.
//!
//! Above the fold: the summary line, a table of counts per workspace, one loud line for each
//! change that revokes, rotates or grants credentials, the drift found and the warnings. Below
//! it, one collapsed `diff` block per workspace whose lines start with `+`, `-`, `!` or a space in
//! column 0, so that GitHub colors them. Last comes the plan's fingerprint. Names read from a
//! workspace can hold any character, so prose is HTML-escaped, control characters are escaped and
//! code spans and fences are made longer than any run of backticks inside them.

use std::fmt::Write as _;

use super::{show, summary_line};
use crate::address::Kind;
use crate::plan::{Action, Attributes, Change, Operation, Plan, PlanWorkspace, Summary};

/// Maximum length of the comment in bytes, and so also in characters. The GitHub API rejects a
/// longer comment body than 65,536 characters (`Body is too long (maximum is 65536 characters)`).
/// The difference leaves room for marker lines that a CI job adds.
pub const MARKDOWN_LIMIT: usize = 65_000;

/// Bytes kept free for the note that marks where the comment is cut.
const CUT_NOTE_ROOM: usize = 300;

/// Renders the plan as a pull-request comment of at most [`MARKDOWN_LIMIT`] bytes.
///
/// The output depends only on the plan, so the same plan always gives the same comment. When the
/// plan does not fit, whole lines and whole changes are left out from the end, and a note counts
/// them.
pub fn markdown(plan: &Plan) -> String {
    let footer = footer(plan);
    let title = match plan.operation {
        Operation::Apply => "mlops plan",
        Operation::Destroy => "mlops destroy plan",
    };
    let mut comment = Comment {
        text: format!("### {title}\n\n**{}**\n", summary_line(&plan.summary)),
        budget: MARKDOWN_LIMIT.saturating_sub(footer.len() + CUT_NOTE_ROOM),
        lines_left_out: 0,
        changes_left_out: 0,
    };

    if plan.has_changes() {
        comment.push_lines(&workspace_table(plan));
    }
    comment.push_section(&credential_lines(plan));
    comment.push_section(&drift_lines(plan));
    comment.push_section(&warning_lines(plan));
    for workspace in workspace_names(plan) {
        let changes: Vec<&Change> = plan
            .actionable()
            .filter(|change| change.workspace == workspace)
            .collect();
        if !changes.is_empty() {
            comment.push_details(workspace, &changes);
        }
    }

    let mut text = comment.text;
    text.push_str(&cut_note(comment.lines_left_out, comment.changes_left_out));
    text.push_str(&footer);
    text
}

/// A comment that grows up to a byte budget and counts what did not fit.
struct Comment {
    text: String,
    budget: usize,
    lines_left_out: usize,
    changes_left_out: usize,
}

impl Comment {
    fn is_cut(&self) -> bool {
        self.lines_left_out + self.changes_left_out > 0
    }

    /// Appends `piece` when it fits with `reserve` more bytes to spare. Once one piece does not
    /// fit, no later piece is added, so the comment is only ever cut at its end.
    fn push(&mut self, piece: &str, reserve: usize) -> bool {
        let fits = self.text.len() + piece.len() + reserve <= self.budget;
        if fits && !self.is_cut() {
            self.text.push_str(piece);
            return true;
        }
        false
    }

    fn push_lines(&mut self, lines: &[String]) {
        for line in lines {
            if !self.push(line, 0) {
                self.lines_left_out += 1;
            }
        }
    }

    /// Appends a list of lines after a blank line.
    fn push_section(&mut self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        if !self.push("\n", lines[0].len()) {
            self.lines_left_out += lines.len();
            return;
        }
        self.push_lines(lines);
    }

    /// Appends one collapsed `diff` block with the changes of a workspace, closing it properly
    /// even when only some of its changes fit.
    fn push_details(&mut self, workspace: &str, changes: &[&Change]) {
        let entries: Vec<String> = changes.iter().map(|change| diff_entry(change)).collect();
        let fence = fence_for(&entries);
        let open = format!(
            "\n<details><summary>{}: {}</summary>\n\n{fence}diff\n",
            html(workspace),
            count(entries.len(), "change")
        );
        let close = format!("{fence}\n</details>\n");

        if !self.push(&open, entries[0].len() + close.len()) {
            self.changes_left_out += entries.len();
            return;
        }
        for entry in &entries {
            if !self.push(entry, close.len()) {
                self.changes_left_out += 1;
            }
        }
        self.text.push_str(&close);
    }
}

/// Lists the configured workspaces in order, then any other workspace that a change names, such
/// as one removed from the configuration whose objects are deleted.
fn workspace_names(plan: &Plan) -> Vec<&str> {
    let mut names: Vec<&str> = plan
        .workspaces
        .iter()
        .map(|workspace| workspace.name.as_str())
        .collect();
    for change in &plan.changes {
        if !names.contains(&change.workspace.as_str()) {
            names.push(&change.workspace);
        }
    }
    names
}

fn workspace_table(plan: &Plan) -> Vec<String> {
    let mut lines = vec![
        "\n| workspace | add | change | destroy | import | rotate |\n".to_owned(),
        "|---|--:|--:|--:|--:|--:|\n".to_owned(),
    ];
    for workspace in workspace_names(plan) {
        let changes: Vec<Change> = plan
            .changes
            .iter()
            .filter(|change| change.workspace == workspace)
            .cloned()
            .collect();
        let summary = Summary::of(&changes);
        lines.push(format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            table_cell(workspace),
            summary.add,
            summary.change,
            summary.destroy,
            summary.import,
            summary.rotate
        ));
    }
    lines
}

/// The effect of a change on credentials, in the order the loud lines are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Effect {
    Revokes,
    Rotates,
    Grants,
}

/// Lists one loud line per change that revokes, rotates or grants credentials: revocations
/// first, then rotations, then grants, each group in plan order.
fn credential_lines(plan: &Plan) -> Vec<String> {
    let mut lines: Vec<(Effect, String)> = plan
        .workspaces
        .iter()
        .filter(|workspace| workspace.needs_first_token)
        .map(first_token_line)
        .collect();
    for change in plan.actionable() {
        if let Some((effect, verb, object)) = credential_effect(change) {
            let mut line = format!("- **{verb}** {object}: {}", code(&change.address));
            if !change.reasons.is_empty() {
                let _ = write!(line, " ({})", html(&change.reasons.join("; ")));
            }
            line.push('\n');
            lines.push((effect, line));
        }
    }
    if lines.is_empty() {
        return Vec::new();
    }
    lines.sort_by_key(|(effect, _)| *effect);
    let mut lines: Vec<String> = lines.into_iter().map(|(_, line)| line).collect();
    lines.insert(0, "Changes to credentials and access:\n\n".to_owned());
    lines
}

fn first_token_line(workspace: &PlanWorkspace) -> (Effect, String) {
    let line = format!(
        "- **Mints** a short-lived personal token in workspace {}, because token permissions do not exist until a first token does; apply revokes it at the end\n",
        code(&workspace.name)
    );
    (Effect::Grants, line)
}

/// Returns the effect of a change on credentials, with the verb and object of its loud line.
fn credential_effect(change: &Change) -> Option<(Effect, &'static str, &'static str)> {
    use Action::{Create, Delete, Replace, Rotate, Update};
    let effect = match (change.kind, change.action) {
        (Kind::Token, Rotate) => (Effect::Rotates, "Rotates", "token"),
        (Kind::Token, Replace) => (Effect::Rotates, "Replaces", "token"),
        (Kind::Token, Create) => (Effect::Grants, "Mints", "token"),
        (Kind::Token, Update) => (Effect::Revokes, "Revokes", "old tokens of"),
        (Kind::Token, Delete) => (Effect::Revokes, "Revokes", "token"),
        (Kind::TokenPermission, Create | Update) => (Effect::Grants, "Grants", "CAN_USE on tokens"),
        (Kind::TokenPermission, Delete) => (Effect::Revokes, "Revokes", "CAN_USE on tokens"),
        (Kind::RegistryPermission, Create | Update) => {
            (Effect::Grants, "Grants", "CAN_READ on the model registry")
        }
        (Kind::RegistryPermission, Delete) => {
            (Effect::Revokes, "Removes", "CAN_READ on the model registry")
        }
        (Kind::GroupMember, Create | Update) => {
            (Effect::Grants, "Adds", "the service principal to the group")
        }
        (Kind::GroupMember, Delete) => (
            Effect::Revokes,
            "Removes",
            "the service principal from the group",
        ),
        (Kind::SecretAcl, Create | Update) => (Effect::Grants, "Grants", "READ on a secret scope"),
        (Kind::SecretAcl, Delete) => (Effect::Revokes, "Removes", "READ on a secret scope"),
        (Kind::SecretScope, Update) if removes_principals(change.after.as_ref()) => (
            Effect::Revokes,
            "Removes",
            "ACLs added outside mlops from secret scope",
        ),
        (Kind::SecretScope, Delete) => (Effect::Revokes, "Deletes", "secret scope"),
        (Kind::Secret, Delete) if change.address.ends_with("-token") => {
            (Effect::Revokes, "Deletes", "token secret")
        }
        (Kind::ServicePrincipal, Delete | Replace) => {
            (Effect::Revokes, "Deletes", "service principal")
        }
        (Kind::Group, Delete | Replace) => (Effect::Revokes, "Deletes", "group"),
        _ => return None,
    };
    Some(effect)
}

fn removes_principals(after: Option<&Attributes>) -> bool {
    after
        .and_then(|after| after.get("remove_principals"))
        .and_then(|value| value.as_array())
        .is_some_and(|principals| !principals.is_empty())
}

fn drift_lines(plan: &Plan) -> Vec<String> {
    let drift: Vec<&Change> = plan.actionable().filter(|change| change.drift).collect();
    if drift.is_empty() {
        return Vec::new();
    }
    let mut lines = vec!["Changed outside mlops, and repaired by this plan:\n\n".to_owned()];
    for change in drift {
        lines.push(format!(
            "- {}: {}\n",
            code(&change.address),
            html(&change.reasons.join("; "))
        ));
    }
    lines
}

fn warning_lines(plan: &Plan) -> Vec<String> {
    plan.warnings
        .iter()
        .map(|warning| format!("- **Warning:** {}\n", html(warning)))
        .collect()
}

/// Returns the lines of one change in a `diff` block: a header line, then its attributes.
fn diff_entry(change: &Change) -> String {
    let marker = match change.action {
        Action::Create | Action::Import => '+',
        Action::Delete => '-',
        _ => '!',
    };
    let mut entry = format!(
        "{marker} {} will be {}",
        one_line(&change.address),
        change.action.verb()
    );
    if !change.reasons.is_empty() {
        let _ = write!(entry, " ({})", one_line(&change.reasons.join("; ")));
    }
    entry.push('\n');

    let empty = Attributes::new();
    let before = change.before.as_ref().unwrap_or(&empty);
    let after = change.after.as_ref().unwrap_or(&empty);
    for (marker, key, value) in attribute_lines(change.action, before, after) {
        let _ = writeln!(
            entry,
            "{marker}     {} = {}",
            one_line(key),
            one_line(&show(value))
        );
    }
    entry
}

/// Lists the attribute lines of a change with their markers: everything a create adds or a
/// delete removes, what an import adopts, and only the differences for other actions.
fn attribute_lines<'a>(
    action: Action,
    before: &'a Attributes,
    after: &'a Attributes,
) -> Vec<(char, &'a String, &'a serde_json::Value)> {
    match action {
        Action::Create => after.iter().map(|(key, value)| ('+', key, value)).collect(),
        Action::Delete => before
            .iter()
            .map(|(key, value)| ('-', key, value))
            .collect(),
        Action::Import => after.iter().map(|(key, value)| (' ', key, value)).collect(),
        _ => {
            let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
            keys.sort();
            keys.dedup();
            let mut lines = Vec::new();
            for key in keys {
                match (before.get(key), after.get(key)) {
                    (Some(old), Some(new)) if old == new => {}
                    (old, new) => {
                        lines.extend(old.map(|old| ('-', key, old)));
                        lines.extend(new.map(|new| ('+', key, new)));
                    }
                }
            }
            lines
        }
    }
}

fn cut_note(lines_left_out: usize, changes_left_out: usize) -> String {
    if lines_left_out + changes_left_out == 0 {
        return String::new();
    }
    let mut missing = Vec::new();
    if lines_left_out > 0 {
        missing.push(count(lines_left_out, "summary line"));
    }
    if changes_left_out > 0 {
        missing.push(count(changes_left_out, "change"));
    }
    format!(
        "\n**The comment is cut here to stay within {} characters: {} not shown.** Run `mlops plan` for the whole plan.\n",
        thousands(MARKDOWN_LIMIT),
        missing.join(" and ")
    )
}

fn footer(plan: &Plan) -> String {
    let lineage = if plan.lineage.is_empty() {
        "(none)"
    } else {
        plan.lineage.as_str()
    };
    format!(
        "\n<sub>Fingerprint: state lineage {}, serial {}, configuration SHA-256 {}, made at {}. A plan saved with `mlops plan --out FILE` applies with `mlops apply FILE` only while these three are unchanged.</sub>\n",
        code(lineage),
        plan.serial,
        code(&plan.config_sha256),
        html(&plan.created_at)
    )
}

/// Returns `N thing` or `N things`.
fn count(number: usize, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

/// Returns a number with a comma between groups of three digits, as in `65,000`.
fn thousands(number: usize) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Replaces control characters, line breaks included, with their escaped form.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() {
                character.escape_debug().to_string()
            } else {
                character.to_string()
            }
        })
        .collect()
}

/// Escapes the characters that start HTML, for text outside code. Backticks stay, because
/// reasons quote names in them.
fn html(text: &str) -> String {
    one_line(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Escapes text for a table cell, where `|` ends the cell.
fn table_cell(text: &str) -> String {
    html(text).replace('|', "\\|")
}

/// Returns `text` as a code span, delimited by more backticks than any run inside it.
fn code(text: &str) -> String {
    let text = one_line(text);
    let delimiter = "`".repeat(longest_backtick_run(&text) + 1);
    if text.starts_with('`') || text.ends_with('`') {
        format!("{delimiter} {text} {delimiter}")
    } else {
        format!("{delimiter}{text}{delimiter}")
    }
}

/// Returns a code fence longer than any run of backticks in the entries, and at least three long.
fn fence_for(entries: &[String]) -> String {
    let longest = entries
        .iter()
        .map(|entry| longest_backtick_run(entry))
        .max()
        .unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|character| character != '`')
        .map(str::len)
        .max()
        .unwrap_or(0)
}
