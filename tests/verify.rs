//! `mlops verify` against `mlops emulator serve`: every link works after apply, and each kind of
//! broken link is named with its reason, without printing a token.

use serde_json::{Value, json};

use crate::support::{Api, Run, Served, token_shaped};

/// A served emulator after `mlops apply` of the default links.
struct Applied {
    served: Served,
    dir: tempfile::TempDir,
}

impl Applied {
    fn start() -> Applied {
        let served = Served::start(&[], &[]);
        let dir = tempfile::tempdir().unwrap();
        served.write_config(dir.path(), "");
        served.run(dir.path(), &["apply", "--auto-approve"]).expect_code(0);
        Applied { served, dir }
    }

    fn admin(&self, workspace: &str) -> Api {
        let ws = self.served.workspace(workspace);
        Api::new(&ws.host, &ws.token)
    }

    fn verify(&self) -> Run {
        self.served.run(self.dir.path(), &["verify"])
    }

    /// Overwrites a secret in a reader workspace as its admin.
    fn put_secret(&self, reader: &str, scope: &str, key: &str, value: &str) {
        let body = json!({ "scope": scope, "key": key, "string_value": value });
        let (status, reply) = self.admin(reader).send("POST", "/api/2.0/secrets/put", &body);
        assert_eq!(status, 200, "{reply}");
    }

    /// Returns every token value of this world: the admin tokens and the stored link tokens.
    fn tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = self.served.workspaces.iter().map(|ws| ws.token.clone()).collect();
        for (reader, scope, key) in [("dev", "remote-mr-staging", "staging-token"), ("dev", "remote-mr-prod", "prod-token")] {
            tokens.extend(self.admin(reader).secret(scope, key));
        }
        tokens
    }
}

/// Asserts that verify printed no token value and nothing shaped like one.
#[track_caller]
fn assert_no_token(run: &Run, tokens: &[String]) {
    let printed = format!("{}{}", run.stdout, run.stderr);
    for token in tokens {
        assert!(!printed.contains(token.as_str()), "a token was printed:\n{printed}");
    }
    assert!(token_shaped(&printed).is_empty(), "something token-shaped was printed:\n{printed}");
}

/// Returns the stdout line of one link.
#[track_caller]
fn link_line<'a>(run: &'a Run, link: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|line| line.contains(&format!(" {link}")))
        .unwrap_or_else(|| panic!("no line for `{link}` in:\n{}", run.stdout))
}

#[test]
fn verify_passes_after_apply() {
    let applied = Applied::start();
    let tokens = applied.tokens();

    let run = applied.verify();
    run.expect_code(0);
    assert!(run.stdout.contains("All 3 links work."), "{}", run.stdout);
    assert!(link_line(&run, "dev -> staging").starts_with("ok "));
    assert!(link_line(&run, "dev -> prod").starts_with("ok "));
    assert!(link_line(&run, "staging -> prod").starts_with("ok "));
    assert_no_token(&run, &tokens);
}

#[test]
fn revoked_prod_token_breaks_both_prod_links() {
    let applied = Applied::start();
    let tokens = applied.tokens();
    let prod = applied.admin("prod");
    let (_, listed) = prod.get("/api/2.0/token-management/tokens");
    let managed: Vec<&Value> = listed["token_infos"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|token| token["comment"].as_str().is_some_and(|comment| comment.starts_with("mlops:")))
        .collect();
    assert_eq!(managed.len(), 1, "{listed}");
    let token_id = managed[0]["token_id"].as_str().unwrap();
    let (status, _) = prod.send("DELETE", &format!("/api/2.0/token-management/tokens/{token_id}"), &Value::Null);
    assert_eq!(status, 200);

    let run = applied.verify();
    run.expect_code(1);
    assert!(run.stderr.contains("2 of 3 links are broken: dev -> prod, staging -> prod"), "{}", run.stderr);
    assert!(link_line(&run, "dev -> staging").starts_with("ok "));
    for link in ["dev -> prod", "staging -> prod"] {
        let line = link_line(&run, link);
        assert!(line.starts_with("broken "), "{line}");
        assert!(line.contains("the stored token does not authenticate to the registry: 403 Invalid access token."), "{line}");
    }
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    assert_no_token(&run, &tokens);
}

