//! One writer per state file: a second run waits for the lock up to `--lock-timeout` and then
//! fails naming the holder, a lock left by a killed process does not block, and
//! `force-unlock` breaks only the lock it names.

use serde_json::{Value, json};

use crate::reliability::{FIRST_APPLY_TIME, Setup, Spawned, WORKSPACES, check_converged};

/// Starts an apply that holds the state lock while the emulator holds its first staging mutation.
fn start_holder(setup: &Setup) -> Spawned {
    setup.reset_counts();
    setup.set_faults("staging", &json!([{ "kind": "hang_after_mutation", "times": 1 }]));
    let mut holder = setup.spawn(&["apply", "--auto-approve"]);
    setup.wait_for_mutations("staging", 1, &mut holder);
    holder
}

/// Returns the holder record of the lock file.
fn lock_record(setup: &Setup) -> Value {
    let path = setup.path().join("state/mlops.state.json.lock");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("no lock file at {}: {error}", path.display()));
    serde_json::from_str(&text).expect("lock file is JSON")
}

#[test]
fn concurrent_applies_serialize() {
    let setup = Setup::start(FIRST_APPLY_TIME, "");
    // Slow requests keep the first apply inside its lock while the second one starts.
    for workspace in WORKSPACES {
        setup.set_faults(workspace, &json!([{ "kind": "latency", "latency_ms": 20 }]));
    }

    let mut first = setup.spawn(&["apply", "--auto-approve", "--lock-timeout", "5m"]);
    let mut second = setup.spawn(&["apply", "--auto-approve", "--lock-timeout", "5m"]);
    let codes = [first.wait(), second.wait()];
    setup.clear_faults();

    assert_eq!(codes, [0, 0], "\n--- first\n{}\n--- second\n{}", first.output(), second.output());
    let waited: Vec<&Spawned> = [&first, &second].into_iter().filter(|run| run.stderr().contains("waiting up to 5m")).collect();
    assert_eq!(waited.len(), 1, "exactly one apply waits for the lock\n--- first\n{}\n--- second\n{}", first.output(), second.output());
    let changed: Vec<&Spawned> = [&first, &second].into_iter().filter(|run| run.output().contains("Apply complete!")).collect();
    assert_eq!(changed.len(), 1, "exactly one apply changes anything\n--- first\n{}\n--- second\n{}", first.output(), second.output());
    check_converged(&setup, "two applies started together");
}

#[test]
fn held_lock_names_holder() {
    let setup = Setup::start(FIRST_APPLY_TIME, "");
    let mut holder = start_holder(&setup);
    let record = lock_record(&setup);
    let lock_id = record["id"].as_str().expect("lock id").to_owned();
    let pid = holder.child.id();
    assert_eq!(record["pid"], json!(pid));
    assert_eq!(record["operation"], "apply");

    for args in [&["apply", "--auto-approve"][..], &["apply", "--auto-approve", "--lock-timeout", "1s"], &["plan"]] {
        let blocked = setup.run(args);
        blocked.expect_code(1);
        assert!(blocked.stderr.contains(&lock_id), "{args:?} does not name the lock id:\n{}", blocked.stderr);
        assert!(blocked.stderr.contains(&format!("process {pid}")), "{args:?} does not name the holder's process:\n{}", blocked.stderr);
        assert!(blocked.stderr.contains("hint:"), "{args:?} gives no hint:\n{}", blocked.stderr);
        assert!(!blocked.stderr.contains("panicked"), "{}", blocked.stderr);
    }
    let waited = setup.run(&["plan", "--lock-timeout", "1s"]);
    assert!(waited.stderr.contains("waiting up to 1s"), "{}", waited.stderr);

    holder.kill();
}

#[test]
fn dead_holder_lock_taken_over() {
    let setup = Setup::start(FIRST_APPLY_TIME, "");
    let mut holder = start_holder(&setup);
    let lock_id = lock_record(&setup)["id"].as_str().expect("lock id").to_owned();
    holder.kill();
    setup.clear_faults();

    assert_eq!(lock_record(&setup)["id"], lock_id.as_str(), "the killed process left no lock file");
    let next = setup.run(&["apply", "--auto-approve"]);
    next.expect_code(0);
    assert!(next.stderr.contains(&format!("The state lock {lock_id} of process {}", holder.child.id())), "{}", next.stderr);
    assert!(next.stderr.contains("took it over"), "{}", next.stderr);
    assert!(!setup.path().join("state/mlops.state.json.lock").exists(), "the lock file stayed after a clean run");
    check_converged(&setup, "apply after the lock holder was killed");
}

#[test]
fn force_unlock_breaks_named_lock() {
    let setup = Setup::start(FIRST_APPLY_TIME, "");
    let mut holder = start_holder(&setup);
    let lock_id = lock_record(&setup)["id"].as_str().expect("lock id").to_owned();

    let wrong = setup.run(&["force-unlock", "00000000-0000-4000-8000-000000000000"]);
    wrong.expect_code(1);
    assert!(wrong.stderr.contains("does not match"), "{}", wrong.stderr);
    assert!(wrong.stderr.contains(&lock_id), "{}", wrong.stderr);

    let running = setup.run(&["force-unlock", &lock_id]);
    running.expect_code(1);
    assert!(running.stderr.contains("running process"), "{}", running.stderr);
    assert_eq!(lock_record(&setup)["id"], lock_id.as_str(), "force-unlock removed a lock held by a running process");

    holder.kill();
    let broken = setup.run(&["force-unlock", &lock_id]);
    broken.expect_code(0);
    assert!(!setup.path().join("state/mlops.state.json.lock").exists());
    let again = setup.run(&["force-unlock", &lock_id]);
    again.expect_code(1);
    assert!(again.stderr.contains("no lock file"), "{}", again.stderr);

    setup.clear_faults();
    setup.run(&["apply", "--auto-approve"]).expect_code(0);
    check_converged(&setup, "apply after force-unlock");
}

#[test]
fn lock_timeout_rejects_bad_duration() {
    let setup = Setup::start(FIRST_APPLY_TIME, "");

    for value in ["soon", "-5s"] {
        let run = setup.run(&["plan", &format!("--lock-timeout={value}")]);
        assert_ne!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains("--lock-timeout"), "{}", run.stderr);
        assert!(run.stderr.contains(value), "{}", run.stderr);
    }
}
