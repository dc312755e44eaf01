//! What the sandbox's first process tells the helper through the report pipe before the
//! payload runs: set-up steps (for `--verbose`), a set-up failure, or an exec failure.
//!
//! Each record is written with a single `write` of less than `PIPE_BUF` bytes, so records from
//! the set-up process and from the payload (on exec failure) never interleave. The pipe is
//! close-on-exec: the helper reads until end-of-file, which comes exactly when the payload's
//! exec succeeded (or every writer died).

use std::os::fd::{AsFd, OwnedFd};

const STEP: u8 = 1;
const SETUP_FAILED: u8 = 2;
const EXEC_FAILED: u8 = 3;
/// Keep each record well under PIPE_BUF (4096) so writes are atomic.
const MAX_TEXT: usize = 2048;

#[derive(Debug, PartialEq, Eq)]
pub enum ChildReport {
    Step(String),
    SetupFailed(String),
    ExecFailed { errno: i32, message: String },
}

/// The writing end, held by the sandbox's processes until exec.
pub struct Reporter {
    fd: OwnedFd,
    verbose: bool,
}

impl Reporter {
    pub fn new(fd: OwnedFd, verbose: bool) -> Reporter {
        Reporter { fd, verbose }
    }

    /// Report a set-up step; the text is only built when the caller asked for `--verbose`.
    pub fn step(&self, text: impl FnOnce() -> String) {
        if self.verbose {
            self.write(STEP, 0, &text());
        }
    }

    pub fn setup_failed(&self, message: &str) {
        self.write(SETUP_FAILED, 0, message);
    }

    pub fn exec_failed(&self, errno: i32, message: &str) {
        self.write(EXEC_FAILED, errno, message);
    }

    fn write(&self, tag: u8, errno: i32, text: &str) {
        let mut end = text.len().min(MAX_TEXT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = &text.as_bytes()[..end];
        let mut rec = Vec::with_capacity(9 + text.len());
        rec.push(tag);
        rec.extend_from_slice(&errno.to_le_bytes());
        rec.extend_from_slice(&(text.len() as u32).to_le_bytes());
        rec.extend_from_slice(text);
        // Nothing useful can be done if the helper is gone; the pdeath signal ends us.
        let _ = nix::unistd::write(self.fd.as_fd(), &rec);
    }

    pub fn is_verbose(&self) -> bool {
        self.verbose
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// Parse everything the pipe delivered. A malformed tail (a writer killed mid-record cannot
/// produce one, since records are written atomically) ends parsing.
pub fn parse(mut buf: &[u8]) -> Vec<ChildReport> {
    let mut out = Vec::new();
    while buf.len() >= 9 {
        let tag = buf[0];
        let errno = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
        let len = u32::from_le_bytes([buf[5], buf[6], buf[7], buf[8]]) as usize;
        let Some(text) = buf.get(9..9 + len) else {
            break;
        };
        let text = String::from_utf8_lossy(text).into_owned();
        out.push(match tag {
            STEP => ChildReport::Step(text),
            SETUP_FAILED => ChildReport::SetupFailed(text),
            EXEC_FAILED => ChildReport::ExecFailed {
                errno,
                message: text,
            },
            _ => break,
        });
        buf = &buf[9 + len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let rep = Reporter::new(w, true);
        rep.step(|| "one".into());
        rep.setup_failed("two");
        rep.exec_failed(2, "three");
        drop(rep);
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut buf).unwrap();
        assert_eq!(
            parse(&buf),
            vec![
                ChildReport::Step("one".into()),
                ChildReport::SetupFailed("two".into()),
                ChildReport::ExecFailed {
                    errno: 2,
                    message: "three".into()
                },
            ]
        );
        assert!(parse(&buf[..buf.len() - 1]).len() == 2);
    }
}
