//! What this caller's request is granted: the admin policy applied to it before anything is
//! started. The policy is read only by a privileged helper (setuid or daemon): a helper without
//! privilege grants nothing beyond what the kernel gives the caller anyway, so there is nothing
//! for a policy to restrict.

use nsjail_core::landlock::Decision;
use nsjail_core::policy::{self, Accounts, MAX_POLICY_BYTES, Policy, Who};
use nsjail_core::{IdRange, SpawnRequest};

use crate::error::{HelperError, Result, sys};
use crate::host::caller::Caller;
use crate::host::sandbox_slots::{self, Slot};
use crate::host::seccomp;
use crate::host::trusted;
use crate::sandbox::lockdown::Lockdown;

/// The policy's path, fixed when the helper is built (`NSJAIL_POLICY_PATH`), never taken from
/// the environment or the request.
pub const POLICY_PATH: &str = match option_env!("NSJAIL_POLICY_PATH") {
    Some(p) => p,
    None => policy::DEFAULT_POLICY_PATH,
};

/// The largest account or sub-ID file read.
const MAX_ACCOUNT_FILE: usize = 16 * 1024 * 1024;

/// Everything decided for one request.
pub struct Grants {
    pub uid_map: Vec<IdRange>,
    pub gid_map: Vec<IdRange>,
    pub setgroups_allow: bool,
    pub lockdown: Lockdown,
    /// The request's limits within the policy's ceilings (unlimited ones get the ceiling).
    pub limits: nsjail_core::Limits,
    /// The policy's CPU and wall-clock ceilings: SIGKILL there, whatever `--kill-grace` says.
    pub hard_stops: nsjail_core::policy::HardStops,
    /// Held for the sandbox's life when the policy limits concurrent sandboxes.
    pub _slot: Option<Slot>,
    /// `--verbose` lines.
    pub steps: Vec<String>,
}

/// Read the policy; `None` when there is no policy file. A file that exists but cannot be
/// trusted or parsed refuses every request.
fn load_policy() -> Result<Option<Policy>> {
    let Some(text) = trusted::read_file(POLICY_PATH, MAX_POLICY_BYTES)? else {
        return Ok(None);
    };
    Policy::parse(&text)
        .map(Some)
        .map_err(|e| HelperError::Refused(format!("{POLICY_PATH}: {e}")))
}

fn read_accounts() -> Result<Accounts> {
    let passwd = trusted::read_file("/etc/passwd", MAX_ACCOUNT_FILE)?.unwrap_or_default();
    let group = trusted::read_file("/etc/group", MAX_ACCOUNT_FILE)?.unwrap_or_default();
    Ok(Accounts::from_files(&passwd, &group))
}

fn default_line(inside: u32, outside: u32) -> Vec<IdRange> {
    vec![IdRange {
        inside,
        outside,
        count: 1,
    }]
}

/// The lines to write for one map, checked against what the caller may map. Returns the lines
/// and whether they go beyond the caller's own id.
#[allow(clippy::too_many_arguments)]
fn decide_map(
    kind: &'static str,
    requested: &[IdRange],
    inside: u32,
    own: u32,
    caller: &Caller,
    policy: Option<&Policy>,
    file: &str,
    grants: &[policy::Grant],
    db: &Accounts,
) -> Result<(Vec<IdRange>, bool)> {
    if requested.is_empty() {
        return Ok((default_line(inside, own), false));
    }
    let only_own = requested.len() == 1 && requested[0].outside == own && requested[0].count == 1;
    if !caller.privileged {
        if only_own {
            return Ok((requested.to_vec(), false));
        }
        return Err(HelperError::Refused(format!(
            "--map-{kind} beyond your own {kind} needs the setuid helper (this helper runs \
             without privilege, so the kernel lets it map only your own {kind})"
        )));
    }
    // Without a policy file: own ids only.
    let allowed = match policy {
        None => vec![(own, 1)],
        Some(_) => {
            let entries = if file.is_empty() {
                Vec::new()
            } else {
                policy::parse_subid(
                    &trusted::read_file(file, MAX_ACCOUNT_FILE)?.unwrap_or_default(),
                )
            };
            policy::granted_ranges(own, caller.uid.as_raw(), &entries, grants, db)
        }
    };
    let beyond = policy::check_map(kind, requested, &allowed)?;
    Ok((requested.to_vec(), beyond))
}

