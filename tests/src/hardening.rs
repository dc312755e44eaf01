//! Support for the hardening tests: the probe binary, running the CLI in a scratch
//! directory, and running it under a chosen admin policy.
//!
//! The helper reads its policy only from the path fixed at build time (`/etc/nsjail/policy.toml`).
//! So that tests can give each run its own policy without touching the host's, and without
//! disturbing tests that run in parallel, a policy run happens in a private mount namespace of
//! the test process's child: a scratch directory is bind-mounted on `/etc/nsjail` (and another
//! on `/run/nsjail`, where the helper counts live sandboxes) before the child drops to the test
//! user and executes the CLI, which then starts the setuid helper in that namespace.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::{
    Caller, CallerKind, Output, Running, USER_PATH, bin_dir, install_file, scratch_dir, shell_words,
};

/// The probe built with the tests (`tests/src/bin/nsjail-probe.rs`).
pub fn probe_bin() -> PathBuf {
    let p = bin_dir().join("nsjail-probe");
    assert!(
        p.is_file(),
        "{} is missing: build it with cargo build --workspace --bins",
        p.display()
    );
    p
}

/// A scratch directory owned by `c`, holding a copy of the probe; runs from there see it as
/// `./nsjail-probe` (the current directory is visible inside a sandbox at its own path).
pub fn probe_dir(c: &Caller) -> TempDir {
    let d = c.scratch();
    install_file(&probe_bin(), &d.path().join("nsjail-probe"), 0o755);
    d
}

/// The one line a probe printed for `check`: `"ok"`, an errno name, or what went wrong.
pub fn probe_result(out: &Output, check: &str) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{check}: ")))
        .map(str::to_string)
        .unwrap_or_else(|| format!("<no result; {}>", out.describe()))
}

impl Caller {
    /// `nsjail run ARGS...` as this caller, with `dir` as the current directory.
    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = self.run_cmd(args);
        c.current_dir(dir);
        let what = format!(
            "[{}] (in {}) nsjail run {}",
            self.name(),
            dir.display(),
            shell_words(args)
        );
        Running::spawn(&mut c, None, &what).wait()
    }

    /// Run the probe in a sandbox: `nsjail run OPTS -- ./nsjail-probe CHECK [ARG]` from `dir`
    /// (made by [`probe_dir`]).
    pub fn probe(&self, dir: &Path, opts: &[&str], check: &str, arg: Option<&str>) -> Output {
        let mut args: Vec<&str> = opts.to_vec();
        args.extend(["--", "./nsjail-probe", check]);
        args.extend(arg);
        self.run_in(dir, &args)
    }

    /// Run the probe as [`Caller::probe`] does and check that `check` answered `want`; a
    /// failure names this caller and shows the run.
    #[track_caller]
    pub fn expect_probe(
        &self,
        dir: &Path,
        opts: &[&str],
        check: &str,
        arg: Option<&str>,
        want: &str,
    ) -> Output {
        let out = self.probe(dir, opts, check, arg);
        assert_eq!(
            probe_result(&out, check),
            want,
            "[{}] {}",
            self.name(),
            out.describe()
        );
        out
    }
}

