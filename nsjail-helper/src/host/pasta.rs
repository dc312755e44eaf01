//! `--net pasta`: outbound network for the sandbox through `pasta` (Debian's `passt`).
//!
//! pasta runs as the caller, in the host's network namespace (where its sockets go out), and
//! configures a tap interface in the sandbox's network namespace. It needs the capabilities of
//! the sandbox's user namespace for that, which the caller does not have when the helper is
//! setuid (that namespace belongs to root). So the helper starts it itself, from the parent
//! side, before the sandbox is released:
//!
//! 1. open the sandbox's user and network namespaces (`/proc/<pid>/ns/*` of our own unreaped
//!    child, before it is released and made non-dumpable);
//! 2. fork; the new process joins the sandbox's user namespace only (it stays in the host's
//!    network, mount and pid namespaces), becomes uid 0 there — the caller's own uid on the
//!    host, nothing more — and execs the root-owned `pasta` binary with the network namespace as
//!    an inherited fd (`--netns /proc/self/fd/N`), no port forwarded in or out unless asked
//!    (`-t`/`-u`/`-T`/`-U none`) and the host's loopback not reachable (`--no-map-gw`);
//! 3. wait until pasta has configured the interface: it writes its pid to the `--pid` file, here
//!    a pipe, once initialisation is done.
//!
//! pasta is in the host's pid namespace, so nothing in the sandbox can see, signal or trace it;
//! the caller cannot trace it either (its capabilities are in a namespace owned by root). It is
//! killed when the sandbox ends, and dies with the helper: its parent-death signal is armed the
//! instant after the fork and again after each credential change (which clears it), each time
//! followed by a check that the parent is still the helper (a parent that died before the
//! signal was armed sends none). pasta runs with `--no-netns-quit`: its own "quit when the
//! namespace goes away" cannot work here, since it holds the namespace open itself through the
//! fd it was given; its life is the helper's to end.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid, pipe2};
use nsjail_core::{IdMapping, Pasta};

use crate::error::{HelperError, Result, sys};
use crate::sys as os;

/// Where pasta may be: root-owned system locations only, never a path from the request.
const PASTA_PATHS: [&str; 2] = ["/usr/bin/pasta", "/usr/local/bin/pasta"];

/// How long pasta may take to configure the network before the sandbox is abandoned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running pasta, killed and reaped when dropped.
pub struct PastaProcess {
    pid: Pid,
    /// The read end of pasta's stderr, kept open so that its (non-blocking) writes never fail.
    _stderr: OwnedFd,
}

impl Drop for PastaProcess {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = os::wait4(self.pid, false);
    }
}

fn find_pasta() -> Result<&'static str> {
    for p in PASTA_PATHS {
        if let Ok(m) = std::fs::metadata(p)
            && m.is_file()
            && m.uid() == 0
            && m.mode() & 0o022 == 0
        {
            return Ok(p);
        }
    }
    Err(HelperError::Refused(format!(
        "--net pasta: pasta is not installed (looked for a root-owned {}; Debian: apt install passt)",
        PASTA_PATHS.join(" or ")
    )))
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| sys(format!("{s:?}"))(Errno::EINVAL))
}

