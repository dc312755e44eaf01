//! `cargo xtask fuzz`: run the cargo-fuzz (libFuzzer) targets in `fuzz/` for a while each.
//!
//! Built with the stable toolchain: libFuzzer's instrumentation needs `-Z` flags, which
//! `RUSTC_BOOTSTRAP=1` enables for this build only (no nightly toolchain is needed or used).
//! New inputs go to a working corpus in the target directory; the committed seeds in
//! `fuzz/corpus/<target>` are only read, so a run never dirties the work tree. Crashes are
//! written under `<target dir>/fuzz-artifacts/<target>/`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{Workspace, show, step};

/// Every fuzz target in `fuzz/fuzz_targets`.
pub const TARGETS: [&str; 5] = [
    "wire_request",
    "wire_stream",
    "oci_seccomp",
    "bpf_accept",
    "policy",
];

#[derive(Args)]
pub struct FuzzArgs {
    /// Seconds to run each target.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: u64,
    /// Run only this target (repeatable) [default: every target]
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
}

/// The libFuzzer figures of one run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub execs: u64,
    pub new_units: u64,
    pub execs_per_sec: u64,
}

/// Read `stat::…` lines (`-print_final_stats=1`).
pub fn parse_stats(log: &str) -> Stats {
    let mut s = Stats::default();
    for line in log.lines() {
        let Some((name, value)) = line
            .strip_prefix("stat::")
            .and_then(|rest| rest.split_once(':'))
        else {
            continue;
        };
        let v: u64 = value.trim().parse().unwrap_or(0);
        match name {
            "number_of_executed_units" => s.execs = v,
            "new_units_added" => s.new_units = v,
            "average_exec_per_sec" => s.execs_per_sec = v,
            _ => {}
        }
    }
    s
}

pub fn fuzz(ws: &Workspace, args: &FuzzArgs) -> Result<()> {
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in &args.targets {
            if !TARGETS.contains(&t.as_str()) {
                bail!(
                    "unknown fuzz target {t:?} (targets: {})",
                    TARGETS.join(", ")
                );
            }
        }
        args.targets.iter().map(String::as_str).collect()
    };
    let installed = Command::new(&ws.cargo)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        bail!("cargo-fuzz is not installed: cargo install cargo-fuzz --locked");
    }
    let fuzz_dir = ws.root.join("fuzz");
    let mut summary = Vec::new();
    for t in targets {
        let work = ws.target.join("fuzz-corpus").join(t);
        let artifacts = ws.target.join("fuzz-artifacts").join(t);
        let log_path = ws.target.join(format!("fuzz-{t}.log"));
        for d in [&work, &artifacts] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let mut cmd = ws.cargo();
        cmd.env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", ws.target.join("fuzz"))
            .arg("fuzz")
            .arg("run")
            .arg("--fuzz-dir")
            .arg(&fuzz_dir)
            .arg(t)
            .arg(&work)
            .arg(fuzz_dir.join("corpus").join(t))
            .arg("--")
            .arg(format!("-max_total_time={}", args.seconds))
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}/", artifacts.display()));
        step(&format!(
            "fuzzing {t} for {}s: RUSTC_BOOTSTRAP=1 {} (log: {})",
            args.seconds,
            show(&cmd),
            log_path.display()
        ));
        let log = fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let status = cmd
            .stdout(Stdio::inherit())
            .stderr(log)
            .status()
            .context("could not start cargo fuzz")?;
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        if !status.success() {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("{}", tail.join("\n"));
            bail!(
                "fuzz target {t} failed ({status}); crashing inputs are in {}",
                artifacts.display()
            );
        }
        let s = parse_stats(&text);
        summary.push(format!(
            "{t}: {} executions in {}s ({} per second), {} new corpus entries, no crash",
            s.execs, args.seconds, s.execs_per_sec, s.new_units
        ));
    }
    for line in &summary {
        println!("{line}");
    }
    step("fuzzing passed");
    Ok(())
}

/// `rustfmt --check` on the fuzz targets (they are outside the workspace `cargo fmt` sees).
pub fn fmt_check_command(root: &Path) -> Result<Command> {
    let mut cmd = Command::new("rustfmt");
    cmd.args(["--check", "--edition", "2024"]);
    let dir = root.join("fuzz").join("fuzz_targets");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    cmd.args(files);
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_read_from_libfuzzer_output() {
        let log = "#2 INITED\nDone 338810 runs in 11 second(s)\nstat::number_of_executed_units: 338810\n\
                   stat::average_exec_per_sec:     30800\nstat::new_units_added:          518\n\
                   stat::slowest_unit_time_sec:    0\n";
        assert_eq!(
            parse_stats(log),
            Stats {
                execs: 338810,
                new_units: 518,
                execs_per_sec: 30800
            }
        );
        assert_eq!(parse_stats("nothing"), Stats::default());
    }

    #[test]
    fn every_target_has_a_source_and_seeds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("fuzz");
        for t in TARGETS {
            assert!(
                root.join("fuzz_targets").join(format!("{t}.rs")).is_file(),
                "{t}"
            );
            let seeds = fs::read_dir(root.join("corpus").join(t)).unwrap().count();
            assert!(seeds > 0, "{t} has no committed seeds");
        }
    }
}
