//! Crash safety: `apply` killed with SIGKILL right after each mutation of a first apply and of a
//! rotation, then run again, must converge.
//!
//! A crash point is the k-th mutation of one workspace, either just after the emulator carried it
//! out (its response never arrives) or just before (the request is on its way and held back). A
//! reference run counts the mutations of each workspace. Then, for every workspace, every k and
//! both moments, a fresh emulator holds that request back. The test kills `apply` as soon as the
//! emulator reports it held, and runs `apply` again. Other workspaces run their steps
//! concurrently, so they may be anywhere in the same stage when the kill lands.

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

/// When the kill lands, relative to the mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Moment {
    /// The request was sent and the emulator holds it before carrying it out.
    Before,
    /// The emulator carried the request out and never responds.
    After,
}

/// Longer than any test runs, so a held request stays held.
const HOLD_MILLISECONDS: u64 = 600_000;

/// Returns fault rules that hold mutation `k` of a workspace at `moment`.
fn hold_rules(moment: Moment, k: u64) -> serde_json::Value {
    match moment {
        Moment::After => json!([{ "kind": "hang_after_mutation", "after_mutations": k - 1, "times": 1 }]),
        // A latency rule matches reads too, so one rule per mutating method holds the first
        // request of that method once k - 1 mutations are done.
        Moment::Before => json!(["POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .map(|method| json!({ "kind": "latency", "method": method, "after_mutations": k - 1, "times": 1, "latency_ms": HOLD_MILLISECONDS }))
            .collect::<Vec<_>>()),
    }
}

/// Kills apply at mutation `k` of `workspace`, runs apply again and checks convergence.
fn crash_and_recover(scenario: Scenario, workspace: &str, k: u64, moment: Moment) {
    let context = format!("{scenario:?}, killed {moment:?} mutation {k} of {workspace}");
    let setup = prepare(scenario);
    setup.reset_counts();
    setup.set_faults(workspace, &hold_rules(moment, k));

    let mut apply = setup.spawn(&["apply", "--auto-approve"]);
    match moment {
        Moment::After => setup.wait_for_mutations(workspace, k, &mut apply),
        Moment::Before => setup.wait_for_fired_rule(workspace, &mut apply),
    }
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

/// Crashes the scenario before and after every mutation of every workspace and returns how many
/// crash points it covered.
fn crash_everywhere(scenario: Scenario) -> u64 {
    let counts = reference_counts(scenario);
    let total: u64 = counts.values().sum();
    assert!(total > 0, "the {scenario:?} reference run made no mutation");

    let mut covered = 0;
    for (workspace, count) in &counts {
        for k in 1..=*count {
            for moment in [Moment::Before, Moment::After] {
                crash_and_recover(scenario, workspace, k, moment);
                covered += 1;
            }
        }
    }
    let per_workspace: Vec<String> = counts.iter().map(|(workspace, count)| format!("{workspace} {count}")).collect();
    println!(
        "{scenario:?}: recovered from {covered} crash points, before and after each of the {total} mutations of the reference run ({})",
        per_workspace.join(", ")
    );
    assert_eq!(covered, 2 * total);
    covered
}

#[test]
fn crash_during_first_apply() {
    let covered = crash_everywhere(Scenario::FirstApply);

    assert!(covered >= 40, "a first apply of the default topology makes more than {} mutations", covered / 2);
}

#[test]
fn crash_during_rotation() {
    let covered = crash_everywhere(Scenario::Rotation);

    assert!(covered >= 10, "a rotation of two tokens makes more than {} mutations", covered / 2);
}

#[test]
fn orphaned_token_reported_and_revoked() {
    let setup = prepare(Scenario::FirstApply);
    let token_create = json!([{ "kind": "hang_after_mutation", "method": "POST", "path_prefix": "/api/2.0/token-management/on-behalf-of/tokens", "times": 1 }]);
    setup.set_faults("prod", &token_create);
    let mut apply = setup.spawn(&["apply", "--auto-approve"]);
    setup.wait_for_fired_rule("prod", &mut apply);
    apply.kill();
    setup.clear_faults();

    let drift = setup.run(&["drift"]);
    drift.expect_code(2);
    assert!(drift.stdout.contains("prod/token/"), "{}", drift.stdout);
    assert!(drift.stdout.contains("orphaned by an interrupted apply"), "{}", drift.stdout);
    let plan = setup.run(&["plan"]);
    plan.expect_code(0);
    assert!(plan.stdout.contains("an interrupted apply did not finish creating it"), "{}", plan.stdout);

    setup.run(&["apply", "--auto-approve"]).expect_code(0);
    check_converged(&setup, "token create killed after the server carried it out");
}
