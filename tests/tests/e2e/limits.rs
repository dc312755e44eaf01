//! Limits: time limits enforced from outside, cgroup limits that forking cannot escape,
//! rlimits, and the cleanup that leaves no cgroup directory, process or mount behind.
//!
//! Every run here goes through [`run_limited`]: `--verbose` so that the helper names the
//! cgroup directories it made, `--status-json` into a scratch directory that is the CLI's cwd,
//! and afterwards the check that every one of those directories is gone. A cgroup directory can
//! only be removed once no process is left in it, and every process of the sandbox is in it, so
//! "the directory is gone" also proves "no process of the sandbox is left" (and with the last
//! process goes the sandbox's mount namespace and every mount in it).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nsjail_tests::{
    Caller, Output, Running, for_each_caller, pids_with_argv, poll_until, root_or_skip,
    shell_words, unique,
};
use serde_json::Value;

/// The precision for the CPU time limit.
pub const CPU_SLACK: f64 = 0.050;

/// What a limited run left: its output, its JSON report, the cgroup directories it used.
pub struct Limited {
    pub out: Output,
    pub report: Value,
    pub cgroups: Vec<PathBuf>,
}

impl Limited {
    pub fn status(&self) -> &str {
        self.report["status"].as_str().unwrap_or("")
    }

    pub fn f64(&self, key: &str) -> f64 {
        self.report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("report field {key} is not a number:\n{}", self.describe()))
    }

    pub fn u64(&self, key: &str) -> u64 {
        self.report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("report field {key} is not a count:\n{}", self.describe()))
    }

    pub fn describe(&self) -> String {
        format!(
            "{}\n  report: {}\n  cgroups: {:?}",
            self.out.describe(),
            self.report,
            self.cgroups
        )
    }

    #[track_caller]
    pub fn expect_status(&self, status: &str) -> &Self {
        assert_eq!(
            self.status(),
            status,
            "expected status {status}:\n{}",
            self.describe()
        );
        self
    }
}

/// The cgroup directories a `--verbose` run named (`nsjail: cgroup: /sys/fs/cgroup/… (…)`).
pub fn cgroup_dirs(stderr: &str) -> Vec<PathBuf> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("nsjail: cgroup: /"))
        .filter_map(|rest| {
            rest.split_once(" (")
                .map(|(p, _)| PathBuf::from(format!("/{p}")))
        })
        .collect()
}

/// Panic if any of `dirs` still exists.
#[track_caller]
pub fn expect_gone(dirs: &[PathBuf], ctx: &str) {
    let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(
        left.is_empty(),
        "{ctx}: cgroup directories left behind: {left:?}"
    );
}

/// `nsjail run --verbose --status-json status.json OPTS -- ARGV` as `c`, with cwd a scratch
/// directory of `c`'s; then no cgroup directory it made may be left.
pub fn run_limited(c: &Caller, opts: &[&str], argv: &[&str]) -> Limited {
    let scratch = c.scratch();
    run_limited_in(c, scratch.path(), opts, argv)
}

pub fn run_limited_in(c: &Caller, dir: &Path, opts: &[&str], argv: &[&str]) -> Limited {
    let mut args = vec!["--verbose", "--status-json", "status.json"];
    args.extend_from_slice(opts);
    args.push("--");
    args.extend_from_slice(argv);
    let mut cmd = c.run_cmd(&args);
    cmd.current_dir(dir);
    let what = format!("[{}] nsjail run {}", c.name(), shell_words(&args));
    let out = Running::spawn(&mut cmd, None, &what).wait();
    out.expect_no_panic();
    let text = fs::read_to_string(dir.join("status.json"))
        .unwrap_or_else(|e| panic!("no status.json ({e}):\n{}", out.describe()));
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "status.json is not JSON ({e}): {text:?}\n{}",
            out.describe()
        )
    });
    let cgroups = cgroup_dirs(&out.stderr);
    let l = Limited {
        out,
        report,
        cgroups,
    };
    expect_gone(&l.cgroups, &l.describe());
    l
}

/// Every process forks for ever, and tries again when a fork fails: only a limit from outside
/// ends it.
pub const FORK_STORM: &str =
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";

/// A CPU spinner that never stops by itself.
const SPIN: [&str; 3] = ["/bin/sh", "-c", "while :; do :; done"];

