//! Support for the end-to-end tests: finding the real binaries, running them with a timeout
//! (a test never hangs forever), installing the helper setuid into a temporary prefix, and the
//! ordinary user the tests run the CLI as.
//!
//! Nothing here mocks the kernel: every test runs `nsjail` and `nsjail-helper` as built.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod hardening;

/// How long one CLI run may take before it is killed and the test fails. Generous: CI has two
/// cores and runs the tests in parallel.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The name of the ordinary user the tests create and run the CLI as.
pub const TEST_USER: &str = "nsjail-e2e";

/// The environment an ordinary user's CLI runs with (everything else is cleared).
pub const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The environment root's CLI runs with.
pub const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------------------------------------
// Binaries

/// Where the built `nsjail` and `nsjail-helper` are: `$NSJAIL_BIN_DIR`, else the directory above
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
        for name in ["nsjail", "nsjail-helper"] {
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

// ---------------------------------------------------------------------------------------------
// Skipping: one rule for every test

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

// ---------------------------------------------------------------------------------------------
// Temporary directories that vanish when the test process ends

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
fn keep_until_exit(dir: TempDir) -> PathBuf {
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

// ---------------------------------------------------------------------------------------------
// The ordinary user and the setuid install

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

// ---------------------------------------------------------------------------------------------
// Callers: who runs the CLI, and how

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

// ---------------------------------------------------------------------------------------------
// Running a process with captured output and a deadline

/// A pipe being drained by a thread into a shared buffer.
#[derive(Clone)]
pub struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    eof: Arc<AtomicBool>,
    /// Lines starting with this are left out of [`Capture::text`] (the CLI's way-in line).
    hide: Option<&'static str>,
}

impl Capture {
    pub fn start(mut r: impl Read + Send + 'static) -> Capture {
        let cap = Capture {
            buf: Arc::new(Mutex::new(Vec::new())),
            eof: Arc::new(AtomicBool::new(false)),
            hide: None,
        };
        let c = cap.clone();
        thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => c.buf.lock().unwrap().extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO: a pty master whose slaves are all closed.
                    Err(_) => break,
                }
            }
            c.eof.store(true, Ordering::SeqCst);
        });
        cap
    }

    /// What was read so far, without the lines [`Capture::hide_lines`] names.
    pub fn text(&self) -> String {
        let raw = self.raw_text();
        match self.hide {
            None => raw,
            Some(prefix) => raw
                .split_inclusive('\n')
                .filter(|l| !l.starts_with(prefix))
                .collect(),
        }
    }

    /// Everything read so far.
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// Leave lines starting with `prefix` out of [`Capture::text`] from now on.
    pub fn hide_lines(&mut self, prefix: &'static str) {
        self.hide = Some(prefix);
    }

    pub fn is_eof(&self) -> bool {
        self.eof.load(Ordering::SeqCst)
    }

    /// Wait (bounded) until the text contains `needle`; `false` on timeout or EOF without it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.text().contains(needle) {
                return true;
            }
            if self.is_eof() || Instant::now() >= deadline {
                return self.text().contains(needle);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_eof(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_eof() {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// What a finished run left.
#[derive(Debug)]
pub struct Output {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code, or `None` when the process itself died of a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn describe(&self) -> String {
        format!(
            "{}\n  status: {}\n  stdout: {:?}\n  stderr: {:?}",
            self.what, self.status, self.stdout, self.stderr
        )
    }

    /// Panic unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit code {code}:\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        self.expect_code(0)
    }

    /// Panic if anything looks like a Rust panic or backtrace.
    #[track_caller]
    pub fn expect_no_panic(&self) -> &Self {
        for s in [&self.stdout, &self.stderr] {
            for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
                assert!(
                    !s.contains(bad),
                    "output mentions {bad:?}:\n{}",
                    self.describe()
                );
            }
        }
        self
    }

    /// The stdout lines, trimmed.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(|l| l.trim().to_string()).collect()
    }

    /// Stdout with surrounding whitespace removed.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// Exactly one non-empty line on stderr and it starts with `prefix`.
    #[track_caller]
    pub fn expect_one_error_line(&self, prefix: &str) -> &Self {
        let lines = self.stderr_lines();
        assert!(
            lines.len() == 1 && lines[0].starts_with(prefix),
            "expected exactly one stderr line starting {prefix:?}:\n{}",
            self.describe()
        );
        self
    }
}

