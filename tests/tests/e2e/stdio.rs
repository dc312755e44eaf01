//! stdin, stdout, stderr and a terminal reach the payload as the caller's own.

use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use std::os::unix::process::CommandExt;

use nsjail_tests::{Capture, for_each_caller, wait_or_kill_group};

#[test]
fn stdin_is_piped_through() {
    for_each_caller(|c| {
        let input = "line one\nline two\n".repeat(1000);
        let out = c.run_stdin(&["--", "/bin/cat"], input.as_bytes());
        out.expect_success();
        assert!(
            out.stdout == input,
            "[{}] cat did not echo its input (got {} bytes of {})\n{}",
            c.name(),
            out.stdout.len(),
            input.len(),
            out.stderr
        );
    });
}

#[test]
fn stdout_and_stderr_stay_apart() {
    for_each_caller(|c| {
        let out = c.sh(&[], "echo out; echo err >&2; echo out2; echo err2 >&2");
        out.expect_success();
        assert_eq!(
            out.stdout,
            "out\nout2\n",
            "[{}] {}",
            c.name(),
            out.describe()
        );
        assert_eq!(
            out.stderr,
            "err\nerr2\n",
            "[{}] {}",
            c.name(),
            out.describe()
        );
    });
}

#[test]
fn a_terminal_is_passed_through() {
    for_each_caller(|c| {
        let pty = nsjail_tests::openpty();
        let slave: OwnedFd = pty.slave;
        let mut cmd = c.run_cmd(&[
            "--",
            "/bin/sh",
            "-c",
            "if test -t 0 && test -t 1 && test -t 2; then echo TTY-OK; else echo NOT-A-TTY; fi",
        ]);
        let dup = || Stdio::from(slave.as_fd().try_clone_to_owned().unwrap());
        cmd.stdin(dup()).stdout(dup()).stderr(dup());
        cmd.process_group(0);
        let mut child = cmd.spawn().expect("spawn nsjail on a pty");
        // Only the CLI holds the slave now: the master reads EIO once it and the sandbox are gone.
        drop(cmd);
        drop(slave);
        let screen = Capture::start(std::fs::File::from(pty.master));
        let status = wait_or_kill_group(&mut child);
        let ended = status.is_some();
        screen.wait_eof(Duration::from_secs(10));
        assert!(
            ended && status.is_some_and(|s| s.success()) && screen.text().contains("TTY-OK"),
            "[{}] the payload did not see a terminal on 0-2: status {status:?}, screen {:?}",
            c.name(),
            screen.text()
        );
    });
}
