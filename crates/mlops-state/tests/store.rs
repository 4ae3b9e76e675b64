//! Reading and writing state files on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlops_state::{FORMAT_VERSION, Intent, Problem, Resource, State, StateError, StateStore};
use serde_json::json;

const TOKEN: &str = "dapi0123456789abcdef0123456789abcdef";
const LINEAGE: &str = "5f0c6c8e-2a4b-4c1d-9e3f-7a8b9c0d1e2f";

fn resource(address: &str, kind: &str) -> Resource {
    Resource {
        address: address.to_string(),
        kind: kind.to_string(),
        workspace: "staging".to_string(),
        workspace_id: "123456789".to_string(),
        remote_id: "1000".to_string(),
        attributes: BTreeMap::new(),
        intent: None,
    }
}

fn sample_state() -> State {
    let mut state = State::new();

    let mut principal = resource("staging/service_principal", "service_principal");
    principal
        .attributes
        .insert("display_name".to_string(), json!("mlops-registry"));
    principal
        .attributes
        .insert("active".to_string(), json!(true));
    principal
        .attributes
        .insert("entitlements".to_string(), json!(["workspace-access"]));
    state.upsert(principal);

    let mut token = resource("staging/token", "token");
    token.remote_id = String::new();
    token.intent = Some(Intent {
        operation: "create".to_string(),
        marker: "mlops-reconciler:staging/token:4f1e".to_string(),
        started_at: "2026-03-04T05:06:07Z".to_string(),
    });
    state.upsert(token);

    state.upsert(resource("staging/group", "group"));
    state
}

fn store_in(folder: &Path) -> StateStore {
    StateStore::new(folder.join("mlops.state.json"))
}

/// Writes `text` as the state file and returns the error that `read` reports for it.
fn read_error(text: &str) -> (PathBuf, StateError) {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    std::fs::write(store.path(), text).unwrap();

    let error = store.read().unwrap_err();

    assert_has_file_and_hint(&error, store.path());
    (store.path().to_path_buf(), error)
}

fn assert_has_file_and_hint(error: &StateError, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "message does not name the file: {message}"
    );
    assert!(error.hint().is_some(), "no hint for: {message}");
}

/// Renders `state` as JSON text, with resources in the given order and no validation.
fn raw_text(state: &State) -> String {
    serde_json::to_string_pretty(state).unwrap()
}

#[test]
fn read_missing_file_is_none() {
    let folder = tempfile::tempdir().unwrap();

    assert!(store_in(folder.path()).read().unwrap().is_none());
}

#[test]
fn write_then_read_round_trip() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut state = sample_state();

    store.write(&mut state).unwrap();
    let loaded = store.read().unwrap().unwrap();

    assert_eq!(loaded, state);
    assert_eq!(loaded.serial, 1);
    assert_eq!(loaded.version, FORMAT_VERSION);
}

#[test]
fn serial_increments_per_write() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut state = sample_state();

    store.write(&mut state).unwrap();
    store.write(&mut state).unwrap();
    let mut loaded = store.read().unwrap().unwrap();
    store.write(&mut loaded).unwrap();

    assert_eq!(state.serial, 2);
    assert_eq!(loaded.serial, 3);
    assert_eq!(store.read().unwrap().unwrap().serial, 3);
}

#[test]
fn written_text_is_exact() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut state = State {
        lineage: LINEAGE.to_string(),
        ..State::new()
    };
    let mut group = resource("dev/group", "group");
    group
        .attributes
        .insert("display_name".to_string(), json!("ml-team"));
    state.upsert(group);

    store.write(&mut state).unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();

    let expected = r#"{
  "version": 1,
  "lineage": "5f0c6c8e-2a4b-4c1d-9e3f-7a8b9c0d1e2f",
  "serial": 1,
  "resources": [
    {
      "address": "dev/group",
      "kind": "group",
      "workspace": "staging",
      "workspace_id": "123456789",
      "remote_id": "1000",
      "attributes": {
        "display_name": "ml-team"
      }
    }
  ]
}
"#;
    assert_eq!(text, expected);
}