/// A spawned process whose stdout and stderr are being captured, with a deadline.
pub struct Running {
    pub what: String,
    pub child: Child,
    pub stdout: Capture,
    /// The process's stderr, without the CLI's way-in line when a way in was stated.
    pub stderr: Capture,
    pub deadline: Instant,
    /// The way in this run of the CLI stated (`$NSJAIL_WAY_IN`), checked by [`Running::wait`].
    pub way_in: Option<WayIn>,
    /// The run goes as far as choosing its way in (`nsjail run` without `--dry-run`, `--help`
    /// or `--version`), so the CLI must name it unless it refused its input (125).
    pub must_say_way_in: bool,
}

/// The way in `cmd` states in `$NSJAIL_WAY_IN`, and whether it runs `nsjail run` far enough to
/// choose one.
fn stated_way_in(cmd: &Command) -> (Option<WayIn>, bool) {
    let way = cmd
        .get_envs()
        .find(|(k, _)| *k == WAY_IN_VAR)
        .and_then(|(_, v)| v)
        .and_then(|v| WayIn::from_name(&v.to_string_lossy()));
    let is_cli = Path::new(cmd.get_program()).file_name() == Some(OsStr::new("nsjail"));
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let options = args.iter().skip(1).take_while(|a| *a != "--");
    let no_route = options.clone().any(|a| {
        a.starts_with("--dry-run") || ["--help", "-h", "--version", "-V"].contains(&a.as_str())
    });
    let runs = is_cli && args.first().is_some_and(|a| a == "run") && !no_route;
    (way, runs)
}

/// Check the CLI's way-in line in `raw_stderr` against `way` (see [`Running::wait`]).
#[track_caller]
pub fn check_way_in(raw_stderr: &str, way: WayIn, must_say: bool, out: &Output) {
    let said: Vec<&str> = raw_stderr
        .lines()
        .filter(|l| l.starts_with(WAY_IN_LINE))
        .collect();
    assert!(
        said.len() <= 1,
        "the CLI named its way in more than once: {said:?}\n{}",
        out.describe()
    );
    match said.first() {
        Some(line) => assert!(
            line.starts_with(&way.line()),
            "the run was to go in by `{}`, but the CLI says: {line}\n{}",
            way.name(),
            out.describe()
        ),
        None => assert!(
            !must_say || out.code() == Some(125),
            "the CLI never named its way in (the run was to go in by `{}`): a run that does not \
             say how it reached the helper may have taken another way\n{}",
            way.name(),
            out.describe()
        ),
    }
}

impl Running {
    /// Spawn `cmd` with stdout/stderr captured and stdin fed from `input` (or /dev/null). The
    /// process gets its own process group so a timeout can kill it with everything it started.
    pub fn spawn(cmd: &mut Command, input: Option<Vec<u8>>, what: &str) -> Running {
        Self::spawn_with_timeout(cmd, input, what, TIMEOUT)
    }

