//! Caller-controlled process state (the helper's `host/inherit.rs`): nothing the caller sets
//! before it starts the setuid helper changes what the helper enforces, and the payload still
//! gets what a normal child of the caller would.
//!
//! The caller here is the ordinary test user. Where the state would not survive the CLI's own
//! `fork` (interval timers, pending signals) or where the attack is to start the helper by hand
//! (job control in the caller's terminal), the test starts the setuid helper itself and speaks
//! the protocol; otherwise it runs `nsjail run` with the state set, as `nice -n 19 nsjail run`
//! would. One test per row of the table in docs/security-model.md.

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use nsjail_core::{ClientMessage, HelperEvent, LimitHit, SpawnRequest};
use nsjail_tests::{
    Caller, Capture, HelperConn, Running, TIMEOUT, USER_PATH, poll_until, proc_stat, root_or_skip,
    setuid_install, socketpair_as, spawn_request, test_user, unique,
};

// ---------------------------------------------------------------------------------------------
// Starting the setuid helper by hand, with caller state set just before the exec

/// Start the installed setuid helper as the test user with `--fd N`, running `pre` in the new
/// process just before the exec (after the switch to the test user's ids).
fn start_helper(
    what: &str,
    pre: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> HelperConn {
    let (uid, gid) = test_user();
    let (ours, theirs) = socketpair_as(uid, gid);
    let fd = theirs.as_raw_fd();
    let mut cmd = Command::new(&setuid_install().helper);
    cmd.arg("--fd")
        .arg(fd.to_string())
        .env_clear()
        .env("PATH", USER_PATH)
        .current_dir("/")
        .uid(uid)
        .gid(gid);
    let mut pre = pre;
    // SAFETY: `pre` makes only raw system calls; fcntl is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            pre()?;
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = Running::spawn(&mut cmd, None, what);
    drop(theirs);
    ours.set_read_timeout(Some(TIMEOUT)).unwrap();
    HelperConn { run, sock: ours }
}

/// `ret == -1` as an io::Error (for pre_exec closures).
fn check(ret: libc::c_int) -> std::io::Result<()> {
    if ret == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A request for `argv` (the system and /proc mounted) with `wall` seconds of wall-clock limit, a pids limit (so that the
/// sandbox has a cgroup) and `--verbose` (so that the helper names it).
fn limited_request(argv: &[&str], wall: u64) -> SpawnRequest {
    let mut r = spawn_request(argv);
    r.mounts.push(nsjail_core::MountOp::Proc {
        dst: "/proc".into(),
    });
    r.limits.wall_time_us = Some(wall * 1_000_000);
    r.limits.pids = Some(64);
    r.verbose = true;
    r
}

/// Send `req` with stdin and stderr on /dev/null and stdout on a pipe; returns the pipe's read
/// end, drained by a thread.
fn send(sock: &UnixStream, req: SpawnRequest) -> Capture {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let frame = nsjail_core::wire::encode(&ClientMessage::Spawn(Box::new(req))).unwrap();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let null_in: OwnedFd = fs::File::open("/dev/null").unwrap().into();
    let null_err: OwnedFd = fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap()
        .into();
    let fds = [null_in.as_raw_fd(), w.as_raw_fd(), null_err.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[std::io::IoSlice::new(&frame)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .expect("send the spawn request");
    Capture::start(fs::File::from(r))
}

/// Events until the exchange ends or `deadline`; `true` when it ended (an `Exited`, a final
/// `Error`, or the helper closed the socket).
fn events_until(sock: &mut UnixStream, deadline: Instant) -> (Vec<HelperEvent>, bool) {
    let mut events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (events, false);
        }
        let ms = left.as_millis().min(200) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            continue;
        }
        match nsjail_core::wire::read_frame::<_, HelperEvent>(&mut *sock) {
            Ok(Some(ev)) => {
                let last = matches!(ev, HelperEvent::Exited(_))
                    || matches!(&ev, HelperEvent::Error { kind, .. }
                        if !matches!(kind, nsjail_core::ErrorKind::NotFound
                            | nsjail_core::ErrorKind::NotExecutable));
                events.push(ev);
                if last {
                    return (events, true);
                }
            }
            Ok(None) | Err(_) => return (events, true),
        }
    }
}

/// The cgroup directories the helper's `--verbose` steps named.
fn cgroup_dirs(events: &[HelperEvent]) -> Vec<PathBuf> {
    events
        .iter()
        .filter_map(|e| match e {
            HelperEvent::Step(s) => s.strip_prefix("cgroup: /"),
            _ => None,
        })
        .filter_map(|rest| {
            rest.split_once(" (")
                .map(|(p, _)| PathBuf::from(format!("/{p}")))
        })
        .collect()
}

fn exited(events: &[HelperEvent]) -> Option<&nsjail_core::ExitInfo> {
    events.iter().find_map(|e| match e {
        HelperEvent::Exited(x) => Some(x),
        _ => None,
    })
}

/// The sandbox ran to its wall-clock limit and was ended by the helper, which then exited 0
/// and left no cgroup directory behind.
#[track_caller]
fn expect_enforced(conn: HelperConn, events: &[HelperEvent], ended: bool, ctx: &str) {
    let mut run = conn.run;
    let info = exited(events);
    let status = run.wait_timeout(Duration::from_secs(20));
    let stderr = run.stderr.text();
    let dirs = cgroup_dirs(events);
    let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    let describe = format!(
        "{ctx}\n  ended: {ended}\n  events: {events:?}\n  helper: {status:?}\n  helper stderr: \
         {stderr:?}\n  cgroups left: {left:?}"
    );
    assert!(
        info.is_some_and(|x| x.limit_hit == Some(LimitHit::WallTime)),
        "the helper did not enforce the wall-clock limit\n{describe}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the helper did not end normally\n{describe}"
    );
    assert!(!dirs.is_empty(), "no cgroup was made\n{describe}");
    assert!(
        left.is_empty(),
        "cgroup directories left behind\n{describe}"
    );
}

/// `--fd`'s helper pid under the CLI `cli` (its child once it has exec'd the helper).
fn helper_of(cli: i32) -> i32 {
    let children = format!("/proc/{cli}/task/{cli}/children");
    let mut found = None;
    poll_until(Duration::from_secs(20), || {
        found = fs::read_to_string(&children)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .find(|p| proc_stat(*p).is_some_and(|(_, comm, _, _)| comm == "nsjail-helper"));
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no nsjail-helper under the CLI {cli}"))
}

/// The fields of /proc/PID/stat after the command name (field 3 is index 0).
fn stat_fields(pid: &str) -> Vec<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// A line `Name:\tvalue` of /proc/PID/status.
fn status_line(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| format!("<no {name}>"))
}

// ---------------------------------------------------------------------------------------------
// A terminal of our own, with a job in its foreground

/// A program started as the foreground job of a new terminal, as an interactive shell starts
/// a command: a session leader holds the terminal as its controlling terminal, the job is in a
/// process group of its own, which is the terminal's foreground group, and its stdio is the
/// terminal. The job runs as `uid:gid`; `keep` (if any) becomes its fd 3.
struct TermJob {
    master: OwnedFd,
    leader: i32,
    job: i32,
    output: Capture,
}

impl TermJob {
    fn start(argv: &[&str], uid: u32, gid: u32, keep: Option<RawFd>) -> TermJob {
        let pty = nsjail_tests::openpty();
        let slave = pty.slave.as_raw_fd();
        let master = pty.master;
        let c = |s: &str| CString::new(s).unwrap();
        let argv_c: Vec<CString> = argv.iter().map(|a| c(a)).collect();
        let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let env_c = [c(&format!("PATH={USER_PATH}"))];
        let env_p = [env_c[0].as_ptr(), std::ptr::null()];
        let keep = keep.unwrap_or(-1);
        let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let ready_w = std::os::fd::IntoRawFd::into_raw_fd(ready_w);
        // SAFETY: between fork and exec (or _exit) both new processes make only raw,
        // async-signal-safe system calls on values prepared before the fork.
        let leader = unsafe { libc::fork() };
        assert!(leader >= 0, "fork");
        if leader == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::setsid() == -1 || libc::ioctl(slave, libc::TIOCSCTTY, 0) == -1 {
                    libc::_exit(120);
                }
                let job = libc::fork();
                if job == 0 {
                    libc::setpgid(0, 0);
                    // A background process may make itself the foreground only with SIGTTOU
                    // ignored; the exec below restores nothing else.
                    libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                    let fg = libc::tcsetpgrp(slave, libc::getpid());
                    libc::signal(libc::SIGTTOU, libc::SIG_DFL);
                    if fg == -1 {
                        libc::_exit(121);
                    }
                    for std in 0..3 {
                        libc::dup2(slave, std);
                    }
                    if keep >= 0 {
                        if keep == 3 {
                            libc::fcntl(3, libc::F_SETFD, 0);
                        } else {
                            libc::dup2(keep, 3);
                        }
                    }
                    libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
                    if libc::setgroups(0, std::ptr::null()) == -1
                        || libc::setresgid(gid, gid, gid) == -1
                        || libc::setresuid(uid, uid, uid) == -1
                    {
                        libc::_exit(122);
                    }
                    libc::execve(argv_p[0], argv_p.as_ptr(), env_p.as_ptr());
                    libc::_exit(127);
                }
                // The session leader: say who the job is, hold nothing else, wait for it.
                let bytes = job.to_ne_bytes();
                libc::write(ready_w, bytes.as_ptr() as *const libc::c_void, bytes.len());
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                let mut st = 0;
                libc::waitpid(job, &mut st, 0);
                libc::_exit(0);
            }
        }
        drop(pty.slave);
        // Our copy of the write end goes; the leader's is the only one left.
        // SAFETY: ready_w is the pipe's write end, owned by nothing else in this process.
        drop(unsafe { OwnedFd::from_raw_fd(ready_w) });
        let mut bytes = [0u8; 4];
        fs::File::from(ready_r)
            .read_exact(&mut bytes)
            .expect("the session leader did not name its job");
        let job = i32::from_ne_bytes(bytes);
        let reader = fs::File::from(master.try_clone().unwrap());
        TermJob {
            master,
            leader,
            job,
            output: Capture::start(reader),
        }
    }

    /// Type the terminal's suspend character (^Z unless changed).
    fn press_suspend(&self) {
        let t = nix::sys::termios::tcgetattr(&self.master).expect("tcgetattr");
        let c = t.control_chars[nix::sys::termios::SpecialCharacterIndices::VSUSP as usize];
        nix::unistd::write(&self.master, &[c]).expect("write to the terminal");
    }

    fn state(&self) -> Option<char> {
        proc_stat(self.job).map(|(_, _, st, _)| st)
    }

    /// Whether the job is stopped, waiting (bounded) for it to stop.
    fn stops_within(&self, d: Duration) -> bool {
        poll_until(d, || self.state() == Some('T'))
    }
}

impl Drop for TermJob {
    fn drop(&mut self) {
        for pid in [self.job, self.leader] {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = nix::sys::wait::waitpid(Pid::from_raw(self.leader), None);
    }
}

// ---------------------------------------------------------------------------------------------
// Signals and job control

#[test]
fn the_stop_key_in_the_callers_terminal_does_not_stop_the_helper() {
    root_or_skip!();
    let (uid, gid) = test_user();

    // The control: the same terminal and job set-up stops an ordinary program.
    let control = TermJob::start(&["/bin/sleep", "60"], uid, gid, None);
    assert!(
        poll_until(Duration::from_secs(10), || control.state() == Some('S')),
        "the control job did not start: {:?}",
        control.output.text()
    );
    control.press_suspend();
    assert!(
        control.stops_within(Duration::from_secs(10)),
        "control: ^Z did not stop the foreground job (state {:?})",
        control.state()
    );
    drop(control);

    // The attack: the setuid helper itself is the foreground job; ^Z once its sandbox runs.
    let (ours, theirs) = socketpair_as(uid, gid);
    let helper = setuid_install().helper.to_str().unwrap().to_string();
    let job = TermJob::start(&[&helper, "--fd", "3"], uid, gid, Some(theirs.as_raw_fd()));
    drop(theirs);
    let mut sock = ours;
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let marker = format!("6{}.5", unique());
    let out = send(
        &sock,
        limited_request(
            &[
                "/bin/sh",
                "-c",
                &format!("grep -E '^Sig(Ign|Blk)' /proc/self/status; exec /bin/sleep {marker}"),
            ],
            3,
        ),
    );
    let began = Instant::now();
    let (events, _) = {
        let mut ev = Vec::new();
        let ok = poll_until(Duration::from_secs(30), || {
            let (more, _) = events_until(&mut sock, Instant::now() + Duration::from_millis(100));
            ev.extend(more);
            ev.iter().any(|e| matches!(e, HelperEvent::Started { .. }))
        });
        assert!(
            ok,
            "the sandbox did not start: {ev:?}\n{}",
            job.output.text()
        );
        (ev, ())
    };
    job.press_suspend();
    let stopped = job.stops_within(Duration::from_secs(2));
    let (more, ended) = events_until(&mut sock, began + Duration::from_secs(10));
    let mut all = events;
    all.extend(more);
    let payload_alive = !nsjail_tests::pids_with_argv(&["/bin/sleep", &marker]).is_empty();
    let ctx = format!(
        "helper state after ^Z: {:?} (stopped: {stopped}); sandbox alive at 10 s: \
         {payload_alive}; events: {all:?}; terminal: {:?}",
        job.state(),
        job.output.text()
    );
    // Whatever happens below, never leave a stopped helper or its sandbox behind.
    let _ = kill(Pid::from_raw(job.job), Signal::SIGCONT);
    assert!(!stopped, "^Z stopped the setuid helper: {ctx}");
    assert!(
        ended && exited(&all).is_some_and(|x| x.limit_hit == Some(LimitHit::WallTime)),
        "the 3 s wall-clock limit was not enforced: {ctx}"
    );
    assert!(!payload_alive, "{ctx}");
    let dirs = cgroup_dirs(&all);
    assert!(
        !dirs.is_empty() && dirs.iter().all(|d| !d.exists()),
        "cgroups {dirs:?}: {ctx}"
    );
    // The payload got default dispositions back, and an empty mask.
    assert!(out.wait_eof(Duration::from_secs(10)), "{ctx}");
    assert_eq!(
        out.text().split_whitespace().collect::<Vec<_>>(),
        ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000"],
        "the payload's signal state: {ctx}"
    );
}

#[test]
fn the_helper_leaves_the_callers_session() {
    root_or_skip!();
    let c = Caller::setuid_user();
    let marker = format!("7{}.5", unique());
    let mut cmd = c.run_cmd(&[
        "--",
        "/bin/sh",
        "-c",
        &format!("echo ready; exec /bin/sleep {marker}"),
    ]);
    let mut cli = Running::spawn(&mut cmd, None, "nsjail run -- sleep (session)");
    let helper = helper_of(cli.pid());
    cli.wait_stdout("ready");
    let h = stat_fields(&helper.to_string());
    let caller = stat_fields(&cli.pid().to_string());
    // (field 6 is the session, 7 the controlling terminal: indexes 3 and 4 here)
    let ctx = format!(
        "helper {helper} stat {h:?}; CLI {} stat {caller:?}",
        cli.pid()
    );
    // The control: the caller may send SIGCONT to its own process…
    let mut own = c.command_for("/bin/kill");
    own.args(["-CONT", &cli.pid().to_string()]);
    let own = Running::spawn(&mut own, None, "kill -CONT <the CLI>").wait();
    // …but not to the helper: SIGCONT is the one signal the kernel lets through to another
    // user's process in the same session.
    let mut cont = c.command_for("/bin/kill");
    cont.args(["-CONT", &helper.to_string()]);
    let cont = Running::spawn(&mut cont, None, "kill -CONT <the helper>").wait();
    cli.signal(Signal::SIGTERM);
    let out = cli.wait();
    own.expect_success();
    assert_eq!(
        h[3],
        helper.to_string(),
        "the helper leads a session of its own: {ctx}"
    );
    assert_ne!(h[3], caller[3], "{ctx}");
    assert_eq!(h[4], "0", "the helper has no controlling terminal: {ctx}");
    assert!(
        !cont.status.success() && cont.stderr.contains("Operation not permitted"),
        "the caller could send SIGCONT to the helper: {}\n{ctx}",
        cont.describe()
    );
    assert_eq!(out.code(), Some(128 + 15), "{}", out.describe());
}

#[test]
fn inherited_signal_state_reaches_neither_the_helper_nor_the_payload() {
    root_or_skip!();
    // Every signal blocked, some ignored, three pending: the exec keeps all of that.
    let mut conn = start_helper("nsjail-helper (signals blocked, ignored, pending)", || {
        // SAFETY: raw signal calls on this (new, single-threaded) process.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            check(libc::sigprocmask(
                libc::SIG_BLOCK,
                &all,
                std::ptr::null_mut(),
            ))?;
            for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGCHLD] {
                libc::signal(sig, libc::SIG_IGN);
            }
            for sig in [libc::SIGALRM, libc::SIGTERM, libc::SIGUSR1] {
                check(libc::raise(sig))?;
            }
        }
        Ok(())
    });
    let out = send(
        &conn.sock,
        limited_request(
            &[
                "/bin/sh",
                "-c",
                "grep -E '^(Sig|Shd)(Pnd|Blk|Ign)' /proc/self/status; exec /bin/sleep 60",
            ],
            2,
        ),
    );
    let (events, ended) = events_until(&mut conn.sock, Instant::now() + Duration::from_secs(30));
    let text = out.text();
    expect_enforced(conn, &events, ended, "pending, blocked and ignored signals");
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            "SigPnd:",
            "0000000000000000",
            "ShdPnd:",
            "0000000000000000",
            "SigBlk:",
            "0000000000000000",
            "SigIgn:",
            "0000000000000000"
        ],
        "the payload must start with no signal pending, blocked or ignored"
    );
}

