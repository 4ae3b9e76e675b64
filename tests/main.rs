//! Integration tests: the real `mlops` binary against the emulator, through the real HTTP client.

mod reliability;
mod support;

mod adoption;
mod config_errors;
mod crash;
mod drift;
mod embedded;
mod rotation;
mod safety;
mod saved_plan;
mod served;
