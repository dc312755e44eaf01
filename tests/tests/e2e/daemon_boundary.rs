//! The privileged boundary as a hostile caller or payload tries it, on both ways in (the setuid
//! helper and the daemon):
//!
//! - the caller's supplementary groups, never the daemon's, reach the sandbox (and the policy);
//! - a process inside a sandbox cannot obtain a sandbox with fewer restrictions than its own;
//! - no read or write of the client socket blocks the supervisor once it has a sandbox, and the
//!   daemon's request timeout is one deadline for the whole request;
//! - the daemon's socket gets its mode when it is made, never by a `chmod` of its path;
//! - the daemon's log says what happened to each connection.

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nsjail_core::{ClientMessage, ErrorKind, HelperEvent, LimitHit, MountOp, Termination, wire};
use nsjail_tests::hardening::{PolicyEnv, probe_bin, probe_result};
use nsjail_tests::{
    Caller, Daemon, HelperConn, HelperStart, Output, Running, TIMEOUT, USER_PATH, connect_as,
    devnull_stdio, helperd_bin, host_ns, install_file, pids_with_argv, poll_until, root_or_skip,
    scratch_dir, setuid_install, shell_words, spawn_request, test_user, through_daemon_at, tool,
    unique,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Write `bytes`, the first of them with `fds` as `SCM_RIGHTS`.
fn send(sock: &UnixStream, bytes: &[u8], fds: &[OwnedFd]) {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsgs };
    let iov = [std::io::IoSlice::new(bytes)];
    let n = sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
        .expect("sendmsg to the helper");
    (&*sock)
        .write_all(&bytes[n..])
        .expect("write to the helper");
}

/// Events until the one that ends the exchange (`Exited`, or an error other than an exec
/// failure), or the end of the stream.
fn read_to_end(sock: &mut UnixStream) -> Vec<HelperEvent> {
    let mut events = Vec::new();
    loop {
        match wire::read_frame::<_, HelperEvent>(sock) {
            Ok(Some(ev)) => {
                let last = matches!(ev, HelperEvent::Exited(_))
                    || matches!(
                        ev,
                        HelperEvent::Error { kind, .. }
                            if kind != ErrorKind::NotFound && kind != ErrorKind::NotExecutable
                    );
                events.push(ev);
                if last {
                    return events;
                }
            }
            Ok(None) => return events,
            Err(e) => panic!("reading events (so far {} of them): {e}", events.len()),
        }
    }
}

/// Which way into the helper a raw-protocol test takes.
#[derive(Clone, Copy, Debug)]
enum Way {
    Setuid,
    Daemon,
}

const BOTH: [Way; 2] = [Way::Setuid, Way::Daemon];

/// One raw connection as the ordinary test user, with what keeps its helper alive.
struct Raw {
    sock: UnixStream,
    _helper: Option<Running>,
    _daemon: Option<Daemon>,
}

impl Raw {
    /// The setuid helper started by us as the test user, or a daemon of its own started with
    /// `daemon_args`.
    fn open(way: Way, daemon_args: &[&str]) -> Raw {
        let (uid, gid) = test_user();
        match way {
            Way::Setuid => {
                let how = HelperStart {
                    as_ids: Some((uid, gid)),
                    ..Default::default()
                };
                let c = HelperConn::start(&setuid_install().helper, &how);
                Raw {
                    sock: c.sock,
                    _helper: Some(c.run),
                    _daemon: None,
                }
            }
            Way::Daemon => {
                let d = Daemon::start(daemon_args);
                let sock = connect_as(&d.socket, uid, gid);
                Raw {
                    sock,
                    _helper: None,
                    _daemon: Some(d),
                }
            }
        }
    }
}

/// A `sleep` whose argv no other process has, to find the payload on the host.
fn marked_sleep() -> (String, [String; 2]) {
    let secs = format!("9{}.5", unique());
    (secs.clone(), ["/bin/sleep".to_string(), secs])
}

fn payload_pids(argv: &[String; 2]) -> Vec<i32> {
    pids_with_argv(&[argv[0].as_str(), argv[1].as_str()])
}

/// The payload appears, then is gone within `within`; panics with `what` otherwise.
#[track_caller]
fn expect_started_then_ended(argv: &[String; 2], within: Duration, what: &str) {
    assert!(
        poll_until(TIMEOUT, || !payload_pids(argv).is_empty()),
        "{what}: the payload never started"
    );
    assert!(
        poll_until(within, || payload_pids(argv).is_empty()),
        "{what}: the payload ({:?}) was still running {within:?} after it started, past its \
         3 s wall-clock limit: the supervisor is not enforcing it",
        payload_pids(argv)
    );
}

#[track_caller]
fn expect_wall_limit_exit(events: &[HelperEvent], what: &str) {
    let exited = events.iter().find_map(|e| match e {
        HelperEvent::Exited(info) => Some(*info),
        _ => None,
    });
    let info = exited.unwrap_or_else(|| panic!("{what}: no Exited event in {events:?}"));
    assert_eq!(info.limit_hit, Some(LimitHit::WallTime), "{what}: {info:?}");
    assert_eq!(
        info.termination,
        Termination::Signaled(9),
        "{what}: {info:?}"
    );
}

/// Run `program args` as uid:gid with exactly the supplementary `groups`, a clean environment
/// and `NSJAIL_SOCKET=socket` (`none`: the setuid helper).
fn as_user_with_groups(
    program: &Path,
    args: &[&str],
    (uid, gid): (u32, u32),
    groups: &[u32],
    socket: &str,
) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", USER_PATH)
        .env("HOME", "/")
        .env("NSJAIL_SOCKET", socket)
        .current_dir("/");
    let list: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: only raw system calls between fork and exec, on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let check = |r: libc::c_int| {
                if r == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::setgroups(list.len(), list.as_ptr()))?;
            check(libc::setresgid(gid, gid, gid))?;
            check(libc::setresuid(uid, uid, uid))
        });
    }
    let what = format!(
        "[uid {uid} groups {groups:?} via {socket}] {} {}",
        program.display(),
        shell_words(args)
    );
    Running::spawn(&mut cmd, None, &what).wait()
}

