//! The daemon's listening socket: handed over by systemd (socket activation), or bound by us.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrLike, SockaddrStorage, UnixAddr, bind,
    connect, getsockname, getsockopt, listen, socket, sockopt,
};
use nix::sys::stat::{Mode, umask};

use nsjail_helper::sys;

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// What systemd's socket activation told us, read from the environment before it is cleared:
/// `LISTEN_PID` (the pid the fds are meant for) and `LISTEN_FDS` (how many, from fd 3 on).
#[derive(Clone, Debug, Default)]
pub struct Activation {
    pid: Option<String>,
    fds: Option<String>,
}

impl Activation {
    pub fn from_env() -> Activation {
        Activation {
            pid: std::env::var("LISTEN_PID").ok(),
            fds: std::env::var("LISTEN_FDS").ok(),
        }
    }

    /// The number of sockets passed to *this* process (the variables name our pid), if any.
    /// Variables meant for another process (inherited from a parent) are ignored.
    pub fn fds_for_us(&self) -> Result<Option<usize>, String> {
        let (Some(pid), Some(fds)) = (&self.pid, &self.fds) else {
            return Ok(None);
        };
        if pid.trim() != std::process::id().to_string() {
            return Ok(None);
        }
        fds.trim()
            .parse::<usize>()
            .map(Some)
            .map_err(|_| format!("LISTEN_FDS={fds:?} is not a number"))
    }
}

/// The socket systemd passed on fd 3, after checking that it is one listening Unix stream
/// socket.
pub fn activated(n: usize) -> Result<OwnedFd, String> {
    if n != 1 {
        return Err(format!(
            "socket activation passed {n} sockets; nsjail-helperd listens on exactly one \
             (one ListenStream= in nsjail-helper.socket)"
        ));
    }
    let fd = LISTEN_FDS_START;
    if !sys::fd_is_open(fd) {
        return Err(format!("LISTEN_FDS=1 but fd {fd} is not open"));
    }
    let sock = sys::take_fd(fd);
    let family = getsockname::<SockaddrStorage>(fd)
        .map_err(|e| format!("fd {fd} from socket activation: not a socket: {}", e.desc()))?
        .family();
    let kind = getsockopt(&sock, sockopt::SockType)
        .map_err(|e| format!("fd {fd} from socket activation: {}", e.desc()))?;
    let listening = getsockopt(&sock, sockopt::AcceptConn).unwrap_or(false);
    if family != Some(AddressFamily::Unix) || kind != SockType::Stream || !listening {
        return Err(format!(
            "fd {fd} from socket activation is not a listening Unix stream socket"
        ));
    }
    prepare(&sock).map_err(|e| format!("fd {fd} from socket activation: {}", e.desc()))?;
    Ok(sock)
}

/// Bind a new listening socket at `path` with permissions `mode`. The directory is made if
/// missing (0755). A socket left there by a daemon that died is replaced; a live one, or
/// anything that is not a socket, is left alone and is an error.
pub fn bind_path(path: &Path, mode: u32) -> Result<OwnedFd, String> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("--socket {shown}: must be an absolute path"));
    }
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let addr = UnixAddr::new(path).map_err(|e| format!("--socket {shown}: {}", e.desc()))?;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{shown}: {e}")),
        Ok(m) if !m.file_type().is_socket() => {
            return Err(format!(
                "{shown} exists and is not a socket; not replacing it"
            ));
        }
        Ok(_) => match probe(&addr) {
            Ok(()) => return Err(format!("another daemon is already listening on {shown}")),
            Err(Errno::ECONNREFUSED) => std::fs::remove_file(path)
                .map_err(|e| format!("removing the stale socket {shown}: {e}"))?,
            Err(e) => return Err(format!("{shown}: connect: {}", e.desc())),
        },
    }
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket: {}", e.desc()))?;
    // The socket gets its mode as bind() makes it (0777 less the umask), never from a chmod of
    // its path afterwards: in between, whoever can write the directory could put a symlink
    // there, and chmod would follow it. The daemon is single-threaded, so the umask set here
    // applies to this bind alone.
    let old = umask(Mode::from_bits_truncate(!mode & 0o777));
    let bound = bind(sock.as_raw_fd(), &addr);
    umask(old);
    bound.map_err(|e| format!("bind {shown}: {}", e.desc()))?;
    listen(&sock, Backlog::new(128).unwrap_or(Backlog::MAXCONN))
        .map_err(|e| format!("listen on {shown}: {}", e.desc()))?;
    prepare(&sock).map_err(|e| format!("{shown}: {}", e.desc()))?;
    Ok(sock)
}

/// Does something accept connections at `addr`?
fn probe(addr: &UnixAddr) -> Result<(), Errno> {
    let s = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(s.as_raw_fd(), addr)
}

/// Non-blocking (the daemon's loop polls it and must never block in `accept`) and
/// close-on-exec (nothing we start inherits it).
fn prepare(sock: &OwnedFd) -> Result<(), Errno> {
    let fl = OFlag::from_bits_truncate(fcntl(sock.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(sock.as_fd(), FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    fcntl(sock.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// Where the daemon listens unless told otherwise (and where the CLI looks first).
pub const DEFAULT_SOCKET: &str = "/run/nsjail/helper.sock";

/// The socket path of a listener, for messages.
pub fn describe(sock: &OwnedFd, bound: Option<&PathBuf>) -> String {
    if let Some(p) = bound {
        return p.display().to_string();
    }
    getsockname::<UnixAddr>(sock.as_raw_fd())
        .ok()
        .and_then(|a| a.path().map(|p| p.display().to_string()))
        .unwrap_or_else(|| "an unnamed socket".into())
}
