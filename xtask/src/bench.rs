//! `cargo xtask bench`: start-up cost of `nsjail run -- /bin/true` through the setuid helper, as
//! an ordinary user, side by side with bwrap, unshare and plain `/bin/true`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{Gid, Uid, User, geteuid};

use crate::install::{CLI_REL, HELPER_REL, install_files};
use crate::{Profile, Workspace, run_checked, shell_word, step};

const BENCH_USER: &str = "nsjail-bench";
const WARMUP_RUNS: u32 = 10;
const CHILD_PATH: &str = "/usr/bin:/bin";

#[derive(Args)]
pub struct BenchArgs {
    /// Timed runs of each command.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// (Re)write FILE as markdown with the results, e.g. docs/benchmarks.md.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
}

/// One command being timed.
struct Case {
    name: &'static str,
    argv: Vec<OsString>,
    /// How the command is shown in the output (the nsjail prefix is a temporary directory).
    shown: String,
    times: Vec<Duration>,
}

impl Case {
    fn new(name: &'static str, argv: Vec<OsString>, shown: Option<String>) -> Self {
        let shown = shown.unwrap_or_else(|| {
            argv.iter()
                .map(|a| shell_word(a))
                .collect::<Vec<_>>()
                .join(" ")
        });
        Case {
            name,
            argv,
            shown,
            times: Vec::new(),
        }
    }
}

struct RunAs {
    uid: Uid,
    gid: Gid,
}

pub fn bench(ws: &Workspace, args: &BenchArgs) -> Result<()> {
    if !geteuid().is_root() {
        bail!(
            "bench must run as root (it installs the helper setuid into a temporary prefix and \
             times it as an ordinary user): sudo cargo xtask bench"
        );
    }
    let bin_dir = ws.build_bins(Profile::Release, false)?;
    let prefix = temp_prefix()?;
    step(&format!(
        "installing the helper setuid into {}",
        prefix.path().display()
    ));
    install_files(&bin_dir, prefix.path(), true)?;
    let user = ensure_user()?;

    let mut cases = vec![Case::new(
        "nsjail",
        vec![
            prefix.path().join(CLI_REL).into(),
            "run".into(),
            "--".into(),
            "/bin/true".into(),
        ],
        Some("$PREFIX/bin/nsjail run -- /bin/true".to_string()),
    )];
    // The same without any seccomp filter: the difference is what installing the default
    // filter (precompiled, so nothing is compiled per spawn) costs a start.
    cases.push(Case::new(
        "nsjail --seccomp none",
        vec![
            prefix.path().join(CLI_REL).into(),
            "run".into(),
            "--seccomp".into(),
            "none".into(),
            "--".into(),
            "/bin/true".into(),
        ],
        Some("$PREFIX/bin/nsjail run --seccomp none -- /bin/true".to_string()),
    ));
    let bwrap = find_program("bwrap");
    let bwrap_version = match &bwrap {
        Some(path) => {
            cases.push(Case::new(
                "bwrap",
                [
                    "bwrap",
                    "--unshare-all",
                    "--ro-bind",
                    "/",
                    "/",
                    "--proc",
                    "/proc",
                    "--dev",
                    "/dev",
                    "/bin/true",
                ]
                .into_iter()
                .map(OsString::from)
                .collect(),
                None,
            ));
            version_of(path)
        }
        None => {
            eprintln!("bwrap not found: apt-get install bubblewrap (skipping its row and ratios)");
            None
        }
    };
    if find_program("unshare").is_none() {
        bail!("unshare not found in {CHILD_PATH}: apt-get install util-linux");
    }
    cases.push(Case::new(
        "unshare",
        [
            "unshare",
            "-Urpf",
            "--mount-proc",
            "-n",
            "-i",
            "-u",
            "-m",
            "/bin/true",
        ]
        .into_iter()
        .map(OsString::from)
        .collect(),
        None,
    ));
    cases.push(Case::new("/bin/true", vec!["/bin/true".into()], None));

    step(&format!(
        "warm-up: {WARMUP_RUNS} runs of each command as {BENCH_USER} (uid {})",
        user.uid
    ));
    for _ in 0..WARMUP_RUNS {
        for case in &cases {
            check_once(case, &user)?;
        }
    }

    step(&format!(
        "timing {} runs of each command, interleaved round-robin",
        args.runs
    ));
    let n = cases.len();
    for i in 0..args.runs as usize {
        // Rotate the starting command too, so no command always follows the same one.
        for k in 0..n {
            let case = &mut cases[(i + k) % n];
            let elapsed = time_once(case, &user)?;
            case.times.push(elapsed);
        }
    }

    let rows: Vec<Row> = cases
        .iter()
        .map(|c| Row {
            name: c.name,
            stats: Stats::of(&c.times),
        })
        .collect();
    let bwrap_median = rows
        .iter()
        .find(|r| r.name == "bwrap")
        .map(|r| r.stats.median);
    println!();
    print!("{}", text_table(&rows, bwrap_median));
    println!();
    println!("commands (each as {BENCH_USER}, env HOME=/ PATH={CHILD_PATH}, stdio /dev/null):");
    for c in &cases {
        println!("  {:<22} {}", c.name, c.shown);
    }
    println!(
        "  ($PREFIX = {}, helper at $PREFIX/{HELPER_REL}, root:root 4755)",
        prefix.path().display()
    );

    if let Some(path) = &args.write {
        let md = markdown(args, &cases, &rows, bwrap_median, bwrap_version.as_deref())?;
        fs::write(path, md).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// A fresh temporary prefix, mode 0755 so the bench user can reach it, on a filesystem that
/// honours setuid bits.
fn temp_prefix() -> Result<tempfile::TempDir> {
    let candidates = [std::env::temp_dir(), PathBuf::from("/var/tmp")];
    for base in &candidates {
        let nosuid = statvfs(base.as_path())
            .map(|st| st.flags().contains(FsFlags::ST_NOSUID))
            .unwrap_or(true);
        if nosuid {
            continue;
        }
        let dir = tempfile::Builder::new()
            .prefix("nsjail-bench.")
            .tempdir_in(base)
            .with_context(|| format!("creating a temporary prefix in {}", base.display()))?;
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755))
            .with_context(|| format!("chmod 0755 {}", dir.path().display()))?;
        return Ok(dir);
    }
    bail!(
        "no place for the temporary prefix: {} are missing or mounted nosuid",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    )
}

