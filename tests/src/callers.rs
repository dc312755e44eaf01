//! Callers: who runs the CLI, and how (the way in each run states).

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

use crate::{
    Output, ROOT_PATH, Running, USER_PATH, daemon_for_callers, daemon_socket_env, helper_bin,
    is_root, nsjail_bin, plain_install, require_root, scratch_dir_for, setuid_install, test_user,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerKind {
    /// Root running `<bin_dir>/nsjail` with the helper next to it.
    Root,
    /// The ordinary test user running the installed `P/bin/nsjail`, which finds the setuid
    /// helper in `P/libexec/nsjail/` by itself.
    SetuidUser,
    /// The ordinary test user running a copy of both binaries without the setuid bit.
    PlainUser,
    /// Whoever runs the tests, when that is not root (local development only).
    Myself,
    /// The ordinary test user running `P/bin/nsjail`, which reaches the helper daemon
    /// ([`daemon_socket`]) instead of starting a helper.
    DaemonUser,
    /// Root running `<bin_dir>/nsjail` through the helper daemon.
    DaemonRoot,
}

/// The way a request reaches a helper, as the CLI names it in `nsjail: way in: WAY (…)` when
/// `$NSJAIL_WAY_IN` is set, and refuses any other when the variable names one (README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WayIn {
    /// The helper installed setuid root, started by the CLI of an ordinary user.
    Setuid,
    /// The helper daemon, through its socket.
    Daemon,
    /// A helper without privilege: an ordinary user's own build.
    Plain,
    /// A helper started by root's CLI.
    Root,
}

impl WayIn {
    /// The name the CLI uses (`$NSJAIL_WAY_IN`, and the way-in line).
    pub fn name(self) -> &'static str {
        match self {
            WayIn::Setuid => "setuid",
            WayIn::Daemon => "daemon",
            WayIn::Plain => "plain",
            WayIn::Root => "root",
        }
    }

    pub fn from_name(name: &str) -> Option<WayIn> {
        [WayIn::Setuid, WayIn::Daemon, WayIn::Plain, WayIn::Root]
            .into_iter()
            .find(|w| w.name() == name)
    }

    /// The start of the line the CLI prints for this way in.
    pub fn line(self) -> String {
        format!("{WAY_IN_LINE}{} (", self.name())
    }
}

/// How every line the CLI prints about its way in starts.
pub const WAY_IN_LINE: &str = "nsjail: way in: ";

/// The CLI's variable that states the way in (see [`WayIn`]).
pub const WAY_IN_VAR: &str = "NSJAIL_WAY_IN";

#[derive(Clone, Debug)]
pub struct Caller {
    pub kind: CallerKind,
    pub nsjail: PathBuf,
    pub helper: PathBuf,
    /// The caller's ids outside the sandbox.
    pub uid: u32,
    pub gid: u32,
}

impl Caller {
    pub fn root() -> Caller {
        Caller {
            kind: CallerKind::Root,
            nsjail: nsjail_bin(),
            helper: helper_bin(),
            uid: 0,
            gid: 0,
        }
    }

    pub fn setuid_user() -> Caller {
        let (uid, gid) = test_user();
        let inst = setuid_install();
        Caller {
            kind: CallerKind::SetuidUser,
            nsjail: inst.nsjail.clone(),
            helper: inst.helper.clone(),
            uid,
            gid,
        }
    }

    pub fn plain_user() -> Caller {
        let (uid, gid) = test_user();
        let inst = plain_install();
        Caller {
            kind: CallerKind::PlainUser,
            nsjail: inst.nsjail.clone(),
            helper: inst.helper.clone(),
            uid,
            gid,
        }
    }

    /// The ordinary test user through the helper daemon (started once per test process, or
    /// the system's in a VM run: see [`system_install`]).
    pub fn daemon_user() -> Caller {
        let (uid, gid) = test_user();
        let d = daemon_for_callers();
        Caller {
            kind: CallerKind::DaemonUser,
            nsjail: d.nsjail.clone(),
            helper: d.helper.clone(),
            uid,
            gid,
        }
    }

    /// Root through the helper daemon.
    pub fn daemon_root() -> Caller {
        let d = daemon_for_callers();
        Caller {
            kind: CallerKind::DaemonRoot,
            nsjail: nsjail_bin(),
            helper: d.helper.clone(),
            uid: 0,
            gid: 0,
        }
    }

