//! Fault injection and mutation counting.

use std::time::Duration;

use mlops_emulator::{FaultKind, FaultRule};
use serde_json::json;

use crate::common::*;

/// Returns the number of groups whose displayName equals `name`.
async fn groups_named(admin: &Api, name: &str) -> usize {
    let response = admin
        .request(reqwest::Method::GET, &format!("{SCIM}/Groups"))
        .query(&[("filter", format!(r#"displayName eq "{name}""#))])
        .send()
        .await
        .unwrap();
    read_reply(response).await.body["Resources"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn status429_carries_retry_after_and_skips_request() {
    let running = start().await;
    let admin = running.admin("dev");
    let rules = json!([{ "method": "POST", "path_prefix": "/api/2.0/preview/scim/v2/Groups", "kind": "status429", "times": 1, "retry_after": 7 }]);
    assert_eq!(admin.post("/_emulator/faults", rules).await.status, 200);
    let before = running.emulator.mutation_count();

    let throttled = admin
        .post(&format!("{SCIM}/Groups"), json!({ "displayName": "g" }))
        .await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.headers["retry-after"], "7");
    assert_eq!(throttled.error_code(), "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(throttled.headers["x-databricks-org-id"], "1111");
    assert_eq!(groups_named(&admin, "g").await, 0);
    assert_eq!(running.emulator.mutation_count(), before);

    assert_eq!(
        admin
            .post(&format!("{SCIM}/Groups"), json!({ "displayName": "g" }))
            .await
            .status,
        201
    );
    assert_eq!(running.emulator.mutation_count(), before + 1);
}

#[tokio::test]
async fn status500_limit_and_503_bodies() {
    let running = start().await;
    let admin = running.admin("dev");
    let rules = json!([
        { "path_prefix": "/api/2.0/preview/scim", "kind": "status500_limit", "times": 1 },
        { "path_prefix": "/api/2.0/secrets", "kind": "status503", "times": 1, "retry_after": 2 },
    ]);
    admin.post("/_emulator/faults", rules).await;

    let limited = admin.get(&format!("{SCIM}/Me")).await;
    assert_eq!(limited.status, 500);
    assert_eq!(limited.error_code(), "REQUEST_LIMIT_EXCEEDED");
    assert!(limited.message().contains("REQUEST_LIMIT_EXCEEDED"));

    let unavailable = admin.get("/api/2.0/secrets/scopes/list").await;
    assert_eq!(unavailable.status, 503);
    assert_eq!(unavailable.error_code(), "TEMPORARILY_UNAVAILABLE");
    assert_eq!(unavailable.headers["retry-after"], "2");

    assert_eq!(admin.get(&format!("{SCIM}/Me")).await.status, 200);
    assert_eq!(admin.get("/api/2.0/secrets/scopes/list").await.status, 200);
}

#[tokio::test]
async fn every_and_times_limit_firing() {
    let running = start().await;
    let admin = running.admin("dev");
    running
        .emulator
        .set_faults(
            "dev",
            vec![FaultRule {
                every: Some(2),
                times: Some(2),
                ..FaultRule::new(FaultKind::Status503)
            }],
        )
        .unwrap();

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(admin.get(&format!("{SCIM}/Me")).await.status);
    }
    assert_eq!(statuses, [200, 503, 200, 503, 200, 200]);

    let listed = admin.get("/_emulator/faults").await;
    assert_eq!(listed.body["rules"][0]["fired"], 2);
    assert_eq!(listed.body["rules"][0]["kind"], "status503");
}

#[tokio::test]
async fn drop_closes_connection_without_answer() {
    let running = start().await;
    let admin = running.admin("dev");
    admin.post("/_emulator/faults", json!([{ "method": "POST", "path_prefix": "/api/2.0/secrets/scopes/create", "kind": "drop", "times": 1 }])).await;

    let dropped = admin
        .request(reqwest::Method::POST, "/api/2.0/secrets/scopes/create")
        .json(&json!({ "scope": "s" }))
        .send()
        .await;
    let error = dropped.unwrap_err();
    assert!(!error.is_timeout(), "{error}");
    assert!(
        admin
            .get("/api/2.0/secrets/scopes/list")
            .await
            .body
            .get("scopes")
            .is_none()
    );

    assert_eq!(
        admin
            .post("/api/2.0/secrets/scopes/create", json!({ "scope": "s" }))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn drop_after_mutation_keeps_change() {
    let running = start().await;
    let admin = running.admin("dev");
    running
        .emulator
        .set_faults(
            "dev",
            vec![FaultRule {
                times: Some(1),
                ..FaultRule::new(FaultKind::DropAfterMutation)
            }],
        )
        .unwrap();

    let dropped = admin
        .request(reqwest::Method::POST, &format!("{SCIM}/Groups"))
        .json(&json!({ "displayName": "kept" }))
        .send()
        .await;
    assert!(dropped.is_err());
    assert_eq!(groups_named(&admin, "kept").await, 1);
}

#[tokio::test]
async fn error_after_mutation_keeps_change() {
    let running = start().await;
    let admin = running.admin("dev");
    let rules = json!([{ "path_prefix": "/api/2.0/secrets/scopes/create", "kind": "error_after_mutation", "times": 1 }]);
    admin.post("/_emulator/faults", rules).await;
    let before = running.emulator.mutation_count();

    let failed = admin
        .post(
            "/api/2.0/secrets/scopes/create",
            json!({ "scope": "half-done" }),
        )
        .await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.error_code(), "INTERNAL_ERROR");
    let scopes = admin.get("/api/2.0/secrets/scopes/list").await;
    assert_eq!(scopes.body["scopes"][0]["name"], "half-done");
    assert_eq!(running.emulator.mutation_count(), before + 1);

    let retried = admin
        .post(
            "/api/2.0/secrets/scopes/create",
            json!({ "scope": "half-done" }),
        )
        .await;
    assert_eq!(retried.error_code(), "RESOURCE_ALREADY_EXISTS");
}

#[tokio::test]
async fn hang_after_mutation_hangs_nth_mutation() {
    let running = start().await;
    let admin = running.admin("dev");
    let rules = json!([{ "kind": "hang_after_mutation", "after_mutations": 1, "times": 1 }]);
    admin.post("/_emulator/faults", rules).await;

    assert_eq!(
        admin
            .post(&format!("{SCIM}/Groups"), json!({ "displayName": "first" }))
            .await
            .status,
        201
    );
    assert_eq!(admin.get(&format!("{SCIM}/Me")).await.status, 200);

    let hung = admin
        .request(reqwest::Method::POST, &format!("{SCIM}/Groups"))
        .json(&json!({ "displayName": "second" }))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
    assert_eq!(groups_named(&admin, "second").await, 1);

    assert_eq!(
        admin
            .post(&format!("{SCIM}/Groups"), json!({ "displayName": "third" }))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn latency_rule_fires_and_serves_request() {
    let running = start().await;
    let admin = running.admin("dev");
    let rules = json!([{ "method": "GET", "kind": "latency", "latency_ms": 20, "times": 1 }]);
    admin.post("/_emulator/faults", rules).await;

    assert_eq!(admin.get(&format!("{SCIM}/Me")).await.status, 200);
    let listed = admin.get("/_emulator/faults").await;
    assert_eq!(listed.body["rules"][0]["fired"], 1);

    assert_eq!(admin.delete("/_emulator/faults").await.status, 200);
    assert!(
        admin.get("/_emulator/faults").await.body["rules"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn fault_rules_validated_and_admin_only() {
    let running = start().await;
    let admin = running.admin("dev");

    let invalid = [
        json!([{ "kind": "latency" }]),
        json!([{ "kind": "explode" }]),
        json!([{ "kind": "status503", "every": 0 }]),
        json!([{ "kind": "error_after_mutation", "status": 200 }]),
        json!({ "kind": "status503" }),
    ];
    for rules in invalid {
        assert_eq!(
            admin.post("/_emulator/faults", rules.clone()).await.status,
            400,
            "{rules}"
        );
    }

    let (sp_id, _) = create_service_principal(&admin, "plain").await;
    let sp = admin.with_token(&service_principal_access_token(&admin, &sp_id).await);
    assert_eq!(sp.post("/_emulator/faults", json!([])).await.status, 403);
    assert_eq!(
        sp.post("/_emulator/clock", json!({ "now": null }))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn mutation_count_counts_successful_writes() {
    let running = start().await;
    let dev = running.admin("dev");
    let staging = running.admin("staging");
    let start_count = running.emulator.mutation_count();

    create_group(&dev, "one").await;
    create_group(&staging, "two").await;
    assert_eq!(
        dev.post(&format!("{SCIM}/Groups"), json!({ "displayName": "one" }))
            .await
            .status,
        409
    );
    dev.get(&format!("{SCIM}/Groups")).await;
    dev.post(
        "/api/2.0/mlflow/registered-models/get-latest-versions",
        json!({ "name": "churn-model" }),
    )
    .await;
    dev.post("/_emulator/clock", json!({ "now": null })).await;

    assert_eq!(running.emulator.mutation_count(), start_count + 2);
}
