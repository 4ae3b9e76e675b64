//! The three ways to authenticate (`profile`, `token_env`, `client_id_env` with
//! `client_secret_env`) against `mlops emulator serve`, and the error of each misconfiguration.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{Api, Run, Served, ServedWorkspace, mlops, token_shaped};

const SCIM: &str = "/api/2.0/preview/scim/v2";

/// How one workspace authenticates in a generated configuration.
#[derive(Clone, Copy)]
enum Method {
    Profile,
    TokenEnv,
    OAuthEnv,
}

/// OAuth client credentials of a service principal in the `admins` group of a workspace.
struct OAuthClient {
    client_id: String,
    client_secret: String,
}

#[track_caller]
fn ok(response: (u16, Value)) -> Value {
    assert!((200..300).contains(&response.0), "{} {}", response.0, response.1);
    response.1
}

/// Creates a service principal, makes it a workspace admin and returns its OAuth client credentials,
/// as a CI system that deploys with machine-to-machine OAuth would have.
fn admin_oauth_client(workspace: &ServedWorkspace) -> OAuthClient {
    let api = Api::new(&workspace.host, &workspace.token);
    let principal = ok(api.send("POST", &format!("{SCIM}/ServicePrincipals"), &json!({ "displayName": "ci-deployer" })));
    let principal_id = principal["id"].as_str().unwrap();

    let admins = ok(api.get(&format!("{SCIM}/Groups?filter=displayName%20eq%20%22admins%22")));
    let admins_id = admins["Resources"][0]["id"].as_str().unwrap();
    ok(api.send("PATCH", &format!("{SCIM}/Groups/{admins_id}"), &json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "add", "path": "members", "value": [{ "value": principal_id }] }],
    })));

    let secret = ok(api.send("POST", &format!("/_emulator/service-principals/{principal_id}/secret"), &json!({})));
    OAuthClient {
        client_id: secret["client_id"].as_str().unwrap().to_owned(),
        client_secret: secret["client_secret"].as_str().unwrap().to_owned(),
    }
}

/// A served emulator with OAuth clients, and the files and variables of one configuration.
struct Setup {
    served: Served,
    clients: Vec<OAuthClient>,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    profiles: String,
}

impl Setup {
    /// Starts the emulator and creates an admin OAuth client in each workspace.
    fn start() -> Setup {
        let served = Served::start(&[], &[]);
        let clients = served.workspaces.iter().map(admin_oauth_client).collect();
        Setup { served, clients, dir: tempfile::tempdir().unwrap(), env: Vec::new(), profiles: String::new() }
    }

    /// Writes `mlops.yaml` and `databrickscfg` with the chosen method per workspace (dev, staging,
    /// prod in order). A profile contains a token, or OAuth client credentials when `oauth_profiles`.
    fn configure(&mut self, methods: [Method; 3], oauth_profiles: bool) {
        let mut config = String::from("version: 1\nworkspaces:\n");
        for ((workspace, client), method) in self.served.workspaces.iter().zip(&self.clients).zip(methods) {
            let name = &workspace.name;
            let upper = name.to_uppercase();
            config.push_str(&format!("  {name}:\n    host: {}\n", workspace.host));
            if name != "dev" {
                config.push_str(&format!("    workspace_id: \"{}\"\n", workspace.workspace_id));
            }
            match method {
                Method::TokenEnv => {
                    config.push_str(&format!("    token_env: {upper}_TOKEN\n"));
                    self.env.push((format!("{upper}_TOKEN"), workspace.token.clone()));
                }
                Method::OAuthEnv => {
                    config.push_str(&format!("    client_id_env: {upper}_CLIENT_ID\n    client_secret_env: {upper}_CLIENT_SECRET\n"));
                    self.env.push((format!("{upper}_CLIENT_ID"), client.client_id.clone()));
                    self.env.push((format!("{upper}_CLIENT_SECRET"), client.client_secret.clone()));
                }
                Method::Profile => {
                    config.push_str(&format!("    profile: {name}-admin\n"));
                    self.profiles.push_str(&format!("[{name}-admin]\nhost = {}\n", workspace.host));
                    if oauth_profiles {
                        self.profiles.push_str(&format!("client_id = {}\nclient_secret = {}\n\n", client.client_id, client.client_secret));
                    } else {
                        self.profiles.push_str(&format!("token = {}\n\n", workspace.token));
                    }
                }
            }
        }
        config.push_str("additional_token_usage_groups: [users]\nstate: state/mlops.state.json\n");
        std::fs::write(self.dir.path().join("mlops.yaml"), config).unwrap();
        self.write_profiles(&self.profiles.clone());
        let file = self.dir.path().join("databrickscfg").display().to_string();
        self.env.push(("DATABRICKS_CONFIG_FILE".to_owned(), file));
    }