/// Apply the policy to `req` from `caller`.
pub fn decide(req: &SpawnRequest, caller: &Caller) -> Result<Grants> {
    let mut steps = Vec::new();
    let policy = if caller.privileged {
        let p = load_policy()?;
        steps.push(match &p {
            Some(_) => format!("policy: {POLICY_PATH}"),
            None if caller.uid.is_root() => {
                format!("policy: {POLICY_PATH} absent: everyone, own ids only")
            }
            None => format!(
                "policy: {POLICY_PATH} absent: everyone, own ids only, no --cap-add or \
                 --allow-userns"
            ),
        });
        p
    } else {
        steps.push("policy: not read (the helper has no privilege to grant)".to_string());
        None
    };
    let effective = policy.clone().unwrap_or_default();
    let needs_accounts = policy.is_some()
        && (effective.uses_names() || !req.uid_map.is_empty() || !req.gid_map.is_empty());
    let db = if needs_accounts {
        read_accounts()?
    } else {
        Accounts::default()
    };
    // Our supplementary groups are the caller's on both ways in: executing a setuid binary
    // keeps them, and the daemon's connection process took the peer's (SO_PEERGROUPS) before
    // reading the request (`peer::admit`).
    let groups = nix::unistd::getgroups()
        .map_err(sys("getgroups"))?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    let who = Who {
        uid: caller.uid.as_raw(),
        gid: caller.gid.as_raw(),
        groups,
    };
    effective.check_access(&who, &db)?;
    // Capabilities and nested user namespaces need the policy's grant when the helper has
    // privilege the caller lacks: on a host whose admin turned off
    // unprivileged user namespaces, a setuid helper would otherwise hand every user
    // CAP_SYS_ADMIN in a namespace it owns as root.
    let beyond_kernel = caller.privileged && !caller.uid.is_root();
    let allowed = effective.allow.resolve(beyond_kernel);
    Policy::check_features(&allowed, req, POLICY_PATH)?;
    // Landlock: the request's mode, the policy's requirement, the kernel's ABI.
    let landlock = match nsjail_core::landlock::decide(
        req.landlock,
        effective.require.landlock,
        crate::sys::landlock_abi(),
        req.caps,
        req.allow_userns,
    ) {
        Decision::Apply { abi } => {
            steps.push(format!(
                "landlock: on, ABI {abi}: the payload may read, write and execute only where its view lets it"
            ));
            Some(abi)
        }
        Decision::Skip(why) => {
            steps.push(format!("landlock: {why}"));
            None
        }
        Decision::Refuse(why) => return Err(HelperError::Refused(why)),
    };
    let limits = effective.limits_within(&req.limits)?;
    let hard_stops = effective.hard_stops();

    let ranges = &effective.id_ranges;
    let (uid_map, _) = decide_map(
        "uid",
        &req.uid_map,
        req.ids.uid,
        who.uid,
        caller,
        policy.as_ref(),
        &ranges.subuid,
        &ranges.uid,
        &db,
    )?;
    let (gid_map, gids_beyond) = decide_map(
        "gid",
        &req.gid_map,
        req.ids.gid,
        who.gid,
        caller,
        policy.as_ref(),
        &ranges.subgid,
        &ranges.gid,
        &db,
    )?;

    // The `--add-seccomp-fd` programs came as bytes in the request (read by the CLI, as the
    // caller): nothing the caller chose is read here.
    let programs = seccomp::raw_programs(req)?;
    let plan = seccomp::plan(req, allowed.seccomp_none, allowed.userns, programs)?;
    steps.push(format!("seccomp: {}", plan.description));
    steps.push(format!(
        "capabilities: {} (inside the sandbox only)",
        req.caps
    ));

    let slot = match (caller.privileged, effective.limits.max_sandboxes_per_user) {
        (true, Some(max)) => {
            let s = sandbox_slots::acquire(who.uid, max)?;
            steps.push(format!(
                "slot: {} of {max} for uid {}",
                s.index + 1,
                who.uid
            ));
            Some(s)
        }
        _ => None,
    };
    Ok(Grants {
        uid_map,
        gid_map,
        setgroups_allow: gids_beyond,
        lockdown: Lockdown {
            caps: req.caps,
            seccomp: plan,
            landlock,
        },
        limits,
        hard_stops,
        _slot: slot,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::caller::Via;
    use nix::unistd::{Gid, Uid};

    fn caller(privileged: bool) -> Caller {
        Caller {
            uid: Uid::from_raw(1000),
            gid: Gid::from_raw(1000),
            privileged,
            pid: None,
            via: Via::Setuid,
        }
    }

    fn map(lines: &[(u32, u32, u32)]) -> Vec<IdRange> {
        lines
            .iter()
            .map(|&(inside, outside, count)| IdRange {
                inside,
                outside,
                count,
            })
            .collect()
    }

    /// `decide_map` for uids, with `policy` and no sub-ID file (nothing is read).
    fn decide(
        requested: &[(u32, u32, u32)],
        privileged: bool,
        policy: Option<&Policy>,
    ) -> Result<(Vec<IdRange>, bool)> {
        let grants = policy.map(|p| p.id_ranges.uid.clone()).unwrap_or_default();
        decide_map(
            "uid",
            &map(requested),
            0,
            1000,
            &caller(privileged),
            policy,
            "",
            &grants,
            &Accounts::default(),
        )
    }

    #[test]
    fn no_map_asked_maps_the_callers_own_id_once() {
        for privileged in [false, true] {
            let (lines, beyond) = decide(&[], privileged, None).unwrap();
            assert_eq!((lines, beyond), (map(&[(0, 1000, 1)]), false));
        }
    }

    #[test]
    fn without_privilege_only_the_callers_own_id_may_be_mapped() {
        let (lines, beyond) = decide(&[(5, 1000, 1)], false, None).unwrap();
        assert_eq!((lines, beyond), (map(&[(5, 1000, 1)]), false));
        for beyond_own in [
            &[(0, 1001, 1)][..],
            &[(0, 1000, 2)][..],
            &[(0, 1000, 1), (1, 100_000, 1)][..],
        ] {
            let e = decide(beyond_own, false, None).unwrap_err();
            assert!(
                matches!(&e, HelperError::Refused(m) if m.contains("needs the setuid helper")),
                "{beyond_own:?}: {e}"
            );
        }
    }

    #[test]
    fn with_privilege_the_policy_decides_what_lies_beyond() {
        // No policy file: own id only, and saying so is no refusal.
        assert_eq!(
            decide(&[(0, 1000, 1)], true, None).unwrap(),
            (map(&[(0, 1000, 1)]), false)
        );
        assert!(decide(&[(0, 1000, 1), (1, 100_000, 10)], true, None).is_err());
        // A policy granting 100000..100010 to uid 1000.
        let p =
            Policy::parse("[[id_ranges.uid]]\nuser = 1000\nstart = 100000\ncount = 10\n").unwrap();
        let asked = [(0, 1000, 1), (1, 100_000, 10)];
        assert_eq!(decide(&asked, true, Some(&p)).unwrap(), (map(&asked), true));
        assert!(matches!(
            decide(&[(0, 1000, 1), (1, 100_000, 11)], true, Some(&p)),
            Err(HelperError::Policy(_))
        ));
    }
}
