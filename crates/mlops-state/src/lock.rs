//! The writer lock: an operating-system lock on `<state path>.lock` plus a record of its holder.
//!
//! The operating system provides mutual exclusion (`flock` on Linux and macOS) and releases the
//! lock when the holding process exits. The JSON record in the file only names the holder for
//! error messages and for `force_unlock`.
//!
//! A holder removes the lock file before it releases the lock, so a waiting process may lock a
//! file that is no longer linked at that path. After locking, a process therefore checks that
//! the path still leads to the file it locked, and starts over when it does not.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{HolderStatus, StateError};
use crate::host;
use crate::store::parent_folder;

/// Interval between attempts to take a lock that another process holds.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Holder record stored as JSON in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// UUID v4 of this lock, the argument of `mlops force-unlock`.
    pub id: String,
    /// Host name of the machine that runs the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// Command that holds the lock, such as `plan` or `apply`.
    pub operation: String,
    /// Time the lock was taken, RFC 3339 in UTC.
    pub created: String,
    /// Absolute path of the state file.
    pub path: String,
}

/// Held writer lock, released when dropped.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    lock_path: PathBuf,
    info: LockInfo,
    released: bool,
}

/// Returns the lock file path for `state_path`: the same path with `.lock` appended.
pub fn lock_path(state_path: &Path) -> PathBuf {
    let mut path = state_path.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

impl StateLock {
    /// Returns the holder record written into the lock file.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Returns the path of the lock file.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// Removes the lock file and releases the lock, reporting failures that `drop` only logs.
    pub fn release(mut self) -> Result<(), StateError> {
        self.release_once()
    }

    /// Takes the lock on `state_path`, polling until `timeout` has passed.
    pub(crate) fn acquire(
        state_path: &Path,
        operation: &str,
        timeout: Duration,
    ) -> Result<StateLock, StateError> {
        let lock_path = lock_path(state_path);
        create_folder(&lock_path)?;
        let deadline = Instant::now().checked_add(timeout);

        loop {
            let file = open_lock_file(&lock_path, true)?;
            match file.try_lock() {
                Ok(()) => {
                    let linked = is_linked(&file, &lock_path)
                        .map_err(|source| io_error("check lock file", &lock_path, source))?;
                    if linked {
                        return StateLock::record(file, lock_path, state_path, operation);
                    }
                    // The previous holder removed the file after this process opened it.
                    continue;
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(source)) => {
                    return Err(io_error("lock", &lock_path, source));
                }
            }

            let now = Instant::now();
            let remaining = deadline.map_or(POLL_INTERVAL, |d| d.saturating_duration_since(now));
            if remaining.is_zero() {
                return Err(timeout_error(state_path, &file, lock_path, timeout));
            }
            std::thread::sleep(remaining.min(POLL_INTERVAL));
        }
    }

    fn record(
        file: File,
        lock_path: PathBuf,
        state_path: &Path,
        operation: &str,
    ) -> Result<StateLock, StateError> {
        let absolute = std::path::absolute(state_path).unwrap_or_else(|_| state_path.to_path_buf());
        let info = LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            host: host::hostname(),
            pid: std::process::id(),
            operation: operation.to_string(),
            created: now_rfc3339(),
            path: absolute.display().to_string(),
        };

        // Dropping the lock on error removes the file and releases the lock.
        let lock = StateLock {
            file,
            lock_path,
            info,
            released: false,
        };
        lock.write_info()?;
        tracing::debug!(lock_id = %lock.info.id, path = %lock.lock_path.display(), "state lock acquired");
        Ok(lock)
    }

    fn write_info(&self) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(&self.info)
            .map_err(|e| io_error("serialize lock record for", &self.lock_path, e.into()))?;
        bytes.push(b'\n');

        let mut file = &self.file;
        file.set_len(0)
            .and_then(|()| file.write_all(&bytes))
            .and_then(|()| file.sync_all())
            .map_err(|source| io_error("write lock file", &self.lock_path, source))
    }

    fn release_once(&mut self) -> Result<(), StateError> {
        if self.released {
            return Ok(());
        }
        self.released = true;

        // The record is cleared first, so a process that still has this file open reads no
        // stale holder from it.
        let removed = self
            .file
            .set_len(0)
            .and_then(|()| remove_if_linked(&self.file, &self.lock_path))
            .map_err(|source| io_error("remove lock file", &self.lock_path, source));
        let unlocked = self
            .file
            .unlock()
            .map_err(|source| io_error("unlock", &self.lock_path, source));

        removed.and(unlocked)?;
        tracing::debug!(lock_id = %self.info.id, path = %self.lock_path.display(), "state lock released");
        Ok(())
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        if let Err(error) = self.release_once() {
            tracing::warn!(lock_id = %self.info.id, %error, "failed to release state lock");
        }
    }
}

/// Removes the lock file of `state_path` if its record has id `lock_id` and no process on this
/// host holds the lock.
///
/// A lock held by a process on another host (through a shared file system) is removed with a
/// warning, because this host cannot check whether that process runs.
pub fn force_unlock(state_path: &Path, lock_id: &str) -> Result<(), StateError> {
    let lock_path = lock_path(state_path);
    // The record is read through the opened file, so the check and the lock apply to one file.
    let file = open_lock_file(&lock_path, false)?;
    let holder = read_holder(&file, &lock_path)?;
    if holder.id != lock_id {
        return Err(StateError::LockIdMismatch {
            lock_path,
            requested: lock_id.to_string(),
            actual: holder.id,
        });
    }

    match file.try_lock() {
        // The holder is gone because the lock is free.
        Ok(()) => remove_and_unlock(&file, &lock_path)?,
        Err(TryLockError::WouldBlock) => break_held_lock(&file, lock_path.clone(), holder)?,
        Err(TryLockError::Error(source)) => return Err(io_error("lock", &lock_path, source)),
    }

    tracing::info!(lock_id, path = %lock_path.display(), "state lock removed by force-unlock");
    Ok(())
}

