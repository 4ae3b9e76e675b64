//! The `mlops` state file and its writer lock.
//!
//! The state file is a JSON document that records every object `mlops` manages: its address,
//! kind, workspace, remote id and the attributes that matter for diffing. It never contains a
//! secret value, so it is safe to commit to git. [`StateStore`] reads and validates it, and
//! writes it atomically (temporary file in the same folder, fsync, rename, fsync of the folder)
//! with mode 0600.
//!
//! Writers take a [`StateLock`] first. The lock is an operating-system file lock on
//! `<state path>.lock`, and the file records the holder as [`LockInfo`] so that a waiting
//! process can name it. Because the operating system releases the lock when its process exits,
//! a crashed run does not block the next one. [`force_unlock`] removes a lock file left behind.
//!
//! The user-facing description of the format is `docs/state-format.md`.

mod error;
mod host;
mod lock;
mod model;
mod store;
mod validate;

pub use error::{HolderStatus, StateError};
pub use lock::{LockInfo, StateLock, force_unlock, lock_path};
pub use model::{FORMAT_VERSION, Intent, Resource, State};
pub use store::StateStore;
pub use validate::Problem;
