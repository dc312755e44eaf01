//! End-to-end tests of `nsjail run` and `nsjail-helper`: the real binaries, run as root and as an
//! ordinary user through the helper installed setuid into a temporary prefix.
//!
//! One test binary, so the setuid install and the test user are made once per run.
//! Build the binaries first: `cargo build --workspace --bins` (or set NSJAIL_BIN_DIR).

mod caps;
mod env;
mod exit_codes;
mod fds;
mod helper_hardening;
mod helper_protocol;
mod hostile;
mod lookup;
mod maps;
mod namespaces;
mod plain;
mod policy;
mod processes;
mod seccomp;
mod signals;
mod stdio;
mod tty;
mod verbose;
