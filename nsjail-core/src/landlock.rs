//! Landlock behind the filesystem view: which paths of the view the payload may read, write and
//! execute, decided from the request's mount operations alone, so that a bug in mounting or in
//! path resolution does not by itself open the host.
//!
//! Landlock rules are attached to files and directories and **add up down the tree, across
//! mounts**: a right granted on a directory holds for everything below it, whatever is mounted
//! there. So the ruleset grants each right only as high up as the view allows it everywhere
//! below:
//!
//! - `/` (the view's root tmpfs) is readable, nothing more. Its top is writable in the view
//!   itself, but write access there would be write access to the whole tree; under Landlock the
//!   payload cannot create entries at the top of `/` (nor in the directories made only to hold
//!   mount points). It can in everything `--dir` and `--file` made, with the rights of the mount
//!   they are on.
//! - Every mount is granted what it allows: reading always; writing unless it is read-only;
//!   executing unless it is `noexec` (`--proc`, `--dev`, `--mqueue`).
//! - A later mount hides what was at and below its place, so it replaces their rules;
//!   `--remount-ro` takes write access away from the rules at and below its place.
//!
//! Where the view makes something read-only (or `noexec`) below a place that is writable (or
//! executable) — a read-only bind inside a writable one, `--remount-ro` inside a bind — the
//! rights from above still reach it: there the mount alone keeps it read-only. [`plan`] lists
//! each such place in its notes.
//!
//! Paths are compared as written (after `.` and repeated `/` are removed), without following
//! symbolic links; a rule whose path leads elsewhere through a symbolic link can only grant
//! more than the view, never less, and the mount still holds.

use serde::{Deserialize, Serialize};

use crate::mounts::{BindKind, MountOp, OverlayKind};

/// What the payload asks for with `--landlock`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LandlockMode {
    /// Apply the ruleset where the kernel has Landlock ABI 2 or newer, unless the payload keeps
    /// `CAP_SYS_ADMIN` or may create user namespaces (a Landlock domain may not mount, which
    /// is what those are for).
    #[default]
    Auto,
    /// Always apply it; refuse to run where the kernel cannot.
    On,
    /// Never apply it (refused when the admin policy requires Landlock).
    Off,
}

/// The oldest Landlock ABI the ruleset is applied with. ABI 1 has no right to rename or link
/// across directories: under a ruleset every such `rename(2)` fails, which breaks `mv` between
/// two directories of the view.
pub const MIN_ABI: u32 = 2;

/// `CAP_SYS_ADMIN`, which `mount(2)` needs.
const CAP_SYS_ADMIN: u8 = 21;

/// What a rule allows, in the view's terms. The helper maps each to the kernel's access rights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// Read files, list directories, connect to sockets.
    pub read: bool,
    /// Write, truncate, create, remove, rename and link; ioctl on devices.
    pub write: bool,
    /// Execute files.
    pub exec: bool,
}

impl Access {
    const R: Access = Access {
        read: true,
        write: false,
        exec: false,
    };
    const RX: Access = Access {
        read: true,
        write: false,
        exec: true,
    };
    const RW: Access = Access {
        read: true,
        write: true,
        exec: false,
    };
    const RWX: Access = Access {
        read: true,
        write: true,
        exec: true,
    };

    /// `rwx` style, `-` for what is not granted.
    pub fn letters(self) -> String {
        [(self.read, 'r'), (self.write, 'w'), (self.exec, 'x')]
            .iter()
            .map(|(on, c)| if *on { *c } else { '-' })
            .collect()
    }

    fn without_write(self) -> Access {
        Access {
            write: false,
            ..self
        }
    }
}

/// One rule: `access` on `path` (a path inside the view) and everything below it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub path: String,
    pub access: Access,
}

/// The payload's ruleset for one view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruleset {
    /// Sorted by path; `/` first.
    pub rules: Vec<Rule>,
    /// Places where the mount alone keeps a restriction the rules above cannot express.
    pub notes: Vec<String>,
}

