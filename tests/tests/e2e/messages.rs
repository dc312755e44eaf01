//! What the user reads: every message here is checked word for word, next to the same set-up
//! succeeding in silence. Argument errors say what was wrong and which `--help` to read; a
//! limit that ends the sandbox says which; a command missing from a view that the options
//! replaced says so.

use nsjail_tests::hardening::PolicyEnv;
use nsjail_tests::{Caller, Output, Running, for_each_caller, root_or_skip, shell_words};

/// `nsjail ARGS...` (no `run` added) as `c`.
fn nsjail(c: &Caller, args: &[&str]) -> Output {
    let mut cmd = c.nsjail_cmd();
    cmd.args(args);
    let what = format!("[{}] nsjail {}", c.name(), shell_words(args));
    Running::spawn(&mut cmd, None, &what).wait()
}

/// Exit code `code`, nothing on stdout, and exactly `stderr` (one line) on stderr.
#[track_caller]
fn expect_exactly(out: &Output, code: i32, stderr: &str) {
    out.expect_code(code).expect_no_panic();
    assert_eq!(out.stderr, format!("{stderr}\n"), "{}", out.describe());
    assert_eq!(out.stdout, "", "{}", out.describe());
}

#[test]
fn argument_errors_say_what_was_wrong_and_which_help_to_read() {
    let cmd = "nsjail: no command given: nsjail run [OPTIONS] -- CMD [ARGS...]";
    let cases: [(&[&str], String); 9] = [
        (&[], format!("{cmd} (see nsjail --help)")),
        (&["run"], format!("{cmd} (see nsjail run --help)")),
        (&["run", "--"], format!("{cmd} (see nsjail run --help)")),
        (
            &["profile"],
            "nsjail: profile needs a subcommand: nsjail profile list, or nsjail profile show \
             NAME (see nsjail profile --help)"
                .into(),
        ),
        (
            &["profile", "show"],
            "nsjail: no profile name given: nsjail profile show NAME (names: nsjail profile \
             list) (see nsjail profile show --help)"
                .into(),
        ),
        (
            &["rn", "--", "true"],
            "nsjail: unknown subcommand 'rn': did you mean 'run'? (see nsjail --help)".into(),
        ),
        (
            &["run", "--net", "tor", "--", "true"],
            "nsjail: invalid value 'tor' for '--net <MODE>': one of none, host, pasta (see \
             nsjail run --help)"
                .into(),
        ),
        (
            &["run", "--hostnam", "x", "--", "true"],
            "nsjail: unknown option '--hostnam': did you mean '--hostname'? (see nsjail run \
             --help)"
                .into(),
        ),
        (
            &["run", "--profile", "devtool", "--net", "tor", "--", "true"],
            "nsjail: invalid value 'tor' for '--net <MODE>': one of none, host, pasta (see \
             nsjail run --help)"
                .into(),
        ),
    ];
    for_each_caller(|c| {
        for (args, want) in &cases {
            expect_exactly(&nsjail(c, args), 125, want);
        }
        // The controls: the same commands, right, run.
        nsjail(c, &["run", "--", "true"]).expect_success();
        nsjail(
            c,
            &["run", "--net", "none", "--hostname", "x", "--", "true"],
        )
        .expect_success();
        let out = nsjail(c, &["profile", "show", "devtool"]);
        out.expect_success();
        assert!(
            out.stdout.contains("# profile devtool"),
            "{}",
            out.describe()
        );
    });
}

/// A run as `c` with `args`; its stderr must be exactly `want` (nothing when empty).
#[track_caller]
fn expect_run(c: &Caller, args: &[&str], code: i32, want: &str) {
    let out = c.run(args);
    out.expect_code(code).expect_no_panic();
    let want = if want.is_empty() {
        String::new()
    } else {
        format!("{want}\n")
    };
    assert_eq!(out.stderr, want, "{}", out.describe());
}

#[test]
fn a_limit_that_ends_the_sandbox_says_which() {
    root_or_skip!();
    let spin = ["/bin/sh", "-c", "while :; do :; done"];
    // dd fills one 200 MiB buffer: the whole of it is touched, more than 64 MiB.
    let hog = [
        "/bin/dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=200M",
        "count=1",
    ];
    for_each_caller(|c| {
        let with = |opts: &[&str], cmd: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
            v.push("--".into());
            v.extend(cmd.iter().map(|s| s.to_string()));
            v
        };
        let run = |v: Vec<String>| c.run(&v.iter().map(String::as_str).collect::<Vec<_>>());
        let check = |out: Output, code: i32, want: &str| {
            out.expect_code(code).expect_no_panic();
            let want = if want.is_empty() {
                String::new()
            } else {
                format!("{want}\n")
            };
            assert_eq!(out.stderr, want, "{}", out.describe());
        };
        check(
            run(with(&["--time-limit", "1"], &spin)),
            137,
            "nsjail: CPU time limit (1 s) reached: killed",
        );
        check(
            run(with(&["--wall-time-limit", "0.5"], &["/bin/sleep", "30"])),
            137,
            "nsjail: wall-clock time limit (0.5 s) reached: killed",
        );
        check(
            run(with(
                &["--wall-time-limit", "0.5", "--kill-grace", "5"],
                &["/bin/sleep", "30"],
            )),
            143,
            "nsjail: wall-clock time limit (0.5 s) reached: ended by SIGTERM",
        );
        // dd's own complaint may come first; ours is the last line.
        let out = run(with(&["--memory-limit", "64M"], &hog));
        out.expect_code(137).expect_no_panic();
        assert!(
            out.stderr.ends_with(
                "nsjail: memory limit (64 MiB) reached: the kernel's OOM killer killed 1 process\n"
            ),
            "{}",
            out.describe()
        );
        // The controls: the same limits, not reached, say nothing.
        check(
            run(with(
                &["--time-limit", "1", "--wall-time-limit", "5"],
                &["/bin/true"],
            )),
            0,
            "",
        );
        let out = run(with(
            &["--memory-limit", "64M"],
            &[
                "/bin/dd",
                "if=/dev/zero",
                "of=/dev/null",
                "bs=1M",
                "count=1",
            ],
        ));
        out.expect_success();
        assert!(!out.stderr.contains("nsjail:"), "{}", out.describe());
    });
}

