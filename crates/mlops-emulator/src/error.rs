//! Errors of the public emulator API.

use std::path::PathBuf;

/// An error from creating, loading, saving or serving an emulated world.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// No workspace of the world has this name.
    #[error("unknown workspace `{name}`: the world has {known}")]
    UnknownWorkspace { name: String, known: String },

    /// A workspace id is not a positive decimal number.
    #[error(
        "invalid workspace id `{id}` for workspace `{name}`: expected decimal digits such as 123456789"
    )]
    InvalidWorkspaceId { name: String, id: String },

    /// Two workspaces share a name or an id.
    #[error("duplicate workspace {what} `{value}`: every workspace needs its own name and id")]
    DuplicateWorkspace { what: &'static str, value: String },

    /// A workspace of the data file has another id than the one requested.
    #[error(
        "workspace `{name}` has id {stored} in {path}, but {requested} was requested: \
         fix the workspace id or use another data file"
    )]
    WorkspaceIdMismatch {
        name: String,
        path: PathBuf,
        stored: String,
        requested: String,
    },

    /// An environment variable has a value that cannot be parsed.
    #[error("invalid {variable} value `{value}`: expected {expected}")]
    InvalidEnvironment {
        variable: &'static str,
        value: String,
        expected: &'static str,
    },

    /// Reading the data file failed.
    #[error("failed to read emulator data file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The data file is not valid emulator JSON.
    #[error("failed to parse emulator data file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The data file was written by an unknown format version.
    #[error("unsupported emulator data file version {version} in {path}: expected {expected}")]
    UnsupportedVersion {
        path: PathBuf,
        version: u32,
        expected: u32,
    },

    /// Serializing the world failed.
    #[error("failed to serialize the emulator world")]
    Encode {
        #[source]
        source: serde_json::Error,
    },

    /// Writing the data file failed.
    #[error("failed to write emulator data file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A fault rule lacks a field that its kind needs, or has a value out of range.
    #[error("invalid fault rule {index}: {message}")]
    InvalidFaultRule { index: usize, message: String },

    /// Binding the listener of a workspace failed.
    #[error("failed to bind emulator listener for workspace `{workspace}` on {addr}")]
    Bind {
        workspace: String,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
