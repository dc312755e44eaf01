//! The payload's terminal. When our stdin is a terminal, the payload gets a new pseudo-terminal
//! instead of ours: its slave becomes the payload's stdin (and stdout/stderr where ours are
//! terminals too) and its controlling terminal, so a shell inside has job control, Ctrl-C and
//! Ctrl-Z reach only the foreground job inside, and `TIOCSTI` can only push input into that
//! pseudo-terminal, never into the terminal the user typed `nsjail` in. Our own terminal is put
//! in raw mode while the sandbox runs (restored when this value is dropped, on every return
//! path), bytes are relayed both ways, and window size changes are passed on. Started as a
//! background job, we take the terminal only once we are the foreground one.
//!
//! Where the sandbox has a `/dev/pts` of its own, the helper answers with the master of a
//! pseudo-terminal made there instead (`tty` inside then names a device that exists inside),
//! and that one is relayed from then on ([`Terminal::adopt`]). Until the helper has said
//! which, our stdin is left unread, so nothing typed early goes to the wrong one.
//!
//! Ctrl-Z: the payload stops, the helper says so, and we give our terminal back to the shell
//! it was in (its settings restored) and stop ourselves with the same signal; `fg` continues
//! us, and we put the terminal back in raw mode and ask the helper to continue the payload
//! ([`Terminal::leave_raw`], [`Terminal::enter_raw`]; the rest is in `session.rs`).
//!
//! Without a terminal on stdin nothing here is used: stdio goes to the payload as it is.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::pty::{Winsize, openpty};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

/// Input queued for the payload beyond which we stop reading our stdin for a while.
const MAX_PENDING: usize = 64 * 1024;

pub struct Terminal {
    pub master: OwnedFd,
    /// Sent to the helper, then dropped, so the master sees end-of-file when the sandbox ends.
    pub slave: Option<OwnedFd>,
    /// Which of our fds 0–2 were terminals (those are replaced by the slave).
    pub replaced: [bool; 3],
    /// Our terminal's settings before raw mode; restored on drop.
    saved: Option<Termios>,
    /// Bytes read from our stdin not yet written to the master.
    pending: Vec<u8>,
    stdin_open: bool,
    master_open: bool,
    /// Our stdin is not read until the helper has said which master the payload has.
    pub paused: bool,
}

fn winsize_of(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    Some(Winsize {
        ws_row: ws.ws_row,
        ws_col: ws.ws_col,
        ws_xpixel: ws.ws_xpixel,
        ws_ypixel: ws.ws_ypixel,
    })
}

impl Terminal {
    /// A new pseudo-terminal when stdin is a terminal; `None` otherwise.
    pub fn for_stdio() -> Result<Option<Terminal>> {
        let stdin = std::io::stdin();
        if !nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
            return Ok(None);
        }
        let replaced = [
            true,
            nix::unistd::isatty(std::io::stdout().as_fd()).unwrap_or(false),
            nix::unistd::isatty(std::io::stderr().as_fd()).unwrap_or(false),
        ];
        let size = winsize_of(stdin.as_fd());
        let pty = openpty(size.as_ref(), None).context("openpty")?;
        // Ours, not the helper's: neither end may leak into anything we start.
        for fd in [&pty.master, &pty.slave] {
            fcntl(fd, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).context("fcntl")?;
        }
        let flags = fcntl(&pty.master, FcntlArg::F_GETFL).context("fcntl(F_GETFL)")?;
        fcntl(
            &pty.master,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .context("fcntl(F_SETFL)")?;
        Ok(Some(Terminal {
            master: pty.master,
            slave: Some(pty.slave),
            replaced,
            saved: None,
            pending: Vec::new(),
            stdin_open: true,
            master_open: true,
            paused: false,
        }))
    }

    /// The payload's fds 0–2: the slave where ours is a terminal, ours elsewhere.
    pub fn stdio(&self) -> [RawFd; 3] {
        let slave = self.slave.as_ref().map(|s| s.as_raw_fd()).unwrap_or(0);
        [0, 1, 2].map(|fd| {
            if self.replaced[fd as usize] {
                slave
            } else {
                fd
            }
        })
    }

