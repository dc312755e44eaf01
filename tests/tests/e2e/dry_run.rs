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

#[test]
fn dry_run_text_says_the_limits_and_the_filter_the_json_has() {
    for_each_caller(|c| {
        let line = |out: &nsjail_tests::Output, key: &str| -> String {
            out.stdout
                .lines()
                .find(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("no {key} line:\n{}", out.describe()))
                .to_string()
        };
        let limited = [
            "--dry-run",
            "--memory-limit",
            "64M",
            "--time-limit",
            "2",
            "--rlimit",
            "nofile=64",
            "--allow-ptrace",
            "--",
            "true",
        ];
        let out = c.run(&limited);
        out.expect_success();
        assert_eq!(
            line(&out, "limits:"),
            "limits:      CPU time 2 s (every process together), memory 64 MiB (swap off)",
            "{}",
            out.describe()
        );
        assert_eq!(
            line(&out, "rlimits:"),
            "rlimits:     nofile=64, core=0 (no core dumps); the rest as yours"
        );
        assert_eq!(
            line(&out, "seccomp:"),
            "seccomp:     nsjail's default filter (dangerous system calls and TIOCSTI denied), \
             but ptrace allowed"
        );
        // The JSON form says the same.
        let mut json = limited.to_vec();
        json[0] = "--dry-run=json";
        let out = c.run(&json);
        out.expect_success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let l = &v["request"]["limits"];
        assert_eq!(l["memory_bytes"], 64 << 20, "{}", out.describe());
        assert_eq!(l["cpu_time_us"], 2_000_000, "{}", out.describe());
        assert_eq!(v["request"]["seccomp"], "Default", "{}", out.describe());
        // The control: without options, none, and the filter is still there; and
        // --seccomp none says none.
        let out = c.run(&["--dry-run", "--seccomp", "none", "--", "true"]);
        out.expect_success();
        assert_eq!(line(&out, "limits:"), "limits:      none");
        assert_eq!(line(&out, "seccomp:"), "seccomp:     none (--seccomp none)");
        // profile show inherits it: judge's limits are in its text.
        let mut cmd = c.nsjail_cmd();
        cmd.args(["profile", "show", "judge"]);
        let out = Running::spawn(&mut cmd, None, "nsjail profile show judge").wait();
        out.expect_success();
        assert_eq!(
            line(&out, "limits:"),
            "limits:      CPU time 10 s (every process together), wall-clock time 30 s, memory \
             1 GiB (swap off), 64 processes",
            "{}",
            out.describe()
        );
        assert!(
            line(&out, "seccomp:").starts_with("seccomp:     nsjail's default filter"),
            "{}",
            out.describe()
        );
    });
}
