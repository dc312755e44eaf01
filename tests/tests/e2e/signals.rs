//! Signals sent to the CLI reach the payload; SIGKILL of the CLI takes the whole sandbox down.

use std::time::Duration;

use nix::sys::signal::Signal;
use nsjail_tests::{
    Running, alive, for_each_caller, pids_with_argv, poll_until, proc_stat, processes, shell_code,
    shell_words, unique,
};

pub(crate) fn forwarded(c: &nsjail_tests::Caller, opts: &[&str], sig: Signal, trap_name: &str) {
    let script = format!(
        "trap 'echo TRAPPED-{trap_name}; exit 42' {trap_name}; echo READY; while :; do sleep 0.05; done"
    );
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["--", "/bin/sh", "-c", &script]);
    let mut cmd = c.run_cmd(&args);
    let what = format!(
        "[{}] nsjail run {} (then {sig})",
        c.name(),
        shell_words(&args)
    );
    let mut run = Running::spawn(&mut cmd, None, &what);
    run.wait_stdout("READY");
    run.signal(sig);
    let out = run.wait();
    assert!(
        out.stdout.contains(&format!("TRAPPED-{trap_name}")),
        "the payload's {trap_name} trap did not run:\n{}",
        out.describe()
    );
    out.expect_code(42).expect_no_panic();
}

#[test]
fn sigterm_to_the_cli_reaches_the_payload() {
    for_each_caller(|c| forwarded(c, &[], Signal::SIGTERM, "TERM"));
}

#[test]
fn other_forwarded_signals_reach_the_payload() {
    for_each_caller(|c| {
        for (sig, name) in [
            (Signal::SIGINT, "INT"),
            (Signal::SIGHUP, "HUP"),
            (Signal::SIGQUIT, "QUIT"),
            (Signal::SIGUSR1, "USR1"),
            (Signal::SIGUSR2, "USR2"),
        ] {
            forwarded(c, &[], sig, name);
        }
    });
}

#[test]
fn signals_reach_a_payload_that_is_pid_1() {
    for_each_caller(|c| {
        forwarded(c, &["--as-pid-1"], Signal::SIGTERM, "TERM");
        forwarded(c, &["--as-pid-1"], Signal::SIGINT, "INT");
    });
}

#[test]
fn an_untrapped_sigterm_ends_the_payload_with_143() {
    for_each_caller(|c| {
        let args = [
            "--",
            "/bin/sh",
            "-c",
            "echo READY; while :; do sleep 0.05; done",
        ];
        let mut cmd = c.run_cmd(&args);
        let mut run = Running::spawn(&mut cmd, None, &format!("[{}] untrapped TERM", c.name()));
        run.wait_stdout("READY");
        run.signal(Signal::SIGTERM);
        run.wait().expect_code(128 + 15).expect_no_panic();
    });
}

#[test]
fn sigkill_of_the_cli_leaves_no_sandbox_process() {
    for_each_caller(|c| {
        killed(c, &[]);
        killed(c, &["--as-pid-1"]);
    });
}

fn killed(c: &nsjail_tests::Caller, opts: &[&str]) {
    {
        let secs = format!("9{}.5", unique());
        let argv = ["/bin/sleep", secs.as_str()];
        let script = format!("/bin/sleep {secs} & exec /bin/sleep {secs}");
        let mut args: Vec<&str> = opts.to_vec();
        args.extend(["--", "/bin/sh", "-c", &script]);
        let mut cmd = c.run_cmd(&args);
        let what = format!(
            "[{}] nsjail run {} (then SIGKILL)",
            c.name(),
            shell_words(&args)
        );
        let mut run = Running::spawn(&mut cmd, None, &what);
        let cli = run.pid();

        let mut payload = Vec::new();
        let started = poll_until(Duration::from_secs(30), || {
            payload = pids_with_argv(&argv);
            payload.len() >= 2
        });
        if !started {
            run.signal(Signal::SIGKILL);
            panic!("{what}: the two sleeps never appeared on the host ({payload:?})");
        }
        // The CLI's children (the helper) and the payload's processes, with their start times
        // so that a reused pid is not mistaken for a survivor.
        let mut watched: Vec<(i32, u64, String)> = processes()
            .into_iter()
            .filter(|(_, (ppid, _))| *ppid == cli)
            .filter_map(|(pid, (_, comm))| proc_stat(pid).map(|s| (pid, s.3, comm)))
            .collect();
        for p in &payload {
            if let Some(s) = proc_stat(*p) {
                watched.push((*p, s.3, "sleep".into()));
            }
        }
        // Through the daemon the CLI has no helper child: the daemon's connection process
        // serves it, and must end the sandbox when the CLI's end of the socket closes.
        assert!(
            c.via_daemon()
                || watched
                    .iter()
                    .any(|(_, _, comm)| comm.starts_with("nsjail-helper")),
            "{what}: no nsjail-helper child of the CLI (pid {cli}) found: {watched:?}"
        );

        run.signal(Signal::SIGKILL);
        let st = run.wait_timeout(Duration::from_secs(10));
        assert_eq!(st.map(|s| shell_code(&s)), Some(128 + 9), "{what}");
        let gone = poll_until(Duration::from_secs(10), || {
            watched.iter().all(|(pid, start, _)| !alive(*pid, *start))
                && pids_with_argv(&argv).is_empty()
        });
        if !gone {
            let left: Vec<_> = watched
                .iter()
                .filter(|(pid, start, _)| alive(*pid, *start))
                .collect();
            let strays = pids_with_argv(&argv);
            for p in &strays {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), Signal::SIGKILL);
            }
            for (p, _, _) in &left {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), Signal::SIGKILL);
            }
            panic!(
                "{what}: 10 s after SIGKILL of the CLI these survive: {left:?}, payload {strays:?}"
            );
        }
    }
}
