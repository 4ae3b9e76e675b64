//! Token management (admin) and personal access token endpoints.

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::none_if_not_found;
use crate::{Error, WorkspaceClient, lenient};

/// `expiry_time` of a token that never expires.
pub const NO_EXPIRY: i64 = -1;

/// Metadata of a token, without the token value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenInfo {
    /// Token id (a hex string).
    #[serde(deserialize_with = "lenient::string")]
    pub token_id: String,
    /// Creation time in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "lenient::integer")]
    pub creation_time: i64,
    /// Expiry time in milliseconds since the Unix epoch, or [`NO_EXPIRY`].
    #[serde(default = "no_expiry", deserialize_with = "lenient::integer")]
    pub expiry_time: i64,
    /// Comment given at creation.
    #[serde(default, deserialize_with = "lenient::string_or_null")]
    pub comment: String,
    /// Id of the user who created the token (token management only).
    #[serde(default, deserialize_with = "lenient::optional_string")]
    pub created_by_id: Option<String>,
    /// User name of the creator (token management only).
    #[serde(default, deserialize_with = "lenient::optional_string")]
    pub created_by_username: Option<String>,
    /// Id of the principal that owns the token (token management only).
    #[serde(default, deserialize_with = "lenient::optional_string")]
    pub owner_id: Option<String>,
    /// Workspace the token belongs to (token management only).
    #[serde(default, deserialize_with = "lenient::optional_string")]
    pub workspace_id: Option<String>,
}

fn no_expiry() -> i64 {
    NO_EXPIRY
}

/// A newly created token with its value, which the server returns only once.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    /// Token metadata.
    pub info: TokenInfo,
    /// Token value.
    pub value: SecretString,
}

#[derive(Deserialize)]
struct CreatedTokenBody {
    token_info: TokenInfo,
    token_value: String,
}

impl From<CreatedTokenBody> for CreatedToken {
    fn from(body: CreatedTokenBody) -> Self {
        Self {
            info: body.token_info,
            value: SecretString::from(body.token_value),
        }
    }
}

#[derive(Deserialize)]
struct TokenList {
    #[serde(default, deserialize_with = "lenient::list")]
    token_infos: Vec<TokenInfo>,
}

#[derive(Deserialize)]
struct TokenBody {
    token_info: TokenInfo,
}

impl WorkspaceClient {
    /// Creates an on-behalf-of token for the service principal with `application_id`.
    ///
    /// Without `lifetime_seconds` the workspace's default lifetime applies.
    pub async fn create_obo_token(
        &self,
        application_id: &str,
        lifetime_seconds: Option<i64>,
        comment: &str,
    ) -> Result<CreatedToken, Error> {
        let mut body = json!({ "application_id": application_id, "comment": comment });
        set_lifetime(&mut body, lifetime_seconds);

        let call = self
            .call(
                Method::POST,
                &["token-management", "on-behalf-of", "tokens"],
            )
            .json(&body)
            .duplicable_create();
        let created: CreatedTokenBody = self.send_json(call).await?;
        Ok(created.into())
    }

    /// Lists every token in the workspace (admins only).
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        let call = self.call(Method::GET, &["token-management", "tokens"]);
        let list: TokenList = self.send_json(call).await?;
        Ok(list.token_infos)
    }

    /// Fetches a token's metadata, or returns `None` when it does not exist.
    pub async fn get_token(&self, token_id: &str) -> Result<Option<TokenInfo>, Error> {
        let call = self.call(Method::GET, &["token-management", "tokens", token_id]);
        let body: Option<TokenBody> = none_if_not_found(self.send_json(call).await)?;
        Ok(body.map(|body| body.token_info))
    }

    /// Deletes any token (admins only), returning `false` when it was already gone.
    pub async fn delete_token(&self, token_id: &str) -> Result<bool, Error> {
        let call = self.call(Method::DELETE, &["token-management", "tokens", token_id]);
        let deleted = none_if_not_found(self.send_void(call).await)?;
        Ok(deleted.is_some())
    }

    /// Creates a personal access token for the caller.
    pub async fn create_personal_token(
        &self,
        lifetime_seconds: Option<i64>,
        comment: &str,
    ) -> Result<CreatedToken, Error> {
        let mut body = json!({ "comment": comment });
        set_lifetime(&mut body, lifetime_seconds);

        let call = self
            .call(Method::POST, &["token", "create"])
            .json(&body)
            .duplicable_create();
        let created: CreatedTokenBody = self.send_json(call).await?;
        Ok(created.into())
    }

    /// Revokes one of the caller's own tokens.
    pub async fn revoke_personal_token(&self, token_id: &str) -> Result<(), Error> {
        let call = self
            .call(Method::POST, &["token", "delete"])
            .json(&json!({ "token_id": token_id }));
        self.send_void(call).await
    }
}

fn set_lifetime(body: &mut Value, lifetime_seconds: Option<i64>) {
    if let Some(seconds) = lifetime_seconds {
        body["lifetime_seconds"] = json!(seconds);
    }
}
