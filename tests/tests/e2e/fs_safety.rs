//! The filesystem view cannot be turned against the host: sources are opened as the caller, so an
//! ordinary user binds nothing they could not read (firejail CVE-2017-5180); destinations are
//! resolved inside the new root, so `..` and symlinks — even ones swapped in while the sandbox is
//! being set up — never reach the host (Google nsjail #292/#325, bubblewrap CVE-2026-87766); a
//! setuid binary gains nothing; and the staging root and the old root are never visible inside.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
use nsjail_tests::{Caller, Output, for_each_caller, install_file, is_root, scratch_dir, unique};

use crate::fsutil::{
    How, give, host_mounts, host_mounts_lock, host_submounts, mount_diff, parse_mountinfo,
    pipe_with, run, run_plain, s, sh_argv, system_args, tree, usr_args,
};

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Sources are opened as the caller

#[test]
fn an_ordinary_user_cannot_bind_what_they_cannot_read() {
    if !nsjail_tests::require_root("an_ordinary_user_cannot_bind_what_they_cannot_read") {
        return;
    }
    // Our own root-only places, in case the host's /root is not 0700.
    let private = scratch_dir();
    fs::set_permissions(private.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let secret = private.path().join("secret");
    fs::write(&secret, "root-only secret\n").unwrap();
    let shadow_like = scratch_dir();
    let shadow = shadow_like.path().join("shadow");
    fs::write(&shadow, "root-only file\n").unwrap();
    fs::set_permissions(&shadow, fs::Permissions::from_mode(0o600)).unwrap();

    let user = Caller::setuid_user();
    let root = Caller::root();
    let mut cases: Vec<(&str, String)> = vec![
        ("--ro-bind", s(private.path())),
        ("--bind", s(private.path())),
        ("--dev-bind", s(private.path())),
        ("--ro-bind", s(&shadow)),
        ("--bind", s(&shadow)),
        ("--ro-bind-try", s(&shadow)),
    ];
    for host in ["/root", "/etc/shadow"] {
        let unreadable = fs::metadata(host).is_ok_and(|m| m.mode() & 0o004 == 0);
        if unreadable {
            cases.push(("--ro-bind", host.to_string()));
        }
    }
    for (opt, src) in &cases {
        let mut opts = system_args();
        opts.extend([opt.to_string(), src.clone(), "/x".into()]);
        let out = run_plain(&user, &sh_argv(&opts, "cat /x /x/secret 2>&1; echo ran"));
        out.expect_code(125)
            .expect_no_panic()
            .expect_one_error_line("nsjail:");
        assert!(
            out.stderr.contains(&format!("{opt} {src}"))
                && out.stderr.contains("Permission denied")
                && !out.stdout.contains("ran"),
            "the refusal must name {opt} {src} and say why: {}",
            out.describe()
        );
        // The control: root may.
        let out = run_plain(&root, &sh_argv(&opts, "test -r /x && echo readable"));
        out.expect_success();
        assert_eq!(out.out(), "readable", "{}", out.describe());
    }

    // Overlay layers are opened as the caller too: set-up may succeed, reading may not.
    let overlay = |layer: &Path| {
        let mut opts = system_args();
        opts.extend(strs(&["--overlay-src", &s(layer), "--tmp-overlay", "/o"]));
        opts
    };
    let out = run_plain(
        &user,
        &sh_argv(&overlay(private.path()), "cat /o/secret; ls /o; echo ran"),
    );
    out.expect_no_panic();
    eprintln!("overlay on an unreadable layer: exit {:?}", out.code());
    assert!(
        !out.stdout.contains("root-only") && !out.stdout.contains("secret"),
        "an unreadable overlay layer was read: {}",
        out.describe()
    );
    // ... and for the kernel's reason: refused at set-up, or every read inside denied.
    match out.code() {
        Some(125) => {
            out.expect_one_error_line("nsjail:");
            assert!(
                out.stderr.contains("Permission denied"),
                "{}",
                out.describe()
            );
        }
        _ => assert!(
            out.code() == Some(0)
                && out.out().ends_with("ran")
                && out.stderr.matches("Permission denied").count() == 2,
            "{}",
            out.describe()
        ),
    }
    // The control: the same overlay on a layer the user can read shows its file.
    let readable = user.scratch();
    fs::write(readable.path().join("visible"), "layer-content\n").unwrap();
    let out = run_plain(&user, &sh_argv(&overlay(readable.path()), "cat /o/visible"));
    out.expect_success();
    assert_eq!(out.out(), "layer-content", "{}", out.describe());

    // Nor can the payload read them through the default view.
    let out = run_plain(
        &user,
        &sh_argv(&["--default-view".into()], "cat /etc/shadow; echo rc=$?"),
    );
    out.expect_success();
    assert!(
        out.out().ends_with("rc=1") && out.stderr.contains("Permission denied"),
        "{}",
        out.describe()
    );
}

/// While the sandboxes are set up, a path component the caller controls keeps flipping between
/// a directory of theirs and a symlink to a root-only file: the kernel checks every open as the
/// caller, so the secret never comes out.
#[test]
fn a_source_swapped_for_a_symlink_during_set_up_reads_nothing_private() {
    if !nsjail_tests::require_root("a_source_swapped_for_a_symlink_during_set_up") {
        return;
    }
    let user = Caller::setuid_user();
    let private = scratch_dir();
    fs::set_permissions(private.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let marker = format!("SECRET-{}", unique());
    fs::write(private.path().join("secret"), format!("{marker}\n")).unwrap();

    let project = user.scratch();
    let sw = project.path().join("sw");
    let alt = project.path().join("sw.alt");
    fs::create_dir(&sw).unwrap();
    fs::write(sw.join("secret"), "decoy\n").unwrap();
    give(&user, &sw);
    symlink(private.path(), &alt).unwrap();

    let swapper = Swapper::start(&sw, &alt);
    let (mut decoys, mut denied) = (0, 0);
    for i in 0..40 {
        let (src, read) = if i % 2 == 0 {
            (s(&sw.join("secret")), "cat /x")
        } else {
            (s(&sw), "cat /x/secret")
        };
        let mut opts = system_args();
        opts.extend(["--ro-bind".into(), src, "/x".into()]);
        let out = run_plain(&user, &sh_argv(&opts, read));
        assert!(
            !out.stdout.contains(&marker) && !out.stderr.contains(&marker),
            "a root-only file was read through a swapped symlink: {}",
            out.describe()
        );
        // Each run saw one side of the swap: the caller's own directory (the decoy is read), or
        // the symlink to the private directory, which the kernel refuses the caller (EACCES,
        // at set-up or at the read inside).
        if out.code() == Some(0) && out.out() == "decoy" {
            decoys += 1;
        } else {
            out.expect_no_panic();
            assert!(
                out.stderr.contains("Permission denied"),
                "neither the decoy nor a refusal: {}",
                out.describe()
            );
            denied += 1;
        }
    }
    let swaps = swapper.stop();
    eprintln!("source race: {swaps} swaps, {decoys} decoys read, {denied} refused");
    // The race was run: both sides of the swap were met, more than once.
    assert!(
        swaps > 0 && decoys >= 3 && denied >= 3,
        "the race never happened: {swaps} swaps, {decoys} decoys read, {denied} refused"
    );
}

// ---------------------------------------------------------------------------------------------
// Destinations stay inside the new root

#[test]
fn dot_dot_in_a_destination_is_refused_and_creates_nothing() {
    for_each_caller(|c| {
        let cwd = c.scratch();
        let name = format!("nsjail-e2e-escape-{}", unique());
        for dst in [
            format!("/../../{name}"),
            format!("/tmp/../../{name}"),
            format!("/a/../../../{name}"),
        ] {
            let out = run(
                c,
                &sh_argv(&strs(&["--default-view", "--dir", &dst]), "echo ran"),
                &How {
                    cwd: Some(cwd.path()),
                    ..How::default()
                },
            );
            out.expect_code(125)
                .expect_no_panic()
                .expect_one_error_line("nsjail:");
            assert!(
                out.stderr.contains("--dir") && out.stderr.contains(&dst),
                "{}",
                out.describe()
            );
            for host in [
                PathBuf::from("/").join(&name),
                PathBuf::from("/tmp").join(&name),
                cwd.path().join(&name),
            ] {
                assert!(
                    !host.exists(),
                    "{} was created on the host: {}",
                    host.display(),
                    out.describe()
                );
            }
            assert!(
                tree(cwd.path()).is_empty(),
                "something appeared in the CLI's directory"
            );
        }
    });
}

/// A project folder with symlinks out of it: `abs -> /etc`, `rel -> ../../../../../../etc`
/// and `tgt -> T` (another host directory of ours, empty).
struct Project {
    dir: tempfile::TempDir,
    target: tempfile::TempDir,
}

impl Project {
    fn new(c: &Caller) -> Project {
        let dir = c.scratch();
        let target = c.scratch();
        symlink("/etc", dir.path().join("abs")).unwrap();
        symlink("../../../../../../../../etc", dir.path().join("rel")).unwrap();
        symlink(target.path(), dir.path().join("tgt")).unwrap();
        Project { dir, target }
    }
}

/// The operations that create something at `base/…`; `tag` makes the names unique.
fn creating_ops(base: &str, tag: &str) -> Vec<Vec<String>> {
    vec![
        strs(&["--dir", &format!("{base}/{tag}-dir")]),
        strs(&["--tmpfs", &format!("{base}/{tag}-tmpfs")]),
        strs(&["--file", "3", &format!("{base}/{tag}-file")]),
        strs(&["--ro-bind-data", "4", &format!("{base}/{tag}-data")]),
        strs(&["--symlink", "/x", &format!("{base}/{tag}-symlink")]),
        strs(&["--bind", "/usr/share", &format!("{base}/{tag}-bind")]),
        strs(&["--tmpfs", base]),
        strs(&["--perms", "700", "--dir", base]),
        strs(&["--chmod", "700", base]),
    ]
}

#[test]
fn a_symlink_in_a_bound_folder_used_as_a_destination_leaves_the_host_untouched() {
    for_each_caller(|c| {
        let project = Project::new(c);
        let p = s(project.dir.path());
        let t = s(project.target.path());
        let tag = format!("nsjail-e2e-{}", unique());
        let etc_before: BTreeSet<String> = fs::read_dir("/etc")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let etc_mode = fs::metadata("/etc").unwrap().mode();
        let t_mode = fs::metadata(&t).unwrap().mode();
        let _lock = host_mounts_lock();
        let mounts_before = host_mounts();
        let mut inside_done = 0;
        for link in ["abs", "rel", "tgt"] {
            let base = format!("/p/{link}");
            for op in creating_ops(&base, &tag) {
                // Two views: the default one (where /etc is the host's, read-only), and a small
                // one where the link's target exists only inside, in the new root's tmpfs.
                for default in [true, false] {
                    let mut opts = if default {
                        strs(&["--default-view"])
                    } else {
                        let mut v = system_args();
                        v.extend(strs(&["--dir", "/etc", "--dir", &t]));
                        v
                    };
                    opts.extend(strs(&["--bind", &p, "/p"]));
                    opts.extend(op.iter().cloned());
                    let (f3, f4) = (pipe_with(b"three\n"), pipe_with(b"four\n"));
                    let how = How {
                        fds: vec![(&f3, 3), (&f4, 4)],
                        ..How::default()
                    };
                    let script = format!("ls -A {base}/ | grep -c {tag}; true");
                    let out = run(c, &sh_argv(&opts, &script), &how);
                    out.expect_no_panic();
                    if out.code() == Some(0) {
                        inside_done += 1;
                    } else {
                        out.expect_code(125).expect_one_error_line("nsjail:");
                    }
                    let what = format!("[{}] {op:?} via {link}: {}", c.name(), out.describe());
                    let leaked: Vec<String> = fs::read_dir("/etc")
                        .unwrap()
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        // Other tests running meanwhile may create /etc/nsjail.
                        .filter(|n| !etc_before.contains(n) && n != "nsjail")
                        .collect();
                    if !leaked.is_empty() {
                        for n in &leaked {
                            if n.contains(&tag) {
                                let _ = fs::remove_dir_all(Path::new("/etc").join(n));
                                let _ = fs::remove_file(Path::new("/etc").join(n));
                            }
                        }
                        panic!("new entries in the host's /etc: {leaked:?}: {what}");
                    }
                    let now = fs::metadata("/etc").unwrap().mode();
                    if now != etc_mode {
                        fs::set_permissions("/etc", fs::Permissions::from_mode(etc_mode)).unwrap();
                        panic!("the host's /etc mode changed from {etc_mode:o} to {now:o}: {what}");
                    }
                    assert_eq!(fs::metadata(&t).unwrap().mode(), t_mode, "{what}");
                    assert!(
                        tree(project.target.path()).is_empty(),
                        "the symlink's target on the host got {:?}: {what}",
                        tree(project.target.path())
                    );
                    let (added, removed) = mount_diff(&mounts_before, &host_mounts());
                    assert!(
                        added.is_empty() && removed.is_empty(),
                        "the host's mount table changed: +{added:?} -{removed:?}: {what}"
                    );
                }
            }
        }
        // The small view lets most operations succeed inside: the check above is not vacuous.
        assert!(
            inside_done >= 10,
            "[{}] only {inside_done} sandboxes got through set-up",
            c.name()
        );
    });
}

/// Flips two names with `renameat2(RENAME_EXCHANGE)` in a loop until stopped. Bursts of 256
/// swaps alternate with pauses of 0 to 1.4 ms, so that a set-up meets every pace: a name that
/// flips under every step, and one that holds still through some of them.
struct Swapper {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    thread: thread::JoinHandle<()>,
}

impl Swapper {
    fn start(a: &Path, b: &Path) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (a, b) = (a.to_path_buf(), b.to_path_buf());
        let (st, cnt) = (stop.clone(), count.clone());
        let thread = thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                renameat2(AT_FDCWD, &a, AT_FDCWD, &b, RenameFlags::RENAME_EXCHANGE)
                    .expect("renameat2(RENAME_EXCHANGE)");
                let n = cnt.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 256 == 0 {
                    thread::sleep(std::time::Duration::from_micros((n / 256 % 8) * 200));
                }
            }
        });
        Swapper {
            stop,
            count,
            thread,
        }
    }

    /// Stop, and say how many swaps were made.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("swapper thread");
        self.count.load(Ordering::Relaxed)
    }
}

