//! Request validation. The helper runs this on every request before acting on it: nothing the
//! CLI sent is trusted, whoever built it.

use thiserror::Error;

use crate::caps::CapError;
use crate::limits::show_seconds;
use crate::message::{MAX_PASS_FDS, MAX_SECCOMP_PROGRAMS, PASS_FD_LIMIT};
use crate::mounts::{MountOp, OverlayKind};
use crate::request::IdRange;
use crate::request::{Limits, SpawnRequest};
use crate::seccomp::{ALLOWED_FLAGS, MAX_BPF_INSNS, SeccompMode};

/// Largest number of arguments or environment entries a request may carry.
pub const MAX_LIST: usize = 16 * 1024;
/// Linux limits a hostname to 64 bytes (`__NEW_UTS_LEN`).
pub const MAX_HOSTNAME: usize = 64;
/// The longest time limit (or kill grace) a request may carry: a million seconds, 11.5 days.
pub const MAX_TIME_US: u64 = 1_000_000 * 1_000_000;
/// The longest kill grace: an hour.
pub const MAX_KILL_GRACE_US: u64 = 3600 * 1_000_000;
/// The smallest memory limit: below a MiB not even the sandbox's init starts.
pub const MIN_MEMORY: u64 = 1 << 20;
/// The largest memory limit the kernel takes as a number (it rounds to pages below 2^63).
pub const MAX_MEMORY: u64 = 1 << 62;
/// `PID_MAX_LIMIT` on 64-bit Linux.
pub const MAX_PIDS: u64 = 4 * 1024 * 1024;
/// `--cpus` between 0.01 (the kernel's smallest quota, 1 ms per 100 ms period) and 1000.
pub const MIN_CPU_MILLIS: u64 = 10;
pub const MAX_CPU_MILLIS: u64 = 1_000_000;
/// Linux accepts at most 340 lines in an ID map (since 4.15).
pub const MAX_MAP_LINES: usize = 340;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("no command given")]
    EmptyArgv,
    #[error("{field}: contains a NUL byte")]
    Nul { field: &'static str },
    #[error("{field}: too many entries ({count}, at most {max})")]
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("environment variable name {0:?} is empty or contains '='")]
    BadEnvName(String),
    #[error("working directory {0:?} is not an absolute path")]
    RelativeCwd(String),
    #[error("hostname {0:?} must be 1 to 64 bytes")]
    BadHostname(String),
    #[error("a hostname can only be set in a new UTS namespace (drop --share-uts)")]
    HostnameNeedsUts,
    #[error("{op}: {path:?} must be an absolute path")]
    RelativePath { op: String, path: String },
    #[error("{op}: {path:?} may not contain '..'")]
    DotDot { op: String, path: String },
    #[error("{op}: contains a NUL byte")]
    MountNul { op: String },
    #[error("{op}: permissions {perms:o} are not valid (at most 7777)")]
    BadPerms { op: String, perms: u32 },
    #[error("{op}: a size of 0 bytes is not valid")]
    BadSize { op: String },
    #[error("{op}: needs at least {need} --overlay-src before it")]
    OverlaySources { op: String, need: usize },
    #[error("{op}: refers to passed fd #{fd}, but {count} extra fds were passed")]
    BadFdRef { op: String, fd: u32, count: u32 },
    #[error("passed fd #{0} is used by more than one operation")]
    FdReused(u32),
    #[error("{field} {value} is not a valid id inside the sandbox")]
    BadId { field: &'static str, value: u32 },
    #[error("--rlimit {0} is given more than once")]
    DuplicateRlimit(&'static str),
    #[error("--rlimit {0}: the soft limit is above the hard limit")]
    RlimitSoftAboveHard(&'static str),
    #[error("{flag} {value} is out of range ({range})")]
    LimitOutOfRange {
        flag: &'static str,
        value: String,
        range: &'static str,
    },
    #[error("--net pasta needs a new network namespace (drop --share-net)")]
    PastaNeedsNetns,
    #[error(
        "--net pasta needs uid 0 inside the sandbox (pasta configures the sandbox's network with \
         the capabilities of that uid); drop --uid {0}"
    )]
    PastaNeedsRoot(u32),
    #[error("--forward-port: port 0 is not a port")]
    PortZero,
    #[error("--forward-port: host port {0} is forwarded twice")]
    PortTwice(u16),
    #[error("at most {MAX_SECCOMP_PROGRAMS} --add-seccomp-fd programs, got {0}")]
    TooManySeccompPrograms(usize),
    #[error(
        "--add-seccomp-fd program {n}: {len} bytes is not a BPF program (a non-empty whole number \
         of 8-byte instructions, at most {MAX_BPF_INSNS} of them)"
    )]
    BadSeccompProgram { n: usize, len: usize },
    #[error(
        "--seccomp profile: {0} bytes is not a BPF program (a non-empty whole number of 8-byte \
         instructions, at most {MAX_BPF_INSNS} of them)"
    )]
    BadSeccompProfile(usize),
    #[error("--seccomp profile: unsupported filter flags {0:#x}")]
    BadSeccompFlags(u32),
    #[error("{0}")]
    Caps(#[from] CapError),
    #[error("--map-{kind}: {reason}")]
    BadMap { kind: &'static str, reason: String },
    #[error("--{kind} {id} is not mapped: the --map-{kind} ranges must cover it inside")]
    Unmapped { kind: &'static str, id: u32 },
    #[error(
        "--pass-fd {0}: only fds 3 to {max} can be passed (0, 1 and 2 are the payload's stdio)",
        max = PASS_FD_LIMIT - 1
    )]
    PassFdOutOfRange(u32),
    #[error("--pass-fd {0} is given more than once")]
    PassFdTwice(u32),
}