/// Cgroup directories named after `pid` (a sandbox cgroup of that helper), anywhere under
/// /sys/fs/cgroup (a few levels deep).
fn cgroups_named_after(pid: i32) -> Vec<PathBuf> {
    let marks = [format!("/{pid}-"), format!("/nsjail-{pid}-")];
    let mut found = Vec::new();
    let mut dirs = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((d, depth)) = dirs.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let s = p.display().to_string();
            if marks.iter().any(|m| s.contains(m.as_str())) {
                found.push(p.clone());
            }
            if depth < 8 {
                dirs.push((p, depth + 1));
            }
        }
    }
    found
}

#[test]
fn interval_timers_armed_before_exec_are_disarmed() {
    root_or_skip!();
    // ITIMER_REAL at 2 s fires while the sandbox runs. The CPU-time timers fire after 5 ms of
    // the helper's CPU: on a fast host while it serves; in an emulated guest its start-up
    // alone may use that much, and then the timer ends it before its first instruction (the
    // caller killed its own process before it did anything: nothing to leave behind).
    for (which, name, usec, sig) in [
        (libc::ITIMER_REAL, "ITIMER_REAL", 2_000_000, 0),
        (
            libc::ITIMER_VIRTUAL,
            "ITIMER_VIRTUAL",
            5_000,
            libc::SIGVTALRM,
        ),
        (libc::ITIMER_PROF, "ITIMER_PROF", 5_000, libc::SIGPROF),
    ] {
        let mut conn = start_helper(&format!("nsjail-helper ({name} armed)"), move || {
            let t = libc::timeval {
                tv_sec: usec / 1_000_000,
                tv_usec: usec % 1_000_000,
            };
            let it = libc::itimerval {
                it_interval: t,
                it_value: t,
            };
            // SAFETY: a valid itimerval, no old value asked for.
            check(unsafe { libc::setitimer(which, &it, std::ptr::null_mut()) })
        });
        let helper = conn.run.pid();
        let marker = format!("8{}.5", unique());
        let frame = nsjail_core::wire::encode(&ClientMessage::Spawn(Box::new(limited_request(
            &["/bin/sleep", &marker],
            4,
        ))))
        .unwrap();
        let null = nsjail_tests::devnull_stdio();
        let raw: Vec<i32> = null.iter().map(|f| f.as_raw_fd()).collect();
        // (EPIPE when the helper is already gone)
        let _ = conn.send(&frame, &raw);
        drop(null);
        let (events, ended) =
            events_until(&mut conn.sock, Instant::now() + Duration::from_secs(30));
        let died_at_start = events.is_empty()
            && sig != 0
            && conn
                .run
                .wait_timeout(Duration::from_secs(10))
                .is_some_and(|st| std::os::unix::process::ExitStatusExt::signal(&st) == Some(sig));
        if died_at_start {
            let left = cgroups_named_after(helper);
            assert!(left.is_empty(), "{name}: cgroups left behind: {left:?}");
            assert!(
                nsjail_tests::pids_with_argv(&["/bin/sleep", &marker]).is_empty(),
                "{name}: the sandbox runs on"
            );
            eprintln!("{name}: the timer ended the helper before its first instruction");
            continue;
        }
        expect_enforced(conn, &events, ended, name);
    }
}

