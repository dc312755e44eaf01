//! Where a sandbox's cgroup goes, and that nothing the caller made can host it.
//!
//! On cgroup v1 it goes below the helper's own cgroup (the caller's) in each hierarchy, in a
//! directory `nsjail` that only root may have made. On cgroup v2 it goes to the nearest cgroup
//! above the caller's that holds no processes and that no one but root can write (e.g. the
//! caller's `user-UID.slice`, or the helper service's own cgroup), so the limits an
//! administrator set there bound every sandbox.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{MetadataExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nsjail_tests::{Caller, Output, Running, root_or_skip, shell_words, unique};

/// The cgroup directories a `--verbose` run named.
fn cgroup_dirs(stderr: &str) -> Vec<PathBuf> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("nsjail: cgroup: /"))
        .filter_map(|r| {
            r.split_once(" (")
                .map(|(p, _)| PathBuf::from(format!("/{p}")))
        })
        .collect()
}

/// A v1 hierarchy with `controller`: (mount point, this process's cgroup there).
fn v1_hierarchy(controller: &str) -> Option<(PathBuf, String)> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let point = mounts.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let r: Vec<&str> = right.split(' ').collect();
        (r.first() == Some(&"cgroup") && r.get(2)?.split(',').any(|o| o == controller))
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let _ = it.next()?;
        let ctrls = it.next()?;
        let path = it.next()?;
        ctrls
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })?;
    Some((point, path))
}

/// A cgroup made for the test below this process's own in a v1 hierarchy and delegated to
/// `uid:gid` (the directory and its `cgroup.procs` and `tasks` are theirs), as an administrator
/// or a service manager delegates one. Removed when dropped.
struct Delegated {
    dir: PathBuf,
}

