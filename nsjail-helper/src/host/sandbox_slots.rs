//! Counting a user's live sandboxes, for the policy's `max_sandboxes_per_user`.
//!
//! Each live sandbox holds an exclusive `flock` on one of the files
//! `/run/nsjail/slots/<uid>/<n>.lock`, `n` below the maximum. The helper holds the lock for as
//! long as it supervises the sandbox; the kernel releases it when the helper exits or is killed,
//! so a crash never leaks a slot. The directories are root's (`/run/nsjail/slots/<uid>` is
//! 0700): a user can neither see nor take another user's slots, nor plant files there.

use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat};

use crate::error::{HelperError, Result, sys};
use crate::host::trusted;

/// Where the slot directories live; the daemon's socket, `helper.sock`, is in the same directory.
pub const RUN_DIR: &str = "/run/nsjail";

/// A held slot; dropping it frees the slot.
pub struct Slot {
    _lock: Flock<OwnedFd>,
    pub index: u32,
}

/// Take a free slot of `uid`'s `max`, or refuse.
pub fn acquire(uid: u32, max: u32) -> Result<Slot> {
    let run = trusted::open_dir("/run")?.ok_or_else(|| sys("open /run")(Errno::ENOENT))?;
    let base = trusted::ensure_subdir(&run, "nsjail", 0o755, RUN_DIR)?;
    let slots = trusted::ensure_subdir(&base, "slots", 0o755, &format!("{RUN_DIR}/slots"))?;
    let dir_path = format!("{RUN_DIR}/slots/{uid}");
    let dir = trusted::ensure_subdir(&slots, &uid.to_string(), 0o700, &dir_path)?;
    for index in 0..max {
        let name = format!("{index}.lock");
        let fd = openat(
            &dir,
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(sys(format!("open {dir_path}/{name}")))?;
        let st = fstat(&fd).map_err(sys(format!("fstat {dir_path}/{name}")))?;
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG
            || st.st_uid != 0
        {
            return Err(HelperError::Refused(format!(
                "{dir_path}/{name} is not a root-owned regular file: refusing to use it"
            )));
        }
        match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Slot { _lock: lock, index }),
            Err((_, Errno::EWOULDBLOCK)) => continue,
            Err((_, e)) => return Err(sys(format!("flock {dir_path}/{name}"))(e)),
        }
    }
    Err(HelperError::Refused(format!(
        "you already have {max} sandbox{} running, the most the nsjail policy allows \
         (limits.max_sandboxes_per_user)",
        if max == 1 { "" } else { "es" }
    )))
}
