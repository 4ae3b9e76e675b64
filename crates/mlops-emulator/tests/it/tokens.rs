//! Token permissions, on-behalf-of and personal tokens, revocation, expiry and isolation.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn token_permissions_absent_until_first_token() {
    let running = start().await;
    let admin = running.admin("dev");

    let before = admin.get(TOKEN_PERMISSIONS).await;
    assert_eq!(before.status, 404);
    assert_eq!(
        before.body,
        json!({ "error_code": "RESOURCE_DOES_NOT_EXIST", "message": "tokens tokens does not exist" })
    );
    let patch = admin
        .patch(TOKEN_PERMISSIONS, json!({ "access_control_list": [] }))
        .await;
    assert_eq!(patch.status, 404);
    let put = admin
        .put(TOKEN_PERMISSIONS, json!({ "access_control_list": [] }))
        .await;
    assert_eq!(put.status, 404);

    let token = create_personal_token(&admin).await;
    assert!(token.starts_with("dapi"));
    assert_eq!(token.len(), 36);
    assert!(token[4..].chars().all(|c| c.is_ascii_hexdigit()));

    let after = admin.get(TOKEN_PERMISSIONS).await;
    assert_eq!(after.status, 200);
    assert_eq!(
        after.body,
        json!({
            "object_id": "/authorization/tokens",
            "object_type": "tokens",
            "access_control_list": [
                { "group_name": "admins", "all_permissions": [{ "permission_level": "CAN_MANAGE", "inherited": false }] }
            ]
        })
    );
}

#[tokio::test]
async fn admin_access_token_creates_no_token() {
    let running = start().await;
    let admin = running.admin("dev");

    assert_eq!(admin.get(TOKEN_PERMISSIONS).await.status, 404);
    let list = admin.get("/api/2.0/token-management/tokens").await;
    assert_eq!(list.status, 200);
    assert!(list.body.get("token_infos").is_none());

    let token = running.emulator.create_admin_token("dev").unwrap();
    assert!(token.starts_with("dapi"));
    assert_eq!(admin.get(TOKEN_PERMISSIONS).await.status, 200);
    let me = admin.with_token(&token).get(&format!("{SCIM}/Me")).await;
    assert_eq!(me.body["userName"], "admin@example.com");
}

#[tokio::test]
async fn put_without_admins_rejected() {
    let running = start().await;
    let admin = running.admin("dev");
    create_personal_token(&admin).await;

    let without_admins = json!({ "access_control_list": [{ "group_name": "users", "permission_level": "CAN_USE" }] });
    let reply = admin.put(TOKEN_PERMISSIONS, without_admins).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "INVALID_PARAMETER_VALUE");
    assert_eq!(
        reply.message(),
        "Cannot change permissions for group 'admins' to None."
    );

    let with_admins = json!({ "access_control_list": [
        { "group_name": "admins", "permission_level": "CAN_MANAGE" },
        { "group_name": "users", "permission_level": "CAN_USE" },
    ] });
    let reply = admin.put(TOKEN_PERMISSIONS, with_admins).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body["access_control_list"].as_array().unwrap().len(),
        2
    );
    assert_eq!(reply.body["access_control_list"][1]["group_name"], "users");
}

