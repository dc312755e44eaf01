//! The rules the end-to-end harness enforces on every test, tested themselves: the skip rule
//! (`nsjail_tests::skip`, tests/allowed-skips.txt) and the way-in check of every CLI run
//! (`Running::wait`). These need neither root nor the real binaries.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::{Command, ExitStatus};

use nsjail_tests::{
    ALLOWED_SKIPS, Output, Running, WAY_IN_LINE, WAY_IN_VAR, WayIn, allowed_skip_reasons,
    check_way_in, ci_value_is_set, scratch_dir,
};

#[test]
fn ci_counts_as_set_for_any_value_but_empty_false_and_0() {
    for (value, set) in [
        (None, false),
        (Some(""), false),
        (Some("false"), false),
        (Some("0"), false),
        (Some("true"), true),
        (Some("1"), true),
        (Some("yes"), true),
        (Some("TRUE"), true),
    ] {
        assert_eq!(ci_value_is_set(value), set, "CI={value:?}");
    }
}

#[test]
fn the_allow_list_is_short_and_says_why() {
    let reasons = allowed_skip_reasons();
    assert!(
        !reasons.is_empty() && reasons.len() <= 8,
        "the allow-list must stay short: {reasons:?}"
    );
    for line in ALLOWED_SKIPS
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (reason, why) = line
            .split_once(" # ")
            .unwrap_or_else(|| panic!("no ` # why` on the allowed skip {line:?}"));
        assert!(
            !reason.trim().is_empty() && why.trim().len() > 10,
            "{line:?}"
        );
    }
    let mut sorted = reasons.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), reasons.len(), "duplicates: {reasons:?}");
}

/// The probe half of [`a_skip_fails_under_ci_unless_allowed_and_always_in_the_guest`]: in a
/// child of that test, skip with the reason it was given.
const PROBE_VAR: &str = "NSJAIL_E2E_SKIP_PROBE";

