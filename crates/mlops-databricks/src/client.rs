//! The [`WorkspaceClient`] handle and the request builder its endpoint modules use.

use std::fmt;
use std::sync::{Arc, OnceLock};

use reqwest::Method;
use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Semaphore;
use url::{Host, Url};

use crate::oauth::OAuthSession;
use crate::response::{CallId, RawResponse, check_void, decode_json, error_from_response};
use crate::retry::RetryMode;
use crate::transport::{
    AuthKind, Body, HttpRequest, MAX_CONCURRENT_SCIM_REQUESTS, Transport, WorkspaceAuth,
};
use crate::{ClientOptions, Credentials, Error};

/// Typed async client of one Databricks workspace.
///
/// Cloning is cheap: clones share the connection pool, the concurrency limit and the
/// OAuth token cache.
#[derive(Clone)]
pub struct WorkspaceClient {
    transport: Arc<Transport>,
}

impl fmt::Debug for WorkspaceClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WorkspaceClient")
            .field("base_url", &self.transport.base_url)
            .finish_non_exhaustive()
    }
}

impl WorkspaceClient {
    /// Creates a client for the workspace at `base_url`, such as `https://dbc-1234.cloud.databricks.com`.
    ///
    /// Plain `http` is accepted only for loopback hosts (an emulator), so that a token is
    /// never sent unencrypted over a network.
    pub fn new(
        base_url: &str,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Self, Error> {
        validate_options(&options)?;
        let base = parse_base_url(base_url)?;

        // reqwest is built with `rustls-no-provider`, so a crypto provider must be installed
        // once per process. An error here means another provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let http = shared_http_client()?;
        let user_agent =
            HeaderValue::from_str(&options.user_agent).map_err(|_| Error::InvalidOption {
                option: "user_agent",
                reason: "contains characters that are not allowed in an HTTP header".to_owned(),
            })?;

        let auth = workspace_auth(credentials, &base)?;
        let base_url = base.as_str().trim_end_matches('/').to_owned();
        let transport = Transport {
            http,
            user_agent,
            base,
            base_url,
            auth,
            semaphore: Arc::new(Semaphore::new(options.max_concurrent_requests)),
            scim_semaphore: Arc::new(Semaphore::new(
                options
                    .max_concurrent_requests
                    .min(MAX_CONCURRENT_SCIM_REQUESTS),
            )),
            options,
        };

        Ok(Self {
            transport: Arc::new(transport),
        })
    }

    /// Creates a client for the same workspace that authenticates with other credentials.
    ///
    /// The new client shares the connection pool and the concurrency limit, but not the
    /// OAuth token cache.
    pub fn with_credentials(&self, credentials: Credentials) -> Result<Self, Error> {
        let current = &self.transport;
        let transport = Transport {
            http: current.http.clone(),
            user_agent: current.user_agent.clone(),
            base: current.base.clone(),
            base_url: current.base_url.clone(),
            auth: workspace_auth(credentials, &current.base)?,
            semaphore: current.semaphore.clone(),
            scim_semaphore: current.scim_semaphore.clone(),
            options: current.options.clone(),
        };

        Ok(Self {
            transport: Arc::new(transport),
        })
    }

    /// Returns the normalized workspace URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.transport.base_url
    }

    /// Starts a call to `/api/2.0/<segments>`, percent-encoding each segment.
    pub(crate) fn call(&self, method: Method, segments: &[&str]) -> ApiCall {
        let mut url = self.transport.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("an http or https URL always has a path");
            path.pop_if_empty().extend(["api", "2.0"]).extend(segments);
        }

        ApiCall {
            method,
            url,
            body: Body::Empty,
            retry: RetryMode::Idempotent,
        }
    }

    /// Sends a call and returns the response when its status is a success.
    pub(crate) async fn send(&self, call: ApiCall) -> Result<(CallId, RawResponse), Error> {
        let call_id = CallId {
            method: call.method.to_string(),
            path: call.url.path().to_owned(),
        };
        let request = HttpRequest {
            method: call.method,
            url: call.url,
            body: call.body,
            auth: AuthKind::Workspace,
            retry: call.retry,
            gateway_retries: false,
            budget: self.transport.options.retry_budget,
        };

        let response = self.transport.execute(&request).await?;
        if response.status.is_success() {
            Ok((call_id, response))
        } else {
            Err(error_from_response(&call_id, &response))
        }
    }

    /// Sends a call and decodes its JSON response.
    pub(crate) async fn send_json<T: DeserializeOwned>(&self, call: ApiCall) -> Result<T, Error> {
        let (call_id, response) = self.send(call).await?;
        decode_json(&call_id, &response)
    }

    /// Sends a call whose response body carries nothing the caller needs.
    pub(crate) async fn send_void(&self, call: ApiCall) -> Result<(), Error> {
        let (call_id, response) = self.send(call).await?;
        check_void(&call_id, &response)
    }
}

