//! End-to-end tests of `nsjail run` and `nsjail-helper`: the real binaries, run as root and as an
//! ordinary user through the helper installed setuid into a temporary prefix.
//!
//! One test binary, so the setuid install and the test user are made once per run.
//! Build the binaries first: `cargo build --workspace --bins` (or set NSJAIL_BIN_DIR).

mod bwrap;
mod bwrap_cli;
mod bwrap_clients;
mod bwrap_flatpak;
mod caller_state;
mod caps;
mod cgroup_placement;
mod cgroup_v2;
mod daemon;
mod daemon_boundary;
mod default_view;
mod desktop;
mod dry_run;
mod env;
mod exit_codes;
mod fds;
mod fs_bad_input;
mod fs_cleanup;
mod fs_ops;
mod fs_regressions;
mod fs_safety;
mod fsutil;
mod helper_hardening;
mod helper_protocol;
mod hostile;
mod job_control;
mod landlock;
mod limits;
mod lookup;
mod maps;
mod messages;
mod namespaces;
mod network;
mod pass_fds;
mod plain;
mod policy;
mod processes;
mod profiles;
mod root_share;
mod safe_defaults;
mod seccomp;
mod seccomp_request;
mod signals;
mod status_report;
mod stdio;
mod terminal;
mod tty;
mod verbose;
mod view_boundary;
