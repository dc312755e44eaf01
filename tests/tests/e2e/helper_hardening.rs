//! The setuid helper under attack by the user who starts it (DESIGN §3): its memory and
//! environment stay closed while a sandbox runs, hostile resource limits make it fail closed,
//! killing it at any moment leaves nothing behind, no fd of its own reaches the sandbox, and no
//! program the caller chose ever runs with its privilege.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use nsjail_core::{ErrorKind, HelperEvent};
use nsjail_tests::hardening::{PolicyEnv, probe_bin, probe_dir, probe_result};
use nsjail_tests::{
    Caller, HelperConn, HelperStart, Running, TIMEOUT, alive, pids_with_argv, poll_until,
    proc_stat, processes, root_or_skip, setuid_install, spawn_frame, test_user, unique,
};

/// The pid of the `nsjail-helper` whose parent is `cli`, as soon as it appears (spinning on
/// the CLI's list of children, so that a kill can land early in the helper's life).
fn helper_of(cli: i32) -> Option<i32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let children = format!("/proc/{cli}/task/{cli}/children");
    while std::time::Instant::now() < deadline {
        let list = fs::read_to_string(&children).unwrap_or_default();
        for pid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // The CLI's child is the helper once it has exec'd it.
            if proc_stat(pid).is_some_and(|(_, comm, _, _)| comm == "nsjail-helper") {
                return Some(pid);
            }
        }
        std::thread::yield_now();
    }
    None
}

/// Every descendant of `pid` (pid, start time).
fn descendants(pid: i32) -> Vec<(i32, u64)> {
    let procs = processes();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (child, (ppid, _)) in &procs {
            if *ppid == p {
                if let Some((_, _, _, start)) = proc_stat(*child) {
                    out.push((*child, start));
                }
                frontier.push(*child);
            }
        }
    }
    out
}

/// Run the probe on the host (no sandbox) as `c`.
fn host_probe(c: &Caller, check: &str, arg: &str) -> String {
    let mut cmd = c.command_for(probe_bin());
    cmd.args([check, arg]);
    let out = Running::spawn(&mut cmd, None, &format!("host probe {check} {arg}")).wait();
    probe_result(&out, check)
}

#[test]
fn the_caller_cannot_read_or_trace_the_helper_while_a_sandbox_runs() {
    root_or_skip!();
    let c = Caller::setuid_user();
    let secs = format!("6{}.5", unique());
    let mut cmd = c.run_cmd(&["--", "/bin/sleep", &secs]);
    let run = Running::spawn(&mut cmd, None, "sleeping sandbox");
    let helper = helper_of(run.pid()).expect("the helper never appeared");
    assert!(
        poll_until(Duration::from_secs(30), || !pids_with_argv(&[
            "/bin/sleep",
            &secs
        ])
        .is_empty()),
        "the sandbox never started"
    );
    // The sandbox's init: the helper's child.
    let init = processes()
        .into_iter()
        .find(|(_, (ppid, _))| *ppid == helper)
        .map(|(pid, _)| pid)
        .expect("no sandbox init");
    for pid in [helper, init] {
        let p = pid.to_string();
        for file in ["mem", "environ"] {
            assert_eq!(
                host_probe(&c, "open-read", &format!("/proc/{p}/{file}")),
                "EACCES",
                "the caller read /proc/{p}/{file} (pid {p}: helper {helper}, init {init})"
            );
        }
        assert_eq!(
            host_probe(&c, "ptrace", &p),
            "EPERM",
            "the caller attached to pid {p}"
        );
        assert_eq!(host_probe(&c, "process_vm_readv", &p), "EPERM", "pid {p}");
    }
    // The control: the caller's own CLI process is open to the caller.
    let cli = run.pid().to_string();
    assert_eq!(
        host_probe(&c, "open-read", &format!("/proc/{cli}/environ")),
        "ok"
    );
    assert_eq!(host_probe(&c, "ptrace", &cli), "ok");
    run.signal(Signal::SIGTERM);
    let _ = run.wait();
}

#[test]
fn the_payload_cannot_open_the_inits_executable() {
    // CVE-2019-5736 (runc): a payload that could open /proc/<runtime>/exe could overwrite the
    // runtime's binary. Our PID 1 is a fork of the helper, and non-dumpable.
    nsjail_tests::for_each_caller(|c| {
        let dir = probe_dir(c);
        for check in ["open-write", "open-read"] {
            c.expect_probe(dir.path(), &[], check, Some("/proc/1/exe"), "EACCES");
        }
        let out = c.probe(dir.path(), &[], "open-read", Some("/proc/self/exe"));
        assert_eq!(
            probe_result(&out, "open-read"),
            "ok",
            "control: {}",
            out.describe()
        );
    });
}

