//! Property tests of the configuration and state loaders: arbitrary bytes, random edits of a
//! valid file and random but well-formed documents never panic, every error names the file, and
//! whatever loads keeps the rules of its format. `PROPTEST_CASES` sets the number of cases per
//! property (256 by default); `.ci/run` runs more.

use std::path::Path;

use mlops_state::StateStore;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::token_shaped;

/// A valid configuration, the starting point of the edits.
const VALID_CONFIG: &str = "version: 1
workspaces:
  dev:
    host: https://dbc-aaaa.cloud.databricks.com
    token_env: DEV_TOKEN
  staging:
    host: https://dbc-bbbb.cloud.databricks.com
    workspace_id: \"123456789\"
    token_env: STAGING_TOKEN
  prod:
    host: https://dbc-cccc.cloud.databricks.com
    workspace_id: \"987654321\"
    client_id_env: PROD_CLIENT_ID
    client_secret_env: PROD_CLIENT_SECRET
additional_token_usage_groups: [users]
token_usage: { mode: additive }
tokens: { lifetime_days: 100, rotate_before_days: 30 }
links:
  - { reader: dev, registry: staging }
  - { reader: dev, registry: prod }
  - { reader: staging, registry: prod }
state: state/mlops.state.json
";

/// A valid state, the starting point of the edits.
fn valid_state() -> String {
    let state = json!({
        "version": 1,
        "lineage": "5b0f7a52-3c1e-4d2a-9f6b-2a9c1e7d4b10",
        "serial": 12,
        "resources": [
            { "address": "prod/token", "kind": "token", "workspace": "prod", "workspace_id": "987654321", "remote_id": "7c1f",
              "attributes": { "comment": "mlops:prod/token", "expiry_time": 1_902_096_000_000_i64, "superseded_token_ids": ["6b0e"] } },
            { "address": "staging/service_principal", "kind": "service_principal", "workspace": "staging", "workspace_id": "123456789", "remote_id": "",
              "intent": { "operation": "create", "marker": "READ-only Model Registry Service Principal", "started_at": "2030-01-01T00:00:00Z" } }
        ]
    });
    serde_json::to_string_pretty(&state).unwrap()
}

/// One edit of a byte string: replace, insert or delete at a position taken modulo the length.
#[derive(Clone, Debug)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Replace(at, byte)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        any::<usize>().prop_map(Edit::Delete),
    ];
    proptest::collection::vec(edit, 1..6)
}

fn apply_edits(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        let length = bytes.len().max(1);
        match *edit {
            Edit::Replace(at, byte) if !bytes.is_empty() => bytes[at % length] = byte,
            Edit::Insert(at, byte) => bytes.insert(at % (bytes.len() + 1), byte),
            Edit::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at % length);
            }
            _ => {}
        }
    }
    bytes
}

/// Loads `bytes` as a configuration and checks that an error names the file.
fn check_config(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlops.yaml");
    std::fs::write(&path, bytes).unwrap();

    if let Err(error) = mlops_config::load(&path) {
        let message = error.to_string();
        prop_assert!(message.contains("mlops.yaml"), "the error does not name the file: {message}");
        prop_assert!(token_shaped(&message).is_empty(), "the error repeats a token-shaped value: {message}");
    }
    Ok(())
}

/// Loads `bytes` as a state file; an error must name the file, and a state that loads must write
/// back and load again unchanged.
fn check_state(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlops.state.json");
    std::fs::write(&path, bytes).unwrap();
    let store = StateStore::new(&path);

    match store.read() {
        Err(error) => {
            let message = error.to_string();
            prop_assert!(message.contains("mlops.state.json"), "the error does not name the file: {message}");
            prop_assert!(token_shaped(&message).is_empty(), "the error repeats a token-shaped value: {message}");
            prop_assert!(error.hint().is_some(), "no fix for: {message}");
        }
        Ok(None) => prop_assert!(false, "an existing file read as missing"),
        Ok(Some(state)) => {
            prop_assert!(state.validate().is_ok());
            let mut written = state.clone();
            match store.write(&mut written) {
                Ok(()) => {
                    let again = store.read().unwrap().unwrap();
                    prop_assert_eq!(again.resources, state.resources);
                    prop_assert_eq!(again.serial, state.serial + 1);
                    prop_assert!(token_shaped(&std::fs::read_to_string(&path).unwrap()).is_empty());
                }
                // Only a serial at its maximum cannot be written back; the file stays as it was.
                Err(error) => {
                    prop_assert_eq!(state.serial, u64::MAX, "{}", error);
                    prop_assert!(error.hint().is_some());
                    prop_assert_eq!(std::fs::read(&path).unwrap(), bytes.to_vec());
                }
            }
        }
    }
    Ok(())
}

