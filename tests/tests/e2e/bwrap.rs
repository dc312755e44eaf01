//! `bwrap`: bubblewrap's command line through our helper, as an ordinary user (setuid helper,
//! and the daemon), compared with Debian's own `/usr/bin/bwrap` run by the same user with the
//! same arguments. CI and the vmtest guest have Debian's bwrap, and there the comparison never
//! skips; where `kernel.unprivileged_userns_clone=0`, Debian's cannot start a sandbox and ours
//! must.

use std::path::Path;
use std::process::Command;

use nsjail_tests::{BWRAP_SYSTEM as SYSTEM, Caller, DEBIAN_BWRAP, Output, Running, shell_words};

/// The fds a command gets besides stdio: none, `data` on fd 3, or redirections of the shell
/// that starts it, where `$D` is the data file and `$O` the run's own directory.
#[derive(Clone, Copy)]
struct Fds<'a> {
    data: Option<&'a Path>,
    redirect: &'a str,
    out: Option<&'a Path>,
}

impl<'a> From<Option<&'a Path>> for Fds<'a> {
    fn from(data: Option<&'a Path>) -> Self {
        Fds {
            data,
            redirect: if data.is_some() { "3<\"$D\"" } else { "" },
            out: None,
        }
    }
}

/// `program ARGS…` as the caller, with the fds of `fds` open (through a shell that redirects,
/// so both bwraps get the fds the same way).
fn command<'a>(c: &Caller, program: &[&str], args: &[&str], fds: impl Into<Fds<'a>>) -> Command {
    let fds = fds.into();
    let mut cmd = c.command_for("/bin/sh");
    cmd.arg("-c")
        .arg(format!("exec \"$@\" {}", fds.redirect))
        .arg("sh")
        .args(program)
        .args(args);
    if let Some(d) = fds.data {
        cmd.env("D", d);
    }
    if let Some(o) = fds.out {
        cmd.env("O", o);
    }
    cmd
}

/// Ours: `nsjail bwrap ARGS…`. `starts`: the sandbox is to start, so the CLI must have gone
/// in by the caller's way and said so (a usage error ends before a way in is chosen).
fn ours<'a>(c: &Caller, args: &[&str], data: impl Into<Fds<'a>>, starts: bool) -> Output {
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

fn debian<'a>(c: &Caller, args: &[&str], data: impl Into<Fds<'a>>) -> Output {
    let mut cmd = command(c, &[DEBIAN_BWRAP], args, data);
    let what = format!("[{}] {DEBIAN_BWRAP} {}", c.name(), shell_words(args));
    Running::spawn(&mut cmd, None, &what).wait()
}

/// One invocation of the corpus: what comes after the system binds (or instead of them), the
/// exit status ours must give, and what it is compared with.
///
/// `@OUT@` in an argument is a fresh directory of the caller's for each run (one for ours, one
/// for Debian's): what the command leaves there is compared afterwards, as seen from outside.
#[derive(Default)]
struct Case {
    args: Vec<&'static str>,
    system: bool,
    code: i32,
    data: Option<&'static [u8]>,
    /// Shell redirections for the fds the command gets (see [`Fds`]); empty: `data` on fd 3.
    fds: &'static str,
    /// A set-up failure: the helper words it, so only "one `bwrap: ` line, exit 1" is compared.
    setup_error: bool,
    against: Against,
}

/// What ours is held to besides its exit status.
#[derive(Default)]
enum Against {
    /// Debian's bwrap, run the same way: the same exit status, stdout, error line and files.
    #[default]
    Debian,
    /// A deliberate difference, a row of docs/bwrap.md's table (`row` is part of its first
    /// cell): ours gives `ours`, Debian's gives `debian_code` and `debian`. Each is stdout
    /// exactly, or, for exit 1, the start of the `bwrap: ` line.
    Differs {
        row: &'static str,
        ours: &'static str,
        debian_code: i32,
        debian: &'static str,
    },
    /// An option newer than Debian's 0.8 (which says `bwrap: Unknown option OPTION`): ours
    /// gives what bubblewrap's documentation says, `ours` (as for `Differs`).
    Newer {
        option: &'static str,
        ours: &'static str,
    },
}

fn case(args: &[&'static str], code: i32) -> Case {
    Case {
        args: args.to_vec(),
        system: true,
        code,
        ..Default::default()
    }
}

fn setup_error(args: &[&'static str]) -> Case {
    Case {
        setup_error: true,
        ..case(args, 1)
    }
}

impl Case {
    fn data(mut self, d: &'static [u8]) -> Case {
        self.data = Some(d);
        self
    }

    fn fds(mut self, redirect: &'static str) -> Case {
        self.fds = redirect;
        self
    }

    fn bare(mut self) -> Case {
        self.system = false;
        self
    }

    fn differs(
        mut self,
        row: &'static str,
        ours: &'static str,
        debian_code: i32,
        debian: &'static str,
    ) -> Case {
        self.against = Against::Differs {
            row,
            ours,
            debian_code,
            debian,
        };
        self
    }

    fn newer(mut self, option: &'static str, ours: &'static str) -> Case {
        self.against = Against::Newer { option, ours };
        self
    }

    fn uses_out(&self) -> bool {
        self.args.iter().any(|a| a.contains(OUT)) || self.fds.contains("$O")
    }

    /// The fds of a run whose own directory is `out`.
    fn fds_for<'a>(&self, data: Option<&'a Path>, out: &'a Path) -> Fds<'a> {
        if self.fds.is_empty() {
            return data.into();
        }
        Fds {
            data,
            redirect: self.fds,
            out: Some(out),
        }
    }
}

/// The placeholder for the run's own directory (see [`Case`]).
const OUT: &str = "@OUT@";

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
                "set -- /proc/[0-9]*; echo $#",
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
        data: Some(b"file data\n"),
        ..Default::default()
    });
    v.push(Case {
        args: vec![
            "--perms", "0640", "--file", "3", "/f", "stat", "-c", "%a", "/f",
        ],
        system: true,
        code: 0,
        data: Some(b"x"),
        ..Default::default()
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
        data: Some(b"bound data\n"),
        ..Default::default()
    });
    v.push(Case {
        args: vec!["--args", "3", "sh", "-c", "echo $A; hostname"],
        system: true,
        code: 0,
        data: Some(b"--setenv\0A\0from the args fd\0--unshare-uts\0--hostname\0argbox\0"),
        ..Default::default()
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
        data: Some(b"x"),
        ..Default::default()
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
        data: Some(b"first\n"),
        ..Default::default()
    });
    v.push(Case {
        args: vec![
            "--tmpfs", "/t", "--file", "3", "/t/f", "--chmod", "0600", "/t/f", "stat", "-c", "%a",
            "/t/f",
        ],
        system: true,
        code: 0,
        data: Some(b""),
        ..Default::default()
    });
    v.push(Case {
        // bubblewrap closes an --args fd once it has read it.
        args: vec!["--args", "3", "--args", "3", "true"],
        system: true,
        code: 1,
        data: Some(b"--unshare-net\0"),
        ..Default::default()
    });
    v.push(Case {
        args: vec!["--args", "3", "true"],
        system: true,
        code: 1,
        data: Some(b"--args\x003\0"),
        ..Default::default()
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
        data: Some(ALLOW_ALL),
        ..Default::default()
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
        data: Some(ALLOW_ALL),
        ..Default::default()
    });
    // Not a whole number of instructions.
    v.push(Case {
        args: vec!["--seccomp", "3", "true"],
        system: true,
        code: 1,
        data: Some(b"1234567"),
        ..Default::default()
    });
    // Without the system nothing can run.
    v.push(Case {
        args: vec!["--dir", "/x", "true"],
        system: false,
        code: 1,
        data: None,
        ..Default::default()
    });
    v.extend(namespaces_and_ids());
    v.extend(filesystem());
    v.extend(process_and_input());
    v.extend(clients());
    v.extend(differences());
    v.extend(inherited_fds());
    v
}