#[tokio::test]
async fn can_manage_only_for_admins() {
    let running = start().await;
    let admin = running.admin("dev");
    create_personal_token(&admin).await;
    let (_, application_id) = create_service_principal(&admin, "reader").await;

    let cases = [
        (
            json!({ "group_name": "users", "permission_level": "CAN_MANAGE" }),
            None,
        ),
        (
            json!({ "service_principal_name": application_id, "permission_level": "CAN_MANAGE" }),
            None,
        ),
        (
            json!({ "group_name": "admins", "permission_level": "CAN_USE" }),
            Some("Cannot change permissions for group 'admins' to CAN_USE."),
        ),
        (
            json!({ "group_name": "nope", "permission_level": "CAN_USE" }),
            Some("Principal: GroupName(nope) does not exist"),
        ),
        (
            json!({ "service_principal_name": "reader", "permission_level": "CAN_USE" }),
            Some("Principal: ServicePrincipalName(reader) does not exist"),
        ),
        (
            json!({ "user_name": "someone@example.com", "permission_level": "CAN_USE" }),
            Some("Principal: UserName(someone@example.com) does not exist"),
        ),
        (
            json!({ "group_name": "users", "permission_level": "CAN_READ" }),
            None,
        ),
    ];
    for (entry, message) in cases {
        let reply = admin
            .patch(
                TOKEN_PERMISSIONS,
                json!({ "access_control_list": [entry.clone()] }),
            )
            .await;
        assert_eq!(reply.status, 400, "{entry}");
        assert_eq!(reply.error_code(), "INVALID_PARAMETER_VALUE", "{entry}");
        if let Some(message) = message {
            assert_eq!(reply.message(), message);
        }
    }

    let unchanged = admin.get(TOKEN_PERMISSIONS).await;
    assert_eq!(
        unchanged.body["access_control_list"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn patch_upserts_and_renders_service_principals() {
    let running = start().await;
    let admin = running.admin("dev");
    create_personal_token(&admin).await;
    let (_, application_id) = create_service_principal(&admin, "reader").await;

    let grant = json!({ "access_control_list": [{ "service_principal_name": application_id, "permission_level": "CAN_USE" }] });
    let reply = admin.patch(TOKEN_PERMISSIONS, grant.clone()).await;
    assert_eq!(reply.status, 200);
    let again = admin.patch(TOKEN_PERMISSIONS, grant).await;
    let entries = again.body["access_control_list"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[1]["service_principal_name"],
        application_id.as_str()
    );
    assert_eq!(entries[1]["display_name"], "reader");
    assert_eq!(
        entries[1]["all_permissions"],
        json!([{ "permission_level": "CAN_USE", "inherited": false }])
    );

    let levels = admin
        .get(&format!("{TOKEN_PERMISSIONS}/permissionLevels"))
        .await;
    assert_eq!(
        levels.body["permission_levels"][0]["permission_level"],
        "CAN_USE"
    );
}

#[tokio::test]
async fn obo_needs_can_use() {
    let running = start().await;
    running
        .emulator
        .set_now(Some("2026-03-01T00:00:00Z".parse().unwrap()));
    let admin = running.admin("dev");
    create_personal_token(&admin).await;
    let (sp_id, application_id) = create_service_principal(&admin, "reader").await;

    let refused = create_obo_token(&admin, &application_id, Some(3600)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_code(), "PERMISSION_DENIED");

    let group_id = create_group(&admin, "mlops-service-principals").await;
    add_member(&admin, &group_id, &sp_id).await;
    grant_token_use(&admin, "mlops-service-principals").await;

    let created = create_obo_token(&admin, &application_id, Some(8_640_000)).await;
    assert_eq!(created.status, 200, "{created:?}");
    let info = &created.body["token_info"];
    let now_ms = 1_772_323_200_000_i64;
    assert_eq!(info["creation_time"], now_ms);
    assert_eq!(info["expiry_time"], now_ms + 8_640_000_000);
    assert_eq!(info["owner_id"], sp_id.parse::<i64>().unwrap());
    assert_eq!(info["created_by_username"], "admin@example.com");
    assert_eq!(info["workspace_id"], 1111);
    assert_eq!(info["comment"], "obo");
    assert_eq!(info["token_id"].as_str().unwrap().len(), 64);

    let token = created.body["token_value"].as_str().unwrap();
    let me = admin.with_token(token).get(&format!("{SCIM}/Me")).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["userName"], application_id.as_str());

    let no_lifetime = create_obo_token(&admin, &application_id, None).await;
    assert_eq!(no_lifetime.body["token_info"]["expiry_time"], -1);
}

#[tokio::test]
async fn obo_allowed_through_users_or_admins() {
    let running = start().await;
    let admin = running.admin("dev");
    create_personal_token(&admin).await;
    let (_, through_users) = create_service_principal(&admin, "through-users").await;
    let (admin_sp_id, through_admins) = create_service_principal(&admin, "through-admins").await;

    let admins = admin
        .get(&format!(
            "{SCIM}/Groups?filter=displayName%20eq%20%22admins%22"
        ))
        .await;
    let admins_id = admins.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    add_member(&admin, &admins_id, &admin_sp_id).await;
    assert_eq!(
        create_obo_token(&admin, &through_admins, None).await.status,
        200
    );

    assert_eq!(
        create_obo_token(&admin, &through_users, None).await.status,
        403
    );
    grant_token_use(&admin, "users").await;
    assert_eq!(
        create_obo_token(&admin, &through_users, None).await.status,
        200
    );
}

/// Returns whether the token-management list contains a token owned by `owner_id`.
async fn lists_token_of(admin: &Api, owner_id: &str) -> bool {
    let list = admin.get("/api/2.0/token-management/tokens").await;
    let owner: i64 = owner_id.parse().unwrap();
    list.body["token_infos"]
        .as_array()
        .is_some_and(|infos| infos.iter().any(|info| info["owner_id"] == owner))
}

#[tokio::test]
async fn revocation_when_group_loses_can_use() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, _, _, token) = service_principal_with_token(&admin).await;
    assert_eq!(
        admin
            .with_token(&token)
            .get(&format!("{SCIM}/Me"))
            .await
            .status,
        200
    );
    assert!(lists_token_of(&admin, &sp_id).await);

    let only_admins = json!({ "access_control_list": [{ "group_name": "admins", "permission_level": "CAN_MANAGE" }] });
    assert_eq!(admin.put(TOKEN_PERMISSIONS, only_admins).await.status, 200);

    let rejected = admin.with_token(&token).get(&format!("{SCIM}/Me")).await;
    assert_eq!(rejected.status, 403);
    assert_eq!(
        rejected.body,
        json!({ "error_code": 403, "message": "Invalid access token." })
    );
    assert!(!lists_token_of(&admin, &sp_id).await);
}