impl Delegated {
    fn new(mount: &Path, own: &str, uid: u32, gid: u32) -> Delegated {
        let dir = mount
            .join(own.trim_start_matches('/'))
            .join(format!("e2e-deleg-{}", unique()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        for p in [dir.clone(), dir.join("cgroup.procs"), dir.join("tasks")] {
            chown(&p, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        }
        Delegated { dir }
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Children first (the sandbox's, `nsjail`), then the delegated cgroup itself.
        let mut dirs = vec![self.dir.clone()];
        let mut i = 0;
        while i < dirs.len() {
            if let Ok(rd) = fs::read_dir(&dirs[i]) {
                dirs.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
            }
            i += 1;
        }
        for d in dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

/// `nsjail ARGS` as `c`, from inside `cgroup`: the CLI writes itself into its `cgroup.procs`
/// before the exec, as the user; with `plant`, the user first makes `nsjail` in it.
fn cmd_in_cgroup(c: &Caller, cgroup: &Path, plant: bool, args: &[&str]) -> std::process::Command {
    let procs = CString::new(cgroup.join("cgroup.procs").to_str().unwrap()).unwrap();
    let planted = CString::new(cgroup.join("nsjail").to_str().unwrap()).unwrap();
    let mut cmd = c.run_cmd(args);
    // SAFETY: raw open/write/close/mkdir on C strings made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if plant && libc::mkdir(planted.as_ptr(), 0o755) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd == -1 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0".as_ptr() as *const libc::c_void, 1);
            libc::close(fd);
            if n != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// `nsjail run ARGS` as `c`, from inside `cgroup` ([`cmd_in_cgroup`]), `--verbose` unless
/// `plant`.
fn run_in_cgroup(c: &Caller, cgroup: &Path, plant: bool, args: &[&str]) -> Output {
    let mut all = if plant { vec![] } else { vec!["--verbose"] };
    all.extend_from_slice(args);
    let mut cmd = cmd_in_cgroup(c, cgroup, plant, &all);
    let what = format!(
        "[{}] (in cgroup {}{}) nsjail run {}",
        c.name(),
        cgroup.display(),
        if plant {
            ", nsjail/ made by the user"
        } else {
            ""
        },
        shell_words(&all)
    );
    Running::spawn(&mut cmd, None, &what)
        .expect_way_in(c.way_in())
        .wait()
}

/// A sandbox with a limit in cgroup v1's memory hierarchy.
const V1_LIMITED: [&str; 6] = [
    "--cgroup-version",
    "1",
    "--memory-limit",
    "64M",
    "--",
    "/bin/true",
];

/// The v1 memory hierarchy ([`v1_hierarchy`]), or a skip said for `test`.
fn v1_memory(test: &str) -> Option<(PathBuf, String)> {
    let found = v1_hierarchy("memory");
    if found.is_none() {
        nsjail_tests::skip(test, "no cgroup v1 memory hierarchy");
    }
    found
}

/// Run a sandbox of `c` from `cgroup` (`--verbose`) that lasts until `look` has looked (as root, on the host)
/// and another sandbox has run beside it; the held sandbox's output and what `look` saw.
fn while_one_runs<T>(
    c: &Caller,
    cgroup: &Path,
    args: &[&str],
    look: impl FnOnce() -> Option<T>,
) -> (Output, Option<T>) {
    let dir = nsjail_tests::hardening::probe_dir(c);
    let release = dir.path().join("release");
    let hold = format!(
        "echo held; while ! test -e {}; do sleep 0.02; done",
        release.display()
    );
    let opts = args.iter().take_while(|a| **a != "--");
    let bind = dir.path().to_str().unwrap();
    let mut held: Vec<&str> = vec!["--verbose"];
    held.extend(opts);
    held.extend([
        "--default-view",
        "--ro-bind",
        bind,
        bind,
        "--",
        "/bin/sh",
        "-c",
        &hold,
    ]);
    let mut cmd = cmd_in_cgroup(c, cgroup, false, &held);
    let mut run = Running::spawn(&mut cmd, None, "a held sandbox").expect_way_in(c.way_in());
    run.wait_stdout("held");
    let seen = look();
    // Another sandbox from the same cgroup ends meanwhile: `nsjail` stays for the held one.
    run_in_cgroup(c, cgroup, false, args).expect_success();
    let still = cgroup.join("nsjail").is_dir();
    fs::write(&release, "").expect("release the held sandbox");
    let out = run.wait();
    assert!(still, "`nsjail` went while a sandbox was in it");
    (out, seen)
}

#[test]
fn v1_the_nsjail_directory_goes_with_the_last_sandbox() {
    root_or_skip!();
    let Some((mount, own)) = v1_memory("v1_the_nsjail_directory_goes_with_the_last_sandbox") else {
        return;
    };
    let c = Caller::setuid_user();
    let args = V1_LIMITED;
    let deleg = Delegated::new(&mount, &own, c.uid, c.gid);
    let (out, _) = while_one_runs(&c, &deleg.dir, &args, || Some(()));
    out.expect_success();
    // Found in review: a root-owned `nsjail` left in the caller's cgroup made it impossible to
    // remove for whoever manages it (a session's scope, a service).
    let left: Vec<_> = fs::read_dir(&deleg.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left in the caller's cgroup: {left:?}");
    fs::remove_dir(&deleg.dir).expect("the caller's cgroup can be removed");
}

#[test]
fn v1_an_nsjail_directory_the_caller_made_is_refused() {
    root_or_skip!();
    let Some((mount, own)) = v1_memory("v1_an_nsjail_directory_the_caller_made_is_refused") else {
        return;
    };
    let c = Caller::setuid_user();
    let args = V1_LIMITED;

    // The control: from a cgroup delegated to the user, the helper makes `nsjail` itself (as
    // root) and the sandbox's cgroup below it; seen while a sandbox holds it.
    let deleg = Delegated::new(&mount, &own, c.uid, c.gid);
    let nsjail = deleg.dir.join("nsjail");
    let (out, owner) = while_one_runs(&c, &deleg.dir, &args, || {
        fs::metadata(&nsjail).map(|m| m.uid()).ok()
    });
    out.expect_success();
    let dirs = cgroup_dirs(&out.stderr);
    assert!(
        dirs.iter().any(|d| d.parent() == Some(nsjail.as_path())),
        "the sandbox's memory cgroup is below {}: {dirs:?}\n{}",
        nsjail.display(),
        out.describe()
    );
    assert_eq!(owner, Some(0), "{}", nsjail.display());
    drop(deleg);

    // The attack: the user makes `nsjail` first. Its files would be the user's, and so would
    // be the right to rename or remove what the helper puts in it.
    let deleg = Delegated::new(&mount, &own, c.uid, c.gid);
    let out = run_in_cgroup(&c, &deleg.dir, true, &args);
    let planted = deleg.dir.join("nsjail");
    out.expect_code(125)
        .expect_no_panic()
        .expect_one_error_line(&format!(
            "nsjail: {}: owned by uid {}, not root: refusing to put a sandbox's cgroup in it",
            planted.display(),
            c.uid
        ));
    let inside: Vec<_> = fs::read_dir(&planted)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    assert!(
        inside.is_empty(),
        "the helper made {inside:?} in the user's directory"
    );
}

/// The cgroup2 mount point, if there is one.
fn v2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split(' ').next() == Some("cgroup2"))
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })
}

fn controllers(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A v2 tree made for one test: `R` (root's, below the hierarchy's root) with `R/mid` (root's,
/// handed only the pids controller, if there is one) and in it `deleg/leaf`, delegated to the
/// test user (the directories and their `cgroup.procs`, `cgroup.threads` and
/// `cgroup.subtree_control` are theirs, as systemd's `Delegate=` makes them). Removed when
/// dropped.
struct V2Tree {
    root: PathBuf,
    mid: PathBuf,
    leaf: PathBuf,
}

impl V2Tree {
    fn new(mount: &Path, uid: u32, gid: u32) -> V2Tree {
        let root = mount.join(format!("e2e-place-{}", unique()));
        let mid = root.join("mid");
        let deleg = mid.join("deleg");
        let leaf = deleg.join("leaf");
        for d in [&root, &mid, &deleg, &leaf] {
            fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        if controllers(&root).iter().any(|c| c == "pids") {
            fs::write(root.join("cgroup.subtree_control"), "+pids").unwrap();
        }
        for d in [&deleg, &leaf] {
            for p in [
                d.clone(),
                d.join("cgroup.procs"),
                d.join("cgroup.threads"),
                d.join("cgroup.subtree_control"),
            ] {
                chown(&p, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
            }
        }
        V2Tree { root, mid, leaf }
    }
}

impl Drop for V2Tree {
    fn drop(&mut self) {
        let mut dirs = vec![self.root.clone()];
        let mut i = 0;
        while i < dirs.len() {
            if let Ok(rd) = fs::read_dir(&dirs[i]) {
                dirs.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
            }
            i += 1;
        }
        for d in dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

/// `nsjail run ARGS` as `c`, started (by root) inside the v2 cgroup `cgroup`.
fn run_in_v2_cgroup(c: &Caller, cgroup: &Path, args: &[&str]) -> Output {
    let mut words = vec![
        "-c".to_string(),
        format!("echo $$ > {}/cgroup.procs && exec \"$@\"", cgroup.display()),
        "sh".to_string(),
    ];
    words.extend(nsjail_tests::as_caller_words(
        c,
        &[("NSJAIL_SOCKET", "none")],
    ));
    words.push(c.nsjail.to_string_lossy().into_owned());
    words.push("run".into());
    words.extend(args.iter().map(|a| a.to_string()));
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(&words).env_clear().current_dir("/");
    let what = format!(
        "[{}] (in cgroup {}) nsjail run {}",
        c.name(),
        cgroup.display(),
        shell_words(args)
    );
    Running::spawn(&mut cmd, None, &what)
        .expect_way_in(c.way_in())
        .wait()
}

#[test]
fn v2_a_sandbox_goes_to_the_nearest_root_owned_cgroup_without_processes() {
    root_or_skip!();
    let Some(mount) = v2_mount() else {
        nsjail_tests::skip(
            "v2_a_sandbox_goes_to_the_nearest_root_owned_cgroup_without_processes",
            "no cgroup v2 hierarchy",
        );
        return;
    };
    let c = Caller::setuid_user();
    let tree = V2Tree::new(&mount, c.uid, c.gid);
    // From the user's delegated leaf: above it the user's own cgroup (theirs to write, so
    // skipped), then `mid`, root's and without processes: the sandbox goes there, not to the
    // hierarchy's root.
    let with_pids = controllers(&tree.mid).iter().any(|x| x == "pids");
    let mut args = vec!["--verbose", "--cgroup-version", "2", "--time-limit", "30"];
    if with_pids {
        args.extend(["--pids-limit", "32"]);
    }
    args.extend(["--", "/bin/true"]);
    let out = run_in_v2_cgroup(&c, &tree.leaf, &args);
    out.expect_success();
    let dirs = cgroup_dirs(&out.stderr);
    assert!(
        dirs.len() == 1 && dirs[0].parent() == Some(tree.mid.as_path()),
        "the sandbox's cgroup must be made in {}: {dirs:?}\n{}",
        tree.mid.display(),
        out.describe()
    );
    assert!(!dirs[0].exists(), "left behind: {}", dirs[0].display());
    if with_pids {
        assert!(out.stderr.contains("pids.max 33"), "{}", out.describe());
    }
    // A controller `mid` does not offer is refused in one line, not enabled above it.
    let out = run_in_v2_cgroup(
        &c,
        &tree.leaf,
        &[
            "--cgroup-version",
            "2",
            "--memory-limit",
            "64M",
            "--",
            "/bin/true",
        ],
    );
    out.expect_code(125)
        .expect_no_panic()
        .expect_one_error_line(&format!(
            "nsjail: --memory-limit needs the memory controller, which cgroup v2 does not offer \
             in {} (where this sandbox's cgroup goes",
            tree.mid.display()
        ));
    let above = fs::read_to_string(tree.root.join("cgroup.subtree_control")).unwrap();
    assert!(
        !above.contains("memory"),
        "memory was enabled above the sandbox's parent: {above:?}"
    );
}

/// Whether this host runs systemd on a pure cgroup v2 hierarchy with the pids controller
/// (the Debian guest of `cargo xtask vmtest`); says why not when it does not.
fn systemd_v2(test: &str) -> bool {
    let ok = Path::new("/run/systemd/system").is_dir()
        && v2_mount().is_some_and(|m| controllers(&m).iter().any(|c| c == "pids"))
        && Path::new("/usr/bin/systemd-run").is_file();
    if !ok {
        nsjail_tests::skip(test, "not systemd on a pure cgroup v2 hierarchy with pids");
    }
    ok
}

fn systemctl(args: &[&str]) -> String {
    let out = std::process::Command::new(nsjail_tests::tool("systemctl"))
        .args(args)
        .output()
        .expect("run systemctl");
    assert!(
        out.status.success(),
        "systemctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `TasksMax=` of a unit, set at run time for the life of the value, then put back.
struct TasksMax {
    unit: String,
    old: String,
}

impl TasksMax {
    fn set(unit: &str, value: &str) -> TasksMax {
        let old = systemctl(&["show", "-p", "TasksMax", "--value", unit]);
        systemctl(&[
            "set-property",
            "--runtime",
            unit,
            &format!("TasksMax={value}"),
        ]);
        TasksMax {
            unit: unit.into(),
            old,
        }
    }
}

impl Drop for TasksMax {
    fn drop(&mut self) {
        let old = if self.old.is_empty() || self.old == "18446744073709551615" {
            "infinity".to_string()
        } else {
            self.old.clone()
        };
        let _ = std::process::Command::new(nsjail_tests::tool("systemctl"))
            .args([
                "set-property",
                "--runtime",
                &self.unit,
                &format!("TasksMax={old}"),
            ])
            .status();
    }
}

/// Forks up to 200 children that sleep, says how many it could make, ends them.
const FORK_COUNT: &str = "import os, time, signal\nkids = []\nfor i in range(200):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n    kids.append(pid)\nprint('forked', len(kids), flush=True)\nfor k in kids:\n    os.kill(k, signal.SIGKILL)\nfor k in kids:\n    os.waitpid(k, 0)\n";

/// How many children the payload of `out` could fork.
fn forked(out: &Output) -> usize {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("forked "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count: {}", out.describe()))
}

/// The sandbox's args for the fork count: a huge pids limit of its own.
const FORK_ARGS: [&str; 7] = [
    "--verbose",
    "--pids-limit",
    "4194304",
    "--",
    "/usr/bin/python3",
    "-c",
    FORK_COUNT,
];

#[test]
fn v2_the_limit_on_the_callers_slice_bounds_every_sandbox() {
    root_or_skip!();
    if !systemd_v2("v2_the_limit_on_the_callers_slice_bounds_every_sandbox") {
        return;
    }
    let c = Caller::setuid_user();
    let slice = format!("user-{}.slice", c.uid);
    // A scope keeps the slice loaded while its limit is changed.
    let mut keep = std::process::Command::new(nsjail_tests::tool("systemd-run"));
    keep.args([
        "--scope",
        "--quiet",
        &format!("--slice={slice}"),
        "/bin/sleep",
        "600",
    ]);
    let mut keeper = Running::spawn(&mut keep, None, "a scope keeping the slice");
    assert!(
        nsjail_tests::poll_until(std::time::Duration::from_secs(30), || {
            std::process::Command::new(nsjail_tests::tool("systemctl"))
                .args(["is-active", "--quiet", &slice])
                .status()
                .is_ok_and(|s| s.success())
        }),
        "{slice} did not come up"
    );
    let slice_dir = v2_mount().unwrap().join("user.slice").join(&slice);
    // The user's CLI in a scope of their slice, as a login session is.
    let run = |args: &[&str]| -> Output {
        let mut cmd = std::process::Command::new(nsjail_tests::tool("systemd-run"));
        cmd.args(["--scope", "--quiet", &format!("--slice={slice}"), "--"]);
        cmd.args(nsjail_tests::as_caller_words(
            &c,
            &[("NSJAIL_SOCKET", "none")],
        ));
        cmd.arg(&c.nsjail).arg("run").args(args).current_dir("/");
        let what = format!(
            "[{}] (systemd-run --scope --slice={slice}) nsjail run",
            c.name()
        );
        Running::spawn(&mut cmd, None, &what)
            .expect_way_in(c.way_in())
            .wait()
    };
    for (tasks_max, bounded) in [("infinity", false), ("40", true)] {
        let _limit = TasksMax::set(&slice, tasks_max);
        let out = run(&FORK_ARGS);
        out.expect_success();
        let n = forked(&out);
        let dirs = cgroup_dirs(&out.stderr);
        let ctx = format!(
            "TasksMax={tasks_max} on {slice}: forked {n}, cgroups {dirs:?}\n{}",
            out.describe()
        );
        assert!(
            dirs.len() == 1 && dirs[0].starts_with(&slice_dir),
            "the sandbox's cgroup must be under {}: {ctx}",
            slice_dir.display()
        );
        if bounded {
            assert!(
                n < 40,
                "the slice's TasksMax did not bound the sandbox: {ctx}"
            );
        } else {
            assert_eq!(n, 200, "control: {ctx}");
        }
    }
    keeper.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = keeper.wait_timeout(std::time::Duration::from_secs(10));
}

#[test]
fn v2_the_limit_on_the_helper_service_bounds_every_sandbox() {
    root_or_skip!();
    let test = "v2_the_limit_on_the_helper_service_bounds_every_sandbox";
    if !systemd_v2(test) {
        return;
    }
    if nsjail_tests::system_install() != Some(nsjail_tests::SystemInstall::Systemd) {
        nsjail_tests::skip(
            test,
            "the helper is not installed as a systemd service here",
        );
        return;
    }
    let unit = "nsjail-helper.service";
    let c = Caller::daemon_user();
    // A first connection starts the socket-activated daemon.
    c.run(&["--", "/bin/true"]).expect_success();
    let main = systemctl(&["show", "-p", "MainPID", "--value", unit]);
    let own = fs::read_to_string(format!("/proc/{main}/cgroup")).unwrap_or_default();
    assert!(
        own.trim_end().ends_with("/nsjail-helper.service/daemon"),
        "the daemon (pid {main}) must have moved into a leaf of its service: {own:?}"
    );
    let service_dir = v2_mount()
        .unwrap()
        .join("system.slice")
        .join("nsjail-helper.service");
    for (tasks_max, bounded) in [("infinity", false), ("40", true)] {
        let _limit = TasksMax::set(unit, tasks_max);
        let out = c.run(&FORK_ARGS);
        out.expect_success();
        let n = forked(&out);
        let dirs = cgroup_dirs(&out.stderr);
        let ctx = format!(
            "TasksMax={tasks_max} on {unit}: forked {n}, cgroups {dirs:?}\n{}",
            out.describe()
        );
        assert!(
            dirs.len() == 1 && dirs[0].starts_with(&service_dir),
            "the sandbox's cgroup must be under {}: {ctx}",
            service_dir.display()
        );
        if bounded {
            assert!(
                n < 40,
                "the service's TasksMax did not bound the sandbox: {ctx}"
            );
        } else {
            assert_eq!(n, 200, "control: {ctx}");
        }
    }
}
