//! The command-line definition of `nsjail`, as a library so that `cargo xtask` can make the man
//! pages and shell completions from the one clap definition the binary parses with.
#![forbid(unsafe_code)]

pub mod args;
pub mod limit_args;

/// The bubblewrap release whose command line `nsjail bwrap` speaks (also the version the
/// `nsjail-bwrap` package provides `bubblewrap` at).
pub const BWRAP_VERSION: &str = "0.11.0";

/// The built-in profiles, by name (also installed as files by `cargo xtask dist`).
pub const BUILTIN_PROFILES: [(&str, &str); 6] = [
    ("default", include_str!("../profiles/default.toml")),
    ("minimal", include_str!("../profiles/minimal.toml")),
    ("devtool", include_str!("../profiles/devtool.toml")),
    ("net", include_str!("../profiles/net.toml")),
    ("gui", include_str!("../profiles/gui.toml")),
    ("judge", include_str!("../profiles/judge.toml")),
];
