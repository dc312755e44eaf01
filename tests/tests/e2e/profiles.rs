//! Profiles: found only where they may be, trusted only when nobody else could have written
//! them, resolved with their includes, overridden by the command line, and never visible to a
//! sandbox.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

use nsjail_tests::{Caller, Output, Running, for_each_caller, shell_words, unique};

/// A home directory owned by the caller, with `~/.config/nsjail/profiles`.
struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
    profiles: PathBuf,
}

fn home_for(c: &Caller) -> Home {
    let dir = c.scratch();
    let home = dir.path().join("home");
    let profiles = home.join(".config/nsjail/profiles");
    fs::create_dir_all(&profiles).unwrap();
    for d in [
        home.clone(),
        home.join(".config"),
        home.join(".config/nsjail"),
        profiles.clone(),
    ] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        if nsjail_tests::is_root() {
            chown(&d, Some(c.uid), Some(c.gid)).unwrap();
        }
    }
    Home {
        _dir: dir,
        home,
        profiles,
    }
}

fn write_profile(c: &Caller, h: &Home, name: &str, text: &str) -> PathBuf {
    let p = h.profiles.join(format!("{name}.toml"));
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    if nsjail_tests::is_root() {
        chown(&p, Some(c.uid), Some(c.gid)).unwrap();
    }
    p
}

/// `nsjail ARGS` as `c` with HOME set and the working directory `cwd`.
fn nsjail(c: &Caller, h: &Home, cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = c.nsjail_cmd();
    cmd.args(args).env("HOME", &h.home).current_dir(cwd);
    let what = format!("[{}] nsjail {}", c.name(), shell_words(args));
    Running::spawn(&mut cmd, None, &what).wait()
}

#[test]
fn a_profile_sets_options_and_the_command_line_wins() {
    for_each_caller(|c| {
        let h = home_for(c);
        let base = format!("base{}", unique());
        let top = format!("top{}", unique());
        write_profile(
            c,
            &h,
            &base,
            "hostname = \"from-base\"\nsetenv = [[\"A\", \"base\"]]\n",
        );
        write_profile(
            c,
            &h,
            &top,
            &format!(
                "include = [\"{base}\"]\nsetenv = [[\"B\", \"top\"]]\nhostname = \"from-top\"\n"
            ),
        );
        let script = "echo $(hostname) $A $B";
        let out = nsjail(
            c,
            &h,
            &h.home,
            &["run", "--profile", &top, "--", "/bin/sh", "-c", script],
        );
        out.expect_success();
        assert_eq!(out.out(), "from-top base top", "{}", out.describe());
        // Flags on the command line come after the profile's and win.
        let out = nsjail(
            c,
            &h,
            &h.home,
            &[
                "run",
                "--profile",
                &top,
                "--hostname",
                "cli",
                "--setenv",
                "B",
                "cli",
                "--",
                "/bin/sh",
                "-c",
                script,
            ],
        );
        out.expect_success();
        assert_eq!(out.out(), "cli base cli", "{}", out.describe());
        // Several --profile: later ones win.
        let out = nsjail(
            c,
            &h,
            &h.home,
            &[
                "run",
                "--profile",
                &top,
                "--profile",
                &base,
                "--",
                "/bin/sh",
                "-c",
                "hostname",
            ],
        );
        out.expect_success();
        assert_eq!(out.out(), "from-top", "{}", out.describe());
    });
}