#[test]
fn the_callers_rlimits_bind_the_payload_not_the_helper() {
    root_or_skip!();
    // (resource, soft, hard, the line of /proc/PID/limits). The hard limits leave the helper
    // room without CAP_SYS_RESOURCE (which this CI machine's root lacks): with it, the helper
    // raises hard limits too.
    const SET: [(libc::__rlimit_resource_t, u64, u64, &str); 3] = [
        (libc::RLIMIT_CPU, 3000, libc::RLIM_INFINITY, "Max cpu time"),
        (libc::RLIMIT_NOFILE, 12, 64, "Max open files"),
        (
            libc::RLIMIT_FSIZE,
            1 << 20,
            libc::RLIM_INFINITY,
            "Max file size",
        ),
    ];
    let limits_of = |text: &str| -> Vec<(String, String, String)> {
        SET.iter()
            .map(|(_, _, _, line)| {
                let l = text.lines().find(|l| l.starts_with(line)).unwrap_or("");
                let w: Vec<&str> = l[line.len().min(l.len())..].split_whitespace().collect();
                (
                    line.to_string(),
                    w.first().unwrap_or(&"").to_string(),
                    w.get(1).unwrap_or(&"").to_string(),
                )
            })
            .collect()
    };
    let want_caller: Vec<(String, String, String)> = SET
        .iter()
        .map(|(_, s, h, line)| {
            let show = |v: &u64| {
                if *v == libc::RLIM_INFINITY {
                    "unlimited".to_string()
                } else {
                    v.to_string()
                }
            };
            (line.to_string(), show(s), show(h))
        })
        .collect();
    // (--rlimit asked for in the request, what the payload must see of open files, or the
    // refusal)
    /// What the payload must see of its open files (soft, hard), or the refusal's end.
    type Want = Result<(&'static str, &'static str), &'static str>;
    let cases: [(Option<(u64, u64)>, Want); 3] = [
        (None, Ok(("12", "64"))),
        (Some((6, 8)), Ok(("6", "8"))),
        (
            Some((10, 100)),
            Err("(a hard limit cannot be raised above the one you have, 64)"),
        ),
    ];
    for (asked, want) in cases {
        let mut conn = start_helper("nsjail-helper (hostile rlimits)", || {
            for (res, soft, hard, _) in SET {
                let l = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                // SAFETY: a valid rlimit value.
                check(unsafe { libc::setrlimit(res, &l) })?;
            }
            Ok(())
        });
        let helper = conn.run.pid();
        let mut req = limited_request(
            &["/bin/sh", "-c", "cat /proc/self/limits; exec /bin/sleep 60"],
            3,
        );
        if let Some((soft, hard)) = asked {
            req.limits.rlimits.push(nsjail_core::limits::RlimitSetting {
                resource: nsjail_core::limits::RlimitResource::Nofile,
                soft,
                hard,
            });
        }
        let out = send(&conn.sock, req);
        let mut events = Vec::new();
        poll_until(Duration::from_secs(30), || {
            let (more, ended) =
                events_until(&mut conn.sock, Instant::now() + Duration::from_millis(100));
            events.extend(more);
            ended
                || events
                    .iter()
                    .any(|e| matches!(e, HelperEvent::Started { .. }))
        });
        let helper_limits =
            limits_of(&fs::read_to_string(format!("/proc/{helper}/limits")).unwrap_or_default());
        let (more, ended) = events_until(&mut conn.sock, Instant::now() + Duration::from_secs(30));
        events.extend(more);
        let ctx =
            format!("--rlimit nofile {asked:?}; helper: {helper_limits:?}; events {events:?}");
        // The helper's own limits are not the caller's: no CPU limit, room for its fds.
        assert_eq!(helper_limits[0].1, "unlimited", "{ctx}");
        assert!(
            helper_limits[1].1.parse::<u64>().is_ok_and(|n| n >= 64),
            "{ctx}"
        );
        assert_eq!(helper_limits[2].1, "unlimited", "{ctx}");
        match want {
            Ok((soft, hard)) => {
                assert!(out.wait_eof(Duration::from_secs(10)), "{ctx}");
                let mut want = want_caller.clone();
                want[1] = ("Max open files".into(), soft.into(), hard.into());
                assert_eq!(limits_of(&out.text()), want, "the payload's limits: {ctx}");
                expect_enforced(conn, &events, ended, &ctx);
            }
            Err(refusal) => {
                let msg = events.iter().find_map(|e| match e {
                    HelperEvent::Error { message, .. } => Some(message.clone()),
                    _ => None,
                });
                assert!(
                    msg.as_deref()
                        .is_some_and(|m| m.starts_with("setrlimit(nofile, 10:100): ")
                            && m.ends_with(refusal)),
                    "{ctx}"
                );
            }
        }
    }
}