    /// Replaces the Databricks configuration file.
    fn write_profiles(&self, text: &str) {
        std::fs::write(self.dir.path().join("databrickscfg"), text).unwrap();
    }

    /// Runs mlops with this setup's variables, where `overrides` replace (or with an empty value
    /// remove) some of them.
    fn run(&self, args: &[&str], overrides: &[(&str, Option<&str>)]) -> Run {
        let mut env: Vec<(String, Option<String>)> = self.env.iter().map(|(key, value)| (key.clone(), Some(value.clone()))).collect();
        for (key, value) in overrides {
            env.retain(|(existing, _)| existing != key);
            env.push(((*key).to_owned(), value.map(str::to_owned)));
        }
        run_isolated(self.dir.path(), args, &env)
    }

    /// Returns every credential value of this setup, which no output may contain.
    fn secret_values(&self) -> Vec<String> {
        let tokens = self.served.workspaces.iter().map(|workspace| workspace.token.clone());
        let secrets = self.clients.iter().map(|client| client.client_secret.clone());
        tokens.chain(secrets).collect()
    }
}

/// Runs mlops in `dir` with no inherited `DATABRICKS_*` variable and `HOME` set to `dir`, so a
/// developer's own `~/.databrickscfg` plays no part. A `None` value leaves the variable unset.
fn run_isolated(dir: &Path, args: &[&str], env: &[(String, Option<String>)]) -> Run {
    let mut command = mlops();
    command.current_dir(dir).args(args).env("HOME", dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("DATABRICKS_") || key.ends_with("_TOKEN") || key.contains("CLIENT_") {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let output = command.output().expect("failed to start mlops");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Plans, applies, plans again with no change and verifies.
fn plan_apply_converge(setup: &Setup) {
    setup.run(&["plan", "--detailed-exitcode"], &[]).expect_code(2);
    setup.run(&["apply", "--auto-approve"], &[]).expect_code(0);
    let again = setup.run(&["plan", "--detailed-exitcode"], &[]);
    again.expect_code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
    setup.run(&["verify"], &[]).expect_code(0);
}

#[test]
fn each_method_in_one_config() {
    let mut setup = Setup::start();
    setup.configure([Method::Profile, Method::TokenEnv, Method::OAuthEnv], false);

    plan_apply_converge(&setup);
}

#[test]
fn oauth_env_for_every_workspace() {
    let mut setup = Setup::start();
    setup.configure([Method::OAuthEnv; 3], false);

    plan_apply_converge(&setup);
}

#[test]
fn profile_with_oauth_credentials() {
    let mut setup = Setup::start();
    setup.configure([Method::Profile; 3], true);

    plan_apply_converge(&setup);
}

#[test]
fn profile_from_home_databrickscfg() {
    let mut setup = Setup::start();
    setup.configure([Method::Profile; 3], false);
    std::fs::rename(setup.dir.path().join("databrickscfg"), setup.dir.path().join(".databrickscfg")).unwrap();

    let run = setup.run(&["plan", "--detailed-exitcode"], &[("DATABRICKS_CONFIG_FILE", None)]);
    run.expect_code(2);
}

#[test]
fn profile_host_is_compared() {
    let mut setup = Setup::start();
    setup.configure([Method::Profile, Method::TokenEnv, Method::TokenEnv], false);
    let dev = setup.served.workspace("dev");
    let bare_host = dev.host.trim_start_matches("http://");
    setup.write_profiles(&format!("[dev-admin]\nhost = {}/\ntoken = \"{}\"\n", dev.host, dev.token));
    setup.run(&["plan"], &[]).expect_code(0);

    setup.write_profiles(&format!("[dev-admin]\nhost = {bare_host}\ntoken = {}\n", dev.token));
    let run = setup.run(&["plan"], &[]);
    run.expect_code(1);
    assert!(run.stderr.contains(&format!("is for host {bare_host}, not {}", dev.host)), "{}", run.stderr);
}

/// Asserts that a run failed with every fragment in its error output and printed no credential.
#[track_caller]
fn assert_fails_with(setup: &Setup, run: &Run, fragments: &[&str]) {
    run.expect_code(1);
    for fragment in fragments {
        assert!(run.stderr.contains(fragment), "missing `{fragment}` in:\n{}", run.stderr);
    }
    let printed = format!("{}{}", run.stdout, run.stderr);
    for secret in setup.secret_values() {
        assert!(!printed.contains(&secret), "a credential was printed:\n{printed}");
    }
    assert!(token_shaped(&printed).is_empty(), "something token-shaped was printed:\n{printed}");
}

#[test]
fn missing_or_empty_variables_name_the_fix() {
    let mut setup = Setup::start();
    setup.configure([Method::Profile, Method::TokenEnv, Method::OAuthEnv], false);

    let unset = setup.run(&["plan"], &[("STAGING_TOKEN", None)]);
    assert_fails_with(&setup, &unset, &["workspace `staging`", "environment variable STAGING_TOKEN is not set", "hint: export STAGING_TOKEN"]);

    let empty = setup.run(&["apply", "--auto-approve"], &[("STAGING_TOKEN", Some("  "))]);
    assert_fails_with(&setup, &empty, &["environment variable STAGING_TOKEN is empty"]);

    let no_id = setup.run(&["plan"], &[("PROD_CLIENT_ID", None)]);
    assert_fails_with(&setup, &no_id, &["workspace `prod`", "environment variable PROD_CLIENT_ID is not set"]);

    let no_secret = setup.run(&["plan"], &[("PROD_CLIENT_SECRET", None)]);
    assert_fails_with(&setup, &no_secret, &["environment variable PROD_CLIENT_SECRET is not set", "hint: export PROD_CLIENT_SECRET"]);
}

#[test]
fn standard_databricks_variables_are_not_used() {
    let mut setup = Setup::start();
    setup.configure([Method::Profile, Method::TokenEnv, Method::OAuthEnv], false);
    let staging = setup.served.workspace("staging");

    let run = setup.run(
        &["plan"],
        &[("STAGING_TOKEN", None), ("DATABRICKS_TOKEN", Some(&staging.token)), ("DATABRICKS_HOST", Some(&staging.host))],
    );
    assert_fails_with(&setup, &run, &["environment variable STAGING_TOKEN is not set"]);
}

#[test]
fn missing_profile_never_falls_back_to_default() {
    let mut setup = Setup::start();
    setup.configure([Method::Profile, Method::TokenEnv, Method::TokenEnv], false);
    let dev = setup.served.workspace("dev");
    setup.write_profiles(&format!("[DEFAULT]\nhost = {}\ntoken = {}\n\n[other]\nhost = {}\n", dev.host, dev.token, dev.host));

    let run = setup.run(&["plan"], &[]);
    assert_fails_with(&setup, &run, &["workspace `dev`", "profile `dev-admin` not found", "`DEFAULT`, `other`", "add a `[dev-admin]` section"]);
}

#[test]
fn missing_config_file_names_path() {
    let mut setup = Setup::start();
    setup.configure([Method::Profile, Method::TokenEnv, Method::TokenEnv], false);
    let absent = setup.dir.path().join("absent.cfg").display().to_string();

    let run = setup.run(&["plan"], &[("DATABRICKS_CONFIG_FILE", Some(&absent))]);
    assert_fails_with(&setup, &run, &[&format!("`{absent}` not found"), "DATABRICKS_CONFIG_FILE"]);

    let home = setup.run(&["plan"], &[("DATABRICKS_CONFIG_FILE", None)]);
    assert_fails_with(&setup, &home, &[".databrickscfg` not found", "`[dev-admin]`"]);
}

#[test]
fn incomplete_profiles_name_missing_key() {
    let mut setup = Setup::start();
    setup.configure([Method::Profile, Method::TokenEnv, Method::TokenEnv], false);
    let dev = setup.served.workspace("dev");
    let host = &dev.host;
    let cases = [
        (format!("[dev-admin]\nhost = {host}\n"), "has no credentials"),
        (format!("[DEFAULT]\ntoken = {}\n[dev-admin]\nhost = {host}\n", dev.token), "has no credentials"),
        (format!("[dev-admin]\nhost = {host}\nclient_id = abc\n"), "has `client_id` but no `client_secret`"),
        (format!("[dev-admin]\nhost = {host}\nclient_secret = {}\n", dev.token), "has `client_secret` but no `client_id`"),
        (format!("[dev-admin]\nhost = {host}\ntoken = {}\nclient_id = abc\nclient_secret = def\n", dev.token), "sets both `token` and OAuth client credentials"),
        (format!("[dev-admin]\nhost = https://dbc-other.cloud.databricks.com\ntoken = {}\n", dev.token), "is for host https://dbc-other.cloud.databricks.com"),
    ];

    for (profiles, expected) in cases {
        setup.write_profiles(&profiles);
        let run = setup.run(&["plan"], &[]);
        assert_fails_with(&setup, &run, &["workspace `dev`", "profile `dev-admin`", expected]);
    }
}

#[test]
fn rejected_credentials_are_reported() {
    let mut setup = Setup::start();
    setup.configure([Method::Profile, Method::TokenEnv, Method::OAuthEnv], false);
    let wrong_token = format!("dapi{}", "0".repeat(32));

    let token = setup.run(&["plan"], &[("STAGING_TOKEN", Some(&wrong_token))]);
    assert_fails_with(&setup, &token, &["workspace `staging`", "403 Invalid access token."]);

    let secret = setup.run(&["plan"], &[("PROD_CLIENT_SECRET", Some("wrong-secret"))]);
    assert_fails_with(&setup, &secret, &["workspace `prod`", "/oidc/v1/token", "401 invalid_client", "check the OAuth client id and client secret"]);

    let client = setup.run(&["plan"], &[("PROD_CLIENT_ID", Some("00000000-0000-0000-0000-000000000000"))]);
    assert_fails_with(&setup, &client, &["workspace `prod`", "401 invalid_client"]);
}

#[test]
fn deactivated_oauth_principal_is_rejected() {
    let mut setup = Setup::start();
    setup.configure([Method::TokenEnv, Method::TokenEnv, Method::OAuthEnv], false);
    setup.run(&["plan"], &[]).expect_code(0);

    let prod = setup.served.workspace("prod");
    let api = Api::new(&prod.host, &prod.token);
    let filter = "displayName%20eq%20%22ci-deployer%22";
    let principal = ok(api.get(&format!("{SCIM}/ServicePrincipals?filter={filter}")));
    let principal_id = principal["Resources"][0]["id"].as_str().unwrap();
    let (status, body) = api.send("PATCH", &format!("{SCIM}/ServicePrincipals/{principal_id}"), &json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "active", "value": "false" }],
    }));
    assert_eq!(status, 204, "{body}");

    let run = setup.run(&["plan"], &[]);
    assert_fails_with(&setup, &run, &["workspace `prod`", "401 invalid_client"]);
}
