//! The helper daemon (`nsjail-helperd`): who it serves (the `SO_PEERCRED` peer, never
//! what the request says), that one client cannot stall it, the per-user limit, the SIGTERM
//! drain, socket activation, the CLI's choice between daemon and setuid helper, and the log.
//!
//! Every other end-to-end check also runs through the daemon: `for_each_caller` includes the
//! ordinary user via the daemon.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nsjail_core::{ErrorKind, HelperEvent, wire};
use nsjail_tests::{
    Caller, Daemon, Running, TIMEOUT, connect_as, daemon_socket_env, devnull_stdio, helperd_bin,
    pids_with_argv, poll_until, proc_stat, processes, root_or_skip, scratch_dir, spawn_frame,
    spawn_request, test_user, tool, unique,
};

/// The socket of the daemon the daemon callers use.
fn callers_socket() -> PathBuf {
    daemon_socket_env().unwrap_or_else(|| PathBuf::from("/run/nsjail/helper.sock"))
}

fn send(sock: &UnixStream, bytes: &[u8], fds: &[OwnedFd]) {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsgs };
    let iov = [std::io::IoSlice::new(bytes)];
    let n = sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
        .expect("sendmsg to the daemon");
    (&*sock)
        .write_all(&bytes[n..])
        .expect("write to the daemon");
}

