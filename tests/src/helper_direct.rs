//! Talking to the helper directly, without the CLI: a helper started on a socketpair by the
//! test, to send it requests (good and bad) of the test's own making.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::{Running, TIMEOUT, USER_PATH, is_root};

/// A helper started by the test as `nsjail-helper --fd N`, with the test's end of the socket.
pub struct HelperConn {
    pub run: Running,
    pub sock: std::os::unix::net::UnixStream,
}

/// How to start the helper directly.
#[derive(Clone, Debug, Default)]
pub struct HelperStart {
    /// Run it as this uid/gid (the ordinary user), else as the test process's user.
    pub as_ids: Option<(u32, u32)>,
    /// Close fds 0, 1 and 2 before the exec (only the socket stays open).
    pub close_stdio: bool,
    /// Extra environment; otherwise the environment is cleared but for PATH.
    pub env: Vec<(String, String)>,
    /// Resource limits (resource, soft and hard value) set just before the exec.
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
}

impl HelperConn {
    pub fn start(helper: &Path, how: &HelperStart) -> HelperConn {
        // The setuid helper checks that its socket's peer (SO_PEERCRED: the effective ids of
        // whoever made the pair) is its caller, as it is when the CLI makes it.
        let (ours, theirs) = match how.as_ids {
            Some((uid, gid)) => socketpair_as(uid, gid),
            None => std::os::unix::net::UnixStream::pair().expect("socketpair"),
        };
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new(helper);
        cmd.arg("--fd").arg(fd.to_string());
        cmd.env_clear().env("PATH", USER_PATH).current_dir("/");
        for (k, v) in &how.env {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = how.as_ids {
            cmd.uid(uid).gid(gid);
        }
        let close_stdio = how.close_stdio;
        let rlimits = how.rlimits.clone();
        // SAFETY: only async-signal-safe calls (fcntl, close, setrlimit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for (resource, value) in &rlimits {
                    let lim = libc::rlimit {
                        rlim_cur: *value,
                        rlim_max: *value,
                    };
                    if libc::setrlimit(*resource, &lim) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // Only the child's copy loses CLOEXEC: no other process the tests start in
                // parallel inherits the helper's end of the socket.
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if close_stdio {
                    libc::close(0);
                    libc::close(1);
                    libc::close(2);
                }
                Ok(())
            });
        }
        let what = format!("{} --fd {fd} ({how:?})", helper.display());
        let run = Running::spawn(&mut cmd, None, &what);
        drop(theirs);
        ours.set_read_timeout(Some(TIMEOUT)).unwrap();
        HelperConn { run, sock: ours }
    }

    /// Write raw bytes, passing `fds` with them as SCM_RIGHTS (if any).
    pub fn send(&self, bytes: &[u8], fds: &[RawFd]) -> nix::Result<usize> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let iov = [std::io::IoSlice::new(bytes)];
        let cmsgs = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
        sendmsg::<()>(
            self.sock.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
    }

    /// No more bytes from us.
    pub fn shutdown_write(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }

    /// Read events until EOF or a framing error; the error (if any) is returned as text.
    ///
    /// A peer that closes its end while bytes we sent are still unread makes our next read
    /// fail with ECONNRESET once its queued events have been read: that counts as the end.
    pub fn read_events(&mut self) -> (Vec<nsjail_core::HelperEvent>, Option<String>) {
        let mut events = Vec::new();
        loop {
            match nsjail_core::wire::read_frame::<_, nsjail_core::HelperEvent>(&mut self.sock) {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => return (events, None),
                Err(nsjail_core::wire::WireError::Io(e))
                    if e.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    return (events, None);
                }
                Err(e) => return (events, Some(e.to_string())),
            }
        }
    }

    /// Read events until (and including) an `Exited` or `Error` that ends the exchange, or EOF.
    pub fn read_until_end(&mut self) -> (Vec<nsjail_core::HelperEvent>, Option<String>) {
        use nsjail_core::{ErrorKind, HelperEvent};
        let mut events = Vec::new();
        loop {
            match nsjail_core::wire::read_frame::<_, HelperEvent>(&mut self.sock) {
                Ok(Some(ev)) => {
                    let last = matches!(ev, HelperEvent::Exited(_))
                        || matches!(
                            ev,
                            HelperEvent::Error { kind, .. }
                                if kind != ErrorKind::NotFound && kind != ErrorKind::NotExecutable
                        );
                    events.push(ev);
                    if last {
                        return (events, None);
                    }
                }
                Ok(None) => return (events, None),
                Err(nsjail_core::wire::WireError::Io(e))
                    if e.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    return (events, None);
                }
                Err(e) => return (events, Some(e.to_string())),
            }
        }
    }
}

