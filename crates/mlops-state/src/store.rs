//! Reading, validating and atomically writing the state file.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::StateError;
use crate::lock::StateLock;
use crate::model::{FORMAT_VERSION, State};
use crate::validate::Problem;

/// Permission bits of the state file: read and write for the owner only.
#[cfg(unix)]
const STATE_FILE_MODE: u32 = 0o600;

/// Location of one state file, with the operations on it.
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
}

/// The part of the file read before the full parse, so that a newer format is reported as such
/// and not as unknown fields.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<u64>,
}

impl StateStore {
    /// Creates a store for the state file at `path`, which need not exist yet.
    pub fn new(path: impl Into<PathBuf>) -> StateStore {
        StateStore { path: path.into() }
    }

    /// Returns the path of the state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the path of the lock file, `<state path>.lock`.
    pub fn lock_path(&self) -> PathBuf {
        crate::lock::lock_path(&self.path)
    }

    /// Reads and validates the state file, returning `Ok(None)` when it does not exist.
    pub fn read(&self) -> Result<Option<State>, StateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io_error("read state file", source)),
        };

        let state = self.parse(&text)?;
        state.validate().map_err(|problem| self.invalid(problem))?;
        Ok(Some(state))
    }

    /// Increments the serial and writes the state atomically.
    ///
    /// The resources are sorted and the state is validated first, so an invalid state or one
    /// that contains a secret-shaped value is never written. On error the serial is left as it was
    /// and the file on disk is unchanged. Callers hold the [`StateLock`] while writing.
    pub fn write(&self, state: &mut State) -> Result<(), StateError> {
        if state.version != FORMAT_VERSION {
            return Err(StateError::UnsupportedVersion {
                path: self.path.clone(),
                found: u64::from(state.version),
            });
        }

        state.normalize();
        state.validate().map_err(|problem| self.invalid(problem))?;

        let previous = state.serial;
        state.serial = previous
            .checked_add(1)
            .ok_or_else(|| self.invalid(Problem::SerialExhausted { serial: previous }))?;

        let result = self.write_atomically(state);
        if result.is_err() {
            state.serial = previous;
        }
        result
    }

    /// Takes the writer lock, waiting up to `timeout` for another holder to release it.
    ///
    /// `operation` names the command that holds the lock, such as `apply`, for other processes
    /// to report.
    pub fn lock(&self, operation: &str, timeout: Duration) -> Result<StateLock, StateError> {
        StateLock::acquire(&self.path, operation, timeout)
    }

    fn parse(&self, text: &str) -> Result<State, StateError> {
        let probe: VersionProbe = serde_json::from_str(text).map_err(|e| self.parse_error(&e))?;

        match probe.version {
            Some(found) if found != u64::from(FORMAT_VERSION) => {
                return Err(StateError::UnsupportedVersion {
                    path: self.path.clone(),
                    found,
                });
            }
            _ => {}
        }

        serde_json::from_str(text).map_err(|e| self.parse_error(&e))
    }

    fn write_atomically(&self, state: &State) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(state)
            .map_err(|source| self.io_error("serialize state for", source.into()))?;
        bytes.push(b'\n');

        let folder = parent_folder(&self.path);
        std::fs::create_dir_all(folder).map_err(|source| StateError::Io {
            action: "create state folder",
            path: folder.to_path_buf(),
            source,
        })?;

        let mut temporary = tempfile::Builder::new()
            .prefix(".mlops-state-")
            .suffix(".tmp")
            .tempfile_in(folder)
            .map_err(|source| self.io_error("create temporary file beside", source))?;

        temporary
            .write_all(&bytes)
            .and_then(|()| temporary.as_file().sync_all())
            .map_err(|source| self.io_error("write temporary file beside", source))?;
        restrict_permissions(temporary.as_file())
            .map_err(|source| self.io_error("set permissions of temporary file beside", source))?;

        // On error the temporary file is dropped, which deletes it.
        temporary
            .persist(&self.path)
            .map_err(|error| self.io_error("replace state file", error.error))?;

        sync_folder(folder).map_err(|source| StateError::Io {
            action: "sync state folder",
            path: folder.to_path_buf(),
            source,
        })
    }

    fn parse_error(&self, error: &serde_json::Error) -> StateError {
        let path = self.path.clone();
        let (line, column) = (error.line(), error.column());
        let message = strip_location(error);

        match error.classify() {
            serde_json::error::Category::Data => StateError::Format {
                path,
                line,
                column,
                message,
            },
            category => StateError::Syntax {
                path,
                line,
                column,
                message,
                truncated: category == serde_json::error::Category::Eof,
            },
        }
    }

    fn invalid(&self, problem: Problem) -> StateError {
        StateError::Invalid {
            path: self.path.clone(),
            problem,
        }
    }

    fn io_error(&self, action: &'static str, source: io::Error) -> StateError {
        StateError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }
}

/// Returns the message of a `serde_json` error without the ` at line N column M` suffix that
/// its `Display` appends, because [`StateError`] reports the position itself.
fn strip_location(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_string(),
        None => message,
    }
}

/// Returns the folder that contains `path`, which is `.` for a bare file name.
pub(crate) fn parent_folder(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(unix)]
fn restrict_permissions(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(STATE_FILE_MODE))
}

#[cfg(not(unix))]
fn restrict_permissions(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Flushes the folder entry so that the rename survives a power loss.
#[cfg(unix)]
fn sync_folder(folder: &Path) -> io::Result<()> {
    File::open(folder)?.sync_all()
}

/// Does nothing, because Windows cannot open a folder as a file.
#[cfg(not(unix))]
fn sync_folder(_folder: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_bare_name_is_current_folder() {
        assert_eq!(parent_folder(Path::new("state.json")), Path::new("."));
        assert_eq!(parent_folder(Path::new("a/state.json")), Path::new("a"));
    }

    #[test]
    fn location_suffix_removed() {
        let error = serde_json::from_str::<serde_json::Value>("{\n  \"a\": ").unwrap_err();

        let message = strip_location(&error);

        assert_eq!(message, "EOF while parsing a value");
    }
}
