//! The `mlops` command line: plans and applies the Databricks remote model registry wiring.

mod cli;
mod commands;
mod embedded;
mod errors;
mod logging;
mod session;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // Usage errors exit 1, because 2 means "changes present" to plan and drift.
            return ExitCode::from(if error.use_stderr() { 1 } else { 0 });
        }
    };
    logging::init(cli.global.verbose);
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            errors::print(&error);
            ExitCode::from(1)
        }
    }
}
