//! The filesystem options, in the order they were given, and the default view.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use clap::ArgMatches;
use nsjail_core::{BindKind, MountOp, OverlayKind};

/// Every filesystem option, by clap id, and how many values one use of it takes.
pub const FS_ARGS: [(&str, usize); 23] = [
    ("bind", 2),
    ("bind_try", 2),
    ("ro_bind", 2),
    ("ro_bind_try", 2),
    ("dev_bind", 2),
    ("dev_bind_try", 2),
    ("tmpfs", 1),
    ("proc", 1),
    ("dev", 1),
    ("mqueue", 1),
    ("dir", 1),
    ("symlink", 2),
    ("file", 2),
    ("bind_data", 2),
    ("ro_bind_data", 2),
    ("remount_ro", 1),
    ("chmod", 2),
    ("perms", 1),
    ("size", 1),
    ("overlay_src", 1),
    ("tmp_overlay", 1),
    ("ro_overlay", 1),
    ("overlay", 3),
];

/// The filesystem part of a request: the operations and the fds they read, in the order their
/// indices refer to them.
#[derive(Debug, Default)]
pub struct View {
    pub ops: Vec<MountOp>,
    pub fds: Vec<RawFd>,
    /// Lines for `--verbose` about choices the default view made.
    pub notes: Vec<String>,
    /// Files made here (such as the filtered Xauthority) whose fds are in `fds`; held open
    /// until the request has been sent.
    pub keep: Vec<std::os::fd::OwnedFd>,
}

fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// The uses of every filesystem option, sorted by position on the command line.
fn in_order(m: &ArgMatches) -> Vec<(usize, &'static str, Vec<String>)> {
    let mut uses = Vec::new();
    for (id, n) in FS_ARGS {
        let (Some(values), Some(indices)) = (m.get_many::<String>(id), m.indices_of(id)) else {
            continue;
        };
        let values: Vec<String> = values.cloned().collect();
        let indices: Vec<usize> = indices.collect();
        for (vals, idx) in values.chunks(n).zip(indices.chunks(n)) {
            uses.push((idx[0], id, vals.to_vec()));
        }
    }
    uses.sort_by_key(|u| u.0);
    uses
}

fn absolute(path: &str, cwd: &Path) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        cwd.join(path).to_string_lossy().into_owned()
    }
}

fn octal(opt: &str, s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{opt} {s}: not an octal mode (0 to 7777)"))
}

fn size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            format!(
                "--size {s}: not a size in bytes (a positive number, optionally with K, M or G)"
            )
        })
}

