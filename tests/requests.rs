//! Request counts of plan and apply, read from the emulator's counters under a SCIM concurrency
//! limit and request latency.

use serde_json::{Value, json};

use crate::support::{Api, Served};

/// Emulator settings that make requests overlap and SCIM throttle like the service.
const SLOW_AND_LIMITED: [(&str, &str); 2] = [("MLOPS_EMULATOR_LATENCY_MS", "20"), ("MLOPS_EMULATOR_SCIM_CONCURRENCY_LIMIT", "4")];

fn admin(served: &Served, workspace: &str) -> Api {
    let workspace = served.workspace(workspace);
    Api::new(&workspace.host, &workspace.token)
}

/// Sets the request counters of every workspace back to zero.
fn reset_counts(served: &Served) {
    for workspace in &served.workspaces {
        let (status, body) = admin(served, &workspace.name).send("DELETE", "/_emulator/requests", &json!({}));
        assert_eq!(status, 200, "{body}");
    }
}

/// Returns the sum of one counter over every workspace.
fn total(served: &Served, counter: &str) -> u64 {
    served
        .workspaces
        .iter()
        .map(|workspace| {
            let (status, body) = admin(served, &workspace.name).get("/_emulator/requests");
            assert_eq!(status, 200, "{body}");
            body[counter].as_u64().unwrap_or_else(|| panic!("no counter `{counter}` in {body}"))
        })
        .sum()
}

fn managed_objects(dir: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("state/mlops.state.json")).expect("state file");
    let state: Value = serde_json::from_str(&text).expect("state JSON");
    state["resources"].as_array().map_or(0, |resources| resources.len() as u64)
}

#[test]
fn first_apply_is_never_throttled() {
    let served = Served::start(&[], &SLOW_AND_LIMITED);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "");
    reset_counts(&served);

    served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);

    assert_eq!(total(&served, "throttled"), 0);
    assert!(total(&served, "peak_scim_in_flight") > 0);
}

#[test]
fn steady_plan_within_object_count() {
    let served = Served::start(&[], &SLOW_AND_LIMITED);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "");
    served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);
    let objects = managed_objects(dir.path());
    reset_counts(&served);

    served.run(dir.path(), &["plan", "--detailed-exitcode"]).expect_code(0);

    let requests = total(&served, "total");
    assert!(requests <= objects, "{requests} requests for {objects} managed objects");
    assert_eq!(total(&served, "throttled"), 0);
}

#[test]
fn steady_plan_reads_no_secret_value() {
    let served = Served::start(&[], &SLOW_AND_LIMITED);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "");
    served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);
    served.run(dir.path(), &["plan", "--detailed-exitcode"]).expect_code(0);
    reset_counts(&served);
    served.run(dir.path(), &["plan", "--detailed-exitcode"]).expect_code(0);
    let steady = total(&served, "total");

    // A secret written outside mlops gets a new update time, so the next plan reads its value
    // (one request) to tell whether it drifted.
    let (status, body) = admin(&served, "dev").send(
        "POST",
        "/api/2.0/secrets/put",
        &json!({ "scope": "remote-mr-prod", "key": "prod-host", "string_value": "https://elsewhere.example.com" }),
    );
    assert_eq!(status, 200, "{body}");
    reset_counts(&served);
    served.run(dir.path(), &["plan", "--detailed-exitcode"]).expect_code(2);

    assert_eq!(total(&served, "total"), steady + 1);
}
