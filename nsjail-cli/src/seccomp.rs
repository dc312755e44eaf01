//! The seccomp choice from `--seccomp` and `--add-seccomp-fd`, made here, as the caller: the
//! profile file is read, parsed and compiled to BPF (crate `nsjail-seccomp`), and the raw
//! programs are read. The request carries only bytes; the helper checks their framing, decides
//! whether the profile replaces the default filter or is stacked on it, and installs them.

use std::io::Read;
use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::fcntl::OFlag;
use nsjail_core::message::MAX_SECCOMP_PROGRAMS;
use nsjail_core::seccomp::{BPF_INSN_BYTES, BpfProgram, MAX_BPF_INSNS, SeccompMode};
use nsjail_seccomp::SeccompProfile;
use nsjail_seccomp::oci::{self, MAX_PROFILE_BYTES, OciContext};

use crate::args::RunArgs;

/// The running kernel's (major, minor), for a profile's `minKernel`.
fn kernel_version() -> Option<(u32, u32)> {
    let uts = nix::sys::utsname::uname().ok()?;
    let release = uts.release().to_str()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What `--seccomp` asks for.
pub struct Choice {
    /// As the request carries it.
    pub mode: SeccompMode,
    /// The profile as read, for `--dry-run` to describe, with its length in instructions.
    pub profile: Option<(SeccompProfile, usize)>,
}

/// Read, parse and compile what `--seccomp` names.
pub fn choose(run: &RunArgs) -> Result<Choice> {
    let Some(arg) = run.seccomp.as_deref() else {
        return Ok(Choice {
            mode: SeccompMode::Default,
            profile: None,
        });
    };
    if arg == "none" {
        return Ok(Choice {
            mode: SeccompMode::Disabled,
            profile: None,
        });
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
    let compiled = profile
        .compile()
        .with_context(|| format!("--seccomp {arg}"))?;
    let len = compiled.insns.len();
    Ok(Choice {
        mode: SeccompMode::Profile(BpfProgram {
            bpf: compiled.bytes(),
            flags: compiled.flags,
        }),
        profile: Some((profile, len)),
    })
}

/// How long the CLI waits for the `--add-seccomp-fd` programs, all together, to reach their end.
pub const BPF_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Read every `--add-seccomp-fd` program here, as the caller, bounded in size (the kernel's
/// limit of 4096 instructions) and in time ([`BPF_READ_TIMEOUT`]): a pipe whose writer never
/// closes, or a file on FUSE whose read never returns, is a one-line error, and the helper
/// never reads anything the caller chose. The bytes travel in the request;
/// the helper checks their framing and installs them.
///
/// Each descriptor is reopened through `/proc/self/fd` (no unsafe code adopts a raw number),
/// so a regular file is read from its start.
pub fn read_bpf_programs(fds: &[RawFd]) -> Result<Vec<Vec<u8>>> {
    if fds.len() > MAX_SECCOMP_PROGRAMS {
        bail!(
            "--add-seccomp-fd: at most {MAX_SECCOMP_PROGRAMS} programs, got {}",
            fds.len()
        );
    }
    let deadline = Instant::now() + BPF_READ_TIMEOUT;
    let max = (MAX_BPF_INSNS * BPF_INSN_BYTES) as u64;
    let mut programs = Vec::with_capacity(fds.len());
    for &fd in fds {
        // /proc/self/fd lists exactly our open descriptors (and needs no unsafe borrow).
        let path = format!("/proc/self/fd/{fd}");
        if fd < 0 || std::fs::read_link(&path).is_err() {
            bail!("--add-seccomp-fd {fd}: not an open file descriptor");
        }
        // Non-blocking only for the open (a FIFO without a writer would block it), then
        // blocking reads in a thread we stop waiting for at the deadline.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(&path)
            .with_context(|| format!("--add-seccomp-fd {fd}: cannot open it for reading"))?;
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))
            .with_context(|| format!("--add-seccomp-fd {fd}: fcntl(F_SETFL)"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut data = Vec::new();
            let r = file.take(max + 1).read_to_end(&mut data).map(|_| data);
            let _ = tx.send(r);
        });
        let left = deadline.saturating_duration_since(Instant::now());
        let data = match rx.recv_timeout(left) {
            Ok(r) => r.with_context(|| format!("--add-seccomp-fd {fd}"))?,
            // The reading thread stays blocked; the process ends with this error.
            Err(_) => bail!(
                "--add-seccomp-fd {fd}: no end of file within {} s",
                BPF_READ_TIMEOUT.as_secs()
            ),
        };
        if data.len() as u64 > max {
            bail!("--add-seccomp-fd {fd}: longer than {MAX_BPF_INSNS} instructions");
        }
        programs.push(data);
    }
    Ok(programs)
}
