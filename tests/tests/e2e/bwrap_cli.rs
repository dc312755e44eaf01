//! `nsjail bwrap --dry-run`: the sandbox bubblewrap's arguments make, printed as `nsjail run
//! --dry-run` prints the same sandbox asked for in nsjail's own options.

use nsjail_tests::{Caller, Output, Running, shell_words};

fn dry_run(c: &Caller, sub: &str, format: &str, args: &[&str]) -> Output {
    let mut cmd = c.nsjail_cmd();
    cmd.arg(sub).arg(format!("--dry-run={format}")).args(args);
    let what = format!(
        "[{}] nsjail {sub} --dry-run={format} {}",
        c.name(),
        shell_words(args)
    );
    let mut o = Running::spawn(&mut cmd, None, &what).wait();
    o.expect_success();
    // Under the name bwrap every fd the CLI inherited (not close-on-exec) goes to the command,
    // as bubblewrap does; what this test process happens to leave open (a parent's, or one
    // another test is handing to its own child at that moment) is not what is compared here
    // (pass_fds.rs and the corpus check the passing itself).
    if sub == "bwrap" {
        o.stdout = if format == "json" {
            let mut v: serde_json::Value = serde_json::from_str(&o.stdout).expect("bwrap's JSON");
            if let Some(req) = v["request"].as_object_mut() {
                req.insert("pass_fds".into(), serde_json::json!([]));
            }
            if let Some(resolved) = v["resolved"].as_object_mut() {
                resolved.insert("passed_fds".into(), serde_json::json!([]));
            }
            v.to_string()
        } else {
            o.stdout
                .lines()
                .filter(|l| !l.starts_with("passed fds:"))
                .map(|l| format!("{l}\n"))
                .collect()
        };
    }
    o
}

/// bubblewrap's arguments, and nsjail's for the same sandbox: what bwrap leaves shared is
/// `--share-*` in nsjail's words, bwrap's ids are the caller's own (nsjail's default is 0), and
/// bwrap sets `PWD` to where the command starts.
fn pairs(uid: &str, gid: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let w = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
    let view = [
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/bin",
        "/bin",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "0700",
        "--tmpfs",
        "/tmp",
        "--dir",
        "/tmp/d",
    ];
    let mut v = Vec::new();
    // A thumbnailer's shape: everything unshared.
    let mut b = w(&["--unshare-all", "--hostname", "box", "--chdir", "/tmp"]);
    b.extend(w(&view));
    b.extend(w(&["--setenv", "A", "1", "--", "/bin/sh", "-c", "echo $A"]));
    let mut r = w(&[
        "--uid",
        uid,
        "--gid",
        gid,
        "--hostname",
        "box",
        "--chdir",
        "/tmp",
    ]);
    r.extend(w(&view));
    r.extend(w(&[
        "--setenv", "A", "1", "--setenv", "PWD", "/tmp", "--", "/bin/sh", "-c", "echo $A",
    ]));
    v.push((b, r));
    // Only what is asked for: the host's network, IPC, hostname and cgroups; ids chosen; the
    // command as PID 1 in a clean environment.
    let mut b = w(&[
        "--unshare-pid",
        "--uid",
        "5",
        "--gid",
        "6",
        "--as-pid-1",
        "--clearenv",
        "--setenv",
        "X",
        "y",
    ]);
    b.extend(w(&view));
    b.extend(w(&["env"]));
    let mut r = w(&[
        "--share-net",
        "--share-ipc",
        "--share-uts",
        "--share-cgroup",
        "--uid",
        "5",
        "--gid",
        "6",
        "--as-pid-1",
        "--clearenv",
        "--setenv",
        "X",
        "y",
    ]);
    r.extend(w(&view));
    r.extend(w(&["--setenv", "PWD", "/", "env"]));
    v.push((b, r));
    v
}

#[test]
fn bwrap_dry_run_prints_what_nsjail_run_dry_run_prints_for_the_same_sandbox() {
    if !nsjail_tests::require_root("bwrap dry run") {
        return;
    }
    for c in [Caller::setuid_user(), Caller::daemon_user()] {
        let (uid, gid) = (c.uid.to_string(), c.gid.to_string());
        for (b, r) in pairs(&uid, &gid) {
            let b: Vec<&str> = b.iter().map(String::as_str).collect();
            let r: Vec<&str> = r.iter().map(String::as_str).collect();
            let bj = dry_run(&c, "bwrap", "json", &b);
            let rj = dry_run(&c, "run", "json", &r);
            let bv: serde_json::Value = serde_json::from_str(&bj.stdout).expect("bwrap's JSON");
            let rv: serde_json::Value = serde_json::from_str(&rj.stdout).expect("run's JSON");
            assert_eq!(bv, rv, "\n{}\n{}", bj.describe(), rj.describe());
            assert!(
                bv["request"]["mounts"]
                    .as_array()
                    .is_some_and(|m| m.len() == 6)
            );
            let bt = dry_run(&c, "bwrap", "text", &b);
            let rt = dry_run(&c, "run", "text", &r);
            assert_eq!(
                bt.stdout,
                rt.stdout,
                "\n{}\n{}",
                bt.describe(),
                rt.describe()
            );
            assert!(
                bt.stdout.starts_with("nsjail dry run: nothing was started"),
                "{}",
                bt.describe()
            );
        }
        // The control: one option less on nsjail's side is a different sandbox, and the
        // comparison sees it.
        let (b, r) = pairs(&uid, &gid).remove(0);
        let b: Vec<&str> = b.iter().map(String::as_str).collect();
        let r: Vec<&str> = r
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "--dir" && *a != "/tmp/d")
            .collect();
        let bt = dry_run(&c, "bwrap", "text", &b);
        let rt = dry_run(&c, "run", "text", &r);
        assert_ne!(bt.stdout, rt.stdout);
        assert!(bt.stdout.contains("--dir /tmp/d"), "{}", bt.describe());
    }
}
