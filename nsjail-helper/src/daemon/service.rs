//! The daemon's service loop: it listens on a Unix socket (its own, or one systemd passes by
//! socket activation) and serves each accepted connection in a forked process running the same
//! per-connection function as the setuid path. The caller is who the kernel says connected
//! (`SO_PEERCRED`).
//!
//! The listening process never reads from a client, so no client can stall it: it accepts,
//! counts, forks and goes back to `poll`. The forked process refuses a peer inside a sandbox,
//! takes on the caller's supplementary groups, and gives up on a client whose whole request has
//! not arrived in time. On SIGTERM (or SIGINT, SIGHUP) the daemon stops accepting, ends every
//! connection process (each one's sandbox dies with it: `PR_SET_PDEATHSIG`), and exits once every
//! process it started has been reaped, so nothing is left behind.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{SockFlag, accept4};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use nsjail_helper::host::caller::Caller;
use nsjail_helper::host::serve::{self, Limits, Outcome};
use nsjail_helper::sys;

use crate::connection_limit::{self, Counts};
use crate::{listen, peer};

/// How long a client may take to send its whole request before its connection is dropped.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Signals that end the daemon (after draining).
const STOP: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

#[derive(Debug)]
pub struct Config {
    /// Where to bind, when systemd did not pass a socket.
    pub socket: PathBuf,
    /// Permissions of a socket we bind.
    pub socket_mode: u32,
    pub request_timeout: Duration,
    /// `--max-per-user`: the cap on one user's connections served at once, instead of the default.
    pub max_per_user: Option<usize>,
    /// The number of sockets systemd passed to us, if it did.
    pub activated: Option<usize>,
}

struct Daemon {
    cfg: Config,
    /// `None` once draining has begun (and in a connection process, which must not hold it).
    listener: Option<OwnedFd>,
    /// The socket path we bound and must remove at exit (not systemd's: systemd owns that).
    bound: Option<PathBuf>,
    signals: Option<SignalFd>,
    counts: Counts,
}

pub fn run(cfg: Config) -> Result<(), String> {
    // The stop signals are caught before the socket accepts anyone: a SIGTERM that comes as
    // soon as a client could connect must still drain, not kill us mid-way.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in STOP {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| format!("sigprocmask: {}", e.desc()))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {}", e.desc()))?;
    // Processes of a sandbox whose connection process died are re-parented to us, not to
    // init: we reap them, and the drain can wait for every one of them.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("prctl(PR_SET_CHILD_SUBREAPER): {}", e.desc()))?;
    let (listener, bound) = match cfg.activated {
        Some(n) => (listen::activated(n)?, None),
        None => (
            listen::bind_path(&cfg.socket, cfg.socket_mode)?,
            Some(cfg.socket.clone()),
        ),
    };
    eprintln!(
        "nsjail-helperd: daemon listening on {} ({}; request timeout {}s; at most {} sandboxes \
         per user)",
        listen::describe(&listener, bound.as_ref()),
        if cfg.activated.is_some() {
            "socket activation"
        } else {
            "bound by us"
        },
        cfg.request_timeout.as_secs_f64(),
        connection_limit::max_per_user(cfg.max_per_user)
    );
    let mut d = Daemon {
        cfg,
        listener: Some(listener),
        bound,
        signals: Some(signals),
        counts: Counts::default(),
    };
    d.serve_until_stopped()?;
    d.drain();
    Ok(())
}

impl Daemon {
    fn serve_until_stopped(&mut self) -> Result<(), String> {
        loop {
            let (Some(listener), Some(signals)) = (&self.listener, &self.signals) else {
                return Ok(());
            };
            let mut fds = [
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("poll: {}", e.desc())),
                Ok(_) => {}
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let (conn_ready, sig_ready) = (ready(&fds[0]), ready(&fds[1]));
            if sig_ready && self.handle_signals() {
                return Ok(());
            }
            if conn_ready {
                self.accept_all();
            }
        }
    }

    /// Reap what ended; `true` when a stop signal came.
    fn handle_signals(&mut self) -> bool {
        let mut stop = false;
        while let Some(Ok(Some(info))) = self.signals.as_ref().map(|s| s.read_signal()) {
            if STOP.iter().any(|s| *s as u32 == info.ssi_signo) {
                stop = true;
            }
        }
        self.reap(false);
        stop
    }

