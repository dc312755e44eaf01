//! How the CLI finds its helper: `--helper`, then `NSJAIL_HELPER`, then next to itself, then
//! `../libexec/nsjail/` (covered by every setuid-user test), then the install location.

use std::path::Path;

use nsjail_tests::{Caller, Output, Running, helper_bin, nsjail_bin, scratch_dir};

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

#[test]
fn helper_lookup_order() {
    // As whoever runs the tests (root in CI): this is about the CLI's search, not privilege.
    let c = if nsjail_tests::is_root() {
        Caller::root()
    } else {
        Caller::myself()
    };
    let real = helper_bin();
    let real = real.to_str().unwrap();

    // --helper beats NSJAIL_HELPER.
    run(
        &c,
        &nsjail_bin(),
        Some("/nonexistent-e2e/helper"),
        &["--helper", real, "--", "/bin/true"],
    )
    .expect_success();
    // NSJAIL_HELPER beats the helper next to the CLI.
    run(
        &c,
        &nsjail_bin(),
        Some("/nonexistent-e2e/helper"),
        &["--", "/bin/true"],
    )
    .expect_code(125)
    .expect_one_error_line("nsjail:");

    // A CLI alone in a directory finds the helper through NSJAIL_HELPER ...
    let alone = scratch_dir();
    let cli = alone.path().join("nsjail");
    nsjail_tests::install_file(&nsjail_bin(), &cli, 0o755);
    run(&c, &cli, Some(real), &["--", "/bin/true"]).expect_success();
    // ... and without it (and with no helper installed system-wide) it says it found none.
    if !Path::new("/usr/local/libexec/nsjail/nsjail-helper").exists() {
        let out = run(&c, &cli, None, &["--", "/bin/true"]);
        out.expect_code(125)
            .expect_no_panic()
            .expect_one_error_line("nsjail:");
    }
}