/// Build the operations from the command line. `cwd` makes relative host paths absolute.
pub fn from_args(m: &ArgMatches, cwd: &Path) -> Result<View, String> {
    let mut view = View::default();
    let mut perms: Option<u32> = None;
    let mut size_mod: Option<u64> = None;
    let mut overlay_srcs: Vec<String> = Vec::new();
    for (_, id, v) in in_order(m) {
        let opt = flag(id);
        let mut take_perms = || perms.take();
        let op = match (id, v.as_slice()) {
            ("perms", [p]) => {
                if perms.replace(octal("--perms", p)?).is_some() {
                    return Err("--perms given twice before one operation".into());
                }
                continue;
            }
            ("size", [s]) => {
                if size_mod.replace(size(s)?).is_some() {
                    return Err("--size given twice before one operation".into());
                }
                continue;
            }
            ("overlay_src", [s]) => {
                overlay_srcs.push(absolute(s, cwd));
                continue;
            }
            (
                "bind" | "bind_try" | "ro_bind" | "ro_bind_try" | "dev_bind" | "dev_bind_try",
                [src, dst],
            ) => MountOp::Bind {
                src: absolute(src, cwd),
                dst: dst.clone(),
                kind: match id {
                    "ro_bind" | "ro_bind_try" => BindKind::ReadOnly,
                    "dev_bind" | "dev_bind_try" => BindKind::Dev,
                    _ => BindKind::ReadWrite,
                },
                optional: id.ends_with("_try"),
            },
            ("tmpfs", [dst]) => MountOp::Tmpfs {
                dst: dst.clone(),
                size: size_mod.take(),
                perms: take_perms(),
            },
            ("proc", [dst]) => MountOp::Proc { dst: dst.clone() },
            ("dev", [dst]) => MountOp::Dev { dst: dst.clone() },
            ("mqueue", [dst]) => MountOp::Mqueue { dst: dst.clone() },
            ("dir", [dst]) => MountOp::Dir {
                dst: dst.clone(),
                perms: take_perms(),
            },
            ("symlink", [target, link]) => MountOp::Symlink {
                target: target.clone(),
                link: link.clone(),
            },
            ("file" | "bind_data" | "ro_bind_data", [fd, dst]) => {
                let raw: RawFd = fd
                    .parse()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| format!("{opt} {fd}: not a file descriptor number"))?;
                // Checked here, before any helper starts, so the one line names the option.
                if std::fs::symlink_metadata(format!("/proc/self/fd/{raw}")).is_err() {
                    return Err(format!("{opt} {fd}: file descriptor {raw} is not open"));
                }
                view.fds.push(raw);
                let index = (view.fds.len() - 1) as u32;
                if id == "file" {
                    MountOp::File {
                        fd: index,
                        dst: dst.clone(),
                        perms: take_perms(),
                    }
                } else {
                    MountOp::BindData {
                        fd: index,
                        dst: dst.clone(),
                        read_only: id == "ro_bind_data",
                        perms: take_perms(),
                    }
                }
            }
            ("remount_ro", [dst]) => MountOp::RemountRo { dst: dst.clone() },
            ("chmod", [mode, path]) => MountOp::Chmod {
                mode: octal("--chmod", mode)?,
                path: path.clone(),
            },
            ("tmp_overlay" | "ro_overlay", [dst]) => MountOp::Overlay {
                srcs: std::mem::take(&mut overlay_srcs),
                dst: dst.clone(),
                kind: if id == "tmp_overlay" {
                    OverlayKind::Tmp
                } else {
                    OverlayKind::ReadOnly
                },
            },
            ("overlay", [upper, work, dst]) => MountOp::Overlay {
                srcs: std::mem::take(&mut overlay_srcs),
                dst: dst.clone(),
                kind: OverlayKind::ReadWrite {
                    upper: absolute(upper, cwd),
                    work: absolute(work, cwd),
                },
            },
            _ => return Err(format!("{opt}: wrong number of values")),
        };
        if let Some(p) = perms {
            return Err(format!("--perms {p:o} does not apply to {}", op.describe()));
        }
        if size_mod.is_some() {
            return Err(format!(
                "--size does not apply to {} (only to --tmpfs)",
                op.describe()
            ));
        }
        if !overlay_srcs.is_empty() {
            return Err(format!(
                "--overlay-src must come right before --tmp-overlay, --ro-overlay or --overlay, not {}",
                op.describe()
            ));
        }
        view.ops.push(op);
    }
    if perms.is_some() {
        return Err("--perms without a following operation".into());
    }
    if size_mod.is_some() {
        return Err("--size without a following --tmpfs".into());
    }
    if !overlay_srcs.is_empty() {
        return Err("--overlay-src without a following overlay".into());
    }
    Ok(view)
}

