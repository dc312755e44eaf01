//! TIOCSTI: a sandboxed program must not push input into the caller's terminal (bubblewrap
//! CVE-2017-5226, firejail CVE-2016-9016), not even with junk in the high half of the request
//! (flatpak CVE-2019-10063).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use nsjail_tests::hardening::{probe_dir, probe_result};
use nsjail_tests::{Capture, Output, for_each_caller, wait_or_kill_group};

/// Bytes waiting to be read on a terminal.
fn pending_input(fd: &OwnedFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `n`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD");
    n
}

/// The control for [`pending_input`]: a byte written to the master is input waiting on the
/// slave, so a count of 0 means nothing was pushed, not that the count is blind.
fn pending_input_sees_input() {
    let pty = nsjail_tests::openpty();
    let mut t = tcgetattr(pty.slave.as_fd()).unwrap();
    cfmakeraw(&mut t);
    tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t).unwrap();
    assert_eq!(pending_input(&pty.slave), 0);
    nix::unistd::write(&pty.master, b"#").unwrap();
    assert!(
        nsjail_tests::poll_until(Duration::from_secs(5), || pending_input(&pty.slave) == 1),
        "a byte written to the master is not seen as pending input"
    );
}

#[test]
fn tiocsti_cannot_reach_the_callers_terminal() {
    pending_input_sees_input();
    for_each_caller(|c| {
        let dir = probe_dir(c);
        for opts in [&[][..], &["--seccomp", "none"][..], &["--as-pid-1"][..]] {
            for check in ["tiocsti", "tiocsti-high"] {
                let pty = nsjail_tests::openpty();
                let slave: OwnedFd = pty.slave;
                // Raw mode: every pushed byte would be readable at once.
                let mut t = tcgetattr(slave.as_fd()).unwrap();
                cfmakeraw(&mut t);
                tcsetattr(slave.as_fd(), SetArg::TCSANOW, &t).unwrap();
                let mut args: Vec<&str> = opts.to_vec();
                args.extend(["--", "./nsjail-probe", check, "0"]);
                let mut cmd = c.run_cmd(&args);
                cmd.current_dir(dir.path());
                let dup = || Stdio::from(slave.as_fd().try_clone_to_owned().unwrap());
                cmd.stdin(dup()).stdout(dup()).stderr(dup());
                // The CLI leads a session whose controlling terminal is the pty, as in a shell.
                // SAFETY: setsid and ioctl only, between fork and exec.
                unsafe {
                    cmd.pre_exec(|| {
                        if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                let mut child = cmd.spawn().expect("spawn nsjail on a pty");
                drop(cmd);
                let screen = Capture::start(std::fs::File::from(pty.master));
                let status = wait_or_kill_group(&mut child);
                screen.wait_for(&format!("{check}: "), Duration::from_secs(5));
                let pending = pending_input(&slave);
                drop(slave);
                screen.wait_eof(Duration::from_secs(10));
                let out = Output {
                    what: format!("[{}] nsjail run {args:?} on a pty", c.name()),
                    status: status.unwrap_or_else(|| panic!("timed out: {:?}", screen.text())),
                    stdout: screen.text().replace("\r\n", "\n"),
                    stderr: String::new(),
                };
                // With the filter, the call itself is refused. Without it, the payload's terminal
                // is the pseudo-terminal the CLI made for it, so the kernel lets the push land
                // there; either way nothing may reach the caller's terminal (`pending`).
                // The CLI's way in is on the screen (its stderr is the terminal).
                nsjail_tests::check_way_in(&out.stdout, c.way_in(), true, &out);
                // The probe's line, and what came before it on that line.
                let (before, result) = out
                    .stdout
                    .lines()
                    .find_map(|l| l.split_once(&format!("{check}: ")))
                    .unwrap_or_else(|| panic!("no result\n{}", out.describe()));
                if opts.contains(&"none") {
                    // The control: the kernel lets the push through, and its byte lands in the
                    // sandbox's own terminal, which echoes it in front of the probe's line.
                    assert_eq!(
                        (before, result),
                        ("#", "ok"),
                        "TIOCSTI without a filter must reach the sandbox's own terminal\n{}",
                        out.describe()
                    );
                } else {
                    assert_eq!(
                        result,
                        "EPERM",
                        "TIOCSTI into the caller's terminal must fail\n{}",
                        out.describe()
                    );
                }
                assert_eq!(
                    pending,
                    0,
                    "input was pushed into the caller's terminal\n{}",
                    out.describe()
                );
            }
        }
    });
}

#[test]
fn the_filter_itself_denies_tiocsti_even_on_the_sandboxs_own_terminal() {
    // On a terminal that is its own controlling terminal the kernel allows TIOCSTI: only the
    // filter stands in the way, which the control without a filter shows.
    for_each_caller(|c| {
        let dir = probe_dir(c);
        for check in ["tiocsti-own-pty", "tiocsti-own-pty-high"] {
            c.expect_probe(dir.path(), &[], check, None, "EPERM");
            let control = c.probe(dir.path(), &["--seccomp", "none"], check, None);
            assert_eq!(
                probe_result(&control, check),
                "ok",
                "[{}] control\n{}",
                c.name(),
                control.describe()
            );
        }
    });
}

/// `nsjail run ARGS` as `c` on a new pseudo-terminal that is the CLI's stdin, stdout, stderr
/// and controlling terminal, as in a terminal window; what appeared on it and how it ended.
fn run_on_a_terminal(c: &nsjail_tests::Caller, args: &[&str]) -> Output {
    let pty = nsjail_tests::openpty();
    let slave: OwnedFd = pty.slave;
    let mut cmd = c.run_cmd(args);
    let dup = || Stdio::from(slave.as_fd().try_clone_to_owned().unwrap());
    cmd.stdin(dup()).stdout(dup()).stderr(dup());
    // SAFETY: setsid and ioctl only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn nsjail on a pty");
    drop(cmd);
    let screen = Capture::start(std::fs::File::from(pty.master));
    let status = wait_or_kill_group(&mut child);
    drop(slave);
    screen.wait_eof(Duration::from_secs(10));
    Output {
        what: format!("[{}] nsjail run {args:?} on a pty", c.name()),
        status: status.unwrap_or_else(|| panic!("timed out: {:?}", screen.text())),
        stdout: screen.text().replace("\r\n", "\n"),
        stderr: String::new(),
    }
}

/// The value after `key=` on its own line of `out`.
fn field<'a>(out: &'a Output, key: &str) -> &'a str {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= line\n{}", out.describe()))
        .trim()
}

#[test]
fn tty_inside_names_a_terminal_that_exists_inside() {
    // `tty`, `ttyname(0)` and `ps` all find the payload's terminal inside the sandbox (it is a
    // pseudo-terminal of the sandbox's own /dev/pts), and it is the session's controlling
    // terminal there.
    let script = "t=$(tty); echo tty=$t; if test -c \"$t\"; then echo node=yes; else echo node=no; fi; \
                  echo ps=$(ps -o tty= -p $$); \
                  python3 -c 'import os; print(\"ttyname=\" + os.ttyname(0))'; \
                  echo ctty=$(ps -o tty= -p 1)";
    for_each_caller(|c| {
        let out = run_on_a_terminal(c, &["--", "/bin/sh", "-c", script]);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        let tty = field(&out, "tty");
        let n = tty
            .strip_prefix("/dev/pts/")
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            .unwrap_or_else(|| panic!("tty names no /dev/pts/N\n{}", out.describe()));
        assert_eq!(field(&out, "node"), "yes", "{}", out.describe());
        assert_eq!(field(&out, "ps"), format!("pts/{n}"), "{}", out.describe());
        assert_eq!(field(&out, "ttyname"), tty, "{}", out.describe());
        // Our init leads the session: the terminal is its controlling terminal too.
        assert_eq!(
            field(&out, "ctty"),
            format!("pts/{n}"),
            "{}",
            out.describe()
        );

        // The control: a view whose /dev has no pseudo-terminals (a tmpfs over it) leaves the
        // payload on the CLI's own, which the sandbox cannot name: the same checks fail.
        let out = run_on_a_terminal(
            c,
            &[
                "--default-view",
                "--tmpfs",
                "/dev",
                "--",
                "/bin/sh",
                "-c",
                script,
            ],
        );
        assert_eq!(field(&out, "tty"), "not a tty", "{}", out.describe());
        assert_eq!(field(&out, "node"), "no", "{}", out.describe());
    });
}
