//! `cargo xtask bench --throughput`: how many sandboxes per second a judge or CI runner gets,
//! running `/bin/true` again and again, one after the other, with limits on (a cgroup per
//! sandbox, created and removed each time), as an ordinary user through the setuid helper;
//! against bwrap (which has no limits of its own) and isolate where it is installed.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{
    BENCH_USER, BWRAP_TRUE, BenchArgs, CHILD_PATH, Case, RunAs, WARMUP_RUNS, check_once, command,
    find_program, version_of,
};
use crate::facts::{ratio, utc_date};
use crate::install::CLI_REL;
use crate::step;

/// The limits every nsjail sandbox of the throughput run gets.
const LIMITS: [&str; 6] = [
    "--memory-limit",
    "64M",
    "--pids-limit",
    "16",
    "--time-limit",
    "1",
];
/// Sandboxes in a row of one command before the next command's turn.
const BLOCK: u32 = 100;
/// The isolate box the run uses, if isolate is installed.
const ISOLATE_BOX: &str = "--box-id=77";

pub const BEGIN: &str = "<!-- throughput: written by `cargo xtask bench --throughput` -->";
pub const END: &str = "<!-- /throughput -->";

/// The throughput section of a benchmarks file, markers included.
pub fn section_of(md: &str) -> Option<&str> {
    crate::sections::find(md, BEGIN, END)
}

/// `md` with its throughput section replaced by `section` (appended when it has none).
fn replace_section(md: &str, section: &str) -> String {
    crate::sections::put(md, BEGIN, END, section)
}

struct Row {
    name: &'static str,
    shown: String,
    total: Duration,
    count: u32,
}

impl Row {
    fn per_second(&self) -> f64 {
        self.count as f64 / self.total.as_secs_f64()
    }

    fn mean_ms(&self) -> f64 {
        self.total.as_secs_f64() * 1e3 / self.count as f64
    }
}

fn words(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

pub fn run(args: &BenchArgs, prefix: &Path, user: &RunAs) -> Result<()> {
    let nsjail: OsString = prefix.join(CLI_REL).into();
    let mut limited = vec![nsjail.clone(), "run".into()];
    limited.extend(words(&LIMITS));
    limited.extend(words(&["--", "/bin/true"]));
    let mut cases = vec![
        Case::new(
            "nsjail, limits",
            limited,
            Some(format!(
                "$PREFIX/bin/nsjail run {} -- /bin/true",
                LIMITS.join(" ")
            )),
        ),
        Case::new(
            "nsjail, no limits",
            vec![nsjail, "run".into(), "--".into(), "/bin/true".into()],
            Some("$PREFIX/bin/nsjail run -- /bin/true".into()),
        ),
    ];
    let bwrap_version = match find_program("bwrap") {
        Some(path) => {
            cases.push(Case::new("bwrap", words(&BWRAP_TRUE), None));
            version_of(&path)
        }
        None => {
            eprintln!("bwrap not found: apt-get install bubblewrap (skipping its row)");
            None
        }
    };
    let isolate = find_program("isolate");
    let mut isolate_note = None;
    if let Some(path) = &isolate {
        match isolate_box(path, user, "--init") {
            Ok(()) => cases.push(Case::new(
                "isolate, limits",
                words(&[
                    "isolate",
                    ISOLATE_BOX,
                    "--cg",
                    "--cg-mem=65536",
                    "--processes=16",
                    "--time=1",
                    "--run",
                    "--",
                    "/bin/true",
                ]),
                None,
            )),
            Err(e) => isolate_note = Some(format!("isolate is installed but --init failed: {e:#}")),
        }
    } else {
        isolate_note = Some("isolate is not installed (Debian does not package it)".into());
    }
    if let Some(n) = &isolate_note {
        eprintln!("{n}; no isolate row");
    }

    step(&format!(
        "warm-up: {WARMUP_RUNS} runs of each command as {BENCH_USER} (uid {})",
        user.uid
    ));
    for _ in 0..WARMUP_RUNS {
        for case in &cases {
            check_once(case, user)?;
        }
    }
    step(&format!(
        "{} sequential sandboxes of each command, in blocks of {BLOCK} taking turns",
        args.sandboxes
    ));
    let mut rows: Vec<Row> = cases
        .iter()
        .map(|c| Row {
            name: c.name,
            shown: c.shown.clone(),
            total: Duration::ZERO,
            count: 0,
        })
        .collect();
    let load_before = loadavg();
    let mut left = args.sandboxes;
    while left > 0 {
        let n = left.min(BLOCK);
        for (case, row) in cases.iter().zip(rows.iter_mut()) {
            row.total += block(case, user, n)?;
            row.count += n;
        }
        left -= n;
    }
    let load = format!("{} before, {} after", load_before, loadavg());
    if let Some(path) = &isolate {
        let _ = isolate_box(path, user, "--cleanup");
    }
    println!("\nload average (1 min): {load}");

    let bwrap_rate = rows.iter().find(|r| r.name == "bwrap").map(Row::per_second);
    println!();
    println!(
        "{:<18} {:>14} {:>14} {:>9}",
        "command", "sandboxes/s", "mean ms", "÷ bwrap"
    );
    for r in &rows {
        println!(
            "{:<18} {:>14.1} {:>14.3} {:>9}",
            r.name,
            r.per_second(),
            r.mean_ms(),
            ratio(r.per_second(), bwrap_rate)
        );
    }
    println!();
    for r in &rows {
        println!("  {:<18} {}", r.name, r.shown);
    }

    if let Some(path) = &args.write {
        let section = markdown(
            args,
            &rows,
            bwrap_rate,
            bwrap_version.as_deref(),
            &isolate_note,
            &load,
        )?;
        let old = fs::read_to_string(path).unwrap_or_default();
        fs::write(path, replace_section(&old, &section))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote the throughput section of {}", path.display());
    }
    Ok(())
}

/// The 1-minute load average, as `/proc/loadavg` has it.
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Run `case` `n` times in a row; the time of the whole block.
fn block(case: &Case, user: &RunAs, n: u32) -> Result<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        let status = command(case, user)?
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("could not start `{}`", case.shown))?;
        if !status.success() {
            check_once(case, user)?;
            bail!("`{}` failed once ({status}) during timing", case.shown);
        }
    }
    Ok(start.elapsed())
}

