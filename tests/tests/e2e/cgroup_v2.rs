//! The cgroup v2 path, chosen with `--cgroup-version 2`. Where the cgroup2 hierarchy has no
//! controllers (a hybrid host like the CI machine, whose memory, pids and cpu are v1), the time
//! limits, the accounting, `CLONE_INTO_CGROUP`, `cgroup.kill` and the cleanup still run here; the
//! tests that need v2's memory, pids or cpu controller say "skipped: no cgroup v2 memory
//! controller" (or pids, cpu) and run where systemd has a pure v2 hierarchy, such as the VM of
//! `cargo xtask vmtest`.

use std::path::PathBuf;

use nsjail_tests::for_each_caller;

use crate::limits::{CPU_SLACK, FORK_STORM, killed_mid_run, run_limited};

/// The cgroup2 mount point, if there is one.
fn v2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split(' ').next() == Some("cgroup2"))
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })
}

/// Whether cgroup v2 offers `controller` to the cgroups it makes; says why not when it doesn't.
fn v2_has(controller: &str, test: &str) -> bool {
    let have = v2_mount()
        .and_then(|m| std::fs::read_to_string(m.join("cgroup.controllers")).ok())
        .is_some_and(|c| c.split_whitespace().any(|x| x == controller));
    if !have {
        eprintln!("{test}: skipped: no cgroup v2 {controller} controller");
        println!("{test}: skipped: no cgroup v2 {controller} controller");
    }
    have
}

fn v2_present(test: &str) -> bool {
    let have = v2_mount().is_some();
    if !have {
        eprintln!("{test}: skipped: no cgroup v2 hierarchy");
        println!("{test}: skipped: no cgroup v2 hierarchy");
    }
    have
}

#[track_caller]
fn expect_v2_dirs(l: &crate::limits::Limited) {
    let m = v2_mount().unwrap();
    assert!(
        !l.cgroups.is_empty() && l.cgroups.iter().all(|d| d.starts_with(&m)),
        "the cgroups must be under {}:\n{}",
        m.display(),
        l.describe()
    );
}

#[test]
fn v2_time_limits_accounting_and_cleanup() {
    if !v2_present(module_path!()) {
        return;
    }
    for_each_caller(|c| {
        if c.kind == nsjail_tests::CallerKind::Myself {
            return; // no cgroup without privilege
        }
        let spin = ["/bin/sh", "-c", "while :; do :; done"];
        let l = run_limited(c, &["--cgroup-version", "2", "--time-limit", "0.5"], &spin);
        expect_v2_dirs(&l);
        assert!(
            l.out.stderr.contains("born inside (CLONE_INTO_CGROUP)"),
            "{}",
            l.describe()
        );
        l.expect_status("TO");
        let cpu = l.f64("cpu_time");
        assert!(
            (0.5..=0.5 + CPU_SLACK).contains(&cpu),
            "cpu_time {cpu}:\n{}",
            l.describe()
        );
        let script = "for i in 1 2 3 4; do (while :; do :; done) & done; wait";
        let l = run_limited(
            c,
            &["--cgroup-version", "2", "--time-limit", "0.5"],
            &["/bin/sh", "-c", script],
        );
        l.expect_status("TO");
        let cpu = l.f64("cpu_time");
        assert!(
            (0.5..=0.5 + CPU_SLACK).contains(&cpu),
            "the total of four spinners, cpu_time {cpu}:\n{}",
            l.describe()
        );

        let l = run_limited(
            c,
            &["--cgroup-version", "2", "--wall-time-limit", "0.5"],
            &["/bin/sleep", "30"],
        );
        expect_v2_dirs(&l);
        l.expect_status("TO");

        let l = run_limited(c, &["--cgroup-version", "2"], &["/bin/sh", "-c", "exit 4"]);
        expect_v2_dirs(&l);
        l.expect_status("RE");

        killed_mid_run(c, &["--cgroup-version", "2", "--time-limit", "100"]);
    });
}

