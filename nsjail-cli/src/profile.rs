//! The seccomp choice from `--seccomp` and `--add-seccomp-fd`: the profile file is read and
//! parsed here, as the caller (the helper checks the result again).

use std::io::Read;
use std::os::fd::RawFd;

use anyhow::{Context, Result, bail};
use nsjail_core::message::MAX_SECCOMP_FDS;
use nsjail_core::seccomp::SeccompMode;
use nsjail_core::seccomp::oci::{self, MAX_PROFILE_BYTES, OciContext};

use crate::args::RunArgs;

/// The running kernel's (major, minor), for a profile's `minKernel`.
fn kernel_version() -> Option<(u32, u32)> {
    let uts = nix::sys::utsname::uname().ok()?;
    let release = uts.release().to_str()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What `--seccomp` asks for.
pub fn seccomp_mode(run: &RunArgs) -> Result<SeccompMode> {
    let Some(arg) = run.seccomp.as_deref() else {
        return Ok(SeccompMode::Default);
    };
    if arg == "none" {
        return Ok(SeccompMode::Disabled);
    }
    let file = std::fs::File::open(arg).with_context(|| format!("--seccomp {arg}"))?;
    let mut json = Vec::new();
    file.take(MAX_PROFILE_BYTES as u64 + 1)
        .read_to_end(&mut json)
        .with_context(|| format!("--seccomp {arg}"))?;
    let ctx = OciContext {
        caps: run.caps(),
        kernel: kernel_version(),
    };
    let profile = oci::parse(&json, &ctx).with_context(|| format!("--seccomp {arg}"))?;
    Ok(SeccompMode::Profile(profile))
}

/// Every `--add-seccomp-fd` must be an open descriptor of ours; it travels to the helper with
/// the request.
pub fn check_bpf_fds(fds: &[RawFd]) -> Result<()> {
    if fds.len() > MAX_SECCOMP_FDS {
        bail!(
            "--add-seccomp-fd: at most {MAX_SECCOMP_FDS} programs, got {}",
            fds.len()
        );
    }
    for &fd in fds {
        // /proc/self/fd lists exactly our open descriptors (and needs no unsafe borrow).
        if fd < 0 || std::fs::read_link(format!("/proc/self/fd/{fd}")).is_err() {
            bail!("--add-seccomp-fd {fd}: not an open file descriptor");
        }
    }
    Ok(())
}
