//! OAuth machine-to-machine (client credentials) access tokens with caching.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;
use url::Url;

use crate::Error;
use crate::client::sensitive_header;
use crate::lenient;
use crate::mask::quote_body;
use crate::retry::RetryMode;
use crate::transport::{AuthKind, Body, HttpRequest, Transport};

/// Time before the reported expiry at which a token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Lifetime assumed when the token response has no `expires_in`: one hour, the value
/// Databricks token responses usually carry. A 401 triggers an early refresh either way.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Upper bound on retries of discovery and token requests.
const TOKEN_RETRY_BUDGET: Duration = Duration::from_secs(60);

/// Form body of the client-credentials grant.
const TOKEN_REQUEST_FORM: &str = "grant_type=client_credentials&scope=all-apis";

/// OAuth client credentials plus the cached access token.
pub(crate) struct OAuthSession {
    discovery_url: Url,
    basic_authorization: HeaderValue,
    token_endpoint: OnceCell<Url>,
    /// Held across a token fetch, so concurrent callers wait for one fetch.
    cache: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    authorization: HeaderValue,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    token_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    #[serde(default, deserialize_with = "lenient::optional_integer")]
    expires_in: Option<i64>,
}

impl OAuthSession {
    pub(crate) fn new(client_id: &str, client_secret: &SecretString, base: &Url) -> Self {
        let mut discovery_url = base.clone();
        discovery_url
            .path_segments_mut()
            .expect("an http or https URL always has a path")
            .pop_if_empty()
            .extend(["oidc", ".well-known", "oauth-authorization-server"]);

        let pair = format!("{client_id}:{}", client_secret.expose_secret());
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        let basic_authorization = sensitive_header(&format!("Basic {encoded}"))
            .expect("base64 text is a valid header value");

        Self {
            discovery_url,
            basic_authorization,
            token_endpoint: OnceCell::new(),
            cache: Mutex::new(None),
        }
    }

    /// Returns the `Authorization` header for API calls, fetching a token when needed.
    pub(crate) async fn authorization(&self, transport: &Transport) -> Result<HeaderValue, Error> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.authorization.clone());
        }

        let token = self.fetch_token(transport).await?;
        let authorization = token.authorization.clone();
        *cache = Some(token);
        Ok(authorization)
    }

    /// Drops the cached token if it is still the one that was rejected.
    pub(crate) async fn invalidate(&self, rejected: &HeaderValue) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|token| token.authorization == rejected)
        {
            *cache = None;
        }
    }

    async fn fetch_token(&self, transport: &Transport) -> Result<CachedToken, Error> {
        let endpoint = self
            .token_endpoint
            .get_or_try_init(|| self.discover(transport))
            .await?
            .clone();

        let request = HttpRequest {
            method: Method::POST,
            url: endpoint.clone(),
            body: Body::Form(TOKEN_REQUEST_FORM.to_owned()),
            auth: AuthKind::Fixed(self.basic_authorization.clone()),
            retry: RetryMode::Idempotent,
            gateway_retries: true,
            budget: transport.options.retry_budget.min(TOKEN_RETRY_BUDGET),
        };
        let response = transport.execute(&request).await?;
        let oauth_error = |status: Option<u16>, message: String| Error::OAuth {
            step: "token request",
            url: endpoint.to_string(),
            status,
            message,
        };

        if !response.status.is_success() {
            let status = response.status.as_u16();
            let mut message = format!("{status} {}", oauth_error_text(&response.body));
            if matches!(status, 400 | 401 | 403) {
                message.push_str(" (check the OAuth client id and client secret)");
            }
            return Err(oauth_error(Some(status), message));
        }

        let parsed: TokenResponse = serde_json::from_slice(&response.body)
            .map_err(|_| oauth_error(None, "the token response is not valid JSON".to_owned()))?;
        let access_token = SecretString::from(
            parsed
                .access_token
                .filter(|token| !token.is_empty())
                .ok_or_else(|| {
                    oauth_error(None, "the token response has no access_token".to_owned())
                })?,
        );
        let authorization = sensitive_header(&format!("Bearer {}", access_token.expose_secret()))
            .ok_or_else(|| {
            oauth_error(
                None,
                "the access token is not a valid header value".to_owned(),
            )
        })?;

        let lifetime = parsed
            .expires_in
            .map(|seconds| Duration::from_secs(seconds.max(0) as u64))
            .unwrap_or(DEFAULT_LIFETIME);
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "fetched OAuth access token"
        );

        Ok(CachedToken {
            authorization,
            refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
        })
    }

    async fn discover(&self, transport: &Transport) -> Result<Url, Error> {
        let request = HttpRequest {
            method: Method::GET,
            url: self.discovery_url.clone(),
            body: Body::Empty,
            auth: AuthKind::Anonymous,
            retry: RetryMode::Idempotent,
            gateway_retries: true,
            budget: transport.options.retry_budget.min(TOKEN_RETRY_BUDGET),
        };
        let response = transport.execute(&request).await?;
        let discovery_error = |status: Option<u16>, message: String| Error::OAuth {
            step: "discovery",
            url: self.discovery_url.to_string(),
            status,
            message,
        };

        if response.status.as_u16() == 404 {
            return Err(discovery_error(
                Some(404),
                "the workspace does not support OAuth (404); use a personal access token"
                    .to_owned(),
            ));
        }
        if !response.status.is_success() {
            let status = response.status.as_u16();
            return Err(discovery_error(
                Some(status),
                format!("{status} {}", oauth_error_text(&response.body)),
            ));
        }

        let document: DiscoveryDocument = serde_json::from_slice(&response.body).map_err(|_| {
            discovery_error(None, "the discovery document is not valid JSON".to_owned())
        })?;
        let endpoint = document.token_endpoint.ok_or_else(|| {
            discovery_error(
                None,
                "the discovery document has no token_endpoint".to_owned(),
            )
        })?;
        let endpoint = Url::parse(&endpoint).map_err(|error| {
            discovery_error(
                None,
                format!("invalid token_endpoint `{endpoint}`: {error}"),
            )
        })?;

        // The client secret goes to this endpoint, so it must live on the workspace host.
        if endpoint.origin() != self.discovery_url.origin() {
            return Err(discovery_error(
                None,
                format!(
                    "token_endpoint `{endpoint}` is not on the workspace host, so the client secret is not sent there"
                ),
            ));
        }
        Ok(endpoint)
    }
}

/// Describes an OAuth error body (`error` and `error_description`) or quotes the body.
fn oauth_error_text(body: &[u8]) -> String {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return quote_body(&String::from_utf8_lossy(body));
    };

    let code = object.get("error").and_then(Value::as_str);
    let description = ["error_description", "message"]
        .iter()
        .find_map(|key| object.get(*key).and_then(Value::as_str));
    match (code, description) {
        (Some(code), Some(description)) => quote_body(&format!("{code}: {description}")),
        (Some(text), None) | (None, Some(text)) => quote_body(text),
        (None, None) => quote_body(&String::from_utf8_lossy(body)),
    }
}
