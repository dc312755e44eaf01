//! Shared vocabulary of nsjail: the one description of a sandbox (the spawn request), the
//! helper's events, the wire framing between the CLI and the helper, request validation and the
//! exit-code rules, seccomp profiles, capabilities and the admin policy. Nothing here touches the
//! operating system beyond reading bytes.
#![forbid(unsafe_code)]

pub mod caps;
pub mod exit;
pub mod message;
pub mod policy;
pub mod request;
pub mod seccomp;
pub mod validate;
pub mod wire;

pub use caps::CapSet;
pub use message::{ClientMessage, ErrorKind, ExitInfo, HelperEvent, Termination};
pub use request::{IdMapping, IdRange, Namespaces, SpawnRequest};
pub use seccomp::SeccompMode;
