//! Taking over what the Terraform module built, and the gates that keep access from being taken
//! away silently.

use serde_json::{Value, json};

use crate::support::{Api, Served};

const SERVICE_PRINCIPAL: &str = "READ-only Model Registry Service Principal";

fn admin(served: &Served, workspace: &str) -> Api {
    let ws = served.workspace(workspace);
    Api::new(&ws.host, &ws.token)
}

#[track_caller]
fn ok(response: (u16, Value)) -> Value {
    assert!((200..300).contains(&response.0), "{} {}", response.0, response.1);
    response.1
}

fn create_service_principal(api: &Api, display_name: &str) -> Value {
    ok(api.send("POST", "/api/2.0/preview/scim/v2/ServicePrincipals", &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"],
        "displayName": display_name,
        "active": true,
        "entitlements": [{"value": "allow-cluster-create"}]
    })))
}

fn create_group(api: &Api, name: &str) -> String {
    let group = ok(api.send("POST", "/api/2.0/preview/scim/v2/Groups", &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name
    })));
    group["id"].as_str().unwrap().to_owned()
}

fn add_member(api: &Api, group: &str, member: &str) {
    ok(api.send("PATCH", &format!("/api/2.0/preview/scim/v2/Groups/{group}"), &json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": member}]}]
    })));
}

fn obo_token(api: &Api, application_id: &str, comment: &str) -> String {
    let created = ok(api.send("POST", "/api/2.0/token-management/on-behalf-of/tokens", &json!({
        "application_id": application_id, "lifetime_seconds": 8_640_000, "comment": comment
    })));
    created["token_value"].as_str().unwrap().to_owned()
}

/// Builds in the served workspaces exactly what `databricks/mlops-aws-infrastructure` creates.
fn build_module_setup(served: &Served) {
    let mut tokens = Vec::new();
    for registry in ["staging", "prod"] {
        let api = admin(served, registry);
        let group = create_group(&api, "mlops-service-principals");
        ok(api.send("PUT", "/api/2.0/permissions/authorization/tokens", &json!({"access_control_list": [
            {"group_name": "mlops-service-principals", "permission_level": "CAN_USE"},
            {"group_name": "users", "permission_level": "CAN_USE"},
            {"group_name": "admins", "permission_level": "CAN_MANAGE"}
        ]})));
        let principal = create_service_principal(&api, SERVICE_PRINCIPAL);
        add_member(&api, &group, principal["id"].as_str().unwrap());
        let application_id = principal["applicationId"].as_str().unwrap();
        tokens.push(obo_token(&api, application_id, &format!("PAT on behalf of {SERVICE_PRINCIPAL}")));
        ok(api.send("PUT", "/api/2.0/permissions/registered-models/root", &json!({"access_control_list": [
            {"service_principal_name": application_id, "permission_level": "CAN_READ"},
            {"group_name": "admins", "permission_level": "CAN_MANAGE"}
        ]})));
    }

    for (reader, registry, token) in [("dev", "staging", &tokens[0]), ("dev", "prod", &tokens[1]), ("staging", "prod", &tokens[1])] {
        let api = admin(served, reader);
        let scope = format!("remote-mr-{registry}");
        let remote = served.workspace(registry);
        ok(api.send("POST", "/api/2.0/secrets/scopes/create", &json!({"scope": scope})));
        for (key, value) in [("workspace-id", remote.workspace_id.as_str()), ("host", remote.host.as_str()), ("token", token.as_str())] {
            ok(api.send("POST", "/api/2.0/secrets/put", &json!({"scope": scope, "key": format!("{registry}-{key}"), "string_value": value})));
        }
        ok(api.send("POST", "/api/2.0/secrets/acls/put", &json!({"scope": scope, "principal": "users", "permission": "READ"})));
    }
}

/// Returns every reader secret as (scope, key, value, last update time).
fn reader_secrets(served: &Served) -> Vec<(String, String, String, i64)> {
    let mut secrets = Vec::new();
    for (reader, scope) in [("dev", "remote-mr-staging"), ("dev", "remote-mr-prod"), ("staging", "remote-mr-prod")] {
        let api = admin(served, reader);
        let listed = ok(api.get(&format!("/api/2.0/secrets/list?scope={scope}")));
        for secret in listed["secrets"].as_array().unwrap() {
            let key = secret["key"].as_str().unwrap().to_owned();
            let value = api.secret(scope, &key).unwrap();
            secrets.push((format!("{reader}/{scope}"), key, value, secret["last_updated_timestamp"].as_i64().unwrap()));
        }
    }
    secrets.sort();
    secrets
}

