//! One module per subcommand; each returns the exit code.

mod apply;
mod drift;
mod emulator;
mod output;
mod plan;
mod state;
mod validate;
mod verify;

use std::io::{IsTerminal, Write};

use crate::cli::{Cli, Command, EmulatorCommand, StateCommand};

/// An error with a hint for the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

/// Returns an error with a message and a hint.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted { message: message.into(), hint: hint.into() })
}

/// Runs the command and returns its exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let config = cli.global.config;
    crate::session::set_lock_timeout(cli.global.lock_timeout);
    runtime.block_on(async move {
        match cli.command {
            Command::Validate => validate::run(&config),
            Command::Plan(args) => plan::run(&config, args).await,
            Command::Apply(args) => apply::run(&config, args).await,
            Command::Destroy(args) => apply::destroy(&config, args).await,
            Command::Drift(args) => drift::run(&config, args.format).await,
            Command::Output(args) => output::run(&config, args.format),
            Command::State(StateCommand::List) => state::list(&config),
            Command::State(StateCommand::Show { address }) => state::show(&config, &address),
            Command::State(StateCommand::Rm { addresses }) => state::remove(&config, &addresses),
            Command::ForceUnlock { lock_id } => state::force_unlock(&config, &lock_id),
            Command::Verify => verify::run(&config).await,
            Command::Emulator(EmulatorCommand::Serve(args)) => emulator::serve(args).await,
        }
    })
}

/// Writes text to stdout; a closed pipe is not an error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Returns whether stdout gets colors: a terminal, and `NO_COLOR` unset or empty.
pub fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}
