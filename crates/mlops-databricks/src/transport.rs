//! Sending HTTP requests with authentication, a concurrency limit, timeouts and retries.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

use crate::oauth::OAuthSession;
use crate::response::RawResponse;
use crate::retry::{RetryMode, backoff, is_retryable_status, retry_after};
use crate::{ClientOptions, Error};

/// Largest response body the client reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Maximum number of SCIM requests in flight per workspace.
///
/// NOTE: workspace SCIM endpoints are taken to throttle a workspace with more than 4 SCIM
/// requests in flight, and the emulator enforces that with
/// `MLOPS_EMULATOR_SCIM_CONCURRENCY_LIMIT`. The published Databricks limits give only requests
/// per second.
pub(crate) const MAX_CONCURRENT_SCIM_REQUESTS: usize = 4;

/// Path prefix of the workspace SCIM endpoints.
const SCIM_PATH_PREFIX: &str = "/api/2.0/preview/scim/";

/// Query parameters whose values are masked in logs.
const SENSITIVE_QUERY_KEYS: [&str; 6] = [
    "token",
    "access_token",
    "client_secret",
    "password",
    "string_value",
    "bytes_value",
];

/// Shared state behind every clone of a [`crate::WorkspaceClient`].
pub(crate) struct Transport {
    /// Shared by every client of the process.
    pub http: reqwest::Client,
    /// Value of the `User-Agent` header, sent with each request because `http` is shared.
    pub user_agent: HeaderValue,
    pub base: Url,
    pub base_url: String,
    pub auth: WorkspaceAuth,
    /// Shared with clients made by `with_credentials`, so the limit covers the workspace.
    pub semaphore: Arc<Semaphore>,
    /// Taken by SCIM requests on top of `semaphore`, shared the same way.
    pub scim_semaphore: Arc<Semaphore>,
    pub options: ClientOptions,
}

/// Authentication of API requests to the workspace.
pub(crate) enum WorkspaceAuth {
    /// A fixed `Authorization: Bearer …` header.
    Bearer(HeaderValue),
    /// OAuth access tokens fetched and cached by the session.
    OAuth(Box<OAuthSession>),
}

/// Source of the `Authorization` header of a request.
pub(crate) enum AuthKind {
    /// The workspace credentials.
    Workspace,
    /// A fixed header, such as HTTP Basic for the OAuth token endpoint.
    Fixed(HeaderValue),
    /// No header, for OAuth discovery.
    Anonymous,
}

/// A request body, kept as bytes so every attempt sends the same content.
pub(crate) enum Body {
    Empty,
    Json(Vec<u8>),
    Form(String),
}

/// Everything needed to send a request, and to send it again.
pub(crate) struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub body: Body,
    pub auth: AuthKind,
    pub retry: RetryMode,
    /// Whether 502 and 504 are retried too.
    pub gateway_retries: bool,
    /// Total time available for retries.
    pub budget: Duration,
}

