//! The seccomp filter, as a program inside the sandbox meets it. Each denied call is made with
//! arguments the kernel itself would answer differently (success, EINVAL, EFAULT), and the same
//! call is repeated with `--seccomp none` as the control, so every check can fail.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;

use nsjail_tests::hardening::{GRANT_CAPS_AND_USERNS, PolicyEnv, probe_dir, probe_result};
use nsjail_tests::{Running, for_each_caller};

/// (check, what the default filter answers).
const DENIED: [(&str, &str); 8] = [
    ("keyctl", "EPERM"),
    ("add_key", "EPERM"),
    ("bpf", "EPERM"),
    ("userfaultfd", "EPERM"),
    ("perf_event_open", "EPERM"),
    ("io_uring_setup", "ENOSYS"),
    ("personality-norandom", "EPERM"),
    ("ptrace-child", "EPERM"),
];

#[test]
fn the_default_filter_denies_the_dangerous_calls() {
    for_each_caller(|c| {
        let dir = probe_dir(c);
        for (check, denied) in DENIED {
            let out = c.probe(dir.path(), &[], check, None);
            out.expect_success();
            assert_eq!(
                probe_result(&out, check),
                denied,
                "[{}] {check} under the default filter\n{}",
                c.name(),
                out.describe()
            );
            let control = c.probe(dir.path(), &["--seccomp", "none"], check, None);
            control.expect_success();
            assert_ne!(
                probe_result(&control, check),
                denied,
                "[{}] control: {check} without a filter must get another answer from the kernel\n{}",
                c.name(),
                control.describe()
            );
        }
        // The safe personality values pass.
        let out = c.probe(dir.path(), &[], "personality-query", None);
        assert_eq!(
            probe_result(&out, "personality-query"),
            "ok",
            "{}",
            out.describe()
        );
    });
}

#[test]
fn nested_user_namespaces_need_allow_userns() {
    // Users of the setuid helper and the daemon need the policy's grant for --allow-userns
    // (safe_defaults.rs); under it, the flag is what decides.
    let grant = PolicyEnv::with_policy(GRANT_CAPS_AND_USERNS);
    for_each_caller(|c| {
        let dir = probe_dir(c);
        for (check, denied) in [
            ("unshare-user", "EPERM"),
            ("clone-user", "EPERM"),
            // clone3's flags are out of seccomp's sight: ENOSYS makes libc fall back to clone.
            ("clone3-user", "ENOSYS"),
        ] {
            c.expect_probe(dir.path(), &[], check, None, denied);
            let allowed = grant.probe_as(c, dir.path(), &["--allow-userns"], check, None);
            assert_eq!(
                probe_result(&allowed, check),
                "ok",
                "[{}] with --allow-userns\n{}",
                c.name(),
                allowed.describe()
            );
        }
        // A shell's `unshare -U` (util-linux) is refused the same way (EPERM) ...
        let out = c.sh(&[], "unshare -U true; echo rc=$?");
        assert!(
            out.out() == "rc=1" && out.stderr.contains("Operation not permitted"),
            "[{}] {}",
            c.name(),
            out.describe()
        );
        // ... and allowed with --allow-userns (the control).
        let out = grant.sh_as(c, &["--allow-userns"], "unshare -U true; echo rc=$?");
        assert!(
            out.out() == "rc=0" && out.stderr.is_empty(),
            "[{}] with --allow-userns: {}",
            c.name(),
            out.describe()
        );
    });
}

