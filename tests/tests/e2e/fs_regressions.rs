//! Regression tests for product bugs the issue-3 tests found (all fixed):
//!
//! 1. The staging root shows up inside when a bind's source contains `/tmp` (where the new root
//!    is assembled): the recursive clone of the source is taken after the new root was attached
//!    on `/tmp`, so it carries the staging tmpfs and its submounts along. A bind of `/tmp` (the
//!    default view used to make one from cwd `/tmp`; it no longer binds a shared directory) then
//!    shows the new root itself, and writes there never reach the host; `--ro-bind / /` hides the
//!    host's `/tmp` behind the staging tmpfs.
//! 2. `--file FD` with an fd the CLI does not have open prints two lines (one from the helper).
//! 3. `--perms -1` / `--bind-data -3 DST`: the error does not name the option.

use std::fs;
use std::path::Path;

use nsjail_tests::{for_each_caller, unique};

use crate::fsutil::{HostMarker, How, parse_mountinfo, run, run_plain, sh_argv, system_args};

#[test]
fn a_bind_of_the_hosts_tmp_shows_it_and_not_the_staging_root() {
    let marker = format!("nsjail-e2e-host-marker-{}", unique());
    let _host_marker = HostMarker::new(&marker);
    for_each_caller(|c| {
        let written = format!("nsjail-e2e-written-{}", unique());
        let script = format!(
            "pwd; test -e {marker} && echo host-marker-visible; echo x > {written}; \
             echo ==; cat /proc/self/mountinfo"
        );
        let bind_tmp: Vec<String> = ["--default-view", "--bind", "/tmp", "/tmp"]
            .map(String::from)
            .to_vec();
        let out = run(
            c,
            &sh_argv(&bind_tmp, &script),
            &How {
                cwd: Some(Path::new("/tmp")),
                env: vec![("HOME", "/")],
                ..How::default()
            },
        );
        let host_written = Path::new("/tmp").join(&written);
        let reached_host = host_written.exists();
        let _ = fs::remove_file(&host_written);
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        let (head, mi) = out.stdout.split_once("==\n").expect("two sections");
        let staged: Vec<String> = parse_mountinfo(mi)
            .into_iter()
            .filter(|m| m.point.starts_with("/tmp/"))
            .map(|m| format!("{} {} {}", m.point, m.fstype, m.root))
            .collect();
        assert!(
            staged.is_empty(),
            "the staging root and its mounts are visible inside under /tmp: {staged:?}: {what}"
        );
        assert_eq!(head, "/tmp\nhost-marker-visible\n", "{what}");
        assert!(
            reached_host,
            "a file written in the current directory (/tmp) did not reach the host: {what}"
        );
    });
}

#[test]
fn ro_bind_of_the_whole_host_shows_its_tmp_not_the_staging_root() {
    let marker = format!("nsjail-e2e-host-marker-{}", unique());
    let _host_marker = HostMarker::new(&marker);
    for_each_caller(|c| {
        let opts: Vec<String> = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
            .map(String::from)
            .to_vec();
        let script = format!("cat /tmp/{marker}; echo ==; cat /proc/self/mountinfo");
        let out = run_plain(c, &sh_argv(&opts, &script));
        let what = format!("[{}] {}", c.name(), out.describe());
        let (head, mi) = out.stdout.split_once("==\n").unwrap_or(("", ""));
        let host_tmp_is_mount = crate::fsutil::host_mounts()
            .iter()
            .any(|m| m.point == "/tmp");
        let tmp_mounts: Vec<String> = parse_mountinfo(mi)
            .into_iter()
            .filter(|m| m.point == "/tmp" || m.point.starts_with("/tmp/"))
            .map(|m| format!("{} {} {}", m.point, m.fstype, m.root))
            .collect();
        if !host_tmp_is_mount {
            assert!(
                tmp_mounts.is_empty(),
                "the host has no mount at /tmp, the sandbox has {tmp_mounts:?}: {what}"
            );
        }
        assert_eq!(head, "host\n", "the host's /tmp is hidden inside: {what}");
    });
}

#[test]
fn file_with_a_fd_that_is_not_open_is_one_line() {
    for_each_caller(|c| {
        let mut opts = system_args();
        opts.extend(["--file", "77", "/f"].map(String::from));
        let out = run_plain(c, &sh_argv(&opts, "echo payload-ran"));
        out.expect_code(125)
            .expect_no_panic()
            .expect_one_error_line("nsjail: ");
        assert!(
            out.stderr.contains("--file") && out.stderr.contains("77"),
            "[{}] the error should name --file and fd 77: {}",
            c.name(),
            out.describe()
        );
    });
}

#[test]
fn a_negative_number_names_its_option() {
    for_each_caller(|c| {
        for (ops, opt) in [
            (vec!["--perms", "-1", "--dir", "/d"], "--perms"),
            (vec!["--bind-data", "-3", "/f"], "--bind-data"),
        ] {
            let mut opts = system_args();
            opts.extend(ops.iter().map(|s| s.to_string()));
            let out = run_plain(c, &sh_argv(&opts, "echo payload-ran"));
            out.expect_code(125)
                .expect_no_panic()
                .expect_one_error_line("nsjail: ");
            assert!(
                out.stderr.contains(opt),
                "[{}] the error should name {opt}: {}",
                c.name(),
                out.describe()
            );
        }
    });
}
