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
use nsjail_core::{ClientMessage, ErrorKind, HelperEvent, SpawnRequest, Termination};

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
/// so that a signal arriving during set-up is forwarded, not fatal to us.
pub fn catch_signals() -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.thread_block().context("blocking signals")?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).context("signalfd")
}

/// The outcome of a session: the exit code, and whether anything was printed already.
pub struct Outcome {
    pub code: i32,
}

/// `bpf_fds` are the `--add-seccomp-fd` descriptors, sent after stdio.
pub fn run(
    sock: OwnedFd,
    req: &SpawnRequest,
    signals: &SignalFd,
    bpf_fds: &[RawFd],
) -> Result<Outcome> {
    let mut stream = UnixStream::from(sock);
    send_spawn(&stream, req, bpf_fds)?;
    let verbose = req.verbose;
    let mut exec_error: Option<ErrorKind> = None;
    loop {
        let mut fds = [
            PollFd::new(stream.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll"),
            Ok(_) => {}
        }
        let sig_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        let sock_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        if sig_ready {
            while let Ok(Some(info)) = signals.read_signal() {
                let frame = wire::encode(&ClientMessage::Signal(info.ssi_signo as i32))?;
                // If the helper is gone the next read tells us; nothing to do here.
                let _ = stream.write_all(&frame);
            }
        }
        if !sock_ready {
            continue;
        }
        let event: Option<HelperEvent> =
            wire::read_frame(&mut stream).context("reading from the helper")?;
        match event {
            None => bail!("the helper ended without reporting how the sandbox ended"),
            Some(HelperEvent::Step(s)) => {
                if verbose {
                    eprintln!("nsjail: {s}");
                }
            }
            Some(HelperEvent::Started { pid }) => {
                if verbose {
                    eprintln!("nsjail: started, host pid {pid}");
                }
            }
            Some(HelperEvent::Error { kind, message }) => match kind {
                ErrorKind::NotFound | ErrorKind::NotExecutable => {
                    eprintln!("nsjail: {message}");
                    exec_error = Some(kind);
                }
                ErrorKind::Setup | ErrorKind::BadRequest => bail!("{message}"),
            },
            Some(HelperEvent::Exited(info)) => {
                if verbose {
                    let how = match info.termination {
                        Termination::Exited(c) => format!("exited with code {c}"),
                        Termination::Signaled(s) => format!("killed by signal {s}"),
                    };
                    eprintln!(
                        "nsjail: {how}; wall {:.3}s, user {:.3}s, sys {:.3}s, max rss {} KiB",
                        info.wall_time_us as f64 / 1e6,
                        info.user_time_us as f64 / 1e6,
                        info.system_time_us as f64 / 1e6,
                        info.max_rss_kib
                    );
                }
                let code = match exec_error {
                    Some(kind) => code_for_error(kind),
                    None => code_for_termination(info.termination),
                };
                return Ok(Outcome { code });
            }
        }
    }
}

/// The spawn frame, with our stdin, stdout and stderr (then the raw BPF programs' fds)
/// attached as `SCM_RIGHTS`.
fn send_spawn(stream: &UnixStream, req: &SpawnRequest, bpf_fds: &[RawFd]) -> Result<()> {
    let frame = wire::encode(&ClientMessage::Spawn(Box::new(req.clone())))?;
    let mut fds: Vec<RawFd> = vec![0, 1, 2];
    fds.extend_from_slice(bpf_fds);
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
            other => break other.context("sending the request to the helper")?,
        }
    };
    (&*stream)
        .write_all(&frame[sent..])
        .context("sending the request to the helper")?;
    Ok(())
}
