//! The payload's seccomp filters: decided and compiled in the helper before `clone`, installed
//! by the payload's process as the very last step before `execve`.

pub mod bpf;
pub mod default;

use std::borrow::Cow;

use nix::errno::Errno;
use nsjail_core::SpawnRequest;
use nsjail_core::seccomp::{ArgCmp, CmpOp, SeccompAction, SeccompMode, SeccompProfile};

use self::bpf::{Action, Cond, Insn, Op, Rule, Width};
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

fn action(a: SeccompAction) -> Action {
    match a {
        SeccompAction::Allow => Action::Allow,
        SeccompAction::Errno(e) => Action::Errno(e),
        SeccompAction::KillThread => Action::KillThread,
        SeccompAction::KillProcess => Action::KillProcess,
        SeccompAction::Trap => Action::Trap,
        SeccompAction::Log => Action::Log,
    }
}

fn cond(a: &ArgCmp) -> Cond {
    let (op, value) = match a.op {
        CmpOp::Eq => (Op::Eq, a.value),
        CmpOp::Ne => (Op::Ne, a.value),
        CmpOp::Lt => (Op::Lt, a.value),
        CmpOp::Le => (Op::Le, a.value),
        CmpOp::Gt => (Op::Gt, a.value),
        CmpOp::Ge => (Op::Ge, a.value),
        // libseccomp: `value` is the mask, `valueTwo` the datum.
        CmpOp::MaskedEq => (Op::MaskedEq { mask: a.value }, a.value_two),
    };
    Cond {
        arg: a.index,
        width: Width::Full64,
        op,
        value,
    }
}

/// Compile a custom profile (already checked by `validate`).
pub fn compile_profile(p: &SeccompProfile) -> Result<Vec<Insn>> {
    let conds: Vec<Vec<Cond>> = p
        .rules
        .iter()
        .map(|r| r.args.iter().map(cond).collect())
        .collect();
    let rules: Vec<Rule> = p
        .rules
        .iter()
        .zip(&conds)
        .map(|(r, c)| Rule {
            nr: r.syscall,
            conds: c,
            action: action(r.action),
        })
        .collect();
    // The compiler's buffer is large; keep it off the stack of whoever calls us.
    let prog = Box::new(bpf::compile(&[&rules], action(p.default_action)));
    match *prog {
        Ok(p) => Ok(p.as_slice().to_vec()),
        Err(e) => Err(HelperError::Refused(format!(
            "seccomp profile: {}",
            e.describe()
        ))),
    }
}

/// The request's raw BPF programs (`--add-seccomp-fd`) as instructions. The CLI read them as
/// the caller; `validate` has checked their framing, checked again here.
pub fn raw_programs(req: &SpawnRequest) -> Result<Vec<Vec<Insn>>> {
    req.seccomp_programs
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            bpf::from_bytes(bytes).ok_or_else(|| {
                HelperError::Refused(format!(
                    "--add-seccomp-fd program {}: {} bytes is not a BPF program (a non-empty \
                     whole number of 8-byte instructions, at most {})",
                    i + 1,
                    bytes.len(),
                    bpf::MAX_INSNS
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
            if !may_replace_default {
                filters.push(default());
                words.push("default filter".to_string());
            }
            filters.push(Filter {
                insns: Cow::Owned(compile_profile(p)?),
                flags: p.flags,
            });
            words.push(format!("custom profile ({} rules)", p.rules.len()));
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
    use super::bpf::interp::{Data, run};
    use super::*;
    use nsjail_core::seccomp::oci;

    #[test]
    fn raw_programs_are_the_requests_bytes_and_the_limit_is_the_kernels() {
        assert_eq!(bpf::MAX_INSNS, nsjail_core::seccomp::MAX_BPF_INSNS);
        let mut req = SpawnRequest::new(vec!["true".into()]);
        let ret_allow = [0x06, 0, 0, 0, 0, 0, 0xff, 0x7f];
        req.seccomp_programs = vec![ret_allow.to_vec()];
        let p = raw_programs(&req).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(run(&p[0], &Data::native(0, [0; 6])), 0x7fff_0000);
        req.seccomp_programs = vec![vec![0; 7]];
        assert!(raw_programs(&req).is_err());
    }

    #[test]
    fn a_docker_style_profile_compiles_and_means_what_it_says() {
        let json = br#"{
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "syscalls": [
                {"names": ["read", "write", "exit_group", "_llseek"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
            ]}"#;
        let p = oci::parse(json, &oci::OciContext::default()).unwrap();
        let prog = compile_profile(&p).unwrap();
        let call =
            |nr: libc::c_long, a0: u64| run(&prog, &Data::native(nr as u32, [a0, 0, 0, 0, 0, 0]));
        let allow = 0x7fff_0000;
        let errno = |e: u32| 0x0005_0000 | e;
        assert_eq!(call(libc::SYS_read, 0), allow);
        assert_eq!(call(libc::SYS_exit_group, 0), allow);
        assert_eq!(call(libc::SYS_personality, 8), allow);
        assert_eq!(call(libc::SYS_personality, 9), errno(1));
        assert_eq!(call(libc::SYS_clone, libc::SIGCHLD as u64), allow);
        assert_eq!(call(libc::SYS_clone, libc::CLONE_NEWUSER as u64), errno(1));
        assert_eq!(call(libc::SYS_socket, 1), allow);
        assert_eq!(call(libc::SYS_socket, 40), errno(1));
        assert_eq!(call(libc::SYS_mkdir, 0), errno(13));
        assert_eq!(call(libc::SYS_openat, 0), errno(1));
    }
}