/// The fds the payload gets: each a number from 3 below [`PASS_FD_LIMIT`], none twice, at most
/// [`MAX_PASS_FDS`] of them. The helper places them at these numbers; 0 to 2 are stdio's.
pub fn check_pass_fds(fds: &[u32]) -> Result<(), ValidationError> {
    if fds.len() > MAX_PASS_FDS {
        return Err(ValidationError::TooMany {
            field: "--pass-fd",
            count: fds.len(),
            max: MAX_PASS_FDS,
        });
    }
    for (i, &fd) in fds.iter().enumerate() {
        if !(3..PASS_FD_LIMIT).contains(&fd) {
            return Err(ValidationError::PassFdOutOfRange(fd));
        }
        if fds[..i].contains(&fd) {
            return Err(ValidationError::PassFdTwice(fd));
        }
    }
    Ok(())
}

fn check_map(kind: &'static str, map: &[IdRange], id: u32) -> Result<(), ValidationError> {
    let bad = |reason: String| ValidationError::BadMap { kind, reason };
    if map.is_empty() {
        return Ok(());
    }
    if map.len() > MAX_MAP_LINES {
        return Err(bad(format!(
            "{} lines (at most {MAX_MAP_LINES})",
            map.len()
        )));
    }
    for (i, r) in map.iter().enumerate() {
        let line = format!("{}:{}:{}", r.inside, r.outside, r.count);
        // The kernel refuses ranges that wrap, and (uid_t)-1 can never be mapped.
        if r.count == 0
            || r.inside.checked_add(r.count).is_none()
            || r.outside.checked_add(r.count).is_none()
        {
            return Err(bad(format!("{line}: empty or past the largest id")));
        }
        for o in &map[..i] {
            let overlap = |a: u32, b: u32| {
                (a as u64) < b as u64 + o.count as u64 && (b as u64) < a as u64 + r.count as u64
            };
            if overlap(r.inside, o.inside) || overlap(r.outside, o.outside) {
                return Err(bad(format!(
                    "{line} overlaps {}:{}:{}",
                    o.inside, o.outside, o.count
                )));
            }
        }
    }
    if !map
        .iter()
        .any(|r| id >= r.inside && (id as u64) < r.inside as u64 + r.count as u64)
    {
        return Err(ValidationError::Unmapped { kind, id });
    }
    Ok(())
}

