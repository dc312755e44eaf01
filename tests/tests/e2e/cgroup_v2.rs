//! The cgroup v2 path, chosen with `--cgroup-version 2`. Where the cgroup2 hierarchy has no
//! controllers (a hybrid host like the CI machine, whose memory, pids and cpu are v1), the time
//! limits, the accounting, `CLONE_INTO_CGROUP`, `cgroup.kill` and the cleanup still run here; the
//! tests that need v2's memory, pids or cpu controller say "skipped: no cgroup v2 memory
//! controller" (or pids, cpu) and run where systemd has a pure v2 hierarchy, such as the VM of
//! `cargo xtask vmtest`.

use std::path::PathBuf;

use nsjail_tests::{for_each_caller, skip};

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

/// Whether cgroup v2 offers `controller` to the cgroups it makes; [`skip`]s when it does not
/// (allowed under CI on a hybrid host: the guest of `cargo xtask vmtest` runs these).
fn v2_has(controller: &str, test: &str) -> bool {
    let have = v2_mount()
        .and_then(|m| std::fs::read_to_string(m.join("cgroup.controllers")).ok())
        .is_some_and(|c| c.split_whitespace().any(|x| x == controller));
    if !have {
        skip(test, &format!("no cgroup v2 {controller} controller"));
    }
    have
}

fn v2_present(test: &str) -> bool {
    let have = v2_mount().is_some();
    if !have {
        skip(test, "no cgroup v2 hierarchy");
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

/// A cgroup v2 hierarchy that offers no controller, seen only by the processes started through
/// [`NoControllers::wrapper`]: a fresh cgroup `X` (its `subtree_control` empty) with a child
/// `X/inner`, bound over the cgroup2 mount point in a private mount namespace, so that the helper
/// finds a cgroup2 mount whose `cgroup.controllers` is empty — on a hybrid host and on a pure v2
/// one alike.
struct NoControllers {
    outer: PathBuf,
    inner: PathBuf,
    mount: PathBuf,
    stage: tempfile::TempDir,
}

impl NoControllers {
    fn new() -> NoControllers {
        let mount = v2_mount().expect("a cgroup2 mount");
        let outer = mount.join(format!("nsjail-e2e-{}", nsjail_tests::unique()));
        let inner = outer.join("inner");
        std::fs::create_dir(&outer).unwrap();
        std::fs::create_dir(&inner).unwrap();
        let controllers = std::fs::read_to_string(inner.join("cgroup.controllers")).unwrap();
        assert_eq!(
            controllers.trim(),
            "",
            "a new cgroup's child offers no controller"
        );
        NoControllers {
            outer,
            inner,
            mount,
            stage: nsjail_tests::scratch_dir(),
        }
    }

    /// Words that run the words after them in a private mount namespace where the cgroup2 mount
    /// point shows `X/inner`.
    fn wrapper(&self) -> Vec<String> {
        let script = "mount --bind \"$1\" \"$3\" && umount -l \"$2\" && mount --move \"$3\" \"$2\" \
                      && shift 3 && exec \"$@\"";
        let p = |p: &std::path::Path| p.display().to_string();
        vec![
            nsjail_tests::tool("unshare"),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            nsjail_tests::tool("sh"),
            "-c".into(),
            script.into(),
            "sh".into(),
            p(&self.inner),
            p(&self.mount),
            p(self.stage.path()),
        ]
    }
}

impl Drop for NoControllers {
    fn drop(&mut self) {
        for d in [
            self.inner.join("nsjail"),
            self.inner.clone(),
            self.outer.clone(),
        ] {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn v2_without_a_controller_is_refused_clearly() {
    if !v2_present(module_path!()) {
        return;
    }
    let none = NoControllers::new();
    let args = [
        "--cgroup-version",
        "2",
        "--memory-limit",
        "64M",
        "--",
        "/bin/true",
    ];
    // The control: a cgroup that needs no controller (a time limit only).
    let control_args = [
        "--verbose",
        "--cgroup-version",
        "2",
        "--time-limit",
        "5",
        "--",
        "/bin/true",
    ];
    for_each_caller(|c| {
        if c.kind == nsjail_tests::CallerKind::Myself {
            return; // no cgroup without privilege
        }
        // The daemon's helper is the one that looks at the hierarchy: it runs in the namespace.
        let daemon = c
            .via_daemon()
            .then(|| nsjail_tests::Daemon::start_wrapped(&none.wrapper(), &[]));
        let run = |args: &[&str]| match &daemon {
            Some(d) => d.run(c, args),
            None => {
                let mut words = none.wrapper();
                words.extend(nsjail_tests::as_caller_words(c, &[]));
                words.push(c.nsjail.display().to_string());
                words.push("run".into());
                words.extend(args.iter().map(|a| a.to_string()));
                let mut cmd = std::process::Command::new(&words[0]);
                cmd.args(&words[1..]).env_clear().current_dir("/");
                let what = format!("[{}] (no v2 controllers) nsjail run {args:?}", c.name());
                nsjail_tests::Running::spawn(&mut cmd, None, &what)
                    .expect_way_in(c.way_in())
                    .wait()
            }
        };
        let out = run(&args);
        out.expect_code(125)
            .expect_no_panic()
            .expect_one_error_line(
                "nsjail: --memory-limit needs the memory controller, which cgroup v2 does not \
                 offer in ",
            );
        assert!(
            out.stderr.contains("available: none)"),
            "[{}] {}",
            c.name(),
            out.describe()
        );
        // The control: the same hierarchy serves a sandbox that needs no controller.
        let out = run(&control_args);
        out.expect_success();
        assert!(
            out.stderr.contains("born inside (CLONE_INTO_CGROUP)"),
            "[{}] the control made no cgroup there:\n{}",
            c.name(),
            out.describe()
        );
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