/// The scheduling state of `pid` (a host pid, or `self` inside): nice, policy, the CPUs it may
/// run on.
fn sched_of(stat: &[String], status: &str) -> (String, String, String) {
    (
        stat.get(16).cloned().unwrap_or_default(),
        stat.get(38).cloned().unwrap_or_default(),
        status_line(status, "Cpus_allowed_list"),
    )
}

/// `ioprio_get(IOPRIO_WHO_PROCESS, pid)`.
fn ioprio_of(pid: i32) -> i64 {
    // SAFETY: two integer arguments.
    unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid) }
}

const IOPRIO_IDLE: i64 = 3 << 13;

/// `nsjail run` as the test user with `pre` run just before the CLI's exec; the payload prints
/// `script`'s output, then `ready`, then sleeps. Returns the CLI, the helper's pid and what the
/// payload printed.
fn cli_with(
    opts: &[&str],
    script: &str,
    pre: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> (Running, i32, String) {
    let c = Caller::setuid_user();
    let mut args: Vec<&str> = opts.to_vec();
    let script = format!("{script}; echo ready; exec /bin/sleep 60");
    args.extend(["--", "/bin/sh", "-c", &script]);
    let mut cmd = c.run_cmd(&args);
    // SAFETY: `pre` makes only raw system calls.
    unsafe {
        cmd.pre_exec(pre);
    }
    let mut cli = Running::spawn(&mut cmd, None, &format!("nsjail run {args:?}"));
    let helper = helper_of(cli.pid());
    cli.wait_stdout("ready");
    let printed = cli.stdout.text();
    (cli, helper, printed)
}

#[test]
fn the_payload_keeps_the_callers_priority_the_helper_does_not() {
    root_or_skip!();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all_cpus = status_line(
        &fs::read_to_string("/proc/self/status").unwrap(),
        "Cpus_allowed_list",
    );
    // `nice -n 19 taskset -c 0 ionice -c 3 nsjail run …`, then `chrt --idle 0 nsjail run …`.
    for idle in [false, true] {
        let (cli, helper, printed) = cli_with(
            &[],
            "cat /proc/self/stat; grep Cpus_allowed_list /proc/self/status; ionice",
            move || {
                // SAFETY: raw scheduling calls on this process, with valid arguments.
                unsafe {
                    if idle {
                        let p = libc::sched_param { sched_priority: 0 };
                        check(libc::sched_setscheduler(0, libc::SCHED_IDLE, &p))?;
                    } else {
                        check(libc::setpriority(libc::PRIO_PROCESS, 0, 19))?;
                        let mut one: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(0, &mut one);
                        check(libc::sched_setaffinity(
                            0,
                            std::mem::size_of_val(&one),
                            &one,
                        ))?;
                        if libc::syscall(libc::SYS_ioprio_set, 1, 0, IOPRIO_IDLE) == -1 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                Ok(())
            },
        );
        let h_stat = stat_fields(&helper.to_string());
        let h_status = fs::read_to_string(format!("/proc/{helper}/status")).unwrap_or_default();
        let h = sched_of(&h_stat, &h_status);
        let h_io = ioprio_of(helper);
        cli.signal(Signal::SIGTERM);
        let out = cli.wait();
        let mut lines = printed.lines();
        let p_stat: Vec<String> = lines
            .next()
            .and_then(|l| l.rsplit_once(')'))
            .map(|(_, r)| r.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let p = sched_of(&p_stat, printed.as_str());
        let p_io = lines.nth(1).unwrap_or("").to_string();
        let ctx = format!(
            "idle={idle}: helper (nice, policy, cpus) {h:?} ioprio {h_io:#x}; payload {p:?} \
             ionice {p_io:?}\n{}",
            out.describe()
        );
        // The helper runs as any root process would: nice 0, SCHED_OTHER, every CPU, best
        // effort I/O.
        assert_eq!((h.0.as_str(), h.1.as_str()), ("0", "0"), "{ctx}");
        assert_eq!(h.2, all_cpus, "{ctx}");
        assert_ne!(h_io, IOPRIO_IDLE, "{ctx}");
        // The payload runs as a normal child of the caller would.
        if idle {
            assert_eq!(p.1, "5", "SCHED_IDLE is 5: {ctx}");
        } else {
            assert_eq!((p.0.as_str(), p.1.as_str()), ("19", "0"), "{ctx}");
            assert_eq!(p_io, "idle", "{ctx}");
            if cpus > 1 {
                assert_eq!(p.2, "0", "{ctx}");
            }
        }
    }
}

#[test]
fn the_payload_keeps_the_callers_oom_score_the_helper_does_not() {
    root_or_skip!();
    let (cli, helper, printed) = cli_with(&[], "cat /proc/self/oom_score_adj", || {
        // SAFETY: prctl and raw file calls on this process; the path is a C string literal.
        unsafe {
            // The switch to the test user made this process non-dumpable, which makes its
            // /proc files root's; a user's own process is dumpable again after exec.
            check(libc::prctl(libc::PR_SET_DUMPABLE, 1))?;
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            check(fd)?;
            let n = libc::write(fd, b"1000".as_ptr() as *const libc::c_void, 4);
            libc::close(fd);
            check(n as libc::c_int)?;
        }
        Ok(())
    });
    let h = fs::read_to_string(format!("/proc/{helper}/oom_score_adj")).unwrap_or_default();
    cli.signal(Signal::SIGTERM);
    let out = cli.wait();
    let ctx = format!("helper {h:?}, payload {printed:?}\n{}", out.describe());
    assert_eq!(h.trim(), "0", "{ctx}");
    assert_eq!(printed.lines().next(), Some("1000"), "{ctx}");
}

#[test]
fn the_callers_timer_slack_does_not_delay_the_wall_clock_limit() {
    root_or_skip!();
    const SLACK_NS: u64 = 20_000_000_000;
    let (cli, helper, printed) = cli_with(
        &["--wall-time-limit", "1"],
        "cat /proc/self/timerslack_ns",
        || {
            // SAFETY: prctl with integer arguments.
            check(unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, SLACK_NS) })
        },
    );
    let h = fs::read_to_string(format!("/proc/{helper}/timerslack_ns")).unwrap_or_default();
    // From the payload's first output (the sandbox is running) to the end: at most the 1 s
    // limit, plus the supervisor's reaction.
    let began = Instant::now();
    let out = cli.wait();
    let took = began.elapsed();
    let ctx = format!(
        "helper's slack {h:?}, payload's {printed:?}, the run took {took:?}\n{}",
        out.describe()
    );
    assert_eq!(h.trim(), "50000", "{ctx}");
    assert_eq!(
        printed.lines().next(),
        Some(SLACK_NS.to_string().as_str()),
        "{ctx}"
    );
    assert_eq!(out.code(), Some(128 + 9), "{ctx}");
    assert!(took < Duration::from_secs(5), "{ctx}");
}

#[test]
fn the_callers_umask_reaches_the_payload_not_the_helper() {
    root_or_skip!();
    let (cli, _helper, printed) = cli_with(&["--pids-limit", "64", "--verbose"], "umask", || {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(0o777) };
        Ok(())
    });
    let dirs: Vec<PathBuf> = cli
        .stderr
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("nsjail: cgroup: /"))
        .filter_map(|r| {
            r.split_once(" (")
                .map(|(p, _)| PathBuf::from(format!("/{p}")))
        })
        .collect();
    let modes: Vec<u32> = dirs
        .iter()
        .filter_map(|d| fs::metadata(d).ok())
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .collect();
    cli.signal(Signal::SIGTERM);
    let out = cli.wait();
    let ctx = format!(
        "cgroups {dirs:?} modes {:?}; payload {printed:?}\n{}",
        modes.iter().map(|m| format!("{m:o}")).collect::<Vec<_>>(),
        out.describe()
    );
    assert!(
        !modes.is_empty() && modes.iter().all(|m| *m == 0o755),
        "{ctx}"
    );
    assert_eq!(printed.lines().next(), Some("0777"), "{ctx}");
}

