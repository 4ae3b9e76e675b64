//! Unknown routes and headers common to every response.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn unknown_route_is_endpoint_not_found() {
    let running = start().await;
    let admin = running.admin("dev");

    let unknown = admin.get("/api/2.0/clusters/list").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.body,
        json!({ "error_code": "ENDPOINT_NOT_FOUND", "message": "No API found for 'GET /api/2.0/clusters/list'" })
    );

    let wrong_method = admin
        .send(Method::DELETE, "/api/2.0/token/list", None)
        .await;
    assert_eq!(wrong_method.status, 404);
    assert_eq!(
        wrong_method.message(),
        "No API found for 'DELETE /api/2.0/token/list'"
    );
}

#[tokio::test]
async fn org_id_header_on_every_response() {
    let running = start().await;
    let admin = running.admin("staging");
    let anonymous = running.anonymous("staging");

    let replies = [
        admin.get(&format!("{SCIM}/Me")).await,
        admin.get("/api/2.0/nope").await,
        anonymous.get(&format!("{SCIM}/Me")).await,
        anonymous
            .with_token("dapi0")
            .get(&format!("{SCIM}/Me"))
            .await,
        admin.get(TOKEN_PERMISSIONS).await,
    ];
    for reply in replies {
        assert_eq!(
            reply.headers["x-databricks-org-id"], "123456789",
            "{reply:?}"
        );
    }
}

#[tokio::test]
async fn malformed_body_is_rejected() {
    let running = start().await;
    let admin = running.admin("dev");

    let response = admin
        .request(Method::POST, "/api/2.0/secrets/scopes/create")
        .header("content-type", "application/json")
        .body("{ not json")
        .send()
        .await
        .unwrap();
    let reply = read_reply(response).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "MALFORMED_REQUEST");
}
