//! `--verbose` says how the helper was reached and each step, on stderr only.

use nsjail_tests::{CallerKind, for_each_caller};

#[test]
fn verbose_says_how_the_helper_was_reached() {
    for_each_caller(|c| {
        let out = c.run(&["--verbose", "--", "/bin/echo", "payload-ran"]);
        out.expect_success().expect_no_panic();
        assert_eq!(
            out.stdout,
            "payload-ran\n",
            "[{}] {}",
            c.name(),
            out.describe()
        );
        let lines = out.stderr_lines();
        assert!(
            lines.len() >= 2,
            "[{}] expected several steps: {}",
            c.name(),
            out.describe()
        );
        for l in &lines {
            assert!(
                l.starts_with("nsjail: "),
                "[{}] stray stderr line {l:?}: {}",
                c.name(),
                out.describe()
            );
        }
        // The helper's path, possibly spelt differently (`bin/../libexec/...`).
        let canon = std::fs::canonicalize(&c.helper).unwrap();
        let named = out
            .stderr
            .split(|ch: char| ch.is_whitespace() || "()[],;'\"`".contains(ch))
            .filter(|w| w.starts_with('/'))
            .any(|w| std::fs::canonicalize(w).is_ok_and(|p| p == canon));
        assert!(
            named,
            "[{}] --verbose should name the helper {}: {}",
            c.name(),
            c.helper.display(),
            out.describe()
        );
        if c.kind == CallerKind::SetuidUser {
            assert!(
                out.stderr.to_lowercase().contains("setuid"),
                "[{}] --verbose should say the helper is setuid: {}",
                c.name(),
                out.describe()
            );
        }
        if c.via_daemon() {
            assert!(
                out.stderr.contains("nsjail: daemon at ")
                    && out.stderr.contains("daemon running as root"),
                "[{}] --verbose should say the daemon was used: {}",
                c.name(),
                out.describe()
            );
        } else {
            assert!(
                !out.stderr.contains("nsjail: daemon at "),
                "[{}] {}",
                c.name(),
                out.describe()
            );
        }
        // Without --verbose, nothing on stderr.
        let out = c.run(&["--", "/bin/echo", "quiet"]);
        out.expect_success();
        assert_eq!(out.stderr, "", "[{}] {}", c.name(), out.describe());
    });
}
