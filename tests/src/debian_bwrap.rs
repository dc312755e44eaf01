//! Debian's own bubblewrap (`apt-get install bubblewrap`, 0.8 in Debian 12), which the `bwrap`
//! tests compare ours with.

use std::path::Path;

use crate::{Caller, Running, shell_words};

/// Where Debian installs it.
pub const DEBIAN_BWRAP: &str = "/usr/bin/bwrap";

/// The system, read-only, as Flatpak-like clients lay out a merged-/usr root.
pub const BWRAP_SYSTEM: &[&str] = &[
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--symlink",
    "usr/bin",
    "/bin",
    "--symlink",
    "usr/sbin",
    "/sbin",
];

/// Whether Debian's bwrap is there and starts a sandbox for `c` (not where unprivileged user
/// namespaces are switched off).
pub fn debian_bwrap_works(c: &Caller) -> bool {
    if !Path::new(DEBIAN_BWRAP).exists() {
        return false;
    }
    let args: Vec<&str> = BWRAP_SYSTEM.iter().copied().chain(["true"]).collect();
    let mut cmd = c.command_for(DEBIAN_BWRAP);
    cmd.args(&args);
    let what = format!("[{}] {DEBIAN_BWRAP} {}", c.name(), shell_words(&args));
    Running::spawn(&mut cmd, None, &what).wait().code() == Some(0)
}
