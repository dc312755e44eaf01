//! A parsed bubblewrap command line as the spawn request `nsjail run` sends: the same request,
//! validation, policy and helper, with bubblewrap's defaults instead of ours (an empty root,
//! the caller's own ids inside, the host's hostname in a new UTS namespace, nothing unshared but
//! what was asked). Where the request cannot say what bubblewrap does, the sandbox gets more
//! isolation, never less; docs/bwrap.md lists each difference.

use std::os::fd::RawFd;
use std::path::Path;

use nsjail_core::caps::{self, CapSet};
use nsjail_core::request::DEFAULT_HOSTNAME;
use nsjail_core::seccomp::{BpfProgram, SeccompMode};
use nsjail_core::{BindKind, IdMapping, MountOp, Namespaces, OverlayKind, SpawnRequest};

use super::parse::{BindKindArg, EnvOp, FsOp, Invocation};

/// What the caller is, for the defaults bubblewrap takes from it.
pub struct Caller<'a> {
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub uid: u32,
    pub gid: u32,
    /// The host's hostname: what a new UTS namespace keeps unless `--hostname` says otherwise.
    pub hostname: String,
    /// Whether fd N is open in this process.
    pub fd_open: &'a dyn Fn(RawFd) -> bool,
    /// The host path an fd given to `--bind-fd` names, once checked to be that very directory.
    pub fd_path: &'a dyn Fn(RawFd) -> Result<String, String>,
}

/// The request and the caller's fds that travel with it (`--file`, `--bind-data`).
pub struct Translated {
    pub req: SpawnRequest,
    pub fds: Vec<RawFd>,
}

/// The default mode bubblewrap gives a `--file` it creates.
pub const FILE_MODE: u32 = 0o666;
/// The default mode of the file `--bind-data` and `--ro-bind-data` bind (bubblewrap's
/// temporary file, made private to the caller).
pub const DATA_MODE: u32 = 0o600;

pub(crate) fn inside(path: &str) -> String {
    // bubblewrap resolves every destination under the new root: `foo` is `/foo`.
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

fn host(path: &str, cwd: Option<&str>) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        Path::new(cwd.unwrap_or("/"))
            .join(path)
            .to_string_lossy()
            .into_owned()
    }
}

/// Whether the caller's working directory `cwd` is at its own path inside: under a bind of
/// the same host path.
fn reachable(cwd: &str, ops: &[FsOp]) -> bool {
    ops.iter().any(|op| match op {
        FsOp::Bind { src, dst, .. } => {
            let (s, d) = (src.trim_end_matches('/'), dst.trim_end_matches('/'));
            s == d && (cwd == s || cwd.starts_with(&format!("{s}/")) || s.is_empty())
        }
        _ => false,
    })
}

/// Refusals: options that would need the helper to join a namespace the caller chose.
pub fn refused(inv: &Invocation) -> Option<String> {
    inv.join_ns.first().map(|(opt, _)| {
        format!(
            "{opt} is not supported: through a setuid or daemon helper, joining a namespace the \
             caller passed could widen what the caller may do"
        )
    })
}

/// bubblewrap's own checks of option combinations, as it words them. `--unshare-user` is always
/// implied: the helper always makes a user namespace, as bubblewrap does when not setuid.
pub fn check_combinations(inv: &Invocation) -> Result<(), String> {
    if inv.hostname.is_some() && !inv.unshare.uts {
        return Err("Specifying --hostname requires --unshare-uts".into());
    }
    if inv.as_pid_1 && !inv.unshare.pid {
        return Err("Specifying --as-pid-1 requires --unshare-pid".into());
    }
    Ok(())
}

/// The capabilities kept: `--cap-add` and `--cap-drop` in order, from none.
pub fn caps_of(inv: &Invocation) -> CapSet {
    let mut set = 0u64;
    for (add, name) in &inv.caps {
        let c = caps::parse_caps(name).map(|c| c.0).unwrap_or(0);
        if *add {
            set |= c;
        } else {
            set &= !c;
        }
    }
    CapSet(set)
}

