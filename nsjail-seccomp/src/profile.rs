//! Custom profiles in a resolved form (system call numbers, not names), checked and compiled to
//! BPF. [`crate::oci`] reads the OCI/Docker JSON format into one; the CLI sends the compiled
//! program to the helper, which only checks its framing.
//!
//! Only the native ABI (x86_64) has rules: every other ABI (i386, x32) kills the process
//! whatever the profile says (the compiler's prologue).

use thiserror::Error;

use crate::bpf::{self, Action, Cond, Insn, Op, Rule, Width};
use crate::syscall_name;

/// A custom profile, resolved for the native architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeccompProfile {
    /// What happens to a system call no rule matches.
    pub default_action: SeccompAction,
    /// Rules in the order they were given. For one system call, rules with argument conditions
    /// are tried first (in order), then the rule without conditions, if any.
    pub rules: Vec<SeccompRule>,
    /// `SECCOMP_FILTER_FLAG_*` bits to install the filter with (only `LOG` and `SPEC_ALLOW`).
    pub flags: u32,
}

/// One system call, the conditions on its arguments (all must hold) and the action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeccompRule {
    pub syscall: u32,
    pub action: SeccompAction,
    pub args: Vec<ArgCmp>,
}

/// A comparison of one 64-bit system call argument, with libseccomp's meaning: for
/// `MaskedEq`, `(arg & value) == value_two`; for the others `arg OP value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgCmp {
    pub index: u8,
    pub op: CmpOp,
    pub value: u64,
    pub value_two: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeccompAction {
    Allow,
    /// Fail the call with this errno (at most 4095; 0 makes it return 0 without running).
    Errno(u16),
    KillThread,
    KillProcess,
    Trap,
    Log,
}