#[track_caller]
fn expect_cpu_limit(l: &Limited, limit: f64) {
    l.expect_status("TO");
    let cpu = l.f64("cpu_time");
    assert!(
        cpu >= limit && cpu <= limit + CPU_SLACK,
        "cpu_time {cpu} is not within {CPU_SLACK} s above the limit {limit}:\n{}",
        l.describe()
    );
    assert_eq!(l.report["killed_by_supervisor"], true, "{}", l.describe());
    assert_eq!(
        l.report["message"],
        "Time limit exceeded",
        "{}",
        l.describe()
    );
    // The supervisor's SIGKILL, and the CLI's exit code says so.
    assert_eq!(l.report["signal"], 9, "{}", l.describe());
    l.out.expect_code(128 + 9);
}

#[test]
fn a_cpu_spinner_stops_at_the_time_limit() {
    for_each_caller(|c| {
        let l = run_limited(c, &["--time-limit", "1"], &SPIN);
        expect_cpu_limit(&l, 1.0);
        assert!(
            !l.cgroups.is_empty(),
            "a time limit needs a cgroup:\n{}",
            l.describe()
        );
        // Fractions of a second.
        let l = run_limited(c, &["--time-limit", "0.3"], &SPIN);
        expect_cpu_limit(&l, 0.3);
    });
}

#[test]
fn the_cpu_limit_is_the_sandboxs_total_not_per_process() {
    for_each_caller(|c| {
        // Eight spinners: with a per-process limit they would use eight seconds between them.
        let script = "for i in 1 2 3 4 5 6 7 8; do (while :; do :; done) & done; wait";
        let l = run_limited(c, &["--time-limit", "1"], &["/bin/sh", "-c", script]);
        expect_cpu_limit(&l, 1.0);
    });
}

#[test]
fn a_sleeper_stops_at_the_wall_time_limit() {
    for_each_caller(|c| {
        let l = run_limited(c, &["--wall-time-limit", "1"], &["/bin/sleep", "30"]);
        l.expect_status("TO");
        let wall = l.f64("wall_time");
        assert!(
            (1.0..30.0).contains(&wall),
            "wall_time {wall}:\n{}",
            l.describe()
        );
        assert_eq!(l.report["killed_by_supervisor"], true);
        assert_eq!(
            l.report["message"],
            "Time limit exceeded (wall clock)",
            "{}",
            l.describe()
        );
        // Sleeping uses no CPU: only the wall clock could have stopped it.
        assert!(l.f64("cpu_time") < 0.5, "{}", l.describe());
    });
}

#[test]
fn kill_grace_sends_sigterm_to_every_process_first() {
    for_each_caller(|c| {
        // Three background processes and the shell itself trap SIGTERM and say so; the shell
        // waits for them, then exits 0 on its own.
        let script = "for i in 1 2 3; do (trap \"echo T$i; exit 0\" TERM; \
                      while :; do sleep 0.05; done) & done; \
                      trap 'echo T0' TERM; echo READY; wait; wait; wait";
        let l = run_limited(
            c,
            // Long enough for every trap to be set even on a loaded two-core machine.
            &["--wall-time-limit", "3", "--kill-grace", "20"],
            &["/bin/sh", "-c", script],
        );
        for marker in ["T0", "T1", "T2", "T3"] {
            assert!(
                l.out.lines().iter().any(|x| x == marker),
                "SIGTERM did not reach every process ({marker} missing):\n{}",
                l.describe()
            );
        }
        // Once: our init, which relays signals to the payload, is not signalled as well.
        let t0 = l.out.lines().iter().filter(|x| *x == "T0").count();
        assert_eq!(
            t0,
            1,
            "SIGTERM to the payload more than once:\n{}",
            l.describe()
        );
        // A time limit, whatever the payload did with its grace period.
        l.expect_status("TO");
        assert_eq!(l.report["exit_code"], 0, "{}", l.describe());
        assert_eq!(l.report["killed_by_supervisor"], true);

        // A payload that ignores SIGTERM gets SIGKILL when the grace is over.
        let l = run_limited(
            c,
            &["--wall-time-limit", "2", "--kill-grace", "0.5"],
            &[
                "/bin/sh",
                "-c",
                "trap '' TERM; while :; do sleep 0.05; done",
            ],
        );
        l.expect_status("TO");
        assert_eq!(l.report["signal"], 9, "{}", l.describe());
        assert!(l.f64("wall_time") >= 2.5, "{}", l.describe());
    });
}

