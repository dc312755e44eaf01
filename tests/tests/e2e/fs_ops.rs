//! Each filesystem operation does what it says, seen from inside and, where it touches the host,
//! from outside: content, modes, read-only (`EROFS`), tmpfs sizes, device nodes, `/proc`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nsjail_tests::{Caller, Running, for_each_caller, pids_with_argv, tool, unique};

use crate::fsutil::{
    How, file_with, give, host_mounts_lock, pipe_with, run, run_plain, s, sh_argv, system_args,
    usr_args,
};

const EROFS: &str = "Read-only file system";

/// `system_args()` followed by `more`.
fn sys_and(more: &[&str]) -> Vec<String> {
    let mut v = system_args();
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

/// `usr_args()` followed by `more`.
fn usr_and(more: &[&str]) -> Vec<String> {
    let mut v = usr_args();
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

#[test]
fn bind_is_read_write_and_writes_land_on_the_host_as_the_caller() {
    for_each_caller(|c| {
        let dir = c.scratch();
        fs::write(dir.path().join("existing"), "from-host\n").unwrap();
        let opts = sys_and(&["--bind", &s(dir.path()), "/p"]);
        let out = run_plain(
            c,
            &sh_argv(&opts, "cat /p/existing && echo from-inside > /p/new"),
        );
        out.expect_success();
        assert_eq!(out.stdout, "from-host\n", "{}", out.describe());
        let new = dir.path().join("new");
        assert_eq!(
            fs::read_to_string(&new).ok().as_deref(),
            Some("from-inside\n"),
            "[{}] the write inside did not reach the host directory\n{}",
            c.name(),
            out.describe()
        );
        assert_eq!(
            fs::metadata(&new).unwrap().uid(),
            c.uid,
            "[{}] a file written through --bind must belong to the caller on the host",
            c.name()
        );
    });
}

/// A tmpfs mounted on the host on `dir` (root only), unmounted when dropped.
struct HostTmpfs(String);

impl HostTmpfs {
    fn mount(dir: &Path) -> HostTmpfs {
        let d = s(dir);
        let st = Command::new(tool("mount"))
            .args(["-t", "tmpfs", "-o", "mode=0777", "nsjail-e2e-sub", &d])
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs on {d}: {st}");
        HostTmpfs(d)
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = Command::new(tool("umount")).args(["-l", &self.0]).status();
    }
}

#[test]
fn ro_bind_is_read_only_and_so_is_every_submount() {
    for_each_caller(|c| {
        let dir = c.scratch();
        fs::write(dir.path().join("existing"), "ro-content\n").unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        give(c, &sub);
        // A host mount below the bound directory: it must come along read-only too.
        let _lock = host_mounts_lock();
        let submount = nsjail_tests::root_part(module_path!(), "a host mount below the bind")
            .then(|| HostTmpfs::mount(&sub));
        if submount.is_some() {
            // The host's own mount is writable: the control.
            fs::write(sub.join("control"), "w").unwrap();
            fs::remove_file(sub.join("control")).unwrap();
        }
        let opts = sys_and(&["--ro-bind", &s(dir.path()), "/p"]);
        let script = "cat /p/existing; \
            echo x > /p/new; echo rc-top=$?; \
            echo y > /p/sub/new; echo rc-sub=$?; \
            mkdir /p/newdir; echo rc-mkdir=$?; \
            grep -E ' /p(/sub)? ' /proc/self/mountinfo";
        let out = run_plain(c, &sh_argv(&opts, script));
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        assert!(out.stdout.starts_with("ro-content\n"), "{what}");
        for rc in ["rc-top", "rc-sub", "rc-mkdir"] {
            assert!(
                out.lines()
                    .iter()
                    .any(|l| l.starts_with(rc) && l != &format!("{rc}=0")),
                "{rc}: a write under --ro-bind succeeded: {what}"
            );
        }
        assert!(
            out.stderr.matches(EROFS).count() >= 3,
            "expected EROFS three times: {what}"
        );
        let points: Vec<(String, String)> = out
            .lines()
            .iter()
            .filter(|l| l.contains(" - "))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((f.get(4)?.to_string(), f.get(5)?.to_string()))
            })
            .collect();
        let expect = if submount.is_some() { 2 } else { 1 };
        assert_eq!(points.len(), expect, "mounts at /p and /p/sub: {what}");
        for (point, opts) in &points {
            let o: Vec<&str> = opts.split(',').collect();
            assert!(
                o.contains(&"ro") && o.contains(&"nosuid") && o.contains(&"nodev"),
                "{point} must be ro,nosuid,nodev, is {opts}: {what}"
            );
        }
        for f in ["new", "sub/new", "newdir"] {
            assert!(
                !dir.path().join(f).exists(),
                "{f} appeared on the host: {what}"
            );
        }
        drop(submount);
    });
}

