//! Harness of the crash, lock, fault and secret tests: one served emulator with a configuration
//! that reaches it, fault rules and clock control, and the checks that a run converged.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Api, Run, Served, run_in};

/// Time of the first apply in every scenario.
pub const FIRST_APPLY_TIME: &str = "2030-01-01T00:00:00Z";

/// 75 days after [`FIRST_APPLY_TIME`]: 25 days before the 100-day tokens expire, so inside the
/// default 30-day rotation window.
pub const ROTATION_TIME: &str = "2030-03-17T00:00:00Z";

/// Display name of the managed service principal.
pub const SERVICE_PRINCIPAL: &str = "READ-only Model Registry Service Principal";

/// The default links as (reader, scope, registry, prefix).
pub const LINKS: [(&str, &str, &str, &str); 3] = [
    ("dev", "remote-mr-staging", "staging", "staging"),
    ("dev", "remote-mr-prod", "prod", "prod"),
    ("staging", "remote-mr-prod", "prod", "prod"),
];

/// The registry workspaces of the default links.
pub const REGISTRIES: [&str; 2] = ["staging", "prod"];

/// The workspaces that `mlops emulator serve` starts by default.
pub const WORKSPACES: [&str; 3] = ["dev", "staging", "prod"];

/// Maximum wait for an emulator condition before a test gives up.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// A served emulator, a folder with a configuration for it, and the time every run uses.
pub struct Setup {
    pub served: Served,
    pub dir: tempfile::TempDir,
    /// Value of `MLOPS_NOW` for every run and of the emulator clock.
    pub now: String,
    spawned: AtomicUsize,
}

impl Setup {
    /// Serves the default workspaces with the clock frozen at `now`, and writes the
    /// configuration with `extra` appended.
    pub fn start(now: &str, extra: &str) -> Setup {
        let served = Served::start(&[], &[("MLOPS_NOW", now)]);
        let dir = tempfile::tempdir().expect("temporary folder");
        served.write_config(dir.path(), extra);
        Setup { served, dir, now: now.to_owned(), spawned: AtomicUsize::new(0) }
    }

    /// Returns the folder that contains the configuration.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the path of the state file.
    pub fn state_path(&self) -> PathBuf {
        self.path().join("state/mlops.state.json")
    }

