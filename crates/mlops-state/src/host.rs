//! Facts about this machine and its processes, used to describe and check lock holders.

/// Returns the host name of this machine, or `unknown` when it cannot be read.
#[cfg(unix)]
pub(crate) fn hostname() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    }
}

/// Returns the host name of this machine, or `unknown` when it cannot be read.
#[cfg(not(unix))]
pub(crate) fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown".to_string())
}

/// Reports whether process `pid` exists on this machine, or `None` when that cannot be checked.
///
/// NOTE: a process id can be reused after its process exits, so `Some(true)` can name an
/// unrelated process. A zombie that its parent has not reaped yet also counts as running.
#[cfg(unix)]
pub(crate) fn process_running(pid: u32) -> Option<bool> {
    let raw = i32::try_from(pid).ok()?;
    let pid = rustix::process::Pid::from_raw(raw)?;

    // Signal 0 checks for existence only. EPERM means the process exists under another user.
    match rustix::process::test_kill_process(pid) {
        Ok(()) => Some(true),
        Err(rustix::io::Errno::PERM) => Some(true),
        Err(rustix::io::Errno::SRCH) => Some(false),
        Err(_) => None,
    }
}

/// Reports whether process `pid` exists on this machine, or `None` when that cannot be checked.
#[cfg(not(unix))]
pub(crate) fn process_running(_pid: u32) -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_not_empty() {
        assert!(!hostname().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn own_process_running() {
        assert_eq!(process_running(std::process::id()), Some(true));
    }

    #[cfg(unix)]
    #[test]
    fn reaped_child_not_running() {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--list")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        child.wait().unwrap();

        assert_eq!(process_running(pid), Some(false));
    }

    #[cfg(unix)]
    #[test]
    fn pid_zero_unchecked() {
        assert_eq!(process_running(0), None);
    }
}