fn no_nul(field: &'static str, s: &str) -> Result<(), ValidationError> {
    if s.as_bytes().contains(&0) {
        return Err(ValidationError::Nul { field });
    }
    Ok(())
}

/// Check a request for everything that does not depend on who sent it or on the host.
pub fn check(req: &SpawnRequest) -> Result<(), ValidationError> {
    if req.argv.is_empty() || req.program.is_empty() {
        return Err(ValidationError::EmptyArgv);
    }
    for (field, count) in [
        ("argv", req.argv.len()),
        ("env", req.env.len()),
        ("mounts", req.mounts.len()),
    ] {
        if count > MAX_LIST {
            return Err(ValidationError::TooMany {
                field,
                count,
                max: MAX_LIST,
            });
        }
    }
    no_nul("program", &req.program)?;
    for a in &req.argv {
        no_nul("argv", a)?;
    }
    for (k, v) in &req.env {
        if k.is_empty() || k.contains('=') {
            return Err(ValidationError::BadEnvName(k.clone()));
        }
        no_nul("env", k)?;
        no_nul("env", v)?;
    }
    for (field, dir) in [("cwd", &req.cwd), ("caller_cwd", &req.caller_cwd)] {
        if let Some(dir) = dir {
            no_nul(field, dir)?;
            if !dir.starts_with('/') {
                return Err(ValidationError::RelativeCwd(dir.clone()));
            }
        }
    }
    if req.hostname.is_empty() || req.hostname.len() > MAX_HOSTNAME {
        return Err(ValidationError::BadHostname(req.hostname.clone()));
    }
    no_nul("hostname", &req.hostname)?;
    if !req.namespaces.uts && req.hostname != crate::request::DEFAULT_HOSTNAME {
        return Err(ValidationError::HostnameNeedsUts);
    }
    check_mounts(req)?;
    check_pasta(req)?;
    // (uid_t)-1 means "unchanged" to the set*id calls, so it can never be a real id.
    for (field, value) in [("uid", req.ids.uid), ("gid", req.ids.gid)] {
        if value == u32::MAX {
            return Err(ValidationError::BadId { field, value });
        }
    }
    if req.extra_fds as usize > crate::message::MAX_EXTRA_FDS {
        return Err(ValidationError::TooMany {
            field: "passed fds",
            count: req.extra_fds as usize,
            max: crate::message::MAX_EXTRA_FDS,
        });
    }
    check_pass_fds(&req.pass_fds)?;
    if req.seccomp_programs.len() > MAX_SECCOMP_PROGRAMS {
        return Err(ValidationError::TooManySeccompPrograms(
            req.seccomp_programs.len(),
        ));
    }
    // Only the framing: what the instructions do is the kernel's to check when it loads them.
    for (i, p) in req.seccomp_programs.iter().enumerate() {
        if !crate::seccomp::is_bpf_framing(p) {
            return Err(ValidationError::BadSeccompProgram {
                n: i + 1,
                len: p.len(),
            });
        }
    }
    if let SeccompMode::Profile(p) = &req.seccomp {
        if !crate::seccomp::is_bpf_framing(&p.bpf) {
            return Err(ValidationError::BadSeccompProfile(p.bpf.len()));
        }
        if p.flags & !ALLOWED_FLAGS != 0 {
            return Err(ValidationError::BadSeccompFlags(p.flags));
        }
    }
    req.caps.check()?;
    check_map("uid", &req.uid_map, req.ids.uid)?;
    check_map("gid", &req.gid_map, req.ids.gid)?;
    check_limits(&req.limits)
}