/// Send a spawn of `argv` to the helper at `conn`, stdout on a pipe; returns the events and
/// what the payload printed.
fn spawn_and_read(conn: &mut HelperConn, argv: &[&str]) -> (Vec<HelperEvent>, String) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let null_in: OwnedFd = fs::File::open("/dev/null").unwrap().into();
    let null_err: OwnedFd = fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap()
        .into();
    let _ = conn.send(
        &spawn_frame(argv),
        &[null_in.as_raw_fd(), w.as_raw_fd(), null_err.as_raw_fd()],
    );
    drop((null_in, w, null_err));
    let (events, err) = conn.read_until_end();
    assert!(err.is_none(), "events {events:?}, error {err:?}");
    let mut out = String::new();
    let _ = fs::File::from(r).read_to_string(&mut out);
    (events, out)
}

#[test]
fn the_helpers_environment_never_reaches_the_payload() {
    let env = vec![
        ("NSJAIL_E2E_MARKER".to_string(), "leaked".to_string()),
        ("LD_PRELOAD".to_string(), "/nonexistent.so".to_string()),
    ];
    let mut starts = vec![(nsjail_tests::helper_bin(), None)];
    if nsjail_tests::root_part(module_path!(), "the setuid helper") {
        starts.push((setuid_install().helper.clone(), Some(test_user())));
    }
    for (helper, as_ids) in starts {
        let how = HelperStart {
            as_ids,
            env: env.clone(),
            ..Default::default()
        };
        let mut conn = HelperConn::start(&helper, &how);
        let (events, out) = spawn_and_read(&mut conn, &["/usr/bin/env"]);
        assert!(
            events.iter().any(|e| matches!(e, HelperEvent::Exited(_))),
            "{events:?}"
        );
        // Only the request's environment: PATH.
        assert_eq!(
            out.trim(),
            format!("PATH={}", nsjail_tests::USER_PATH),
            "{how:?}"
        );
    }
}

/// Resource limits a caller may set before starting the setuid helper.
const RLIMITS: [(libc::__rlimit_resource_t, u64, &str); 13] = [
    (libc::RLIMIT_NOFILE, 3, "NOFILE=3"),
    (libc::RLIMIT_NOFILE, 4, "NOFILE=4"),
    (libc::RLIMIT_NOFILE, 5, "NOFILE=5"),
    (libc::RLIMIT_NOFILE, 6, "NOFILE=6"),
    (libc::RLIMIT_NOFILE, 7, "NOFILE=7"),
    (libc::RLIMIT_NOFILE, 8, "NOFILE=8"),
    (libc::RLIMIT_NOFILE, 9, "NOFILE=9"),
    (libc::RLIMIT_NOFILE, 10, "NOFILE=10"),
    (libc::RLIMIT_NOFILE, 12, "NOFILE=12"),
    (libc::RLIMIT_NOFILE, 16, "NOFILE=16"),
    (libc::RLIMIT_FSIZE, 0, "FSIZE=0"),
    (libc::RLIMIT_NPROC, 0, "NPROC=0"),
    (libc::RLIMIT_AS, 64 << 20, "AS=64MiB"),
];

/// A field of /proc/PID/status.
fn status_field(pid: i32, name: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_string())
        })
}

/// How one hostile start of the setuid helper ended, as the test process saw it.
#[derive(Debug)]
enum Hostile {
    /// A sandbox started: the `Started` event (the init's host pid).
    Started(i32),
    /// Refused with an error event, the last before the end of the stream.
    Refused(ErrorKind, String),
    /// The stream ended (EOF) with no event at all.
    Silent,
}

/// Read the helper's events up to `Started`, a refusal or EOF; any read error but the peer's
/// reset after it closed (see [`HelperConn::read_events`]) fails the test.
fn hostile_outcome(conn: &mut HelperConn, name: &str) -> Hostile {
    loop {
        match nsjail_core::wire::read_frame::<_, HelperEvent>(&mut conn.sock) {
            Ok(Some(HelperEvent::Started { pid })) => return Hostile::Started(pid),
            Ok(Some(HelperEvent::Step(_))) => continue,
            Ok(Some(HelperEvent::Error { kind, message })) => {
                return Hostile::Refused(kind, message);
            }
            Ok(Some(ev)) => panic!("{name}: {ev:?} before the sandbox started"),
            Ok(None) => return Hostile::Silent,
            Err(nsjail_core::wire::WireError::Io(e))
                if e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                return Hostile::Silent;
            }
            Err(e) => panic!("{name}: reading the helper's events: {e}"),
        }
    }
}

