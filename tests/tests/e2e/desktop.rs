//! `--x11` opens a real window: an X11 client inside reaches a real X server (Xvfb) through the
//! one socket shared with it, with only that display's cookie; without the flag it cannot.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nsjail_tests::{
    Caller, Output, Running, as_caller_words, for_each_caller, poll_until, proc_state, processes,
    root_or_skip, shell_words, tool,
};

/// An Xvfb on display `:n`, killed when dropped.
struct Xvfb {
    run: Option<Running>,
    n: u32,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        if let Some(r) = self.run.take() {
            r.signal(nix::sys::signal::Signal::SIGTERM);
            let _ = r.wait_tolerant();
        }
        let _ = fs::remove_file(format!("/tmp/.X11-unix/X{}", self.n));
        let _ = fs::remove_file(format!("/tmp/.X{}-lock", self.n));
    }
}

trait WaitTolerant {
    fn wait_tolerant(self) -> Option<std::process::ExitStatus>;
}

impl WaitTolerant for Running {
    fn wait_tolerant(mut self) -> Option<std::process::ExitStatus> {
        self.wait_timeout(Duration::from_secs(20))
    }
}

/// A display number no other test (or test run) uses.
fn free_display() -> u32 {
    let base = 300 + (std::process::id() % 500) * 4;
    (base..base + 400)
        .find(|n| {
            !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .expect("a free X display number")
}

fn start_xvfb(auth: &Path) -> Xvfb {
    let n = free_display();
    let mut cmd = Command::new(tool("Xvfb"));
    cmd.arg(format!(":{n}"))
        .args(["-nolisten", "tcp", "-screen", "0", "640x480x24", "-auth"])
        .arg(auth);
    let run = Running::spawn_with_timeout(&mut cmd, None, "Xvfb", Duration::from_secs(600));
    let socket = format!("/tmp/.X11-unix/X{n}");
    let x = Xvfb { run: Some(run), n };
    assert!(
        poll_until(Duration::from_secs(30), || Path::new(&socket).exists()),
        "Xvfb :{n} did not create {socket}"
    );
    x
}

fn xauth(file: &Path, args: &[&str]) {
    let st = Command::new(tool("xauth"))
        .arg("-f")
        .arg(file)
        .args(args)
        .status()
        .expect("run xauth");
    assert!(st.success(), "xauth {args:?}: {st}");
}

fn run_with_display(
    c: &Caller,
    dir: &Path,
    display: &str,
    xauthority: &Path,
    args: &[&str],
) -> Output {
    let mut cmd = c.run_cmd(args);
    cmd.current_dir(dir)
        .env("DISPLAY", display)
        .env("XAUTHORITY", xauthority);
    let what = format!(
        "[{}] DISPLAY={display} nsjail run {}",
        c.name(),
        shell_words(args)
    );
    Running::spawn(&mut cmd, None, &what).wait()
}

#[test]
fn x11_client_reaches_only_its_display() {
    root_or_skip!();
    for_each_caller(|c| {
        let dir = c.scratch();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        // The server's cookie for its display, and another display's cookie in the same file.
        let auth = dir.path().join("Xauthority");
        let x = start_xvfb_with_cookies(&auth);
        chown(&auth, Some(c.uid), Some(c.gid)).unwrap();
        let display = format!(":{}", x.n);

        let out = run_with_display(c, dir.path(), &display, &auth, &["--x11", "--", "xdpyinfo"]);
        out.expect_success();
        assert!(out.stdout.contains("name of display"), "{}", out.describe());

        // Only this display's socket and cookie are inside.
        let out = run_with_display(
            c,
            dir.path(),
            &display,
            &auth,
            &[
                "--x11",
                "--",
                "/bin/sh",
                "-c",
                "ls /tmp/.X11-unix; echo \"$DISPLAY $XAUTHORITY\"; xauth list",
            ],
        );
        out.expect_success();
        let lines = out.lines();
        assert_eq!(lines[0], format!("X{}", x.n), "{}", out.describe());
        assert_eq!(
            lines[1],
            format!(":{} /run/nsjail/Xauthority", x.n),
            "{}",
            out.describe()
        );
        let cookies: Vec<&String> = lines[2..]
            .iter()
            .filter(|l| l.contains("MIT-MAGIC-COOKIE-1"))
            .collect();
        assert_eq!(cookies.len(), 1, "{}", out.describe());
        assert!(cookies[0].contains(&"ab".repeat(16)), "{}", out.describe());

        // Without --x11 the client cannot connect.
        let out = run_with_display(c, dir.path(), &display, &auth, &["--", "xdpyinfo"]);
        assert_ne!(
            out.code(),
            Some(0),
            "xdpyinfo connected without --x11:\n{}",
            out.describe()
        );
        // With the socket but without the cookie, the server refuses it: the cookie matters.
        let sock = format!("/tmp/.X11-unix/X{}", x.n);
        let out = run_with_display(
            c,
            dir.path(),
            &display,
            Path::new("/nonexistent"),
            &[
                "--default-view",
                "--ro-bind",
                &sock,
                &sock,
                "--",
                "xdpyinfo",
            ],
        );
        assert_ne!(
            out.code(),
            Some(0),
            "connected without a cookie:\n{}",
            out.describe()
        );
        drop(x);
    });
}

fn start_xvfb_with_cookies(auth: &Path) -> Xvfb {
    // Xvfb reads the file at start; the display number is only known once chosen, so write
    // the file for the number free_display will pick, then start.
    let n = free_display();
    fs::write(auth, b"").unwrap();
    xauth(auth, &["add", &format!(":{n}"), ".", &"ab".repeat(16)]);
    xauth(
        auth,
        &["add", &format!(":{}", n + 1), ".", &"cd".repeat(16)],
    );
    let x = start_xvfb(auth);
    assert_eq!(
        x.n, n,
        "the display number changed between choosing and starting"
    );
    x
}

// ---------------------------------------------------------------------------------------------
// --dbus-session: the session bus only through xdg-dbus-proxy's filter

const BUS_CALL: &str = "dbus-send --session --dest=org.freedesktop.DBus --type=method_call \
                        --print-reply /org/freedesktop/DBus org.freedesktop.DBus";
/// A name a peer owns on the test bus; the filter hides it unless `--dbus-talk` names it.
const OWNED: &str = "org.nsjail.E2eTest";

/// A private session bus run by the caller (`dbus-daemon --session` on a socket in `rt`), and a
/// peer (python3-dbus) owning [`OWNED`] on it; both killed when dropped.
struct Bus {
    daemon: Option<Running>,
    owner: Option<Running>,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        for r in [self.owner.take(), self.daemon.take()]
            .into_iter()
            .flatten()
        {
            r.signal(nix::sys::signal::Signal::SIGKILL);
            let _ = r.wait_tolerant();
        }
    }
}

fn caller_command(c: &Caller, env: &[(&str, &str)], argv: &[&str]) -> Command {
    let words = as_caller_words(c, env);
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..])
        .args(argv)
        .env_clear()
        .current_dir("/");
    cmd
}