#[test]
fn pidfd_getfd_process_madvise_and_kcmp_belong_to_the_ptrace_group() {
    // Each reaches into another process as ptrace does (pidfd_getfd copies its fds,
    // process_madvise changes its memory, kcmp compares its kernel objects): denied with
    // ptrace, allowed with --allow-ptrace. On this process itself the kernel allows all three
    // (process_madvise answers EINVAL to the flags), so only the filter says EPERM.
    for_each_caller(|c| {
        let dir = probe_dir(c);
        for (check, kernel) in [
            ("pidfd_getfd", "ok"),
            ("process_madvise", "EINVAL"),
            ("kcmp", "ok"),
        ] {
            for (opts, want) in [
                (&[][..], "EPERM"),
                (&["--allow-ptrace"][..], kernel),
                (&["--seccomp", "none"][..], kernel),
            ] {
                let out = c.probe(dir.path(), opts, check, None);
                assert_eq!(
                    probe_result(&out, check),
                    want,
                    "[{}] {check} with {opts:?}\n{}",
                    c.name(),
                    out.describe()
                );
            }
        }
    });
}

#[test]
fn foreign_abis_kill_the_process() {
    // Without a grant of nested user namespaces, `--seccomp none` still installs the filter
    // that denies them, which must kill foreign ABIs too (an i386 clone could make one): the
    // control runs where the policy grants them.
    let grant = PolicyEnv::with_policy(GRANT_CAPS_AND_USERNS);
    for_each_caller(|c| {
        let dir = probe_dir(c);
        for (check, without_filter) in [("i386-getpid", "ok"), ("x32-getpid", "ENOSYS")] {
            let out = c.probe(dir.path(), &[], check, None);
            // 128 + SIGSYS: the kernel killed it on the filter's word.
            out.expect_code(128 + libc::SIGSYS);
            assert!(!out.stdout.contains(check), "{}", out.describe());
            let control = grant.probe_as(c, dir.path(), &["--seccomp", "none"], check, None);
            assert_eq!(
                probe_result(&control, check),
                without_filter,
                "[{}] control\n{}",
                c.name(),
                control.describe()
            );
        }
    });
}

#[test]
fn ptrace_needs_allow_ptrace_and_never_reaches_a_host_process() {
    for_each_caller(|c| {
        let dir = probe_dir(c);
        let out = c.probe(dir.path(), &["--allow-ptrace"], "ptrace-child", None);
        assert_eq!(
            probe_result(&out, "ptrace-child"),
            "ok",
            "{}",
            out.describe()
        );

        // A host process of the same user: the filter refuses; with ptrace allowed, the pid
        // namespace still hides it.
        let mut sleeper = c.command_for("/bin/sleep");
        sleeper.arg("600");
        let sleeper = Running::spawn(&mut sleeper, None, "host sleep");
        let pid = sleeper.pid().to_string();
        for (opts, want) in [(&[][..], "EPERM"), (&["--allow-ptrace"][..], "ESRCH")] {
            for check in ["ptrace", "process_vm_readv"] {
                let out = c.probe(dir.path(), opts, check, Some(&pid));
                assert_eq!(
                    probe_result(&out, check),
                    want,
                    "[{}] {check} of host pid {pid} with {opts:?}\n{}",
                    c.name(),
                    out.describe()
                );
            }
        }
        sleeper.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = sleeper.wait();
    });
}

/// A seccomp profile in the OCI format, written into `dir`.
fn write_profile(dir: &std::path::Path, name: &str, json: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, json).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn a_custom_profile_replaces_the_default_filter() {
    for_each_caller(|c| {
        let dir = probe_dir(c);
        let profile = write_profile(
            dir.path(),
            "deny-mkdir.json",
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
        );
        let out = c.sh(&["--seccomp", &profile], "mkdir /tmp/x-$$ 2>&1; echo rc=$?");
        assert!(
            out.stdout.contains("Permission denied") && out.stdout.contains("rc=1"),
            "[{}] {}",
            c.name(),
            out.describe()
        );
        // It replaces the default filter (no policy forbids that): keyctl is the kernel's again.
        let out = c.probe(dir.path(), &["--seccomp", &profile], "keyctl", None);
        assert_eq!(probe_result(&out, "keyctl"), "ok", "{}", out.describe());
        // Foreign ABIs stay denied whatever the profile lists.
        c.probe(dir.path(), &["--seccomp", &profile], "i386-getpid", None)
            .expect_code(128 + libc::SIGSYS);
    });
}

