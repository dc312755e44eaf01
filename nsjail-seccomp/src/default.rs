//! nsjail's default seccomp filter: a deny list, compiled by rustc into constants in its four
//! variants (`--allow-userns`, `--allow-ptrace`), plus the filter that denies only nested user
//! namespaces. The helper's `build.rs` writes these constants out and the helper includes them,
//! so that a spawn only installs a static program; this file is where their meaning is.
//!
//! Denied with `EPERM` unless noted:
//! - `ioctl` `TIOCSTI` and `TIOCLINUX`, matched on the low 32 bits of the request (the kernel
//!   ignores the high half, so a 64-bit match could be dodged: CVE-2019-10063): pushing input
//!   into a terminal (bubblewrap CVE-2017-5226, firejail CVE-2016-9016);
//! - the kernel keyring (`keyctl`, `add_key`, `request_key`): not namespaced;
//! - `bpf`, `perf_event_open`, `userfaultfd`: large kernel attack surface, and userfaultfd makes
//!   kernel races easy to win;
//! - `kexec_load`, `kexec_file_load`, `init_module`, `finit_module`, `delete_module`,
//!   `create_module`, `query_module`, `get_kernel_syms`, `acct`, `swapon`, `swapoff`, `reboot`,
//!   `syslog`: whole-system operations;
//! - `open_by_handle_at`, `name_to_handle_at` (file handles reach outside a chroot or mount view:
//!   the "shocker" escape), `lookup_dcookie`, `fanotify_init`;
//! - `io_uring_setup`, `io_uring_enter`, `io_uring_register` with `ENOSYS`, so programs fall back
//!   to ordinary I/O as on a kernel without io_uring;
//! - `personality` except the values programs use (0, `PER_LINUX32`, `UNAME26` and their union,
//!   and the 0xffffffff query): the others switch off address-space randomisation or
//!   non-executable memory;
//! - unless `--allow-userns`: `clone` and `unshare` with `CLONE_NEWUSER`, and `clone3` with
//!   `ENOSYS` (its flags are in memory, out of seccomp's sight; C libraries then fall back to
//!   `clone`, as under Docker's profile);
//! - unless `--allow-ptrace`: `ptrace`, `process_vm_readv`, `process_vm_writev`, and the
//!   newer calls that reach into another process the same way: `pidfd_getfd` (copies its fds),
//!   `process_madvise` (changes its memory), `kcmp` (compares its kernel objects, an oracle on
//!   their addresses).
//!
//! And every system call through a foreign ABI (i386 `int 0x80`, x32) kills the process.

use crate::bpf::{Action, Cond, Insn, Op, Rule, Width, compile, trim};

const EPERM: Action = Action::Errno(libc::EPERM as u16);
const ENOSYS: Action = Action::Errno(libc::ENOSYS as u16);

/// x86_64 numbers the libc crate does not name (see the syscall table).
const SYS_CREATE_MODULE: libc::c_long = 174;
const SYS_GET_KERNEL_SYMS: libc::c_long = 177;
const SYS_QUERY_MODULE: libc::c_long = 178;

const fn nr(n: libc::c_long) -> u32 {
    n as u32
}

const fn deny(n: libc::c_long) -> Rule<'static> {
    Rule {
        nr: nr(n),
        conds: &[],
        action: EPERM,
    }
}

const fn low32(arg: u8, op: Op, value: u64) -> Cond {
    Cond {
        arg,
        width: Width::Low32,
        op,
        value,
    }
}

// The request numbers are `c_ulong` in glibc's bindings and `c_int` in musl's: the cast is a
// no-op on the one and a widening on the other.
#[allow(clippy::unnecessary_cast)]
const TIOCSTI: [Cond; 1] = [low32(1, Op::Eq, libc::TIOCSTI as u64)];
#[allow(clippy::unnecessary_cast)]
const TIOCLINUX: [Cond; 1] = [low32(1, Op::Eq, libc::TIOCLINUX as u64)];
/// personality(2) values that are allowed: all others match and are denied.
const PERSONALITY: [Cond; 5] = [
    low32(0, Op::Ne, 0),
    low32(0, Op::Ne, 0x0008),
    low32(0, Op::Ne, 0x0002_0000),
    low32(0, Op::Ne, 0x0002_0008),
    low32(0, Op::Ne, 0xffff_ffff),
];
const NEWUSER: [Cond; 1] = [low32(
    0,
    Op::MaskedEq {
        mask: libc::CLONE_NEWUSER as u64,
    },
    libc::CLONE_NEWUSER as u64,
)];

