//! Capabilities: the payload has none by default (all five sets empty, no_new_privs), cannot get
//! them back, and `--cap-add` gives exactly the capabilities asked for, inside the sandbox's own
//! user namespace only.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};

use nsjail_tests::hardening::{GRANT_CAPS_AND_USERNS, PolicyEnv, probe_dir, probe_result};
use nsjail_tests::{Caller, for_each_caller, install_file, tool};

const SETS: [&str; 5] = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"];

/// The five capability sets and NoNewPrivs of the payload, from its /proc/self/status; run
/// under `grant` (a policy) when given.
fn status_fields(c: &Caller, grant: Option<&PolicyEnv>, opts: &[&str]) -> Vec<(String, String)> {
    let script = "cat /proc/self/status";
    let out = match grant {
        Some(env) => env.sh_as(c, opts, script),
        None => c.sh(opts, script),
    };
    out.expect_success();
    out.lines()
        .iter()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            (SETS.contains(&k) || k == "NoNewPrivs").then(|| (k.to_string(), v.trim().to_string()))
        })
        .collect()
}

#[test]
fn the_payload_has_no_capabilities_by_default() {
    for_each_caller(|c| {
        let f = status_fields(c, None, &[]);
        assert_eq!(f.len(), 6, "[{}] {f:?}", c.name());
        for (k, v) in &f {
            let want = if k == "NoNewPrivs" {
                "1"
            } else {
                "0000000000000000"
            };
            assert_eq!(v, want, "[{}] {k} {f:?}", c.name());
        }
        // A non-root uid inside too.
        for (k, v) in status_fields(c, None, &["--uid", "1000"]) {
            if k != "NoNewPrivs" {
                assert_eq!(v, "0000000000000000", "[{}] --uid 1000: {k}", c.name());
            }
        }
    });
}

#[test]
fn cap_add_keeps_exactly_those_in_every_set() {
    // --cap-add needs the policy's grant for users of the setuid helper and the daemon
    // (safe_defaults.rs).
    let grant = PolicyEnv::with_policy(GRANT_CAPS_AND_USERNS);
    for_each_caller(|c| {
        // CAP_NET_ADMIN is 12, CAP_SYS_ADMIN 21.
        let want = format!("{:016x}", (1u64 << 12) | (1 << 21));
        for opts in [
            &["--cap-add", "CAP_SYS_ADMIN", "--cap-add", "net_admin"][..],
            &[
                "--cap-add",
                "ALL",
                "--cap-drop",
                "ALL",
                "--cap-add",
                "CAP_SYS_ADMIN",
                "--cap-add",
                "CAP_NET_ADMIN",
            ][..],
            &[
                "--uid",
                "1000",
                "--cap-add",
                "CAP_SYS_ADMIN",
                "--cap-add",
                "CAP_NET_ADMIN",
            ][..],
        ] {
            let f = status_fields(c, Some(&grant), opts);
            for (k, v) in &f {
                if k != "NoNewPrivs" {
                    // --cap-add ALL --cap-drop ALL leaves nothing: the later adds do not count
                    // after a drop of the same capability.
                    let w = if opts.contains(&"--cap-drop") {
                        "0000000000000000".to_string()
                    } else {
                        want.clone()
                    };
                    assert_eq!(v, &w, "[{}] {opts:?}: {k} {f:?}", c.name());
                }
            }
        }
        // The init behind the payload (PID 1 inside) keeps none of them, in any set: it shares
        // the payload's bounding-set walk and then drops the payload's own capabilities too.
        let out = grant.sh_as(
            c,
            &["--cap-add", "CAP_SYS_ADMIN", "--cap-add", "net_admin"],
            "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/1/status; cat /proc/1/cmdline | tr '\\0' ' '",
        );
        out.expect_success();
        let lines = out.lines();
        assert!(
            lines.len() == 6 && lines[5].contains("nsjail-helper"),
            "[{}] PID 1 is the helper's init: {}",
            c.name(),
            out.describe()
        );
        for l in &lines[..5] {
            assert!(
                l.ends_with("\t0000000000000000"),
                "[{}] the init: {l}\n{}",
                c.name(),
                out.describe()
            );
        }
        let f = status_fields(
            c,
            Some(&grant),
            &["--cap-add", "ALL", "--cap-drop", "CAP_SYS_ADMIN"],
        );
        let eff = &f.iter().find(|(k, _)| k == "CapEff").unwrap().1;
        let bits = u64::from_str_radix(eff, 16).unwrap();
        assert!(
            bits & (1 << 21) == 0 && bits & 1 != 0,
            "[{}] {f:?}",
            c.name()
        );
    });
}