/// Removes a lock file whose lock is held, unless the holder may run on this host.
fn break_held_lock(file: &File, lock_path: PathBuf, holder: LockInfo) -> Result<(), StateError> {
    if holder.host == host::hostname() {
        let status = holder_status(&holder);
        let holder = Box::new(holder);
        return Err(match status {
            HolderStatus::NotRunning => {
                StateError::LockHeldByUnrecordedProcess { lock_path, holder }
            }
            HolderStatus::Running | HolderStatus::Unknown => {
                StateError::LockHeld { lock_path, holder }
            }
        });
    }

    tracing::warn!(
        lock_id = %holder.id,
        host = %holder.host,
        pid = holder.pid,
        "removing a lock file whose lock is held by a process on another host"
    );
    remove_if_linked(file, &lock_path)
        .map_err(|source| io_error("remove lock file", &lock_path, source))
}

fn remove_and_unlock(file: &File, lock_path: &Path) -> Result<(), StateError> {
    let removed = remove_if_linked(file, lock_path)
        .map_err(|source| io_error("remove lock file", lock_path, source));
    let unlocked = file
        .unlock()
        .map_err(|source| io_error("unlock", lock_path, source));
    removed.and(unlocked)
}

fn read_holder(file: &File, lock_path: &Path) -> Result<LockInfo, StateError> {
    let mut reader = file;
    let mut text = String::new();
    reader
        .seek(SeekFrom::Start(0))
        .and_then(|_| reader.read_to_string(&mut text))
        .map_err(|source| io_error("read lock file", lock_path, source))?;

    serde_json::from_str(&text).map_err(|_| StateError::LockUnreadable {
        lock_path: lock_path.to_path_buf(),
    })
}

fn timeout_error(
    state_path: &Path,
    file: &File,
    lock_path: PathBuf,
    timeout: Duration,
) -> StateError {
    // An empty or partial record means the holder has not written it yet.
    let holder = read_holder(file, &lock_path).ok().map(Box::new);
    let status = holder
        .as_deref()
        .map_or(HolderStatus::Unknown, holder_status);

    StateError::LockTimeout {
        state_path: state_path.to_path_buf(),
        lock_path,
        timeout,
        holder,
        status,
    }
}

fn holder_status(holder: &LockInfo) -> HolderStatus {
    if holder.host != host::hostname() {
        return HolderStatus::Unknown;
    }
    match host::process_running(holder.pid) {
        Some(true) => HolderStatus::Running,
        Some(false) => HolderStatus::NotRunning,
        None => HolderStatus::Unknown,
    }
}

fn create_folder(lock_path: &Path) -> Result<(), StateError> {
    let folder = parent_folder(lock_path);
    std::fs::create_dir_all(folder)
        .map_err(|source| io_error("create state folder", folder, source))
}

fn open_lock_file(lock_path: &Path, create: bool) -> Result<File, StateError> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(create)
        .truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }

    options
        .open(lock_path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound if !create => StateError::LockNotFound {
                lock_path: lock_path.to_path_buf(),
            },
            _ => io_error("open lock file", lock_path, source),
        })
}

/// Reports whether `lock_path` still names the open `file`.
#[cfg(unix)]
fn is_linked(file: &File, lock_path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;

    let opened = file.metadata()?;
    match std::fs::metadata(lock_path) {
        Ok(current) => Ok(opened.dev() == current.dev() && opened.ino() == current.ino()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Reports whether `lock_path` still exists.
///
/// NOTE: this platform has no portable file identity in `std`, so a lock file replaced by
/// another process is not detected here.
#[cfg(not(unix))]
fn is_linked(_file: &File, lock_path: &Path) -> io::Result<bool> {
    lock_path.try_exists()
}

/// Removes `lock_path` if it still names the open `file`, so that a newer holder's file stays.
fn remove_if_linked(file: &File, lock_path: &Path) -> io::Result<()> {
    if !is_linked(file, lock_path)? {
        return Ok(());
    }
    match std::fs::remove_file(lock_path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now).to_string()
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> StateError {
    StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_path_appends_suffix() {
        let path = lock_path(Path::new("state/mlops.state.json"));

        assert_eq!(path, Path::new("state/mlops.state.json.lock"));
    }

    #[cfg(unix)]
    #[test]
    fn replaced_file_not_linked() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("x.lock");
        let original = open_lock_file(&path, true).unwrap();
        assert!(is_linked(&original, &path).unwrap());

        std::fs::remove_file(&path).unwrap();
        assert!(!is_linked(&original, &path).unwrap());

        let replacement = open_lock_file(&path, true).unwrap();
        assert!(!is_linked(&original, &path).unwrap());
        assert!(is_linked(&replacement, &path).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn remove_keeps_newer_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("x.lock");
        let original = open_lock_file(&path, true).unwrap();
        std::fs::remove_file(&path).unwrap();
        let _replacement = open_lock_file(&path, true).unwrap();

        remove_if_linked(&original, &path).unwrap();

        assert!(path.exists());
    }

    #[test]
    fn remove_deletes_own_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("x.lock");
        let file = open_lock_file(&path, true).unwrap();

        remove_if_linked(&file, &path).unwrap();

        assert!(!path.exists());
    }

    #[test]
    fn created_time_is_whole_seconds() {
        let created = now_rfc3339();

        assert!(created.ends_with('Z'), "{created}");
        assert!(!created.contains('.'), "{created}");
    }
}
