//! The pure core of `mlops`: no network and no file system.
//!
//! [`desired`] turns a configuration into the objects it declares, [`live`] models what a refresh
//! read from the workspaces, [`diff::plan`] compares desired, recorded and live state into a
//! [`Plan`], and [`render`] writes a plan as text or JSON.

pub mod address;
pub mod desired;
pub mod diff;
pub mod live;
pub mod plan;
pub mod render;

pub use address::Kind;
pub use desired::{DesiredResource, desired};
pub use diff::{PlanError, PlanInput, plan};
pub use live::{Live, LiveWorkspace};
pub use plan::{Action, Change, Operation, Plan, Summary};

/// Returns the hex SHA-256 of a value, the fingerprint kept in state for secrets and tokens.
pub fn fingerprint(value: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(value.as_bytes()))
}
