//! The helper's code shared by its two binaries: `nsjail-helper`, the setuid file started by the
//! `nsjail` command to serve one connection (`main.rs`), and `nsjail-helperd`, the daemon run by
//! root or systemd that serves each connection on its socket the same way (`daemon/`). Both call
//! [`host::serve::serve_connection`]: there is one spawn code path. The daemon's listener, peer
//! check and connection cap are in the daemon's binary only; the setuid file does not link them.
//!
//! - `host/`: runs in the helper's own process, in the host's namespaces (root when privileged);
//! - `sandbox/`: runs in the sandbox's processes, with the caller's ids, inside the namespaces;
//! - `sys/`: every `unsafe` block, each with a `// SAFETY:` comment;
//! - `error`, `setup_report`: used by both sides.
#![deny(unsafe_code)]
// The helper never panics on input: no unwrap/expect/panic outside tests, enforced by clippy.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod error;
pub mod host;
pub mod sandbox;
pub mod setup_report;
pub mod sys;