#[test]
fn a_fork_storm_is_contained_and_the_host_stays_usable() {
    for_each_caller(|c| {
        let scratch = c.scratch();
        let args = [
            "--verbose",
            "--status-json",
            "status.json",
            "--pids-limit",
            "16",
            "--wall-time-limit",
            "3",
            "--",
            "/usr/bin/python3",
            "-S",
            "-c",
            FORK_STORM,
        ];
        let mut cmd = c.run_cmd(&args);
        cmd.current_dir(scratch.path());
        let what = format!("[{}] fork storm", c.name());
        let mut run = Running::spawn(&mut cmd, None, &what);
        assert!(
            run.stderr
                .wait_for("nsjail: started", Duration::from_secs(30)),
            "{what}: never started: {}",
            run.stderr.text()
        );
        let dirs = cgroup_dirs(&run.stderr.text());
        let pids_dir = dirs
            .iter()
            .find(|d| d.join("pids.max").exists())
            .cloned()
            .unwrap_or_else(|| panic!("{what}: no pids cgroup named: {}", run.stderr.text()));
        assert_eq!(
            fs::read_to_string(pids_dir.join("pids.max"))
                .unwrap()
                .trim(),
            "17",
            "16 for the payload, one for nsjail's init"
        );
        // While the storm rages: never more than the limit, and the host still forks and runs
        // programs.
        let mut samples = 0;
        let mut highest = 0u64;
        while run.child.try_wait().unwrap().is_none() && samples < 50 {
            if let Ok(s) = fs::read_to_string(pids_dir.join("pids.current")) {
                let n: u64 = s.trim().parse().unwrap();
                highest = highest.max(n);
                assert!(n <= 17, "{what}: {n} tasks in a cgroup limited to 17");
            }
            let st = std::process::Command::new("/bin/true").status().unwrap();
            assert!(st.success(), "{what}: the host cannot run /bin/true");
            samples += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        let peak = fs::read_to_string(pids_dir.join("pids.peak")).ok();
        let out = run.wait();
        out.expect_no_panic();
        if let Some(p) = peak {
            assert!(
                p.trim().parse::<u64>().unwrap() <= 17,
                "{what}: pids.peak {p}"
            );
        }
        let report: Value =
            serde_json::from_str(&fs::read_to_string(scratch.path().join("status.json")).unwrap())
                .unwrap();
        assert_eq!(
            report["status"],
            "TO",
            "{what}: {report}\n{}",
            out.describe()
        );
        assert!(
            highest >= 10,
            "{what}: the storm never reached the limit (highest {highest} tasks): is it a storm?"
        );
        expect_gone(&dirs, &what);
    });
}

#[test]
fn a_memory_hog_ends_with_ml_and_oom_killed() {
    for_each_caller(|c| {
        let l = run_limited(
            c,
            &["--memory-limit", "64M"],
            &["/usr/bin/python3", "-S", "-c", "b = b'x' * (512 << 20)"],
        );
        l.expect_status("ML");
        assert_eq!(l.report["oom_killed"], true, "{}", l.describe());
        assert_eq!(l.report["killed_by_supervisor"], false);
        let peak = l.u64("cgroup_memory_peak");
        assert!(
            peak <= 64 * 1024,
            "the cgroup's peak {peak} KiB is above the 64 MiB limit:\n{}",
            l.describe()
        );
        assert!(
            l.out
                .stderr
                .contains("memory.memsw.limit_in_bytes 67108864")
                || l.out.stderr.contains("memory.swap.max 0")
                || l.out.stderr.contains("memory.swappiness 0"),
            "swap must be off:\n{}",
            l.describe()
        );
    });
}

/// Allocate and touch 100 MiB, then print what getrusage says about this process: max RSS
/// (KiB) and CPU seconds.
/// The buffer is freed before the payload measures itself, so that what it reports covers
/// nearly all it does (freeing 100 MiB at exit took a third of a second under emulation).
const HUNDRED_MIB: &str = "import resource\n\
b = b'x' * (100 << 20)\n\
del b\n\
r = resource.getrusage(resource.RUSAGE_SELF)\n\
print(r.ru_maxrss, r.ru_utime + r.ru_stime)\n";

#[test]
fn max_rss_of_a_known_workload_agrees_with_getrusage() {
    for_each_caller(|c| {
        let l = run_limited(c, &[], &["/usr/bin/python3", "-S", "-c", HUNDRED_MIB]);
        l.expect_status("OK");
        let (self_rss, self_cpu) = {
            let line = l.out.lines().last().cloned().unwrap_or_default();
            let mut w = line.split_whitespace();
            let rss: u64 = w.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let cpu: f64 = w.next().and_then(|s| s.parse().ok()).unwrap_or(-1.0);
            (rss, cpu)
        };
        let max_rss = l.u64("max_rss");
        let mib100 = 100 * 1024;
        assert!(
            max_rss >= mib100 && max_rss <= mib100 + mib100 / 10,
            "max_rss {max_rss} KiB is not 100 MiB within 10 %:\n{}",
            l.describe()
        );
        // The largest process is the one that measured itself.
        assert!(
            max_rss >= self_rss && max_rss - self_rss < 1024,
            "max_rss {max_rss} KiB disagrees with the payload's own getrusage {self_rss} KiB:\n{}",
            l.describe()
        );
        let cpu = l.f64("cpu_time");
        assert!(
            cpu >= self_cpu && cpu <= self_cpu + 0.2,
            "cpu_time {cpu} disagrees with the payload's own getrusage {self_cpu}:\n{}",
            l.describe()
        );
        assert!(l.f64("wall_time") >= cpu / 2.0, "{}", l.describe());
        // With a cgroup (the report asked for one), its peak holds at least the 100 MiB.
        if !l.cgroups.is_empty() {
            let peak = l.u64("cgroup_memory_peak");
            assert!(
                peak >= mib100,
                "cgroup_memory_peak {peak} KiB:\n{}",
                l.describe()
            );
        }
    });
}

#[test]
fn rlimit_fsize_stops_a_writer_with_sigxfsz() {
    for_each_caller(|c| {
        let scratch = c.scratch();
        let l = run_limited_in(
            c,
            scratch.path(),
            &["--rlimit", "fsize=1M"],
            &[
                "/bin/dd",
                "if=/dev/zero",
                "of=written",
                "bs=64k",
                "count=32",
            ],
        );
        l.expect_status("SG");
        assert_eq!(l.report["signal"], 25, "{}", l.describe());
        assert!(l.report["exit_code"].is_null());
        l.out.expect_code(128 + 25);
        let size = fs::metadata(scratch.path().join("written")).unwrap().len();
        assert_eq!(size, 1 << 20, "the file stops at the limit");
    });
}

#[test]
fn rlimits_reach_the_payload_and_core_dumps_are_off_by_default() {
    for_each_caller(|c| {
        let out = c.sh(&[], "ulimit -c; ulimit -H -c");
        out.expect_success();
        assert_eq!(out.lines(), ["0", "0"], "{}", out.describe());

        let out = c.sh(
            &[
                "--rlimit",
                "nofile=64:128",
                "--rlimit",
                "core=1M:inf",
                "--rlimit",
                "stack=4M",
            ],
            "ulimit -S -n; ulimit -H -n; ulimit -S -c; ulimit -H -c; ulimit -S -s; ulimit -H -s",
        );
        out.expect_success();
        // dash's ulimit counts -c in 512-byte blocks and -s in KiB.
        assert_eq!(
            out.lines(),
            ["64", "128", "2048", "unlimited", "4096", "4096"],
            "{}",
            out.describe()
        );
        // The init is ours and keeps its own limits: an nproc of 1 still lets the payload start.
        let out = c.run(&["--rlimit", "nproc=1", "--", "/bin/true"]);
        out.expect_success();
    });
}

#[test]
fn raising_a_hard_limit_is_refused_in_one_line() {
    for_each_caller(|c| {
        // nofile can never be infinite (it is capped by fs.nr_open), and a sandbox has no
        // privilege over the host's limits: refused, even for root.
        let out = c.run(&["--rlimit", "nofile=inf", "--", "/bin/true"]);
        out.expect_code(125)
            .expect_no_panic()
            .expect_one_error_line("nsjail: setrlimit(nofile, inf:inf)");
    });
}

#[test]
fn bad_limits_are_one_line_and_125_and_nothing_is_written() {
    for_each_caller(|c| {
        let scratch = c.scratch();
        for bad in [
            &["--rlimit", "bogus=1"][..],
            &["--rlimit", "nofile=-1"],
            &["--rlimit", "nofile=many"],
            &["--rlimit", "nofile=2:1"],
            &["--rlimit", "nofile"],
            &["--time-limit", "-1"],
            &["--time-limit", "soon"],
            &["--time-limit", "0"],
            &["--wall-time-limit", "1e3"],
            &["--kill-grace", "-0.5"],
            &["--kill-grace", "7200"],
            &["--memory-limit", "-64M"],
            &["--memory-limit", "64Q"],
            &["--memory-limit", "1K"],
            &["--pids-limit", "0"],
            &["--pids-limit", "-3"],
            &["--cpus", "0.001"],
            &["--cpus", "two"],
            &["--cgroup-version", "3"],
            &["--status-fd", "987"],
        ] {
            let mut args: Vec<&str> = vec!["--status-json", "status.json", "--meta", "meta"];
            args.extend_from_slice(bad);
            args.extend(["--", "/bin/true"]);
            let mut cmd = c.run_cmd(&args);
            cmd.current_dir(scratch.path());
            let what = format!("[{}] nsjail run {}", c.name(), shell_words(&args));
            let out = Running::spawn(&mut cmd, None, &what).wait();
            out.expect_code(125)
                .expect_no_panic()
                .expect_one_error_line("nsjail: ");
            for f in ["status.json", "meta"] {
                assert!(
                    !scratch.path().join(f).exists(),
                    "{what}: bad input must not write a report ({f})"
                );
            }
        }
    });
}

#[test]
fn the_helper_checks_limits_itself() {
    // A request that did not come through the CLI's checks is refused by the helper.
    use nsjail_core::limits::{RlimitResource, RlimitSetting};
    use nsjail_core::{ClientMessage, ErrorKind, HelperEvent};
    use nsjail_tests::{
        HelperConn, HelperStart, devnull_stdio, helper_bin, setuid_install, spawn_request,
        test_user,
    };
    use std::os::fd::AsRawFd;

    let mut helpers = vec![(helper_bin(), HelperStart::default())];
    if nsjail_tests::root_part(module_path!(), "the setuid helper") {
        helpers.push((
            setuid_install().helper.clone(),
            HelperStart {
                as_ids: Some(test_user()),
                ..Default::default()
            },
        ));
    }
    let bad: [&dyn Fn(&mut nsjail_core::Limits); 4] = [
        &|l| l.pids = Some(0),
        &|l| l.memory_bytes = Some(1),
        &|l| {
            l.rlimits.push(RlimitSetting {
                resource: RlimitResource::Nofile,
                soft: 10,
                hard: 5,
            })
        },
        &|l| l.cpu_time_us = Some(0),
    ];
    for (helper, how) in &helpers {
        for (i, f) in bad.iter().enumerate() {
            let mut req = spawn_request(&["/bin/true"]);
            f(&mut req.limits);
            let frame = nsjail_core::wire::encode(&ClientMessage::Spawn(Box::new(req))).unwrap();
            let mut conn = HelperConn::start(helper, how);
            let fds = devnull_stdio();
            let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
            conn.send(&frame, &raw).unwrap();
            drop(fds);
            conn.shutdown_write();
            let (events, err) = conn.read_until_end();
            assert!(err.is_none(), "case {i}: {err:?}");
            assert!(
                matches!(
                    events.last(),
                    Some(HelperEvent::Error {
                        kind: ErrorKind::BadRequest,
                        ..
                    })
                ),
                "case {i} ({}): {events:?}",
                helper.display()
            );
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, HelperEvent::Started { .. }))
            );
            let _ = conn.run.wait_timeout(Duration::from_secs(30));
        }
    }
}

