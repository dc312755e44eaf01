//! The view a sandbox gets without filesystem options: the system readable but not writable, an
//! empty private home, the current directory writable (unless it is /, $HOME or above it, or
//! `--no-cwd` is given, which `--verbose` explains), and private /tmp, /var/tmp and /run.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nsjail_tests::{Caller, Output, for_each_caller, unique};

use crate::fsutil::{HostMarker, How, give, run, s, sh_argv};

/// `sh -c SCRIPT` in the default view (plus `opts`), run from `cwd` with `HOME=home`.
fn in_default_view(c: &Caller, opts: &[&str], cwd: &Path, home: &str, script: &str) -> Output {
    let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
    run(
        c,
        &sh_argv(&opts, script),
        &How {
            cwd: Some(cwd),
            env: vec![("HOME", home)],
            ..How::default()
        },
    )
}

#[test]
fn the_system_is_readable_and_not_writable() {
    let host_passwd = fs::read_to_string("/etc/passwd").unwrap();
    let name = format!("nsjail-e2e-{}", unique());
    for_each_caller(|c| {
        let mut dirs = vec!["/usr", "/usr/bin", "/usr/local", "/etc", "/bin"];
        if Path::new("/opt").is_dir() {
            dirs.push("/opt");
        }
        let script = format!(
            "/usr/bin/env true && echo env-ok; cat /etc/passwd; echo ==; \
             for d in {}; do if touch $d/{name}; then echo $d-written; fi; done; echo end",
            dirs.join(" ")
        );
        let out = in_default_view(c, &[], Path::new("/"), "/", &script);
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        let (before, after) = out.stdout.split_once("==\n").expect("two sections");
        assert_eq!(before, format!("env-ok\n{host_passwd}"), "{what}");
        assert_eq!(after, "end\n", "a system directory was writable: {what}");
        assert_eq!(
            out.stderr.matches("Read-only file system").count(),
            dirs.len(),
            "{what}"
        );
        for d in &dirs {
            assert!(!Path::new(d).join(&name).exists(), "{what}");
        }
    });
}

#[test]
fn home_is_an_empty_private_directory() {
    for_each_caller(|c| {
        // A real home with something in it, and a home that does not exist on the host.
        let base = c.scratch();
        let home = base.path().join("home");
        fs::create_dir(&home).unwrap();
        fs::write(home.join("private-note"), "mine\n").unwrap();
        give(c, &home);
        let missing = format!("/home/nsjail-e2e-{}", unique());
        for h in [s(&home), missing.clone()] {
            let script = "test -d \"$HOME\" && echo is-dir; ls -A \"$HOME\" | wc -l; \
                 stat -c '%a %u' \"$HOME\"; touch \"$HOME/x\" && echo writable; \
                 cat \"$HOME/private-note\" 2>&1";
            let out = in_default_view(c, &[], Path::new("/"), &h, script);
            out.expect_code(1);
            let what = format!("[{}] HOME={h}: {}", c.name(), out.describe());
            let l = out.lines();
            assert_eq!(l[..4], ["is-dir", "0", "700 0", "writable"], "{what}");
            assert!(!out.stdout.contains("mine"), "{what}");
        }
        assert!(
            !home.join("x").exists(),
            "a write in $HOME reached the host"
        );
        assert!(
            !Path::new(&missing).exists(),
            "{missing} was made on the host"
        );
    });
}

#[test]
fn the_current_directory_is_bound_writable_and_is_the_working_directory() {
    for_each_caller(|c| {
        let cwd = c.scratch();
        fs::write(cwd.path().join("input"), "from the host\n").unwrap();
        let script = "pwd; cat input; echo from-inside > output; ls -A /tmp | wc -l";
        let out = in_default_view(c, &[], cwd.path(), "/", script);
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        assert_eq!(
            out.lines()[..2],
            [s(cwd.path()), "from the host".to_string()],
            "{what}"
        );
        let output = cwd.path().join("output");
        assert_eq!(
            fs::read_to_string(&output).ok().as_deref(),
            Some("from-inside\n"),
            "{what}"
        );
        assert_eq!(fs::metadata(&output).unwrap().uid(), c.uid, "{what}");
    });
}

