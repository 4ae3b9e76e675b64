//! OAuth discovery and the client-credentials grant.

use serde_json::json;

use crate::common::*;

/// Posts a client-credentials request with HTTP Basic client authentication.
async fn request_token(api: &Api, client_id: &str, client_secret: &str, grant_type: &str) -> Reply {
    let response = api
        .client
        .post(format!("{}/oidc/v1/token", api.base_url))
        .basic_auth(client_id, Some(client_secret))
        .form(&[("grant_type", grant_type), ("scope", "all-apis")])
        .send()
        .await
        .unwrap();
    read_reply(response).await
}

#[tokio::test]
async fn discovery_uses_request_host() {
    let running = start().await;
    let anonymous = running.anonymous("dev");
    let base_url = &running.listener("dev").base_url;

    let reply = anonymous
        .get("/oidc/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body["authorization_endpoint"],
        format!("{base_url}/oidc/v1/authorize")
    );
    assert_eq!(
        reply.body["token_endpoint"],
        format!("{base_url}/oidc/v1/token")
    );
}

#[tokio::test]
async fn host_metadata_names_oidc_root() {
    let running = start().await;
    let anonymous = running.anonymous("staging");
    let base_url = &running.listener("staging").base_url;

    let reply = anonymous.get("/.well-known/databricks-config").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["workspace_id"], "123456789");
    assert_eq!(reply.body["oidc_endpoint"], format!("{base_url}/oidc"));
    assert_eq!(reply.body["cloud"], "AWS");

    let discovery = anonymous
        .get("/oidc/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(discovery.status, 200);
}

#[tokio::test]
async fn client_credentials_flow_issues_hour_tokens() {
    let running = start().await;
    running
        .emulator
        .set_now(Some("2026-04-01T00:00:00Z".parse().unwrap()));
    let anonymous = running.anonymous("dev");
    let (client_id, client_secret) = running.emulator.admin_client_credentials("dev").unwrap();

    let reply = request_token(&anonymous, &client_id, &client_secret, "client_credentials").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 3600);
    assert_eq!(reply.body["scope"], "all-apis");
    let access_token = reply.body["access_token"].as_str().unwrap().to_owned();

    let admin = anonymous.with_token(&access_token);
    assert_eq!(
        admin.get(&format!("{SCIM}/Me")).await.body["userName"],
        "admin@example.com"
    );
    assert_eq!(admin.get(TOKEN_PERMISSIONS).await.status, 404);

    running
        .emulator
        .set_now(Some("2026-04-01T01:00:01Z".parse().unwrap()));
    assert_eq!(admin.get(&format!("{SCIM}/Me")).await.status, 403);
}

#[tokio::test]
async fn bad_client_credentials_rejected() {
    let running = start().await;
    let anonymous = running.anonymous("dev");
    let (client_id, client_secret) = running.emulator.admin_client_credentials("dev").unwrap();
    let (staging_id, staging_secret) = running
        .emulator
        .admin_client_credentials("staging")
        .unwrap();

    let wrong_secret =
        request_token(&anonymous, &client_id, "dose-wrong", "client_credentials").await;
    assert_eq!(wrong_secret.status, 401);
    assert_eq!(wrong_secret.body["error"], "invalid_client");
    let other_workspace = request_token(
        &anonymous,
        &staging_id,
        &staging_secret,
        "client_credentials",
    )
    .await;
    assert_eq!(other_workspace.status, 401);

    let wrong_grant = request_token(&anonymous, &client_id, &client_secret, "password").await;
    assert_eq!(wrong_grant.status, 400);
    assert_eq!(wrong_grant.body["error"], "unsupported_grant_type");

    let no_auth = anonymous
        .client
        .post(format!("{}/oidc/v1/token", anonymous.base_url))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);
}

#[tokio::test]
async fn service_principal_secret_follows_principal() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, _) = create_service_principal(&admin, "machine").await;
    let access_token = service_principal_access_token(&admin, &sp_id).await;
    let sp = admin.with_token(&access_token);
    assert_eq!(sp.get(&format!("{SCIM}/Me")).await.status, 200);

    let forbidden = sp
        .post(
            &format!("/_emulator/service-principals/{sp_id}/secret"),
            json!({}),
        )
        .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        admin
            .post("/_emulator/service-principals/42/secret", json!({}))
            .await
            .status,
        404
    );

    let deactivate =
        json!({ "Operations": [{ "op": "replace", "path": "active", "value": false }] });
    assert_eq!(
        admin
            .patch(&format!("{SCIM}/ServicePrincipals/{sp_id}"), deactivate)
            .await
            .status,
        204
    );
    assert_eq!(sp.get(&format!("{SCIM}/Me")).await.status, 403);
}