#[test]
fn bad_profiles_are_refused_in_one_line() {
    for_each_caller(|c| {
        let h = home_for(c);
        let run = |name: &str| {
            nsjail(
                c,
                &h,
                &h.home,
                &["run", "--profile", name, "--", "/bin/true"],
            )
        };
        // An unknown key: the file and the key are named.
        let bad = format!("bad{}", unique());
        let path = write_profile(c, &h, &bad, "hostname = \"x\"\nno-such-option = true\n");
        let out = run(&bad);
        out.expect_code(125)
            .expect_one_error_line("nsjail:")
            .expect_no_panic();
        assert!(
            out.stderr.contains(path.to_str().unwrap()) && out.stderr.contains("no_such_option"),
            "{}",
            out.describe()
        );
        // An include cycle.
        let (a, b) = (format!("cya{}", unique()), format!("cyb{}", unique()));
        write_profile(c, &h, &a, &format!("include = [\"{b}\"]\n"));
        write_profile(c, &h, &b, &format!("include = [\"{a}\"]\n"));
        let out = run(&a);
        out.expect_code(125).expect_one_error_line("nsjail:");
        assert!(out.stderr.contains("cycle"), "{}", out.describe());
        // A profile others, or its group, can write is not trusted; the message says who and
        // how to fix it. The same file made 0644 is used (the control).
        let open = format!("open{}", unique());
        let p = write_profile(c, &h, &open, "hostname = \"x\"\n");
        for (mode, who) in [(0o666, "its group and others"), (0o664, "its group")] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let out = run(&open);
            out.expect_code(125).expect_one_error_line("nsjail:");
            assert_eq!(
                out.stderr.trim_end(),
                format!(
                    "nsjail: profile {}: refused: writable by {who} (mode {mode:04o}; chmod go-w \
                     makes it usable)",
                    p.display()
                ),
                "{}",
                out.describe()
            );
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        run(&open).expect_success();
        // Nor one owned by another user.
        if c.is_user() {
            let other = format!("other{}", unique());
            let p = write_profile(c, &h, &other, "hostname = \"x\"\n");
            chown(&p, Some(c.uid + 1), None).unwrap();
            let out = run(&other);
            out.expect_code(125).expect_one_error_line("nsjail:");
            assert!(
                out.stderr.contains("not by you or root"),
                "{}",
                out.describe()
            );
        }
        // Never from the current directory, and never by a path.
        let cwd_only = format!("cwd{}", unique());
        write_profile(c, &h, "placeholder", "");
        let dir = c.scratch();
        fs::write(
            dir.path().join(format!("{cwd_only}.toml")),
            "hostname = \"cwd\"\n",
        )
        .unwrap();
        let out = nsjail(
            c,
            &h,
            dir.path(),
            &["run", "--profile", &cwd_only, "--", "/bin/true"],
        );
        out.expect_code(125).expect_one_error_line("nsjail:");
        assert!(out.stderr.contains("not found"), "{}", out.describe());
        let out = run("../profiles/placeholder");
        out.expect_code(125).expect_one_error_line("nsjail:");
    });
}

#[test]
fn builtin_profiles_list_show_and_run() {
    for_each_caller(|c| {
        let h = home_for(c);
        let out = nsjail(c, &h, &h.home, &["profile", "list"]);
        out.expect_success();
        for name in ["default", "minimal", "devtool", "net", "gui", "judge"] {
            assert!(
                out.lines()
                    .iter()
                    .any(|l| l.starts_with(name) && l.contains("built-in")),
                "{name} missing: {}",
                out.describe()
            );
        }
        // A user profile of the same name comes first and shadows the built-in.
        write_profile(c, &h, "judge", "hostname = \"mine\"\n");
        let out = nsjail(c, &h, &h.home, &["profile", "list"]);
        assert!(out.stdout.contains("shadowed"), "{}", out.describe());
        let out = nsjail(c, &h, &h.home, &["profile", "show", "judge"]);
        out.expect_success();
        assert!(
            out.stdout.contains("hostname:    mine"),
            "{}",
            out.describe()
        );
        fs::remove_file(h.profiles.join("judge.toml")).unwrap();

        let out = nsjail(c, &h, &h.home, &["profile", "show", "judge"]);
        out.expect_success();
        for want in [
            "built-in",
            "--clearenv",
            "hostname:    judge",
            "--ro-bind /usr /usr",
        ] {
            assert!(out.stdout.contains(want), "{want}: {}", out.describe());
        }
        // minimal: the system, /proc, /dev, /tmp; no /etc, no home.
        let out = nsjail(
            c,
            &h,
            &h.home,
            &["run", "--profile", "minimal", "--", "/bin/ls", "/"],
        );
        out.expect_success();
        let mut top = out.lines();
        top.retain(|l| !l.is_empty());
        for absent in ["etc", "home", "root", "var"] {
            assert!(
                !top.iter().any(|l| l == absent),
                "{absent} in minimal: {}",
                out.describe()
            );
        }
        for present in ["usr", "proc", "dev", "tmp"] {
            assert!(
                top.iter().any(|l| l == present),
                "{present} not in minimal: {}",
                out.describe()
            );
        }
        // judge: a clean environment and its hostname.
        let out = nsjail(
            c,
            &h,
            &h.home,
            &[
                "run",
                "--profile",
                "judge",
                "--",
                "/bin/sh",
                "-c",
                "hostname; env | sort",
            ],
        );
        out.expect_success();
        assert_eq!(out.lines()[0], "judge", "{}", out.describe());
        assert!(
            !out.stdout.contains("HOME=/home") && out.stdout.contains("PATH="),
            "{}",
            out.describe()
        );
    });
}

