//! Error responses in the three shapes the workspace API uses: Databricks, SCIM and OAuth.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Schema URN of SCIM error bodies.
const SCIM_ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Message of the 403 sent for an unknown, expired or revoked token.
pub(crate) const INVALID_TOKEN_MESSAGE: &str = "Invalid access token.";

/// An error response of an emulated endpoint.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// `{"error_code": "...", "message": "..."}`, the form of every non-SCIM endpoint.
    Databricks {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
    /// `{"schemas": [...Error], "detail": "...", "status": "404"}`, the SCIM form.
    Scim {
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: String,
    },
    /// `{"error": "...", "error_description": "..."}`, the OAuth 2.0 form of `/oidc/v1/token`.
    OAuth {
        status: StatusCode,
        error: &'static str,
        description: String,
    },
}

/// The `error_code` of a Databricks error body: usually a name, sometimes the HTTP status number.
#[derive(Debug)]
pub(crate) enum ErrorCode {
    Name(&'static str),
    Number(u16),
}

/// Result of an endpoint handler.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// Builds a Databricks error with a named `error_code`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Databricks {
            status,
            code: ErrorCode::Name(code),
            message: message.into(),
        }
    }

    /// 400 `INVALID_PARAMETER_VALUE`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
    }

    /// 400 `MALFORMED_REQUEST`, for a body that is not the expected JSON.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MALFORMED_REQUEST", message)
    }

    /// 404 `RESOURCE_DOES_NOT_EXIST`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", message)
    }

    /// 403 `PERMISSION_DENIED`.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", message)
    }

    /// 500 `INTERNAL_ERROR`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
    }

    /// 401 for a request without a bearer token.
    pub fn unauthenticated() -> Self {
        // NOTE: the 401 body of the real server is unconfirmed. The numeric error_code mirrors
        // the observed 403 body.
        Self::Databricks {
            status: StatusCode::UNAUTHORIZED,
            code: ErrorCode::Number(401),
            message: "Credential was not sent or was of an unsupported type for this API."
                .to_owned(),
        }
    }

    /// 403 with a numeric `error_code`, as the real server sends for a bad or expired token.
    pub fn invalid_token() -> Self {
        Self::Databricks {
            status: StatusCode::FORBIDDEN,
            code: ErrorCode::Number(403),
            message: INVALID_TOKEN_MESSAGE.to_owned(),
        }
    }

    /// 404 `ENDPOINT_NOT_FOUND` for a method and path that no route serves.
    pub fn endpoint_not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ENDPOINT_NOT_FOUND",
            format!("No API found for '{method} {path}'"),
        )
    }

    /// Builds a SCIM error without `scimType`.
    pub fn scim(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::Scim {
            status,
            scim_type: None,
            detail: detail.into(),
        }
    }

    /// Builds a SCIM error with a `scimType` such as `invalidPath` or `invalidFilter`.
    pub fn scim_typed(
        status: StatusCode,
        scim_type: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self::Scim {
            status,
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }

    /// Returns the HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Databricks { status, .. }
            | Self::Scim { status, .. }
            | Self::OAuth { status, .. } => *status,
        }
    }

    /// Builds the JSON body.
    fn body(&self) -> Value {
        match self {
            Self::Databricks {
                code: ErrorCode::Name(code),
                message,
                ..
            } => {
                json!({ "error_code": code, "message": message })
            }
            Self::Databricks {
                code: ErrorCode::Number(code),
                message,
                ..
            } => {
                json!({ "error_code": code, "message": message })
            }
            Self::Scim {
                status,
                scim_type,
                detail,
            } => {
                let mut body = json!({
                    "schemas": [SCIM_ERROR_SCHEMA],
                    "detail": detail,
                    "status": status.as_u16().to_string(),
                });
                if let Some(scim_type) = scim_type {
                    body["scimType"] = json!(scim_type);
                }
                body
            }
            Self::OAuth {
                error, description, ..
            } => json!({ "error": error, "error_description": description }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();

        // The real server names the reason of an auth failure in this header too.
        if let Self::Databricks {
            code: ErrorCode::Number(_),
            message,
            ..
        } = &self
            && let Ok(value) = HeaderValue::from_str(message)
        {
            response
                .headers_mut()
                .insert("x-databricks-reason-phrase", value);
        }
        response
    }
}