/// `isolate --box-id=N --cg ACTION` as the bench user.
fn isolate_box(path: &Path, user: &RunAs, action: &str) -> Result<()> {
    let mut case = Case::new(
        "isolate",
        words(&["isolate", ISOLATE_BOX, "--cg", action]),
        None,
    );
    case.argv[0] = path.into();
    let out = command(&case, user)?
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running isolate")?;
    if !out.status.success() {
        bail!(
            "isolate {action}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn markdown(
    args: &BenchArgs,
    rows: &[Row],
    bwrap_rate: Option<f64>,
    bwrap_version: Option<&str>,
    isolate_note: &Option<String>,
    load: &str,
) -> Result<String> {
    let date = utc_date()?;
    let mut md = String::new();
    let _ = writeln!(md, "{BEGIN}");
    let _ = writeln!(md, "## Throughput with limits\n");
    let _ = writeln!(
        md,
        "Sandboxes per second over {} sequential `/bin/true` sandboxes of each command, as a \
         judge or CI runner would start them one after another. Produced by `cargo xtask bench \
         --throughput --sandboxes {}{}` (as root) on {date}, on the machine above.\n",
        args.sandboxes,
        args.sandboxes,
        args.write
            .as_ref()
            .map(|w| format!(" --write {}", w.display()))
            .unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "- every command runs as the ordinary user `{BENCH_USER}` (env `HOME=/ \
         PATH={CHILD_PATH}`, stdio on `/dev/null`), nsjail through its helper installed \
         setuid-root in a temporary prefix; {WARMUP_RUNS} warm-up runs each, then blocks of \
         {BLOCK} runs of one command at a time, taking turns, so that drift affects all alike"
    );
    let _ = writeln!(
        md,
        "- `nsjail, limits` creates, fills and removes a cgroup per sandbox (on this hybrid \
         host five v1 hierarchies: memory with swap off, pids, cpuacct for the CPU limit, \
         cpu so that the sandbox competes as one group, freezer for the kill) and supervises \
         the CPU limit"
    );
    if let Some(v) = bwrap_version {
        let _ = writeln!(
            md,
            "- bwrap: Debian's `bubblewrap` ({v}); it has no limits of its own (a judge would add \
             a cgroup around it, e.g. with `systemd-run`, at a cost not counted here)"
        );
    }
    if let Some(n) = isolate_note {
        let _ = writeln!(md, "- {n}, so it has no row");
    }
    let _ = writeln!(
        md,
        "- load average (1 min) of the machine during the run: {load}; on a shared machine the \
         absolute rates move with the load, the ratios much less"
    );
    let _ = writeln!(
        md,
        "\n| command | sandboxes/s | mean ms per sandbox | ÷ bwrap |\n|---|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.3} | {} |",
            r.name,
            r.per_second(),
            r.mean_ms(),
            ratio(r.per_second(), bwrap_rate)
        );
    }
    let _ = writeln!(md, "\nThe commands, exactly as run:\n");
    for r in rows {
        let _ = writeln!(md, "- {}: `{}`", r.name, r.shown);
    }
    let _ = write!(md, "{END}");
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_or_appended() {
        let section = format!("{BEGIN}\nnew\n{END}");
        let appended = replace_section("# B\n\ntext\n", &section);
        assert_eq!(appended, format!("# B\n\ntext\n\n{section}\n"));
        assert_eq!(section_of(&appended), Some(section.as_str()));
        let old = format!("# B\n\n{BEGIN}\nold\n{END}\n\n## After\n");
        assert_eq!(
            replace_section(&old, &section),
            format!("# B\n\n{section}\n\n## After\n")
        );
        assert_eq!(section_of("no markers"), None);
        assert_eq!(replace_section("", &section), format!("{section}\n"));
    }

    #[test]
    fn rates() {
        let r = Row {
            name: "x",
            shown: String::new(),
            total: Duration::from_secs(2),
            count: 1000,
        };
        assert!((r.per_second() - 500.0).abs() < 1e-9);
        assert!((r.mean_ms() - 2.0).abs() < 1e-9);
        assert_eq!(ratio(250.0, Some(500.0)), "0.50×");
        assert_eq!(ratio(1.0, None), "–");
    }
}
