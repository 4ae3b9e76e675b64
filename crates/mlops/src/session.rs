//! The shared setup of most commands: the configuration, the state, connected clients and a fresh plan.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use mlops_config::Config;
use mlops_engine::{Event, Reporter, Workspaces};
use mlops_plan::{Live, Operation, Plan, PlanInput};
use mlops_state::{LockInfo, State, StateError, StateLock, StateStore};

use crate::embedded::Embedded;

/// A loaded configuration with its state file and workspace connections.
pub struct Session {
    pub config: Config,
    pub store: StateStore,
    pub workspaces: Workspaces,
    pub embedded: Option<Embedded>,
    pub now: Timestamp,
    /// Held while the session lives, so one writer at a time touches the state.
    _lock: StateLock,
}

/// Time [`Session::open`] waits for the state lock, set from `--lock-timeout`; zero when unset.
static LOCK_TIMEOUT: OnceLock<Duration> = OnceLock::new();

/// Sets how long [`Session::open`] waits for another process to release the state lock.
pub fn set_lock_timeout(timeout: Duration) {
    let _ = LOCK_TIMEOUT.set(timeout);
}

/// Takes the state lock, first without waiting, then, when another process holds it, waiting
/// up to the lock timeout with a note on stderr that names the holder.
fn take_lock(store: &StateStore, operation: &str) -> anyhow::Result<StateLock> {
    let timeout = LOCK_TIMEOUT.get().copied().unwrap_or(Duration::ZERO);
    let recorded = recorded_holder(store);
    match store.lock(operation, Duration::ZERO) {
        Ok(lock) => {
            note_taken_over(recorded, &lock);
            Ok(lock)
        }
        Err(StateError::LockTimeout { holder, .. }) if !timeout.is_zero() => {
            let holder = holder.map_or_else(
                || "a process that has not recorded itself yet".to_owned(),
                |holder| format!("lock {} ({}) of process {} on host {}", holder.id, holder.operation, holder.pid, holder.host),
            );
            let wait = jiff::SignedDuration::try_from(timeout).map_or_else(|_| format!("{timeout:?}"), |wait| format!("{wait:#}"));
            eprintln!("The state {} is locked by {holder}; waiting up to {wait} for it.", store.path().display());
            Ok(store.lock(operation, timeout)?)
        }
        Err(error) => Err(error.into()),
    }
}

/// A holder record found in the lock file, with the identity of that file.
struct RecordedHolder {
    info: LockInfo,
    file: Option<(u64, u64)>,
}

/// Returns the holder recorded in the lock file, if there is a readable one.
fn recorded_holder(store: &StateStore) -> Option<RecordedHolder> {
    let path = store.lock_path();
    let file = file_identity(&path);
    let text = std::fs::read_to_string(&path).ok()?;
    let info = serde_json::from_str(&text).ok()?;
    Some(RecordedHolder { info, file })
}

/// Returns the device and inode of a file.
#[cfg(unix)]
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|metadata| (metadata.dev(), metadata.ino()))
}

/// Returns nothing, because `std` has no portable file identity here.
#[cfg(not(unix))]
fn file_identity(_path: &Path) -> Option<(u64, u64)> {
    None
}

/// Notes on stderr that the lock file named a holder that ended without releasing the lock.
///
/// A holder that ends normally removes the lock file, and the operating system releases the lock
/// of a process that ends in any way. So when this process locked, at once, the very file that
/// named another holder, that holder is gone.
fn note_taken_over(recorded: Option<RecordedHolder>, lock: &StateLock) {
    let Some(RecordedHolder { info: previous, file: Some(file) }) = recorded else { return };
    if file_identity(lock.lock_path()) != Some(file) {
        return;
    }
    eprintln!(
        "The state lock {} of process {} on host {} ({}, since {}) was left behind by a run that ended without releasing it; this run took it over.",
        previous.id, previous.pid, previous.host, previous.operation, previous.created
    );
}

/// Loads and validates the configuration.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Ok(mlops_config::load(path)?)
}