#[test]
fn without_privilege_cgroup_limits_are_refused_clearly() {
    root_or_skip!();
    let c = Caller::plain_user();
    for opts in [
        &["--memory-limit", "64M"][..],
        &["--pids-limit", "16"],
        &["--cpus", "0.5"],
        &["--time-limit", "1"],
    ] {
        let mut args = opts.to_vec();
        args.extend(["--", "/bin/true"]);
        let out = c.run(&args);
        out.expect_code(125)
            .expect_no_panic()
            .expect_one_error_line("nsjail: ");
        assert!(
            out.stderr.contains(opts[0]) && out.stderr.contains("setuid"),
            "the refusal must name the option and the way out:\n{}",
            out.describe()
        );
    }
    // What needs no cgroup still works: the report (without cgroup figures), the wall limit,
    // rlimits.
    let l = run_limited(&c, &["--wall-time-limit", "0.5"], &["/bin/sleep", "30"]);
    l.expect_status("TO");
    assert!(l.cgroups.is_empty(), "{}", l.describe());
    assert!(l.report["cgroup_memory_peak"].is_null(), "{}", l.describe());
    let l = run_limited(&c, &["--rlimit", "fsize=0"], &["/bin/true"]);
    l.expect_status("OK");
}

#[test]
fn cpus_limits_the_share_of_cpu() {
    for_each_caller(|c| {
        let l = run_limited(c, &["--cpus", "0.25", "--wall-time-limit", "1"], &SPIN);
        l.expect_status("TO");
        assert!(
            l.out.stderr.contains("cfs_quota_us 25000") || l.out.stderr.contains("cpu.max 25000"),
            "{}",
            l.describe()
        );
        // A quarter of a CPU for a second (and a period's worth of slack): well under what an
        // unlimited spinner takes.
        let cpu = l.f64("cpu_time");
        assert!(
            cpu < 0.25 + 0.15,
            "cpu_time {cpu} with --cpus 0.25 over 1 s:\n{}",
            l.describe()
        );
    });
}