/// One API request under construction.
pub(crate) struct ApiCall {
    method: Method,
    url: Url,
    body: Body,
    retry: RetryMode,
}

impl ApiCall {
    /// Appends a query parameter.
    pub(crate) fn query(mut self, key: &str, value: &str) -> Self {
        self.url.query_pairs_mut().append_pair(key, value);
        self
    }

    /// Sets a JSON request body.
    pub(crate) fn json(mut self, body: &Value) -> Self {
        self.body = Body::Json(body.to_string().into_bytes());
        self
    }

    /// Marks the call as creating an object, so that it is never sent twice after a
    /// transport error or timeout.
    pub(crate) fn create(mut self) -> Self {
        self.retry = RetryMode::Create;
        self
    }

    /// Marks the call as creating an object that a repeat would duplicate, so that it is
    /// not sent again after a 503 either.
    pub(crate) fn duplicable_create(mut self) -> Self {
        self.retry = RetryMode::DuplicableCreate;
        self
    }
}

/// Returns the HTTP client that every workspace client of the process shares.
///
/// One client has one TLS configuration, with its parsed root certificates, and one connection
/// pool per host. Building them for each workspace cost about 0.25 MiB of peak memory per
/// workspace (10 MiB for 42 workspaces) in the fleet plan of `mlops-bench`.
///
/// NOTE: a pooled connection runs on the tokio runtime that opened it, so a process that drops
/// one runtime and talks to the same host from another may see that connection fail once.
fn shared_http_client() -> Result<reqwest::Client, Error> {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(http) = HTTP.get() {
        return Ok(http.clone());
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|source| Error::Client { source })?;
    Ok(HTTP.get_or_init(|| http).clone())
}

/// Turns a 404 into `None`.
pub(crate) fn none_if_not_found<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

fn validate_options(options: &ClientOptions) -> Result<(), Error> {
    if options.max_concurrent_requests == 0 {
        return Err(Error::InvalidOption {
            option: "max_concurrent_requests",
            reason: "must be at least 1".to_owned(),
        });
    }
    if options.request_timeout.is_zero() {
        return Err(Error::InvalidOption {
            option: "request_timeout",
            reason: "must be greater than zero".to_owned(),
        });
    }
    Ok(())
}

fn workspace_auth(credentials: Credentials, base: &Url) -> Result<WorkspaceAuth, Error> {
    match credentials {
        Credentials::Bearer(token) => {
            let header = sensitive_header(&format!("Bearer {}", token.expose_secret())).ok_or(
                Error::InvalidOption {
                    option: "credentials",
                    reason: "the token contains characters that are not allowed in an HTTP header"
                        .to_owned(),
                },
            )?;
            Ok(WorkspaceAuth::Bearer(header))
        }
        Credentials::OAuthM2m {
            client_id,
            client_secret,
        } => {
            let session = OAuthSession::new(&client_id, &client_secret, base);
            Ok(WorkspaceAuth::OAuth(Box::new(session)))
        }
    }
}

