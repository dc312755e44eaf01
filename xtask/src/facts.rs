//! The facts every section of docs/benchmarks.md states about its run: when, on which kernel and
//! CPU, how it was produced and how the commands were run; one source for the start-up, view and
//! throughput benches so that their headers say the same things in the same words.

use std::path::Path;
use std::process::Command;
use std::{fmt::Write as _, fs};

use anyhow::{Context, Result};

use crate::bench::{BENCH_USER, CHILD_PATH, WARMUP_RUNS};
use crate::install::HELPER_REL;
use crate::shell_word;

/// The machine a bench ran on, and when.
pub(crate) struct MachineFacts {
    /// `date -u`, to the minute.
    pub(crate) date: String,
    /// `uname -r`.
    pub(crate) kernel: String,
    /// The first `model name` of /proc/cpuinfo.
    pub(crate) cpu: String,
    /// CPUs this process may run on.
    pub(crate) cpus: usize,
}

impl MachineFacts {
    /// `- kernel (`uname -r`): `…``
    pub(crate) fn kernel_line(&self) -> String {
        format!("- kernel (`uname -r`): `{}`", self.kernel)
    }

    /// `- CPU: … (N CPUs available)`, for the caller to end or extend.
    pub(crate) fn cpu_line(&self) -> String {
        format!("- CPU: {} ({} CPUs available)", self.cpu, self.cpus)
    }
}

/// The facts of this machine, now.
pub(crate) fn machine_facts() -> Result<MachineFacts> {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("reading /proc/sys/kernel/osrelease")?;
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").context("reading /proc/cpuinfo")?;
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    Ok(MachineFacts {
        date: utc_date()?,
        kernel: kernel.trim().to_string(),
        cpu,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
    })
}

/// The date and time now, in UTC, to the minute.
pub(crate) fn utc_date() -> Result<String> {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .context("running date")?;
    Ok(String::from_utf8_lossy(&date.stdout).trim().to_string())
}

/// The `cargo xtask bench` command line that produced a start-up or views section.
pub(crate) fn produced_by(runs: u32, write: Option<&Path>) -> String {
    let mut produced = format!("cargo xtask bench --runs {runs}");
    if let Some(w) = write {
        let _ = write!(produced, " --write {}", shell_word(w.as_os_str()));
    }
    produced
}

/// `- nsjail: …` for nsjail reached through the setuid helper in the bench's temporary prefix,
/// for the caller to end or extend.
pub(crate) fn nsjail_setuid_line() -> String {
    format!(
        "- nsjail: release build, helper installed root:root 4755 in a fresh temporary prefix \
         `$PREFIX` (`$PREFIX/{HELPER_REL}`), reached by the CLI through the setuid path"
    )
}

/// `- method: …` for the interleaved timing of `runs` runs of each command; `cwd` is what
/// follows the env (empty, or e.g. ", cwd `/`").
pub(crate) fn method_line(runs: u32, cwd: &str) -> String {
    format!(
        "- method: every command runs as the ordinary user `{BENCH_USER}` with env \
         `HOME=/ PATH={CHILD_PATH}`{cwd} and stdin/stdout/stderr on `/dev/null`; {WARMUP_RUNS} \
         warm-up runs of each, then {runs} timed runs of each, interleaved round-robin so drift \
         affects all alike; each run timed with `Instant` around spawn and wait"
    )
}

/// `value` as a multiple of bwrap's figure, or `–` without one.
pub(crate) fn ratio(value: f64, bwrap: Option<f64>) -> String {
    match bwrap {
        Some(b) if b > 0.0 => format!("{:.2}×", value / b),
        _ => "–".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produced_by_quotes_the_file() {
        assert_eq!(produced_by(5, None), "cargo xtask bench --runs 5");
        assert_eq!(
            produced_by(5, Some(Path::new("a b.md"))),
            "cargo xtask bench --runs 5 --write 'a b.md'"
        );
    }
}
