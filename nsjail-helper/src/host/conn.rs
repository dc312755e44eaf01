//! One client connection: the spawn request with its stdio fds in, events out, later client
//! messages (signals to forward) in.
//!
//! No read or write of the client socket ever waits: every call on it is `MSG_DONTWAIT`, and
//! every wait is a `poll` bounded by the helper's own deadline (the request timeout, or the
//! supervisor's next limit check). Bytes in go through a [`FrameDecoder`], which returns only
//! whole frames, so half a frame (or a byte a second) holds nothing up. Events out go to a
//! bounded queue, written whenever the socket takes more: a client that does not read cannot
//! stall the enforcement of its sandbox's limits.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr, recv, recvmsg, send, sendmsg,
};
use nix::sys::stat::{SFlag, fstat};
use nsjail_core::message::{MAX_FDS, STDIO_FDS};
use nsjail_core::wire::{self, FrameDecoder, HEADER_LEN, WireError};
use nsjail_core::{ClientMessage, HelperEvent, SpawnRequest};

use crate::error::{HelperError, Result, sys};

/// The most event bytes that may wait for the client to read them: several times what any
/// request's `--verbose` steps come to. A client this far behind is not reading.
pub const MAX_QUEUED: usize = 4 << 20;

/// How long the client gets to take its last events once the sandbox is over.
pub const FINAL_FLUSH: Duration = Duration::from_secs(30);

/// What a read of the request gets at most at once.
const CHUNK: usize = 64 * 1024;

/// The fds that came with a spawn request.
pub struct PassedFds {
    pub stdio: [OwnedFd; STDIO_FDS],
    /// Fds for `--file`, `--bind-data` and the like, by index.
    pub extra: Vec<OwnedFd>,
    /// The payload's, one for each of the request's `pass_fds`, in that order.
    pub pass: Vec<OwnedFd>,
}

pub struct Conn {
    sock: OwnedFd,
    decoder: FrameDecoder,
    /// Encoded events not yet taken by the socket; `out[sent..]` is what is left.
    out: Vec<u8>,
    sent: usize,
    /// An fd to attach to the bytes of `out` from this offset on (the terminal's master, sent
    /// with its event): those bytes go out in a `sendmsg` of their own, after all before them.
    fd_at: Option<(usize, OwnedFd)>,
    /// Set once the client is gone: it closed or reset the connection, or stopped reading.
    pub gone: Option<Gone>,
    /// What happened on this connection, for the system log.
    pub record: Record,
}

/// How the client went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// End of stream, a reset, or a write that failed.
    Closed,
    /// More than [`MAX_QUEUED`] bytes of events were waiting for it.
    NotReading,
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
    /// The client hung up before its request was complete, after this many bytes of it.
    pub hung_up: Option<usize>,
    /// The limit the sandbox was ended at (`wall-clock time limit (3.000 s)`), if it was.
    pub limit: Option<String>,
}

impl Conn {
    pub fn new(fd: OwnedFd) -> Conn {
        Conn {
            sock: fd,
            decoder: FrameDecoder::new(),
            out: Vec::new(),
            sent: 0,
            fd_at: None,
            gone: None,
            record: Record::default(),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Wait until the socket is ready for `events` or `deadline` passes; `false` at the
    /// deadline.
    fn wait(&self, events: PollFlags, deadline: Option<Instant>) -> Result<bool> {
        loop {
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.sock.as_fd(), events)];
            match poll(&mut fds, timeout) {
                Err(Errno::EINTR) | Ok(0) => continue,
                Err(e) => return Err(sys("poll on the client socket")(e)),
                Ok(_) => return Ok(true),
            }
        }
    }