/// Directories where programs of the caller (and of other users) keep their servers' sockets
/// and their temporary files: tmux (`/tmp/tmux-UID`), ssh-agent (`$TMPDIR/ssh-*`), X11
/// (`/tmp/.X11-unix`), D-Bus and most desktop services (`$XDG_RUNTIME_DIR`), `/run`. The default
/// view never binds one of them, anything under one, or anything above one, as the working
/// directory: a payload given such a directory can drive those servers.
/// `getenv` reads the caller's environment.
pub fn shared_dirs(getenv: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = [
        "/tmp",
        "/var/tmp",
        "/dev/shm",
        "/run",
        "/var/run",
        "/var/lock",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    for var in ["XDG_RUNTIME_DIR", "TMPDIR"] {
        if let Some(d) = getenv(var).map(PathBuf::from)
            && d.is_absolute()
            && d != Path::new("/")
        {
            dirs.push(d);
        }
    }
    dirs
}

/// `p` with symbolic links resolved when it exists, else as given.
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Why the working directory `cwd` must not be bound, if it must not: it is, is under, or holds
/// one of the `shared` directories (compared with symbolic links resolved), or it directly holds
/// a Unix socket (an agent's or a server's: the payload could connect to it).
fn shared_reason(cwd: &Path, shared: &[PathBuf]) -> Option<String> {
    let c = canonical(cwd);
    for s in shared {
        let s = canonical(s);
        let what = "a shared temporary or runtime directory";
        if c == s {
            return Some(format!("is {}, {what}", s.display()));
        }
        if c.starts_with(&s) {
            return Some(format!("is under {}, {what}", s.display()));
        }
        if s.starts_with(&c) {
            return Some(format!("holds {}, {what}", s.display()));
        }
    }
    let socket = std::fs::read_dir(&c).ok()?.flatten().find(|e| {
        use std::os::unix::fs::FileTypeExt;
        e.file_type().is_ok_and(|t| t.is_socket())
    })?;
    Some(format!(
        "holds a Unix socket ({})",
        socket.file_name().to_string_lossy()
    ))
}

/// The view a sandbox gets when no filesystem option is given (see README): the system
/// read-only, fresh /proc and /dev, empty private /tmp, /var/tmp, /run and $HOME, and the
/// current directory read-write at its own path — unless it is `/`, $HOME or above it, or a
/// shared directory in the sense of [`shared_dirs`] (or holds a socket).
pub fn default_view(
    cwd: Option<&Path>,
    home: Option<&Path>,
    bind_cwd: bool,
    shared: &[PathBuf],
) -> View {
    let mut view = View::default();
    let ro = |p: &str, optional: bool| MountOp::Bind {
        src: p.into(),
        dst: p.into(),
        kind: BindKind::ReadOnly,
        optional,
    };
    view.ops.push(ro("/usr", false));
    view.ops.push(ro("/etc", true));
    view.ops.push(ro("/opt", true));
    // On merged-/usr systems these are symlinks into /usr; keep them as the host has them.
    for p in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(p) {
                    view.ops.push(MountOp::Symlink {
                        target: target.to_string_lossy().into_owned(),
                        link: p.into(),
                    });
                }
            }
            Ok(m) if m.is_dir() => view.ops.push(ro(p, true)),
            _ => {}
        }
    }
    view.ops.push(MountOp::Proc {
        dst: "/proc".into(),
    });
    view.ops.push(MountOp::Dev { dst: "/dev".into() });
    for t in ["/tmp", "/var/tmp", "/run"] {
        view.ops.push(MountOp::Tmpfs {
            dst: t.into(),
            size: None,
            perms: Some(if t == "/run" { 0o755 } else { 0o1777 }),
        });
    }
    if let Some(home) = home.filter(|h| h.is_absolute() && *h != Path::new("/")) {
        view.ops.push(MountOp::Dir {
            dst: home.to_string_lossy().into_owned(),
            perms: Some(0o700),
        });
    }
    match cwd {
        _ if !bind_cwd => view.notes.push("default view: --no-cwd, current directory not bound".into()),
        None => view.notes.push("default view: no usable current directory to bind".into()),
        Some(c) if c == Path::new("/") => {
            view.notes.push("default view: the current directory is /, not bound".into())
        }
        Some(c) if home.is_some_and(|h| h.starts_with(c)) => view.notes.push(format!(
            "default view: the current directory {} is your home or above it, not bound (bind what you need with --default-view --bind)",
            c.display()
        )),
        Some(c) => {
            if let Some(why) = shared_reason(c, shared) {
                view.notes.push(format!(
                    "default view: the current directory {} {why}, not bound (bind what you need with --default-view --bind)",
                    c.display()
                ));
                return view;
            }
            let c = c.to_string_lossy().into_owned();
            view.notes.push(format!("default view: binding the current directory {c} read-write"));
            view.ops.push(MountOp::Bind {
                src: c.clone(),
                dst: c,
                kind: BindKind::ReadWrite,
                optional: false,
            });
        }
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    use crate::args::Cli;

    fn view(args: &[&str]) -> Result<View, String> {
        let mut v = vec!["nsjail", "run"];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--", "true"]);
        let m = Cli::command()
            .try_get_matches_from(v)
            .map_err(|e| e.to_string())?;
        Cli::from_arg_matches(&m).map_err(|e| e.to_string())?;
        let (_, run) = m.subcommand().ok_or("no subcommand")?;
        from_args(run, Path::new("/work"))
    }

    #[test]
    fn operations_keep_command_line_order() {
        let v = view(&[
            "--tmpfs",
            "/a",
            "--ro-bind",
            "/x",
            "/a/x",
            "--dir",
            "/a/y",
            "--bind",
            "rel",
            "/b",
        ])
        .unwrap();
        let d: Vec<String> = v.ops.iter().map(MountOp::describe).collect();
        assert_eq!(
            d,
            [
                "--tmpfs /a",
                "--ro-bind /x /a/x",
                "--dir /a/y",
                "--bind /work/rel /b"
            ]
        );
    }

    #[test]
    fn modifiers_apply_to_the_next_operation() {
        let v = view(&[
            "--perms", "700", "--size", "1M", "--tmpfs", "/t", "--dir", "/d",
        ])
        .unwrap();
        assert_eq!(
            v.ops[0],
            MountOp::Tmpfs {
                dst: "/t".into(),
                size: Some(1 << 20),
                perms: Some(0o700)
            }
        );
        assert_eq!(
            v.ops[1],
            MountOp::Dir {
                dst: "/d".into(),
                perms: None
            }
        );
        assert!(
            view(&["--perms", "700"])
                .unwrap_err()
                .contains("without a following")
        );
        assert!(
            view(&["--perms", "7", "--perms", "7", "--dir", "/d"])
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            view(&["--size", "1", "--dir", "/d"])
                .unwrap_err()
                .contains("only to --tmpfs")
        );
        assert!(
            view(&["--perms", "9", "--dir", "/d"])
                .unwrap_err()
                .contains("octal")
        );
        assert!(
            view(&["--perms", "700", "--proc", "/p"])
                .unwrap_err()
                .contains("does not apply")
        );
        assert!(
            view(&["--size", "abc", "--tmpfs", "/t"])
                .unwrap_err()
                .contains("--size")
        );
        assert!(
            view(&["--size", "0", "--tmpfs", "/t"])
                .unwrap_err()
                .contains("--size")
        );
    }

    #[test]
    fn overlays_take_the_sources_before_them() {
        let v = view(&[
            "--overlay-src",
            "/l1",
            "--overlay-src",
            "/l2",
            "--ro-overlay",
            "/o",
        ])
        .unwrap();
        assert_eq!(
            v.ops[0],
            MountOp::Overlay {
                srcs: vec!["/l1".into(), "/l2".into()],
                dst: "/o".into(),
                kind: OverlayKind::ReadOnly
            }
        );
        assert!(view(&["--overlay-src", "/l1"]).is_err());
        assert!(view(&["--overlay-src", "/l1", "--dir", "/d", "--tmp-overlay", "/o"]).is_err());
    }

    #[test]
    fn data_options_collect_fds_in_order() {
        // 0 and 2 are open in any test process; a closed number is refused by name.
        let v = view(&["--file", "2", "/f", "--ro-bind-data", "0", "/g"]).unwrap();
        assert_eq!(v.fds, [2, 0]);
        let err = view(&["--file", "987", "/f"]).unwrap_err();
        assert!(
            err.contains("--file 987") && err.contains("not open"),
            "{err}"
        );
        assert_eq!(
            v.ops[1],
            MountOp::BindData {
                fd: 1,
                dst: "/g".into(),
                read_only: true,
                perms: None
            }
        );
        assert!(view(&["--file", "x", "/f"]).is_err());
    }

    #[test]
    fn default_view_binds_cwd_unless_it_is_home_or_above() {
        let home = Path::new("/home/u");
        let has_cwd_bind = |v: &View| {
            v.ops.iter().any(|o| {
                matches!(
                    o,
                    MountOp::Bind {
                        kind: BindKind::ReadWrite,
                        ..
                    }
                )
            })
        };
        assert!(has_cwd_bind(&default_view(
            Some(Path::new("/home/u/proj")),
            Some(home),
            true,
            &[]
        )));
        for cwd in ["/", "/home", "/home/u"] {
            assert!(
                !has_cwd_bind(&default_view(Some(Path::new(cwd)), Some(home), true, &[])),
                "{cwd}"
            );
        }
        assert!(!has_cwd_bind(&default_view(
            Some(Path::new("/home/u/proj")),
            Some(home),
            false,
            &[]
        )));
        let v = default_view(None, Some(home), true, &[]);
        assert!(v.ops.contains(&MountOp::Dir {
            dst: "/home/u".into(),
            perms: Some(0o700)
        }));
        assert!(v.ops.contains(&MountOp::Proc {
            dst: "/proc".into()
        }));
    }

    #[test]
    fn shared_directories_are_never_bound_as_the_working_directory() {
        let env = |k: &str| match k {
            "XDG_RUNTIME_DIR" => Some("/run/user/1000".to_string()),
            "TMPDIR" => Some("/home/u/tmp".to_string()),
            _ => None,
        };
        let shared = shared_dirs(&env);
        let home = Some(Path::new("/home/u"));
        let bound = |cwd: &str| {
            let v = default_view(Some(Path::new(cwd)), home, true, &shared);
            let bound = v.ops.iter().any(|o| {
                matches!(
                    o,
                    MountOp::Bind {
                        kind: BindKind::ReadWrite,
                        ..
                    }
                )
            });
            (bound, v.notes.join("; "))
        };
        for (cwd, says) in [
            ("/tmp", "is /tmp,"),
            ("/tmp/tmux-1000", "under /tmp"),
            ("/var/tmp/x", "under /var/tmp"),
            ("/dev/shm/x", "under /dev/shm"),
            ("/run/user/1000/bus-dir", "under /run"),
            ("/home/u/tmp/ssh-XXXX", "under /home/u/tmp"),
            ("/var", "holds /var/tmp"),
            ("/dev", "holds /dev/shm"),
        ] {
            let (b, notes) = bound(cwd);
            assert!(!b, "{cwd} was bound");
            assert!(
                notes.contains(says) && notes.contains("not bound"),
                "{cwd}: {notes}"
            );
        }
        // An $XDG_RUNTIME_DIR outside /run counts too; `/` as $TMPDIR does not make every
        // directory shared.
        let elsewhere = |k: &str| match k {
            "XDG_RUNTIME_DIR" => Some("/srv/rt".to_string()),
            "TMPDIR" => Some("/".to_string()),
            _ => None,
        };
        let shared = shared_dirs(&elsewhere);
        let v = default_view(Some(Path::new("/srv/rt/x")), home, true, &shared);
        assert!(v.notes[0].contains("under /srv/rt"), "{:?}", v.notes);
        // The control: an ordinary directory is bound.
        let (b, notes) = bound("/home/u/proj");
        assert!(
            b && notes.contains("binding the current directory"),
            "{notes}"
        );
        let v = default_view(Some(Path::new("/srv/x")), home, true, &shared);
        assert!(v.notes[0].contains("binding"), "{:?}", v.notes);
    }

    #[test]
    fn a_directory_holding_a_socket_is_not_bound() {
        let dir = tempfile::tempdir().unwrap();
        let home = Some(Path::new("/nonexistent-home"));
        let v = default_view(Some(dir.path()), home, true, &[]);
        assert!(v.notes[0].contains("binding"), "{:?}", v.notes);
        let _l = std::os::unix::net::UnixListener::bind(dir.path().join("agent.sock")).unwrap();
        let v = default_view(Some(dir.path()), home, true, &[]);
        assert!(
            v.notes[0].contains("holds a Unix socket (agent.sock)"),
            "{:?}",
            v.notes
        );
        assert!(
            !v.ops
                .iter()
                .any(|o| o.sources().contains(&dir.path().to_str().unwrap()))
        );
    }
}
