//! nsjail's seccomp compiler: rule lists and OCI/Docker JSON profiles to classic BPF.
//!
//! It runs on the unprivileged side. The CLI compiles a user's `--seccomp FILE` here and sends
//! the program as bytes; the setuid helper checks only their framing and installs them (as it
//! does for `--add-seccomp-fd` programs). The default filter ([`default`]) is compiled here when
//! the helper is built (its `build.rs`), into constants the helper includes: the helper links
//! none of this crate.
//!
//! - [`bpf`]: the compiler from rules to BPF;
//! - [`default`]: nsjail's default deny list and its variants;
//! - [`profile`]: custom profiles (numbers, not names), checked and compiled;
//! - [`oci`] (feature `oci`): the OCI runtime-spec / Docker JSON format, read into a profile.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bpf;
pub mod default;
#[cfg(feature = "oci")]
pub mod oci;
pub mod profile;
mod syscall_table;

pub use bpf::{Insn, MAX_INSNS};
pub use profile::{Compiled, ProfileError, SeccompProfile};

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

    /// What the CLI sends is what the helper accepts: the same instructions, read back by
    /// nsjail-core's framing check, and the same limits.
    #[test]
    fn compiled_programs_pass_the_helpers_framing_check_unchanged() {
        use nsjail_core::seccomp as wire;
        assert_eq!(MAX_INSNS, wire::MAX_BPF_INSNS);
        assert_eq!(std::mem::size_of::<Insn>(), wire::BPF_INSN_BYTES);
        assert_eq!(profile::FLAG_LOG, wire::FLAG_LOG);
        assert_eq!(profile::FLAG_SPEC_ALLOW, wire::FLAG_SPEC_ALLOW);
        for p in [
            default::program(false, false),
            default::program(true, true),
            default::userns_only(),
        ] {
            let back = wire::insns(&bpf::to_bytes(p)).unwrap();
            assert_eq!(back.len(), p.len());
            for (a, b) in p.iter().zip(&back) {
                assert_eq!((a.code, a.jt, a.jf, a.k), (b.code, b.jt, b.jf, b.k));
            }
        }
    }
}
