//! The writer lock, within one process and across processes.
//!
//! Cross-process tests run this test binary again as a child with `CHILD_ROLE_VAR` set, so the
//! child takes the lock through the same code as `mlops`.

use std::io::Read;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use mlops_state::{HolderStatus, LockInfo, StateError, StateStore, force_unlock, lock_path};

const CHILD_ROLE_VAR: &str = "MLOPS_STATE_TEST_CHILD_ROLE";
const CHILD_PATH_VAR: &str = "MLOPS_STATE_TEST_CHILD_PATH";

/// Timeout for attempts that are expected to fail because another holder exists.
const SHORT: Duration = Duration::from_millis(300);

/// Timeout for attempts that are expected to succeed at once.
const LONG: Duration = Duration::from_secs(30);

fn store_in(folder: &Path) -> StateStore {
    StateStore::new(folder.join("mlops.state.json"))
}

fn timeout_parts(error: StateError) -> (Option<LockInfo>, HolderStatus, String, String) {
    let message = error.to_string();
    let hint = error.hint().unwrap_or_default();
    match error {
        StateError::LockTimeout { holder, status, .. } => {
            (holder.map(|h| *h), status, message, hint)
        }
        other => panic!("expected a lock timeout, got {other}"),
    }
}

/// Returns the process id of a process that has exited and been reaped.
fn exited_pid() -> u32 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--list")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Child process started by a test, killed if the test ends early.
struct ChildHolder {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Kept open so that the child's later output does not fail with a broken pipe.
    stdout: BufReader<ChildStdout>,
    lock_id: String,
}

impl ChildHolder {
    /// Starts a child that takes the lock on `state_path` and reports the lock id.
    ///
    /// Role `hold` keeps the lock until its standard input closes. Role `exit` exits while
    /// holding it, without running destructors, as a crashed process would.
    fn start(role: &str, state_path: &Path) -> ChildHolder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ROLE_VAR, role)
            .env(CHILD_PATH_VAR, state_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());

        // The test harness prints `test child_process_entry ... ` on the same line first.
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap() > 0 {
            if let Some((_, id)) = line.split_once("locked ") {
                let lock_id = id.trim().to_string();
                return ChildHolder {
                    child,
                    stdin,
                    stdout,
                    lock_id,
                };
            }
            line.clear();
        }
        let status = child.wait().unwrap();
        panic!("child exited without taking the lock: {status}");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes the child's standard input and waits for it to exit.
    fn finish(&mut self) {
        self.stdin.take();
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for ChildHolder {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Body of the child process; does nothing in a normal test run.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD_ROLE_VAR) else {
        return;
    };
    let store = StateStore::new(PathBuf::from(std::env::var(CHILD_PATH_VAR).unwrap()));
    let lock = store.lock("apply", LONG).unwrap();
    println!("locked {}", lock.info().id);
    std::io::stdout().flush().unwrap();

    match role.as_str() {
        "hold" => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            drop(lock);
        }
        "exit" => std::process::exit(0),
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn lock_records_holder() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());

    let lock = store.lock("plan", LONG).unwrap();
    let info = lock.info();

    assert_eq!(info.operation, "plan");
    assert_eq!(info.pid, std::process::id());
    assert!(!info.host.is_empty());
    assert!(uuid::Uuid::parse_str(&info.id).is_ok(), "{}", info.id);
    assert!(
        info.created.parse::<jiff::Timestamp>().is_ok(),
        "{}",
        info.created
    );
    assert!(info.created.ends_with('Z'), "{}", info.created);
    assert!(Path::new(&info.path).is_absolute());
    assert!(info.path.ends_with("mlops.state.json"));
    assert_eq!(lock.lock_path(), lock_path(store.path()));
    assert_eq!(
        store.lock_path(),
        folder.path().join("mlops.state.json.lock")
    );

    let text = std::fs::read_to_string(store.lock_path()).unwrap();
    let recorded: LockInfo = serde_json::from_str(&text).unwrap();
    assert_eq!(&recorded, info);
}

#[test]
fn second_lock_times_out_naming_holder() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let first = store.lock("apply", LONG).unwrap();

    let error = store.lock("plan", SHORT).unwrap_err();

    let (holder, status, message, hint) = timeout_parts(error);
    assert_eq!(holder.as_ref(), Some(first.info()));
    assert_eq!(status, HolderStatus::Running);
    assert!(message.contains(&first.info().id), "{message}");
    assert!(message.contains("apply"), "{message}");
    assert!(
        message.contains(&format!("process {}", std::process::id())),
        "{message}"
    );
    assert!(message.contains(&first.info().created), "{message}");
    assert!(
        message.contains(&store.path().display().to_string()),
        "{message}"
    );
    assert!(hint.contains("wait for process"), "{hint}");
}

#[test]
fn lock_free_again_after_drop() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());

    let first = store.lock("apply", LONG).unwrap();
    drop(first);

    assert!(!store.lock_path().exists());
    let second = store.lock("apply", SHORT).unwrap();
    assert!(store.lock_path().exists());
    second.release().unwrap();
    assert!(!store.lock_path().exists());
}

#[test]
fn lock_creates_state_folder() {
    let folder = tempfile::tempdir().unwrap();
    let store = StateStore::new(folder.path().join("state/mlops.state.json"));

    let lock = store.lock("plan", LONG).unwrap();

    assert!(lock.lock_path().exists());
}

