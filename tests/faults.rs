//! Faults: with about a fifth of all requests failing (throttling, unavailability, dropped
//! connections, errors after the server carried a mutation out) and lists that lag behind
//! creates, a first apply and a rotation still converge. Retries absorb the throttling and the
//! dropped reads. A failed step fails the run, and the next run picks up from the state that
//! every finished step wrote.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::reliability::{FIRST_APPLY_TIME, ROTATION_TIME, Setup, WORKSPACES, check_converged};

/// Runs of `apply` allowed before the test gives up on convergence.
const MAX_RUNS: usize = 12;

/// Path of on-behalf-of token creates.
const OBO_TOKENS: &str = "/api/2.0/token-management/on-behalf-of/tokens";

/// Path of service principal creates.
const SERVICE_PRINCIPALS: &str = "/api/2.0/preview/scim/v2/ServicePrincipals";

/// Returns the fault rules of one workspace: one targeted rule first when given, then a mix in
/// which about one request in five fails before it is carried out, and about one mutation in
/// `mutation_every` fails after it.
fn fault_mix(targeted: Option<Value>, mutation_every: u64) -> Value {
    let mut rules: Vec<Value> = targeted.into_iter().collect();
    rules.extend([
        json!({ "kind": "latency", "latency_ms": 2, "every": 3 }),
        // A later rule counts only the requests that no earlier rule failed, so the rarest
        // faults come first.
        json!({ "kind": "drop", "every": 22 }),
        json!({ "kind": "status500_limit", "every": 18, "retry_after": 0 }),
        json!({ "kind": "status503", "every": 16, "retry_after": 0 }),
        json!({ "kind": "status429", "every": 20, "retry_after": 0 }),
        json!({ "kind": "status429", "every": 7, "retry_after": 1, "times": 1 }),
        json!({ "kind": "error_after_mutation", "every": mutation_every }),
        json!({ "kind": "drop_after_mutation", "every": mutation_every + 2 }),
        json!({ "kind": "eventual_consistency", "window_ms": 300 }),
    ]);
    Value::Array(rules)
}

/// Runs apply until it succeeds, checking that no run panics, and returns everything the runs
/// printed.
fn apply_until_success(setup: &Setup, context: &str) -> String {
    let mut printed = String::new();
    for attempt in 1..=MAX_RUNS {
        let run = setup.run(&["apply", "--auto-approve"]);
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
        assert!(!run.stderr.contains("panicked"), "{context}: run {attempt} panicked:\n{}", run.stderr);
        match run.code {
            0 => {
                println!("{context}: converged after {attempt} run(s) of apply");
                return printed;
            }
            1 => assert!(run.stderr.starts_with("error: ") || run.stderr.contains("\nerror: "), "{context}: run {attempt} failed without an error line:\n{}", run.stderr),
            other => panic!("{context}: run {attempt} exited with {other}:\n{}", run.stderr),
        }
    }
    panic!("{context}: apply did not succeed within {MAX_RUNS} runs\n{printed}");
}

/// Returns how often each kind of rule fired, summed over every workspace.
fn fired_by_kind(setup: &Setup) -> BTreeMap<String, u64> {
    let mut fired = BTreeMap::new();
    for workspace in WORKSPACES {
        for rule in setup.fault_counters(workspace)["rules"].as_array().into_iter().flatten() {
            let kind = rule["kind"].as_str().unwrap_or_default().to_owned();
            *fired.entry(kind).or_insert(0) += rule["fired"].as_u64().unwrap_or(0);
        }
    }
    fired
}

/// Checks that every kind of fault fired, so that the run was really under fire.
fn assert_every_kind_fired(fired: &BTreeMap<String, u64>, context: &str) {
    for kind in ["status429", "status503", "status500_limit", "drop", "error_after_mutation", "drop_after_mutation"] {
        assert!(fired.get(kind).copied().unwrap_or(0) > 0, "{context}: no `{kind}` fault fired: {fired:?}");
    }
}

