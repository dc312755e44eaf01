//! Installed system-wide (the VM run), and the helper daemon.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use crate::{
    Caller, Install, Output, Running, TIMEOUT, WAY_IN_VAR, WayIn, as_thread_ids, helperd_bin,
    is_root, keep_until_exit, poll_until, processes, scratch_dir, setuid_install, shell_words,
};

/// How the helper is installed system-wide for this run, from `$NSJAIL_E2E_SYSTEM`: the VM test
/// installs it with `cargo xtask install --setuid` or `--systemd` and runs this suite against
/// that install. Unset on a development machine or in CI: every install is the tests' own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemInstall {
    /// `P/libexec/nsjail/nsjail-helper` is setuid root: the setuid-user caller uses `P/bin/nsjail`.
    Setuid,
    /// The helper runs as the systemd service behind `/run/nsjail/helper.sock`: the daemon
    /// callers use it, through the CLI's default socket.
    Systemd,
}

pub fn system_install() -> Option<SystemInstall> {
    match std::env::var("NSJAIL_E2E_SYSTEM").ok()?.as_str() {
        "setuid" => Some(SystemInstall::Setuid),
        "systemd" => Some(SystemInstall::Systemd),
        "" => None,
        other => panic!("NSJAIL_E2E_SYSTEM={other:?}: expected setuid or systemd"),
    }
}

/// The prefix of the system-wide install (`$NSJAIL_E2E_PREFIX`, default `/usr/local`).
pub fn system_prefix() -> PathBuf {
    std::env::var_os("NSJAIL_E2E_PREFIX")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/usr/local"), PathBuf::from)
}

pub(crate) fn installed_system_prefix(setuid: bool) -> Install {
    use std::os::unix::fs::MetadataExt;
    let prefix = system_prefix();
    let inst = Install {
        nsjail: prefix.join("bin/nsjail"),
        helper: prefix.join("libexec/nsjail/nsjail-helper"),
        prefix,
    };
    let m = fs::metadata(&inst.helper)
        .unwrap_or_else(|e| panic!("the installed helper {}: {e}", inst.helper.display()));
    assert!(
        inst.nsjail.is_file(),
        "{} is missing",
        inst.nsjail.display()
    );
    if setuid {
        assert!(
            m.uid() == 0 && m.mode() & 0o4000 != 0,
            "{} is not setuid root",
            inst.helper.display()
        );
    }
    inst
}

/// The daemon the daemon callers use: the CLI, the daemon's binary (`nsjail-helperd`), and its
/// socket.
pub struct CallersDaemon {
    pub nsjail: PathBuf,
    pub helper: PathBuf,
    /// `None`: the CLI's default socket (the systemd install).
    pub socket: Option<PathBuf>,
}

/// `NSJAIL_SOCKET` for the daemon callers (`None`: leave the CLI's default).
pub fn daemon_socket_env() -> Option<PathBuf> {
    daemon_for_callers().socket.clone()
}

/// The daemon callers' daemon: the system's in a systemd VM run, else one daemon per test
/// process, started on a temporary socket and ended (drained) when the test process exits.
pub fn daemon_for_callers() -> &'static CallersDaemon {
    static D: OnceLock<CallersDaemon> = OnceLock::new();
    D.get_or_init(|| {
        assert!(is_root(), "the daemon callers need root");
        if system_install() == Some(SystemInstall::Systemd) {
            let inst = installed_system_prefix(false);
            return CallersDaemon {
                nsjail: inst.nsjail,
                helper: inst.prefix.join("libexec/nsjail/nsjail-helperd"),
                socket: None,
            };
        }
        // The ordinary user's CLI comes from the setuid install (a directory they can reach);
        // it talks to the daemon because NSJAIL_SOCKET says so.
        let nsjail = setuid_install().nsjail.clone();
        let dir = keep_until_exit(scratch_dir());
        let socket = dir.join("helper.sock");
        let (tx, rx) = std::sync::mpsc::channel();
        let sock = socket.clone();
        // The daemon dies with the thread that started it (PR_SET_PDEATHSIG), so it is started
        // from a thread that never ends: it then lives exactly as long as the test process, and
        // its SIGTERM on our exit drains it.
        thread::spawn(move || {
            let d = Daemon::start_at(&[], &sock, &[], true);
            tx.send(d.pid()).unwrap();
            let _keep = d;
            loop {
                thread::park();
            }
        });
        rx.recv_timeout(TIMEOUT)
            .expect("the shared daemon did not start");
        CallersDaemon {
            nsjail,
            helper: helperd_bin(),
            socket: Some(socket),
        }
    })
}

/// A helper daemon started by a test: `nsjail-helperd --socket DIR/helper.sock ARGS`,
/// as root. Dropping it sends SIGTERM and waits (bounded) for it to end.
pub struct Daemon {
    pub run: Option<Running>,
    pub socket: PathBuf,
    /// Holds the socket's directory for the daemon's life.
    pub(crate) _dir: Option<TempDir>,
}

