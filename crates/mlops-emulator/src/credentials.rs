//! Generation and hashing of token values and client secrets.

use rand::Rng as _;
use sha2::{Digest as _, Sha256};

/// Returns the lower-case hex SHA-256 of `value`.
pub(crate) fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Returns `byte_count` random bytes as lower-case hex.
fn random_hex(byte_count: usize) -> String {
    let mut bytes = vec![0_u8; byte_count];
    rand::rng().fill(&mut bytes[..]);
    hex::encode(bytes)
}

/// Generates a personal access token value: `dapi` followed by 32 hex digits, as Databricks issues them.
pub(crate) fn new_personal_token() -> String {
    format!("dapi{}", random_hex(16))
}

/// Generates an opaque OAuth access token value.
pub(crate) fn new_access_token() -> String {
    format!("emu-oauth-{}", random_hex(32))
}

/// Generates an OAuth client secret; Databricks OAuth secrets start with `dose`.
pub(crate) fn new_client_secret() -> String {
    format!("dose{}", random_hex(32))
}

/// Generates a 32-hex-digit id, the form of MLflow run ids and Databricks model ids.
pub(crate) fn new_hex_id() -> String {
    random_hex(16)
}
