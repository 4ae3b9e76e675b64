//! Integration tests: the real `mlops` binary against the emulator, through the real HTTP client.

mod support;

mod adoption;
mod config_errors;
mod drift;
mod embedded;
mod rotation;
mod safety;
mod served;