impl Daemon {
    /// A daemon on a fresh socket with extra `args` (e.g. `--max-per-user 2`).
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_wrapped(&[], args)
    }

    /// A daemon started by the command `wrapper` (e.g. `ip netns exec NAME`) with the helper's
    /// words appended.
    pub fn start_wrapped(wrapper: &[String], args: &[&str]) -> Daemon {
        let dir = scratch_dir();
        let socket = dir.path().join("helper.sock");
        let mut d = Daemon::start_at(wrapper, &socket, args, false);
        d._dir = Some(dir);
        d
    }

    fn start_at(wrapper: &[String], socket: &Path, args: &[&str], die_with_thread: bool) -> Daemon {
        assert!(is_root(), "starting a daemon needs root");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(helperd_bin());
                c
            }
            None => Command::new(helperd_bin()),
        };
        cmd.arg("--socket")
            .arg(socket)
            .args(args)
            .env_clear()
            .current_dir("/");
        if die_with_thread {
            // SAFETY: prctl is async-signal-safe and touches no memory of ours.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let what = format!("nsjail-helperd --socket {} {args:?}", socket.display());
        let run = Running::spawn_with_timeout(&mut cmd, None, &what, Duration::from_secs(86_400));
        let d = Daemon {
            run: Some(run),
            socket: socket.to_path_buf(),
            _dir: None,
        };
        d.wait_listening();
        d
    }

    /// Wait (bounded) until the daemon accepts connections.
    pub fn wait_listening(&self) {
        let ok = poll_until(TIMEOUT, || {
            std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
        });
        assert!(
            ok,
            "the daemon never listened on {}: {}",
            self.socket.display(),
            self.run
                .as_ref()
                .map(|r| r.stderr.text())
                .unwrap_or_default()
        );
    }

    pub fn pid(&self) -> i32 {
        self.run.as_ref().map_or(0, Running::pid)
    }

    /// What the daemon said on stderr so far.
    pub fn stderr(&self) -> String {
        self.run
            .as_ref()
            .map(|r| r.stderr.text())
            .unwrap_or_default()
    }

    /// Send SIGTERM and wait (bounded) for the daemon to exit; returns its output.
    #[track_caller]
    pub fn stop(mut self) -> Output {
        let run = self.run.take().expect("daemon already stopped");
        run.signal(nix::sys::signal::Signal::SIGTERM);
        run.wait()
    }

    /// Pids of the processes whose parent is the daemon.
    pub fn children(&self) -> Vec<i32> {
        let me = self.pid();
        processes()
            .into_iter()
            .filter(|(_, (ppid, _))| *ppid == me)
            .map(|(pid, _)| pid)
            .collect()
    }

    /// An `nsjail run` command as `c` that goes to this daemon.
    pub fn run_cmd(&self, c: &Caller, args: &[&str]) -> Command {
        let mut cmd = c.run_cmd(args);
        through_daemon_at(&mut cmd, &self.socket);
        cmd
    }

    /// Run `nsjail run ARGS` as `c` through this daemon and wait (bounded).
    pub fn run(&self, c: &Caller, args: &[&str]) -> Output {
        let mut cmd = self.run_cmd(c, args);
        let what = format!(
            "[{} via {}] nsjail run {}",
            c.name(),
            self.socket.display(),
            shell_words(args)
        );
        Running::spawn(&mut cmd, None, &what).wait()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut run) = self.run.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(run.pid()),
                nix::sys::signal::Signal::SIGTERM,
            );
            if run.wait_timeout(TIMEOUT).is_none() {
                let _ = run.child.kill();
                let _ = run.child.wait();
            }
        }
    }
}

/// Make the CLI run `cmd` starts go through the daemon at `socket`, and state that way in.
pub fn through_daemon_at<'a>(cmd: &'a mut Command, socket: &Path) -> &'a mut Command {
    cmd.env("NSJAIL_SOCKET", socket)
        .env(WAY_IN_VAR, WayIn::Daemon.name())
}

/// Connect to the Unix socket at `path` with this thread's effective ids switched to
/// `uid:gid` (so `SO_PEERCRED` says `uid:gid`), and back.
pub fn connect_as(path: &Path, uid: u32, gid: u32) -> std::os::unix::net::UnixStream {
    assert!(is_root(), "connect_as needs root");
    let s = as_thread_ids(uid, gid, || std::os::unix::net::UnixStream::connect(path));
    let s = s.unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// The host's kernel switches some tests turn for everyone (`kernel.unprivileged_userns_clone`):
/// a test that changes one holds this for writing while it does, a test whose comparison needs
/// the host as it is (Debian's bwrap starting sandboxes) holds it for reading. Tests run in
/// parallel threads of one process.
pub fn host_knobs() -> &'static std::sync::RwLock<()> {
    static KNOBS: std::sync::RwLock<()> = std::sync::RwLock::new(());
    &KNOBS
}

/// Sets a sysctl for the life of the value, then puts the old value back (also when the test
/// fails); meanwhile no test that needs the host as it is runs ([`host_knobs`]).
pub struct Sysctl {
    path: &'static str,
    old: String,
    _alone: std::sync::RwLockWriteGuard<'static, ()>,
}

impl Sysctl {
    pub fn set(path: &'static str, value: &str) -> Sysctl {
        let alone = host_knobs().write().unwrap_or_else(|e| e.into_inner());
        let old = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        fs::write(path, value).unwrap_or_else(|e| panic!("write {value} to {path}: {e}"));
        Sysctl {
            path,
            old,
            _alone: alone,
        }
    }

    /// Sets it again, to `value`; the old value still comes back at the end.
    pub fn change(&self, value: &str) {
        fs::write(self.path, value)
            .unwrap_or_else(|e| panic!("write {value} to {}: {e}", self.path));
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = fs::write(self.path, self.old.trim());
    }
}