/// The `Groups:` line of a process's status, without the key.
fn groups_of(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or_else(|| panic!("no Groups: in /proc/{pid}/status"))
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Item 1: supplementary groups

/// A root-owned directory (0755) holding the probe and three files: `root-0640` (root:root
/// 0640), `world-0644` (root:root 0644) and, with `group`, `group-0640` (root:group 0640).
fn group_files(group: Option<u32>) -> tempfile::TempDir {
    let d = scratch_dir();
    install_file(&probe_bin(), &d.path().join("nsjail-probe"), 0o755);
    let mut files = vec![("root-0640", 0, 0o640), ("world-0644", 0, 0o644)];
    if let Some(g) = group {
        files.push(("group-0640", g, 0o640));
    }
    for (name, gid, mode) in files {
        let p = d.path().join(name);
        fs::write(&p, format!("contents of {name}\n")).unwrap();
        chown(&p, Some(0), Some(gid)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    d
}

/// A group made for one test with the test user as a member; removed when dropped.
struct TempGroup {
    name: String,
    gid: u32,
}

impl TempGroup {
    fn new() -> TempGroup {
        let name = format!("nsjg{}", unique());
        let name = name[..name.len().min(30)].to_string();
        // /etc/group may be locked by a concurrent useradd/groupadd: try again a few times.
        let run = |args: &[&str]| {
            for _ in 0..50 {
                let out = Command::new(tool(args[0]))
                    .args(&args[1..])
                    .output()
                    .unwrap();
                if out.status.success() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("{args:?} kept failing");
        };
        test_user();
        run(&["groupadd", &name]);
        run(&["gpasswd", "-a", nsjail_tests::TEST_USER, &name]);
        let out = Command::new(tool("getent"))
            .args(["group", &name])
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let gid = line
            .split(':')
            .nth(2)
            .and_then(|g| g.parse().ok())
            .unwrap_or_else(|| panic!("getent group {name}: {line:?}"));
        TempGroup { name, gid }
    }
}

impl Drop for TempGroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            let ok = Command::new(tool("groupdel"))
                .arg(&self.name)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The test user's groups as a login gives them (`id -G`: the primary group and every group
/// that lists the user in /etc/group).
fn login_groups() -> Vec<u32> {
    let out = Command::new(tool("id"))
        .args(["-G", nsjail_tests::TEST_USER])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect()
}

/// A daemon started from a root shell that has group 0 (`setpriv --groups 0`, as `sudo` gives
/// on Debian).
fn daemon_with_group_0(args: &[&str]) -> Daemon {
    let setpriv = tool("setpriv");
    let d = Daemon::start_wrapped(&[setpriv, "--groups".into(), "0".into(), "--".into()], args);
    assert_eq!(groups_of(d.pid()), "0", "the daemon should hold group 0");
    d
}

/// A daemon that holds group 0 lends it to no sandbox: a `root:root 0640` file stays unreadable
/// to the ordinary user's sandbox, bound or read inside a bound directory, and the sandbox has
/// the caller's (here: no) supplementary groups. The control: a 0644 file is readable.
#[test]
fn a_daemon_with_group_0_does_not_lend_it_to_sandboxes() {
    root_or_skip!();
    let user = Caller::setuid_user();
    let d = daemon_with_group_0(&[]);
    let files = group_files(None);
    let dir = files.path().to_str().unwrap();
    let file = |name: &str| format!("{dir}/{name}");

    // Through --ro-bind of the file itself: the set-up, done as the caller, cannot open it.
    let out = d.run(
        &user,
        &[
            "--default-view",
            "--ro-bind",
            &file("root-0640"),
            "/secret",
            "--",
            "/bin/cat",
            "/secret",
        ],
    );
    out.expect_code(125)
        .expect_one_error_line("nsjail: ")
        .expect_no_panic();
    assert!(
        out.stderr.contains("Permission denied") && out.stdout.is_empty(),
        "{}",
        out.describe()
    );
    let out = d.run(
        &user,
        &[
            "--default-view",
            "--ro-bind",
            &file("world-0644"),
            "/secret",
            "--",
            "/bin/cat",
            "/secret",
        ],
    );
    out.expect_success();
    assert_eq!(out.stdout, "contents of world-0644\n", "{}", out.describe());

    // Inside a bound directory: the payload cannot open it (EACCES), the control it can.
    let probe = |name: &str| {
        d.run(
            &user,
            &[
                "--default-view",
                "--ro-bind",
                dir,
                "/d",
                "--",
                "/d/nsjail-probe",
                "open-read",
                &format!("/d/{name}"),
            ],
        )
    };
    let out = probe("root-0640");
    assert_eq!(
        probe_result(&out, "open-read"),
        "EACCES",
        "{}",
        out.describe()
    );
    let out = probe("world-0644");
    assert_eq!(probe_result(&out, "open-read"), "ok", "{}", out.describe());

    // The sandbox holds the caller's supplementary groups (none here), not the daemon's 0
    // (which would show as the overflow gid inside).
    let out = d.run(
        &user,
        &[
            "--default-view",
            "--",
            "/bin/grep",
            "^Groups:",
            "/proc/self/status",
        ],
    );
    out.expect_success();
    assert_eq!(out.stdout.trim(), "Groups:", "{}", out.describe());
}

/// The caller's own supplementary groups are kept on both ways in: a `root:G 0640` file is
/// readable when the caller is a member of G, through the daemon (which itself holds group 0)
/// and through the setuid helper, while `root:root 0640` stays unreadable on both.
#[test]
fn the_callers_own_groups_reach_the_sandbox_on_both_ways_in() {
    root_or_skip!();
    let g = TempGroup::new();
    let groups = login_groups();
    assert!(groups.contains(&g.gid), "{groups:?} lacks {}", g.gid);
    let d = daemon_with_group_0(&[]);
    let files = group_files(Some(g.gid));
    let dir = files.path().to_str().unwrap();
    let nsjail = setuid_install().nsjail.clone();
    let ids = test_user();
    let sock = d.socket.to_str().unwrap().to_string();
    for (way, socket) in [("daemon", sock.as_str()), ("setuid", "none")] {
        let run = |args: &[&str]| {
            let mut a = vec!["run"];
            a.extend_from_slice(args);
            as_user_with_groups(&nsjail, &a, ids, &groups, socket)
        };
        let probe = |name: &str| {
            let f = format!("/d/{name}");
            run(&[
                "--verbose",
                "--default-view",
                "--ro-bind",
                dir,
                "/d",
                "--",
                "/d/nsjail-probe",
                "open-read",
                &f,
            ])
        };
        let out = probe("group-0640");
        assert_eq!(
            probe_result(&out, "open-read"),
            "ok",
            "[{way}] {}",
            out.describe()
        );
        let expect_way = if way == "daemon" {
            "nsjail: daemon at"
        } else {
            "setuid root"
        };
        assert!(
            out.stderr.contains(expect_way),
            "[{way}] {}",
            out.describe()
        );
        let out = probe("root-0640");
        assert_eq!(
            probe_result(&out, "open-read"),
            "EACCES",
            "[{way}] {}",
            out.describe()
        );
        let bound = format!("{dir}/group-0640");
        let out = run(&[
            "--default-view",
            "--ro-bind",
            &bound,
            "/secret",
            "--",
            "/bin/cat",
            "/secret",
        ]);
        out.expect_success();
        assert_eq!(
            out.stdout,
            "contents of group-0640\n",
            "[{way}] {}",
            out.describe()
        );
    }
}

/// A daemon in a mount namespace of its own where `/etc/nsjail` is `etc`: it reads that
/// policy.
fn daemon_with_policy(etc: &Path) -> (Running, PathBuf, tempfile::TempDir) {
    let dir = scratch_dir();
    let socket = dir.path().join("helper.sock");
    let mut cmd = Command::new(tool("unshare"));
    cmd.args(["-m", "--propagation", "private", &tool("sh"), "-c"])
        .arg("mount --bind \"$1\" /etc/nsjail && exec \"$2\" --socket \"$3\"")
        .arg("sh")
        .arg(etc)
        .arg(helperd_bin())
        .arg(&socket)
        .env_clear()
        .current_dir("/");
    let daemon = Running::spawn_with_timeout(&mut cmd, None, "daemon with a policy", TIMEOUT * 4);
    assert!(
        poll_until(TIMEOUT, || UnixStream::connect(&socket).is_ok()),
        "{}",
        daemon.stderr.text()
    );
    (daemon, socket, dir)
}

/// Through the daemon, the policy's `[access] groups` matches the caller's supplementary
/// groups (as the kernel recorded them at connect), as it does on the setuid path: a group the
/// caller holds but /etc/group does not list them in admits them; without it they are refused.
#[test]
fn the_policys_group_access_sees_the_callers_supplementary_groups_through_the_daemon() {
    root_or_skip!();
    // A gid no /etc/group entry lists the test user in.
    let gid = 40_000 + (std::process::id() % 10_000);
    let env = PolicyEnv::with_policy(&format!("[access]\ngroups = [{gid}]\n"));
    let (daemon, socket, _dir) = daemon_with_policy(env.etc.path());
    let nsjail = setuid_install().nsjail.clone();
    let ids = test_user();
    let sock = socket.to_str().unwrap();
    let out = as_user_with_groups(&nsjail, &["run", "--", "/bin/true"], ids, &[gid], sock);
    out.expect_success();
    let out = as_user_with_groups(&nsjail, &["run", "--", "/bin/true"], ids, &[], sock);
    out.expect_code(125).expect_one_error_line(&format!(
        "nsjail: the nsjail policy does not allow uid {} to use the helper",
        ids.0
    ));
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.wait().expect_success();
}

// ---------------------------------------------------------------------------------------------
// Item 2: no less restricted sandbox from inside a sandbox

/// What the daemon answers a process that runs with `no_new_privs`.
const NNP_REFUSAL: &str = "nsjail: the daemon does not serve a process that runs with \
                           no_new_privs, as every sandboxed process does: a sandbox may not \
                           obtain a less restricted sandbox";
/// What the daemon answers a process in another user namespace.
const USERNS_REFUSAL: &str = "nsjail: the daemon does not serve a process in another user \
                              namespace than its own, as every sandboxed process is: a sandbox \
                              may not obtain a less restricted sandbox";

/// A payload whose view shows the daemon's socket and the CLI asks the daemon for a sandbox
/// with the host's network, no seccomp filter and a writable bind its own view made
/// read-only: refused, with one line, exit 125. The control: the same request from outside a
/// sandbox is served.
#[test]
fn a_sandbox_cannot_ask_the_daemon_for_a_less_restricted_sandbox() {
    root_or_skip!();
    let user = Caller::setuid_user();
    let d = Daemon::start(&[]);
    let target = user.scratch();
    let t = target.path().to_str().unwrap();
    let out_file = target.path().join("out");
    let inner = [
        "--default-view",
        "--share-net",
        "--seccomp",
        "none",
        "--bind",
        t,
        "/mnt",
        "--",
        "/bin/sh",
        "-c",
        "echo written > /mnt/out",
    ];
    // The control: from outside a sandbox the daemon serves exactly this.
    d.run(&user, &inner).expect_success();
    assert_eq!(fs::read_to_string(&out_file).unwrap(), "written\n");
    fs::remove_file(&out_file).unwrap();

    let script = format!(
        "env -i PATH={USER_PATH} HOME=/ NSJAIL_SOCKET={} {} run {}; echo inner-exit=$?",
        d.socket.display(),
        setuid_install().nsjail.display(),
        shell_words(&inner)
    );
    let out = d.run(
        &user,
        &[
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ],
    );
    out.expect_success().expect_no_panic();
    assert_eq!(out.stdout, "inner-exit=125\n", "{}", out.describe());
    assert_eq!(out.stderr, format!("{NNP_REFUSAL}\n"), "{}", out.describe());
    assert!(!out_file.exists(), "the refused request wrote {out_file:?}");
}

/// A process that is not in a sandbox but runs with `no_new_privs` (as a sandboxed one does)
/// is refused the same way; the control, without it, is served.
#[test]
fn a_no_new_privs_process_is_refused_by_the_daemon() {
    root_or_skip!();
    let user = Caller::setuid_user();
    let d = Daemon::start(&[]);
    d.run(&user, &["--", "/bin/true"]).expect_success();
    let mut cmd = d.run_cmd(&user, &["--", "/bin/true"]);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = Running::spawn(&mut cmd, None, "nsjail run with no_new_privs").wait();
    out.expect_code(125).expect_no_panic();
    assert_eq!(out.stderr, format!("{NNP_REFUSAL}\n"), "{}", out.describe());
}

/// A process without `no_new_privs` but in a user namespace other than the daemon's (here
/// one made by root, whose uid 0 is the test user) is refused too. The control: the same
/// user and command from the daemon's namespace is served.
#[test]
fn a_process_in_another_user_namespace_is_refused_by_the_daemon() {
    root_or_skip!();
    let user = Caller::setuid_user();
    let (uid, gid) = (user.uid, user.gid);
    let d = Daemon::start(&[]);
    d.run(&user, &["--", "/bin/true"]).expect_success();

    let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
    let (to_test, from_child) = nix::unistd::pipe2(cloexec).unwrap();
    let (to_child, from_test) = nix::unistd::pipe2(cloexec).unwrap();
    // A thread writes the child's maps once it has made its namespace (the spawn below waits
    // for the exec, which comes after).
    let mapper = std::thread::spawn(move || {
        let mut buf = [0u8; 4];
        nix::unistd::read(&to_test, &mut buf).expect("the child's pid");
        let pid = i32::from_ne_bytes(buf);
        fs::write(format!("/proc/{pid}/uid_map"), format!("0 {uid} 1\n")).unwrap();
        fs::write(format!("/proc/{pid}/gid_map"), format!("0 {gid} 1\n")).unwrap();
        nix::unistd::write(&from_test, b"1").unwrap();
        drop(to_test);
    });
    let mut cmd = Command::new(tool("env"));
    cmd.args(["-i", &format!("PATH={USER_PATH}"), "HOME=/"])
        .arg(format!("NSJAIL_SOCKET={}", d.socket.display()))
        .arg(&user.nsjail)
        .args(["run", "--", "/bin/true"])
        .env_clear()
        .current_dir("/");
    let (w, r) = (from_child.as_raw_fd(), to_child.as_raw_fd());
    // SAFETY: only raw system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let check = |r: libc::c_int| {
                if r == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::unshare(libc::CLONE_NEWUSER))?;
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(w, pid.as_ptr().cast(), 4) != 4 {
                return Err(std::io::Error::last_os_error());
            }
            let mut b = 0u8;
            if libc::read(r, std::ptr::addr_of_mut!(b).cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            // Uid and gid 0 of the new namespace: the test user on the host.
            check(libc::setresgid(0, 0, 0))?;
            check(libc::setresuid(0, 0, 0))
        });
    }
    let out = Running::spawn(&mut cmd, None, "nsjail run in another user namespace").wait();
    mapper.join().unwrap();
    drop((from_child, to_child));
    out.expect_code(125).expect_no_panic();
    assert_eq!(
        out.stderr,
        format!("{USERNS_REFUSAL}\n"),
        "{}",
        out.describe()
    );
}

/// The setuid path: a payload that runs the setuid-installed CLI gets no privilege
/// (`no_new_privs` and the `nosuid` view make the kernel ignore the setuid bit), so what it
/// gets is confined by its own sandbox: not the host's network even with `--share-net`, the
/// outer filter still applies under `--seccomp none`, and a path the outer view did not have
/// cannot be bound. Each has its control from outside a sandbox. With nested user namespaces
/// allowed (so that the inner sandbox can be made at all) and without (it cannot be).
#[test]
fn a_sandbox_gets_nothing_from_the_setuid_helper() {
    root_or_skip!();
    let user = Caller::setuid_user();
    let env =
        PolicyEnv::with_policy("[allow]\nuserns = true\nshare_net = true\nseccomp_none = true\n");
    let prefix = setuid_install().prefix.to_str().unwrap().to_string();
    let nsjail = setuid_install().nsjail.to_str().unwrap().to_string();
    let probes = user.scratch();
    install_file(&probe_bin(), &probes.path().join("nsjail-probe"), 0o755);
    let probe_dir = probes.path().to_str().unwrap().to_string();
    let probe = format!("{probe_dir}/nsjail-probe");
    let secret = user.scratch();
    fs::write(secret.path().join("secret"), "the secret\n").unwrap();
    let secret_dir = secret.path().to_str().unwrap().to_string();
    let host_net = host_ns("net");

    // The controls, from outside a sandbox: each option means what it says.
    let out = env.run(
        &user,
        None,
        &[
            "--share-net",
            "--seccomp",
            "none",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--",
            "/bin/sh",
            "-c",
            &format!("echo net=$(readlink /proc/self/ns/net); {probe} keyctl"),
        ],
    );
    out.expect_success();
    assert_eq!(
        out.lines(),
        [format!("net={host_net}"), "keyctl: ok".to_string()],
        "{}",
        out.describe()
    );
    let out = env.run(
        &user,
        None,
        &[
            "--ro-bind",
            "/",
            "/",
            "--bind",
            &secret_dir,
            "/mnt",
            "--",
            "/bin/cat",
            "/mnt/secret",
        ],
    );
    out.expect_success();
    assert_eq!(out.stdout, "the secret\n", "{}", out.describe());

    // From inside: the outer view has the install and the probe, not the secret's directory.
    let inner = format!("env -i PATH={USER_PATH} HOME=/ NSJAIL_SOCKET=none {nsjail} run");
    let script = format!(
        "echo outer-net=$(readlink /proc/self/ns/net)\n\
         {inner} --share-net --seccomp none --ro-bind / / --proc /proc --dev /dev -- \
         /bin/sh -c 'echo inner-net=$(readlink /proc/self/ns/net); {probe} keyctl'\n\
         echo inner-exit=$?\n\
         {inner} --ro-bind / / --bind {secret_dir} /mnt -- /bin/cat /mnt/secret\n\
         echo bind-exit=$?\n"
    );
    // The scratch directories (the secret's among them) are hidden; the install and the probe
    // are bound back.
    let scratch = nsjail_tests::scratch_base().to_string_lossy().into_owned();
    let outer = |extra: &[&str]| {
        let mut args: Vec<&str> = vec!["--uid", "1000", "--gid", "1000"];
        args.extend_from_slice(extra);
        args.extend([
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            &scratch,
            "--ro-bind",
            &prefix,
            &prefix,
            "--ro-bind",
            &probe_dir,
            &probe_dir,
            "--",
            "/bin/sh",
            "-c",
            &script,
        ]);
        env.run(&user, None, &args)
    };
    let out = outer(&["--allow-userns"]);
    out.expect_success().expect_no_panic();
    let lines = out.lines();
    let value = |key: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {}", out.describe()))
            .to_string()
    };
    let outer_net = value("outer-net=");
    assert_ne!(outer_net, host_net, "{}", out.describe());
    assert_eq!(value("inner-exit="), "0", "{}", out.describe());
    // --share-net shares the sandbox's own network namespace, never the host's.
    assert_eq!(value("inner-net="), outer_net, "{}", out.describe());
    // --seccomp none removes no filter the outer sandbox installed.
    assert_eq!(value("keyctl: "), "EPERM", "{}", out.describe());
    // A path the outer view did not have cannot be bound.
    assert_eq!(value("bind-exit="), "125", "{}", out.describe());
    assert!(
        !out.stdout.contains("the secret") && out.stderr.contains(&secret_dir),
        "{}",
        out.describe()
    );

    // Without nested user namespaces (the default), the inner nsjail cannot make a sandbox.
    let out = outer(&[]);
    out.expect_success().expect_no_panic();
    let lines = out.lines();
    assert!(
        lines.contains(&"inner-exit=125".to_string())
            && lines.contains(&"bind-exit=125".to_string())
            && !out.stdout.contains("keyctl:"),
        "{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// Item 4: the client socket never blocks the supervisor

/// A spawn request for a marked `sleep` ended by a 3 s wall-clock limit.
fn limited_sleep() -> (nsjail_core::SpawnRequest, [String; 2]) {
    let (secs, argv) = marked_sleep();
    let mut req = spawn_request(&["/bin/sleep", &secs]);
    req.limits.wall_time_us = Some(3_000_000);
    (req, argv)
}

/// A valid `--wall-time-limit 3` request followed by the first bytes of another frame: the
/// sandbox is still ended at its limit. (The daemon's request timeout is long here, so that it
/// could not be what ends a stuck connection.)
#[test]
fn half_a_frame_after_the_request_does_not_freeze_the_supervisor() {
    root_or_skip!();
    for way in BOTH {
        let what = format!("{way:?}");
        let mut raw = Raw::open(way, &["--request-timeout", "600"]);
        let (req, argv) = limited_sleep();
        let mut bytes = wire::encode(&ClientMessage::Spawn(Box::new(req))).unwrap();
        let next = wire::encode(&ClientMessage::Signal(15)).unwrap();
        bytes.extend_from_slice(&next[..5]);
        send(&raw.sock, &bytes, &devnull_stdio());
        expect_started_then_ended(&argv, Duration::from_secs(30), &what);
        let events = read_to_end(&mut raw.sock);
        assert!(
            matches!(events.first(), Some(HelperEvent::Started { .. })),
            "{what}: {events:?}"
        );
        expect_wall_limit_exit(&events, &what);
    }
}

/// A request with 1500 set-up steps reported (`--verbose`), far more than the socket buffers
/// hold, from a client that never reads: the sandbox is still ended at its wall-clock limit,
/// and every event is there for the client when it does read.
#[test]
fn a_client_that_never_reads_does_not_keep_a_time_limited_sandbox_alive() {
    root_or_skip!();
    const STEPS: usize = 1500;
    for way in BOTH {
        let what = format!("{way:?}");
        let mut raw = Raw::open(way, &[]);
        let (mut req, argv) = limited_sleep();
        req.verbose = true;
        let long = "x".repeat(100);
        for i in 0..STEPS {
            req.mounts.push(MountOp::Dir {
                dst: format!("/many/{i}-{long}"),
                perms: None,
            });
        }
        let frame = wire::encode(&ClientMessage::Spawn(Box::new(req))).unwrap();
        send(&raw.sock, &frame, &devnull_stdio());
        expect_started_then_ended(&argv, Duration::from_secs(30), &what);
        let events = read_to_end(&mut raw.sock);
        let steps = events
            .iter()
            .filter(|e| matches!(e, HelperEvent::Step(s) if s.starts_with("mount: --dir /many/")))
            .count();
        assert_eq!(steps, STEPS, "{what}: {} events", events.len());
        expect_wall_limit_exit(&events, &what);
    }
}

/// Through the daemon, the request timeout is one deadline for the whole request, counted from
/// the connection: a client dripping one byte a second is dropped at it (here 2 s), however
/// recently its last byte came. The control: a request sent in a few pieces within the
/// deadline is served.
#[test]
fn a_dripping_client_is_dropped_at_the_request_deadline() {
    root_or_skip!();
    let (uid, gid) = test_user();
    let d = Daemon::start(&["--request-timeout", "2"]);
    let frame = wire::encode(&ClientMessage::Spawn(Box::new(spawn_request(&[
        "/bin/true",
    ]))))
    .unwrap();

    // The control: three pieces 300 ms apart.
    let mut sock = connect_as(&d.socket, uid, gid);
    let third = frame.len() / 3;
    send(&sock, &frame[..third], &devnull_stdio());
    for piece in [&frame[third..2 * third], &frame[2 * third..]] {
        std::thread::sleep(Duration::from_millis(300));
        send(&sock, piece, &[]);
    }
    let events = read_to_end(&mut sock);
    assert!(
        matches!(
            events.last(),
            Some(HelperEvent::Exited(i)) if i.termination == Termination::Exited(0)
        ),
        "{events:?}"
    );

    // The drip.
    let mut sock = connect_as(&d.socket, uid, gid);
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let connected = Instant::now();
    let writer = sock.try_clone().unwrap();
    let dripping = frame.clone();
    let drip = std::thread::spawn(move || {
        send(&writer, &dripping[..1], &devnull_stdio());
        for b in &dripping[1..] {
            std::thread::sleep(Duration::from_secs(1));
            if (&writer).write_all(std::slice::from_ref(b)).is_err() {
                return;
            }
        }
    });
    let ev = wire::read_frame::<_, HelperEvent>(&mut sock);
    let took = connected.elapsed();
    match ev {
        Ok(Some(HelperEvent::Error {
            kind: ErrorKind::BadRequest,
            message,
        })) => assert!(
            message.contains("no complete request arrived in time"),
            "{message}"
        ),
        other => panic!("expected the drip to be dropped after {took:?}, got {other:?}"),
    }
    assert!(
        took < Duration::from_secs(10),
        "dropped only after {took:?}: the 2 s deadline is not counted from the connection"
    );
    drop(sock);
    drip.join().unwrap();
    assert!(
        poll_until(TIMEOUT, || d.children().is_empty()),
        "connection processes left: {:?}",
        d.children()
    );
}

// ---------------------------------------------------------------------------------------------
// Item 8: the daemon's socket mode

/// Inotify events (mask, name) read from `fd` without waiting.
fn inotify_events(fd: &OwnedFd) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match nix::unistd::read(fd, &mut buf) {
            Ok(n) if n > 0 => n,
            _ => return out,
        };
        let mut at = 0;
        while at + 16 <= n {
            let word = |i: usize| u32::from_ne_bytes(buf[at + i..at + i + 4].try_into().unwrap());
            let (mask, len) = (word(4), word(12) as usize);
            let name = String::from_utf8_lossy(&buf[at + 16..at + 16 + len])
                .trim_end_matches('\0')
                .to_string();
            out.push((mask, name));
            at += 16 + len;
        }
    }
}

