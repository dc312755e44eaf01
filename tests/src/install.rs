//! The ordinary test user, and the helper installed setuid (or plain) into a temporary prefix.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use crate::{
    SystemInstall, TEST_USER, helper_bin, installed_system_prefix, is_root, keep_until_exit,
    nsjail_bin, scratch_dir, system_install, tool,
};

/// The uid and gid of the ordinary test user `nsjail-e2e`, created idempotently (root only).
pub fn test_user() -> (u32, u32) {
    static USER: OnceLock<(u32, u32)> = OnceLock::new();
    *USER.get_or_init(|| {
        assert!(is_root(), "creating the test user needs root");
        if let Some(ids) = lookup_user(TEST_USER) {
            return ids;
        }
        let out = Command::new(tool("useradd"))
            .args(["-M", "-s", "/usr/sbin/nologin", TEST_USER])
            .output()
            .expect("run useradd");
        // Exit code 9: the user already exists (another test process made it meanwhile).
        if !out.status.success() && out.status.code() != Some(9) {
            // A concurrent useradd may also fail on the lock of /etc/passwd; look again.
            thread::sleep(Duration::from_millis(500));
            if let Some(ids) = lookup_user(TEST_USER) {
                return ids;
            }
            panic!(
                "useradd {TEST_USER} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        lookup_user(TEST_USER).expect("the test user exists after useradd")
    })
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new(tool("id")).args([flag, name]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// A prefix `P` with `P/bin/nsjail` (0755) and `P/libexec/nsjail/nsjail-helper` (root:root 4755),
/// made once per test process and removed at exit.
pub struct Install {
    pub prefix: PathBuf,
    pub nsjail: PathBuf,
    pub helper: PathBuf,
}

pub fn setuid_install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(|| {
        assert!(is_root(), "the setuid install needs root");
        if system_install() == Some(SystemInstall::Setuid) {
            return installed_system_prefix(true);
        }
        let prefix = keep_until_exit(scratch_dir());
        let bin = prefix.join("bin");
        let libexec = prefix.join("libexec");
        let libexec_nsjail = libexec.join("nsjail");
        for d in [&bin, &libexec, &libexec_nsjail] {
            fs::create_dir_all(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let nsjail = bin.join("nsjail");
        let helper = libexec_nsjail.join("nsjail-helper");
        install_file(&nsjail_bin(), &nsjail, 0o755);
        install_file(&helper_bin(), &helper, 0o4755);
        Install {
            prefix,
            nsjail,
            helper,
        }
    })
}

/// Both binaries side by side in a user-readable directory, without any setuid bit: the path of
/// a plain `cargo build` used by an ordinary user.
pub fn plain_install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let prefix = keep_until_exit(scratch_dir());
        let nsjail = prefix.join("nsjail");
        let helper = prefix.join("nsjail-helper");
        install_file(&nsjail_bin(), &nsjail, 0o755);
        install_file(&helper_bin(), &helper, 0o755);
        Install {
            prefix,
            nsjail,
            helper,
        }
    })
}

/// Copy an executable to `to` with `mode` (root-owned when we are root).
///
/// The copy is made by a `cp` child, not in this process: a file this process held open for
/// writing could be inherited by a child that another test thread forks at that moment, and
/// executing the copy would then fail with ETXTBSY until that child execs.
pub fn install_file(from: &Path, to: &Path, mode: u32) {
    let st = Command::new(tool("cp"))
        .arg("--")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(st.success(), "cp {} {}: {st}", from.display(), to.display());
    if is_root() {
        chown(to, Some(0), Some(0)).unwrap();
    }
    // chmod after chown: chown clears the setuid bit.
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).unwrap();
}
