//! One client connection: the spawn request with its stdio fds in, events out, later client
//! messages (signals to forward) in.

use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
use nix::sys::stat::{SFlag, fstat};
use nsjail_core::message::{MAX_FDS, STDIO_FDS};
use nsjail_core::wire::{self, HEADER_LEN, WireError};
use nsjail_core::{ClientMessage, HelperEvent, SpawnRequest};

use crate::error::{HelperError, Result, sys};

/// The fds that came with a spawn request.
pub struct PassedFds {
    pub stdio: [OwnedFd; STDIO_FDS],
    /// Fds for `--file`, `--bind-data` and the like, by index.
    pub extra: Vec<OwnedFd>,
    /// One raw BPF program per `--add-seccomp-fd`.
    pub seccomp: Vec<OwnedFd>,
}

pub struct Conn {
    stream: UnixStream,
    /// What happened on this connection, for the system log.
    pub record: Record,
}

/// What the log says about one connection: filled in as the request is read and the events are
/// sent, so the per-connection function can log it whatever path it took.
#[derive(Debug, Default)]
pub struct Record {
    /// The payload's `argv[0]` as requested.
    pub argv0: Option<String>,
    /// The sandbox's first process as the host sees it, once started.
    pub sandbox_pid: Option<i32>,
    /// How it ended: the last `Exited` or `Error` event sent.
    pub end: Option<String>,
    /// The kind of the error it ended with, if any (refused, failed set-up or exec).
    pub error: Option<nsjail_core::ErrorKind>,
}

impl Conn {
    pub fn new(fd: OwnedFd) -> Conn {
        Conn {
            stream: UnixStream::from(fd),
            record: Record::default(),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Read the opening message, which must be a spawn request carrying exactly the three
    /// stdio fds, then the extra fds it announces, then one fd per raw BPF program.
    pub fn read_spawn(&mut self) -> Result<(SpawnRequest, PassedFds)> {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        let mut fds: Vec<OwnedFd> = Vec::new();
        while got < HEADER_LEN {
            let n = self.recv_with_fds(&mut header[got..], &mut fds)?;
            if n == 0 {
                return Err(WireError::Truncated {
                    expected: HEADER_LEN,
                    got,
                }
                .into());
            }
            got += n;
        }
        let msg: ClientMessage = wire::read_body(&mut self.stream, &header)?;
        wire::check_fds(&msg, fds.len())?;
        let ClientMessage::Spawn(req) = msg else {
            return Err(HelperError::Refused(
                "the first message must be a spawn request".into(),
            ));
        };
        let mut fds = fds;
        // In the order they were sent: stdio, the filesystem's extra fds, the BPF programs.
        let mut extra = fds.split_off(STDIO_FDS.min(fds.len()));
        let seccomp = extra.split_off((req.extra_fds as usize).min(extra.len()));
        for fd in &fds {
            check_stdio_fd(fd)?;
        }
        let stdio: [OwnedFd; STDIO_FDS] = fds.try_into().map_err(|v: Vec<OwnedFd>| {
            HelperError::Wire(WireError::FdCount {
                expected: STDIO_FDS,
                got: v.len(),
            })
        })?;
        Ok((
            *req,
            PassedFds {
                stdio,
                extra,
                seccomp,
            },
        ))
    }

    /// Receive some bytes and any fds that come with them. Fds arrive close-on-exec so that no
    /// path can leak them into the payload unless we hand them over deliberately.
    fn recv_with_fds(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize> {
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = loop {
            match recvmsg::<UnixAddr>(
                self.stream.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.map_err(sys("recvmsg on the client socket"))?,
            }
        };
        let bytes = msg.bytes;
        let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
        if truncated {
            // More fds than any message may carry, or more than our RLIMIT_NOFILE lets the kernel
            // install: it closed the excess. Those that arrived are close-on-exec, and the
            // helper ends on this error.
            return Err(HelperError::Refused(format!(
                "could not receive the request's file descriptors (more than {MAX_FDS}, or \
                 the helper's RLIMIT_NOFILE is too low)"
            )));
        }
        for c in msg.cmsgs().map_err(sys("recvmsg control data"))? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    fds.push(crate::sys::take_fd(fd));
                }
            }
        }
        if truncated || fds.len() > MAX_FDS {
            return Err(WireError::FdCount {
                expected: STDIO_FDS,
                got: fds.len().max(MAX_FDS + 1),
            }
            .into());
        }
        Ok(bytes)
    }

