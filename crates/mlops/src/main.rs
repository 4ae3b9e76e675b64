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
    let cli = cli::Cli::parse();
    logging::init(cli.global.verbose);
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            errors::print(&error);
            ExitCode::from(1)
        }
    }
}
