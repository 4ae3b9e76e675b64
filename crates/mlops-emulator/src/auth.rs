//! Bearer-token authentication of a request.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::api_error::{ApiError, ApiResult};
use crate::credentials::sha256_hex;
use crate::model::{PrincipalId, Workspace};
use crate::server::AppState;

/// The principal that sent a request, as its bearer token identifies it.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub principal: PrincipalId,
    /// userName of a user, applicationId of a service principal.
    pub user_name: String,
}

impl Caller {
    /// Returns whether the caller is an admin of the workspace now.
    pub fn is_admin(&self, ws: &Workspace) -> bool {
        ws.is_admin(self.principal)
    }

    /// Fails with 403 `PERMISSION_DENIED` and `message` unless the caller is an admin.
    pub fn require_admin(&self, ws: &Workspace, message: &str) -> ApiResult<()> {
        if self.is_admin(ws) {
            return Ok(());
        }
        Err(ApiError::permission_denied(message))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?;
        state.read(|ws, now_ms| authenticate(ws, &token, now_ms))
    }
}

/// Returns the bearer token of the request, or 401 when there is none.
fn bearer_token(parts: &Parts) -> ApiResult<String> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(ApiError::unauthenticated)?;
    let value = header.to_str().map_err(|_| ApiError::unauthenticated())?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(ApiError::unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthenticated());
    }
    Ok(token.trim().to_owned())
}

/// Finds the principal of a personal, on-behalf-of or OAuth token that is valid at `now_ms`.
/// Unknown, expired and revoked tokens, and tokens of inactive principals, get the 403 of
/// the real server.
pub(crate) fn authenticate(ws: &Workspace, token: &str, now_ms: i64) -> ApiResult<Caller> {
    let hash = sha256_hex(token);
    let owner = if let Some(stored) = ws.tokens.get(&hash) {
        (!stored.is_expired(now_ms)).then_some(stored.owner)
    } else if let Some(access) = ws.access_tokens.get(&hash) {
        (now_ms <= access.expiry_time).then_some(access.owner)
    } else {
        None
    };

    let principal = owner
        .filter(|owner| ws.principal_active(*owner))
        .ok_or_else(ApiError::invalid_token)?;
    let user_name = ws
        .principal_name(principal)
        .ok_or_else(ApiError::invalid_token)?
        .to_owned();
    Ok(Caller {
        principal,
        user_name,
    })
}
