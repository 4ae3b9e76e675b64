//! Helpers shared by the integration tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use serde_json::Value;

/// Returns a command that runs the `mlops` binary under test, with a clean environment.
pub fn mlops() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(env!("CARGO_BIN_EXE_mlops"));
    command.env_remove("MLOPS_NOW").env_remove("RUST_LOG").env_remove("NO_COLOR").env("NO_COLOR", "1");
    command
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `mlops` with these arguments in `dir`, with extra environment variables.
pub fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = mlops();
    command.current_dir(dir).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("failed to start mlops");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Parses stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", self.stdout))
    }
}

/// One workspace of a served emulator, as `mlops emulator serve` prints it.
#[derive(Debug, Clone)]
pub struct ServedWorkspace {
    pub name: String,
    pub host: String,
    pub workspace_id: String,
    pub token: String,
}

/// A running `mlops emulator serve`, stopped on drop.
pub struct Served {
    child: Child,
    pub workspaces: Vec<ServedWorkspace>,
}

impl Served {
    /// Starts the emulator with the default workspaces and extra arguments.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mlops"));
        command.args(["emulator", "serve"]).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit());
        command.env_remove("MLOPS_NOW");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("failed to start mlops emulator serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let given = args.iter().filter(|arg| **arg == "--workspace").count();
        let count = if given == 0 { 3 } else { given };
        let mut workspaces = Vec::new();
        for _ in 0..count {
            let line = lines.next().expect("emulator printed too few lines").expect("readable line");
            let value: Value = serde_json::from_str(&line).expect("emulator line is JSON");
            workspaces.push(ServedWorkspace {
                name: value["name"].as_str().unwrap().to_owned(),
                host: value["host"].as_str().unwrap().to_owned(),
                workspace_id: value["workspace_id"].as_str().unwrap().to_owned(),
                token: value["token"].as_str().unwrap().to_owned(),
            });
        }
        std::thread::spawn(move || for _ in lines {});
        Served { child, workspaces }
    }

    /// Returns the workspace with this name.
    pub fn workspace(&self, name: &str) -> &ServedWorkspace {
        self.workspaces.iter().find(|workspace| workspace.name == name).expect("served workspace")
    }

    /// Returns the environment that gives each workspace its admin token, as `<NAME>_TOKEN`.
    pub fn token_env(&self) -> Vec<(String, String)> {
        self.workspaces.iter().map(|workspace| (format!("{}_TOKEN", workspace.name.to_uppercase()), workspace.token.clone())).collect()
    }

    /// Writes a configuration that reaches every served workspace with `token_env`.
    pub fn write_config(&self, dir: &Path, extra: &str) -> PathBuf {
        let mut text = String::from("version: 1\nworkspaces:\n");
        for workspace in &self.workspaces {
            text.push_str(&format!("  {}:\n    host: {}\n", workspace.name, workspace.host));
            if workspace.name != "dev" {
                text.push_str(&format!("    workspace_id: \"{}\"\n", workspace.workspace_id));
            }
            text.push_str(&format!("    token_env: {}_TOKEN\n", workspace.name.to_uppercase()));
        }
        text.push_str("additional_token_usage_groups: [users]\nstate: state/mlops.state.json\n");
        text.push_str(extra);
        let path = dir.join("mlops.yaml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Runs `mlops` in `dir` with the admin tokens in the environment.
    pub fn run(&self, dir: &Path, args: &[&str]) -> Run {
        self.run_with(dir, args, &[])
    }

    /// Runs `mlops` in `dir` with the admin tokens and extra variables in the environment.
    pub fn run_with(&self, dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let tokens = self.token_env();
        let mut env: Vec<(&str, &str)> = tokens.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        env.extend_from_slice(extra);
        run_in(dir, args, &env)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client for checks from the outside.
pub struct Api {
    client: reqwest::blocking::Client,
    pub host: String,
    token: String,
}

impl Api {
    /// Returns a client for `host` that sends `token`.
    pub fn new(host: &str, token: &str) -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api { client: reqwest::blocking::Client::new(), host: host.to_owned(), token: token.to_owned() }
    }

    /// Sends a GET and returns the status and the JSON body (`Null` when empty).
    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(format!("{}{path}", self.host)).bearer_auth(&self.token).send().expect("GET");
        Self::decode(response)
    }

    /// Sends a request with a JSON body and returns the status and the JSON body.
    pub fn send(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = self
            .client
            .request(method, format!("{}{path}", self.host))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .expect("request");
        Self::decode(response)
    }

    fn decode(response: reqwest::blocking::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let value = if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    /// Reads a secret value through the secrets API.
    pub fn secret(&self, scope: &str, key: &str) -> Option<String> {
        let (status, body) = self.get(&format!("/api/2.0/secrets/get?scope={scope}&key={key}"));
        if status != 200 {
            return None;
        }
        let encoded = body["value"].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        String::from_utf8(bytes).ok()
    }
}

/// Returns every string in `text` that looks like a Databricks token.
pub fn token_shaped(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut index = 0;
    while let Some(position) = text[index..].find("dapi") {
        let start = index + position;
        let digits = bytes[start + 4..].iter().take_while(|byte| byte.is_ascii_hexdigit()).count();
        if digits >= 32 {
            found.push(text[start..start + 4 + digits].to_owned());
        }
        index = start + 4;
    }
    found
}

/// Copies the repository's example configuration into `dir`.
pub fn copy_example(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mlops.yaml.example");
    let target = dir.join("mlops.yaml");
    std::fs::copy(source, &target).expect("copy example");
    target
}
