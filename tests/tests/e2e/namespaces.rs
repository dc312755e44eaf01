//! Each namespace is new (or the host's when asked to share it), and what happens inside one
//! stays inside: hostname, network devices, SysV IPC, mounts.

use std::collections::BTreeMap;
use std::fs;

use nsjail_tests::hardening::{GRANT_CAPS_AND_USERNS, PolicyEnv};
use nsjail_tests::{Caller, Output, for_each_caller, host_ns, tool, unique};

const ALL: [&str; 8] = ["net", "uts", "ipc", "mnt", "pid", "user", "cgroup", "time"];

/// The payload's `/proc/self/ns/*` links, by name.
fn inside_ns(c: &Caller, opts: &[&str]) -> (BTreeMap<String, String>, Output) {
    let script = format!(
        "for n in {}; do echo \"$n $(readlink /proc/self/ns/$n)\"; done",
        ALL.join(" ")
    );
    let out = c.sh(opts, &script);
    out.expect_success();
    let mut map = BTreeMap::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            map.insert(k.to_string(), v.trim().to_string());
        }
    }
    for n in ALL {
        let v = map.get(n).map(String::as_str).unwrap_or("");
        assert!(
            v.starts_with(&format!("{n}:[")),
            "no readable /proc/self/ns/{n} inside:\n{}",
            out.describe()
        );
    }
    (map, out)
}

/// What every way of reaching the helper must give a plain `nsjail run`: the caller mapped to
/// root (or to the ids asked for), every namespace but time new, the payload PID 2 under our
/// PID 1, the hostname `sandbox`, and its exit code passed on.
pub(crate) fn basics(c: &Caller) {
    crate::maps::expect_maps(c, &[], 0, 0);
    crate::maps::expect_maps(c, &["--uid", "1000", "--gid", "1000"], 1000, 1000);
    check(
        c,
        &[],
        &["net", "uts", "ipc", "mnt", "pid", "user", "cgroup"],
        &["time"],
    );
    let out = c.sh(&[], "echo $$; hostname; exit 3");
    out.expect_code(3).expect_no_panic();
    assert_eq!(out.lines(), ["2", "sandbox"], "{}", out.describe());
}

pub(crate) fn check(c: &Caller, opts: &[&str], new: &[&str], shared: &[&str]) {
    let (inside, out) = inside_ns(c, opts);
    for n in new {
        assert_ne!(
            inside[*n],
            host_ns(n),
            "[{}] with {opts:?} the {n} namespace must be new\n{}",
            c.name(),
            out.describe()
        );
    }
    for n in shared {
        assert_eq!(
            inside[*n],
            host_ns(n),
            "[{}] with {opts:?} the {n} namespace must be the host's\n{}",
            c.name(),
            out.describe()
        );
    }
}

#[test]
fn every_namespace_is_new_by_default() {
    for_each_caller(|c| {
        check(
            c,
            &[],
            &["net", "uts", "ipc", "mnt", "pid", "user", "cgroup"],
            &["time"],
        );
    });
}

#[test]
fn unshare_time_gives_a_new_time_namespace() {
    for_each_caller(|c| {
        check(
            c,
            &["--unshare-time"],
            &["time", "net", "uts", "ipc", "mnt", "pid", "user", "cgroup"],
            &[],
        );
    });
}

#[test]
fn share_flags_keep_the_hosts_namespaces() {
    for_each_caller(|c| {
        check(
            c,
            &["--share-net"],
            &["uts", "ipc", "mnt", "pid", "user", "cgroup"],
            &["net"],
        );
        check(
            c,
            &["--share-ipc"],
            &["net", "uts", "mnt", "pid", "user", "cgroup"],
            &["ipc"],
        );
        check(
            c,
            &["--share-uts"],
            &["net", "ipc", "mnt", "pid", "user", "cgroup"],
            &["uts"],
        );
        check(
            c,
            &["--share-cgroup"],
            &["net", "uts", "ipc", "mnt", "pid", "user"],
            &["cgroup"],
        );
        check(
            c,
            &[
                "--share-net",
                "--share-ipc",
                "--share-uts",
                "--share-cgroup",
            ],
            &["mnt", "pid", "user"],
            &["net", "ipc", "uts", "cgroup"],
        );
    });
}

fn numeric_entries(listing: &str) -> Vec<u32> {
    let mut v: Vec<u32> = listing
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    v.sort();
    v
}

#[test]
fn pid_namespace_holds_only_the_sandbox() {
    for_each_caller(|c| {
        // Behind our init: the shell is 2, `ls` its child.
        let out = c.sh(&[], "echo $$; ls /proc");
        out.expect_success();
        let lines = out.lines();
        assert_eq!(
            lines.first().map(String::as_str),
            Some("2"),
            "{}",
            out.describe()
        );
        let pids = numeric_entries(&lines[1..].join(" "));
        assert!(
            pids.contains(&1) && pids.contains(&2) && pids.len() <= 4,
            "[{}] /proc inside must list only the init, the shell and ls, got {pids:?}\n{}",
            c.name(),
            out.describe()
        );

        // The payload itself as PID 1.
        let out = c.sh(&["--as-pid-1"], "echo $$; ls /proc");
        out.expect_success();
        let lines = out.lines();
        assert_eq!(
            lines.first().map(String::as_str),
            Some("1"),
            "{}",
            out.describe()
        );
        let pids = numeric_entries(&lines[1..].join(" "));
        assert!(
            pids.contains(&1) && pids.len() <= 3,
            "[{}] with --as-pid-1 /proc lists {pids:?}\n{}",
            c.name(),
            out.describe()
        );
    });
}

