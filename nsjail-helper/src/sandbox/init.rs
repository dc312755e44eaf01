//! The sandbox's PID 1 (unless `--as-pid-1`): reaps every process that ends up orphaned in the
//! sandbox, passes the forwarded signals on to the payload, and when the payload ends tells
//! the helper its exact wait status and exits. Its exit takes the whole pid namespace with it.
//!
//! Job control: when the payload stops (Ctrl-Z on its terminal sends `SIGTSTP` to its process
//! group), the init tells the helper through the same status pipe, so that the CLI can give
//! the caller's terminal back to the caller's shell and stop too. `SIGCONT` from the helper
//! (sent when the CLI is continued) is passed on to the payload's process group.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::sys;

pub fn run(payload: Pid, sigfd: SignalFd, status: OwnedFd) -> ! {
    loop {
        let info = match sigfd.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(_) => finish(payload, None, &status),
        };
        let signo = info.ssi_signo as i32;
        if signo == Signal::SIGCHLD as i32 {
            // SIGCHLD coalesces: reap until nothing is left to reap.
            let flags = WaitPidFlag::WNOHANG | WaitPidFlag::__WALL | WaitPidFlag::WUNTRACED;
            loop {
                match waitpid(None, Some(flags)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(WaitStatus::Stopped(pid, sig)) if pid == payload => {
                        // A wait status that says "stopped by sig", as waitpid reports it.
                        let raw = 0x7f | ((sig as i32) << 8);
                        let _ = nix::unistd::write(status.as_fd(), &raw.to_le_bytes());
                    }
                    Ok(ws) if ws.pid() == Some(payload) => finish(payload, Some(ws), &status),
                    Ok(_) => {}
                }
            }
        } else if signo == Signal::SIGCONT as i32 {
            continue_payload(payload);
        } else if let Ok(sig) = Signal::try_from(signo) {
            let _ = kill(payload, sig);
        }
    }
}

/// `SIGCONT` to the payload's process group (its own when it leads one, as it does on a
/// terminal), else to the payload alone: never to our own group, which would send it back here.
fn continue_payload(payload: Pid) {
    match nix::unistd::getpgid(Some(payload)) {
        Ok(group) if group != nix::unistd::getpgrp() => {
            let _ = nix::sys::signal::killpg(group, Signal::SIGCONT);
        }
        _ => {
            let _ = kill(payload, Signal::SIGCONT);
        }
    }
}

/// Report the payload's status to the helper and leave with the matching code.
fn finish(_payload: Pid, ws: Option<WaitStatus>, status: &OwnedFd) -> ! {
    let (raw, code) = match ws {
        Some(WaitStatus::Exited(_, code)) => ((code & 0xff) << 8, code & 0xff),
        Some(WaitStatus::Signaled(_, sig, core)) => {
            let s = sig as i32;
            (s | if core { 0x80 } else { 0 }, 128 + s)
        }
        _ => (0x7f00, nsjail_core::exit::SETUP_FAILED),
    };
    let _ = nix::unistd::write(status.as_fd(), &raw.to_le_bytes());
    sys::exit_now(code)
}
