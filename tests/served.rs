//! Plan and apply against `mlops emulator serve`, checked from the outside over HTTP.

use serde_json::Value;

use crate::support::{Api, Served, token_shaped};

fn acl_principals(body: &Value) -> Vec<(String, String)> {
    body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| (item["principal"].as_str().unwrap_or_default().to_owned(), item["permission"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn direct_levels(body: &Value, key: &str, name: &str) -> Vec<String> {
    body["access_control_list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry[key] == name)
        .flat_map(|entry| entry["all_permissions"].as_array().cloned().unwrap_or_default())
        .filter(|permission| permission["inherited"] == false)
        .map(|permission| permission["permission_level"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn served_plan_apply_and_no_change_plan() {
    let served = Served::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "");

    served.run(dir.path(), &["plan", "--detailed-exitcode"]).expect_code(2);
    served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);
    let again = served.run(dir.path(), &["plan", "--detailed-exitcode"]);
    again.expect_code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}

#[test]
fn served_apply_wires_every_link() {
    let served = Served::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "");
    served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);

    for (reader, scope, registry) in [("dev", "remote-mr-staging", "staging"), ("dev", "remote-mr-prod", "prod"), ("staging", "remote-mr-prod", "prod")] {
        let reader_ws = served.workspace(reader);
        let registry_ws = served.workspace(registry);
        let admin = Api::new(&reader_ws.host, &reader_ws.token);

        let (status, listed) = admin.get(&format!("/api/2.0/secrets/list?scope={scope}"));
        assert_eq!(status, 200, "{listed}");
        let mut keys: Vec<&str> = listed["secrets"].as_array().unwrap().iter().map(|secret| secret["key"].as_str().unwrap()).collect();
        keys.sort_unstable();
        assert_eq!(keys, [format!("{registry}-host"), format!("{registry}-token"), format!("{registry}-workspace-id")]);

        assert_eq!(admin.secret(scope, &format!("{registry}-host")).as_deref(), Some(registry_ws.host.as_str()));
        assert_eq!(admin.secret(scope, &format!("{registry}-workspace-id")).as_deref(), Some(registry_ws.workspace_id.as_str()));
        let token = admin.secret(scope, &format!("{registry}-token")).expect("token secret");

        let as_principal = Api::new(&registry_ws.host, &token);
        let (status, models) = as_principal.get("/api/2.0/mlflow/registered-models/search");
        assert_eq!(status, 200, "{models}");
        assert!(!models["registered_models"].as_array().unwrap().is_empty());
        let (status, _) = Api::new(&reader_ws.host, &token).get("/api/2.0/preview/scim/v2/Me");
        assert!(status == 401 || status == 403, "a token authenticated to another workspace");

        let (_, acls) = admin.get(&format!("/api/2.0/secrets/acls/list?scope={scope}"));
        assert!(acl_principals(&acls).contains(&("users".to_owned(), "READ".to_owned())), "{acls}");
    }

    for registry in ["staging", "prod"] {
        let ws = served.workspace(registry);
        let admin = Api::new(&ws.host, &ws.token);
        let (_, tokens) = admin.get("/api/2.0/permissions/authorization/tokens");
        assert_eq!(direct_levels(&tokens, "group_name", "mlops-service-principals"), ["CAN_USE"]);
        assert_eq!(direct_levels(&tokens, "group_name", "users"), ["CAN_USE"]);
        assert_eq!(direct_levels(&tokens, "group_name", "admins"), ["CAN_MANAGE"]);

        let (_, principals) = admin.get("/api/2.0/preview/scim/v2/ServicePrincipals");
        let principal = &principals["Resources"].as_array().unwrap()[0];
        let application_id = principal["applicationId"].as_str().unwrap();
        let (_, root) = admin.get("/api/2.0/permissions/registered-models/root");
        assert_eq!(direct_levels(&root, "service_principal_name", application_id), ["CAN_READ"]);
    }

    let (_, acls) = Api::new(&served.workspace("staging").host, &served.workspace("staging").token).get("/api/2.0/secrets/acls/list?scope=remote-mr-prod");
    assert!(acl_principals(&acls).contains(&("mlops-service-principals".to_owned(), "READ".to_owned())), "{acls}");
}

#[test]
fn served_outputs_and_state_hold_no_token() {
    let served = Served::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "");

    let mut printed = String::new();
    for args in [
        &["plan", "--format", "json", "-vvv"][..],
        &["apply", "--auto-approve", "-vvv"],
        &["plan", "--out", "saved.plan", "-vvv"],
        &["output", "--format", "json", "-vvv"],
        &["drift", "-vvv"],
    ] {
        let run = served.run_with(dir.path(), args, &[("RUST_LOG", "trace")]);
        assert!(run.code == 0, "{args:?} failed:\n{}", run.stderr);
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
    }

    let mut issued: Vec<String> = served.workspaces.iter().map(|workspace| workspace.token.clone()).collect();
    for (reader, scope, key) in [("dev", "remote-mr-staging", "staging-token"), ("dev", "remote-mr-prod", "prod-token")] {
        let ws = served.workspace(reader);
        issued.push(Api::new(&ws.host, &ws.token).secret(scope, key).expect("token secret"));
    }
    let state = std::fs::read_to_string(dir.path().join("state/mlops.state.json")).unwrap();
    let saved_plan = std::fs::read_to_string(dir.path().join("saved.plan")).unwrap();
    for token in &issued {
        assert!(!state.contains(token.as_str()), "a token value is in the state file");
        assert!(!saved_plan.contains(token.as_str()), "a token value is in the saved plan");
        assert!(!printed.contains(token.as_str()), "a token value was printed");
    }
    assert!(token_shaped(&printed).is_empty(), "something token-shaped was printed");
}
