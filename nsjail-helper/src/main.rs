//! `nsjail-helper`: the small privileged half of nsjail. It serves exactly one spawn request on
//! a Unix socket, whose client is the unprivileged `nsjail` command; or, with `--daemon`, it
//! listens on a socket and serves each connection the same way in a forked process.
//!
//! A setuid program is started by its attacker. Before anything else it makes itself
//! non-dumpable, forgets its environment, closes every fd it was not meant to have and resets
//! the signal state it inherited; then it serves the connection and exits.
#![deny(unsafe_code)]
// The helper never panics on input: no unwrap/expect/panic outside tests, enforced by clippy.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod daemon;
mod error;
mod host;
mod sandbox;
mod setup_report;
#[allow(unsafe_code)]
mod sys;

use std::io::Write;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{
    AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
};
use nix::sys::stat::umask;
use nix::unistd::{Gid, Uid};

use crate::daemon::Config;
use crate::daemon::listen::{self, Activation};
use crate::host::caller::Caller;
use crate::host::serve::{self, Limits, Outcome};
use crate::host::{cgroup, inherit};

const USAGE: &str = "usage: nsjail-helper --fd N   (started by the nsjail command)\n       \
     nsjail-helper --daemon [--socket PATH] [--socket-mode OCTAL] [--request-timeout SECS] \
     [--max-per-user N]   (as root, or from systemd)";

/// What the command line asks for.
enum Mode {
    /// Serve the one connection on this fd (the setuid path).
    Fd(RawFd),
    Daemon(Config),
}

fn main() {
    std::process::exit(run());
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    let _ = writeln!(std::io::stderr(), "nsjail-helper: {msg}");
    1
}

fn run() -> i32 {
    // With privilege, non-dumpable before anything can be observed: no ptrace, no
    // /proc/<pid>/mem, no core file. Without privilege there is nothing to protect from the
    // caller, and the sandbox must stay dumpable until its ID maps are written: the files in
    // /proc/<pid>/ of a non-dumpable process belong to root, so the caller could not write them.
    if nix::unistd::geteuid().is_root()
        && let Err(e) = nix::sys::prctl::set_dumpable(false)
    {
        return fail(format!("prctl(PR_SET_DUMPABLE): {}", e.desc()));
    }
    // Socket activation's two variables are the only thing we take from the environment (and
    // only in daemon mode, which a setuid start may not use).
    let activation = Activation::from_env();
    // Nothing of the caller's environment (LD_*, RUST_*, PATH, locale…) may steer us; the
    // payload's environment travels in the request.
    sys::clear_environment();

    let fd = match parse_args(&activation) {
        Ok(Mode::Fd(fd)) => fd,
        Ok(Mode::Daemon(cfg)) => {
            umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            return run_daemon(cfg);
        }
        Err(msg) => return fail(msg),
    };
    // The caller's signals, timers, session, resource limits and scheduling stop here (see
    // host/inherit.rs); what it had is given back to the payload. Before anything exists that a
    // death would leave behind.
    if let Err(e) = inherit::take_over(nix::unistd::geteuid().is_root()) {
        return fail(e);
    }
    // Keep 0–2 (the C library reopened them if they were closed: a setuid program gets 0 on
    // /dev/full, 1 and 2 on /dev/null) and the socket; close every other fd the caller left
    // open for us.
    if let Err(e) = sys::close_fds_from_except(3, &[fd]) {
        return fail(format!("close_range: {}", e.desc()));
    }
    let sock = match checked_socket(fd) {
        Ok(s) => s,
        Err(msg) => return fail(msg),
    };
    let caller = match Caller::of_setuid_process(&sock) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // With privilege, once we know who the caller is, become root through and through (real,
    // effective and saved ids). A setuid process keeps the caller's real uid, which lets the
    // caller signal it: SIGSTOP would suspend the enforcement of time limits, SIGKILL would
    // leave the sandbox's cgroup behind. Supplementary groups are left alone: the sandbox keeps
    // the caller's.
    if caller.privileged
        && let Err(e) = nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .and_then(|()| {
                nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            })
    {
        return fail(format!("setresuid(0, 0, 0): {}", e.desc()));
    }
    let limits = Limits {
        request_timeout: None,
    };
    match serve::serve_connection(sock, &caller, &limits) {
        Outcome::Served => 0,
        Outcome::Reported => 2,
        Outcome::Unreported(msg) => fail(msg),
    }
}

