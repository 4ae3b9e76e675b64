//! Crash safety: `apply` killed with SIGKILL right after each mutation of a first apply and of a
//! rotation, then run again, must converge.
//!
//! A crash point is the k-th mutation of one workspace. A reference run counts the mutations of
//! each workspace; then, for every workspace and every k, a fresh emulator hangs the k-th
//! mutation of that workspace after carrying it out (`hang_after_mutation`), the test kills
//! `apply` as soon as the emulator has counted it, and runs `apply` again. Other workspaces run
//! their steps concurrently, so they may be anywhere in the same stage when the kill lands.

use std::collections::BTreeMap;

use serde_json::json;

use crate::reliability::{FIRST_APPLY_TIME, ROTATION_TIME, Setup, WORKSPACES, check_converged};

/// What runs before the apply that is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// The killed apply is the first one, against empty workspaces.
    FirstApply,
    /// A first apply completes, then the killed apply rotates both tokens 75 days later.
    Rotation,
}

/// Starts an emulator and brings it to the point just before the apply under test.
fn prepare(scenario: Scenario) -> Setup {
    let mut setup = Setup::start(FIRST_APPLY_TIME, "");
    if scenario == Scenario::Rotation {
        setup.run(&["apply", "--auto-approve"]).expect_code(0);
        setup.move_clock(ROTATION_TIME);
    }
    setup
}

/// Runs the apply under test without faults and returns the mutations of each workspace.
fn reference_counts(scenario: Scenario) -> BTreeMap<&'static str, u64> {
    let setup = prepare(scenario);
    setup.reset_counts();
    let run = setup.run(&["apply", "--auto-approve"]);
    run.expect_code(0);
    if scenario == Scenario::Rotation {
        assert!(run.stdout.contains("2 token(s) rotated"), "the reference run rotated no token:\n{}", run.stdout);
    }
    check_converged(&setup, &format!("{scenario:?} reference run"));
    WORKSPACES.iter().map(|workspace| (*workspace, setup.mutations(workspace))).collect()
}

/// Kills apply right after mutation `k` of `workspace`, runs apply again and checks convergence.
fn crash_and_recover(scenario: Scenario, workspace: &str, k: u64) {
    let context = format!("{scenario:?}, killed after mutation {k} of {workspace}");
    let setup = prepare(scenario);
    setup.reset_counts();
    setup.set_faults(workspace, &json!([{ "kind": "hang_after_mutation", "after_mutations": k - 1, "times": 1 }]));

    let mut apply = setup.spawn(&["apply", "--auto-approve"]);
    setup.wait_for_mutations(workspace, k, &mut apply);
    apply.kill();
    setup.clear_faults();

    let recovery = setup.run(&["apply", "--auto-approve"]);
    assert_eq!(
        recovery.code, 0,
        "{context}: the apply after the crash failed\n--- killed run\n{}\n--- stdout\n{}\n--- stderr\n{}",
        apply.output(),
        recovery.stdout,
        recovery.stderr
    );
    check_converged(&setup, &context);
}

/// Crashes the scenario at every mutation of every workspace and returns how many crash points
/// it covered.
fn crash_everywhere(scenario: Scenario) -> u64 {
    let counts = reference_counts(scenario);
    let total: u64 = counts.values().sum();
    assert!(total > 0, "the {scenario:?} reference run made no mutation");

    let mut covered = 0;
    for (workspace, count) in &counts {
        for k in 1..=*count {
            crash_and_recover(scenario, workspace, k);
            covered += 1;
        }
    }
    let per_workspace: Vec<String> = counts.iter().map(|(workspace, count)| format!("{workspace} {count}")).collect();
    println!("{scenario:?}: recovered from {covered} crash points ({}), every mutation of the reference run", per_workspace.join(", "));
    assert_eq!(covered, total);
    covered
}

#[test]
fn crash_during_first_apply() {
    let covered = crash_everywhere(Scenario::FirstApply);

    assert!(covered >= 20, "a first apply of the default topology makes more than {covered} mutations");
}

#[test]
fn crash_during_rotation() {
    let covered = crash_everywhere(Scenario::Rotation);

    assert!(covered >= 5, "a rotation of two tokens makes more than {covered} mutations");
}