    pub fn spawn_with_timeout(
        cmd: &mut Command,
        input: Option<Vec<u8>>,
        what: &str,
        timeout: Duration,
    ) -> Running {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.process_group(0);
        // ETXTBSY: a binary the tests just copied may still be open for writing in a child that
        // another test thread forked meanwhile (until that child execs); try again shortly.
        let start = Instant::now();
        let mut child = loop {
            match cmd.spawn() {
                Ok(c) => break c,
                Err(e)
                    if e.raw_os_error() == Some(libc::ETXTBSY)
                        && start.elapsed() < Duration::from_secs(10) =>
                {
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot start {what}: {e}"),
            }
        };
        if let Some(data) = input {
            let mut stdin = child.stdin.take().unwrap();
            thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
        }
        let stdout = Capture::start(child.stdout.take().unwrap());
        let mut stderr = Capture::start(child.stderr.take().unwrap());
        let (way_in, must_say_way_in) = stated_way_in(cmd);
        if way_in.is_some() {
            stderr.hide_lines(WAY_IN_LINE);
        }
        Running {
            what: what.to_string(),
            child,
            stdout,
            stderr,
            deadline: Instant::now() + timeout,
            way_in,
            must_say_way_in,
        }
    }

    /// For a CLI started by other words (`ip netns exec … env -i … nsjail run …`): check, as
    /// for a run through [`Caller::command_for`], that it went in by `way` and said so.
    pub fn expect_way_in(mut self, way: WayIn) -> Running {
        self.way_in = Some(way);
        self.must_say_way_in = true;
        self.stderr.hide_lines(WAY_IN_LINE);
        self
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send `sig` to the process (not its group).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .unwrap_or_else(|e| panic!("kill({}, {sig}) of {}: {e}", self.pid(), self.what));
    }

    /// Wait until stdout contains `needle`; panics with everything seen so far on timeout.
    #[track_caller]
    pub fn wait_stdout(&mut self, needle: &str) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if !self.stdout.wait_for(needle, left) {
            let status = self.child.try_wait().ok().flatten();
            self.kill_group();
            panic!(
                "{}: {needle:?} never appeared on stdout (status so far: {status:?})\n  stdout: {:?}\n  stderr: {:?}",
                self.what,
                self.stdout.text(),
                self.stderr.text()
            );
        }
    }

    fn kill_group(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait (bounded) for the process to end; `None` on timeout (the process is left running).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait for the end and for both pipes to close; panics (after killing the process group)
    /// when the deadline passes.
    #[track_caller]
    pub fn wait(mut self) -> Output {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let status = match self.wait_timeout(left) {
            Some(st) => st,
            None => {
                self.kill_group();
                thread::sleep(Duration::from_millis(200));
                panic!(
                    "{}: still running after {:?}; killed\n  stdout: {:?}\n  stderr: {:?}",
                    self.what,
                    TIMEOUT,
                    self.stdout.text(),
                    self.stderr.text()
                );
            }
        };
        // Once the process has ended, its pipes close unless something it started survived.
        let grace = Duration::from_secs(20);
        let closed = self.stdout.wait_eof(grace) && self.stderr.wait_eof(grace);
        let out = Output {
            what: self.what.clone(),
            status,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        };
        assert!(
            closed,
            "the process ended but its stdout/stderr stayed open for {grace:?}: something it \
             started survived it\n{}",
            out.describe()
        );
        if let Some(way) = self.way_in {
            check_way_in(&self.stderr.raw_text(), way, self.must_say_way_in, &out);
        }
        out
    }
}

/// Describe an exit status as the shell would see it (`128+N` for a signal).
pub fn shell_code(st: &ExitStatus) -> i32 {
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Host process inspection

/// Pids of host processes whose argv is exactly `argv`.
pub fn pids_with_argv(argv: &[&str]) -> Vec<i32> {
    let mut want = Vec::new();
    for a in argv {
        want.extend_from_slice(a.as_bytes());
        want.push(0);
    }
    let mut found = Vec::new();
    for (pid, _) in processes() {
        let matches = fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want);
        if matches && proc_state(pid) != Some('Z') {
            found.push(pid);
        }
    }
    found
}

/// Every host process: pid → (ppid, comm). Processes that vanish while listed are skipped.
pub fn processes() -> BTreeMap<i32, (i32, String)> {
    let mut map = BTreeMap::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return map;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some((ppid, comm, _state, _start)) = proc_stat(pid) {
            map.insert(pid, (ppid, comm));
        }
    }
    map
}

