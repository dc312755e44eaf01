//! Temporary directories that vanish when the test process ends.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tempfile::TempDir;

use crate::{bin_dir, is_root};

fn cleanup_list() -> &'static Mutex<Vec<PathBuf>> {
    static LIST: OnceLock<Mutex<Vec<PathBuf>>> = OnceLock::new();
    LIST.get_or_init(|| {
        // SAFETY: registering a plain `extern "C" fn` with atexit; it runs once at exit.
        unsafe {
            libc::atexit(remove_process_dirs);
        }
        Mutex::new(Vec::new())
    })
}

extern "C" fn remove_process_dirs() {
    if let Ok(list) = cleanup_list().lock() {
        for d in list.iter() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// Keep a directory for the whole test process and remove it at exit (statics are never dropped).
pub(crate) fn keep_until_exit(dir: TempDir) -> PathBuf {
    let path = dir.keep();
    cleanup_list().lock().unwrap().push(path.clone());
    path
}

/// Where scratch directories are made: not under `/tmp` or another shared temporary directory,
/// which the default view never binds as the working directory (and many tests run from a
/// scratch directory and rely on it being bound). As root: `/var/lib/nsjail-e2e`, made root-owned
/// 0755 so every user can traverse it; otherwise a directory next to the built binaries.
pub fn scratch_base() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = if is_root() {
            PathBuf::from("/var/lib/nsjail-e2e")
        } else {
            bin_dir().join("e2e-scratch")
        };
        fs::create_dir_all(&base)
            .unwrap_or_else(|e| panic!("create the scratch base {}: {e}", base.display()));
        if is_root() {
            chown(&base, Some(0), Some(0)).expect("chown the scratch base");
            fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        }
        base
    })
    .clone()
}

/// A fresh directory in [`scratch_base`] that every user can traverse and read (0755), removed
/// when dropped.
pub fn scratch_dir() -> TempDir {
    let base = scratch_base();
    let d = tempfile::Builder::new()
        .prefix("nsjail-e2e-")
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("create a scratch dir in {}: {e}", base.display()));
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A scratch dir owned by `uid:gid` (so inside that caller's sandbox it is root's).
pub fn scratch_dir_for(uid: u32, gid: u32) -> TempDir {
    let d = scratch_dir();
    if is_root() {
        chown(d.path(), Some(uid), Some(gid)).expect("chown scratch dir");
    }
    d
}

/// A string unique in this machine for this run, for names, keys and argv markers.
pub fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}{}{}", std::process::id(), n, nanos % 1000)
}