    /// Returns the environment of a run: the admin tokens, `MLOPS_NOW`, and one request at a
    /// time per workspace, so that the k-th mutation of a workspace is the same request in every
    /// run and a fault rule armed for it always fires.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.served.token_env();
        env.push(("MLOPS_NOW".to_owned(), self.now.clone()));
        env.push(("MLOPS_MAX_CONCURRENT_REQUESTS".to_owned(), "1".to_owned()));
        env
    }

    /// Runs `mlops` in the configuration folder and waits for it.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// Runs `mlops` with extra environment variables and waits for it.
    pub fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let env = self.env();
        let mut pairs: Vec<(&str, &str)> = env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        pairs.extend_from_slice(extra);
        run_in(self.path(), args, &pairs)
    }

    /// Starts `mlops` without waiting; its stdout and stderr go to files named in the returned
    /// [`Spawned`].
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        let number = self.spawned.fetch_add(1, Ordering::SeqCst);
        let stdout_path = self.path().join(format!("spawned-{number}.stdout"));
        let stderr_path = self.path().join(format!("spawned-{number}.stderr"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_mlops"));
        command
            .current_dir(self.path())
            .args(args)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
        for (key, value) in self.env() {
            command.env(key, value);
        }
        let child = command.spawn().expect("failed to start mlops");
        Spawned { child, stdout_path, stderr_path }
    }

    /// Returns an admin client of a workspace.
    pub fn admin(&self, workspace: &str) -> Api {
        let served = self.served.workspace(workspace);
        Api::new(&served.host, &served.token)
    }

    /// Replaces the fault rules of a workspace, which also restarts its mutation count at 0.
    pub fn set_faults(&self, workspace: &str, rules: &Value) {
        let (status, body) = self.admin(workspace).send("POST", "/_emulator/faults", rules);
        assert_eq!(status, 200, "setting fault rules on {workspace} failed: {body}");
    }

    /// Sets no rules on every workspace, so that each counts its mutations from 0.
    pub fn reset_counts(&self) {
        for workspace in WORKSPACES {
            self.set_faults(workspace, &json!([]));
        }
    }

    /// Removes the fault rules of every workspace.
    pub fn clear_faults(&self) {
        for workspace in WORKSPACES {
            let (status, body) = self.admin(workspace).send("DELETE", "/_emulator/faults", &Value::Null);
            assert_eq!(status, 200, "clearing fault rules on {workspace} failed: {body}");
        }
    }

    /// Returns the mutations a workspace carried out since its rules were last set.
    pub fn mutations(&self, workspace: &str) -> u64 {
        let (status, body) = self.admin(workspace).get("/_emulator/faults");
        assert_eq!(status, 200, "reading fault rules of {workspace} failed: {body}");
        body["mutations"].as_u64().unwrap_or(0)
    }

    /// Returns the fault rules of a workspace with their counters.
    pub fn fault_counters(&self, workspace: &str) -> Value {
        self.admin(workspace).get("/_emulator/faults").1
    }

    /// Moves the emulator clock and the `MLOPS_NOW` of later runs to `now`.
    pub fn move_clock(&mut self, now: &str) {
        for workspace in WORKSPACES {
            let (status, body) = self.admin(workspace).send("POST", "/_emulator/clock", &json!({ "now": now }));
            assert_eq!(status, 200, "setting the clock of {workspace} failed: {body}");
        }
        self.now = now.to_owned();
    }

    /// Waits until a workspace has carried out at least `count` mutations, failing if `process`
    /// ends first.
    pub fn wait_for_mutations(&self, workspace: &str, count: u64, process: &mut Spawned) {
        let started = Instant::now();
        while self.mutations(workspace) < count {
            if let Some(status) = process.child.try_wait().expect("process status") {
                panic!(
                    "mlops ended with {status} before {workspace} carried out mutation {count}\n{}",
                    process.output()
                );
            }
            assert!(started.elapsed() < WAIT_LIMIT, "{workspace} never reached mutation {count}\n{}", process.output());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until a fault rule of a workspace has fired, failing if `process` ends first.
    pub fn wait_for_fired_rule(&self, workspace: &str, process: &mut Spawned) {
        let started = Instant::now();
        loop {
            let counters = self.fault_counters(workspace);
            let fired = counters["rules"].as_array().into_iter().flatten().any(|rule| rule["fired"].as_u64().unwrap_or(0) > 0);
            if fired {
                return;
            }
            if let Some(status) = process.child.try_wait().expect("process status") {
                panic!("mlops ended with {status} before a fault rule of {workspace} fired\n{}", process.output());
            }
            assert!(started.elapsed() < WAIT_LIMIT, "no fault rule of {workspace} fired\n{}", process.output());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Returns the state file, parsed.
    pub fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.state_path()).expect("state file");
        serde_json::from_str(&text).expect("state file is JSON")
    }
}

/// A running `mlops` process.
pub struct Spawned {
    pub child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Spawned {
    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process and returns its exit code.
    pub fn wait(&mut self) -> i32 {
        self.child.wait().expect("wait for mlops").code().unwrap_or(-1)
    }

    /// Returns what the process printed so far.
    pub fn output(&self) -> String {
        let stdout = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        format!("--- stdout\n{stdout}\n--- stderr\n{stderr}")
    }

    /// Returns what the process printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Returns every token of a workspace, from token management.
pub fn live_tokens(api: &Api) -> Vec<Value> {
    let (status, body) = api.get("/api/2.0/token-management/tokens");
    assert_eq!(status, 200, "listing tokens failed: {body}");
    body["token_infos"].as_array().cloned().unwrap_or_default()
}

/// Returns the service principals with the managed display name.
pub fn managed_principals(api: &Api) -> Vec<Value> {
    let filter = format!("displayName eq \"{SERVICE_PRINCIPAL}\"");
    let path = format!("/api/2.0/preview/scim/v2/ServicePrincipals?filter={}", filter.replace(' ', "%20").replace('"', "%22"));
    let (status, body) = api.get(&path);
    assert_eq!(status, 200, "listing service principals failed: {body}");
    body["Resources"].as_array().cloned().unwrap_or_default()
}

/// Returns the text of a JSON id that may be a number or a string.
fn id_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Checks that the world and the state agree and contain exactly what the configuration requests.
/// `plan` has no changes, each registry has one service principal and one live `mlops` token
/// owned by it, every reader scope contains a token that works, and no intent is left in state.
/// `context` names the scenario in failure messages.
pub fn check_converged(setup: &Setup, context: &str) {
    let plan = setup.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{context}: plan after recovery has changes or failed\n--- stdout\n{}\n--- stderr\n{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("No changes."), "{context}: {}", plan.stdout);

    for registry in REGISTRIES {
        check_registry(setup, registry, context);
    }
    for (reader, scope, registry, prefix) in LINKS {
        check_reader_token(setup, reader, scope, registry, prefix, context);
    }

    let state = setup.state();
    for resource in state["resources"].as_array().into_iter().flatten() {
        assert!(resource.get("intent").is_none(), "{context}: an intent is left in state: {resource}");
    }
}

/// Checks one service principal and one live `mlops` token owned by it.
fn check_registry(setup: &Setup, registry: &str, context: &str) {
    let admin = setup.admin(registry);
    let principals = managed_principals(&admin);
    assert_eq!(principals.len(), 1, "{context}: {registry} has {} service principals: {principals:?}", principals.len());
    let principal_id = id_text(&principals[0]["id"]);

    let marker = format!("mlops:{registry}/token");
    let tokens = live_tokens(&admin);
    let ours: Vec<&Value> = tokens.iter().filter(|token| token["comment"].as_str().unwrap_or_default().starts_with("mlops")).collect();
    assert_eq!(ours.len(), 1, "{context}: {registry} has {} live mlops tokens: {ours:?}", ours.len());
    assert_eq!(ours[0]["comment"], marker.as_str(), "{context}: {registry}");
    assert_eq!(id_text(&ours[0]["owner_id"]), principal_id, "{context}: the {registry} token is not the service principal's");
}

/// Checks that a reader scope contains a token of the registry's service principal that can
/// search the registry.
fn check_reader_token(setup: &Setup, reader: &str, scope: &str, registry: &str, prefix: &str, context: &str) {
    let link = format!("{reader} -> {registry}");
    let token = setup
        .admin(reader)
        .secret(scope, &format!("{prefix}-token"))
        .unwrap_or_else(|| panic!("{context}: {link}: scope `{scope}` holds no token"));
    let registry_host = setup.served.workspace(registry).host.clone();
    let as_principal = Api::new(&registry_host, &token);

    let (status, me) = as_principal.get("/api/2.0/preview/scim/v2/Me");
    assert_eq!(status, 200, "{context}: {link}: the stored token does not authenticate: {me}");
    let principals = managed_principals(&setup.admin(registry));
    assert_eq!(me["userName"], principals[0]["applicationId"], "{context}: {link}: the stored token belongs to someone else");

    let (status, models) = as_principal.get("/api/2.0/mlflow/registered-models/search");
    assert_eq!(status, 200, "{context}: {link}: the stored token cannot search the registry: {models}");
}