/// The next event, `None` at end of file (or a reset connection).
fn next_event(sock: &mut UnixStream) -> Option<HelperEvent> {
    match wire::read_frame::<_, HelperEvent>(sock) {
        Ok(ev) => ev,
        Err(wire::WireError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("reading from the daemon: {e}"),
    }
}

/// Nothing has arrived on `sock` yet, and it is still open.
fn unanswered(sock: &UnixStream) -> bool {
    sock.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = nix::sys::socket::recv(
        sock.as_raw_fd(),
        &mut b,
        nix::sys::socket::MsgFlags::MSG_PEEK,
    );
    sock.set_nonblocking(false).unwrap();
    r == Err(nix::errno::Errno::EAGAIN)
}

/// An error event that ends the exchange, then end of file.
#[track_caller]
fn expect_refused(sock: &mut UnixStream, contains: &str) {
    match next_event(sock) {
        Some(HelperEvent::Error {
            kind: ErrorKind::BadRequest,
            message,
        }) => assert!(message.contains(contains), "{message:?} lacks {contains:?}"),
        other => panic!("expected a refusal containing {contains:?}, got {other:?}"),
    }
    assert_eq!(next_event(sock), None, "the connection should end there");
}

#[test]
fn root_is_served_through_the_daemon() {
    root_or_skip!();
    let c = Caller::daemon_root();
    crate::namespaces::basics(&c);
    c.run(&["--", "/nonexistent-e2e"])
        .expect_code(127)
        .expect_one_error_line("nsjail:");
    crate::signals::forwarded(&c, &[], Signal::SIGTERM, "TERM");
}

/// The daemon maps whoever connected, as the kernel recorded it: a request that claims to be
/// root in every way a request can (environment, ids inside) is still the ordinary user's.
#[test]
fn the_caller_is_the_socket_peer_whatever_the_request_says() {
    root_or_skip!();
    let (uid, gid) = test_user();
    let mut sock = connect_as(&callers_socket(), uid, gid);
    let secs = format!("9{}.5", unique());
    let mut req = spawn_request(&["/bin/sleep", &secs]);
    for (k, v) in [("USER", "root"), ("LOGNAME", "root"), ("SUDO_UID", "0")] {
        req.env.push((k.into(), v.into()));
    }
    req.ids.uid = 0;
    req.ids.gid = 0;
    let frame = wire::encode(&nsjail_core::ClientMessage::Spawn(Box::new(req))).unwrap();
    send(&sock, &frame, &devnull_stdio());
    let pid = loop {
        match next_event(&mut sock) {
            Some(HelperEvent::Started { pid }) => break pid,
            Some(HelperEvent::Step(_)) => continue,
            other => panic!("expected the sandbox to start, got {other:?}"),
        }
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(ids("Uid:"), vec![uid.to_string(); 4], "{status}");
    assert_eq!(ids("Gid:"), vec![gid.to_string(); 4], "{status}");
    // Hanging up ends the sandbox.
    drop(sock);
    let argv = ["/bin/sleep", secs.as_str()];
    assert!(
        poll_until(Duration::from_secs(20), || pids_with_argv(&argv).is_empty()),
        "the sandbox outlived its connection"
    );
}

#[test]
fn a_stalled_or_garbage_client_holds_up_no_one_and_is_dropped() {
    root_or_skip!();
    let (uid, gid) = test_user();
    let user = Caller::setuid_user();
    let frame = spawn_frame(&["/bin/true"]);

    // A long request timeout: the stalled clients are certainly still pending while the
    // ordinary user is served.
    let d = Daemon::start(&["--request-timeout", "120"]);
    let silent = connect_as(&d.socket, uid, gid);
    let half = connect_as(&d.socket, uid, gid);
    send(&half, &frame[..frame.len() / 2], &devnull_stdio());
    let mut garbage = connect_as(&d.socket, uid, gid);
    send(&garbage, b"GARBAGE, NOT A FRAME AT ALL", &[]);
    expect_refused(&mut garbage, "not an nsjail frame");

    let out = d.run(&user, &["--", "/bin/echo", "served meanwhile"]);
    out.expect_success();
    assert_eq!(out.stdout, "served meanwhile\n", "{}", out.describe());
    assert!(
        unanswered(&silent) && unanswered(&half),
        "the stalled clients should still be pending"
    );
    drop((silent, half));

    // A short one: both are dropped, with the reason, and their processes end.
    let d = Daemon::start(&["--request-timeout", "1"]);
    let mut silent = connect_as(&d.socket, uid, gid);
    let mut half = connect_as(&d.socket, uid, gid);
    send(&half, &frame[..frame.len() - 1], &devnull_stdio());
    expect_refused(&mut silent, "no complete request arrived in time");
    expect_refused(&mut half, "no complete request arrived in time");
    assert!(
        poll_until(Duration::from_secs(20), || d.children().is_empty()),
        "connection processes left: {:?}",
        d.children()
    );
    d.run(&user, &["--", "/bin/true"]).expect_success();
    let out = d.stop();
    out.expect_success();
}

#[test]
fn the_per_user_limit_is_enforced() {
    root_or_skip!();
    let user = Caller::setuid_user();
    let d = Daemon::start(&["--max-per-user", "2"]);
    let secs = format!("9{}.5", unique());
    let script = format!("echo UP; exec /bin/sleep {secs}");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut cmd = d.run_cmd(&user, &["--", "/bin/sh", "-c", &script]);
        let mut r = Running::spawn(&mut cmd, None, "a sandbox holding a slot");
        r.wait_stdout("UP");
        held.push(r);
    }
    let out = d.run(&user, &["--", "/bin/true"]);
    out.expect_code(125)
        .expect_one_error_line("nsjail:")
        .expect_no_panic();
    assert!(out.stderr.contains("(limit 2)"), "{}", out.describe());
    // The limit is per user: root is served meanwhile.
    d.run(&Caller::root(), &["--", "/bin/true"])
        .expect_success();

    // One slot frees up when a sandbox ends.
    let first = held.remove(0);
    first.signal(Signal::SIGTERM);
    first.wait().expect_code(143);
    let mut last = None;
    let served = poll_until(Duration::from_secs(20), || {
        let out = d.run(&user, &["--", "/bin/true"]);
        let ok = out.code() == Some(0);
        last = Some(out);
        ok
    });
    assert!(served, "no slot came free: {last:?}");
    for r in held {
        r.signal(Signal::SIGTERM);
        r.wait().expect_code(143);
    }
}

#[test]
fn sigterm_drains_the_daemon_and_leaves_nothing() {
    root_or_skip!();
    let d = Daemon::start(&[]);
    let socket = d.socket.clone();
    let secs = format!("9{}.5", unique());
    let argv = ["/bin/sleep", secs.as_str()];
    let script = format!("echo UP; /bin/sleep {secs} & exec /bin/sleep {secs}");
    let mut clis = Vec::new();
    for c in [Caller::root(), Caller::setuid_user()] {
        let mut cmd = d.run_cmd(&c, &["--", "/bin/sh", "-c", &script]);
        let mut r = Running::spawn(&mut cmd, None, "a sandbox running when the daemon stops");
        r.wait_stdout("UP");
        clis.push(r);
    }
    assert!(poll_until(TIMEOUT, || pids_with_argv(&argv).len() == 4));
    let watched: Vec<(i32, u64)> = d
        .children()
        .into_iter()
        .chain(pids_with_argv(&argv))
        .filter_map(|p| proc_stat(p).map(|s| (p, s.3)))
        .collect();
    assert!(watched.len() >= 6, "{watched:?}");

    // The daemon exits (its output pipes close: nothing it started holds them) ...
    d.stop().expect_success();
    // ... having reaped every process it started or inherited: none is left, not even a zombie.
    for (pid, start) in &watched {
        assert!(
            proc_stat(*pid).is_none_or(|s| s.3 != *start),
            "process {pid} outlived the daemon: {:?}",
            proc_stat(*pid)
        );
    }
    assert!(!socket.exists(), "the daemon left its socket behind");
    for r in clis {
        r.wait().expect_code(125).expect_one_error_line("nsjail:");
    }
}

#[test]
fn the_cli_falls_back_to_the_setuid_helper_and_says_which_it_used() {
    root_or_skip!();
    let user = Caller::setuid_user();
    let run = |socket: &Path| {
        let mut cmd = user.run_cmd(&["--verbose", "--", "/bin/echo", "ran"]);
        cmd.env("NSJAIL_SOCKET", socket);
        let out = Running::spawn(&mut cmd, None, "nsjail with NSJAIL_SOCKET").wait();
        out.expect_success().expect_no_panic();
        assert_eq!(out.stdout, "ran\n", "{}", out.describe());
        out
    };
    // No socket there.
    let out = run(Path::new("/nonexistent-e2e/helper.sock"));
    assert!(
        out.stderr
            .contains("no daemon answers at /nonexistent-e2e/helper.sock")
            && out.stderr.contains("setuid root")
            && !out.stderr.contains("nsjail: daemon at"),
        "{}",
        out.describe()
    );
    // A socket file nobody listens on (a daemon that died).
    let dir = scratch_dir();
    let dead = dir.path().join("dead.sock");
    drop(UnixListener::bind(&dead).unwrap());
    std::fs::set_permissions(&dead, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(&dead);
    assert!(
        out.stderr.contains("no daemon answers at")
            && out.stderr.contains("refused")
            && out.stderr.contains("setuid root"),
        "{}",
        out.describe()
    );
    // --socket beats NSJAIL_SOCKET, and a live daemon is used.
    let d = Daemon::start(&[]);
    let mut cmd = d.run_cmd(&user, &["--verbose", "--socket"]);
    cmd.arg(&d.socket).args(["--", "/bin/echo", "ran"]);
    cmd.env("NSJAIL_SOCKET", "/nonexistent-e2e/helper.sock");
    let out = Running::spawn(&mut cmd, None, "nsjail --socket").wait();
    out.expect_success();
    assert!(
        out.stderr
            .contains(&format!("nsjail: daemon at {}", d.socket.display()))
            && !out.stderr.contains("setuid root"),
        "{}",
        out.describe()
    );
}

/// systemd's protocol: the listening socket on fd 3, `LISTEN_FDS=1`, `LISTEN_PID` = the
/// helper's own pid. The helper serves it instead of binding its own.
#[test]
fn socket_activation_serves_the_inherited_socket() {
    root_or_skip!();
    let dir = scratch_dir();
    let path = dir.path().join("activated.sock");
    let unused = dir.path().join("unused.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();

    let start = |listen_pid: &str| {
        let fd = listener.as_raw_fd();
        let mut cmd = Command::new(tool("sh"));
        // `$$` is the shell's pid, which the exec'd helper keeps.
        cmd.arg("-c")
            .arg(format!(
                "LISTEN_PID={listen_pid} LISTEN_FDS=1 exec \"$0\" --socket \"$1\""
            ))
            .arg(helperd_bin())
            .arg(&unused)
            .env_clear()
            .current_dir("/");
        // SAFETY: only dup2/fcntl between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if fd == 3 {
                    if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, 3) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Running::spawn_with_timeout(&mut cmd, None, "activated daemon", TIMEOUT * 4)
    };

    let daemon = start("$$");
    assert!(
        daemon.stderr.wait_for("socket activation", TIMEOUT),
        "{}",
        daemon.stderr.text()
    );
    let user = Caller::setuid_user();
    let mut cmd = user.run_cmd(&["--verbose", "--", "/bin/echo", "activated"]);
    nsjail_tests::through_daemon_at(&mut cmd, &path);
    let out = Running::spawn(&mut cmd, None, "nsjail through the activated daemon").wait();
    out.expect_success();
    assert_eq!(out.stdout, "activated\n", "{}", out.describe());
    assert!(
        out.stderr.contains("nsjail: daemon at"),
        "{}",
        out.describe()
    );
    assert!(
        !unused.exists(),
        "an activated daemon must not bind --socket"
    );
    daemon.signal(Signal::SIGTERM);
    daemon.wait().expect_success();
    assert!(path.exists(), "the activated socket is systemd's to remove");

    // Variables meant for another process are not ours: the helper binds --socket.
    let daemon = start("1");
    assert!(
        poll_until(TIMEOUT, || UnixStream::connect(&unused).is_ok()),
        "{}",
        daemon.stderr.text()
    );
    daemon.signal(Signal::SIGTERM);
    daemon.wait().expect_success();
}

/// Each spawn and each refusal is one line in the system log. The daemon runs in a mount
/// namespace of its own where /dev/log is the test's socket (an overlay on /dev, so the host's
/// /dev is untouched).
#[test]
fn every_spawn_and_refusal_is_logged() {
    root_or_skip!();
    let (uid, gid) = test_user();
    let user = Caller::setuid_user();
    let dir = scratch_dir();
    let log_path = dir.path().join("log.sock");
    let log = UnixDatagram::bind(&log_path).unwrap();
    log.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    for d in ["upper", "work"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    let socket = dir.path().join("helper.sock");
    let mut cmd = Command::new(tool("unshare"));
    cmd.args(["-m", "--propagation", "private", &tool("sh"), "-c"])
        .arg(
            "mount -t overlay overlay -o lowerdir=/dev,upperdir=\"$1/upper\",workdir=\"$1/work\" /dev \
             && ln -sf \"$1/log.sock\" /dev/log && exec \"$2\" --socket \"$3\" --max-per-user 1",
        )
        .arg("sh")
        .arg(dir.path())
        .arg(helperd_bin())
        .arg(&socket)
        .env_clear()
        .current_dir("/");
    let daemon = Running::spawn_with_timeout(&mut cmd, None, "logging daemon", TIMEOUT * 4);
    assert!(
        poll_until(TIMEOUT, || UnixStream::connect(&socket).is_ok()),
        "{}",
        daemon.stderr.text()
    );
    let via = |c: &Caller, args: &[&str]| {
        let mut cmd = c.run_cmd(args);
        nsjail_tests::through_daemon_at(&mut cmd, &socket);
        Running::spawn(&mut cmd, None, "nsjail through the logging daemon")
    };

    let marker = format!("logged-{}", unique());
    let r = via(&user, &["--argv0", &marker, "--", "/bin/true"]);
    let cli = r.pid();
    r.wait().expect_success();
    let r = via(&Caller::root(), &["--", "/nonexistent-e2e"]);
    let root_cli = r.pid();
    r.wait().expect_code(127);
    // Refused: over the limit of one, and garbage. A connection process counts until the
    // daemon has reaped it (it logs and removes the sandbox's cgroup after its client has the
    // exit status), so each step waits for the one before it to be gone.
    let daemon_pid = daemon.pid();
    let idle = || {
        assert!(
            poll_until(TIMEOUT, || processes()
                .values()
                .all(|(ppid, _)| *ppid != daemon_pid)),
            "a connection process never ended"
        )
    };
    idle();
    let mut holder = via(
        &user,
        &["--", "/bin/sh", "-c", "echo UP; exec /bin/sleep 1000"],
    );
    holder.wait_stdout("UP");
    via(&user, &["--", "/bin/true"]).wait().expect_code(125);
    holder.signal(Signal::SIGTERM);
    holder.wait().expect_code(143);
    idle();
    let mut g = connect_as(&socket, uid, gid);
    send(&g, b"GARBAGE, NOT A FRAME AT ALL", &[]);
    expect_refused(&mut g, "not an nsjail frame");

    let wanted: Vec<String> = vec![
        format!(
            "spawn via=daemon uid={uid} gid={gid} pid={cli} argv0=\"{marker}\" result=\"exited 0\""
        ),
        format!(
            "spawn via=daemon uid=0 gid=0 pid={root_cli} argv0=\"/nonexistent-e2e\" result=\"NotFound:"
        ),
        format!(
            "refused via=daemon uid={uid} gid={gid} pid=" // the refused CLI
        ),
        "reason=\"BadRequest: not an nsjail frame".to_string(),
    ];
    let mut lines: Vec<String> = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !wanted.iter().all(|w| lines.iter().any(|l| l.contains(w))) {
        if let Ok(n) = log.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    daemon.signal(Signal::SIGTERM);
    daemon.wait().expect_success();
    for w in &wanted {
        assert!(
            lines.iter().any(|l| l.contains(w)),
            "no log line contains {w:?}; got:\n{}",
            lines.join("\n")
        );
    }
    for l in &lines {
        assert!(
            (l.starts_with("<86>") || l.starts_with("<84>"))
                && l.contains(" nsjail-helper[")
                && l.contains(" duration=")
                || l.contains("reason="),
            "malformed log line {l:?}"
        );
    }
    let limit = lines
        .iter()
        .find(|l| l.starts_with("<84>") && l.contains("(limit 1)"))
        .unwrap_or_else(|| panic!("no refusal for the limit:\n{}", lines.join("\n")));
    assert!(limit.contains(&format!("uid={uid}")), "{limit}");
}

/// What the daemon holds: open fds, threads, anonymous resident memory (KiB: file pages come and
/// go with the page cache), mounts in its namespace.
fn holdings(pid: i32) -> (usize, u64, u64, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in /proc/{pid}/status"))
    };
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap()
        .lines()
        .count();
    (fds, field("Threads:"), field("RssAnon:"), mounts)
}

/// Many sandboxes one after another, then many at once, through one daemon: every one
/// succeeds, and afterwards the daemon holds what it held before (fds, threads, mounts; memory
/// within 1 MiB) with no child, not even a zombie, left. `NSJAIL_E2E_LOAD_SEQUENTIAL` sets the
/// sequential count (default 2000; the VM run, under software emulation, uses fewer).
#[test]
fn under_load_every_sandbox_succeeds_and_the_daemon_returns_to_its_start() {
    root_or_skip!();
    let sequential: usize = std::env::var("NSJAIL_E2E_LOAD_SEQUENTIAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let concurrent = 50;
    let user = Caller::setuid_user();
    // In a mount namespace of its own (private propagation): the count of its mounts is then
    // the daemon's doing alone, not that of whatever else mounts on the host meanwhile.
    let d = Daemon::start_wrapped(
        &[
            tool("unshare"),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "--".into(),
        ],
        &[],
    );
    // One sandbox first, so one-time costs (the allocator's first pages) are in the baseline.
    d.run(&user, &["--", "/bin/true"]).expect_success();
    assert!(poll_until(TIMEOUT, || d.children().is_empty()));
    let before = holdings(d.pid());

    for i in 0..sequential {
        let out = d.run(&user, &["--", "/bin/true"]);
        assert_eq!(
            out.code(),
            Some(0),
            "sequential run {i}: {}",
            out.describe()
        );
    }
    let mut running = Vec::new();
    for i in 0..concurrent {
        let mut cmd = d.run_cmd(&user, &["--", "/bin/echo", &format!("client-{i}")]);
        running.push((i, Running::spawn(&mut cmd, None, "a concurrent client")));
    }
    for (i, r) in running {
        let out = r.wait();
        out.expect_success();
        assert_eq!(out.stdout, format!("client-{i}\n"), "{}", out.describe());
    }

    assert!(
        poll_until(TIMEOUT, || d.children().is_empty()),
        "children of the daemon left: {:?}",
        d.children()
    );
    let after = holdings(d.pid());
    assert_eq!(
        (after.0, after.1, after.3),
        (before.0, before.1, before.3),
        "(fds, threads, mounts) before {before:?}, after {after:?}"
    );
    assert!(
        after.2 <= before.2 + 1024,
        "the daemon's anonymous RSS grew from {} KiB to {} KiB",
        before.2,
        after.2
    );
    d.stop().expect_success();
}

/// A second user, through the same daemon, can neither signal a first user's sandbox nor reach
/// it in any other way: the protocol only ever addresses the sandbox of the connection that
/// started it, and the sandbox's processes are the first user's on the host.
#[test]
fn another_user_can_neither_signal_nor_reach_a_sandbox_through_the_daemon() {
    root_or_skip!();
    let owner = Caller::setuid_user();
    let d = Daemon::start(&[]);
    let marker = format!("marker-{}", unique());
    let script = format!(
        "trap 'echo GOT-TERM; exit 9' TERM; echo UP; while :; do sleep 0.05; done # {marker}"
    );
    let mut cmd = d.run_cmd(&owner, &["--", "/bin/sh", "-c", &script]);
    let mut r = Running::spawn(&mut cmd, None, "the first user's sandbox");
    r.wait_stdout("UP");
    let sandboxed = pids_with_argv(&["/bin/sh", "-c", &script]);
    assert_eq!(sandboxed.len(), 1, "the payload's host pid: {sandboxed:?}");

    // `nobody`, another ordinary user: kill(2) on the payload is refused by the kernel.
    let (other_uid, other_gid) = (65534, 65534);
    let out = Command::new(tool("kill"))
        .args(["-TERM", &sandboxed[0].to_string()])
        .uid(other_uid)
        .gid(other_gid)
        .output()
        .expect("run kill as nobody");
    // Refused by the kernel (EPERM), to a payload that is there (not ESRCH).
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .contains(&format!("({}): Operation not permitted", sandboxed[0])),
        "another user signalled the sandbox: {out:?}"
    );

    // Through the daemon: a connection that does not start with its own spawn request is
    // refused, so it can never name the first user's sandbox.
    let mut s = connect_as(&d.socket, other_uid, other_gid);
    let frame = wire::encode(&nsjail_core::ClientMessage::Signal(15)).expect("encode");
    send(&s, &frame, &[]);
    expect_refused(&mut s, "first message must be a spawn request");
    // A spawn of its own, then a signal: that signal reaches only its own sandbox.
    let mut s = connect_as(&d.socket, other_uid, other_gid);
    send(
        &s,
        &nsjail_core::wire::encode(&nsjail_core::ClientMessage::Spawn(Box::new(spawn_request(
            &["/bin/sleep", "30"],
        ))))
        .expect("encode"),
        &devnull_stdio(),
    );
    let started = poll_until(TIMEOUT, || {
        matches!(next_event(&mut s), Some(HelperEvent::Started { .. }))
    });
    assert!(started, "the second user's own sandbox did not start");
    send(
        &s,
        &wire::encode(&nsjail_core::ClientMessage::Signal(15)).expect("encode"),
        &[],
    );
    drop(s);

    // The first user's sandbox got nothing: it is alive and never ran its trap; the owner's
    // own SIGTERM (the control) does reach it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !r.stdout.text().contains("GOT-TERM"),
        "the first user's sandbox was signalled by someone else"
    );
    assert_eq!(pids_with_argv(&["/bin/sh", "-c", &script]), sandboxed);
    r.signal(Signal::SIGTERM);
    let out = r.wait();
    out.expect_code(9);
    assert!(out.stdout.contains("GOT-TERM"), "{}", out.describe());
}
