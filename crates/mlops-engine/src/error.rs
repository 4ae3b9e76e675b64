//! Errors of refresh and apply.

/// A failure while reading or changing a workspace.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("workspace `{workspace}` is {actual}, but the configuration says workspace_id {expected}")]
    WorkspaceMismatch { workspace: String, expected: String, actual: String },
    #[error("workspace `{workspace}` did not send the X-Databricks-Org-Id header, so its identity cannot be checked")]
    MissingWorkspaceId { workspace: String },
    #[error("failed to read workspace `{workspace}`")]
    Refresh {
        workspace: String,
        #[source]
        source: Box<mlops_databricks::Error>,
    },
    #[error("{address}: {action} failed")]
    Step {
        address: String,
        action: String,
        #[source]
        source: Box<EngineError>,
    },
    #[error(transparent)]
    Api(Box<mlops_databricks::Error>),
    #[error(transparent)]
    State(Box<mlops_state::StateError>),
    #[error("{0}")]
    Invalid(String),
    #[error("credentials for workspace `{workspace}`: {message}")]
    Credentials { workspace: String, message: String, hint: String },
}

impl EngineError {
    /// Returns what the user can do about the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            EngineError::WorkspaceMismatch { workspace, actual, .. } => Some(format!(
                "check the host of workspace `{workspace}`, or set its workspace_id to {actual} if that is the intended workspace"
            )),
            EngineError::Credentials { hint, .. } => Some(hint.clone()),
            EngineError::Step { source, .. } => source.hint(),
            EngineError::State(error) => error.hint(),
            EngineError::Refresh { source, .. } => Some(refresh_hint(source).to_owned()),
            EngineError::MissingWorkspaceId { workspace } => Some(format!(
                "check that the host of workspace `{workspace}` is the workspace URL itself, not a proxy or another service"
            )),
            _ => None,
        }
    }
}

/// Returns the fix for a failed read, by what failed.
fn refresh_hint(source: &mlops_databricks::Error) -> &'static str {
    match source {
        error if error.is_auth() => "check the credentials of that workspace, then run the command again",
        mlops_databricks::Error::Transport { .. } | mlops_databricks::Error::Timeout { .. } => {
            "check that the host of that workspace is right and reachable, then run the command again"
        }
        error if matches!(error.status(), Some(429 | 500 | 502 | 503 | 504)) => {
            "the workspace kept throttling or failing until the retry budget ran out: run the command again later, or raise MLOPS_RETRY_BUDGET_SECONDS (default 300)"
        }
        _ => "check the host and the credentials of that workspace, then run the command again",
    }
}

impl From<mlops_databricks::Error> for EngineError {
    fn from(error: mlops_databricks::Error) -> Self {
        EngineError::Api(Box::new(error))
    }
}

impl From<mlops_state::StateError> for EngineError {
    fn from(error: mlops_state::StateError) -> Self {
        EngineError::State(Box::new(error))
    }
}

impl EngineError {
    /// Wraps a failed read of a workspace.
    pub fn refresh(workspace: &str, source: mlops_databricks::Error) -> Self {
        EngineError::Refresh { workspace: workspace.to_owned(), source: Box::new(source) }
    }
}