/// Run `f` with only this thread's effective ids switched to `uid:gid` (raw syscalls: glibc's
/// wrappers would switch every thread), and switch back to root afterwards, also if `f` panics.
/// What `f` makes (a socket) carries `uid:gid` as its `SO_PEERCRED` credentials.
pub(crate) fn as_thread_ids<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> T {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: plain syscalls on this thread's credentials; back to euid/egid 0, which
            // the saved set-user-ID (0) allows.
            unsafe {
                libc::syscall(libc::SYS_setresuid, -1i64, 0i64, -1i64);
                libc::syscall(libc::SYS_setresgid, -1i64, 0i64, -1i64);
            }
        }
    }
    // SAFETY: as above; the guard restores the ids even if `f` panics.
    let restore = Restore;
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_setresgid, -1i64, gid as i64, -1i64),
            0,
            "setresgid"
        );
        assert_eq!(
            libc::syscall(libc::SYS_setresuid, -1i64, uid as i64, -1i64),
            0,
            "setresuid"
        );
    }
    let made = f();
    drop(restore);
    assert!(is_root(), "this thread's euid was not restored");
    made
}

/// Make a socketpair whose SO_PEERCRED credentials are `uid:gid`: switch only this thread's
/// effective ids and back.
pub fn socketpair_as(
    uid: u32,
    gid: u32,
) -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    assert!(is_root(), "socketpair_as needs root");
    as_thread_ids(uid, gid, || {
        std::os::unix::net::UnixStream::pair().expect("socketpair")
    })
}

/// The system part of the default view, for requests built by hand: /usr read-only and the
/// host's /bin, /sbin, /lib* links or directories.
pub fn system_mounts() -> Vec<nsjail_core::MountOp> {
    use nsjail_core::{BindKind, MountOp};
    let mut ops = vec![MountOp::Bind {
        src: "/usr".into(),
        dst: "/usr".into(),
        kind: BindKind::ReadOnly,
        optional: false,
    }];
    for p in ["/bin", "/sbin", "/lib", "/lib64"] {
        match fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => ops.push(MountOp::Symlink {
                target: fs::read_link(p).unwrap().to_string_lossy().into_owned(),
                link: p.into(),
            }),
            Ok(m) if m.is_dir() => ops.push(MountOp::Bind {
                src: p.into(),
                dst: p.into(),
                kind: BindKind::ReadOnly,
                optional: false,
            }),
            _ => {}
        }
    }
    ops
}

/// Options that keep the default view and add `dir` read-write at its own path: for tests whose
/// payload must see a host directory other than the current one.
pub fn with_dir(dir: &Path) -> Vec<String> {
    let d = dir.to_str().expect("utf-8 path").to_string();
    vec!["--default-view".into(), "--bind".into(), d.clone(), d]
}

/// A valid spawn request for `argv`, with a plain PATH, cwd `/` and the system mounted.
pub fn spawn_request(argv: &[&str]) -> nsjail_core::SpawnRequest {
    let mut r = nsjail_core::SpawnRequest::new(argv.iter().map(|s| s.to_string()).collect());
    r.mounts = system_mounts();
    r.env.push(("PATH".into(), USER_PATH.into()));
    r.cwd = Some("/".into());
    r.caller_cwd = Some("/".into());
    r
}

/// One complete, valid spawn frame.
pub fn spawn_frame(argv: &[&str]) -> Vec<u8> {
    let msg = nsjail_core::ClientMessage::Spawn(Box::new(spawn_request(argv)));
    nsjail_core::wire::encode(&msg).expect("encode spawn")
}

/// Three fds on /dev/null (read, write, write) for a spawn request's stdio.
pub fn devnull_stdio() -> Vec<OwnedFd> {
    let r = fs::File::open("/dev/null").unwrap();
    let w1 = fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let w2 = fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    vec![r.into(), w1.into(), w2.into()]
}
