//! ID maps: the caller's own uid and gid outside map to the ids inside (root by default), one
//! line each, and setgroups is denied.

use nsjail_tests::{Caller, for_each_caller};

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

pub(crate) fn expect_maps(c: &Caller, opts: &[&str], inside_uid: u32, inside_gid: u32) {
    let out = c.sh(
        opts,
        "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; cat /proc/self/setgroups; \
         echo --; id -u; id -g",
    );
    out.expect_success();
    let parts: Vec<&str> = out.stdout.split("--\n").collect();
    assert_eq!(parts.len(), 4, "{}", out.describe());
    let ctx = || format!("[{}] {opts:?}\n{}", c.name(), out.describe());
    assert_eq!(
        words(parts[0]),
        words(&format!("{inside_uid} {} 1", c.uid)),
        "uid_map {}",
        ctx()
    );
    assert_eq!(
        words(parts[1]),
        words(&format!("{inside_gid} {} 1", c.gid)),
        "gid_map {}",
        ctx()
    );
    assert_eq!(words(parts[2]), ["deny"], "setgroups {}", ctx());
    assert_eq!(
        words(parts[3]),
        [inside_uid.to_string(), inside_gid.to_string()],
        "id -u / id -g {}",
        ctx()
    );
}

#[test]
fn default_maps_make_the_caller_root_inside() {
    for_each_caller(|c| expect_maps(c, &[], 0, 0));
}

#[test]
fn uid_and_gid_choose_the_ids_inside() {
    for_each_caller(|c| {
        expect_maps(c, &["--uid", "1000", "--gid", "1000"], 1000, 1000);
        expect_maps(c, &["--uid", "1234"], 1234, 0);
    });
}

/// Root inside is only the caller outside: the host sees the payload with the caller's ids.
#[test]
fn the_host_sees_the_payload_with_the_callers_ids() {
    use nix::sys::signal::Signal;
    use nsjail_tests::{Running, pids_with_argv, poll_until, unique};
    use std::time::Duration;
    for_each_caller(|c| {
        let secs = format!("8{}.5", unique());
        let mut cmd = c.run_cmd(&["--", "/bin/sleep", &secs]);
        let run = Running::spawn(&mut cmd, None, &format!("[{}] sleep {secs}", c.name()));
        let mut pids = Vec::new();
        let seen = poll_until(Duration::from_secs(30), || {
            pids = pids_with_argv(&["/bin/sleep", &secs]);
            !pids.is_empty()
        });
        let status = pids
            .first()
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .unwrap_or_default();
        run.signal(Signal::SIGTERM);
        let out = run.wait();
        assert!(
            seen,
            "[{}] the payload never appeared: {}",
            c.name(),
            out.describe()
        );
        let field = |name: &str| -> Vec<String> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(words)
                .unwrap_or_default()
        };
        assert_eq!(
            field("Uid:"),
            vec![c.uid.to_string(); 4],
            "[{}] {status}",
            c.name()
        );
        assert_eq!(
            field("Gid:"),
            vec![c.gid.to_string(); 4],
            "[{}] {status}",
            c.name()
        );
    });
}
