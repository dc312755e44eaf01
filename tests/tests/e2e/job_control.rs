//! The helper's side of Ctrl-Z, through the protocol itself (no terminal needed, so these run in
//! the guest too): a stop of the payload is told to the client, `Continue` continues it, and a
//! client that stops reading cannot make the helper block on it while the payload stops over
//! and over (which would hold off the enforcement of its limits).

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nsjail_core::{ClientMessage, HelperEvent, LimitHit, wire};
use nsjail_tests::{
    HelperConn, HelperStart, devnull_stdio, helper_bin, is_root, pids_with_argv, poll_until,
    proc_state, setuid_install, spawn_request, test_user, unique,
};

/// The helper the ordinary user would start (setuid, when we are root), and how.
fn helper() -> (std::path::PathBuf, HelperStart) {
    if is_root() {
        let how = HelperStart {
            as_ids: Some(test_user()),
            ..Default::default()
        };
        (setuid_install().helper.clone(), how)
    } else {
        nsjail_tests::require_root("the setuid part of the job control tests");
        (helper_bin(), HelperStart::default())
    }
}

fn start(argv: &[&str], wall_secs: Option<u64>) -> HelperConn {
    let (path, how) = helper();
    let conn = HelperConn::start(&path, &how);
    let mut req = spawn_request(argv);
    // A /dev: a shell's background job reads /dev/null.
    req.mounts
        .push(nsjail_core::MountOp::Dev { dst: "/dev".into() });
    req.limits.wall_time_us = wall_secs.map(|s| s * 1_000_000);
    let frame = wire::encode(&ClientMessage::Spawn(Box::new(req))).unwrap();
    let stdio: Vec<OwnedFd> = devnull_stdio();
    let raw: Vec<i32> = stdio.iter().map(|f| f.as_raw_fd()).collect();
    conn.send(&frame, &raw).expect("send the spawn request");
    conn
}

fn next(conn: &mut HelperConn) -> HelperEvent {
    wire::read_frame::<_, HelperEvent>(&mut conn.sock)
        .expect("read an event")
        .expect("an event, not the end")
}

#[test]
fn a_stopped_payload_is_told_and_continue_continues_it() {
    let marker = format!("7{}", unique());
    let argv = ["/bin/sleep", marker.as_str()];
    let mut conn = start(&argv, None);
    loop {
        match next(&mut conn) {
            HelperEvent::Started { .. } => break,
            HelperEvent::Step(_) => continue,
            other => panic!("before Started: {other:?}"),
        }
    }
    let mut pids = Vec::new();
    assert!(
        poll_until(Duration::from_secs(30), || {
            pids = pids_with_argv(&argv);
            pids.len() == 1
        }),
        "the sleeper never appeared"
    );
    let pid = pids[0];
    // Stopped from outside: the client is told, with the signal. (Without a terminal the
    // payload's process group is orphaned, where the kernel ignores SIGTSTP; SIGSTOP stops.)
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    assert_eq!(
        next(&mut conn),
        HelperEvent::Stopped {
            signal: libc::SIGSTOP
        }
    );
    assert_eq!(proc_state(pid), Some('T'));
    // The control: Continue, and it runs again; then it ends as usual.
    conn.send(&wire::encode(&ClientMessage::Continue).unwrap(), &[])
        .unwrap();
    assert!(
        poll_until(Duration::from_secs(30), || proc_state(pid) == Some('S')),
        "Continue did not continue the payload: state {:?}",
        proc_state(pid)
    );
    conn.send(
        &wire::encode(&ClientMessage::Signal(libc::SIGTERM)).unwrap(),
        &[],
    )
    .unwrap();
    match next(&mut conn) {
        HelperEvent::Exited(info) => {
            assert_eq!(info.termination, nsjail_core::Termination::Signaled(15))
        }
        other => panic!("expected Exited: {other:?}"),
    }
}

#[test]
fn a_client_that_reads_nothing_cannot_hold_off_the_limits_with_stops() {
    // The payload stops itself over and over and a child of it continues it a moment later:
    // every stop is a report to the helper, hundreds a second. A client that sends its request
    // and reads nothing more must not make the helper block on it (a full socket) and so hold
    // off the wall-clock limit: the helper tells a stop only to a client that has read what it
    // was sent.
    let script = |tag: &str| {
        format!(
            "m={tag}; (while :; do sleep 0.001; kill -CONT $$; done) & while :; do kill -STOP $$; done"
        )
    };
    let started = |conn: &mut HelperConn| loop {
        match next(conn) {
            HelperEvent::Started { .. } => break,
            HelperEvent::Step(_) => continue,
            other => panic!("before Started: {other:?}"),
        }
    };
    let count_to_end = |conn: &mut HelperConn| {
        let mut stops = 0;
        loop {
            match next(conn) {
                HelperEvent::Stopped { .. } => stops += 1,
                HelperEvent::Exited(info) => return (stops, info),
                _ => {}
            }
        }
    };

    // The control: a client that reads is told of many stops in one second.
    let s = script(&format!("reader{}", unique()));
    let mut conn = start(&["/bin/sh", "-c", &s], Some(1));
    started(&mut conn);
    let (stops, info) = count_to_end(&mut conn);
    assert_eq!(info.limit_hit, Some(LimitHit::WallTime), "{info:?}");
    assert!(stops >= 10, "only {stops} stops told to a reading client");

    let s = script(&format!("idle{}", unique()));
    let argv = ["/bin/sh", "-c", s.as_str()];
    let began = Instant::now();
    let mut conn = start(&argv, Some(2));
    started(&mut conn);
    assert!(
        !pids_with_argv(&argv).is_empty(),
        "the payload is not running"
    );
    // From here on, not a byte read until the payload is gone: at its limit, not later.
    let gone = poll_until(Duration::from_secs(20), || pids_with_argv(&argv).is_empty());
    let took = began.elapsed();
    assert!(
        gone,
        "the sandbox outlived its 2 s wall-clock limit by far ({took:?}) while its client read nothing"
    );
    // Still without reading (a read would let the helper tell the next stop, if it has not
    // seen the end yet): wait until the exit status is among the bytes waiting for us, then
    // count what was told in all that time.
    let mut waiting: Vec<HelperEvent> = Vec::new();
    let ended = poll_until(Duration::from_secs(20), || {
        waiting = peek_events(&conn.sock);
        matches!(waiting.last(), Some(HelperEvent::Exited(_)))
    });
    assert!(ended, "no exit status came: {waiting:?}");
    let stops = waiting
        .iter()
        .filter(|e| matches!(e, HelperEvent::Stopped { .. }))
        .count();
    // The first stop was told (to a client that had read everything), no other.
    assert_eq!(stops, 1, "stops told to a client that reads nothing");
    let (_, info) = count_to_end(&mut conn);
    assert_eq!(info.limit_hit, Some(LimitHit::WallTime), "{info:?}");
}

/// The whole events waiting on `sock`, read with `MSG_PEEK` (nothing is consumed).
fn peek_events(sock: &std::os::unix::net::UnixStream) -> Vec<HelperEvent> {
    let mut buf = vec![0u8; 1 << 20];
    let n = nix::sys::socket::recv(
        std::os::fd::AsRawFd::as_raw_fd(sock),
        &mut buf,
        nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    )
    .unwrap_or(0);
    let mut events = Vec::new();
    let mut at = 0;
    while let Ok((ev, used)) = wire::decode_frame::<HelperEvent>(&buf[at..n]) {
        events.push(ev);
        at += used;
    }
    events
}