fn inotify_on(dir: &Path, mask: u32) -> OwnedFd {
    use std::os::fd::FromRawFd;
    let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: plain system calls on a NUL-terminated path; the new fd is ours alone.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK);
        assert!(fd >= 0, "inotify_init1");
        assert!(
            libc::inotify_add_watch(fd, path.as_ptr(), mask) >= 0,
            "inotify_add_watch"
        );
        OwnedFd::from_raw_fd(fd)
    }
}

fn start_bound_daemon(socket: &Path, mode: &str) -> Running {
    let mut cmd = Command::new(helperd_bin());
    cmd.args(["--socket"])
        .arg(socket)
        .args(["--socket-mode", mode])
        .env_clear()
        .current_dir("/");
    let d = Running::spawn_with_timeout(&mut cmd, None, "a daemon binding", TIMEOUT * 4);
    assert!(
        d.stderr.wait_for("daemon listening on", TIMEOUT),
        "{}",
        d.stderr.text()
    );
    d
}

/// The daemon's socket has the asked mode from the moment it exists: its path is never
/// changed afterwards (no attribute change is seen on it), so a symlink put in its place right
/// after it was made is never followed to change another file's mode.
#[test]
fn the_daemon_socket_gets_its_mode_when_it_is_made() {
    root_or_skip!();
    for mode in [0o600u32, 0o660, 0o666] {
        let dir = scratch_dir();
        let socket = dir.path().join("helper.sock");
        let watch = inotify_on(dir.path(), libc::IN_CREATE | libc::IN_ATTRIB);
        let d = start_bound_daemon(&socket, &format!("{mode:o}"));
        let st = fs::symlink_metadata(&socket).unwrap();
        assert_eq!(st.permissions().mode() & 0o7777, mode, "{mode:o}");
        let events = inotify_events(&watch);
        let on_socket: Vec<u32> = events
            .iter()
            .filter(|(_, n)| n == "helper.sock")
            .map(|(m, _)| *m)
            .collect();
        assert!(
            on_socket.iter().any(|m| m & libc::IN_CREATE != 0),
            "{mode:o}: no creation seen: {events:?}"
        );
        assert!(
            on_socket.iter().all(|m| m & libc::IN_ATTRIB == 0),
            "{mode:o}: the socket's attributes were changed by path after it was made \
             (a chmod that a symlink swapped in could redirect): {events:?}"
        );
        d.signal(nix::sys::signal::Signal::SIGTERM);
        d.wait().expect_success();
    }

    // The attack: a symlink to a root-only file renamed over the socket the moment it appears.
    let victim_dir = scratch_dir();
    let victim = victim_dir.path().join("victim");
    fs::write(&victim, "root only\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    for _ in 0..10 {
        let dir = scratch_dir();
        let socket = dir.path().join("helper.sock");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let watch = inotify_on(dir.path(), libc::IN_CREATE);
        let (s, l) = (socket.clone(), link.clone());
        let racer = std::thread::spawn(move || {
            let deadline = Instant::now() + TIMEOUT;
            while Instant::now() < deadline {
                if inotify_events(&watch)
                    .iter()
                    .any(|(_, n)| n == "helper.sock")
                {
                    fs::rename(&l, &s).unwrap();
                    return;
                }
                std::hint::spin_loop();
            }
        });
        let d = start_bound_daemon(&socket, "666");
        racer.join().unwrap();
        assert_eq!(
            fs::metadata(&victim).unwrap().permissions().mode() & 0o7777,
            0o600,
            "the daemon changed the mode of the file a symlink in its socket's place pointed to"
        );
        d.signal(nix::sys::signal::Signal::SIGTERM);
        d.wait().expect_success();
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon's log says what happened

/// A daemon whose `/dev/log` is a socket of ours (in a mount namespace of its own, with an
/// overlay on /dev so the host's is untouched).
struct LoggingDaemon {
    run: Option<Running>,
    socket: PathBuf,
    log: UnixDatagram,
    _dir: tempfile::TempDir,
}

impl LoggingDaemon {
    fn start() -> LoggingDaemon {
        let dir = scratch_dir();
        let log_path = dir.path().join("log.sock");
        let log = UnixDatagram::bind(&log_path).unwrap();
        log.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        for d in ["upper", "work"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let socket = dir.path().join("helper.sock");
        let mut cmd = Command::new(tool("unshare"));
        cmd.args(["-m", "--propagation", "private", &tool("sh"), "-c"])
            .arg(
                "mount -t overlay overlay -o lowerdir=/dev,upperdir=\"$1/upper\",workdir=\"$1/work\" /dev \
                 && ln -sf \"$1/log.sock\" /dev/log && exec \"$2\" --socket \"$3\"",
            )
            .arg("sh")
            .arg(dir.path())
            .arg(helperd_bin())
            .arg(&socket)
            .env_clear()
            .current_dir("/");
        let run = Running::spawn_with_timeout(&mut cmd, None, "logging daemon", TIMEOUT * 4);
        assert!(
            poll_until(TIMEOUT, || UnixStream::connect(&socket).is_ok()),
            "{}",
            run.stderr.text()
        );
        LoggingDaemon {
            run: Some(run),
            socket,
            log,
            _dir: dir,
        }
    }

    /// The next log line that contains `needle`, its header (`<PRI>date nsjail-helper[PID]: `)
    /// cut off and its variable parts (`sandbox_pid=`, `duration=`) replaced by `S` and `D`.
    #[track_caller]
    fn line_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.log.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                if line.contains(needle) {
                    return normalise(&line);
                }
                seen.push(line);
            }
        }
        panic!("no log line contains {needle:?}; got:\n{}", seen.join("\n"));
    }

    fn stop(mut self) {
        let run = self.run.take().unwrap();
        run.signal(nix::sys::signal::Signal::SIGTERM);
        run.wait().expect_success();
    }
}

