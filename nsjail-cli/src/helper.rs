//! Finding the helper and starting it on one end of a socketpair.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, anyhow};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

/// Where `cargo xtask install --setuid` puts the helper unless told otherwise.
pub const INSTALLED_HELPER: &str = match option_env!("NSJAIL_INSTALLED_HELPER") {
    Some(p) => p,
    None => "/usr/local/libexec/nsjail/nsjail-helper",
};

/// The helper to use and how it was chosen (for `--verbose`).
pub struct Located {
    pub path: PathBuf,
    pub how: &'static str,
}

/// `--helper`, then `$NSJAIL_HELPER`, then next to this executable, then
/// `../libexec/nsjail/` relative to it, then the install location.
pub fn locate(explicit: Option<&Path>) -> Result<Located> {
    if let Some(p) = explicit {
        return Ok(Located {
            path: p.to_path_buf(),
            how: "--helper",
        });
    }
    if let Some(p) = std::env::var_os("NSJAIL_HELPER").filter(|p| !p.is_empty()) {
        return Ok(Located {
            path: p.into(),
            how: "$NSJAIL_HELPER",
        });
    }
    let mut tried = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        for (p, how) in [
            (dir.join("nsjail-helper"), "next to nsjail"),
            (
                dir.join("../libexec/nsjail/nsjail-helper"),
                "../libexec/nsjail next to nsjail",
            ),
        ] {
            if p.is_file() {
                return Ok(Located { path: p, how });
            }
            tried.push(p);
        }
    }
    let installed = PathBuf::from(INSTALLED_HELPER);
    if installed.is_file() {
        return Ok(Located {
            path: installed,
            how: "install location",
        });
    }
    tried.push(installed);
    let tried: Vec<_> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(anyhow!(
        "nsjail-helper not found (looked in {}); give --helper PATH or set NSJAIL_HELPER",
        tried.join(", ")
    ))
}

/// How the helper will run, judged from its file: setuid root or plain.
pub fn describe(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) if m.uid() == 0 && m.mode() & 0o4000 != 0 => "setuid root".into(),
        Ok(_) => "not setuid: runs as you, needs unprivileged user namespaces".into(),
        Err(e) => format!("cannot stat: {e}"),
    }
}

/// Start the helper with one end of a fresh socketpair; returns our end.
pub fn start(path: &Path) -> Result<(Child, OwnedFd)> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")?;
    // The helper's end must survive exec; it is told the number with --fd.
    fcntl(theirs.as_fd(), FcntlArg::F_SETFD(FdFlag::empty())).context("fcntl(F_SETFD)")?;
    let child = Command::new(path)
        .arg("--fd")
        .arg(theirs.as_raw_fd().to_string())
        .env_clear()
        // Not a process group of its own: the helper makes itself a session (setsid, which a
        // group leader cannot do), out of reach of our terminal's signals (Ctrl-C, Ctrl-\,
        // Ctrl-Z), which reach only us and we forward. Until it has, the ones we forward are
        // blocked in it (we blocked them before the fork) and it discards them.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start helper {}", path.display()))?;
    drop(theirs);
    Ok((child, ours))
}