/// Denied in every variant.
const ALWAYS: &[Rule<'static>] = &[
    Rule {
        nr: nr(libc::SYS_ioctl),
        conds: &TIOCSTI,
        action: EPERM,
    },
    Rule {
        nr: nr(libc::SYS_ioctl),
        conds: &TIOCLINUX,
        action: EPERM,
    },
    Rule {
        nr: nr(libc::SYS_personality),
        conds: &PERSONALITY,
        action: EPERM,
    },
    deny(libc::SYS_keyctl),
    deny(libc::SYS_add_key),
    deny(libc::SYS_request_key),
    deny(libc::SYS_bpf),
    deny(libc::SYS_perf_event_open),
    deny(libc::SYS_userfaultfd),
    deny(libc::SYS_kexec_load),
    deny(libc::SYS_kexec_file_load),
    deny(libc::SYS_init_module),
    deny(libc::SYS_finit_module),
    deny(libc::SYS_delete_module),
    // Long removed from the kernel (ENOSYS there), but still numbered: denied for good measure.
    deny(SYS_CREATE_MODULE),
    deny(SYS_QUERY_MODULE),
    deny(SYS_GET_KERNEL_SYMS),
    deny(libc::SYS_acct),
    deny(libc::SYS_swapon),
    deny(libc::SYS_swapoff),
    deny(libc::SYS_reboot),
    deny(libc::SYS_syslog),
    deny(libc::SYS_open_by_handle_at),
    deny(libc::SYS_name_to_handle_at),
    deny(libc::SYS_lookup_dcookie),
    deny(libc::SYS_fanotify_init),
    Rule {
        nr: nr(libc::SYS_io_uring_setup),
        conds: &[],
        action: ENOSYS,
    },
    Rule {
        nr: nr(libc::SYS_io_uring_enter),
        conds: &[],
        action: ENOSYS,
    },
    Rule {
        nr: nr(libc::SYS_io_uring_register),
        conds: &[],
        action: ENOSYS,
    },
];

/// Denied unless `--allow-userns`.
const USERNS: &[Rule<'static>] = &[
    Rule {
        nr: nr(libc::SYS_clone),
        conds: &NEWUSER,
        action: EPERM,
    },
    Rule {
        nr: nr(libc::SYS_unshare),
        conds: &NEWUSER,
        action: EPERM,
    },
    Rule {
        nr: nr(libc::SYS_clone3),
        conds: &[],
        action: ENOSYS,
    },
];

/// Denied unless `--allow-ptrace`.
const PTRACE: &[Rule<'static>] = &[
    deny(libc::SYS_ptrace),
    deny(libc::SYS_process_vm_readv),
    deny(libc::SYS_process_vm_writev),
    deny(libc::SYS_pidfd_getfd),
    deny(libc::SYS_process_madvise),
    deny(libc::SYS_kcmp),
];

/// Compile at build time; a rule list that does not compile fails the build.
macro_rules! program {
    ($parts:expr) => {{
        const LEN: usize = match compile($parts, Action::Allow) {
            Ok(p) => p.len,
            Err(_) => panic!("the default seccomp filter does not compile"),
        };
        const PROGRAM: [Insn; LEN] = match compile($parts, Action::Allow) {
            Ok(p) => trim::<LEN>(&p),
            Err(_) => panic!("the default seccomp filter does not compile"),
        };
        static PROGRAM_STATIC: [Insn; LEN] = PROGRAM;
        &PROGRAM_STATIC
    }};
}

static STRICT: &[Insn] = program!(&[ALWAYS, USERNS, PTRACE]);
static WITH_USERNS: &[Insn] = program!(&[ALWAYS, PTRACE]);
static WITH_PTRACE: &[Insn] = program!(&[ALWAYS, USERNS]);
static WITH_BOTH: &[Insn] = program!(&[ALWAYS]);

/// Only the nested-user-namespace rules, for when the default filter is off (`--seccomp none`,
/// or a custom profile replacing it) but the policy forbids nested user namespaces.
static USERNS_ONLY: &[Insn] = program!(&[USERNS]);

pub fn userns_only() -> &'static [Insn] {
    USERNS_ONLY
}