#[tokio::test]
async fn revocation_when_member_removed() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, _, group_id, token) = service_principal_with_token(&admin).await;

    let remove = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "remove", "path": format!("members[value eq \"{sp_id}\"]") }],
    });
    assert_eq!(
        admin
            .patch(&format!("{SCIM}/Groups/{group_id}"), remove)
            .await
            .status,
        204
    );

    assert_eq!(
        admin
            .with_token(&token)
            .get(&format!("{SCIM}/Me"))
            .await
            .status,
        403
    );
    assert!(!lists_token_of(&admin, &sp_id).await);
}

#[tokio::test]
async fn revocation_when_group_deleted() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, _, group_id, token) = service_principal_with_token(&admin).await;

    assert_eq!(
        admin
            .delete(&format!("{SCIM}/Groups/{group_id}"))
            .await
            .status,
        204
    );

    assert_eq!(
        admin
            .with_token(&token)
            .get(&format!("{SCIM}/Me"))
            .await
            .status,
        403
    );
    assert!(!lists_token_of(&admin, &sp_id).await);
    let permissions = admin.get(TOKEN_PERMISSIONS).await;
    assert_eq!(
        permissions.body["access_control_list"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn revocation_when_deactivated_or_deleted() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, application_id, _, token) = service_principal_with_token(&admin).await;

    let deactivate =
        json!({ "Operations": [{ "op": "replace", "path": "active", "value": "false" }] });
    assert_eq!(
        admin
            .patch(&format!("{SCIM}/ServicePrincipals/{sp_id}"), deactivate)
            .await
            .status,
        204
    );
    assert_eq!(
        admin
            .with_token(&token)
            .get(&format!("{SCIM}/Me"))
            .await
            .status,
        403
    );
    assert!(!lists_token_of(&admin, &sp_id).await);

    let activate = json!({ "Operations": [{ "op": "replace", "path": "active", "value": [{ "value": "true" }] }] });
    assert_eq!(
        admin
            .patch(&format!("{SCIM}/ServicePrincipals/{sp_id}"), activate)
            .await
            .status,
        204
    );
    let second = create_obo_token(&admin, &application_id, None).await;
    assert_eq!(second.status, 200);
    let second_token = second.body["token_value"].as_str().unwrap().to_owned();

    assert_eq!(
        admin
            .delete(&format!("{SCIM}/ServicePrincipals/{sp_id}"))
            .await
            .status,
        204
    );
    assert_eq!(
        admin
            .with_token(&second_token)
            .get(&format!("{SCIM}/Me"))
            .await
            .status,
        403
    );
    assert!(!lists_token_of(&admin, &sp_id).await);
}

