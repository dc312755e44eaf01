//! Desktop sharing: each flag adds the filesystem operations (and variables) for exactly one
//! socket or device, after the rest of the view.
//!
//! `--x11` shares only the display's socket, `/tmp/.X11-unix/X<n>`, and an Xauthority file
//! holding only that display's cookies; `--wayland`, `--pulseaudio` and `--pipewire` only
//! their socket in `$XDG_RUNTIME_DIR`; `--gpu` the DRI device nodes. A display or sound flag
//! also shares your fonts, icons and themes read-only. Something a flag would share but your
//! session does not have is skipped with a warning (a note under `--verbose` when the flag came
//! from a profile, such as `gui`, which asks for everything a desktop might have).
//!
//! `--dbus-session` never shares the session bus itself: it starts `xdg-dbus-proxy --filter`
//! as you (see [`DbusProxy`]) and shares only the proxy's socket, at `$XDG_RUNTIME_DIR/bus`
//! inside. Without xdg-dbus-proxy it is refused.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use nsjail_core::{BindKind, MountOp};

use crate::view::View;

/// Where the filtered Xauthority file appears inside.
pub const XAUTHORITY_INSIDE: &str = "/run/nsjail/Xauthority";

/// What the desktop flags asked for.
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    pub x11: bool,
    pub wayland: bool,
    pub pulseaudio: bool,
    pub pipewire: bool,
    pub gpu: bool,
    pub dbus_session: bool,
    /// `--dbus-talk`: bus names the filter lets the program talk to.
    pub dbus_talk: Vec<String>,
    /// `--dry-run`: describe, start nothing (the proxy's socket path is then a pattern).
    pub dry_run: bool,
}

impl Wanted {
    pub fn any(&self) -> bool {
        self.x11
            || self.wayland
            || self.pulseaudio
            || self.pipewire
            || self.gpu
            || self.dbus_session
            || !self.dbus_talk.is_empty()
    }
}

/// The result: variables to set for the payload and messages for the user.
#[derive(Debug, Default)]
pub struct Added {
    pub env: Vec<(String, String)>,
    /// (message, the flag was given on the command line itself)
    pub skipped: Vec<(String, &'static str)>,
    /// The running D-Bus filter: hold it while the sandbox runs; dropping it stops it.
    pub dbus_proxy: Option<DbusProxy>,
    /// Variables of the caller's that would point the program at something it was not given
    /// (`DISPLAY` when no display was shared): removed unless `--setenv` sets them.
    pub unset: Vec<&'static str>,
}

/// The caller's environment as the desktop flags read it.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn ro_try(p: &Path) -> MountOp {
    let s = p.to_string_lossy().into_owned();
    MountOp::Bind {
        src: s.clone(),
        dst: s,
        kind: BindKind::ReadOnly,
        optional: true,
    }
}

