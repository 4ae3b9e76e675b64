//! Identity checks before any write, and destroy that removes only what mlops made.

use serde_json::json;

use crate::support::{Api, Served};

fn token_grantees(api: &Api) -> Vec<String> {
    let (_, body) = api.get("/api/2.0/permissions/authorization/tokens");
    body["access_control_list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["group_name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn wrong_workspace_id_fails_before_any_write() {
    let served = Served::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = served.write_config(dir.path(), "");
    let text = std::fs::read_to_string(&config).unwrap().replace("\"987654321\"", "\"111111111\"");
    std::fs::write(&config, text).unwrap();

    for args in [&["plan"][..], &["apply", "--auto-approve"]] {
        let run = served.run(dir.path(), args);
        run.expect_code(1);
        assert!(run.stderr.contains("987654321"), "{}", run.stderr);
        assert!(run.stderr.contains("111111111"), "{}", run.stderr);
    }
    let prod = served.workspace("prod");
    let (_, groups) = Api::new(&prod.host, &prod.token).get("/api/2.0/preview/scim/v2/Groups?filter=displayName%20eq%20%22mlops-service-principals%22");
    assert!(groups["Resources"].as_array().is_none_or(Vec::is_empty), "apply wrote to a workspace of the wrong id: {groups}");
    let staging = served.workspace("staging");
    let (_, scopes) = Api::new(&staging.host, &staging.token).get("/api/2.0/secrets/scopes/list");
    assert!(scopes["scopes"].as_array().is_none_or(Vec::is_empty), "apply wrote while one workspace was wrong: {scopes}");
}

#[test]
fn destroy_keeps_grants_mlops_did_not_make() {
    let served = Served::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "");
    let prod = served.workspace("prod");
    let admin = Api::new(&prod.host, &prod.token);
    let (status, _) = admin.send("POST", "/api/2.0/preview/scim/v2/Groups", &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "analysts"
    }));
    assert_eq!(status, 201);
    let (status, body) = admin.send("PATCH", "/api/2.0/permissions/authorization/tokens", &json!({
        "access_control_list": [
            {"group_name": "analysts", "permission_level": "CAN_USE"},
            {"group_name": "users", "permission_level": "CAN_USE"}
        ]
    }));
    assert_eq!(status, 200, "{body}");

    let plan = served.run(dir.path(), &["plan", "--format", "json"]);
    plan.expect_code(0);
    let imports: Vec<String> = plan.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|change| change["action"] == "import")
        .map(|change| change["address"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(imports, ["prod/token_permission/users"]);

    served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);
    served.run(dir.path(), &["destroy", "--auto-approve"]).expect_code(0);

    let grantees = token_grantees(&admin);
    assert!(grantees.contains(&"analysts".to_owned()), "{grantees:?}");
    assert!(grantees.contains(&"users".to_owned()), "destroy removed a grant mlops did not make: {grantees:?}");
    assert!(!grantees.contains(&"mlops-service-principals".to_owned()), "{grantees:?}");

    let staging = served.workspace("staging");
    let staging_grantees = token_grantees(&Api::new(&staging.host, &staging.token));
    assert_eq!(staging_grantees, ["admins"], "destroy left grants mlops made");

    let again = served.run(dir.path(), &["plan", "--format", "json"]);
    again.expect_code(0);
    let summary = &again.json()["summary"];
    assert_eq!(summary["add"], 29, "{summary}");
    assert_eq!(summary["import"], 1, "{summary}");
}

#[test]
fn removed_workspace_in_state_stops_plan() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::copy_example(dir.path());
    crate::support::run_in(dir.path(), &["apply", "--auto-approve"], &[]).expect_code(0);
    let config = dir.path().join("mlops.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace("  - { reader: dev, registry: staging }\n  - { reader: dev, registry: prod }\n", "");
    let text = text.replace("  dev:\n    host: https://dbc-aaaa.cloud.databricks.com\n    profile: dev\n", "");
    std::fs::write(&config, text).unwrap();

    for args in [&["plan"][..], &["apply", "--auto-approve"], &["destroy", "--auto-approve"], &["drift"]] {
        let run = crate::support::run_in(dir.path(), args, &[]);
        run.expect_code(1);
        assert!(run.stderr.contains("workspace `dev` is not in the configuration"), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("mlops state rm"), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }

    let list = crate::support::run_in(dir.path(), &["state", "list"], &[]);
    let dev: Vec<&str> = list.stdout.lines().filter(|line| line.starts_with("dev/")).collect();
    assert_eq!(dev.len(), 10);
    let mut args = vec!["state", "rm"];
    args.extend(dev.iter().copied());
    crate::support::run_in(dir.path(), &args, &[]).expect_code(0);
    let plan = crate::support::run_in(dir.path(), &["plan"], &[]);
    plan.expect_code(0);
    assert!(plan.stdout.contains("staging/token will be destroyed"), "staging is no longer a registry:\n{}", plan.stdout);
}

#[test]
fn usage_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["drift", "--format", "yaml"][..], &["plan", "--bogus"], &["nonsense"]] {
        let run = crate::support::run_in(dir.path(), args, &[]);
        run.expect_code(1);
    }
    crate::support::run_in(dir.path(), &["--help"], &[]).expect_code(0);
}

#[test]
fn emulator_rejects_oversized_workspace_id() {
    let dir = tempfile::tempdir().unwrap();
    let run = crate::support::run_in(dir.path(), &["emulator", "serve", "--workspace", "dev=99999999999999999999999"], &[]);
    run.expect_code(1);
    assert!(run.stderr.contains("invalid --workspace"), "{}", run.stderr);
}

#[test]
fn failed_first_plan_writes_no_state() {
    let served = Served::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = served.write_config(dir.path(), "");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let text = std::fs::read_to_string(&config).unwrap().replace(&served.workspace("prod").host, &closed);
    std::fs::write(&config, text).unwrap();

    let run = served.run_with(dir.path(), &["plan"], &[("MLOPS_RETRY_BUDGET_SECONDS", "1")]);
    run.expect_code(1);
    assert!(!dir.path().join("state/mlops.state.json").exists(), "a failed first plan wrote a state file");
}
