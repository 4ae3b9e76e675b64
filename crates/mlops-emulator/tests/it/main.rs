//! Integration tests: reqwest against emulator workspaces bound on 127.0.0.1:0.

mod common;
mod environment;
mod faults;
mod oauth;
mod persistence;
mod registry;
mod routing;
mod scim;
mod secrets;
mod tokens;
mod traffic;
mod users;
