//! End-to-end tests of `nsjail run` and `nsjail-helper`: the real binaries, run as root and as an
//! ordinary user through the helper installed setuid into a temporary prefix.
//!
//! One test binary, so the setuid install and the test user are made once per run.
//! Build the binaries first: `cargo build --workspace --bins` (or set NSJAIL_BIN_DIR).

mod default_view;
mod env;
mod exit_codes;
mod fds;
mod fs_bad_input;
mod fs_cleanup;
mod fs_known_bugs;
mod fs_ops;
mod fs_safety;
mod fsutil;
mod helper_protocol;
mod hostile;
mod lookup;
mod maps;
mod namespaces;
mod plain;
mod processes;
mod signals;
mod stdio;
mod verbose;
