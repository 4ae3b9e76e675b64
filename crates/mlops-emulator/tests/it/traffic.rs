//! Request counters, the SCIM concurrency limit and serialized serving.

use serde_json::json;
use tokio::task::JoinSet;

use crate::common::*;

/// Sends `count` GET requests of `path` at once and returns their statuses.
async fn concurrent_gets(api: &Api, path: &str, count: usize) -> Vec<u16> {
    let mut requests = JoinSet::new();
    for _ in 0..count {
        let api = api.clone();
        let path = path.to_owned();
        requests.spawn(async move { api.get(&path).await.status });
    }
    requests.join_all().await
}

/// Sends `count` SCIM `Me` requests at once and returns their statuses.
async fn concurrent_me(admin: &Api, count: usize) -> Vec<u16> {
    concurrent_gets(admin, &format!("{SCIM}/Me"), count).await
}

/// Delays every SCIM request of `workspace` by `latency_ms`, so concurrent requests overlap.
async fn slow_scim(admin: &Api, latency_ms: u64) {
    let rules = json!([{ "path_prefix": "/api/2.0/preview/scim", "kind": "latency", "latency_ms": latency_ms }]);
    assert_eq!(admin.post("/_emulator/faults", rules).await.status, 200);
}

#[tokio::test]
async fn scim_over_limit_gets_429() {
    let running = start().await;
    let admin = running.admin("dev");
    slow_scim(&admin, 300).await;
    running.emulator.set_scim_concurrency_limit(Some(2));

    let statuses = concurrent_me(&admin, 4).await;
    assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|status| **status == 429).count(), 2, "{statuses:?}");

    let counts = running.emulator.request_counts()["dev"];
    assert_eq!(counts.total, 4);
    assert_eq!(counts.scim, 4);
    assert_eq!(counts.throttled, 2);
}

#[tokio::test]
async fn throttled_reply_has_retry_after_and_org_id() {
    let running = start().await;
    let admin = running.admin("dev");
    slow_scim(&admin, 300).await;
    running.emulator.set_scim_concurrency_limit(Some(1));

    let me = format!("{SCIM}/Me");
    let (first, second) = tokio::join!(admin.get(&me), admin.get(&me));
    let throttled = if first.status == 429 { first } else { second };
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.error_code(), "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(throttled.headers["retry-after"], "1");
    assert_eq!(throttled.headers["x-databricks-org-id"], "1111");
}

#[tokio::test]
async fn limit_leaves_other_endpoints_alone() {
    let running = start().await;
    let admin = running.admin("dev");
    let rules = json!([{ "kind": "latency", "latency_ms": 200 }]);
    admin.post("/_emulator/faults", rules).await;
    running.emulator.set_scim_concurrency_limit(Some(1));

    let statuses = concurrent_gets(&admin, "/api/2.0/secrets/scopes/list", 4).await;
    assert_eq!(statuses, vec![200; 4]);
    let counts = running.emulator.request_counts()["dev"];
    assert_eq!(counts.throttled, 0);
    assert_eq!(counts.peak_in_flight, 4);
}

#[tokio::test]
async fn serialized_emulator_serves_one_at_a_time() {
    let running = start().await;
    let admin = running.admin("dev");
    slow_scim(&admin, 100).await;
    running.emulator.set_scim_concurrency_limit(Some(1));
    running.emulator.set_serialized(true);

    let statuses = concurrent_me(&admin, 3).await;
    assert_eq!(statuses, vec![200; 3]);
    let counts = running.emulator.request_counts()["dev"];
    assert_eq!(counts.peak_in_flight, 1);
    assert_eq!(counts.throttled, 0);
}

#[tokio::test]
async fn counters_endpoint_reads_and_resets() {
    let running = start().await;
    let admin = running.admin("dev");
    admin.get(&format!("{SCIM}/Me")).await;
    admin.get("/api/2.0/secrets/scopes/list").await;

    let read = admin.get("/_emulator/requests").await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body["total"], 2);
    assert_eq!(read.body["scim"], 1);
    assert_eq!(read.body["throttled"], 0);

    assert_eq!(admin.delete("/_emulator/requests").await.status, 200);
    assert_eq!(admin.get("/_emulator/requests").await.body["total"], 0);
    assert!(!running.emulator.request_counts().contains_key("staging"));
}

#[tokio::test]
async fn counters_endpoint_needs_admin() {
    let running = start().await;
    let anonymous = running.anonymous("dev");
    assert_eq!(anonymous.get("/_emulator/requests").await.status, 401);
}
