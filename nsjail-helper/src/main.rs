//! `nsjail-helper`: the small privileged half of nsjail. It serves exactly one spawn request on
//! a Unix socket, whose client is the unprivileged `nsjail` command.
//!
//! A setuid program is started by its attacker. Before anything else it makes itself
//! non-dumpable, forgets its environment, closes every fd it was not meant to have and resets
//! the signal state it inherited; then it serves the connection and exits.
#![deny(unsafe_code)]

mod caller;
mod child;
mod conn;
mod error;
mod grants;
mod init;
mod lockdown;
mod report;
mod seccomp;
mod serve;
mod slots;
mod spawn;
mod supervise;
#[allow(unsafe_code)]
mod sys;
mod trusted;
mod userns;

use std::io::Write;
use std::os::fd::RawFd;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{
    AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
};
use nix::sys::stat::{Mode, umask};

use crate::caller::Caller;
use crate::serve::Outcome;

const USAGE: &str =
    "usage: nsjail-helper --fd N   (started by the nsjail command; not for direct use)";

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
    // Nothing of the caller's environment (LD_*, RUST_*, PATH, locale…) may steer us; the
    // payload's environment travels in the request.
    sys::clear_environment();
    umask(Mode::from_bits_truncate(0o022));

    let fd = match parse_args() {
        Ok(fd) => fd,
        Err(msg) => return fail(msg),
    };
    // Keep 0–2 (the runtime reopened them on /dev/null if they were closed) and the socket;
    // close every other fd the caller left open for us.
    if let Err(e) = sys::close_fds_from_except(3, &[fd]) {
        return fail(format!("close_range: {}", e.desc()));
    }
    if let Err(e) = sys::reset_signals() {
        return fail(format!("resetting signal dispositions: {}", e.desc()));
    }
    let sock = match checked_socket(fd) {
        Ok(s) => s,
        Err(msg) => return fail(msg),
    };
    let caller = match Caller::of_setuid_process(&sock) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match serve::serve_connection(sock, &caller) {
        Outcome::Served => 0,
        Outcome::Reported => 2,
        Outcome::Unreported(msg) => fail(msg),
    }
}

fn parse_args() -> Result<RawFd, String> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match args.as_slice() {
        [flag, n] if flag == "--fd" => n
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
            .filter(|&n| n > 2)
            .ok_or_else(|| format!("--fd wants a descriptor number above 2\n{USAGE}")),
        [flag, ..] if flag == "--daemon" => {
            Err("--daemon is not implemented yet (issue 5)".to_string())
        }
        _ => Err(USAGE.to_string()),
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
