//! Linux capabilities by name, and the set the payload keeps.
//!
//! The payload's effective, permitted, inheritable, ambient and bounding sets all end up equal to
//! the request's [`CapSet`], which is empty unless `--cap-add` put something in it. Every
//! capability acts only inside the sandbox's own user namespace.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Capability names, indexed by number (linux/capability.h).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The highest capability number this build knows.
pub const LAST_CAP: u8 = (NAMES.len() - 1) as u8;

/// A set of capabilities, bit N for capability N.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapSet(pub u64);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CapError {
    #[error("unknown capability {0:?} (names like CAP_SYS_ADMIN or sys_admin, or ALL)")]
    Unknown(String),
    #[error("capability set {0:#x} has bits beyond CAP_CHECKPOINT_RESTORE")]
    OutOfRange(u64),
}

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);
    /// Every capability this build knows.
    pub const ALL: CapSet = CapSet((1u64 << (LAST_CAP as u32 + 1)) - 1);

    pub fn contains(self, cap: u8) -> bool {
        cap <= LAST_CAP && self.0 & (1 << cap) != 0
    }

    pub fn insert(&mut self, cap: u8) {
        if cap <= LAST_CAP {
            self.0 |= 1 << cap;
        }
    }

    pub fn remove(&mut self, cap: u8) {
        if cap <= LAST_CAP {
            self.0 &= !(1 << cap);
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The numbers in the set, ascending.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..=LAST_CAP).filter(move |&c| self.contains(c))
    }

    /// Only bits of known capabilities may be set (checked on every request).
    pub fn check(self) -> Result<(), CapError> {
        if self.0 & !CapSet::ALL.0 != 0 {
            return Err(CapError::OutOfRange(self.0));
        }
        Ok(())
    }
}

impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(|c| NAMES[c as usize]).collect();
        f.write_str(&names.join(","))
    }
}

/// The number of a capability named `CAP_SYS_ADMIN`, `cap_sys_admin` or `sys_admin`.
pub fn parse_cap(name: &str) -> Result<u8, CapError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES
        .iter()
        .position(|n| *n == full)
        .map(|i| i as u8)
        .ok_or_else(|| CapError::Unknown(name.to_string()))
}

/// A capability name, or `ALL`, as a set.
pub fn parse_caps(name: &str) -> Result<CapSet, CapError> {
    if name.trim().eq_ignore_ascii_case("all") {
        return Ok(CapSet::ALL);
    }
    let mut s = CapSet::EMPTY;
    s.insert(parse_cap(name)?);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_cap("CAP_SYS_ADMIN"), Ok(21));
        assert_eq!(parse_cap("sys_admin"), Ok(21));
        assert_eq!(parse_cap("cap_chown"), Ok(0));
        assert_eq!(parse_cap("CAP_CHECKPOINT_RESTORE"), Ok(40));
        assert!(parse_cap("CAP_NOPE").is_err());
        assert!(parse_cap("").is_err());
        assert_eq!(parse_caps("all"), Ok(CapSet::ALL));
        assert_eq!(CapSet::ALL.iter().count(), 41);
    }

    #[test]
    fn sets() {
        let mut s = CapSet::EMPTY;
        assert_eq!(s.to_string(), "none");
        s.insert(21);
        s.insert(0);
        assert_eq!(s.to_string(), "CAP_CHOWN,CAP_SYS_ADMIN");
        s.remove(0);
        assert!(s.contains(21) && !s.contains(0));
        assert_eq!(s.check(), Ok(()));
        assert!(CapSet(1 << 41).check().is_err());
        assert!(CapSet::ALL.check().is_ok());
    }
}