/// (ppid, comm, state, starttime) from /proc/PID/stat.
pub fn proc_stat(pid: i32) -> Option<(i32, String, char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let rest: Vec<&str> = s[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((ppid, comm, state, start))
}

pub fn proc_state(pid: i32) -> Option<char> {
    proc_stat(pid).map(|(_, _, st, _)| st)
}

/// The process `pid` with start time `start` still exists and is not a zombie.
pub fn alive(pid: i32, start: u64) -> bool {
    matches!(proc_stat(pid), Some((_, _, st, s)) if s == start && st != 'Z' && st != 'X')
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for `child`, the leader of its own process group, at most [`TIMEOUT`]; if it has not
/// ended by then, SIGKILL the whole group and reap the child. Its status if it ended in time.
pub fn wait_or_kill_group(child: &mut Child) -> Option<ExitStatus> {
    let mut status = None;
    let ended = poll_until(TIMEOUT, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !ended {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
    }
    status
}

/// The inode link of one of this process's namespaces, e.g. `net:[4026531840]`.
pub fn host_ns(name: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap_or_else(|e| panic!("readlink /proc/self/ns/{name}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// Remove `FD_CLOEXEC` from `fd` (for fds a child must inherit).
pub fn clear_cloexec(fd: RawFd) {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    // SAFETY: fd is open for the duration of the call (the caller owns it).
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fcntl(bfd, FcntlArg::F_SETFD(FdFlag::empty())).expect("clear FD_CLOEXEC");
}

// ---------------------------------------------------------------------------------------------
// Talking to the helper directly

/// A helper started by the test as `nsjail-helper --fd N`, with the test's end of the socket.
pub struct HelperConn {
    pub run: Running,
    pub sock: std::os::unix::net::UnixStream,
}

/// How to start the helper directly.
#[derive(Clone, Debug, Default)]
pub struct HelperStart {
    /// Run it as this uid/gid (the ordinary user), else as the test process's user.
    pub as_ids: Option<(u32, u32)>,
    /// Close fds 0, 1 and 2 before the exec (only the socket stays open).
    pub close_stdio: bool,
    /// Extra environment; otherwise the environment is cleared but for PATH.
    pub env: Vec<(String, String)>,
    /// Resource limits (resource, soft and hard value) set just before the exec.
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
}

impl HelperConn {
    pub fn start(helper: &Path, how: &HelperStart) -> HelperConn {
        // The setuid helper checks that its socket's peer (SO_PEERCRED: the effective ids of
        // whoever made the pair) is its caller, as it is when the CLI makes it.
        let (ours, theirs) = match how.as_ids {
            Some((uid, gid)) => socketpair_as(uid, gid),
            None => std::os::unix::net::UnixStream::pair().expect("socketpair"),
        };
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new(helper);
        cmd.arg("--fd").arg(fd.to_string());
        cmd.env_clear().env("PATH", USER_PATH).current_dir("/");
        for (k, v) in &how.env {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = how.as_ids {
            cmd.uid(uid).gid(gid);
        }
        let close_stdio = how.close_stdio;
        let rlimits = how.rlimits.clone();
        // SAFETY: only async-signal-safe calls (fcntl, close, setrlimit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for (resource, value) in &rlimits {
                    let lim = libc::rlimit {
                        rlim_cur: *value,
                        rlim_max: *value,
                    };
                    if libc::setrlimit(*resource, &lim) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // Only the child's copy loses CLOEXEC: no other process the tests start in
                // parallel inherits the helper's end of the socket.
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if close_stdio {
                    libc::close(0);
                    libc::close(1);
                    libc::close(2);
                }
                Ok(())
            });
        }
        let what = format!("{} --fd {fd} ({how:?})", helper.display());
        let run = Running::spawn(&mut cmd, None, &what);
        drop(theirs);
        ours.set_read_timeout(Some(TIMEOUT)).unwrap();
        HelperConn { run, sock: ours }
    }

    /// Write raw bytes, passing `fds` with them as SCM_RIGHTS (if any).
    pub fn send(&self, bytes: &[u8], fds: &[RawFd]) -> nix::Result<usize> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let iov = [std::io::IoSlice::new(bytes)];
        let cmsgs = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
        sendmsg::<()>(
            self.sock.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
    }

    /// No more bytes from us.
    pub fn shutdown_write(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }

    /// Read events until EOF or a framing error; the error (if any) is returned as text.
    ///
    /// A peer that closes its end while bytes we sent are still unread makes our next read
    /// fail with ECONNRESET once its queued events have been read: that counts as the end.
    pub fn read_events(&mut self) -> (Vec<nsjail_core::HelperEvent>, Option<String>) {
        let mut events = Vec::new();
        loop {
            match nsjail_core::wire::read_frame::<_, nsjail_core::HelperEvent>(&mut self.sock) {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => return (events, None),
                Err(nsjail_core::wire::WireError::Io(e))
                    if e.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    return (events, None);
                }
                Err(e) => return (events, Some(e.to_string())),
            }
        }
    }

    /// Read events until (and including) an `Exited` or `Error` that ends the exchange, or EOF.
    pub fn read_until_end(&mut self) -> (Vec<nsjail_core::HelperEvent>, Option<String>) {
        use nsjail_core::{ErrorKind, HelperEvent};
        let mut events = Vec::new();
        loop {
            match nsjail_core::wire::read_frame::<_, HelperEvent>(&mut self.sock) {
                Ok(Some(ev)) => {
                    let last = matches!(ev, HelperEvent::Exited(_))
                        || matches!(
                            ev,
                            HelperEvent::Error { kind, .. }
                                if kind != ErrorKind::NotFound && kind != ErrorKind::NotExecutable
                        );
                    events.push(ev);
                    if last {
                        return (events, None);
                    }
                }
                Ok(None) => return (events, None),
                Err(nsjail_core::wire::WireError::Io(e))
                    if e.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    return (events, None);
                }
                Err(e) => return (events, Some(e.to_string())),
            }
        }
    }
}

/// Run `f` with only this thread's effective ids switched to `uid:gid` (raw syscalls: glibc's
/// wrappers would switch every thread), and switch back to root afterwards, also if `f` panics.
/// What `f` makes (a socket) carries `uid:gid` as its `SO_PEERCRED` credentials.
fn as_thread_ids<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> T {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: plain syscalls on this thread's credentials; back to euid/egid 0, which
            // the saved set-user-ID (0) allows.
            unsafe {
                libc::syscall(libc::SYS_setresuid, -1i64, 0i64, -1i64);
                libc::syscall(libc::SYS_setresgid, -1i64, 0i64, -1i64);
            }
        }
    }
    // SAFETY: as above; the guard restores the ids even if `f` panics.
    let restore = Restore;
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_setresgid, -1i64, gid as i64, -1i64),
            0,
            "setresgid"
        );
        assert_eq!(
            libc::syscall(libc::SYS_setresuid, -1i64, uid as i64, -1i64),
            0,
            "setresuid"
        );
    }
    let made = f();
    drop(restore);
    assert!(is_root(), "this thread's euid was not restored");
    made
}

