//! A hostile environment changes nothing: the CLI still works, and the setuid helper started by
//! the user with a poisoned environment and fds 0–2 closed still serves a valid request.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use nsjail_core::{HelperEvent, Termination};
use nsjail_tests::{
    HelperConn, HelperStart, Running, for_each_caller, helper_bin, is_root, setuid_install,
    shell_words, spawn_frame, test_user,
};

const HOSTILE: [(&str, &str); 7] = [
    ("LD_PRELOAD", "/nonexistent/evil.so"),
    ("LD_LIBRARY_PATH", "/nonexistent/lib"),
    ("RUST_BACKTRACE", "full"),
    ("RUST_LOG", "trace"),
    ("PATH", "/nonexistent:/usr/bin:/bin"),
    ("IFS", "x"),
    ("MALLOC_CHECK_", "3"),
];

#[test]
fn the_cli_works_in_a_hostile_environment() {
    for_each_caller(|c| {
        let args = ["--", "id", "-u"];
        let mut cmd = c.run_cmd(&args);
        for (k, v) in HOSTILE {
            cmd.env(k, v);
        }
        let what = format!(
            "[{}] hostile env nsjail run {}",
            c.name(),
            shell_words(&args)
        );
        let out = Running::spawn(&mut cmd, None, &what).wait();
        out.expect_success().expect_no_panic();
        assert_eq!(out.out(), "0", "{}", out.describe());
    });
}

/// Start the helper ourselves and send one valid spawn of `sh -c 'echo hi; id -u'` with stdout on
/// a pipe we read.
fn direct_spawn(helper: &std::path::Path, how: &HelperStart, who: &str) {
    let mut conn = HelperConn::start(helper, how);
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut r = std::fs::File::from(r);
    let null_in: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let null_err: OwnedFd = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap()
        .into();
    let frame = spawn_frame(&["/bin/sh", "-c", "echo hi; id -u"]);
    conn.send(
        &frame,
        &[null_in.as_raw_fd(), w.as_raw_fd(), null_err.as_raw_fd()],
    )
    .unwrap_or_else(|e| panic!("[{who}] send the spawn request: {e}"));
    drop((null_in, w, null_err));
    let (events, err) = conn.read_until_end();
    let ctx = format!("[{who}] {how:?}: events {events:?}, read error {err:?}");
    assert!(err.is_none(), "{ctx}");
    let started = events
        .iter()
        .position(|e| matches!(e, HelperEvent::Started { pid } if *pid > 0));
    let exited = events.iter().position(
        |e| matches!(e, HelperEvent::Exited(info) if info.termination == Termination::Exited(0)),
    );
    assert!(
        matches!((started, exited), (Some(s), Some(x)) if s < x),
        "{ctx}: expected Started, then Exited(0)"
    );
    let mut printed = String::new();
    r.read_to_string(&mut printed).unwrap();
    assert_eq!(printed, "hi\n0\n", "{ctx}");
    drop(conn.sock);
    let mut run = conn.run;
    let st = run.wait_timeout(nsjail_tests::TIMEOUT);
    assert!(
        st.is_some(),
        "{ctx}: the helper did not exit after the socket closed"
    );
    let stderr = run.stderr.text();
    assert!(!stderr.contains("panicked"), "{ctx}: {stderr}");
}

fn hostile_env() -> Vec<(String, String)> {
    HOSTILE
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_helper_serves_a_valid_request_with_stdio_closed_and_a_hostile_environment() {
    let how = HelperStart {
        as_ids: None,
        close_stdio: true,
        env: hostile_env(),
        ..Default::default()
    };
    direct_spawn(&helper_bin(), &how, "test process, plain helper");
    direct_spawn(
        &helper_bin(),
        &HelperStart::default(),
        "test process, plain helper, clean",
    );
    if is_root() {
        let how = HelperStart {
            as_ids: Some(test_user()),
            close_stdio: true,
            env: hostile_env(),
            ..Default::default()
        };
        direct_spawn(&setuid_install().helper, &how, "user via setuid helper");
    } else {
        nsjail_tests::require_root("setuid part of the hostile helper test");
    }
}