/// `SECCOMP_FILTER_FLAG_LOG`.
pub const FLAG_LOG: u32 = 1 << 1;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`.
pub const FLAG_SPEC_ALLOW: u32 = 1 << 2;

/// Most rules a profile may have (a BPF program has at most 4096 instructions anyway).
pub const MAX_RULES: usize = 4096;
/// Most argument conditions in one rule.
pub const MAX_ARGS: usize = 6;
/// Largest errno a filter may return (`SECCOMP_RET_DATA` is 16 bits, the kernel caps at 4095).
pub const MAX_ERRNO: u16 = 4095;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("seccomp profile has {0} rules (at most {MAX_RULES})")]
    TooManyRules(usize),
    #[error("seccomp profile rule {rule}: system call number {nr} is not a native system call")]
    UnknownNumber { rule: usize, nr: u32 },
    #[error("seccomp profile rule {rule}: more than {MAX_ARGS} argument conditions")]
    TooManyArgs { rule: usize },
    #[error("seccomp profile rule {rule}: argument index {index} (system calls have 6: 0 to 5)")]
    BadArgIndex { rule: usize, index: u8 },
    #[error("seccomp profile: errno {0} out of range (0 to {MAX_ERRNO})")]
    BadErrno(u16),
    #[error("seccomp profile: unsupported filter flags {0:#x}")]
    BadFlags(u32),
    #[error("seccomp profile: {}", .0.describe())]
    Compile(bpf::CompileError),
}

fn check_action(a: SeccompAction) -> Result<(), ProfileError> {
    match a {
        SeccompAction::Errno(e) if e > MAX_ERRNO => Err(ProfileError::BadErrno(e)),
        _ => Ok(()),
    }
}

impl SeccompProfile {
    /// Check a profile before it is compiled: bounded, every number a native system call,
    /// argument indexes 0–5, errnos in range, only the filter flags the helper installs with.
    pub fn check(&self) -> Result<(), ProfileError> {
        if self.rules.len() > MAX_RULES {
            return Err(ProfileError::TooManyRules(self.rules.len()));
        }
        if self.flags & !(FLAG_LOG | FLAG_SPEC_ALLOW) != 0 {
            return Err(ProfileError::BadFlags(self.flags));
        }
        check_action(self.default_action)?;
        for (rule, r) in self.rules.iter().enumerate() {
            if syscall_name(r.syscall).is_none() {
                return Err(ProfileError::UnknownNumber {
                    rule,
                    nr: r.syscall,
                });
            }
            if r.args.len() > MAX_ARGS {
                return Err(ProfileError::TooManyArgs { rule });
            }
            if let Some(a) = r.args.iter().find(|a| a.index > 5) {
                return Err(ProfileError::BadArgIndex {
                    rule,
                    index: a.index,
                });
            }
            check_action(r.action)?;
        }
        Ok(())
    }
}

/// A profile compiled to BPF: what the CLI sends, and the flags to install it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compiled {
    pub insns: Vec<Insn>,
    /// `SECCOMP_FILTER_FLAG_*` bits ([`FLAG_LOG`], [`FLAG_SPEC_ALLOW`]).
    pub flags: u32,
}

impl Compiled {
    /// The program as the kernel's `struct sock_filter` array, in native byte order.
    pub fn bytes(&self) -> Vec<u8> {
        bpf::to_bytes(&self.insns)
    }
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

impl SeccompProfile {
    /// Check, then compile to one BPF program.
    pub fn compile(&self) -> Result<Compiled, ProfileError> {
        self.check()?;
        let conds: Vec<Vec<Cond>> = self
            .rules
            .iter()
            .map(|r| r.args.iter().map(cond).collect())
            .collect();
        let rules: Vec<Rule> = self
            .rules
            .iter()
            .zip(&conds)
            .map(|(r, c)| Rule {
                nr: r.syscall,
                conds: c,
                action: action(r.action),
            })
            .collect();
        // The compiler's buffer is large; keep it off the caller's stack.
        let prog = Box::new(bpf::compile(&[&rules], action(self.default_action)));
        match *prog {
            Ok(p) => Ok(Compiled {
                insns: p.as_slice().to_vec(),
                flags: self.flags,
            }),
            Err(e) => Err(ProfileError::Compile(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_checked_before_they_are_compiled() {
        let ok = SeccompProfile {
            default_action: SeccompAction::Allow,
            rules: vec![SeccompRule {
                syscall: 0,
                action: SeccompAction::Errno(1),
                args: vec![ArgCmp {
                    index: 5,
                    op: CmpOp::Eq,
                    value: 1,
                    value_two: 0,
                }],
            }],
            flags: 0,
        };
        assert_eq!(ok.check(), Ok(()));
        let mut p = ok.clone();
        p.rules[0].syscall = 100_000;
        assert!(matches!(p.check(), Err(ProfileError::UnknownNumber { .. })));
        let mut p = ok.clone();
        p.rules[0].args[0].index = 6;
        assert!(matches!(p.check(), Err(ProfileError::BadArgIndex { .. })));
        let mut p = ok.clone();
        p.rules[0].args = vec![p.rules[0].args[0]; 7];
        assert!(matches!(p.check(), Err(ProfileError::TooManyArgs { .. })));
        let mut p = ok.clone();
        p.default_action = SeccompAction::Errno(0);
        assert_eq!(p.check(), Ok(()));
        let mut p = ok.clone();
        p.rules[0].action = SeccompAction::Errno(4096);
        assert!(matches!(p.check(), Err(ProfileError::BadErrno(4096))));
        let mut p = ok.clone();
        p.flags = 1;
        assert!(matches!(p.check(), Err(ProfileError::BadFlags(1))));
        let mut p = ok;
        p.rules = vec![p.rules[0].clone(); MAX_RULES + 1];
        assert!(matches!(p.check(), Err(ProfileError::TooManyRules(_))));
    }

    #[cfg(feature = "oci")]
    #[test]
    fn a_docker_style_profile_compiles_and_means_what_it_says() {
        use crate::bpf::interp::{Data, run};
        use crate::oci;
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
        let prog = p.compile().unwrap().insns;
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

    #[test]
    fn a_profile_too_long_for_one_program_is_refused_when_compiled() {
        // 700 rules of six 64-bit conditions each: far more than 4096 instructions.
        let arg = ArgCmp {
            index: 0,
            op: CmpOp::MaskedEq,
            value: 1,
            value_two: 1,
        };
        let p = SeccompProfile {
            default_action: SeccompAction::Allow,
            rules: (0..700)
                .map(|i| SeccompRule {
                    syscall: i % 300,
                    action: SeccompAction::Errno(1),
                    args: vec![arg; 6],
                })
                .collect(),
            flags: FLAG_LOG,
        };
        assert_eq!(
            p.compile(),
            Err(ProfileError::Compile(bpf::CompileError::TooLong))
        );
        assert_eq!(
            p.compile().unwrap_err().to_string(),
            "seccomp profile: the filter is longer than 4096 BPF instructions"
        );
        let mut short = p.clone();
        short.rules.truncate(10);
        let c = short.compile().unwrap();
        assert_eq!(c.flags, FLAG_LOG);
        assert_eq!(c.bytes().len(), c.insns.len() * 8);
    }
}