/// `.` and empty components removed, no trailing `/`.
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// `path` is `dir` or below it.
fn at_or_below(path: &str, dir: &str) -> bool {
    dir == "/"
        || path == dir
        || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

struct Entry {
    path: String,
    access: Access,
    /// A mount (its rights are those of everything made on it), not a directory or file made
    /// on another.
    mount: bool,
}

struct Plan {
    entries: Vec<Entry>,
    /// What the root tmpfs allows what `--dir` and `--file` make on it (its top itself is
    /// readable only).
    root_made: Access,
}

impl Plan {
    /// The rights of the mount `path` is on.
    fn mount_of(&self, path: &str) -> Access {
        self.entries
            .iter()
            .filter(|e| e.mount && at_or_below(path, &e.path))
            .max_by_key(|e| e.path.len())
            .map_or(self.root_made, |e| e.access)
    }

    /// A new mount at `path`: it hides whatever was there and below.
    fn mount(&mut self, path: String, access: Access) {
        self.entries.retain(|e| !at_or_below(&e.path, &path));
        self.entries.push(Entry {
            path,
            access,
            mount: true,
        });
    }

    /// Something made at `path` on the mount below it. Its own rule even where a rule above
    /// grants as much: a symbolic link on the way may have put it somewhere else, and the rule
    /// is opened by the same path.
    fn made(&mut self, path: String) {
        if self.entries.iter().any(|e| e.path == path) {
            return;
        }
        let access = self.mount_of(&path);
        self.entries.push(Entry {
            path,
            access,
            mount: false,
        });
    }

    fn remount_ro(&mut self, path: String) {
        if path == "/" {
            self.root_made = self.root_made.without_write();
        }
        let below = self.mount_of(&path);
        for e in &mut self.entries {
            if at_or_below(&e.path, &path) {
                e.access = e.access.without_write();
            }
        }
        if !self.entries.iter().any(|e| e.path == path) {
            self.entries.push(Entry {
                path,
                access: below.without_write(),
                mount: true,
            });
        }
    }
}

fn bind_access(kind: BindKind) -> Access {
    match kind {
        BindKind::ReadOnly => Access::RX,
        BindKind::ReadWrite | BindKind::Dev => Access::RWX,
    }
}

/// The ruleset that mirrors the view `ops` build (the operations that were carried out: an
/// optional bind whose source was missing is left out by the caller).
pub fn plan<'a>(ops: impl IntoIterator<Item = &'a MountOp>) -> Ruleset {
    // The root tmpfs: not a mount in the sense of `mount_of` (what is made on it gets
    // `root_made`), until something is mounted over `/`.
    let mut p = Plan {
        entries: vec![Entry {
            path: "/".into(),
            access: Access::R,
            mount: false,
        }],
        root_made: Access::RWX,
    };
    for op in ops {
        let at = normalize(op.target());
        match op {
            MountOp::Bind { kind, .. } => p.mount(at, bind_access(*kind)),
            MountOp::Tmpfs { .. } => p.mount(at, Access::RWX),
            MountOp::Proc { .. } | MountOp::Dev { .. } | MountOp::Mqueue { .. } => {
                p.mount(at, Access::RW)
            }
            MountOp::Overlay { kind, .. } => p.mount(
                at,
                match kind {
                    OverlayKind::ReadOnly => Access::RX,
                    OverlayKind::Tmp | OverlayKind::ReadWrite { .. } => Access::RWX,
                },
            ),
            MountOp::BindData { read_only, .. } => {
                p.mount(at, if *read_only { Access::RX } else { Access::RWX })
            }
            MountOp::Dir { .. } | MountOp::File { .. } => p.made(at),
            MountOp::RemountRo { .. } => p.remount_ro(at),
            MountOp::Symlink { .. } | MountOp::Chmod { .. } => {}
        }
    }
    let mut entries = p.entries;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut notes = Vec::new();
    for e in &entries {
        let above = entries
            .iter()
            .filter(|a| a.path != e.path && at_or_below(&e.path, &a.path));
        for a in above {
            if a.access.write && !e.access.write {
                notes.push(format!(
                    "{} is read-only in the view but below {}, which is writable: rules add up \
                     down the tree, so only the read-only mount keeps it read-only",
                    e.path, a.path
                ));
            }
            if a.access.exec && !e.access.exec {
                notes.push(format!(
                    "{} is noexec in the view but below {}, where executing is allowed: only \
                     the noexec mount keeps it from executing",
                    e.path, a.path
                ));
            }
        }
    }
    Ruleset {
        rules: entries
            .into_iter()
            .map(|e| Rule {
                path: e.path,
                access: e.access,
            })
            .collect(),
        notes,
    }
}