fn normalise(line: &str) -> String {
    let body = line.split_once("]: ").map_or(line, |(_, b)| b);
    let mut out = String::new();
    for (i, word) in body.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if let Some(v) = word.strip_prefix("sandbox_pid=")
            && v.chars().all(|c| c.is_ascii_digit())
        {
            out.push_str("sandbox_pid=S");
        } else if word.starts_with("duration=") && word.ends_with('s') {
            out.push_str("duration=D");
        } else {
            out.push_str(word);
        }
    }
    out
}

/// Each way a connection ends is logged as what it was: a client that gives up before it sends
/// anything, one that goes away after its sandbox started (with unread events: the daemon's
/// read then fails with ECONNRESET), and limit kills that name the limit.
#[test]
fn the_daemon_log_says_what_happened() {
    root_or_skip!();
    let (uid, gid) = test_user();
    let user = Caller::setuid_user();
    let d = LoggingDaemon::start();
    let via = |args: &[&str]| {
        let mut cmd = user.run_cmd(args);
        through_daemon_at(&mut cmd, &d.socket);
        Running::spawn(&mut cmd, None, "nsjail through the logging daemon")
    };

    // The CLI cannot open its own --status-json file: it gives up after connecting.
    let r = via(&[
        "--status-json",
        "/nonexistent-e2e/status.json",
        "--",
        "/bin/true",
    ]);
    let cli = r.pid();
    r.wait().expect_code(125);
    assert_eq!(
        d.line_with(&format!("pid={cli} ")),
        format!(
            "closed via=daemon uid={uid} gid={gid} pid={cli} argv0=- result=\"the client hung \
             up before sending a request\" duration=D"
        )
    );

    // A client that connects and exits at once: whether the daemon's check of the connecting
    // process comes before its exit or after (and finds it gone), nothing was asked.
    for _ in 0..5 {
        let mut cmd = Command::new(tool("python3"));
        cmd.args(["-S", "-c"])
            .arg("import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])")
            .arg(&d.socket)
            .env_clear()
            .current_dir("/")
            .uid(uid)
            .gid(gid);
        let r = Running::spawn(&mut cmd, None, "a client that connects and exits");
        let client = r.pid();
        r.wait().expect_success();
        assert_eq!(
            d.line_with(&format!("pid={client} ")),
            format!(
                "closed via=daemon uid={uid} gid={gid} pid={client} argv0=- result=\"the client \
                 hung up before sending a request\" duration=D"
            )
        );
    }

    // A client that goes away after its sandbox started, its events unread.
    let me = std::process::id();
    let (secs, argv) = marked_sleep();
    let mut req = spawn_request(&["/bin/sleep", &secs]);
    req.verbose = true;
    let s = connect_as(&d.socket, uid, gid);
    send(
        &s,
        &wire::encode(&ClientMessage::Spawn(Box::new(req))).unwrap(),
        &devnull_stdio(),
    );
    assert!(poll_until(TIMEOUT, || !payload_pids(&argv).is_empty()));
    drop(s);
    assert!(poll_until(TIMEOUT, || payload_pids(&argv).is_empty()));
    assert_eq!(
        d.line_with(&format!("pid={me} ")),
        format!(
            "spawn via=daemon uid={uid} gid={gid} pid={me} argv0=\"/bin/sleep\" result=\"the \
             client went away; sandbox killed\" sandbox_pid=S duration=D"
        )
    );

    // Limit kills name the limit.
    for (args, result) in [
        (
            vec!["--wall-time-limit", "1", "--", "/bin/sleep", "30"],
            "wall-clock time limit (1.000 s) reached: killed by signal 9",
        ),
        (
            vec![
                "--time-limit",
                "0.5",
                "--",
                "/bin/sh",
                "-c",
                "while :; do :; done",
            ],
            "CPU time limit (0.500 s) reached: killed by signal 9",
        ),
        (
            vec![
                "--memory-limit",
                "32M",
                "--",
                "/usr/bin/python3",
                "-S",
                "-c",
                "b = b'x' * (256 << 20)",
            ],
            "memory limit (32 MiB) reached: killed by signal 9",
        ),
    ] {
        let r = via(&args);
        let cli = r.pid();
        r.wait().expect_code(137);
        let argv0 = args[args.iter().position(|a| *a == "--").unwrap() + 1];
        assert_eq!(
            d.line_with(&format!("pid={cli} ")),
            format!(
                "spawn via=daemon uid={uid} gid={gid} pid={cli} argv0=\"{argv0}\" \
                 result=\"{result}\" sandbox_pid=S duration=D"
            )
        );
    }

    // A process with no_new_privs is refused, and the log says why.
    let mut cmd = user.run_cmd(&["--", "/bin/true"]);
    through_daemon_at(&mut cmd, &d.socket);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let r = Running::spawn(&mut cmd, None, "nsjail with no_new_privs");
    let cli = r.pid();
    r.wait().expect_code(125);
    let reason = NNP_REFUSAL.strip_prefix("nsjail: ").unwrap();
    assert_eq!(
        d.line_with(&format!("pid={cli} ")),
        format!(
            "refused via=daemon uid={uid} gid={gid} pid={cli} argv0=- reason=\"BadRequest: \
             {reason}\" duration=D"
        )
    );
    d.stop();
}

