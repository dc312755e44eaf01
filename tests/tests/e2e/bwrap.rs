//! `bwrap`: bubblewrap's command line through our helper, as an ordinary user (setuid helper,
//! and the daemon), compared with Debian's own `/usr/bin/bwrap` run by the same user with the
//! same arguments wherever that one can start a sandbox.

use std::path::Path;
use std::process::Command;

use nsjail_tests::{Caller, Output, Running, shell_words};

const DEBIAN_BWRAP: &str = "/usr/bin/bwrap";

/// The system, read-only, as Flatpak-like clients lay out a merged-/usr root.
const SYSTEM: &[&str] = &[
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--symlink",
    "usr/bin",
    "/bin",
    "--symlink",
    "usr/sbin",
    "/sbin",
];

/// `program ARGS…` as the caller, with `data` open on fd 3 when given (through a shell that
/// redirects, so both bwraps get the fd the same way).
fn command(c: &Caller, program: &[&str], args: &[&str], data: Option<&Path>) -> Command {
    let mut cmd = c.command_for("/bin/sh");
    let redirect = if data.is_some() { " 3<\"$D\"" } else { "" };
    cmd.arg("-c")
        .arg(format!("exec \"$@\"{redirect}"))
        .arg("sh")
        .args(program)
        .args(args);
    if let Some(d) = data {
        cmd.env("D", d);
    }
    cmd
}

/// Ours: `nsjail bwrap ARGS…`. `starts`: the sandbox is to start, so the CLI must have gone
/// in by the caller's way and said so (a usage error ends before a way in is chosen).
fn ours(c: &Caller, args: &[&str], data: Option<&Path>, starts: bool) -> Output {
    let nsjail = c.nsjail.to_string_lossy().into_owned();
    let mut cmd = command(c, &[&nsjail, "bwrap"], args, data);
    let what = format!("[{}] nsjail bwrap {}", c.name(), shell_words(args));
    let run = Running::spawn(&mut cmd, None, &what);
    if starts {
        run.expect_way_in(c.way_in()).wait()
    } else {
        run.wait()
    }
}

fn debian(c: &Caller, args: &[&str], data: Option<&Path>) -> Output {
    let mut cmd = command(c, &[DEBIAN_BWRAP], args, data);
    let what = format!("[{}] {DEBIAN_BWRAP} {}", c.name(), shell_words(args));
    Running::spawn(&mut cmd, None, &what).wait()
}

/// Whether Debian's bwrap can start a sandbox for this caller (not where unprivileged user
/// namespaces are switched off).
fn debian_works(c: &Caller) -> bool {
    let mut args = SYSTEM.to_vec();
    args.push("true");
    debian(c, &args, None).code() == Some(0)
}

/// One invocation of the corpus: what comes after the system binds (or instead of them), the
/// exit status both must give, and whether stdout must match Debian's exactly.
struct Case {
    args: Vec<&'static str>,
    system: bool,
    code: i32,
    data: Option<&'static [u8]>,
    /// A set-up failure: the helper words it, so only "one `bwrap: ` line, exit 1" is compared.
    setup_error: bool,
}

