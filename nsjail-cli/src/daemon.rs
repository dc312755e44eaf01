//! Reaching the helper daemon (`nsjail-helperd`, usually started by systemd) through its
//! socket, and choosing between it and the setuid helper.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use crate::helper::{self, Located};

/// Where the daemon listens unless told otherwise (`ListenStream=` of nsjail-helper.socket).
pub const DEFAULT_SOCKET: &str = "/run/nsjail/helper.sock";

/// The value of `--socket` / `$NSJAIL_SOCKET` that means "do not try a daemon".
pub const NO_DAEMON: &str = "none";

/// How the request will reach a helper.
pub enum Route {
    /// Connected to the daemon at `path`.
    Daemon {
        path: PathBuf,
        how: &'static str,
        sock: OwnedFd,
    },
    /// Start the setuid (or plain) helper; `skipped` says why the daemon was not used.
    Helper { located: Located, skipped: String },
}

/// The daemon socket to try, or why none is. Command-line flags beat the environment, and a
/// named socket beats a named helper at the same level: `--socket`, then `--helper` (no
/// daemon), then `$NSJAIL_SOCKET`, then `$NSJAIL_HELPER` (no daemon), then the default socket.
/// `none` as the socket means no daemon.
fn socket_to_try(
    flag: Option<&Path>,
    helper_flag: bool,
) -> std::result::Result<(PathBuf, &'static str), String> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let (path, how) = if let Some(p) = flag {
        (p.to_path_buf(), "--socket")
    } else if helper_flag {
        return Err("daemon not tried (--helper names a helper)".into());
    } else if let Some(p) = env("NSJAIL_SOCKET") {
        (PathBuf::from(p), "$NSJAIL_SOCKET")
    } else if env("NSJAIL_HELPER").is_some() {
        return Err("daemon not tried ($NSJAIL_HELPER names a helper)".into());
    } else {
        (PathBuf::from(DEFAULT_SOCKET), "default")
    };
    if path.as_os_str() == NO_DAEMON {
        return Err(format!("daemon not tried ({how} is `{NO_DAEMON}`)"));
    }
    Ok((path, how))
}

/// Prefer the daemon when its socket exists and accepts our connection; else the helper.
pub fn choose(socket: Option<&Path>, helper: Option<&Path>) -> Result<Route> {
    let skipped = match socket_to_try(socket, helper.is_some()) {
        Ok((path, how)) => match UnixStream::connect(&path) {
            Ok(s) => {
                check_daemon_owner(&s, &path, how)?;
                return Ok(Route::Daemon {
                    path,
                    how,
                    sock: s.into(),
                });
            }
            Err(e) => format!("no daemon answers at {} ({how}): {e}", path.display()),
        },
        Err(why) => why,
    };
    match helper::locate(helper) {
        Ok(located) => Ok(Route::Helper { located, skipped }),
        Err(e) => Err(anyhow!("{skipped}; {e:#}")),
    }
}

/// The daemon gets our stdio, our seccomp program and our word on what the sandbox may see:
/// only a daemon run by root (the helper) or by ourselves may have them. Whoever answers at a
/// socket path someone else could make is refused, in one line, rather than trusted to sandbox.
///
/// In a user namespace that does not map root (inside a sandbox), the kernel shows the daemon,
/// as every unmapped uid, as the overflow uid: that one is let through there, and the daemon
/// itself refuses every process in another user namespace than its own.
fn check_daemon_owner(sock: &UnixStream, path: &Path, how: &str) -> Result<()> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let cred = getsockopt(sock, PeerCredentials)
        .map_err(|e| anyhow!("getsockopt(SO_PEERCRED) on {}: {e}", path.display()))?;
    let uid = cred.uid();
    let unmapped_root = || !in_initial_user_namespace() && Some(uid) == overflow_uid();
    if uid != 0 && uid != nix::unistd::geteuid().as_raw() && !unmapped_root() {
        return Err(anyhow!(
            "the daemon at {} ({how}) runs as uid {uid}, not root: not sending it a request",
            path.display()
        ));
    }
    Ok(())
}

