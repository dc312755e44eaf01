//! Request validation. The helper runs this on every request before acting on it: nothing the
//! CLI sent is trusted, whoever built it.

use thiserror::Error;

use crate::caps::CapError;
use crate::message::MAX_SECCOMP_FDS;
use crate::request::{IdRange, SpawnRequest};
use crate::seccomp::{ProfileError, SeccompMode};

/// Largest number of arguments or environment entries a request may carry.
pub const MAX_LIST: usize = 16 * 1024;
/// Linux limits a hostname to 64 bytes (`__NEW_UTS_LEN`).
pub const MAX_HOSTNAME: usize = 64;
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
    #[error("{field} {value} is not a valid id inside the sandbox")]
    BadId { field: &'static str, value: u32 },
    #[error("at most {MAX_SECCOMP_FDS} --add-seccomp-fd programs, got {0}")]
    TooManySeccompFds(u8),
    #[error("{0}")]
    Profile(#[from] ProfileError),
    #[error("{0}")]
    Caps(#[from] CapError),
    #[error("--map-{kind}: {reason}")]
    BadMap { kind: &'static str, reason: String },
    #[error("--{kind} {id} is not mapped: the --map-{kind} ranges must cover it inside")]
    Unmapped { kind: &'static str, id: u32 },
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
    for (field, count) in [("argv", req.argv.len()), ("env", req.env.len())] {
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
    // (uid_t)-1 means "unchanged" to the set*id calls, so it can never be a real id.
    for (field, value) in [("uid", req.ids.uid), ("gid", req.ids.gid)] {
        if value == u32::MAX {
            return Err(ValidationError::BadId { field, value });
        }
    }
    if req.seccomp_fds as usize > MAX_SECCOMP_FDS {
        return Err(ValidationError::TooManySeccompFds(req.seccomp_fds));
    }
    if let SeccompMode::Profile(p) = &req.seccomp {
        p.check()?;
    }
    req.caps.check()?;
    check_map("uid", &req.uid_map, req.ids.uid)?;
    check_map("gid", &req.gid_map, req.ids.gid)?;
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
        r.argv = vec![String::new(); MAX_LIST + 1];
        assert!(matches!(check(&r), Err(ValidationError::TooMany { .. })));

        let mut r = ok();
        r.seccomp_fds = MAX_SECCOMP_FDS as u8 + 1;
        assert!(matches!(
            check(&r),
            Err(ValidationError::TooManySeccompFds(_))
        ));

        let mut r = ok();
        r.caps = crate::caps::CapSet(1 << 63);
        assert!(matches!(check(&r), Err(ValidationError::Caps(_))));
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
}