/// What a readlink of each namespace shows: `X:[host]` or `X:[new]` once normalised.
const NS: &str = "for n in cgroup ipc mnt net pid user uts; do readlink /proc/self/ns/$n; done";

/// Namespaces as the command sees them (readlink and stat of /proc/self/ns), its ids and
/// /proc/self/status.
fn namespaces_and_ids() -> Vec<Case> {
    let p = |more: &[&'static str], script: &'static str| {
        let mut a = vec!["--proc", "/proc", "--unshare-pid"];
        a.extend(more);
        a.extend(["sh", "-c", script]);
        case(&a, 0)
    };
    vec![
        p(&[], NS),
        p(&["--unshare-net"], NS),
        p(&["--unshare-ipc"], NS),
        p(&["--unshare-uts"], NS),
        p(&["--unshare-cgroup"], NS),
        p(&["--unshare-cgroup-try"], NS),
        p(&["--unshare-user"], NS),
        p(&["--unshare-user-try"], NS),
        p(&["--unshare-all"], NS),
        p(&["--unshare-all", "--share-net"], NS),
        p(&["--share-net"], NS),
        p(
            &["--unshare-all", "--share-net"],
            "stat -L -c '%i' /proc/self/ns/net /proc/self/ns/uts /proc/self/ns/ipc",
        ),
        p(
            &["--unshare-net", "--unshare-uts"],
            "stat -L -c '%i' /proc/self/ns/net /proc/self/ns/uts /proc/self/ns/cgroup",
        ),
        p(&[], "grep -E '^(Uid|Gid|Groups):' /proc/self/status"),
        p(
            &["--uid", "0", "--gid", "0"],
            "grep -E '^(Uid|Gid|Groups):' /proc/self/status",
        ),
        p(
            &["--unshare-user", "--uid", "1234", "--gid", "5678"],
            "grep -E '^(Uid|Gid):' /proc/self/status; id -u; id -g",
        ),
        p(&[], "grep -E '^Cap(Inh|Prm|Eff|Amb):' /proc/self/status"),
        p(
            &["--uid", "0"],
            "grep -E '^Cap(Inh|Prm|Eff|Amb):' /proc/self/status",
        ),
        p(
            &["--cap-drop", "ALL"],
            "grep -E '^Cap(Prm|Eff):' /proc/self/status",
        ),
        p(&[], "grep -E '^(Pid|PPid|TracerPid):' /proc/self/status"),
        p(&["--as-pid-1"], "grep -E '^(Pid|PPid):' /proc/self/status"),
        p(&[], "grep -E '^NoNewPrivs:' /proc/self/status"),
        p(
            &["--new-session"],
            "grep -E '^(NSpgid|NSsid):' /proc/self/status",
        ),
        p(&[], "cat /proc/self/uid_map /proc/self/gid_map"),
        p(
            &["--uid", "0", "--gid", "0"],
            "cat /proc/self/uid_map /proc/self/gid_map",
        ),
        p(
            &["--unshare-uts", "--hostname", "a.b-c"],
            "hostname; uname -n",
        ),
        p(
            &["--unshare-net"],
            "ip -o -4 addr show lo | wc -l; ip -o link | wc -l",
        ),
    ]
}

/// Filesystem options: modes, types, what is mounted where, and what a bound directory of the
/// caller's holds afterwards, seen from outside.
fn filesystem() -> Vec<Case> {
    // The set of mount points; the order they were made in is each implementation's own.
    let mount_points = "cut -d' ' -f5 /proc/self/mountinfo | sort";
    vec![
        case(&["--tmpfs", "/tmp", "stat", "-c", "%a %U %G", "/tmp"], 0),
        case(
            &[
                "--perms", "1777", "--tmpfs", "/tmp", "stat", "-c", "%a", "/tmp",
            ],
            0,
        ),
        case(&["--dir", "/a", "stat", "-c", "%a", "/a"], 0),
        case(
            &["--perms", "0700", "--dir", "/a", "stat", "-c", "%a", "/a"],
            0,
        ),
        case(
            &[
                "--dir", "/a/b/c", "stat", "-c", "%a %n", "/a", "/a/b", "/a/b/c",
            ],
            0,
        ),
        case(&["--tmpfs", "/t", "stat", "-f", "-c", "%T", "/t"], 0),
        case(
            &[
                "--proc",
                "/proc",
                "--unshare-pid",
                "stat",
                "-f",
                "-c",
                "%T",
                "/proc",
            ],
            0,
        ),
        case(
            &[
                "--dev", "/dev", "stat", "-f", "-c", "%T", "/dev", "/dev/pts", "/dev/shm",
            ],
            0,
        ),
        case(&["--dev", "/dev", "sh", "-c", "ls -A /dev"], 0),
        case(
            &[
                "--dev",
                "/dev",
                "readlink",
                "/dev/fd",
                "/dev/stdin",
                "/dev/stdout",
                "/dev/stderr",
                "/dev/ptmx",
            ],
            0,
        ),
        case(
            &[
                "--dev",
                "/dev",
                "stat",
                "-c",
                "%n %a %F %t:%T",
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty",
            ],
            0,
        ),
        case(
            &["--dev", "/dev", "stat", "-c", "%a", "/dev", "/dev/pts"],
            0,
        ),
        case(
            &[
                "--unshare-ipc",
                "--mqueue",
                "/mq",
                "stat",
                "-f",
                "-c",
                "%T",
                "/mq",
            ],
            0,
        ),
        case(
            &[
                "--proc",
                "/proc",
                "--unshare-pid",
                "--tmpfs",
                "/tmp",
                "--dev",
                "/dev",
                "sh",
                "-c",
                mount_points,
            ],
            0,
        ),
        case(
            &[
                "--proc",
                "/proc",
                "--unshare-pid",
                "--bind",
                "/tmp",
                "/t",
                "sh",
                "-c",
                "grep -c ' /t ' /proc/self/mountinfo",
            ],
            0,
        ),
        case(&["--ro-bind", "usr", "/u", "ls", "-d", "/u/bin"], 0),
        case(
            &[
                "--ro-bind",
                "/etc/hostname",
                "/hn",
                "stat",
                "-c",
                "%F",
                "/hn",
            ],
            0,
        ),
        case(&["--bind-try", "/usr/share", "/s", "ls", "-d", "/s/doc"], 0),
        case(
            &[
                "--tmpfs", "/t", "--dir", "/t/d", "--dir", "/t/d", "ls", "/t",
            ],
            0,
        ),
        case(
            &[
                "--tmpfs",
                "/t",
                "--symlink",
                "x",
                "/t/l",
                "--symlink",
                "x",
                "/t/l",
                "readlink",
                "/t/l",
            ],
            0,
        )
        .differs(
            "refuses a `--symlink` where that link is already there",
            "x\n",
            1,
            "bwrap: Can't make symlink at /t/l: File exists",
        ),
        setup_error(&[
            "--tmpfs",
            "/t",
            "--symlink",
            "x",
            "/t/l",
            "--symlink",
            "y",
            "/t/l",
            "true",
        ]),
        case(
            &[
                "--tmpfs",
                "/x",
                "--dir",
                "/x/y",
                "--remount-ro",
                "/x",
                "sh",
                "-c",
                "mkdir /x/z 2>/dev/null; echo $?; ls /x",
            ],
            0,
        ),
        case(
            &[
                "--ro-bind",
                "/",
                "/",
                "sh",
                "-c",
                "ls -d /usr /etc; touch /etc/x 2>/dev/null; echo $?",
            ],
            0,
        )
        .bare(),
        case(
            &[
                "--ro-bind",
                "/usr",
                "/usr",
                "--symlink",
                "usr/bin",
                "/bin",
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
                "ls",
                "/",
            ],
            0,
        )
        .bare(),
        case(
            &[
                "--bind",
                OUT,
                "/out",
                "sh",
                "-c",
                "echo hi >/out/a; mkdir /out/d; ln -s a /out/l; chmod 0600 /out/a; mkfifo /out/d/p 2>/dev/null; ls /out",
            ],
            0,
        ),
        case(
            &[
                "--bind",
                OUT,
                "/out",
                "--uid",
                "0",
                "--gid",
                "0",
                "sh",
                "-c",
                "touch /out/r; stat -c '%u %g' /out/r",
            ],
            0,
        ),
        case(
            &[
                "--ro-bind",
                OUT,
                "/out",
                "sh",
                "-c",
                "touch /out/x 2>/dev/null; echo $?",
            ],
            0,
        ),
        case(
            &[
                "--bind",
                OUT,
                "/out",
                "--remount-ro",
                "/out",
                "sh",
                "-c",
                "touch /out/x 2>/dev/null; echo $?",
            ],
            0,
        ),
        case(
            &[
                "--bind",
                OUT,
                "/out",
                "--dir",
                "/out/made",
                "--symlink",
                "made",
                "/out/link",
                "true",
            ],
            0,
        ),
        case(
            &[
                "--bind", OUT, "/out", "--file", "3", "/out/f", "cat", "/out/f",
            ],
            0,
        )
        .data(b"to the host\n"),
        case(
            &[
                "--bind", OUT, "/out", "--perms", "0600", "--file", "3", "/out/f", "true",
            ],
            0,
        )
        .data(b"x"),
        case(
            &["--bind", OUT, "/out", "--chmod", "0700", "/out", "true"],
            0,
        ),
        case(
            &[
                "--bind",
                OUT,
                "/out",
                "--tmpfs",
                "/out/t",
                "sh",
                "-c",
                "touch /out/t/gone /out/kept",
            ],
            0,
        ),
        case(
            &[
                "--bind",
                OUT,
                "/out",
                "--ro-bind",
                "/etc/hostname",
                "/out/hn",
                "true",
            ],
            0,
        ),
        case(
            &[
                "--bind",
                OUT,
                OUT,
                "--chdir",
                OUT,
                "sh",
                "-c",
                "pwd; echo x >here",
            ],
            0,
        ),
        case(
            &[
                "--dir",
                "/a",
                "--chdir",
                "/a",
                "--tmpfs",
                "/b",
                "sh",
                "-c",
                "pwd; cd /b && pwd",
            ],
            0,
        ),
        case(
            &["--ro-bind-data", "3", "/d", "stat", "-c", "%a %s", "/d"],
            0,
        )
        .data(b"12345"),
        case(
            &[
                "--perms",
                "0600",
                "--ro-bind-data",
                "3",
                "/d",
                "stat",
                "-c",
                "%a",
                "/d",
            ],
            0,
        )
        .data(b"x"),
        case(
            &[
                "--file",
                "3",
                "/f",
                "--remount-ro",
                "/f",
                "sh",
                "-c",
                "cat /f; echo y >/f 2>/dev/null || echo ro",
            ],
            0,
        )
        .data(b"z\n")
        .differs(
            "`--remount-ro DEST` fails where DEST is not a mount point",
            "z\nro\n",
            1,
            "bwrap: Can't remount readonly on /newroot/f",
        ),
        case(
            &[
                "--tmpfs", "/t", "--chmod", "0", "/t", "stat", "-c", "%a", "/t",
            ],
            0,
        ),
    ]
}

/// The command: its environment, directory, exit status, stdout; the machine interface's fds;
/// bad input of every kind.
fn process_and_input() -> Vec<Case> {
    vec![
        case(&["pwd"], 0),
        case(&["--chdir", "/usr/bin", "sh", "-c", "pwd; echo $PWD"], 0),
        case(&["--chdir", "usr", "pwd"], 0),
        case(
            &[
                "--setenv", "A", "1", "--setenv", "A", "2", "sh", "-c", "echo $A",
            ],
            0,
        ),
        case(
            &["--unsetenv", "NOT_SET_ANYWHERE", "sh", "-c", "echo ok"],
            0,
        ),
        case(
            &[
                "--clearenv",
                "--setenv",
                "PATH",
                "/usr/bin",
                "--unsetenv",
                "PATH",
                "/usr/bin/env",
            ],
            0,
        ),
        case(&["--setenv", "PATH", "/nowhere", "sh", "-c", "true"], 1),
        case(&["/usr/bin/env", "-0"], 0),
        case(&["sh", "-c", "exit 126"], 126),
        case(&["sh", "-c", "exit 127"], 127),
        case(&["sh", "-c", "kill -HUP $$"], 129),
        case(&["sh", "-c", "kill -USR1 $$"], 138),
        case(&["--unshare-pid", "sh", "-c", "kill -KILL $$"], 137),
        case(&["seq", "1", "5000"], 0),
        case(&["sh", "-c", "cat; echo end"], 0),
        case(&["sh", "-c", "echo out; echo err >&2; exit 3"], 3),
        case(&["--block-fd", "3", "echo", "go"], 0).data(b"x"),
        case(&["--sync-fd", "3", "echo", "synced"], 0).data(b""),
        case(&["--args", "3", "sh", "-c", "echo $A"], 0).data(b""),
        case(&["--args", "3", "sh", "-c", "hostname"], 0)
            .data(b"--unshare-uts\0--hostname\0fromfile\0"),
        case(&["--seccomp", "3", "--add-seccomp-fd", "3", "true"], 1)
            .data(&[0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]),
        case(&["--seccomp", "99", "true"], 1),
        case(&["--file", "99", "/f", "true"], 1),
        case(&["--uid"], 1),
        case(&["--chdir"], 1),
        case(&["--unsetenv"], 1),
        case(&["--bind-data", "3"], 1),
        case(&["--ro-bind-data", "x", "/d", "true"], 1),
        case(&["--sync-fd", "x", "true"], 1),
        case(&["--size", "1M", "--tmpfs", "/x", "true"], 1),
        case(&["--size", "-1", "--tmpfs", "/x", "true"], 1),
        case(&["--perms", "abc", "--dir", "/x", "true"], 1),
        case(&["--perms", "0888", "--dir", "/x", "true"], 1),
        case(&["--uid", "-1", "true"], 1),
        case(&["--cap-drop", "CAP_NOPE", "true"], 1),
        case(&["--unshare-pid", "--as-pid-1", "--as-pid-1", "true"], 0),
        case(&["--bind-try", "/"], 1),
        case(&["--proc"], 1),
        case(&["--dev"], 1),
        case(&["--mqueue"], 1),
        case(&["--dir"], 1),
        case(&["--args"], 1),
        case(&["--exec-label"], 1),
        case(
            &[
                "--ro-bind-try",
                "/nonexistent",
                "/x",
                "--bind",
                "/nonexistent2",
                "/y",
                "true",
            ],
            1,
        ),
    ]
}

/// Each fd 3 to 9 the command has, with what it is open on (the shell's own, checked one by
/// one: a pipe of a pipeline would show up in a listing).
const LIST_FDS: &str = "test -d /proc/$$/fd || exit 3; for n in 3 4 5 6 7 8 9; do test -e /proc/$$/fd/$n && echo $n $(readlink /proc/$$/fd/$n); done; true";

/// The fds the caller left open reach the command at their numbers, as with bubblewrap, and
/// those bubblewrap itself consumes do not: the data of `--file`, `--bind-data`, `--args`,
/// `--add-seccomp-fd`, the directory of `--bind-fd`, `--info-fd`, `--json-status-fd`,
/// `--block-fd`, `--sync-fd`.
fn inherited_fds() -> Vec<Case> {
    let listed = |args: &[&'static str]| {
        let mut a = vec!["--proc", "/proc"];
        a.extend(args);
        a.extend(["sh", "-c", LIST_FDS]);
        case(&a, 0)
    };
    vec![
        // Read, written and read-write, behind the init and as pid 1.
        case(
            &[
                "--proc",
                "/proc",
                "sh",
                "-c",
                "test -d /proc/$$/fd || exit 3; \
                 for n in 3 4 5 6 7 8 9; do test -e /proc/$$/fd/$n && echo $n; done; \
                 cat <&3; echo written >&5; cat <&9; echo more >&9",
            ],
            0,
        )
        .data(b"inherited\n")
        .fds("3<\"$D\" 5>\"$O/five\" 9<>\"$O/nine\""),
        case(
            &[
                "--unshare-pid",
                "--as-pid-1",
                "--proc",
                "/proc",
                "sh",
                "-c",
                "echo $$; test -d /proc/$$/fd || exit 3; for n in 3 4 5 6 7 8 9; do test -e /proc/$$/fd/$n && echo $n; done; \
                 cat <&7; echo written >&4",
            ],
            0,
        )
        .data(b"inherited\n")
        .fds("7<\"$D\" 4>\"$O/four\""),
        listed(&["--unshare-all"])
            .data(b"x")
            .fds("6<\"$D\" 8<\"$D\""),
        listed(&["--file", "4", "/f"])
            .data(b"x")
            .fds("4<\"$D\" 6<\"$D\""),
        listed(&["--bind-data", "4", "/f"])
            .data(b"x")
            .fds("4<\"$D\" 6<\"$D\""),
        listed(&["--ro-bind-data", "4", "/f"])
            .data(b"x")
            .fds("4<\"$D\" 6<\"$D\""),
        listed(&["--args", "4"])
            .data(b"--unshare-uts\0")
            .fds("4<\"$D\" 6<\"$D\""),
        // An allow-all program, on top of the default filter.
        listed(&["--add-seccomp-fd", "4"])
            .data(b"\x06\0\0\0\0\0\xff\x7f")
            .fds("4<\"$D\" 6<\"$D\""),
        listed(&["--bind-fd", "4", "/mnt"])
            .data(b"x")
            .fds("4<\"$O\" 6<\"$D\""),
        listed(&["--info-fd", "4"])
            .data(b"x")
            .fds("4>/dev/null 6<\"$D\""),
        listed(&["--json-status-fd", "4"])
            .data(b"x")
            .fds("4>/dev/null 6<\"$D\""),
        listed(&["--block-fd", "4"])
            .data(b"go")
            .fds("4<\"$D\" 6<\"$D\""),
        listed(&["--sync-fd", "4"])
            .data(b"x")
            .fds("4<\"$D\" 6<\"$D\""),
    ]
}

/// The invocations of programs that run bwrap, in their shapes.
fn clients() -> Vec<Case> {
    vec![
        // A GNOME thumbnailer: the system, the input read-only, the output directory writable,
        // everything unshared.
        case(&[
            "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
            "--ro-bind-try", "/etc/fonts", "/etc/fonts",
            "--ro-bind-try", "/nonexistent/.cache/fontconfig", "/x/.cache/fontconfig",
            "--proc", "/proc", "--dev", "/dev", "--chdir", "/",
            "--setenv", "GIO_USE_VFS", "local",
            "--unshare-all", "--die-with-parent",
            "--bind", OUT, "/tmp",
            "--ro-bind", "/etc/hostname", "/tmp/gnome-desktop-file-to-thumbnail.png",
            "--", "sh", "-c",
            "cat /tmp/gnome-desktop-file-to-thumbnail.png >/tmp/gnome-desktop-thumbnailer.png; \
             echo $GIO_USE_VFS; ls /tmp",
        ], 0),
        // mat2: the file in, a directory out, a new session.
        case(&[
            "--dev", "/dev", "--proc", "/proc", "--unshare-all", "--new-session",
            "--die-with-parent", "--ro-bind", "/etc/hostname", "/in/hostname",
            "--bind", OUT, "/out", "--chdir", "/out",
            "--", "sh", "-c", "cp /in/hostname ./hostname.cleaned && ls",
        ], 0),
        // opam's sandbox: the whole system read-only, a writable build directory at its own
        // path, no network.
        case(&[
            "--ro-bind", "/", "/", "--dev", "/dev", "--tmpfs", "/tmp", "--proc", "/proc",
            "--unshare-net", "--unshare-pid", "--new-session", "--die-with-parent",
            "--bind", OUT, OUT, "--chdir", OUT,
            "--", "sh", "-c", "pwd; echo built >_build; ls; touch /usr/x 2>/dev/null || echo ro",
        ], 0).bare(),
        // xdg-desktop-portal's icon validator: a bare system, one file, everything cleared.
        case(&[
            "--unshare-ipc", "--unshare-net", "--unshare-pid", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev",
            "--ro-bind", "/etc/hostname", "/icon", "--chdir", "/",
            "--clearenv", "--setenv", "PATH", "/usr/bin",
            "--", "sh", "-c", "wc -c </icon; env",
        ], 0),
        // WebKitGTK's web process: the system and fonts read-only, a private /tmp and XDG dirs.
        case(&[
            "--die-with-parent", "--unshare-uts", "--unshare-ipc", "--unshare-cgroup-try",
            "--unshare-pid", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--dir", "/run", "--dir", "/run/user", "--dir", "/run/user/1000",
            "--setenv", "XDG_RUNTIME_DIR", "/run/user/1000",
            "--ro-bind-try", "/etc/fonts", "/etc/fonts", "--ro-bind-try", "/nonexistent", "/x",
            "--unsetenv", "HOME", "--new-session",
            "--", "sh", "-c", "echo $XDG_RUNTIME_DIR ${HOME-nohome}; stat -c %a /run/user/1000; echo $$",
        ], 0),
        // BuildStream: a writable install root bound in, the rest read-only, /dev minimal.
        case(&[
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "buildstream",
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--bind", OUT, "/buildstream-install", "--chdir", "/buildstream-install",
            "--setenv", "PREFIX", "/buildstream-install", "--remount-ro", "/usr",
            "--", "sh", "-c", "hostname; mkdir -p bin && echo tool >bin/tool; touch /usr/y 2>/dev/null || echo ro",
        ], 0),
        // ansible-runner: a private directory, the system and a fresh /tmp.
        case(&[
            "--die-with-parent", "--unshare-pid", "--proc", "/proc", "--dir", "/tmp",
            "--bind", OUT, "/runner", "--chdir", "/runner",
            "--", "sh", "-c", "echo result >artifact; pwd; ls",
        ], 0),
        // Flatpak's own sanity run of the runtime: --args, the fds and the system.
        case(&["--args", "3", "sh", "-c", "id -u; hostname; ls /run"], 0).data(
            b"--unshare-ipc\0--unshare-uts\0--hostname\0flatpak\0--dir\0/run\0--dir\0/run/host\0--die-with-parent\0",
        ),
    ]
}

/// The deliberate differences of docs/bwrap.md, each as the case that shows it, and options
/// newer than Debian's 0.8, as bubblewrap documents them.
fn differences() -> Vec<Case> {
    vec![
        case(
            &[
                "--proc",
                "/proc",
                "sh",
                "-c",
                "grep ^Seccomp: /proc/self/status",
            ],
            0,
        )
        .differs(
            "No seccomp filter unless",
            "Seccomp:\t2\n",
            0,
            "Seccomp:\t0\n",
        ),
        case(
            &[
                "sh",
                "-c",
                "test $$ -gt 2 && echo host-pids || echo own-pids",
            ],
            0,
        )
        .differs(
            "Without `--unshare-pid` the command shares the host's pid namespace",
            "own-pids\n",
            0,
            "host-pids\n",
        ),
        case(
            &[
                "--dev",
                "/dev",
                "--tmpfs",
                "/t",
                "--tmpfs",
                "/t/sub",
                "--remount-ro",
                "/t",
                "sh",
                "-c",
                "touch /t/sub/x 2>/dev/null; echo $?",
            ],
            0,
        )
        .differs("`--remount-ro DEST` remounts DEST only", "1\n", 0, "0\n"),
        case(&["--disable-userns", "echo", "ok"], 0).differs(
            "`--disable-userns` needs `--unshare-user`",
            "ok\n",
            1,
            "bwrap: --disable-userns requires --unshare-user",
        ),
        // Under a bind (the system's /usr): the host file, locked or refused as bubblewrap does.
        case(&["--lock-file", "/usr/bin/true", "echo", "ok"], 0),
        // (Debian's 0.8 still starts the command after that error; ours does not.)
        case(&["--lock-file", "/usr/nonexistent", "true"], 1),
        case(&["--lock-file", "/nonexistent", "echo", "ok"], 0).differs(
            "`--lock-file DEST` holds a lock",
            "ok\n",
            1,
            "bwrap: ",
        ),
        case(
            &["--exec-label", "system_u:system_r:x_t:s0", "echo", "ok"],
            0,
        )
        .differs(
            "`--exec-label`, `--file-label` set SELinux labels",
            "ok\n",
            1,
            "bwrap: ",
        ),
        case(
            &[
                "--unshare-user",
                "--uid",
                "0",
                "--cap-add",
                "CAP_CHOWN",
                "true",
            ],
            1,
        )
        .differs("`--cap-add` keeps capabilities", "bwrap: ", 0, ""),
        case(
            &[
                "--proc",
                "/proc",
                "--unshare-pid",
                "--argv0",
                "named",
                "sh",
                "-c",
                "head -c 5 /proc/$$/cmdline; echo",
            ],
            0,
        )
        .newer("--argv0", "named\n"),
        case(&["--dev", "/dev", "stat", "-c", "%a %U", "/dev/shm"], 0).differs(
            "`--dev` makes `/dev/shm` a directory of mode 0755",
            "1777 UNKNOWN\n",
            0,
            "755 UNKNOWN\n",
        ),
        case(&["--level-prefix", "--unshare-pid", "echo", "ok"], 0).newer("--level-prefix", "ok\n"),
        case(
            &[
                "--tmpfs",
                "/t",
                "--overlay-src",
                "/usr/share",
                "--tmp-overlay",
                "/t/o",
                "sh",
                "-c",
                "ls -d /t/o/doc; touch /t/o/new && echo rw",
            ],
            0,
        )
        .newer("--overlay-src", "/t/o/doc\nrw\n"),
        case(
            &[
                "--tmpfs",
                "/t",
                "--overlay-src",
                "/usr/share",
                "--overlay-src",
                "/usr/lib",
                "--ro-overlay",
                "/t/o",
                "sh",
                "-c",
                "ls -d /t/o/doc; touch /t/o/new 2>/dev/null || echo ro",
            ],
            0,
        )
        .newer("--overlay-src", "/t/o/doc\nro\n"),
        case(&["--tmp-overlay", "/t", "true"], 1)
            .newer("--tmp-overlay", "bwrap: --tmp-overlay requires"),
    ]
}

fn full_args(k: &Case, out: &Path) -> Vec<String> {
    let system: &[&str] = if k.system { SYSTEM } else { &[] };
    let out = out.to_str().expect("a UTF-8 scratch path");
    system
        .iter()
        .chain(&k.args)
        .map(|a| a.replace(OUT, out))
        .collect()
}

/// stderr's meaning: the `bwrap: ` lines, without the way-in line.
fn bwrap_lines(o: &Output) -> Vec<String> {
    o.stderr
        .lines()
        .filter(|l| l.starts_with("bwrap: "))
        .map(str::to_string)
        .collect()
}

/// The error line up to its second colon: what it is about, without the reason's wording.
fn first_word(o: &Output) -> Option<String> {
    bwrap_lines(o)
        .first()
        .map(|l| l.split(':').take(2).collect::<Vec<_>>().join(":"))
}

/// stdout with what differs from run to run made the same: the run's own directory is `@OUT@`,
/// a namespace id (`net:[4026531840]`, or the bare number of `stat -L -c %i`) is `host` when it
/// is this host's and `new` when not.
fn normalise(text: &str, out: &Path) -> String {
    let text = text.replace(out.to_str().expect("a UTF-8 scratch path"), OUT);
    let host: Vec<String> = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts", "time"]
        .iter()
        .map(|n| {
            let link = nsjail_tests::host_ns(n);
            link.trim_end_matches(']')
                .rsplit('[')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let mut result = String::new();
    let mut digits = String::new();
    let flush = |digits: &mut String, result: &mut String| {
        if digits.len() == 10 && digits.starts_with("4026") {
            result.push_str(if host.contains(digits) { "host" } else { "new" });
        } else {
            result.push_str(digits);
        }
        digits.clear();
    };
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
        } else {
            flush(&mut digits, &mut result);
            result.push(ch);
        }
    }
    flush(&mut digits, &mut result);
    result
}

/// What a run left in its directory, seen from outside: each entry's path, type, mode, owner
/// (`caller` for the caller's uid and gid) and a file's bytes or a symlink's target.
fn listing(dir: &Path, c: &Caller) -> String {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, rel: &str, c: &Caller, lines: &mut Vec<String>) {
        let m = std::fs::symlink_metadata(dir).unwrap();
        let owner = |uid: u32, gid: u32| {
            if (uid, gid) == (c.uid, c.gid) {
                "caller".to_string()
            } else {
                format!("{uid}:{gid}")
            }
        };
        let what = if m.is_symlink() {
            format!("-> {}", std::fs::read_link(dir).unwrap().display())
        } else if m.is_file() {
            format!(
                "{:?}",
                String::from_utf8_lossy(&std::fs::read(dir).unwrap())
            )
        } else {
            "dir".to_string()
        };
        lines.push(format!(
            "{rel} {:o} {} {what}",
            m.mode() & 0o7777,
            owner(m.uid(), m.gid())
        ));
        if m.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                let n = n.to_string_lossy();
                walk(&dir.join(&*n), &format!("{rel}/{n}"), c, lines);
            }
        }
    }
    let mut lines = Vec::new();
    walk(dir, ".", c, &mut lines);
    lines.join("\n")
}