/// Whether the payload gets the ruleset, decided from the request, the policy and the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Apply it (the kernel's ABI is at least [`MIN_ABI`]).
    Apply { abi: u32 },
    /// Run without it, for this reason (said with `--verbose`).
    Skip(String),
    /// Refuse the request, for this reason.
    Refuse(String),
}

/// The policy key that makes Landlock mandatory.
pub const POLICY_KEY: &str = "require.landlock";

/// Decide for a request asking `mode`, a policy that `required` Landlock or not, a kernel with
/// Landlock ABI `abi` (0: none, or disabled), a payload that keeps `caps` and may or may not
/// create user namespaces.
pub fn decide(
    mode: LandlockMode,
    required: bool,
    abi: u32,
    caps: crate::CapSet,
    allow_userns: bool,
) -> Decision {
    let kernel = if abi == 0 {
        "this kernel has no Landlock (or it is not enabled)".to_string()
    } else {
        format!(
            "this kernel has Landlock ABI {abi}, which cannot allow renames between \
             directories (ABI {MIN_ABI}, Linux 5.19, can)"
        )
    };
    match mode {
        LandlockMode::Off if required => Decision::Refuse(format!(
            "the nsjail policy requires Landlock ({POLICY_KEY}): --landlock off is refused"
        )),
        LandlockMode::Off => Decision::Skip("off (--landlock off)".into()),
        _ if abi < MIN_ABI && required => Decision::Refuse(format!(
            "the nsjail policy requires Landlock ({POLICY_KEY}), and {kernel}"
        )),
        LandlockMode::On if abi < MIN_ABI => Decision::Refuse(format!("--landlock on: {kernel}")),
        LandlockMode::Auto if abi < MIN_ABI => Decision::Skip(format!("off: {kernel}")),
        LandlockMode::Auto if !required && caps.contains(CAP_SYS_ADMIN) => Decision::Skip(
            "off: the payload keeps CAP_SYS_ADMIN, and a Landlock domain may not mount \
             (--landlock on applies it anyway)"
                .into(),
        ),
        LandlockMode::Auto if !required && allow_userns => Decision::Skip(
            "off: --allow-userns, and a Landlock domain may not mount, not even in a nested \
             user namespace (--landlock on applies it anyway)"
                .into(),
        ),
        _ => Decision::Apply { abi },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CapSet;

    fn rules(ops: &[MountOp]) -> Vec<(String, String)> {
        plan(ops)
            .rules
            .into_iter()
            .map(|r| (r.path, r.access.letters()))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(p, a)| (p.to_string(), a.to_string()))
            .collect()
    }

    fn bind(src: &str, dst: &str, kind: BindKind) -> MountOp {
        MountOp::Bind {
            src: src.into(),
            dst: dst.into(),
            kind,
            optional: false,
        }
    }

    fn tmpfs(dst: &str) -> MountOp {
        MountOp::Tmpfs {
            dst: dst.into(),
            size: None,
            perms: None,
        }
    }

    /// The default view as the CLI builds it, from a project directory.
    fn default_view() -> Vec<MountOp> {
        vec![
            bind("/usr", "/usr", BindKind::ReadOnly),
            bind("/etc", "/etc", BindKind::ReadOnly),
            MountOp::Symlink {
                target: "usr/bin".into(),
                link: "/bin".into(),
            },
            MountOp::Proc {
                dst: "/proc".into(),
            },
            MountOp::Dev { dst: "/dev".into() },
            tmpfs("/tmp"),
            tmpfs("/var/tmp"),
            tmpfs("/run"),
            MountOp::Dir {
                dst: "/home/u".into(),
                perms: Some(0o700),
            },
            bind("/home/u/proj", "/home/u/proj", BindKind::ReadWrite),
        ]
    }

    #[test]
    fn the_default_view_is_mirrored_and_the_top_of_root_is_read_only() {
        let r = plan(&default_view());
        assert_eq!(
            r.rules
                .iter()
                .map(|r| (r.path.clone(), r.access.letters()))
                .collect::<Vec<_>>(),
            pairs(&[
                ("/", "r--"),
                ("/dev", "rw-"),
                ("/etc", "r-x"),
                ("/home/u", "rwx"),
                ("/home/u/proj", "rwx"),
                ("/proc", "rw-"),
                ("/run", "rwx"),
                ("/tmp", "rwx"),
                ("/usr", "r-x"),
                ("/var/tmp", "rwx"),
            ])
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn a_later_mount_replaces_the_rules_at_and_below_its_place() {
        let ops = [
            bind("/a", "/x", BindKind::ReadWrite),
            tmpfs("/x/y"),
            bind("/b", "/x", BindKind::ReadOnly),
            tmpfs("/xy"),
        ];
        assert_eq!(
            rules(&ops),
            pairs(&[("/", "r--"), ("/x", "r-x"), ("/xy", "rwx")])
        );
        // A mount over the root replaces everything.
        let ops = [tmpfs("/t"), bind("/", "/", BindKind::ReadOnly)];
        assert_eq!(rules(&ops), pairs(&[("/", "r-x")]));
    }

    #[test]
    fn noexec_mounts_get_no_execute_and_overlays_and_data_follow_their_kind() {
        let ops = [
            MountOp::Mqueue {
                dst: "/dev/mqueue".into(),
            },
            MountOp::Overlay {
                srcs: vec!["/l".into()],
                dst: "/o".into(),
                kind: OverlayKind::ReadOnly,
            },
            MountOp::Overlay {
                srcs: vec!["/l".into()],
                dst: "/t".into(),
                kind: OverlayKind::Tmp,
            },
            MountOp::BindData {
                fd: 0,
                dst: "/etc/conf".into(),
                read_only: true,
                perms: None,
            },
            MountOp::BindData {
                fd: 1,
                dst: "/etc/state".into(),
                read_only: false,
                perms: None,
            },
        ];
        assert_eq!(
            rules(&ops),
            pairs(&[
                ("/", "r--"),
                ("/dev/mqueue", "rw-"),
                ("/etc/conf", "r-x"),
                ("/etc/state", "rwx"),
                ("/o", "r-x"),
                ("/t", "rwx"),
            ])
        );
    }

    #[test]
    fn dir_and_file_get_the_rights_of_the_mount_they_are_on() {
        let ops = [
            MountOp::Dir {
                dst: "/work/".into(),
                perms: None,
            },
            bind("/usr", "/usr", BindKind::ReadOnly),
            // In /usr: what /usr allows.
            MountOp::Dir {
                dst: "/usr/share".into(),
                perms: None,
            },
            MountOp::File {
                fd: 0,
                dst: "/bin/tool".into(),
                perms: Some(0o755),
            },
            tmpfs("/tmp"),
            MountOp::Dir {
                dst: "/tmp/sub".into(),
                perms: None,
            },
            MountOp::Dir {
                dst: "//work/./a".into(),
                perms: None,
            },
        ];
        assert_eq!(
            rules(&ops),
            pairs(&[
                ("/", "r--"),
                ("/bin/tool", "rwx"),
                ("/tmp", "rwx"),
                ("/tmp/sub", "rwx"),
                ("/usr", "r-x"),
                ("/usr/share", "r-x"),
                ("/work", "rwx"),
                ("/work/a", "rwx"),
            ])
        );
    }

    #[test]
    fn remount_ro_takes_write_away_below_and_says_where_it_cannot() {
        let ops = [
            bind("/p", "/p", BindKind::ReadWrite),
            tmpfs("/p/cache"),
            MountOp::RemountRo { dst: "/p".into() },
            tmpfs("/q"),
            MountOp::RemountRo {
                dst: "/q/sub".into(),
            },
            MountOp::Proc {
                dst: "/q/proc".into(),
            },
        ];
        let r = plan(&ops);
        assert_eq!(
            r.rules
                .iter()
                .map(|r| (r.path.clone(), r.access.letters()))
                .collect::<Vec<_>>(),
            pairs(&[
                ("/", "r--"),
                ("/p", "r-x"),
                ("/p/cache", "r-x"),
                ("/q", "rwx"),
                ("/q/proc", "rw-"),
                ("/q/sub", "r-x"),
            ])
        );
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        assert!(r.notes[0].starts_with("/q/proc is noexec in the view but below /q"));
        assert!(r.notes[1].starts_with("/q/sub is read-only in the view but below /q"));
    }

    #[test]
    fn paths_are_normalized_and_prefixes_are_whole_components() {
        assert_eq!(normalize("//a/./b/"), "/a/b");
        assert_eq!(normalize("/"), "/");
        assert!(at_or_below("/a/b", "/a") && at_or_below("/a", "/a") && at_or_below("/a", "/"));
        assert!(!at_or_below("/ab", "/a") && !at_or_below("/a", "/a/b"));
    }

    #[test]
    fn the_decision_follows_mode_policy_kernel_and_payload() {
        use Decision::*;
        use LandlockMode::*;
        let none = CapSet::EMPTY;
        let admin = CapSet(1 << 21);
        assert_eq!(decide(Auto, false, 7, none, false), Apply { abi: 7 });
        assert_eq!(decide(On, false, 2, none, false), Apply { abi: 2 });
        assert!(matches!(decide(Off, false, 7, none, false), Skip(_)));
        // ABI 1 and no Landlock: auto runs without, on refuses.
        for abi in [0, 1] {
            assert!(matches!(decide(Auto, false, abi, none, false), Skip(_)));
            assert!(matches!(decide(On, false, abi, none, false), Refuse(_)));
        }
        // A payload that is to mount: auto leaves it out, on does not.
        assert!(
            matches!(decide(Auto, false, 7, admin, false), Skip(s) if s.contains("CAP_SYS_ADMIN"))
        );
        assert!(
            matches!(decide(Auto, false, 7, none, true), Skip(s) if s.contains("--allow-userns"))
        );
        assert_eq!(decide(On, false, 7, admin, true), Apply { abi: 7 });
        // The policy's requirement: off refused, missing kernel support refused, and neither
        // capabilities nor nested namespaces leave it out.
        assert!(
            matches!(decide(Off, true, 7, none, false), Refuse(s) if s.contains(POLICY_KEY) && s.contains("--landlock off"))
        );
        assert!(matches!(decide(Auto, true, 1, none, false), Refuse(s) if s.contains(POLICY_KEY)));
        assert!(matches!(decide(On, true, 0, none, false), Refuse(s) if s.contains(POLICY_KEY)));
        assert_eq!(decide(Auto, true, 7, admin, true), Apply { abi: 7 });
    }
}
