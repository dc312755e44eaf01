//! Where the cgroup filesystems are and where our sandboxes' cgroups go: `/proc/self/mountinfo`
//! for the mounts, `/proc/self/cgroup` for our own place in each hierarchy.

use std::path::{Path, PathBuf};

use super::PARENT_NAME;
use crate::error::{HelperError, Result};

/// One cgroup filesystem mount from `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub point: PathBuf,
    /// The cgroup this mount shows as its root (`/` unless bind-mounted or namespaced).
    pub root: String,
    pub v2: bool,
    /// v1: the controllers of this hierarchy (`memory`, `cpu`, `cpuacct`, …).
    pub controllers: Vec<String>,
}

/// Controllers of v1 that a sandbox may use.
const V1_CONTROLLERS: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "freezer"];

/// Where the sandbox cgroups of one hierarchy go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    /// The directory they are made in.
    pub dir: PathBuf,
    /// v2: the cgroups from just below `dir` down to our own (included). A sandbox moved up to
    /// `dir` leaves them, so their limits are carried over to it as ceilings.
    pub between: Vec<PathBuf>,
}

/// The one function that decides where a sandbox's cgroup goes, in one hierarchy. Always in the
/// subtree the caller was in, so whatever bounds the caller (a systemd slice, a service, a job
/// runner) bounds the sandbox too.
///
/// - **v1**: `nsjail` below our own cgroup (which is the caller's).
/// - **v2**: a cgroup with processes cannot hand controllers to children, and the caller's own
///   cgroup holds the caller. So: the nearest cgroup above ours that holds no processes and that
///   no one but root can write, it and everything above it (e.g. the caller's `user-UID.slice`,
///   or the helper service's own cgroup once the daemon has moved into a leaf); the root of the
///   hierarchy when there is none. Skipping what others can write keeps sandboxes out of a
///   subtree delegated to the caller (`user@UID.service`), where the caller could move their
///   processes out of the sandbox's cgroup.
pub fn parent_dir(mount: &Mount, own: Option<&str>) -> Parent {
    let mut p = mount.point.clone();
    let Some(own) = own else {
        if !mount.v2 {
            p.push(PARENT_NAME);
        }
        return Parent {
            dir: p,
            between: Vec::new(),
        };
    };
    // Our cgroup as /proc/self/cgroup shows it, relative to what the mount shows as root.
    let rel = own
        .strip_prefix(mount.root.trim_end_matches('/'))
        .unwrap_or(own);
    if !mount.v2 {
        p.push(rel.trim_start_matches('/'));
        p.push(PARENT_NAME);
        return Parent {
            dir: p,
            between: Vec::new(),
        };
    }
    let levels = v2_levels(&mount.point, rel);
    let i = choose_v2(&levels);
    Parent {
        dir: levels[i].path.clone(),
        between: levels[i + 1..].iter().map(|l| l.path.clone()).collect(),
    }
}

/// One cgroup on the way from the v2 root down to ours, as [`choose_v2`] weighs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    pub path: PathBuf,
    /// The directory and its `cgroup.procs` are root's and writable by no one else.
    pub root_owned: bool,
    /// Its `cgroup.procs` lists a process (or could not be read).
    pub has_procs: bool,
}

/// The levels from the mount's root (first) to our own cgroup `rel` (last).
fn v2_levels(point: &Path, rel: &str) -> Vec<Level> {
    let mut path = point.to_path_buf();
    let mut out = vec![level(&path)];
    for part in rel.split('/').filter(|c| !c.is_empty()) {
        path.push(part);
        out.push(level(&path));
    }
    out
}

fn level(path: &Path) -> Level {
    use std::os::unix::fs::MetadataExt;
    let root_made =
        |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| only_root_writes(m.uid(), m.mode()));
    let procs = path.join("cgroup.procs");
    Level {
        path: path.to_path_buf(),
        root_owned: root_made(path) && root_made(&procs),
        has_procs: std::fs::read_to_string(&procs).map_or(true, |s| !s.trim().is_empty()),
    }
}

/// A file of owner `uid` and mode `mode` (as `stat` gives them) can be written by root only: root
/// owns it and neither its group nor others may write it.
fn only_root_writes(uid: u32, mode: u32) -> bool {
    uid == 0 && mode & 0o022 == 0
}

/// Which of `levels` (root first, ours last) hosts the sandboxes: the deepest one above ours
/// that holds no processes, with it and every level above it root's; the root otherwise.
pub fn choose_v2(levels: &[Level]) -> usize {
    let mut best = 0;
    for (i, l) in levels
        .iter()
        .enumerate()
        .take(levels.len().saturating_sub(1))
    {
        if !l.root_owned {
            break;
        }
        if i > 0 && !l.has_procs {
            best = i;
        }
    }
    best
}

