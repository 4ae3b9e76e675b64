//! Retries, timeouts and the concurrency limit against mock servers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{
    Counter, RawAction, client, client_with, fast_options, json_response, raw_json, serve,
    serve_raw,
};
use mlops_databricks::{ClientOptions, Error, SecretString};

const SCOPES_LIST: &str = "/api/2.0/secrets/scopes/list";
const SCOPES_CREATE: &str = "/api/2.0/secrets/scopes/create";

/// Serves `path` with `first` for the first `failures` requests and `200 {}` afterwards.
async fn serve_failing_then_ok(
    path: &str,
    failures: usize,
    first: fn() -> Response,
) -> (String, Counter) {
    let requests = Counter::default();
    let counted = requests.clone();
    let handler = move || {
        let count = counted.increment();
        async move {
            if count <= failures {
                first()
            } else {
                json_response(200, "{}")
            }
        }
    };
    let router = Router::new().route(path, get(handler.clone()).post(handler));
    (serve(router).await, requests)
}

fn throttled(retry_after: String) -> Response {
    let body = r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"Too many requests"}"#;
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            ("content-type", "application/json".to_owned()),
            ("retry-after", retry_after),
        ],
        body,
    )
        .into_response()
}

fn http_date_in(seconds: u64) -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(seconds))
}

#[tokio::test]
async fn retry_after_seconds_is_retried() {
    let (base, requests) =
        serve_failing_then_ok(SCOPES_LIST, 1, || throttled("1".to_owned())).await;

    let scopes = client(&base).list_scopes().await.unwrap();

    assert!(scopes.is_empty());
    assert_eq!(requests.get(), 2);
}

#[tokio::test]
async fn retry_after_http_date_is_retried() {
    let (base, requests) =
        serve_failing_then_ok(SCOPES_LIST, 1, || throttled(http_date_in(1))).await;

    client(&base).list_scopes().await.unwrap();

    assert_eq!(requests.get(), 2);
}

#[tokio::test]
async fn retry_after_beyond_budget_returns_429() {
    // The backoff alone (at most 5 ms) would fit the budget, so giving up proves that
    // the client waits for Retry-After instead.
    let waits: [fn() -> Response; 2] = [
        || throttled("30".to_owned()),
        || throttled(http_date_in(60)),
    ];
    for wait in waits {
        let (base, requests) = serve_failing_then_ok(SCOPES_LIST, usize::MAX, wait).await;

        let error = client(&base).list_scopes().await.unwrap_err();

        assert_eq!(error.status(), Some(429), "{error:?}");
        assert_eq!(error.error_code(), Some("REQUEST_LIMIT_EXCEEDED"));
        assert_eq!(requests.get(), 1);
    }
}

#[tokio::test]
async fn persistent_429_stops_at_budget() {
    let (base, requests) = serve_failing_then_ok(SCOPES_LIST, usize::MAX, || {
        json_response(
            429,
            r#"{"error_code":"RESOURCE_EXHAUSTED","message":"slow down"}"#,
        )
    })
    .await;
    let options = ClientOptions {
        retry_budget: Duration::from_millis(100),
        ..fast_options()
    };

    let error = client_with(&base, options).list_scopes().await.unwrap_err();

    assert_eq!(error.status(), Some(429));
    assert!(requests.get() >= 2, "only {} requests", requests.get());
}

#[tokio::test]
async fn create_is_retried_after_503() {
    let (base, requests) = serve_failing_then_ok(SCOPES_CREATE, 2, || {
        json_response(
            503,
            r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"try later"}"#,
        )
    })
    .await;

    client(&base).create_scope("mlops").await.unwrap();

    assert_eq!(requests.get(), 3);
}

#[tokio::test]
async fn token_create_is_not_retried_after_503() {
    let (base, requests) = serve_failing_then_ok("/api/2.0/token-management/on-behalf-of/tokens", 1, || {
        json_response(503, r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"try later"}"#)
    })
    .await;

    let error = client(&base).create_obo_token("app", Some(60), "c").await.unwrap_err();

    assert_eq!(error.status(), Some(503));
    assert_eq!(requests.get(), 1);
}

#[tokio::test]
async fn throttling_500_is_retried() {
    let (base, requests) = serve_failing_then_ok(SCOPES_LIST, 1, || {
        json_response(
            500,
            r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"SCIM throttled"}"#,
        )
    })
    .await;

    client(&base).list_scopes().await.unwrap();

    assert_eq!(requests.get(), 2);
}