#[test]
fn written_output_is_sorted() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut state = State::new();
    for address in ["prod/group", "dev/group", "staging/group"] {
        // Pushed out of order on purpose: write sorts before it validates.
        state.resources.push(resource(address, "group"));
    }
    let mut last = resource("zz/group", "group");
    last.attributes
        .insert("zeta".to_string(), json!({"b": 1, "a": 2}));
    last.attributes.insert("alpha".to_string(), json!(1));
    state.resources.push(last);

    store.write(&mut state).unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();

    let positions: Vec<usize> = [
        "\"dev/group\"",
        "\"prod/group\"",
        "\"staging/group\"",
        "\"zz/group\"",
    ]
    .iter()
    .map(|needle| text.find(needle).unwrap())
    .collect();
    assert!(positions.is_sorted(), "resources out of order:\n{text}");
    assert!(text.find("\"alpha\"").unwrap() < text.find("\"zeta\"").unwrap());
    assert!(text.find("\"a\": 2").unwrap() < text.find("\"b\": 1").unwrap());
    assert!(text.ends_with("}\n"));
}

#[cfg(unix)]
#[test]
fn file_mode_is_0600() {
    use std::os::unix::fs::PermissionsExt;

    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    std::fs::write(store.path(), "old").unwrap();
    std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).unwrap();

    store.write(&mut sample_state()).unwrap();

    let mode = std::fs::metadata(store.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn no_temporary_files_left() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut state = sample_state();

    store.write(&mut state).unwrap();
    store.write(&mut state).unwrap();
    let mut bad = sample_state();
    bad.resources[0].remote_id = TOKEN.to_string();
    store.write(&mut bad).unwrap_err();

    let names: Vec<String> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["mlops.state.json"]);
}

#[test]
fn write_creates_parent_folder() {
    let folder = tempfile::tempdir().unwrap();
    let store = StateStore::new(folder.path().join("state/nested/mlops.state.json"));

    store.write(&mut sample_state()).unwrap();

    assert!(store.read().unwrap().is_some());
}

#[test]
fn write_rejects_token_value() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut state = sample_state();
    state.resources[0]
        .attributes
        .insert("comment".to_string(), json!(format!("rotated {TOKEN}")));

    let error = store.write(&mut state).unwrap_err();

    assert!(matches!(
        error,
        StateError::Invalid {
            problem: Problem::TokenShapedValue { .. },
            ..
        }
    ));
    assert!(!error.to_string().contains(TOKEN));
    assert!(!format!("{error:?}").contains(TOKEN));
    assert_eq!(state.serial, 0);
    assert!(!store.path().exists());
}

#[test]
fn failed_write_keeps_old_file() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut state = sample_state();
    store.write(&mut state).unwrap();
    let before = std::fs::read(store.path()).unwrap();

    state.resources[0].workspace_id = "abc".to_string();
    store.write(&mut state).unwrap_err();

    assert_eq!(state.serial, 1);
    assert_eq!(std::fs::read(store.path()).unwrap(), before);
}

#[test]
fn read_truncated_json() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    store.write(&mut sample_state()).unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();

    let (_, error) = read_error(&text[..text.len() / 2]);

    let StateError::Syntax {
        truncated, line, ..
    } = error
    else {
        panic!("expected a syntax error, got {error}");
    };
    assert!(truncated);
    assert!(line > 1);
}

#[test]
fn read_invalid_json_names_position() {
    let text = "{\n  \"version\": 1,\n  \"lineage\": oops\n}\n";

    let (_, error) = read_error(text);

    let StateError::Syntax {
        line,
        column,
        truncated,
        ref message,
        ..
    } = error
    else {
        panic!("expected a syntax error, got {error}");
    };
    assert_eq!(line, 3);
    assert_eq!(column, 14);
    assert!(!truncated);
    assert!(!message.contains("at line"), "position repeated: {message}");
    assert!(error.to_string().contains("line 3, column 14"), "{error}");
}

#[test]
fn read_conflict_markers() {
    let text = "{\n<<<<<<< HEAD\n  \"version\": 1,\n";

    let (_, error) = read_error(text);

    assert!(
        matches!(error, StateError::Syntax { line: 2, .. }),
        "{error}"
    );
    assert!(error.hint().unwrap().contains("conflict markers"));
}

#[test]
fn read_newer_version_asks_upgrade() {
    let text = format!(
        r#"{{"version": 2, "lineage": "{LINEAGE}", "serial": 1, "resources": [], "new_field": 1}}"#
    );

    let (_, error) = read_error(&text);

    assert!(
        matches!(error, StateError::UnsupportedVersion { found: 2, .. }),
        "{error}"
    );
    assert!(error.hint().unwrap().contains("upgrade mlops"));
}

