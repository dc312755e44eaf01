//! One sandbox from the CLI's side: send the request with our stdio, pass signals on, print
//! what the helper reports, and work out our exit code.

use std::io::{IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nsjail_core::exit::{code_for_error, code_for_termination};
use nsjail_core::wire;
use nsjail_core::{ClientMessage, ErrorKind, ExitInfo, HelperEvent, SpawnRequest, Termination};

use crate::terminal::Terminal;

/// Signals we pass on to the payload.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Block the forwarded signals and return a signalfd for them. Done before the helper starts,
/// so that a signal arriving during set-up is forwarded, not fatal to us. With a terminal,
/// `SIGWINCH` too (window size changes are passed to the payload's terminal, not forwarded),
/// and `SIGCONT` (a job started in the background takes the terminal once continued in the
/// foreground; the kernel continues us whether or not it is blocked).
pub fn catch_signals(terminal: bool) -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    if terminal {
        mask.add(Signal::SIGWINCH);
        mask.add(Signal::SIGCONT);
    }
    mask.thread_block().context("blocking signals")?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).context("signalfd")
}

/// The outcome of a session: the exit code, how the sandbox ended, and the message of an exec
/// failure (command not found or not executable) if there was one.
pub struct Outcome {
    pub code: i32,
    pub exit: ExitInfo,
    pub exec_error: Option<String>,
}

/// The fds that travel with the request, in this order.
pub struct Passed<'a> {
    /// The payload's stdin, stdout and stderr.
    pub stdio: [RawFd; 3],
    /// The filesystem view's data fds.
    pub extra: &'a [RawFd],
}

/// What a caller of [`run`] adds to a session: `nsjail run`'s hint, `bwrap`'s reports.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Said after "not found" when the command was not found.
    pub not_found_hint: Option<&'a str>,
    /// Called with the sandbox's first process (as the host sees it) once it has started.
    pub on_started: Option<Box<dyn FnMut(i32) + 'a>>,
    /// The caller words exec failures itself (bubblewrap's `execvp` lines): print nothing.
    pub quiet_exec_error: bool,
}

