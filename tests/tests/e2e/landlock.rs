//! Landlock behind the filesystem view: the payload may read, write and execute only
//! where its view lets it, enforced a second time by the kernel's Landlock, so that a mount or
//! path-resolution bug alone does not open the host.
//!
//! Each check runs the same payload with Landlock (the default) and with `--landlock off`: an
//! action the mounts alone allow and the ruleset denies fails only with Landlock, and everything
//! the view allows works with it.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;

use nsjail_tests::hardening::{GRANT_CAPS_AND_USERNS, PolicyEnv, probe_dir, probe_result};
use nsjail_tests::{Caller, Output, for_each_caller};

use crate::fsutil::{How, argv, give, run, s};

/// Runs each `ACTION:ARG` of its arguments and prints `ACTION ARG: ok` or `ACTION ARG: ERRNO`.
const ACT: &str = r#"
import errno, os, subprocess, sys
def name(e): return errno.errorcode.get(e.errno, str(e.errno))
for a in sys.argv[1:]:
    act, arg = a.split(':', 1)
    try:
        if act == 'create':
            os.close(os.open(arg, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o755))
        elif act == 'mkdir':
            os.mkdir(arg)
        elif act == 'write':
            fd = os.open(arg, os.O_WRONLY)
            os.write(fd, b'x\n')
            os.close(fd)
        elif act == 'read':
            os.close(os.open(arg, os.O_RDONLY))
        elif act == 'copy-true':
            with open('/usr/bin/true', 'rb') as f, open(arg, 'wb') as g:
                g.write(f.read())
            os.chmod(arg, 0o755)
        elif act == 'exec':
            r = subprocess.run([arg])
            if r.returncode != 0: raise OSError(0, 'exit %d' % r.returncode)
        elif act == 'rename':
            src, dst = arg.split(',')
            os.rename(src, dst)
        print(act, arg + ': ok', flush=True)
    except OSError as e:
        print(act, arg + ': ' + name(e), flush=True)
"#;

/// `python3 -c ACT ACTIONS...` in the default view (plus `opts`), run from `cwd`.
fn act(c: &Caller, opts: &[&str], cwd: &Path, actions: &[String]) -> Output {
    let mut cmd = vec!["/usr/bin/python3", "-c", ACT];
    cmd.extend(actions.iter().map(String::as_str));
    let o: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
    run(
        c,
        &argv(&o, &cmd),
        &How {
            cwd: Some(cwd),
            env: vec![("HOME", "/home/nsjail-e2e-home")],
            ..How::default()
        },
    )
}

/// The kernel's Landlock ABI (0: none).
fn kernel_abi() -> i64 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attribute and size 0 only returns the
    // version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    };
    v.max(0)
}

#[test]
fn the_ruleset_is_applied_and_the_view_still_works() {
    assert!(
        kernel_abi() >= 2,
        "these tests need Landlock ABI 2 or newer"
    );
    for_each_caller(|c| {
        let cwd = c.scratch();
        let d = s(cwd.path());
        let actions: Vec<String> = [
            // What the mounts allow and the ruleset does not: the top of /.
            "create:/top-file".to_string(),
            "mkdir:/top-dir".to_string(),
            // What the view allows: the current directory, /tmp, $HOME, /dev/null.
            format!("create:{d}/in-cwd"),
            "create:/tmp/in-tmp".to_string(),
            "mkdir:/home/nsjail-e2e-home/sub".to_string(),
            "write:/dev/null".to_string(),
            "read:/etc/passwd".to_string(),
            // The view's binaries run; a copy in /tmp runs; in /dev/shm (noexec) it does not.
            "exec:/usr/bin/true".to_string(),
            "copy-true:/tmp/t".to_string(),
            "exec:/tmp/t".to_string(),
            "copy-true:/dev/shm/t".to_string(),
            "exec:/dev/shm/t".to_string(),
            // System directories stay read-only (the mount says EROFS first).
            "create:/usr/nsjail-e2e-x".to_string(),
        ]
        .to_vec();
        let on = act(c, &[], cwd.path(), &actions);
        let off = act(c, &["--landlock", "off"], cwd.path(), &actions);
        let what = format!("[{}]\n{}\n{}", c.name(), on.describe(), off.describe());
        on.expect_success();
        off.expect_success();
        let want = |top: &str| {
            vec![
                format!("create /top-file: {top}"),
                format!("mkdir /top-dir: {top}"),
                format!("create {d}/in-cwd: ok"),
                "create /tmp/in-tmp: ok".into(),
                "mkdir /home/nsjail-e2e-home/sub: ok".into(),
                "write /dev/null: ok".into(),
                "read /etc/passwd: ok".into(),
                "exec /usr/bin/true: ok".into(),
                "copy-true /tmp/t: ok".into(),
                "exec /tmp/t: ok".into(),
                "copy-true /dev/shm/t: ok".into(),
                "exec /dev/shm/t: EACCES".into(),
                "create /usr/nsjail-e2e-x: EROFS".into(),
            ]
        };
        assert_eq!(on.lines(), want("EACCES"), "with Landlock: {what}");
        // The control: the same payload without Landlock may write the top of /.
        assert_eq!(off.lines(), want("ok"), "with --landlock off: {what}");
    });
}