#[tokio::test]
async fn plain_500_is_not_retried() {
    let (base, requests) = serve_failing_then_ok(SCOPES_LIST, 1, || {
        json_response(500, r#"{"error_code":"INTERNAL_ERROR","message":"boom"}"#)
    })
    .await;

    let error = client(&base).list_scopes().await.unwrap_err();

    assert_eq!(error.status(), Some(500));
    assert_eq!(requests.get(), 1);
}

#[tokio::test]
async fn creates_are_not_retried_after_dropped_connection() {
    let created_token = r#"{"token_info":{"token_id":"t"},"token_value":"v"}"#;
    let creates = [
        "scope",
        "group",
        "service principal",
        "obo token",
        "personal token",
    ];

    for create in creates {
        let (base, requests) = serve_raw(vec![RawAction::Drop, raw_json(200, created_token)]).await;
        let client = client(&base);

        let error = match create {
            "scope" => client.create_scope("s").await.unwrap_err(),
            "group" => client.create_group("g").await.unwrap_err(),
            "service principal" => client
                .create_service_principal("sp", &[])
                .await
                .unwrap_err(),
            "obo token" => client
                .create_obo_token("app", Some(60), "c")
                .await
                .map(|_| ())
                .unwrap_err(),
            _ => client
                .create_personal_token(Some(60), "c")
                .await
                .map(|_| ())
                .unwrap_err(),
        };

        assert!(
            matches!(error, Error::Transport { .. }),
            "{create}: {error:?}"
        );
        assert_eq!(requests.get(), 1, "{create} was sent again");
    }
}

#[tokio::test]
async fn idempotent_calls_retried_after_dropped_connection() {
    let (base, requests) =
        serve_raw(vec![RawAction::Drop, raw_json(200, r#"{"scopes":[]}"#)]).await;
    client(&base).list_scopes().await.unwrap();
    assert_eq!(requests.get(), 2);

    let (base, requests) =
        serve_raw(vec![RawAction::Drop, RawAction::Drop, raw_json(200, "{}")]).await;
    client(&base)
        .put_secret("s", "k", &SecretString::from("v"))
        .await
        .unwrap();
    assert_eq!(requests.get(), 3);
}

#[tokio::test]
async fn transport_error_names_call() {
    let (base, _) = serve_raw(vec![]).await;
    let options = ClientOptions {
        retry_budget: Duration::ZERO,
        ..fast_options()
    };

    let error = client_with(&base, options).list_scopes().await.unwrap_err();

    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("GET /api/2.0/secrets/scopes/list failed"),
        "{error}"
    );
}

/// Serves `path` with a handler that responds only after `delay`.
async fn serve_slow(path: &str, delay: Duration) -> (String, Counter) {
    let requests = Counter::default();
    let counted = requests.clone();
    let handler = move || {
        counted.increment();
        async move {
            tokio::time::sleep(delay).await;
            json_response(200, r#"{"scopes":[]}"#)
        }
    };
    let router = Router::new().route(path, get(handler.clone()).post(handler));
    (serve(router).await, requests)
}

fn short_timeout_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_millis(50),
        retry_budget: Duration::from_millis(200),
        ..fast_options()
    }
}

#[tokio::test]
async fn create_is_not_retried_after_timeout() {
    let (base, requests) = serve_slow(SCOPES_CREATE, Duration::from_secs(2)).await;

    let error = client_with(&base, short_timeout_options())
        .create_scope("s")
        .await
        .unwrap_err();

    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert_eq!(requests.get(), 1);
}

#[tokio::test]
async fn read_is_retried_after_timeout_within_budget() {
    let (base, requests) = serve_slow(SCOPES_LIST, Duration::from_secs(2)).await;

    let error = client_with(&base, short_timeout_options())
        .list_scopes()
        .await
        .unwrap_err();

    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(
        error.to_string().contains("timed out after 0.05s"),
        "{error}"
    );
    assert!(requests.get() >= 2, "only {} requests", requests.get());
}

#[tokio::test]
async fn concurrency_is_capped() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (current, highest) = (in_flight.clone(), peak.clone());
    let router = Router::new().route(
        SCOPES_LIST,
        get(move || {
            let (current, highest) = (current.clone(), highest.clone());
            async move {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                highest.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                current.fetch_sub(1, Ordering::SeqCst);
                json_response(200, "{}")
            }
        }),
    );
    let base = serve(router).await;
    let options = ClientOptions {
        max_concurrent_requests: 3,
        ..fast_options()
    };
    let client = client_with(&base, options);

    let mut calls = Vec::new();
    for _ in 0..12 {
        let client = client.clone();
        calls.push(tokio::spawn(async move { client.list_scopes().await }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }

    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} requests in flight");
    assert!(peak >= 2, "requests never overlapped");
}
