//! Benchmark of `mlops plan` and `mlops apply` in round trips.
//!
//! Runs the release `mlops` binary as a child process against emulated workspaces served by this
//! process, where every request takes a set latency (one round trip) and SCIM returns 429 above a
//! set number of requests in flight per workspace. Each scenario runs twice: with the requests
//! `mlops` sends concurrently, and with the emulator serving one request at a time, which is the
//! wall time of a client that sends one request at a time. The report gives wall time in round
//! trips, requests, requests per managed object, throttled requests and peak memory.
//!
//! Run it with `cargo run --release -p mlops-bench`; `--help` lists the settings.

mod measure;
mod report;
mod world;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use jiff::{SignedDuration, Timestamp};
use tokio::runtime::Runtime;

use crate::report::{Checked, Row, Targets};
use crate::world::{Network, Sample, Topology, World};

/// Days after the first apply at which the rotation scenario runs: the 100-day tokens then have
/// 25 days left, inside the default 30-day rotation window.
const ROTATION_AFTER_DAYS: i64 = 75;

/// Limits that a run at 50 ms per request is checked against.
const TARGETS: Targets = Targets {
    steady_plan_round_trips: 3.0,
    steady_plan_requests_per_object: 1.0,
    first_apply_round_trips: 10.0,
    fleet_plan_round_trips: 5.0,
    peak_rss_mib: 40.0,
};

/// Command-line settings of the benchmark.
#[derive(Parser)]
#[command(about = "Measures mlops plan and apply against the emulator, in round trips of a set latency")]
struct Args {
    /// Latency of every emulated request, in milliseconds; one round trip.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    latency_ms: u64,

    /// SCIM requests in flight per workspace above which the emulator returns 429.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    scim_limit: u64,

    /// Registry workspaces of the fleet scenario.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    registries: u64,

    /// Reader workspaces of the fleet scenario; each one reads every registry.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..))]
    readers: u64,

    /// The `mlops` binary to measure; by default `cargo build --release -p mlops` builds it.
    #[arg(long)]
    mlops: Option<PathBuf>,

    /// Runs of each scenario; the report shows the run with the median wall time.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,

    /// Skips the runs with one request at a time.
    #[arg(long)]
    no_sequential: bool,
}

/// Whether the emulator serves requests concurrently or one at a time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Concurrent,
    Sequential,
}

/// The samples of every scenario in one mode.
struct Suite {
    steady_plan: Sample,
    first_apply: Sample,
    rotation: Sample,
    fleet_apply: Sample,
    fleet_plan: Sample,
}

impl Suite {
    /// Returns the samples in the order of the report.
    fn into_samples(self) -> [Sample; 5] {
        [self.steady_plan, self.first_apply, self.rotation, self.fleet_apply, self.fleet_plan]
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mlops = match &args.mlops {
        Some(path) => path.canonicalize().with_context(|| format!("--mlops {} is not a file", path.display()))?,
        None => build_mlops()?,
    };
    warm_up(&mlops)?;
    let latency = Duration::from_millis(args.latency_ms);
    let network = Network { latency, scim_limit: usize::try_from(args.scim_limit)? };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;

    let concurrent = run_suites(&runtime, &mlops, &args, network, Mode::Concurrent)?;
    let sequential = match args.no_sequential {
        true => None,
        false => Some(run_suites(&runtime, &mlops, &args, network, Mode::Sequential)?),
    };

    print_report(&args, &mlops, concurrent, sequential, latency);
    Ok(())
}

/// Runs `mlops --version` once, so that the first measured run does not pay for loading the
/// binary from disk.
fn warm_up(mlops: &Path) -> anyhow::Result<()> {
    let status = Command::new(mlops).arg("--version").output().with_context(|| format!("failed to run {}", mlops.display()))?.status;
    if !status.success() {
        bail!("`{} --version` failed with {status}", mlops.display());
    }
    Ok(())
}

/// Builds the release `mlops` binary and returns its path in the release folder of the target
/// directory that holds this benchmark.
fn build_mlops() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    eprintln!("building the release mlops binary");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "mlops", "--bin", "mlops"])
        .current_dir(&workspace)
        .status()
        .context("failed to run cargo")?;
    if !status.success() {
        bail!("`cargo build --release -p mlops` failed with {status}");
    }

    let exe = std::env::current_exe().context("failed to locate the benchmark binary")?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("the benchmark binary is not inside a target directory; pass --mlops PATH")?;
    let mlops = target.join("release/mlops");
    if !mlops.is_file() {
        bail!("{} does not exist after the build; pass --mlops PATH", mlops.display());
    }
    Ok(mlops)
}

