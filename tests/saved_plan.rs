//! Saved plans: `mlops plan --out FILE` and `mlops apply FILE`, against `mlops emulator serve`.
//!
//! A rejected plan must leave both the workspaces and the state file exactly as they were, so
//! every rejection compares the state bytes and a listing of the emulated world before and after.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{Api, Run, Served, token_shaped};

const STATE: &str = "state/mlops.state.json";

/// A served emulator with a configuration in a temporary folder.
struct World {
    served: Served,
    dir: tempfile::TempDir,
}

impl World {
    fn start() -> World {
        let served = Served::start(&[], &[]);
        let dir = tempfile::tempdir().unwrap();
        served.write_config(dir.path(), "");
        World { served, dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Run {
        self.served.run(self.path(), args)
    }

    fn admin(&self, workspace: &str) -> Api {
        let ws = self.served.workspace(workspace);
        Api::new(&ws.host, &ws.token)
    }

    fn state_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.path().join(STATE)).ok()
    }

    fn state_json(&self) -> Value {
        serde_json::from_slice(&self.state_bytes().expect("state file")).expect("state is JSON")
    }

    /// Lists what every workspace contains that mlops could change: scopes, secrets with their
    /// update times, scope ACLs, tokens, groups, service principals and both permission objects.
    fn listing(&self) -> Value {
        let mut world = serde_json::Map::new();
        for workspace in &self.served.workspaces {
            let admin = self.admin(&workspace.name);
            let mut scopes = serde_json::Map::new();
            let (_, listed) = admin.get("/api/2.0/secrets/scopes/list");
            for scope in listed["scopes"].as_array().into_iter().flatten() {
                let name = scope["name"].as_str().unwrap_or_default();
                let (_, secrets) = admin.get(&format!("/api/2.0/secrets/list?scope={name}"));
                let (_, acls) = admin.get(&format!("/api/2.0/secrets/acls/list?scope={name}"));
                scopes.insert(name.to_owned(), json!({ "secrets": secrets, "acls": acls }));
            }
            let read = |path: &str| admin.get(path).1;
            world.insert(
                workspace.name.clone(),
                json!({
                    "scopes": scopes,
                    "tokens": read("/api/2.0/token-management/tokens"),
                    "groups": read("/api/2.0/preview/scim/v2/Groups"),
                    "service_principals": read("/api/2.0/preview/scim/v2/ServicePrincipals"),
                    "token_permissions": read("/api/2.0/permissions/authorization/tokens"),
                    "registry_permissions": read("/api/2.0/permissions/registered-models/root"),
                }),
            );
        }
        Value::Object(world)
    }

    /// Runs `mlops apply FILE` and checks that it exits 1 and changes neither the workspaces nor
    /// the state; returns stderr.
    #[track_caller]
    fn apply_rejected(&self, file: &str) -> String {
        let state = self.state_bytes();
        let world = self.listing();

        let run = self.run(&["apply", file]);
        run.expect_code(1);

        assert_eq!(
            self.state_bytes(),
            state,
            "a rejected saved plan changed the state file"
        );
        assert_eq!(
            self.listing(),
            world,
            "a rejected saved plan changed a workspace"
        );
        assert!(run.stderr.contains("error:"), "{}", run.stderr);
        assert!(
            run.stderr.contains("mlops plan --out FILE"),
            "no hint to re-plan:\n{}",
            run.stderr
        );
        run.stderr
    }

    /// Deletes one secret outside mlops.
    fn delete_secret(&self, workspace: &str, scope: &str, key: &str) {
        let (status, body) = self.admin(workspace).send(
            "POST",
            "/api/2.0/secrets/delete",
            &json!({ "scope": scope, "key": key }),
        );
        assert_eq!(status, 200, "{body}");
    }

    fn secret_exists(&self, workspace: &str, scope: &str, key: &str) -> bool {
        let (_, listed) = self
            .admin(workspace)
            .get(&format!("/api/2.0/secrets/list?scope={scope}"));
        listed["secrets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|secret| secret["key"] == key)
    }
}

fn plan_file(world: &World, name: &str) -> PathBuf {
    world.run(&["plan", "--out", name]).expect_code(0);
    world.path().join(name)
}

fn read_plan(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("plan file"))
        .expect("plan file is JSON")
}

#[cfg(unix)]
#[test]
fn saved_plan_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;

    let world = World::start();
    let path = world.path().join("reviewed.plan");
    std::fs::write(&path, "an older file that the plan replaces").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    world
        .run(&["plan", "--out", "reviewed.plan"])
        .expect_code(0);

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "plan file mode is {mode:o}");
}

