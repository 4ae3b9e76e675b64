//! The Markdown pull-request comment: snapshots of typical plans, and the limits every comment
//! keeps (size, `diff` markers in column 0, balanced blocks, escaping of names read from a
//! workspace).
//!
//! The plans under `fixtures/` are real `mlops plan --format json` outputs against the emulator
//! with `MLOPS_NOW` set, with the random state lineage replaced by a fixed one.

use mlops_plan::plan::{Attributes, FORMAT_VERSION, PlanWorkspace};
use mlops_plan::render::{MARKDOWN_LIMIT, markdown};
use mlops_plan::{Action, Change, Kind, Operation, Plan, Summary};
use serde_json::{Value, json};

fn fixture(name: &str) -> Plan {
    let path = format!(
        "{}/tests/fixtures/{name}.plan.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("failed to read {path}: {error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{path} is not a plan: {error}"))
}

fn attributes(pairs: &[(&str, Value)]) -> Attributes {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect()
}

fn change(address: &str, kind: Kind, action: Action, reasons: &[&str]) -> Change {
    Change {
        address: address.to_owned(),
        kind,
        workspace: address.split('/').next().unwrap().to_owned(),
        action,
        reasons: reasons.iter().map(|reason| (*reason).to_owned()).collect(),
        drift: false,
        remote_id: None,
        before: None,
        after: None,
    }
}

fn plan_of(workspaces: &[&str], changes: Vec<Change>, warnings: Vec<String>) -> Plan {
    Plan {
        format_version: FORMAT_VERSION,
        operation: Operation::Apply,
        created_at: "2027-03-17T00:00:00Z".to_owned(),
        lineage: "0f5c2a7e-9d41-4c3b-8e6a-1b2c3d4e5f60".to_owned(),
        serial: 41,
        config_sha256: "5d2e1f0c4b3a29187766554433221100ffeeddccbbaa99887766554433221100"
            .to_owned(),
        workspaces: workspaces
            .iter()
            .enumerate()
            .map(|(index, name)| PlanWorkspace {
                name: (*name).to_owned(),
                workspace_id: format!("{}", 1000 + index),
                needs_first_token: false,
            })
            .collect(),
        summary: Summary::of(&changes),
        changes,
        warnings,
    }
}

fn revocation_plan() -> Plan {
    let grant = |group: &str| {
        attributes(&[
            ("principal", json!(format!("group:{group}"))),
            ("permission_level", json!("CAN_USE")),
        ])
    };
    let mut rejected = change(
        "prod/token_permission/data-eng",
        Kind::TokenPermission,
        Action::Delete,
        &[
            "not declared and token_usage.mode is authoritative",
            "revokes 2 live token(s) at once",
            "apply rejects this unless `data-eng` is listed in token_usage.allow_revoke",
        ],
    );
    rejected.before = Some(grant("data-eng"));
    rejected.remote_id = Some("tokens".to_owned());
    let mut allowed = change(
        "prod/token_permission/contractors",
        Kind::TokenPermission,
        Action::Delete,
        &[
            "not declared and token_usage.mode is authoritative",
            "revokes 5 live token(s) at once",
        ],
    );
    allowed.before = Some(grant("contractors"));
    allowed.remote_id = Some("tokens".to_owned());
    let mut removed = change(
        "staging/token_permission/users",
        Kind::TokenPermission,
        Action::Delete,
        &[
            "no longer in the configuration",
            "principals of this grant lose their tokens at once",
        ],
    );
    removed.before = Some(grant("users"));
    removed.remote_id = Some("tokens".to_owned());
    let unchanged = change("prod/group", Kind::Group, Action::NoOp, &[]);

    plan_of(
        &["dev", "staging", "prod"],
        vec![removed, unchanged, rejected, allowed],
        Vec::new(),
    )
}

/// Returns a plan of `count` secret creations per workspace, each with long attributes.
fn large_plan(count: usize) -> Plan {
    let mut changes = Vec::new();
    for workspace in ["dev", "staging"] {
        for index in 0..count {
            let key = format!("model-{index:04}-host");
            let mut created = change(
                &format!("{workspace}/secret/remote-mr-many/{key}"),
                Kind::Secret,
                Action::Create,
                &["missing"],
            );
            created.after = Some(attributes(&[
                ("scope", json!("remote-mr-many")),
                ("key", json!(key)),
                ("source", json!("configuration")),
                ("value_sha256", json!(format!("{index:064x}"))),
            ]));
            changes.push(created);
        }
    }
    plan_of(&["dev", "staging"], changes, Vec::new())
}

/// Returns the first `head` and the last `tail` lines, for a snapshot of a long comment.
fn excerpt(text: &str, head: usize, tail: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[..head].join("\n");
    out.push_str("\n[… lines left out of this snapshot …]\n");
    out.push_str(&lines[lines.len() - tail..].join("\n"));
    out
}

/// Returns the lines inside each `diff` fence.
fn diff_lines(text: &str) -> Vec<&str> {
    let mut inside: Option<&str> = None;
    let mut found = Vec::new();
    for line in text.lines() {
        match inside {
            None => {
                if let Some(fence) = line
                    .strip_suffix("diff")
                    .filter(|fence| fence.len() >= 3 && fence.chars().all(|c| c == '`'))
                {
                    inside = Some(fence);
                }
            }
            Some(fence) if line == fence => inside = None,
            Some(_) => found.push(line),
        }
    }
    assert!(inside.is_none(), "a diff fence is not closed");
    found
}

#[track_caller]
fn assert_well_formed(text: &str) {
    assert!(
        text.len() <= MARKDOWN_LIMIT,
        "comment is {} bytes",
        text.len()
    );
    let opened = text
        .lines()
        .filter(|line| line.starts_with("<details>"))
        .count();
    let closed = text
        .lines()
        .filter(|line| line.starts_with("</details>"))
        .count();
    assert_eq!(opened, closed, "unbalanced <details>");
    for line in diff_lines(text) {
        let marker = line.chars().next().unwrap_or(' ');
        assert!(
            matches!(marker, '+' | '-' | '!' | ' '),
            "diff line without a marker in column 0: {line:?}"
        );
    }
    assert!(
        text.trim_end().ends_with("</sub>"),
        "the fingerprint is not last"
    );
}

#[test]
fn markdown_nothing_to_do() {
    let text = markdown(&fixture("nothing_to_do"));

    assert_well_formed(&text);
    assert!(!text.contains("<details>"));
    insta::assert_snapshot!(text);
}

#[test]
fn markdown_first_apply() {
    let text = markdown(&fixture("first_apply"));

    assert_well_formed(&text);
    insta::assert_snapshot!(text);
}

#[test]
fn markdown_rotation_due() {
    let text = markdown(&fixture("rotation_due"));

    assert_well_formed(&text);
    assert!(text.contains("- **Rotates** token: `staging/token` (expires 2027-04-11, in 25 days)"));
    insta::assert_snapshot!(text);
}

#[test]
fn markdown_revocation() {
    let text = markdown(&revocation_plan());

    assert_well_formed(&text);
    let fold = text.find("<details>").expect("collapsed change list");
    let loud = text
        .find("- **Revokes** CAN_USE on tokens: `prod/token_permission/data-eng`")
        .expect("loud revocation line");
    assert!(loud < fold, "the revocation is not above the fold");
    assert!(text[..fold].contains("revokes 2 live token(s) at once"));
    insta::assert_snapshot!(text);
}

#[test]
fn markdown_cut_at_limit() {
    let plan = large_plan(400);
    let text = markdown(&plan);

    assert_well_formed(&text);
    assert!(
        text.len() > MARKDOWN_LIMIT - 2_000,
        "the comment is cut far below the limit: {} bytes",
        text.len()
    );
    let listed = text
        .lines()
        .filter(|line| line.starts_with("+ ") && line.contains(" will be created"))
        .count();
    assert!(listed < 800, "nothing was cut");
    let note = format!("{} changes not shown", 800 - listed);
    assert!(
        text.contains(&note),
        "the cut note does not count the {} missing changes",
        800 - listed
    );
    insta::assert_snapshot!(excerpt(&text, 14, 16));
}

#[test]
fn markdown_lists_drift_above_fold() {
    let mut repaired = change(
        "staging/registry_permission",
        Kind::RegistryPermission,
        Action::Create,
        &["removed outside mlops"],
    );
    repaired.drift = true;
    let configured = change(
        "staging/secret_scope/remote-mr-qa",
        Kind::SecretScope,
        Action::Create,
        &["missing"],
    );
    let text = markdown(&plan_of(
        &["staging"],
        vec![repaired, configured],
        Vec::new(),
    ));

    assert_well_formed(&text);
    let fold = text.find("<details>").expect("collapsed change list");
    let drift = "Changed outside mlops, and repaired by this plan:\n\n- `staging/registry_permission`: removed outside mlops\n";
    assert!(text[..fold].contains(drift), "{text}");
    assert!(
        !text[..fold].contains("remote-mr-qa"),
        "a configuration change is listed as drift:\n{text}"
    );
}

#[test]
fn markdown_shows_unconfigured_workspace() {
    let mut removed = change(
        "qa/secret_scope/remote-mr-prod",
        Kind::SecretScope,
        Action::Delete,
        &["no longer in the configuration"],
    );
    removed.before = Some(attributes(&[("name", json!("remote-mr-prod"))]));
    let text = markdown(&plan_of(&["dev"], vec![removed], Vec::new()));

    assert_well_formed(&text);
    assert!(text.contains("| qa | 0 | 0 | 1 | 0 | 0 |"), "{text}");
    assert!(
        text.contains("<details><summary>qa: 1 change</summary>"),
        "{text}"
    );
    assert!(
        text.contains("- **Deletes** secret scope: `qa/secret_scope/remote-mr-prod`"),
        "{text}"
    );
}

#[test]
fn markdown_not_cut_below_limit() {
    let text = markdown(&large_plan(20));

    assert_well_formed(&text);
    assert!(!text.contains("cut here"));
    assert_eq!(
        text.lines()
            .filter(|line| line.contains(" will be created"))
            .count(),
        40
    );
}

#[test]
fn markdown_limit_holds_for_loud_lines() {
    let mut changes = Vec::new();
    for index in 0..3_000 {
        let mut revoked = change(
            &format!("prod/token_permission/group-{index:05}"),
            Kind::TokenPermission,
            Action::Delete,
            &["its principals lose their tokens at once"],
        );
        revoked.before = Some(attributes(&[(
            "principal",
            json!(format!("group:group-{index:05}")),
        )]));
        changes.push(revoked);
    }
    let warnings = (0..500)
        .map(|index| format!("warning number {index}"))
        .collect();
    let text = markdown(&plan_of(&["prod"], changes, warnings));

    assert_well_formed(&text);
    assert!(text.contains("| prod | 0 | 0 | 3000 | 0 | 0 |"));
    assert!(
        text.contains("summary lines and 3000 changes not shown"),
        "{}",
        &text[text.len() - 600..]
    );
}

#[test]
fn markdown_escapes_hostile_names() {
    let hostile = "x``` </details> <img src=y> | @team\nnext";
    let mut revoked = change(
        &format!("prod/token_permission/{hostile}"),
        Kind::TokenPermission,
        Action::Delete,
        &[hostile],
    );
    revoked.before = Some(attributes(&[(
        "principal",
        json!(format!("group:{hostile}")),
    )]));
    let plan = plan_of(&["prod"], vec![revoked], vec![hostile.to_owned()]);

    let text = markdown(&plan);

    assert_well_formed(&text);
    let fold = text.find("<details>").expect("collapsed change list");
    let above = &text[..fold];
    let loud = "- **Revokes** CAN_USE on tokens: ````prod/token_permission/x``` </details> <img src=y> | @team\\nnext```` \
                (x``` &lt;/details&gt; &lt;img src=y&gt; | @team\\nnext)\n";
    assert!(
        above.contains(loud),
        "the address is not one code span, or the reason is not escaped:\n{above}"
    );
    assert!(
        above.contains("- **Warning:** x``` &lt;/details&gt; &lt;img src=y&gt; | @team\\nnext\n"),
        "{above}"
    );
    assert!(
        text.contains("\n````diff\n"),
        "the fence is not longer than the backtick run in the name"
    );
    assert!(
        !text.contains("@team\nnext"),
        "a line break in a name reached the comment"
    );
}

#[test]
fn markdown_depends_only_on_plan() {
    let plan = fixture("rotation_due");
    let copy: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();

    assert_eq!(markdown(&plan), markdown(&copy));
}

#[test]
fn markdown_fingerprint_names_state_and_config() {
    let plan = fixture("rotation_due");
    let text = markdown(&plan);

    let footer = text.lines().last().unwrap();
    assert!(footer.contains(&format!("`{}`", plan.lineage)), "{footer}");
    assert!(
        footer.contains(&format!("serial {}", plan.serial)),
        "{footer}"
    );
    assert!(
        footer.contains(&format!("`{}`", plan.config_sha256)),
        "{footer}"
    );
}

#[test]
fn markdown_destroy_plan_titled() {
    let mut plan = revocation_plan();
    plan.operation = Operation::Destroy;

    assert!(markdown(&plan).starts_with("### mlops destroy plan\n"));
}