    /// Put our terminal in raw mode: every key goes to the payload's terminal, which does the
    /// line editing and signal keys itself.
    pub fn enter_raw(&mut self) -> Result<()> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).context("tcgetattr")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        self.saved = Some(saved);
        tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &raw).context("tcsetattr (raw mode)")?;
        Ok(())
    }

    /// [`Terminal::enter_raw`] when we are the terminal's foreground job. Started in the
    /// background (`&` in a shell with job control), we leave the terminal alone, as a program
    /// that does not use it: no raw mode (which would stop us with SIGTTOU) and our stdin is
    /// not read, until a `fg` continues us in the foreground ([`Terminal::continued`]). The
    /// payload keeps its own terminal all along, and what it writes still shows.
    pub fn enter_raw_if_foreground(&mut self) -> Result<()> {
        if foreground() {
            self.enter_raw()?;
        }
        Ok(())
    }

    /// The terminal is not ours: we started as a background job and have not been brought
    /// to the foreground since.
    pub fn in_background(&self) -> bool {
        self.saved.is_none()
    }

    /// We were continued (SIGCONT), or look again: brought to the foreground after starting in
    /// the background, take the terminal now.
    pub fn continued(&mut self) -> Result<()> {
        if self.saved.is_none() && foreground() {
            self.enter_raw()?;
            self.resize();
        }
        Ok(())
    }

    /// Our terminal back to the settings it had before [`Terminal::enter_raw`].
    pub fn leave_raw(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &saved);
        }
    }

    /// Relay `master` from now on: the master of the pseudo-terminal the payload got inside the
    /// sandbox. Ours goes (nothing inside holds its slave).
    pub fn adopt(&mut self, master: OwnedFd) -> Result<()> {
        if !nix::unistd::isatty(&master).unwrap_or(false) {
            anyhow::bail!("the helper's terminal for the payload is not a terminal");
        }
        let flags = fcntl(&master, FcntlArg::F_GETFL).context("fcntl(F_GETFL)")?;
        fcntl(
            &master,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .context("fcntl(F_SETFL)")?;
        self.master = master;
        self.master_open = true;
        self.resize();
        Ok(())
    }

    /// Pass our window size on to the payload's terminal (after SIGWINCH).
    pub fn resize(&self) {
        if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin().as_fd()) {
            let _ = rustix::termios::tcsetwinsize(self.master.as_fd(), ws);
        }
    }

    /// What to poll for: (our stdin, the master) interest; `None` when not to poll it.
    pub fn interest(&self) -> (bool, Option<nix::poll::PollFlags>) {
        use nix::poll::PollFlags;
        // Only while the terminal is ours (raw mode): a background job that reads it stops.
        let read_stdin = self.stdin_open
            && !self.paused
            && self.saved.is_some()
            && self.pending.len() < MAX_PENDING;
        let master = if !self.master_open {
            None
        } else if self.pending.is_empty() {
            Some(PollFlags::POLLIN)
        } else {
            Some(PollFlags::POLLIN | PollFlags::POLLOUT)
        };
        (read_stdin, master)
    }

    /// Our stdin has input: queue it for the payload.
    pub fn relay_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
            Ok(0) => self.stdin_open = false,
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => self.stdin_open = false,
        }
        self.flush_input();
    }

    /// Write queued input to the master as far as it takes it.
    pub fn flush_input(&mut self) {
        while !self.pending.is_empty() && self.master_open {
            match nix::unistd::write(&self.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    self.pending.clear();
                    break;
                }
            }
        }
    }

    /// The payload wrote: copy it to our terminal ([`screen`]). `false` once the payload's side
    /// is closed.
    pub fn relay_master(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        loop {
            match nix::unistd::read(self.master.as_fd(), &mut buf) {
                Ok(0) | Err(Errno::EIO) => {
                    self.master_open = false;
                    return false;
                }
                Ok(n) => match screen(self.replaced) {
                    1 => {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
                    }
                    2 => {
                        let _ = std::io::stderr().lock().write_all(&buf[..n]);
                    }
                    _ => write_all(std::io::stdin().as_fd(), &buf[..n]),
                },
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return true,
                Err(_) => {
                    self.master_open = false;
                    return false;
                }
            }
        }
    }

    /// After the sandbox ended: copy what the payload wrote last, until its side is closed (or,
    /// should anything still hold it, a quiet second passes).
    pub fn drain(&mut self) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        while self.master_open {
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(1000u16)) {
                Ok(0) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
                Ok(_) => {
                    if !self.relay_master() {
                        break;
                    }
                }
            }
        }
    }
}

/// Whether our process group is the foreground job of the terminal on our stdin.
fn foreground() -> bool {
    nix::unistd::tcgetpgrp(std::io::stdin()).is_ok_and(|pg| pg == nix::unistd::getpgrp())
}

/// Which of our fds shows what the payload's terminal shows: our stdout when it is a terminal,
/// else our stderr when that one is, else the terminal on our stdin. Never a pipe or a file:
/// where our stdout is one, only the payload's own stdout goes there, as without a terminal.
/// (A client that reads its sandboxed tool's stdout through a pipe while stdin and stderr are
/// the user's terminal, as `mat2 --show` does, would otherwise find the tool's warnings and the
/// echo of anything typed in what it parses.)
fn screen(replaced: [bool; 3]) -> RawFd {
    if replaced[1] {
        1
    } else if replaced[2] {
        2
    } else {
        0
    }
}

/// Write all of `buf` to `fd` as far as it takes it (a terminal on stdin opened read-only
/// does not: the echo is then dropped).
fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return,
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.leave_raw();
    }
}

#[cfg(test)]
mod tests {
    use super::screen;

    #[test]
    fn the_payloads_terminal_shows_on_ours_never_in_a_pipe() {
        assert_eq!(screen([true, true, true]), 1);
        // `mat2 --show` at a terminal: stdout a pipe it parses, stderr the terminal.
        assert_eq!(screen([true, false, true]), 2);
        assert_eq!(screen([true, false, false]), 0);
        assert_eq!(screen([true, true, false]), 1);
    }
}