    pub fn myself() -> Caller {
        Caller {
            kind: CallerKind::Myself,
            nsjail: nsjail_bin(),
            helper: helper_bin(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            CallerKind::Root => "root",
            CallerKind::SetuidUser => "user via setuid helper",
            CallerKind::PlainUser => "user via plain helper",
            CallerKind::Myself => "current user",
            CallerKind::DaemonUser => "user via daemon",
            CallerKind::DaemonRoot => "root via daemon",
        }
    }

    /// The CLI reaches the helper daemon (no helper process of its own).
    pub fn via_daemon(&self) -> bool {
        matches!(self.kind, CallerKind::DaemonUser | CallerKind::DaemonRoot)
    }

    /// The way in this caller's runs must take: every run through [`Caller::command_for`]
    /// states it in `$NSJAIL_WAY_IN`, so the CLI refuses any other, and [`Running::wait`]
    /// checks the CLI's line naming it.
    pub fn way_in(&self) -> WayIn {
        match self.kind {
            CallerKind::Root => WayIn::Root,
            CallerKind::SetuidUser => WayIn::Setuid,
            CallerKind::PlainUser => WayIn::Plain,
            CallerKind::Myself if is_root() => WayIn::Root,
            CallerKind::Myself => WayIn::Plain,
            CallerKind::DaemonUser | CallerKind::DaemonRoot => WayIn::Daemon,
        }
    }

    pub fn is_user(&self) -> bool {
        matches!(
            self.kind,
            CallerKind::SetuidUser | CallerKind::PlainUser | CallerKind::DaemonUser
        )
    }

    /// A scratch dir this caller owns.
    pub fn scratch(&self) -> TempDir {
        scratch_dir_for(self.uid, self.gid)
    }

    /// A command that runs `program` as this caller: the ordinary user's ids, a cleared
    /// environment with only PATH and HOME, cwd `/`.
    pub fn command_for(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear().current_dir("/");
        match self.kind {
            CallerKind::Root => {
                c.env("PATH", ROOT_PATH).env("HOME", "/root");
            }
            CallerKind::SetuidUser | CallerKind::PlainUser | CallerKind::DaemonUser => {
                c.env("PATH", USER_PATH).env("HOME", "/");
                // std drops root's supplementary groups (setgroups(0)) when it switches uid.
                c.uid(self.uid).gid(self.gid);
            }
            CallerKind::Myself => {
                c.env("PATH", USER_PATH).env("HOME", "/");
            }
            CallerKind::DaemonRoot => {
                c.env("PATH", ROOT_PATH).env("HOME", "/root");
            }
        }
        // Which way the CLI goes is part of the caller: through the daemon for the daemon
        // callers, never through a daemon (even one installed on this host) for the others.
        match self.kind {
            CallerKind::DaemonUser | CallerKind::DaemonRoot => {
                if let Some(sock) = daemon_socket_env() {
                    c.env("NSJAIL_SOCKET", sock);
                }
            }
            _ => {
                c.env("NSJAIL_SOCKET", "none");
            }
        }
        c.env(WAY_IN_VAR, self.way_in().name());
        c
    }

    /// `nsjail` as this caller, without arguments.
    pub fn nsjail_cmd(&self) -> Command {
        self.command_for(&self.nsjail)
    }

    /// `nsjail run ARGS...` as this caller (ARGS includes options, `--` and the command).
    pub fn run_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.nsjail_cmd();
        c.arg("run").args(args);
        c
    }

    /// Run `nsjail run ARGS...` with stdin from /dev/null and wait (bounded).
    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = self.run_cmd(args);
        let what = format!("[{}] nsjail run {}", self.name(), shell_words(args));
        Running::spawn(&mut c, None, &what).wait()
    }

    /// Like [`Caller::run`] with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c = self.run_cmd(args);
        let what = format!("[{}] nsjail run {}", self.name(), shell_words(args));
        Running::spawn(&mut c, Some(input.to_vec()), &what).wait()
    }

    /// `nsjail run -- sh -c SCRIPT`.
    pub fn sh(&self, opts: &[&str], script: &str) -> Output {
        let mut args: Vec<&str> = opts.to_vec();
        args.extend(["--", "/bin/sh", "-c", script]);
        self.run(&args)
    }
}

/// The callers most tests run as: root directly, the ordinary user through the setuid helper,
/// and the ordinary user through the helper daemon. Not root: only the current user (skipped setuid path reported; CI panics).
pub fn callers() -> Vec<Caller> {
    if is_root() {
        vec![Caller::root(), Caller::setuid_user(), Caller::daemon_user()]
    } else {
        require_root("setuid-user caller");
        vec![Caller::myself()]
    }
}

/// Run `f` once per caller of [`callers`], saying which caller a failure belongs to.
pub fn for_each_caller(f: impl Fn(&Caller)) {
    for c in callers() {
        eprintln!("--- as {}", c.name());
        f(&c);
    }
}

pub fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_./=:,".contains(ch))
            {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
