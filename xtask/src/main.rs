//! Developer tasks for the nsjail workspace, run as `cargo xtask <command>`.
//!
//! Nothing here is needed at run time: it builds, installs, tests, lints and benchmarks the
//! `nsjail` and `nsjail-helper` binaries by driving `cargo` and the installed files.

mod bench;
mod facts;
mod fuzz;
mod install;
mod mutants;
mod package;
mod sections;
mod tcb;
mod throughput;
mod views;
mod vmtest;

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

/// Name of the CLI binary (package `nsjail-cli`).
pub const CLI_BIN: &str = "nsjail";
/// Name of the helper binary (package `nsjail-helper`).
pub const HELPER_BIN: &str = "nsjail-helper";
/// Name of the helper daemon's binary (package `nsjail-helper` too; never setuid).
pub const HELPERD_BIN: &str = "nsjail-helperd";

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Build, run, install, test, lint and benchmark nsjail"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build nsjail and nsjail-helper, then run `nsjail run ARGS...` from the build directory.
    ///
    /// No install is needed. If the first ARG is not an option, `--` is inserted before ARGS, so
    /// `cargo xtask run -- sh -c 'id'` runs `nsjail run -- sh -c 'id'`; to give nsjail options,
    /// write them first: `cargo xtask run -- --verbose --hostname box -- sh -c 'hostname'`.
    Run {
        /// Use the release profile.
        #[arg(long)]
        release: bool,
        /// Arguments for `nsjail run`.
        #[arg(
            value_name = "ARGS",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<OsString>,
    },
    /// Build nsjail and nsjail-helper and print their paths.
    Build {
        /// Use the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Build (release) and install nsjail and the helper under a prefix.
    Install(install::InstallArgs),
    /// Remove what `install` put under a prefix (either kind; disables the systemd units).
    Uninstall(install::UninstallArgs),
    /// Run every test: build all binaries, then `cargo test --workspace --no-fail-fast`.
    ///
    /// Arguments after `--` go to `cargo test` as they are, e.g.
    /// `cargo xtask test -- namespaces -- --nocapture`.
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
        args: Vec<OsString>,
    },
    /// Check formatting (`cargo fmt --check`) and lints (`cargo clippy -D warnings`).
    Lint,
    /// Write the man pages (nsjail.1, nsjail-run.1, ...) made from the CLI's definition.
    Man {
        /// Directory to write them to.
        #[arg(long, value_name = "DIR", default_value = "target/man")]
        out: PathBuf,
    },
    /// Write bash, zsh and fish completions under DIR/share/... (where a distribution puts them).
    Completions {
        /// Directory to write them under.
        #[arg(long, value_name = "DIR", default_value = "target/completions")]
        out: PathBuf,
    },
    /// Build a tarball: static release binaries, man pages, completions, built-in profiles,
    /// docs and an example policy, laid out as under a prefix (target/dist/).
    Dist,
    /// Build a .deb with dpkg-deb: the same files under /usr, the helper root:root 4755.
    Deb,
    /// Boot a Debian 12 guest (systemd, cgroup v2) under qemu with software emulation and run
    /// the end-to-end suite there: once with `install --setuid`, once with `install --systemd`.
    /// Needs root; installs qemu, debootstrap and busybox-static with apt-get when missing.
    Vmtest(vmtest::VmtestArgs),
    /// Time `nsjail run -- /bin/true` (setuid helper, ordinary user) against bwrap, unshare and
    /// plain /bin/true, and our `bwrap` against Debian's with the same arguments. Must run as
    /// root.
    Bench(bench::BenchArgs),
    /// Run each cargo-fuzz target in fuzz/ for a while (stable toolchain, RUSTC_BOOTSTRAP=1).
    Fuzz(fuzz::FuzzArgs),
    /// Print the setuid helper's trusted base: lines of code (no tests, comments or blank
    /// lines) of the workspace crates linked into nsjail-helper, and its runtime crates.
    Tcb,
    /// Mutation testing (cargo-mutants) of the trust-critical code; every survivor must be
    /// explained in docs/testing.md. `--in-diff REV` tests only code changed since REV.
    Mutants(mutants::MutantsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<()> {
    // Install and uninstall can run without a workspace (prebuilt binaries, e.g. in the VM).
    match cmd {
        Cmd::Install(args) => return install::install(Workspace::locate, &args),
        Cmd::Uninstall(args) => return install::uninstall(&args),
        _ => {}
    }
    let ws = Workspace::locate()?;
    match cmd {
        Cmd::Run { release, args } => run(&ws, Profile::from_release(release), &args),
        Cmd::Build { release } => {
            let dir = ws.build_bins(Profile::from_release(release), false)?;
            println!("{}", dir.join(CLI_BIN).display());
            println!("{}", dir.join(HELPER_BIN).display());
            println!("{}", dir.join(HELPERD_BIN).display());
            Ok(())
        }
        Cmd::Install(_) | Cmd::Uninstall(_) => unreachable!("handled above"),
        Cmd::Test { args } => test(&ws, &args),
        Cmd::Lint => lint(&ws),
        Cmd::Bench(args) => bench::bench(&ws, &args),
        Cmd::Vmtest(args) => vmtest::vmtest(&ws, &args),
        Cmd::Man { out } => package::man(&ws.root.join(out)),
        Cmd::Completions { out } => package::completions_into(&ws.root.join(out)),
        Cmd::Dist => package::dist(&ws).map(drop),
        Cmd::Deb => package::deb(&ws).map(drop),
        Cmd::Fuzz(args) => fuzz::fuzz(&ws, &args),
        Cmd::Tcb => tcb::tcb(&ws),
        Cmd::Mutants(args) => mutants::mutants(&ws, &args),
    }
}

/// The triple of the machine we build on, from `rustc -vV`.
fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV did not name the host triple")
}

