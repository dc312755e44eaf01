//! `nsjail-helper`: the small privileged half of nsjail, installed setuid root. It serves exactly
//! one spawn request on a Unix socket, whose client is the unprivileged `nsjail` command. The
//! daemon, which serves each connection on its socket the same way, is the separate binary
//! `nsjail-helperd` (`daemon/`): none of its code is in this file.
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

use std::io::Write;
use std::os::fd::RawFd;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{
    AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
};
use nix::unistd::{Gid, Uid};
use nsjail_helper::host::caller::Caller;
use nsjail_helper::host::inherit;
use nsjail_helper::host::serve::{self, Limits, Outcome};
use nsjail_helper::sys;

const USAGE: &str = "usage: nsjail-helper --fd N   (started by the nsjail command)";

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

    let fd = match parse_args() {
        Ok(fd) => fd,
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

fn parse_args() -> Result<RawFd, String> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match args.as_slice() {
        [flag, n] if flag == "--fd" => n
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
            .filter(|&n| n > 2)
            .ok_or_else(|| format!("--fd wants a descriptor number above 2\n{USAGE}")),
        [flag, ..] if flag == "--daemon" => Err(format!(
            "the daemon is nsjail-helperd, installed beside this file, not nsjail-helper --daemon\n\
             {USAGE}"
        )),
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
