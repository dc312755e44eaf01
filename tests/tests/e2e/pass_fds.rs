//! `nsjail run --pass-fd N`: the payload gets the caller's fd N at N, and only the payload (the
//! sandbox's init never holds it); fds not named stay out; bad numbers and closed fds are one
//! line and exit 125, with nothing started. Through every caller's way in: root, the setuid
//! helper, the daemon.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nsjail_tests::{Caller, Running, for_each_caller, pids_with_argv, proc_stat};

/// Give the command each `(fd, number)` without close-on-exec.
fn give(cmd: &mut Command, fds: &[(&OwnedFd, i32)]) {
    let pairs: Vec<(i32, i32)> = fds.iter().map(|(f, n)| (f.as_raw_fd(), *n)).collect();
    // SAFETY: only dup2 and fcntl (async-signal-safe) between fork and exec. The sources are
    // above every target (see `high`), so no dup2 overwrites a source still to be placed.
    unsafe {
        cmd.pre_exec(move || {
            for &(src, dst) in &pairs {
                if libc::dup2(src, dst) == -1 || libc::fcntl(dst, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// `fd` moved to a number above every target of these tests.
fn high(fd: impl Into<OwnedFd>) -> OwnedFd {
    let fd: OwnedFd = fd.into();
    let raw = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100)).unwrap();
    // SAFETY: fcntl has just returned this new fd, owned by nothing else.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) }
}

fn file(path: &Path, write: bool) -> OwnedFd {
    let f = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .create(write)
        .truncate(write)
        .open(path)
        .unwrap();
    high(f)
}

/// What the `/proc/PID/fd` links of a host process point at, by number.
fn fd_links(pid: i32) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().to_str()?.parse().ok()?;
            let to = std::fs::read_link(e.path()).ok()?;
            Some((n, to.to_string_lossy().into_owned()))
        })
        .collect();
    v.sort();
    v
}

fn socket_link(s: &UnixStream) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The payload reads fd 5 (a file), writes fd 9 (a file) and talks on fd 8 (a socket), at those
/// numbers; fd 7, open in the CLI but not named, is not there. Behind the init, the init (seen
/// from the host) holds none of them while the payload runs; as PID 1 the payload is the first
/// process and holds them. The socket's peer sees the end once the sandbox is over: neither the
/// helper nor the daemon keeps a copy.
#[test]
fn the_payload_gets_each_passed_fd_at_its_number_and_only_the_payload() {
    if !nsjail_tests::require_root("--pass-fd through every way in") {
        return;
    }
    for_each_caller(|c: &Caller| {
        for pid1 in [false, true] {
            let scratch = c.scratch();
            let input = scratch.path().join("in");
            let output = scratch.path().join("out");
            let other = scratch.path().join("other");
            std::fs::write(&input, "from-host\n").unwrap();
            std::fs::write(&other, "not-passed\n").unwrap();
            let (ours, theirs) = UnixStream::pair().unwrap();
            ours.set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let theirs_link = socket_link(&theirs);
            let theirs = high(theirs);
            let (fin, fout, fother) = (
                file(&input, false),
                file(&output, true),
                file(&other, false),
            );
            let marker = nsjail_tests::unique();
            let script = "for n in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do test -e /proc/$$/fd/$n && \
                          printf '%s ' $n; done; echo; cat <&5; \
                          echo to-file >&9; echo to-socket >&8; reply=$(head -n 1 <&8); echo \"$reply\"";
            let mut args: Vec<&str> = vec!["--pass-fd", "5", "--pass-fd", "9", "--pass-fd", "8"];
            if pid1 {
                args.push("--as-pid-1");
            }
            args.extend(["--", "/bin/sh", "-c", script, &marker]);
            let mut cmd = c.run_cmd(&args);
            give(
                &mut cmd,
                &[(&fin, 5), (&fother, 7), (&theirs, 8), (&fout, 9)],
            );
            let what = format!(
                "[{}] nsjail run {} (pid 1: {pid1})",
                c.name(),
                args.join(" ")
            );
            let run = Running::spawn(&mut cmd, None, &what);
            drop((fin, fout, fother, theirs));
            let mut ours = ours;
            let mut got = [0u8; 10];
            ours.read_exact(&mut got)
                .unwrap_or_else(|e| panic!("{what}: nothing on the socket: {e}"));
            assert_eq!(&got, b"to-socket\n", "{what}");
            // The payload waits for our reply: look at the sandbox's processes from the host.
            // (Its command substitution is a fork with the same argv: the payload is the one
            // whose parent is not another of them.)
            let same = pids_with_argv(&["/bin/sh", "-c", script, &marker]);
            let payload: Vec<i32> = same
                .iter()
                .copied()
                .filter(|p| proc_stat(*p).is_some_and(|(ppid, ..)| !same.contains(&ppid)))
                .collect();
            assert_eq!(
                payload.len(),
                1,
                "{what}: the payload on the host: {payload:?} of {same:?}"
            );
            let holds = |pid: i32| {
                fd_links(pid)
                    .into_iter()
                    .filter(|(_, to)| {
                        *to == theirs_link || to.ends_with("/in") || to.ends_with("/out")
                    })
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>()
            };
            // (0 to 2 left out: the shell may still have one of them redirected for a moment.)
            let mut payload_holds = holds(payload[0]);
            payload_holds.retain(|&n| n >= 3);
            assert_eq!(payload_holds, [5, 8, 9], "{what}: the payload's fds");
            if !pid1 {
                let (init, ..) = proc_stat(payload[0]).unwrap();
                assert_eq!(
                    holds(init),
                    Vec::<i32>::new(),
                    "{what}: the init holds {:?}",
                    fd_links(init)
                );
                // The control: the init is the payload's parent, with fds of its own.
                assert!(!fd_links(init).is_empty(), "{what}");
            }
            ours.write_all(b"replied\n").unwrap();
            let out = run.wait();
            out.expect_success();
            let listed = out.stdout.lines().next().unwrap_or_default().to_string();
            assert_eq!(listed.trim(), "0 1 2 5 8 9", "{}", out.describe());
            assert!(
                out.stdout.ends_with("from-host\nreplied\n"),
                "{}",
                out.describe()
            );
            assert_eq!(
                std::fs::read_to_string(&output).unwrap(),
                "to-file\n",
                "{what}"
            );
            // Every copy of the passed socket is closed: ours reads its end.
            let mut rest = Vec::new();
            ours.read_to_end(&mut rest).unwrap_or_else(|e| {
                panic!("{what}: a copy of the passed socket is still open: {e}")
            });
            assert!(rest.is_empty(), "{what}");
        }
    });
}

/// Targets 0 to 2, 1024, a number twice, more than 64 and a closed fd are each refused in one line, exit 125, and the payload never runs. The
/// control: the same command with a good fd runs.
#[test]
fn bad_passed_fds_are_refused_in_one_line() {
    for_each_caller(|c: &Caller| {
        let script = "echo payload-ran";
        let data = file(&std::env::current_exe().unwrap(), false);
        let many: Vec<String> = (3..68)
            .flat_map(|n| ["--pass-fd".into(), n.to_string()])
            .collect();
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                vec!["--pass-fd".into(), "2".into()],
                "nsjail: --pass-fd 2: only fds 3 to 1023",
            ),
            (
                vec!["--pass-fd".into(), "0".into()],
                "nsjail: --pass-fd 0: only fds 3 to 1023",
            ),
            (
                vec!["--pass-fd".into(), "1024".into()],
                "nsjail: --pass-fd 1024: only fds 3 to 1023",
            ),
            (
                ["--pass-fd", "5", "--pass-fd", "5"]
                    .map(String::from)
                    .to_vec(),
                "nsjail: --pass-fd 5 is given more than once",
            ),
            (many, "nsjail: --pass-fd: too many entries (65, at most 64)"),
            (
                vec!["--pass-fd".into(), "6".into()],
                "nsjail: --pass-fd 6: file descriptor 6 is not open",
            ),
        ];
        for (opts, want) in cases {
            let mut args: Vec<&str> = opts.iter().map(String::as_str).collect();
            args.extend(["--", "/bin/sh", "-c", script]);
            let mut cmd = c.run_cmd(&args);
            give(&mut cmd, &[(&data, 5)]);
            let what = format!("[{}] nsjail run {}", c.name(), want);
            let out = Running::spawn(&mut cmd, None, &what).wait();
            out.expect_code(125)
                .expect_no_panic()
                .expect_one_error_line(want);
            assert!(
                !out.stdout.contains("payload-ran"),
                "the payload ran: {}",
                out.describe()
            );
        }
        // The control: fd 5 open, the payload runs.
        let mut cmd = c.run_cmd(&["--pass-fd", "5", "--", "/bin/sh", "-c", script]);
        give(&mut cmd, &[(&data, 5)]);
        let out = Running::spawn(&mut cmd, None, "fd 5 open").wait();
        out.expect_success();
        assert_eq!(out.stdout, "payload-ran\n", "{}", out.describe());
    });
}

/// `--dry-run` lists the passed fds, and the request carries them.
#[test]
fn dry_run_shows_the_passed_fds() {
    let c = &nsjail_tests::callers()[0];
    let data = file(&std::env::current_exe().unwrap(), false);
    for (format, want) in [
        ("--dry-run", "passed fds:  5, 9"),
        ("--dry-run=json", "\"pass_fds\": ["),
    ] {
        let mut cmd = c.run_cmd(&[format, "--pass-fd", "5", "--pass-fd", "9", "--", "true"]);
        give(&mut cmd, &[(&data, 5), (&data, 9)]);
        let out = Running::spawn(&mut cmd, None, format).wait();
        out.expect_success();
        assert!(out.stdout.contains(want), "{}", out.describe());
    }
    // The control: none passed, none listed.
    let out = c.run(&["--dry-run", "--", "true"]);
    out.expect_success();
    assert!(!out.stdout.contains("passed fds:"), "{}", out.describe());
}