fn socket_bind(p: &Path) -> MountOp {
    let s = p.to_string_lossy().into_owned();
    // Connecting to a socket needs no write access to the mount, so read-only is enough.
    MountOp::Bind {
        src: s.clone(),
        dst: s,
        kind: BindKind::ReadOnly,
        optional: false,
    }
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

fn runtime_dir(env: Env) -> Option<PathBuf> {
    env("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// Add the operations for `wanted` to `view`.
pub fn add(wanted: Wanted, env: Env, view: &mut View) -> Result<Added> {
    let mut added = Added::default();
    if !wanted.dbus_talk.is_empty() && !wanted.dbus_session {
        bail!("--dbus-talk needs --dbus-session (it names what the bus filter lets through)");
    }
    let dbus_proxy_path = if wanted.dbus_session {
        Some(dbus_proxy_program()?)
    } else {
        None
    };
    let mut runtime_made = false;
    let mut with_runtime = |view: &mut View, added: &mut Added, flag: &'static str| {
        let Some(rt) = runtime_dir(env) else {
            added.skipped.push((
                format!("{flag}: $XDG_RUNTIME_DIR is not set; nothing shared"),
                flag,
            ));
            return None;
        };
        if !runtime_made {
            view.ops.push(MountOp::Dir {
                dst: rt.to_string_lossy().into_owned(),
                perms: Some(0o700),
            });
            added
                .env
                .push(("XDG_RUNTIME_DIR".into(), rt.to_string_lossy().into_owned()));
            runtime_made = true;
        }
        Some(rt)
    };
    if wanted.x11 {
        x11(env, view, &mut added)?;
    }
    if wanted.wayland
        && let Some(rt) = with_runtime(view, &mut added, "--wayland")
    {
        let name = env("WAYLAND_DISPLAY").unwrap_or_else(|| "wayland-0".into());
        let path = if name.starts_with('/') {
            PathBuf::from(&name)
        } else {
            rt.join(&name)
        };
        let var = ("WAYLAND_DISPLAY", name);
        bind_runtime_socket(view, &mut added, "--wayland", "Wayland", &path, Some(var));
    }
    if wanted.pulseaudio
        && let Some(rt) = with_runtime(view, &mut added, "--pulseaudio")
    {
        let path = rt.join("pulse/native");
        let var = ("PULSE_SERVER", format!("unix:{}", path.display()));
        bind_runtime_socket(
            view,
            &mut added,
            "--pulseaudio",
            "PulseAudio",
            &path,
            Some(var),
        );
    }
    if wanted.pipewire
        && let Some(rt) = with_runtime(view, &mut added, "--pipewire")
    {
        let path = rt.join("pipewire-0");
        bind_runtime_socket(view, &mut added, "--pipewire", "PipeWire", &path, None);
    }
    if wanted.gpu {
        gpu(view, &mut added);
    }
    if let Some(program) = dbus_proxy_path {
        dbus_session(&wanted, program, env, view, &mut added, &mut with_runtime)?;
    }
    if wanted.x11 || wanted.wayland || wanted.pulseaudio || wanted.pipewire {
        look_and_feel(env, view);
    }
    Ok(added)
}

/// Share the `what` (Wayland, PulseAudio, ...) socket at `path` in the runtime directory at its
/// own place, and set `var` inside; without a socket there, skip `flag` with a warning.
fn bind_runtime_socket(
    view: &mut View,
    added: &mut Added,
    flag: &'static str,
    what: &str,
    path: &Path,
    var: Option<(&str, String)>,
) {
    if is_socket(path) {
        view.ops.push(socket_bind(path));
        if let Some((name, value)) = var {
            added.env.push((name.into(), value));
        }
    } else {
        added.skipped.push((
            format!(
                "{flag}: no {what} socket at {}; nothing shared",
                path.display()
            ),
            flag,
        ));
    }
}

/// Where xdg-dbus-proxy is looked for: fixed system directories only, never `$PATH`. The
/// filter is the only thing between the program and your session bus, so it must be the
/// system's, not whatever a directory on your `PATH` (your home, the current directory — both
/// writable by earlier sandboxes) happens to hold under that name.
pub const DBUS_PROXY_PATHS: [&str; 2] =
    ["/usr/bin/xdg-dbus-proxy", "/usr/local/bin/xdg-dbus-proxy"];

/// The session bus is shared only through a filter; without one it is refused.
fn dbus_proxy_program() -> Result<&'static str> {
    DBUS_PROXY_PATHS
        .into_iter()
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .with_context(|| {
            "--dbus-session: refused: xdg-dbus-proxy is not installed in /usr/bin or \
             /usr/local/bin (Debian: apt install xdg-dbus-proxy), and the unfiltered session bus \
             lets a program ask other programs of your session to do anything they can (open \
             files, run commands)"
        })
}

/// A bus name for `--talk=`: a well-known name (`org.example.App`) or a prefix pattern
/// (`org.example.*`), as xdg-dbus-proxy takes them. Unique names (`:1.5`) are not names one
/// can grant ahead of time.
pub fn check_bus_name(name: &str) -> Result<()> {
    let body = name.strip_suffix(".*").unwrap_or(name);
    let elements: Vec<&str> = body.split('.').collect();
    let ok = !name.is_empty()
        && name.len() <= 255
        && (elements.len() >= 2 || name.ends_with(".*"))
        && elements.iter().all(|e| {
            !e.is_empty()
                && !e.starts_with(|c: char| c.is_ascii_digit())
                && e.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !ok {
        bail!(
            "--dbus-talk {name:?}: not a D-Bus name (such as org.example.App, or org.example.* \
             for every name under it)"
        );
    }
    Ok(())
}

/// The session bus address the proxy connects to: `$DBUS_SESSION_BUS_ADDRESS`, else the
/// systemd default `$XDG_RUNTIME_DIR/bus` when that socket exists.
fn session_bus_address(env: Env) -> Option<String> {
    env("DBUS_SESSION_BUS_ADDRESS")
        .filter(|a| !a.is_empty())
        .or_else(|| {
            let p = runtime_dir(env)?.join("bus");
            is_socket(&p).then(|| format!("unix:path={}", p.display()))
        })
}

/// The name of the variable the caller's session bus is found by.
pub const BUS_VAR: &str = "DBUS_SESSION_BUS_ADDRESS";

/// The caller's `DBUS_SESSION_BUS_ADDRESS` never reaches the sandbox (unless `--setenv` sets
/// it): without `--dbus-session` there is no bus inside, and with it the variable names the
/// filter's socket (set from [`Added::env`]).
pub fn drop_caller_bus_variable(env: &mut Vec<(String, String)>, setenv: &[String]) {
    if !setenv.chunks(2).any(|p| p[0] == BUS_VAR) {
        env.retain(|(k, _)| k != BUS_VAR);
    }
}

fn dbus_session(
    wanted: &Wanted,
    program: &str,
    env: Env,
    view: &mut View,
    added: &mut Added,
    with_runtime: &mut dyn FnMut(&mut View, &mut Added, &'static str) -> Option<PathBuf>,
) -> Result<()> {
    const FLAG: &str = "--dbus-session";
    for name in &wanted.dbus_talk {
        check_bus_name(name)?;
    }
    let Some(address) = session_bus_address(env) else {
        added.skipped.push((
            format!(
                "{FLAG}: $DBUS_SESSION_BUS_ADDRESS is not set and there is no \
                 $XDG_RUNTIME_DIR/bus; no bus shared"
            ),
            FLAG,
        ));
        return Ok(());
    };
    // Inside: $XDG_RUNTIME_DIR/bus, where sd-bus and GDBus also look by default; without
    // $XDG_RUNTIME_DIR, /run/user/<your uid>/bus (and XDG_RUNTIME_DIR set to that).
    let inside = if runtime_dir(env).is_some() {
        with_runtime(view, added, FLAG).map(|rt| rt.join("bus"))
    } else {
        None
    };
    let inside = match inside {
        Some(p) => p,
        None => {
            let rt = PathBuf::from(format!("/run/user/{}", nix::unistd::getuid()));
            view.ops.push(MountOp::Dir {
                dst: rt.to_string_lossy().into_owned(),
                perms: Some(0o700),
            });
            added
                .env
                .push(("XDG_RUNTIME_DIR".into(), rt.to_string_lossy().into_owned()));
            rt.join("bus")
        }
    };
    // Outside: a private directory (0700) in your $XDG_RUNTIME_DIR, else in /tmp.
    let parent = runtime_dir(env)
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let socket = if wanted.dry_run {
        parent.join("nsjail-dbus-XXXXXX/bus")
    } else {
        let proxy = DbusProxy::start(program, &address, &parent, &wanted.dbus_talk)?;
        let s = proxy.socket.clone();
        added.dbus_proxy = Some(proxy);
        s
    };
    view.ops.push(MountOp::Bind {
        src: socket.to_string_lossy().into_owned(),
        dst: inside.to_string_lossy().into_owned(),
        kind: BindKind::ReadOnly,
        optional: false,
    });
    added
        .env
        .push((BUS_VAR.into(), format!("unix:path={}", inside.display())));
    Ok(())
}

/// `xdg-dbus-proxy ADDRESS DIR/bus --filter [--talk=NAME...]`, run as you in its own process
/// group (a terminal's Ctrl-C does not reach it). Its `--fd` is the write end of a pipe whose
/// read end only we hold: it writes there once its socket listens, and exits when the pipe
/// closes — when this is dropped, or when the CLI dies in any way, SIGKILL included. Dropping
/// also kills and reaps it and removes the directory (after a SIGKILL of the CLI the empty-ish
/// directory stays behind: nothing is left to remove it).
#[derive(Debug)]
pub struct DbusProxy {
    child: Child,
    /// The read end of the `--fd` pipe.
    alive: std::fs::File,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl DbusProxy {
    fn start(program: &str, address: &str, parent: &Path, talk: &[String]) -> Result<DbusProxy> {
        let what = "--dbus-session: starting xdg-dbus-proxy";
        let dir = tempfile::Builder::new()
            .prefix("nsjail-dbus-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .with_context(|| format!("{what}: a private directory in {}", parent.display()))?;
        let socket = dir.path().join("bus");
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .with_context(|| format!("{what}: pipe2"))?;
        let mut cmd = Command::new(program);
        // The pipe becomes the proxy's stdout, fd 1: std passes it without any unsafe code.
        cmd.arg("--fd=1")
            .arg(address)
            .arg(&socket)
            .arg("--filter")
            .args(talk.iter().map(|n| format!("--talk={n}")))
            .stdin(Stdio::null())
            .stdout(Stdio::from(w))
            .process_group(0);
        let child = cmd.spawn().with_context(|| format!("{what} ({program})"))?;
        // The Command holds our copy of the write end: close it, or EOF would never come.
        drop(cmd);
        let mut proxy = DbusProxy {
            child,
            alive: std::fs::File::from(r),
            socket,
            _dir: dir,
        };
        let ready = proxy.wait_ready();
        match ready {
            Ok(true) if is_socket(&proxy.socket) => Ok(proxy),
            Ok(_) => {
                let status = proxy.child.wait().ok();
                let how = match status.and_then(|s| s.code()) {
                    Some(c) => format!("exited with status {c}"),
                    None => "ended".into(),
                };
                bail!("{what}: it {how} before its socket was ready (address {address:?})")
            }
            Err(e) => Err(e.context(what)),
        }
    }

    /// Whether the proxy wrote its ready byte (false: it closed the pipe, i.e. exited).
    fn wait_ready(&mut self) -> Result<bool> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let fd = self.alive.as_fd();
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        // It listens right away (it connects to the bus only for each client), so this is
        // quick; the bound only keeps a wedged proxy from hanging the CLI.
        let n = poll(&mut fds, PollTimeout::from(30_000u16)).context("poll")?;
        if n == 0 {
            bail!("it did not become ready within 30 seconds");
        }
        let mut byte = [0u8; 1];
        Ok(self.alive.read(&mut byte).context("read its --fd pipe")? == 1)
    }
}

impl Drop for DbusProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `:N`, `:N.S`, `unix:N` → `N`. Anything with a host part is not a local display.
pub fn display_number(display: &str) -> Option<String> {
    let rest = display
        .strip_prefix("unix:")
        .or_else(|| display.strip_prefix(':'))?;
    let n = rest.split('.').next()?;
    (!n.is_empty() && n.len() <= 9 && n.chars().all(|c| c.is_ascii_digit())).then(|| n.to_string())
}

fn x11(env: Env, view: &mut View, added: &mut Added) -> Result<()> {
    // Until a display is shared, the caller's DISPLAY and XAUTHORITY would name one the program
    // cannot reach (or, for a TCP display with --net host, one it was not meant to).
    added.unset.extend(["DISPLAY", "XAUTHORITY"]);
    let Some(display) = env("DISPLAY").filter(|d| !d.is_empty()) else {
        added.skipped.push((
            "--x11: $DISPLAY is not set; no display shared".into(),
            "--x11",
        ));
        return Ok(());
    };
    let Some(n) = display_number(&display) else {
        added.skipped.push((
            format!("--x11: $DISPLAY={display} is not a local display (:N); no display shared"),
            "--x11",
        ));
        return Ok(());
    };
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
    if !is_socket(&socket) {
        added.skipped.push((
            format!(
                "--x11: no X11 socket at {}; no display shared",
                socket.display()
            ),
            "--x11",
        ));
        return Ok(());
    }
    view.ops.push(socket_bind(&socket));
    // Shared: DISPLAY is set below; XAUTHORITY stays removed unless a filtered one is made.
    added.unset.retain(|k| *k != "DISPLAY");
    added.env.push(("DISPLAY".into(), format!(":{n}")));

    let file = env("XAUTHORITY")
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".Xauthority")));
    let Some(file) = file else { return Ok(()) };
    let data = match std::fs::read(&file) {
        Ok(d) => d,
        // No Xauthority: the server does not ask for one (as Xvfb without -auth).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("--x11: reading {}", file.display())),
    };
    let kept = filter_xauthority(&data, &n);
    if kept.is_empty() {
        return Ok(());
    }
    let mut tmp = tempfile::tempfile().context("--x11: a temporary file for the Xauthority")?;
    tmp.write_all(&kept)
        .and_then(|()| tmp.rewind())
        .context("--x11: writing the Xauthority")?;
    let fd: OwnedFd = tmp.into();
    view.fds.push(fd.as_raw_fd());
    view.keep.push(fd);
    view.ops.push(MountOp::BindData {
        fd: (view.fds.len() - 1) as u32,
        dst: XAUTHORITY_INSIDE.into(),
        read_only: true,
        perms: Some(0o600),
    });
    added
        .env
        .push(("XAUTHORITY".into(), XAUTHORITY_INSIDE.into()));
    Ok(())
}

/// `FamilyLocal` and `FamilyWild` in the Xauthority format.
const FAMILY_LOCAL: u16 = 256;
const FAMILY_WILD: u16 = 0xffff;

/// The records of an Xauthority file (family: u16 big-endian, then address, display number,
/// auth name and auth data, each a u16 big-endian length and bytes) that belong to local
/// display `number`, rewritten to match any host: inside, the hostname is the sandbox's, so a
/// record for the host's name would never be found. A malformed tail ends the parse.
pub fn filter_xauthority(data: &[u8], number: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = data;
    let field = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let len = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]) as usize;
        let v = rest.get(2..2 + len)?.to_vec();
        *rest = &rest[2 + len..];
        Some(v)
    };
    loop {
        if rest.len() < 2 {
            break;
        }
        let family = u16::from_be_bytes([rest[0], rest[1]]);
        let mut r = &rest[2..];
        let (Some(_addr), Some(num), Some(name), Some(auth)) =
            (field(&mut r), field(&mut r), field(&mut r), field(&mut r))
        else {
            break;
        };
        rest = r;
        if !matches!(family, FAMILY_LOCAL | FAMILY_WILD) || num != number.as_bytes() {
            continue;
        }
        out.extend_from_slice(&FAMILY_WILD.to_be_bytes());
        for f in [&b""[..], &num, &name, &auth] {
            out.extend_from_slice(&(f.len() as u16).to_be_bytes());
            out.extend_from_slice(f);
        }
    }
    out
}

