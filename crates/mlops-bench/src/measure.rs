//! Runs one child process and measures its wall time and peak resident memory.

use std::fs::File;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Interval between two reads of the child's `VmHWM`.
const MEMORY_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Exit status, output, wall time and peak memory of one run of a child process.
pub struct Outcome {
    pub status: ExitStatus,
    /// From just before the spawn to the end of `wait`.
    pub wall: Duration,
    /// Largest `VmHWM` read from `/proc/<pid>/status`, in KiB; `None` when no read succeeded.
    pub peak_rss_kib: Option<u64>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end with stdout and stderr sent to files in `output_dir`.
///
/// Peak memory is the kernel's resident high-water mark (`VmHWM`), polled every 2 ms while the
/// child runs, so growth in the last 2 ms before exit can be missed.
pub fn run(mut command: Command, output_dir: &Path) -> anyhow::Result<Outcome> {
    let stdout_path = output_dir.join("stdout.txt");
    let stderr_path = output_dir.join("stderr.txt");
    command
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).context("failed to create the stdout file of a run")?)
        .stderr(File::create(&stderr_path).context("failed to create the stderr file of a run")?);

    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("failed to start {:?}", command.get_program()))?;
    let poller = MemoryPoller::start(child.id());
    let status = child.wait().context("failed to wait for the child process")?;
    let wall = started.elapsed();
    let peak_rss_kib = poller.stop();

    Ok(Outcome {
        status,
        wall,
        peak_rss_kib,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    })
}

/// A thread that keeps the largest `VmHWM` of a process.
struct MemoryPoller {
    done: Arc<AtomicBool>,
    /// 0 until a read succeeds.
    peak_kib: Arc<AtomicU64>,
    thread: thread::JoinHandle<()>,
}

impl MemoryPoller {
    fn start(pid: u32) -> MemoryPoller {
        let done = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let thread = {
            let (done, peak_kib) = (done.clone(), peak_kib.clone());
            thread::spawn(move || {
                let path = format!("/proc/{pid}/status");
                while !done.load(Ordering::SeqCst) {
                    if let Some(kib) = std::fs::read_to_string(&path).ok().as_deref().and_then(high_water_mark_kib) {
                        peak_kib.fetch_max(kib, Ordering::SeqCst);
                    }
                    thread::sleep(MEMORY_POLL_INTERVAL);
                }
            })
        };
        MemoryPoller { done, peak_kib, thread }
    }

    fn stop(self) -> Option<u64> {
        self.done.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        Some(self.peak_kib.load(Ordering::SeqCst)).filter(|kib| *kib > 0)
    }
}

/// Reads the `VmHWM:` line of a `/proc/<pid>/status` text, in KiB.
pub fn high_water_mark_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let number = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_high_water_mark() {
        let status = "Name:\tmlops\nVmPeak:\t  20000 kB\nVmHWM:\t   12524 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(high_water_mark_kib(status), Some(12524));
    }

    #[test]
    fn high_water_mark_missing_or_odd() {
        assert_eq!(high_water_mark_kib("Name:\tmlops\nState:\tZ (zombie)\n"), None);
        assert_eq!(high_water_mark_kib("VmHWM:\t12 MB\n"), None);
    }

    #[test]
    fn measures_a_child() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; sleep 0.05"]);
        let outcome = run(command, dir.path()).unwrap();
        assert!(outcome.status.success());
        assert_eq!(outcome.stdout, "out\n");
        assert_eq!(outcome.stderr, "err\n");
        assert!(outcome.peak_rss_kib.is_some_and(|kib| kib > 0));
    }
}