#[test]
fn saved_plan_holds_no_secret_value() {
    let world = World::start();
    world.run(&["apply", "--auto-approve"]).expect_code(0);
    let dev = world.admin("dev");
    let real_token = dev
        .secret("remote-mr-staging", "staging-token")
        .expect("token secret");
    let planted = format!("dapi{}", "0123456789abcdef".repeat(2));
    let (status, body) = dev.send(
        "POST",
        "/api/2.0/secrets/put",
        &json!({ "scope": "remote-mr-staging", "key": "staging-token", "string_value": planted }),
    );
    assert_eq!(status, 200, "{body}");

    let path = plan_file(&world, "reviewed.plan");
    let text = std::fs::read_to_string(&path).unwrap();

    let plan = read_plan(&path);
    let change = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|change| change["address"] == "dev/secret/remote-mr-staging/staging-token");
    assert_eq!(
        change.expect("token secret change")["action"],
        "update",
        "the overwritten token secret is not planned"
    );
    assert!(
        !text.contains(&real_token),
        "the plan file holds the live token"
    );
    assert!(
        !text.contains(&planted),
        "the plan file holds the overwritten secret value"
    );
    for workspace in &world.served.workspaces {
        assert!(
            !text.contains(&workspace.token),
            "the plan file holds the admin token of {}",
            workspace.name
        );
    }
    assert_eq!(
        token_shaped(&text),
        Vec::<String>::new(),
        "the plan file holds something token-shaped"
    );
}

#[test]
fn first_plan_mints_lineage() {
    let world = World::start();
    assert!(world.state_bytes().is_none());

    let plan = read_plan(&plan_file(&world, "first.plan"));

    let state = world.state_json();
    assert!(
        !state["lineage"].as_str().unwrap_or_default().is_empty(),
        "{state}"
    );
    assert_eq!(plan["lineage"], state["lineage"]);
    assert_eq!(plan["serial"], state["serial"]);
}

#[test]
fn saved_plan_applies_once() {
    let world = World::start();
    plan_file(&world, "first.plan");

    let applied = world.run(&["apply", "first.plan"]);
    applied.expect_code(0);
    assert!(
        applied.stdout.contains("Apply complete!"),
        "{}",
        applied.stdout
    );
    world.run(&["plan", "--detailed-exitcode"]).expect_code(0);

    let stderr = world.apply_rejected("first.plan");
    assert!(stderr.contains("is stale"), "{stderr}");
    assert!(stderr.contains("state serial"), "{stderr}");
}

#[test]
fn saved_plan_rejected_after_other_apply() {
    let world = World::start();
    world.run(&["apply", "--auto-approve"]).expect_code(0);
    world.delete_secret("dev", "remote-mr-prod", "prod-host");
    plan_file(&world, "reviewed.plan");

    world.run(&["apply", "--auto-approve"]).expect_code(0);
    world.delete_secret("dev", "remote-mr-prod", "prod-host");

    let stderr = world.apply_rejected("reviewed.plan");
    assert!(stderr.contains("is stale"), "{stderr}");
    assert!(!world.secret_exists("dev", "remote-mr-prod", "prod-host"));
}

#[test]
fn saved_plan_rejected_after_config_change() {
    let world = World::start();
    plan_file(&world, "reviewed.plan");
    let config = world.path().join("mlops.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("# edited after the review\n");
    std::fs::write(&config, text).unwrap();

    let stderr = world.apply_rejected("reviewed.plan");

    assert!(stderr.contains("configuration"), "{stderr}");
    assert!(stderr.contains("changed since the saved plan"), "{stderr}");
    assert!(
        world.listing()["dev"]["scopes"]
            .as_object()
            .unwrap()
            .is_empty(),
        "a scope was created"
    );
}

#[test]
fn saved_plan_rejected_for_other_lineage() {
    let world = World::start();
    let plan = read_plan(&plan_file(&world, "reviewed.plan"));
    std::fs::remove_file(world.path().join(STATE)).unwrap();
    world.run(&["plan"]).expect_code(0);
    let state = world.state_json();
    assert_ne!(plan["lineage"], state["lineage"]);
    assert_eq!(
        plan["serial"], state["serial"],
        "the test needs equal serials to reach the lineage check"
    );

    let stderr = world.apply_rejected("reviewed.plan");

    assert!(stderr.contains("lineage"), "{stderr}");
    assert!(
        stderr.contains(plan["lineage"].as_str().unwrap()),
        "{stderr}"
    );
}

#[test]
fn saved_plan_rejected_without_state() {
    let world = World::start();
    plan_file(&world, "reviewed.plan");
    std::fs::remove_file(world.path().join(STATE)).unwrap();

    let stderr = world.apply_rejected("reviewed.plan");

    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        world.state_bytes().is_none(),
        "a rejected plan created a state file"
    );
}

