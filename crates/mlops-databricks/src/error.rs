//! The error type of every client call.

use std::time::Duration;

/// Error codes that mean the requested object does not exist.
const NOT_FOUND_CODES: [&str; 3] = ["RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "SCIM_404"];

/// Error codes that mean the object to create exists already.
const ALREADY_EXISTS_CODES: [&str; 3] = ["RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS", "SCIM_409"];

/// Failure of a call to a Databricks workspace, or of building the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The workspace URL given to [`crate::WorkspaceClient::new`] cannot be used.
    #[error("invalid workspace URL `{url}`: {reason}")]
    InvalidUrl {
        /// URL as given.
        url: String,
        /// Reason for the rejection, including the fix.
        reason: String,
    },

    /// A [`crate::ClientOptions`] value is out of range.
    #[error("invalid client option `{option}`: {reason}")]
    InvalidOption {
        /// Name of the option field.
        option: &'static str,
        /// Reason for the rejection.
        reason: String,
    },

    /// The HTTP client could not be built (TLS setup, for one).
    #[error("failed to build the HTTP client")]
    Client {
        /// Error from reqwest.
        #[source]
        source: reqwest::Error,
    },

    /// The workspace returned an error status.
    ///
    /// SCIM errors carry `error_code` `SCIM_<status>`. A body without an error code gets a
    /// code derived from the HTTP reason phrase, such as `NOT_FOUND`.
    #[error("{method} {path} failed: {status} {error_code}: {message}")]
    Api {
        /// HTTP method.
        method: String,
        /// URL path without the query.
        path: String,
        /// HTTP status code.
        status: u16,
        /// Databricks error code, such as `RESOURCE_DOES_NOT_EXIST`.
        error_code: String,
        /// Server message, masked and cut to 200 characters when the body was not JSON.
        message: String,
    },

    /// The workspace rejected the credentials (401, or 403 for an invalid token).
    #[error(
        "{method} {path} failed: {status} {message} (check that the token or OAuth client \
         credentials are valid for this workspace and have not expired)"
    )]
    Auth {
        /// HTTP method.
        method: String,
        /// URL path without the query.
        path: String,
        /// HTTP status code (401 or 403).
        status: u16,
        /// Server message.
        message: String,
    },

    /// The request could not be sent or its response could not be read.
    ///
    /// For a create call the server may still have carried out the request.
    #[error("{method} {path} failed: could not send the request or read the response")]
    Transport {
        /// HTTP method.
        method: String,
        /// URL path without the query.
        path: String,
        /// Error from reqwest, without the URL.
        #[source]
        source: reqwest::Error,
    },

    /// No complete response arrived within the request timeout.
    ///
    /// For a create call the server may still have carried out the request.
    #[error("{method} {path} timed out after {}s", timeout.as_secs_f64())]
    Timeout {
        /// HTTP method.
        method: String,
        /// URL path without the query.
        path: String,
        /// Request timeout that ran out.
        timeout: Duration,
    },

    /// A successful response could not be decoded.
    #[error("{method} {path} returned an invalid response: {message}")]
    Decode {
        /// HTTP method.
        method: String,
        /// URL path without the query.
        path: String,
        /// Problem found: invalid JSON, a missing field, the content type or the size.
        message: String,
    },

    /// OAuth machine-to-machine authentication failed.
    #[error("OAuth {step} at {url} failed: {message}")]
    OAuth {
        /// `discovery` or `token request`.
        step: &'static str,
        /// Endpoint URL.
        url: String,
        /// HTTP status code, when the endpoint returned one.
        status: Option<u16>,
        /// Cause of the failure, including the fix.
        message: String,
    },
}

impl Error {
    /// Returns the HTTP status of an error response, if the server sent one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Auth { status, .. } => Some(*status),
            Error::OAuth { status, .. } => *status,
            _ => None,
        }
    }

    /// Returns the Databricks error code of an API error.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Error::Api { error_code, .. } => Some(error_code),
            _ => None,
        }
    }

    /// Tells whether the requested object does not exist (404 or `RESOURCE_DOES_NOT_EXIST`).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Api {
                status, error_code, ..
            } => *status == 404 || NOT_FOUND_CODES.contains(&error_code.as_str()),
            _ => false,
        }
    }

    /// Tells whether the object to create exists already.
    ///
    /// Matches `RESOURCE_ALREADY_EXISTS` and `ALREADY_EXISTS` with any status (the secrets
    /// API may use 400 or 409), a SCIM 409, and a 400 or 409 whose message contains
    /// "already exists".
    pub fn is_already_exists(&self) -> bool {
        match self {
            Error::Api {
                status,
                error_code,
                message,
                ..
            } => {
                let by_code = ALREADY_EXISTS_CODES.contains(&error_code.as_str());
                let by_message = matches!(status, 400 | 409)
                    && message.to_ascii_lowercase().contains("already exists");
                by_code || by_message
            }
            _ => false,
        }
    }

    /// Tells whether the caller lacks a permission (403 or `PERMISSION_DENIED`).
    ///
    /// An invalid token is an [`Error::Auth`], not a permission error.
    pub fn is_permission_denied(&self) -> bool {
        match self {
            Error::Api {
                status, error_code, ..
            } => *status == 403 || error_code == "PERMISSION_DENIED" || error_code == "SCIM_403",
            _ => false,
        }
    }

    /// Tells whether the credentials were rejected.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth { .. } | Error::OAuth { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, error_code: &str, message: &str) -> Error {
        Error::Api {
            method: "POST".into(),
            path: "/api/2.0/secrets/put".into(),
            status,
            error_code: error_code.into(),
            message: message.into(),
        }
    }

    #[test]
    fn api_message_names_method_and_path() {
        let error = api(404, "RESOURCE_DOES_NOT_EXIST", "Scope x does not exist!");
        assert_eq!(
            error.to_string(),
            "POST /api/2.0/secrets/put failed: 404 RESOURCE_DOES_NOT_EXIST: Scope x does not exist!"
        );
    }

    #[test]
    fn not_found_by_status_or_code() {
        assert!(api(404, "NOT_FOUND", "").is_not_found());
        assert!(api(400, "RESOURCE_DOES_NOT_EXIST", "").is_not_found());
        assert!(!api(400, "INVALID_PARAMETER_VALUE", "").is_not_found());
    }

    #[test]
    fn already_exists_with_400_and_409() {
        assert!(api(400, "RESOURCE_ALREADY_EXISTS", "Scope a already exists!").is_already_exists());
        assert!(api(409, "RESOURCE_ALREADY_EXISTS", "").is_already_exists());
        assert!(api(409, "SCIM_409", "Group with name x already exists.").is_already_exists());
        assert!(api(400, "SCIM_400", "Group with name x already exists.").is_already_exists());
        assert!(!api(400, "INVALID_PARAMETER_VALUE", "bad name").is_already_exists());
    }

    #[test]
    fn permission_denied_by_status_or_code() {
        assert!(api(403, "PERMISSION_DENIED", "").is_permission_denied());
        assert!(!api(404, "NOT_FOUND", "").is_permission_denied());
    }

    #[test]
    fn status_of_each_variant() {
        assert_eq!(api(409, "X", "").status(), Some(409));
        let timeout = Error::Timeout {
            method: "GET".into(),
            path: "/".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(timeout.status(), None);
    }
}
