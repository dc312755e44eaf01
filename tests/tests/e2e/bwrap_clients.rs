//! Real clients of `bwrap`, from Debian's packages, run by the ordinary user with our `bwrap`
//! (the `nsjail` binary under that name, through the setuid helper and through the daemon),
//! and the same runs with Debian's bubblewrap as the control wherever that one can start a
//! sandbox. Each client judges its own sandbox (it reads what its sandboxed tool wrote); the
//! test then checks what the client made, and that every run made the same.
//!
//! libmat2 (`shutil.which`) and gnome-desktop (`G_SPAWN_SEARCH_PATH`) find `bwrap` on `PATH`;
//! the portal's icon validator runs `/usr/bin/bwrap`, with an empty environment, so it runs in a
//! mount namespace of its own with the `bwrap` under test bound over that path. The `bwrap` a
//! client finds is a small script that records each invocation's words and stderr and execs
//! the real one: for ours a symlink named `bwrap` to the installed `nsjail`, as `cargo xtask
//! install --bwrap` makes, so the CLI finds its helper at `../libexec/nsjail/` next to the file
//! the link names. The records show that the client did run a sandbox, with which words, and
//! (from our CLI's stderr, which gnome-desktop swallows) by which way in.

use std::fmt::Debug;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use nsjail_tests::{
    Caller, Capture, DEBIAN_BWRAP, Output, Running, WAY_IN_LINE, check_way_in, daemon_socket_env,
    debian_bwrap_works, root_or_skip, shell_words, skip, tool,
};

const PYTHON: &str = "/usr/bin/python3";

/// The PATH the clients get after the directory holding the `bwrap` under test.
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What a client needs from Debian, as (what to look for, the package that has it). Missing
/// outside CI, the test skips with a reason CI does not allow; `.ci/run` installs them.
fn missing(test: &str, needs: &[(&str, &str)]) -> bool {
    for (check, package) in needs {
        let present = match check.strip_prefix("python3:") {
            Some(import) => Command::new(PYTHON)
                .arg("-c")
                .arg(import)
                .output()
                .is_ok_and(|o| o.status.success()),
            None => Path::new(check).exists(),
        };
        if !present {
            skip(test, &format!("Debian package {package} not installed"));
            return true;
        }
    }
    false
}

/// Which `bwrap` a client finds first on its PATH.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Bwrap {
    /// The `nsjail` binary under the name `bwrap`, through the caller's helper.
    Ours,
    /// Debian's bubblewrap 0.8.
    Debian,
}

/// A client's world: a working directory the user owns, the `bwrap` it finds on PATH, and the
/// record of every invocation of it.
struct Client {
    c: Caller,
    bwrap: Bwrap,
    _scratch: tempfile::TempDir,
    /// The client's working directory (and `HOME`), owned by the user.
    work: PathBuf,
    /// One directory per invocation of `bwrap`: `args` (NUL-separated words) and `stderr`.
    log: PathBuf,
    /// Holds the script `bwrap`, put first on the client's PATH.
    path_dir: PathBuf,
}

/// The `bwrap` a client finds: records the invocation (its words; its stderr, which also
/// goes where the client sent it, but for our CLI's way-in line) in a directory of its own
/// under `log`, then execs `real` with the client's words and fds. The client must not see
/// the way-in line: opam, for one, reads its sandbox check's stderr with its stdout, and turns
/// its sandbox off when there is more than it expects. Everything is written into the script,
/// as some clients run `bwrap` with an empty environment; for ours it states the caller's way
/// in there too.
fn recorder(log: &Path, real: &Path, way_in: &str) -> String {
    for p in [log, real] {
        assert!(!p.to_string_lossy().contains('\''), "{}", p.display());
    }
    // A terminal on stderr stays the terminal (the shape of the client's fds is part of
    // what is tested); the test reads the screen instead.
    let real = real.display();
    format!(
        "#!/bin/bash\nset -e\n{way_in}run=$(mktemp -d '{}'/\"$(date +%s%N)\".XXXXXX)\n\
         printf '%s\\0' \"$@\" >\"$run/args\"\n\
         if [ -t 2 ]; then exec '{real}' \"$@\"; fi\n\
         exec '{real}' \"$@\" 2> >(tee \"$run/stderr\" | exec grep --line-buffered -v '^{WAY_IN_LINE}' >&2)\n",
        log.display(),
    )
}

