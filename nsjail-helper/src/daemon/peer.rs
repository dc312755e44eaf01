//! What the daemon learns about the process at the other end of a connection, besides the ids
//! in `host/caller.rs`: its supplementary groups, which the connection process takes on before it
//! does anything for the caller, and whether it runs inside a sandbox, which the daemon
//! refuses.
//!
//! **No less restricted sandbox from inside a sandbox.** The setuid helper cannot be used to
//! get one: every sandboxed process runs with `no_new_privs`, so the kernel ignores the setuid
//! bit and the helper runs with the sandbox's own (lack of) privilege. The daemon has no such
//! barrier — it is root already and serves whoever connects — so it refuses a peer that runs
//! with `no_new_privs` or in a user namespace other than its own (every sandboxed process does
//! both). The check is made on the very process that connected: its pidfd from
//! `SO_PEERPIDFD` (Linux 6.5), else `pidfd_open` of the pid `SO_PEERCRED` recorded; the
//! process's `/proc` files are read, then the pidfd confirms it was alive all along, so the
//! files read were its own and not those of a process that got its pid since.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::stat;
use nix::unistd::{Gid, Pid};

use nsjail_helper::error::{HelperError, Result, sys};
use nsjail_helper::host::caller::Caller;
use nsjail_helper::sys as os;

/// The refusals, word for word (the tests and docs/security-model.md quote them).
pub const NO_NEW_PRIVS: &str = "the daemon does not serve a process that runs with \
                                no_new_privs, as every sandboxed process does: a sandbox may \
                                not obtain a less restricted sandbox";
pub const OTHER_USERNS: &str = "the daemon does not serve a process in another user namespace \
                                than its own, as every sandboxed process is: a sandbox may not \
                                obtain a less restricted sandbox";

/// Everything the connection process does about its peer before it reads the request: refuse
/// a peer inside a sandbox, then (with privilege) take on the peer's supplementary groups.
pub fn admit(sock: &OwnedFd, caller: &Caller) -> Result<()> {
    refuse_sandboxed(sock.as_fd(), caller.pid)?;
    if caller.privileged {
        take_groups(sock.as_fd())?;
    }
    Ok(())
}

/// Replace our supplementary groups (the daemon's: root's, often 0) with the caller's, as the
/// kernel recorded them at `connect()`. From here on every check the kernel makes for us — the
/// policy's group entries, the bind sources the set-up opens as the caller, pasta, the payload,
/// which inherit them — sees the caller's groups and only those. On a kernel without
/// `SO_PEERGROUPS` (before 4.13) the caller gets none.
fn take_groups(sock: BorrowedFd<'_>) -> Result<()> {
    let groups = match os::peer_groups(sock) {
        Ok(g) => g,
        Err(Errno::ENOPROTOOPT) => Vec::new(),
        Err(e) => return Err(sys("getsockopt(SO_PEERGROUPS) on the client socket")(e)),
    };
    let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids).map_err(sys(format!(
        "setgroups (the caller's {} supplementary groups)",
        gids.len()
    )))
}

/// A refusal because the peer could not be checked: the daemon never serves on a guess.
fn unchecked(pid: Option<i32>, why: impl std::fmt::Display) -> HelperError {
    let who = pid.map_or("the connecting process".to_string(), |p| {
        format!("the connecting process (pid {p})")
    });
    HelperError::Refused(format!(
        "the daemon could not check {who}: {why}; refusing it"
    ))
}

/// Refuse a peer that runs with `no_new_privs` or in another user namespace than ours.
fn refuse_sandboxed(sock: BorrowedFd<'_>, peer_pid: Option<Pid>) -> Result<()> {
    let cred_pid = peer_pid.map(Pid::as_raw);
    let (pidfd, pid) = match os::peer_pidfd(sock) {
        Ok(fd) => {
            let pid = pidfd_pid(&fd).map_err(|why| unchecked(cred_pid, why))?;
            (fd, pid)
        }
        // Before Linux 6.5: a pidfd of the pid SO_PEERCRED recorded. That pid may have been
        // reused if the peer exited before this point (docs/security-model.md says what that
        // leaves open).
        Err(Errno::ENOPROTOOPT) => {
            let pid = cred_pid
                .filter(|p| *p > 0)
                .ok_or_else(|| unchecked(None, "the kernel recorded no pid for it"))?;
            let fd = os::pidfd_open(pid).map_err(|e| match e {
                Errno::ESRCH => unchecked(cred_pid, "it has exited"),
                e => unchecked(cred_pid, format!("pidfd_open: {}", e.desc())),
            })?;
            (fd, pid)
        }
        Err(Errno::EINVAL | Errno::ESRCH) => return Err(unchecked(cred_pid, "it has exited")),
        Err(e) => {
            return Err(unchecked(
                cred_pid,
                format!("getsockopt(SO_PEERPIDFD): {}", e.desc()),
            ));
        }
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| unchecked(Some(pid), format!("reading /proc/{pid}/status: {e}")))?;
    let no_new_privs = status
        .lines()
        .find_map(|l| l.strip_prefix("NoNewPrivs:"))
        .map(str::trim)
        .ok_or_else(|| unchecked(Some(pid), format!("no NoNewPrivs in /proc/{pid}/status")))?
        != "0";
    let userns = |path: &str| {
        stat(path)
            .map(|st| (st.st_dev, st.st_ino))
            .map_err(|e| unchecked(Some(pid), format!("stat {path}: {}", e.desc())))
    };
    let theirs = userns(&format!("/proc/{pid}/ns/user"))?;
    let ours = userns("/proc/self/ns/user")?;
    // What a normal child of the caller would inherit, for the payload (see `host::inherit`).
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .map_err(|e| unchecked(Some(pid), format!("reading /proc/{pid}/limits: {e}")))?;
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .ok_or_else(|| unchecked(Some(pid), format!("no Umask in /proc/{pid}/status")))?;
    // Alive now means alive while the files above were read: a pid is not reused while its
    // process exists, so they were that process's own.
    if !alive(&pidfd) {
        return Err(unchecked(Some(pid), "it exited while it was being checked"));
    }
    if no_new_privs {
        return Err(HelperError::Refused(NO_NEW_PRIVS.into()));
    }
    if theirs != ours {
        return Err(HelperError::Refused(OTHER_USERNS.into()));
    }
    nsjail_helper::host::inherit::record_peer(
        &nsjail_helper::host::inherit::parse_proc_limits(&limits),
        nix::sys::stat::Mode::from_bits_truncate(umask & 0o777),
    );
    Ok(())
}

/// The pid a pidfd refers to, as our pid namespace numbers it (`Pid:` of its fdinfo).
fn pidfd_pid(fd: &OwnedFd) -> std::result::Result<i32, String> {
    let path = format!("/proc/self/fdinfo/{}", fd.as_raw_fd());
    let info = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let pid: i32 = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Pid in {path}"))?;
    match pid {
        p if p > 0 => Ok(p),
        -1 => Err("it has exited".into()),
        _ => Err("it is in a pid namespace the daemon cannot see".into()),
    }
}

/// A pidfd becomes readable when its process has exited.
fn alive(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}
