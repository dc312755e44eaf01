//! What travels over the socket besides the request: the client's later messages and the
//! helper's events.

use serde::{Deserialize, Serialize};

use crate::request::SpawnRequest;

/// Messages from the CLI to the helper.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Start a sandbox. Carries exactly [`STDIO_FDS`] file descriptors (stdin, stdout, stderr)
    /// as `SCM_RIGHTS`, followed by the request's `seccomp_fds` raw BPF programs.
    Spawn(Box<SpawnRequest>),
    /// Deliver this signal to the payload.
    Signal(i32),
}

/// The number of fds that travel with every spawn request: the payload's stdin, stdout, stderr.
pub const STDIO_FDS: usize = 3;
/// The most raw BPF programs (`--add-seccomp-fd`) one spawn request may carry.
pub const MAX_SECCOMP_FDS: usize = 5;
/// The most fds any message carries.
pub const MAX_FDS: usize = STDIO_FDS + MAX_SECCOMP_FDS;

impl ClientMessage {
    /// How many fds must arrive with this message; any other count is a protocol error.
    pub fn expected_fds(&self) -> usize {
        match self {
            ClientMessage::Spawn(req) => STDIO_FDS + req.seccomp_fds as usize,
            ClientMessage::Signal(_) => 0,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Termination {
    /// The payload exited with this code.
    Exited(i32),
    /// The payload was killed by this signal.
    Signaled(i32),
}