#[test]
fn dev_bind_keeps_device_nodes_usable_and_other_binds_do_not() {
    for_each_caller(|c| {
        let out = run_plain(
            c,
            &sh_argv(
                &sys_and(&["--dev-bind", "/dev/null", "/n"]),
                "echo x > /n && head -c 1 /n; echo dev-bind-ok",
            ),
        );
        out.expect_success();
        assert_eq!(
            out.out(),
            "dev-bind-ok",
            "[{}] {}",
            c.name(),
            out.describe()
        );
        for bind in ["--bind", "--ro-bind"] {
            let out = run_plain(
                c,
                &sh_argv(
                    &sys_and(&[bind, "/dev/null", "/n"]),
                    "echo x > /n; echo rc-write=$?; head -c 1 /n; echo rc-read=$?",
                ),
            );
            out.expect_success();
            let what = format!("[{}] {bind}: {}", c.name(), out.describe());
            assert!(
                !out.lines()
                    .iter()
                    .any(|l| l == "rc-write=0" || l == "rc-read=0"),
                "a device node under {bind} (nodev) was usable: {what}"
            );
            assert!(out.stderr.contains("Permission denied"), "{what}");
        }
    });
}

#[test]
fn try_forms_skip_a_missing_source_and_the_others_refuse_it() {
    for_each_caller(|c| {
        let dir = c.scratch();
        fs::write(dir.path().join("f"), "present\n").unwrap();
        let missing = format!("/nonexistent-e2e-{}", unique());
        for opt in ["--bind", "--ro-bind", "--dev-bind"] {
            let try_opt = format!("{opt}-try");
            let out = run_plain(
                c,
                &sh_argv(
                    &sys_and(&[&try_opt, &missing, "/x"]),
                    "test -e /x && echo present || echo absent",
                ),
            );
            out.expect_success();
            assert_eq!(out.out(), "absent", "[{}] {}", c.name(), out.describe());

            let out = run_plain(
                c,
                &sh_argv(&sys_and(&[&try_opt, &s(dir.path()), "/x"]), "cat /x/f"),
            );
            out.expect_success();
            assert_eq!(out.out(), "present", "[{}] {}", c.name(), out.describe());

            let out = run_plain(c, &sh_argv(&sys_and(&[opt, &missing, "/x"]), "echo ran"));
            out.expect_code(125)
                .expect_no_panic()
                .expect_one_error_line("nsjail:");
            assert!(
                out.stderr.contains(&format!("{opt} {missing}")) && !out.stdout.contains("ran"),
                "[{}] the error must name {opt} and {missing}: {}",
                c.name(),
                out.describe()
            );
        }
    });
}

