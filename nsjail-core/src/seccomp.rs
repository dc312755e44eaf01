//! Seccomp as the request carries it: which filter the payload gets, and BPF programs as bytes.
//!
//! Nothing here compiles anything. The CLI compiles a `--seccomp FILE` profile (crate
//! `nsjail-seccomp`) and reads `--add-seccomp-fd` programs; both travel as the kernel's
//! `struct sock_filter` arrays. The helper checks only their framing ([`insns`]) and installs
//! them; what the instructions do is the kernel's to check when it loads them, and a process
//! may install any filter on itself once it has `no_new_privs`. nsjail's default filter is a
//! constant of the helper, compiled when the helper is built.

use serde::{Deserialize, Serialize};

/// The filter a sandbox gets, besides the raw programs (`SpawnRequest::seccomp_programs`),
/// which are always installed on top of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SeccompMode {
    /// nsjail's default deny list (see `nsjail-seccomp`'s `default`), in the variant
    /// `allow_userns` and `allow_ptrace` choose.
    #[default]
    Default,
    /// No filter at all (`--seccomp none`); the policy may forbid it.
    Disabled,
    /// The caller's own profile (`--seccomp FILE`), compiled by the CLI. It replaces the default
    /// filter where the policy lets the caller run without it (`allow.seccomp_none`); elsewhere
    /// the helper installs it on top of the default filter. The helper decides which.
    Profile(BpfProgram),
}

/// One compiled program and the flags to install it with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfProgram {
    /// `struct sock_filter` array in native byte order: a non-empty whole number of
    /// [`BPF_INSN_BYTES`]-byte instructions, at most [`MAX_BPF_INSNS`] of them.
    pub bpf: Vec<u8>,
    /// `SECCOMP_FILTER_FLAG_*` bits: only [`FLAG_LOG`] and [`FLAG_SPEC_ALLOW`].
    pub flags: u32,
}

/// `SECCOMP_FILTER_FLAG_LOG`.
pub const FLAG_LOG: u32 = 1 << 1;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`.
pub const FLAG_SPEC_ALLOW: u32 = 1 << 2;
/// The filter flags a request may ask for.
pub const ALLOWED_FLAGS: u32 = FLAG_LOG | FLAG_SPEC_ALLOW;

/// The most instructions the kernel loads in one BPF program (`BPF_MAXINSNS`).
pub const MAX_BPF_INSNS: usize = 4096;
/// The size of one classic BPF instruction (`struct sock_filter`).
pub const BPF_INSN_BYTES: usize = 8;

/// One BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Whether `bytes` can be a BPF program as bubblewrap's `--add-seccomp-fd` takes it: a
/// non-empty whole number of 8-byte instructions, at most [`MAX_BPF_INSNS`].
pub fn is_bpf_framing(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.len().is_multiple_of(BPF_INSN_BYTES)
        && bytes.len() / BPF_INSN_BYTES <= MAX_BPF_INSNS
}

/// `bytes` as instructions; `None` unless [`is_bpf_framing`].
pub fn insns(bytes: &[u8]) -> Option<Vec<Insn>> {
    if !is_bpf_framing(bytes) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(BPF_INSN_BYTES)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bits are the kernel's (`linux/seccomp.h`): the helper passes them to seccomp(2) as
    /// they are, so another value would ask for another flag.
    #[test]
    fn the_flags_are_the_kernels_bits_and_only_those_two_are_allowed() {
        assert_eq!(FLAG_LOG, 2);
        assert_eq!(FLAG_SPEC_ALLOW, 4);
        // Neither TSYNC (1), NEW_LISTENER (8), TSYNC_ESRCH (16) nor WAIT_KILLABLE_RECV (32).
        assert_eq!(ALLOWED_FLAGS, 2 | 4);
    }

    #[test]
    fn only_whole_instructions_are_read_and_every_byte_is_kept() {
        assert!(insns(&[]).is_none());
        assert!(insns(&[0; 7]).is_none());
        assert!(insns(&[0; 9]).is_none());
        assert!(insns(&vec![0; BPF_INSN_BYTES * (MAX_BPF_INSNS + 1)]).is_none());
        assert_eq!(
            insns(&vec![0; BPF_INSN_BYTES * MAX_BPF_INSNS]).map(|p| p.len()),
            Some(MAX_BPF_INSNS)
        );
        // `ret ALLOW`, as seccomp_export_bpf writes it on a little-endian machine.
        let ret_allow = [0x06, 0, 0, 0, 0, 0, 0xff, 0x7f];
        assert_eq!(
            insns(&ret_allow),
            Some(vec![Insn {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000
            }])
        );
        let p = insns(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!((p[0].jt, p[0].jf), (3, 4));
        assert_eq!(p[0].code, u16::from_ne_bytes([1, 2]));
        assert_eq!(p[0].k, u32::from_ne_bytes([5, 6, 7, 8]));
        assert_eq!(std::mem::size_of::<Insn>(), BPF_INSN_BYTES);
    }
}
