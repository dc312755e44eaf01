//! Seccomp as the request describes it: which filter the payload gets, and custom profiles in a
//! resolved form (syscall numbers, not names) that the helper compiles to BPF.
//!
//! The OCI/Docker JSON profile format is parsed by [`oci`]; the BPF itself is built and installed
//! by the helper. Only the native ABI (x86_64) has rules: every other ABI (i386, x32) is denied
//! by the helper whatever the profile says.

pub mod oci;
mod syscall_table;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The filter a sandbox gets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SeccompMode {
    /// nsjail's built-in deny list (see the helper's `seccomp::default`).
    #[default]
    Default,
    /// No filter at all (`--seccomp none`); the policy may forbid it.
    Disabled,
    /// A custom profile (`--seccomp FILE`), replacing the default filter.
    Profile(SeccompProfile),
}

/// A custom profile, resolved for the native architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompRule {
    pub syscall: u32,
    pub action: SeccompAction,
    pub args: Vec<ArgCmp>,
}

/// A comparison of one 64-bit system call argument, with libseccomp's meaning: for
/// `MaskedEq`, `(arg & value) == value_two`; for the others `arg OP value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgCmp {
    pub index: u8,
    pub op: CmpOp,
    pub value: u64,
    pub value_two: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// The most instructions the kernel loads in one BPF program (`BPF_MAXINSNS`).
pub const MAX_BPF_INSNS: usize = 4096;
/// The size of one classic BPF instruction (`struct sock_filter`).
pub const BPF_INSN_BYTES: usize = 8;

/// Whether `bytes` can be a raw BPF program as bubblewrap's `--add-seccomp-fd` takes it: a
/// non-empty whole number of 8-byte instructions, at most [`MAX_BPF_INSNS`].
pub fn is_bpf_framing(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.len().is_multiple_of(BPF_INSN_BYTES)
        && bytes.len() / BPF_INSN_BYTES <= MAX_BPF_INSNS
}

/// The native system call number of `name`, if this architecture has it.
pub fn syscall_number(name: &str) -> Option<u32> {
    syscall_table::X86_64
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| syscall_table::X86_64[i].1)
}

/// The name of native system call `nr`.
pub fn syscall_name(nr: u32) -> Option<&'static str> {
    syscall_table::X86_64
        .iter()
        .find(|(_, n)| *n == nr)
        .map(|(name, _)| *name)
}

/// Whether `name` is a system call of some other Linux architecture (skipped in profiles).
pub fn is_foreign_syscall(name: &str) -> bool {
    syscall_table::OTHER_ARCHES.binary_search(&name).is_ok()
}

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
}

fn check_action(a: SeccompAction) -> Result<(), ProfileError> {
    match a {
        SeccompAction::Errno(e) if e > MAX_ERRNO => Err(ProfileError::BadErrno(e)),
        _ => Ok(()),
    }
}

impl SeccompProfile {
    /// Check a profile that arrived over the wire: bounded, every number a native system call,
    /// argument indexes 0–5, errnos in range.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_matches_libc_numbers() {
        let t = syscall_table::X86_64;
        assert!(
            t.windows(2).all(|w| w[0].0 < w[1].0),
            "X86_64 must be sorted"
        );
        let o = syscall_table::OTHER_ARCHES;
        assert!(
            o.windows(2).all(|w| w[0] < w[1]),
            "OTHER_ARCHES must be sorted"
        );
        for name in o {
            assert!(syscall_number(name).is_none(), "{name} is native");
        }
        // Spot checks against the numbers every x86_64 libc agrees on.
        for (name, nr) in [
            ("read", 0),
            ("ioctl", 16),
            ("clone", 56),
            ("ptrace", 101),
            ("personality", 135),
            ("keyctl", 250),
            ("unshare", 272),
            ("bpf", 321),
            ("io_uring_setup", 425),
            ("clone3", 435),
            ("mseal", 462),
        ] {
            assert_eq!(syscall_number(name), Some(nr), "{name}");
            assert_eq!(syscall_name(nr), Some(name));
        }
        assert_eq!(syscall_number("nonexistent"), None);
        assert!(is_foreign_syscall("_llseek") && is_foreign_syscall("arm_fadvise64_64"));
    }

    #[test]
    fn wire_profiles_are_checked() {
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
}