#[test]
fn tmpfs_takes_its_size_and_mode() {
    for_each_caller(|c| {
        let opts = sys_and(&[
            "--size", "64K", "--perms", "700", "--tmpfs", "/t", "--tmpfs", "/u", "--perms", "1777",
            "--tmpfs", "/v",
        ]);
        let script = "stat -c %a /t /u /v; \
            head -c 16384 /dev/zero > /t/small && echo small-ok; \
            head -c 1048576 /dev/zero > /t/big; echo rc-big=$?; \
            grep ' /t ' /proc/self/mountinfo";
        let out = run_plain(c, &sh_argv(&opts, script));
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        let l = out.lines();
        assert_eq!(l[..3], ["700", "755", "1777"], "{what}");
        assert_eq!(l[3], "small-ok", "{what}");
        assert!(l[4] != "rc-big=0", "1 MiB fit in a 64 KiB tmpfs: {what}");
        assert!(out.stderr.contains("No space left"), "{what}");
        assert!(
            l[5].contains(" - tmpfs ") && l[5].contains("size=64k"),
            "{what}"
        );
    });
}

#[test]
fn proc_shows_only_the_sandboxs_processes() {
    // A host process the sandbox must not see.
    let marker = format!("nsjail-e2e-host-{}", unique());
    let mut host = Command::new(tool("sleep"));
    host.arg("60").arg0(&marker);
    let mut host = Running::spawn(&mut host, None, "host sleep");
    assert!(
        nsjail_tests::poll_until(std::time::Duration::from_secs(10), || {
            !pids_with_argv(&[&marker, "60"]).is_empty()
        }),
        "the host marker process never appeared"
    );
    let host_count = nsjail_tests::processes().len();
    for_each_caller(|c| {
        for (opts, dir) in [
            (vec!["--default-view".to_string()], "/proc"),
            (usr_and(&["--proc", "/p2"]), "/p2"),
        ] {
            let script = format!(
                "for d in {dir}/[0-9]*; do echo \"${{d#{dir}/}} $(cat $d/comm)\"; done; \
                 echo ==argv; cat {dir}/[0-9]*/cmdline | tr '\\0' ' '; echo"
            );
            let out = run_plain(c, &sh_argv(&opts, &script));
            out.expect_success();
            let what = format!("[{}] {dir}: {}", c.name(), out.describe());
            let procs: Vec<(u32, String)> = out
                .lines()
                .iter()
                .take_while(|l| *l != "==argv")
                .filter_map(|l| {
                    let (p, comm) = l.split_once(' ')?;
                    Some((p.parse().ok()?, comm.to_string()))
                })
                .collect();
            assert!(
                procs.iter().any(|(p, _)| *p == 1),
                "no PID 1 in {dir}: {what}"
            );
            assert!(
                procs.len() <= 5 && procs.len() < host_count,
                "{dir} lists {} processes (the host has {host_count}): {what}",
                procs.len()
            );
            // Our init is a fork of the helper that made the sandbox: `nsjail-helper`, or the
            // daemon's `nsjail-helperd`.
            for (_, comm) in &procs {
                assert!(
                    ["nsjail-helper", "nsjail-helperd", "sh", "cat"].contains(&comm.as_str()),
                    "an unexpected process {comm:?} in {dir}: {what}"
                );
            }
            assert!(!out.stdout.contains(&marker), "{what}");
        }
    });
    let _ = host.child.kill();
    let _ = host.child.wait();
}

const DEV_NODES: &str =
    "core fd full null ptmx pts random shm stderr stdin stdout tty urandom zero";

