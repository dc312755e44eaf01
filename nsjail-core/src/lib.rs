//! Shared vocabulary of nsjail: the one description of a sandbox (the spawn request), the
//! helper's events, the wire framing between the CLI and the helper, request validation and the
//! exit-code rules, seccomp profiles, capabilities and the admin policy. Nothing here touches the
//! operating system beyond reading bytes.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod caps;
pub mod exit;
pub mod landlock;
pub mod limits;
pub mod message;
pub mod mounts;
pub mod policy;
pub mod profile;
pub mod report;
pub mod request;
pub mod seccomp;
pub mod validate;
pub mod wire;

pub use caps::CapSet;
pub use message::{
    CgroupUsage, ClientMessage, ErrorKind, ExitInfo, HelperEvent, LimitHit, Termination,
};
pub use mounts::{BindKind, MountOp, OverlayKind};
pub use request::{
    CgroupVersion, IdMapping, IdRange, Limits, Namespaces, Pasta, PortForward, SpawnRequest,
};
pub use seccomp::SeccompMode;
