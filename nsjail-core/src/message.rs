//! What travels over the socket besides the request: the client's later messages and the
//! helper's events.

use serde::{Deserialize, Serialize};

use crate::request::SpawnRequest;

/// Messages from the CLI to the helper.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Start a sandbox. Carries [`STDIO_FDS`] file descriptors (stdin, stdout, stderr), then the
    /// request's `extra_fds` (filesystem data), then one fd for each of its `pass_fds`, as
    /// `SCM_RIGHTS`, in that order.
    Spawn(Box<SpawnRequest>),
    /// Deliver this signal to the payload.
    Signal(i32),
    /// Continue the payload after a [`HelperEvent::Stopped`]: the CLI stopped itself in turn
    /// and is back in the foreground (`fg`). The helper sends `SIGCONT` to the sandbox's own
    /// processes only (the payload's process group, inside the sandbox).
    Continue,
}

/// The number of fds that travel with every spawn request: the payload's stdin, stdout, stderr.
pub const STDIO_FDS: usize = 3;
/// The most raw BPF programs (`--add-seccomp-fd`) one spawn request may carry.
pub const MAX_SECCOMP_PROGRAMS: usize = 5;
/// At most this many fds for `--file`, `--bind-data` and the like.
pub const MAX_EXTRA_FDS: usize = 56;
/// At most this many fds handed to the payload (`--pass-fd`, and `bwrap`'s inherited fds).
pub const MAX_PASS_FDS: usize = 64;
/// The numbers a passed fd may have inside: 3 up to (not including) this, the default soft
/// `RLIMIT_NOFILE`.
pub const PASS_FD_LIMIT: u32 = 1024;
/// The most fds any message carries (123, well within the kernel's 253 of one `SCM_RIGHTS`).
pub const MAX_FDS: usize = STDIO_FDS + MAX_EXTRA_FDS + MAX_PASS_FDS;

impl ClientMessage {
    /// How many fds must arrive with this message; any other count is a protocol error.
    pub fn expected_fds(&self) -> usize {
        match self {
            ClientMessage::Spawn(req) => STDIO_FDS + req.extra_fds as usize + req.pass_fds.len(),
            ClientMessage::Signal(_) | ClientMessage::Continue => 0,
        }
    }
}

/// Events from the helper to the CLI, in the order they happen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelperEvent {
    /// A set-up step, sent only when the request asked for `verbose`.
    Step(String),
    /// The payload has been executed; `pid` is the sandbox's first process as the host sees it.
    Started { pid: i32 },
    /// The sandbox has ended. Always the last event of a sandbox that started.
    Exited(ExitInfo),
    /// Something went wrong; `message` is one line for humans. The last event unless `kind` is
    /// an exec failure, which is followed by `Exited`.
    Error { kind: ErrorKind, message: String },
    /// The payload's terminal is a pseudo-terminal of the sandbox's own `/dev/pts` (asked for
    /// with [`SpawnRequest::terminal`]); its master travels with this event as one fd
    /// (`SCM_RIGHTS`). Sent before `Started`, or not at all when the sandbox has no `/dev/ptmx`
    /// (the payload then keeps the terminal it was given).
    Terminal,
    /// The payload was stopped by this signal (`SIGTSTP` from Ctrl-Z, `SIGTTIN`, `SIGTTOU`,
    /// `SIGSTOP`). The CLI gives its terminal back to its own shell and stops likewise; when it
    /// is continued it sends [`ClientMessage::Continue`].
    Stopped { signal: i32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request was malformed or refused; nothing was started.
    BadRequest,
    /// The sandbox could not be set up.
    Setup,
    /// The command does not exist (exit 127).
    NotFound,
    /// The command exists but could not be executed (exit 126).
    NotExecutable,
}

/// How the sandbox ended and what it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub termination: Termination,
    /// Wall-clock time from clone to the end, in microseconds.
    pub wall_time_us: u64,
    /// User and system CPU time of every process of the sandbox that was reaped, microseconds.
    pub user_time_us: u64,
    pub system_time_us: u64,
    /// Largest resident set size of any single process, KiB.
    pub max_rss_kib: u64,
    /// CPU time of the whole sandbox, microseconds: the cgroup's figure when the sandbox had a
    /// cgroup (every process, reaped or not), else `user_time_us + system_time_us`.
    pub cpu_time_us: u64,
    /// Context switches of the reaped processes (rusage): voluntary and forced.
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// What the sandbox's cgroup measured; `None` when it had none.
    pub cgroup: Option<CgroupUsage>,
    /// The time limit the supervisor ended the sandbox for, if it did.
    pub limit_hit: Option<LimitHit>,
}

/// Usage read from the sandbox's cgroup after its last process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupUsage {
    /// 1 or 2.
    pub version: u8,
    /// Peak memory of the whole cgroup, bytes; `None` without a memory controller (or on a v2
    /// kernel older than 5.19, which has no `memory.peak`).
    pub memory_peak_bytes: Option<u64>,
    /// How many processes the kernel's OOM killer killed in the cgroup.
    pub oom_kills: u64,
}

/// Which time limit made the supervisor kill the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitHit {
    CpuTime,
    WallTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Termination {
    /// The payload exited with this code.
    Exited(i32),
    /// The payload was killed by this signal.
    Signaled(i32),
}