/// Random resources built from values that sit near the rules of the format.
fn resource() -> impl Strategy<Value = Value> {
    let address = prop::sample::select(vec!["dev/group", "staging/token", "prod/secret/remote-mr-prod/prod-token", "", "staging/group"]);
    let kind = prop::sample::select(vec!["group", "token", "secret", "", "cluster"]);
    let workspace_id = prop::sample::select(vec!["123456789", "", "12a", "987654321"]);
    let remote_id = prop::sample::select(vec!["700000000000010", "", "dapi0123", "root"]);
    let intent = prop::option::of(prop::sample::select(vec!["2030-01-01T00:00:00Z", "yesterday", ""]));
    let attribute = prop::sample::select(vec!["comment", "value", "token_value", "value_sha256", "scope"]);
    (address, kind, workspace_id, remote_id, intent, attribute, any::<bool>()).prop_map(
        |(address, kind, workspace_id, remote_id, intent, attribute, long_digits)| {
            let text = if long_digits { format!("dapi{}", "ab12".repeat(8)) } else { "mlops:prod/token".to_owned() };
            let mut resource = json!({
                "address": address, "kind": kind, "workspace": "staging", "workspace_id": workspace_id,
                "remote_id": remote_id, "attributes": { attribute: text },
            });
            if let Some(started_at) = intent {
                resource["intent"] = json!({ "operation": "create", "marker": "m", "started_at": started_at });
            }
            resource
        },
    )
}

fn state_document() -> impl Strategy<Value = Vec<u8>> {
    let lineage = prop::sample::select(vec!["5b0f7a52-3c1e-4d2a-9f6b-2a9c1e7d4b10", "not-a-uuid", ""]);
    let version = prop::sample::select(vec![json!(1), json!(2), json!("1"), Value::Null]);
    let serial = prop::sample::select(vec![json!(0), json!(u64::MAX), json!(-1), json!(3.5)]);
    (lineage, version, serial, proptest::collection::vec(resource(), 0..4)).prop_map(|(lineage, version, serial, resources)| {
        serde_json::to_vec(&json!({ "version": version, "lineage": lineage, "serial": serial, "resources": resources })).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn config_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_config(&bytes)?;
    }

    #[test]
    fn config_edited(edits in edits()) {
        check_config(&apply_edits(VALID_CONFIG, &edits))?;
    }

    #[test]
    fn config_yaml_shaped(text in "(version|workspaces|links|state|host|token_env|[a-z]{1,6}|[:{}\\[\\],\"'&*!|>#-]|[ \n]{1,3}|[0-9]{1,4}){0,60}") {
        check_config(text.as_bytes())?;
    }

    #[test]
    fn state_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_state(&bytes)?;
    }

    #[test]
    fn state_edited(edits in edits()) {
        check_state(&apply_edits(&valid_state(), &edits))?;
    }

    #[test]
    fn state_documents(document in state_document()) {
        check_state(&document)?;
    }
}

#[test]
fn valid_inputs_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mlops.yaml");
    std::fs::write(&config, VALID_CONFIG).unwrap();
    let state = dir.path().join("mlops.state.json");
    std::fs::write(&state, valid_state()).unwrap();

    assert!(mlops_config::load(&config).is_ok());
    assert!(StateStore::new(Path::new(&state)).read().unwrap().is_some());
}