#[test]
fn tmp_var_tmp_and_run_are_private_and_empty() {
    let marker = format!("nsjail-e2e-host-marker-{}", unique());
    let _host_marker = HostMarker::new(&marker);
    let inside = format!("nsjail-e2e-inside-{}", unique());
    for_each_caller(|c| {
        let script = format!(
            "for d in /tmp /var/tmp /run; do echo $d $(stat -c %a $d) $(ls -A $d | wc -l); done; \
             test -e /tmp/{marker} && echo host-marker-visible; \
             for d in /tmp /var/tmp /run; do echo x > $d/{inside} || exit 3; done; echo wrote"
        );
        let out = in_default_view(c, &[], Path::new("/"), "/", &script);
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        assert_eq!(
            out.lines(),
            ["/tmp 1777 0", "/var/tmp 1777 0", "/run 755 0", "wrote"],
            "{what}"
        );
        for d in ["/tmp", "/var/tmp", "/run"] {
            assert!(
                !Path::new(d).join(&inside).exists(),
                "{d}/{inside} written inside is on the host: {what}"
            );
        }
    });
}

/// The `--verbose` lines of the default view.
fn notes(out: &Output) -> Vec<&str> {
    out.stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("nsjail: default view:"))
        .collect()
}

#[test]
fn the_current_directory_is_not_bound_when_it_is_root_home_or_above_or_with_no_cwd() {
    for_each_caller(|c| {
        let base = c.scratch();
        fs::write(base.path().join("in-base"), "x").unwrap();
        let home = base.path().join("home");
        fs::create_dir(&home).unwrap();
        fs::write(home.join("in-home"), "x").unwrap();
        give(c, &home);
        let (b, h) = (s(base.path()), s(&home));
        let script = format!(
            "test -e {b}/in-base && echo base-visible; test -e {h}/in-home && echo home-visible; \
             pwd"
        );
        // (cwd, HOME, options, what --verbose must say)
        let cases: [(&str, &str, &[&str], &str); 4] = [
            (&b, "/", &["--no-cwd"], "--no-cwd"),
            ("/", &h, &[], "the current directory is /, not bound"),
            (&h, &h, &[], "is your home or above it, not bound"),
            (&b, &h, &[], "is your home or above it, not bound"),
        ];
        for (cwd, home, opts, says) in cases {
            let mut with_verbose = vec!["--verbose"];
            with_verbose.extend_from_slice(opts);
            let out = in_default_view(c, &with_verbose, Path::new(cwd), home, &script);
            out.expect_success();
            let what = format!(
                "[{}] cwd {cwd}, HOME {home}, {opts:?}: {}",
                c.name(),
                out.describe()
            );
            let l = out.lines();
            assert!(
                !l.iter().any(|l| l.ends_with("-visible")),
                "the current directory was bound: {what}"
            );
            // The working directory inside: where we were if that exists inside (it does when
            // it is $HOME or above it: the empty home is made there), else /.
            let expect_pwd = if Path::new(home).starts_with(cwd) {
                cwd
            } else {
                "/"
            };
            assert_eq!(l.last().map(String::as_str), Some(expect_pwd), "{what}");
            let n = notes(&out);
            assert!(
                n.len() == 1 && n[0].contains(says),
                "--verbose should say {says:?}: {what}"
            );
            if cwd != "/" {
                assert!(n[0].contains(cwd) || opts.contains(&"--no-cwd"), "{what}");
            }
            // Quiet without --verbose.
            let out = in_default_view(c, opts, Path::new(cwd), home, &script);
            out.expect_success();
            assert_eq!(out.stderr, "", "{}", out.describe());
        }
        // And the control: from the base directory with an unrelated home, it is bound.
        let out = in_default_view(c, &["--verbose"], base.path(), "/", &script);
        out.expect_success();
        let what = format!("[{}] {}", c.name(), out.describe());
        assert_eq!(
            out.lines(),
            ["base-visible", "home-visible", b.as_str()],
            "{what}"
        );
        let n = notes(&out);
        assert!(
            n.len() == 1 && n[0].contains(&format!("binding the current directory {b}")),
            "{what}"
        );
    });
}
