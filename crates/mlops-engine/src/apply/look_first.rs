//! Creates that are not idempotent, tried again only after looking for what a failed attempt made.
//!
//! A create of a service principal or a token that fails with a dropped connection, a timeout, a
//! server error or an unreadable success response may still have been carried out. Sending it
//! again blindly could make a second service principal or a second token, so each function here
//! looks first. It adopts the service principal that the failed attempt made. It revokes the token
//! that the failed attempt made, because that token's value never arrived.

use mlops_databricks::{CreatedToken, Error, ServicePrincipal, WorkspaceClient};
use mlops_plan::Change;

use super::Context;
use crate::error::EngineError;
use crate::report::Event;

/// Attempts of one create, counting the first.
const CREATE_ATTEMPTS: u32 = 3;

/// Wait before a look, so that a list shows what the failed attempt created.
///
/// NOTE: workspace lists are eventually consistent and no bound on the lag is published; this
/// wait is a guess. A look that still misses the object leads to a second service principal,
/// which the next plan reports, or to a second token, which the next plan revokes.
const LOOK_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Returns whether a failed request may have been carried out by the server.
fn outcome_unknown(error: &Error) -> bool {
    match error {
        Error::Transport { .. } | Error::Timeout { .. } | Error::Decode { .. } => true,
        Error::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

/// Creates the service principal of `change`, adopting the one a failed attempt made.
///
pub(super) async fn create_service_principal(
    context: &Context,
    change: &Change,
    display_name: &str,
    entitlements: &[String],
) -> Result<ServicePrincipal, EngineError> {
    let client = context.client(&change.workspace);
    let address = change.address.as_str();
    let filter = format!("displayName eq \"{display_name}\"");
    let mut attempt = 1;
    loop {
        let error = match client.create_service_principal(display_name, entitlements).await {
            Ok(principal) => return Ok(principal),
            Err(error) => error,
        };
        if !outcome_unknown(&error) || attempt >= CREATE_ATTEMPTS {
            return Err(error.into());
        }
        note_unknown_outcome(context, address, &error);
        tokio::time::sleep(LOOK_DELAY).await;

        let mut found = client.list_service_principals(Some(&filter)).await?;
        match found.len() {
            0 => attempt += 1,
            1 => {
                let principal = found.remove(0);
                context.reporter.report(Event::Note {
                    message: format!("{address}: the failed create made service principal {}, which this apply adopts", principal.id),
                });
                return Ok(principal);
            }
            count => {
                return Err(EngineError::Invalid(format!(
                    "{address}: {count} service principals are named `{display_name}` after a create whose outcome was unknown; delete the extra ones and run apply again"
                )));
            }
        }
    }
}

/// The owner and the comment of the token to create, and the tokens that must stay.
pub(super) struct TokenRequest<'a> {
    pub change: &'a Change,
    /// SCIM id of the service principal.
    pub owner_id: &'a str,
    pub application_id: &'a str,
    pub lifetime_seconds: i64,
    pub comment: &'a str,
    /// Tokens that readers may still use, which a look never revokes.
    pub keep: &'a [String],
}

/// Creates an on-behalf-of token, first revoking any token a failed attempt made.
pub(super) async fn create_token(context: &Context, request: &TokenRequest<'_>) -> Result<CreatedToken, EngineError> {
    let client = context.client(&request.change.workspace);
    let mut attempt = 1;
    loop {
        let error = match client.create_obo_token(request.application_id, Some(request.lifetime_seconds), request.comment).await {
            Ok(created) => return Ok(created),
            Err(error) => error,
        };
        if !outcome_unknown(&error) || attempt >= CREATE_ATTEMPTS {
            return Err(error.into());
        }
        note_unknown_outcome(context, &request.change.address, &error);
        tokio::time::sleep(LOOK_DELAY).await;
        revoke_unrecorded_tokens(context, client, request).await?;
        attempt += 1;
    }
}

/// Revokes the tokens with the request's owner and comment that are not kept.
async fn revoke_unrecorded_tokens(context: &Context, client: &WorkspaceClient, request: &TokenRequest<'_>) -> Result<(), EngineError> {
    for token in client.list_tokens().await? {
        let made_by_failed_attempt = token.owner_id.as_deref() == Some(request.owner_id)
            && token.comment == request.comment
            && !request.keep.contains(&token.token_id);
        if !made_by_failed_attempt {
            continue;
        }
        client.delete_token(&token.token_id).await?;
        context.reporter.report(Event::Note {
            message: format!("{}: revoked token {}, which the failed create made and whose value was lost", request.change.address, token.token_id),
        });
    }
    Ok(())
}

fn note_unknown_outcome(context: &Context, address: &str, error: &Error) {
    tracing::warn!(address, %error, "create failed with an unknown outcome; looking for what it made before trying again");
    context.reporter.report(Event::Note {
        message: format!("{address}: the create failed and may still have been carried out ({error}); looking for it before trying again"),
    });
}