/// The target of release builds: musl for the host's architecture when its standard library is
/// installed (`rustup target add x86_64-unknown-linux-musl`), else the host's own (glibc) triple.
///
/// Both are linked statically. musl is preferred because a static glibc program spends a large
/// part of every start in its start-up code (CPU feature and cache detection by `cpuid`, a
/// trap to the hypervisor on a virtual machine): measured in docs/benchmarks.md, an empty static
/// glibc program takes about twice the wall time of the same program on musl, and a start runs
/// two of ours (the CLI and the helper). Neither binary uses NSS (accounts are read from
/// `/etc/passwd` and `/etc/group` as text), so the C library makes no difference to behaviour.
fn release_triple() -> Result<String> {
    let host = host_triple()?;
    let Some((arch, _)) = host.split_once('-') else {
        return Ok(host);
    };
    let musl = format!("{arch}-unknown-linux-musl");
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", &musl])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = libdir
        .and_then(|d| std::fs::read_dir(d).ok())
        .is_some_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        });
    Ok(if installed { musl } else { host })
}

/// Cargo build profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    fn from_release(release: bool) -> Self {
        if release {
            Profile::Release
        } else {
            Profile::Debug
        }
    }
}

/// The workspace being worked on, as `cargo metadata` describes it.
pub struct Workspace {
    /// The `cargo` to run (the one that started us, if known).
    cargo: OsString,
    root: PathBuf,
    /// The target directory (honours `CARGO_TARGET_DIR` and `build.target-dir`).
    target: PathBuf,
}

impl Workspace {
    fn locate() -> Result<Self> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let out = Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {} metadata", cargo.to_string_lossy()))?;
        if !out.status.success() {
            bail!("`cargo metadata` failed ({})", out.status);
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("parsing `cargo metadata` output")?;
        let field = |name: &str| -> Result<PathBuf> {
            meta.get(name)
                .and_then(serde_json::Value::as_str)
                .map(PathBuf::from)
                .with_context(|| format!("`cargo metadata` output has no {name}"))
        };
        Ok(Workspace {
            cargo,
            root: field("workspace_root")?,
            target: field("target_directory")?,
        })
    }