#[test]
fn holder_without_record_reported() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let _held_lock = store.lock("apply", LONG).unwrap();
    std::fs::write(store.lock_path(), "").unwrap();

    let error = store.lock("plan", SHORT).unwrap_err();

    let (holder, _, message, _) = timeout_parts(error);
    assert!(holder.is_none());
    assert!(message.contains("has not recorded itself"), "{message}");
}

#[cfg(unix)]
#[test]
fn record_of_exited_process_reported() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let held_lock = store.lock("apply", LONG).unwrap();
    let stale = LockInfo {
        pid: exited_pid(),
        ..held_lock.info().clone()
    };
    std::fs::write(store.lock_path(), serde_json::to_string(&stale).unwrap()).unwrap();

    let error = store.lock("plan", SHORT).unwrap_err();
    let (_, status, message, hint) = timeout_parts(error);
    assert_eq!(status, HolderStatus::NotRunning);
    assert!(
        message.contains(&format!("process {} is not running", stale.pid)),
        "{message}"
    );
    assert!(hint.contains("fuser"), "{hint}");

    let forced = force_unlock(store.path(), &stale.id).unwrap_err();
    assert!(
        matches!(forced, StateError::LockHeldByUnrecordedProcess { .. }),
        "{forced}"
    );
    assert!(store.lock_path().exists());
}

#[test]
fn force_unlock_refuses_live_holder() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let held_lock = store.lock("apply", LONG).unwrap();

    let error = force_unlock(store.path(), &held_lock.info().id).unwrap_err();

    let StateError::LockHeld { ref holder, .. } = error else {
        panic!("expected a held lock, got {error}");
    };
    assert_eq!(holder.as_ref(), held_lock.info());
    assert!(error.hint().unwrap().contains("cannot be forced"));
    assert!(store.lock_path().exists());
}

#[test]
fn force_unlock_without_lock_file() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());

    let error = force_unlock(store.path(), "any").unwrap_err();

    assert!(matches!(error, StateError::LockNotFound { .. }), "{error}");
}

#[test]
fn force_unlock_unreadable_record() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    std::fs::write(store.lock_path(), "{").unwrap();

    let error = force_unlock(store.path(), "any").unwrap_err();

    assert!(
        matches!(error, StateError::LockUnreadable { .. }),
        "{error}"
    );
    assert!(store.lock_path().exists());
}

#[test]
fn force_unlock_after_holder_exits() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut child = ChildHolder::start("exit", store.path());
    child.finish();
    assert!(
        store.lock_path().exists(),
        "the exited child left no lock file"
    );

    let wrong = force_unlock(store.path(), "not-the-id").unwrap_err();
    let StateError::LockIdMismatch { ref actual, .. } = wrong else {
        panic!("expected an id mismatch, got {wrong}");
    };
    assert_eq!(actual, &child.lock_id);
    assert!(wrong.to_string().contains(&child.lock_id));
    assert!(store.lock_path().exists());

    force_unlock(store.path(), &child.lock_id).unwrap();
    assert!(!store.lock_path().exists());
}

#[test]
fn stale_lock_file_taken_over() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut child = ChildHolder::start("exit", store.path());
    child.finish();

    let lock = store.lock("apply", SHORT).unwrap();

    assert_ne!(lock.info().id, child.lock_id);
    assert_eq!(lock.info().pid, std::process::id());
}

#[test]
fn child_holder_blocks_until_exit() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut child = ChildHolder::start("hold", store.path());

    let error = store.lock("plan", SHORT).unwrap_err();
    let (holder, status, message, _) = timeout_parts(error);
    let holder = holder.unwrap();
    assert_eq!(holder.pid, child.pid());
    assert_eq!(holder.id, child.lock_id);
    assert_eq!(holder.operation, "apply");
    assert_eq!(status, HolderStatus::Running);
    assert!(
        message.contains(&format!("process {}", child.pid())),
        "{message}"
    );

    let forced = force_unlock(store.path(), &child.lock_id).unwrap_err();
    assert!(matches!(forced, StateError::LockHeld { .. }), "{forced}");

    child.finish();
    assert!(!store.lock_path().exists());
    store.lock("plan", LONG).unwrap();
}

#[test]
fn waiter_gets_lock_when_released() {
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());
    let mut child = ChildHolder::start("hold", store.path());

    let waiter_store = store.clone();
    let waiter = std::thread::spawn(move || waiter_store.lock("plan", LONG));
    std::thread::sleep(Duration::from_millis(200));
    child.finish();

    let lock = waiter.join().unwrap().unwrap();
    assert_eq!(lock.info().operation, "plan");
    let recorded: LockInfo =
        serde_json::from_str(&std::fs::read_to_string(store.lock_path()).unwrap()).unwrap();
    assert_eq!(&recorded, lock.info());
}

#[test]
fn concurrent_writers_lose_no_update() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 25;
    let folder = tempfile::tempdir().unwrap();
    let store = store_in(folder.path());

    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let _lock = store.lock("apply", LONG).unwrap();
                    let mut state = store.read().unwrap().unwrap_or_default();
                    store.write(&mut state).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }

    let state = store.read().unwrap().unwrap();
    assert_eq!(state.serial, THREADS * ROUNDS);
    assert!(!store.lock_path().exists());
}