fn gpu(view: &mut View, added: &mut Added) {
    let dri = Path::new("/dev/dri");
    if !dri.is_dir() {
        added.skipped.push((
            "--gpu: this machine has no /dev/dri; no GPU shared".into(),
            "--gpu",
        ));
        return;
    }
    let dev = |p: &Path| {
        let s = p.to_string_lossy().into_owned();
        MountOp::Bind {
            src: s.clone(),
            dst: s,
            kind: BindKind::Dev,
            optional: true,
        }
    };
    view.ops.push(dev(dri));
    if let Ok(rd) = std::fs::read_dir("/dev") {
        let mut nv: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("nvidia"))
            })
            .collect();
        nv.sort();
        view.ops.extend(nv.iter().map(|p| dev(p)));
    }
    // Mesa and libdrm find the devices through sysfs.
    for p in ["/sys/dev/char", "/sys/devices"] {
        view.ops.push(ro_try(Path::new(p)));
    }
}

/// Your fonts, icons and themes, read-only, where they exist.
fn look_and_feel(env: Env, view: &mut View) {
    for p in ["/etc/fonts", "/var/cache/fontconfig"] {
        view.ops.push(ro_try(Path::new(p)));
    }
    let Some(home) = env("HOME").map(PathBuf::from).filter(|h| h.is_absolute()) else {
        return;
    };
    for rel in [
        ".local/share/fonts",
        ".fonts",
        ".config/fontconfig",
        ".local/share/icons",
        ".icons",
        ".themes",
        ".local/share/themes",
        ".config/gtk-3.0",
        ".config/gtk-4.0",
    ] {
        view.ops.push(ro_try(&home.join(rel)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(family: u16, addr: &[u8], num: &[u8], name: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = family.to_be_bytes().to_vec();
        for f in [addr, num, name, data] {
            v.extend_from_slice(&(f.len() as u16).to_be_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    #[test]
    fn bus_names() {
        for good in ["org.example.App", "org.example.*", "org.*", "a_b.c-d.E9"] {
            assert!(check_bus_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "org",
            ":1.5",
            "org..x",
            "org.9x",
            "org.x/y",
            "--own=org.x",
            "org.x=y",
            "*",
            "org.*.x",
        ] {
            assert!(check_bus_name(bad).is_err(), "{bad}");
        }
        assert!(check_bus_name(&format!("org.{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn the_callers_bus_variable_stays_outside_unless_set() {
        let mut env = vec![
            ("A".to_string(), "1".to_string()),
            (BUS_VAR.to_string(), "unix:path=/run/user/1/bus".to_string()),
        ];
        let mut kept = env.clone();
        drop_caller_bus_variable(&mut env, &["B".into(), "2".into()]);
        assert_eq!(env, vec![("A".to_string(), "1".to_string())]);
        drop_caller_bus_variable(&mut kept, &[BUS_VAR.into(), "x".into()]);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn display_numbers() {
        assert_eq!(display_number(":0").as_deref(), Some("0"));
        assert_eq!(display_number(":12.1").as_deref(), Some("12"));
        assert_eq!(display_number("unix:3").as_deref(), Some("3"));
        for bad in ["", "localhost:10.0", ":", ":x", "host:0", ":1/../2"] {
            assert_eq!(display_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn xauthority_keeps_only_the_display_and_matches_any_host() {
        let cookie = b"MIT-MAGIC-COOKIE-1";
        let mut data = record(FAMILY_LOCAL, b"myhost", b"0", cookie, b"secret0");
        data.extend(record(FAMILY_LOCAL, b"myhost", b"1", cookie, b"secret1"));
        data.extend(record(0, &[127, 0, 0, 1], b"1", cookie, b"tcp1"));
        data.extend(record(FAMILY_WILD, b"", b"1", cookie, b"wild1"));
        let out = filter_xauthority(&data, "1");
        let first = record(FAMILY_WILD, b"", b"1", cookie, b"secret1");
        let mut want = first.clone();
        want.extend(record(FAMILY_WILD, b"", b"1", cookie, b"wild1"));
        assert_eq!(out, want);
        assert!(filter_xauthority(&data, "2").is_empty());
        // Truncated input: what came before the damage is kept, nothing panics.
        let cut = &data[..data.len() - 3];
        assert_eq!(filter_xauthority(cut, "1"), first);
        assert!(filter_xauthority(&[0xff], "1").is_empty());
    }
}