/// The environment after `--setenv`, `--unsetenv` and `--clearenv`, in order.
pub fn environment(mut env: Vec<(String, String)>, ops: &[EnvOp]) -> Vec<(String, String)> {
    for op in ops {
        match op {
            EnvOp::Clear => env.clear(),
            EnvOp::Unset(k) => env.retain(|(key, _)| key != k),
            EnvOp::Set(k, v) => {
                if let Some(slot) = env.iter_mut().find(|(key, _)| key == k) {
                    slot.1 = v.clone();
                } else {
                    env.push((k.clone(), v.clone()));
                }
            }
        }
    }
    env
}

/// Build the request. `seccomp`: the program `--seccomp FD` held, and those of
/// `--add-seccomp-fd`, read by the caller already.
pub fn request(
    inv: &Invocation,
    caller: &Caller,
    seccomp: Option<Vec<u8>>,
    add_programs: Vec<Vec<u8>>,
) -> Result<Translated, String> {
    if let Some(msg) = refused(inv) {
        return Err(msg);
    }
    check_combinations(inv)?;
    let mut req = SpawnRequest::new(inv.command.clone());
    if let Some(a0) = &inv.argv0 {
        req.argv[0] = a0.clone();
    }
    req.env = environment(caller.env.clone(), &inv.env);
    req.cwd = inv.chdir.as_deref().map(inside);
    req.caller_cwd = caller.cwd.clone();
    req.namespaces = Namespaces {
        net: inv.unshare.net,
        ipc: inv.unshare.ipc,
        uts: inv.unshare.uts,
        cgroup: inv.unshare.cgroup || inv.unshare.cgroup_try,
        time: false,
    };
    req.ids = IdMapping {
        uid: inv.uid.unwrap_or(caller.uid),
        gid: inv.gid.unwrap_or(caller.gid),
    };
    req.hostname = match (&inv.hostname, inv.unshare.uts) {
        (Some(h), _) => h.clone(),
        (None, true) if !caller.hostname.is_empty() => caller.hostname.clone(),
        _ => DEFAULT_HOSTNAME.to_string(),
    };
    req.as_pid_1 = inv.as_pid_1;
    req.caps = caps_of(inv);
    // Nested user namespaces stay denied (the default filter, or the policy's filter): the
    // safe side, and what --disable-userns asks for.
    req.allow_userns = false;
    req.seccomp = match seccomp {
        Some(bpf) => SeccompMode::Profile(BpfProgram { bpf, flags: 0 }),
        None => SeccompMode::Default,
    };
    req.seccomp_programs = add_programs;
    if (inv.disable_userns || inv.assert_userns_disabled) && inv.seccomp_fd.is_some() {
        // A replacing program may allow user namespaces where the policy does too: deny them
        // on top, as --disable-userns promises.
        let deny = nsjail_seccomp::bpf::to_bytes(nsjail_seccomp::default::userns_only());
        req.seccomp_programs.push(deny);
    }
    let cwd = caller.cwd.as_deref();
    // bubblewrap sets PWD to where the command starts.
    let pwd = match (&req.cwd, cwd) {
        (Some(dir), _) => dir.clone(),
        (None, Some(c)) if reachable(c, &inv.ops) => c.to_string(),
        _ => "/".to_string(),
    };
    req.env.retain(|(k, _)| k != "PWD");
    req.env.push(("PWD".into(), pwd));
    let mut fds: Vec<RawFd> = Vec::new();
    // bubblewrap writes the fd's data to the file it makes, and words a bad fd that way.
    let mut take_fd = |fd: RawFd, dst: &str| -> Result<u32, String> {
        if !(caller.fd_open)(fd) {
            return Err(format!(
                "Can't write data to file {}: Bad file descriptor",
                inside(dst)
            ));
        }
        fds.push(fd);
        Ok((fds.len() - 1) as u32)
    };
    for op in &inv.ops {
        let m = match op {
            FsOp::Bind {
                src,
                dst,
                kind,
                try_,
            } => MountOp::Bind {
                src: host(src, cwd),
                dst: inside(dst),
                kind: match kind {
                    BindKindArg::ReadWrite => BindKind::ReadWrite,
                    BindKindArg::ReadOnly => BindKind::ReadOnly,
                    BindKindArg::Dev => BindKind::Dev,
                },
                optional: *try_,
            },
            FsOp::BindFd { fd, dst, read_only } => MountOp::Bind {
                src: (caller.fd_path)(*fd)?,
                dst: inside(dst),
                kind: if *read_only {
                    BindKind::ReadOnly
                } else {
                    BindKind::ReadWrite
                },
                optional: false,
            },
            FsOp::RemountRo(d) => MountOp::RemountRo { dst: inside(d) },
            FsOp::Proc(d) => MountOp::Proc { dst: inside(d) },
            FsOp::Dev(d) => MountOp::Dev { dst: inside(d) },
            FsOp::Mqueue(d) => MountOp::Mqueue { dst: inside(d) },
            FsOp::Tmpfs { dst, perms, size } => MountOp::Tmpfs {
                dst: inside(dst),
                size: *size,
                perms: *perms,
            },
            FsOp::Dir { dst, perms } => MountOp::Dir {
                dst: inside(dst),
                perms: *perms,
            },
            FsOp::File { fd, dst, perms } => MountOp::File {
                fd: take_fd(*fd, dst)?,
                dst: inside(dst),
                perms: Some(perms.unwrap_or(FILE_MODE)),
            },
            FsOp::BindData {
                fd,
                dst,
                read_only,
                perms,
            } => MountOp::BindData {
                fd: take_fd(*fd, dst)?,
                dst: inside(dst),
                read_only: *read_only,
                perms: Some(perms.unwrap_or(DATA_MODE)),
            },
            FsOp::Symlink { target, link } => MountOp::Symlink {
                target: target.clone(),
                link: inside(link),
            },
            FsOp::Chmod { mode, path } => MountOp::Chmod {
                mode: *mode,
                path: inside(path),
            },
            FsOp::Overlay { srcs, dst, rw, tmp } => MountOp::Overlay {
                srcs: srcs.iter().map(|s| host(s, cwd)).collect(),
                dst: inside(dst),
                kind: match (rw, tmp) {
                    (Some((upper, work)), _) => OverlayKind::ReadWrite {
                        upper: host(upper, cwd),
                        work: host(work, cwd),
                    },
                    (None, true) => OverlayKind::Tmp,
                    (None, false) => OverlayKind::ReadOnly,
                },
            },
        };
        req.mounts.push(m);
    }
    req.extra_fds = fds.len() as u32;
    Ok(Translated { req, fds })
}

