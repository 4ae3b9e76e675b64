//! State writes of apply, shared between steps that finish together.
//!
//! Writing the whole state file with two fsyncs after every step made steps that finish together
//! wait for each other's writes, one after the other. Here every write carries all changes made
//! up to its start, and a change that arrives while a write runs goes into the next write:
//!
//! - a step's own record (its outcome, or the removal of a deleted object) stays in memory until
//!   the step's code returns. [`Context::persist`] then waits for a write that contains it,
//!   without blocking a tokio worker thread, and only then does the step count as done.
//! - every other save, such as the intent written before a create that is not idempotent,
//!   returns only once the state file contains it, as before.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use mlops_state::{Resource, State};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::Notify;

use super::Context;
use crate::error::EngineError;

tokio::task_local! {
    /// Set while a step's code runs in [`run_as_step`], whose caller persists the step's records.
    static IN_STEP: ();
}

/// Runs a step's code so that its records are left for [`Context::persist`] to write.
pub(super) async fn run_as_step<F: Future>(step: F) -> F::Output {
    IN_STEP.scope((), step).await
}

/// Counters that let steps share state writes.
#[derive(Default)]
pub(super) struct Journal {
    /// Changes made to the in-memory state so far.
    changes: AtomicU64,
    progress: Mutex<Progress>,
    /// Wakes the threads that wait in [`Context::save_all`] when a write ends.
    write_ended: Condvar,
    /// Wakes the tasks that wait in [`Context::persist`] when a write ends.
    write_ended_async: Notify,
}

#[derive(Default)]
struct Progress {
    /// Changes that the state file contains.
    written: u64,
    writing: bool,
}

impl Journal {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Context {
    /// Upserts resources into the state and returns once the state file contains them.
    pub(super) fn save_all(&self, resources: Vec<Resource>) -> Result<(), EngineError> {
        let generation = self.change_state(|state| {
            for resource in resources {
                state.upsert(resource);
            }
            true
        });
        match generation {
            Some(generation) => self.write_through(generation),
            None => Ok(()),
        }
    }

    /// Applies a step's own record to the state. Inside [`run_as_step`] the write is left to
    /// [`Context::persist`], and elsewhere this returns once the state file contains the change.
    pub(super) fn record_outcome(&self, change: impl FnOnce(&mut State) -> bool) -> Result<(), EngineError> {
        let Some(generation) = self.change_state(change) else { return Ok(()) };
        match IN_STEP.try_with(|()| ()) {
            Ok(()) => Ok(()),
            Err(_) => self.write_through(generation),
        }
    }

    /// Returns once the state file contains every change made so far, waiting for a running
    /// write without blocking the tokio worker thread.
    pub(super) async fn persist(&self) -> Result<(), EngineError> {
        let generation = self.journal.changes.load(Ordering::SeqCst);
        loop {
            let write_ended = self.journal.write_ended_async.notified();
            tokio::pin!(write_ended);
            // Registered before the check, so a write that ends in between still wakes this task.
            write_ended.as_mut().enable();
            {
                let mut progress = self.journal.progress();
                if progress.written >= generation {
                    return Ok(());
                }
                if !progress.writing {
                    progress.writing = true;
                    break;
                }
            }
            write_ended.await;
        }
        self.write_as_writer()
    }

    /// Applies `change` to the in-memory state and returns its number among all changes, or
    /// `None` when `change` reports that it changed nothing.
    fn change_state(&self, change: impl FnOnce(&mut State) -> bool) -> Option<u64> {
        let mut state = self.state();
        // Counted under the state lock, so a snapshot taken under it holds every change up to
        // the count it reads.
        change(&mut state).then(|| self.journal.changes.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Returns once the state file contains change `generation`, after a running write that
    /// carries it or else after a write of its own. Waiting blocks the thread. That is rare,
    /// because the steps' own records wait in [`Context::persist`] instead.
    fn write_through(&self, generation: u64) -> Result<(), EngineError> {
        let mut progress = self.journal.progress();
        loop {
            if progress.written >= generation {
                return Ok(());
            }
            if !progress.writing {
                progress.writing = true;
                break;
            }
            progress = self.journal.write_ended.wait(progress).unwrap_or_else(PoisonError::into_inner);
        }
        drop(progress);
        self.write_as_writer()
    }

    /// Writes every change made so far; the caller has set `writing`. Only the writer leaves its
    /// tokio worker thread, so a burst of finishing steps does not start a thread each.
    fn write_as_writer(&self) -> Result<(), EngineError> {
        let (mut snapshot, snapshot_generation) = {
            let state = self.state();
            (state.clone(), self.journal.changes.load(Ordering::SeqCst))
        };
        let result = outside_runtime_workers(|| self.store.write(&mut snapshot));

        let mut progress = self.journal.progress();
        progress.writing = false;
        if result.is_ok() {
            // The next write counts its serial on from this one.
            self.state().serial = snapshot.serial;
            progress.written = snapshot_generation;
        }
        drop(progress);
        self.journal.write_ended.notify_all();
        self.journal.write_ended_async.notify_waiters();
        Ok(result?)
    }
}

/// Runs blocking file work so that the tokio worker thread's other tasks move to another thread
/// meanwhile. On a current-thread runtime, or outside tokio, it runs the work in place.
fn outside_runtime_workers<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}