    /// Reap every child that has ended (all of them, blocking, with `wait_all`).
    fn reap(&mut self, wait_all: bool) {
        let flags = if wait_all {
            WaitPidFlag::__WALL
        } else {
            WaitPidFlag::WNOHANG | WaitPidFlag::__WALL
        };
        loop {
            match waitpid(None, Some(flags)) {
                Ok(WaitStatus::StillAlive) => return,
                Ok(ws) => {
                    if let Some(pid) = ws.pid() {
                        self.counts.remove(pid);
                    }
                }
                Err(Errno::EINTR) => continue,
                // ECHILD: nothing left.
                Err(_) => return,
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                Ok(fd) => self.handle(sys::take_fd(fd)),
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(e @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)) => {
                    // Out of resources: leave the client queued and breathe, rather than spin.
                    eprintln!("nsjail-helperd: accept: {}", e.desc());
                    std::thread::sleep(Duration::from_millis(100));
                    return;
                }
                Err(e) => {
                    eprintln!("nsjail-helperd: accept: {}", e.desc());
                    return;
                }
            }
        }
    }

    /// One accepted connection: who, within the cap?, then fork a process to serve it.
    fn handle(&mut self, sock: OwnedFd) {
        let caller = match Caller::of_peer(&sock) {
            Ok(c) => c,
            Err(e) => {
                serve::refuse_unknown(sock, &e.to_string());
                return;
            }
        };
        let cap = connection_limit::max_per_user(self.cfg.max_per_user);
        let running = self.counts.of(caller.uid);
        if running >= cap {
            let reason = format!(
                "uid {} already has {running} sandboxes running through the daemon, the most \
                 allowed (limit {cap})",
                caller.uid
            );
            serve::refuse_connection(sock, &caller, &reason);
            return;
        }
        match sys::fork() {
            Ok(None) => self.serve_in_child(sock, &caller),
            Ok(Some(pid)) => {
                self.counts.add(pid, caller.uid);
                drop(sock);
            }
            Err(e) => {
                serve::refuse_connection(sock, &caller, &format!("fork: {}", e.desc()));
            }
        }
    }

    /// In the forked connection process: serve one connection and exit.
    fn serve_in_child(&mut self, sock: OwnedFd, caller: &Caller) -> ! {
        // Hold nothing of the listener's: a connection process that kept the listening socket
        // would keep accepting clients alive after the daemon is gone.
        drop(self.listener.take());
        drop(self.signals.take());
        // Die with the daemon (if it is killed outright, its sandboxes go too), and get the
        // default dispositions and an empty mask back: SIGTERM from the drain ends us.
        let ppid = nix::unistd::getppid();
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
        if sys::reset_signals().is_err() || nix::unistd::getppid() != ppid {
            sys::exit_now(1);
        }
        // Before anything of the request is read: a peer inside a sandbox is refused, and the
        // caller's supplementary groups replace ours (see `peer`).
        if let Err(e) = peer::admit(&sock, caller) {
            serve::refuse_connection(sock, caller, &e.to_string());
            sys::exit_now(2);
        }
        let limits = Limits {
            request_timeout: Some(self.cfg.request_timeout),
        };
        let code = match serve::serve_connection(sock, caller, &limits) {
            Outcome::Served => 0,
            Outcome::Reported => 2,
            Outcome::Unreported(msg) => {
                eprintln!("nsjail-helperd: uid {}: {msg}", caller.uid);
                1
            }
        };
        sys::exit_now(code)
    }

    /// Stop accepting, end every connection process (their sandboxes die with them), and wait
    /// until every process we started, or that was re-parented to us, has been reaped.
    fn drain(&mut self) {
        drop(self.listener.take());
        if let Some(p) = self.bound.take() {
            let _ = std::fs::remove_file(p);
        }
        let live: Vec<Pid> = self.counts.pids().collect();
        eprintln!(
            "nsjail-helperd: stopping; ending {} running connection(s)",
            live.len()
        );
        for pid in live {
            // Our own unreaped children: their pids cannot have been reused.
            let _ = kill(pid, Signal::SIGTERM);
        }
        self.reap(true);
        eprintln!("nsjail-helperd: stopped");
    }
}