pub fn run(
    sock: OwnedFd,
    req: &SpawnRequest,
    passed: Passed,
    signals: &SignalFd,
    mut term: Option<&mut Terminal>,
    hooks: &mut Hooks,
) -> Result<Outcome> {
    let mut stream = UnixStream::from(sock);
    if let Err(e) = send_spawn(&stream, req, passed.stdio, passed.extra) {
        // A helper that refused us at once (the daemon's per-user limit) may have closed the
        // connection before our request went out: its reason is waiting to be read.
        if let Ok(Some(HelperEvent::Error { message, .. })) =
            wire::read_frame::<_, HelperEvent>(&mut stream)
        {
            bail!("{message}");
        }
        return Err(e);
    }
    if let Some(t) = term.as_deref_mut() {
        // The helper has its copy; ours must go so the master sees the end of the sandbox.
        t.slave = None;
        // Until the helper says which terminal the payload has (ours, or one of the
        // sandbox's own), what is typed stays in our terminal.
        t.paused = req.terminal;
    }
    let verbose = req.verbose;
    let mut exec_error: Option<(ErrorKind, String)> = None;
    loop {
        let stdin = std::io::stdin();
        let mut fds = vec![
            PollFd::new(stream.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        // Indices of the terminal's fds in `fds`, when they are polled.
        let (mut stdin_at, mut master_at) = (None, None);
        if let Some(t) = term.as_deref() {
            let (read_stdin, master) = t.interest();
            if read_stdin {
                stdin_at = Some(fds.len());
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            if let Some(flags) = master {
                master_at = Some(fds.len());
                fds.push(PollFd::new(t.master.as_fd(), flags));
            }
        }
        // A job started in the background looks now and then whether it is the foreground
        // one (a shell's `fg` of a running job need not send SIGCONT).
        let timeout = match term.as_deref() {
            Some(t) if t.in_background() => PollTimeout::from(200u8),
            _ => PollTimeout::NONE,
        };
        match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll"),
            Ok(_) => {}
        }
        let ready = |i: Option<usize>| {
            i.and_then(|i| fds[i].revents())
                .is_some_and(|r| !r.is_empty())
        };
        let sig_ready = ready(Some(1));
        let sock_ready = ready(Some(0));
        let (stdin_ready, master_ready) = (ready(stdin_at), ready(master_at));
        drop(fds);
        if let Some(t) = term.as_deref_mut() {
            if t.in_background() {
                t.continued()?;
            }
            if master_ready {
                t.relay_master();
                t.flush_input();
            }
            if stdin_ready {
                t.relay_stdin();
            }
        }
        if sig_ready {
            while let Ok(Some(info)) = signals.read_signal() {
                if info.ssi_signo == Signal::SIGWINCH as u32 {
                    if let Some(t) = term.as_deref() {
                        t.resize();
                    }
                    continue;
                }
                if info.ssi_signo == Signal::SIGCONT as u32 {
                    if let Some(t) = term.as_deref_mut() {
                        t.continued()?;
                    }
                    continue;
                }
                let frame = wire::encode(&ClientMessage::Signal(info.ssi_signo as i32))?;
                // If the helper is gone the next read tells us; nothing to do here.
                let _ = stream.write_all(&frame);
            }
        }
        if !sock_ready {
            continue;
        }
        let Some((event, mut fds)) = read_event(&stream)? else {
            bail!("the helper ended without reporting how the sandbox ended");
        };
        match event {
            HelperEvent::Step(s) => {
                if verbose {
                    eprintln!("nsjail: {s}");
                }
            }
            HelperEvent::Terminal => {
                // Exactly one fd, the master; anything else is dropped (closed).
                if fds.len() == 1
                    && let (Some(t), Some(master)) = (term.as_deref_mut(), fds.pop())
                {
                    t.adopt(master)?;
                    if verbose {
                        eprintln!("nsjail: terminal: the payload's is the sandbox's own");
                    }
                }
            }
            HelperEvent::Started { pid } => {
                if let Some(t) = term.as_deref_mut() {
                    t.paused = false;
                }
                if verbose {
                    eprintln!("nsjail: started, host pid {pid}");
                }
                if let Some(f) = hooks.on_started.as_mut() {
                    f(pid);
                }
            }
            HelperEvent::Stopped { signal } => {
                // Only with a terminal: without one there is no shell of ours to return to, and
                // a stopped nsjail would wait for a SIGCONT nobody sends it.
                if let Some(t) = term.as_deref_mut() {
                    suspend(t, signal, &stream)?;
                }
            }
            HelperEvent::Error { kind, message } => match kind {
                ErrorKind::NotFound | ErrorKind::NotExecutable => {
                    let hint = match kind {
                        ErrorKind::NotFound => hooks.not_found_hint.unwrap_or(""),
                        _ => "",
                    };
                    if !hooks.quiet_exec_error {
                        eprintln!("nsjail: {message}{hint}");
                    }
                    exec_error = Some((kind, message));
                }
                ErrorKind::Setup | ErrorKind::BadRequest => bail!("{message}"),
            },
            HelperEvent::Exited(info) => {
                if let Some(t) = term.as_deref_mut() {
                    t.drain();
                }
                if verbose {
                    let how = match info.termination {
                        Termination::Exited(c) => format!("exited with code {c}"),
                        Termination::Signaled(s) => format!("killed by signal {s}"),
                    };
                    eprintln!(
                        "nsjail: {how}; wall {:.3}s, user {:.3}s, sys {:.3}s, cpu {:.3}s, max rss {} KiB",
                        info.wall_time_us as f64 / 1e6,
                        info.user_time_us as f64 / 1e6,
                        info.system_time_us as f64 / 1e6,
                        info.cpu_time_us as f64 / 1e6,
                        info.max_rss_kib
                    );
                    if let Some(cg) = info.cgroup {
                        eprintln!(
                            "nsjail: cgroup v{}: memory peak {}, OOM kills {}",
                            cg.version,
                            cg.memory_peak_bytes
                                .map_or("unknown".to_string(), |b| format!("{} KiB", b / 1024)),
                            cg.oom_kills
                        );
                    }
                }
                let code = match &exec_error {
                    Some((kind, _)) => code_for_error(*kind),
                    None => code_for_termination(info.termination),
                };
                return Ok(Outcome {
                    code,
                    exit: info,
                    exec_error: exec_error.map(|(_, m)| m),
                });
            }
        }
    }
}

/// The payload stopped (Ctrl-Z on its terminal): do what a shell's job does. What it wrote
/// before stopping (an editor restoring the screen) goes out, our terminal gets its settings
/// back, and we stop with the same signal, so the shell we were started from takes over. When
/// it continues us (`fg`), raw mode again, the current window size, and the payload continues.
/// A `bg` instead makes the raw-mode change stop us again (SIGTTOU), as any job that touches
/// the terminal from the background; an orphaned process group (no job control outside)
/// ignores the stop, and the payload is continued at once.
fn suspend(t: &mut Terminal, signal: i32, stream: &UnixStream) -> Result<()> {
    t.relay_master();
    t.leave_raw();
    // SIGSTOP (sent to the payload from outside) becomes SIGTSTP here: unlike SIGSTOP it is
    // ignored where no shell could ever continue us.
    let sig = match Signal::try_from(signal) {
        Ok(s @ (Signal::SIGTTIN | Signal::SIGTTOU)) => s,
        _ => Signal::SIGTSTP,
    };
    nix::sys::signal::raise(sig).context("stopping (raise)")?;
    // Continued.
    t.enter_raw()?;
    t.resize();
    let frame = wire::encode(&ClientMessage::Continue)?;
    // If the helper is gone the next read says so.
    let _ = (&*stream).write_all(&frame);
    Ok(())
}

/// Read exactly `buf.len()` bytes, or fewer at the end of the stream, with `recvmsg` so that
/// fds sent along (`SCM_RIGHTS`) are received, not closed by the kernel as a plain read would.
fn recv_full(stream: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize> {
    use std::mem::MaybeUninit;

    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut got = 0;
    while got < buf.len() {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [std::io::IoSliceMut::new(&mut buf[got..])];
        let n = match recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(std::io::Error::from(e)).context("reading from the helper"),
            Ok(m) => m.bytes,
        };
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = msg {
                fds.extend(rights);
            }
        }
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// The next event and the fds that came with it; `None` when the helper closed the stream
/// between events.
fn read_event(stream: &UnixStream) -> Result<Option<(HelperEvent, Vec<OwnedFd>)>> {
    let mut fds = Vec::new();
    let mut header = [0u8; wire::HEADER_LEN];
    let got = recv_full(stream, &mut header, &mut fds)?;
    if got == 0 {
        return Ok(None);
    }
    let truncated = |expected, got| wire::WireError::Truncated { expected, got };
    if got < header.len() {
        return Err(truncated(header.len(), got)).context("reading from the helper");
    }
    let len = wire::parse_header(&header).context("reading from the helper")?;
    let mut body = vec![0u8; len];
    let got = recv_full(stream, &mut body, &mut fds)?;
    if got < len {
        return Err(truncated(len, got)).context("reading from the helper");
    }
    let event = wire::decode_body(&body).context("reading from the helper")?;
    Ok(Some((event, fds)))
}

/// The spawn frame, with the payload's stdin, stdout and stderr (ours, or the pseudo-terminal's
/// slave), then the view's data fds, attached as `SCM_RIGHTS`.
fn send_spawn(
    stream: &UnixStream,
    req: &SpawnRequest,
    stdio: [RawFd; 3],
    extra_fds: &[RawFd],
) -> Result<()> {
    let frame = wire::encode(&ClientMessage::Spawn(Box::new(req.clone())))?;
    let mut fds = stdio.to_vec();
    fds.extend_from_slice(extra_fds);
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let sent = loop {
        match sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(&frame)],
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue,
            Err(Errno::EBADF) if !extra_fds.is_empty() => {
                bail!("passing fds {extra_fds:?} to the helper: one of them is not open")
            }
            other => break other.context("sending the request to the helper")?,
        }
    };
    (&*stream)
        .write_all(&frame[sent..])
        .context("sending the request to the helper")?;
    Ok(())
}

/// The one line that says a limit ended the sandbox (the payload's exit status alone, 137,
/// does not say why, and the shell prints nothing since nsjail itself exited normally).
/// `asked` is what the request asked for; a limit it did not ask for came from the admin's
/// policy.
pub fn limit_message(info: &ExitInfo, asked: &nsjail_core::Limits) -> Option<String> {
    use nsjail_cli::limit_args::human_seconds;
    use nsjail_core::LimitHit;
    use nsjail_core::limits::human_size;
    let figure = |v: Option<String>| v.unwrap_or_else(|| "the admin's ceiling".to_string());
    let how = match info.termination {
        Termination::Signaled(9) => "killed".to_string(),
        Termination::Signaled(s) => match crate::status_report::signal_name(s) {
            Some(name) => format!("ended by {name}"),
            None => format!("ended by signal {s}"),
        },
        Termination::Exited(c) => format!("sent SIGTERM, it exited with code {c}"),
    };
    match info.limit_hit {
        Some(LimitHit::CpuTime) => Some(format!(
            "CPU time limit ({}) reached: {how}",
            figure(asked.cpu_time_us.map(human_seconds))
        )),
        Some(LimitHit::WallTime) => Some(format!(
            "wall-clock time limit ({}) reached: {how}",
            figure(asked.wall_time_us.map(human_seconds))
        )),
        None => {
            let kills = info.cgroup.map_or(0, |c| c.oom_kills);
            (kills > 0).then(|| {
                format!(
                    "memory limit ({}) reached: the kernel's OOM killer killed {kills} process{}",
                    figure(asked.memory_bytes.map(human_size)),
                    if kills == 1 { "" } else { "es" }
                )
            })
        }
    }
}
