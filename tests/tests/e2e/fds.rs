//! Only fds 0–2 reach the payload, whatever else the caller had open.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::fcntl::OFlag;
use nsjail_tests::{Caller, Running, for_each_caller};

/// Give the command fds 5, 7 and 9 (two pipe ends and a file) without CLOEXEC.
fn with_extra_fds(cmd: &mut Command) -> Vec<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    let f: OwnedFd = std::fs::File::open("/etc/hostname")
        .or_else(|_| std::fs::File::open("/etc/passwd"))
        .unwrap()
        .into();
    let srcs = [r.as_raw_fd(), w.as_raw_fd(), f.as_raw_fd()];
    // SAFETY: only dup2 and fcntl (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for (src, dst) in srcs.iter().zip([5, 7, 9]) {
                if libc::dup2(*src, dst) == -1 || libc::fcntl(dst, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    vec![r, w, f]
}

fn fds_listed(out: &str) -> Vec<String> {
    out.split_whitespace().map(str::to_string).collect()
}

#[test]
fn only_fds_0_to_2_reach_the_payload() {
    let script = "ls /proc/$$/fd";
    // The control: the same extra fds do reach a shell started directly.
    let c0 = &nsjail_tests::callers()[0];
    let mut direct = c0.command_for("/bin/sh");
    direct.args(["-c", script]);
    let keep = with_extra_fds(&mut direct);
    let out = Running::spawn(&mut direct, None, "sh -c 'ls /proc/$$/fd' with extra fds").wait();
    drop(keep);
    out.expect_success();
    let listed = fds_listed(&out.stdout);
    for fd in ["5", "7", "9"] {
        assert!(
            listed.iter().any(|f| f == fd),
            "control: fd {fd} not inherited: {}",
            out.describe()
        );
    }

    for_each_caller(|c: &Caller| {
        for opts in [&[][..], &["--as-pid-1"][..]] {
            let mut args: Vec<&str> = opts.to_vec();
            args.extend(["--", "/bin/sh", "-c", script]);
            let mut cmd = c.run_cmd(&args);
            let keep = with_extra_fds(&mut cmd);
            let what = format!(
                "[{}] nsjail run {opts:?} -- sh -c '{script}' with fds 5,7,9 open",
                c.name()
            );
            let out = Running::spawn(&mut cmd, None, &what).wait();
            drop(keep);
            out.expect_success();
            assert_eq!(
                fds_listed(&out.stdout),
                ["0", "1", "2"],
                "{}",
                out.describe()
            );
        }
    });
}
