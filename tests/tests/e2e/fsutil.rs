//! Support for the filesystem-view tests: command lines for a minimal system, running the CLI
//! from a chosen directory with chosen extra fds, and snapshots of what the host can see (its
//! mount table, the entries of `/tmp`) to show that a sandbox left nothing behind.

use std::collections::BTreeSet;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use nsjail_tests::{Caller, Output, Running, is_root, shell_words};

/// `p` as a string, for command lines (the tests' paths are UTF-8).
pub fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// Every entry under `dir` (recursively), for "nothing appeared here" checks.
pub fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut set = BTreeSet::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                set.extend(tree(&p));
            }
            set.insert(p);
        }
    }
    set
}

/// Held by every test that mounts something on the host or compares the host's mount table, so
/// that one never sees the other's mount.
static HOST_MOUNTS: Mutex<()> = Mutex::new(());

pub fn host_mounts_lock() -> MutexGuard<'static, ()> {
    HOST_MOUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`usr_args`], a new `/proc` and a minimal `/dev`: a small view in which shell scripts run.
pub fn system_args() -> Vec<String> {
    let mut v = usr_args();
    v.extend(["--proc", "/proc", "--dev", "/dev"].map(String::from));
    v
}

/// `--ro-bind /usr /usr` and the host's `/bin`, `/sbin`, `/lib*` as it has them (symlinks or
/// read-only binds): the least a view needs to run `/bin/sh`.
pub fn usr_args() -> Vec<String> {
    let mut v: Vec<String> = ["--ro-bind", "/usr", "/usr"].map(String::from).to_vec();
    for p in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(p).unwrap();
                v.extend([
                    "--symlink".into(),
                    target.to_string_lossy().into_owned(),
                    p.into(),
                ]);
            }
            Ok(m) if m.is_dir() => v.extend(["--ro-bind".into(), p.into(), p.into()]),
            _ => {}
        }
    }
    v
}

/// Join option lists and a command into one argument vector.
pub fn argv(opts: &[String], cmd: &[&str]) -> Vec<String> {
    let mut v = opts.to_vec();
    v.push("--".into());
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

/// `/bin/sh -c SCRIPT` after the options.
pub fn sh_argv(opts: &[String], script: &str) -> Vec<String> {
    argv(opts, &["/bin/sh", "-c", script])
}

/// How a run is set up beyond its arguments.
#[derive(Default)]
pub struct How<'a> {
    /// The CLI's working directory [default: /].
    pub cwd: Option<&'a Path>,
    /// Extra environment for the CLI (HOME, say).
    pub env: Vec<(&'a str, &'a str)>,
    /// fds the CLI inherits: (the fd we hold, the number the CLI sees it as).
    pub fds: Vec<(&'a OwnedFd, RawFd)>,
}

/// Run `nsjail run ARGS...` as `c`, set up as `how` says, and wait (bounded).
pub fn run(c: &Caller, args: &[String], how: &How) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = c.run_cmd(&args);
    if let Some(dir) = how.cwd {
        cmd.current_dir(dir);
    }
    for (k, v) in &how.env {
        cmd.env(k, v);
    }
    let pairs: Vec<(RawFd, RawFd)> = how.fds.iter().map(|(f, n)| (f.as_raw_fd(), *n)).collect();
    pass_fds(&mut cmd, pairs);
    let what = format!(
        "[{}] (cwd {}) nsjail run {}",
        c.name(),
        how.cwd.unwrap_or(Path::new("/")).display(),
        shell_words(&args)
    );
    Running::spawn(&mut cmd, None, &what).wait()
}