/// Whether unprivileged user namespaces are on for ordinary users here (Debian's switch,
/// Ubuntu's AppArmor restriction, the namespace limit).
fn unprivileged_userns_on() -> bool {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    read("/proc/sys/kernel/unprivileged_userns_clone").is_none_or(|v| v != "0")
        && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").is_none_or(|v| v == "0")
        && read("/proc/sys/user/max_user_namespaces").is_none_or(|v| v != "0")
}

/// Whether the comparison with Debian's bwrap runs for this caller. It must: CI installs
/// bubblewrap (.ci/run), the vmtest guest has it, and where unprivileged user namespaces are on
/// it starts a sandbox. Elsewhere the comparison part skips, visibly (under CI: fails).
fn compare_with_debian(c: &Caller, test: &str) -> bool {
    if !Path::new(DEBIAN_BWRAP).exists() {
        nsjail_tests::skip(
            test,
            "no /usr/bin/bwrap (Debian's bubblewrap) to compare with",
        );
        return false;
    }
    let mut args = SYSTEM.to_vec();
    args.push("true");
    let probe = debian(c, &args, None);
    if probe.code() == Some(0) {
        return true;
    }
    if !unprivileged_userns_on() {
        nsjail_tests::skip(
            test,
            "unprivileged user namespaces are off: Debian's bwrap cannot start a sandbox",
        );
        return false;
    }
    assert!(
        !nsjail_tests::in_ci(),
        "Debian's bwrap cannot start a sandbox though unprivileged user namespaces are on:\n{}",
        probe.describe()
    );
    eprintln!("{}", probe.describe());
    nsjail_tests::skip(test, "Debian's bwrap cannot start a sandbox here");
    false
}