/// Builds a header value that hyper and logs treat as sensitive.
pub(crate) fn sensitive_header(text: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn parse_base_url(text: &str) -> Result<Url, Error> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: text.to_owned(),
        reason: reason.to_owned(),
    };

    let url = Url::parse(text.trim())
        .map_err(|error| invalid(&format!("{error}; expected https://<workspace-host>")))?;

    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid("the scheme must be https"));
    }
    let Some(host) = url.host() else {
        return Err(invalid("the URL has no host"));
    };
    if url.scheme() == "http" && !is_loopback(&host) {
        return Err(invalid(
            "plain http is allowed only for loopback hosts; use https for a workspace",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("remove the user name and password from the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("remove the query and fragment from the URL"));
    }

    Ok(url)
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(address) => address.is_loopback(),
        Host::Ipv6(address) => address.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Result<WorkspaceClient, Error> {
        WorkspaceClient::new(
            url,
            Credentials::Bearer("dapi-test".into()),
            ClientOptions::default(),
        )
    }

    #[test]
    fn base_url_drops_trailing_slash() {
        let client = client("https://dbc-1.cloud.databricks.com/").unwrap();
        assert_eq!(client.base_url(), "https://dbc-1.cloud.databricks.com");
    }

    #[test]
    fn plain_http_only_for_loopback() {
        assert!(client("http://127.0.0.1:8080").is_ok());
        assert!(client("http://localhost:8080").is_ok());
        assert!(client("http://[::1]:8080").is_ok());
        let error = client("http://dbc-1.cloud.databricks.com").unwrap_err();
        assert!(error.to_string().contains("use https"), "{error}");
    }

    #[test]
    fn rejects_other_schemes() {
        assert!(matches!(
            client("ftp://host"),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(matches!(client("not a url"), Err(Error::InvalidUrl { .. })));
    }

    #[test]
    fn call_encodes_segments() {
        let client = client("https://dbc-1.cloud.databricks.com/prefix/").unwrap();
        let call = client.call(Method::GET, &["preview", "scim", "v2", "Groups", "a b/c"]);
        assert_eq!(
            call.url.path(),
            "/prefix/api/2.0/preview/scim/v2/Groups/a%20b%2Fc"
        );
    }

    #[test]
    fn debug_hides_token() {
        let client = client("https://dbc-1.cloud.databricks.com").unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("dapi-test"), "{debug}");
    }

    /// Peak numbers of requests in flight at a test server, SCIM and others apart.
    #[derive(Default)]
    struct Peaks {
        scim: std::sync::atomic::AtomicUsize,
        scim_peak: std::sync::atomic::AtomicUsize,
        other: std::sync::atomic::AtomicUsize,
        other_peak: std::sync::atomic::AtomicUsize,
    }

    /// Serves every path with `{}` after 50 ms, recording the peak concurrency.
    async fn serve_slowly(peaks: Arc<Peaks>) -> String {
        use std::sync::atomic::Ordering;

        let handler = move |uri: axum::http::Uri| {
            let peaks = peaks.clone();
            async move {
                let (current, peak) = match uri.path().contains("/scim/") {
                    true => (&peaks.scim, &peaks.scim_peak),
                    false => (&peaks.other, &peaks.other_peak),
                };
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                current.fetch_sub(1, Ordering::SeqCst);
                axum::Json(serde_json::json!({}))
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, axum::Router::new().fallback(handler)).await.unwrap();
        });
        format!("http://{address}")
    }

    #[tokio::test]
    async fn scim_requests_have_a_lower_cap() {
        use std::sync::atomic::Ordering;

        let peaks = Arc::new(Peaks::default());
        let client = client(&serve_slowly(peaks.clone()).await).unwrap();
        let mut calls = tokio::task::JoinSet::new();
        for index in 0..24 {
            let client = client.clone();
            let segments: &[&str] = match index % 2 {
                0 => &["preview", "scim", "v2", "Groups"],
                _ => &["secrets", "scopes", "list"],
            };
            calls.spawn(async move { client.send_void(client.call(Method::GET, segments)).await });
        }
        for result in calls.join_all().await {
            result.unwrap();
        }

        let scim_peak = peaks.scim_peak.load(Ordering::SeqCst);
        let other_peak = peaks.other_peak.load(Ordering::SeqCst);
        assert!(scim_peak <= MAX_CONCURRENT_SCIM_REQUESTS, "{scim_peak} SCIM requests in flight");
        assert!(other_peak > MAX_CONCURRENT_SCIM_REQUESTS, "other requests peaked at {other_peak}");
    }

    #[test]
    fn zero_concurrency_is_rejected() {
        let options = ClientOptions {
            max_concurrent_requests: 0,
            ..ClientOptions::default()
        };
        let result = WorkspaceClient::new("https://h", Credentials::Bearer("t".into()), options);
        assert!(matches!(result, Err(Error::InvalidOption { .. })));
    }
}
