//! `--lock-file DEST`: bubblewrap opens DEST inside the sandbox and holds a read lock (`fcntl`
//! `F_RDLCK`) on it for as long as the sandbox runs; Flatpak locks `/app/.ref` and `/usr/.ref`
//! this way so that an uninstall or update sees the app running. The helper has no such
//! operation, so this process, which lives exactly as long as the sandbox, takes the same lock
//! on the same file as the host sees it: the source of the bind that DEST lies under.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
use nix::sys::stat::Mode;
use nsjail_core::MountOp;

/// Whether `dir` is `path` or one of its parents, component by component.
fn covers(dir: &str, path: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// Where `dest` (absolute, inside the sandbox) is on the host, after `mounts` in order: under
/// the last bind that covers it, the same relative path under that bind's source. `None` when
/// the last operation covering it makes a file system or a file of the sandbox's own (tmpfs,
/// proc, dev, mqueue, overlay, file data), or nothing covers it: no host file to lock.
pub fn host_path(mounts: &[MountOp], dest: &str) -> Option<PathBuf> {
    let mut at = None;
    for op in mounts {
        match op {
            MountOp::Bind { src, dst, .. } if covers(dst, dest) => {
                let rest = dest[dst.trim_end_matches('/').len()..].trim_start_matches('/');
                at = Some(if rest.is_empty() {
                    PathBuf::from(src)
                } else {
                    Path::new(src).join(rest)
                });
            }
            MountOp::Tmpfs { dst, .. }
            | MountOp::Proc { dst }
            | MountOp::Dev { dst }
            | MountOp::Mqueue { dst }
            | MountOp::Overlay { dst, .. }
            | MountOp::File { dst, .. }
            | MountOp::BindData { dst, .. }
                if covers(dst, dest) =>
            {
                at = None;
            }
            _ => {}
        }
    }
    at
}

/// Open each lock file's host file as the caller and take bubblewrap's read lock on it, in
/// bubblewrap's words when that fails. The locks last as long as the returned fds.
pub fn take(dests: &[String], mounts: &[MountOp]) -> anyhow::Result<Vec<OwnedFd>> {
    let mut held = Vec::new();
    for dest in dests {
        let inside = super::translate::inside(dest);
        let Some(path) = host_path(mounts, &inside) else {
            continue;
        };
        let fd = open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| anyhow::anyhow!("Unable to open lock file {dest}: {}", e.desc()))?;
        let lock = nix::libc::flock {
            l_type: nix::libc::F_RDLCK as nix::libc::c_short,
            l_whence: nix::libc::SEEK_SET as nix::libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        fcntl(&fd, FcntlArg::F_SETLK(&lock))
            .map_err(|e| anyhow::anyhow!("Unable to lock file {dest}: {}", e.desc()))?;
        held.push(fd);
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsjail_core::BindKind;

    fn bind(src: &str, dst: &str) -> MountOp {
        MountOp::Bind {
            src: src.into(),
            dst: dst.into(),
            kind: BindKind::ReadOnly,
            optional: false,
        }
    }

    #[test]
    fn the_last_bind_covering_the_lock_file_names_its_host_file() {
        let m = [
            bind("/", "/"),
            bind("/var/lib/flatpak/app/org.x/current/active/files", "/app"),
            bind("/srv/u", "/usr"),
        ];
        assert_eq!(
            host_path(&m, "/app/.ref"),
            Some(PathBuf::from(
                "/var/lib/flatpak/app/org.x/current/active/files/.ref"
            ))
        );
        assert_eq!(host_path(&m, "/usr/.ref"), Some("/srv/u/.ref".into()));
        assert_eq!(host_path(&m, "/usr"), Some("/srv/u".into()));
        // `/usrx` is not under `/usr`: the root bind covers it.
        assert_eq!(host_path(&m, "/usrx/a"), Some("/usrx/a".into()));
        assert_eq!(host_path(&m[1..], "/etc/passwd"), None);
    }

    #[test]
    fn a_file_system_of_the_sandboxs_own_has_no_host_file() {
        let tmpfs = MountOp::Tmpfs {
            dst: "/app/t".into(),
            size: None,
            perms: None,
        };
        let m = [bind("/a", "/app"), tmpfs];
        assert_eq!(host_path(&m, "/app/t/lock"), None);
        assert_eq!(host_path(&m, "/app/lock"), Some("/a/lock".into()));
        // A bind made after the tmpfs, over part of it, is a host file again.
        let mut m = m.to_vec();
        m.push(bind("/b", "/app/t/lock"));
        assert_eq!(host_path(&m, "/app/t/lock"), Some("/b".into()));
    }
}
