//! The payload's seccomp filters: decided in the helper before `clone`, installed by the
//! payload's process as the very last step before `execve`.
//!
//! The helper compiles nothing. nsjail's default filter is a constant ([`default`], compiled
//! when the helper is built); a `--seccomp FILE` profile and the `--add-seccomp-fd` programs
//! arrive as BPF bytes, compiled or read by the CLI as the caller, and are checked here only
//! for their framing. What the instructions do is the kernel's to check when it loads them: a
//! process with `no_new_privs` may install any filter on itself.

pub mod default;

use std::borrow::Cow;

use nix::errno::Errno;
use nsjail_core::SpawnRequest;
use nsjail_core::seccomp::{self as wire, Insn, MAX_BPF_INSNS, SeccompMode};

use crate::error::{HelperError, Result};

/// One program to install, with its `SECCOMP_FILTER_FLAG_*` bits.
pub struct Filter {
    pub insns: Cow<'static, [Insn]>,
    pub flags: u32,
}

/// Every filter the payload gets, in installation order (the kernel applies all of them; the
/// strictest answer wins).
#[derive(Default)]
pub struct SeccompPlan {
    pub filters: Vec<Filter>,
    /// For `--verbose`.
    pub description: String,
}

/// The request's raw BPF programs (`--add-seccomp-fd`) as instructions. The CLI read them as
/// the caller; `validate` has checked their framing, checked again here.
pub fn raw_programs(req: &SpawnRequest) -> Result<Vec<Vec<Insn>>> {
    req.seccomp_programs
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            wire::insns(bytes).ok_or_else(|| {
                HelperError::Refused(format!(
                    "--add-seccomp-fd program {}: {} bytes is not a BPF program (a non-empty \
                     whole number of 8-byte instructions, at most {MAX_BPF_INSNS})",
                    i + 1,
                    bytes.len(),
                ))
            })
        })
        .collect()
}

/// Decide the payload's filters. `may_replace_default`: the policy lets this caller run without
/// the default filter, so a custom profile replaces it (as in Docker); otherwise the profile is
/// added on top of it. `userns_allowed`: the policy allows nested user namespaces; when it does
/// not, they stay denied even without the default filter.
pub fn plan(
    req: &SpawnRequest,
    may_replace_default: bool,
    userns_allowed: bool,
    raw: Vec<Vec<Insn>>,
) -> Result<SeccompPlan> {
    let default = || Filter {
        insns: Cow::Borrowed(default::program(req.allow_userns, req.allow_ptrace)),
        flags: 0,
    };
    let mut words = Vec::new();
    let mut filters = Vec::new();
    match &req.seccomp {
        SeccompMode::Default => {
            filters.push(default());
            words.push("default filter".to_string());
        }
        SeccompMode::Disabled => words.push("no filter (--seccomp none)".to_string()),
        SeccompMode::Profile(p) => {
            // Framing and flags were checked by `validate`; checked again here.
            let insns = wire::insns(&p.bpf)
                .filter(|_| p.flags & !wire::ALLOWED_FLAGS == 0)
                .ok_or_else(|| {
                    HelperError::Refused(format!(
                        "--seccomp profile: {} bytes with flags {:#x} is not a BPF program \
                         nsjail installs",
                        p.bpf.len(),
                        p.flags
                    ))
                })?;
            if !may_replace_default {
                filters.push(default());
                words.push("default filter".to_string());
            }
            words.push(format!("custom profile ({} instructions)", insns.len()));
            filters.push(Filter {
                insns: Cow::Owned(insns),
                flags: p.flags,
            });
        }
    }
    let has_default = matches!(req.seccomp, SeccompMode::Default)
        || matches!(req.seccomp, SeccompMode::Profile(_) if !may_replace_default);
    if !has_default && !userns_allowed {
        filters.push(Filter {
            insns: Cow::Borrowed(default::userns_only()),
            flags: 0,
        });
        words.push("nested user namespaces denied by policy".to_string());
    }
    let n = raw.len();
    for insns in raw {
        filters.push(Filter {
            insns: Cow::Owned(insns),
            flags: 0,
        });
    }
    if n > 0 {
        words.push(format!("{n} raw BPF program(s)"));
    }
    let mut description = words.join(" + ");
    if req.seccomp != SeccompMode::Disabled {
        for (what, on) in [
            ("nested user namespaces allowed", req.allow_userns),
            ("ptrace allowed", req.allow_ptrace),
        ] {
            if on {
                description.push_str(&format!(", {what}"));
            }
        }
    }
    let total: usize = filters.iter().map(|f| f.insns.len()).sum();
    if !filters.is_empty() {
        description.push_str(&format!(" ({total} BPF instructions)"));
    }
    Ok(SeccompPlan {
        filters,
        description,
    })
}