#[test]
fn closed_stdio_is_reopened_on_dev_null() {
    root_or_skip!();
    let how = nsjail_tests::HelperStart {
        as_ids: Some(test_user()),
        close_stdio: true,
        ..Default::default()
    };
    let mut conn = HelperConn::start(&setuid_install().helper, &how);
    let helper = conn.run.pid();
    let out = send(
        &conn.sock,
        limited_request(&["/bin/sh", "-c", "echo started; exec /bin/sleep 60"], 2),
    );
    assert!(
        out.wait_for("started", Duration::from_secs(30)),
        "{:?}",
        out.text()
    );
    let fds: Vec<String> = (0..3)
        .map(|n| {
            fs::read_link(format!("/proc/{helper}/fd/{n}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| e.to_string())
        })
        .collect();
    let (events, ended) = events_until(&mut conn.sock, Instant::now() + Duration::from_secs(30));
    // The C library reopens a closed 0-2 of a setuid program before anything runs, so that
    // nothing the helper opens later can take their place and receive its messages: glibc puts
    // 0 write-only on /dev/full and 1 and 2 read-only on /dev/null (a debug build, and a release
    // build without the musl target); musl puts all three on /dev/null (release builds).
    assert!(
        fds == ["/dev/full", "/dev/null", "/dev/null"] || fds == ["/dev/null"; 3],
        "the helper's fds 0-2: {fds:?}; {events:?}"
    );
    expect_enforced(conn, &events, ended, "fds 0-2 closed");
}

#[test]
fn a_huge_environment_changes_nothing() {
    root_or_skip!();
    // About 1 MiB of variables, and the ones a loader, allocator or runtime would listen to.
    let mut env: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("NSJAIL_E2E_BULK_{i}"), "x".repeat(500)))
        .collect();
    for (k, v) in [
        ("LD_PRELOAD", "/nonexistent/evil.so"),
        ("LD_LIBRARY_PATH", "/tmp"),
        ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1"),
        ("MALLOC_CHECK_", "3"),
        ("RUST_BACKTRACE", "full"),
        ("RUST_MIN_STACK", "1"),
        ("NSJAIL_SOCKET", "/tmp/elsewhere.sock"),
        ("LISTEN_FDS", "1"),
    ] {
        env.push((k.into(), v.into()));
    }
    let how = nsjail_tests::HelperStart {
        as_ids: Some(test_user()),
        env,
        ..Default::default()
    };
    let mut conn = HelperConn::start(&setuid_install().helper, &how);
    let out = send(
        &conn.sock,
        limited_request(&["/bin/sh", "-c", "/usr/bin/env -0; exec /bin/sleep 60"], 2),
    );
    let (events, ended) = events_until(&mut conn.sock, Instant::now() + Duration::from_secs(30));
    assert!(out.wait_eof(Duration::from_secs(10)));
    // (the shell adds PWD to what it was given)
    let printed = out.text().replace('\0', "\n").replace("PWD=/\n", "");
    expect_enforced(conn, &events, ended, "a huge environment");
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [format!("PATH={USER_PATH}")],
        "only the request's environment reaches the payload"
    );
}

