//! Integration tests: the real `mlops` binary against the emulator, through the real HTTP client.

mod support;

mod config_errors;
mod embedded;
mod safety;
mod served;
