//! Skipping: one rule for every test. A test skips only for a reason on the allow-list
//! (`tests/allowed-skips.txt`), and never where skips are not allowed (CI, the VM run).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::{in_ci, is_root, system_install};

/// The skips CI allows (one reason a line, then ` # ` and why), kept in one file.
pub const ALLOWED_SKIPS: &str = include_str!("../allowed-skips.txt");

/// The reasons of [`ALLOWED_SKIPS`].
pub fn allowed_skip_reasons() -> Vec<&'static str> {
    ALLOWED_SKIPS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(" # ").map_or(l, |(reason, _)| reason).trim())
        .collect()
}

/// The one way a test, or a part of one, does not run: it says `TEST: skipped: REASON` (on
/// stdout and stderr, and as a line of `$NSJAIL_E2E_SKIP_LOG` when set). Under CI ([`in_ci`])
/// the skip fails the test unless REASON is on the allow-list ([`ALLOWED_SKIPS`]); in the guest
/// of `cargo xtask vmtest` ([`system_install`]) every skip fails. Returns when the test may
/// skip; the caller then returns (or leaves out the part).
#[track_caller]
pub fn skip(test: &str, reason: &str) {
    let line = format!("{test}: skipped: {reason}");
    eprintln!("{line}");
    println!("{line}");
    if let Some(log) = std::env::var_os("NSJAIL_E2E_SKIP_LOG").filter(|p| !p.is_empty()) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("open the skip log {}: {e}", Path::new(&log).display()));
        f.write_all(format!("{line}\n").as_bytes())
            .expect("write the skip log");
    }
    if system_install().is_some() {
        panic!("{line}: the guest of cargo xtask vmtest runs every test, and skips none");
    }
    if in_ci() && !allowed_skip_reasons().contains(&reason) {
        panic!(
            "{line}: under CI a test never skips unless its reason is on the allow-list \
             (tests/allowed-skips.txt)"
        );
    }
}

/// For a test that needs root: `true` when it may go on. When not root it [`skip`]s with
/// `needs root` (never allowed under CI) and returns `false`.
#[track_caller]
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(test, "needs root");
    false
}

/// For a part of a test that needs root (the setuid helper, a host mount): `true` when root;
/// else that part [`skip`]s, with the reason `needs root: PART`.
#[track_caller]
pub fn root_part(test: &str, part: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(test, &format!("needs root: {part}"));
    false
}

/// `if !root_or_skip!() { return; }` with the test's module path in the message.
#[macro_export]
macro_rules! root_or_skip {
    () => {
        if !$crate::require_root(module_path!()) {
            return;
        }
    };
}