fn case(args: &[&'static str], code: i32) -> Case {
    Case {
        args: args.to_vec(),
        system: true,
        code,
        data: None,
        setup_error: false,
    }
}

fn setup_error(args: &[&'static str]) -> Case {
    Case {
        setup_error: true,
        ..case(args, 1)
    }
}

fn corpus() -> Vec<Case> {
    let mut v = vec![
        // A thumbnailer's shape: the system read-only, fresh /proc, /dev and /tmp, no network.
        case(
            &[
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "--unshare-all",
                "--die-with-parent",
                "--",
                "sh",
                "-c",
                "id -u; id -g; ls /; ls /tmp; echo $$",
            ],
            0,
        ),
        // mat2's shape: a file of the caller's bound read-only, the command in a new session.
        case(
            &[
                "--ro-bind",
                "/etc/hostname",
                "/in",
                "--tmpfs",
                "/out",
                "--unshare-all",
                "--new-session",
                "--die-with-parent",
                "--",
                "sh",
                "-c",
                "cat /in >/out/x && wc -c </out/x",
            ],
            0,
        ),
        case(&["--unshare-all", "--", "sh", "-c", "exit 7"], 7),
        case(&["--", "sh", "-c", "kill -9 $$"], 137),
        case(
            &["--unshare-all", "--uid", "0", "--gid", "0", "id", "-u"],
            0,
        ),
        case(
            &["--uid", "4321", "--gid", "4321", "sh", "-c", "id -u; id -g"],
            0,
        ),
        case(&["--unshare-uts", "--hostname", "box", "hostname"], 0),
        case(&["--chdir", "/usr", "pwd"], 0),
        case(
            &[
                "--clearenv",
                "--setenv",
                "A",
                "1",
                "--setenv",
                "B",
                "two words",
                "env",
            ],
            0,
        ),
        case(
            &[
                "--setenv",
                "A",
                "1",
                "--unsetenv",
                "A",
                "sh",
                "-c",
                "echo ${A-unset}",
            ],
            0,
        ),
        case(&["--unshare-pid", "sh", "-c", "echo $$"], 0),
        case(&["--unshare-pid", "--as-pid-1", "sh", "-c", "echo $$"], 0),
        case(
            &[
                "--unshare-all",
                "--proc",
                "/proc",
                "sh",
                "-c",
                "wc -l </proc/net/dev",
            ],
            0,
        ),
        case(
            &[
                "--tmpfs",
                "/t",
                "--dir",
                "/t/a/b",
                "--perms",
                "0700",
                "--dir",
                "/t/p",
                "--symlink",
                "a/b",
                "/t/l",
                "--chmod",
                "0750",
                "/t/a",
                "sh",
                "-c",
                "cd /t && stat -c '%n %a %F' a a/b p l && readlink l",
            ],
            0,
        ),
        case(
            &[
                "--perms",
                "0700",
                "--tmpfs",
                "/t",
                "--size",
                "65536",
                "--tmpfs",
                "/s",
                "sh",
                "-c",
                "stat -c %a /t; stat -f -c '%b %S' /s",
            ],
            0,
        ),
        case(
            &[
                "--tmpfs",
                "/t",
                "--remount-ro",
                "/t",
                "sh",
                "-c",
                "touch /t/x 2>/dev/null; echo $?",
            ],
            0,
        ),
        case(
            &[
                "--ro-bind-try",
                "/nonexistent",
                "/x",
                "--bind-try",
                "/nonexistent",
                "/y",
                "ls",
                "/",
            ],
            0,
        ),
        case(
            &[
                "--dev",
                "/dev",
                "sh",
                "-c",
                "echo x >/dev/null && head -c 3 /dev/zero | wc -c",
            ],
            0,
        ),
        case(
            &[
                "--dev",
                "/dev",
                "sh",
                "-c",
                "ls /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty",
            ],
            0,
        ),
        case(
            &[
                "--proc",
                "/proc",
                "--unshare-pid",
                "sh",
                "-c",
                "grep -E '^(NoNewPrivs|CapEff)' /proc/self/status",
            ],
            0,
        ),
        case(
            &["--unshare-ipc", "--mqueue", "/mq", "sh", "-c", "ls -d /mq"],
            0,
        ),
        case(
            &[
                "--unshare-net",
                "--unshare-pid",
                "--proc",
                "/proc",
                "sh",
                "-c",
                "ls /proc/self/ns | wc -l",
            ],
            0,
        ),
        case(&["sh", "-c", "kill -TERM $$"], 143),
        case(
            &[
                "--dev-bind",
                "/dev/null",
                "/n",
                "sh",
                "-c",
                "echo x >/n && echo written",
            ],
            0,
        ),
        case(
            &[
                "--unshare-user",
                "--unshare-cgroup-try",
                "--unshare-user-try",
                "id",
                "-u",
            ],
            0,
        ),
        case(
            &[
                "--unshare-cgroup",
                "--unshare-ipc",
                "--die-with-parent",
                "--new-session",
                "echo",
                "ok",
            ],
            0,
        ),
        case(
            &[
                "--dir",
                "tmp",
                "--symlink",
                "/usr/bin",
                "tmp/b",
                "readlink",
                "/tmp/b",
            ],
            0,
        ),
        case(&["--clearenv", "ls", "/"], 0),
        case(
            &[
                "--unshare-all",
                "--hostname",
                "h1",
                "--share-net",
                "hostname",
            ],
            0,
        ),
        case(
            &[
                "--tmpfs",
                "/t",
                "--chdir",
                "/t",
                "sh",
                "-c",
                "pwd; echo $PWD",
            ],
            0,
        ),
        case(
            &[
                "--proc",
                "/proc",
                "sh",
                "-c",
                "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups",
            ],
            0,
        ),
        case(
            &[
                "--proc",
                "/proc",
                "--unshare-pid",
                "sh",
                "-c",
                "ls /proc | grep -c '^[0-9]'",
            ],
            0,
        ),
        case(&["--ro-bind", "/etc", "/etc", "cat", "/etc/hostname"], 0),
        case(
            &[
                "--ro-bind",
                "/etc/passwd",
                "/etc/passwd",
                "--ro-bind",
                "/etc/group",
                "/etc/group",
                "sh",
                "-c",
                "id -un; id -gn",
            ],
            0,
        ),
        case(
            &[
                "--tmpfs",
                "/t",
                "--symlink",
                "/nonexistent",
                "/t/dangling",
                "readlink",
                "/t/dangling",
            ],
            0,
        ),
        case(
            &[
                "--dir", "/a", "--dir", "/a/b", "--tmpfs", "/a/b", "stat", "-c", "%a %n", "/a",
                "/a/b",
            ],
            0,
        ),
        case(&["--ro-bind", "/usr", "/mnt", "ls", "-d", "/mnt/bin"], 0),
        case(
            &[
                "--bind",
                "/usr",
                "/u2",
                "--remount-ro",
                "/u2",
                "sh",
                "-c",
                "touch /u2/x 2>/dev/null || echo read-only",
            ],
            0,
        ),
        case(
            &[
                "--tmpfs",
                "/t",
                "--tmpfs",
                "/t",
                "sh",
                "-c",
                "touch /t/a && ls /t",
            ],
            0,
        ),
        case(&["sh", "-c", "exit 255"], 255),
        case(&["false"], 1),
        case(&["--clearenv", "env"], 0),
        case(&["--unsetenv", "PATH", "sh", "-c", "echo ${PATH-unset}"], 0),
        case(
            &["--setenv", "X", "", "sh", "-c", "echo \"[${X-unset}]\""],
            0,
        ),
        case(
            &[
                "--unshare-pid",
                "--unshare-ipc",
                "--unshare-uts",
                "--unshare-net",
                "--unshare-cgroup",
                "--hostname",
                "n",
                "sh",
                "-c",
                "hostname; echo $$",
            ],
            0,
        ),
        case(&["--", "--not-a-command"], 1),
        case(&["--tmpfs"], 1),
        case(&["--setenv", "A"], 1),
        case(&["--symlink", "a"], 1),
        case(&["--chmod", "0755"], 1),
        case(&["--file", "3"], 1),
        case(&["--seccomp", "x", "true"], 1),
        case(&["--info-fd", "x", "true"], 1),
        case(&["--json-status-fd", "-1", "true"], 1),
        case(&["--block-fd", "x", "true"], 1),
        case(&["--userns-block-fd", "x", "true"], 1),
        case(&["--gid", "x", "true"], 1),
        case(&["--lock-file"], 1),
        case(&["--dev-bind-try", "/a"], 1),
        case(&["--remount-ro"], 1),
        case(&["--perms", "0755", "--symlink", "a", "/b", "true"], 1),
        case(
            &["--size", "100", "--perms", "0755", "--dir", "/x", "true"],
            1,
        ),
        case(&["--unshare-bogus", "true"], 1),
        case(&["--args", "99", "true"], 1),
        // Set-up failures: exit 1 and one line, in the helper's words.
        setup_error(&["--chdir", "/nonexistent", "true"]),
        setup_error(&["--remount-ro", "/nonexistent", "true"]),
        setup_error(&["--mqueue", "/mq", "true"]),
        setup_error(&[
            "--ro-bind",
            "/etc",
            "/etc",
            "--bind",
            "/tmp",
            "/etc/newdir",
            "true",
        ]),
        setup_error(&["--chmod", "0755", "/nonexistent", "true"]),
        setup_error(&["--symlink", "a", "/usr/x", "true"]),
        case(
            &[
                "--unshare-user",
                "--disable-userns",
                "sh",
                "-c",
                "unshare -U true 2>/dev/null; echo $?",
            ],
            0,
        ),
        // Bad input, each as bubblewrap says it.
        case(&["--ro-bind", "/nonexistent", "/x", "true"], 1),
        case(&["--bind", "/nonexistent", "/x", "true"], 1),
        case(&["--foo", "true"], 1),
        case(&["--bind", "/"], 1),
        case(&["--uid", "x", "true"], 1),
        case(&["--hostname", "x", "true"], 1),
        case(&["--as-pid-1", "true"], 1),
        case(&["--perms", "0755", "--ro-bind", "/", "/", "true"], 1),
        case(&["--size", "0", "--tmpfs", "/x", "true"], 1),
        case(&["--chmod", "999", "/x", "true"], 1),
        case(&["--cap-add", "CAP_NOPE", "true"], 1),
        case(&["no-such-command-here"], 1),
    ];
    v.push(Case {
        args: vec!["--file", "3", "/f", "sh", "-c", "cat /f; stat -c %a /f"],
        system: true,
        code: 0,
        setup_error: false,
        data: Some(b"file data\n"),
    });
    v.push(Case {
        args: vec![
            "--perms", "0640", "--file", "3", "/f", "stat", "-c", "%a", "/f",
        ],
        system: true,
        code: 0,
        setup_error: false,
        data: Some(b"x"),
    });
    v.push(Case {
        args: vec![
            "--ro-bind-data",
            "3",
            "/d",
            "sh",
            "-c",
            "cat /d; echo hi >/d 2>/dev/null || echo ro",
        ],
        system: true,
        code: 0,
        setup_error: false,
        data: Some(b"bound data\n"),
    });
    v.push(Case {
        args: vec!["--args", "3", "sh", "-c", "echo $A; hostname"],
        system: true,
        code: 0,
        setup_error: false,
        data: Some(b"--setenv\0A\0from the args fd\0--unshare-uts\0--hostname\0argbox\0"),
    });
    v.push(Case {
        args: vec![
            "--perms",
            "0444",
            "--bind-data",
            "3",
            "/d",
            "stat",
            "-c",
            "%a",
            "/d",
        ],
        system: true,
        code: 0,
        setup_error: false,
        data: Some(b"x"),
    });
    v.push(Case {
        args: vec![
            "--bind-data",
            "3",
            "/d",
            "sh",
            "-c",
            "echo more >>/d && cat /d",
        ],
        system: true,
        code: 0,
        setup_error: false,
        data: Some(b"first\n"),
    });
    v.push(Case {
        args: vec![
            "--tmpfs", "/t", "--file", "3", "/t/f", "--chmod", "0600", "/t/f", "stat", "-c", "%a",
            "/t/f",
        ],
        system: true,
        code: 0,
        setup_error: false,
        data: Some(b""),
    });
    v.push(Case {
        // bubblewrap closes an --args fd once it has read it.
        args: vec!["--args", "3", "--args", "3", "true"],
        system: true,
        code: 1,
        setup_error: false,
        data: Some(b"--unshare-net\0"),
    });
    v.push(Case {
        args: vec!["--args", "3", "true"],
        system: true,
        code: 1,
        setup_error: false,
        data: Some(b"--args\x003\0"),
    });
    // A BPF program that allows everything: it replaces the default filter (the policy lets the
    // caller run without it), and the command runs under a filter.
    const ALLOW_ALL: &[u8] = &[0x06, 0, 0, 0, 0, 0, 0xff, 0x7f];
    v.push(Case {
        args: vec![
            "--proc",
            "/proc",
            "--unshare-pid",
            "--seccomp",
            "3",
            "grep",
            "^Seccomp:",
            "/proc/self/status",
        ],
        system: true,
        code: 0,
        setup_error: false,
        data: Some(ALLOW_ALL),
    });
    v.push(Case {
        args: vec![
            "--proc",
            "/proc",
            "--unshare-pid",
            "--add-seccomp-fd",
            "3",
            "grep",
            "^Seccomp:",
            "/proc/self/status",
        ],
        system: true,
        code: 0,
        setup_error: false,
        data: Some(ALLOW_ALL),
    });
    // Not a whole number of instructions.
    v.push(Case {
        args: vec!["--seccomp", "3", "true"],
        system: true,
        code: 1,
        setup_error: false,
        data: Some(b"1234567"),
    });
    // Without the system nothing can run.
    v.push(Case {
        args: vec!["--dir", "/x", "true"],
        system: false,
        code: 1,
        data: None,
        setup_error: false,
    });
    v
}

fn full_args(k: &Case) -> Vec<&'static str> {
    let mut args: Vec<&'static str> = if k.system {
        SYSTEM.to_vec()
    } else {
        Vec::new()
    };
    args.extend(&k.args);
    args
}