/// The namespaces bubblewrap names in its info and status JSON, in its order, with whether this
/// sandbox has a new one of each (the mount and pid namespaces always are).
pub fn reported_namespaces(ns: &Namespaces) -> [(&'static str, &'static str, bool); 6] {
    [
        ("cgroup", "cgroup-namespace", ns.cgroup),
        ("ipc", "ipc-namespace", ns.ipc),
        ("mnt", "mnt-namespace", true),
        ("net", "net-namespace", ns.net),
        ("pid", "pid-namespace", true),
        ("uts", "uts-namespace", ns.uts),
    ]
}

/// The info JSON (`--info-fd`): bubblewrap's layout, one key per line.
pub fn info_json(pid: i32, ns_ids: &[(&str, u64)]) -> String {
    let mut lines = vec![format!("    \"child-pid\": {pid}")];
    for (key, id) in ns_ids {
        lines.push(format!("    \"{key}\": {id}"));
    }
    format!("{{\n{}\n}}\n", lines.join(",\n"))
}

/// The first status line (`--json-status-fd`).
pub fn status_start_json(pid: i32, ns_ids: &[(&str, u64)]) -> String {
    let mut parts = vec![format!("\"child-pid\": {pid}")];
    for (key, id) in ns_ids {
        parts.push(format!("\"{key}\": {id}"));
    }
    format!("{{ {} }}\n", parts.join(", "))
}

/// The last status line: how the sandbox ended, as bubblewrap's exit code.
pub fn status_exit_json(code: i32) -> String {
    format!("{{ \"exit-code\": {code} }}\n")
}

#[cfg(test)]
mod tests {
    use super::super::parse::{Parsed, parse};
    use super::*;

    fn inv(args: &[&str]) -> Invocation {
        let words: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut no_files = |_| Err("Bad file descriptor".to_string());
        match parse(&words, &mut no_files) {
            Ok(Parsed::Run(i)) => *i,
            other => panic!("{other:?}"),
        }
    }

