//! Typed async client of the Databricks workspace REST API, limited to the endpoints
//! `mlops` uses: SCIM identity, groups and service principals, token management,
//! the permissions API, secrets and model registry search.
//!
//! [`WorkspaceClient`] authenticates with a bearer token or OAuth machine-to-machine
//! credentials, caps concurrent requests, and retries throttling (429, 503, and 500
//! with `REQUEST_LIMIT_EXCEEDED`) and transport failures within a time budget. Calls
//! that create objects are never sent twice after a transport error or timeout,
//! because the server may have carried them out. Responses are read leniently, since
//! workspaces differ: ids and timestamps as numbers or strings, missing lists as
//! empty, 200 or 201 from creates, 200 or 204 from SCIM updates.
//!
//! Logs go through `tracing` at debug level and carry the method, path, status and
//! duration of each attempt, never a header or a body. Secret values are kept in
//! [`secrecy::SecretString`].
//!
//! The [`profile`] module reads `~/.databrickscfg` profiles.

mod client;
mod error;
mod lenient;
mod mask;
mod oauth;
mod options;
mod permissions;
pub mod profile;
mod registry;
mod response;
mod retry;
mod scim;
mod secrets;
mod tokens;
mod transport;

pub use client::WorkspaceClient;
pub use error::Error;
pub use options::{ClientOptions, Credentials};
pub use permissions::{
    AccessControl, AccessControlRequest, ObjectPermissions, Permission, PermissionObject, Principal,
};
pub use registry::{ModelVersion, RegisteredModel};
pub use scim::{ComplexValue, Group, Me, ServicePrincipal};
pub use secrecy::{ExposeSecret, SecretString};
pub use secrets::{AclItem, AclPermission, SecretMetadata, SecretScope};
pub use tokens::{CreatedToken, NO_EXPIRY, TokenInfo};
pub use transport::MAX_BODY_BYTES;