#[test]
fn a_limit_from_the_policy_says_so_and_a_refusal_names_the_option() {
    root_or_skip!();
    let c = Caller::setuid_user();
    let env = PolicyEnv::with_policy("[limits]\nmemory_bytes = 67108864\nwall_time_secs = 1\n");
    let out = env.run(&c, None, &["--", "/bin/sleep", "30"]);
    out.expect_code(137);
    assert_eq!(
        out.stderr,
        "nsjail: wall-clock time limit (the admin's ceiling) reached: killed\n",
        "{}",
        out.describe()
    );
    let out = env.run(&c, None, &["--memory-limit", "1G", "--", "/bin/true"]);
    expect_exactly(
        &out,
        125,
        "nsjail: --memory-limit 1 GiB is above the policy's ceiling of 64 MiB \
         (limits.memory_bytes)",
    );
    // The control: within the ceiling, silent.
    let out = env.run(&c, None, &["--memory-limit", "32M", "--", "/bin/true"]);
    out.expect_success();
    assert_eq!(out.stderr, "", "{}", out.describe());
}

#[test]
fn a_command_missing_from_a_replaced_view_says_the_view_was_replaced() {
    for_each_caller(|c| {
        let dir = c.scratch();
        std::fs::write(dir.path().join("data.txt"), "x").unwrap();
        let d = dir.path().to_str().unwrap();
        expect_run(
            c,
            &["--bind", d, "/data", "--", "ls", "/data"],
            127,
            "nsjail: cannot execute \"ls\": No such file or directory; --bind replaced the \
             default view, so the system's /usr and /bin are not inside (--default-view keeps \
             it and adds your options)",
        );
        // The control: --default-view keeps the system, and the same command runs.
        let out = c.run(&["--default-view", "--bind", d, "/data", "--", "ls", "/data"]);
        out.expect_success();
        assert_eq!(out.out(), "data.txt", "{}", out.describe());
        // A view that has the system: a command that is not there is only that.
        expect_run(
            c,
            &[
                "--ro-bind",
                "/usr",
                "/usr",
                "--bind",
                d,
                "/data",
                "--",
                "no-such-command",
            ],
            127,
            "nsjail: cannot execute \"no-such-command\": No such file or directory",
        );
    });
}

#[test]
fn x11_without_a_display_leaves_no_display_variable_inside() {
    for_each_caller(|c| {
        let show = [
            "--",
            "/bin/sh",
            "-c",
            "echo \"D=${DISPLAY-unset} X=${XAUTHORITY-unset}\"",
        ];
        let run = |opts: &[&str]| {
            let mut args: Vec<&str> = opts.to_vec();
            args.extend(show);
            let mut cmd = c.run_cmd(&args);
            cmd.env("DISPLAY", ":4077")
                .env("XAUTHORITY", "/nonexistent/auth");
            Running::spawn(&mut cmd, None, &format!("[{}] {args:?}", c.name())).wait()
        };
        let out = run(&["--x11"]);
        out.expect_success();
        assert_eq!(out.out(), "D=unset X=unset", "{}", out.describe());
        assert_eq!(
            out.stderr,
            "nsjail: warning: --x11: no X11 socket at /tmp/.X11-unix/X4077; no display shared\n",
            "{}",
            out.describe()
        );
        // The control: without --x11 the caller's environment passes as it is.
        let out = run(&[]);
        out.expect_success();
        assert_eq!(
            out.out(),
            "D=:4077 X=/nonexistent/auth",
            "{}",
            out.describe()
        );
    });
}

#[test]
fn a_program_whose_interpreter_is_missing_says_which() {
    // A script whose #! names a file the view does not have: the file exists, so "No such file
    // or directory" alone would be a riddle; the message names what is missing.
    for_each_caller(|c| {
        let dir = c.scratch();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/nonexistent/interpreter\necho hi\n").unwrap();
        let ok = dir.path().join("ok.sh");
        std::fs::write(&ok, "#!/bin/sh\necho ran-$((2*3))\n").unwrap();
        for f in [&script, &ok] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::chown(f, Some(c.uid), Some(c.gid)).unwrap_or(());
        }
        let d = dir.path().to_str().unwrap();
        let run = |name: &str| {
            c.run(&[
                "--default-view",
                "--ro-bind",
                d,
                "/w",
                "--",
                &format!("/w/{name}"),
            ])
        };
        expect_exactly(
            &run("run.sh"),
            127,
            "nsjail: cannot execute \"/w/run.sh\": /w/run.sh needs /nonexistent/interpreter, which \
             is not in the sandbox",
        );
        // The control: the same with an interpreter that is there.
        let out = run("ok.sh");
        out.expect_success();
        assert_eq!(out.out(), "ran-6", "{}", out.describe());
        // A dynamically linked program in a view without its loader (/usr but no /lib64 or
        // /lib): the loader is named.
        let out = c.run(&["--ro-bind", "/usr", "/usr", "--", "/usr/bin/true"]);
        out.expect_code(127);
        assert!(
            out.stderr
                .starts_with("nsjail: cannot execute \"/usr/bin/true\": /usr/bin/true needs /")
                && out.stderr.ends_with(", which is not in the sandbox\n"),
            "{}",
            out.describe()
        );
    });
}
