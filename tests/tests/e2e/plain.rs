//! The plain-build path: an ordinary user runs both binaries without any setuid bit. Unprivileged
//! user namespaces are allowed on the test machines, so everything still works with the user's
//! own ids mapped.

use nix::sys::signal::Signal;
use nsjail_tests::{Caller, root_or_skip};

#[test]
fn an_ordinary_user_runs_the_non_setuid_helper() {
    root_or_skip!();
    let c = Caller::plain_user();
    assert!(c.uid != 0);

    crate::namespaces::basics(&c);

    c.sh(&[], "kill -9 $$").expect_code(137).expect_no_panic();
    c.run(&["--", "/nonexistent-e2e"])
        .expect_code(127)
        .expect_one_error_line("nsjail:");

    let out = c.run_stdin(&["--", "/bin/cat"], b"through\n");
    out.expect_success();
    assert_eq!(out.stdout, "through\n", "{}", out.describe());

    crate::signals::forwarded(&c, &[], Signal::SIGTERM, "TERM");

    let out = c.run(&["--verbose", "--", "/bin/true"]);
    out.expect_success().expect_no_panic();
    assert!(
        !out.stderr_lines().is_empty()
            && out.stderr_lines().iter().all(|l| l.starts_with("nsjail: ")),
        "{}",
        out.describe()
    );
}