#[tokio::test]
async fn expired_token_rejected_after_clock_moves() {
    let running = start().await;
    let admin = running.admin("dev");
    let set = admin
        .post("/_emulator/clock", json!({ "now": "2026-05-01T12:00:00Z" }))
        .await;
    assert_eq!(set.status, 200);
    assert_eq!(set.body["frozen"], true);
    let admin = running.admin("dev");

    let (_, application_id, _, _) = service_principal_with_token(&admin).await;
    let created = create_obo_token(&admin, &application_id, Some(60)).await;
    let token = created.body["token_value"].as_str().unwrap().to_owned();
    let token_id = created.body["token_info"]["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        admin
            .with_token(&token)
            .get(&format!("{SCIM}/Me"))
            .await
            .status,
        200
    );

    let moved = admin
        .post("/_emulator/clock", json!({ "advance_seconds": 61 }))
        .await;
    assert_eq!(moved.body["now"], "2026-05-01T12:01:01Z");

    let rejected = admin.with_token(&token).get(&format!("{SCIM}/Me")).await;
    assert_eq!(rejected.status, 403);
    assert_eq!(
        rejected.body,
        json!({ "error_code": 403, "message": "Invalid access token." })
    );
    let still_listed = admin
        .get(&format!("/api/2.0/token-management/tokens/{token_id}"))
        .await;
    assert_eq!(still_listed.status, 200);
}

#[tokio::test]
async fn clock_null_follows_system_time() {
    let running = start().await;
    let admin = running.admin("dev");
    let frozen = admin.post("/_emulator/clock", json!({ "now": "2026-05-01T12:00:00Z" })).await;
    assert_eq!(frozen.body["frozen"], true);

    let released = admin.post("/_emulator/clock", json!({ "now": null })).await;
    assert_eq!(released.status, 200);
    assert_eq!(released.body["frozen"], false);
}

#[tokio::test]
async fn mlops_now_freezes_clock() {
    if run_in_child(
        "tokens::mlops_now_freezes_clock",
        &[("MLOPS_NOW", "2026-01-15T08:30:00Z")],
    ) {
        return;
    }

    let running = start().await;
    let expected: jiff::Timestamp = "2026-01-15T08:30:00Z".parse().unwrap();
    assert_eq!(running.emulator.now(), expected);
    let admin = running.admin("dev");
    let clock = admin.get("/_emulator/clock").await;
    assert_eq!(clock.body["frozen"], true);
    assert_eq!(clock.body["now_ms"], expected.as_millisecond());

    let created = admin
        .post("/api/2.0/token/create", json!({ "lifetime_seconds": 10 }))
        .await;
    assert_eq!(
        created.body["token_info"]["creation_time"],
        expected.as_millisecond()
    );
    assert_eq!(
        created.body["token_info"]["expiry_time"],
        expected.as_millisecond() + 10_000
    );
}

#[tokio::test]
async fn tokens_isolated_between_workspaces() {
    let running = start().await;
    let dev = running.admin("dev");
    let staging = running.admin("staging");
    let dev_pat = create_personal_token(&dev).await;

    assert_eq!(
        dev.with_token(&dev_pat)
            .get(&format!("{SCIM}/Me"))
            .await
            .status,
        200
    );
    let foreign_pat = staging
        .with_token(&dev_pat)
        .get(&format!("{SCIM}/Me"))
        .await;
    assert_eq!(foreign_pat.status, 403);
    assert_eq!(foreign_pat.message(), "Invalid access token.");
    let foreign_oauth = staging
        .with_token(dev.token.as_deref().unwrap())
        .get(&format!("{SCIM}/Me"))
        .await;
    assert_eq!(foreign_oauth.status, 403);

    assert_eq!(staging.get(TOKEN_PERMISSIONS).await.status, 404);
}

