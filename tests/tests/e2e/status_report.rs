//! The run report: JSON to a file or a descriptor, isolate's meta format, and `XX` when the
//! sandbox could not be set up.

use std::fs;

use nsjail_tests::{Running, for_each_caller, shell_words};
use serde_json::Value;

use crate::limits::run_limited;

const FIELDS: [&str; 10] = [
    "cgroup_memory_peak",
    "cpu_time",
    "exit_code",
    "killed_by_supervisor",
    "max_rss",
    "message",
    "oom_killed",
    "signal",
    "status",
    "wall_time",
];

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn the_json_report_has_exactly_the_documented_fields() {
    for_each_caller(|c| {
        let l = run_limited(c, &[], &["/bin/sh", "-c", "exit 3"]);
        assert_eq!(keys(&l.report), FIELDS, "{}", l.describe());
        l.expect_status("RE");
        assert_eq!(l.report["exit_code"], 3);
        assert!(l.report["signal"].is_null());
        assert_eq!(l.report["message"], "Exited with error status 3");
        l.out.expect_code(3);

        let l = run_limited(c, &[], &["/bin/sh", "-c", "kill -SEGV $$"]);
        l.expect_status("SG");
        assert_eq!(l.report["signal"], 11);
        assert!(l.report["exit_code"].is_null());

        let l = run_limited(c, &[], &["/bin/true"]);
        l.expect_status("OK");
        assert_eq!(l.report["exit_code"], 0);
        assert_eq!(l.report["oom_killed"], false);
        assert_eq!(l.report["killed_by_supervisor"], false);
        assert!(l.f64("wall_time") > 0.0 && l.f64("cpu_time") >= 0.0);
        assert!(l.u64("max_rss") > 0);
    });
}

#[test]
fn status_fd_and_meta_get_the_same_report() {
    for_each_caller(|c| {
        let scratch = c.scratch();
        // fd 3 opened by a shell as the caller, the way a judge's wrapper would.
        let nsjail = c.nsjail.display().to_string();
        let script = format!(
            "exec 3>fd-report; exec {nsjail} run --status-fd 3 --meta meta.txt \
             --status-json file-report -- /bin/sh -c 'exit 7'"
        );
        let mut cmd = c.command_for("/bin/sh");
        cmd.args(["-c", &script]).current_dir(scratch.path());
        let what = format!("[{}] sh -c {}", c.name(), shell_words(&[&script]));
        let out = Running::spawn(&mut cmd, None, &what).wait();
        out.expect_code(7).expect_no_panic();
        let from_fd = fs::read_to_string(scratch.path().join("fd-report")).unwrap();
        let from_file = fs::read_to_string(scratch.path().join("file-report")).unwrap();
        assert_eq!(from_fd, from_file, "{what}");
        assert_eq!(from_fd.lines().count(), 1, "one JSON object, one line");
        let v: Value = serde_json::from_str(&from_fd).unwrap();
        assert_eq!(v["status"], "RE");

        let meta = fs::read_to_string(scratch.path().join("meta.txt")).unwrap();
        let get = |k: &str| {
            meta.lines()
                .find_map(|l| l.split_once(':').filter(|(key, _)| *key == k))
                .map(|(_, v)| v.to_string())
        };
        for l in meta.lines() {
            assert!(l.contains(':'), "{what}: meta line {l:?}");
        }
        assert_eq!(get("status").as_deref(), Some("RE"), "{meta}");
        assert_eq!(get("exitcode").as_deref(), Some("7"), "{meta}");
        assert_eq!(
            get("message").as_deref(),
            Some("Exited with error status 7")
        );
        // The same figures, rounded to milliseconds.
        let t: f64 = get("time").unwrap().parse().unwrap();
        assert!(
            (t - v["cpu_time"].as_f64().unwrap()).abs() <= 0.0005,
            "{meta}"
        );
        let w: f64 = get("time-wall").unwrap().parse().unwrap();
        assert!(
            (w - v["wall_time"].as_f64().unwrap()).abs() <= 0.0005,
            "{meta}"
        );
        assert_eq!(get("max-rss"), Some(v["max_rss"].to_string()));
        assert!(get("csw-voluntary").is_some() && get("csw-forced").is_some());
        if c.kind != nsjail_tests::CallerKind::Myself {
            assert_eq!(get("cg-enabled").as_deref(), Some("1"), "{meta}");
            assert_eq!(get("cg-mem"), Some(v["cgroup_memory_peak"].to_string()));
        }
    });
}

