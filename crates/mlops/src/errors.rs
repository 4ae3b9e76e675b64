//! Prints an error with its causes and a hint.

use std::io::Write;

/// Prints `error:` with the cause chain and, where one is known, a hint.
pub fn print(error: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {error}");
    for cause in error.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
    if let Some(hint) = hint(error) {
        let _ = writeln!(stderr, "\nhint: {hint}");
    }
}

fn hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(error) = cause.downcast_ref::<mlops_config::ConfigError>() {
            return error.hint();
        }
        if let Some(error) = cause.downcast_ref::<mlops_state::StateError>() {
            return error.hint();
        }
        if let Some(error) = cause.downcast_ref::<mlops_engine::EngineError>() {
            return error.hint();
        }
        if let Some(error) = cause.downcast_ref::<mlops_plan::PlanError>() {
            return error.hint();
        }
        cause.downcast_ref::<crate::commands::Hinted>().map(|hinted| hinted.hint.clone())
    })
}
