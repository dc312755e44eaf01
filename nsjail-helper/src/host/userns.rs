//! Writes the sandbox's ID maps, from the parent side, as the kernel requires.
//!
//! By default only the caller's own uid and gid are mapped (to the ids the request chose
//! inside); more is written only when the policy grants it (`grants.rs`), as `newuidmap` does.
//! The target is always our own child that we have not reaped, so its pid cannot have been
//! recycled for another process between clone and these writes (nsjail #341).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use nix::unistd::Pid;
use nsjail_core::IdRange;

use crate::error::{HelperError, Result};

fn lines(map: &[IdRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// Write `setgroups`, `uid_map` and `gid_map` of `pid`; returns one line per file written, for
/// `--verbose`.
pub fn write_maps(
    pid: Pid,
    uid_map: &[IdRange],
    gid_map: &[IdRange],
    setgroups_allow: bool,
) -> Result<Vec<String>> {
    // setgroups must be denied before gid_map is written: otherwise a process inside could
    // drop supplementary groups that protect files from it (negative group permissions,
    // CVE-2014-8989). It is allowed only when the policy granted gid ranges beyond the
    // caller's own gid, as newgidmap does.
    let writes = [
        (
            "setgroups",
            if setgroups_allow { "allow\n" } else { "deny\n" }.to_string(),
        ),
        ("uid_map", lines(uid_map)),
        ("gid_map", lines(gid_map)),
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
        steps.push(format!(
            "{file}: {}",
            content.trim_end().replace('\n', ", ")
        ));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines_are_inside_outside_count_one_a_line() {
        let map = [
            IdRange {
                inside: 0,
                outside: 1000,
                count: 1,
            },
            IdRange {
                inside: 1,
                outside: 100_000,
                count: 65536,
            },
        ];
        assert_eq!(lines(&map), "0 1000 1\n1 100000 65536\n");
        assert_eq!(lines(&[]), "");
    }
}