#[test]
fn dev_has_exactly_the_minimal_nodes_and_they_work() {
    for_each_caller(|c| {
        for (opts, dir) in [
            (Vec::new(), "/dev"),
            (usr_and(&["--proc", "/proc", "--dev", "/dev"]), "/dev"),
            (usr_and(&["--proc", "/proc", "--dev", "/d2"]), "/d2"),
        ] {
            let script = format!(
                "cd {dir} || exit 9; ls -A | tr '\\n' ' '; echo; \
                 echo x > null && echo null-ok; \
                 test \"$(head -c 16 zero | tr -d '\\0' | wc -c)\" = 0 && echo zero-ok; \
                 test \"$(head -c 16 urandom | wc -c)\" = 16 && echo urandom-ok; \
                 /usr/bin/printf x > full; echo rc-full=$?; \
                 ls pts | tr '\\n' ' '; echo; \
                 stat -c %a shm; touch shm/x && echo shm-ok; \
                 readlink stdin stdout stderr fd ptmx | tr '\\n' ' '; echo; \
                 cut -d' ' -f5,6 /proc/self/mountinfo"
            );
            let out = run_plain(c, &sh_argv(&opts, &script));
            out.expect_success();
            let what = format!("[{}] {dir}: {}", c.name(), out.describe());
            let l = out.lines();
            assert_eq!(l[0], DEV_NODES, "{what}");
            assert_eq!(l[1..4], ["null-ok", "zero-ok", "urandom-ok"], "{what}");
            assert_ne!(l[4], "rc-full=0", "{what}");
            assert!(out.stderr.contains("No space left"), "{what}");
            assert!(l[5].split(' ').any(|n| n == "ptmx"), "{what}");
            assert_eq!(l[6], "1777", "{what}");
            assert_eq!(l[7], "shm-ok", "{what}");
            assert_eq!(
                l[8], "/proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2 /proc/self/fd pts/ptmx",
                "{what}"
            );
            // The device binds are the one place without nodev (the tmpfs holding them and the
            // devpts are not nodev either, as in bubblewrap); all of them nosuid.
            let mounts: Vec<&String> = l[9..]
                .iter()
                .filter(|m| m.starts_with(&format!("{dir} ")) || m.starts_with(&format!("{dir}/")))
                .collect();
            assert!(mounts.len() >= 8, "{what}");
            for m in mounts {
                let opts: Vec<&str> = m.split(' ').nth(1).unwrap_or("").split(',').collect();
                assert!(
                    !opts.contains(&"nodev") && opts.contains(&"nosuid"),
                    "{m}: device mounts must be nosuid and not nodev: {what}"
                );
            }
        }
        // A new pseudo-terminal can be opened through ptmx.
        let out = run_plain(c, &sh_argv(&[], "script -qec 'tty; echo in-pty' /dev/null"));
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        assert!(
            out.stdout.contains("/dev/pts/") && out.stdout.contains("in-pty"),
            "{what}"
        );
    });
}

#[test]
fn mqueue_is_a_new_message_queue_filesystem() {
    for_each_caller(|c| {
        let opts = ["--default-view", "--mqueue", "/dev/mqueue"].map(String::from);
        let script = "ls -A /dev/mqueue | wc -l; touch /dev/mqueue/q && cat /dev/mqueue/q; \
            grep ' /dev/mqueue ' /proc/self/mountinfo";
        let out = run_plain(c, &sh_argv(&opts, script));
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        let l = out.lines();
        assert_eq!(l[0], "0", "a new mqueue filesystem starts empty: {what}");
        assert!(l[1].starts_with("QSIZE:0"), "{what}");
        assert!(l[2].contains(" - mqueue "), "{what}");
    });
}

#[test]
fn dir_is_0755_unless_perms_says_otherwise() {
    for_each_caller(|c| {
        let opts = sys_and(&[
            "--dir", "/a/b/c", "--perms", "750", "--dir", "/e", "--perms", "1777", "--dir", "/f",
            "--tmpfs", "/t", "--perms", "700", "--dir", "/t/g/h",
        ]);
        let out = run_plain(
            c,
            &sh_argv(&opts, "stat -c '%a %u %F' /a /a/b /a/b/c /e /f /t/g /t/g/h"),
        );
        out.expect_success();
        assert_eq!(
            out.lines(),
            [
                "755 0 directory",
                "755 0 directory",
                "755 0 directory",
                "750 0 directory",
                "1777 0 directory",
                "755 0 directory",
                "700 0 directory"
            ],
            "[{}] {}",
            c.name(),
            out.describe()
        );
    });
}

