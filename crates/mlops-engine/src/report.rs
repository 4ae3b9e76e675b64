//! Progress events of refresh and apply, for the command line to print.

use std::time::Duration;

/// Something worth telling the user while a command runs.
#[derive(Debug, Clone)]
pub enum Event {
    /// A workspace was read completely.
    Refreshed { workspace: String, requests: usize },
    /// Apply is about to run this many steps.
    ApplyStarted { steps: usize },
    /// An apply step started.
    StepStarted { address: String, action: String },
    /// An apply step ended.
    StepFinished { address: String, action: String, elapsed: Duration, remote_id: Option<String> },
    /// A free-form note about apply, such as the first-token bootstrap.
    Note { message: String },
}

/// Receives events; implementations must be cheap and must not block.
pub trait Reporter: Send + Sync {
    /// Handles one event.
    fn report(&self, event: Event);
}

/// A reporter that drops every event.
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _event: Event) {}
}
