//! The built binaries (`nsjail`, `nsjail-helper`, `nsjail-helperd`, the probe) and whether the tests run as root.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where the built `nsjail`, `nsjail-helper` and `nsjail-helperd` are: `$NSJAIL_BIN_DIR`, else the directory above
/// this test executable (`target/debug`).
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os("NSJAIL_BIN_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => {
                let exe = std::env::current_exe().expect("current_exe");
                // target/debug/deps/e2e-HASH -> target/debug
                exe.parent()
                    .and_then(Path::parent)
                    .expect("test executable has no grandparent directory")
                    .to_path_buf()
            }
        };
        for name in ["nsjail", "nsjail-helper", "nsjail-helperd"] {
            let p = dir.join(name);
            if !p.is_file() {
                panic!(
                    "{} is missing: build the binaries first: cargo build --workspace --bins \
                     (or point NSJAIL_BIN_DIR at the directory that holds them)",
                    p.display()
                );
            }
        }
        dir
    })
    .clone()
}

pub fn nsjail_bin() -> PathBuf {
    bin_dir().join("nsjail")
}

pub fn helper_bin() -> PathBuf {
    bin_dir().join("nsjail-helper")
}

/// The helper daemon's binary (run by root; never setuid).
pub fn helperd_bin() -> PathBuf {
    bin_dir().join("nsjail-helperd")
}

/// The absolute path of a host tool (the sandbox sees the host filesystem in this issue), looked
/// up in the usual directories whatever PATH the caller has.
pub fn tool(name: &str) -> String {
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p.to_string_lossy().into_owned();
        }
    }
    panic!("the host tool `{name}` is missing; the e2e tests need it");
}

// ---------------------------------------------------------------------------------------------
// Root detection

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether this is a CI run: `$CI` set to anything but empty, `false` or `0`.
pub fn in_ci() -> bool {
    ci_value_is_set(std::env::var("CI").ok().as_deref())
}

/// The rule of [`in_ci`] for one value of `$CI`.
pub fn ci_value_is_set(v: Option<&str>) -> bool {
    v.is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}