/// stderr's meaning: the `bwrap: ` lines, without the way-in line.
fn bwrap_lines(o: &Output) -> Vec<String> {
    o.stderr
        .lines()
        .filter(|l| l.starts_with("bwrap: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_corpus_matches_debians_bwrap_through_the_setuid_helper() {
    if !nsjail_tests::require_root("bwrap corpus") {
        return;
    }
    let c = Caller::setuid_user();
    let scratch = c.scratch();
    // Where Debian's bwrap is missing or cannot start a sandbox (unprivileged user namespaces
    // off), ours still runs every invocation and must give each its exit status.
    let compare = Path::new(DEBIAN_BWRAP).exists() && debian_works(&c);
    eprintln!("comparing with Debian's bwrap (present and able to start a sandbox): {compare}");
    let mut failures = Vec::new();
    for (i, k) in corpus().iter().enumerate() {
        let data = k.data.map(|d| {
            let p = scratch.path().join(format!("data{i}"));
            std::fs::write(&p, d).unwrap();
            p
        });
        let args = full_args(k);
        let o = ours(&c, &args, data.as_deref(), k.code != 1);
        if o.code() != Some(k.code) {
            failures.push(format!("ours, not exit {}:\n{}", k.code, o.describe()));
            continue;
        }
        if !compare {
            continue;
        }
        let d = debian(&c, &args, data.as_deref());
        let first_word = |o: &Output| {
            bwrap_lines(o)
                .first()
                .map(|l| l.split(':').take(2).collect::<Vec<_>>().join(":"))
        };
        let same = o.code() == d.code()
            && o.stdout == d.stdout
            && if k.setup_error {
                bwrap_lines(&o).len() == 1 && bwrap_lines(&d).len() == 1
            } else {
                k.code != 1 || first_word(&o) == first_word(&d)
            };
        if !same {
            failures.push(format!(
                "ours:\n{}\nDebian's:\n{}",
                o.describe(),
                d.describe()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invocations differ:\n{}",
        failures.len(),
        corpus().len(),
        failures.join("\n")
    );
}

#[test]
fn usage_errors_read_as_bubblewraps() {
    if !nsjail_tests::require_root("bwrap usage errors") {
        return;
    }
    let c = Caller::setuid_user();
    for (args, line) in [
        (&["--foo", "true"][..], "bwrap: Unknown option --foo"),
        (&["--bind", "/"], "bwrap: --bind takes two arguments"),
        (
            &["--hostname", "x", "true"],
            "bwrap: Specifying --hostname requires --unshare-uts",
        ),
        (
            &["--userns", "0", "true"],
            "bwrap: --userns is not supported",
        ),
        (&["--pidns", "0", "true"], "bwrap: --pidns is not supported"),
        (
            &["--userns2", "0", "true"],
            "bwrap: --userns2 is not supported",
        ),
    ] {
        let o = ours(&c, args, None, false);
        o.expect_code(1);
        let lines = bwrap_lines(&o);
        assert_eq!(lines.len(), 1, "{}", o.describe());
        assert!(lines[0].starts_with(line), "{}", o.describe());
        assert!(o.stdout.is_empty(), "{}", o.describe());
    }
    // Capabilities through the setuid helper: refused by the default policy, in one line.
    let mut args = SYSTEM.to_vec();
    args.extend(["--cap-add", "CAP_CHOWN", "true"]);
    let o = ours(&c, &args, None, false);
    o.expect_code(1);
    let lines = bwrap_lines(&o);
    assert_eq!(lines.len(), 1, "{}", o.describe());
    assert!(lines[0].contains("--cap-add"), "{}", o.describe());
    // The same command line without it runs: the refusal is the capability's.
    let o = ours(
        &c,
        &SYSTEM.iter().copied().chain(["true"]).collect::<Vec<_>>(),
        None,
        true,
    );
    o.expect_success();
    // --level-prefix: the syslog level before each message.
    let o = ours(&c, &["--level-prefix", "--foo"], None, false);
    o.expect_code(1);
    assert!(
        o.stderr.contains("<3>bwrap: Unknown option --foo"),
        "{}",
        o.describe()
    );
    // No command: the usage, on stderr.
    let o = ours(&c, &["--unshare-net"], None, false);
    o.expect_code(1);
    assert!(o.stderr.starts_with("usage: bwrap"), "{}", o.describe());
    let o = ours(&c, &["--help"], None, false);
    o.expect_success();
    assert!(o.stdout.starts_with("usage: bwrap"), "{}", o.describe());
    // `nsjail bwrap --dry-run`: the sandbox these arguments make, nothing started.
    let o = ours(
        &c,
        &[
            "--dry-run",
            "--ro-bind",
            "/usr",
            "/usr",
            "--unshare-net",
            "--",
            "sh",
            "-c",
            "x",
        ],
        None,
        false,
    );
    o.expect_success();
    assert!(
        o.stdout.starts_with("nsjail dry run: nothing was started"),
        "{}",
        o.describe()
    );
    assert!(
        o.stdout.contains("1  --ro-bind /usr /usr\n"),
        "{}",
        o.describe()
    );
    assert!(
        o.stdout.contains("new user, mount, pid, net;"),
        "{}",
        o.describe()
    );
    let o = ours(
        &c,
        &["--dry-run=json", "--ro-bind", "/usr", "/usr", "true"],
        None,
        false,
    );
    o.expect_success();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("JSON");
    assert_eq!(v["request"]["argv"][0], "true", "{}", o.describe());
    let o = ours(&c, &["--dry-run", "--foo", "true"], None, false);
    o.expect_code(1);
    assert_eq!(
        bwrap_lines(&o),
        ["bwrap: Unknown option --foo"],
        "{}",
        o.describe()
    );
    let o = ours(&c, &["--version"], None, false);
    o.expect_success();
    assert!(o.stdout.starts_with("bubblewrap "), "{}", o.describe());
}

#[test]
fn named_bwrap_it_speaks_bubblewrap_through_the_daemon() {
    if !nsjail_tests::require_root("bwrap through the daemon") {
        return;
    }
    let c = Caller::daemon_user();
    let dir = c.scratch();
    let link = dir.path().join("bwrap");
    std::os::unix::fs::symlink(&c.nsjail, &link).unwrap();
    let mut args = SYSTEM.to_vec();
    args.extend(["--unshare-all", "--", "sh", "-c", "id -u; hostname; exit 3"]);
    let mut cmd = c.command_for(&link);
    cmd.args(&args);
    let o = Running::spawn(&mut cmd, None, "[daemon] bwrap by its name")
        .expect_way_in(c.way_in())
        .wait();
    o.expect_code(3);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        o.lines(),
        [c.uid.to_string(), host.trim().to_string()],
        "{}",
        o.describe()
    );
}

#[test]
fn info_and_json_status_fds_say_the_child_and_its_namespaces() {
    if !nsjail_tests::require_root("bwrap info fds") {
        return;
    }
    let c = Caller::setuid_user();
    let dir = c.scratch();
    let info = dir.path().join("info");
    let status = dir.path().join("status");
    let nsjail = c.nsjail.to_string_lossy().into_owned();
    let mut cmd = c.command_for("/bin/sh");
    cmd.arg("-c")
        .arg("exec \"$@\" 3>\"$I\" 4>\"$S\"")
        .arg("sh")
        .args([&nsjail, "bwrap"])
        .args(SYSTEM)
        .args([
            "--unshare-all",
            "--info-fd",
            "3",
            "--json-status-fd",
            "4",
            "--sync-fd",
            "0",
        ])
        .args(["sh", "-c", "readlink /proc/self/ns/mnt 2>/dev/null; exit 5"])
        .env("I", &info)
        .env("S", &status);
    let o = Running::spawn(&mut cmd, None, "[setuid] bwrap --info-fd --json-status-fd")
        .expect_way_in(c.way_in())
        .wait();
    o.expect_code(5);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&info).unwrap()).unwrap();
    let pid = info["child-pid"].as_i64().unwrap();
    assert!(pid > 1, "{info}");
    for key in [
        "cgroup-namespace",
        "ipc-namespace",
        "mnt-namespace",
        "net-namespace",
        "pid-namespace",
        "uts-namespace",
    ] {
        // The host may not read the namespaces of a sandbox a privileged helper made: then
        // bubblewrap's key is left out, never wrong.
        let Some(id) = info[key].as_u64() else {
            continue;
        };
        let host = nsjail_tests::host_ns(key.trim_end_matches("-namespace"));
        assert!(
            !host.contains(&id.to_string()),
            "{key} {id} is the host's {host}"
        );
    }
    let status = std::fs::read_to_string(&status).unwrap();
    let lines: Vec<serde_json::Value> = status
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{status}");
    assert_eq!(lines[0]["child-pid"].as_i64(), Some(pid), "{status}");
    assert_eq!(lines[0]["mnt-namespace"], info["mnt-namespace"], "{status}");
    assert_eq!(lines[1]["exit-code"].as_i64(), Some(5), "{status}");
}
