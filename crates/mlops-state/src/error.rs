//! Errors of the state file and its lock, each naming the file, the problem and the fix.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lock::LockInfo;
use crate::model::FORMAT_VERSION;
use crate::validate::Problem;

/// Liveness of the process recorded in a lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderStatus {
    /// The recorded process runs on this host.
    Running,
    /// The recorded process does not run on this host, so another process holds the lock.
    NotRunning,
    /// The recorded process runs on another host, or this platform cannot check processes.
    Unknown,
}

/// Failure to read, write or lock a state file.
///
/// The message names the file and the problem, and [`StateError::hint`] returns the fix.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file system operation failed.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The file is not valid JSON.
    #[error("state file `{}` is not valid JSON at line {line}, column {column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        /// The JSON ends before the document is complete.
        truncated: bool,
    },

    /// The file is JSON but its fields do not match the state format.
    #[error("state file `{}` does not match the state format at line {line}, column {column}: {message}", path.display())]
    Format {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// The file has a format version that this build does not read or write.
    #[error("state file `{}` has format version {found}, but this mlops supports only version {FORMAT_VERSION}", path.display())]
    UnsupportedVersion { path: PathBuf, found: u64 },

    /// The state breaks a rule of the format.
    #[error("state file `{}` is invalid: {problem}", path.display())]
    Invalid { path: PathBuf, problem: Problem },

    /// Another process held the lock for the whole timeout.
    #[error("the state `{}` is locked, and waiting {timeout:?} for it (--lock-timeout) did not free it: {}", state_path.display(), describe_holder(holder.as_deref(), *status))]
    LockTimeout {
        state_path: PathBuf,
        lock_path: PathBuf,
        timeout: Duration,
        /// Holder recorded in the lock file, if the file could be read and parsed.
        holder: Option<Box<LockInfo>>,
        status: HolderStatus,
    },

    /// There is no lock file to remove.
    #[error("no lock file found at `{}`", lock_path.display())]
    LockNotFound { lock_path: PathBuf },

    /// The lock file does not contain a readable holder record.
    #[error("lock file `{}` contains no readable holder record", lock_path.display())]
    LockUnreadable { lock_path: PathBuf },

    /// The lock id given to `force_unlock` is not the id in the lock file.
    #[error("lock id `{requested}` does not match the lock in `{}`, whose id is `{actual}`", lock_path.display())]
    LockIdMismatch {
        lock_path: PathBuf,
        requested: String,
        actual: String,
    },

    /// `force_unlock` found the lock held by a process on this host.
    #[error("lock `{}` in `{}` is held by running process {} on this host ({}, since {})", holder.id, lock_path.display(), holder.pid, holder.operation, holder.created)]
    LockHeld {
        lock_path: PathBuf,
        holder: Box<LockInfo>,
    },

    /// `force_unlock` found the lock held although the recorded process is not running.
    #[error("the lock in `{}` is held by a process that did not record itself: recorded process {} is not running on this host", lock_path.display(), holder.pid)]
    LockHeldByUnrecordedProcess {
        lock_path: PathBuf,
        holder: Box<LockInfo>,
    },
}

impl StateError {
    /// Returns how to fix the error, when there is more to say than the message.
    pub fn hint(&self) -> Option<String> {
        match self {
            StateError::Io { source, path, .. } => io_hint(source, path),
            StateError::Syntax { truncated, .. } => Some(syntax_hint(*truncated)),
            StateError::Format { .. } => Some(RESTORE_HINT.to_string()),
            StateError::UnsupportedVersion { found, .. } => Some(version_hint(*found)),
            StateError::Invalid { problem, .. } => Some(problem.hint()),
            StateError::LockTimeout {
                holder,
                status,
                lock_path,
                ..
            } => Some(timeout_hint(holder.as_deref(), *status, lock_path)),
            StateError::LockNotFound { .. } => Some("the state is not locked".to_string()),
            StateError::LockUnreadable { lock_path } => Some(format!(
                "delete `{}` if no mlops process is running",
                lock_path.display()
            )),
            StateError::LockIdMismatch { actual, .. } => Some(format!(
                "check that lock `{actual}` is the one to break, then run `mlops force-unlock {actual}`"
            )),
            StateError::LockHeld { holder, .. } => Some(format!(
                "wait for process {} to finish, or stop it, because a lock held by a running \
                 process cannot be forced",
                holder.pid
            )),
            StateError::LockHeldByUnrecordedProcess { lock_path, .. } => {
                Some(find_holder_hint(lock_path))
            }
        }
    }
}

/// Fix for a state file that another tool or a person changed.
const RESTORE_HINT: &str =
    "restore the file from git history, because it was edited by hand or written by another tool";

fn io_hint(source: &io::Error, path: &Path) -> Option<String> {
    match source.kind() {
        io::ErrorKind::PermissionDenied => Some(format!(
            "check that this user may read and write `{}` and its folder",
            path.display()
        )),
        // Reading text reports bytes that are not UTF-8 as invalid data.
        io::ErrorKind::InvalidData => Some(format!(
            "`{}` is not UTF-8 text, so mlops did not write it: restore it from git history",
            path.display()
        )),
        _ => None,
    }
}

fn syntax_hint(truncated: bool) -> String {
    if truncated {
        "the file ends early, as after an interrupted copy, so restore it from git history or a \
         backup"
            .to_string()
    } else {
        "if a git merge left conflict markers, keep the side with the higher serial and delete \
         the markers, or else restore the file from git history"
            .to_string()
    }
}

fn version_hint(found: u64) -> String {
    if found > u64::from(FORMAT_VERSION) {
        "a newer mlops wrote this file, so upgrade mlops to read it".to_string()
    } else {
        format!(
            "restore the file from git history, because no version of mlops writes format \
             version {found}"
        )
    }
}

fn timeout_hint(holder: Option<&LockInfo>, status: HolderStatus, lock_path: &Path) -> String {
    match (holder, status) {
        (None, _) => format!(
            "retry in a moment, or delete `{}` if no mlops process is running",
            lock_path.display()
        ),
        (Some(_), HolderStatus::NotRunning) => find_holder_hint(lock_path),
        (Some(holder), HolderStatus::Running) => format!(
            "wait for process {} to finish, or pass a longer lock timeout",
            holder.pid
        ),
        (Some(holder), HolderStatus::Unknown) => format!(
            "wait for the holder to finish, or run `mlops force-unlock {}` if it is gone",
            holder.id
        ),
    }
}

fn find_holder_hint(lock_path: &Path) -> String {
    format!(
        "find the process with `fuser {}` or `lsof {}`, and wait for it or stop it",
        lock_path.display(),
        lock_path.display()
    )
}

fn describe_holder(holder: Option<&LockInfo>, status: HolderStatus) -> String {
    let Some(holder) = holder else {
        return "the holder has not recorded itself in the lock file".to_string();
    };

    let description = format!(
        "held by lock `{}` ({}) of process {} on host `{}` since {}",
        holder.id, holder.operation, holder.pid, holder.host, holder.created
    );
    match status {
        HolderStatus::NotRunning => format!(
            "{description}, but process {} is not running, so a process that did not record \
             itself holds the lock",
            holder.pid
        ),
        HolderStatus::Running | HolderStatus::Unknown => description,
    }
}