/// Found in review: through the daemon, the payload got the daemon's umask (0022) and resource
/// limits, not the caller's, so a user's `pam_limits` and `umask 077` did not bind their own
/// sandboxes there. The daemon now reads them from the connecting process (checked as the peer
/// check is) and gives them to the payload, within its own limits; the setuid helper is the
/// control.
#[test]
fn the_callers_umask_and_rlimits_reach_the_payload_on_both_ways_in() {
    root_or_skip!();
    for c in [Caller::setuid_user(), Caller::daemon_user()] {
        let mut cmd = c.run_cmd(&[
            "--",
            "/bin/sh",
            "-c",
            "umask; ulimit -Sn; ulimit -Hn; ulimit -Sf; ulimit -Hf",
        ]);
        // SAFETY: umask and setrlimit are async-signal-safe and touch only these locals.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o077);
                let set = |r, soft, hard| {
                    let l = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(r, &l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                set(libc::RLIMIT_NOFILE, 40, 60)?;
                set(libc::RLIMIT_FSIZE, 2048, 4096)
            });
        }
        let what = format!("[{}] umask 077, nofile 40:60, fsize 2048:4096", c.name());
        let out = Running::spawn(&mut cmd, None, &what).wait();
        out.expect_success();
        // dash's `ulimit -f` counts 512-byte blocks.
        assert_eq!(out.stdout, "0077\n40\n60\n4\n8\n", "{}", out.describe());
    }
}