    /// The next message from the client; `None` when it has closed the connection.
    pub fn read_message(&mut self) -> Result<Option<ClientMessage>> {
        let msg: Option<ClientMessage> = wire::read_frame(&mut self.stream)?;
        if let Some(m) = &msg {
            wire::check_fds(m, 0)?;
        }
        Ok(msg)
    }

    pub fn send(&mut self, ev: &HelperEvent) -> Result<()> {
        self.note(ev);
        let frame = wire::encode(ev)?;
        self.stream
            .write_all(&frame)
            .map_err(|e| HelperError::Wire(WireError::Io(e)))
    }
}

impl Conn {
    fn note(&mut self, ev: &HelperEvent) {
        use nsjail_core::Termination;
        let r = &mut self.record;
        match ev {
            HelperEvent::Step(_) | HelperEvent::Terminal | HelperEvent::Stopped { .. } => {}
            HelperEvent::Started { pid } => r.sandbox_pid = Some(*pid),
            HelperEvent::Exited(info) => {
                let how = match info.termination {
                    Termination::Exited(c) => format!("exited {c}"),
                    Termination::Signaled(s) => format!("killed by signal {s}"),
                };
                // An exec failure is followed by the exit of the sandbox; keep the reason.
                r.end = Some(match r.end.take() {
                    Some(prev) if r.error.is_some() => format!("{prev}; {how}"),
                    _ => how,
                });
            }
            HelperEvent::Error { kind, message } => {
                r.error = Some(*kind);
                r.end = Some(format!("{kind:?}: {message}"));
            }
        }
    }

    pub fn set_nonblocking(&self) -> std::io::Result<()> {
        self.stream.set_nonblocking(true)
    }

    /// Give up on a client that has not sent its request after `limit`: every read of this
    /// socket that waits longer fails (`SO_RCVTIMEO`), so a client that connects and sends
    /// nothing, or half a frame, cannot keep a process of ours forever.
    pub fn set_read_timeout(&self, limit: std::time::Duration) -> Result<()> {
        self.stream
            .set_read_timeout(Some(limit))
            .map_err(|e| HelperError::Sys {
                call: "setsockopt(SO_RCVTIMEO) on the client socket".into(),
                source: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL)),
            })
    }
}

/// A read that failed because `SO_RCVTIMEO` ran out becomes a refusal that says so.
pub fn timed_out(e: HelperError) -> HelperError {
    let timeout = match &e {
        HelperError::Sys { source, .. } => *source == nix::errno::Errno::EAGAIN,
        HelperError::Wire(WireError::Io(io)) => matches!(
            io.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        _ => false,
    };
    if timeout {
        HelperError::Refused("no complete request arrived in time; connection dropped".into())
    } else {
        e
    }
}

/// A directory (or an `O_PATH` handle) passed as stdio would let the payload `openat()` its way
/// to host files outside anything it was given (nsjail #268). Only real open files pass.
fn check_stdio_fd(fd: &OwnedFd) -> Result<()> {
    let st = fstat(fd.as_fd()).map_err(sys("fstat on a passed stdio fd"))?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR {
        return Err(HelperError::Refused(
            "a directory cannot be passed as stdin, stdout or stderr".into(),
        ));
    }
    let flags =
        fcntl(fd.as_fd(), FcntlArg::F_GETFL).map_err(sys("fcntl(F_GETFL) on a stdio fd"))?;
    if OFlag::from_bits_truncate(flags).contains(OFlag::O_PATH) {
        return Err(HelperError::Refused(
            "an O_PATH descriptor cannot be passed as stdin, stdout or stderr".into(),
        ));
    }
    Ok(())
}