#[tokio::test]
async fn missing_or_malformed_authorization_rejected() {
    let running = start().await;
    let anonymous = running.anonymous("dev");

    let missing = anonymous.get(&format!("{SCIM}/Me")).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["error_code"], 401);

    let unknown = anonymous
        .with_token("dapi00000000000000000000000000000000")
        .get(&format!("{SCIM}/Me"))
        .await;
    assert_eq!(unknown.status, 403);
    assert_eq!(
        unknown.headers["x-databricks-reason-phrase"],
        "Invalid access token."
    );
}

#[tokio::test]
async fn personal_tokens_list_and_delete() {
    let running = start().await;
    let admin = running.admin("dev");
    let first = create_personal_token(&admin).await;
    create_personal_token(&admin).await;

    let list = admin.get("/api/2.0/token/list").await;
    let infos = list.body["token_infos"].as_array().unwrap().clone();
    assert_eq!(infos.len(), 2);
    assert!(infos[0].get("owner_id").is_none());

    let first_id = admin
        .with_token(&first)
        .get("/api/2.0/token/list")
        .await
        .body["token_infos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|info| info["token_id"].as_str().unwrap().to_owned())
        .find(|id| *id == mlops_sha256(&first))
        .unwrap();
    let deleted = admin
        .post("/api/2.0/token/delete", json!({ "token_id": first_id }))
        .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        admin
            .with_token(&first)
            .get(&format!("{SCIM}/Me"))
            .await
            .status,
        403
    );
    assert_eq!(
        admin.get("/api/2.0/token/list").await.body["token_infos"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let again = admin
        .post("/api/2.0/token/delete", json!({ "token_id": first_id }))
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(again.error_code(), "RESOURCE_DOES_NOT_EXIST");
}

/// Returns the hex SHA-256 of a token value, which the emulator uses as its token id.
fn mlops_sha256(value: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

#[tokio::test]
async fn personal_token_needs_token_permission() {
    let running = start().await;
    let admin = running.admin("dev");
    create_personal_token(&admin).await;
    let (sp_id, _) = create_service_principal(&admin, "plain").await;
    let sp = admin.with_token(&service_principal_access_token(&admin, &sp_id).await);

    let refused = sp.post("/api/2.0/token/create", json!({})).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.message(),
        "User does not have permission to use tokens."
    );

    grant_token_use(&admin, "users").await;
    let pat = create_personal_token(&sp).await;
    assert_eq!(
        sp.with_token(&pat).get(&format!("{SCIM}/Me")).await.status,
        200
    );
}

#[tokio::test]
async fn token_management_get_delete_and_filters() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, _, _, obo) = service_principal_with_token(&admin).await;

    let missing = admin.get("/api/2.0/token-management/tokens/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(
        admin
            .delete("/api/2.0/token-management/tokens/nope")
            .await
            .status,
        404
    );

    let me = admin.get(&format!("{SCIM}/Me")).await;
    let admin_id = me.body["id"].as_str().unwrap().to_owned();
    let by_id = admin
        .get(&format!(
            "/api/2.0/token-management/tokens?created_by_id={admin_id}"
        ))
        .await;
    assert_eq!(by_id.body["token_infos"].as_array().unwrap().len(), 2);
    let by_name = admin
        .get("/api/2.0/token-management/tokens?created_by_username=nobody%40example.com")
        .await;
    assert!(by_name.body.get("token_infos").is_none());

    let sp = admin.with_token(&obo);
    let denied = sp.get("/api/2.0/token-management/tokens").await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_code(), "PERMISSION_DENIED");

    let obo_id = mlops_sha256(&obo);
    assert_eq!(
        admin
            .get(&format!("/api/2.0/token-management/tokens/{obo_id}"))
            .await
            .body["token_info"]["owner_id"],
        sp_id.parse::<i64>().unwrap()
    );
    assert_eq!(
        admin
            .delete(&format!("/api/2.0/token-management/tokens/{obo_id}"))
            .await
            .status,
        200
    );
    assert_eq!(
        admin
            .get(&format!("/api/2.0/token-management/tokens/{obo_id}"))
            .await
            .status,
        404
    );
    assert_eq!(sp.get(&format!("{SCIM}/Me")).await.status, 403);
}
