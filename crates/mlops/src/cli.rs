//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Plans and applies the Databricks remote model registry wiring between workspaces.
#[derive(Debug, Parser)]
#[command(name = "mlops", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file.
    #[arg(short, long, global = true, default_value = "mlops.yaml", value_name = "FILE")]
    pub config: PathBuf,
    /// More log output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How long to wait for another process to release the state lock, such as 30s or 2m.
    #[arg(long, global = true, default_value = "0s", value_name = "DURATION", value_parser = parse_lock_timeout)]
    pub lock_timeout: Duration,
}

/// Parses a lock timeout such as `30s`, `2m`, `1m 30s` or `PT30S` into a duration.
fn parse_lock_timeout(text: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|error| format!("invalid duration `{text}` ({error}): write it like 30s, 2m or 1m 30s"))?;
    Duration::try_from(parsed).map_err(|_| format!("invalid duration `{text}`: a lock timeout cannot be negative"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and check the configuration without touching the network.
    Validate,
    /// Show what apply would change.
    Plan(PlanArgs),
    /// Make the workspaces match the configuration, or apply a saved plan.
    Apply(ApplyArgs),
    /// Report objects changed outside mlops and tokens due for rotation.
    Drift(FormatArgs),
    /// Print the outputs: secret scope names, prefixes, group name and registry URIs.
    Output(OutputArgs),
    /// Remove what mlops created, and only the grants it made.
    Destroy(DestroyArgs),
    /// Inspect the state file.
    #[command(subcommand)]
    State(StateCommand),
    /// Break a lock left on the state file, by its id.
    ForceUnlock {
        /// The lock id printed by the command that is waiting for the lock.
        lock_id: String,
    },
    /// Check each link end to end: the stored host, id and token reach the remote registry.
    Verify,
    /// Run the local Databricks emulator.
    #[command(subcommand)]
    Emulator(EmulatorCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub format: FormatArgs,
    /// Save the plan to this file, for `mlops apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit with 2 when the plan has changes (0 without changes, 1 on error).
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `mlops plan --out FILE`; without it apply plans first.
    pub plan: Option<PathBuf>,
    /// Apply without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Destroy without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the addresses of every object in state.
    List,
    /// Show one object of the state.
    Show {
        /// Address as printed by `mlops state list`, for example `staging/token`.
        address: String,
    },
    /// Forget objects: remove them from the state without touching the workspaces.
    Rm {
        /// Addresses as printed by `mlops state list`.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EmulatorCommand {
    /// Serve every workspace on its own loopback port and print one JSON line per workspace.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// First port; workspace N listens on port-base + N. 0 picks free ports.
    #[arg(long, default_value_t = 0)]
    pub port_base: u16,
    /// A workspace to serve, as NAME or NAME=ID; repeat for more.
    #[arg(long = "workspace", value_name = "NAME[=ID]")]
    pub workspaces: Vec<String>,
    /// Data file that keeps the emulated world across runs.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
}
