//! The sandbox's PID 1 (unless `--as-pid-1`): reaps every process that ends up orphaned in the
//! sandbox, passes the forwarded signals on to the payload, and when the payload ends tells
//! the helper its exact wait status and exits. Its exit takes the whole pid namespace with it.

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
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(ws) if ws.pid() == Some(payload) => finish(payload, Some(ws), &status),
                    Ok(_) => {}
                }
            }
        } else if let Ok(sig) = Signal::try_from(signo) {
            let _ = kill(payload, sig);
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