/// A sandbox started under a hostile limit runs locked down as always: init and payload with
/// no capability, `no_new_privs`, only the caller's uid mapped, and the payload filtered.
fn expect_locked_down(name: &str, init: i32, payload: i32, uid: u32) {
    let field = |pid: i32, f: &str| {
        status_field(pid, f).unwrap_or_else(|| panic!("{name}: no {f} for pid {pid}"))
    };
    for pid in [init, payload] {
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(
                field(pid, set),
                "0000000000000000",
                "{name}: {set} of {pid}"
            );
        }
        assert_eq!(field(pid, "NoNewPrivs"), "1", "{name}: pid {pid}");
        let map = fs::read_to_string(format!("/proc/{pid}/uid_map"))
            .unwrap_or_else(|e| panic!("{name}: uid_map of {pid}: {e}"));
        let words: Vec<&str> = map.split_whitespace().collect();
        assert_eq!(
            words,
            ["0", &uid.to_string(), "1"],
            "{name}: uid_map of {pid}"
        );
    }
    assert_eq!(
        field(payload, "Seccomp"),
        "2",
        "{name}: the payload runs without its filter"
    );
}

#[test]
fn hostile_rlimits_make_the_helper_fail_closed() {
    root_or_skip!();
    let (uid, _) = test_user();
    let helper = setuid_install().helper.clone();
    // The hostile limits, then harmless ones (the control: the same start runs a sandbox).
    let harmless: [(libc::__rlimit_resource_t, u64, &str); 2] = [
        (libc::RLIMIT_NOFILE, 1024, "NOFILE=1024"),
        (libc::RLIMIT_FSIZE, 1 << 30, "FSIZE=1GiB"),
    ];
    let (mut refused, mut started) = (0, 0);
    for (resource, value, name) in RLIMITS.into_iter().chain(harmless) {
        let control = harmless.iter().any(|h| h.2 == name);
        let secs = format!("5{}.5", unique());
        let how = HelperStart {
            as_ids: Some(test_user()),
            rlimits: vec![(resource, value)],
            ..Default::default()
        };
        let mut conn = HelperConn::start(&helper, &how);
        let null: Vec<OwnedFd> = nsjail_tests::devnull_stdio();
        let raw: Vec<i32> = null.iter().map(|f| f.as_raw_fd()).collect();
        let _ = conn.send(&spawn_frame(&["/bin/sleep", &secs]), &raw);
        drop(null);
        let outcome = hostile_outcome(&mut conn, name);
        eprintln!("{name}: {outcome:?}");
        let sleepers = || pids_with_argv(&["/bin/sleep", &secs]);
        match &outcome {
            Hostile::Started(init) => {
                started += usize::from(!control);
                // The payload may fail to exec under such a limit; then the helper says so.
                let mut payload = None;
                let appeared = poll_until(Duration::from_secs(10), || {
                    payload = sleepers().first().copied();
                    payload.is_some()
                });
                match payload {
                    Some(p) => expect_locked_down(name, *init, p, uid),
                    None => {
                        let (events, err) = conn.read_until_end();
                        // The payload runs under the caller's own limits (docs/security-model.md):
                        // with three descriptors, all taken by its stdio, the dynamic loader of
                        // /bin/sleep cannot open libc and exits 127, as it would outside.
                        let loader_failed = resource == libc::RLIMIT_NOFILE
                            && value <= 3
                            && matches!(
                                events.first(),
                                Some(HelperEvent::Exited(info))
                                    if info.termination == nsjail_core::Termination::Exited(127)
                            );
                        assert!(
                            !control
                                && err.is_none()
                                && (loader_failed
                                    || matches!(
                                        events.first(),
                                        Some(HelperEvent::Error {
                                            kind: ErrorKind::NotExecutable
                                                | ErrorKind::NotFound
                                                | ErrorKind::Setup,
                                            ..
                                        })
                                    )),
                            "{name}: started, no payload after 10 s ({appeared}), and the helper \
                             said {events:?} {err:?}"
                        );
                    }
                }
            }
            Hostile::Refused(kind, message) => {
                refused += usize::from(!control);
                // Fail closed: told why, in one line.
                assert!(
                    matches!(kind, ErrorKind::BadRequest | ErrorKind::Setup)
                        && !message.trim().is_empty()
                        && !message.contains('\n'),
                    "{name}: {kind:?} {message:?}"
                );
            }
            Hostile::Silent => refused += usize::from(!control),
        }
        assert!(
            !control || matches!(outcome, Hostile::Started(_)),
            "{name} (harmless): {outcome:?}"
        );
        if !matches!(outcome, Hostile::Started(_)) {
            assert!(sleepers().is_empty(), "{name}: refused, yet something runs");
        }
        drop(conn.sock);
        let mut run = conn.run;
        let status = run
            .wait_timeout(TIMEOUT)
            .unwrap_or_else(|| panic!("{name}: the helper did not exit"));
        // All of what it said: the reader of its stderr may still be behind its exit.
        assert!(
            run.stderr.wait_eof(TIMEOUT),
            "{name}: the helper's stderr stayed open after its exit"
        );
        let stderr = run.stderr.text();
        // How it ended: a refusal it could report exits 2 (0 when the sandbox's own set-up
        // failed: the helper served the request, and reported that); one it could not (no event) exits 1
        // with one line on stderr — or, for a dynamically linked helper (a debug build) whose
        // loader could not open a library, 127 with the loader's line; a served sandbox 0.
        // A crash (a signal) is never closed.
        let lines: Vec<&str> = stderr.lines().collect();
        let one_line = |start: &str| lines.len() == 1 && lines[0].contains(start);
        let closed = match outcome {
            Hostile::Started(_) => status.code() == Some(0) && lines.is_empty(),
            Hostile::Refused(..) => matches!(status.code(), Some(0 | 2)) && lines.is_empty(),
            Hostile::Silent => {
                (status.code() == Some(1) && one_line("nsjail-helper: "))
                    || (status.code() == Some(127)
                        && one_line("error while loading shared libraries"))
            }
        };
        assert!(
            closed,
            "{name}: the helper ended {status} after {outcome:?}; stderr {stderr:?}"
        );
        assert!(
            poll_until(Duration::from_secs(20), || sleepers().is_empty()),
            "{name}: the sandbox outlived its helper"
        );
    }
    // A dynamically linked helper (a debug build) is refused by its own loader under the small
    // descriptor limits, and starts sandboxes under the others: both ways are taken by the
    // hostile limits alone. A static helper (what `install` makes) needs no descriptor to start:
    // it serves every one of them, each sandbox checked locked down above.
    if has_loader(&helper) {
        assert!(
            refused >= 5 && started >= 2,
            "refused {refused}, started {started}: the limits no longer test both ways"
        );
    } else {
        assert_eq!(
            (refused, started),
            (0, RLIMITS.len()),
            "the static helper {} refused a hostile limit",
            helper.display()
        );
    }
}

