//! The shared setup of most commands: the configuration, the state, connected clients and a fresh plan.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

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

    /// Reads the state, or mints a new lineage in memory when there is no state file yet. The
    /// flag is `true` when the state is new and not written.
    pub fn read_state(&self) -> anyhow::Result<(State, bool)> {
        match self.store.read()? {
            Some(state) => Ok((state, false)),
            None => Ok((State::new(), true)),
        }
    }

    /// Refreshes and plans. A new state is written only once the plan succeeded, so a failed
    /// first run leaves no file behind. The plan then carries the written lineage and serial.
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
        let live = mlops_engine::refresh(&self.config, state, &self.workspaces, refresh_reporter(self.config.workspaces.len())).await?;
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
    Arc::new(StderrReporter::new(Phase::Apply, None))
}

/// Returns the reporter of a refresh of `workspaces` workspaces.
fn refresh_reporter(workspaces: usize) -> Arc<dyn Reporter> {
    Arc::new(StderrReporter::new(Phase::Refresh, Some(workspaces)))
}

/// Time after which a terminal shows the progress line, so that quick commands print nothing
/// extra.
const PROGRESS_DELAY: Duration = Duration::from_millis(500);

/// Interval at which the progress line is redrawn while no event arrives.
const PROGRESS_REDRAW_INTERVAL: Duration = Duration::from_millis(250);

/// Prints apply steps as plain lines on stderr. On an interactive terminal it also keeps a
/// progress line at the bottom (workspaces read, or steps done, out of the total) once the
/// command has run for [`PROGRESS_DELAY`]. On a pipe, a dumb terminal or in CI it prints plain
/// lines only.
struct StderrReporter {
    progress: Arc<Mutex<Progress>>,
}

/// The part of a command that a reporter follows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Refresh,
    Apply,
}

/// Counts and drawing state of the progress line.
#[derive(Debug)]
struct Progress {
    phase: Phase,
    done: usize,
    total: Option<usize>,
    started: Instant,
    interactive: bool,
    /// Whether the progress line is on the screen.
    shown: bool,
    finished: bool,
}

impl StderrReporter {
    fn new(phase: Phase, total: Option<usize>) -> StderrReporter {
        let progress = Progress::new(phase, total, interactive_stderr());
        let interactive = progress.interactive;
        let progress = Arc::new(Mutex::new(progress));
        if interactive {
            start_redraw_thread(Arc::downgrade(&progress));
        }
        StderrReporter { progress }
    }
}

impl Reporter for StderrReporter {
    fn report(&self, event: Event) {
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let output = progress.on_event(event, Instant::now());
        write_stderr(&output);
    }
}

impl Drop for StderrReporter {
    fn drop(&mut self) {
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let output = progress.finish();
        write_stderr(&output);
    }
}

/// Tells whether stderr is a terminal that can redraw a line: not a pipe, not `TERM=dumb`, and
/// not a CI job (`CI` set to anything but `false` or `0`).
fn interactive_stderr() -> bool {
    let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
    let ci = std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0");
    std::io::stderr().is_terminal() && !dumb && !ci
}

fn write_stderr(text: &str) {
    if text.is_empty() {
        return;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// Redraws the progress line while no event arrives, until the reporter is dropped.
fn start_redraw_thread(progress: Weak<Mutex<Progress>>) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(PROGRESS_REDRAW_INTERVAL);
            let Some(progress) = progress.upgrade() else { return };
            let mut progress = progress.lock().unwrap_or_else(PoisonError::into_inner);
            if progress.finished {
                return;
            }
            let output = progress.redraw(Instant::now());
            write_stderr(&output);
        }
    });
}

/// Erases the current terminal line and returns the cursor to its start.
const ERASE_LINE: &str = "\r\x1b[2K";

impl Progress {
    fn new(phase: Phase, total: Option<usize>, interactive: bool) -> Progress {
        Progress { phase, done: 0, total, started: Instant::now(), interactive, shown: false, finished: false }
    }

    /// Counts an event and returns what to print for it.
    fn on_event(&mut self, event: Event, now: Instant) -> String {
        let line = match event {
            Event::Refreshed { .. } => {
                self.done += 1;
                None
            }
            Event::ApplyStarted { steps } => {
                self.total = Some(steps);
                None
            }
            Event::StepStarted { address, action } => Some(format!("{address}: {}...", progressive(&action))),
            Event::StepFinished { address, action, elapsed, remote_id } => {
                self.done += 1;
                let id = remote_id.map(|id| format!(" [id={id}]")).unwrap_or_default();
                Some(format!("{address}: {} complete after {:.1}s{id}", noun(&action), elapsed.as_secs_f64()))
            }
            Event::Note { message } => Some(message),
        };

        let mut output = String::new();
        if let Some(line) = line {
            if self.shown {
                output.push_str(ERASE_LINE);
                self.shown = false;
            }
            output.push_str(&line);
            output.push('\n');
        }
        output.push_str(&self.redraw(now));
        output
    }

