//! Mounts, files and directories made for a sandbox exist only in its own mount namespace: once
//! it has ended — normally, or because the CLI was killed with SIGKILL — the host's mount table
//! and `/tmp` are as they were.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use nsjail_tests::{
    Caller, Running, for_each_caller, pids_with_argv, poll_until, shell_code, shell_words, unique,
};

use crate::fsutil::{
    host_mounts, host_mounts_lock, mount_diff, new_tmp_entries, pass_fds, pipe_with, s,
    tmp_entries, tree,
};

/// A view that uses every kind of operation (the default view, plus more), with the payload
/// writing into each writable place. Returns the arguments before `--`.
fn busy_view(lower: &Path) -> Vec<String> {
    [
        "--default-view",
        "--tmpfs",
        "/scratch-t",
        "--dir",
        "/made/dir",
        "--file",
        "3",
        "/made/file",
        "--ro-bind-data",
        "4",
        "/made/data",
        "--bind-data",
        "5",
        "/made/rw-data",
        "--symlink",
        "/made/dir",
        "/made/link",
        "--overlay-src",
        &s(lower),
        "--tmp-overlay",
        "/ov",
        "--mqueue",
        "/dev/mqueue",
        "--proc",
        "/proc2",
        "--dir",
        "/made/ro",
        "--remount-ro",
        "/made/ro",
    ]
    .map(String::from)
    .to_vec()
}

/// Everything the host could show of a sandbox, before it runs.
struct HostState {
    mounts: BTreeSet<crate::fsutil::MountLine>,
    tmp: BTreeSet<String>,
}

impl HostState {
    fn now() -> HostState {
        HostState {
            mounts: host_mounts(),
            tmp: tmp_entries(),
        }
    }

    #[track_caller]
    fn expect_unchanged(&self, what: &str) {
        let (added, removed) = mount_diff(&self.mounts, &host_mounts());
        assert!(
            added.is_empty() && removed.is_empty(),
            "the host's mount table changed: +{added:?} -{removed:?}: {what}"
        );
        let new = new_tmp_entries(&self.tmp);
        assert!(
            new.is_empty(),
            "new entries in the host's /tmp: {new:?}: {what}"
        );
    }
}

fn spawn_with_fds(c: &Caller, args: &[String], cwd: &Path) -> (Running, Vec<std::os::fd::OwnedFd>) {
    use std::os::fd::AsRawFd;
    let fds = vec![
        pipe_with(b"three\n"),
        pipe_with(b"four\n"),
        pipe_with(b"five\n"),
    ];
    let pairs: Vec<(i32, i32)> = fds
        .iter()
        .zip(3..)
        .map(|(f, n)| (f.as_raw_fd(), n))
        .collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = c.run_cmd(&argv);
    cmd.current_dir(cwd);
    pass_fds(&mut cmd, pairs);
    let what = format!("[{}] nsjail run {}", c.name(), shell_words(&argv));
    (Running::spawn(&mut cmd, None, &what), fds)
}

const WRITES: &str = "for f in /tmp/inside /var/tmp/inside /run/inside /scratch-t/f /made/dir/f \
    /made/link/g /ov/f /made/rw-data /made/file; do echo x >> $f || exit 7; done; \
    touch /dev/mqueue/q || exit 8";

#[test]
fn nothing_is_left_on_the_host_after_the_sandbox_ends() {
    for_each_caller(|c| {
        let cwd = c.scratch();
        let lower = c.scratch();
        fs::write(lower.path().join("l"), "lower\n").unwrap();
        let cwd_before = tree(cwd.path());
        let lower_before = tree(lower.path());
        let _lock = host_mounts_lock();
        let before = HostState::now();
        let mut args = busy_view(lower.path());
        args.extend([
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            format!("{WRITES}; echo done"),
        ]);
        let (run, fds) = spawn_with_fds(c, &args, cwd.path());
        let out = run.wait();
        drop(fds);
        out.expect_success();
        assert_eq!(out.out(), "done", "{}", out.describe());
        let what = format!("[{}] {}", c.name(), out.describe());
        before.expect_unchanged(&what);
        assert_eq!(tree(cwd.path()), cwd_before, "{what}");
        assert_eq!(tree(lower.path()), lower_before, "{what}");
    });
}

#[test]
fn nothing_is_left_on_the_host_after_the_cli_is_killed() {
    for_each_caller(|c| {
        let cwd = c.scratch();
        let lower = c.scratch();
        let _lock = host_mounts_lock();
        let before = HostState::now();
        // A sleep the host can recognise by its argv.
        let secs = format!("9{}", unique());
        let mut args = busy_view(lower.path());
        args.extend([
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            format!("{WRITES}; echo READY; exec /bin/sleep {secs}"),
        ]);
        let (mut run, fds) = spawn_with_fds(c, &args, cwd.path());
        run.wait_stdout("READY");
        let argv = ["/bin/sleep", secs.as_str()];
        assert!(
            poll_until(Duration::from_secs(30), || !pids_with_argv(&argv)
                .is_empty()),
            "{}: the payload never appeared on the host",
            run.what
        );
        run.signal(Signal::SIGKILL);
        let st = run.wait_timeout(Duration::from_secs(30));
        assert_eq!(st.map(|s| shell_code(&s)), Some(128 + 9), "{}", run.what);
        drop(fds);
        let what = run.what.clone();
        assert!(
            poll_until(Duration::from_secs(30), || pids_with_argv(&argv).is_empty()),
            "{what}: the payload outlived the CLI's SIGKILL"
        );
        // The last process of the sandbox is gone, and with it its mount namespace.
        before.expect_unchanged(&what);
        assert!(
            tree(cwd.path()).is_empty(),
            "{what}: {:?}",
            tree(cwd.path())
        );
    });
}
