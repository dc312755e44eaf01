//! The payload's environment, argv[0] and working directory.

use nsjail_tests::{Running, for_each_caller, shell_words};

#[test]
fn the_callers_environment_passes_through_by_default() {
    for_each_caller(|c| {
        let args = ["--", "/bin/sh", "-c", "echo \"[$E2E_MARKER] [$HOME]\""];
        let mut cmd = c.run_cmd(&args);
        cmd.env("E2E_MARKER", "marker value");
        let out = Running::spawn(
            &mut cmd,
            None,
            &format!("[{}] {}", c.name(), shell_words(&args)),
        )
        .wait();
        out.expect_success();
        let home = if c.uid == 0 { "/root" } else { "/" };
        assert_eq!(
            out.out(),
            format!("[marker value] [{home}]"),
            "{}",
            out.describe()
        );
    });
}

#[test]
fn setenv_unsetenv_and_clearenv() {
    for_each_caller(|c| {
        let out = c.sh(
            &[
                "--setenv",
                "E2E_A",
                "one two",
                "--setenv",
                "HOME",
                "/elsewhere",
            ],
            "echo \"$E2E_A|$HOME\"",
        );
        out.expect_success();
        assert_eq!(out.out(), "one two|/elsewhere", "{}", out.describe());

        let out = c.sh(&["--unsetenv", "HOME"], "echo \"${HOME-unset}|$PATH\"");
        out.expect_success();
        let path = if c.uid == 0 {
            nsjail_tests::ROOT_PATH
        } else {
            nsjail_tests::USER_PATH
        };
        assert_eq!(out.out(), format!("unset|{path}"), "{}", out.describe());

        let out = c.run(&["--clearenv", "--", "/usr/bin/env"]);
        out.expect_success();
        assert_eq!(
            out.out(),
            "",
            "[{}] --clearenv left {}",
            c.name(),
            out.describe()
        );

        let out = c.run(&[
            "--clearenv",
            "--setenv",
            "ONLY",
            "this",
            "--",
            "/usr/bin/env",
        ]);
        out.expect_success();
        assert_eq!(out.lines(), ["ONLY=this"], "{}", out.describe());
    });
}

#[test]
fn argv0_names_the_payload() {
    for_each_caller(|c| {
        let out = c.run(&[
            "--argv0",
            "myname-e2e",
            "--",
            "/bin/sh",
            "-c",
            "tr '\\0' ' ' < /proc/$$/cmdline",
        ]);
        out.expect_success();
        assert!(
            out.out().starts_with("myname-e2e -c "),
            "[{}] argv[0] should be myname-e2e: {}",
            c.name(),
            out.describe()
        );
        // Without it, argv[0] is the command as given.
        let out = c.run(&["--", "/bin/sh", "-c", "tr '\\0' ' ' < /proc/$$/cmdline"]);
        out.expect_success();
        assert!(out.out().starts_with("/bin/sh -c "), "{}", out.describe());
    });
}

#[test]
fn chdir_and_the_default_working_directory() {
    for_each_caller(|c| {
        let out = c.run(&["--chdir", "/tmp", "--", "/bin/pwd"]);
        out.expect_success();
        assert_eq!(out.out(), "/tmp", "{}", out.describe());

        // By default the payload starts where the caller is.
        let scratch = c.scratch();
        let args = ["--", "/bin/pwd"];
        let mut cmd = c.run_cmd(&args);
        cmd.current_dir(scratch.path());
        let out = Running::spawn(
            &mut cmd,
            None,
            &format!("[{}] pwd in a scratch dir", c.name()),
        )
        .wait();
        out.expect_success();
        assert_eq!(
            out.out(),
            scratch.path().to_str().unwrap(),
            "{}",
            out.describe()
        );
    });
}
