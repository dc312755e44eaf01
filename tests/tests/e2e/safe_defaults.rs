//! Safe defaults: without a policy file, the setuid helper and the daemon
//! give their users no capabilities (`--cap-add`) and no nested user namespaces
//! (`--allow-userns`); both need a grant in the policy, and the refusal names the key. A helper
//! without privilege and a root caller keep both: the kernel gives them as much without nsjail.
//!
//! Why it matters: where the administrator turned off unprivileged user namespaces
//! (`kernel.unprivileged_userns_clone=0` on Debian), a setuid helper that owns the sandbox's
//! user namespace as root would otherwise hand every user `CAP_SYS_ADMIN` in it, and with it the
//! kernel code (mounting file systems, …) the administrator meant to withhold.

use std::path::Path;

use nsjail_tests::hardening::{GRANT_CAPS_AND_USERNS, PolicyEnv, probe_dir, probe_result};
use nsjail_tests::{Caller, Output, Running, Sysctl, root_or_skip, system_install};

const REFUSED_CAP_ADD: &str = "nsjail: the nsjail policy does not allow --cap-add: an \
                               administrator can grant it with `allow.cap_add = true` in \
                               /etc/nsjail/policy.toml";
const REFUSED_USERNS: &str = "nsjail: the nsjail policy does not allow --allow-userns: an \
                              administrator can grant it with `allow.userns = true` in \
                              /etc/nsjail/policy.toml";

/// The ordinary user, through the setuid helper and through the daemon.
fn users() -> [Caller; 2] {
    [Caller::setuid_user(), Caller::daemon_user()]
}

#[track_caller]
fn expect_result(out: &Output, check: &str, want: &str, ctx: &str) {
    assert_eq!(
        probe_result(out, check),
        want,
        "{ctx}: {check}\n{}",
        out.describe()
    );
}

/// What a user gets without a policy, and with one that grants both; `nested_granted` is what
/// a nested user namespace meets with `--allow-userns` granted (the kernel's answer).
fn check_users(nested_granted: &str) {
    let none = PolicyEnv::new();
    let granted = PolicyEnv::with_policy(GRANT_CAPS_AND_USERNS);
    for c in users() {
        let ctx = format!("[{}]", c.name());
        let dir = probe_dir(&c);
        let target = dir.path().to_str().unwrap();
        // The control: without a policy a plain sandbox runs.
        none.run_as(&c, None, &["--", "/bin/true"]).expect_success();
        none.run_as(&c, None, &["--cap-add", "SYS_ADMIN", "--", "/bin/true"])
            .expect_code(125)
            .expect_one_error_line(REFUSED_CAP_ADD);
        none.run_as(&c, None, &["--allow-userns", "--", "/bin/true"])
            .expect_code(125)
            .expect_one_error_line(REFUSED_USERNS);
        // Inside: no capability to mount, no nested user namespace, also without the filter.
        let out = none.probe_as(&c, dir.path(), &[], "mount-tmpfs", Some(target));
        expect_result(&out, "mount-tmpfs", "EPERM", &ctx);
        for opts in [&[][..], &["--seccomp", "none"][..]] {
            let out = none.probe_as(&c, dir.path(), opts, "unshare-user", None);
            expect_result(&out, "unshare-user", "EPERM", &format!("{ctx} {opts:?}"));
        }
        let out = none.sh_as(&c, &[], "unshare -U true; echo rc=$?");
        assert!(out.stdout.contains("rc=1"), "{ctx} {}", out.describe());

        // With the grant, both are accepted and do what they say.
        let out = granted.probe_as(
            &c,
            dir.path(),
            &["--cap-add", "SYS_ADMIN"],
            "mount-tmpfs",
            Some(target),
        );
        expect_result(&out, "mount-tmpfs", "ok", &format!("{ctx} granted"));
        let out = granted.probe_as(&c, dir.path(), &["--allow-userns"], "unshare-user", None);
        expect_result(
            &out,
            "unshare-user",
            nested_granted,
            &format!("{ctx} granted"),
        );
    }
}

#[test]
fn without_a_policy_users_get_no_capabilities_and_no_nested_user_namespaces() {
    root_or_skip!();
    check_users("ok");
    // Root and a helper without privilege keep both without a policy.
    let none = PolicyEnv::new();
    let root = Caller::root();
    let dir = probe_dir(&root);
    let target = dir.path().to_str().unwrap();
    let out = none.probe_as(
        &root,
        dir.path(),
        &["--cap-add", "SYS_ADMIN"],
        "mount-tmpfs",
        Some(target),
    );
    expect_result(&out, "mount-tmpfs", "ok", "[root]");
    let out = none.probe_as(&root, dir.path(), &["--allow-userns"], "unshare-user", None);
    expect_result(&out, "unshare-user", "ok", "[root]");
    let plain = Caller::plain_user();
    let dir = probe_dir(&plain);
    let target = dir.path().to_str().unwrap();
    let out = plain.probe(
        dir.path(),
        &["--cap-add", "SYS_ADMIN"],
        "mount-tmpfs",
        Some(target),
    );
    expect_result(&out, "mount-tmpfs", "ok", "[plain helper]");
    let out = plain.probe(dir.path(), &["--allow-userns"], "unshare-user", None);
    expect_result(&out, "unshare-user", "ok", "[plain helper]");
}

#[test]
fn the_defaults_hold_where_unprivileged_user_namespaces_are_off() {
    root_or_skip!();
    const KNOB: &str = "/proc/sys/kernel/unprivileged_userns_clone";
    if !Path::new(KNOB).exists() {
        // Debian's kernels have the switch; the Debian guest of `cargo xtask vmtest` runs this.
        assert!(
            system_install().is_none(),
            "the Debian guest's kernel must have kernel.unprivileged_userns_clone"
        );
        nsjail_tests::skip(
            "the_defaults_hold_where_unprivileged_user_namespaces_are_off",
            "no kernel.unprivileged_userns_clone",
        );
        return;
    }
    let _off = Sysctl::set(KNOB, "0");
    // The control: the switch is in force for the user on the host.
    let user = Caller::setuid_user();
    let mut cmd = user.command_for("/usr/bin/unshare");
    cmd.args(["-U", "/bin/true"]);
    let out = Running::spawn(&mut cmd, None, "unshare -U true (the user, on the host)").wait();
    assert!(
        !out.status.success() && out.stderr.contains("Operation not permitted"),
        "with {KNOB}=0 the user's own unshare -U must fail: {}",
        out.describe()
    );
    // Through the setuid helper and the daemon: a plain sandbox, no capabilities, no nested
    // user namespaces; with the grant, capabilities work and a nested user namespace is still
    // refused by the kernel (its switch holds inside too).
    check_users("EPERM");
}
