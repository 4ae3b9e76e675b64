//! Credentials and tuning options of a [`crate::WorkspaceClient`].

use std::time::Duration;

use secrecy::SecretString;

/// Credentials the client authenticates with.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A personal access token or another bearer token.
    Bearer(SecretString),
    /// OAuth machine-to-machine (client credentials) for a service principal.
    OAuthM2m {
        /// OAuth client id, which is the service principal's application id.
        client_id: String,
        /// OAuth client secret.
        client_secret: SecretString,
    },
}

/// Limits, timeouts and retry settings of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Maximum number of requests in flight at once, shared with clients made by
    /// [`crate::WorkspaceClient::with_credentials`]. SCIM requests also share a cap of 4 per
    /// workspace, or of this number when it is lower, because SCIM throttles a workspace above 4.
    pub max_concurrent_requests: usize,
    /// Timeout of one HTTP attempt, from sending the request to reading the whole body.
    pub request_timeout: Duration,
    /// Total time a call may spend on retries before it returns the last error.
    pub retry_budget: Duration,
    /// Value of the `User-Agent` header.
    pub user_agent: String,
    /// First backoff delay. Each later retry doubles it, up to `retry_max_delay`.
    pub retry_base_delay: Duration,
    /// Maximum backoff delay between two attempts, before jitter.
    ///
    /// A `Retry-After` header from the server overrides the backoff and is not capped.
    pub retry_max_delay: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 16,
            request_timeout: Duration::from_secs(60),
            retry_budget: Duration::from_secs(5 * 60),
            user_agent: concat!("mlops-databricks/", env!("CARGO_PKG_VERSION")).to_owned(),
            retry_base_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(10),
        }
    }
}
