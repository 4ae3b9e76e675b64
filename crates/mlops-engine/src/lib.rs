//! Talks to the workspaces on behalf of the plan: [`refresh`] reads the live state that a plan
//! is made from, and [`apply`] carries a plan out step by step, saving state after every step.

pub mod apply;
pub mod connect;
pub mod error;
pub mod refresh;
pub mod report;

pub use apply::{ApplyOptions, ApplyOutcome, apply};
pub use connect::{Endpoint, Workspaces, connect};
pub use error::EngineError;
pub use refresh::refresh;
pub use report::{Event, Reporter};
