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