fn parse_args(activation: &Activation) -> Result<Mode, String> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match args.as_slice() {
        [flag, n] if flag == "--fd" => n
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
            .filter(|&n| n > 2)
            .map(Mode::Fd)
            .ok_or_else(|| format!("--fd wants a descriptor number above 2\n{USAGE}")),
        [flag, rest @ ..] if flag == "--daemon" => daemon_args(rest, activation).map(Mode::Daemon),
        _ => Err(USAGE.to_string()),
    }
}

fn daemon_args(args: &[std::ffi::OsString], activation: &Activation) -> Result<Config, String> {
    // A setuid start is made by whoever runs the binary: they must not get a root daemon on a
    // socket of their choosing (it would also remove a stale socket there as root).
    let uids = nix::unistd::getresuid().map_err(|e| format!("getresuid: {}", e.desc()))?;
    if uids.real != uids.effective {
        return Err(format!(
            "--daemon must be started by root or by systemd, not through the setuid bit (real \
             uid {}, effective uid {})",
            uids.real, uids.effective
        ));
    }
    let mut cfg = Config {
        socket: PathBuf::from(listen::DEFAULT_SOCKET),
        socket_mode: 0o666,
        request_timeout: daemon::DEFAULT_REQUEST_TIMEOUT,
        max_per_user: None,
        activated: activation.fds_for_us()?,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let flag = flag.to_string_lossy();
        let mut value = || {
            it.next()
                .and_then(|v| v.to_str())
                .ok_or_else(|| format!("{flag} wants a value\n{USAGE}"))
        };
        match flag.as_ref() {
            "--socket" => cfg.socket = PathBuf::from(value()?),
            "--socket-mode" => {
                let v = value()?;
                cfg.socket_mode = u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| format!("--socket-mode {v}: not an octal mode like 0660"))?;
            }
            "--request-timeout" => {
                let v = value()?;
                let secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                    .ok_or_else(|| {
                        format!("--request-timeout {v}: seconds, above 0, at most 3600")
                    })?;
                cfg.request_timeout = Duration::from_secs_f64(secs);
            }
            "--max-per-user" => {
                let v = value()?;
                let n = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--max-per-user {v}: a number above 0"))?;
                cfg.max_per_user = Some(n);
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(cfg)
}

fn run_daemon(cfg: Config) -> i32 {
    // Keep 0–2 and the socket systemd passed, if it did; close everything else we inherited.
    let keep: &[RawFd] = if cfg.activated.is_some() {
        &[listen::LISTEN_FDS_START]
    } else {
        &[]
    };
    if let Err(e) = sys::close_fds_from_except(3, keep) {
        return fail(format!("close_range: {}", e.desc()));
    }
    if let Err(e) = sys::reset_signals() {
        return fail(format!("resetting signal dispositions: {}", e.desc()));
    }
    // Sandboxes go under the service's own cgroup (see cgroup::daemon_leaf).
    match cgroup::daemon_leaf() {
        Ok(Some(what)) => {
            let _ = writeln!(std::io::stderr(), "nsjail-helper: cgroup: {what}");
        }
        Ok(None) => {}
        Err(e) => return fail(format!("cgroup: {e}")),
    }
    match daemon::run(cfg) {
        Ok(()) => 0,
        Err(msg) => fail(msg),
    }
}

/// Take the fd named on the command line, after checking it is an open Unix stream socket.
fn checked_socket(fd: RawFd) -> Result<std::os::fd::OwnedFd, String> {
    if !sys::fd_is_open(fd) {
        return Err(format!("--fd {fd}: not an open descriptor"));
    }
    let sock = sys::take_fd(fd);
    let domain = getsockname::<SockaddrStorage>(fd)
        .map_err(|e| format!("--fd {fd}: not a socket: {}", e.desc()))?
        .family();
    let kind = getsockopt(&sock, sockopt::SockType)
        .map_err(|e| format!("--fd {fd}: not a socket: {}", e.desc()))?;
    if domain != Some(AddressFamily::Unix) || kind != SockType::Stream {
        return Err(format!("--fd {fd}: not a Unix stream socket"));
    }
    // The sandbox must never inherit the client socket.
    fcntl(&sock, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| format!("fcntl(F_SETFD) on --fd {fd}: {}", e.desc()))?;
    Ok(sock)
}
