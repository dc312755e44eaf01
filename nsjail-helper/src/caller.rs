//! Who is asking. On the setuid path the caller is the real uid/gid of this process, which the
//! kernel set from the user who ran us; nothing the request says is taken as identity.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Uid, getresgid, getresuid};

use crate::error::{HelperError, Result, sys};

#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub uid: Uid,
    pub gid: Gid,
    /// We run with euid 0 (setuid-root, or the daemon): namespaces will belong to root, and the
    /// ID maps are written with root's authority.
    pub privileged: bool,
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
        })
    }

    pub fn mode(&self) -> &'static str {
        match (self.privileged, self.uid.is_root()) {
            (true, false) => "setuid-root",
            (true, true) => "root",
            (false, _) => "unprivileged (no setuid bit)",
        }
    }
}