#[test]
fn renames_between_directories_of_the_view_work() {
    // ABI 1 refused every rename across directories under a ruleset; ABI 2's REFER right is
    // granted wherever writing is.
    for_each_caller(|c| {
        let cwd = c.scratch();
        let d = s(cwd.path());
        for sub in ["a", "b"] {
            fs::create_dir(cwd.path().join(sub)).unwrap();
            give(c, &cwd.path().join(sub));
        }
        let actions = vec![
            format!("create:{d}/a/f"),
            format!("rename:{d}/a/f,{d}/b/f"),
            "mkdir:/tmp/x".to_string(),
            "create:/tmp/x/f".to_string(),
            "rename:/tmp/x/f,/tmp/f".to_string(),
        ];
        let out = act(c, &[], cwd.path(), &actions);
        out.expect_success();
        assert!(
            out.lines().iter().all(|l| l.ends_with(": ok")),
            "[{}] {}",
            c.name(),
            out.describe()
        );
        assert!(cwd.path().join("b/f").exists());
    });
}

/// Run `sh -c SCRIPT` as `c` with stdin from /dev/null and `stdout`, `stderr` as given.
fn run_with_stdio(
    c: &Caller,
    cwd: &Path,
    opts: &[&str],
    script: &str,
    out: OwnedFd,
    err: OwnedFd,
) -> i32 {
    let mut args: Vec<&str> = opts.to_vec();
    args.extend(["--", "/bin/sh", "-c", script]);
    let mut cmd = c.run_cmd(&args);
    cmd.current_dir(cwd)
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(out))
        .stderr(std::process::Stdio::from(err));
    let mut child = cmd.spawn().expect("start nsjail");
    let status = nsjail_tests::wait_or_kill_group(&mut child).expect("nsjail ended in time");
    nsjail_tests::shell_code(&status)
}