    /// Returns the progress line to draw, or nothing when it is not due.
    fn redraw(&mut self, now: Instant) -> String {
        if !self.interactive || self.finished || now.duration_since(self.started) < PROGRESS_DELAY {
            return String::new();
        }
        self.shown = true;
        format!("{ERASE_LINE}{}", self.status(now))
    }

    fn status(&self, now: Instant) -> String {
        let noun = match self.phase {
            Phase::Refresh => "Reading workspaces",
            Phase::Apply => "Applying",
        };
        let unit = match self.phase {
            Phase::Refresh => "workspaces read",
            Phase::Apply => "steps done",
        };
        let count = match self.total {
            Some(total) => format!("{}/{total} {unit}", self.done),
            None => format!("{} {unit}", self.done),
        };
        format!("{noun}: {count} ({:.0}s)", now.duration_since(self.started).as_secs_f64())
    }

    /// Stops drawing and returns what erases the progress line.
    fn finish(&mut self) -> String {
        self.finished = true;
        match std::mem::take(&mut self.shown) {
            true => ERASE_LINE.to_owned(),
            false => String::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn step_finished(address: &str) -> Event {
        Event::StepFinished { address: address.to_owned(), action: "create".to_owned(), elapsed: Duration::from_millis(100), remote_id: None }
    }

    #[test]
    fn pipe_gets_plain_lines_only() {
        let mut progress = Progress::new(Phase::Apply, None, false);
        let later = progress.started + Duration::from_secs(5);
        let mut output = progress.on_event(Event::ApplyStarted { steps: 2 }, later);
        output.push_str(&progress.on_event(Event::StepStarted { address: "dev/group".to_owned(), action: "create".to_owned() }, later));
        output.push_str(&progress.on_event(step_finished("dev/group"), later));
        output.push_str(&progress.finish());
        assert_eq!(output, "dev/group: Creating...\ndev/group: Creation complete after 0.1s\n");
    }

    #[test]
    fn terminal_shows_steps_done_out_of_total() {
        let mut progress = Progress::new(Phase::Apply, None, true);
        let later = progress.started + Duration::from_secs(2);
        progress.on_event(Event::ApplyStarted { steps: 30 }, later);
        let output = progress.on_event(step_finished("dev/group"), later);
        assert_eq!(output, "\r\x1b[2Kdev/group: Creation complete after 0.1s\n\r\x1b[2KApplying: 1/30 steps done (2s)");
        assert_eq!(progress.finish(), ERASE_LINE);
    }

    #[test]
    fn terminal_erases_progress_before_a_line() {
        let mut progress = Progress::new(Phase::Apply, Some(3), true);
        let later = progress.started + Duration::from_secs(1);
        progress.on_event(step_finished("dev/group"), later);
        let output = progress.on_event(Event::Note { message: "note".to_owned() }, later);
        assert!(output.starts_with("\r\x1b[2Knote\n"), "{output:?}");
        assert!(output.ends_with("Applying: 1/3 steps done (1s)"), "{output:?}");
    }

    #[test]
    fn terminal_counts_workspaces_read() {
        let mut progress = Progress::new(Phase::Refresh, Some(42), true);
        let later = progress.started + Duration::from_secs(1);
        let output = progress.on_event(Event::Refreshed { workspace: "dev".to_owned(), requests: 0 }, later);
        assert_eq!(output, "\r\x1b[2KReading workspaces: 1/42 workspaces read (1s)");
    }

    #[test]
    fn quick_command_draws_nothing() {
        let mut progress = Progress::new(Phase::Refresh, Some(3), true);
        let soon = progress.started + Duration::from_millis(100);
        assert_eq!(progress.on_event(Event::Refreshed { workspace: "dev".to_owned(), requests: 0 }, soon), "");
        assert_eq!(progress.finish(), "");
    }

    #[test]
    fn finished_progress_stays_erased() {
        let mut progress = Progress::new(Phase::Refresh, Some(3), true);
        let later = progress.started + Duration::from_secs(1);
        progress.redraw(later);
        progress.finish();
        assert_eq!(progress.redraw(later), "");
    }
}