#[test]
fn v2_memory_limit_ends_with_ml() {
    if !v2_has("memory", "v2_memory_limit_ends_with_ml") {
        return;
    }
    for_each_caller(|c| {
        let l = run_limited(
            c,
            &["--cgroup-version", "2", "--memory-limit", "64M"],
            &["/usr/bin/python3", "-S", "-c", "b = b'x' * (512 << 20)"],
        );
        expect_v2_dirs(&l);
        l.expect_status("ML");
        assert_eq!(l.report["oom_killed"], true);
        assert!(l.u64("cgroup_memory_peak") <= 64 * 1024, "{}", l.describe());
        assert!(
            l.out.stderr.contains("memory.max 67108864"),
            "{}",
            l.describe()
        );

        let l = run_limited(
            c,
            &["--cgroup-version", "2"],
            &["/usr/bin/python3", "-S", "-c", "b = b'x' * (100 << 20)"],
        );
        l.expect_status("OK");
        let rss = l.u64("max_rss");
        assert!((100 * 1024..=110 * 1024).contains(&rss), "{}", l.describe());
        assert!(
            l.u64("cgroup_memory_peak") >= 100 * 1024,
            "{}",
            l.describe()
        );
        killed_mid_run(c, &["--cgroup-version", "2", "--memory-limit", "64M"]);
    });
}

#[test]
fn v2_pids_limit_contains_a_fork_storm() {
    if !v2_has("pids", "v2_pids_limit_contains_a_fork_storm") {
        return;
    }
    for_each_caller(|c| {
        let l = run_limited(
            c,
            &[
                "--cgroup-version",
                "2",
                "--pids-limit",
                "16",
                "--wall-time-limit",
                "2",
            ],
            &["/usr/bin/python3", "-S", "-c", FORK_STORM],
        );
        expect_v2_dirs(&l);
        l.expect_status("TO");
        assert!(l.out.stderr.contains("pids.max 17"), "{}", l.describe());
    });
}

#[test]
fn v2_cpus_limits_the_share_of_cpu() {
    if !v2_has("cpu", "v2_cpus_limits_the_share_of_cpu") {
        return;
    }
    for_each_caller(|c| {
        let l = run_limited(
            c,
            &[
                "--cgroup-version",
                "2",
                "--cpus",
                "0.25",
                "--wall-time-limit",
                "1",
            ],
            &["/bin/sh", "-c", "while :; do :; done"],
        );
        expect_v2_dirs(&l);
        l.expect_status("TO");
        assert!(
            l.out.stderr.contains("cpu.max 25000 100000"),
            "{}",
            l.describe()
        );
        assert!(l.f64("cpu_time") < 0.4, "{}", l.describe());
    });
}

#[test]
fn v2_without_a_controller_is_refused_clearly() {
    if !v2_present(module_path!()) {
        return;
    }
    let Some(m) = v2_mount() else { return };
    let have = std::fs::read_to_string(m.join("cgroup.controllers")).unwrap_or_default();
    if have.split_whitespace().any(|c| c == "memory") {
        println!("v2_without_a_controller_is_refused_clearly: skipped: cgroup v2 has memory");
        return;
    }
    for_each_caller(|c| {
        if c.kind == nsjail_tests::CallerKind::Myself {
            return;
        }
        let out = c.run(&[
            "--cgroup-version",
            "2",
            "--memory-limit",
            "64M",
            "--",
            "/bin/true",
        ]);
        out.expect_code(125)
            .expect_no_panic()
            .expect_one_error_line("nsjail: --memory-limit needs the memory controller");
    });
}

/// SIGTERM to every member on v2 (frozen with cgroup.freeze while they are signalled), then the
/// payload's own exit, and SIGTERM only once to the shell (T0 once). This used to fail
/// intermittently: our init, in the cgroup too, was signalled as well and relayed SIGTERM to the
/// shell a second time (merged with the first when both were still pending, so only sometimes);
/// the second interrupted the last `wait`, the shell exited, and with it init and the whole pid
/// namespace (SIGKILL) before a subshell still reaping its `sleep` could run its trap.
#[test]
fn v2_sigterm_reaches_every_process_before_the_kill() {
    if !v2_present(module_path!()) {
        return;
    }
    for_each_caller(|c| {
        if c.kind == nsjail_tests::CallerKind::Myself {
            return; // no cgroup without privilege
        }
        let script = "for i in 1 2; do (trap \"echo T$i; exit 0\" TERM; \
                      while :; do sleep 0.05; done) & done; trap 'echo T0' TERM; wait; wait";
        let l = run_limited(
            c,
            &[
                "--cgroup-version",
                "2",
                "--wall-time-limit",
                "3",
                "--kill-grace",
                "20",
            ],
            &["/bin/sh", "-c", script],
        );
        l.expect_status("TO");
        for m in ["T0", "T1", "T2"] {
            assert!(
                l.out.lines().iter().any(|x| x == m),
                "{m}:\n{}",
                l.describe()
            );
        }
        let t0 = l.out.lines().iter().filter(|x| *x == "T0").count();
        assert_eq!(
            t0,
            1,
            "SIGTERM to the payload more than once:\n{}",
            l.describe()
        );
    });
}
