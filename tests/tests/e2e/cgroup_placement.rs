//! Where a sandbox's cgroup goes, and that nothing the caller made can host it.
//!
//! On cgroup v1 it goes below the helper's own cgroup (the caller's) in each hierarchy, in a
//! directory `nsjail` that only root may have made. On cgroup v2 it goes to the nearest cgroup
//! above the caller's that holds no processes and that no one but root can write (e.g. the
//! caller's `user-UID.slice`, or the helper service's own cgroup), so the limits an
//! administrator set there bound every sandbox (issue 10, item 5).

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{MetadataExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nsjail_tests::{Caller, Output, Running, root_or_skip, shell_words, unique};

/// The cgroup directories a `--verbose` run named.
fn cgroup_dirs(stderr: &str) -> Vec<PathBuf> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("nsjail: cgroup: /"))
        .filter_map(|r| {
            r.split_once(" (")
                .map(|(p, _)| PathBuf::from(format!("/{p}")))
        })
        .collect()
}

/// A v1 hierarchy with `controller`: (mount point, this process's cgroup there).
fn v1_hierarchy(controller: &str) -> Option<(PathBuf, String)> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let point = mounts.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let r: Vec<&str> = right.split(' ').collect();
        (r.first() == Some(&"cgroup") && r.get(2)?.split(',').any(|o| o == controller))
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let _ = it.next()?;
        let ctrls = it.next()?;
        let path = it.next()?;
        ctrls
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })?;
    Some((point, path))
}

/// A cgroup made for the test below this process's own in a v1 hierarchy and delegated to
/// `uid:gid` (the directory and its `cgroup.procs` and `tasks` are theirs), as an administrator
/// or a service manager delegates one. Removed when dropped.
struct Delegated {
    dir: PathBuf,
}

impl Delegated {
    fn new(mount: &Path, own: &str, uid: u32, gid: u32) -> Delegated {
        let dir = mount
            .join(own.trim_start_matches('/'))
            .join(format!("e2e-deleg-{}", unique()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        for p in [dir.clone(), dir.join("cgroup.procs"), dir.join("tasks")] {
            chown(&p, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        }
        Delegated { dir }
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Children first (the sandbox's, `nsjail`), then the delegated cgroup itself.
        let mut dirs = vec![self.dir.clone()];
        let mut i = 0;
        while i < dirs.len() {
            if let Ok(rd) = fs::read_dir(&dirs[i]) {
                dirs.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
            }
            i += 1;
        }
        for d in dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

/// `nsjail run ARGS` as `c`, from inside `cgroup` (the CLI writes itself into its
/// `cgroup.procs` before the exec, as the user), `--verbose` unless `plant`; with `plant`, the
/// user first makes `nsjail` in it.
fn run_in_cgroup(c: &Caller, cgroup: &Path, plant: bool, args: &[&str]) -> Output {
    let procs = CString::new(cgroup.join("cgroup.procs").to_str().unwrap()).unwrap();
    let planted = CString::new(cgroup.join("nsjail").to_str().unwrap()).unwrap();
    let mut all = if plant { vec![] } else { vec!["--verbose"] };
    all.extend_from_slice(args);
    let mut cmd = c.run_cmd(&all);
    // SAFETY: raw open/write/close/mkdir on C strings made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if plant && libc::mkdir(planted.as_ptr(), 0o755) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd == -1 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0".as_ptr() as *const libc::c_void, 1);
            libc::close(fd);
            if n != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let what = format!(
        "[{}] (in cgroup {}{}) nsjail run {}",
        c.name(),
        cgroup.display(),
        if plant {
            ", nsjail/ made by the user"
        } else {
            ""
        },
        shell_words(&all)
    );
    Running::spawn(&mut cmd, None, &what).wait()
}

#[test]
fn v1_an_nsjail_directory_the_caller_made_is_refused() {
    root_or_skip!();
    let Some((mount, own)) = v1_hierarchy("memory") else {
        println!(
            "v1_an_nsjail_directory_the_caller_made_is_refused: skipped: no cgroup v1 memory hierarchy"
        );
        return;
    };
    let c = Caller::setuid_user();
    let args = [
        "--cgroup-version",
        "1",
        "--memory-limit",
        "64M",
        "--",
        "/bin/true",
    ];

    // The control: from a cgroup delegated to the user, the helper makes `nsjail` itself (as
    // root) and the sandbox's cgroup below it.
    let deleg = Delegated::new(&mount, &own, c.uid, c.gid);
    let out = run_in_cgroup(&c, &deleg.dir, false, &args);
    out.expect_success();
    let nsjail = deleg.dir.join("nsjail");
    let dirs = cgroup_dirs(&out.stderr);
    assert!(
        dirs.iter().any(|d| d.parent() == Some(nsjail.as_path())),
        "the sandbox's memory cgroup is below {}: {dirs:?}\n{}",
        nsjail.display(),
        out.describe()
    );
    assert_eq!(
        fs::metadata(&nsjail).unwrap().uid(),
        0,
        "{}",
        nsjail.display()
    );
    drop(deleg);

    // The attack: the user makes `nsjail` first. Its files would be the user's, and so would
    // be the right to rename or remove what the helper puts in it.
    let deleg = Delegated::new(&mount, &own, c.uid, c.gid);
    let out = run_in_cgroup(&c, &deleg.dir, true, &args);
    let planted = deleg.dir.join("nsjail");
    out.expect_code(125)
        .expect_no_panic()
        .expect_one_error_line(&format!(
            "nsjail: {}: owned by uid {}, not root: refusing to put a sandbox's cgroup in it",
            planted.display(),
            c.uid
        ));
    let inside: Vec<_> = fs::read_dir(&planted)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    assert!(
        inside.is_empty(),
        "the helper made {inside:?} in the user's directory"
    );
}