#[test]
fn migration_from_module_imports_only() {
    let served = Served::start(&[], &[]);
    build_module_setup(&served);
    let before = reader_secrets(&served);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "");

    let plan = served.run(dir.path(), &["plan", "--format", "json"]);
    plan.expect_code(0);
    let plan = plan.json();
    let changes = plan["changes"].as_array().unwrap();
    let by_action = |action: &str| -> Vec<&str> {
        changes.iter().filter(|change| change["action"] == action).map(|change| change["address"].as_str().unwrap()).collect()
    };
    // The module gives scope READ to `users` only; the group that exists in staging gets it too.
    assert_eq!(by_action("create"), ["staging/secret_acl/remote-mr-prod/mlops-service-principals"]);
    assert!(by_action("rotate").is_empty(), "a fresh token would be rotated: {:?}", by_action("rotate"));
    assert!(by_action("update").is_empty(), "{:?}", by_action("update"));
    assert!(by_action("delete").is_empty(), "{:?}", by_action("delete"));
    assert_eq!(plan["summary"]["import"], 29);
    assert!(by_action("import").contains(&"prod/token"));

    served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);
    assert_eq!(reader_secrets(&served), before, "applying the migration changed a secret");
    let again = served.run(dir.path(), &["plan", "--detailed-exitcode"]);
    again.expect_code(0);
    served.run(dir.path(), &["verify"]).expect_code(0);

    served.run(dir.path(), &["destroy", "--auto-approve"]).expect_code(0);
    assert_eq!(reader_secrets(&served), before, "destroy removed secrets that mlops adopted");
    let (_, principals) = admin(&served, "prod").get("/api/2.0/preview/scim/v2/ServicePrincipals");
    assert!(principals.to_string().contains(SERVICE_PRINCIPAL), "destroy deleted the adopted service principal");
}

#[test]
fn ambiguous_service_principal_stops_plan() {
    let served = Served::start(&[], &[]);
    let api = admin(&served, "prod");
    let first = create_service_principal(&api, SERVICE_PRINCIPAL);
    let second = create_service_principal(&api, SERVICE_PRINCIPAL);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "");

    let run = served.run(dir.path(), &["plan"]);
    run.expect_code(1);
    for principal in [&first, &second] {
        let application_id = principal["applicationId"].as_str().unwrap();
        assert!(run.stderr.contains(application_id), "{}", run.stderr);
    }
    assert!(run.stderr.contains("service_principal_application_id"), "{}", run.stderr);

    let pinned = first["applicationId"].as_str().unwrap();
    let config = dir.path().join("mlops.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "    workspace_id: \"987654321\"\n",
        &format!("    workspace_id: \"987654321\"\n    service_principal_application_id: \"{pinned}\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    let plan = served.run(dir.path(), &["plan", "--format", "json"]);
    plan.expect_code(0);
    let change = plan.json()["changes"].as_array().unwrap().iter().find(|change| change["address"] == "prod/service_principal").cloned().unwrap();
    assert_eq!(change["action"], "import");
    assert_eq!(change["remote_id"], first["id"]);
}

#[test]
fn authoritative_mode_refuses_unlisted_revocation() {
    let served = Served::start(&[], &[]);
    let api = admin(&served, "prod");
    let analysts = create_group(&api, "analysts");
    ok(api.send("PATCH", "/api/2.0/permissions/authorization/tokens", &json!({"access_control_list": [
        {"group_name": "analysts", "permission_level": "CAN_USE"}
    ]})));
    let robot = create_service_principal(&api, "analyst robot");
    add_member(&api, &analysts, robot["id"].as_str().unwrap());
    obo_token(&api, robot["applicationId"].as_str().unwrap(), "analyst job");

    let dir = tempfile::tempdir().unwrap();
    let authoritative = |extra: &str| {
        let config = served.write_config(dir.path(), extra);
        let text = std::fs::read_to_string(&config).unwrap().replace("additional_token_usage_groups: [users]\n", "");
        std::fs::write(&config, text).unwrap();
    };
    authoritative("token_usage: { mode: authoritative }\n");
    let plan = served.run(dir.path(), &["plan"]);
    plan.expect_code(0);
    assert!(plan.stdout.contains("prod/token_permission/analysts"), "{}", plan.stdout);
    assert!(plan.stdout.contains("revokes 1 live token(s)"), "{}", plan.stdout);

    let rejected = served.run(dir.path(), &["apply", "--auto-approve"]);
    rejected.expect_code(1);
    assert!(rejected.stderr.contains("allow_revoke"), "{}", rejected.stderr);
    let grants = ok(api.get("/api/2.0/permissions/authorization/tokens")).to_string();
    assert!(grants.contains("analysts"), "the rejected apply changed token permissions: {grants}");
    assert!(!grants.contains("mlops-service-principals"), "the rejected apply wrote: {grants}");

    authoritative("token_usage: { mode: authoritative, allow_revoke: [analysts] }\n");
    served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);
    let grants = ok(api.get("/api/2.0/permissions/authorization/tokens")).to_string();
    assert!(!grants.contains("analysts"), "{grants}");
    served.run(dir.path(), &["plan", "--detailed-exitcode"]).expect_code(0);
}