    /// Read the opening message, which must be a spawn request carrying exactly the three
    /// stdio fds, then the extra fds it announces, then the payload's passed fds. All of it
    /// must have arrived by `deadline` (counted from the connection, however the bytes came).
    pub fn read_spawn(&mut self, deadline: Option<Instant>) -> Result<(SpawnRequest, PassedFds)> {
        let mut chunk = vec![0u8; CHUNK];
        let mut fds: Vec<OwnedFd> = Vec::new();
        let msg: ClientMessage = loop {
            if let Some(m) = self.decoder.next_frame()? {
                break m;
            }
            if !self.wait(PollFlags::POLLIN, deadline)? {
                return Err(HelperError::Refused(
                    "no complete request arrived in time; connection dropped".into(),
                ));
            }
            // Never past the request: fds that came with later bytes are not its own.
            let want = self.decoder.wanted()?.clamp(1, CHUNK);
            match self.recv_with_fds(&mut chunk[..want], &mut fds)? {
                None => continue,
                Some(0) => {
                    let got = self.decoder.buffered();
                    self.record.hung_up = Some(got);
                    return Err(self
                        .decoder
                        .finish()
                        .err()
                        .unwrap_or(WireError::Truncated {
                            expected: HEADER_LEN,
                            got,
                        })
                        .into());
                }
                Some(n) => self.decoder.push(&chunk[..n]),
            }
        };
        wire::check_fds(&msg, fds.len())?;
        let ClientMessage::Spawn(req) = msg else {
            return Err(HelperError::Refused(
                "the first message must be a spawn request".into(),
            ));
        };
        let mut fds = fds;
        // In the order they were sent: stdio, the filesystem's extra fds, the payload's.
        let mut extra = fds.split_off(STDIO_FDS.min(fds.len()));
        let pass = extra.split_off((req.extra_fds as usize).min(extra.len()));
        for fd in &fds {
            check_stdio_fd(fd)?;
        }
        let stdio: [OwnedFd; STDIO_FDS] = fds.try_into().map_err(|v: Vec<OwnedFd>| {
            HelperError::Wire(WireError::FdCount {
                expected: STDIO_FDS,
                got: v.len(),
            })
        })?;
        Ok((*req, PassedFds { stdio, extra, pass }))
    }

    /// Receive some bytes and any fds that come with them, without waiting: `None` when there
    /// is nothing yet, `Some(0)` at the end of the stream (or a reset). Fds arrive
    /// close-on-exec so that no path can leak them into the payload unless we hand them over
    /// deliberately.
    fn recv_with_fds(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<Option<usize>> {
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = loop {
            match recvmsg::<UnixAddr>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
            ) {
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::ECONNRESET) => return Ok(Some(0)),
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
        if fds.len() > MAX_FDS {
            return Err(WireError::FdCount {
                expected: STDIO_FDS,
                got: fds.len(),
            }
            .into());
        }
        Ok(Some(bytes))
    }

    /// The client has closed the connection without sending a byte (looked at without waiting
    /// and without taking anything).
    pub fn hung_up_silently(&self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            recv(
                self.sock.as_raw_fd(),
                &mut b,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT
            ),
            Ok(0) | Err(Errno::ECONNRESET)
        )
    }

