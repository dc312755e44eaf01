//! How the CLI finds its helper: `--helper`, then `NSJAIL_HELPER`, then next to itself, then
//! `../libexec/nsjail/` (covered by every setuid-user test), then the install location.

use std::path::Path;

use nsjail_tests::{Caller, Output, Running, WAY_IN_VAR, helper_bin, nsjail_bin, scratch_dir};

/// Where the CLI looks last (`NSJAIL_INSTALLED_HELPER` when it was built, which the tests do
/// not set).
const INSTALLED: &str = "/usr/local/libexec/nsjail/nsjail-helper";

fn run(c: &Caller, nsjail: &Path, helper_env: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = c.command_for(nsjail);
    cmd.arg("run").args(args);
    if let Some(h) = helper_env {
        cmd.env("NSJAIL_HELPER", h);
    }
    let what = format!(
        "{} run {args:?} with NSJAIL_HELPER={helper_env:?}",
        nsjail.display()
    );
    Running::spawn(&mut cmd, None, &what).wait()
}

/// Run `nsjail run ARGS` as root in a private mount namespace where `/usr/local` is an empty
/// tmpfs (so whatever is installed there, as in the guest of `cargo xtask vmtest`, is out of
/// sight), with `helper` bound at the install location when given.
fn run_without_install(nsjail: &Path, helper: Option<&Path>, args: &[&str]) -> Output {
    let mut script = String::from("mount -t tmpfs tmpfs /usr/local");
    if helper.is_some() {
        let dir = Path::new(INSTALLED).parent().unwrap().display().to_string();
        script.push_str(&format!(
            " && mkdir -p {dir} && touch {INSTALLED} && mount --bind \"$1\" {INSTALLED}"
        ));
    }
    script.push_str(" && shift && exec \"$@\"");
    let mut cmd = std::process::Command::new(nsjail_tests::tool("unshare"));
    cmd.args(["--mount", "--propagation", "private"])
        .arg(nsjail_tests::tool("sh"))
        .args(["-c", &script, "sh"])
        .arg(helper.unwrap_or(Path::new("-")))
        .arg(nsjail)
        .arg("run")
        .args(args)
        .env_clear()
        .env("PATH", nsjail_tests::ROOT_PATH)
        .env("HOME", "/root")
        .env("NSJAIL_SOCKET", "none")
        .env(WAY_IN_VAR, "root")
        .current_dir("/");
    let what = format!(
        "{} run {args:?} with /usr/local empty{}",
        nsjail.display(),
        if helper.is_some() {
            " but the install location"
        } else {
            ""
        }
    );
    Running::spawn(&mut cmd, None, &what)
        .expect_way_in(nsjail_tests::WayIn::Root)
        .wait()
}

#[test]
fn helper_lookup_order() {
    // As root: this is about the CLI's search, not privilege; root can also hide the install
    // location in a mount namespace of its own.
    if !nsjail_tests::require_root("helper_lookup_order") {
        return;
    }
    let c = Caller::root();
    let real = helper_bin();
    let real = real.to_str().unwrap();
    let found_by = |out: &Output, path: &str, how: &str| {
        out.expect_success();
        assert!(
            out.stderr
                .contains(&format!("nsjail: helper {path} (found by {how};")),
            "expected the helper {path} found by {how}:\n{}",
            out.describe()
        );
    };

    // --helper beats NSJAIL_HELPER.
    let out = run(
        &c,
        &nsjail_bin(),
        Some("/nonexistent-e2e/helper"),
        &["--verbose", "--helper", real, "--", "/bin/true"],
    );
    found_by(&out, real, "--helper");
    // NSJAIL_HELPER beats the helper next to the CLI: the CLI tries to start the one it names.
    run(
        &c,
        &nsjail_bin(),
        Some("/nonexistent-e2e/helper"),
        &["--", "/bin/true"],
    )
    .expect_code(125)
    .expect_no_panic()
    .expect_one_error_line(
        "nsjail: cannot start helper /nonexistent-e2e/helper: No such file or directory",
    );
    // The control: without it, the helper next to the CLI.
    let out = run(&c, &nsjail_bin(), None, &["--verbose", "--", "/bin/true"]);
    found_by(&out, real, "next to nsjail");

    // A CLI alone in a directory finds the helper through NSJAIL_HELPER ...
    let alone = scratch_dir();
    let cli = alone.path().join("nsjail");
    nsjail_tests::install_file(&nsjail_bin(), &cli, 0o755);
    let out = run(&c, &cli, Some(real), &["--verbose", "--", "/bin/true"]);
    found_by(&out, real, "$NSJAIL_HELPER");
    // ... or at the install location ...
    let out = run_without_install(&cli, Some(&helper_bin()), &["--verbose", "--", "/bin/true"]);
    found_by(&out, INSTALLED, "install location");
    // ... and without either it says where it looked.
    let here = alone.path().display();
    run_without_install(&cli, None, &["--", "/bin/true"])
        .expect_code(125)
        .expect_no_panic()
        .expect_one_error_line(&format!(
            "nsjail: daemon not tried ($NSJAIL_SOCKET is `none`); nsjail-helper not found \
             (looked in {here}/nsjail-helper, {here}/../libexec/nsjail/nsjail-helper, \
             {INSTALLED}); give --helper PATH or set NSJAIL_HELPER"
        ));
}