/// Install every filter of the plan in this process (needs `no_new_privs`).
pub fn install(plan: &SeccompPlan) -> std::result::Result<(), Errno> {
    for f in &plan.filters {
        crate::sys::seccomp_install(&f.insns, f.flags)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsjail_core::seccomp::BpfProgram;
    use nsjail_seccomp::bpf::interp::{Data, run};

    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;

    /// `ret k`, as bytes.
    fn ret(k: u32) -> Vec<u8> {
        let mut b = vec![0x06, 0, 0, 0];
        b.extend(k.to_ne_bytes());
        b
    }

    fn from_core(p: &[Insn]) -> Vec<nsjail_seccomp::Insn> {
        p.iter()
            .map(|i| nsjail_seccomp::Insn {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect()
    }

    fn answer(f: &Filter, nr: libc::c_long, args: [u64; 6]) -> u32 {
        run(&from_core(&f.insns), &Data::native(nr as u32, args))
    }

    #[test]
    fn raw_programs_are_the_requests_bytes() {
        let mut req = SpawnRequest::new(vec!["true".into()]);
        req.seccomp_programs = vec![ret(ALLOW)];
        let p = raw_programs(&req).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(run(&from_core(&p[0]), &Data::native(0, [0; 6])), ALLOW);
        req.seccomp_programs = vec![vec![0; 7]];
        assert!(raw_programs(&req).is_err());
    }

    /// The policy decides: the caller's profile replaces the default filter only where the
    /// caller may run without it; elsewhere it is stacked on the default filter. Nested user
    /// namespaces the policy forbids stay denied without the default filter.
    #[test]
    fn the_profile_replaces_the_default_filter_only_where_the_policy_allows() {
        let mut req = SpawnRequest::new(vec!["true".into()]);
        req.seccomp = SeccompMode::Profile(BpfProgram {
            bpf: ret(EPERM),
            flags: wire::FLAG_LOG,
        });
        let newuser = [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0];

        let replaced = plan(&req, true, true, Vec::new()).unwrap();
        assert_eq!(replaced.filters.len(), 1);
        assert_eq!(replaced.filters[0].flags, wire::FLAG_LOG);
        assert_eq!(answer(&replaced.filters[0], libc::SYS_read, [0; 6]), EPERM);
        assert!(
            replaced
                .description
                .starts_with("custom profile (1 instructions)"),
            "{}",
            replaced.description
        );

        let stacked = plan(&req, false, true, Vec::new()).unwrap();
        assert_eq!(stacked.filters.len(), 2);
        assert_eq!(&*stacked.filters[0].insns, default::program(false, false));
        assert_eq!(stacked.filters[0].flags, 0);
        assert_eq!(answer(&stacked.filters[1], libc::SYS_read, [0; 6]), EPERM);
        assert!(
            stacked
                .description
                .starts_with("default filter + custom profile"),
            "{}",
            stacked.description
        );

        // Replaced, but nested user namespaces not allowed: their filter stays.
        let p = plan(&req, true, false, Vec::new()).unwrap();
        assert_eq!(p.filters.len(), 2);
        assert_eq!(&*p.filters[1].insns, default::userns_only());
        assert_eq!(answer(&p.filters[1], libc::SYS_unshare, newuser), EPERM);

        // Raw programs come last, on top of whatever else.
        let raw = raw_programs(&{
            let mut r = req.clone();
            r.seccomp_programs = vec![ret(ALLOW), ret(ALLOW)];
            r
        })
        .unwrap();
        let p = plan(&req, false, false, raw).unwrap();
        assert_eq!(p.filters.len(), 4);
        assert!(
            p.description.contains("2 raw BPF program(s)"),
            "{}",
            p.description
        );

        // A profile whose framing or flags the request check would refuse is refused here too.
        for bad in [
            BpfProgram {
                bpf: vec![0; 7],
                flags: 0,
            },
            BpfProgram {
                bpf: ret(ALLOW),
                flags: 8,
            },
        ] {
            req.seccomp = SeccompMode::Profile(bad);
            assert!(plan(&req, true, true, Vec::new()).is_err());
        }
    }

    #[test]
    fn default_and_none() {
        let mut req = SpawnRequest::new(vec!["true".into()]);
        let p = plan(&req, true, true, Vec::new()).unwrap();
        assert_eq!(p.filters.len(), 1);
        assert_eq!(&*p.filters[0].insns, default::program(false, false));
        req.allow_userns = true;
        req.allow_ptrace = true;
        let p = plan(&req, true, true, Vec::new()).unwrap();
        assert_eq!(&*p.filters[0].insns, default::program(true, true));
        req.seccomp = SeccompMode::Disabled;
        assert!(
            plan(&req, true, true, Vec::new())
                .unwrap()
                .filters
                .is_empty()
        );
        let p = plan(&req, true, false, Vec::new()).unwrap();
        assert_eq!(p.filters.len(), 1);
        assert_eq!(&*p.filters[0].insns, default::userns_only());
    }
}
