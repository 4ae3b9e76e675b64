//! The README's first-run promise: plan and apply `mlops.yaml.example` on the embedded emulator.

use crate::support::{copy_example, run_in, token_shaped};

/// Objects of a first apply of the default topology: per registry workspace a group, two token
/// grants (the group and `users`), a service principal, its membership, its registry grant and
/// its token; per reader scope three secrets and its ACLs.
const FIRST_APPLY_OBJECTS: u64 = 2 * 7 + (2 + 6 + 2) + (1 + 3 + 2);

#[test]
fn example_first_plan_counts_every_object() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());

    let run = run_in(dir.path(), &["plan", "--detailed-exitcode", "--format", "json"], &[]);
    run.expect_code(2);
    let plan = run.json();

    assert_eq!(plan["summary"]["add"], FIRST_APPLY_OBJECTS);
    assert_eq!(plan["summary"]["change"], 0);
    assert_eq!(plan["summary"]["destroy"], 0);
    assert_eq!(plan["summary"]["import"], 0);
    assert_eq!(plan["format_version"], 1);
}

#[test]
fn example_apply_then_plan_has_no_changes() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());

    let plan = run_in(dir.path(), &["plan"], &[]);
    plan.expect_code(0);
    assert!(plan.stdout.contains("has no token yet"), "the first-token bootstrap is not announced:\n{}", plan.stdout);

    let apply = run_in(dir.path(), &["apply", "--auto-approve"], &[]);
    apply.expect_code(0);
    assert!(apply.stdout.contains("Apply complete! Resources: 30 added, 0 changed, 0 destroyed."), "{}", apply.stdout);
    assert!(apply.stderr.contains("staging/group: Creation complete after"), "{}", apply.stderr);

    let again = run_in(dir.path(), &["plan", "--detailed-exitcode"], &[]);
    again.expect_code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}

#[test]
fn example_outputs_have_module_values() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());

    let run = run_in(dir.path(), &["output", "--format", "json"], &[]);
    run.expect_code(0);
    let outputs = run.json();

    assert_eq!(outputs["dev_secret_scope_name_for_staging"], "remote-mr-staging");
    assert_eq!(outputs["dev_secret_scope_name_for_prod"], "remote-mr-prod");
    assert_eq!(outputs["staging_secret_scope_name_for_prod"], "remote-mr-prod");
    assert_eq!(outputs["dev_secret_scope_prefix_for_staging"], "staging");
    assert_eq!(outputs["dev_secret_scope_prefix_for_prod"], "prod");
    assert_eq!(outputs["staging_secret_scope_prefix_for_prod"], "prod");
    assert_eq!(outputs["service_principal_group_name"], "mlops-service-principals");
    assert_eq!(outputs["dev_registry_uri_for_prod"], "databricks://remote-mr-prod:prod");
}

#[test]
fn example_state_lists_and_shows_objects() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    run_in(dir.path(), &["apply", "--auto-approve"], &[]).expect_code(0);

    let list = run_in(dir.path(), &["state", "list"], &[]);
    list.expect_code(0);
    assert_eq!(list.stdout.lines().count(), 30, "{}", list.stdout);
    assert!(list.stdout.lines().any(|line| line == "prod/token"));

    let show = run_in(dir.path(), &["state", "show", "prod/token"], &[]);
    show.expect_code(0);
    let token = show.json();
    assert_eq!(token["kind"], "token");
    assert_eq!(token["workspace_id"], "987654321");
    assert!(token["attributes"]["value_sha256"].as_str().is_some_and(|sha| sha.len() == 64));

    let missing = run_in(dir.path(), &["state", "show", "prod/nothing"], &[]);
    missing.expect_code(1);
    assert!(missing.stderr.contains("mlops state list"), "{}", missing.stderr);
}

#[test]
fn example_leaks_no_token_value() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());

    let mut printed = String::new();
    for args in [
        &["plan", "--format", "json", "-vvv"][..],
        &["apply", "--auto-approve", "-vvv"],
        &["plan", "--out", "saved.plan", "-vvv"],
        &["output", "-vvv"],
        &["output", "--format", "json"],
        &["state", "list"],
    ] {
        let run = run_in(dir.path(), args, &[("RUST_LOG", "trace")]);
        run.expect_code(0);
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
    }

    let state = std::fs::read_to_string(dir.path().join("state/mlops.state.json")).unwrap();
    let saved_plan = std::fs::read_to_string(dir.path().join("saved.plan")).unwrap();
    assert!(token_shaped(&state).is_empty(), "a token value is in the state file");
    assert!(token_shaped(&saved_plan).is_empty(), "a token value is in the saved plan");
    assert!(token_shaped(&printed).is_empty(), "a token value was printed");
}