    /// Read what the client has sent since (without waiting) and return the whole messages in
    /// it, including any that came with the request. At the end of the stream, or a reset, the
    /// client is marked gone.
    pub fn receive(&mut self) -> Result<Vec<ClientMessage>> {
        if self.gone.is_none() {
            let mut chunk = [0u8; 4096];
            loop {
                match recv(self.sock.as_raw_fd(), &mut chunk, MsgFlags::MSG_DONTWAIT) {
                    Ok(0) | Err(Errno::ECONNRESET) => self.gone = Some(Gone::Closed),
                    Ok(n) => self.decoder.push(&chunk[..n]),
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EAGAIN) => {}
                    Err(e) => return Err(sys("recv on the client socket")(e)),
                }
                break;
            }
        }
        let mut msgs = Vec::new();
        while let Some(m) = self.decoder.next_frame::<ClientMessage>()? {
            wire::check_fds(&m, 0)?;
            msgs.push(m);
        }
        Ok(msgs)
    }

    /// Queue an event for the client and write what the socket takes now. Never waits: a client
    /// too far behind is marked gone instead (see [`MAX_QUEUED`]), and events for a client that
    /// is gone are only recorded.
    pub fn send(&mut self, ev: &HelperEvent) -> Result<()> {
        self.note(ev);
        if self.gone.is_some() {
            return Ok(());
        }
        let frame = wire::encode(ev)?;
        if self.out.len() - self.sent + frame.len() > MAX_QUEUED {
            self.gone = Some(Gone::NotReading);
            self.out.clear();
            self.sent = 0;
            return Ok(());
        }
        self.out.extend_from_slice(&frame);
        self.flush()
    }

    /// Events are waiting for the socket to take them.
    pub fn wants_to_write(&self) -> bool {
        self.gone.is_none() && self.sent < self.out.len()
    }

    /// Queue `ev` with `fd` attached to it (`SCM_RIGHTS`), in order with the other events.
    pub fn send_with_fd(&mut self, ev: &HelperEvent, fd: OwnedFd) -> Result<()> {
        if self.fd_at.is_some() {
            return Err(HelperError::Refused(
                "an fd is already waiting to be sent".into(),
            ));
        }
        self.fd_at = Some((self.out.len(), fd));
        self.send(ev)
    }

    /// Write as much of the queue as the socket takes now.
    pub fn flush(&mut self) -> Result<()> {
        while self.wants_to_write() {
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            let sock = self.sock.as_raw_fd();
            let sent = match &self.fd_at {
                // The bytes before the fd's event go first, on their own.
                Some((at, _)) if self.sent < *at => send(sock, &self.out[self.sent..*at], flags),
                Some((_, fd)) => {
                    let fds = [fd.as_raw_fd()];
                    sendmsg::<()>(
                        sock,
                        &[IoSlice::new(&self.out[self.sent..])],
                        &[ControlMessage::ScmRights(&fds)],
                        flags,
                        None,
                    )
                }
                None => send(sock, &self.out[self.sent..], flags),
            };
            match sent {
                Ok(n) => {
                    if matches!(&self.fd_at, Some((at, _)) if self.sent == *at && n > 0) {
                        // The kernel attached the fd to these bytes: it is on its way.
                        self.fd_at = None;
                    }
                    self.sent += n;
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(Errno::EPIPE | Errno::ECONNRESET) => self.gone = Some(Gone::Closed),
                Err(e) => return Err(sys("send on the client socket")(e)),
            }
        }
        if self.sent == self.out.len() || self.gone.is_some() {
            self.out.clear();
            self.sent = 0;
            self.fd_at = None;
        }
        Ok(())
    }

    /// The end of the connection: give the client up to `limit` to take the events still
    /// queued. `true` when all of them went out.
    pub fn finish(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.wants_to_write() {
            match self.wait(PollFlags::POLLOUT, Some(deadline)) {
                Ok(true) if self.flush().is_ok() => {}
                _ => return false,
            }
        }
        self.gone.is_none()
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
                let how = match &r.limit {
                    Some(limit) => format!("{limit} reached: {how}"),
                    None => how,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{IoSlice, Read, Write};
    use std::os::unix::net::UnixStream;

    use nix::sys::socket::{ControlMessage, sendmsg};

    fn pair() -> (Conn, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (Conn::new(ours.into()), theirs)
    }

    fn spawn_frame() -> Vec<u8> {
        let req = SpawnRequest::new(vec!["/bin/true".into()]);
        wire::encode(&ClientMessage::Spawn(Box::new(req))).unwrap()
    }

    fn send_with_stdio(s: &UnixStream, bytes: &[u8]) {
        let null = std::fs::File::open("/dev/null").unwrap();
        let fds = [null.as_raw_fd(); 3];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let n = sendmsg::<()>(
            s.as_raw_fd(),
            &[IoSlice::new(bytes)],
            &cmsg,
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        assert_eq!(n, bytes.len());
    }

    #[test]
    fn the_request_deadline_counts_from_the_start_not_from_the_last_byte() {
        let (mut conn, client) = pair();
        let frame = spawn_frame();
        send_with_stdio(&client, &frame[..1]);
        // A byte every 50 ms for 2 s: a timeout per read would never run out meanwhile.
        let t = std::thread::spawn(move || {
            for b in &frame[1..41] {
                std::thread::sleep(Duration::from_millis(50));
                let _ = (&client).write_all(std::slice::from_ref(b));
            }
            client
        });
        let began = Instant::now();
        let err = conn
            .read_spawn(Some(began + Duration::from_millis(200)))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("no complete request arrived in time")
        );
        let took = began.elapsed();
        assert!(took < Duration::from_millis(1500), "dropped after {took:?}");
        drop(t.join().unwrap());
    }

    #[test]
    fn bytes_after_the_request_wait_for_the_next_receive() {
        let (mut conn, client) = pair();
        let mut bytes = spawn_frame();
        let signal = wire::encode(&ClientMessage::Signal(15)).unwrap();
        bytes.extend_from_slice(&signal);
        bytes.extend_from_slice(&signal[..5]);
        send_with_stdio(&client, &bytes);
        let (req, fds) = conn.read_spawn(None).unwrap();
        assert_eq!(req.argv, ["/bin/true"]);
        assert_eq!(fds.stdio.len(), 3);
        // The whole signal, and nothing for the half frame; no wait for its rest.
        assert_eq!(conn.receive().unwrap(), [ClientMessage::Signal(15)]);
        assert!(conn.receive().unwrap().is_empty() && conn.gone.is_none());
        (&client).write_all(&signal[5..]).unwrap();
        assert_eq!(conn.receive().unwrap(), [ClientMessage::Signal(15)]);
        drop(client);
        assert!(conn.receive().unwrap().is_empty());
        assert_eq!(conn.gone, Some(Gone::Closed));
    }

    #[test]
    fn a_client_that_hangs_up_before_its_request_is_recorded_as_such() {
        for cut in [0, 5] {
            let (mut conn, client) = pair();
            assert!(!conn.hung_up_silently());
            (&client).write_all(&spawn_frame()[..cut]).unwrap();
            drop(client);
            assert_eq!(conn.hung_up_silently(), cut == 0);
            assert!(conn.read_spawn(None).is_err());
            assert_eq!(conn.record.hung_up, Some(cut));
        }
    }

    #[test]
    fn events_queue_without_waiting_and_a_client_that_never_reads_is_gone() {
        let (mut conn, mut client) = pair();
        let step = HelperEvent::Step("x".repeat(1000));
        let one = wire::encode(&step).unwrap().len();
        let mut n = 0;
        while conn.gone.is_none() {
            conn.send(&step).unwrap();
            n += 1;
            assert!(n * one < 2 * MAX_QUEUED, "the queue is not bounded");
        }
        assert_eq!(conn.gone, Some(Gone::NotReading));
        assert!(n * one > MAX_QUEUED, "gone after only {n} events");
        // What did go out is whole frames.
        client.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(k) = client.read(&mut buf) {
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        assert_eq!(got.len() % one, 0);
    }

    #[test]
    fn queued_events_go_out_as_the_client_reads() {
        let (mut conn, mut client) = pair();
        let step = HelperEvent::Step("y".repeat(1000));
        for _ in 0..1000 {
            conn.send(&step).unwrap();
        }
        assert!(conn.wants_to_write(), "1 MB cannot fit the socket buffer");
        let reader = std::thread::spawn(move || {
            let mut n = 0;
            while let Ok(Some(ev)) = wire::read_frame::<_, HelperEvent>(&mut client) {
                assert_eq!(ev, HelperEvent::Step("y".repeat(1000)));
                n += 1;
            }
            n
        });
        assert!(conn.finish(Duration::from_secs(10)));
        drop(conn);
        assert_eq!(reader.join().unwrap(), 1000);
    }
}