#[test]
fn symlink_points_where_it_is_told() {
    for_each_caller(|c| {
        let opts = sys_and(&[
            "--symlink",
            "/usr/bin",
            "/abs",
            "--symlink",
            "../usr/share",
            "/d/rel",
            "--symlink",
            "/does/not/exist",
            "/dangling",
        ]);
        let script = "readlink /abs /d/rel /dangling; test -x /abs/env && echo abs-ok; \
            test -d /d/rel/ && echo rel-ok; test -e /dangling || echo dangling-ok";
        let out = run_plain(c, &sh_argv(&opts, script));
        out.expect_success();
        assert_eq!(
            out.lines(),
            [
                "/usr/bin",
                "../usr/share",
                "/does/not/exist",
                "abs-ok",
                "rel-ok",
                "dangling-ok"
            ],
            "[{}] {}",
            c.name(),
            out.describe()
        );
    });
}

#[test]
fn file_copies_an_inherited_fd_into_a_new_file() {
    for_each_caller(|c| {
        let dir = c.scratch();
        let from_pipe = pipe_with(b"through a pipe\n");
        let from_file = file_with(dir.path(), "data", b"from a file\n");
        let opts = sys_and(&[
            "--file", "3", "/f1", "--perms", "600", "--file", "5", "/d/f2",
        ]);
        let script = "cat /f1 /d/f2; stat -c '%a %F' /f1 /d/f2 /d; \
            echo appended >> /f1 && echo writable";
        let how = How {
            fds: vec![(&from_pipe, 3), (&from_file, 5)],
            ..How::default()
        };
        let out = run(c, &sh_argv(&opts, script), &how);
        out.expect_success();
        assert_eq!(
            out.lines(),
            [
                "through a pipe",
                "from a file",
                "644 regular file",
                "600 regular file",
                "755 directory",
                "writable"
            ],
            "[{}] {}",
            c.name(),
            out.describe()
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("data")).unwrap(),
            "from a file\n",
            "the source file on the host changed"
        );
    });
}

#[test]
fn bind_data_and_ro_bind_data() {
    for_each_caller(|c| {
        let host_passwd = fs::read_to_string("/etc/passwd").unwrap();
        let a = pipe_with(b"data one\n");
        let b = pipe_with(b"data two\n");
        let d = pipe_with(b"not the host's passwd\n");
        let opts = [
            "--default-view",
            "--bind-data",
            "3",
            "/bd",
            "--perms",
            "600",
            "--ro-bind-data",
            "4",
            "/rbd",
            "--ro-bind-data",
            "6",
            "/etc/passwd",
        ]
        .map(String::from);
        let script = "cat /bd /rbd /etc/passwd; stat -c %a /bd /rbd; \
            echo more >> /bd; echo rc-bd=$?; echo more >> /rbd; echo rc-rbd=$?; \
            echo more >> /etc/passwd; echo rc-passwd=$?; cat /bd";
        let how = How {
            fds: vec![(&a, 3), (&b, 4), (&d, 6)],
            ..How::default()
        };
        let out = run(c, &sh_argv(&opts, script), &how);
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        let l = out.lines();
        assert_eq!(
            l[..5],
            [
                "data one",
                "data two",
                "not the host's passwd",
                "644",
                "600"
            ],
            "{what}"
        );
        assert_eq!(l[5], "rc-bd=0", "--bind-data must be writable: {what}");
        assert_ne!(l[6], "rc-rbd=0", "--ro-bind-data must be read-only: {what}");
        assert_ne!(l[7], "rc-passwd=0", "{what}");
        assert_eq!(l[8..], ["data one", "more"], "{what}");
        assert_eq!(out.stderr.matches(EROFS).count(), 2, "{what}");
        assert_eq!(
            fs::read_to_string("/etc/passwd").unwrap(),
            host_passwd,
            "the host's /etc/passwd changed"
        );
    });
}