fn start_bus(c: &Caller, rt: &Path) -> Bus {
    let path = rt.join("realbus");
    let listen = format!("--address=unix:path={}", path.display());
    let mut cmd = caller_command(
        c,
        &[],
        &[
            &tool("dbus-daemon"),
            "--session",
            &listen,
            "--nofork",
            "--print-address",
        ],
    );
    let mut daemon =
        Running::spawn_with_timeout(&mut cmd, None, "dbus-daemon", Duration::from_secs(600));
    daemon.wait_stdout("unix:path=");
    let address = format!("unix:path={}", path.display());
    let mut bus = Bus {
        daemon: Some(daemon),
        owner: None,
        address,
    };
    let script = format!(
        "import dbus, time\n\
         print('owned', dbus.SessionBus().request_name('{OWNED}'), flush=True)\n\
         time.sleep(3600)\n"
    );
    let mut cmd = caller_command(
        c,
        &[("DBUS_SESSION_BUS_ADDRESS", &bus.address)],
        &["/usr/bin/python3", "-c", &script],
    );
    let mut owner =
        Running::spawn_with_timeout(&mut cmd, None, "name owner", Duration::from_secs(600));
    // 1: DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER.
    owner.wait_stdout("owned 1");
    bus.owner = Some(owner);
    bus
}