#[test]
fn capabilities_cannot_be_regained() {
    let grant = PolicyEnv::with_policy(GRANT_CAPS_AND_USERNS);
    for_each_caller(|c| {
        let dir = probe_dir(c);
        for check in ["capset-all", "ambient-raise"] {
            c.expect_probe(dir.path(), &[], check, None, "EPERM");
        }
        // mount needs CAP_SYS_ADMIN: refused, and granted with --cap-add (the control).
        let target = dir.path().to_str().unwrap();
        let out = c.probe(dir.path(), &[], "mount-tmpfs", Some(target));
        assert_eq!(
            probe_result(&out, "mount-tmpfs"),
            "EPERM",
            "{}",
            out.describe()
        );
        let out = grant.probe_as(
            c,
            dir.path(),
            &["--cap-add", "CAP_SYS_ADMIN"],
            "mount-tmpfs",
            Some(target),
        );
        assert_eq!(
            probe_result(&out, "mount-tmpfs"),
            "ok",
            "{}",
            out.describe()
        );

        // A setuid-root program inside gains nothing: no_new_privs, and host root is not mapped.
        let suid_cat = dir.path().join("suid-cat");
        install_file(std::path::Path::new(&tool("cat")), &suid_cat, 0o755);
        chown(&suid_cat, Some(0), Some(0)).unwrap();
        fs::set_permissions(&suid_cat, fs::Permissions::from_mode(0o4755)).unwrap();
        let out = c.run_in(dir.path(), &["--", "./suid-cat", "/proc/self/status"]);
        out.expect_success();
        let field = |name: &str| {
            out.lines()
                .iter()
                .find_map(|l| {
                    l.strip_prefix(name)
                        .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                })
                .unwrap_or_default()
        };
        assert_eq!(
            field("Uid:"),
            vec!["0"; 4],
            "[{}] {}",
            c.name(),
            out.describe()
        );
        assert_eq!(field("CapEff:"), ["0000000000000000"], "{}", out.describe());
        assert_eq!(field("CapPrm:"), ["0000000000000000"], "{}", out.describe());
    });
}

#[test]
fn capabilities_act_only_inside_the_sandbox() {
    nsjail_tests::root_or_skip!();
    let c = Caller::setuid_user();
    let dir = probe_dir(&c);
    // CAP_DAC_OVERRIDE inside overrides permissions on the caller's own files (their owner is
    // mapped)…
    let own = dir.path().join("own-0000");
    fs::write(&own, "secret").unwrap();
    chown(&own, Some(c.uid), Some(c.gid)).unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o000)).unwrap();
    let own = own.to_str().unwrap();
    let caps = [
        "--cap-add",
        "CAP_DAC_OVERRIDE",
        "--cap-add",
        "CAP_DAC_READ_SEARCH",
    ];
    let grant = PolicyEnv::with_policy(GRANT_CAPS_AND_USERNS);
    let out = grant.probe_as(&c, dir.path(), &caps, "open-read", Some(own));
    assert_eq!(probe_result(&out, "open-read"), "ok", "{}", out.describe());
    let out = c.probe(dir.path(), &[], "open-read", Some(own));
    assert_eq!(
        probe_result(&out, "open-read"),
        "EACCES",
        "{}",
        out.describe()
    );
    // …and never on a host file of someone else: root's 0600 file stays closed.
    let roots = dir.path().join("root-0600");
    fs::write(&roots, "secret").unwrap();
    fs::set_permissions(&roots, fs::Permissions::from_mode(0o600)).unwrap();
    let out = grant.probe_as(
        &c,
        dir.path(),
        &caps,
        "open-read",
        Some(roots.to_str().unwrap()),
    );
    assert_eq!(
        probe_result(&out, "open-read"),
        "EACCES",
        "{}",
        out.describe()
    );
}