/// Check the limits of a request: each within its range, each rlimit given once and sane.
pub fn check_limits(l: &Limits) -> Result<(), ValidationError> {
    let mut seen = Vec::new();
    for r in &l.rlimits {
        if seen.contains(&r.resource) {
            return Err(ValidationError::DuplicateRlimit(r.resource.name()));
        }
        seen.push(r.resource);
        if r.soft > r.hard {
            return Err(ValidationError::RlimitSoftAboveHard(r.resource.name()));
        }
    }
    let out = |flag, value: String, range| ValidationError::LimitOutOfRange { flag, value, range };
    for (flag, v) in [
        ("--time-limit", l.cpu_time_us),
        ("--wall-time-limit", l.wall_time_us),
    ] {
        if let Some(us) = v
            && (us == 0 || us > MAX_TIME_US)
        {
            return Err(out(flag, show_seconds(us), "above 0 s, at most 1000000 s"));
        }
    }
    if l.kill_grace_us > MAX_KILL_GRACE_US {
        return Err(out(
            "--kill-grace",
            show_seconds(l.kill_grace_us),
            "at most 3600 s",
        ));
    }
    if let Some(b) = l.memory_bytes
        && !(MIN_MEMORY..=MAX_MEMORY).contains(&b)
    {
        return Err(out(
            "--memory-limit",
            format!("{b} bytes"),
            "1M to 4611686018427387904 bytes",
        ));
    }
    if let Some(n) = l.pids
        && !(1..=MAX_PIDS).contains(&n)
    {
        return Err(out("--pids-limit", n.to_string(), "1 to 4194304"));
    }
    if let Some(m) = l.cpu_millis
        && !(MIN_CPU_MILLIS..=MAX_CPU_MILLIS).contains(&m)
    {
        return Err(out(
            "--cpus",
            format!("{}.{:03}", m / 1000, m % 1000),
            "0.01 to 1000",
        ));
    }
    Ok(())
}

/// Most port forwards one sandbox may ask for.
pub const MAX_FORWARDS: usize = 64;

fn check_pasta(req: &SpawnRequest) -> Result<(), ValidationError> {
    let Some(pasta) = &req.pasta else {
        return Ok(());
    };
    if !req.namespaces.net {
        return Err(ValidationError::PastaNeedsNetns);
    }
    if req.ids.uid != 0 {
        return Err(ValidationError::PastaNeedsRoot(req.ids.uid));
    }
    if pasta.forward_tcp.len() > MAX_FORWARDS {
        return Err(ValidationError::TooMany {
            field: "forward_tcp",
            count: pasta.forward_tcp.len(),
            max: MAX_FORWARDS,
        });
    }
    for (i, f) in pasta.forward_tcp.iter().enumerate() {
        if f.host == 0 || f.sandbox == 0 {
            return Err(ValidationError::PortZero);
        }
        if pasta.forward_tcp[..i].iter().any(|g| g.host == f.host) {
            return Err(ValidationError::PortTwice(f.host));
        }
    }
    Ok(())
}

/// A path inside the sandbox or on the host must be absolute and free of `..`: the helper
/// resolves inside the new root anyway, but a request that tries to climb out is refused
/// outright rather than quietly clamped.
fn check_path(op: &MountOp, path: &str) -> Result<(), ValidationError> {
    let op = || op.describe();
    if path.as_bytes().contains(&0) {
        return Err(ValidationError::MountNul { op: op() });
    }
    if !path.starts_with('/') {
        return Err(ValidationError::RelativePath {
            op: op(),
            path: path.into(),
        });
    }
    if path.split('/').any(|c| c == "..") {
        return Err(ValidationError::DotDot {
            op: op(),
            path: path.into(),
        });
    }
    Ok(())
}