#[test]
fn remount_ro_makes_a_whole_tree_read_only() {
    for_each_caller(|c| {
        let dir = c.scratch();
        let p = s(dir.path());
        let base = sys_and(&[
            "--bind", &p, "/p", "--tmpfs", "/t", "--tmpfs", "/t/inner", "--dir", "/d",
        ]);
        let script = "for f in /p/x /t/x /t/inner/x /d/x; do \
            if echo w > $f; then echo $f-written; else echo $f-refused; fi; done";
        // The control: without --remount-ro every write works.
        let out = run_plain(c, &sh_argv(&base, script));
        out.expect_success();
        assert_eq!(
            out.lines(),
            [
                "/p/x-written",
                "/t/x-written",
                "/t/inner/x-written",
                "/d/x-written"
            ],
            "[{}] {}",
            c.name(),
            out.describe()
        );
        fs::remove_file(dir.path().join("x")).unwrap();

        let mut opts = base.clone();
        opts.extend(
            [
                "--remount-ro",
                "/p",
                "--remount-ro",
                "/t",
                "--remount-ro",
                "/d",
            ]
            .map(String::from),
        );
        let out = run_plain(c, &sh_argv(&opts, script));
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        assert_eq!(
            out.lines(),
            [
                "/p/x-refused",
                "/t/x-refused",
                "/t/inner/x-refused",
                "/d/x-refused"
            ],
            "{what}"
        );
        assert_eq!(out.stderr.matches(EROFS).count(), 4, "{what}");
        assert!(!dir.path().join("x").exists(), "{what}");
    });
}

#[test]
fn chmod_changes_a_mode_inside() {
    for_each_caller(|c| {
        let f = pipe_with(b"x");
        let opts = sys_and(&[
            "--dir", "/d", "--chmod", "700", "/d", "--tmpfs", "/t", "--chmod", "1777", "/t",
            "--file", "3", "/f", "--chmod", "0600", "/f",
        ]);
        let how = How {
            fds: vec![(&f, 3)],
            ..How::default()
        };
        let out = run(c, &sh_argv(&opts, "stat -c %a /d /t /f"), &how);
        out.expect_success();
        assert_eq!(
            out.lines(),
            ["700", "1777", "600"],
            "[{}] {}",
            c.name(),
            out.describe()
        );
    });
}

#[test]
fn chdir_sets_the_working_directory() {
    for_each_caller(|c| {
        let out = run_plain(c, &sh_argv(&sys_and(&["--chdir", "/usr/bin"]), "pwd"));
        out.expect_success();
        assert_eq!(out.out(), "/usr/bin", "[{}] {}", c.name(), out.describe());
        let opts = ["--chdir", "/etc"].map(String::from);
        let out = run_plain(c, &sh_argv(&opts, "pwd"));
        out.expect_success();
        assert_eq!(out.out(), "/etc", "[{}] {}", c.name(), out.describe());
        let missing = format!("/nonexistent-e2e-{}", unique());
        let out = run_plain(c, &sh_argv(&sys_and(&["--chdir", &missing]), "echo ran"));
        out.expect_code(125)
            .expect_no_panic()
            .expect_one_error_line("nsjail:");
        assert!(
            out.stderr.contains(&missing) && !out.stdout.contains("ran"),
            "[{}] {}",
            c.name(),
            out.describe()
        );
    });
}

/// Two lower layers on the host: A (`a`, `only-a`) and B above it (`a` again, `b`).
fn layers(c: &Caller, dir: &Path) -> (String, String) {
    let a = dir.join("A");
    let b = dir.join("B");
    for (d, files) in [
        (&a, &[("a", "a from A\n"), ("only-a", "only in A\n")]),
        (&b, &[("a", "a from B\n"), ("b", "b from B\n")]),
    ] {
        fs::create_dir(d).unwrap();
        for (name, text) in files {
            fs::write(d.join(name), text).unwrap();
            give(c, &d.join(name));
        }
        give(c, d);
    }
    (s(&a), s(&b))
}