impl Transport {
    /// Sends `request`, retrying transient failures within its budget.
    ///
    /// Returns the final response whatever its status, so callers map error statuses.
    pub(crate) async fn execute(&self, request: &HttpRequest) -> Result<RawResponse, Error> {
        let started = Instant::now();
        let mut attempt: u32 = 1;
        let mut token_refreshed = false;

        loop {
            let authorization = self.authorization(&request.auth).await?;
            let outcome = self.attempt(request, authorization.as_ref(), attempt).await;

            if self.should_refresh_token(request, &outcome, token_refreshed) {
                if let (WorkspaceAuth::OAuth(session), Some(used)) = (&self.auth, &authorization) {
                    session.invalidate(used).await;
                }
                token_refreshed = true;
                continue;
            }

            let Some(delay) = self.retry_delay(request, &outcome, attempt) else {
                return outcome;
            };
            if started.elapsed() + delay > request.budget {
                tracing::debug!(
                    method = %request.method,
                    path = request.url.path(),
                    attempt,
                    "retry budget exhausted, returning the last result"
                );
                return outcome;
            }

            tracing::debug!(
                method = %request.method,
                path = request.url.path(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                reason = %retry_reason(&outcome),
                "retrying request"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Returns the delay before the next attempt, or `None` when the outcome is final.
    fn retry_delay(
        &self,
        request: &HttpRequest,
        outcome: &Result<RawResponse, Error>,
        attempt: u32,
    ) -> Option<Duration> {
        let options = &self.options;
        let backoff_delay = || backoff(attempt, options.retry_base_delay, options.retry_max_delay);

        match outcome {
            Ok(response) => {
                // A 503 does not prove that the server left a create undone, so the caller
                // looks for the object before it sends the create again.
                let unproven_create = request.retry == RetryMode::DuplicableCreate
                    && response.status == StatusCode::SERVICE_UNAVAILABLE;
                let retryable = !unproven_create
                    && is_retryable_status(response.status, &response.body, request.gateway_retries);
                retryable.then(|| {
                    retry_after(&response.headers, SystemTime::now()).unwrap_or_else(backoff_delay)
                })
            }
            Err(Error::Transport { .. } | Error::Timeout { .. }) => match request.retry {
                RetryMode::Idempotent => Some(backoff_delay()),
                // The server may have carried out the create before the failure.
                RetryMode::Create | RetryMode::DuplicableCreate => None,
            },
            Err(_) => None,
        }
    }

    /// Tells whether to resend a request with a fresh OAuth token, which is done once
    /// after a 401 (or a 403 for an invalid token) because the cached token may have been
    /// revoked early.
    fn should_refresh_token(
        &self,
        request: &HttpRequest,
        outcome: &Result<RawResponse, Error>,
        token_refreshed: bool,
    ) -> bool {
        // Some workspaces reject an expired or revoked token with 403 "Invalid access token."
        // rather than 401.
        let is_unauthorized = matches!(outcome, Ok(response) if response.status == StatusCode::UNAUTHORIZED
            || (response.status == StatusCode::FORBIDDEN && contains_text(&response.body, b"Invalid access token")));
        let uses_oauth = matches!(self.auth, WorkspaceAuth::OAuth(_));
        is_unauthorized
            && uses_oauth
            && !token_refreshed
            && matches!(request.auth, AuthKind::Workspace)
    }

    async fn authorization(&self, auth: &AuthKind) -> Result<Option<HeaderValue>, Error> {
        match auth {
            AuthKind::Anonymous => Ok(None),
            AuthKind::Fixed(value) => Ok(Some(value.clone())),
            AuthKind::Workspace => match &self.auth {
                WorkspaceAuth::Bearer(value) => Ok(Some(value.clone())),
                // Boxed because fetching a token sends requests through `execute` again.
                WorkspaceAuth::OAuth(session) => {
                    Box::pin(session.authorization(self)).await.map(Some)
                }
            },
        }
    }

    /// Sends one attempt under the concurrency limit and the request timeout.
    async fn attempt(
        &self,
        request: &HttpRequest,
        authorization: Option<&HeaderValue>,
        attempt: u32,
    ) -> Result<RawResponse, Error> {
        // The SCIM permit comes first, so a SCIM request waiting for its turn does not hold a
        // permit that another endpoint could use.
        let _scim_permit = match is_scim(&request.url) {
            true => Some(acquire(&self.scim_semaphore).await),
            false => None,
        };
        let _permit = acquire(&self.semaphore).await;
        let started = Instant::now();
        let timeout = self.options.request_timeout;

        let result =
            match tokio::time::timeout(timeout, self.send_once(request, authorization)).await {
                Ok(result) => result,
                Err(_) => Err(Error::Timeout {
                    method: request.method.to_string(),
                    path: request.url.path().to_owned(),
                    timeout,
                }),
            };

        log_attempt(request, &result, attempt, started.elapsed());
        result
    }

    async fn send_once(
        &self,
        request: &HttpRequest,
        authorization: Option<&HeaderValue>,
    ) -> Result<RawResponse, Error> {
        let transport_error = |source: reqwest::Error| Error::Transport {
            method: request.method.to_string(),
            path: request.url.path().to_owned(),
            source: source.without_url(),
        };

        let mut builder = self
            .http
            .request(request.method.clone(), request.url.clone())
            .header(USER_AGENT, self.user_agent.clone())
            .header(ACCEPT, "application/json");
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value.clone());
        }
        builder = match &request.body {
            Body::Empty => builder,
            Body::Json(bytes) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Form(text) => builder
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(text.clone()),
        };

        let response = builder.send().await.map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response, request).await?;

        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

async fn acquire(semaphore: &Semaphore) -> tokio::sync::SemaphorePermit<'_> {
    semaphore.acquire().await.expect("the semaphore is never closed")
}

/// Tells whether a request goes to a workspace SCIM endpoint.
fn is_scim(url: &Url) -> bool {
    url.path().contains(SCIM_PATH_PREFIX)
}

/// Reads the whole body, failing once it grows past [`MAX_BODY_BYTES`].
async fn read_body(
    mut response: reqwest::Response,
    request: &HttpRequest,
) -> Result<Vec<u8>, Error> {
    let too_large = || Error::Decode {
        method: request.method.to_string(),
        path: request.url.path().to_owned(),
        message: format!(
            "response body exceeds the {} MiB limit",
            MAX_BODY_BYTES / (1024 * 1024)
        ),
    };

    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }

    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|source| Error::Transport {
            method: request.method.to_string(),
            path: request.url.path().to_owned(),
            source: source.without_url(),
        })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
}