/// The sandbox can write where the caller's profiles are found only if the profile directory
/// is covered; it is, so planting a profile fails (firejail CVE-2019-12589).
#[test]
fn a_sandbox_cannot_read_or_plant_profiles() {
    for_each_caller(|c| {
        let h = home_for(c);
        let secret = format!("secret{}", unique());
        write_profile(c, &h, &secret, "hostname = \"x\"\n");
        let config = h.home.join(".config");
        let plant = "echo 'hostname = \"planted\"' > nsjail/profiles/evil.toml";
        // 1. The current directory is ~/.config (bound read-write by the default view).
        let out = nsjail(
            c,
            &h,
            &config,
            &[
                "run",
                "--",
                "/bin/sh",
                "-c",
                &format!("ls nsjail nsjail/profiles; {plant}"),
            ],
        );
        assert_ne!(out.code(), Some(0), "{}", out.describe());
        assert!(
            !out.stdout.contains(&secret),
            "profiles visible: {}",
            out.describe()
        );
        assert!(
            !h.profiles.join("evil.toml").exists(),
            "planted: {}",
            out.describe()
        );
        // 2. The whole home bound read-write at its own path, and at another path.
        let home = h.home.to_str().unwrap();
        for dst in [home, "/box"] {
            let script = format!("cd {dst}/.config && ls nsjail/profiles; {plant}");
            let out = nsjail(
                c,
                &h,
                &h.home,
                &[
                    "run",
                    "--default-view",
                    "--bind",
                    home,
                    dst,
                    "--",
                    "/bin/sh",
                    "-c",
                    &script,
                ],
            );
            assert_ne!(out.code(), Some(0), "{}", out.describe());
            assert!(
                !out.stdout.contains(&secret),
                "profiles visible: {}",
                out.describe()
            );
            assert!(
                !h.profiles.join("evil.toml").exists(),
                "planted via {dst}: {}",
                out.describe()
            );
        }
        // 3. The profile directory itself bound in.
        let prof = h.profiles.to_str().unwrap();
        let out = nsjail(
            c,
            &h,
            &h.home,
            &[
                "run",
                "--default-view",
                "--bind",
                prof,
                "/p",
                "--",
                "/bin/sh",
                "-c",
                "ls /p; touch /p/evil.toml",
            ],
        );
        assert_ne!(out.code(), Some(0), "{}", out.describe());
        assert!(
            !out.stdout.contains(&secret) && !h.profiles.join("evil.toml").exists(),
            "{}",
            out.describe()
        );
        // Without a profile directory in the way, the same writes work (the test can fail).
        let elsewhere = h.home.join("work");
        fs::create_dir(&elsewhere).unwrap();
        if nsjail_tests::is_root() {
            chown(&elsewhere, Some(c.uid), Some(c.gid)).unwrap();
        }
        let out = nsjail(
            c,
            &h,
            &elsewhere,
            &["run", "--", "/bin/sh", "-c", "echo x > planted.toml"],
        );
        out.expect_success();
        assert!(
            elsewhere.join("planted.toml").exists(),
            "{}",
            out.describe()
        );
    });
}