impl Client {
    fn new(c: &Caller, bwrap: Bwrap) -> Client {
        let scratch = c.scratch();
        let root = scratch.path().to_path_buf();
        let work = root.join("work");
        let log = root.join("log");
        let path_dir = root.join("bin");
        let real_dir = root.join("real");
        for d in [&work, &log, &path_dir, &real_dir] {
            fs::create_dir(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        for d in [&work, &log] {
            chown(d, Some(c.uid), Some(c.gid)).unwrap();
        }
        // Ours is the installed binary under the name `bwrap`, as `install --bwrap` links it;
        // Debian's a copy (it has no privilege), which stays reachable where a client's
        // /usr/bin/bwrap is the recorder.
        let real = real_dir.join("bwrap");
        let way_in = match bwrap {
            Bwrap::Ours => {
                symlink(&c.nsjail, &real).unwrap();
                // As `Caller::command_for` states it: the way, and the daemon's socket (or
                // none, so that a setuid run cannot reach a daemon).
                let socket = match (c.via_daemon(), daemon_socket_env()) {
                    (true, Some(sock)) => format!(" NSJAIL_SOCKET='{}'", sock.display()),
                    (true, None) => String::new(),
                    (false, _) => " NSJAIL_SOCKET=none".into(),
                };
                format!("export NSJAIL_WAY_IN={}{socket}\n", c.way_in().name())
            }
            Bwrap::Debian => {
                fs::copy(DEBIAN_BWRAP, &real).unwrap();
                fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
                String::new()
            }
        };
        let script = path_dir.join("bwrap");
        fs::write(&script, recorder(&log, &real, &way_in)).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        Client {
            c: c.clone(),
            bwrap,
            _scratch: scratch,
            work,
            log,
            path_dir,
        }
    }

    /// `python3 -c SCRIPT ARGS…` as the user, in the working directory, with this `bwrap`
    /// first on PATH. Returns the client's output and the invocations of `bwrap` it made.
    fn python(&self, script: &str, args: &[&str]) -> (Output, Vec<Invocation>) {
        let before = self.invocations().len();
        let mut cmd = self.python_cmd(script, args);
        let what = format!(
            "[{}, {:?} bwrap] python3 -c CLIENT {}",
            self.c.name(),
            self.bwrap,
            shell_words(args)
        );
        let out = Running::spawn(&mut cmd, None, &what).wait();
        let all = self.invocations();
        assert!(
            all.len() >= before,
            "the invocation records shrank\n{}",
            out.describe()
        );
        let new = all.into_iter().skip(before).collect();
        (out, new)
    }

    fn python_cmd(&self, script: &str, args: &[&str]) -> Command {
        let mut cmd = self.client_cmd(PYTHON);
        cmd.arg("-c").arg(script).args(args);
        cmd
    }

    /// `program` as the user, in the working directory (also `HOME`), with this `bwrap` first
    /// on PATH.
    fn client_cmd(&self, program: &str) -> Command {
        let mut cmd = self.c.command_for(program);
        cmd.current_dir(&self.work)
            .env("HOME", &self.work)
            .env("GSETTINGS_BACKEND", "memory")
            .env("PATH", format!("{}:{SYSTEM_PATH}", self.path_dir.display()));
        cmd
    }

    /// [`Client::python`] as a user at a terminal runs it: stdin and stderr a new
    /// pseudo-terminal, the client's controlling terminal; stdout a pipe (the test reads what
    /// the client printed there). The output's `stderr` is what appeared on the terminal.
    fn python_on_terminal(
        &self,
        script: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Output, Vec<Invocation>) {
        let mut cmd = self.python_cmd(script, args);
        cmd.envs(env.iter().copied());
        let what = format!(
            "[{}, {:?} bwrap] python3 -c CLIENT {} at a terminal",
            self.c.name(),
            self.bwrap,
            shell_words(args)
        );
        self.on_terminal(cmd, what)
    }

    /// `cmd` (made by [`Client::client_cmd`]) on a new pseudo-terminal as stdin and stderr,
    /// its controlling terminal; stdout a pipe.
    fn on_terminal(&self, mut cmd: Command, what: String) -> (Output, Vec<Invocation>) {
        let before = self.invocations().len();
        let pty = nsjail_tests::openpty();
        let dup = || Stdio::from(pty.slave.try_clone().unwrap());
        cmd.stdin(dup()).stderr(dup()).stdout(Stdio::piped());
        // SAFETY: setsid and ioctl only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
        drop(cmd);
        drop(pty.slave);
        let screen = Capture::start(fs::File::from(pty.master));
        let stdout = Capture::start(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                // The client leads its own session, so its pid is its process group's id.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
                panic!(
                    "{what}: still running after 60 s; screen: {:?}",
                    screen.text()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        assert!(
            stdout.wait_eof(Duration::from_secs(20)) && screen.wait_eof(Duration::from_secs(20)),
            "{what}: something the client started outlived it"
        );
        let out = Output {
            what,
            status,
            stdout: stdout.text(),
            stderr: screen.text().replace("\r\n", "\n"),
        };
        let new = self.invocations().into_iter().skip(before).collect();
        (out, new)
    }

    /// `PROGRAM ARGS…` as the user, in the working directory, in a mount namespace of its own
    /// where the recorder is bound over `/usr/bin/bwrap`: for clients that run that path, not
    /// whatever `bwrap` PATH finds (as `dpkg-divert` and a link put ours there; admin.md).
    fn run_at_usr_bin_bwrap(&self, program: &str, args: &[&str]) -> (Output, Vec<Invocation>) {
        let before = self.invocations().len();
        let mut cmd = Command::new(tool("unshare"));
        cmd.env_clear()
            .env("PATH", SYSTEM_PATH)
            .env("HOME", &self.work)
            .current_dir(&self.work)
            .args(["--mount", "--propagation", "private", "--"])
            .arg(tool("sh"))
            .arg("-c")
            .arg(r#"mount --bind "$0" /usr/bin/bwrap && exec "$@""#)
            .arg(self.path_dir.join("bwrap"))
            .arg(tool("setpriv"))
            .arg(format!("--reuid={}", self.c.uid))
            .arg(format!("--regid={}", self.c.gid))
            .arg("--clear-groups")
            .arg(program)
            .args(args);
        let what = format!(
            "[{}, {:?} bwrap at {DEBIAN_BWRAP}] {program} {}",
            self.c.name(),
            self.bwrap,
            shell_words(args)
        );
        let out = Running::spawn(&mut cmd, None, &what).wait();
        let new = self.invocations().into_iter().skip(before).collect();
        (out, new)
    }

    /// Every invocation recorded so far, oldest first.
    fn invocations(&self) -> Vec<Invocation> {
        // Named by the time each started (nanoseconds, all of the same width), then a suffix.
        let mut runs: Vec<PathBuf> = fs::read_dir(&self.log)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        runs.sort();
        runs.into_iter()
            .map(|dir| Invocation {
                args: fs::read(dir.join("args"))
                    .map(|b| {
                        b.split(|&c| c == 0)
                            .filter(|w| !w.is_empty())
                            .map(|w| String::from_utf8_lossy(w).into_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
                stderr: fs::read_to_string(dir.join("stderr")).ok(),
            })
            .collect()
    }

    /// The client ran `bwrap` exactly once, with `words` among its arguments, and (ours) our
    /// CLI went in by the caller's way and said so.
    #[track_caller]
    fn expect_one_sandbox(&self, runs: &[Invocation], words: &[&str], out: &Output) {
        assert_eq!(
            runs.len(),
            1,
            "the client was to run {:?} bwrap once: {runs:#?}\n{}",
            self.bwrap,
            out.describe()
        );
        for w in words {
            assert!(
                runs[0].args.iter().any(|a| a == w),
                "the client's bwrap words lack {w:?}: {:?}\n{}",
                runs[0].args,
                out.describe()
            );
        }
        if self.bwrap == Bwrap::Ours {
            let said = runs[0].stderr.as_deref().unwrap_or(&out.stderr);
            check_way_in(said, self.c.way_in(), true, out);
        }
    }
}

#[derive(Debug)]
struct Invocation {
    args: Vec<String>,
    /// `None` where bwrap's stderr was a terminal (the client's screen has it).
    stderr: Option<String>,
}

/// Runs a client (`run`: one run with one bwrap, returning what the client made) with ours
/// by each way in an ordinary user has (the setuid helper, the daemon), then with Debian's as
/// the control where it can start a sandbox; all must make the same.
fn with_each_bwrap<T: PartialEq + Debug>(client: &str, run: impl Fn(&Caller, Bwrap) -> T) {
    let users = [Caller::setuid_user(), Caller::daemon_user()];
    let ours: Vec<(&str, T)> = users
        .iter()
        .map(|c| (c.name(), run(c, Bwrap::Ours)))
        .collect();
    let (first, made) = &ours[0];
    for (name, other) in &ours[1..] {
        assert_eq!(
            made, other,
            "{client} made something else as {first} than as {name}"
        );
    }
    match debian_bwrap_works(&users[0]).then(|| run(&users[0], Bwrap::Debian)) {
        Some(debian) => assert_eq!(
            made, &debian,
            "{client} made something else with ours than with Debian's bwrap"
        ),
        None => eprintln!("Debian's bwrap cannot start a sandbox here: the control is left out"),
    }
}

/// A 16×16 PNG with a `tEXt` chunk `Author: Secret Person` (written by Python's zlib, which
/// has the CRC and deflate this needs).
const MAKE_PNG: &str = r#"
import struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
rows = b"".join(b"\0" + bytes(v for x in range(16) for v in (x * 16, y * 16, 128)) for y in range(16))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
       + chunk(b"tEXt", b"Author\0Secret Person") + chunk(b"IDAT", zlib.compress(rows))
       + chunk(b"IEND", b""))
open(sys.argv[1], "wb").write(png)
"#;

const SECRET: &str = "Secret Person";

fn make_png(client: &Client, name: &str) -> PathBuf {
    let (out, runs) = client.python(MAKE_PNG, &[name]);
    out.expect_success();
    assert!(runs.is_empty(), "making the PNG ran bwrap: {runs:?}");
    client.work.join(name)
}

/// libmat2 with its sandbox on, as `mat2` drives it: `show` prints exiftool's metadata (read
/// in the sandbox), `clean` removes it with exiftool in the sandbox (`mat2 -L`), writing into a
/// directory bound over the output's. Debian's `mat2` 0.13.3 command line turns the sandbox on
/// only with `--no-sandbox` (its flag is inverted), so the test sets it on the parser itself.
const MAT2: &str = r#"
import json, sys
from libmat2 import bubblewrap, parser_factory
step, name = sys.argv[1], sys.argv[2]
print("bwrap:", bubblewrap._get_bwrap_path())
parser, mime = parser_factory.get_parser(name)
parser.sandbox = True
if step == "show":
    print(json.dumps(parser.get_meta(), sort_keys=True))
else:
    parser.lightweight_cleaning = True
    if not parser.remove_all():
        sys.exit("mat2: cleaning failed")
    print("cleaned:", parser.output_filename)
"#;

/// What one bwrap made of mat2's work: the metadata shown before and after, and the cleaned
/// file's bytes.
#[derive(PartialEq, Debug)]
struct Mat2Result {
    shown: String,
    shown_clean: String,
    cleaned: Vec<u8>,
}

fn mat2_with(c: &Caller, bwrap: Bwrap) -> Mat2Result {
    let client = Client::new(c, bwrap);
    let png = make_png(&client, "photo.png");
    let found = format!("bwrap: {}", client.path_dir.join("bwrap").display());

    // The metadata, read by exiftool inside the sandbox: the file is bound read-only at its
    // own path, the working directory too, and exiftool runs there.
    let (out, runs) = client.python(MAT2, &["show", "photo.png"]);
    out.expect_success();
    client.expect_one_sandbox(
        &runs,
        &["--unshare-net", "--new-session", png.to_str().unwrap()],
        &out,
    );
    assert_eq!(
        out.lines().first().map(String::as_str),
        Some(found.as_str())
    );
    let shown = out.lines().get(1).cloned().unwrap_or_default();
    assert_eq!(
        shown,
        format!(r#"{{"Author": "{SECRET}"}}"#),
        "mat2 shows the PNG's metadata as exiftool read it in the sandbox\n{}",
        out.describe()
    );

    // Cleaning: exiftool writes the output into a fresh directory bound over the working
    // directory, and mat2 copies it out once the sandbox exited with 0.
    let (out, runs) = client.python(MAT2, &["clean", "photo.png"]);
    out.expect_success();
    client.expect_one_sandbox(&runs, &["--bind", "-o", "photo.cleaned.png"], &out);
    let cleaned_path = client.work.join("photo.cleaned.png");
    let cleaned = fs::read(&cleaned_path).unwrap_or_else(|e| {
        panic!(
            "mat2 made no {}: {e}\n{}",
            cleaned_path.display(),
            out.describe()
        )
    });
    assert!(
        !cleaned
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the cleaned PNG still holds the author"
    );
    assert!(
        fs::read(&png)
            .unwrap()
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the original keeps its author (it was bound read-only)"
    );

    // exiftool, in the sandbox again, finds nothing left to show.
    let (out, runs) = client.python(MAT2, &["show", "photo.cleaned.png"]);
    out.expect_success();
    client.expect_one_sandbox(&runs, &[cleaned_path.to_str().unwrap()], &out);
    let shown_clean = out.lines().get(1).cloned().unwrap_or_default();
    assert_eq!(shown_clean, "{}", "metadata left\n{}", out.describe());

    Mat2Result {
        shown,
        shown_clean,
        cleaned,
    }
}

#[test]
fn mat2_shows_and_cleans_metadata_in_our_sandbox() {
    root_or_skip!();
    let test = "bwrap_clients::mat2";
    if missing(
        test,
        &[
            ("python3:import libmat2", "mat2"),
            ("/usr/bin/exiftool", "libimage-exiftool-perl"),
            (DEBIAN_BWRAP, "bubblewrap"),
        ],
    ) {
        return;
    }
    with_each_bwrap("mat2", mat2_with);
}

/// What mat2 showed, and whether perl's locale warning reached the screen, at a terminal.
fn mat2_at_a_terminal_with(c: &Caller, bwrap: Bwrap) -> String {
    let client = Client::new(c, bwrap);
    let png = make_png(&client, "photo.png");
    // A locale the system does not have: perl (exiftool) warns on stderr, in the sandbox, as
    // for a user whose locale was never generated. On a terminal, that warning belongs on the
    // screen; in mat2's pipe it would make exiftool's JSON unreadable.
    let (out, runs) =
        client.python_on_terminal(MAT2, &["show", "photo.png"], &[("LC_ALL", "xx_YY.UTF-8")]);
    out.expect_success();
    client.expect_one_sandbox(&runs, &["--new-session", png.to_str().unwrap()], &out);
    assert!(
        out.stderr.contains("perl: warning: Setting locale failed"),
        "the control: exiftool warned on the terminal\n{}",
        out.describe()
    );
    let shown = out.lines().get(1).cloned().unwrap_or_default();
    assert_eq!(
        shown,
        format!(r#"{{"Author": "{SECRET}"}}"#),
        "mat2 read exiftool's output, and nothing else, from the sandbox\n{}",
        out.describe()
    );
    shown
}

#[test]
fn mat2_at_a_terminal_reads_only_the_tools_stdout() {
    root_or_skip!();
    let test = "bwrap_clients::mat2_at_a_terminal";
    if missing(
        test,
        &[
            ("python3:import libmat2", "mat2"),
            ("/usr/bin/exiftool", "libimage-exiftool-perl"),
            (DEBIAN_BWRAP, "bubblewrap"),
        ],
    ) {
        return;
    }
    with_each_bwrap("mat2 at a terminal", mat2_at_a_terminal_with);
}

/// mat2 started as a background job (`mat2 --show photo.png > shown &`) of a shell with job
/// control at a terminal: the terminal is still its stdin, but it is not the terminal's
/// foreground job. bubblewrap does not touch the terminal, so the job runs to its end; a bwrap
/// that put the terminal in raw mode would be stopped (SIGTTOU) and never finish.
fn mat2_in_the_background_with(c: &Caller, bwrap: Bwrap) -> String {
    let client = Client::new(c, bwrap);
    make_png(&client, "photo.png");
    let mut cmd = client.client_cmd("/bin/bash");
    cmd.arg("-c")
        .arg(
            r#"set -m; /usr/bin/python3 -c "$0" show photo.png >shown 2>errors & wait $!; echo "job: $?""#,
        )
        .arg(MAT2);
    let what = format!(
        "[{}, {bwrap:?} bwrap] mat2 show as a background job at a terminal",
        c.name()
    );
    let (out, runs) = client.on_terminal(cmd, what);
    out.expect_success();
    let errors = fs::read_to_string(client.work.join("errors")).unwrap_or_default();
    assert_eq!(
        out.out(),
        "job: 0",
        "the job did not run to its end: {errors}\n{}",
        out.describe()
    );
    client.expect_one_sandbox(&runs, &["--new-session"], &out);
    let shown = fs::read_to_string(client.work.join("shown")).unwrap();
    let shown = shown.lines().nth(1).unwrap_or_default().to_string();
    assert_eq!(
        shown,
        format!(r#"{{"Author": "{SECRET}"}}"#),
        "{errors}\n{}",
        out.describe()
    );
    shown
}

#[test]
fn mat2_as_a_background_job_at_a_terminal_runs_to_its_end() {
    root_or_skip!();
    let test = "bwrap_clients::mat2_in_the_background";
    if missing(
        test,
        &[
            ("python3:import libmat2", "mat2"),
            ("/usr/bin/exiftool", "libimage-exiftool-perl"),
            (DEBIAN_BWRAP, "bubblewrap"),
        ],
    ) {
        return;
    }
    with_each_bwrap("mat2 in the background", mat2_in_the_background_with);
}

/// gnome-desktop's thumbnail factory, as Nautilus and GNOME's file chooser use it: it runs
/// the thumbnailer named in /usr/share/thumbnailers (gdk-pixbuf-thumbnailer) through `bwrap`
/// with `--unshare-all`, `--die-with-parent` and a seccomp program it compiled with libseccomp
/// and passes as `--seccomp FD`, then loads the PNG the thumbnailer wrote.
const THUMBNAIL: &str = r#"
import sys
import gi
gi.require_version("GnomeDesktop", "3.0")
from gi.repository import GnomeDesktop, Gio, GLib
source, mime, dest = sys.argv[1:4]
factory = GnomeDesktop.DesktopThumbnailFactory.new(GnomeDesktop.DesktopThumbnailSize.NORMAL)
try:
    pixbuf = factory.generate_thumbnail(Gio.File.new_for_path(source).get_uri(), mime, None)
except GLib.Error as e:
    print("failed:", e.message)
    sys.exit(3)
print("thumbnail", pixbuf.get_width(), pixbuf.get_height())
pixbuf.savev(dest, "png", [], [])
"#;

/// What one bwrap made of the thumbnailer's work: its report and the thumbnail's bytes, then
/// what the client said of a file that is no image.
#[derive(PartialEq, Debug)]
struct ThumbnailResult {
    report: String,
    thumbnail: Vec<u8>,
    refused: String,
}

fn thumbnail_with(c: &Caller, bwrap: Bwrap) -> ThumbnailResult {
    let client = Client::new(c, bwrap);
    let png = make_png(&client, "picture.png");
    let dest = client.work.join("thumbnail.png");

    let (out, runs) = client.python(
        THUMBNAIL,
        &[png.to_str().unwrap(), "image/png", dest.to_str().unwrap()],
    );
    out.expect_success();
    let report = out.out().to_string();
    client.expect_one_sandbox(
        &runs,
        &[
            "--seccomp",
            "--unshare-all",
            "--die-with-parent",
            "/usr/bin/gdk-pixbuf-thumbnailer",
        ],
        &out,
    );
    assert_eq!(out.out(), "thumbnail 128 128", "{}", out.describe());
    let thumbnail = fs::read(&dest).unwrap();

    // The control of the positive run: a file that is no image. The thumbnailer fails in the
    // sandbox, the status comes back through bwrap, and the factory reports the failure.
    let text = client.work.join("notes.png");
    fs::write(&text, "not an image\n").unwrap();
    fs::set_permissions(&text, fs::Permissions::from_mode(0o644)).unwrap();
    let bad_dest = client.work.join("bad-thumbnail.png");
    let (out, runs) = client.python(
        THUMBNAIL,
        &[
            text.to_str().unwrap(),
            "image/png",
            bad_dest.to_str().unwrap(),
        ],
    );
    out.expect_code(3);
    client.expect_one_sandbox(&runs, &["--seccomp"], &out);
    assert!(!bad_dest.exists(), "a thumbnail of a text file was saved");
    ThumbnailResult {
        report,
        thumbnail,
        refused: out.out().to_string(),
    }
}

#[test]
fn gnome_thumbnailer_makes_a_thumbnail_under_its_seccomp_filter() {
    root_or_skip!();
    let test = "bwrap_clients::gnome_thumbnailer";
    if missing(
        test,
        &[
            (
                "python3:import gi; gi.require_version('GnomeDesktop', '3.0')",
                "gir1.2-gnomedesktop-3.0",
            ),
            ("/usr/bin/gdk-pixbuf-thumbnailer", "libgdk-pixbuf2.0-bin"),
            (DEBIAN_BWRAP, "bubblewrap"),
        ],
    ) {
        return;
    }
    with_each_bwrap("the thumbnailer", thumbnail_with);
}

/// Wait until something holds `fifo` open for reading, and hold it open for writing: the reader
/// then waits for data that never comes. `None` after 60 s.
fn hold_fifo(fifo: &Path) -> Option<OwnedFd> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match open(
            fifo,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => return Some(fd),
            // ENXIO: no reader yet.
            Err(nix::errno::Errno::ENXIO) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("open {} for writing: {e}", fifo.display()),
        }
    }
    None
}

/// Whether the last reader of the FIFO whose write end is `writer` went away within `limit`.
fn reader_gone(writer: &OwnedFd, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let mut fds = [PollFd::new(writer.as_fd(), PollFlags::empty())];
        let _ = poll(&mut fds, PollTimeout::from(100u16));
        if fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLERR))
        {
            return true;
        }
    }
    false
}

/// The thumbnailer is still reading (a FIFO that never delivers) when the client dies: with
/// `--die-with-parent`, which gnome-desktop passes, the sandbox goes with it.
fn thumbnailer_dies_with_the_client(c: &Caller, bwrap: Bwrap) {
    let client = Client::new(c, bwrap);
    let fifo = client.work.join("slow.png");
    mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
    chown(&fifo, Some(c.uid), Some(c.gid)).unwrap();
    let dest = client.work.join("never.png");
    let args = [fifo.to_str().unwrap(), "image/png", dest.to_str().unwrap()];
    let mut cmd = client.python_cmd(THUMBNAIL, &args);
    let what = format!(
        "[{}, {:?} bwrap] python3 -c CLIENT {}, killed while its sandbox reads",
        c.name(),
        bwrap,
        shell_words(&args)
    );
    let run = Running::spawn(&mut cmd, None, &what);
    // The control: the sandboxed thumbnailer is there, reading the FIFO.
    let writer = hold_fifo(&fifo);
    assert!(
        writer.is_some(),
        "{what}: the sandboxed thumbnailer never opened the FIFO"
    );
    let writer = writer.unwrap();
    assert!(
        !reader_gone(&writer, Duration::from_millis(500)),
        "{what}: the thumbnailer stopped reading before the client died"
    );
    run.signal(nix::sys::signal::Signal::SIGKILL);
    // (Should it fail, dropping the FIFO ends the thumbnailer's read, and the sandbox.)
    assert!(
        reader_gone(&writer, Duration::from_secs(10)),
        "{what}: the sandbox still reads 10 s after its client died (--die-with-parent)"
    );
    let out = run.wait();
    assert_eq!(out.status.signal(), Some(9), "{}", out.describe());
    let runs = client.invocations();
    client.expect_one_sandbox(&runs, &["--die-with-parent", "--seccomp"], &out);
}

#[test]
fn gnome_thumbnailer_sandbox_dies_with_its_client() {
    root_or_skip!();
    let test = "bwrap_clients::gnome_thumbnailer_dies";
    if missing(
        test,
        &[
            (
                "python3:import gi; gi.require_version('GnomeDesktop', '3.0')",
                "gir1.2-gnomedesktop-3.0",
            ),
            ("/usr/bin/gdk-pixbuf-thumbnailer", "libgdk-pixbuf2.0-bin"),
            (DEBIAN_BWRAP, "bubblewrap"),
        ],
    ) {
        return;
    }
    with_each_bwrap("the thumbnailer", thumbnailer_dies_with_the_client);
}

/// xdg-desktop-portal's icon validator, which the portal runs on every icon an application
/// hands it (notifications, dynamic launchers): with `--sandbox` it runs itself again through
/// `/usr/bin/bwrap` (the path is built in, and the environment it gives bwrap is empty), with
/// the icon bound read-only, no network, a /tmp of its own, and prints what it found.
const VALIDATE_ICON: &str = "/usr/libexec/xdg-desktop-portal-validate-icon";

/// What the validator said of a good icon and of a file that is no image.
#[derive(PartialEq, Debug)]
struct IconResult {
    good: String,
    bad_code: Option<i32>,
    bad: String,
}

fn validate_icon_with(c: &Caller, bwrap: Bwrap) -> IconResult {
    let client = Client::new(c, bwrap);
    let png = make_png(&client, "icon.png");
    let png = png.to_str().unwrap();
    let (out, runs) = client.run_at_usr_bin_bwrap(VALIDATE_ICON, &["--sandbox", "16", "16", png]);
    out.expect_success();
    client.expect_one_sandbox(
        &runs,
        &[
            "--unshare-net",
            "--die-with-parent",
            "--tmpfs",
            png,
            VALIDATE_ICON,
        ],
        &out,
    );
    assert_eq!(
        out.lines(),
        ["[Icon Validator]", "format=png", "width=16"],
        "{}",
        out.describe()
    );

    // The control: a file that is no image is refused in the sandbox, and the validator
    // passes that on.
    let text = client.work.join("notes.png");
    fs::write(&text, "not an image\n").unwrap();
    fs::set_permissions(&text, fs::Permissions::from_mode(0o644)).unwrap();
    let (bad, runs) = client.run_at_usr_bin_bwrap(
        VALIDATE_ICON,
        &["--sandbox", "16", "16", text.to_str().unwrap()],
    );
    bad.expect_code(1);
    client.expect_one_sandbox(&runs, &["--unshare-net"], &bad);
    assert!(bad.stdout.is_empty(), "{}", bad.describe());
    // What the sandboxed validator said, and nothing else (the recorder keeps our CLI's
    // way-in line to itself).
    let said = bad.stderr_lines();
    assert_eq!(said, ["Format not recognized"], "{}", bad.describe());
    IconResult {
        good: out.stdout.clone(),
        bad_code: bad.code(),
        bad: said.join("\n"),
    }
}

#[test]
fn portal_icon_validator_runs_in_our_sandbox_at_usr_bin_bwrap() {
    root_or_skip!();
    let test = "bwrap_clients::portal_icon_validator";
    if missing(
        test,
        &[
            (VALIDATE_ICON, "xdg-desktop-portal"),
            (DEBIAN_BWRAP, "bubblewrap"),
        ],
    ) {
        return;
    }
    with_each_bwrap("the icon validator", validate_icon_with);
}

/// A package whose build reports whether its sandbox let it write to `$HOME`, and whose install
/// copies the report into the switch.
const OPAM_PACKAGE: &str = r#"opam-version: "2.0"
synopsis: "A build that reports what its sandbox allowed"
maintainer: "nsjail tests"
build: [["sh" "-c" "echo built > report; if (echo x > \"$HOME/leak\") 2>/dev/null; then echo leaked >> report; else echo contained >> report; fi"]]
install: [["cp" "report" "%{prefix}%/report"]]
"#;

/// What opam made: the installed report, and how many sandboxes it ran.
fn opam_with(c: &Caller, bwrap: Bwrap) -> (String, usize) {
    let client = Client::new(c, bwrap);
    // A local repository with one package: nothing is fetched from the network.
    let package = client.work.join("repo/packages/report/report.1");
    fs::create_dir_all(&package).unwrap();
    fs::write(client.work.join("repo/repo"), "opam-version: \"2.0\"\n").unwrap();
    fs::write(package.join("opam"), OPAM_PACKAGE).unwrap();
    let root = client.work.join("opam");
    let mut cmd = client.client_cmd("/bin/sh");
    cmd.env("OPAMROOT", &root)
        .env("OPAMYES", "1")
        .arg("-c")
        .arg(
            "opam init --bare -n --disable-completion default \"$PWD/repo\" && \
             opam switch create s --empty && opam install report",
        );
    let what = format!(
        "[{}, {:?} bwrap] opam init, switch create, install",
        c.name(),
        bwrap
    );
    let out = Running::spawn(&mut cmd, None, &what).wait();
    out.expect_success();
    // opam's own script (written by `opam init` into its hooks) runs each build and install
    // command through bwrap.
    let runs = client.invocations();
    assert!(
        runs.len() >= 2,
        "opam was to build and install in a sandbox: {runs:#?}\n{}",
        out.describe()
    );
    for run in &runs {
        client.expect_one_sandbox(
            std::slice::from_ref(run),
            &["--unshare-net", "--die-with-parent", "/opam-tmp"],
            &out,
        );
    }
    let report = fs::read_to_string(root.join("s/report"))
        .unwrap_or_else(|e| panic!("opam installed no report: {e}\n{}", out.describe()));
    assert_eq!(report, "built\ncontained\n", "{}", out.describe());
    assert!(
        !client.work.join("leak").exists(),
        "the build wrote to $HOME"
    );
    (report, runs.len())
}

#[test]
fn opam_builds_and_installs_a_package_in_our_sandbox() {
    root_or_skip!();
    let test = "bwrap_clients::opam";
    if missing(
        test,
        &[("/usr/bin/opam", "opam"), (DEBIAN_BWRAP, "bubblewrap")],
    ) {
        return;
    }
    with_each_bwrap("opam", opam_with);
}