/// Every file of `dir` (recursively) with its contents, for before/after comparisons.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.push((s(&p), "<dir>".into()));
            v.extend(snapshot(&p));
        } else {
            v.push((s(&p), fs::read_to_string(&p).unwrap_or_default()));
        }
    }
    v.sort();
    v
}

#[test]
fn tmp_overlay_shows_the_union_and_keeps_writes_off_the_host() {
    for_each_caller(|c| {
        let dir = c.scratch();
        let (a, b) = layers(c, dir.path());
        let before = snapshot(dir.path());
        let opts = sys_and(&[
            "--overlay-src",
            &a,
            "--overlay-src",
            &b,
            "--tmp-overlay",
            "/o",
        ]);
        let script = "ls /o | tr '\\n' ' '; echo; cat /o/a /o/only-a /o/b; \
            echo new > /o/new && echo changed > /o/b && rm /o/only-a && echo writes-ok; \
            ls /o | tr '\\n' ' '; echo; cat /o/b";
        let out = run_plain(c, &sh_argv(&opts, script));
        out.expect_success();
        assert_eq!(
            out.lines(),
            [
                "a b only-a",
                "a from B",
                "only in A",
                "b from B",
                "writes-ok",
                "a b new",
                "changed"
            ],
            "[{}] {}",
            c.name(),
            out.describe()
        );
        assert_eq!(
            snapshot(dir.path()),
            before,
            "[{}] writes to a --tmp-overlay reached the lower layers on the host",
            c.name()
        );
    });
}

#[test]
fn ro_overlay_is_read_only() {
    for_each_caller(|c| {
        let dir = c.scratch();
        let (a, b) = layers(c, dir.path());
        let before = snapshot(dir.path());
        let opts = sys_and(&[
            "--overlay-src",
            &a,
            "--overlay-src",
            &b,
            "--ro-overlay",
            "/o",
        ]);
        let script = "cat /o/a; \
            if echo new > /o/new; then echo written; else echo refused; fi; \
            if rm /o/b; then echo removed; else echo refused; fi";
        let out = run_plain(c, &sh_argv(&opts, script));
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        assert_eq!(out.lines(), ["a from B", "refused", "refused"], "{what}");
        assert_eq!(out.stderr.matches(EROFS).count(), 2, "{what}");
        assert_eq!(snapshot(dir.path()), before, "{what}");
    });
}

#[test]
fn overlay_with_a_host_upper_dir_writes_there() {
    for_each_caller(|c| {
        let dir = c.scratch();
        let (a, _) = layers(c, dir.path());
        let upper = dir.path().join("upper");
        let work = dir.path().join("work");
        for d in [&upper, &work] {
            fs::create_dir(d).unwrap();
            give(c, d);
        }
        let a_before = snapshot(Path::new(&a));
        let opts = sys_and(&[
            "--overlay-src",
            &a,
            "--overlay",
            &s(&upper),
            &s(&work),
            "/o",
        ]);
        let script = "cat /o/a; echo new > /o/new && echo changed > /o/a && echo writes-ok";
        let out = run_plain(c, &sh_argv(&opts, script));
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        assert_eq!(out.lines(), ["a from A", "writes-ok"], "{what}");
        assert_eq!(
            fs::read_to_string(upper.join("new")).ok().as_deref(),
            Some("new\n"),
            "{what}"
        );
        assert_eq!(
            fs::read_to_string(upper.join("a")).ok().as_deref(),
            Some("changed\n"),
            "{what}"
        );
        assert_eq!(
            fs::metadata(upper.join("new")).unwrap().uid(),
            c.uid,
            "{what}"
        );
        assert_eq!(
            snapshot(Path::new(&a)),
            a_before,
            "the lower layer changed: {what}"
        );
    });
}