/// Start pasta for the sandbox `pid` (our child, with its ID maps written, not yet released).
pub fn start(
    pid: Pid,
    caller: &crate::host::caller::Caller,
    cfg: &Pasta,
    ids: IdMapping,
    step: &mut dyn FnMut(String),
) -> Result<PastaProcess> {
    let binary = find_pasta()?;
    let ns = |name: &str| {
        let path = format!("/proc/{pid}/ns/{name}");
        open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys(format!("open {path}")))
    };
    let userns = ns("user")?;
    let netns = ns("net")?;
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2 (pasta ready)"))?;
    // pasta opens its pid file by path (/proc/self/fd/N), which checks the pipe's owner: make
    // it the caller, whose uid pasta runs as.
    nix::unistd::fchown(&ready_w, Some(caller.uid), Some(caller.gid))
        .map_err(sys("fchown (pasta ready pipe)"))?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2 (pasta stderr)"))?;
    fcntl(&err_w, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(sys("fcntl (pasta stderr)"))?;
    fcntl(&err_r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(sys("fcntl (pasta stderr)"))?;

    let tcp_in = if cfg.forward_tcp.is_empty() {
        "none".to_string()
    } else {
        cfg.forward_tcp
            .iter()
            .map(|f| format!("{}:{}", f.host, f.sandbox))
            .collect::<Vec<_>>()
            .join(",")
    };
    let args = [
        "pasta".to_string(),
        "--foreground".into(),
        "--quiet".into(),
        "--config-net".into(),
        "--netns".into(),
        format!("/proc/self/fd/{}", netns.as_raw_fd()),
        "--no-netns-quit".into(),
        "--pid".into(),
        format!("/proc/self/fd/{}", ready_w.as_raw_fd()),
        // The host's loopback stays out of reach (pasta would otherwise map the gateway
        // address onto it), and nothing is forwarded but what --forward-port asked for.
        "--no-map-gw".into(),
        "-t".into(),
        tcp_in.clone(),
        "-u".into(),
        "none".into(),
        "-T".into(),
        "none".into(),
        "-U".into(),
        "none".into(),
    ];
    let argv = args
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<Vec<_>>>()?;
    let path = cstring(binary)?;
    let env: [CString; 0] = [];

    let helper = nix::unistd::getpid();
    match os::fork().map_err(sys("fork (pasta)"))? {
        None => {
            // The new process: never returns.
            let code = exec_pasta(
                helper, &path, &argv, &env, &userns, &netns, &ready_w, &err_w, ids,
            );
            os::exit_now(code)
        }
        Some(child) => {
            drop((userns, netns, ready_w, err_w));
            let process = PastaProcess {
                pid: child,
                _stderr: err_r,
            };
            wait_ready(&process, &ready_r)?;
            step(format!(
                "net: pasta (host pid {child}, as your uid) configured the sandbox's network; tcp forwarded in: {tcp_in}"
            ));
            Ok(process)
        }
    }
}

/// In the forked process: join the sandbox's user namespace, become its uid 0 (the caller),
/// hand pasta only the fds it needs, exec. Returns an exit code only on failure.
#[allow(clippy::too_many_arguments)]
fn exec_pasta(
    helper: Pid,
    path: &CString,
    argv: &[CString],
    env: &[CString],
    userns: &OwnedFd,
    netns: &OwnedFd,
    ready_w: &OwnedFd,
    err_w: &OwnedFd,
    ids: IdMapping,
) -> i32 {
    let say = |what: &str, e: Errno| {
        let msg = format!("nsjail-helper: pasta set-up: {what}: {}\n", e.desc());
        let _ = nix::unistd::write(err_w, msg.as_bytes());
        126
    };
    // Die with the helper, from the first instruction on; a helper that died before this line
    // sends no signal, so check it is still our parent.
    let bound_to_helper = || {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
            .map_err(|e| say("prctl(PR_SET_PDEATHSIG)", e))?;
        if nix::unistd::getppid() != helper {
            return Err(126);
        }
        Ok(())
    };
    if let Err(code) = bound_to_helper() {
        return code;
    }
    if let Err(e) = setns(userns.as_fd(), CloneFlags::CLONE_NEWUSER) {
        return say("setns(user namespace)", e);
    }
    let gid = Gid::from_raw(ids.gid);
    let uid = Uid::from_raw(0);
    if let Err(e) = nix::unistd::setresgid(gid, gid, gid) {
        return say("setresgid", e);
    }
    if let Err(e) = nix::unistd::setresuid(uid, uid, uid) {
        return say("setresuid", e);
    }
    // A credential change clears the parent-death signal: arm it again, and check again.
    if let Err(code) = bound_to_helper() {
        return code;
    }
    let devnull = match open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => return say("open /dev/null", e),
    };
    if let Err(e) = nix::unistd::dup2_stdin(&devnull)
        .and_then(|()| nix::unistd::dup2_stdout(err_w))
        .and_then(|()| nix::unistd::dup2_stderr(err_w))
    {
        return say("dup2", e);
    }
    for fd in [netns, ready_w] {
        if let Err(e) = fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())) {
            return say("fcntl", e);
        }
    }
    // A clean slate: the helper ignores several signals, and ignored stays ignored across exec
    // (pasta refuses to start with SIGPIPE ignored).
    if let Err(e) = os::default_signals() {
        return say("rt_sigaction (default signals)", e);
    }
    let mut keep = [netns.as_raw_fd(), ready_w.as_raw_fd()];
    keep.sort_unstable();
    if let Err(e) = os::close_fds_from_except(3, &keep) {
        return say("close_range", e);
    }
    let Err(e) = nix::unistd::execve(path, argv, env);
    say("execve pasta", e)
}

/// Until pasta has written its pid (ready), exited (failed) or the time is up.
fn wait_ready(process: &PastaProcess, ready: &OwnedFd) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HelperError::Refused(format!(
                "--net pasta: pasta did not configure the network within {}s",
                READY_TIMEOUT.as_secs()
            )));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(sys("poll (pasta ready)")(e)),
            Ok(_) => {}
        }
        let mut buf = [0u8; 32];
        match nix::unistd::read(ready.as_fd(), &mut buf) {
            Ok(n) if n > 0 => return Ok(()),
            Err(Errno::EINTR) => continue,
            _ => {
                // End of file: pasta exited before it was ready. Say what it said.
                let mut out = vec![0u8; 4096];
                let n = nix::unistd::read(process._stderr.as_fd(), &mut out).unwrap_or(0);
                let text = String::from_utf8_lossy(&out[..n]);
                let why: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("Failed to send"))
                    .collect();
                let hint = if text.contains("tun") {
                    " (pasta runs as you and needs /dev/net/tun readable and writable by you, \
                     as it normally is: mode 0666)"
                } else {
                    ""
                };
                return Err(HelperError::Refused(format!(
                    "--net pasta: pasta failed before the network was ready: {}{hint}",
                    if why.is_empty() {
                        "(it said nothing)".to_string()
                    } else {
                        why.join("; ")
                    }
                )));
            }
        }
    }
}
