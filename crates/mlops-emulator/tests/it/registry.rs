//! Model registry reads and the registry root permissions.

use serde_json::json;

use crate::common::*;

/// Returns the model names of a search reply.
fn model_names(reply: &Reply) -> Vec<String> {
    reply.body["registered_models"]
        .as_array()
        .map(|models| {
            models
                .iter()
                .map(|model| model["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn registry_search_allowed_with_can_read_only() {
    let running = start().await;
    let admin = running.admin("staging");
    let (sp_id, application_id) = create_service_principal(&admin, "reader").await;
    let reader = admin.with_token(&service_principal_access_token(&admin, &sp_id).await);

    let denied = reader.get("/api/2.0/mlflow/registered-models/search").await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_code(), "PERMISSION_DENIED");
    assert_eq!(
        reader
            .get("/api/2.0/mlflow/registered-models/get?name=churn-model")
            .await
            .status,
        403
    );

    let grant = json!({ "access_control_list": [{ "service_principal_name": application_id, "permission_level": "CAN_READ" }] });
    let granted = admin.patch(REGISTRY_ROOT, grant).await;
    assert_eq!(granted.status, 200);
    assert_eq!(granted.body["object_id"], "/registered-models/root");
    assert_eq!(granted.body["object_type"], "registered-model");

    let all = reader.get("/api/2.0/mlflow/registered-models/search").await;
    assert_eq!(all.status, 200);
    assert_eq!(
        model_names(&all),
        ["churn-model", "demand-forecast", "fraud-detector"]
    );
    assert!(all.body.get("next_page_token").is_none());
    let fraud = &all.body["registered_models"][2];
    assert_eq!(fraud["latest_versions"][0]["current_stage"], "Production");
    assert_eq!(fraud["latest_versions"][0]["version"], "1");

    let filtered = reader
        .get("/api/2.0/mlflow/registered-models/search?filter=name%20LIKE%20%27%25fraud%25%27")
        .await;
    assert_eq!(model_names(&filtered), ["fraud-detector"]);
    let nothing = reader
        .get("/api/2.0/mlflow/registered-models/search?filter=name%20%3D%20%27nope%27")
        .await;
    assert_eq!(nothing.status, 200);
    assert!(nothing.body.get("registered_models").is_none());

    let databricks = reader
        .get("/api/2.0/mlflow/databricks/registered-models/get?name=churn-model")
        .await;
    let model = &databricks.body["registered_model_databricks"];
    assert_eq!(model["permission_level"], "CAN_READ");
    assert_eq!(model["id"].as_str().unwrap().len(), 32);

    let missing = reader
        .get("/api/2.0/mlflow/registered-models/get?name=nope")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.message(),
        "RegisteredModel 'nope' does not exist. It might have been deleted."
    );

    let version = reader
        .get("/api/2.0/mlflow/model-versions/get?name=churn-model&version=1")
        .await;
    assert_eq!(version.body["model_version"]["current_stage"], "Staging");
    let versions = reader
        .get("/api/2.0/mlflow/model-versions/search?filter=name%3D%27churn-model%27")
        .await;
    assert_eq!(versions.body["model_versions"].as_array().unwrap().len(), 1);
    let latest = reader
        .post(
            "/api/2.0/mlflow/registered-models/get-latest-versions",
            json!({ "name": "fraud-detector", "stages": ["production"] }),
        )
        .await;
    assert_eq!(latest.body["model_versions"][0]["name"], "fraud-detector");
}

#[tokio::test]
async fn registry_read_through_users_group() {
    let running = start().await;
    let admin = running.admin("staging");
    let (sp_id, _) = create_service_principal(&admin, "reader").await;
    let reader = admin.with_token(&service_principal_access_token(&admin, &sp_id).await);

    let grant = json!({ "access_control_list": [{ "group_name": "users", "permission_level": "CAN_READ" }] });
    assert_eq!(admin.patch(REGISTRY_ROOT, grant).await.status, 200);
    assert_eq!(
        reader
            .get("/api/2.0/mlflow/registered-models/search")
            .await
            .status,
        200
    );

    let revoke = json!({ "access_control_list": [{ "group_name": "admins", "permission_level": "CAN_MANAGE" }] });
    assert_eq!(admin.put(REGISTRY_ROOT, revoke).await.status, 200);
    assert_eq!(
        reader
            .get("/api/2.0/mlflow/registered-models/search")
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn registry_search_pages() {
    let running = start().await;
    let admin = running.admin("staging");

    let first = admin
        .get("/api/2.0/mlflow/registered-models/search?max_results=2")
        .await;
    assert_eq!(model_names(&first), ["churn-model", "demand-forecast"]);
    let token = first.body["next_page_token"].as_str().unwrap().to_owned();

    let second = admin
        .request(
            reqwest::Method::GET,
            "/api/2.0/mlflow/registered-models/search",
        )
        .query(&[("max_results", "2"), ("page_token", token.as_str())])
        .send()
        .await
        .unwrap();
    let second = read_reply(second).await;
    assert_eq!(model_names(&second), ["fraud-detector"]);
    assert!(second.body.get("next_page_token").is_none());

    assert_eq!(
        admin
            .get("/api/2.0/mlflow/registered-models/search?max_results=1001")
            .await
            .status,
        400
    );
    assert_eq!(
        admin
            .get("/api/2.0/mlflow/registered-models/search?page_token=bogus")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn registry_root_permission_rules() {
    let running = start().await;
    let admin = running.admin("staging");

    let initial = admin.get(REGISTRY_ROOT).await;
    assert_eq!(
        initial.body["access_control_list"],
        json!([{ "group_name": "admins", "all_permissions": [{ "permission_level": "CAN_MANAGE", "inherited": false }] }])
    );

    let without_admins = json!({ "access_control_list": [{ "group_name": "users", "permission_level": "CAN_READ" }] });
    let reply = admin.put(REGISTRY_ROOT, without_admins).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.message(),
        "Cannot change permissions for group 'admins' to None."
    );

    let bad_level = json!({ "access_control_list": [{ "group_name": "users", "permission_level": "CAN_USE" }] });
    assert_eq!(admin.patch(REGISTRY_ROOT, bad_level).await.status, 400);
    let users_manage = json!({ "access_control_list": [{ "group_name": "users", "permission_level": "CAN_MANAGE" }] });
    assert_eq!(admin.patch(REGISTRY_ROOT, users_manage).await.status, 200);

    let levels = admin
        .get(&format!("{REGISTRY_ROOT}/permissionLevels"))
        .await;
    assert_eq!(
        levels.body["permission_levels"].as_array().unwrap().len(),
        5
    );
}

#[tokio::test]
async fn download_uri_is_version_source() {
    let running = start().await;
    let admin = running.admin("staging");
    let version = admin
        .get("/api/2.0/mlflow/model-versions/get?name=churn-model&version=1")
        .await;
    let source = version.body["model_version"]["source"].as_str().unwrap();

    let reply = admin
        .get("/api/2.0/mlflow/model-versions/get-download-uri?name=churn-model&version=1")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["artifact_uri"], source);

    let missing = admin
        .get("/api/2.0/mlflow/model-versions/get-download-uri?name=churn-model&version=9")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "RESOURCE_DOES_NOT_EXIST");
    let (sp_id, _) = create_service_principal(&admin, "reader").await;
    let reader = admin.with_token(&service_principal_access_token(&admin, &sp_id).await);
    let denied = reader
        .get("/api/2.0/mlflow/model-versions/get-download-uri?name=churn-model&version=1")
        .await;
    assert_eq!(denied.status, 403);
}