fn host_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn hostname_is_set_and_a_change_stays_inside() {
    let hostname = tool("hostname");
    // --cap-add needs the policy's grant for users of the setuid helper and the daemon.
    let grant = PolicyEnv::with_policy(GRANT_CAPS_AND_USERNS);
    for_each_caller(|c| {
        let before = host_hostname();
        let out = c.run(&["--", &hostname]);
        out.expect_success();
        assert_eq!(out.out(), "sandbox", "{}", out.describe());

        let name = format!("e2e-{}", unique());
        let out = c.run(&["--hostname", &name, "--", &hostname]);
        out.expect_success();
        assert_eq!(out.out(), name, "{}", out.describe());

        // Changing it needs CAP_SYS_ADMIN in the sandbox's user namespace, which the payload
        // only has when asked for (capabilities are empty by default).
        let changed = format!("changed-{}", unique());
        let out = grant.sh_as(
            c,
            &["--cap-add", "CAP_SYS_ADMIN"],
            &format!("{hostname} {changed} && {hostname}"),
        );
        out.expect_success();
        assert_eq!(out.out(), changed, "{}", out.describe());
        assert_eq!(host_hostname(), before, "the host's hostname changed");
    });
}

#[test]
fn only_lo_exists_and_is_up() {
    let ip = tool("ip");
    for_each_caller(|c| {
        let out = c.run(&["--", "/bin/cat", "/proc/net/dev"]);
        out.expect_success();
        let ifaces: Vec<String> = out
            .stdout
            .lines()
            .skip(2)
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
            .collect();
        assert_eq!(ifaces, ["lo"], "[{}] {}", c.name(), out.describe());

        let out = c.run(&["--", &ip, "-o", "link"]);
        out.expect_success();
        let lines = out.lines();
        assert_eq!(lines.len(), 1, "[{}] {}", c.name(), out.describe());
        let flags = lines[0]
            .split_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map(|(f, _)| f.split(',').map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default();
        assert!(
            lines[0].contains(" lo:") && flags.iter().any(|f| f == "UP"),
            "[{}] lo must be up: {}",
            c.name(),
            out.describe()
        );
    });
}

/// Keys of the message queues `ipcs -q` lists, by msqid.
fn queue_keys(ipcs_output: &str) -> BTreeMap<String, String> {
    ipcs_output
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 2 && w[0].starts_with("0x")).then(|| (w[1].to_string(), w[0].to_string()))
        })
        .collect()
}

fn host_queue_keys() -> Vec<String> {
    let out = std::process::Command::new(tool("ipcs"))
        .arg("-q")
        .output()
        .unwrap();
    queue_keys(&String::from_utf8_lossy(&out.stdout))
        .into_values()
        .collect()
}

/// Make a queue inside; return its key and whether the host sees it (removing it there if so).
fn queue_made_inside(c: &Caller, opts: &[&str]) -> (String, bool) {
    let script = format!("{} -Q && {} -q", tool("ipcmk"), tool("ipcs"));
    let out = c.sh(opts, &script);
    out.expect_success();
    let id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Message queue id:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("ipcmk printed no id: {}", out.describe()));
    let key = queue_keys(&out.stdout)
        .remove(&id)
        .unwrap_or_else(|| panic!("ipcs inside does not list queue {id}: {}", out.describe()));
    let seen = host_queue_keys().contains(&key);
    if seen {
        let _ = std::process::Command::new(tool("ipcrm"))
            .args(["-Q", &key])
            .status();
    }
    (key, seen)
}

#[test]
fn a_message_queue_made_inside_is_invisible_outside() {
    for_each_caller(|c| {
        let (key, seen) = queue_made_inside(c, &[]);
        assert!(
            !seen,
            "[{}] queue {key} made in a new IPC namespace is visible on the host",
            c.name()
        );
        // The control: with --share-ipc the same thing is visible (and then removed).
        let (key, seen) = queue_made_inside(c, &["--share-ipc"]);
        assert!(
            seen,
            "[{}] with --share-ipc queue {key} should be the host's",
            c.name()
        );
    });
}

fn host_mountinfo_has(dir: &str) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(dir))
}

#[test]
fn a_mount_made_inside_is_invisible_outside() {
    let mount = tool("mount");
    // --cap-add needs the policy's grant for users of the setuid helper and the daemon.
    let grant = PolicyEnv::with_policy(GRANT_CAPS_AND_USERNS);
    for_each_caller(|c| {
        let scratch = c.scratch();
        let dir = scratch.path().to_str().unwrap().to_string();
        let script = format!(
            "{mount} -t tmpfs none {dir} && grep ' {dir} ' /proc/self/mountinfo | grep -c ' - tmpfs ' && \
             echo inside > {dir}/marker"
        );
        // Mounting needs CAP_SYS_ADMIN in the sandbox's user namespace (empty by default).
        let mut view = nsjail_tests::with_dir(scratch.path());
        view.extend(["--cap-add".to_string(), "CAP_SYS_ADMIN".to_string()]);
        let opts: Vec<&str> = view.iter().map(String::as_str).collect();
        let out = grant.sh_as(c, &opts, &script);
        if host_mountinfo_has(&dir) {
            let _ = std::process::Command::new(tool("umount"))
                .args(["-l", &dir])
                .status();
            panic!(
                "[{}] the tmpfs mounted inside on {dir} is in the host's mount table\n{}",
                c.name(),
                out.describe()
            );
        }
        out.expect_success();
        assert_eq!(out.lines(), ["1"], "{}", out.describe());
        assert!(
            !scratch.path().join("marker").exists(),
            "[{}] a file written on the tmpfs inside reached the host directory",
            c.name()
        );
    });
}
