//! The default view never hands the payload a shared temporary or runtime directory, nor one
//! that holds a Unix socket, as its working directory.
//!
//! Run from `/tmp`, the default view used to bind the host's `/tmp` read-write over its private
//! one, and a payload drove the caller's tmux server through `/tmp/tmux-UID/`. Each test here
//! puts a socket the caller listens on where such a server would, runs the default view from
//! that directory, and has the payload try to connect; the control gives the same payload the
//! same directory explicitly, and it connects.

use std::io::Read;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nsjail_tests::{Caller, Output, for_each_caller};
use tempfile::TempDir;

use crate::fsutil::{How, argv, run, s};

/// Connects to `argv[1]`, sends a line, and prints `connect: ok` or `connect: ERRNO`.
const CONNECT: &str = "import socket, sys, errno\n\
s = socket.socket(socket.AF_UNIX)\n\
try:\n    s.connect(sys.argv[1]); s.sendall(b'escaped'); print('connect: ok')\n\
except OSError as e:\n    print('connect: ' + errno.errorcode.get(e.errno, str(e.errno)))\n";

/// A directory owned by `c` (0700) in `base`, holding a socket `S` that the test listens on,
/// as a tmux server or an ssh agent would have it.
struct Server {
    dir: TempDir,
    listener: UnixListener,
}

impl Server {
    fn new(c: &Caller, base: &Path) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("nsjail-e2e-sock-")
            .tempdir_in(base)
            .unwrap_or_else(|e| panic!("a directory in {}: {e}", base.display()));
        Server::in_dir(c, dir)
    }

    fn in_dir(c: &Caller, dir: TempDir) -> Server {
        let sock = dir.path().join("S");
        let listener = UnixListener::bind(&sock).expect("bind the test's socket");
        listener.set_nonblocking(true).unwrap();
        for p in [dir.path(), sock.as_path()] {
            chown(p, Some(c.uid), Some(c.gid)).unwrap();
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
        Server { dir, listener }
    }

    fn socket(&self) -> String {
        s(&self.dir.path().join("S"))
    }

    /// What a client sent, if one connected (the connection waits in the backlog after the
    /// client has gone).
    fn received(&self) -> Option<String> {
        let (mut conn, _) = self.listener.accept().ok()?;
        conn.set_nonblocking(false).unwrap();
        let mut got = String::new();
        let _ = conn.read_to_string(&mut got);
        Some(got)
    }
}

/// The payload tries to connect to `socket`, in the default view (plus `opts`), run from `cwd`.
fn try_connect(
    c: &Caller,
    opts: &[&str],
    cwd: &Path,
    env: &[(&str, &str)],
    socket: &str,
) -> Output {
    let mut o: Vec<String> = vec!["--verbose".into()];
    o.extend(opts.iter().map(|s| s.to_string()));
    run(
        c,
        &argv(&o, &["/usr/bin/python3", "-c", CONNECT, socket]),
        &How {
            cwd: Some(cwd),
            env: env.to_vec(),
            ..How::default()
        },
    )
}

/// The `--verbose` lines of the default view.
fn notes(out: &Output) -> Vec<&str> {
    out.stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("nsjail: default view:"))
        .collect()
}