/// Returns the current time, or the time in `MLOPS_NOW` when it is set.
pub fn now() -> anyhow::Result<Timestamp> {
    match std::env::var("MLOPS_NOW") {
        Ok(text) => text.parse::<Timestamp>().with_context(|| {
            format!("invalid MLOPS_NOW `{text}`: expected an RFC 3339 time such as 2027-01-31T12:00:00Z")
        }),
        Err(_) => Ok(Timestamp::now()),
    }
}

impl Session {
    /// Loads the configuration, takes the state lock and connects to every workspace.
    pub async fn open(config_path: &Path, operation: &str) -> anyhow::Result<Session> {
        let config = load_config(config_path)?;
        let now = now()?;
        let store = StateStore::new(&config.state_path);
        let lock = take_lock(&store, operation)?;

        let (embedded, endpoints) = match &config.emulator {
            Some(settings) => {
                let (embedded, endpoints) = Embedded::start(&config, settings.data.clone()).await?;
                (Some(embedded), endpoints)
            }
            None => (None, BTreeMap::new()),
        };
        let workspaces = mlops_engine::connect(&config, endpoints)?;
        Ok(Session { config, store, workspaces, embedded, now, _lock: lock })
    }

    /// Reads the state, or mints a new lineage in memory when there is no state file yet; the
    /// flag says whether the state is new and not written.
    pub fn read_state(&self) -> anyhow::Result<(State, bool)> {
        match self.store.read()? {
            Some(state) => Ok((state, false)),
            None => Ok((State::new(), true)),
        }
    }

    /// Refreshes and plans. A new state is written only once the plan succeeded, so a failed
    /// first run leaves no file behind; the plan then carries the written lineage and serial.
    pub async fn plan_and_mint(&self, operation: Operation) -> anyhow::Result<(State, Plan)> {
        let (mut state, fresh) = self.read_state()?;
        let (_, mut plan) = self.plan(&state, operation).await?;
        if fresh {
            self.store.write(&mut state)?;
            plan.lineage = state.lineage.clone();
            plan.serial = state.serial;
        }
        Ok((state, plan))
    }

    /// Refreshes every workspace and makes a plan.
    pub async fn plan(&self, state: &State, operation: Operation) -> anyhow::Result<(Live, Plan)> {
        let live = mlops_engine::refresh(&self.config, state, &self.workspaces, reporter()).await?;
        let input = PlanInput { config: &self.config, state, live: &live, now: self.now, operation };
        let plan = mlops_plan::plan(&input)?;
        Ok((live, plan))
    }

    /// Saves the embedded emulator's world, when there is one.
    pub fn save_emulator(&self) -> anyhow::Result<()> {
        match &self.embedded {
            Some(embedded) => embedded.save(),
            None => Ok(()),
        }
    }
}

/// Returns the reporter that prints apply progress on stderr.
pub fn reporter() -> Arc<dyn Reporter> {
    Arc::new(StderrReporter { terminal: std::io::stderr().is_terminal() })
}

struct StderrReporter {
    terminal: bool,
}

impl Reporter for StderrReporter {
    fn report(&self, event: Event) {
        let _ = self.terminal;
        match event {
            Event::Refreshed { .. } => {}
            Event::StepStarted { address, action } => eprintln!("{address}: {}...", progressive(&action)),
            Event::StepFinished { address, action, elapsed, remote_id } => {
                let id = remote_id.map(|id| format!(" [id={id}]")).unwrap_or_default();
                eprintln!("{address}: {} complete after {:.1}s{id}", noun(&action), elapsed.as_secs_f64());
            }
            Event::Note { message } => eprintln!("{message}"),
        }
    }
}

fn progressive(action: &str) -> &'static str {
    match action {
        "create" => "Creating",
        "update" => "Modifying",
        "replace" => "Replacing",
        "destroy" => "Destroying",
        "rotate" => "Rotating",
        "import" => "Importing",
        _ => "Working",
    }
}

fn noun(action: &str) -> &'static str {
    match action {
        "create" => "Creation",
        "update" => "Modifications",
        "replace" => "Replacement",
        "destroy" => "Destruction",
        "rotate" => "Rotation",
        "import" => "Import",
        _ => "Step",
    }
}