#[test]
fn a_symlink_swapped_in_during_set_up_leaves_the_host_untouched() {
    for_each_caller(|c| {
        let project = c.scratch();
        let target = c.scratch();
        let p = s(project.path());
        let t = s(target.path());
        let tag = format!("nsjail-e2e-race-{}", unique());
        let etc_names = || -> BTreeSet<String> {
            fs::read_dir("/etc")
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // Other tests running meanwhile may create /etc/nsjail for their policies.
                .filter(|n| n != "nsjail")
                .collect()
        };
        let etc_before = etc_names();
        let _lock = host_mounts_lock();
        let mounts_before = host_mounts();
        // Symlinks out: to our empty host directory T, to / (reaching T by its full path), and
        // to /etc (root only: an ordinary user could not write there anyway).
        let mut links: Vec<(String, String)> =
            vec![(t.clone(), String::new()), ("/".into(), t.clone())];
        if c.uid == 0 {
            links.push(("/etc".into(), String::new()));
        }
        for (link_target, below) in &links {
            let sw = project.path().join("sw");
            let alt = project.path().join("sw.alt");
            let _ = fs::remove_dir_all(&sw);
            let _ = fs::remove_file(&sw);
            let _ = fs::remove_dir_all(&alt);
            let _ = fs::remove_file(&alt);
            fs::create_dir(&sw).unwrap();
            give(c, &sw);
            symlink(link_target, &alt).unwrap();
            let base = format!("/p/sw{below}");
            let ops = creating_ops(&base, &tag);
            let swapper = Swapper::start(&sw, &alt);
            let mut codes: Vec<i32> = Vec::new();
            let mut refusals = BTreeSet::new();
            // At least 36 set-ups, and more (up to 240) until 5 went through: how many get
            // through depends on the timing of each way in, which on an emulated guest can
            // refuse three dozen in a row.
            let mut i = 0;
            while i < 240 && (i < 36 || codes.iter().filter(|c| **c == 0).count() < 5) {
                let op = &ops[i % ops.len()];
                i += 1;
                let mut opts = usr_args();
                opts.extend(strs(&["--bind", &p, "/p"]));
                opts.extend(op.iter().cloned());
                let (f3, f4) = (pipe_with(b"three\n"), pipe_with(b"four\n"));
                let how = How {
                    fds: vec![(&f3, 3), (&f4, 4)],
                    ..How::default()
                };
                let out = run(c, &sh_argv(&opts, "true"), &how);
                out.expect_no_panic();
                // Done inside, or refused in one line before anything ran.
                if out.code() != Some(0) {
                    out.expect_code(125).expect_one_error_line("nsjail:");
                }
                codes.push(out.code().unwrap_or(-1));
                refusals.extend(out.stderr_lines().first().map(|l| l.to_string()));
            }
            let swaps = swapper.stop();
            let done = codes.iter().filter(|c| **c == 0).count();
            eprintln!(
                "[{}] race with sw -> {link_target}: {swaps} swaps, {done} set-ups done, {} refused",
                c.name(),
                codes.iter().filter(|c| **c == 125).count()
            );
            let what = format!("[{}] race with sw -> {link_target}", c.name());
            // The race was run: set-ups went through while the swapper swapped.
            assert!(
                swaps > 0 && done >= 5,
                "{what}: the race never happened: {swaps} swaps, {done} of {} set-ups done; \
                 refusals: {refusals:?}",
                codes.len()
            );
            assert!(
                tree(target.path()).is_empty(),
                "{what}: the host directory behind the symlink got {:?}",
                tree(target.path())
            );
            let leaked: Vec<String> = fs::read_dir("/etc")
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(&tag))
                .collect();
            for n in &leaked {
                let _ = fs::remove_dir_all(Path::new("/etc").join(n));
                let _ = fs::remove_file(Path::new("/etc").join(n));
            }
            assert!(leaked.is_empty(), "{what}: new entries in /etc: {leaked:?}");
            assert_eq!(etc_names(), etc_before, "{what}");
            let (added, removed) = mount_diff(&mounts_before, &host_mounts());
            assert!(
                added.is_empty() && removed.is_empty(),
                "{what}: the host's mount table changed: +{added:?} -{removed:?}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// setuid binaries

#[test]
fn a_setuid_root_binary_inside_gains_nothing() {
    for_each_caller(|c| {
        let dir = c.scratch();
        // A root-owned directory the caller cannot write to, and setuid-root copies of id and
        // touch (root only can make them; as an ordinary developer this checks the mount flags).
        let locked = dir.path().join("locked");
        fs::create_dir(&locked).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        if is_root() {
            for tool in ["id", "touch"] {
                install_file(
                    Path::new(&nsjail_tests::tool(tool)),
                    &dir.path().join(format!("{tool}-suid")),
                    0o4755,
                );
            }
        }
        for bind in ["--bind", "--dev-bind"] {
            let mut opts = system_args();
            opts.extend(strs(&[bind, &s(dir.path()), "/p"]));
            let script = "cut -d' ' -f5,6 /proc/self/mountinfo | grep '^/p '; \
                if [ -u /p/id-suid ]; then \
                  echo euid=$(/p/id-suid -u); \
                  /p/touch-suid /p/made-by-suid; echo rc-own=$?; \
                  /p/touch-suid /p/locked/x; echo rc-locked=$?; \
                fi";
            let out = run_plain(c, &sh_argv(&opts, script));
            out.expect_success();
            let what = format!("[{}] {bind}: {}", c.name(), out.describe());
            let l = out.lines();
            if bind == "--bind" {
                assert!(
                    l[0].split(' ')
                        .nth(1)
                        .unwrap_or("")
                        .split(',')
                        .any(|o| o == "nosuid"),
                    "--bind must be nosuid: {what}"
                );
            }
            if !nsjail_tests::root_part(module_path!(), "setuid-root copies of id and touch") {
                continue;
            }
            // Inside, the caller is root of the namespace either way; on the host, what the
            // setuid binary wrote belongs to the caller, and what only root may write it cannot.
            assert_eq!(l[1], "euid=0", "{what}");
            assert_eq!(l[2], "rc-own=0", "{what}");
            let made = fs::metadata(dir.path().join("made-by-suid")).unwrap();
            assert_eq!(
                (made.uid(), made.gid()),
                (c.uid, c.gid),
                "a setuid-root binary's file must belong to the caller: {what}"
            );
            fs::remove_file(dir.path().join("made-by-suid")).unwrap();
            if c.is_user() {
                assert_ne!(l[3], "rc-locked=0", "{what}");
                assert!(
                    !locked.join("x").exists(),
                    "a setuid-root binary wrote into a root-only directory: {what}"
                );
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Nothing of the set-up is visible inside

/// The sandbox's mountinfo, and `ls -A /`, from the payload.
fn inside_view(
    c: &Caller,
    opts: &[String],
    how: &How,
) -> (Vec<crate::fsutil::MountLine>, Vec<String>, Output) {
    let script = "cat /proc/self/mountinfo; echo ==ls; ls -A /";
    let out = run(c, &sh_argv(opts, script), how);
    out.expect_success();
    let (mi, ls) = out
        .stdout
        .split_once("==ls\n")
        .unwrap_or_else(|| panic!("{}", out.describe()));
    let ls = ls.split_whitespace().map(str::to_string).collect();
    (parse_mountinfo(mi), ls, out)
}

/// Mount points `dir` and its host submounts would bring, seen at `at`.
fn bound_at(dir: &str, at: &str) -> Vec<String> {
    let mut v = vec![at.to_string()];
    for sub in host_submounts(dir) {
        v.push(format!("{}/{sub}", at.trim_end_matches('/')));
    }
    v
}

/// The mount points `usr_args()` makes.
fn usr_mounts() -> BTreeSet<String> {
    let mut v: BTreeSet<String> = bound_at("/usr", "/usr").into_iter().collect();
    for d in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        if fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) {
            v.extend(bound_at(d, d));
        }
    }
    v
}

fn check_no_setup_traces(mounts: &[crate::fsutil::MountLine], ls: &[String], what: &str) {
    let roots: Vec<_> = mounts.iter().filter(|m| m.point == "/").collect();
    assert!(
        !roots.is_empty() && roots.iter().all(|m| m.root == "/"),
        "the root must be mounted as \"/ /\": {what}"
    );
    for m in mounts {
        for bad in ["nsjail-scratch", "oldroot", "old_root", "put_old"] {
            assert!(
                !m.point.contains(bad) && !m.root.contains(bad),
                "{m:?} mentions {bad}: {what}"
            );
        }
    }
    for bad in [".nsjail-scratch", "oldroot", "old_root"] {
        assert!(!ls.iter().any(|n| n == bad), "/ has {bad}: {what}");
    }
}

#[test]
fn a_small_view_shows_exactly_its_mounts_and_no_trace_of_the_set_up() {
    for_each_caller(|c| {
        let data = pipe_with(b"data\n");
        let lower = c.scratch();
        let mut opts = usr_args();
        opts.extend(strs(&[
            "--proc",
            "/proc",
            "--ro-bind-data",
            "3",
            "/data",
            "--overlay-src",
            &s(lower.path()),
            "--tmp-overlay",
            "/o",
            "--tmpfs",
            "/t",
        ]));
        let how = How {
            fds: vec![(&data, 3)],
            ..How::default()
        };
        let (mounts, ls, out) = inside_view(c, &opts, &how);
        let what = format!("[{}] {}", c.name(), out.describe());
        check_no_setup_traces(&mounts, &ls, &what);
        let points: BTreeSet<String> = mounts.iter().map(|m| m.point.clone()).collect();
        let mut expect = usr_mounts();
        expect.extend(strs(&["/", "/proc", "/data", "/o", "/t"]));
        assert_eq!(points, expect, "{what}");
        let mut top: Vec<String> = strs(&["data", "o", "proc", "t", "usr"]);
        for p in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            if fs::symlink_metadata(format!("/{p}")).is_ok() {
                top.push(p.into());
            }
        }
        top.sort();
        let mut ls = ls;
        ls.sort();
        assert_eq!(ls, top, "{what}");
    });
}

#[test]
fn the_default_view_shows_exactly_its_mounts_and_no_trace_of_the_set_up() {
    for_each_caller(|c| {
        let cwd = c.scratch();
        let cwd_s = s(cwd.path());
        let how = How {
            cwd: Some(cwd.path()),
            env: vec![("HOME", "/home/nsjail-e2e-nobody")],
            ..How::default()
        };
        let (mounts, ls, out) = inside_view(c, &[], &how);
        let what = format!("[{}] {}", c.name(), out.describe());
        check_no_setup_traces(&mounts, &ls, &what);
        let points: BTreeSet<String> = mounts.iter().map(|m| m.point.clone()).collect();
        let mut expect: BTreeSet<String> = BTreeSet::new();
        for d in [
            "/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
        ] {
            if fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) {
                expect.extend(bound_at(d, d));
            }
        }
        expect.extend(bound_at(&cwd_s, &cwd_s));
        expect.extend(strs(&[
            "/", "/proc", "/dev", "/dev/pts", "/tmp", "/var/tmp", "/run",
        ]));
        for n in ["null", "zero", "full", "random", "urandom", "tty"] {
            expect.insert(format!("/dev/{n}"));
        }
        assert_eq!(
            points,
            expect,
            "mounts inside vs the default view's: extra {:?}, missing {:?}: {what}",
            points.difference(&expect).collect::<Vec<_>>(),
            expect.difference(&points).collect::<Vec<_>>()
        );
        // Nothing the host has mounted elsewhere (its /sys, its /dev/shm, ...) came along.
        let host: BTreeSet<String> = host_mounts().into_iter().map(|m| m.point).collect();
        for p in &points {
            if host.contains(p) {
                assert!(
                    expect.contains(p),
                    "the host's mount {p} is visible inside: {what}"
                );
            }
        }
    });
}