#[test]
fn bad_profiles_are_one_line_errors_naming_the_entry() {
    for_each_caller(|c| {
        let dir = c.scratch();
        for (json, want) in [
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["no_such_call"],"action":"SCMP_ACT_ERRNO"}]}"#,
                "syscalls[1]: unknown system call \"no_such_call\"",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#,
                "syscalls[0]: action SCMP_ACT_NOTIFY is not supported",
            ),
            (r#"{"defaultAction": "#, "seccomp profile: EOF"),
        ] {
            let p = write_profile(dir.path(), "bad.json", json);
            let out = c.run(&["--seccomp", &p, "--", "/bin/true"]);
            out.expect_code(125)
                .expect_one_error_line("nsjail: --seccomp ")
                .expect_no_panic();
            assert!(out.stderr.contains(want), "{}", out.describe());
        }
        c.run(&["--seccomp", "/nonexistent/profile.json", "--", "/bin/true"])
            .expect_code(125)
            .expect_one_error_line("nsjail: --seccomp /nonexistent/profile.json");
    });
}

/// A raw BPF program (as `seccomp_export_bpf` writes it) that fails mkdir/mkdirat with EACCES.
fn deny_mkdir_bpf() -> Vec<u8> {
    let insn = |code: u16, jt: u8, jf: u8, k: u32| {
        let mut b = code.to_ne_bytes().to_vec();
        b.extend([jt, jf]);
        b.extend(k.to_ne_bytes());
        b
    };
    [
        insn(0x20, 0, 0, 0),                                 // ld [nr]
        insn(0x15, 1, 0, libc::SYS_mkdir as u32),            // jeq mkdir → deny
        insn(0x15, 0, 1, libc::SYS_mkdirat as u32),          // jeq mkdirat → deny, else allow
        insn(0x06, 0, 0, 0x0005_0000 | libc::EACCES as u32), // ret ERRNO(EACCES)
        insn(0x06, 0, 0, 0x7fff_0000),                       // ret ALLOW
    ]
    .concat()
}

/// Run `nsjail run ARGS` as `c` with `file`'s contents readable on fd 5.
fn run_with_fd5(c: &nsjail_tests::Caller, bytes: &[u8], args: &[&str]) -> nsjail_tests::Output {
    let dir = c.scratch();
    let path = dir.path().join("prog.bpf");
    std::fs::write(&path, bytes).unwrap();
    let f: OwnedFd = std::fs::File::open(&path).unwrap().into();
    run_with_fd_as_5(c, f, args)
}

/// Run `nsjail run ARGS` as `c` with `f` as its fd 5.
fn run_with_fd_as_5(c: &nsjail_tests::Caller, f: OwnedFd, args: &[&str]) -> nsjail_tests::Output {
    let raw = f.as_raw_fd();
    let mut cmd = c.run_cmd(args);
    // SAFETY: dup2 and fcntl only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 5) == -1 || libc::fcntl(5, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = Running::spawn(
        &mut cmd,
        None,
        &format!("[{}] nsjail run {args:?} (fd 5)", c.name()),
    )
    .wait();
    drop(f);
    out
}

