//! SCIM Users and the access tokens that stand in for a user's interactive login.

use serde_json::json;

use crate::common::*;

/// Creates a user and returns its id.
async fn create_user(admin: &Api, user_name: &str) -> String {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
    });
    let reply = admin.post(&format!("{SCIM}/Users"), body).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    reply.body["id"].as_str().unwrap().to_owned()
}

/// Issues an access token for a user through the control endpoint.
async fn user_access_token(admin: &Api, user_id: &str) -> String {
    let reply = admin
        .post(
            &format!("/_emulator/users/{user_id}/access-token"),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["expires_in"], 3600);
    reply.body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn user_create_get_list_delete() {
    let running = start().await;
    let admin = running.admin("dev");
    let id = create_user(&admin, "ana@example.com").await;

    let reply = admin.get(&format!("{SCIM}/Users/{id}")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["userName"], "ana@example.com");
    assert_eq!(reply.body["displayName"], "ana@example.com");
    assert_eq!(reply.body["active"], true);
    assert_eq!(reply.body["emails"][0]["value"], "ana@example.com");

    let filter = "userName%20eq%20%22ana@example.com%22";
    let listed = admin.get(&format!("{SCIM}/Users?filter={filter}")).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["totalResults"], 1);
    assert_eq!(listed.body["Resources"][0]["id"], id.as_str());
    let everyone = admin.get(&format!("{SCIM}/Users")).await;
    assert_eq!(everyone.body["totalResults"], 2);

    let deleted = admin.delete(&format!("{SCIM}/Users/{id}")).await;
    assert_eq!(deleted.status, 204);
    let missing = admin.get(&format!("{SCIM}/Users/{id}")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["status"], "404");
}

#[tokio::test]
async fn duplicate_user_name_conflicts() {
    let running = start().await;
    let admin = running.admin("dev");
    create_user(&admin, "ana@example.com").await;

    let reply = admin
        .post(
            &format!("{SCIM}/Users"),
            json!({ "userName": "ANA@example.com" }),
        )
        .await;
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.body["detail"],
        "User with username ANA@example.com already exists."
    );
}

#[tokio::test]
async fn user_without_name_is_rejected() {
    let running = start().await;
    let admin = running.admin("dev");

    let reply = admin
        .post(&format!("{SCIM}/Users"), json!({ "displayName": "Ana" }))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["scimType"], "invalidValue");
}

#[tokio::test]
async fn seeded_admin_cannot_be_deleted() {
    let running = start().await;
    let admin = running.admin("dev");
    let me = admin.get(&format!("{SCIM}/Me")).await;
    let admin_id = me.body["id"].as_str().unwrap();

    let reply = admin.delete(&format!("{SCIM}/Users/{admin_id}")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(admin.get(&format!("{SCIM}/Me")).await.status, 200);
}

#[tokio::test]
async fn user_access_token_acts_as_non_admin() {
    let running = start().await;
    let admin = running.admin("dev");
    let id = create_user(&admin, "ana@example.com").await;
    let user = admin.with_token(&user_access_token(&admin, &id).await);

    let me = user.get(&format!("{SCIM}/Me")).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["userName"], "ana@example.com");
    assert_eq!(user.get(&format!("{SCIM}/Users/{id}")).await.status, 200);

    let listed = user.get(&format!("{SCIM}/Users")).await;
    assert_eq!(listed.status, 403);
    let control = user
        .post(&format!("/_emulator/users/{id}/access-token"), json!({}))
        .await;
    assert_eq!(control.status, 403);
    let tokens = user.get("/api/2.0/token-management/tokens").await;
    assert_eq!(tokens.status, 403);
}

#[tokio::test]
async fn user_reads_scope_through_users_group() {
    let running = start().await;
    let admin = running.admin("dev");
    let id = create_user(&admin, "ana@example.com").await;
    let user = admin.with_token(&user_access_token(&admin, &id).await);
    let scope = json!({ "scope": "remote-mr-prod" });
    assert_eq!(
        admin
            .post("/api/2.0/secrets/scopes/create", scope)
            .await
            .status,
        200
    );
    let secret =
        json!({ "scope": "remote-mr-prod", "key": "prod-host", "string_value": "https://x" });
    assert_eq!(admin.post("/api/2.0/secrets/put", secret).await.status, 200);
    let path = "/api/2.0/secrets/get?scope=remote-mr-prod&key=prod-host";

    let denied = user.get(path).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_code(), "PERMISSION_DENIED");

    let acl = json!({ "scope": "remote-mr-prod", "principal": "users", "permission": "READ" });
    assert_eq!(
        admin.post("/api/2.0/secrets/acls/put", acl).await.status,
        200
    );
    let allowed = user.get(path).await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(allowed.body["value"], "aHR0cHM6Ly94");
}

#[tokio::test]
async fn deleted_user_token_stops_working() {
    let running = start().await;
    let admin = running.admin("dev");
    let id = create_user(&admin, "ana@example.com").await;
    let user = admin.with_token(&user_access_token(&admin, &id).await);
    assert_eq!(user.get(&format!("{SCIM}/Me")).await.status, 200);

    admin.delete(&format!("{SCIM}/Users/{id}")).await;
    assert_eq!(user.get(&format!("{SCIM}/Me")).await.status, 403);
    let reply = admin
        .post(&format!("/_emulator/users/{id}/access-token"), json!({}))
        .await;
    assert_eq!(reply.status, 404);
}