/// `cases`: (a directory the caller's server is in, the environment of the run, what the note
/// must say). For each: from that directory the payload cannot reach the socket, the default
/// view says why in one line; given the directory explicitly (the control) it can.
/// A server, the environment of the run from its directory, what the note must say.
type Case = (Server, Vec<(&'static str, String)>, String);

fn cannot_reach_from(c: &Caller, cases: Vec<Case>) {
    for (server, env, says) in cases {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sock = server.socket();
        let dir = server.dir.path();
        let out = try_connect(c, &[], dir, &env, &sock);
        let what = format!("[{}] from {}: {}", c.name(), dir.display(), out.describe());
        out.expect_success();
        assert_eq!(out.lines(), ["connect: ENOENT"], "{what}");
        assert_eq!(
            server.received(),
            None,
            "the payload reached the socket: {what}"
        );
        let n = notes(&out);
        assert!(
            n.len() == 1 && n[0].contains("not bound") && n[0].contains(&says),
            "--verbose should say the directory is not bound ({says:?}): {what}"
        );

        // The control: the same payload reaches the socket when it is given the directory.
        let d = s(dir);
        let out = try_connect(c, &["--default-view", "--bind", &d, &d], dir, &env, &sock);
        let what = format!("[{}] control in {d}: {}", c.name(), out.describe());
        assert_eq!(out.lines(), ["connect: ok"], "{what}");
        assert_eq!(server.received().as_deref(), Some("escaped"), "{what}");
    }
}

#[test]
fn a_payload_run_from_a_shared_temporary_directory_cannot_reach_the_callers_sockets() {
    for_each_caller(|c| {
        let mut cases = Vec::new();
        for base in ["/tmp", "/var/tmp", "/dev/shm", "/run"] {
            if Path::new(base).is_dir() {
                cases.push((Server::new(c, Path::new(base)), vec![], base.to_string()));
            }
        }
        // $XDG_RUNTIME_DIR, wherever it is (here a directory of the caller's).
        let runtime = c.scratch();
        let runtime_dir = s(runtime.path());
        cases.push((
            Server::new(c, runtime.path()),
            vec![("XDG_RUNTIME_DIR", runtime_dir.clone())],
            runtime_dir,
        ));
        cannot_reach_from(c, cases);
    });
}

#[test]
fn a_working_directory_that_holds_a_socket_is_not_bound() {
    for_each_caller(|c| {
        let server = Server::in_dir(c, c.scratch());
        cannot_reach_from(c, vec![(server, vec![], "a Unix socket".to_string())]);
    });
}

#[test]
fn a_directory_above_a_shared_one_is_not_bound() {
    for_each_caller(|c| {
        // /var holds /var/tmp, /dev holds /dev/shm: binding either would show the host's.
        for (cwd, holds) in [("/var", "/var/tmp"), ("/dev", "/dev/shm")] {
            if !Path::new(holds).is_dir() {
                continue;
            }
            let out = try_connect(c, &[], Path::new(cwd), &[], "/nonexistent");
            let what = format!("[{}] from {cwd}: {}", c.name(), out.describe());
            out.expect_success();
            let n = notes(&out);
            assert!(
                n.len() == 1 && n[0].contains("not bound") && n[0].contains(holds),
                "{what}"
            );
        }
    });
}

#[test]
fn an_ordinary_working_directory_is_still_bound() {
    // The control for the rule as a whole: a directory that is neither shared nor holds a
    // socket is bound, and a socket below it (not directly in it) stays reachable.
    for_each_caller(|c| {
        let top = c.scratch();
        let sub = top.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let server = Server::in_dir(c, tempfile::Builder::new().tempdir_in(&sub).unwrap());
        let out = try_connect(c, &[], top.path(), &[], &server.socket());
        let what = format!("[{}] {}", c.name(), out.describe());
        assert_eq!(out.lines(), ["connect: ok"], "{what}");
        let n = notes(&out);
        assert!(
            n.len() == 1 && n[0].contains("binding the current directory"),
            "{what}"
        );
        assert_eq!(server.received().as_deref(), Some("escaped"), "{what}");
    });
}

#[test]
fn dry_run_shows_why_the_working_directory_is_not_bound() {
    for_each_caller(|c| {
        let server = Server::new(c, Path::new("/tmp"));
        let dir: PathBuf = server.dir.path().to_path_buf();
        let d = s(&dir);
        let dry = |format: &str| {
            let out = run(
                c,
                &argv(&[format.to_string()], &["true"]),
                &How {
                    cwd: Some(&dir),
                    ..How::default()
                },
            );
            out.expect_success();
            out
        };
        let out = dry("--dry-run");
        let what = format!("[{}] {}", c.name(), out.describe());
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains("not bound") && l.contains(&d) && l.contains("/tmp")),
            "{what}"
        );
        assert!(!out.stdout.contains(&format!("--bind {d} {d}")), "{what}");

        let out = dry("--dry-run=json");
        let what = format!("[{}] {}", c.name(), out.describe());
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        let notes = v["resolved"]["notes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            notes.iter().any(|n| n
                .as_str()
                .is_some_and(|n| n.contains("not bound") && n.contains(&d))),
            "{what}"
        );
        let mounts = v["request"]["mounts"].as_array().expect("mounts");
        assert!(
            !mounts.iter().any(|m| m["Bind"]["src"] == d.as_str()),
            "{what}"
        );
        assert_eq!(server.received(), None);
    });
}