/// Make a socketpair whose SO_PEERCRED credentials are `uid:gid`: switch only this thread's
/// effective ids and back.
pub fn socketpair_as(
    uid: u32,
    gid: u32,
) -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    assert!(is_root(), "socketpair_as needs root");
    as_thread_ids(uid, gid, || {
        std::os::unix::net::UnixStream::pair().expect("socketpair")
    })
}

/// The system part of the default view, for requests built by hand: /usr read-only and the
/// host's /bin, /sbin, /lib* links or directories.
pub fn system_mounts() -> Vec<nsjail_core::MountOp> {
    use nsjail_core::{BindKind, MountOp};
    let mut ops = vec![MountOp::Bind {
        src: "/usr".into(),
        dst: "/usr".into(),
        kind: BindKind::ReadOnly,
        optional: false,
    }];
    for p in ["/bin", "/sbin", "/lib", "/lib64"] {
        match fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => ops.push(MountOp::Symlink {
                target: fs::read_link(p).unwrap().to_string_lossy().into_owned(),
                link: p.into(),
            }),
            Ok(m) if m.is_dir() => ops.push(MountOp::Bind {
                src: p.into(),
                dst: p.into(),
                kind: BindKind::ReadOnly,
                optional: false,
            }),
            _ => {}
        }
    }
    ops
}

