//! `--x11` opens a real window: an X11 client inside reaches a real X server (Xvfb) through the
//! one socket shared with it, with only that display's cookie; without the flag it cannot.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nsjail_tests::{
    Caller, Output, Running, for_each_caller, poll_until, root_or_skip, shell_words, tool,
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
