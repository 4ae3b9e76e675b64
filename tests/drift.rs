//! Each kind of out-of-band change: `drift` names it and exits 2, `apply` repairs it, and `drift`
//! then exits 0.

use serde_json::{Value, json};

use crate::support::{Api, Served};

/// A served emulator with the default topology applied.
struct Applied {
    served: Served,
    dir: tempfile::TempDir,
}

impl Applied {
    fn new() -> Applied {
        let served = Served::start(&[], &[]);
        let dir = tempfile::tempdir().unwrap();
        served.write_config(dir.path(), "");
        served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);
        served.run(dir.path(), &["drift"]).expect_code(0);
        Applied { served, dir }
    }

    fn admin(&self, workspace: &str) -> Api {
        let ws = self.served.workspace(workspace);
        Api::new(&ws.host, &ws.token)
    }

    fn group_id(&self, workspace: &str, name: &str) -> String {
        let (_, body) = self.admin(workspace).get(&format!("/api/2.0/preview/scim/v2/Groups?filter=displayName%20eq%20%22{name}%22"));
        body["Resources"][0]["id"].as_str().expect("group id").to_owned()
    }

    fn service_principal(&self, workspace: &str) -> Value {
        let (_, body) = self.admin(workspace).get("/api/2.0/preview/scim/v2/ServicePrincipals");
        body["Resources"][0].clone()
    }

    fn mlops_token_id(&self, workspace: &str) -> String {
        let (_, body) = self.admin(workspace).get("/api/2.0/token-management/tokens");
        body["token_infos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|token| token["comment"].as_str().is_some_and(|comment| comment.starts_with("mlops:")))
            .and_then(|token| token["token_id"].as_str())
            .expect("mlops token")
            .to_owned()
    }

    /// Checks that drift names the object and the reason, that apply repairs it, and that drift
    /// is clean afterwards.
    #[track_caller]
    fn expect_repair(&self, address: &str, reason: &str) {
        let drift = self.served.run(self.dir.path(), &["drift"]);
        drift.expect_code(2);
        let line = drift.stdout.lines().find(|line| line.contains(address)).unwrap_or_else(|| panic!("drift does not name {address}:\n{}", drift.stdout));
        assert!(line.contains(reason), "drift names {address} without `{reason}`:\n{}", drift.stdout);

        let json = self.served.run(self.dir.path(), &["drift", "--format", "json"]);
        json.expect_code(2);
        assert_eq!(json.json()["in_sync"], false);

        self.served.run(self.dir.path(), &["apply", "--auto-approve"]).expect_code(0);
        let after = self.served.run(self.dir.path(), &["drift"]);
        after.expect_code(0);
        self.served.run(self.dir.path(), &["verify"]).expect_code(0);
    }
}

#[test]
fn drift_group_deleted() {
    let applied = Applied::new();
    let id = applied.group_id("staging", "mlops-service-principals");
    let (status, _) = applied.admin("staging").send("DELETE", &format!("/api/2.0/preview/scim/v2/Groups/{id}"), &json!({}));
    assert!(status == 200 || status == 204);
    applied.expect_repair("staging/group", "deleted outside mlops");
}

#[test]
fn drift_service_principal_deleted() {
    let applied = Applied::new();
    let id = applied.service_principal("prod")["id"].as_str().unwrap().to_owned();
    let (status, _) = applied.admin("prod").send("DELETE", &format!("/api/2.0/preview/scim/v2/ServicePrincipals/{id}"), &json!({}));
    assert!(status == 200 || status == 204);
    applied.expect_repair("prod/service_principal", "deleted outside mlops");
}

#[test]
fn drift_service_principal_deactivated() {
    let applied = Applied::new();
    let id = applied.service_principal("prod")["id"].as_str().unwrap().to_owned();
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]
    });
    let (status, body) = applied.admin("prod").send("PATCH", &format!("/api/2.0/preview/scim/v2/ServicePrincipals/{id}"), &patch);
    assert!(status == 200 || status == 204, "{body}");
    applied.expect_repair("prod/service_principal", "deactivated outside mlops");
}

