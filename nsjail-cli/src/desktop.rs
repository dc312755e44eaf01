//! Desktop sharing: each flag adds the filesystem operations (and variables) for exactly one
//! socket or device, after the rest of the view.
//!
//! `--x11` shares only the display's socket, `/tmp/.X11-unix/X<n>`, and an Xauthority file
//! holding only that display's cookies; `--wayland`, `--pulseaudio` and `--pipewire` only
//! their socket in `$XDG_RUNTIME_DIR`; `--gpu` the DRI device nodes. A display or sound flag
//! also shares your fonts, icons and themes read-only. Something a flag would share but your
//! session does not have is skipped with a warning (a note under `--verbose` when the flag came
//! from a profile, such as `gui`, which asks for everything a desktop might have).

use std::io::{Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nsjail_core::{BindKind, MountOp};

use crate::view::View;

/// Where the filtered Xauthority file appears inside.
pub const XAUTHORITY_INSIDE: &str = "/run/nsjail/Xauthority";

/// What the desktop flags asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted {
    pub x11: bool,
    pub wayland: bool,
    pub pulseaudio: bool,
    pub pipewire: bool,
    pub gpu: bool,
    pub dbus_session: bool,
}

impl Wanted {
    pub fn any(&self) -> bool {
        self.x11
            || self.wayland
            || self.pulseaudio
            || self.pipewire
            || self.gpu
            || self.dbus_session
    }
}

/// The result: variables to set for the payload and messages for the user.
#[derive(Debug, Default)]
pub struct Added {
    pub env: Vec<(String, String)>,
    /// (message, the flag was given on the command line itself)
    pub skipped: Vec<(String, &'static str)>,
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
    if wanted.dbus_session {
        dbus_session()?;
    }
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
        if is_socket(&path) {
            view.ops.push(socket_bind(&path));
            added.env.push(("WAYLAND_DISPLAY".into(), name));
        } else {
            added.skipped.push((
                format!(
                    "--wayland: no Wayland socket at {}; nothing shared",
                    path.display()
                ),
                "--wayland",
            ));
        }
    }
    if wanted.pulseaudio
        && let Some(rt) = with_runtime(view, &mut added, "--pulseaudio")
    {
        let path = rt.join("pulse/native");
        if is_socket(&path) {
            view.ops.push(socket_bind(&path));
            added
                .env
                .push(("PULSE_SERVER".into(), format!("unix:{}", path.display())));
        } else {
            added.skipped.push((
                format!(
                    "--pulseaudio: no PulseAudio socket at {}; nothing shared",
                    path.display()
                ),
                "--pulseaudio",
            ));
        }
    }
    if wanted.pipewire
        && let Some(rt) = with_runtime(view, &mut added, "--pipewire")
    {
        let path = rt.join("pipewire-0");
        if is_socket(&path) {
            view.ops.push(socket_bind(&path));
        } else {
            added.skipped.push((
                format!(
                    "--pipewire: no PipeWire socket at {}; nothing shared",
                    path.display()
                ),
                "--pipewire",
            ));
        }
    }
    if wanted.gpu {
        gpu(view, &mut added);
    }
    if wanted.x11 || wanted.wayland || wanted.pulseaudio || wanted.pipewire {
        look_and_feel(env, view);
    }
    Ok(added)
}

/// The session bus is shared only through a filter; without one it is refused.
fn dbus_session() -> Result<()> {
    let proxy = ["/usr/bin/xdg-dbus-proxy", "/usr/local/bin/xdg-dbus-proxy"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    match proxy {
        None => bail!(
            "--dbus-session: refused: xdg-dbus-proxy is not installed (Debian: apt install \
             xdg-dbus-proxy), and the unfiltered session bus lets a program ask other programs \
             of your session to do anything they can (open files, run commands)"
        ),
        Some(p) => bail!(
            "--dbus-session: refused: filtering the session bus through {p} is not built yet; \
             the unfiltered bus is never shared"
        ),
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