/// Whether the ELF file at `path` names a program interpreter (a `PT_INTERP` header): a dynamic
/// loader runs before its `main`.
fn has_loader(path: &Path) -> bool {
    let elf = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        elf.len() >= 64 && elf[..4] == *b"\x7fELF" && elf[4] == 2,
        "{}: not a 64-bit ELF file",
        path.display()
    );
    let word = |at: usize, n: usize| {
        elf[at..at + n]
            .iter()
            .rev()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b)) as usize
    };
    let (phoff, phentsize, phnum) = (word(0x20, 8), word(0x36, 2), word(0x38, 2));
    (0..phnum).any(|i| word(phoff + i * phentsize, 4) == 3)
}

#[test]
fn killing_the_helper_at_any_moment_leaves_nothing_behind() {
    root_or_skip!();
    let c = Caller::setuid_user();
    // A policy with one slot: a slot not given back would refuse the next run.
    let env = PolicyEnv::with_policy("[limits]\nmax_sandboxes_per_user = 1\n");
    // From the helper's first instructions to a running sandbox.
    let delays_us = [
        0u64, 0, 0, 50, 100, 200, 300, 500, 700, 1000, 1500, 2000, 3000, 5000, 8000, 13000, 50000,
    ];
    for delay_us in delays_us {
        let secs = format!("4{}.5", unique());
        let run = env.spawn(&c, &["--", "/bin/sleep", &secs]);
        let Some(helper) = helper_of(run.pid()) else {
            panic!("delay {delay_us}: no helper under the CLI");
        };
        std::thread::sleep(Duration::from_micros(delay_us));
        let family = descendants(helper);
        let _ = kill(Pid::from_raw(helper), Signal::SIGKILL);
        let out = run.wait();
        // The CLI says the helper is gone (or the payload's end, if it raced to that).
        assert!(out.code().is_some(), "delay {delay_us}: {}", out.describe());
        eprintln!(
            "delay {delay_us} µs: killed the helper with {} descendants; CLI: {:?} {}",
            family.len(),
            out.code(),
            out.stderr.trim()
        );
        let gone = poll_until(Duration::from_secs(20), || {
            family.iter().all(|(pid, start)| !alive(*pid, *start))
                && pids_with_argv(&["/bin/sleep", &secs]).is_empty()
        });
        assert!(
            gone,
            "delay {delay_us}: processes the helper started survived it: {family:?} {:?}",
            pids_with_argv(&["/bin/sleep", &secs])
        );
        // The slot was given back.
        env.run(&c, None, &["--", "/bin/true"]).expect_success();
    }
}