/// Make sure `dir` exists on the host (root, 0755) so it can be a mount point.
fn ensure_mount_point(dir: &str) {
    if !Path::new(dir).is_dir() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {dir}: {e}"));
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A private `/etc/nsjail` (and `/run/nsjail`) for one or more runs.
pub struct PolicyEnv {
    /// The daemon the daemon callers reach under this policy, started on first use (and, being
    /// the first field, stopped before the directories go).
    daemon: std::sync::OnceLock<crate::Daemon>,
    pub etc: TempDir,
    pub run: TempDir,
}

impl PolicyEnv {
    /// An empty `/etc/nsjail` (no policy: the defaults) and an empty `/run/nsjail`.
    pub fn new() -> PolicyEnv {
        assert!(crate::is_root(), "policy runs need root");
        ensure_mount_point("/etc/nsjail");
        ensure_mount_point("/run/nsjail");
        PolicyEnv {
            daemon: std::sync::OnceLock::new(),
            etc: scratch_dir(),
            run: scratch_dir(),
        }
    }

    /// With `text` as `policy.toml`, root:root 0644.
    pub fn with_policy(text: &str) -> PolicyEnv {
        let env = PolicyEnv::new();
        env.write_policy(text, 0o644, 0, 0);
        env
    }

    pub fn policy_path(&self) -> PathBuf {
        self.etc.path().join("policy.toml")
    }

    /// (Re)write `policy.toml` with this mode and owner.
    pub fn write_policy(&self, text: &str, mode: u32, uid: u32, gid: u32) {
        let p = self.policy_path();
        let _ = fs::remove_file(&p);
        fs::write(&p, text).unwrap();
        chown(&p, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A command that runs `program` as `c` in a new mount namespace where `/etc/nsjail` and
    /// `/run/nsjail` are this environment's directories.
    pub fn command(&self, c: &Caller, program: impl AsRef<std::ffi::OsStr>) -> Command {
        assert!(
            matches!(c.kind, CallerKind::SetuidUser | CallerKind::Root),
            "policy runs are for root and the setuid user"
        );
        let mut cmd = Command::new(program);
        cmd.env_clear().current_dir("/");
        let (uid, gid) = (c.uid, c.gid);
        if c.kind == CallerKind::Root {
            cmd.env("PATH", crate::ROOT_PATH).env("HOME", "/root");
        } else {
            cmd.env("PATH", USER_PATH).env("HOME", "/");
        }
        // The helper this environment's policy is for: never a daemon, and the CLI says so.
        cmd.env("NSJAIL_SOCKET", "none")
            .env(crate::WAY_IN_VAR, c.way_in().name());
        let cs = |p: &Path| CString::new(p.to_str().unwrap()).unwrap();
        let etc_src = cs(self.etc.path());
        let run_src = cs(self.run.path());
        let etc_dst = CString::new("/etc/nsjail").unwrap();
        let run_dst = CString::new("/run/nsjail").unwrap();
        let root = CString::new("/").unwrap();
        // SAFETY: only raw system calls (unshare, mount, setgroups, setresgid, setresuid)
        // between fork and exec, on C strings prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let check = |r: libc::c_int| {
                    if r == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                for (src, dst) in [(&etc_src, &etc_dst), (&run_src, &run_dst)] {
                    check(libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ))?;
                }
                if uid != 0 {
                    check(libc::setgroups(0, std::ptr::null()))?;
                    check(libc::setresgid(gid, gid, gid))?;
                    check(libc::setresuid(uid, uid, uid))?;
                }
                Ok(())
            });
        }
        cmd
    }

    /// `nsjail run ARGS...` as `c` under this environment, from `cwd` (default `/`).
    pub fn run(&self, c: &Caller, cwd: Option<&Path>, args: &[&str]) -> Output {
        let mut cmd = self.command(c, &c.nsjail);
        cmd.arg("run").args(args);
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let what = format!(
            "[{} under a test policy] nsjail run {}",
            c.name(),
            shell_words(args)
        );
        Running::spawn(&mut cmd, None, &what).wait()
    }

    /// Start (without waiting) `nsjail run ARGS...` as `c` under this environment.
    pub fn spawn(&self, c: &Caller, args: &[&str]) -> Running {
        let mut cmd = self.command(c, &c.nsjail);
        cmd.arg("run").args(args);
        let what = format!(
            "[{} under a test policy] nsjail run {}",
            c.name(),
            shell_words(args)
        );
        Running::spawn(&mut cmd, None, &what)
    }
}

impl PolicyEnv {
    /// A helper daemon (`nsjail-helperd`, as root) that reads this environment's
    /// policy: started on first use in this environment's mount namespace, on a socket of its
    /// own, and stopped when the environment is dropped.
    pub fn daemon(&self) -> &crate::Daemon {
        self.daemon.get_or_init(|| {
            let dir = scratch_dir();
            let socket = dir.path().join("helper.sock");
            let mut cmd = self.command(&Caller::root(), crate::helperd_bin());
            cmd.arg("--socket").arg(&socket);
            let what = format!("nsjail-helperd under a test policy ({})", socket.display());
            let run = Running::spawn_with_timeout(
                &mut cmd,
                None,
                &what,
                std::time::Duration::from_secs(86_400),
            );
            let d = crate::Daemon {
                run: Some(run),
                socket,
                _dir: Some(dir),
            };
            d.wait_listening();
            d
        })
    }

    /// `nsjail run ARGS...` as `c` under this policy, whichever way `c` goes in: root and the
    /// setuid user start the helper in this environment's mount namespace, the daemon callers
    /// reach [`PolicyEnv::daemon`].
    pub fn run_as(&self, c: &Caller, cwd: Option<&Path>, args: &[&str]) -> Output {
        if !c.via_daemon() {
            return self.run(c, cwd, args);
        }
        let d = self.daemon();
        let mut cmd = d.run_cmd(c, args);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let what = format!(
            "[{} via a daemon under a test policy] nsjail run {}",
            c.name(),
            shell_words(args)
        );
        Running::spawn(&mut cmd, None, &what).wait()
    }

    /// `nsjail run OPTS -- sh -c SCRIPT` as `c` under this policy.
    pub fn sh_as(&self, c: &Caller, opts: &[&str], script: &str) -> Output {
        let mut args: Vec<&str> = opts.to_vec();
        args.extend(["--", "/bin/sh", "-c", script]);
        self.run_as(c, None, &args)
    }

    /// [`Caller::probe`] under this policy.
    pub fn probe_as(
        &self,
        c: &Caller,
        dir: &Path,
        opts: &[&str],
        check: &str,
        arg: Option<&str>,
    ) -> Output {
        let mut args: Vec<&str> = opts.to_vec();
        args.extend(["--", "./nsjail-probe", check]);
        args.extend(arg);
        self.run_as(c, Some(dir), &args)
    }
}

/// A policy that grants `--cap-add` and `--allow-userns`, which the setuid helper and the
/// daemon refuse their users without one.
pub const GRANT_CAPS_AND_USERNS: &str = "[allow]\ncap_add = true\nuserns = true\n";

impl Default for PolicyEnv {
    fn default() -> Self {
        PolicyEnv::new()
    }
}