#[test]
fn drift_service_principal_entitlement_removed() {
    let applied = Applied::new();
    let id = applied.service_principal("staging")["id"].as_str().unwrap().to_owned();
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": "entitlements", "value": [{"value": "allow-cluster-create"}]}]
    });
    let (status, body) = applied.admin("staging").send("PATCH", &format!("/api/2.0/preview/scim/v2/ServicePrincipals/{id}"), &patch);
    assert!(status == 200 || status == 204, "{body}");
    applied.expect_repair("staging/service_principal", "entitlement `allow-cluster-create` removed");
}

#[test]
fn drift_membership_removed() {
    let applied = Applied::new();
    let group = applied.group_id("staging", "mlops-service-principals");
    let member = applied.service_principal("staging")["id"].as_str().unwrap().to_owned();
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": format!("members[value eq \"{member}\"]")}]
    });
    let (status, body) = applied.admin("staging").send("PATCH", &format!("/api/2.0/preview/scim/v2/Groups/{group}"), &patch);
    assert!(status == 200 || status == 204, "{body}");
    applied.expect_repair("staging/group_member", "removed outside mlops");
}

#[test]
fn drift_unexpected_group_member() {
    let applied = Applied::new();
    let admin = applied.admin("prod");
    let (status, intruder) = admin.send("POST", "/api/2.0/preview/scim/v2/ServicePrincipals", &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"],
        "displayName": "someone else"
    }));
    assert_eq!(status, 201, "{intruder}");
    let group = applied.group_id("prod", "mlops-service-principals");
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": intruder["id"]}]}]
    });
    let (status, body) = admin.send("PATCH", &format!("/api/2.0/preview/scim/v2/Groups/{group}"), &patch);
    assert!(status == 200 || status == 204, "{body}");
    applied.expect_repair("prod/group", "unexpected member");

    let (_, group) = admin.get(&format!("/api/2.0/preview/scim/v2/Groups/{group}"));
    let members: Vec<&str> = group["members"].as_array().unwrap().iter().map(|member| member["value"].as_str().unwrap()).collect();
    assert!(!members.contains(&intruder["id"].as_str().unwrap()), "{group}");
}

#[test]
fn drift_token_deleted() {
    let applied = Applied::new();
    let token = applied.mlops_token_id("prod");
    let (status, _) = applied.admin("prod").send("DELETE", &format!("/api/2.0/token-management/tokens/{token}"), &json!({}));
    assert!(status == 200 || status == 204);
    applied.expect_repair("prod/token", "deleted or revoked outside mlops");
}

#[test]
fn drift_token_permission_removed() {
    let applied = Applied::new();
    let admin = applied.admin("staging");
    let (status, body) = admin.send("PUT", "/api/2.0/permissions/authorization/tokens", &json!({
        "access_control_list": [
            {"group_name": "admins", "permission_level": "CAN_MANAGE"},
            {"group_name": "users", "permission_level": "CAN_USE"}
        ]
    }));
    assert_eq!(status, 200, "{body}");
    applied.expect_repair("staging/token_permission/mlops-service-principals", "removed outside mlops");
}

#[test]
fn drift_registry_permission_removed() {
    let applied = Applied::new();
    let (status, body) = applied.admin("prod").send("PUT", "/api/2.0/permissions/registered-models/root", &json!({
        "access_control_list": [{"group_name": "admins", "permission_level": "CAN_MANAGE"}]
    }));
    assert_eq!(status, 200, "{body}");
    applied.expect_repair("prod/registry_permission", "removed outside mlops");
}

#[test]
fn drift_scope_deleted() {
    let applied = Applied::new();
    let (status, body) = applied.admin("dev").send("POST", "/api/2.0/secrets/scopes/delete", &json!({"scope": "remote-mr-staging"}));
    assert_eq!(status, 200, "{body}");
    applied.expect_repair("dev/secret_scope/remote-mr-staging", "deleted outside mlops");
}