#[test]
fn damaged_or_foreign_plan_rejected() {
    let world = World::start();
    let path = plan_file(&world, "reviewed.plan");
    let text = std::fs::read_to_string(&path).unwrap();
    let plan = read_plan(&path);

    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut value = plan.clone();
        edit(&mut value);
        serde_json::to_string_pretty(&value).unwrap()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "not valid JSON"),
        (
            "truncated",
            text[..text.len() / 2].to_owned(),
            "not valid JSON",
        ),
        (
            "newer version",
            edited(&|value| value["format_version"] = json!(2)),
            "format version 2",
        ),
        (
            "no version",
            edited(&|value| drop(value.as_object_mut().unwrap().remove("format_version"))),
            "format version (missing)",
        ),
        (
            "unknown field",
            edited(&|value| value["approved_by"] = json!("someone")),
            "is damaged",
        ),
        (
            "missing field",
            edited(&|value| drop(value.as_object_mut().unwrap().remove("changes"))),
            "is damaged",
        ),
        (
            "wrong type",
            edited(&|value| value["serial"] = json!("one")),
            "is damaged",
        ),
        (
            "change removed",
            edited(&|value| drop(value["changes"].as_array_mut().unwrap().pop())),
            "summary does not match",
        ),
        (
            "destroy plan",
            edited(&|value| value["operation"] = json!("destroy")),
            "not an apply plan",
        ),
    ];

    for (name, content, expected) in cases {
        std::fs::write(&path, content).unwrap();
        let stderr = world.apply_rejected("reviewed.plan");
        assert!(
            stderr.contains(expected),
            "{name}: expected `{expected}` in:\n{stderr}"
        );
    }
}

#[test]
fn saved_plan_missing_file_rejected() {
    let world = World::start();
    world.run(&["plan"]).expect_code(0);
    let state = world.state_bytes();

    let run = world.run(&["apply", "nowhere.plan"]);

    run.expect_code(1);
    assert!(
        run.stderr
            .contains("failed to read the plan file `nowhere.plan`"),
        "{}",
        run.stderr
    );
    assert_eq!(world.state_bytes(), state);
}

#[test]
fn saved_plan_applies_only_its_changes() {
    let world = World::start();
    world.run(&["apply", "--auto-approve"]).expect_code(0);
    world.delete_secret("dev", "remote-mr-staging", "staging-host");
    plan_file(&world, "reviewed.plan");
    world.delete_secret("dev", "remote-mr-prod", "prod-host");

    world.run(&["apply", "reviewed.plan"]).expect_code(0);

    assert!(
        world.secret_exists("dev", "remote-mr-staging", "staging-host"),
        "the reviewed change was not applied"
    );
    assert!(
        !world.secret_exists("dev", "remote-mr-prod", "prod-host"),
        "apply made a change that the saved plan does not hold"
    );
    let next = world.run(&["plan", "--detailed-exitcode"]);
    next.expect_code(2);
    assert!(
        next.stdout.contains("dev/secret/remote-mr-prod/prod-host"),
        "{}",
        next.stdout
    );
    assert!(
        !next
            .stdout
            .contains("dev/secret/remote-mr-staging/staging-host"),
        "{}",
        next.stdout
    );
}

#[test]
fn apply_without_approval_rejected_off_terminal() {
    let world = World::start();
    world.run(&["plan"]).expect_code(0);
    let state = world.state_bytes();
    let listing = world.listing();

    let mut command = Command::new(env!("CARGO_BIN_EXE_mlops"));
    command
        .current_dir(world.path())
        .arg("apply")
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .env_remove("MLOPS_NOW");
    for (key, value) in world.served.token_env() {
        command.env(key, value);
    }
    let output = command.output().expect("failed to start mlops");
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("standard input is not a terminal"),
        "{stderr}"
    );
    assert!(stderr.contains("--auto-approve"), "{stderr}");
    assert_eq!(
        world.state_bytes(),
        state,
        "a rejected apply changed the state file"
    );
    assert_eq!(
        world.listing(),
        listing,
        "a rejected apply changed a workspace"
    );
}

/// Runs `mlops apply` in a pseudo-terminal made by util-linux `script`, typing `answer`.
fn apply_on_terminal(world: &World, answer: &str) -> Option<(i32, String)> {
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|path| Path::new(path).exists())?;
    let mut command = Command::new(script);
    command
        .current_dir(world.path())
        .args([
            "-q",
            "-e",
            "-c",
            &format!("{} apply", env!("CARGO_BIN_EXE_mlops")),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .env_remove("MLOPS_NOW");
    for (key, value) in world.served.token_env() {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("failed to start script");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), answer.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    Some((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

#[test]
fn apply_asks_on_terminal() {
    let world = World::start();
    world.run(&["plan"]).expect_code(0);
    let state = world.state_bytes();
    let listing = world.listing();

    let Some((code, printed)) = apply_on_terminal(&world, "no\n") else {
        eprintln!(
            "skipped: util-linux `script` is not installed, so no pseudo-terminal is available"
        );
        return;
    };
    assert_eq!(code, 1, "{printed}");
    assert!(
        printed.contains("Do you want to perform these actions?"),
        "{printed}"
    );
    assert!(printed.contains("apply cancelled"), "{printed}");
    assert_eq!(
        world.state_bytes(),
        state,
        "a cancelled apply changed the state file"
    );
    assert_eq!(
        world.listing(),
        listing,
        "a cancelled apply changed a workspace"
    );

    let (code, printed) = apply_on_terminal(&world, "yes\n").unwrap();
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("Apply complete!"), "{printed}");
    world.run(&["plan", "--detailed-exitcode"]).expect_code(0);
}
