//! A sandbox's user namespace belongs to root when the helper has privilege (so the caller can
//! neither join it nor trace the set-up), and the kernel then charges what the sandbox's
//! processes hold of the per-user resources it counts under rlimits to root. Whatever a
//! sandbox takes, root must keep the rest of its own (found in review: a payload queued
//! signals until root's own `sigqueue` and `timer_create` failed).

use std::process::Command;
use std::time::{Duration, Instant};

use nsjail_tests::hardening::{probe_bin, probe_dir};
use nsjail_tests::{Caller, Running, WayIn, for_each_caller};

/// Run the probe's `fill` in a sandbox of `c`; while it holds what it took, run `one` on the
/// host as the test's own user. Returns (how many the sandbox took, its errno, `one`'s line).
fn fill_then_take_one(c: &Caller, opts: &[&str], fill: &str, one: &str) -> (u64, String, String) {
    let dir = probe_dir(c);
    let release = dir.path().join("release");
    let release_arg = release.to_string_lossy().into_owned();
    let mut args = opts.to_vec();
    args.extend(["--", "./nsjail-probe", fill, &release_arg]);
    let mut cmd = c.run_cmd(&args);
    cmd.current_dir(dir.path());
    let run = Running::spawn(&mut cmd, None, fill);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !run.stdout.text().contains('\n') && Instant::now() < deadline && !run.stdout.is_eof() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let line = run.stdout.text();
    let host = Command::new(probe_bin())
        .arg(one)
        .output()
        .expect("run the probe on the host");
    std::fs::write(&release, "").expect("release the sandbox");
    let out = run.wait();
    out.expect_success();
    let mut words = line
        .trim()
        .strip_prefix(&format!("{fill}: "))
        .unwrap_or_else(|| panic!("[{}] {fill} said {line:?}\n{}", c.name(), out.describe()))
        .split(' ');
    let taken = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let errno = words.next().unwrap_or("").to_string();
    (
        taken,
        errno,
        String::from_utf8_lossy(&host.stdout).trim().to_string(),
    )
}

fn root_keeps_the_rest(fill: &str, one: &str, opts: &[&str], full: &str, share: u64) {
    for_each_caller(|c| {
        let (taken, errno, host) = fill_then_take_one(c, opts, fill, one);
        // The control: the sandbox really took until the kernel refused it.
        assert!(
            taken > 0 && errno == full,
            "[{}] {fill}: {taken} {errno}",
            c.name()
        );
        assert_eq!(
            host,
            format!("{one}: ok"),
            "[{}] after a sandbox took {taken}",
            c.name()
        );
        if matches!(c.way_in(), WayIn::Setuid | WayIn::Daemon) {
            assert!(
                taken <= share,
                "[{}] {fill}: {taken} above {share}",
                c.name()
            );
        }
    });
}

#[test]
fn a_sandbox_cannot_take_roots_pending_signals() {
    // The kernel's default is half of threads-max; sandboxes may take half of that.
    let threads_max: u64 = std::fs::read_to_string("/proc/sys/kernel/threads-max")
        .expect("read threads-max")
        .trim()
        .parse()
        .expect("threads-max is a number");
    root_keeps_the_rest(
        "sigqueue-fill",
        "sigqueue-one",
        &[],
        "EAGAIN",
        threads_max / 4,
    );
}

#[test]
fn a_sandbox_cannot_take_roots_message_queue_bytes() {
    // A payload reaches POSIX message queues only through a mounted mqueue filesystem.
    let opts = ["--default-view", "--mqueue", "/dev/mqueue"];
    // Half of the default 819,200 bytes, in queues of 10 messages of 8 KiB (and their overhead).
    root_keeps_the_rest("mq-fill", "mq-one", &opts, "EMFILE", 819_200 / 2 / 81_920);
}