/// The controllers a v2 cgroup offers to its children (its `cgroup.controllers`).
pub fn available_v2(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Our own cgroup in each hierarchy, from `/proc/self/cgroup`: (controllers, path); v2's line
/// has no controllers.
pub fn read_own_cgroups() -> Vec<(Vec<String>, String)> {
    std::fs::read_to_string("/proc/self/cgroup")
        .map(|s| parse_own_cgroups(&s))
        .unwrap_or_default()
}

fn parse_own_cgroups(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let ctrls = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some((ctrls, path.to_string()))
        })
        .collect()
}

pub fn read_mounts() -> Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| HelperError::Sys {
        call: "read /proc/self/mountinfo".into(),
        source: super::dir::io_errno(&e),
    })?;
    Ok(parse_mounts(&text))
}

/// The cgroup mounts of a mountinfo text, first mount of each hierarchy only.
fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype), Some(opts)) =
            (l.get(3), l.get(4), r.first(), r.get(2))
        else {
            continue;
        };
        let v2 = match *fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers: Vec<String> = if v2 {
            Vec::new()
        } else {
            opts.split(',')
                .filter(|o| V1_CONTROLLERS.contains(o))
                .map(str::to_string)
                .collect()
        };
        if !v2 && controllers.is_empty() {
            continue; // name=systemd and friends
        }
        let m = Mount {
            point: PathBuf::from(unescape(point)),
            root: unescape(root),
            v2,
            controllers,
        };
        let dup = out
            .iter()
            .any(|o| o.v2 == m.v2 && (m.v2 || o.controllers == m.controllers));
        if !dup {
            out.push(m);
        }
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 31 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
35 31 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
36 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
37 31 0:28 /sub /mnt/mem\\040x rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn mounts_are_found_once_each() {
        let m = parse_mounts(MOUNTINFO);
        let points: Vec<_> = m.iter().map(|m| m.point.display().to_string()).collect();
        assert_eq!(
            points,
            [
                "/sys/fs/cgroup/cpu",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/unified",
                "/sys/fs/cgroup/cpu,cpuacct"
            ]
        );
        assert!(m[2].v2);
        assert_eq!(m[3].controllers, ["cpu", "cpuacct"]);
        assert_eq!(unescape("/mnt/mem\\040x"), "/mnt/mem x");
        assert_eq!(unescape("a\\"), "a\\");
    }

    #[test]
    fn mountinfo_escapes_are_three_octal_digits() {
        // Every digit weighs: backslash is \134, tab \011, newline \012.
        assert_eq!(unescape("a\\134b\\011c\\012"), "a\\b\tc\n");
        // Fewer than three digits left, or a non-octal one: the bytes as they are.
        assert_eq!(unescape("x\\04"), "x\\04");
        assert_eq!(unescape("x\\048"), "x\\048");
    }

    #[test]
    fn parents() {
        let v1 = Mount {
            point: "/sys/fs/cgroup/memory".into(),
            root: "/".into(),
            v2: false,
            controllers: vec!["memory".into()],
        };
        assert_eq!(
            parent_dir(&v1, Some("/process_api/abc")).dir,
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/nsjail")
        );
        assert_eq!(
            parent_dir(&v1, Some("/")).dir,
            PathBuf::from("/sys/fs/cgroup/memory/nsjail")
        );
        let bound = Mount {
            root: "/sub".into(),
            ..v1.clone()
        };
        assert_eq!(
            parent_dir(&bound, Some("/sub/x")).dir,
            PathBuf::from("/sys/fs/cgroup/memory/x/nsjail")
        );
    }

    fn lv(path: &str, root_owned: bool, has_procs: bool) -> Level {
        Level {
            path: path.into(),
            root_owned,
            has_procs,
        }
    }

    #[test]
    fn v2_parents() {
        // A login session: the slice above the session scope.
        let session = [
            lv("/", true, true),
            lv("/user.slice", true, false),
            lv("/user.slice/user-1000.slice", true, false),
            lv("/user.slice/user-1000.slice/session-3.scope", true, true),
        ];
        assert_eq!(choose_v2(&session), 2);
        // A terminal of the desktop, in the user's own (delegated) service manager: above it.
        let desktop = [
            lv("/", true, true),
            lv("/user.slice", true, false),
            lv("/user.slice/user-1000.slice", true, false),
            lv(
                "/user.slice/user-1000.slice/user@1000.service",
                false,
                false,
            ),
            lv(
                "/user.slice/user-1000.slice/user@1000.service/app.slice",
                false,
                false,
            ),
            lv(
                "/user.slice/user-1000.slice/user@1000.service/app.slice/t.scope",
                false,
                true,
            ),
        ];
        assert_eq!(choose_v2(&desktop), 2);
        // A service calling the setuid helper: its slice. The daemon in its leaf: its service.
        let service = [
            lv("/", true, true),
            lv("/system.slice", true, false),
            lv("/system.slice/ci.service", true, true),
        ];
        assert_eq!(choose_v2(&service), 1);
        let daemon = [
            lv("/", true, true),
            lv("/system.slice", true, false),
            lv("/system.slice/nsjail-helper.service", true, false),
            lv("/system.slice/nsjail-helper.service/daemon", true, true),
        ];
        assert_eq!(choose_v2(&daemon), 2);
        // In the root, or nothing better above: the root.
        assert_eq!(choose_v2(&[lv("/", true, true)]), 0);
        assert_eq!(choose_v2(&[lv("/", true, true), lv("/a", true, true)]), 0);
        // A cgroup above ours that holds processes cannot take children: the one above it.
        let job = [
            lv("/", true, true),
            lv("/system.slice", true, false),
            lv("/system.slice/runner.service", true, true),
            lv("/system.slice/runner.service/job-7", true, true),
        ];
        assert_eq!(choose_v2(&job), 1);
        // Our own cgroup is never chosen, even without processes listed.
        assert_eq!(choose_v2(&[lv("/", true, true), lv("/a", true, false)]), 0);
    }

    #[test]
    fn parents_when_we_have_no_cgroup_in_the_hierarchy() {
        // /proc/self/cgroup has no line for it: v1 under the mount's root, v2 the root itself.
        let v1 = Mount {
            point: "/sys/fs/cgroup/pids".into(),
            root: "/".into(),
            v2: false,
            controllers: vec!["pids".into()],
        };
        let v2 = Mount {
            point: "/sys/fs/cgroup".into(),
            root: "/".into(),
            v2: true,
            controllers: vec![],
        };
        assert_eq!(
            parent_dir(&v1, None),
            Parent {
                dir: "/sys/fs/cgroup/pids/nsjail".into(),
                between: vec![],
            }
        );
        assert_eq!(
            parent_dir(&v2, None),
            Parent {
                dir: "/sys/fs/cgroup".into(),
                between: vec![],
            }
        );
    }

    /// A fresh, empty directory of this test's own.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nsjail-hier-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn v2_parent_when_no_level_is_roots_is_the_mount_with_every_level_between() {
        // None of these directories has a cgroup.procs, so none is root's cgroup: the sandboxes
        // go in the mount's root, and every cgroup from below it down to ours is carried over.
        let point = scratch("v2-unowned");
        std::fs::create_dir_all(point.join("user.slice/session-3.scope")).unwrap();
        let mount = Mount {
            point: point.clone(),
            root: "/".into(),
            v2: true,
            controllers: vec![],
        };
        assert_eq!(
            parent_dir(&mount, Some("/user.slice/session-3.scope")),
            Parent {
                dir: point.clone(),
                between: vec![
                    point.join("user.slice"),
                    point.join("user.slice/session-3.scope"),
                ],
            }
        );
        // A mount that shows a cgroup below the hierarchy's root as its own: levels start there.
        let nested = Mount {
            root: "/user.slice".into(),
            ..mount.clone()
        };
        assert_eq!(
            parent_dir(&nested, Some("/user.slice/session-3.scope")).between,
            [point.join("session-3.scope")]
        );
        std::fs::remove_dir_all(&point).unwrap();
    }

    #[test]
    fn only_root_may_write_a_cgroup_we_host_sandboxes_in() {
        // A system slice and its cgroup.procs, as systemd makes them.
        assert!(only_root_writes(0, 0o040755));
        assert!(only_root_writes(0, 0o100644));
        assert!(only_root_writes(0, 0o040555));
        // Delegated to a user (user@1000.service): theirs.
        assert!(!only_root_writes(1000, 0o040755));
        assert!(!only_root_writes(1000, 0o100644));
        // Root's, but its group or everyone may write it.
        assert!(!only_root_writes(0, 0o040775));
        assert!(!only_root_writes(0, 0o100664));
        assert!(!only_root_writes(0, 0o100646));
        assert!(!only_root_writes(0, 0o041777));
    }

    #[test]
    fn a_directory_without_cgroup_procs_is_no_cgroup_of_roots() {
        // `/` is root's and writable by no one else, but it is no cgroup.
        let l = level(Path::new("/"));
        assert!(!l.root_owned);
        assert!(
            l.has_procs,
            "an unreadable cgroup.procs counts as holding processes"
        );
    }

    #[test]
    fn a_cgroup_holds_processes_when_its_cgroup_procs_lists_one() {
        let d = scratch("procs");
        std::fs::write(d.join("cgroup.procs"), "").unwrap();
        assert!(!level(&d).has_procs);
        std::fs::write(d.join("cgroup.procs"), "\n").unwrap();
        assert!(!level(&d).has_procs);
        std::fs::write(d.join("cgroup.procs"), "4242\n4243\n").unwrap();
        assert!(level(&d).has_procs);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn own_cgroups() {
        let own = parse_own_cgroups("4:memory:/a/b\n2:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(own[0], (vec!["memory".to_string()], "/a/b".to_string()));
        assert_eq!(own[1].0, ["cpu", "cpuacct"]);
        assert_eq!(own[2], (vec![], "/user.slice".to_string()));
    }
}