/// The targets of a process's fds (as root sees them).
fn fd_targets(pid: i32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| fs::read_link(e.path()).ok())
                .map(|p| p.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn no_helper_owned_fd_reaches_the_sandbox() {
    root_or_skip!();
    let c = Caller::setuid_user();
    let env = PolicyEnv::with_policy("[limits]\nmax_sandboxes_per_user = 2\n");
    // A file the caller holds open on fd 9, to see it closed in the helper too.
    let scratch = c.scratch();
    let marker = scratch.path().join("callers-open-file");
    fs::write(&marker, "x").unwrap();
    let f: OwnedFd = fs::File::open(&marker).unwrap().into();
    let raw = f.as_raw_fd();
    let secs = format!("3{}.5", unique());
    let mut cmd = env.command(&c, &c.nsjail);
    cmd.args(["run", "--", "/bin/sleep", &secs]);
    // SAFETY: dup2 and fcntl only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 9) == -1 || libc::fcntl(9, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = Running::spawn(&mut cmd, None, "sleeping sandbox with fd 9");
    drop(f);
    let helper = helper_of(run.pid()).expect("no helper");
    assert!(
        poll_until(Duration::from_secs(30), || !pids_with_argv(&[
            "/bin/sleep",
            &secs
        ])
        .is_empty()),
        "the sandbox never started"
    );
    let marker_s = marker.to_string_lossy().into_owned();
    let helper_fds = fd_targets(helper);
    assert!(
        !helper_fds.iter().any(|t| t == &marker_s),
        "the helper kept the caller's fd 9: {helper_fds:?}"
    );
    // The helper holds its slot lock; no process of the sandbox holds it, the policy, or any
    // other file of the helper's.
    let sandbox: Vec<i32> = descendants(helper).into_iter().map(|(p, _)| p).collect();
    assert!(sandbox.len() >= 2, "init and payload expected: {sandbox:?}");
    for pid in &sandbox {
        let targets = fd_targets(*pid);
        let allowed: BTreeSet<&str> = ["/dev/null"].into_iter().collect();
        for t in &targets {
            let is_pipe = t.starts_with("pipe:[") || t.starts_with("anon_inode:");
            assert!(
                is_pipe || allowed.contains(t.as_str()),
                "sandbox pid {pid} holds {t:?} (all: {targets:?}; helper's: {helper_fds:?})"
            );
            for bad in ["policy.toml", "/run/nsjail", ".lock", "/etc/", &marker_s] {
                assert!(!t.contains(bad), "sandbox pid {pid} holds {t}");
            }
        }
    }
    run.signal(Signal::SIGTERM);
    let _ = run.wait();
}

#[test]
fn no_program_the_caller_chose_runs_with_privilege() {
    root_or_skip!();
    let c = Caller::setuid_user();
    // Traps named like everything a careless helper might run: each records who ran it.
    let dir = c.scratch();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let names = [
        "sh",
        "bash",
        "newuidmap",
        "newgidmap",
        "mount",
        "umount",
        "ip",
        "id",
        "true",
        "ls",
        "cat",
        "getent",
        "nscd",
        "ldconfig",
    ];
    for n in names {
        let p = dir.path().join(n);
        fs::write(
            &p,
            "#!/bin/sh\n: > \"$(/usr/bin/dirname \"$0\")/ran-$(/usr/bin/basename \"$0\")\"\n",
        )
        .unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let trap = dir.path().to_str().unwrap().to_string();
    let mut cmd = c.run_cmd(&["--", "true"]);
    cmd.current_dir(dir.path())
        .env("PATH", format!("{trap}:/usr/bin:/bin"))
        .env("SHELL", format!("{trap}/sh"))
        .env("LD_LIBRARY_PATH", &trap)
        .env("NSS_DEFAULT", &trap);
    let out = Running::spawn(&mut cmd, None, "nsjail run -- true with a trapped PATH").wait();
    out.expect_success();
    let ran: Vec<(String, u32)> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let name = name.strip_prefix("ran-")?.to_string();
            Some((name, e.metadata().ok()?.uid()))
        })
        .collect();
    // Only the payload ran from PATH, and as the caller.
    assert_eq!(
        ran,
        [("true".to_string(), c.uid)],
        "trapped programs that ran: {ran:?}"
    );
    assert!(Path::new(&trap).join("ran-true").exists());
}

