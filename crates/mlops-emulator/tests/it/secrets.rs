//! Secret scopes, secrets and scope ACLs.

use serde_json::json;

use crate::common::*;

/// Returns the ACL items of a scope as (principal, permission) pairs.
async fn acl_items(api: &Api, scope: &str) -> Vec<(String, String)> {
    let reply = api
        .get(&format!("/api/2.0/secrets/acls/list?scope={scope}"))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["principal"].as_str().unwrap().to_owned(),
                item["permission"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn secret_round_trips_as_base64() {
    let running = start().await;
    let now: jiff::Timestamp = "2026-02-02T10:00:00Z".parse().unwrap();
    running.emulator.set_now(Some(now));
    let admin = running.admin("dev");

    assert_eq!(
        admin
            .post(
                "/api/2.0/secrets/scopes/create",
                json!({ "scope": "remote-mr-prod" })
            )
            .await
            .status,
        200
    );
    let put = admin.post("/api/2.0/secrets/put", json!({ "scope": "remote-mr-prod", "key": "prod-token", "string_value": "my-secret-value" })).await;
    assert_eq!(put.status, 200);
    assert_eq!(put.body, json!({}));
    let bytes = admin
        .post(
            "/api/2.0/secrets/put",
            json!({ "scope": "remote-mr-prod", "key": "raw", "bytes_value": "AP8B" }),
        )
        .await;
    assert_eq!(bytes.status, 200);

    let text = admin
        .get("/api/2.0/secrets/get?scope=remote-mr-prod&key=prod-token")
        .await;
    assert_eq!(
        text.body,
        json!({ "key": "prod-token", "value": "bXktc2VjcmV0LXZhbHVl" })
    );
    let raw = admin
        .get("/api/2.0/secrets/get?scope=remote-mr-prod&key=raw")
        .await;
    assert_eq!(raw.body["value"], "AP8B");

    let list = admin
        .get("/api/2.0/secrets/list?scope=remote-mr-prod")
        .await;
    assert_eq!(
        list.body,
        json!({ "secrets": [
            { "key": "prod-token", "last_updated_timestamp": now.as_millisecond() },
            { "key": "raw", "last_updated_timestamp": now.as_millisecond() },
        ] })
    );

    let both = admin.post("/api/2.0/secrets/put", json!({ "scope": "remote-mr-prod", "key": "k", "string_value": "a", "bytes_value": "YQ==" })).await;
    assert_eq!(both.status, 400);
    let neither = admin
        .post(
            "/api/2.0/secrets/put",
            json!({ "scope": "remote-mr-prod", "key": "k" }),
        )
        .await;
    assert_eq!(neither.status, 400);
    assert_eq!(neither.error_code(), "INVALID_PARAMETER_VALUE");

    let missing = admin
        .get("/api/2.0/secrets/get?scope=remote-mr-prod&key=nope")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(
        admin
            .post(
                "/api/2.0/secrets/delete",
                json!({ "scope": "remote-mr-prod", "key": "raw" })
            )
            .await
            .status,
        200
    );
    assert_eq!(
        admin
            .post(
                "/api/2.0/secrets/delete",
                json!({ "scope": "remote-mr-prod", "key": "raw" })
            )
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn scope_names_ignore_case_and_are_validated() {
    let running = start().await;
    let admin = running.admin("dev");
    assert_eq!(
        admin
            .post(
                "/api/2.0/secrets/scopes/create",
                json!({ "scope": "Remote-MR" })
            )
            .await
            .status,
        200
    );

    let duplicate = admin
        .post(
            "/api/2.0/secrets/scopes/create",
            json!({ "scope": "remote-mr" }),
        )
        .await;
    assert_eq!(duplicate.status, 400);
    assert_eq!(duplicate.error_code(), "RESOURCE_ALREADY_EXISTS");
    assert_eq!(duplicate.message(), "Scope remote-mr already exists!");

    let put = admin
        .post(
            "/api/2.0/secrets/put",
            json!({ "scope": "REMOTE-MR", "key": "a", "string_value": "x" }),
        )
        .await;
    assert_eq!(put.status, 200);
    let scopes = admin.get("/api/2.0/secrets/scopes/list").await;
    assert_eq!(
        scopes.body,
        json!({ "scopes": [{ "name": "Remote-MR", "backend_type": "DATABRICKS" }] })
    );

    for invalid in ["has space", "slash/name", "", &"x".repeat(129)] {
        let reply = admin
            .post(
                "/api/2.0/secrets/scopes/create",
                json!({ "scope": invalid }),
            )
            .await;
        assert_eq!(reply.status, 400, "{invalid}");
        assert_eq!(reply.error_code(), "INVALID_PARAMETER_VALUE");
    }
    assert_eq!(
        admin
            .post(
                "/api/2.0/secrets/scopes/create",
                json!({ "scope": "a.b_c-d@e" })
            )
            .await
            .status,
        200
    );

    let missing = admin.get("/api/2.0/secrets/list?scope=nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body,
        json!({ "error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Scope nope does not exist!" })
    );

    assert_eq!(
        admin
            .post(
                "/api/2.0/secrets/scopes/delete",
                json!({ "scope": "remote-MR" })
            )
            .await
            .status,
        200
    );
    assert_eq!(
        admin
            .get("/api/2.0/secrets/list?scope=Remote-MR")
            .await
            .status,
        404
    );
    assert_eq!(
        admin
            .post(
                "/api/2.0/secrets/scopes/delete",
                json!({ "scope": "remote-MR" })
            )
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn acls_control_access() {
    let running = start().await;
    let admin = running.admin("dev");
    let (reader_id, reader_app) = create_service_principal(&admin, "reader").await;
    let (other_id, _) = create_service_principal(&admin, "other").await;
    let reader = admin.with_token(&service_principal_access_token(&admin, &reader_id).await);
    let other = admin.with_token(&service_principal_access_token(&admin, &other_id).await);

    admin
        .post(
            "/api/2.0/secrets/scopes/create",
            json!({ "scope": "shared" }),
        )
        .await;
    admin
        .post(
            "/api/2.0/secrets/put",
            json!({ "scope": "shared", "key": "k", "string_value": "v" }),
        )
        .await;
    assert_eq!(
        acl_items(&admin, "shared").await,
        [("admin@example.com".to_owned(), "MANAGE".to_owned())]
    );

    let denied = reader.get("/api/2.0/secrets/get?scope=shared&key=k").await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_code(), "PERMISSION_DENIED");

    let grant_read = json!({ "scope": "shared", "principal": reader_app, "permission": "READ" });
    assert_eq!(
        admin
            .post("/api/2.0/secrets/acls/put", grant_read)
            .await
            .status,
        200
    );
    assert_eq!(
        reader
            .get("/api/2.0/secrets/get?scope=shared&key=k")
            .await
            .status,
        200
    );
    assert_eq!(
        reader
            .get("/api/2.0/secrets/list?scope=shared")
            .await
            .status,
        200
    );
    let write = reader
        .post(
            "/api/2.0/secrets/put",
            json!({ "scope": "shared", "key": "k", "string_value": "w" }),
        )
        .await;
    assert_eq!(write.status, 403);

    let grant_write = json!({ "scope": "shared", "principal": reader_app, "permission": "WRITE" });
    assert_eq!(
        admin
            .post("/api/2.0/secrets/acls/put", grant_write)
            .await
            .status,
        200
    );
    let write = reader
        .post(
            "/api/2.0/secrets/put",
            json!({ "scope": "shared", "key": "k", "string_value": "w" }),
        )
        .await;
    assert_eq!(write.status, 200);
    assert_eq!(
        reader
            .get("/api/2.0/secrets/acls/list?scope=shared")
            .await
            .status,
        403
    );
    assert_eq!(acl_items(&admin, "shared").await.len(), 2);

    assert_eq!(
        other
            .get("/api/2.0/secrets/get?scope=shared&key=k")
            .await
            .status,
        403
    );
    let grant_users = json!({ "scope": "shared", "principal": "users", "permission": "READ" });
    assert_eq!(
        admin
            .post("/api/2.0/secrets/acls/put", grant_users)
            .await
            .status,
        200
    );
    assert_eq!(
        other
            .get("/api/2.0/secrets/get?scope=shared&key=k")
            .await
            .body["value"],
        "dw=="
    );

    let acl = admin
        .get(&format!(
            "/api/2.0/secrets/acls/get?scope=shared&principal={reader_app}"
        ))
        .await;
    assert_eq!(
        acl.body,
        json!({ "principal": reader_app, "permission": "WRITE" })
    );
    assert_eq!(
        admin
            .post(
                "/api/2.0/secrets/acls/delete",
                json!({ "scope": "shared", "principal": "users" })
            )
            .await
            .status,
        200
    );
    assert_eq!(
        other
            .get("/api/2.0/secrets/get?scope=shared&key=k")
            .await
            .status,
        403
    );
    assert_eq!(
        admin
            .get("/api/2.0/secrets/acls/get?scope=shared&principal=users")
            .await
            .status,
        404
    );
    assert_eq!(
        admin
            .post(
                "/api/2.0/secrets/acls/delete",
                json!({ "scope": "shared", "principal": "users" })
            )
            .await
            .status,
        404
    );

    let unknown = admin
        .post(
            "/api/2.0/secrets/acls/put",
            json!({ "scope": "shared", "principal": "ghosts", "permission": "READ" }),
        )
        .await;
    assert_eq!(unknown.status, 400);
    let bad_level = admin
        .post(
            "/api/2.0/secrets/acls/put",
            json!({ "scope": "shared", "principal": "users", "permission": "OWN" }),
        )
        .await;
    assert_eq!(bad_level.status, 400);
}

#[tokio::test]
async fn scope_creator_gets_manage() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, application_id) = create_service_principal(&admin, "creator").await;
    let sp = admin.with_token(&service_principal_access_token(&admin, &sp_id).await);

    assert_eq!(
        sp.post("/api/2.0/secrets/scopes/create", json!({ "scope": "mine" }))
            .await
            .status,
        200
    );
    assert_eq!(
        acl_items(&sp, "mine").await,
        [(application_id, "MANAGE".to_owned())]
    );

    let for_users = json!({ "scope": "for-users", "initial_manage_principal": "users" });
    assert_eq!(
        admin
            .post("/api/2.0/secrets/scopes/create", for_users)
            .await
            .status,
        200
    );
    assert_eq!(
        acl_items(&admin, "for-users").await,
        [("users".to_owned(), "MANAGE".to_owned())]
    );
    let invalid = json!({ "scope": "x", "initial_manage_principal": "admins" });
    assert_eq!(
        admin
            .post("/api/2.0/secrets/scopes/create", invalid)
            .await
            .status,
        400
    );
}