/// A caller's scratch dir for cwd (0755) and another, private, for `$XDG_RUNTIME_DIR` (0700).
fn dbus_dirs(c: &Caller) -> (tempfile::TempDir, tempfile::TempDir) {
    let cwd = c.scratch();
    fs::set_permissions(cwd.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let rt = c.scratch();
    fs::set_permissions(rt.path(), fs::Permissions::from_mode(0o700)).unwrap();
    (cwd, rt)
}

fn run_with_bus(c: &Caller, cwd: &Path, rt: &Path, bus: &Bus, args: &[&str]) -> Output {
    let mut cmd = c.run_cmd(args);
    cmd.current_dir(cwd)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("XDG_RUNTIME_DIR", rt);
    let what = format!("[{}] nsjail run {}", c.name(), shell_words(args));
    Running::spawn(&mut cmd, None, &what).wait()
}

/// Live (not zombie) xdg-dbus-proxy processes whose argv names `address`: (pid, argv).
fn proxies_for(address: &str) -> Vec<(i32, Vec<String>)> {
    processes()
        .into_iter()
        .filter(|(pid, (_, comm))| comm == "xdg-dbus-proxy" && proc_state(*pid) != Some('Z'))
        .filter_map(|(pid, _)| {
            let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            argv.iter().any(|a| a == address).then_some((pid, argv))
        })
        .collect()
}

fn gone(pid: i32) -> bool {
    matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

#[test]
fn dbus_session_reaches_the_bus_only_through_the_filter() {
    root_or_skip!();
    for_each_caller(|c| {
        let (cwd, rt) = dbus_dirs(c);
        let bus = start_bus(c, rt.path());
        let has_owner = format!("{BUS_CALL}.NameHasOwner string:{OWNED}");

        // Control, outside on the real bus: the name is there.
        let mut cmd = caller_command(
            c,
            &[("DBUS_SESSION_BUS_ADDRESS", &bus.address)],
            &["/bin/sh", "-c", &has_owner],
        );
        let out = Running::spawn(&mut cmd, None, "NameHasOwner outside").wait();
        out.expect_success();
        assert!(out.stdout.contains("boolean true"), "{}", out.describe());

        // Inside with --dbus-session: the bus answers through the proxy's socket at
        // $XDG_RUNTIME_DIR/bus, the only thing in that directory, and the name is hidden.
        let script = format!(
            "echo \"$DBUS_SESSION_BUS_ADDRESS\"; ls -A \"$XDG_RUNTIME_DIR\"; \
             {BUS_CALL}.ListNames >/dev/null && echo listed; {has_owner}"
        );
        let out = run_with_bus(
            c,
            cwd.path(),
            rt.path(),
            &bus,
            &["--dbus-session", "--", "/bin/sh", "-c", &script],
        );
        out.expect_success();
        let lines = out.lines();
        let inside = rt.path().join("bus");
        assert_eq!(
            lines[0],
            format!("unix:path={}", inside.display()),
            "{}",
            out.describe()
        );
        assert_eq!(lines[1], "bus", "{}", out.describe());
        assert_eq!(lines[2], "listed", "{}", out.describe());
        assert!(
            out.stdout.contains("boolean false"),
            "the filter let {OWNED} be seen without --dbus-talk:\n{}",
            out.describe()
        );

        // --dbus-talk NAME lets that name through: the filter was the reason.
        let out = run_with_bus(
            c,
            cwd.path(),
            rt.path(),
            &bus,
            &[
                "--dbus-session",
                "--dbus-talk",
                OWNED,
                "--",
                "/bin/sh",
                "-c",
                &has_owner,
            ],
        );
        out.expect_success();
        assert!(out.stdout.contains("boolean true"), "{}", out.describe());

        // Without --dbus-session: no variable, no socket, and the real bus's path is not
        // reachable either.
        let script = format!(
            "echo \"${{DBUS_SESSION_BUS_ADDRESS-unset}}\"; \
             test -e \"{rt}/bus\" || echo no-proxy-socket; \
             test -e \"{rt}/realbus\" || echo no-real-socket; \
             dbus-send --bus={addr} --dest=org.freedesktop.DBus --type=method_call \
             --print-reply /org/freedesktop/DBus org.freedesktop.DBus.ListNames \
             || echo unreachable",
            rt = rt.path().display(),
            addr = bus.address,
        );
        let out = run_with_bus(
            c,
            cwd.path(),
            rt.path(),
            &bus,
            &["--", "/bin/sh", "-c", &script],
        );
        out.expect_success();
        assert_eq!(
            out.lines(),
            ["unset", "no-proxy-socket", "no-real-socket", "unreachable"],
            "{}",
            out.describe()
        );
        assert!(proxies_for(&bus.address).is_empty());
        drop(bus);
    });
}

#[test]
fn dbus_proxy_ends_with_the_sandbox_and_with_the_cli() {
    root_or_skip!();
    for_each_caller(|c| {
        let (cwd, rt) = dbus_dirs(c);
        let bus = start_bus(c, rt.path());
        for kill_cli in [false, true] {
            let go = cwd.path().join("go");
            let _ = fs::remove_file(&go);
            let args = [
                "--dbus-session",
                "--",
                "/bin/sh",
                "-c",
                "echo ready; while [ ! -e go ]; do sleep 0.05; done",
            ];
            let mut cmd = c.run_cmd(&args);
            cmd.current_dir(cwd.path())
                .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
                .env("XDG_RUNTIME_DIR", rt.path());
            let what = format!("[{}] nsjail run (kill the CLI: {kill_cli})", c.name());
            let mut running = Running::spawn(&mut cmd, None, &what);
            running.wait_stdout("ready");

            // One proxy, run as the caller, its socket in a private directory of the
            // caller's $XDG_RUNTIME_DIR.
            let found = proxies_for(&bus.address);
            assert_eq!(found.len(), 1, "{found:?}");
            let (pid, argv) = &found[0];
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
            assert_eq!(
                uid_line.split_whitespace().nth(1),
                Some(c.uid.to_string().as_str()),
                "{uid_line}"
            );
            assert!(argv.iter().any(|a| a == "--filter"), "{argv:?}");
            let socket = argv
                .iter()
                .find(|a| a.ends_with("/bus") && a.starts_with('/'))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("no socket path in {argv:?}"));
            let dir = socket.parent().unwrap().to_path_buf();
            assert_eq!(dir.parent(), Some(rt.path()), "{argv:?}");
            let meta = fs::metadata(&dir).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o700);
            assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), c.uid);

            if kill_cli {
                running.signal(nix::sys::signal::Signal::SIGKILL);
                assert!(
                    poll_until(Duration::from_secs(60), || gone(*pid)),
                    "xdg-dbus-proxy {pid} outlived the CLI killed with SIGKILL"
                );
                fs::write(&go, b"").unwrap();
                let out = running.wait();
                assert_eq!(out.code(), None, "{}", out.describe());
            } else {
                fs::write(&go, b"").unwrap();
                let out = running.wait();
                out.expect_success();
                // Stopped and reaped before the CLI exited, its directory removed.
                assert!(gone(*pid), "xdg-dbus-proxy {pid} outlived the run");
                assert!(!dir.exists(), "{} left behind", dir.display());
            }
        }
        drop(bus);
    });
}

