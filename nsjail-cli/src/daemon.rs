//! Reaching the helper daemon (`nsjail-helper --daemon`, usually started by systemd) through its
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
