//! `MLOPS_NOW` and `MLOPS_EMULATOR_LATENCY_MS` parsing, checked in child processes because
//! setting environment variables in this process would race with other tests.

use mlops_emulator::{Emulator, EmulatorError, WorkspaceSpec};

use crate::common::*;

fn dev_spec() -> Vec<WorkspaceSpec> {
    vec![WorkspaceSpec {
        name: "dev".to_owned(),
        workspace_id: "1111".to_owned(),
    }]
}

#[test]
fn invalid_now_rejected() {
    if run_in_child(
        "environment::invalid_now_rejected",
        &[("MLOPS_NOW", "tomorrow")],
    ) {
        return;
    }
    let error = Emulator::try_new(&dev_spec()).unwrap_err();
    assert!(
        matches!(
            error,
            EmulatorError::InvalidEnvironment {
                variable: "MLOPS_NOW",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("`tomorrow`"));
}

#[test]
fn invalid_latency_rejected() {
    if run_in_child(
        "environment::invalid_latency_rejected",
        &[("MLOPS_EMULATOR_LATENCY_MS", "fast")],
    ) {
        return;
    }
    let error = Emulator::try_new(&dev_spec()).unwrap_err();
    assert!(
        matches!(
            error,
            EmulatorError::InvalidEnvironment {
                variable: "MLOPS_EMULATOR_LATENCY_MS",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn latency_variable_serves_requests() {
    if run_in_child(
        "environment::latency_variable_serves_requests",
        &[("MLOPS_EMULATOR_LATENCY_MS", "5")],
    ) {
        return;
    }
    let running = bind_all(Emulator::try_new(&dev_spec()).unwrap(), &dev_spec()).await;
    let me = running.admin("dev").get(&format!("{SCIM}/Me")).await;
    assert_eq!(me.status, 200);
}
