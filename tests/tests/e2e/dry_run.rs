//! `--dry-run` says what would run, as text or JSON, and runs nothing; `--help` has examples.

use nsjail_tests::{Running, for_each_caller, shell_words};

#[test]
fn dry_run_describes_and_runs_nothing() {
    for_each_caller(|c| {
        let dir = c.scratch();
        let marker = dir.path().join("ran");
        let script = format!("touch {}", marker.display());
        let run = |args: &[&str]| {
            let mut cmd = c.run_cmd(args);
            cmd.current_dir(dir.path());
            Running::spawn(
                &mut cmd,
                None,
                &format!("[{}] nsjail run {}", c.name(), shell_words(args)),
            )
            .wait()
        };
        let out = run(&[
            "--dry-run",
            "--hostname",
            "dry",
            "--tmpfs",
            "/scratch",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ]);
        out.expect_success();
        for want in [
            "nothing was started",
            "hostname:    dry",
            "namespaces:  new user, mount, pid",
            "network:     none",
            "1  --tmpfs /scratch",
            "helper:",
        ] {
            assert!(
                out.stdout.contains(want),
                "{want:?} missing:\n{}",
                out.describe()
            );
        }
        assert!(
            !marker.exists(),
            "--dry-run ran the command:\n{}",
            out.describe()
        );

        let out = run(&[
            "--dry-run=json",
            "--net",
            "host",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ]);
        out.expect_success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.describe()));
        assert_eq!(v["request"]["argv"][0], "/bin/sh", "{}", out.describe());
        assert_eq!(
            v["request"]["namespaces"]["net"],
            false,
            "{}",
            out.describe()
        );
        assert!(
            v["request"]["mounts"]
                .as_array()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            out.describe()
        );
        let mode = v["resolved"]["helper"]["mode"].as_str().unwrap_or("");
        if c.kind == nsjail_tests::CallerKind::SetuidUser {
            assert_eq!(mode, "setuid root", "{}", out.describe());
        }
        assert!(!marker.exists(), "--dry-run=json ran the command");

        // Bad input is still refused, in one line.
        run(&["--dry-run=xml", "--", "true"])
            .expect_code(125)
            .expect_one_error_line("nsjail:");
    });
}

#[test]
fn help_has_examples_and_defaults() {
    for_each_caller(|c| {
        for args in [&["--help"][..], &["run", "--help"][..]] {
            let mut cmd = c.nsjail_cmd();
            cmd.args(args);
            let out = Running::spawn(&mut cmd, None, "nsjail --help").wait();
            out.expect_success();
            assert!(out.stdout.contains("Examples:"), "{}", out.describe());
            assert!(
                out.stdout.contains("nsjail run --net pasta"),
                "{}",
                out.describe()
            );
        }
    });
}

/// The text form states the limits and the filters the request carries (it once printed
/// `none` for both, whatever was asked).
#[test]
fn the_text_dry_run_states_the_limits_and_the_filters() {
    let c = nsjail_tests::Caller::myself();
    let line = |args: &[&str], key: &str| -> String {
        let mut all = vec!["--dry-run"];
        all.extend_from_slice(args);
        all.extend(["--", "/bin/true"]);
        let out = c.run(&all);
        out.expect_success();
        out.stdout
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{key}:"))
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {key}: line\n{}", out.describe()))
    };
    // The control: nothing asked, nothing stated.
    assert_eq!(line(&[], "limits"), "none");
    let limits = line(
        &[
            "--memory-limit",
            "64M",
            "--time-limit",
            "2",
            "--wall-time-limit",
            "1.5",
            "--kill-grace",
            "0.25",
            "--pids-limit",
            "10",
            "--cpus",
            "0.5",
            "--rlimit",
            "nofile=64",
        ],
        "limits",
    );
    assert_eq!(
        limits,
        "cpu time 2.000 s, wall time 1.500 s, SIGTERM at a time limit, SIGKILL 0.250 s later, \
         memory 67108864 bytes (64 MiB), 10 processes, 0.500 CPUs, rlimit nofile 64:64"
    );
    let default = "nsjail's default filter (dangerous system calls and TIOCSTI denied)";
    assert_eq!(line(&[], "seccomp"), default);
    assert_eq!(
        line(&["--allow-userns", "--allow-ptrace"], "seccomp"),
        format!("{default}, allowing new user namespaces and ptrace")
    );
    assert_eq!(
        line(&["--seccomp", "none"], "seccomp"),
        "none (--seccomp none)"
    );
}