#[test]
fn wrong_host_and_id_are_named() {
    let applied = Applied::start();
    let tokens = applied.tokens();
    applied.put_secret("dev", "remote-mr-staging", "staging-host", "https://dbc-elsewhere.cloud.databricks.com");
    applied.put_secret("dev", "remote-mr-prod", "prod-workspace-id", "123456789");
    let staging_host = &applied.served.workspace("staging").host;

    let run = applied.verify();
    run.expect_code(1);
    let wrong_host = link_line(&run, "dev -> staging");
    assert!(wrong_host.contains(&format!("`staging-host` contains `https://dbc-elsewhere.cloud.databricks.com`, expected {staging_host}")), "{wrong_host}");
    let wrong_id = link_line(&run, "dev -> prod");
    assert!(wrong_id.contains("`prod-workspace-id` contains `123456789`, but workspace `prod` is configured as 987654321"), "{wrong_id}");
    assert!(link_line(&run, "staging -> prod").starts_with("ok "));
    assert_no_token(&run, &tokens);
}

#[test]
fn token_in_wrong_secret_is_not_printed() {
    let applied = Applied::start();
    let tokens = applied.tokens();
    let prod_token = applied.admin("staging").secret("remote-mr-prod", "prod-token").unwrap();
    applied.put_secret("staging", "remote-mr-prod", "prod-host", &prod_token);

    let run = applied.verify();
    run.expect_code(1);
    let line = link_line(&run, "staging -> prod");
    assert!(line.contains("`prod-host` contains a value that is not a host (not shown)"), "{line}");
    assert_no_token(&run, &tokens);
}

#[test]
fn token_of_another_principal_is_named() {
    let applied = Applied::start();
    let tokens = applied.tokens();
    let prod_admin_token = applied.served.workspace("prod").token.clone();
    applied.put_secret("staging", "remote-mr-prod", "prod-token", &prod_admin_token);

    let run = applied.verify();
    run.expect_code(1);
    let line = link_line(&run, "staging -> prod");
    assert!(line.contains("the stored token authenticates as `admin@example.com`, not as the service principal"), "{line}");
    assert!(link_line(&run, "dev -> prod").starts_with("ok "));
    assert_no_token(&run, &tokens);
}

#[test]
fn missing_secret_is_named() {
    let applied = Applied::start();
    let body = json!({ "scope": "remote-mr-staging", "key": "staging-token" });
    let (status, reply) = applied.admin("dev").send("POST", "/api/2.0/secrets/delete", &body);
    assert_eq!(status, 200, "{reply}");

    let run = applied.verify();
    run.expect_code(1);
    let line = link_line(&run, "dev -> staging");
    assert!(line.contains("secret `remote-mr-staging/staging-token` is missing"), "{line}");
    assert!(run.stderr.contains("1 of 3 links are broken: dev -> staging"), "{}", run.stderr);
}

#[test]
fn registry_without_read_permission_is_named() {
    let applied = Applied::start();
    let prod = applied.admin("prod");
    let body = json!({ "access_control_list": [{ "group_name": "admins", "permission_level": "CAN_MANAGE" }] });
    let (status, reply) = prod.send("PUT", "/api/2.0/permissions/registered-models/root", &body);
    assert_eq!(status, 200, "{reply}");

    let run = applied.verify();
    run.expect_code(1);
    for link in ["dev -> prod", "staging -> prod"] {
        let line = link_line(&run, link);
        assert!(line.contains("the stored token cannot search the registry"), "{line}");
        assert!(line.contains("403"), "{line}");
    }
}

#[test]
fn missing_reader_acl_is_named() {
    let applied = Applied::start();
    let body = json!({ "scope": "remote-mr-staging", "principal": "users" });
    let (status, reply) = applied.admin("dev").send("POST", "/api/2.0/secrets/acls/delete", &body);
    assert_eq!(status, 200, "{reply}");

    let run = applied.verify();
    run.expect_code(1);
    let line = link_line(&run, "dev -> staging");
    assert!(line.contains("`users` has no READ on scope `remote-mr-staging`"), "{line}");
    assert!(run.stderr.contains("1 of 3 links are broken: dev -> staging"), "{}", run.stderr);
}