#[test]
fn dbus_session_refused_without_a_system_xdg_dbus_proxy() {
    root_or_skip!();
    for_each_caller(|c| {
        // A program named xdg-dbus-proxy first on PATH: it must not be taken for the filter.
        let dir = c.scratch();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let marker = dir.path().join("fake-proxy-ran");
        let fake = dir.path().join("xdg-dbus-proxy");
        fs::write(
            &fake,
            format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
        )
        .unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        // Hide the system's copies in a private mount namespace, then become the caller.
        let mut hide = String::new();
        for p in ["/usr/bin/xdg-dbus-proxy", "/usr/local/bin/xdg-dbus-proxy"] {
            if Path::new(p).exists() {
                hide.push_str(&format!("mount --bind /dev/null {p} && "));
            }
        }
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", dir.path().display());
        let mut words = as_caller_words(
            c,
            &[
                ("PATH", &path),
                ("NSJAIL_SOCKET", "none"),
                ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus"),
            ],
        );
        words.push(c.nsjail.display().to_string());
        words.extend(["run", "--dbus-session", "--", "true"].map(String::from));
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let script = format!("{hide}exec {}", shell_words(&words));
        let mut cmd = Command::new(tool("unshare"));
        cmd.args(["--mount", "--", "/bin/sh", "-c", &script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/");
        let what = format!("[{}] nsjail run --dbus-session without a proxy", c.name());
        let out = Running::spawn(&mut cmd, None, &what).wait();
        out.expect_code(125).expect_one_error_line(
            "nsjail: --dbus-session: refused: xdg-dbus-proxy is not installed",
        );
        assert!(!marker.exists(), "the xdg-dbus-proxy found on PATH was run");
    });
}