/// Let the command inherit each `(fd, number)` pair's fd as that number. The fds we hold stay
/// close-on-exec, so no other child the tests start meanwhile inherits them.
pub fn pass_fds(cmd: &mut Command, pairs: Vec<(RawFd, RawFd)>) {
    if pairs.is_empty() {
        return;
    }
    assert!(
        pairs.iter().all(|(_, n)| *n < 100),
        "target fds must be below 100"
    );
    // SAFETY: only fcntl and dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way (a source may have a target's number), then into place;
            // dup2 leaves the new fd without FD_CLOEXEC.
            let mut high = Vec::with_capacity(pairs.len());
            for (src, _) in &pairs {
                let fd = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 100);
                if fd == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push(fd);
            }
            for (fd, (_, dst)) in high.iter().zip(&pairs) {
                if libc::dup2(*fd, *dst) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Run `nsjail run ARGS...` as `c` from `/`.
pub fn run_plain(c: &Caller, args: &[String]) -> Output {
    run(c, args, &How::default())
}

/// The read end of a pipe that holds `data` and whose write end is closed.
pub fn pipe_with(data: &[u8]) -> OwnedFd {
    assert!(data.len() < 4096, "keep pipe data below one page");
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    nix::unistd::write(&w, data).unwrap();
    drop(w);
    r
}

/// A file holding `data`, opened for reading (close-on-exec).
pub fn file_with(dir: &Path, name: &str, data: &[u8]) -> OwnedFd {
    let p = dir.join(name);
    fs::write(&p, data).unwrap();
    fs::File::open(&p).unwrap().into()
}

/// Give `path` to the caller (only root can, and only root needs to).
pub fn give(c: &Caller, path: &Path) {
    if is_root() {
        chown(path, Some(c.uid), Some(c.gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

/// One mount of a mountinfo text: its root within its filesystem, where it is mounted, its
/// per-mount options, its filesystem type and source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MountLine {
    pub root: String,
    pub point: String,
    pub opts: String,
    pub fstype: String,
    pub source: String,
}

/// Parse `/proc/PID/mountinfo` text (mount and parent ids left out: they differ between reads).
pub fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split_whitespace().collect();
            let r: Vec<&str> = right.split_whitespace().collect();
            Some(MountLine {
                root: unescape(f.get(3)?),
                point: unescape(f.get(4)?),
                opts: f.get(5)?.to_string(),
                fstype: r.first()?.to_string(),
                source: r.get(1).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host's mounts as this process sees them.
pub fn host_mounts() -> BTreeSet<MountLine> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap())
        .into_iter()
        .collect()
}

/// Mount points of the host under `dir` (not `dir` itself), as paths relative to it.
pub fn host_submounts(dir: &str) -> Vec<String> {
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    host_mounts()
        .into_iter()
        .filter_map(|m| m.point.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// The names in host `/tmp` now.
pub fn tmp_entries() -> BTreeSet<String> {
    fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Names other things on the machine make in `/tmp` while a test runs: the scratch dirs of tests
/// running in parallel, temporary files of concurrent builds (rustc, tempfile, mktemp) and of
/// other shells on a shared development machine.
const OTHERS_IN_TMP: [&str; 5] = ["nsjail-e2e-", "rustc", ".tmp", "tmp.", "bash_tool"];

/// Entries of host `/tmp` that appeared since `before`, leaving out [`OTHERS_IN_TMP`].
pub fn new_tmp_entries(before: &BTreeSet<String>) -> Vec<String> {
    tmp_entries()
        .into_iter()
        .filter(|n| !before.contains(n))
        .filter(|n| !OTHERS_IN_TMP.iter().any(|p| n.starts_with(p)))
        .filter(|n| Path::new("/tmp").join(n).exists())
        .collect()
}

/// Mounts in `after` that are not in `before`, and the other way round, leaving out the
/// network namespaces the network tests add and remove meanwhile (`ip netns`, without the lock).
pub fn mount_diff(
    before: &BTreeSet<MountLine>,
    after: &BTreeSet<MountLine>,
) -> (Vec<MountLine>, Vec<MountLine>) {
    let ours =
        |m: &&MountLine| !(m.fstype == "nsfs" && m.point.starts_with("/run/netns/nsjail-e2e-"));
    (
        after.difference(before).filter(ours).cloned().collect(),
        before.difference(after).filter(ours).cloned().collect(),
    )
}

/// A file in the host's /tmp, removed when dropped (also when the test fails).
pub struct HostMarker(pub std::path::PathBuf);

impl HostMarker {
    pub fn new(name: &str) -> HostMarker {
        let p = Path::new("/tmp").join(name);
        fs::write(&p, "host\n").unwrap();
        HostMarker(p)
    }
}

impl Drop for HostMarker {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
