//! Shared vocabulary of nsjail: the one description of a sandbox (the spawn request), the
//! helper's events, the wire framing between the CLI and the helper, request validation and the
//! exit-code rules. Nothing here touches the operating system beyond reading bytes.
#![forbid(unsafe_code)]

pub mod exit;
pub mod message;
pub mod mounts;
pub mod profile;
pub mod request;
pub mod validate;
pub mod wire;

pub use message::{ClientMessage, ErrorKind, ExitInfo, HelperEvent, Termination};
pub use mounts::{BindKind, MountOp, OverlayKind};
pub use request::{IdMapping, Namespaces, Pasta, PortForward, SpawnRequest};
