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

/// Drop from this process's bounding set every capability not in `keep`, once, before the
/// init and the payload part: both inherit the result, so the walk over every capability the
/// kernel knows (about 41 `prctl` calls) is paid once per sandbox, not once per process.
///
/// Dropping needs CAP_SETPCAP, which this process still has in the sandbox's user namespace;
/// the bounding set limits only what an `execve` can give, so the steps before exec keep their
/// effective capabilities. Each capability is dropped without reading it first; the walk ends
/// where the kernel says the capability does not exist, so ones newer than this build go too.
pub fn limit_bounding_set(keep: CapSet) -> Result<()> {
    for cap in 0..64u8 {
        if keep.contains(cap) {
            continue;
        }
        match os::capbset_drop(cap) {
            Ok(()) => {}
            Err(Errno::EINVAL) => break,
            Err(e) => return Err(sys(format!("prctl(PR_CAPBSET_DROP, {cap})"))(e)),
        }
    }
    Ok(())
}

/// Reduce this process's capabilities to `keep` in all five sets, after `limit_bounding_set`
/// left the bounding set at `bounding` (a superset of `keep`): what is in `bounding` and not in
/// `keep` is dropped from it here, then the other four sets are set to `keep`.
pub fn limit_capabilities(bounding: CapSet, keep: CapSet) -> Result<()> {
    // Bounding set first: dropping needs CAP_SETPCAP, which capset below may remove.
    for cap in bounding.iter().filter(|c| !keep.contains(*c)) {
        match os::capbset_drop(cap) {
            // A capability this build knows and the kernel does not: nothing to drop.
            Ok(()) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(sys(format!("prctl(PR_CAPBSET_DROP, {cap})"))(e)),
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
    limit_capabilities(l.caps, l.caps)?;
    seccomp::install(&l.seccomp).map_err(|e| HelperError::Sys {
        call: format!(
            "seccomp(SECCOMP_SET_MODE_FILTER) [{}]",
            l.seccomp.description
        ),
        source: e,
    })
}