    /// A `cargo` command run from the workspace root.
    fn cargo(&self) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(&self.root);
        cmd
    }

    /// Where the binaries of `profile` land. Release builds are static (see `build_bins`), so
    /// they are built for an explicit target and land under its triple.
    fn bin_dir(&self, profile: Profile) -> Result<PathBuf> {
        Ok(match profile {
            Profile::Debug => self.target.join("debug"),
            Profile::Release => self.target.join(release_triple()?).join("release"),
        })
    }

    /// Build `nsjail`, `nsjail-helper` and `nsjail-helperd`; returns the directory holding them.
    ///
    /// Release binaries are linked statically (`+crt-static`), against musl where its target is
    /// installed ([`release_triple`]): the setuid helper then has no dynamic loader to start (it
    /// is about a third of the sandbox's start-up time, measured in docs/benchmarks.md) and no
    /// `LD_*` surface at all. The flag is given for an explicit `--target`, so it does not reach
    /// build scripts and proc-macros, which must stay dynamic.
    fn build_bins(&self, profile: Profile, quiet: bool) -> Result<PathBuf> {
        let mut cmd = self.cargo();
        cmd.args(["build", "-p", "nsjail-cli", "-p", "nsjail-helper"]);
        if profile == Profile::Release {
            cmd.args(["--release", "--target", &release_triple()?]);
            cmd.env("RUSTFLAGS", "-C target-feature=+crt-static");
        }
        if quiet {
            cmd.arg("--quiet");
        }
        run_checked(&mut cmd)?;
        let dir = self.bin_dir(profile)?;
        for bin in [CLI_BIN, HELPER_BIN, HELPERD_BIN] {
            let path = dir.join(bin);
            if !path.is_file() {
                bail!("the build did not produce {}", path.display());
            }
        }
        Ok(dir)
    }
}

