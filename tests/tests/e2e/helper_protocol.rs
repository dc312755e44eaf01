//! The helper fed malformed input: it answers with a `BadRequest` error where it still can,
//! exits non-zero, prints at most one `nsjail-helper:` line and never panics.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nsjail_core::wire::{HEADER_LEN, MAX_BODY, PROTOCOL_VERSION, encode};
use nsjail_core::{ClientMessage, ErrorKind, HelperEvent};
use nsjail_tests::{
    HelperConn, HelperStart, TIMEOUT, devnull_stdio, helper_bin, setuid_install, spawn_frame,
    test_user,
};

#[derive(Clone, Copy, Debug)]
enum Bad {
    Garbage,
    TruncatedHeader,
    TruncatedBody,
    Oversized,
    WrongMagic,
    WrongVersion,
    ReservedBits,
    GarbageBody,
    /// A valid spawn frame with this many fds instead of 3.
    FdCount(usize),
    /// A signal message before any spawn.
    SignalFirst,
    /// The socket closed before a single byte.
    Closed,
}

const ALL: [Bad; 14] = [
    Bad::Garbage,
    Bad::TruncatedHeader,
    Bad::TruncatedBody,
    Bad::Oversized,
    Bad::WrongMagic,
    Bad::WrongVersion,
    Bad::ReservedBits,
    Bad::GarbageBody,
    Bad::FdCount(0),
    Bad::FdCount(1),
    Bad::FdCount(2),
    Bad::FdCount(4),
    Bad::SignalFirst,
    Bad::Closed,
];

/// The bytes to send and how many /dev/null fds go with them.
fn payload(bad: Bad) -> (Vec<u8>, usize) {
    let good = spawn_frame(&["/bin/true"]);
    match bad {
        Bad::Garbage => (
            b"GET / HTTP/1.1\r\nHost: nsjail\r\n\r\n garbage garbage".to_vec(),
            3,
        ),
        Bad::TruncatedHeader => (good[..5].to_vec(), 0),
        Bad::TruncatedBody => (good[..good.len() - 3].to_vec(), 3),
        Bad::Oversized => {
            let mut f = good[..HEADER_LEN].to_vec();
            f[8..12].copy_from_slice(&((MAX_BODY as u32) + 1).to_le_bytes());
            f.extend(std::iter::repeat_n(0u8, 4096));
            (f, 3)
        }
        Bad::WrongMagic => {
            let mut f = good.clone();
            f[..4].copy_from_slice(b"JLSN");
            (f, 3)
        }
        Bad::WrongVersion => {
            let mut f = good.clone();
            f[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
            (f, 3)
        }
        Bad::ReservedBits => {
            let mut f = good.clone();
            f[6] = 0x80;
            (f, 3)
        }
        Bad::GarbageBody => {
            let mut f = good.clone();
            for b in &mut f[HEADER_LEN..] {
                *b = 0xff;
            }
            (f, 3)
        }
        Bad::FdCount(n) => (good, n),
        Bad::SignalFirst => (encode(&ClientMessage::Signal(15)).unwrap(), 0),
        Bad::Closed => (Vec::new(), 0),
    }
}

fn feed(helper: &Path, how: &HelperStart, bad: Bad, who: &str) {
    let mut conn = HelperConn::start(helper, how);
    let (bytes, nfds) = payload(bad);
    let fds: Vec<OwnedFd> = (0..nfds.div_ceil(3))
        .flat_map(|_| devnull_stdio())
        .take(nfds)
        .collect();
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let ctx = format!("[{who}] helper fed {bad:?}");
    let events = if matches!(bad, Bad::Closed) {
        drop(conn.sock);
        Vec::new()
    } else {
        // The helper may already have given up and closed its end: a send error is fine.
        let _ = conn.send(&bytes, &raw);
        drop(fds);
        conn.shutdown_write();
        let (events, err) = conn.read_events();
        if let Some(e) = err {
            panic!(
                "{ctx}: its reply is not a well-formed event stream: {e} (events so far {events:?})"
            );
        }
        events
    };
    let mut run = conn.run;
    let status = run.wait_timeout(TIMEOUT);
    let Some(status) = status else {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(run.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = run.child.wait();
        panic!("{ctx}: the helper did not exit within {TIMEOUT:?}");
    };
    run.stderr.wait_eof(Duration::from_secs(10));
    let stderr = run.stderr.text();
    let stdout = run.stdout.text();
    let ctx =
        format!("{ctx}: status {status}, events {events:?}, stdout {stdout:?}, stderr {stderr:?}");
    assert!(!status.success(), "{ctx}: must exit non-zero");
    assert!(
        status.code().is_some(),
        "{ctx}: must exit, not die of a signal"
    );
    for bad_word in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(
            !stderr.contains(bad_word) && !stdout.contains(bad_word),
            "{ctx}"
        );
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() <= 1, "{ctx}: at most one line on stderr");
    if let Some(l) = lines.first() {
        assert!(
            l.starts_with("nsjail-helper: "),
            "{ctx}: the line must start `nsjail-helper: `"
        );
    }
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, HelperEvent::Started { .. })),
        "{ctx}: nothing may start"
    );
    if !matches!(bad, Bad::Closed) {
        let err = events.iter().find_map(|e| match e {
            HelperEvent::Error { kind, message } => Some((*kind, message.clone())),
            _ => None,
        });
        let Some((kind, message)) = err else {
            panic!("{ctx}: expected an Error event");
        };
        assert_eq!(kind, ErrorKind::BadRequest, "{ctx}");
        assert!(
            !message.contains('\n') && !message.is_empty(),
            "{ctx}: one-line message"
        );
        if matches!(bad, Bad::WrongVersion) {
            assert!(
                message.contains("version"),
                "{ctx}: the message should say `version`"
            );
        }
    }
}

#[test]
fn helper_refuses_malformed_input() {
    for bad in ALL {
        feed(
            &helper_bin(),
            &HelperStart::default(),
            bad,
            "as the test process",
        );
    }
}

#[test]
fn setuid_helper_refuses_malformed_input_from_a_user() {
    nsjail_tests::root_or_skip!();
    let helper = setuid_install().helper.clone();
    let how = HelperStart {
        as_ids: Some(test_user()),
        ..Default::default()
    };
    for bad in ALL {
        feed(&helper, &how, bad, "user via setuid helper");
    }
}

#[test]
fn helper_refuses_malformed_input_with_stdio_closed() {
    let how = HelperStart {
        close_stdio: true,
        ..Default::default()
    };
    for bad in [
        Bad::Garbage,
        Bad::WrongVersion,
        Bad::FdCount(2),
        Bad::Closed,
    ] {
        feed(&helper_bin(), &how, bad, "stdio closed");
    }
    if nsjail_tests::root_part(module_path!(), "the setuid helper") {
        let how = HelperStart {
            as_ids: Some(test_user()),
            close_stdio: true,
            ..Default::default()
        };
        for bad in [Bad::Garbage, Bad::WrongVersion, Bad::Closed] {
            feed(
                &setuid_install().helper,
                &how,
                bad,
                "user, setuid, stdio closed",
            );
        }
    }
}
