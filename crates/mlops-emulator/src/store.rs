//! Reading and atomically writing the emulator data file.

use std::io::Write as _;
use std::path::Path;

use crate::EmulatorError;
use crate::model::{DATA_VERSION, World};

/// Reads the world from `path`, or returns `None` when the file does not exist.
pub(crate) fn read_world(path: &Path) -> Result<Option<World>, EmulatorError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(EmulatorError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };

    let world: World = serde_json::from_slice(&bytes).map_err(|source| EmulatorError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    if world.version != DATA_VERSION {
        return Err(EmulatorError::UnsupportedVersion {
            path: path.to_path_buf(),
            version: world.version,
            expected: DATA_VERSION,
        });
    }
    Ok(Some(world))
}

/// Serializes the world as pretty JSON with a trailing newline.
pub(crate) fn encode_world(world: &World) -> Result<Vec<u8>, EmulatorError> {
    let mut bytes =
        serde_json::to_vec_pretty(world).map_err(|source| EmulatorError::Encode { source })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same folder: write, fsync, set mode
/// 0600, rename, then fsync the folder. Creates the folder when it is missing.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EmulatorError> {
    let write_error = |source| EmulatorError::Write {
        path: path.to_path_buf(),
        source,
    };
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&folder).map_err(write_error)?;

    let mut file = tempfile::NamedTempFile::new_in(&folder).map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.as_file().sync_all().map_err(write_error)?;
    restrict_permissions(file.as_file()).map_err(write_error)?;
    file.persist(path)
        .map_err(|error| write_error(error.error))?;

    sync_folder(&folder).map_err(write_error)
}

/// Sets mode 0600 so that only the owner can read the client secrets and secret values.
#[cfg(unix)]
fn restrict_permissions(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Flushes the folder entry so that the rename survives a crash.
#[cfg(unix)]
fn sync_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::File::open(folder)?.sync_all()
}

#[cfg(not(unix))]
fn sync_folder(_folder: &Path) -> std::io::Result<()> {
    Ok(())
}