#[test]
fn add_seccomp_fd_installs_a_raw_bpf_program() {
    for_each_caller(|c| {
        let d = format!("/tmp/nsjail-e2e-mkdir-{}", nsjail_tests::unique());
        let script = format!("mkdir {d} 2>&1; echo rc=$?; rmdir {d} 2>/dev/null; true");
        let script = script.as_str();
        let out = run_with_fd5(
            c,
            &deny_mkdir_bpf(),
            &["--add-seccomp-fd", "5", "--", "/bin/sh", "-c", script],
        );
        out.expect_success();
        assert!(
            out.stdout.contains("Permission denied") && out.stdout.contains("rc=1"),
            "[{}] {}",
            c.name(),
            out.describe()
        );
        // It comes on top of the default filter.
        let out = run_with_fd5(
            c,
            &deny_mkdir_bpf(),
            &[
                "--add-seccomp-fd",
                "5",
                "--",
                "/bin/sh",
                "-c",
                "grep Seccomp_filters /proc/self/status",
            ],
        );
        assert_eq!(out.out(), "Seccomp_filters:\t2", "{}", out.describe());
        // The control: without it mkdir works.
        let out = c.sh(&[], script);
        assert!(out.stdout.contains("rc=0"), "{}", out.describe());

        // Not a whole number of instructions, an empty file, a closed descriptor.
        for bytes in [&deny_mkdir_bpf()[..7], &[][..]] {
            let out = run_with_fd5(c, bytes, &["--add-seccomp-fd", "5", "--", "/bin/true"]);
            out.expect_code(125)
                .expect_one_error_line("nsjail: --add-seccomp-fd program 1:")
                .expect_no_panic();
        }
        c.run(&["--add-seccomp-fd", "9", "--", "/bin/true"])
            .expect_code(125)
            .expect_one_error_line("nsjail: --add-seccomp-fd 9: not an open file descriptor");
    });
}

/// A BPF program behind a source that never ends (a FIFO whose writer stays open, as a FUSE
/// file whose read never returns would be) is read by the CLI, as the caller, within a bound:
/// one line, exit 125, and the helper is never started (the helper used to
/// read it as root, and a FUSE file could block it forever).
#[test]
fn add_seccomp_fd_from_a_source_that_never_ends_fails_in_the_cli() {
    for_each_caller(|c| {
        let dir = c.scratch();
        // A FIFO of the caller's (the CLI reopens the descriptor as the caller).
        let fifo = |name: &str| {
            let p = dir.path().join(name);
            nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            std::os::unix::fs::chown(&p, Some(c.uid), Some(c.gid)).unwrap();
            p
        };
        // Read-write: the FIFO always has a writer (us), so a read never sees end-of-file.
        let never = fifo("never-ends");
        let f: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&never)
            .unwrap()
            .into();
        let out = run_with_fd_as_5(
            c,
            f,
            &["--verbose", "--add-seccomp-fd", "5", "--", "/bin/true"],
        );
        // One line even with --verbose: no helper (nor daemon) was reached to say anything.
        out.expect_code(125)
            .expect_one_error_line("nsjail: --add-seccomp-fd 5: no end of file within")
            .expect_no_panic();

        // The control: a FIFO whose writer writes a program and closes works.
        let ends = fifo("ends");
        let r: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&ends)
            .unwrap()
            .into();
        let mut w = std::fs::OpenOptions::new().write(true).open(&ends).unwrap();
        std::io::Write::write_all(&mut w, &deny_mkdir_bpf()).unwrap();
        drop(w);
        let out = run_with_fd_as_5(
            c,
            r,
            &[
                "--add-seccomp-fd",
                "5",
                "--",
                "/bin/sh",
                "-c",
                "mkdir /tmp/x 2>&1; echo rc=$?",
            ],
        );
        out.expect_success();
        assert!(
            out.stdout.contains("Permission denied") && out.stdout.contains("rc=1"),
            "{}",
            out.describe()
        );

        // Too long for the kernel (more than 4096 instructions), and not a file at all.
        let long: Vec<u8> = deny_mkdir_bpf().repeat(820);
        run_with_fd5(c, &long, &["--add-seccomp-fd", "5", "--", "/bin/true"])
            .expect_code(125)
            .expect_one_error_line("nsjail: --add-seccomp-fd 5: longer than 4096 instructions");
        let d: OwnedFd = std::fs::File::open(dir.path()).unwrap().into();
        run_with_fd_as_5(c, d, &["--add-seccomp-fd", "5", "--", "/bin/true"])
            .expect_code(125)
            .expect_one_error_line("nsjail: --add-seccomp-fd 5:")
            .expect_no_panic();
    });
}