/// Run `cmd` with inherited stdio; fail unless it exits 0.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let shown = show(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// A command line as a person would type it (for messages; cargo is shown as `cargo`).
pub fn show(cmd: &Command) -> String {
    let program = cmd.get_program();
    let program = if Path::new(program).file_name() == Some(OsStr::new("cargo")) {
        OsStr::new("cargo")
    } else {
        program
    };
    std::iter::once(program)
        .chain(cmd.get_args())
        .map(shell_word)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quote `word` for a POSIX shell when needed (for messages only).
pub fn shell_word(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Print a step header.
pub fn step(what: &str) {
    println!("==> {what}");
}

/// `nsjail run` arguments for what the user gave after `cargo xtask run`.
fn nsjail_run_args(args: &[OsString]) -> Vec<OsString> {
    let mut out = vec![OsString::from("run")];
    let has_options = args
        .first()
        .is_some_and(|a| a.as_encoded_bytes().starts_with(b"-"));
    if !has_options {
        out.push(OsString::from("--"));
    }
    out.extend(args.iter().cloned());
    out
}

/// Environment variables `cargo run` adds for its program, which the payload should not see.
fn is_cargo_run_var(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    matches!(
        name.as_ref(),
        "CARGO"
            | "CARGO_MANIFEST_DIR"
            | "CARGO_MANIFEST_PATH"
            | "CARGO_CRATE_NAME"
            | "CARGO_BIN_NAME"
            | "CARGO_PRIMARY_PACKAGE"
            | "RUST_RECURSION_COUNT"
            | "RUSTUP_TOOLCHAIN_SOURCE"
    ) || name.starts_with("CARGO_PKG_")
}

/// `LD_LIBRARY_PATH` without the entries `cargo run` prepended (target and toolchain dirs).
fn clean_ld_library_path(value: &OsStr, target: &Path, toolchain: Option<&Path>) -> OsString {
    let kept: Vec<PathBuf> = std::env::split_paths(value)
        .filter(|p| !p.starts_with(target) && !toolchain.is_some_and(|t| p.starts_with(t)))
        .collect();
    std::env::join_paths(kept).unwrap_or_default()
}

fn run(ws: &Workspace, profile: Profile, args: &[OsString]) -> Result<()> {
    // Not quiet: a first build takes a while, and cargo's progress says why nothing happens.
    let dir = ws.build_bins(profile, false)?;
    let exe = dir.join(CLI_BIN);
    let mut cmd = Command::new(&exe);
    cmd.args(nsjail_run_args(args));

    // Give the sandbox the caller's environment, not the one `cargo run` decorated.
    // CARGO is `<toolchain>/bin/cargo` when started through rustup.
    let toolchain = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|c| c.parent()?.parent().map(Path::to_path_buf));
    for (name, value) in std::env::vars_os() {
        if is_cargo_run_var(&name) {
            cmd.env_remove(&name);
        } else if name == "LD_LIBRARY_PATH" {
            let cleaned = clean_ld_library_path(&value, &ws.target, toolchain.as_deref());
            if cleaned.is_empty() {
                cmd.env_remove(&name);
            } else {
                cmd.env(&name, cleaned);
            }
        }
    }

    // exec: the sandbox gets our stdio, terminal and signals, and its exit status is ours.
    let err = cmd.exec();
    Err(err).with_context(|| format!("could not exec {}", exe.display()))
}

fn test(ws: &Workspace, extra: &[OsString]) -> Result<()> {
    let bin_dir = ws.bin_dir(Profile::Debug)?;
    let root = nix::unistd::geteuid().is_root();
    println!(
        "==> running every test (as {}): cargo build --workspace --bins, then \
         NSJAIL_BIN_DIR={} cargo test --workspace --no-fail-fast",
        if root {
            "root: end-to-end tests include the setuid helper and a throwaway user"
        } else {
            "an ordinary user: tests that need root say so"
        },
        bin_dir.display()
    );

    let mut build = ws.cargo();
    build.args(["build", "--workspace", "--bins"]);
    step(&show(&build));
    run_checked(&mut build)?;

    let mut cmd = ws.cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .env("NSJAIL_BIN_DIR", &bin_dir);
    step(&format!(
        "NSJAIL_BIN_DIR={} {}",
        shell_word(bin_dir.as_os_str()),
        show(&cmd)
    ));
    let status = cmd.status().context("could not start cargo test")?;
    if !status.success() {
        bail!("tests failed (cargo test: {status})");
    }
    step("all tests passed");
    Ok(())
}

fn lint(ws: &Workspace) -> Result<()> {
    let mut fmt = ws.cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    let mut clippy = ws.cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);

    let fuzz_fmt = fuzz::fmt_check_command(&ws.root)?;

    let mut failed = Vec::new();
    for mut cmd in [fmt, fuzz_fmt, clippy] {
        let shown = show(&cmd);
        step(&shown);
        if let Err(err) = run_checked(&mut cmd) {
            eprintln!("xtask: {err:#}");
            failed.push(shown);
        }
    }
    if !failed.is_empty() {
        bail!("lint failed: {}", failed.join("; "));
    }
    step("lint passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn run_args_insert_separator_before_a_command() {
        assert_eq!(
            nsjail_run_args(&os(&["sh", "-c", "id"])),
            os(&["run", "--", "sh", "-c", "id"])
        );
    }

    #[test]
    fn run_args_keep_options_verbatim() {
        assert_eq!(
            nsjail_run_args(&os(&["--verbose", "--", "id"])),
            os(&["run", "--verbose", "--", "id"])
        );
    }

    #[test]
    fn cli_parses_run_with_nested_separator() {
        let cli = Cli::try_parse_from(["xtask", "run", "--", "--verbose", "--", "sh", "-c", "id"])
            .expect("parse");
        match cli.cmd {
            Cmd::Run { release, args } => {
                assert!(!release);
                assert_eq!(args, os(&["--verbose", "--", "sh", "-c", "id"]));
            }
            _ => panic!("not run"),
        }
    }

    #[test]
    fn cli_parses_run_release_without_separator() {
        let cli = Cli::try_parse_from(["xtask", "run", "--release", "sh", "-c", "echo -x"])
            .expect("parse");
        match cli.cmd {
            Cmd::Run { release, args } => {
                assert!(release);
                assert_eq!(args, os(&["sh", "-c", "echo -x"]));
            }
            _ => panic!("not run"),
        }
    }

    #[test]
    fn cli_passes_test_args_through() {
        let cli = Cli::try_parse_from(["xtask", "test", "--", "filter", "--", "--nocapture"])
            .expect("parse");
        match cli.cmd {
            Cmd::Test { args } => assert_eq!(args, os(&["filter", "--", "--nocapture"])),
            _ => panic!("not test"),
        }
    }

    #[test]
    fn cargo_run_vars_are_recognised() {
        assert!(is_cargo_run_var(OsStr::new("CARGO_PKG_NAME")));
        assert!(is_cargo_run_var(OsStr::new("CARGO_MANIFEST_DIR")));
        assert!(!is_cargo_run_var(OsStr::new("CARGO_HOME")));
        assert!(!is_cargo_run_var(OsStr::new("PATH")));
    }

    #[test]
    fn ld_library_path_loses_cargo_entries_only() {
        let v = OsStr::new("/t/debug:/t/debug/deps:/tc/lib/rustlib/x/lib:/tc/lib:/opt/lib");
        let out = clean_ld_library_path(v, Path::new("/t"), Some(Path::new("/tc")));
        assert_eq!(out, OsString::from("/opt/lib"));
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word(OsStr::new("a/b-c")), "a/b-c");
        assert_eq!(shell_word(OsStr::new("echo $$")), "'echo $$'");
        assert_eq!(shell_word(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(shell_word(OsStr::new("")), "''");
    }
}
