//! Writes the sandbox's ID maps, from the parent side, as the kernel requires.
//!
//! Only the caller's own uid and gid are mapped (to the ids the request chose inside). The
//! target is always our own child that we have not reaped, so its pid cannot have been recycled
//! for another process between clone and these writes (nsjail #341).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use nix::unistd::Pid;
use nsjail_core::IdMapping;

use crate::caller::Caller;
use crate::error::{HelperError, Result};

/// Write `setgroups`, `uid_map` and `gid_map` of `pid`; returns one line per file written, for
/// `--verbose`.
pub fn write_maps(pid: Pid, caller: &Caller, inside: IdMapping) -> Result<Vec<String>> {
    let uid_map = format!("{} {} 1\n", inside.uid, caller.uid);
    let gid_map = format!("{} {} 1\n", inside.gid, caller.gid);
    // setgroups must be denied before gid_map is written: otherwise a process inside could
    // drop supplementary groups that protect files from it (negative group permissions,
    // CVE-2014-8989). With only the caller's gid mapped there is nothing to set groups to.
    let writes = [
        ("setgroups", "deny\n".to_string()),
        ("uid_map", uid_map),
        ("gid_map", gid_map),
    ];
    let mut steps = Vec::with_capacity(writes.len());
    for (file, content) in writes {
        let path = format!("/proc/{pid}/{file}");
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .and_then(|mut f| f.write_all(content.as_bytes()))
            .map_err(|e| HelperError::Sys {
                call: format!("write {path}"),
                source: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        steps.push(format!("{file}: {}", content.trim_end()));
    }
    Ok(steps)
}