#[test]
fn the_payloads_own_stdio_files_reopen_as_they_were_opened() {
    for_each_caller(|c| {
        // The CLI's stdout and stderr are files outside the view (another scratch directory).
        let outside = c.scratch();
        let cwd = c.scratch();
        let file = |name: &str, read: bool| -> (std::path::PathBuf, OwnedFd) {
            let p = outside.path().join(name);
            // Appending, so that the payload's writes through fd 2 and through a reopened
            // /dev/stderr land in the order they were made.
            let f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(read)
                .open(&p)
                .unwrap();
            std::os::unix::fs::chown(&p, Some(c.uid), Some(c.gid)).unwrap();
            (p, f.into())
        };
        for landlock in ["auto", "off"] {
            let (out_p, out_f) = file("out", false);
            let (err_p, err_f) = file("err", true);
            // stdout is write-only: reopening it for reading is refused under Landlock (the
            // rule allows what the descriptor allows) and allowed without (the file's mode
            // lets its owner read it): the control.
            let script = "echo to-stdout > /dev/stdout; echo to-stderr > /dev/stderr; \
                 echo via-proc >> /proc/self/fd/2; \
                 exec 3>&1; if cat /proc/self/fd/3 >/dev/null 2>&1; then echo reread-ok >&2; \
                 else echo reread-refused >&2; fi";
            let code = run_with_stdio(
                c,
                cwd.path(),
                &["--landlock", landlock],
                script,
                out_f,
                err_f,
            );
            let out = fs::read_to_string(&out_p).unwrap();
            let err = fs::read_to_string(&err_p).unwrap();
            let what = format!(
                "[{}] --landlock {landlock}: code {code}, out {out:?}, err {err:?}",
                c.name()
            );
            assert_eq!(code, 0, "{what}");
            assert_eq!(out, "to-stdout\n", "{what}");
            let reread = if landlock == "off" {
                "reread-ok"
            } else {
                "reread-refused"
            };
            assert_eq!(err, format!("to-stderr\nvia-proc\n{reread}\n"), "{what}");
        }

        // A terminal on the host's devpts as stdout (stdin is not a terminal, so the payload
        // gets this very one): `echo > /dev/stdout` reaches it.
        let pty = nsjail_tests::openpty();
        // As a terminal's owner has it (grantpt): the caller's, so the caller may reopen it.
        nix::unistd::fchown(
            &pty.slave,
            Some(nix::unistd::Uid::from_raw(c.uid)),
            Some(nix::unistd::Gid::from_raw(c.gid)),
        )
        .unwrap();
        let slave_for_out: OwnedFd = pty.slave.try_clone().unwrap();
        let (err_p, err_f) = file("err-tty", false);
        let code = run_with_stdio(
            c,
            cwd.path(),
            &[],
            "echo to-the-terminal > /dev/stdout && echo wrote >&2",
            slave_for_out,
            err_f,
        );
        drop(pty.slave);
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        nix::fcntl::fcntl(
            &pty.master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        while let Ok(n) = nix::unistd::read(&pty.master, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let got = String::from_utf8_lossy(&got);
        let err = fs::read_to_string(&err_p).unwrap();
        assert_eq!(code, 0, "[{}] {got:?} {err:?}", c.name());
        assert!(
            got.contains("to-the-terminal"),
            "[{}] {got:?} {err:?}",
            c.name()
        );
        assert_eq!(without_way_in(c, &err), "wrote\n");
    });
}

/// `text` (a stderr the CLI wrote to a file) without the line naming the CLI's way in, which
/// must be there once and name `c`'s.
fn without_way_in(c: &Caller, text: &str) -> String {
    let (said, rest): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|l| l.starts_with(nsjail_tests::WAY_IN_LINE));
    assert!(
        said.len() == 1 && said[0].starts_with(&c.way_in().line()),
        "[{}] expected one line naming the way in {:?}: {text:?}",
        c.name(),
        c.way_in()
    );
    rest.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn auto_leaves_landlock_out_for_a_payload_that_mounts_and_on_does_not() {
    // Users of the setuid helper and the daemon need the policy's grant for --cap-add.
    let grant = PolicyEnv::with_policy(GRANT_CAPS_AND_USERNS);
    for_each_caller(|c| {
        let dir = probe_dir(c);
        let target = s(dir.path());
        let probe = |opts: &[&str]| {
            let mut o = vec!["--verbose"];
            o.extend_from_slice(opts);
            let out = grant.probe_as(c, dir.path(), &o, "mount-tmpfs", Some(&target));
            (probe_result(&out, "mount-tmpfs"), out)
        };
        // With CAP_SYS_ADMIN, auto runs without Landlock (a Landlock domain may not mount).
        let (r, out) = probe(&["--cap-add", "CAP_SYS_ADMIN"]);
        assert_eq!(r, "ok", "[{}] {}", c.name(), out.describe());
        assert!(
            out.stderr
                .contains("landlock: off: the payload keeps CAP_SYS_ADMIN"),
            "{}",
            out.describe()
        );
        // --landlock on applies it anyway, and the kernel refuses the mount.
        let (r, out) = probe(&["--cap-add", "CAP_SYS_ADMIN", "--landlock", "on"]);
        assert_eq!(r, "EPERM", "[{}] {}", c.name(), out.describe());
        assert!(
            out.stderr.contains("landlock: ruleset at ABI"),
            "{}",
            out.describe()
        );
    });
}

#[test]
fn verbose_and_dry_run_show_the_ruleset() {
    let abi = kernel_abi();
    for_each_caller(|c| {
        let cwd = c.scratch();
        let d = s(cwd.path());
        let out = act(
            c,
            &["--verbose"],
            cwd.path(),
            &["read:/etc/passwd".to_string()],
        );
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        for want in [
            format!("nsjail: landlock: on, ABI {abi}:"),
            "nsjail: landlock: r-- /".to_string(),
            "nsjail: landlock: r-x /usr".to_string(),
            "nsjail: landlock: rw- /dev".to_string(),
            format!("nsjail: landlock: rwx {d}"),
            format!("nsjail: landlock: ruleset at ABI {abi} ("),
        ] {
            assert!(
                out.stderr.lines().any(|l| l.starts_with(&want)),
                "{want:?} missing: {what}"
            );
        }
        let out = act(c, &["--verbose", "--landlock", "off"], cwd.path(), &[]);
        assert!(
            out.stderr
                .contains("nsjail: landlock: off (--landlock off)"),
            "{}",
            out.describe()
        );
        assert!(!out.stderr.contains("ruleset at ABI"), "{}", out.describe());

        let out = act(c, &["--dry-run"], cwd.path(), &[]);
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        for want in [
            "landlock:    auto",
            "  r--  /\n",
            "  r-x  /usr\n",
            "  rw-  /proc\n",
        ] {
            assert!(out.stdout.contains(want), "{want:?} missing: {what}");
        }
        assert!(out.stdout.contains(&format!("  rwx  {d}\n")), "{what}");
        let out = act(c, &["--dry-run", "--landlock", "off"], cwd.path(), &[]);
        assert!(
            out.stdout.contains("landlock:    off (--landlock off)\n"),
            "{}",
            out.describe()
        );

        let out = act(c, &["--dry-run=json"], cwd.path(), &[]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert_eq!(v["request"]["landlock"], "Auto");
        let rules = v["resolved"]["landlock"]["rules"]
            .as_array()
            .expect("rules");
        assert!(rules.iter().any(|r| r["path"] == "/usr"
            && r["access"]["read"] == true
            && r["access"]["write"] == false
            && r["access"]["exec"] == true));
    });
}

#[test]
fn the_policy_can_make_landlock_mandatory() {
    if !nsjail_tests::require_root(module_path!()) {
        return;
    }
    let user = Caller::setuid_user();
    let env = PolicyEnv::with_policy("[allow]\ncap_add = true\n\n[require]\nlandlock = true\n");
    let dir = probe_dir(&user);
    let target = s(dir.path());
    // --landlock off is refused, in one line naming the key.
    let out = env.run(
        &user,
        Some(dir.path()),
        &[
            "--landlock",
            "off",
            "--",
            "./nsjail-probe",
            "mount-tmpfs",
            &target,
        ],
    );
    out.expect_code(125).expect_one_error_line(
        "nsjail: the nsjail policy requires Landlock (require.landlock): --landlock off is refused",
    );
    // CAP_SYS_ADMIN no longer leaves it out: the mount is refused by Landlock.
    let out = env.run(
        &user,
        Some(dir.path()),
        &[
            "--verbose",
            "--cap-add",
            "CAP_SYS_ADMIN",
            "--",
            "./nsjail-probe",
            "mount-tmpfs",
            &target,
        ],
    );
    assert_eq!(
        probe_result(&out, "mount-tmpfs"),
        "EPERM",
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("landlock: ruleset at ABI"),
        "{}",
        out.describe()
    );
    // The control: without the requirement the same run mounts, and --landlock off runs.
    let free = PolicyEnv::with_policy("[allow]\ncap_add = true\n");
    let out = free.run(
        &user,
        Some(dir.path()),
        &[
            "--cap-add",
            "CAP_SYS_ADMIN",
            "--",
            "./nsjail-probe",
            "mount-tmpfs",
            &target,
        ],
    );
    assert_eq!(
        probe_result(&out, "mount-tmpfs"),
        "ok",
        "{}",
        out.describe()
    );
    let out = free.run(
        &user,
        Some(dir.path()),
        &[
            "--landlock",
            "off",
            "--",
            "./nsjail-probe",
            "mount-tmpfs",
            &target,
        ],
    );
    assert_eq!(
        probe_result(&out, "mount-tmpfs"),
        "EPERM",
        "{}",
        out.describe()
    );
}
