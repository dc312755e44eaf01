//! The caller's fds the payload gets at the same numbers: `nsjail run --pass-fd N`, and every fd
//! a `bwrap` caller left open. Only an fd the caller handed to this process counts: it is open
//! and not close-on-exec here. Every fd nsjail opens itself (the socket to the helper, the
//! Xauthority copy, a D-Bus proxy's pipe, a pseudo-terminal) is close-on-exec, so none of them
//! is ever passed.

use std::os::fd::RawFd;

/// `O_CLOEXEC` as `/proc/self/fdinfo` shows it in `flags:` (octal).
const O_CLOEXEC: u32 = 0o2_000_000;

/// Whether fd `fd` of this process is open (`Some`) and close-on-exec (`true`), read from
/// `/proc/self/fdinfo` (no unsafe code borrows a raw number).
fn state(fd: u32) -> Option<bool> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())?;
    Some(flags & O_CLOEXEC != 0)
}

/// `--pass-fd N`: N must be an fd the caller left open for the command.
pub fn check(fd: u32) -> Result<(), String> {
    match state(fd) {
        None => Err(format!("--pass-fd {fd}: file descriptor {fd} is not open")),
        Some(true) => Err(format!(
            "--pass-fd {fd}: file descriptor {fd} is close-on-exec: not one the caller left open"
        )),
        Some(false) => Ok(()),
    }
}

/// Every fd from 3 up that is open here and not close-on-exec, in order, leaving out `except`.
pub fn inherited(except: &[RawFd]) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&fd| fd >= 3 && !except.contains(&(fd as RawFd)))
        // The directory's own fd is close-on-exec, as is every other of ours.
        .filter(|&fd| state(fd) == Some(false))
        .collect();
    fds.sort_unstable();
    fds
}

/// The fds that travel with a request: the view's (by index), then the passed ones.
pub fn with_passed(view: &[RawFd], passed: &[u32]) -> Vec<RawFd> {
    view.iter()
        .copied()
        .chain(passed.iter().map(|&fd| fd as RawFd))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_fds_are_close_on_exec_and_never_inherited() {
        // std opens every file close-on-exec, as it opens the socket to the helper.
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f) as u32;
        assert_eq!(state(fd), Some(true));
        assert!(check(fd).unwrap_err().contains("close-on-exec"));
        assert!(!inherited(&[]).contains(&fd));
        drop(f);
        assert_eq!(state(fd), None);
        assert_eq!(
            check(fd).unwrap_err(),
            format!("--pass-fd {fd}: file descriptor {fd} is not open")
        );
    }

    #[test]
    fn the_view_fds_come_first() {
        assert_eq!(with_passed(&[7, 4], &[9, 3]), [7, 4, 9, 3]);
    }
}
