//! The admin policy (`/etc/nsjail/policy.toml`), through the setuid helper as an ordinary user.
//! Each test runs the CLI in its own mount namespace with its own `/etc/nsjail` (see
//! `nsjail_tests::hardening::PolicyEnv`), so policies never meet each other or the host.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::time::Duration;

use nix::sys::signal::Signal;
use nsjail_tests::hardening::{PolicyEnv, probe_dir, probe_result};
use nsjail_tests::{Caller, TEST_USER, pids_with_argv, poll_until, root_or_skip, unique};

fn user() -> Caller {
    Caller::setuid_user()
}

#[test]
fn a_policy_anyone_but_root_could_write_is_refused() {
    root_or_skip!();
    let c = user();
    let env = PolicyEnv::with_policy("[allow]\nshare_net = true\n");
    // The control: root-owned, 0644: used.
    env.run(&c, None, &["--", "/bin/true"]).expect_success();
    for (mode, uid, gid, why) in [
        (0o644, c.uid, 0, "owned by uid"),
        (0o664, 0, 0, "writable by group or others"),
        (0o646, 0, 0, "writable by group or others"),
        (0o644, 0, c.gid, ""),
    ] {
        env.write_policy("[allow]\nshare_net = true\n", mode, uid, gid);
        let out = env.run(&c, None, &["--", "/bin/true"]);
        if why.is_empty() {
            // Group ownership alone (0644) lets no one else write it.
            out.expect_success();
            continue;
        }
        out.expect_code(125)
            .expect_one_error_line("nsjail: /etc/nsjail/policy.toml")
            .expect_no_panic();
        assert!(out.stderr.contains(why), "{}", out.describe());
    }
    // A directory on the way others can write.
    env.write_policy("", 0o644, 0, 0);
    fs::set_permissions(env.etc.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let out = env.run(&c, None, &["--", "/bin/true"]);
    out.expect_code(125)
        .expect_one_error_line("nsjail: /etc/nsjail is writable by group or others");
    fs::set_permissions(env.etc.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // A symlink to a root-owned file is not followed (firejail CVE-2017-5180).
    let real = env.etc.path().join("real.toml");
    fs::write(&real, "").unwrap();
    fs::remove_file(env.policy_path()).unwrap();
    symlink(&real, env.policy_path()).unwrap();
    let out = env.run(&c, None, &["--", "/bin/true"]);
    out.expect_code(125)
        .expect_one_error_line("nsjail: /etc/nsjail/policy.toml is a symbolic link");
    // A policy that does not parse refuses everything, naming the problem.
    fs::remove_file(env.policy_path()).unwrap();
    env.write_policy("[allow]\nshare_nett = true\n", 0o644, 0, 0);
    let out = env.run(&c, None, &["--", "/bin/true"]);
    out.expect_code(125)
        .expect_one_error_line("nsjail: /etc/nsjail/policy.toml: policy:");
    assert!(out.stderr.contains("share_nett"), "{}", out.describe());
}

#[test]
fn access_lists_say_who_may_use_the_helper() {
    root_or_skip!();
    let c = user();
    let group = String::from_utf8(
        std::process::Command::new(nsjail_tests::tool("id"))
            .args(["-gn", TEST_USER])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    for (policy, allowed) in [
        ("[access]\nusers = [\"root\"]\n".to_string(), false),
        (format!("[access]\nusers = [\"{TEST_USER}\"]\n"), true),
        (format!("[access]\nusers = [{}]\n", c.uid), true),
        ("[access]\ngroups = [\"root\"]\n".to_string(), false),
        (format!("[access]\ngroups = [\"{group}\"]\n"), true),
        ("[access]\nusers = []\n".to_string(), false),
    ] {
        let env = PolicyEnv::with_policy(&policy);
        let out = env.run(&c, None, &["--", "/bin/true"]);
        if allowed {
            out.expect_success();
        } else {
            out.expect_code(125).expect_one_error_line(&format!(
                "nsjail: the nsjail policy does not allow uid {} to use the helper",
                c.uid
            ));
        }
    }
}

#[test]
fn feature_switches_are_enforced() {
    root_or_skip!();
    let c = user();
    let env = PolicyEnv::with_policy(
        "[allow]\nshare_net = false\ncap_add = false\nuserns = false\nseccomp_none = false\n",
    );
    for (opts, what) in [
        (&["--share-net"][..], "--share-net"),
        (&["--cap-add", "CAP_NET_ADMIN"][..], "--cap-add"),
        (&["--allow-userns"][..], "--allow-userns"),
        (&["--seccomp", "none"][..], "--seccomp none"),
    ] {
        let mut args = opts.to_vec();
        args.extend(["--", "/bin/true"]);
        env.run(&c, None, &args)
            .expect_code(125)
            .expect_one_error_line(&format!("nsjail: the nsjail policy does not allow {what}"));
    }
    env.run(&c, None, &["--", "/bin/true"]).expect_success();

    // Where running without the default filter is forbidden, a permissive custom profile is
    // added on top of it rather than replacing it.
    let dir = probe_dir(&c);
    let profile = dir.path().join("allow-all.json");
    fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    let p = profile.to_str().unwrap();
    let out = env.run(
        &c,
        Some(dir.path()),
        &["--seccomp", p, "--", "./nsjail-probe", "keyctl"],
    );
    assert_eq!(probe_result(&out, "keyctl"), "EPERM", "{}", out.describe());
    // The control: with no policy the same profile replaces the default filter.
    let out = PolicyEnv::new().run(
        &c,
        Some(dir.path()),
        &["--seccomp", p, "--", "./nsjail-probe", "keyctl"],
    );
    assert_eq!(probe_result(&out, "keyctl"), "ok", "{}", out.describe());

    // Forbidden nested user namespaces stay forbidden without the default filter too.
    let env = PolicyEnv::with_policy("[allow]\nuserns = false\n");
    for opts in [&["--seccomp", "none"][..], &["--seccomp", p][..]] {
        let mut args = opts.to_vec();
        args.extend(["--", "./nsjail-probe", "unshare-user"]);
        let out = env.run(&c, Some(dir.path()), &args);
        assert_eq!(
            probe_result(&out, "unshare-user"),
            "EPERM",
            "{opts:?}: {}",
            out.describe()
        );
        // …while the rest of the default filter is gone (keyctl is the kernel's again).
        let mut args = opts.to_vec();
        args.extend(["--", "./nsjail-probe", "keyctl"]);
        let out = env.run(&c, Some(dir.path()), &args);
        assert_eq!(
            probe_result(&out, "keyctl"),
            "ok",
            "{opts:?}: {}",
            out.describe()
        );
    }
}

#[test]
fn max_sandboxes_per_user_counts_live_sandboxes() {
    root_or_skip!();
    let c = user();
    let env = PolicyEnv::with_policy("[limits]\nmax_sandboxes_per_user = 1\n");
    let secs = format!("7{}.5", unique());
    let first = env.spawn(&c, &["--", "/bin/sleep", &secs]);
    assert!(
        poll_until(Duration::from_secs(30), || !pids_with_argv(&[
            "/bin/sleep",
            &secs
        ])
        .is_empty()),
        "the first sandbox never started"
    );
    let out = env.run(&c, None, &["--", "/bin/true"]);
    out.expect_code(125)
        .expect_one_error_line("nsjail: you already have 1 sandbox running");
    // Root is counted separately (its own uid's slots).
    env.run(&Caller::root(), None, &["--", "/bin/true"])
        .expect_success();
    first.signal(Signal::SIGTERM);
    first.wait().expect_code(128 + libc::SIGTERM);
    // The slot is free again once the sandbox is gone.
    env.run(&c, None, &["--", "/bin/true"]).expect_success();
}

fn maps_of(out: &nsjail_tests::Output) -> (Vec<String>, Vec<String>, String) {
    let parts: Vec<&str> = out.stdout.split("--\n").collect();
    let lines = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect()
    };
    (
        lines(parts.first().copied().unwrap_or("")),
        lines(parts.get(1).copied().unwrap_or("")),
        parts.get(2).copied().unwrap_or("").trim().to_string(),
    )
}

const SHOW_MAPS: &str =
    "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; cat /proc/self/setgroups";

#[test]
fn without_a_policy_only_your_own_ids_can_be_mapped() {
    root_or_skip!();
    let c = user();
    let env = PolicyEnv::new();
    let own = format!("0:{}:1", c.uid);
    // Your own id, under another id inside: fine.
    let out = env.run(
        &c,
        None,
        &[
            "--map-uid",
            &format!("5:{}:1", c.uid),
            "--uid",
            "5",
            "--",
            "/bin/sh",
            "-c",
            SHOW_MAPS,
        ],
    );
    out.expect_success();
    assert_eq!(
        maps_of(&out).0,
        [format!("5 {} 1", c.uid)],
        "{}",
        out.describe()
    );
    // A range you do not own (another user's sub-IDs, or anyone's): refused.
    for extra in ["1:100000:65536", "1:165536:10", "1:0:1"] {
        let out = env.run(
            &c,
            None,
            &["--map-uid", &own, "--map-uid", extra, "--", "/bin/true"],
        );
        out.expect_code(125)
            .expect_one_error_line("nsjail: --map-uid ");
        assert!(
            out.stderr.contains("not yours to map"),
            "{}",
            out.describe()
        );
    }
    // The plain (not setuid) helper cannot map more than your own id at all.
    let plain = Caller::plain_user();
    let out = plain.run(&[
        "--map-uid",
        &own,
        "--map-uid",
        "1:165536:10",
        "--",
        "/bin/true",
    ]);
    out.expect_code(125)
        .expect_one_error_line("nsjail: --map-uid beyond your own uid needs the setuid helper");
}

#[test]
fn a_policy_grants_sub_id_ranges() {
    root_or_skip!();
    let c = user();
    let env = PolicyEnv::with_policy(&format!(
        "[id_ranges]\nsubuid = \"/etc/nsjail/subuid\"\nsubgid = \"\"\n\
         gid = [{{ user = \"{TEST_USER}\", start = 400000, count = 100 }}]\n"
    ));
    let subuid = env.etc.path().join("subuid");
    fs::write(
        &subuid,
        format!("someone:100000:65536\n{TEST_USER}:300000:1000\n"),
    )
    .unwrap();
    let (u, g) = (c.uid, c.gid);
    let args = |uid_extra: &str, gid_extra: &str| {
        vec![
            "--map-uid".to_string(),
            format!("0:{u}:1"),
            "--map-uid".to_string(),
            uid_extra.to_string(),
            "--map-gid".to_string(),
            format!("0:{g}:1"),
            "--map-gid".to_string(),
            gid_extra.to_string(),
            "--".to_string(),
            "/bin/sh".to_string(),
            "-c".to_string(),
            SHOW_MAPS.to_string(),
        ]
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        env.run(&c, None, &a)
    };
    let out = run(args("1:300000:1000", "1:400000:100"));
    out.expect_success();
    let (uids, gids, setgroups) = maps_of(&out);
    assert_eq!(
        uids,
        [format!("0 {u} 1"), "1 300000 1000".to_string()],
        "{}",
        out.describe()
    );
    assert_eq!(
        gids,
        [format!("0 {g} 1"), "1 400000 100".to_string()],
        "{}",
        out.describe()
    );
    // Granted gid ranges allow setgroups, as newgidmap does.
    assert_eq!(setgroups, "allow", "{}", out.describe());
    // One past the grant, someone else's range: refused.
    for (ue, ge) in [
        ("1:300000:1001", "1:400000:1"),
        ("1:100000:1", "1:400000:1"),
        ("1:300000:1", "1:400000:101"),
    ] {
        run(args(ue, ge))
            .expect_code(125)
            .expect_one_error_line("nsjail: --map-");
    }
    // A sub-ID file the user could have written is not trusted.
    chown(&subuid, Some(c.uid), None).unwrap();
    let out = run(args("1:300000:1000", "1:400000:100"));
    out.expect_code(125)
        .expect_one_error_line("nsjail: /etc/nsjail/subuid is owned by uid");
}

#[test]
fn device_binds_can_be_forbidden() {
    root_or_skip!();
    let c = user();
    let env = PolicyEnv::with_policy("[allow]\ndevice_binds = false\n");
    env.run(
        &c,
        None,
        &["--dev-bind", "/dev/null", "/n", "--", "/bin/true"],
    )
    .expect_code(125)
    .expect_one_error_line("nsjail: the nsjail policy does not allow --dev-bind");
    // A plain bind of the same path is not a device bind.
    env.run(
        &c,
        None,
        &[
            "--default-view",
            "--bind",
            "/dev/null",
            "/n",
            "--",
            "/bin/true",
        ],
    )
    .expect_success();
}

#[test]
fn limit_ceilings_refuse_more_and_fill_in_what_was_not_asked() {
    root_or_skip!();
    let c = user();
    let env = PolicyEnv::with_policy(
        "[limits]\nmemory_bytes = 67108864\nwall_time_secs = 1\nopen_files = 64\n",
    );
    for args in [
        &["--memory-limit", "128M", "--", "/bin/true"][..],
        &["--wall-time-limit", "5", "--", "/bin/true"][..],
        &["--rlimit", "nofile=1000", "--", "/bin/true"][..],
    ] {
        env.run(&c, None, args)
            .expect_code(125)
            .expect_one_error_line("nsjail: ")
            .expect_no_panic();
        let out = env.run(&c, None, args);
        assert!(
            out.stderr.contains("above the policy's ceiling"),
            "{args:?}: {}",
            out.describe()
        );
    }
    // Within the ceilings: fine; and what was not asked for gets the ceiling.
    let out = env.run(&c, None, &["--", "/bin/sh", "-c", "ulimit -n"]);
    out.expect_success();
    assert_eq!(out.stdout.trim(), "64", "{}", out.describe());
    // The wall-time ceiling ends a sleeper that asked for no limit (SIGKILL: 128 + 9).
    let out = env.run(&c, None, &["--", "/bin/sleep", "30"]);
    out.expect_code(137);
}

/// Found in review: `--kill-grace` (up to an hour) carried a sandbox past the policy's CPU and
/// wall-clock ceilings, because the grace started at the limit and nothing was checked again
/// during it. The ceiling is where SIGKILL comes, whatever the grace.
#[test]
fn the_kill_grace_never_carries_a_sandbox_past_the_policys_ceilings() {
    root_or_skip!();
    let c = user();
    // A payload that ignores SIGTERM and spins; it reports how much CPU it got.
    let spinner = ["--", "/bin/sh", "-c", "trap '' TERM; while :; do :; done"];
    let timed = |env: &PolicyEnv, opts: &[&str]| {
        let dir = c.scratch();
        let status = dir.path().join("status.json");
        let status_s = status.to_string_lossy().into_owned();
        let mut args = vec!["--status-json", status_s.as_str()];
        args.extend_from_slice(opts);
        args.extend_from_slice(&spinner);
        let out = env.run(&c, Some(dir.path()), &args);
        out.expect_code(137);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&status).unwrap()).unwrap();
        let f = |k: &str| {
            report[k]
                .as_f64()
                .unwrap_or_else(|| panic!("{k}: {report}"))
        };
        (f("cpu_time"), f("wall_time"))
    };
    // The control: without a ceiling the grace is honoured (SIGTERM at 0.5 s of CPU, ignored,
    // SIGKILL 2 s later).
    let free = PolicyEnv::with_policy("");
    let (_, wall) = timed(&free, &["--time-limit", "0.5", "--kill-grace", "2"]);
    assert!(
        wall >= 2.3,
        "the grace was cut short without a ceiling: wall {wall}"
    );
    // A CPU ceiling of 1 s: asked for nothing (the limit is the ceiling) or for less, a
    // 20 s grace ends at the ceiling.
    let cpu = PolicyEnv::with_policy("[limits]\ncpu_time_secs = 1\n");
    for opts in [
        &["--kill-grace", "20"][..],
        &["--time-limit", "0.5", "--kill-grace", "20"],
    ] {
        let (cpu_time, wall) = timed(&cpu, opts);
        assert!(
            cpu_time < 1.3 && wall < 5.0,
            "{opts:?}: cpu {cpu_time} s, wall {wall} s under a 1 s CPU ceiling"
        );
    }
    // A wall-clock ceiling of 2 s likewise.
    let wall_env = PolicyEnv::with_policy("[limits]\nwall_time_secs = 2\n");
    let (_, wall) = timed(&wall_env, &["--wall-time-limit", "1", "--kill-grace", "20"]);
    assert!(wall < 3.0, "wall {wall} s under a 2 s wall-clock ceiling");
}
