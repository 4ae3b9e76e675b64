//! Saving and loading the world.

use mlops_emulator::{Emulator, EmulatorError, WorkspaceSpec};
use serde_json::json;

use crate::common::*;

fn specs(pairs: &[(&str, &str)]) -> Vec<WorkspaceSpec> {
    pairs
        .iter()
        .map(|(name, id)| WorkspaceSpec {
            name: (*name).to_owned(),
            workspace_id: (*id).to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn save_and_load_keep_world() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("state").join("emulator.json");
    let workspaces = specs(&[("dev", "1111"), ("staging", "123456789")]);

    let running = bind_all(
        Emulator::load_or_new(&path, &workspaces).unwrap(),
        &workspaces,
    )
    .await;
    let admin = running.admin("staging");
    let (sp_id, application_id, group_id, obo) = service_principal_with_token(&admin).await;
    let grant = json!({ "access_control_list": [{ "service_principal_name": application_id, "permission_level": "CAN_READ" }] });
    assert_eq!(admin.patch(REGISTRY_ROOT, grant).await.status, 200);
    let dev = running.admin("dev");
    dev.post(
        "/api/2.0/secrets/scopes/create",
        json!({ "scope": "remote-mr-staging" }),
    )
    .await;
    dev.post(
        "/api/2.0/secrets/put",
        json!({ "scope": "remote-mr-staging", "key": "staging-token", "string_value": obo }),
    )
    .await;
    let (client_id, client_secret) = running
        .emulator
        .admin_client_credentials("staging")
        .unwrap();

    let before_tokens = admin.get("/api/2.0/token-management/tokens").await.body;
    let before_permissions = admin.get(TOKEN_PERMISSIONS).await.body;
    let before_group = admin.get(&format!("{SCIM}/Groups/{group_id}")).await.body;
    running.emulator.save(&path).unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(&obo[4..]),
        "the data file must not contain token values in plain text"
    );

    let loaded = bind_all(
        Emulator::load_or_new(&path, &workspaces).unwrap(),
        &workspaces,
    )
    .await;
    let admin = loaded.admin("staging");
    assert_eq!(
        admin.get("/api/2.0/token-management/tokens").await.body,
        before_tokens
    );
    assert_eq!(admin.get(TOKEN_PERMISSIONS).await.body, before_permissions);
    assert_eq!(
        admin.get(&format!("{SCIM}/Groups/{group_id}")).await.body,
        before_group
    );

    let sp = admin.with_token(&obo);
    let me = sp.get(&format!("{SCIM}/Me")).await;
    assert_eq!(me.body["id"], sp_id.as_str());
    assert_eq!(
        sp.get("/api/2.0/mlflow/registered-models/search")
            .await
            .status,
        200
    );

    let stored = loaded
        .admin("dev")
        .get("/api/2.0/secrets/get?scope=remote-mr-staging&key=staging-token")
        .await;
    let decoded = base64_decode(stored.body["value"].as_str().unwrap());
    assert_eq!(decoded, obo.as_bytes());
    assert_eq!(
        loaded.emulator.admin_client_credentials("staging").unwrap(),
        (client_id, client_secret)
    );
}

/// Decodes standard base64.
fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn load_adds_workspaces_and_rejects_id_mismatch() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("emulator.json");
    let first = Emulator::load_or_new(&path, &specs(&[("dev", "1111")])).unwrap();
    let dev_credentials = first.admin_client_credentials("dev").unwrap();
    first.save(&path).unwrap();

    let grown =
        Emulator::load_or_new(&path, &specs(&[("dev", "1111"), ("prod", "987654321")])).unwrap();
    assert_eq!(grown.workspaces().len(), 2);
    assert_eq!(
        grown.admin_client_credentials("dev").unwrap(),
        dev_credentials
    );

    let mismatch = Emulator::load_or_new(&path, &specs(&[("dev", "2222")])).unwrap_err();
    assert!(
        matches!(mismatch, EmulatorError::WorkspaceIdMismatch { .. }),
        "{mismatch}"
    );
    assert!(mismatch.to_string().contains("workspace `dev` has id 1111"));
}

#[test]
fn invalid_specs_and_files_rejected() {
    let not_numeric = Emulator::try_new(&specs(&[("dev", "abc")])).unwrap_err();
    assert!(matches!(
        not_numeric,
        EmulatorError::InvalidWorkspaceId { .. }
    ));
    let same_id = Emulator::try_new(&specs(&[("dev", "1"), ("prod", "1")])).unwrap_err();
    assert!(matches!(same_id, EmulatorError::DuplicateWorkspace { .. }));

    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("broken.json");
    std::fs::write(&path, "{ not json").unwrap();
    let broken = Emulator::load_or_new(&path, &specs(&[("dev", "1")])).unwrap_err();
    assert!(matches!(broken, EmulatorError::Parse { .. }));

    let unknown = Emulator::new(&specs(&[("dev", "1")]))
        .router("prod")
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "unknown workspace `prod`: the world has workspaces dev"
    );
}

#[test]
fn debug_output_hides_secrets() {
    let emulator = Emulator::new(&specs(&[("dev", "1"), ("prod", "2")]));
    let (_, secret) = emulator.admin_client_credentials("dev").unwrap();
    let debug = format!("{emulator:?}");
    assert!(debug.contains("dev"));
    assert!(debug.contains("prod"));
    assert!(!debug.contains(&secret));
}

#[tokio::test]
async fn ids_are_unique_across_the_world() {
    let running = start().await;
    let dev = running.admin("dev").get(&format!("{SCIM}/Groups")).await;
    let staging = running
        .admin("staging")
        .get(&format!("{SCIM}/Groups"))
        .await;
    let ids = |reply: &Reply| -> Vec<String> {
        reply.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|group| group["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let dev_ids = ids(&dev);
    assert!(ids(&staging).iter().all(|id| !dev_ids.contains(id)));
    assert!(dev_ids.iter().all(|id| id.parse::<u64>().is_ok()));
}
