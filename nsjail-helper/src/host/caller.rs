//! Who is asking. On the setuid path the caller is the real uid/gid of this process, which the
//! kernel set from the user who ran us; in the daemon it is the peer of the accepted connection
//! as the kernel recorded it at `connect()` (`SO_PEERCRED`). Nothing the request says is taken as
//! identity.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Pid, Uid, geteuid, getresgid, getresuid, getuid};

use crate::error::{HelperError, Result, sys};

/// How the caller reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// We are the caller's child, started through the setuid bit (or a plain build).
    Setuid,
    /// A connection accepted by the daemon, `nsjail-helperd`.
    Daemon,
}

#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub uid: Uid,
    pub gid: Gid,
    /// We run with euid 0 (setuid-root, or the daemon): namespaces will belong to root, and the
    /// ID maps are written with root's authority.
    pub privileged: bool,
    /// The calling process as the kernel knows it (for the log only: a pid is no identity).
    pub pid: Option<Pid>,
    pub via: Via,
}

impl Caller {
    /// The caller of a setuid (or plain) helper: our real ids. The socket's peer must be the
    /// same user, so a socket borrowed from someone else's process cannot be served in their
    /// name.
    pub fn of_setuid_process(sock: &impl AsFd) -> Result<Caller> {
        let uids = getresuid().map_err(sys("getresuid"))?;
        let gids = getresgid().map_err(sys("getresgid"))?;
        let peer = getsockopt(sock, PeerCredentials).map_err(sys("getsockopt(SO_PEERCRED)"))?;
        if peer.uid() != uids.real.as_raw() {
            return Err(HelperError::Refused(format!(
                "socket peer uid {} is not the caller's uid {}",
                peer.uid(),
                uids.real
            )));
        }
        Ok(Caller {
            uid: uids.real,
            gid: gids.real,
            privileged: uids.effective.is_root(),
            pid: Some(nix::unistd::getppid()),
            via: Via::Setuid,
        })
    }

    /// The caller on a connection accepted by the daemon: the uid, gid and pid the kernel
    /// recorded for the peer when it connected. A client cannot choose them (only root could
    /// pass other credentials, and `SO_PEERCRED` ignores `SCM_CREDENTIALS` anyway).
    ///
    /// A daemon running as root is privileged, as the setuid helper is. A daemon that is not
    /// root can only make namespaces as its own user, so it serves nobody else.
    pub fn of_peer(sock: &impl AsFd) -> Result<Caller> {
        let peer = getsockopt(sock, PeerCredentials).map_err(sys("getsockopt(SO_PEERCRED)"))?;
        let privileged = geteuid().is_root();
        let uid = Uid::from_raw(peer.uid());
        if !privileged && uid != getuid() {
            return Err(HelperError::Refused(format!(
                "this daemon runs as uid {} without privilege and serves only that user, not \
                 uid {uid}",
                getuid()
            )));
        }
        Ok(Caller {
            uid,
            gid: Gid::from_raw(peer.gid()),
            privileged,
            pid: (peer.pid() > 0).then(|| Pid::from_raw(peer.pid())),
            via: Via::Daemon,
        })
    }

    pub fn mode(&self) -> &'static str {
        match (self.via, self.privileged, self.uid.is_root()) {
            (Via::Daemon, true, _) => "daemon running as root",
            (Via::Daemon, false, _) => "daemon without privilege",
            (Via::Setuid, true, false) => "setuid-root",
            (Via::Setuid, true, true) => "root",
            (Via::Setuid, false, _) => "unprivileged (no setuid bit)",
        }
    }
}