fn check_mounts(req: &SpawnRequest) -> Result<(), ValidationError> {
    let mut used = Vec::new();
    for op in &req.mounts {
        check_path(op, op.target())?;
        // Host paths are opened by the child as the caller, so `..` there is the caller's
        // own business; they only have to be absolute.
        for src in op.sources() {
            if src.as_bytes().contains(&0) {
                return Err(ValidationError::MountNul { op: op.describe() });
            }
            if !src.starts_with('/') {
                return Err(ValidationError::RelativePath {
                    op: op.describe(),
                    path: src.into(),
                });
            }
        }
        let perms = match op {
            MountOp::Tmpfs { perms, .. }
            | MountOp::Dir { perms, .. }
            | MountOp::File { perms, .. }
            | MountOp::BindData { perms, .. } => *perms,
            MountOp::Chmod { mode, .. } => Some(*mode),
            _ => None,
        };
        if let Some(p) = perms.filter(|p| *p > 0o7777) {
            return Err(ValidationError::BadPerms {
                op: op.describe(),
                perms: p,
            });
        }
        match op {
            MountOp::Tmpfs { size: Some(0), .. } => {
                return Err(ValidationError::BadSize { op: op.describe() });
            }
            MountOp::Symlink { target, .. } if target.as_bytes().contains(&0) => {
                return Err(ValidationError::MountNul { op: op.describe() });
            }
            MountOp::Overlay { srcs, kind, .. } => {
                // overlayfs needs two lower layers when there is no upper layer.
                let need = if *kind == OverlayKind::ReadOnly { 2 } else { 1 };
                if srcs.len() < need {
                    return Err(ValidationError::OverlaySources {
                        op: op.describe(),
                        need,
                    });
                }
            }
            _ => {}
        }
        if let Some(fd) = op.passed_fd() {
            if fd >= req.extra_fds {
                return Err(ValidationError::BadFdRef {
                    op: op.describe(),
                    fd,
                    count: req.extra_fds,
                });
            }
            if used.contains(&fd) {
                return Err(ValidationError::FdReused(fd));
            }
            used.push(fd);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> SpawnRequest {
        SpawnRequest::new(vec!["true".into()])
    }

    #[test]
    fn default_request_is_valid() {
        assert_eq!(check(&ok()), Ok(()));
    }

    #[test]
    fn passed_fds_are_3_to_1023_each_once_at_most_64() {
        let with = |fds: Vec<u32>| {
            let mut r = ok();
            r.pass_fds = fds;
            check(&r)
        };
        assert_eq!(with(vec![3]), Ok(()));
        assert_eq!(with(vec![1023, 3, 9]), Ok(()));
        for bad in [0, 1, 2, 1024, u32::MAX] {
            assert_eq!(
                with(vec![5, bad]),
                Err(ValidationError::PassFdOutOfRange(bad))
            );
        }
        assert_eq!(with(vec![5, 7, 5]), Err(ValidationError::PassFdTwice(5)));
        assert_eq!(with(vec![7, 5, 9]), Ok(()));
        assert_eq!(with((3..67).collect()), Ok(()));
        assert_eq!(
            with((3..68).collect()),
            Err(ValidationError::TooMany {
                field: "--pass-fd",
                count: 65,
                max: 64
            })
        );
        // Each refusal is one line that names the fd.
        assert_eq!(
            ValidationError::PassFdOutOfRange(2).to_string(),
            "--pass-fd 2: only fds 3 to 1023 can be passed (0, 1 and 2 are the payload's stdio)"
        );
        assert_eq!(
            ValidationError::PassFdTwice(5).to_string(),
            "--pass-fd 5 is given more than once"
        );
    }

    #[test]
    fn refusals() {
        let mut r = ok();
        r.argv.clear();
        assert_eq!(check(&r), Err(ValidationError::EmptyArgv));

        let mut r = ok();
        r.argv.push("a\0b".into());
        assert!(matches!(
            check(&r),
            Err(ValidationError::Nul { field: "argv" })
        ));

        let mut r = ok();
        r.env.push(("A=B".into(), "x".into()));
        assert!(matches!(check(&r), Err(ValidationError::BadEnvName(_))));

        let mut r = ok();
        r.env.push((String::new(), "x".into()));
        assert!(matches!(check(&r), Err(ValidationError::BadEnvName(_))));

        let mut r = ok();
        r.cwd = Some("relative".into());
        assert!(matches!(check(&r), Err(ValidationError::RelativeCwd(_))));

        let mut r = ok();
        r.hostname = "h".repeat(65);
        assert!(matches!(check(&r), Err(ValidationError::BadHostname(_))));

        let mut r = ok();
        r.hostname.clear();
        assert!(matches!(check(&r), Err(ValidationError::BadHostname(_))));

        let mut r = ok();
        r.namespaces.uts = false;
        assert_eq!(check(&r), Ok(()));
        r.hostname = "other".into();
        assert_eq!(check(&r), Err(ValidationError::HostnameNeedsUts));

        let mut r = ok();
        r.ids.uid = u32::MAX;
        assert!(matches!(check(&r), Err(ValidationError::BadId { .. })));

        let mut r = ok();
        r.mounts.push(MountOp::Dir {
            dst: "/../../x".into(),
            perms: None,
        });
        assert!(matches!(check(&r), Err(ValidationError::DotDot { .. })));

        let mut r = ok();
        r.mounts.push(MountOp::Bind {
            src: "relative".into(),
            dst: "/x".into(),
            kind: crate::mounts::BindKind::ReadOnly,
            optional: false,
        });
        assert!(matches!(
            check(&r),
            Err(ValidationError::RelativePath { .. })
        ));

        let mut r = ok();
        r.mounts.push(MountOp::Tmpfs {
            dst: "/t".into(),
            size: Some(0),
            perms: None,
        });
        assert!(matches!(check(&r), Err(ValidationError::BadSize { .. })));

        let mut r = ok();
        r.mounts.push(MountOp::Dir {
            dst: "/d".into(),
            perms: Some(0o17777),
        });
        assert!(matches!(check(&r), Err(ValidationError::BadPerms { .. })));

        let mut r = ok();
        r.mounts.push(MountOp::Overlay {
            srcs: vec!["/a".into()],
            dst: "/o".into(),
            kind: OverlayKind::ReadOnly,
        });
        assert!(matches!(
            check(&r),
            Err(ValidationError::OverlaySources { need: 2, .. })
        ));

        let mut r = ok();
        r.mounts.push(MountOp::File {
            fd: 0,
            dst: "/f".into(),
            perms: None,
        });
        assert!(matches!(check(&r), Err(ValidationError::BadFdRef { .. })));
        r.extra_fds = 1;
        assert_eq!(check(&r), Ok(()));
        r.mounts.push(MountOp::BindData {
            fd: 0,
            dst: "/g".into(),
            read_only: true,
            perms: None,
        });
        assert_eq!(check(&r), Err(ValidationError::FdReused(0)));

        let mut r = ok();
        r.pasta = Some(crate::request::Pasta::default());
        assert_eq!(check(&r), Ok(()));
        r.namespaces.net = false;
        assert_eq!(check(&r), Err(ValidationError::PastaNeedsNetns));
        r.namespaces.net = true;
        r.ids.uid = 1000;
        assert_eq!(check(&r), Err(ValidationError::PastaNeedsRoot(1000)));
        r.ids.uid = 0;
        let fwd = |host, sandbox| crate::request::PortForward { host, sandbox };
        r.pasta = Some(crate::request::Pasta {
            forward_tcp: vec![fwd(8080, 80), fwd(8081, 80)],
        });
        assert_eq!(check(&r), Ok(()));
        r.pasta = Some(crate::request::Pasta {
            forward_tcp: vec![fwd(8080, 80), fwd(8080, 81)],
        });
        assert_eq!(check(&r), Err(ValidationError::PortTwice(8080)));
        r.pasta = Some(crate::request::Pasta {
            forward_tcp: vec![fwd(0, 80)],
        });
        assert_eq!(check(&r), Err(ValidationError::PortZero));

        let mut r = ok();
        r.argv = vec![String::new(); MAX_LIST + 1];
        assert!(matches!(check(&r), Err(ValidationError::TooMany { .. })));

        let mut r = ok();
        r.seccomp_programs = vec![vec![0u8; 8]; MAX_SECCOMP_PROGRAMS + 1];
        assert!(matches!(
            check(&r),
            Err(ValidationError::TooManySeccompPrograms(6))
        ));

        let mut r = ok();
        r.caps = crate::caps::CapSet(1 << 63);
        assert!(matches!(check(&r), Err(ValidationError::Caps(_))));
    }

    #[test]
    fn a_compiled_profile_is_checked_for_framing_and_flags_only() {
        use crate::seccomp::{BpfProgram, FLAG_LOG, FLAG_SPEC_ALLOW};
        let mut r = ok();
        let profile = |len: usize, flags: u32| {
            SeccompMode::Profile(BpfProgram {
                bpf: vec![0xffu8; len],
                flags,
            })
        };
        for (len, flags) in [
            (8, 0),
            (MAX_BPF_INSNS * 8, FLAG_LOG),
            (16, FLAG_LOG | FLAG_SPEC_ALLOW),
        ] {
            r.seccomp = profile(len, flags);
            assert_eq!(check(&r), Ok(()), "{len} bytes, flags {flags:#x}");
        }
        for bad in [0, 7, 9, MAX_BPF_INSNS * 8 + 8] {
            r.seccomp = profile(bad, 0);
            assert_eq!(check(&r), Err(ValidationError::BadSeccompProfile(bad)));
        }
        // TSYNC (1), NEW_LISTENER (8) and the rest: never.
        for flags in [1, 8, 16, 1 << 31] {
            r.seccomp = profile(8, flags);
            assert_eq!(check(&r), Err(ValidationError::BadSeccompFlags(flags)));
        }
    }

    #[test]
    fn raw_bpf_programs_are_checked_for_framing_only() {
        let mut r = ok();
        for good in [8, 16, MAX_BPF_INSNS * 8] {
            r.seccomp_programs = vec![vec![0xffu8; good]];
            assert_eq!(check(&r), Ok(()), "{good} bytes");
        }
        for bad in [0, 7, 9, MAX_BPF_INSNS * 8 + 8] {
            r.seccomp_programs = vec![vec![0u8; 8], vec![0u8; bad]];
            assert_eq!(
                check(&r),
                Err(ValidationError::BadSeccompProgram { n: 2, len: bad }),
                "{bad} bytes"
            );
        }
    }

    /// The largest request with BPF programs in it still fits in one frame: the compiled
    /// profile and every raw program at the kernel's limit (192 KiB of BPF), beside a large
    /// environment (300 variables, 33 KiB) and a full filesystem view.
    #[test]
    fn the_largest_raw_programs_fit_in_a_frame() {
        let mut r = ok();
        r.seccomp_programs = vec![vec![0xffu8; MAX_BPF_INSNS * 8]; MAX_SECCOMP_PROGRAMS];
        r.seccomp = SeccompMode::Profile(crate::seccomp::BpfProgram {
            bpf: vec![0xffu8; MAX_BPF_INSNS * 8],
            flags: 0,
        });
        r.env = (0..300)
            .map(|i| (format!("VARIABLE_{i}"), "v".repeat(100)))
            .collect();
        r.mounts = (0..200)
            .map(|i| MountOp::Bind {
                src: format!("/home/someone/projects/source-{i}"),
                dst: format!("/home/someone/projects/source-{i}"),
                kind: crate::mounts::BindKind::ReadOnly,
                optional: false,
            })
            .collect();
        assert_eq!(check(&r), Ok(()));
        let frame = crate::wire::encode(&crate::message::ClientMessage::Spawn(Box::new(r)))
            .expect("fits in a frame");
        assert!(frame.len() <= crate::wire::MAX_BODY + crate::wire::HEADER_LEN);
    }

    #[test]
    fn id_maps() {
        let line = |inside, outside, count| IdRange {
            inside,
            outside,
            count,
        };
        let mut r = ok();
        r.uid_map = vec![line(0, 1000, 1), line(1, 100000, 65536)];
        r.gid_map = vec![line(0, 1000, 1)];
        assert_eq!(check(&r), Ok(()));
        r.ids.uid = 65536;
        assert_eq!(check(&r), Ok(()));
        r.ids.uid = 65537;
        assert!(matches!(
            check(&r),
            Err(ValidationError::Unmapped { kind: "uid", .. })
        ));

        for bad in [
            vec![line(0, 1000, 0)],
            vec![line(0, u32::MAX, 1)],
            vec![line(u32::MAX - 1, 5, 2)],
            vec![line(0, 1000, 10), line(5, 2000, 1)],
            vec![line(0, 1000, 10), line(20, 1005, 1)],
            vec![line(0, 1000, 1); MAX_MAP_LINES + 1],
        ] {
            let mut r = ok();
            r.gid_map = bad.clone();
            let e = check(&r);
            assert!(
                matches!(e, Err(ValidationError::BadMap { kind: "gid", .. })),
                "{bad:?}: {e:?}"
            );
        }
        let mut r = ok();
        r.uid_map = vec![line(1, 1000, 1)];
        assert!(matches!(check(&r), Err(ValidationError::Unmapped { .. })));
    }

    #[test]
    fn limits() {
        use crate::limits::{RlimitResource, RlimitSetting};
        let with = |f: &dyn Fn(&mut Limits)| {
            let mut r = ok();
            f(&mut r.limits);
            check(&r)
        };
        assert_eq!(
            with(&|l| {
                l.rlimits.push(RlimitSetting {
                    resource: RlimitResource::Nofile,
                    soft: 10,
                    hard: 20,
                });
                l.cpu_time_us = Some(1);
                l.wall_time_us = Some(MAX_TIME_US);
                l.kill_grace_us = MAX_KILL_GRACE_US;
                l.memory_bytes = Some(MIN_MEMORY);
                l.pids = Some(1);
                l.cpu_millis = Some(MIN_CPU_MILLIS);
            }),
            Ok(())
        );
        let nofile = RlimitSetting {
            resource: RlimitResource::Nofile,
            soft: 1,
            hard: 1,
        };
        assert_eq!(
            with(&|l| l.rlimits = vec![nofile, nofile]),
            Err(ValidationError::DuplicateRlimit("nofile"))
        );
        assert_eq!(
            with(&|l| l.rlimits = vec![RlimitSetting { soft: 2, ..nofile }]),
            Err(ValidationError::RlimitSoftAboveHard("nofile"))
        );
        let out_of_range: [&dyn Fn(&mut Limits); 10] = [
            &|l| l.cpu_time_us = Some(0),
            &|l| l.cpu_time_us = Some(MAX_TIME_US + 1),
            &|l| l.wall_time_us = Some(0),
            &|l| l.kill_grace_us = MAX_KILL_GRACE_US + 1,
            &|l| l.memory_bytes = Some(MIN_MEMORY - 1),
            &|l| l.memory_bytes = Some(MAX_MEMORY + 1),
            &|l| l.pids = Some(0),
            &|l| l.pids = Some(MAX_PIDS + 1),
            &|l| l.cpu_millis = Some(MIN_CPU_MILLIS - 1),
            &|l| l.cpu_millis = Some(MAX_CPU_MILLIS + 1),
        ];
        for (i, f) in out_of_range.iter().enumerate() {
            assert!(
                matches!(with(f), Err(ValidationError::LimitOutOfRange { .. })),
                "case {i}"
            );
        }
    }
}
