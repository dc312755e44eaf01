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

/// The daemon socket to try: `--socket`, then `$NSJAIL_SOCKET`, then the default; `None` when
/// the daemon is not to be tried (`none`, or a helper named explicitly with no socket named).
fn socket_to_try(
    flag: Option<&Path>,
    helper_named: bool,
) -> std::result::Result<(PathBuf, &'static str), String> {
    let (path, how) = if let Some(p) = flag {
        (p.to_path_buf(), "--socket")
    } else if let Some(p) = std::env::var_os("NSJAIL_SOCKET").filter(|p| !p.is_empty()) {
        (PathBuf::from(p), "$NSJAIL_SOCKET")
    } else if helper_named {
        return Err("a helper was named, so no daemon was tried".into());
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
    let helper_named =
        helper.is_some() || std::env::var_os("NSJAIL_HELPER").is_some_and(|h| !h.is_empty());
    let skipped = match socket_to_try(socket, helper_named) {
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