#[test]
fn drift_secret_deleted() {
    let applied = Applied::new();
    let (status, body) = applied.admin("dev").send("POST", "/api/2.0/secrets/delete", &json!({"scope": "remote-mr-prod", "key": "prod-host"}));
    assert_eq!(status, 200, "{body}");
    applied.expect_repair("dev/secret/remote-mr-prod/prod-host", "deleted outside mlops");
}

#[test]
fn drift_secret_overwritten() {
    let applied = Applied::new();
    let (status, body) = applied.admin("staging").send("POST", "/api/2.0/secrets/put", &json!({
        "scope": "remote-mr-prod", "key": "prod-token", "string_value": "not a token"
    }));
    assert_eq!(status, 200, "{body}");
    applied.expect_repair("staging/secret/remote-mr-prod/prod-token", "overwritten outside mlops");
}

#[test]
fn drift_reader_acl_removed() {
    let applied = Applied::new();
    let (status, body) = applied.admin("dev").send("POST", "/api/2.0/secrets/acls/delete", &json!({"scope": "remote-mr-prod", "principal": "users"}));
    assert_eq!(status, 200, "{body}");
    applied.expect_repair("dev/secret_acl/remote-mr-prod/users", "deleted outside mlops");
}

#[test]
fn drift_unexpected_scope_principal() {
    let applied = Applied::new();
    let (status, body) = applied.admin("dev").send("POST", "/api/2.0/secrets/acls/put", &json!({
        "scope": "remote-mr-staging", "principal": "admins", "permission": "WRITE"
    }));
    assert_eq!(status, 200, "{body}");
    applied.expect_repair("dev/secret_scope/remote-mr-staging", "unexpected principal");
    let (_, acls) = applied.admin("dev").get("/api/2.0/secrets/acls/list?scope=remote-mr-staging");
    assert!(!acls.to_string().contains("\"admins\""), "{acls}");
}

#[test]
fn drift_unreachable_workspace_exits_1() {
    let applied = Applied::new();
    let config = applied.dir.path().join("mlops.yaml");
    let staging = applied.served.workspace("staging").host.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let text = std::fs::read_to_string(&config).unwrap().replace(&staging, &closed);
    std::fs::write(&config, text).unwrap();

    let run = applied.served.run_with(applied.dir.path(), &["drift"], &[("MLOPS_RETRY_BUDGET_SECONDS", "1")]);
    run.expect_code(1);
    assert!(run.stderr.contains("staging"), "{}", run.stderr);
    assert!(!run.stdout.contains("In sync"), "{}", run.stdout);
}

#[test]
fn removed_scope_reader_is_not_drift() {
    let served = Served::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    served.write_config(dir.path(), "names: { scope_readers: [users, admins] }\n");
    served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);

    served.write_config(dir.path(), "");
    let drift = served.run(dir.path(), &["drift"]);
    drift.expect_code(0);
    assert!(drift.stdout.contains("not applied yet"), "{}", drift.stdout);
    served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);
    served.run(dir.path(), &["plan", "--detailed-exitcode"]).expect_code(0);
}

#[test]
fn duplicate_service_principal_is_reported() {
    let applied = Applied::new();
    let (status, body) = applied.admin("staging").send("POST", "/api/2.0/preview/scim/v2/ServicePrincipals", &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"],
        "displayName": "READ-only Model Registry Service Principal"
    }));
    assert_eq!(status, 201, "{body}");

    let drift = applied.served.run(applied.dir.path(), &["drift"]);
    drift.expect_code(2);
    assert!(drift.stdout.contains(body["applicationId"].as_str().unwrap()), "{}", drift.stdout);
    assert!(drift.stdout.contains("staging/service_principal"), "{}", drift.stdout);
}