#[test]
fn read_older_version_rejected() {
    let text = format!(r#"{{"version": 0, "lineage": "{LINEAGE}", "serial": 1, "resources": []}}"#);

    let (_, error) = read_error(&text);

    assert!(
        matches!(error, StateError::UnsupportedVersion { found: 0, .. }),
        "{error}"
    );
    assert!(!error.hint().unwrap().contains("upgrade"));
}

#[test]
fn read_missing_version_rejected() {
    let text = format!(r#"{{"lineage": "{LINEAGE}", "serial": 1, "resources": []}}"#);

    let (_, error) = read_error(&text);

    assert!(matches!(error, StateError::Format { .. }), "{error}");
    assert!(
        error.to_string().contains("missing field `version`"),
        "{error}"
    );
}

#[test]
fn read_unknown_top_level_field() {
    let text = format!(
        "{{\n  \"version\": 1,\n  \"lineage\": \"{LINEAGE}\",\n  \"serial\": 1,\n  \"outputs\": {{}},\n  \"resources\": []\n}}"
    );

    let (_, error) = read_error(&text);

    let StateError::Format {
        line, ref message, ..
    } = error
    else {
        panic!("expected a format error, got {error}");
    };
    assert_eq!(line, 5);
    assert!(message.contains("unknown field `outputs`"), "{message}");
}

#[test]
fn read_unknown_resource_field() {
    let mut state = sample_state();
    state.serial = 4;
    let text = raw_text(&state).replacen("\"kind\"", "\"private\": 1,\n      \"kind\"", 1);

    let (_, error) = read_error(&text);

    assert!(matches!(error, StateError::Format { .. }), "{error}");
}

#[test]
fn read_bad_lineage() {
    let state = State {
        lineage: "lineage-1".to_string(),
        ..sample_state()
    };

    let (_, error) = read_error(&raw_text(&state));

    assert!(
        matches!(
            error,
            StateError::Invalid {
                problem: Problem::InvalidLineage { .. },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn read_unsorted_resources() {
    let mut state = sample_state();
    state.resources.reverse();

    let (_, error) = read_error(&raw_text(&state));

    assert!(
        matches!(
            error,
            StateError::Invalid {
                problem: Problem::Unsorted { .. },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn read_duplicate_address() {
    let mut state = sample_state();
    let copy = state.resources[0].clone();
    state.resources.insert(0, copy);

    let (_, error) = read_error(&raw_text(&state));

    let StateError::Invalid {
        problem: Problem::DuplicateAddress { address },
        ..
    } = error
    else {
        panic!("expected a duplicate address, got {error}");
    };
    assert_eq!(address, "staging/group");
}

#[test]
fn read_token_shaped_value() {
    let mut state = sample_state();
    state.resources[1]
        .attributes
        .insert("comment".to_string(), json!(TOKEN));

    let (_, error) = read_error(&raw_text(&state));

    let rendered = format!("{error} {error:?} {}", error.hint().unwrap());
    assert!(!rendered.contains(TOKEN), "token repeated: {rendered}");
    let StateError::Invalid {
        problem: Problem::TokenShapedValue { address, field },
        ..
    } = error
    else {
        panic!("expected a token-shaped value, got {error}");
    };
    assert_eq!(address, "staging/service_principal");
    assert_eq!(field, "comment");
}

#[test]
fn read_secret_attribute_key() {
    let mut state = sample_state();
    state.resources[0]
        .attributes
        .insert("string_value".to_string(), json!("hunter2"));

    let (_, error) = read_error(&raw_text(&state));

    assert!(!error.to_string().contains("hunter2"));
    assert!(
        matches!(
            error,
            StateError::Invalid {
                problem: Problem::SecretAttribute { .. },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn read_non_digit_workspace_id() {
    let mut state = sample_state();
    state.resources[0].workspace_id = "12a".to_string();

    let (_, error) = read_error(&raw_text(&state));

    assert!(
        matches!(
            error,
            StateError::Invalid {
                problem: Problem::InvalidWorkspaceId { .. },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn read_empty_remote_id_without_intent() {
    let mut state = sample_state();
    state.resources[0].remote_id = String::new();

    let (_, error) = read_error(&raw_text(&state));

    assert!(
        matches!(
            error,
            StateError::Invalid {
                problem: Problem::EmptyField {
                    field: "remote_id",
                    ..
                },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn read_empty_address() {
    let mut state = sample_state();
    state.resources[0].address = String::new();

    let (_, error) = read_error(&raw_text(&state));

    assert!(
        matches!(
            error,
            StateError::Invalid {
                problem: Problem::EmptyField {
                    field: "address",
                    index: 0,
                    ..
                },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn read_empty_file_is_truncated() {
    let (_, error) = read_error("");

    assert!(
        matches!(
            error,
            StateError::Syntax {
                truncated: true,
                ..
            }
        ),
        "{error}"
    );
}