/// The default filter for these switches.
pub fn program(allow_userns: bool, allow_ptrace: bool) -> &'static [Insn] {
    match (allow_userns, allow_ptrace) {
        (false, false) => STRICT,
        (true, false) => WITH_USERNS,
        (false, true) => WITH_PTRACE,
        (true, true) => WITH_BOTH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::interp::{Data, run};
    use crate::bpf::{AUDIT_ARCH_X86_64, ret_value};

    const ALLOW: u32 = 0x7fff_0000;
    const KILL: u32 = 0x8000_0000;

    fn call(p: &[Insn], n: libc::c_long, args: [u64; 6]) -> u32 {
        run(p, &Data::native(n as u32, args))
    }

    #[test]
    fn numbers_libc_does_not_name_match_the_table() {
        use crate::syscall_number;
        assert_eq!(
            syscall_number("create_module"),
            Some(SYS_CREATE_MODULE as u32)
        );
        assert_eq!(
            syscall_number("get_kernel_syms"),
            Some(SYS_GET_KERNEL_SYMS as u32)
        );
        assert_eq!(
            syscall_number("query_module"),
            Some(SYS_QUERY_MODULE as u32)
        );
    }

    #[test]
    fn the_deny_list() {
        let p = program(false, false);
        let eperm = ret_value(EPERM);
        let enosys = ret_value(ENOSYS);
        for n in [
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_userfaultfd,
            libc::SYS_kexec_load,
            libc::SYS_kexec_file_load,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
            libc::SYS_acct,
            libc::SYS_swapon,
            libc::SYS_swapoff,
            libc::SYS_reboot,
            libc::SYS_syslog,
            libc::SYS_open_by_handle_at,
            libc::SYS_name_to_handle_at,
            libc::SYS_lookup_dcookie,
            libc::SYS_fanotify_init,
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_pidfd_getfd,
            libc::SYS_process_madvise,
            libc::SYS_kcmp,
        ] {
            assert_eq!(call(p, n, [0; 6]), eperm, "syscall {n}");
        }
        for n in [
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
            libc::SYS_clone3,
        ] {
            assert_eq!(call(p, n, [0; 6]), enosys, "syscall {n}");
        }
        for n in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_execve,
            libc::SYS_mount,
            libc::SYS_openat,
            libc::SYS_wait4,
        ] {
            assert_eq!(call(p, n, [0; 6]), ALLOW, "syscall {n}");
        }
    }

    #[test]
    fn ioctl_and_personality_look_at_arguments() {
        let p = program(true, true);
        let eperm = ret_value(EPERM);
        let sti = libc::TIOCSTI;
        let linux = libc::TIOCLINUX;
        assert_eq!(call(p, libc::SYS_ioctl, [0, sti, 0, 0, 0, 0]), eperm);
        assert_eq!(
            call(p, libc::SYS_ioctl, [0, sti | 1 << 32, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(
            call(p, libc::SYS_ioctl, [0, linux | 0xdead << 32, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(
            call(p, libc::SYS_ioctl, [5, libc::TCGETS, 0, 0, 0, 0]),
            ALLOW
        );
        for ok in [
            0u64,
            8,
            0x20000,
            0x20008,
            0xffff_ffff,
            0xffff_ffff_ffff_ffff,
        ] {
            assert_eq!(
                call(p, libc::SYS_personality, [ok, 0, 0, 0, 0, 0]),
                ALLOW,
                "{ok:#x}"
            );
        }
        for bad in [0x0040000u64, 0x0400000, 0x0008 | 0x0040000] {
            assert_eq!(
                call(p, libc::SYS_personality, [bad, 0, 0, 0, 0, 0]),
                eperm,
                "{bad:#x}"
            );
        }
    }

    #[test]
    fn the_userns_only_filter() {
        let p = userns_only();
        let newuser = libc::CLONE_NEWUSER as u64;
        assert_eq!(
            call(p, libc::SYS_unshare, [newuser, 0, 0, 0, 0, 0]),
            ret_value(EPERM)
        );
        assert_eq!(call(p, libc::SYS_clone3, [0; 6]), ret_value(ENOSYS));
        assert_eq!(call(p, libc::SYS_keyctl, [0; 6]), ALLOW);
    }

    #[test]
    fn variants() {
        let newuser = libc::CLONE_NEWUSER as u64;
        let eperm = ret_value(EPERM);
        for (userns, ptrace) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = program(userns, ptrace);
            let want_ns = if userns { ALLOW } else { eperm };
            let want_pt = if ptrace { ALLOW } else { eperm };
            assert_eq!(
                call(p, libc::SYS_unshare, [newuser, 0, 0, 0, 0, 0]),
                want_ns
            );
            assert_eq!(
                call(
                    p,
                    libc::SYS_clone,
                    [newuser | libc::SIGCHLD as u64, 0, 0, 0, 0, 0]
                ),
                want_ns
            );
            assert_eq!(
                call(p, libc::SYS_clone3, [0; 6]),
                if userns { ALLOW } else { ret_value(ENOSYS) }
            );
            // Other namespaces and plain forks are always fine.
            assert_eq!(
                call(
                    p,
                    libc::SYS_unshare,
                    [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]
                ),
                ALLOW
            );
            assert_eq!(
                call(p, libc::SYS_clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
                ALLOW
            );
            for n in [
                libc::SYS_ptrace,
                libc::SYS_pidfd_getfd,
                libc::SYS_process_madvise,
                libc::SYS_kcmp,
            ] {
                assert_eq!(call(p, n, [0; 6]), want_pt, "syscall {n}");
            }
            // Foreign ABIs, always.
            let i386 = Data {
                nr: 20,
                arch: 0x4000_0003,
                args: [0; 6],
            };
            assert_eq!(run(p, &i386), KILL);
            assert_eq!(
                run(
                    p,
                    &Data {
                        nr: 39 | 0x4000_0000,
                        arch: AUDIT_ARCH_X86_64,
                        args: [0; 6]
                    }
                ),
                KILL
            );
        }
    }
}
