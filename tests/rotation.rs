//! Token rotation inside the rotation window, and what happens without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::json;

use crate::support::{Api, Served};

const START: &str = "2027-01-01T00:00:00Z";
const DAY_75: &str = "2027-03-17T00:00:00Z";
const DAY_101: &str = "2027-04-12T00:00:00Z";

/// The token secrets of the default topology: reader, scope, key and registry.
const TOKEN_SECRETS: [(&str, &str, &str, &str); 3] = [
    ("dev", "remote-mr-staging", "staging-token", "staging"),
    ("dev", "remote-mr-prod", "prod-token", "prod"),
    ("staging", "remote-mr-prod", "prod-token", "prod"),
];

fn applied_at_start() -> (Served, tempfile::TempDir) {
    let served = Served::start(&[], &[("MLOPS_NOW", START)]);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "");
    served.run_with(dir.path(), &["apply", "--auto-approve"], &[("MLOPS_NOW", START)]).expect_code(0);
    (served, dir)
}

fn set_clock(served: &Served, now: &str) {
    for workspace in &served.workspaces {
        let (status, body) = Api::new(&workspace.host, &workspace.token).send("POST", "/_emulator/clock", &json!({ "now": now }));
        assert_eq!(status, 200, "{body}");
    }
}

fn admin(served: &Served, workspace: &str) -> Api {
    let ws = served.workspace(workspace);
    Api::new(&ws.host, &ws.token)
}

fn token_secret(served: &Served, reader: &str, scope: &str, key: &str) -> String {
    admin(served, reader).secret(scope, key).expect("token secret")
}

fn searches(served: &Served, registry: &str, token: &str) -> u16 {
    Api::new(&served.workspace(registry).host, token).get("/api/2.0/mlflow/registered-models/search").0
}

/// Returns the ids of the live tokens that mlops made.
fn live_token_ids(served: &Served, workspace: &str) -> Vec<String> {
    let (_, body) = admin(served, workspace).get("/api/2.0/token-management/tokens");
    body["token_infos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|token| token["comment"].as_str().is_some_and(|comment| comment.starts_with("mlops:")))
        .filter_map(|token| token["token_id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn rotation_at_75_days_replaces_both_tokens() {
    let (served, dir) = applied_at_start();
    let old: Vec<String> = TOKEN_SECRETS.iter().map(|(reader, scope, key, _)| token_secret(&served, reader, scope, key)).collect();
    let old_ids = [live_token_ids(&served, "staging"), live_token_ids(&served, "prod")].concat();
    assert_eq!(old_ids.len(), 2);

    set_clock(&served, DAY_75);
    let later = [("MLOPS_NOW", DAY_75)];
    let drift = served.run_with(dir.path(), &["drift"], &later);
    drift.expect_code(2);
    for address in ["staging/token", "prod/token"] {
        let line = drift.stdout.lines().find(|line| line.contains(address)).unwrap_or_else(|| panic!("{address} missing:\n{}", drift.stdout));
        assert!(line.contains("expires 2027-04-11, in 25 days"), "{line}");
    }

    served.run_with(dir.path(), &["apply", "--auto-approve"], &later).expect_code(0);
    served.run_with(dir.path(), &["drift"], &later).expect_code(0);

    for ((reader, scope, key, registry), old_value) in TOKEN_SECRETS.iter().zip(&old) {
        let new_value = token_secret(&served, reader, scope, key);
        assert_ne!(&new_value, old_value, "{reader}/{scope}/{key} still holds the old token");
        assert_eq!(searches(&served, registry, &new_value), 200, "the new token of {registry} cannot search");
        assert_eq!(searches(&served, registry, old_value), 403, "the old token of {registry} still works");
    }
    let live = [live_token_ids(&served, "staging"), live_token_ids(&served, "prod")].concat();
    for id in old_ids {
        assert!(!live.contains(&id), "old token {id} was not revoked");
    }
    assert_eq!(live.len(), 2, "expected exactly one mlops token per registry: {live:?}");
}

#[test]
fn tokens_expire_after_101_days_without_rotation() {
    let (served, dir) = applied_at_start();
    set_clock(&served, DAY_101);

    for (reader, scope, key, registry) in TOKEN_SECRETS {
        let stored = token_secret(&served, reader, scope, key);
        assert_eq!(searches(&served, registry, &stored), 403, "an expired token of {registry} still authenticates");
    }
    let drift = served.run_with(dir.path(), &["drift"], &[("MLOPS_NOW", DAY_101)]);
    drift.expect_code(2);
    for address in ["staging/token", "prod/token"] {
        let line = drift.stdout.lines().find(|line| line.contains(address)).unwrap_or_else(|| panic!("{address} missing:\n{}", drift.stdout));
        assert!(line.contains("expired on 2027-04-11"), "{line}");
    }

    served.run_with(dir.path(), &["apply", "--auto-approve"], &[("MLOPS_NOW", DAY_101)]).expect_code(0);
    served.run_with(dir.path(), &["drift"], &[("MLOPS_NOW", DAY_101)]).expect_code(0);
    for (reader, scope, key, registry) in TOKEN_SECRETS {
        let stored = token_secret(&served, reader, scope, key);
        assert_eq!(searches(&served, registry, &stored), 200, "the replaced token of {registry} cannot search");
    }
}

#[test]
fn rotation_keeps_concurrent_readers_working() {
    let (served, dir) = applied_at_start();
    set_clock(&served, DAY_75);

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let dev = served.workspace("dev").clone();
    let prod = served.workspace("prod").clone();
    let reader = {
        let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
        std::thread::spawn(move || {
            let secrets = Api::new(&dev.host, &dev.token);
            while !stop.load(Ordering::SeqCst) {
                let token = secrets.secret("remote-mr-prod", "prod-token").expect("token secret");
                let (status, _) = Api::new(&prod.host, &token).get("/api/2.0/mlflow/registered-models/search");
                reads.fetch_add(1, Ordering::SeqCst);
                if status != 200 {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    served.run_with(dir.path(), &["apply", "--auto-approve"], &[("MLOPS_NOW", DAY_75)]).expect_code(0);
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap();

    assert!(reads.load(Ordering::SeqCst) > 10, "the reader hardly ran");
    assert_eq!(failures.load(Ordering::SeqCst), 0, "a reader saw an authentication failure during rotation");
}
