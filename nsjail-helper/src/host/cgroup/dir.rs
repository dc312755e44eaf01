//! One directory of a sandbox's cgroup and the files in it, always reached through an open
//! directory fd (a rename of the directory cannot redirect a write), plus the names of our
//! directories and the clean-up of those a killed helper left.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::error::{HelperError, Result};

/// One directory of the sandbox's cgroup (v2: the only one; v1: one per hierarchy).
pub struct Dir {
    pub path: PathBuf,
    /// The directory it was made in, open, to remove it by name.
    pub parent: OwnedFd,
    pub fd: OwnedFd,
    /// v1: the hierarchy's controllers; v2: the controllers enabled for it.
    pub controllers: Vec<String>,
}

impl Dir {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    pub fn file_path(&self, file: &str) -> String {
        format!("{}/{file}", self.path.display())
    }

    pub fn open(&self, file: &str, flags: OFlag) -> std::result::Result<File, Errno> {
        openat(
            self.fd.as_fd(),
            file,
            flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map(File::from)
    }

    pub fn exists(&self, file: &str) -> bool {
        self.open(file, OFlag::O_RDONLY).is_ok()
    }

    /// One `write` of `value` to `file`, as cgroupfs wants it.
    pub fn write(&self, file: &str, value: &str) -> Result<()> {
        let fail = |e: Errno| HelperError::Sys {
            call: format!("write {value:?} to {}", self.file_path(file)),
            source: e,
        };
        let mut f = self.open(file, OFlag::O_WRONLY).map_err(fail)?;
        f.write_all(value.as_bytes())
            .map_err(|e| fail(io_errno(&e)))
    }

    pub fn read(&self, file: &str) -> Option<String> {
        let mut s = String::new();
        self.open(file, OFlag::O_RDONLY)
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        Some(s)
    }

    pub fn read_u64(&self, file: &str) -> Option<u64> {
        self.read(file)?.trim().parse().ok()
    }

    /// The value of `key` in a flat-keyed file (`cpu.stat`, `memory.events`, …).
    pub fn read_key(&self, file: &str, key: &str) -> Option<u64> {
        keyed(&self.read(file)?, key)
    }

    pub fn pids(&self) -> Vec<i32> {
        self.read("cgroup.procs")
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}

pub fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

pub fn write_path(path: &Path, value: &str) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| HelperError::Sys {
            call: format!("write {value:?} to {}", path.display()),
            source: io_errno(&e),
        })
}

/// Open an existing parent (v2), which must be root's.
pub fn open_existing(parent: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| HelperError::Sys {
        call: format!("open {}", parent.display()),
        source: e,
    })?;
    check_root_made(&fd, parent)?;
    Ok(fd)
}

/// `mkdir -p`-like for the parent (`…/nsjail`, mode 0755), then open it.
pub fn open_parent(parent: &Path) -> Result<OwnedFd> {
    if let Some(above) = parent.parent()
        && !above.is_dir()
    {
        return Err(HelperError::Refused(format!(
            "cgroup directory {} does not exist",
            above.display()
        )));
    }
    match nix::unistd::mkdir(parent, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(HelperError::Sys {
                call: format!("mkdir {}", parent.display()),
                source: e,
            });
        }
    }
    let fd = nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| HelperError::Sys {
        call: format!("open {}", parent.display()),
        source: e,
    })?;
    check_root_made(&fd, parent)?;
    Ok(fd)
}

/// The directory open as `fd` is root's and no one else may write it. On v1 our parent lies
/// below the caller's own cgroup, which may be delegated to the caller: an `nsjail` they made
/// there first would be theirs, with its files, and so would be the right to rename or remove
/// what we put in it. Checked on the open fd, through which everything below is made.
fn check_root_made(fd: &OwnedFd, path: &Path) -> Result<()> {
    let st = nix::sys::stat::fstat(fd).map_err(|e| HelperError::Sys {
        call: format!("fstat {}", path.display()),
        source: e,
    })?;
    if st.st_uid != 0 {
        return Err(HelperError::Refused(format!(
            "{}: owned by uid {}, not root: refusing to put a sandbox's cgroup in it",
            path.display(),
            st.st_uid
        )));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(HelperError::Refused(format!(
            "{}: writable by group or others (mode {:04o}): refusing to put a sandbox's cgroup \
             in it",
            path.display(),
            st.st_mode & 0o7777
        )));
    }
    Ok(())
}

pub fn make_dir(
    parent_fd: OwnedFd,
    parent: &Path,
    name: &str,
    controllers: Vec<String>,
) -> Result<Dir> {
    let path = parent.join(name);
    let fail = |call: &str, e| HelperError::Sys {
        call: format!("{call} {}", path.display()),
        source: e,
    };
    mkdirat(parent_fd.as_fd(), name, Mode::from_bits_truncate(0o755))
        .map_err(|e| fail("mkdir", e))?;
    let fd = openat(
        parent_fd.as_fd(),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| {
        let _ = unlinkat(parent_fd.as_fd(), name, UnlinkatFlags::RemoveDir);
        fail("open", e)
    })?;
    Ok(Dir {
        path,
        parent: parent_fd,
        fd,
        controllers,
    })
}

/// `<prefix><our pid>-<our start time in clock ticks since boot>`.
pub fn sandbox_name(prefix: &str) -> Result<String> {
    let pid = std::process::id() as i32;
    let start = start_time(pid).ok_or_else(|| HelperError::Sys {
        call: "read /proc/self/stat".into(),
        source: Errno::EIO,
    })?;
    Ok(format!("{prefix}{pid}-{start}"))
}

/// Field 22 of `/proc/PID/stat`: when the process started.
fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Remove the empty sandbox cgroups (`<prefix><pid>-<start>`) under `parent` whose creating
/// helper no longer exists.
pub fn clean_stale(parent_fd: &OwnedFd, parent: &Path, prefix: &str, ours: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == ours {
            continue;
        }
        let Some((pid, start)) = name.strip_prefix(prefix).and_then(|n| n.split_once('-')) else {
            continue;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), start.parse::<u64>()) else {
            continue;
        };
        if start_time(pid) == Some(start) {
            continue;
        }
        // An empty directory is removed; one with processes in it is left alone: they are
        // not ours to kill (the pid namespace of a dead helper's sandbox is gone already).
        let _ = unlinkat(parent_fd.as_fd(), name, UnlinkatFlags::RemoveDir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files() {
        let stat = "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n";
        assert_eq!(keyed(stat, "usage_usec"), Some(1234));
        assert_eq!(keyed(stat, "user_usec"), Some(1000));
        assert_eq!(keyed(stat, "nope"), None);
        assert_eq!(
            keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", "oom_kill"),
            Some(2)
        );
    }

    #[test]
    fn our_start_time_is_readable() {
        assert!(start_time(std::process::id() as i32).is_some());
        assert!(sandbox_name("").unwrap().contains('-'));
        assert!(sandbox_name("nsjail-").unwrap().starts_with("nsjail-"));
    }
}