#[test]
fn killing_the_cli_leaves_no_cgroup_process_or_mount() {
    for_each_caller(|c| {
        for opts in [
            &[
                "--memory-limit",
                "64M",
                "--pids-limit",
                "16",
                "--time-limit",
                "100",
            ][..],
            &["--status-json", "/dev/null"],
        ] {
            killed_mid_run(c, opts);
        }
    });
}

/// Start a sandbox with `opts` whose payload is two sleepers, `kill -9` the CLI, and check
/// that its cgroup directories, its processes and its mount namespace all go.
pub fn killed_mid_run(c: &Caller, opts: &[&str]) {
    let secs = format!("7{}.5", unique());
    let argv = ["/bin/sleep", secs.as_str()];
    let script = format!("/bin/sleep {secs} & exec /bin/sleep {secs}");
    let mut args = vec!["--verbose"];
    args.extend_from_slice(opts);
    args.extend(["--", "/bin/sh", "-c", &script]);
    let mut cmd = c.run_cmd(&args);
    let what = format!(
        "[{}] nsjail run {} (then SIGKILL)",
        c.name(),
        shell_words(&args)
    );
    let mut run = Running::spawn(&mut cmd, None, &what);
    let mut sleepers = Vec::new();
    // The sleepers can be running before the CLI has printed the helper's steps: wait for both.
    let mut dirs = Vec::new();
    let started = poll_until(Duration::from_secs(30), || {
        sleepers = pids_with_argv(&argv);
        dirs = cgroup_dirs(&run.stderr.text());
        sleepers.len() >= 2 && (!nsjail_tests::is_root() || !dirs.is_empty())
    });
    if !started {
        run.signal(Signal::SIGKILL);
        panic!(
            "{what}: the sleepers ({}) or the cgroup line never appeared: {}",
            sleepers.len(),
            run.stderr.text()
        );
    }
    let mnt_ns = fs::read_link(format!("/proc/{}/ns/mnt", sleepers[0])).ok();
    run.signal(Signal::SIGKILL);
    let _ = run.wait_timeout(Duration::from_secs(10));
    let gone = poll_until(Duration::from_secs(10), || {
        pids_with_argv(&argv).is_empty()
            && dirs.iter().all(|d| !d.exists())
            && mnt_ns.as_ref().is_none_or(|ns| !mount_ns_in_use(ns))
    });
    if !gone {
        for p in pids_with_argv(&argv) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), Signal::SIGKILL);
        }
        panic!(
            "{what}: 10 s after SIGKILL of the CLI: sleepers {:?}, cgroups left {:?}, mount \
             namespace {mnt_ns:?} in use: {}",
            pids_with_argv(&argv),
            dirs.iter().filter(|d| d.exists()).collect::<Vec<_>>(),
            mnt_ns.as_ref().is_some_and(|ns| mount_ns_in_use(ns))
        );
    }
}

