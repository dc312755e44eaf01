//! What both sides of nsjail trust: the one description of a sandbox (the spawn request, with
//! its seccomp programs as bytes), the helper's events, the wire framing between the CLI and the
//! helper, request validation, the exit-code rules, capabilities and the admin policy. It is
//! linked into the setuid helper, so what only the CLI needs (profiles, OCI seccomp profiles,
//! the status report, option parsing) lives in the CLI or in `nsjail-seccomp`. Nothing here
//! touches the operating system beyond reading bytes.
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