#[test]
fn first_apply_converges_under_faults() {
    let setup = Setup::start(FIRST_APPLY_TIME, "");
    // The targeted rules make sure that both creates which are not idempotent lose their response
    // after the server carried them out.
    let principal_lost = json!({ "kind": "drop_after_mutation", "method": "POST", "path_prefix": SERVICE_PRINCIPALS, "times": 1 });
    let token_lost = json!({ "kind": "error_after_mutation", "method": "POST", "path_prefix": OBO_TOKENS, "times": 1 });
    setup.set_faults("dev", &fault_mix(None, 7));
    setup.set_faults("staging", &fault_mix(Some(principal_lost), 7));
    setup.set_faults("prod", &fault_mix(Some(token_lost), 7));

    let printed = apply_until_success(&setup, "first apply");
    let fired = fired_by_kind(&setup);
    setup.clear_faults();

    println!("first apply: faults fired {fired:?}");
    assert_every_kind_fired(&fired, "first apply");
    assert!(printed.contains("may still have been carried out"), "no create was looked up after a lost response:\n{printed}");
    check_converged(&setup, "first apply under faults");
}

#[test]
fn rotation_converges_under_faults() {
    let mut setup = Setup::start(FIRST_APPLY_TIME, "");
    setup.run(&["apply", "--auto-approve"]).expect_code(0);
    setup.move_clock(ROTATION_TIME);
    let token_lost = |kind: &str| json!({ "kind": kind, "method": "POST", "path_prefix": OBO_TOKENS, "times": 1 });
    setup.set_faults("dev", &fault_mix(None, 4));
    setup.set_faults("staging", &fault_mix(Some(token_lost("drop_after_mutation")), 4));
    setup.set_faults("prod", &fault_mix(Some(token_lost("error_after_mutation")), 4));

    let printed = apply_until_success(&setup, "rotation");
    let fired = fired_by_kind(&setup);
    setup.clear_faults();

    println!("rotation: faults fired {fired:?}");
    assert_every_kind_fired(&fired, "rotation");
    assert!(printed.contains("revoked token"), "no token whose response was lost was revoked:\n{printed}");
    check_converged(&setup, "rotation under faults");
    let state = setup.state();
    for registry in ["staging", "prod"] {
        let token = state["resources"].as_array().unwrap().iter().find(|resource| resource["address"] == format!("{registry}/token")).unwrap();
        let expiry = token["attributes"]["expiry_time"].as_i64().unwrap();
        let rotated_at = ROTATION_TIME.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        assert!(expiry > rotated_at + 90 * 86_400_000, "{registry}/token was not rotated: expiry {expiry}");
    }
}

#[test]
fn lists_lag_behind_creates() {
    let setup = Setup::start(FIRST_APPLY_TIME, "");
    setup.set_faults("staging", &json!([{ "kind": "eventual_consistency", "window_ms": 2000 }]));
    let admin = setup.admin("staging");
    let listed = |admin: &crate::support::Api, id: &str| {
        let (status, body) = admin.get("/api/2.0/preview/scim/v2/Groups");
        assert_eq!(status, 200, "{body}");
        body["Resources"].as_array().into_iter().flatten().any(|group| group["id"] == id)
    };

    let (status, group) = admin.send("POST", "/api/2.0/preview/scim/v2/Groups", &json!({ "displayName": "lagging" }));
    assert!(status == 200 || status == 201, "{group}");
    let id = group["id"].as_str().expect("group id").to_owned();
    assert!(!listed(&admin, &id), "a list right after the create shows the new group");
    let (status, _) = admin.get(&format!("/api/2.0/preview/scim/v2/Groups/{id}"));
    assert_eq!(status, 200, "a read by id does not find the new group");

    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(listed(&admin, &id), "the list still leaves out the group after the window");
}

#[test]
fn lost_creates_found_despite_lagging_lists() {
    let setup = Setup::start(FIRST_APPLY_TIME, "");
    let lagging = json!({ "kind": "eventual_consistency", "window_ms": 500 });
    let principal_lost = json!({ "kind": "drop_after_mutation", "method": "POST", "path_prefix": SERVICE_PRINCIPALS, "times": 1 });
    let token_lost = json!({ "kind": "error_after_mutation", "method": "POST", "path_prefix": OBO_TOKENS, "times": 1 });
    setup.set_faults("staging", &json!([lagging, principal_lost, token_lost]));

    let run = setup.run(&["apply", "--auto-approve"]);
    let fired = fired_by_kind(&setup);
    setup.clear_faults();

    run.expect_code(0);
    assert!(run.stderr.contains("which this apply adopts"), "the lost service principal was not adopted:\n{}", run.stderr);
    assert!(run.stderr.contains("whose value was lost"), "the lost token was not revoked:\n{}", run.stderr);
    assert_eq!(fired.get("drop_after_mutation"), Some(&1), "{fired:?}");
    assert_eq!(fired.get("error_after_mutation"), Some(&1), "{fired:?}");
    check_converged(&setup, "creates whose responses were lost, with lagging lists");
}
