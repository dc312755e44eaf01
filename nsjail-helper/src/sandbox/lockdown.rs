//! The payload's last steps before `execve`: capabilities down to the requested set, then the
//! seccomp filters. And the init's: no capabilities at all.
//!
//! Capabilities here are those of the sandbox's user namespace (the process has all of them
//! there after `clone`); nothing of the host's is ever granted. To keep a set `K` across
//! `execve` for any uid inside, `K` goes into every set: bounding (so root inside gets no more
//! than `K` from the exec rule that gives root its full set), permitted, effective, inheritable
//! and ambient (so a non-root uid inside keeps `K` across exec). With `K` empty the payload
//! ends with five empty sets.

use nix::errno::Errno;
use nsjail_core::CapSet;

use crate::error::{HelperError, Result, sys};
use crate::host::seccomp::{self, SeccompPlan};
use crate::sys as os;

/// What the payload is left with.
pub struct Lockdown {
    pub caps: CapSet,
    pub seccomp: SeccompPlan,
    /// The Landlock ABI to build the payload's ruleset with, when it gets one.
    pub landlock: Option<u32>,
}

/// Reduce this process's capabilities to `keep` in all five sets.
pub fn limit_capabilities(keep: CapSet) -> Result<()> {
    // Bounding set first: dropping needs CAP_SETPCAP, which capset below may remove. Walk until
    // the kernel says the capability does not exist, so ones newer than this build go too.
    for cap in 0..64u8 {
        match os::capbset_read(cap) {
            Err(Errno::EINVAL) => break,
            Err(e) => return Err(sys(format!("prctl(PR_CAPBSET_READ, {cap})"))(e)),
            Ok(false) => {}
            Ok(true) if keep.contains(cap) => {}
            Ok(true) => {
                os::capbset_drop(cap).map_err(sys(format!("prctl(PR_CAPBSET_DROP, {cap})")))?
            }
        }
    }
    os::capset(keep.0, keep.0, keep.0).map_err(sys(format!("capset({keep})")))?;
    os::ambient_set(keep.iter()).map_err(sys(format!("prctl(PR_CAP_AMBIENT, {keep})")))?;
    Ok(())
}

/// Everything `execve` must not happen without: `no_new_privs`, then the Landlock ruleset (which
/// needs it), then capabilities, then the filters (last, so that a strict custom profile cannot
/// stop the steps before it).
pub fn apply(l: &Lockdown, landlock: Option<crate::sandbox::landlock::Prepared>) -> Result<()> {
    nix::sys::prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    if let Some(ruleset) = landlock {
        crate::sandbox::landlock::restrict(ruleset)?;
    }
    limit_capabilities(l.caps)?;
    seccomp::install(&l.seccomp).map_err(|e| HelperError::Sys {
        call: format!(
            "seccomp(SECCOMP_SET_MODE_FILTER) [{}]",
            l.seccomp.description
        ),
        source: e,
    })
}
