//! How many sandboxes one user may have running at once through the daemon.
//!
//! The daemon counts its live connection processes per caller uid; a connection over the cap is
//! refused at once, with the reason, before anything is forked for it.

use std::collections::HashMap;

use nix::unistd::{Pid, Uid};

/// The cap when nothing else sets one: enough for a build system's parallel jobs, small enough
/// that one user cannot exhaust the host's pids through the daemon.
pub const DEFAULT_MAX_PER_USER: usize = 64;

/// The most connections one user may have served at once: the daemon's `--max-per-user`, else
/// [`DEFAULT_MAX_PER_USER`]; the same for every user. The policy's `max_sandboxes_per_user`
/// is a separate count, of live sandboxes on either way in (`host::sandbox_slots`).
pub fn max_per_user(configured: Option<usize>) -> usize {
    configured.unwrap_or(DEFAULT_MAX_PER_USER)
}

/// Live connection processes, by pid and by uid.
#[derive(Debug, Default)]
pub struct Counts {
    by_pid: HashMap<Pid, Uid>,
    by_uid: HashMap<Uid, usize>,
}

impl Counts {
    /// How many connections `uid` has being served now.
    pub fn of(&self, uid: Uid) -> usize {
        self.by_uid.get(&uid).copied().unwrap_or(0)
    }

    /// Count a new connection process `pid` serving `uid`.
    pub fn add(&mut self, pid: Pid, uid: Uid) {
        self.by_pid.insert(pid, uid);
        *self.by_uid.entry(uid).or_insert(0) += 1;
    }

    /// A reaped process: if it was a connection process, it no longer counts. Returns its uid.
    pub fn remove(&mut self, pid: Pid) -> Option<Uid> {
        let uid = self.by_pid.remove(&pid)?;
        if let Some(n) = self.by_uid.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                self.by_uid.remove(&uid);
            }
        }
        Some(uid)
    }

    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.by_pid.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_adds_and_removes_per_user() {
        let (a, b) = (Uid::from_raw(1000), Uid::from_raw(1001));
        let mut c = Counts::default();
        c.add(Pid::from_raw(10), a);
        c.add(Pid::from_raw(11), a);
        c.add(Pid::from_raw(12), b);
        assert_eq!((c.of(a), c.of(b)), (2, 1));
        assert_eq!(c.remove(Pid::from_raw(10)), Some(a));
        assert_eq!(c.remove(Pid::from_raw(10)), None, "a pid counts once");
        assert_eq!(
            c.remove(Pid::from_raw(99)),
            None,
            "not a connection process"
        );
        assert_eq!((c.of(a), c.of(b)), (1, 1));
        c.remove(Pid::from_raw(11));
        c.remove(Pid::from_raw(12));
        assert!(c.pids().next().is_none() && c.of(a) == 0);
    }

    #[test]
    fn the_cap_defaults_and_can_be_configured() {
        assert_eq!(max_per_user(None), DEFAULT_MAX_PER_USER);
        assert_eq!(max_per_user(Some(2)), 2);
    }
}
