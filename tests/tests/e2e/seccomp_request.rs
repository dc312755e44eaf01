//! The helper's side of a `--seccomp` profile: the request carries the BPF program the CLI
//! compiled, and the helper checks only its framing and filter flags before installing it.
//! Driven here with hand-made requests, as any client of the helper could send them.

use std::os::fd::AsRawFd;

use nsjail_core::seccomp::{BpfProgram, FLAG_LOG, SeccompMode};
use nsjail_core::{ClientMessage, ErrorKind, HelperEvent, MountOp, Termination, wire};
use nsjail_tests::{
    HelperConn, HelperStart, TIMEOUT, devnull_stdio, helper_bin, setuid_install, spawn_request,
    test_user,
};

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Vec<u8> {
    let mut b = code.to_ne_bytes().to_vec();
    b.extend([jt, jf]);
    b.extend(k.to_ne_bytes());
    b
}

/// `mkdir` and `mkdirat` fail with `EACCES`; everything else is allowed.
fn deny_mkdir() -> Vec<u8> {
    [
        insn(0x20, 0, 0, 0),                                 // ld [nr]
        insn(0x15, 1, 0, libc::SYS_mkdir as u32),            // jeq mkdir → deny
        insn(0x15, 0, 1, libc::SYS_mkdirat as u32),          // jeq mkdirat → deny, else allow
        insn(0x06, 0, 0, 0x0005_0000 | libc::EACCES as u32), // ret ERRNO(EACCES)
        insn(0x06, 0, 0, 0x7fff_0000),                       // ret ALLOW
    ]
    .concat()
}

/// Send one spawn request with `profile` as its `--seccomp` program, running a shell that exits
/// with mkdir's status; the events until the helper is done, and how the helper exited.
fn spawn_with(
    helper: &std::path::Path,
    how: &HelperStart,
    profile: BpfProgram,
) -> (Vec<HelperEvent>, std::process::ExitStatus) {
    let mut req = spawn_request(&["/bin/sh", "-c", "mkdir /tmp/d"]);
    req.mounts.push(MountOp::Tmpfs {
        dst: "/tmp".into(),
        size: None,
        perms: None,
    });
    req.seccomp = SeccompMode::Profile(profile);
    let frame = wire::encode(&ClientMessage::Spawn(Box::new(req))).expect("encode spawn");
    let mut conn = HelperConn::start(helper, how);
    let stdio = devnull_stdio();
    let raw: Vec<i32> = stdio.iter().map(|f| f.as_raw_fd()).collect();
    conn.send(&frame, &raw).expect("send the spawn request");
    drop(stdio);
    let (events, err) = conn.read_events();
    assert!(err.is_none(), "{err:?} after {events:?}");
    let mut run = conn.run;
    let status = run
        .wait_timeout(TIMEOUT)
        .unwrap_or_else(|| panic!("the helper did not exit (events {events:?})"));
    (events, status)
}

fn exit_code(events: &[HelperEvent]) -> Option<Termination> {
    events.iter().find_map(|e| match e {
        HelperEvent::Exited(x) => Some(x.termination),
        _ => None,
    })
}

#[test]
fn the_helper_installs_the_programs_bytes_and_refuses_bad_framing_or_flags() {
    let mut ways = vec![(helper_bin(), HelperStart::default(), "as the test process")];
    if nsjail_tests::root_part(module_path!(), "the setuid helper") {
        ways.push((
            setuid_install().helper.clone(),
            HelperStart {
                as_ids: Some(test_user()),
                ..Default::default()
            },
            "user via setuid helper",
        ));
    }
    for (helper, how, who) in ways {
        // The control: a program that allows everything; mkdir works.
        let allow = insn(0x06, 0, 0, 0x7fff_0000);
        let (events, _) = spawn_with(
            &helper,
            &how,
            BpfProgram {
                bpf: allow.clone(),
                flags: 0,
            },
        );
        assert_eq!(
            exit_code(&events),
            Some(Termination::Exited(0)),
            "[{who}] {events:?}"
        );
        // The program the request carries is the one installed (with its flags): mkdir fails.
        let (events, _) = spawn_with(
            &helper,
            &how,
            BpfProgram {
                bpf: deny_mkdir(),
                flags: FLAG_LOG,
            },
        );
        assert_eq!(
            exit_code(&events),
            Some(Termination::Exited(1)),
            "[{who}] {events:?}"
        );
        // A torn instruction, too long a program, a flag nsjail never installs with
        // (NEW_LISTENER): refused before anything starts.
        for (bad, what) in [
            (
                BpfProgram {
                    bpf: allow[..7].to_vec(),
                    flags: 0,
                },
                "7 bytes is not a BPF program",
            ),
            (
                BpfProgram {
                    bpf: allow.repeat(4097),
                    flags: 0,
                },
                "32776 bytes is not a BPF program",
            ),
            (
                BpfProgram {
                    bpf: allow.clone(),
                    flags: 1 << 3,
                },
                "unsupported filter flags 0x8",
            ),
        ] {
            let (events, status) = spawn_with(&helper, &how, bad);
            assert!(!status.success(), "[{who}] {what}: {events:?}");
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, HelperEvent::Started { .. })),
                "[{who}] {what}: nothing may start: {events:?}"
            );
            let refusal = events.iter().find_map(|e| match e {
                HelperEvent::Error { kind, message } => Some((*kind, message.clone())),
                _ => None,
            });
            let Some((kind, message)) = refusal else {
                panic!("[{who}] {what}: expected an Error event: {events:?}");
            };
            assert_eq!(kind, ErrorKind::BadRequest, "[{who}] {message}");
            assert!(
                message.starts_with("invalid request: --seccomp profile: ")
                    && message.contains(what),
                "[{who}] {message}"
            );
        }
    }
}
