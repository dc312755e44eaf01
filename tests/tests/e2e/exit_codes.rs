//! The CLI exits like the payload: its code, 128+N for signal N, and 125/126/127 for set-up
//! failures, non-executable and missing commands, each with one `nsjail:` line on stderr.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};

use nsjail_tests::{for_each_caller, is_root};

#[test]
fn payload_exit_codes_pass_through() {
    for_each_caller(|c| {
        for code in [0, 1, 3, 42, 255] {
            let out = c.sh(&[], &format!("exit {code}"));
            out.expect_code(code).expect_no_panic();
            assert_eq!(out.stderr, "", "[{}] {}", c.name(), out.describe());
        }
    });
}

#[test]
fn death_by_signal_is_128_plus_n() {
    for_each_caller(|c| {
        c.sh(&[], "kill -9 $$")
            .expect_code(128 + 9)
            .expect_no_panic();
        c.sh(&[], "kill -SEGV $$")
            .expect_code(128 + 11)
            .expect_no_panic();
        c.sh(&[], "kill -TERM $$")
            .expect_code(128 + 15)
            .expect_no_panic();
    });
}

#[test]
fn missing_command_is_127() {
    for_each_caller(|c| {
        for cmd in ["/nonexistent-e2e/command", "no-such-command-e2e"] {
            let out = c.run(&["--", cmd, "arg"]);
            out.expect_code(127)
                .expect_no_panic()
                .expect_one_error_line("nsjail:");
            assert!(
                out.stderr.contains(cmd),
                "[{}] the message should name {cmd:?}: {}",
                c.name(),
                out.describe()
            );
        }
    });
}

#[test]
fn non_executable_command_is_126() {
    for_each_caller(|c| {
        let scratch = c.scratch();
        let file = scratch.path().join("not-executable");
        fs::write(&file, "#!/bin/sh\necho should-not-run\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        if is_root() {
            chown(&file, Some(c.uid), Some(c.gid)).unwrap();
        }
        let dir = scratch.path().join("a-directory");
        fs::create_dir(&dir).unwrap();
        if is_root() {
            chown(&dir, Some(c.uid), Some(c.gid)).unwrap();
        }
        let view = nsjail_tests::with_dir(scratch.path());
        for target in [&file, &dir] {
            let t = target.to_str().unwrap();
            let mut args: Vec<&str> = view.iter().map(String::as_str).collect();
            args.extend(["--", t]);
            let out = c.run(&args);
            out.expect_code(126)
                .expect_no_panic()
                .expect_one_error_line("nsjail:");
            assert!(!out.stdout.contains("should-not-run"), "{}", out.describe());
        }
    });
}

#[test]
fn setup_failure_is_125_with_one_line() {
    for_each_caller(|c| {
        let long = "h".repeat(65);
        let cases: Vec<Vec<&str>> = vec![
            vec!["--hostname", &long, "--", "/bin/true"],
            vec![
                "--helper",
                "/nonexistent-e2e/nsjail-helper",
                "--",
                "/bin/true",
            ],
            vec!["--helper", "/etc/passwd", "--", "/bin/true"],
            vec!["--chdir", "/nonexistent-e2e-dir", "--", "/bin/true"],
        ];
        for args in cases {
            c.run(&args)
                .expect_code(125)
                .expect_no_panic()
                .expect_one_error_line("nsjail:");
        }
    });
}

#[test]
fn bad_usage_is_125_with_one_line() {
    for_each_caller(|c| {
        let cases: Vec<Vec<&str>> = vec![
            vec!["--no-such-option-e2e", "--", "/bin/true"],
            vec![],
            vec!["--"],
            vec!["--uid", "not-a-number", "--", "/bin/true"],
        ];
        for args in cases {
            c.run(&args)
                .expect_code(125)
                .expect_no_panic()
                .expect_one_error_line("nsjail:");
        }
    });
}

#[test]
fn missing_subcommand_is_bad_usage() {
    for_each_caller(|c| {
        // An unknown subcommand: one line.
        let mut cmd = c.nsjail_cmd();
        cmd.arg("no-such-subcommand-e2e");
        let what = format!("[{}] nsjail no-such-subcommand-e2e", c.name());
        nsjail_tests::Running::spawn(&mut cmd, None, &what)
            .wait()
            .expect_code(125)
            .expect_no_panic()
            .expect_one_error_line("nsjail:");
        // No subcommand at all: a usage error too, in one line.
        let mut cmd = c.nsjail_cmd();
        let what = format!("[{}] nsjail (no arguments)", c.name());
        nsjail_tests::Running::spawn(&mut cmd, None, &what)
            .wait()
            .expect_code(125)
            .expect_no_panic()
            .expect_one_error_line("nsjail:");
    });
}