/// Run this test binary's skip probe with `env`; its status and its skip log.
fn skip_probe(reason: &str, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let dir = scratch_dir();
    let log = dir.path().join("skips.log");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "a_skip_fails_under_ci_unless_allowed_and_always_in_the_guest",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_clear()
    .env(PROBE_VAR, reason)
    .env("NSJAIL_E2E_SKIP_LOG", &log)
    .envs(env.iter().copied());
    let out = cmd.output().expect("run the skip probe");
    (
        out.status,
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

#[test]
fn a_skip_fails_under_ci_unless_allowed_and_always_in_the_guest() {
    if let Ok(reason) = std::env::var(PROBE_VAR) {
        nsjail_tests::skip("probe", &reason);
        return;
    }
    let allowed = allowed_skip_reasons()[0];
    let other = "needs something this host lacks";
    /// (reason, environment, the probe passes)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let cases: [Case; 8] = [
        (other, &[], true),
        (other, &[("CI", "false")], true),
        (other, &[("CI", "0")], true),
        (other, &[("CI", "true")], false),
        (other, &[("CI", "1")], false),
        (allowed, &[("CI", "true")], true),
        // The guest of `cargo xtask vmtest` allows no skip, not even an allowed one.
        (
            allowed,
            &[("CI", "true"), ("NSJAIL_E2E_SYSTEM", "setuid")],
            false,
        ),
        (allowed, &[("NSJAIL_E2E_SYSTEM", "systemd")], false),
    ];
    for (reason, env, passes) in cases {
        let (status, log) = skip_probe(reason, env);
        assert_eq!(
            status.success(),
            passes,
            "skip {reason:?} with {env:?}: {status}"
        );
        // Every skip is logged, whether it is allowed or not.
        assert_eq!(log, format!("probe: skipped: {reason}\n"), "{env:?}");
    }
}

fn output(code: i32, stderr: &str) -> Output {
    Output {
        what: "a made-up run".into(),
        status: ExitStatus::from_raw(code << 8),
        stdout: String::new(),
        stderr: stderr.into(),
    }
}

/// Whether [`check_way_in`] accepts `stderr` of a run that ended with `code`.
fn accepted(stderr: &str, way: WayIn, must_say: bool, code: i32) -> bool {
    let out = output(code, stderr);
    catch_unwind(AssertUnwindSafe(|| {
        check_way_in(stderr, way, must_say, &out)
    }))
    .is_ok()
}

#[test]
fn the_way_in_check_accepts_only_the_stated_way() {
    let daemon = format!("{WAY_IN_LINE}daemon (/run/nsjail/helper.sock, socket from default)\n");
    let setuid = format!("{WAY_IN_LINE}setuid (helper /x/nsjail-helper, found by --helper)\n");
    assert!(accepted(&daemon, WayIn::Daemon, true, 0));
    assert!(accepted(
        &format!("note\n{daemon}more\n"),
        WayIn::Daemon,
        true,
        3
    ));
    // Another way in, said once or twice, or not said at all by a run that got that far.
    assert!(!accepted(&setuid, WayIn::Daemon, true, 0));
    assert!(!accepted(
        &format!("{daemon}{daemon}"),
        WayIn::Daemon,
        true,
        0
    ));
    assert!(!accepted("", WayIn::Daemon, true, 0));
    assert!(!accepted("", WayIn::Daemon, true, 127));
    // Bad input ends before a way in is chosen (125), and some runs never choose one.
    assert!(accepted("nsjail: bad option\n", WayIn::Daemon, true, 125));
    assert!(accepted("", WayIn::Daemon, false, 0));
    assert!(!accepted(&setuid, WayIn::Daemon, false, 0));
}

/// A stand-in `nsjail` in a scratch directory that says `line` on stderr and exits 0.
fn fake_cli(dir: &Path, line: &str) -> std::path::PathBuf {
    let p = dir.join("nsjail");
    std::fs::write(
        &p,
        format!("#!/bin/sh\necho out\nprintf '%s\\n' '{line}' >&2\n"),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn running_checks_and_hides_the_way_in_of_every_cli_run() {
    let dir = scratch_dir();
    let cli = fake_cli(dir.path(), &format!("{WAY_IN_LINE}setuid (helper /x)"));
    let run = |way: &str, args: &[&str]| {
        let mut cmd = Command::new(&cli);
        cmd.args(args).env(WAY_IN_VAR, way);
        catch_unwind(AssertUnwindSafe(|| {
            Running::spawn(&mut cmd, None, "fake nsjail").wait()
        }))
    };
    // The stated way: checked, and the line is not part of what the test reads.
    let out = run("setuid", &["run", "--", "true"]).expect("the stated way was taken");
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("out\n", ""));
    // Another: the run fails, whatever the test then checks.
    assert!(run("daemon", &["run", "--", "true"]).is_err());

    // A CLI that never says its way in fails every `run` that got past its input ...
    let silent = fake_cli(dir.path(), "nothing to say");
    let mut cmd = Command::new(&silent);
    cmd.args(["run", "--", "true"]).env(WAY_IN_VAR, "setuid");
    let r = catch_unwind(AssertUnwindSafe(|| {
        Running::spawn(&mut cmd, None, "silent").wait()
    }));
    assert!(r.is_err(), "a silent CLI passed");
    // ... but not a dry run, which chooses no way in.
    let mut cmd = Command::new(&silent);
    cmd.args(["run", "--dry-run", "--", "true"])
        .env(WAY_IN_VAR, "setuid");
    Running::spawn(&mut cmd, None, "silent dry run").wait();
}

#[test]
fn every_skip_goes_through_the_harness() {
    // A test that prints its own "skipped" escapes the rule: CI would never see it.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The harness's own skip() (src/skip.rs) is the one place that says it.
    let mut files = Vec::new();
    for d in ["src", "tests/e2e", "tests"] {
        for e in std::fs::read_dir(dir.join(d)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "rs") {
                files.push(e.path());
            }
        }
    }
    assert!(files.len() > 30, "{files:?}");
    let mut offenders = Vec::new();
    for f in files
        .iter()
        .filter(|f| !f.ends_with("suite_rules.rs") && !f.ends_with("src/skip.rs"))
    {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("skipped:") || code.contains("skipped\"") {
                offenders.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "say skips with nsjail_tests::skip(), not by hand:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_test_terminal_is_close_on_exec() {
    // openpty(3) opens both ends inheritable; in the many-threaded test process a sandbox
    // another test starts meanwhile would hold them. nsjail_tests::openpty() is the one way.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut offenders = Vec::new();
    for d in ["src", "tests/e2e", "tests"] {
        for e in std::fs::read_dir(dir.join(d)).unwrap().flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "rs") || path.ends_with("suite_rules.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if code.contains("pty::openpty") || code.contains("libc::openpty") {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "open terminals with nsjail_tests::openpty():\n{}",
        offenders.join("\n")
    );
}