#[test]
fn a_directory_passed_as_stdio_is_refused() {
    // Google nsjail #268: a directory fd as stdin would let the payload openat() its way to
    // host files it was never given.
    nsjail_tests::for_each_caller(|c| {
        let dir = c.scratch();
        for which in ["stdin", "stdout"] {
            let mut cmd = c.run_cmd(&["--", "/bin/true"]);
            let d = fs::File::open(dir.path()).unwrap();
            match which {
                "stdin" => cmd.stdin(d),
                _ => cmd.stdout(d),
            };
            cmd.stderr(std::process::Stdio::piped());
            if which == "stdin" {
                cmd.stdout(std::process::Stdio::null());
            } else {
                cmd.stdin(std::process::Stdio::null());
            }
            let mut child = cmd.spawn().unwrap();
            let mut stderr = nsjail_tests::Capture::start(child.stderr.take().unwrap());
            stderr.hide_lines(nsjail_tests::WAY_IN_LINE);
            let mut status = None;
            let ended = poll_until(TIMEOUT, || {
                status = child.try_wait().unwrap();
                status.is_some()
            });
            if !ended {
                let _ = child.kill();
                let _ = child.wait();
            }
            stderr.wait_eof(Duration::from_secs(10));
            assert_eq!(
                status.and_then(|s| s.code()),
                Some(125),
                "[{}] {which}: {status:?}",
                c.name()
            );
            let err = stderr.text();
            assert!(
                err.trim() == "nsjail: a directory cannot be passed as stdin, stdout or stderr",
                "[{}] {which}: {err}",
                c.name()
            );
        }
    });
}

#[test]
fn a_spawn_must_carry_exactly_the_fds_it_announces() {
    // The fd-count rule of the wire: 3 stdio fds plus the announced extra (filesystem data)
    // fds. (Raw BPF programs travel as bytes in the request, never as fds.)
    let mut starts = vec![(nsjail_tests::helper_bin(), None)];
    if nsjail_tests::root_part(module_path!(), "the setuid helper") {
        starts.push((setuid_install().helper.clone(), Some(test_user())));
    }
    for (helper, as_ids) in starts {
        for (announced, sent) in [(1u32, 3usize), (0, 4), (2, 4), (6, 8)] {
            let how = HelperStart {
                as_ids,
                ..Default::default()
            };
            let mut conn = HelperConn::start(&helper, &how);
            let mut req = nsjail_tests::spawn_request(&["/bin/true"]);
            req.extra_fds = announced;
            let frame =
                nsjail_core::wire::encode(&nsjail_core::ClientMessage::Spawn(Box::new(req)))
                    .unwrap();
            let fds: Vec<OwnedFd> = (0..sent.div_ceil(3))
                .flat_map(|_| nsjail_tests::devnull_stdio())
                .take(sent)
                .collect();
            let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
            let _ = conn.send(&frame, &raw);
            drop(fds);
            let (events, _) = conn.read_until_end();
            let ctx = format!(
                "{} announced {announced}, sent {sent}: {events:?}",
                helper.display()
            );
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, HelperEvent::Started { .. })),
                "{ctx}"
            );
            assert!(
                matches!(
                    events.last(),
                    Some(HelperEvent::Error {
                        kind: ErrorKind::BadRequest,
                        ..
                    })
                ),
                "{ctx}"
            );
            drop(conn.sock);
            let mut run = conn.run;
            assert!(
                run.wait_timeout(TIMEOUT).is_some(),
                "{ctx}: the helper did not exit"
            );
        }
    }
}