// ---------------------------------------------------------------------------------------------
// Keyrings: every sandbox gets a session keyring of its own

/// The payload of the keyring test: `add DESC` puts a `user` key in its session keyring and
/// reads it back; `search DESC` looks for it from its session keyring; `both DESC` does both in
/// one sandbox (the search's control). The syscalls go through ctypes (x86-64 numbers), so
/// nothing beyond python3 is needed.
const KEYRING_PROBE: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_add_key, SYS_keyctl = 248, 250
KEY_SPEC_SESSION_KEYRING, KEYCTL_SEARCH, KEYCTL_READ = -3, 10, 11
mode, desc = sys.argv[1], sys.argv[2].encode()
def syscall(*a):
    r = libc.syscall(*[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r if r >= 0 else -ctypes.get_errno()
if mode in ("add", "both"):
    k = syscall(SYS_add_key, b"user", desc, b"s3cret", 6, KEY_SPEC_SESSION_KEYRING)
    buf = ctypes.create_string_buffer(64)
    n = syscall(SYS_keyctl, KEYCTL_READ, k, buf, 64) if k > 0 else k
    print("read", buf.raw[:n].decode() if n > 0 else "errno=%d" % -n)
if mode in ("search", "both"):
    k = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, b"user", desc, 0)
    print("search", "found" if k > 0 else "errno=%d" % -k)
"#;

/// A daemon with a session keyring of its own, as systemd gives a service with
/// `KeyringMode=private` (the shipped unit): `keyctl(KEYCTL_JOIN_SESSION_KEYRING)` in a
/// python3 wrapper that then execs the helper.
fn daemon_with_a_session_keyring() -> Daemon {
    let python = tool("python3");
    let wrapper = "import ctypes, os, sys; ctypes.CDLL(None).syscall(250, 1, b'nsjail-e2e-daemon'); \
                   os.execv(sys.argv[1], sys.argv[1:])";
    Daemon::start_wrapped(&[python, "-c".into(), wrapper.into()], &[])
}

/// Found in review: through the daemon, every sandbox of every user shared the daemon's
/// session keyring, so a key one user's payload added could be read, changed or revoked by
/// another's (with the default filter off, which the policy allows by default).
#[test]
fn every_sandbox_has_a_session_keyring_of_its_own() {
    root_or_skip!();
    let d = daemon_with_a_session_keyring();
    let user = Caller::daemon_user();
    let desc = format!("nsjail-e2e-key-{}", unique());
    let probe = |c: &Caller, mode: &str| {
        d.run(
            c,
            &[
                "--seccomp",
                "none",
                "--",
                "/usr/bin/python3",
                "-c",
                KEYRING_PROBE,
                mode,
                &desc,
            ],
        )
        .expect_success()
        .stdout
        .clone()
    };
    // The control: a sandbox reads back its own key, and finds it from its session keyring.
    assert_eq!(probe(&user, "both"), "read s3cret\nsearch found\n");
    // A key left by one sandbox is not in the next one's session keyring, the same user's
    // or root's.
    assert_eq!(probe(&user, "add"), "read s3cret\n");
    for c in [&user, &Caller::daemon_root()] {
        assert_eq!(
            probe(c, "search"),
            format!("search errno={}\n", libc::ENOKEY),
            "[{}] found a key another sandbox added",
            c.name()
        );
    }
    d.stop();
}

/// Listen at `socket` as uid:gid 65534 (nobody), answer one connection, and say how many bytes
/// it received before the other side closed (or 5 s went by).
const FAKE_DAEMON: &str = r#"
import os, socket, sys
os.umask(0)
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
c.settimeout(5)
n = 0
try:
    while True:
        b = c.recv(65536)
        if not b:
            break
        n += len(b)
except OSError:
    pass
print("received", n, flush=True)
"#;

/// The CLI hands the daemon its stdio and its request: only a daemon run by root (or by the
/// caller itself) gets them. Another user answering at the socket path the CLI was given is
/// refused in one line, and is sent nothing.
#[test]
fn the_cli_sends_nothing_to_a_daemon_another_user_runs() {
    root_or_skip!();
    let c = Caller::daemon_user();
    let dir = scratch_dir();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let fake = dir.path().join("helper.sock");
    let mut listener = Command::new(tool("setpriv"));
    listener
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(tool("python3"))
        .args(["-c", FAKE_DAEMON])
        .arg(&fake)
        .env_clear()
        .current_dir("/");
    let mut fake_daemon = Running::spawn(&mut listener, None, "a daemon run by nobody");
    fake_daemon.wait_stdout("listening");

    // The control: the same run reaches the real daemon (root's).
    c.run(&["--", "/bin/true"]).expect_success();

    let mut cmd = c.run_cmd(&["--", "/bin/true"]);
    cmd.env("NSJAIL_SOCKET", &fake);
    let out = Running::spawn(&mut cmd, None, "nsjail run through nobody's socket").wait();
    out.expect_code(125)
        .expect_no_panic()
        .expect_one_error_line(&format!(
            "nsjail: the daemon at {} ($NSJAIL_SOCKET) runs as uid 65534, not root: not sending \
             it a request",
            fake.display()
        ));
    let said = fake_daemon.wait();
    assert_eq!(
        said.stdout.trim(),
        "listening\nreceived 0",
        "{}",
        said.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// No root daemon for whoever runs a setuid file

/// The setuid file holds no daemon: asked for one by an ordinary user, it refuses at once,
/// names the daemon's binary, and nothing listens. The control: the daemon's own binary, run by
/// root, listens on such a socket.
#[test]
fn the_setuid_helper_has_no_daemon_mode() {
    root_or_skip!();
    let user = Caller::setuid_user();
    let dir = user.scratch();
    let socket = dir.path().join("helper.sock");
    let mut cmd = user.command_for(&setuid_install().helper);
    cmd.arg("--daemon").arg("--socket").arg(&socket);
    let out = Running::spawn(&mut cmd, None, "setuid nsjail-helper --daemon").wait();
    out.expect_code(1);
    assert!(
        out.stderr.contains("nsjail-helperd"),
        "the refusal names the daemon's binary: {}",
        out.describe()
    );
    assert!(!socket.exists(), "something listens: {}", out.describe());

    let d = Daemon::start(&[]);
    assert!(
        UnixStream::connect(&d.socket).is_ok(),
        "control: the daemon's binary listens"
    );
}

/// `nsjail-helperd` is never installed setuid; made so by mistake, it still refuses a start by
/// an ordinary user (a root daemon on a socket of their choosing). The control: the same file
/// started by root listens.
#[test]
fn a_daemon_made_setuid_by_mistake_refuses_an_ordinary_user() {
    root_or_skip!();
    // Beside the setuid helper: a file system where the setuid bit works.
    let dir = setuid_install().helper.parent().unwrap().to_path_buf();
    let file = dir.join(format!("nsjail-helperd-setuid-{}", unique()));
    install_file(&helperd_bin(), &file, 0o4755);
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(file.clone());

    let user = Caller::setuid_user();
    let scratch = user.scratch();
    let socket = scratch.path().join("helper.sock");
    let mut cmd = user.command_for(&file);
    cmd.arg("--socket").arg(&socket);
    let out = Running::spawn(&mut cmd, None, "a setuid nsjail-helperd, as a user").wait();
    out.expect_code(1);
    assert!(
        out.stderr.contains("not through a setuid bit"),
        "{}",
        out.describe()
    );
    assert!(!socket.exists(), "something listens: {}", out.describe());

    let root_socket = scratch.path().join("root.sock");
    let mut cmd = Caller::root().command_for(&file);
    cmd.arg("--socket").arg(&root_socket);
    let d = Running::spawn_with_timeout(&mut cmd, None, "the same file, as root", TIMEOUT * 4);
    let listening = poll_until(TIMEOUT, || UnixStream::connect(&root_socket).is_ok());
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let out = d.wait();
    assert!(
        listening,
        "control: root's start listens: {}",
        out.describe()
    );
}