fn log_attempt(
    request: &HttpRequest,
    result: &Result<RawResponse, Error>,
    attempt: u32,
    elapsed: Duration,
) {
    let target = log_target(&request.url);
    let elapsed_ms = elapsed.as_millis() as u64;
    match result {
        Ok(response) => tracing::debug!(
            method = %request.method,
            path = %target,
            status = response.status.as_u16(),
            elapsed_ms,
            attempt,
            "http request"
        ),
        Err(error) => tracing::debug!(
            method = %request.method,
            path = %target,
            elapsed_ms,
            attempt,
            error = %error,
            "http request failed"
        ),
    }
}

/// Renders the path and query of `url` with sensitive query values masked.
pub(crate) fn log_target(url: &Url) -> String {
    let Some(_) = url.query() else {
        return url.path().to_owned();
    };

    let mut masked = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url.query_pairs() {
        let sensitive = SENSITIVE_QUERY_KEYS
            .iter()
            .any(|name| key.eq_ignore_ascii_case(name));
        masked.append_pair(&key, if sensitive { "***" } else { &value });
    }
    format!("{}?{}", url.path(), masked.finish())
}

fn retry_reason(outcome: &Result<RawResponse, Error>) -> String {
    match outcome {
        Ok(response) => format!("status {}", response.status.as_u16()),
        Err(error) => error.to_string(),
    }
}

/// Tells whether `needle` occurs in `haystack`.
fn contains_text(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_target_masks_sensitive_query_values() {
        let url = Url::parse("https://h/api/2.0/x?scope=s&token=abc").unwrap();
        assert_eq!(log_target(&url), "/api/2.0/x?scope=s&token=***");
    }

    #[test]
    fn scim_paths_are_recognized() {
        let scim = Url::parse("https://h/api/2.0/preview/scim/v2/Me").unwrap();
        let behind_prefix = Url::parse("https://h/prefix/api/2.0/preview/scim/v2/Groups").unwrap();
        let secrets = Url::parse("https://h/api/2.0/secrets/list?scope=scim").unwrap();
        assert!(is_scim(&scim));
        assert!(is_scim(&behind_prefix));
        assert!(!is_scim(&secrets));
    }

    #[test]
    fn log_target_without_query() {
        let url = Url::parse("https://h/api/2.0/x").unwrap();
        assert_eq!(log_target(&url), "/api/2.0/x");
    }
}