/// The bench user, created (`useradd -M -s /usr/sbin/nologin`) if missing.
fn ensure_user() -> Result<RunAs> {
    let exists = Command::new("id")
        .arg(BENCH_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running id")?
        .success();
    if !exists {
        step(&format!("creating the user {BENCH_USER}"));
        run_checked(Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", BENCH_USER]))?;
    }
    let user = User::from_name(BENCH_USER)
        .with_context(|| format!("looking up {BENCH_USER} in the passwd database"))?
        .with_context(|| format!("{BENCH_USER} has no passwd entry"))?;
    if user.uid.is_root() {
        bail!("{BENCH_USER} has uid 0; it must be an ordinary user");
    }
    Ok(RunAs {
        uid: user.uid,
        gid: user.gid,
    })
}

/// `name` in the children's PATH, if there.
fn find_program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(CHILD_PATH)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn version_of(program: &Path) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

/// The case's command, run as the bench user with a minimal environment.
fn command(case: &Case, user: &RunAs) -> Result<Command> {
    let (program, rest) = case
        .argv
        .split_first()
        .with_context(|| format!("{}: empty command", case.name))?;
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env_clear()
        .env("HOME", "/")
        .env("PATH", CHILD_PATH)
        .current_dir("/")
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .stdin(Stdio::null());
    Ok(cmd)
}

/// Run once, capturing output; fail with that output unless the command exits 0.
fn check_once(case: &Case, user: &RunAs) -> Result<()> {
    let out = command(case, user)?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("could not start `{}`", case.shown))?;
    if !out.status.success() {
        bail!(
            "`{}` failed as {BENCH_USER} ({}); stdout: {:?}; stderr: {:?}",
            case.shown,
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One timed run: spawn to wait.
fn time_once(case: &Case, user: &RunAs) -> Result<Duration> {
    let mut cmd = command(case, user)?;
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{}`", case.shown))?;
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{}`", case.shown))?;
    let elapsed = start.elapsed();
    if !status.success() {
        // Run it again with its output kept, to say why.
        check_once(case, user)?;
        bail!("`{}` failed once ({status}) during timing", case.shown);
    }
    Ok(elapsed)
}

/// Milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stats {
    median: f64,
    p10: f64,
    p90: f64,
}

impl Stats {
    fn of(times: &[Duration]) -> Self {
        let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Stats {
            median: percentile(&ms, 50.0),
            p10: percentile(&ms, 10.0),
            p90: percentile(&ms, 90.0),
        }
    }
}

/// Percentile `p` (0–100) of sorted values, interpolating linearly between ranks.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

struct Row {
    name: &'static str,
    stats: Stats,
}

fn ratio(value: f64, bwrap_median: Option<f64>) -> String {
    match bwrap_median {
        Some(b) if b > 0.0 => format!("{:.2}×", value / b),
        _ => "–".to_string(),
    }
}

fn text_table(rows: &[Row], bwrap_median: Option<f64>) -> String {
    let mut s = format!(
        "{:<22} {:>10} {:>10} {:>10} {:>9}\n",
        "command", "median ms", "p10 ms", "p90 ms", "÷ bwrap"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<22} {:>10.3} {:>10.3} {:>10.3} {:>9}",
            r.name,
            r.stats.median,
            r.stats.p10,
            r.stats.p90,
            ratio(r.stats.median, bwrap_median)
        );
    }
    s
}

fn markdown(
    args: &BenchArgs,
    cases: &[Case],
    rows: &[Row],
    bwrap_median: Option<f64>,
    bwrap_version: Option<&str>,
) -> Result<String> {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .context("running date")?;
    let date = String::from_utf8_lossy(&date.stdout).trim().to_string();
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
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut produced = format!("cargo xtask bench --runs {}", args.runs);
    if let Some(w) = &args.write {
        let _ = write!(produced, " --write {}", shell_word(w.as_os_str()));
    }

    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Start-up cost of running `/bin/true` in a sandbox, timed from spawn to exit as seen by \
         the caller. Produced by `{produced}` (as root) on {date}.\n"
    );
    let _ = writeln!(md, "- kernel (`uname -r`): `{}`", kernel.trim());
    let _ = writeln!(md, "- CPU: {cpu} ({cpus} CPUs available)");
    let _ = writeln!(
        md,
        "- nsjail: release build, helper installed root:root 4755 in a fresh temporary prefix \
         `$PREFIX` (`$PREFIX/{HELPER_REL}`), reached by the CLI through the setuid path"
    );
    if let Some(v) = bwrap_version {
        let _ = writeln!(md, "- bwrap: Debian's `bubblewrap` ({v})");
    }
    let _ = writeln!(
        md,
        "- method: every command runs as the ordinary user `{BENCH_USER}` with env \
         `HOME=/ PATH={CHILD_PATH}` and stdin/stdout/stderr on `/dev/null`; {WARMUP_RUNS} \
         warm-up runs of each, then {} timed runs of each, interleaved round-robin so drift \
         affects all alike; each run timed with `Instant` around spawn and wait\n",
        args.runs
    );
    let _ = writeln!(
        md,
        "| command | median ms | p10 ms | p90 ms | median ÷ bwrap median |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.3} | {:.3} | {:.3} | {} |",
            r.name,
            r.stats.median,
            r.stats.p10,
            r.stats.p90,
            ratio(r.stats.median, bwrap_median)
        );
    }
    if bwrap_median.is_none() {
        let _ = writeln!(
            md,
            "\nbwrap was not installed (`apt-get install bubblewrap`), so it has no row."
        );
    }
    let _ = writeln!(md, "\nThe commands, exactly as run:\n");
    for c in cases {
        let _ = writeln!(md, "- {}: `{}`", c.name, c.shown);
    }
    let _ = writeln!(
        md,
        "\nIssue 2 aims for nsjail through the setuid helper at no more than 0.8× bwrap's median."
    );
    let _ = writeln!(
        md,
        "\n`nsjail` runs with its default seccomp filter (and no capabilities); `nsjail --seccomp \
         none` is the same start without any filter. The filter is compiled into the helper at \
         build time, so a start only installs it; the two rows differ by what one `seccomp()` \
         call and the filter's run on the payload's system calls cost (for comparison, \
         hakoniwa's libseccomp path is reported at about 20 ms a start)."
    );
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 5.0);
        assert!((percentile(&v, 10.0) - 1.4).abs() < 1e-9);
        assert_eq!(percentile(&[1.0, 2.0], 50.0), 1.5);
        assert_eq!(percentile(&[7.0], 90.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn stats_are_in_milliseconds() {
        let t: Vec<Duration> = (1..=3).map(Duration::from_millis).collect();
        let s = Stats::of(&t);
        assert!((s.median - 2.0).abs() < 1e-9);
    }

    #[test]
    fn ratio_needs_bwrap() {
        assert_eq!(ratio(1.0, Some(2.0)), "0.50×");
        assert_eq!(ratio(1.0, None), "–");
    }
}