    fn caller() -> Caller<'static> {
        Caller {
            env: vec![("PATH".into(), "/bin".into()), ("B".into(), "2".into())],
            cwd: Some("/home/u".into()),
            uid: 1000,
            gid: 100,
            hostname: "host".into(),
            fd_open: &|fd| fd == 5 || fd == 6,
            fd_path: &|fd| {
                if fd == 7 {
                    Ok("/srv/d".into())
                } else {
                    Err(format!("bad {fd}"))
                }
            },
        }
    }

    fn req(args: &[&str]) -> Result<Translated, String> {
        request(&inv(args), &caller(), None, Vec::new())
    }

    #[test]
    fn bubblewraps_defaults() {
        let r = req(&["true"]).unwrap().req;
        // Nothing but user, mount and pid namespaces, the caller's own ids, an empty root.
        assert!(!r.namespaces.net && !r.namespaces.ipc && !r.namespaces.uts);
        assert!(!r.namespaces.cgroup && !r.namespaces.time);
        assert_eq!(
            r.ids,
            IdMapping {
                uid: 1000,
                gid: 100
            }
        );
        assert!(r.mounts.is_empty());
        assert_eq!(r.hostname, DEFAULT_HOSTNAME);
        assert_eq!(r.seccomp, SeccompMode::Default);
        assert!(r.caps.is_empty() && !r.allow_userns && !r.as_pid_1);
        // The caller's environment, and PWD where the command starts (/home/u is not inside).
        let mut env = caller().env;
        env.push(("PWD".into(), "/".into()));
        assert_eq!(r.env, env);
        let r = req(&["--bind", "/home", "/home", "true"]).unwrap().req;
        assert_eq!(r.env.last(), Some(&("PWD".into(), "/home/u".into())));
        assert_eq!(r.caller_cwd.as_deref(), Some("/home/u"));
        nsjail_core::validate::check(&r).unwrap();
    }

    #[test]
    fn unshared_namespaces_ids_and_hostname() {
        let r = req(&["--unshare-all", "--uid", "0", "--gid", "0", "true"])
            .unwrap()
            .req;
        let n = r.namespaces;
        assert!(n.net && n.ipc && n.uts && n.cgroup);
        assert_eq!(r.ids, IdMapping { uid: 0, gid: 0 });
        // A new UTS namespace keeps the host's name unless told.
        assert_eq!(r.hostname, "host");
        let r = req(&["--unshare-uts", "--hostname", "box", "true"])
            .unwrap()
            .req;
        assert_eq!(r.hostname, "box");
        let r = req(&["--unshare-all", "--share-net", "true"]).unwrap().req;
        assert!(!r.namespaces.net && r.namespaces.ipc);
        nsjail_core::validate::check(&r).unwrap();
    }

    #[test]
    fn combinations_bubblewrap_refuses_and_namespaces_we_do_not_join() {
        assert_eq!(
            req(&["--hostname", "x", "true"]).err().unwrap(),
            "Specifying --hostname requires --unshare-uts"
        );
        assert_eq!(
            req(&["--as-pid-1", "true"]).err().unwrap(),
            "Specifying --as-pid-1 requires --unshare-pid"
        );
        assert!(
            req(&["--unshare-pid", "--as-pid-1", "true"])
                .unwrap()
                .req
                .as_pid_1
        );
        for opt in ["--userns", "--userns2", "--pidns"] {
            let e = req(&[opt, "3", "true"]).err().unwrap();
            assert!(e.starts_with(&format!("{opt} is not supported")), "{e}");
        }
    }

    #[test]
    fn environment_changes_apply_in_order() {
        let r = req(&[
            "--setenv",
            "A",
            "1",
            "--unsetenv",
            "B",
            "--setenv",
            "PATH",
            "/x",
            "env",
        ])
        .unwrap()
        .req;
        assert_eq!(
            r.env,
            vec![
                ("PATH".into(), "/x".into()),
                ("A".into(), "1".into()),
                ("PWD".into(), "/".into())
            ]
        );
        let r = req(&[
            "--setenv",
            "A",
            "1",
            "--clearenv",
            "--setenv",
            "C",
            "3",
            "env",
        ])
        .unwrap()
        .req;
        assert_eq!(
            r.env,
            vec![("C".into(), "3".into()), ("PWD".into(), "/".into())]
        );
        let r = req(&["--argv0", "zero", "--chdir", "w", "env"])
            .unwrap()
            .req;
        assert_eq!((r.argv[0].as_str(), r.program.as_str()), ("zero", "env"));
        assert_eq!(r.cwd.as_deref(), Some("/w"));
    }

    #[test]
    fn mounts_in_order_with_fds_and_paths() {
        let t = req(&[
            "--ro-bind",
            "usr",
            "usr",
            "--file",
            "5",
            "/f",
            "--perms",
            "0600",
            "--ro-bind-data",
            "6",
            "/g",
            "--bind-fd",
            "7",
            "/d",
            "--remount-ro",
            "/usr",
            "true",
        ])
        .unwrap();
        assert_eq!(t.fds, [5, 6]);
        assert_eq!(t.req.extra_fds, 2);
        assert_eq!(
            t.req.mounts,
            vec![
                MountOp::Bind {
                    src: "/home/u/usr".into(),
                    dst: "/usr".into(),
                    kind: BindKind::ReadOnly,
                    optional: false
                },
                MountOp::File {
                    fd: 0,
                    dst: "/f".into(),
                    perms: Some(FILE_MODE)
                },
                MountOp::BindData {
                    fd: 1,
                    dst: "/g".into(),
                    read_only: true,
                    perms: Some(0o600)
                },
                MountOp::Bind {
                    src: "/srv/d".into(),
                    dst: "/d".into(),
                    kind: BindKind::ReadWrite,
                    optional: false
                },
                MountOp::RemountRo { dst: "/usr".into() },
            ]
        );
        nsjail_core::validate::check(&t.req).unwrap();
        // A closed fd, as bubblewrap words it when it writes the fd's data to the file.
        for args in [
            &["--file", "9", "f", "true"][..],
            &["--bind-data", "9", "/f", "true"],
            &["--ro-bind-data", "9", "/f", "true"],
        ] {
            assert_eq!(
                req(args).err().as_deref(),
                Some("Can't write data to file /f: Bad file descriptor"),
                "{args:?}"
            );
        }
        // The data of --bind-data and --ro-bind-data is the caller's alone unless --perms says.
        for (args, mode) in [
            (&["--bind-data", "5", "/g", "true"][..], 0o600),
            (
                &["--perms", "0444", "--ro-bind-data", "5", "/g", "true"],
                0o444,
            ),
        ] {
            let t = req(args).unwrap();
            assert!(
                matches!(t.req.mounts[..], [MountOp::BindData { perms: Some(m), .. }] if m == mode),
                "{args:?}: {:?}",
                t.req.mounts
            );
        }
        assert!(req(&["--bind-fd", "9", "/f", "true"]).is_err());
    }

    #[test]
    fn capabilities_and_seccomp() {
        let r = req(&["--cap-add", "ALL", "--cap-drop", "CAP_SYS_ADMIN", "true"])
            .unwrap()
            .req;
        assert!(r.caps.contains(0) && !r.caps.contains(21));
        let r = req(&["--cap-drop", "ALL", "--cap-add", "CAP_CHOWN", "true"])
            .unwrap()
            .req;
        assert_eq!(r.caps, CapSet(1));
        let i = inv(&["--seccomp", "3", "--disable-userns", "true"]);
        let r = request(&i, &caller(), Some(vec![0; 8]), vec![vec![1; 8]])
            .unwrap()
            .req;
        assert_eq!(
            r.seccomp,
            SeccompMode::Profile(BpfProgram {
                bpf: vec![0; 8],
                flags: 0
            })
        );
        // The caller's program, then the user-namespace denial --disable-userns adds.
        assert_eq!(r.seccomp_programs.len(), 2);
        assert_eq!(r.seccomp_programs[0], vec![1; 8]);
        let i = inv(&["--seccomp", "3", "true"]);
        let r = request(&i, &caller(), Some(vec![0; 8]), vec![])
            .unwrap()
            .req;
        assert!(r.seccomp_programs.is_empty());
    }

    #[test]
    fn status_json_as_bubblewrap_writes_it() {
        let ids = [("mnt-namespace", 10), ("pid-namespace", 11)];
        assert_eq!(
            info_json(42, &ids),
            "{\n    \"child-pid\": 42,\n    \"mnt-namespace\": 10,\n    \"pid-namespace\": 11\n}\n"
        );
        assert_eq!(
            status_start_json(42, &ids),
            "{ \"child-pid\": 42, \"mnt-namespace\": 10, \"pid-namespace\": 11 }\n"
        );
        assert_eq!(status_exit_json(3), "{ \"exit-code\": 3 }\n");
    }
}
