//! Retry rules: which responses are retried, and the delay before the next attempt.

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Text in a 500 body that marks SCIM throttling.
const REQUEST_LIMIT_EXCEEDED: &[u8] = b"REQUEST_LIMIT_EXCEEDED";

/// Whether a request may be sent again after its outcome became unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryMode {
    /// Repeating the request is harmless, so every transient failure is retried.
    Idempotent,
    /// The request creates an object whose name is unique, so a repeat that the server
    /// already carried out fails with `already exists`. It is retried on responses that
    /// show the server did not carry it out (429, 503, throttling 500), never after a
    /// transport error or timeout.
    Create,
    /// The request creates an object that the server would create twice (a service
    /// principal, a token). Only 429 and a throttling 500 are retried: after a 503 the
    /// caller looks for the object before it sends the create again.
    DuplicableCreate,
}

/// Tells whether a response status (and body) is worth another attempt.
///
/// `gateway_errors` adds 502 and 504, which the OAuth token endpoint retries.
pub(crate) fn is_retryable_status(status: StatusCode, body: &[u8], gateway_errors: bool) -> bool {
    match status.as_u16() {
        429 | 503 => true,
        500 => contains(body, REQUEST_LIMIT_EXCEEDED),
        502 | 504 => gateway_errors,
        _ => false,
    }
}

/// Reads `Retry-After` as whole seconds or as an HTTP date.
///
/// A date in the past gives a zero delay, and an unreadable value gives `None`.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }

    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with equal jitter: half the delay fixed, half random.
///
/// `attempt` counts from 1 for the first retry.
pub(crate) fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let delay = base.saturating_mul(1 << exponent).min(max);
    let half = delay / 2;
    let jitter_nanos =
        rand::rng().random_range(0..=half.as_nanos().min(u128::from(u64::MAX)) as u64);
    half + Duration::from_nanos(jitter_nanos)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_seconds() {
        let delay = retry_after(&headers("7"), SystemTime::now());
        assert_eq!(delay, Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_after(&headers(&later), now),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn retry_after_past_date_is_zero() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after(&headers(&earlier), now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        assert_eq!(retry_after(&headers("soon"), SystemTime::now()), None);
    }

    #[test]
    fn retryable_statuses() {
        assert!(is_retryable_status(
            StatusCode::TOO_MANY_REQUESTS,
            b"",
            false
        ));
        assert!(is_retryable_status(
            StatusCode::SERVICE_UNAVAILABLE,
            b"",
            false
        ));
        assert!(is_retryable_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"error_code":"REQUEST_LIMIT_EXCEEDED"}"#,
            false
        ));
        assert!(!is_retryable_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            b"boom",
            false
        ));
        assert!(!is_retryable_status(StatusCode::BAD_GATEWAY, b"", false));
        assert!(is_retryable_status(StatusCode::BAD_GATEWAY, b"", true));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for attempt in 1..=10 {
            let delay = backoff(attempt, base, max);
            let full = base.saturating_mul(1 << (attempt - 1)).min(max);
            assert!(
                delay >= full / 2,
                "attempt {attempt}: {delay:?} < {:?}",
                full / 2
            );
            assert!(delay <= full, "attempt {attempt}: {delay:?} > {full:?}");
        }
    }
}