/// Whether this process is in the initial user namespace (its uid map is the identity of all ids).
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

/// The uid the kernel shows for a uid this user namespace does not map.
fn overflow_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The ways a request reaches a helper, as `$NSJAIL_WAY_IN` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WayIn {
    /// The helper daemon, through its socket.
    Daemon,
    /// A helper of our own that the kernel runs as root because it is setuid root.
    Setuid,
    /// A helper of our own run by root, so root whatever its mode.
    Root,
    /// A helper of our own that runs as the caller (not setuid, or on a `nosuid` mount).
    Plain,
}

impl WayIn {
    pub const ALL: [WayIn; 4] = [WayIn::Daemon, WayIn::Setuid, WayIn::Root, WayIn::Plain];

    pub fn name(self) -> &'static str {
        match self {
            WayIn::Daemon => "daemon",
            WayIn::Setuid => "setuid",
            WayIn::Root => "root",
            WayIn::Plain => "plain",
        }
    }
}

/// The value of `$NSJAIL_WAY_IN` that only shows the way in.
pub const SHOW_WAY_IN: &str = "show";

/// Whether the kernel will run the helper at `path` as root when we execute it: a root-owned
/// file with the setuid bit, on a filesystem not mounted `nosuid` (where the bit is ignored).
fn runs_setuid_root(path: &Path) -> bool {
    use nix::sys::statvfs::{FsFlags, statvfs};
    use std::os::unix::fs::MetadataExt;
    let setuid_file = std::fs::metadata(path).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o4000 != 0);
    setuid_file && statvfs(path).is_ok_and(|s| !s.flags().contains(FsFlags::ST_NOSUID))
}

impl Route {
    /// The way in this route takes, and the details a person needs to see it was the right one.
    pub fn way_in(&self) -> (WayIn, String) {
        match self {
            Route::Daemon { path, how, .. } => (
                WayIn::Daemon,
                format!("{}, socket from {how}", path.display()),
            ),
            Route::Helper { located, skipped } => {
                let way = if nix::unistd::geteuid().is_root() {
                    WayIn::Root
                } else if runs_setuid_root(&located.path) {
                    WayIn::Setuid
                } else {
                    WayIn::Plain
                };
                (
                    way,
                    format!(
                        "helper {}, found by {}; {skipped}",
                        located.path.display(),
                        located.how
                    ),
                )
            }
        }
    }
}

/// `$NSJAIL_WAY_IN`: when set, say on stderr which way in was taken, in one line
/// (`nsjail: way in: WAY (DETAILS)`); when it names a way, refuse any other, so that a missing
/// daemon socket or a helper that lost its setuid bit never falls back silently.
pub fn say_way_in(route: &Route) -> Result<()> {
    let Some(want) = std::env::var_os("NSJAIL_WAY_IN").filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let want = want.to_string_lossy();
    let required = match WayIn::ALL.into_iter().find(|w| w.name() == want) {
        Some(w) => Some(w),
        None if want == SHOW_WAY_IN => None,
        None => {
            let names: Vec<&str> = WayIn::ALL.iter().map(|w| w.name()).collect();
            return Err(anyhow!(
                "NSJAIL_WAY_IN={want}: expected {SHOW_WAY_IN} or one of {}",
                names.join(", ")
            ));
        }
    };
    let (way, details) = route.way_in();
    if let Some(w) = required
        && w != way
    {
        return Err(anyhow!(
            "NSJAIL_WAY_IN={} but the way in is {} ({details}): not starting",
            w.name(),
            way.name()
        ));
    }
    // One write, so that a reader never sees half the line.
    let line = format!("nsjail: way in: {} ({details})\n", way.name());
    std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes())
        .map_err(|e| anyhow!("writing the way in to stderr: {e}"))
}