/// Options that keep the default view and add `dir` read-write at its own path: for tests whose
/// payload must see a host directory other than the current one.
pub fn with_dir(dir: &Path) -> Vec<String> {
    let d = dir.to_str().expect("utf-8 path").to_string();
    vec!["--default-view".into(), "--bind".into(), d.clone(), d]
}

/// A valid spawn request for `argv`, with a plain PATH, cwd `/` and the system mounted.
pub fn spawn_request(argv: &[&str]) -> nsjail_core::SpawnRequest {
    let mut r = nsjail_core::SpawnRequest::new(argv.iter().map(|s| s.to_string()).collect());
    r.mounts = system_mounts();
    r.env.push(("PATH".into(), USER_PATH.into()));
    r.cwd = Some("/".into());
    r.caller_cwd = Some("/".into());
    r
}

/// One complete, valid spawn frame.
pub fn spawn_frame(argv: &[&str]) -> Vec<u8> {
    let msg = nsjail_core::ClientMessage::Spawn(Box::new(spawn_request(argv)));
    nsjail_core::wire::encode(&msg).expect("encode spawn")
}

/// Three fds on /dev/null (read, write, write) for a spawn request's stdio.
pub fn devnull_stdio() -> Vec<OwnedFd> {
    let r = fs::File::open("/dev/null").unwrap();
    let w1 = fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let w2 = fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    vec![r.into(), w1.into(), w2.into()]
}

// ---------------------------------------------------------------------------------------------
// Running as a caller from inside another program (a network namespace, a terminal)

/// The words that run a command as caller `c` with a cleared environment holding `env`: for
/// the ordinary user `setpriv` switches ids (no supplementary groups), for root nothing does.
/// Used where the test cannot start the process itself (`ip netns exec`, a tmux pane).
pub fn as_caller_words(c: &Caller, env: &[(&str, &str)]) -> Vec<String> {
    let mut w = Vec::new();
    if c.is_user() {
        w.extend([
            tool("setpriv"),
            format!("--reuid={}", c.uid),
            format!("--regid={}", c.gid),
            "--clear-groups".into(),
            "--".into(),
        ]);
    }
    w.extend([tool("env"), "-i".into()]);
    let path = if c.is_user() { USER_PATH } else { ROOT_PATH };
    w.push(format!("PATH={path}"));
    // The same way in as the caller's own runs (Caller::command_for): through the daemon for
    // the daemon callers, never through one for the others, and the CLI refuses any other way.
    let socket = if c.via_daemon() {
        daemon_socket_env()
    } else {
        Some(PathBuf::from("none"))
    };
    if let Some(sock) = socket {
        w.push(format!("NSJAIL_SOCKET={}", sock.display()));
    }
    w.push(format!("{WAY_IN_VAR}={}", c.way_in().name()));
    if !env.iter().any(|(k, _)| *k == "HOME") {
        w.push(format!("HOME={}", if c.is_user() { "/" } else { "/root" }));
    }
    w.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    w
}

// ---------------------------------------------------------------------------------------------
// Installed system-wide (the VM run) and the helper daemon

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

fn installed_system_prefix(setuid: bool) -> Install {
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

/// The daemon the daemon callers use: the CLI, the helper binary the daemon runs, and its socket.
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
                helper: inst.helper,
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
            helper: helper_bin(),
            socket: Some(socket),
        }
    })
}

/// A helper daemon started by a test: `nsjail-helper --daemon --socket DIR/helper.sock ARGS`,
/// as root. Dropping it sends SIGTERM and waits (bounded) for it to end.
pub struct Daemon {
    pub run: Option<Running>,
    pub socket: PathBuf,
    /// Holds the socket's directory for the daemon's life.
    _dir: Option<TempDir>,
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
                c.args(rest).arg(helper_bin());
                c
            }
            None => Command::new(helper_bin()),
        };
        cmd.arg("--daemon")
            .arg("--socket")
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
        let what = format!(
            "nsjail-helper --daemon --socket {} {args:?}",
            socket.display()
        );
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
