//! Files and directories the privileged helper trusts: only ones that no one but root could have
//! written. Used for the policy, the account and sub-ID files, and `/run/nsjail`.
//!
//! A path is walked from `/` one component at a time with `O_NOFOLLOW`: every directory on the
//! way and the file itself must be owned by root and writable by neither group nor others, and
//! none may be a symbolic link (root following a user's symlink: firejail CVE-2017-5180; a
//! policy the user could write: firejail CVE-2019-12589). Any error other than "does not exist"
//! refuses: a failure to check is never taken for permission (RLIMIT_NOFILE, EACCES, …).

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

use crate::error::{HelperError, Result, sys};

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Root-owned and not writable by group or others.
fn check_owner(path: &str, st: &FileStat) -> Result<()> {
    if st.st_uid != 0 {
        return Err(HelperError::Refused(format!(
            "{path} is owned by uid {}, not root: refusing to trust it",
            st.st_uid
        )));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(HelperError::Refused(format!(
            "{path} is writable by group or others (mode {:04o}): refusing to trust it",
            st.st_mode & 0o7777
        )));
    }
    Ok(())
}

fn components(path: &str) -> Result<Vec<&str>> {
    if !path.starts_with('/') {
        return Err(HelperError::Refused(format!(
            "{path}: not an absolute path"
        )));
    }
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == "." || *c == "..") {
        return Err(HelperError::Refused(format!("{path}: contains . or ..")));
    }
    Ok(parts)
}

fn open_step(dir: &OwnedFd, name: &str, flags: OFlag, shown: &str) -> Result<Option<OwnedFd>> {
    match openat(
        dir.as_fd(),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::ELOOP) => Err(HelperError::Refused(format!(
            "{shown} is a symbolic link: refusing to follow it"
        ))),
        Err(Errno::ENOTDIR) => Err(HelperError::Refused(format!(
            "{shown}: a component is not a directory"
        ))),
        Err(e) => Err(sys(format!("open {shown}"))(e)),
    }
}

/// Open the trusted directory `path`; `None` if it does not exist.
pub fn open_dir(path: &str) -> Result<Option<OwnedFd>> {
    let parts = components(path)?;
    let root = nix::fcntl::open(
        "/",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open /"))?;
    let st = fstat(root.as_fd()).map_err(sys("fstat /"))?;
    check_owner("/", &st)?;
    let mut dir = root;
    let mut shown = String::new();
    for c in parts {
        shown.push('/');
        shown.push_str(c);
        let Some(next) = open_step(&dir, c, OFlag::O_RDONLY | OFlag::O_DIRECTORY, &shown)? else {
            return Ok(None);
        };
        let st = fstat(next.as_fd()).map_err(sys(format!("fstat {shown}")))?;
        check_owner(&shown, &st)?;
        dir = next;
    }
    Ok(Some(dir))
}

/// Read the trusted file `path` whole (at most `max` bytes); `None` if it (or a directory on the
/// way) does not exist.
pub fn read_file(path: &str, max: usize) -> Result<Option<String>> {
    let (dir_path, name) = match path.rsplit_once('/') {
        Some((d, n)) if !n.is_empty() => (if d.is_empty() { "/" } else { d }, n),
        _ => {
            return Err(HelperError::Refused(format!("{path}: not a file path")));
        }
    };
    let Some(dir) = open_dir(dir_path)? else {
        return Ok(None);
    };
    // O_NONBLOCK: a FIFO put in the file's place must not hang us (it fails the type check).
    let Some(fd) = open_step(&dir, name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, path)? else {
        return Ok(None);
    };
    let st = fstat(fd.as_fd()).map_err(sys(format!("fstat {path}")))?;
    if kind(&st) != SFlag::S_IFREG {
        return Err(HelperError::Refused(format!(
            "{path} is not a regular file: refusing to read it"
        )));
    }
    check_owner(path, &st)?;
    let mut text = Vec::new();
    std::fs::File::from(fd)
        .take(max as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| HelperError::Sys {
            call: format!("read {path}"),
            source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
    if text.len() > max {
        return Err(HelperError::Refused(format!(
            "{path} is larger than {max} bytes"
        )));
    }
    String::from_utf8(text)
        .map(Some)
        .map_err(|_| HelperError::Refused(format!("{path} is not UTF-8 text")))
}

/// Open (creating it root-owned with `mode` if missing) the directory `name` in the trusted
/// directory `parent`, and check it like every other trusted directory.
pub fn ensure_subdir(parent: &OwnedFd, name: &str, mode: u32, shown: &str) -> Result<OwnedFd> {
    match nix::sys::stat::mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(sys(format!("mkdir {shown}"))(e)),
    }
    let Some(dir) = open_step(parent, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, shown)? else {
        return Err(sys(format!("open {shown}"))(Errno::ENOENT));
    };
    let st = fstat(dir.as_fd()).map_err(sys(format!("fstat {shown}")))?;
    check_owner(shown, &st)?;
    Ok(dir)
}