/// Runs the corpus through ours as `c`, and through Debian's when `compare`; returns what
/// differs, one entry an invocation.
fn run_corpus(c: &Caller, cases: &[Case], compare: bool) -> Vec<String> {
    let scratch = c.scratch();
    let table = include_str!("../../../docs/bwrap.md");
    let mut failures = Vec::new();
    for (i, k) in cases.iter().enumerate() {
        let data = k.data.map(|d| {
            let p = scratch.path().join(format!("data{i}"));
            std::fs::write(&p, d).unwrap();
            p
        });
        let out_dir = |who: &str| {
            let p = scratch.path().join(format!("out{i}-{who}"));
            std::fs::create_dir(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(c.uid), Some(c.gid)).unwrap();
            p
        };
        let ours_out = out_dir("ours");
        let args = full_args(k, &ours_out);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // A run that does not go in by the caller's way fails this invocation, not the rest.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ours(c, &args, k.fds_for(data.as_deref(), &ours_out), k.code != 1)
        }));
        let o = match run {
            Ok(o) => o,
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("ours: {why}"));
                continue;
            }
        };
        let ours_stdout = normalise(&o.stdout, &ours_out);
        if o.code() != Some(k.code) {
            failures.push(format!("ours, not exit {}:\n{}", k.code, o.describe()));
            continue;
        }
        // Ours against what bubblewrap is documented to do, where Debian's differs or lacks it.
        let held_to = |want: &str, code: i32, o: &Output, stdout: &str| {
            if code == 1 {
                bwrap_lines(o).len() == 1 && bwrap_lines(o)[0].starts_with(want)
            } else {
                stdout == want
            }
        };
        match &k.against {
            Against::Differs {
                row, ours: want, ..
            }
            | Against::Newer {
                option: row,
                ours: want,
            } => {
                if let Against::Differs { row, .. } = &k.against {
                    assert!(
                        table.lines().any(|l| l.starts_with('|') && l.contains(row)),
                        "docs/bwrap.md has no row of differences saying {row:?}"
                    );
                }
                if !held_to(want, k.code, &o, &ours_stdout) {
                    failures.push(format!("ours, not {want:?} ({row}):\n{}", o.describe()));
                    continue;
                }
            }
            Against::Debian => {}
        }
        if !compare {
            continue;
        }
        let debian_out = out_dir("debian");
        let dargs = full_args(k, &debian_out);
        let dargs: Vec<&str> = dargs.iter().map(String::as_str).collect();
        let d = debian(c, &dargs, k.fds_for(data.as_deref(), &debian_out));
        let debian_stdout = normalise(&d.stdout, &debian_out);
        let same = match &k.against {
            Against::Debian => {
                o.code() == d.code()
                    && ours_stdout == debian_stdout
                    && if k.setup_error {
                        bwrap_lines(&o).len() == 1 && bwrap_lines(&d).len() == 1
                    } else {
                        k.code != 1 || first_word(&o) == first_word(&d)
                    }
                    && (!k.uses_out() || listing(&ours_out, c) == listing(&debian_out, c))
            }
            Against::Differs {
                debian_code,
                debian: want,
                ..
            } => d.code() == Some(*debian_code) && held_to(want, *debian_code, &d, &debian_stdout),
            Against::Newer { option, .. } => {
                d.code() == Some(1)
                    && bwrap_lines(&d) == [format!("bwrap: Unknown option {option}")]
            }
        };
        if !same {
            let files = if k.uses_out() {
                format!(
                    "\nfiles ours:\n{}\nfiles Debian's:\n{}",
                    listing(&ours_out, c),
                    listing(&debian_out, c)
                )
            } else {
                String::new()
            };
            failures.push(format!(
                "ours:\n{}\nDebian's:\n{}{files}",
                o.describe(),
                d.describe()
            ));
        }
    }
    failures
}