#[test]
fn a_time_limit_and_an_oom_kill_in_isolate_meta_terms() {
    for_each_caller(|c| {
        let scratch = c.scratch();
        let meta = |args: &[&str]| {
            let mut a = vec!["--meta", "m"];
            a.extend_from_slice(args);
            let mut cmd = c.run_cmd(&a);
            cmd.current_dir(scratch.path());
            let out = Running::spawn(&mut cmd, None, &shell_words(&a)).wait();
            out.expect_no_panic();
            fs::read_to_string(scratch.path().join("m")).unwrap()
        };
        let m = meta(&["--wall-time-limit", "0.2", "--", "/bin/sleep", "30"]);
        for line in ["status:TO", "killed:1", "exitsig:9"] {
            assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
        }
        assert!(
            m.contains("message:Time limit exceeded (wall clock)"),
            "{m}"
        );
        if c.kind != nsjail_tests::CallerKind::Myself {
            let m = meta(&[
                "--memory-limit",
                "32M",
                "--",
                "/usr/bin/python3",
                "-S",
                "-c",
                "b = b'x' * (256 << 20)",
            ]);
            // isolate has no ML: the process's death by signal, and cg-oom-killed.
            for line in ["status:SG", "exitsig:9", "cg-oom-killed:1", "cg-enabled:1"] {
                assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
            }
            // The kernel's OOM killer ended it, not the supervisor: no `killed:1` line (the
            // line isolate writes for a sandbox it killed itself, at a time limit).
            assert!(
                !m.lines().any(|l| l == "killed:1"),
                "an OOM kill reported as the supervisor's:\n{m}"
            );
        }
        let m = meta(&["--", "/bin/true"]);
        assert!(!m.contains("status:"), "OK has no status line:\n{m}");
        assert!(m.lines().any(|l| l == "exitcode:0"), "{m}");
    });
}

#[test]
fn a_sandbox_that_cannot_be_set_up_reports_xx() {
    for_each_caller(|c| {
        let scratch = c.scratch();
        for (args, code, needle) in [
            (
                &["--chdir", "/nonexistent-e2e-dir", "--", "/bin/true"][..],
                125,
                "chdir",
            ),
            (
                &["--", "/nonexistent-e2e-command"],
                127,
                "nonexistent-e2e-command",
            ),
        ] {
            let mut a = vec!["--status-json", "s.json", "--meta", "m"];
            a.extend_from_slice(args);
            let mut cmd = c.run_cmd(&a);
            cmd.current_dir(scratch.path());
            let what = format!("[{}] nsjail run {}", c.name(), shell_words(&a));
            let out = Running::spawn(&mut cmd, None, &what).wait();
            out.expect_code(code)
                .expect_no_panic()
                .expect_one_error_line("nsjail: ");
            let v: Value =
                serde_json::from_str(&fs::read_to_string(scratch.path().join("s.json")).unwrap())
                    .unwrap();
            assert_eq!(v["status"], "XX", "{what}: {v}");
            assert!(v["exit_code"].is_null(), "{what}: {v}");
            assert!(
                v["message"].as_str().unwrap().contains(needle),
                "{what}: {v}"
            );
            let m = fs::read_to_string(scratch.path().join("m")).unwrap();
            assert!(m.lines().any(|l| l == "status:XX"), "{what}: {m}");
        }
    });
}
