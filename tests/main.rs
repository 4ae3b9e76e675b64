//! Integration tests: the real `mlops` binary against the emulator, through the real HTTP client.

mod reliability;
mod support;

mod adoption;
mod auth;
mod config_errors;
mod crash;
mod drift;
mod embedded;
mod faults;
mod fuzz;
mod hostile;
mod locking;
mod requests;
mod rotation;
mod safety;
mod saved_plan;
mod secrets;
mod served;
mod verify;
