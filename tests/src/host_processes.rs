//! Host process inspection: what is left running, and where.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::RawFd;
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use crate::TIMEOUT;

/// Pids of host processes whose argv is exactly `argv`.
pub fn pids_with_argv(argv: &[&str]) -> Vec<i32> {
    let mut want = Vec::new();
    for a in argv {
        want.extend_from_slice(a.as_bytes());
        want.push(0);
    }
    let mut found = Vec::new();
    for (pid, _) in processes() {
        let matches = fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want);
        if matches && proc_state(pid) != Some('Z') {
            found.push(pid);
        }
    }
    found
}

/// Every host process: pid → (ppid, comm). Processes that vanish while listed are skipped.
pub fn processes() -> BTreeMap<i32, (i32, String)> {
    let mut map = BTreeMap::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return map;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some((ppid, comm, _state, _start)) = proc_stat(pid) {
            map.insert(pid, (ppid, comm));
        }
    }
    map
}

/// (ppid, comm, state, starttime) from /proc/PID/stat.
pub fn proc_stat(pid: i32) -> Option<(i32, String, char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let rest: Vec<&str> = s[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((ppid, comm, state, start))
}

pub fn proc_state(pid: i32) -> Option<char> {
    proc_stat(pid).map(|(_, _, st, _)| st)
}

/// The process `pid` with start time `start` still exists and is not a zombie.
pub fn alive(pid: i32, start: u64) -> bool {
    matches!(proc_stat(pid), Some((_, _, st, s)) if s == start && st != 'Z' && st != 'X')
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for `child`, the leader of its own process group, at most [`TIMEOUT`]; if it has not
/// ended by then, SIGKILL the whole group and reap the child. Its status if it ended in time.
pub fn wait_or_kill_group(child: &mut Child) -> Option<ExitStatus> {
    let mut status = None;
    let ended = poll_until(TIMEOUT, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !ended {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
    }
    status
}

/// The inode link of one of this process's namespaces, e.g. `net:[4026531840]`.
pub fn host_ns(name: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap_or_else(|e| panic!("readlink /proc/self/ns/{name}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// Remove `FD_CLOEXEC` from `fd` (for fds a child must inherit).
pub fn clear_cloexec(fd: RawFd) {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    // SAFETY: fd is open for the duration of the call (the caller owns it).
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fcntl(bfd, FcntlArg::F_SETFD(FdFlag::empty())).expect("clear FD_CLOEXEC");
}