/// The corpus through ours as `c`, compared with Debian's bwrap run by the same user.
fn check_corpus(c: &Caller, test: &str) {
    let cases = corpus();
    assert!(
        cases.len() >= 150,
        "the corpus has {} invocations; it is to have at least 150",
        cases.len()
    );
    // The corpus needs the host's user namespace switch as it is: no test flips it meanwhile.
    let _host = nsjail_tests::host_knobs()
        .read()
        .unwrap_or_else(|e| e.into_inner());
    let compare = compare_with_debian(c, test);
    eprintln!("[{}] comparing with Debian's bwrap: {compare}", c.name());
    let failures = run_corpus(c, &cases, compare);
    assert!(
        failures.is_empty(),
        "[{}] {} of {} invocations differ:\n{}",
        c.name(),
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_matches_debians_bwrap_through_the_setuid_helper() {
    if !nsjail_tests::require_root("bwrap corpus") {
        return;
    }
    check_corpus(
        &Caller::setuid_user(),
        "the_corpus_matches_debians_bwrap_through_the_setuid_helper",
    );
}

#[test]
fn the_corpus_matches_debians_bwrap_through_the_daemon() {
    if !nsjail_tests::require_root("bwrap corpus through the daemon") {
        return;
    }
    check_corpus(
        &Caller::daemon_user(),
        "the_corpus_matches_debians_bwrap_through_the_daemon",
    );
}

/// Where the administrator switched unprivileged user namespaces off (Debian's
/// `kernel.unprivileged_userns_clone=0`), Debian's bwrap cannot start a sandbox for an ordinary
/// user, and ours, through the setuid helper and through the daemon, runs the same invocations:
/// the reason `bwrap` is here. The control: with the switch on, Debian's runs them too, with the
/// same output.
#[test]
fn where_unprivileged_user_namespaces_are_off_ours_runs_what_debians_cannot() {
    const TEST: &str = "where_unprivileged_user_namespaces_are_off_ours_runs_what_debians_cannot";
    if !nsjail_tests::require_root(TEST) {
        return;
    }
    const KNOB: &str = "/proc/sys/kernel/unprivileged_userns_clone";
    if !Path::new(KNOB).exists() {
        // Debian's kernels have the switch; the Debian guest of `cargo xtask vmtest` runs this.
        assert!(
            nsjail_tests::system_install().is_none(),
            "the Debian guest's kernel must have kernel.unprivileged_userns_clone"
        );
        nsjail_tests::skip(TEST, "no kernel.unprivileged_userns_clone");
        return;
    }
    assert!(
        Path::new(DEBIAN_BWRAP).exists(),
        "Debian's bwrap is missing: the vmtest guest and CI install bubblewrap"
    );
    let user = Caller::setuid_user();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let hostname_len = std::fs::read("/etc/hostname").unwrap().len();
    let shapes: Vec<(Vec<&str>, String)> = vec![
        // A thumbnailer's.
        (
            [
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
                "id -u; ls -A /tmp | wc -l; echo $$; hostname; ls /dev/null",
            ]
            .to_vec(),
            format!("{}\n0\n2\n{}\n/dev/null\n", user.uid, host.trim()),
        ),
        // mat2's: a file in, a file out, a new session.
        (
            [
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
            ]
            .to_vec(),
            format!("{hostname_len}\n"),
        ),
        // An app's: root inside, its own hostname and environment.
        (
            [
                "--unshare-all",
                "--uid",
                "0",
                "--gid",
                "0",
                "--hostname",
                "box",
                "--clearenv",
                "--setenv",
                "A",
                "b",
                "--",
                "sh",
                "-c",
                "id -u; id -g; hostname; echo $A",
            ]
            .to_vec(),
            "0\n0\nbox\nb\n".to_string(),
        ),
    ];
    let knob = nsjail_tests::Sysctl::set(KNOB, "1");
    for (shape, want) in &shapes {
        let args: Vec<&str> = SYSTEM.iter().chain(shape).copied().collect();
        let d = debian(&user, &args, None);
        d.expect_success();
        assert_eq!(&d.stdout, want, "with {KNOB}=1: {}", d.describe());
    }
    knob.change("0");
    for (shape, want) in &shapes {
        let args: Vec<&str> = SYSTEM.iter().chain(shape).copied().collect();
        let d = debian(&user, &args, None);
        d.expect_code(1);
        let lines = bwrap_lines(&d);
        assert!(
            lines.len() == 1
                && lines[0].starts_with("bwrap: No permissions to create new namespace")
                && lines[0].contains("does not allow non-privileged user namespaces"),
            "with {KNOB}=0 Debian's bwrap must fail to start a sandbox: {}",
            d.describe()
        );
        assert!(d.stdout.is_empty(), "{}", d.describe());
        for c in [Caller::setuid_user(), Caller::daemon_user()] {
            let o = ours(&c, &args, None, true);
            o.expect_success();
            assert_eq!(
                &o.stdout,
                want,
                "[{}] with {KNOB}=0: {}",
                c.name(),
                o.describe()
            );
        }
    }
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

/// The kind of `fcntl` lock another process holds on `path` (`F_GETLK`), if any.
fn lock_held(path: &Path) -> Option<i16> {
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::libc;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(&f, FcntlArg::F_GETLK(&mut fl)).expect("fcntl(F_GETLK)");
    (fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_type)
}

#[test]
fn lock_file_holds_a_read_lock_on_the_host_file_while_the_sandbox_runs() {
    if !nsjail_tests::require_root("bwrap lock file") {
        return;
    }
    // Flatpak locks /app/.ref and /usr/.ref this way, and an uninstall or update looks for the
    // lock to see whether the app runs.
    for c in [Caller::setuid_user(), Caller::daemon_user()] {
        let dir = c.scratch();
        let file = dir.path().join("ref");
        std::fs::write(&file, "").unwrap();
        let d = dir.path().to_str().unwrap();
        let mut args = SYSTEM.to_vec();
        args.extend(["--ro-bind", d, "/app", "--lock-file", "/app/ref"]);
        args.extend(["sh", "-c", "echo ready; sleep 1"]);
        let nsjail = c.nsjail.to_string_lossy().into_owned();
        let mut bwraps = vec![("ours", vec![nsjail.as_str(), "bwrap"])];
        if compare_with_debian(&c, "lock_file_holds_a_read_lock") {
            bwraps.push(("Debian's", vec![DEBIAN_BWRAP]));
        }
        for (whose, program) in bwraps {
            assert_eq!(lock_held(&file), None, "[{}] before {whose}", c.name());
            let mut cmd = command(&c, &program, &args, None);
            let what = format!("[{}] {whose} bwrap {}", c.name(), shell_words(&args));
            let mut run = Running::spawn(&mut cmd, None, &what);
            if whose == "ours" {
                run = run.expect_way_in(c.way_in());
            }
            run.wait_stdout("ready");
            let held = lock_held(&file);
            let out = run.wait();
            out.expect_success();
            assert_eq!(
                held,
                Some(nix::libc::F_RDLCK as nix::libc::c_short),
                "[{}] {whose} bwrap holds no read lock on {} while its sandbox runs\n{}",
                c.name(),
                file.display(),
                out.describe()
            );
            assert_eq!(lock_held(&file), None, "[{}] after {whose}", c.name());
        }
    }
}