/// Whether any host process is in the mount namespace `ns` (a `mnt:[inode]` link).
fn mount_ns_in_use(ns: &Path) -> bool {
    let Ok(rd) = fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .any(|e| fs::read_link(e.path().join("ns/mnt")).is_ok_and(|l| l == ns))
}

/// The helper of a running CLI (`nsjail-helper`, a child of `cli`), once it has appeared.
fn helper_of(cli: i32) -> Option<i32> {
    nsjail_tests::processes()
        .into_iter()
        .find(|(_, (ppid, comm))| *ppid == cli && comm.starts_with("nsjail-helper"))
        .map(|(pid, _)| pid)
}

#[test]
fn the_caller_cannot_stop_or_kill_the_setuid_helper() {
    root_or_skip!();
    // Stopping the helper would stop the clock of every time limit; killing it would strand
    // the cgroup. Once it knows its caller, the setuid helper is root in all its ids, so the
    // caller's signals are refused by the kernel.
    let c = Caller::setuid_user();
    let mut args = vec!["--wall-time-limit", "1", "--time-limit", "50", "--"];
    args.extend(["/bin/sleep", "30"]);
    let scratch = c.scratch();
    let mut cmd = c.run_cmd(&["--verbose", "--status-json", "s.json"]);
    cmd.args(&args).current_dir(scratch.path());
    let run = Running::spawn(&mut cmd, None, "[user via setuid helper] sleeper");
    assert!(
        run.stderr
            .wait_for("nsjail: started", Duration::from_secs(30)),
        "{}",
        run.stderr.text()
    );
    let helper = helper_of(run.pid()).expect("the helper is running");
    let kill = |sig: &str, pid: i32| {
        c.command_for(nsjail_tests::tool("kill"))
            .args([sig, &pid.to_string()])
            .output()
            .unwrap()
    };
    // The control: the caller's signals do reach a process of its own (its CLI).
    let out = kill("-CONT", run.pid());
    assert!(
        out.status.success(),
        "the caller cannot signal its CLI: {out:?}"
    );
    for sig in ["-STOP", "-KILL"] {
        let out = kill(sig, helper);
        if out.status.success() {
            // Do not leave a stopped helper behind a failed test.
            let pid = nix::unistd::Pid::from_raw(helper);
            let _ = nix::sys::signal::kill(pid, Signal::SIGCONT);
            run.signal(Signal::SIGKILL);
            panic!("the caller could send {sig} to its setuid helper");
        }
        // Refused by the kernel (EPERM), to a helper that is still there (not ESRCH).
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("({helper}): Operation not permitted")),
            "kill {sig} {helper}: {err}"
        );
    }
    let out = run.wait();
    out.expect_no_panic();
    let report: Value =
        serde_json::from_str(&fs::read_to_string(scratch.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(
        report["status"], "TO",
        "the wall limit still held: {report}"
    );
    expect_gone(&cgroup_dirs(&out.stderr), "after the sleeper");
}

#[test]
fn a_killed_helpers_cgroups_are_removed_by_the_next_helper() {
    root_or_skip!();
    for_each_caller(|c| {
        // The helper process of the CLI is killed here; a daemon caller has none (the daemon's
        // own drain and cleanup are tested in daemon.rs).
        if matches!(
            c.kind,
            nsjail_tests::CallerKind::DaemonUser | nsjail_tests::CallerKind::DaemonRoot
        ) {
            return;
        }
        let secs = format!("8{}.5", unique());
        let opts = ["--memory-limit", "64M", "--pids-limit", "8"];
        let mut args = vec!["--verbose"];
        args.extend(opts);
        args.extend(["--", "/bin/sleep", &secs]);
        let mut cmd = c.run_cmd(&args);
        let what = format!("[{}] helper killed outright", c.name());
        let run = Running::spawn(&mut cmd, None, &what);
        assert!(
            run.stderr
                .wait_for("nsjail: started", Duration::from_secs(30)),
            "{what}: {}",
            run.stderr.text()
        );
        let dirs = cgroup_dirs(&run.stderr.text());
        assert!(!dirs.is_empty());
        let helper = helper_of(run.pid()).expect("the helper is running");
        // Only root can do this to a helper.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(helper), Signal::SIGKILL).unwrap();
        let out = run.wait();
        out.expect_code(125).expect_no_panic();
        // The sandbox died with its helper (parent-death signal of its PID 1).
        assert!(
            poll_until(Duration::from_secs(10), || pids_with_argv(&[
                "/bin/sleep",
                &secs
            ])
            .is_empty()),
            "{what}: the sandbox outlived its helper"
        );
        // Its empty cgroup directories may stay; the next helper using the same parents removes
        // them.
        let l = run_limited(c, &opts, &["/bin/true"]);
        l.expect_status("OK");
        expect_gone(&dirs, &format!("{what}, then another sandbox"));
    });
}

#[test]
fn the_sandbox_sees_its_cgroup_as_root_and_an_ordinary_user_cannot_leave_it() {
    for_each_caller(|c| {
        // Every cgroup.procs of the host, made visible on purpose (the default view has no
        // /sys), each tried as a way out. v1 lines name their controllers; v2 has one `0::` line.
        // First the controls: the payload finds its own cgroups (the files that list it, as
        // its pid namespace shows pids) and writes itself into them again, a move to where it
        // already is.
        let script = "grep -E ':(memory|pids):|^0::' /proc/self/cgroup; \
            own=$(grep -lx $$ $(find /sys/fs/cgroup -name cgroup.procs 2>/dev/null) 2>/dev/null); \
            for f in $own; do echo \"OWN $f\"; \
              if (echo $$ > \"$f\") 2>/dev/null; then echo \"REJOINED $f\"; fi; done; \
            for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do \
              [ -e \"$f\" ] || continue; echo \"TRIED $f\"; \
              if err=$( (echo $$ > \"$f\") 2>&1 ); then echo \"MOVED $f\"; \
              else echo \"REFUSED $f: ${err##*: }\"; fi; done; \
            grep -E ':(memory|pids):|^0::' /proc/self/cgroup";
        let l = run_limited(
            c,
            &[
                "--memory-limit",
                "64M",
                "--pids-limit",
                "16",
                "--default-view",
                "--bind",
                "/sys",
                "/sys",
            ],
            &["/bin/sh", "-c", script],
        );
        l.expect_status("OK");
        let lines = l.out.lines();
        let tried = lines.iter().filter(|x| x.starts_with("TRIED ")).count();
        let refused = lines.iter().filter(|x| x.starts_with("REFUSED ")).count();
        let denied = lines
            .iter()
            .filter(|x| x.starts_with("REFUSED ") && x.ends_with(": Permission denied"))
            .count();
        let moved = lines.iter().filter(|x| x.starts_with("MOVED ")).count();
        let own = lines.iter().filter(|x| x.starts_with("OWN ")).count();
        let rejoined = lines.iter().filter(|x| x.starts_with("REJOINED ")).count();
        let first = lines
            .iter()
            .position(|x| x.starts_with("OWN ") || x.starts_with("TRIED "));
        let before = &lines[..first.unwrap_or(lines.len())];
        let last = lines
            .iter()
            .rposition(|x| x.starts_with("MOVED ") || x.starts_with("REFUSED "));
        let after = &lines[last.map_or(lines.len(), |i| i + 1)..];
        // The way out was tried: /sys is there, with cgroup.procs files to write to, and the
        // payload's own among them.
        assert!(
            tried >= 1 && tried == refused + moved && !before.is_empty() && own >= 1,
            "[{}] the payload tried nothing, or never found its own cgroup:\n{}",
            c.name(),
            l.describe()
        );
        if c.kind != nsjail_tests::CallerKind::Myself {
            // Its own cgroup is the root of its cgroup namespace: no host path leaks in.
            assert!(
                before.iter().all(|v| v.ends_with(":/")),
                "the payload sees a host cgroup path:\n{}",
                l.describe()
            );
        }
        if c.is_user() {
            // Every write is refused by the kernel (EACCES), and the payload stays where it was.
            assert!(
                denied == tried && moved == 0 && after == before,
                "an ordinary user's payload moved itself out of its cgroup:\n{}",
                l.describe()
            );
        } else if c.kind == nsjail_tests::CallerKind::Root {
            // The control: root's payload, root on the host, may write itself into its own
            // cgroup, so a refusal elsewhere is the kernel's rule, not a write that cannot work.
            // (On v1 it may even leave: it is root on the host.)
            assert!(
                rejoined == own,
                "[root] the payload could not write itself into its own cgroup:\n{}",
                l.describe()
            );
        }
    });
}
