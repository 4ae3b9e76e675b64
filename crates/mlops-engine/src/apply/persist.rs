//! State writes of apply, shared between steps that finish together.
//!
//! A step counts as done only once the state file holds its change. Writing the whole file with
//! two fsyncs after every step made steps that finish together wait for each other's writes, one
//! after the other. Here a step that finds a write running waits for it, and the next write then
//! carries the changes of every step that waited, so each step still returns only after its
//! change is on disk, with one write per batch instead of one per step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use mlops_state::{Resource, State};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::Context;
use crate::error::EngineError;

/// Counters that let steps share state writes.
#[derive(Default)]
pub(super) struct Journal {
    /// Changes made to the in-memory state so far.
    changes: AtomicU64,
    progress: Mutex<Progress>,
    /// Signalled when a write ends.
    write_ended: Condvar,
}

#[derive(Default)]
struct Progress {
    /// Changes that the state file holds.
    written: u64,
    writing: bool,
}

impl Context {
    /// Upserts resources into the state and returns once the state file holds them.
    pub(super) fn save_all(&self, resources: Vec<Resource>) -> Result<(), EngineError> {
        self.commit(|state| {
            for resource in resources {
                state.upsert(resource);
            }
            true
        })
    }

    /// Applies `change` to the state and, when it reports a change, returns once the state file
    /// holds it.
    pub(super) fn commit(&self, change: impl FnOnce(&mut State) -> bool) -> Result<(), EngineError> {
        let generation = {
            let mut state = self.state();
            if !change(&mut state) {
                return Ok(());
            }
            // Counted under the state lock, so a snapshot taken under it holds every change up
            // to the count it reads.
            self.journal.changes.fetch_add(1, Ordering::SeqCst) + 1
        };
        self.write_through(generation)
    }

    /// Returns once the state file holds change `generation`: after a running write that
    /// already carries it, or else after a write of its own, which carries every change made
    /// up to its start.
    ///
    /// Waiting for another step's write blocks the tokio worker thread for that write, while
    /// the write itself runs outside the workers. Only the writer leaves its worker, so a burst
    /// of finishing steps does not start a thread each.
    fn write_through(&self, generation: u64) -> Result<(), EngineError> {
        let journal = &self.journal;
        let mut progress = journal.progress.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if progress.written >= generation {
                return Ok(());
            }
            if !progress.writing {
                break;
            }
            progress = journal.write_ended.wait(progress).unwrap_or_else(PoisonError::into_inner);
        }
        progress.writing = true;
        drop(progress);

        let (mut snapshot, snapshot_generation) = {
            let state = self.state();
            (state.clone(), journal.changes.load(Ordering::SeqCst))
        };
        let result = outside_runtime_workers(|| self.store.write(&mut snapshot));

        let mut progress = journal.progress.lock().unwrap_or_else(PoisonError::into_inner);
        progress.writing = false;
        if result.is_ok() {
            // The next write counts its serial on from this one.
            self.state().serial = snapshot.serial;
            progress.written = snapshot_generation;
        }
        journal.write_ended.notify_all();
        Ok(result?)
    }
}

/// Runs blocking file work so that the tokio worker thread's other tasks move to another thread
/// meanwhile; on a current-thread runtime, or outside tokio, it runs the work in place.
fn outside_runtime_workers<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}