/// Runs every scenario `--runs` times in one mode and returns, for each scenario, the run with
/// the median wall time.
fn run_suites(runtime: &Runtime, mlops: &Path, args: &Args, network: Network, mode: Mode) -> anyhow::Result<[Sample; 5]> {
    let mut runs: Vec<[Sample; 5]> = Vec::new();
    for _ in 0..args.runs {
        runs.push(run_suite(runtime, mlops, args, network, mode)?.into_samples());
    }

    let mut by_scenario: [Vec<Sample>; 5] = Default::default();
    for samples in runs {
        for (index, sample) in samples.into_iter().enumerate() {
            by_scenario[index].push(sample);
        }
    }
    Ok(by_scenario.map(median))
}

/// Returns the sample with the median wall time; of an even count, the slower of the middle two.
fn median(mut samples: Vec<Sample>) -> Sample {
    samples.sort_by_key(|sample| sample.wall);
    samples.swap_remove(samples.len() / 2)
}

/// Runs every scenario once in one mode, each world fresh.
fn run_suite(runtime: &Runtime, mlops: &Path, args: &Args, network: Network, mode: Mode) -> anyhow::Result<Suite> {
    let measure = |world: &World, label: &str, command: &[&str], now: Option<Timestamp>| -> anyhow::Result<Sample> {
        let sample = world.run(mlops, command, now).with_context(|| format!("scenario `{label}` failed"))?;
        let mode_name = if mode == Mode::Concurrent { "concurrent" } else { "one request at a time" };
        eprintln!("{label} ({mode_name}): {:.2} s, {} requests", sample.wall.as_secs_f64(), sample.requests);
        Ok(sample)
    };

    let world = World::start(runtime, &Topology::default_three(), network)?;
    world.emulator.set_serialized(mode == Mode::Sequential);
    let first_apply = measure(&world, "first apply", &["apply", "--auto-approve"], None)?;
    // `--detailed-exitcode` exits 2 when the plan has changes, which fails the run.
    let steady_plan = measure(&world, "steady-state plan", &["plan", "--detailed-exitcode"], None)?;

    let later = Timestamp::now().checked_add(SignedDuration::from_hours(ROTATION_AFTER_DAYS * 24))?;
    world.emulator.set_now(Some(later));
    let rotation = measure(&world, "rotation", &["apply", "--auto-approve"], Some(later))?;
    if !rotation.stdout.contains("rotated") {
        bail!("the rotation scenario rotated no token; its output was:\n{}", rotation.stdout);
    }

    let fleet = Topology::fleet(usize::try_from(args.registries)?, usize::try_from(args.readers)?);
    let world = World::start(runtime, &fleet, network)?;
    world.emulator.set_serialized(mode == Mode::Sequential);
    let fleet_apply = measure(&world, "fleet first apply", &["apply", "--auto-approve"], None)?;
    let fleet_plan = measure(&world, "fleet plan", &["plan", "--detailed-exitcode"], None)?;

    Ok(Suite { steady_plan, first_apply, rotation, fleet_apply, fleet_plan })
}

fn print_report(args: &Args, mlops: &Path, concurrent: [Sample; 5], sequential: Option<[Sample; 5]>, latency: Duration) {
    println!(
        "mlops benchmark: {} ms per request (one round trip, RTT), SCIM limit {} requests in flight per workspace",
        args.latency_ms, args.scim_limit
    );
    println!("machine: {}", report::machine());
    println!("binary: {}", mlops.display());
    println!("each row: the run with the median wall time of {} runs", args.runs);
    println!();

    let fleet = format!("{} registries, {} readers", args.registries, args.readers);
    let labels = [
        "steady-state plan (dev, staging, prod)".to_owned(),
        "first apply (dev, staging, prod)".to_owned(),
        format!("rotation ({ROTATION_AFTER_DAYS} days later)"),
        format!("fleet first apply ({fleet})"),
        format!("fleet plan ({fleet})"),
    ];
    let mut sequential = sequential.map(IntoIterator::into_iter);
    let rows: Vec<Row> = labels
        .into_iter()
        .zip(concurrent)
        .map(|(label, concurrent)| Row { label, concurrent, sequential: sequential.as_mut().and_then(Iterator::next) })
        .collect();
    print!("{}", report::table(&rows, latency));

    let checked = Checked { steady_plan: &rows[0].concurrent, first_apply: &rows[1].concurrent, fleet_plan: &rows[4].concurrent, all: &rows };
    let (lines, _) = report::check(&TARGETS, &checked, latency);
    println!();
    println!("targets (set for 50 ms per request):");
    println!("{lines}");
}
