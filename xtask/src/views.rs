//! `cargo xtask bench --views`: start-up cost of `nsjail run -- /bin/true` through the setuid helper, as
//! an ordinary user, side by side with bwrap given the same filesystem view, for several views:
//! the default view, and `/usr` plus 0, 50 and 200 read-only binds (mount set-up cost should grow
//! linearly with the number of operations). unshare and plain `/bin/true` are references.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{Gid, Uid, User, geteuid};

use crate::install::{CLI_REL, HELPER_REL, install_files};
use crate::{Profile, Workspace, run_checked, shell_word, step};

const BENCH_USER: &str = "nsjail-bench";
const WARMUP_RUNS: u32 = 10;
const CHILD_PATH: &str = "/usr/bin:/bin";

/// What `cargo xtask bench --views` was given.
pub struct BenchArgs {
    /// Timed runs of each command.
    pub runs: u32,
    /// Replace (or add) the views section of FILE.
    pub write: Option<PathBuf>,
}

/// One command being timed.
struct Case {
    /// The filesystem view, or the reference it is.
    view: String,
    /// `nsjail`, `bwrap`, or a reference command's name.
    tool: &'static str,
    argv: Vec<OsString>,
    /// How the command is shown in the output (the nsjail prefix is a temporary directory, and
    /// long lists of binds are abbreviated).
    shown: String,
    times: Vec<Duration>,
}

impl Case {
    fn new(view: &str, tool: &'static str, argv: Vec<OsString>, shown: Option<String>) -> Self {
        let shown = shown.unwrap_or_else(|| {
            argv.iter()
                .map(|a| shell_word(a))
                .collect::<Vec<_>>()
                .join(" ")
        });
        Case {
            view: view.to_string(),
            tool,
            argv,
            shown,
            times: Vec::new(),
        }
    }

    fn label(&self) -> String {
        format!("{} ({})", self.tool, self.view)
    }
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// How many read-only binds the bind views add to the base view.
const BIND_COUNTS: [usize; 3] = [0, 50, 200];

/// The base of the bind views, for both tools: `/usr` read-only and the host's `/bin`, `/sbin`,
/// `/lib*` as it has them (symlinks into /usr on merged-/usr systems, else read-only binds).
fn usr_view() -> Vec<String> {
    let mut v: Vec<String> = ["--ro-bind", "/usr", "/usr"].map(String::from).to_vec();
    for p in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(t) = fs::read_link(p) {
                    v.extend([
                        "--symlink".into(),
                        t.to_string_lossy().into_owned(),
                        p.into(),
                    ]);
                }
            }
            Ok(m) if m.is_dir() => v.extend(["--ro-bind".into(), p.into(), p.into()]),
            _ => {}
        }
    }
    v
}

/// The same filesystem view as nsjail's default one (see README) in bwrap's options, for
/// `HOME=/` and the working directory `/` (so neither a home nor the cwd is added).
fn bwrap_default_view() -> Vec<String> {
    let mut v: Vec<String> = ["--ro-bind", "/usr", "/usr"].map(String::from).to_vec();
    v.extend(
        [
            "--ro-bind-try",
            "/etc",
            "/etc",
            "--ro-bind-try",
            "/opt",
            "/opt",
        ]
        .map(String::from),
    );
    let usr = usr_view();
    v.extend(usr[3..].iter().map(|a| {
        if a == "--ro-bind" {
            "--ro-bind-try".to_string()
        } else {
            a.clone()
        }
    }));
    v.extend(
        [
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp",
            "--tmpfs", "/run",
        ]
        .map(String::from),
    );
    v
}

/// Host paths to bind read-only at their own place, inside the read-only `/usr`: the entries of
/// `/usr/share`, then the regular files of `/usr/lib/<triple>` and `/usr/lib`, each list sorted,
/// skipping symlinks and anything the bench user could not read.
fn bind_sources(n: usize) -> Result<Vec<String>> {
    let mut dirs = vec![PathBuf::from("/usr/share")];
    if let Ok(rd) = fs::read_dir("/usr/lib") {
        let mut triples: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && p.to_string_lossy().ends_with("-linux-gnu"))
            .collect();
        triples.sort();
        dirs.extend(triples);
    }
    dirs.push(PathBuf::from("/usr/lib"));
    let mut out = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut entries: Vec<(PathBuf, fs::Metadata)> = fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .flatten()
            .filter_map(|e| Some((e.path(), fs::symlink_metadata(e.path()).ok()?)))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, meta) in entries {
            let mode = meta.permissions().mode();
            let usable = if meta.is_dir() {
                // Directories only from the first list: the later ones hold the libraries.
                i == 0 && mode & 0o005 == 0o005
            } else {
                meta.is_file() && mode & 0o004 != 0
            };
            if usable && let Some(p) = path.to_str() {
                out.push(p.to_string());
                if out.len() == n {
                    return Ok(out);
                }
            }
        }
    }
    bail!(
        "only {} entries to bind under {}; the bench needs {n}",
        out.len(),
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `--ro-bind P P` for each path.
fn ro_binds(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .flat_map(|p| ["--ro-bind".to_string(), p.clone(), p.clone()])
        .collect()
}

/// `tool <view options>`, shown with the binds abbreviated.
fn shown_with_binds(prefix: &str, base: &[String], binds: usize, suffix: &str) -> String {
    let base = base
        .iter()
        .map(|a| shell_word(OsStr::new(a)))
        .collect::<Vec<_>>()
        .join(" ");
    if binds == 0 {
        format!("{prefix} {base} {suffix}")
    } else {
        format!("{prefix} {base} [--ro-bind P P for {binds} paths P] {suffix}")
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
    // Before anything of ours runs: the figures mean little on a busy machine.
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    step(&format!("load average (1, 5, 15 min): {load}"));
    let bin_dir = ws.build_bins(Profile::Release, false)?;
    let prefix = temp_prefix()?;
    step(&format!(
        "installing the helper setuid into {}",
        prefix.path().display()
    ));
    install_files(&bin_dir, prefix.path(), true)?;
    let user = ensure_user()?;

    let nsjail_cli = prefix.path().join(CLI_REL);
    let nsjail = |view: &str, opts: &[String], shown: String| {
        let mut argv: Vec<OsString> = vec![nsjail_cli.clone().into(), "run".into()];
        argv.extend(opts.iter().map(OsString::from));
        argv.extend(os(&["--", "/bin/true"]));
        Case::new(view, "nsjail", argv, Some(shown))
    };
    let bwrap_case = |view: &str, opts: &[String], shown: Option<String>| {
        let mut argv = os(&["bwrap", "--unshare-all"]);
        argv.extend(opts.iter().map(OsString::from));
        argv.push("/bin/true".into());
        Case::new(view, "bwrap", argv, shown)
    };
    let bwrap = find_program("bwrap");
    if bwrap.is_none() {
        eprintln!("bwrap not found: apt-get install bubblewrap (skipping its rows and ratios)");
    }
    let bwrap_version = bwrap.as_deref().and_then(version_of);

    let mut cases = vec![nsjail(
        DEFAULT_VIEW,
        &[],
        "$PREFIX/bin/nsjail run -- /bin/true".to_string(),
    )];
    if bwrap.is_some() {
        cases.push(bwrap_case(DEFAULT_VIEW, &bwrap_default_view(), None));
    }
    let max_binds = BIND_COUNTS.iter().copied().max().unwrap_or(0);
    let sources = bind_sources(max_binds)?;
    let usr = usr_view();
    for n in BIND_COUNTS {
        let view = bind_view_name(n);
        let mut opts = usr.clone();
        opts.extend(ro_binds(&sources[..n]));
        cases.push(nsjail(
            &view,
            &opts,
            shown_with_binds("$PREFIX/bin/nsjail run", &usr, n, "-- /bin/true"),
        ));
        if bwrap.is_some() {
            let shown = shown_with_binds("bwrap --unshare-all", &usr, n, "/bin/true");
            cases.push(bwrap_case(&view, &opts, Some(shown)));
        }
    }
    // References: bwrap with the host's whole tree (the row earlier issues compared against),
    // unshare without any filesystem work, and no sandbox at all.
    if bwrap.is_some() {
        cases.push(bwrap_case(
            REFERENCE,
            &["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"].map(String::from),
            None,
        ));
    }
    if find_program("unshare").is_none() {
        bail!("unshare not found in {CHILD_PATH}: apt-get install util-linux");
    }
    cases.push(Case::new(
        REFERENCE,
        "unshare",
        os(&[
            "unshare",
            "-Urpf",
            "--mount-proc",
            "-n",
            "-i",
            "-u",
            "-m",
            "/bin/true",
        ]),
        None,
    ));
    cases.push(Case::new(REFERENCE, "/bin/true", os(&["/bin/true"]), None));

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
            view: c.view.clone(),
            tool: c.tool,
            stats: Stats::of(&c.times),
        })
        .collect();
    println!();
    print!("{}", text_table(&rows));
    println!();
    for line in linearity(&rows) {
        println!("{line}");
    }
    println!();
    println!(
        "commands (each as {BENCH_USER}, env HOME=/ PATH={CHILD_PATH}, cwd /, stdio /dev/null):"
    );
    for c in &cases {
        println!("  {:<28} {}", c.label(), c.shown);
    }
    println!(
        "  ($PREFIX = {}, helper at $PREFIX/{HELPER_REL}, root:root 4755; the {max_binds} paths P: {} … {})",
        prefix.path().display(),
        sources.first().map_or("", String::as_str),
        sources.last().map_or("", String::as_str),
    );

    if let Some(path) = &args.write {
        let old = match fs::read_to_string(path) {
            Ok(old) => old,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let md = markdown(
            args,
            &cases,
            &rows,
            bwrap_version.as_deref(),
            &sources,
            &load,
        )?;
        let section = format!("{BEGIN}\n{}\n{END}", md.trim_end());
        fs::write(path, put_section(&old, &section))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote the views section of {}", path.display());
    }
    Ok(())
}

/// The markers around this bench's section of the benchmarks file; the rest of the file is
/// left as it is.
pub const BEGIN: &str = "<!-- views: written by `cargo xtask bench --views` -->";
pub const END: &str = "<!-- /views -->";

/// This bench's section of `md`, if it has one.
pub fn section_of(md: &str) -> Option<&str> {
    let start = md.find(BEGIN)?;
    let end = md[start..].find(END)? + start + END.len();
    Some(&md[start..end])
}

/// `md` with its views section replaced by `section` (appended when it has none).
fn put_section(md: &str, section: &str) -> String {
    match section_of(md) {
        Some(old) => md.replacen(old, section, 1),
        None => format!("{}\n\n{section}\n", md.trim_end()),
    }
}

const DEFAULT_VIEW: &str = "default view";
const REFERENCE: &str = "reference";

fn bind_view_name(n: usize) -> String {
    format!("/usr + {n} ro binds")
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
        .with_context(|| format!("{}: empty command", case.label()))?;
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
    view: String,
    tool: &'static str,
    stats: Stats,
}

fn ratio(value: f64, bwrap_median: Option<f64>) -> String {
    match bwrap_median {
        Some(b) if b > 0.0 => format!("{:.2}×", value / b),
        _ => "–".to_string(),
    }
}

/// The views in the order first timed, each with its nsjail and bwrap rows (if any).
fn views(rows: &[Row]) -> Vec<(&str, Option<&Row>, Option<&Row>)> {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if r.view != REFERENCE && !names.contains(&r.view.as_str()) {
            names.push(&r.view);
        }
    }
    names
        .into_iter()
        .map(|v| {
            let find = |tool: &str| rows.iter().find(|r| r.view == v && r.tool == tool);
            (v, find("nsjail"), find("bwrap"))
        })
        .collect()
}

fn ms(r: Option<&Row>) -> String {
    r.map_or("–".into(), |r| format!("{:.3}", r.stats.median))
}

fn spread(r: Option<&Row>) -> String {
    r.map_or("–".into(), |r| {
        format!("{:.3}–{:.3}", r.stats.p10, r.stats.p90)
    })
}

fn text_table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<22} {:>12} {:>15} {:>12} {:>15} {:>9}\n",
        "view", "nsjail ms", "p10–p90", "bwrap ms", "p10–p90", "÷ bwrap"
    );
    for (view, n, b) in views(rows) {
        let _ = writeln!(
            s,
            "{view:<22} {:>12} {:>15} {:>12} {:>15} {:>9}",
            ms(n),
            spread(n),
            ms(b),
            spread(b),
            n.map_or("–".into(), |n| ratio(
                n.stats.median,
                b.map(|b| b.stats.median)
            ))
        );
    }
    s.push_str("\nreferences:\n");
    for r in rows.iter().filter(|r| r.view == REFERENCE) {
        let name = if r.tool == "bwrap" {
            "bwrap --ro-bind / /"
        } else {
            r.tool
        };
        let _ = writeln!(
            s,
            "{name:<22} {:>12.3} {:>15}",
            r.stats.median,
            spread(Some(r))
        );
    }
    s
}

/// The extra median cost per read-only bind, for each tool: from 0 to 50 binds and from 50 to
/// 200. Equal slopes mean a cost linear in the number of binds.
fn slopes(rows: &[Row], tool: &str) -> Option<(f64, f64)> {
    let median = |n: usize| {
        rows.iter()
            .find(|r| r.tool == tool && r.view == bind_view_name(n))
            .map(|r| r.stats.median)
    };
    let [a, b, c] = BIND_COUNTS;
    let (ma, mb, mc) = (median(a)?, median(b)?, median(c)?);
    Some(((mb - ma) / (b - a) as f64, (mc - mb) / (c - b) as f64))
}

fn linearity(rows: &[Row]) -> Vec<String> {
    let [a, b, c] = BIND_COUNTS;
    ["nsjail", "bwrap"]
        .iter()
        .filter_map(|tool| {
            let (s1, s2) = slopes(rows, tool)?;
            Some(format!(
                "{tool}: {:.1} µs per bind from {a} to {b} binds, {:.1} µs per bind from {b} to {c}",
                s1 * 1e3,
                s2 * 1e3
            ))
        })
        .collect()
}

fn markdown(
    args: &BenchArgs,
    cases: &[Case],
    rows: &[Row],
    bwrap_version: Option<&str>,
    sources: &[String],
    load: &str,
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
    let _ = writeln!(md, "## Start-up by filesystem view\n");
    let _ = writeln!(
        md,
        "Start-up cost of running `/bin/true` in a sandbox, timed from spawn to exit as seen by \
         the caller, for several filesystem views, with bwrap given the same view. Produced by \
         `{produced}` (as root) on {date}.\n"
    );
    let _ = writeln!(md, "- kernel (`uname -r`): `{}`", kernel.trim());
    let _ = writeln!(
        md,
        "- CPU: {cpu} ({cpus} CPUs available); load average (1, 5, 15 min) before the run: {load}"
    );
    let _ = writeln!(
        md,
        "- nsjail: release build, helper installed root:root 4755 in a fresh temporary prefix \
         `$PREFIX` (`$PREFIX/{HELPER_REL}`), reached by the CLI through the setuid path"
    );
    if let Some(v) = bwrap_version {
        let _ = writeln!(
            md,
            "- bwrap: Debian's `bubblewrap` ({v}), always `--unshare-all`"
        );
    }
    let _ = writeln!(
        md,
        "- method: every command runs as the ordinary user `{BENCH_USER}` with env \
         `HOME=/ PATH={CHILD_PATH}`, cwd `/` and stdin/stdout/stderr on `/dev/null`; \
         {WARMUP_RUNS} warm-up runs of each, then {} timed runs of each, interleaved round-robin \
         so drift affects all alike; each run timed with `Instant` around spawn and wait\n",
        args.runs
    );
    let _ = writeln!(
        md,
        "| view | nsjail median ms | nsjail p10–p90 | bwrap median ms | bwrap p10–p90 | nsjail ÷ bwrap |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for (view, n, b) in views(rows) {
        let _ = writeln!(
            md,
            "| {view} | {} | {} | {} | {} | {} |",
            ms(n),
            spread(n),
            ms(b),
            spread(b),
            n.map_or("–".into(), |n| ratio(
                n.stats.median,
                b.map(|b| b.stats.median)
            ))
        );
    }
    let lin = linearity(rows);
    if !lin.is_empty() {
        let _ = writeln!(
            md,
            "\nCost of one more read-only bind (difference of medians): equal slopes over both \
             intervals mean set-up cost linear in the number of operations.\n"
        );
        for l in lin {
            let _ = writeln!(md, "- {l}");
        }
    }
    let _ = writeln!(md, "\nReferences, same run:\n");
    let _ = writeln!(md, "| command | median ms | p10 ms | p90 ms |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for r in rows.iter().filter(|r| r.view == REFERENCE) {
        let name = if r.tool == "bwrap" {
            "bwrap --ro-bind / /"
        } else {
            r.tool
        };
        let _ = writeln!(
            md,
            "| {name} | {:.3} | {:.3} | {:.3} |",
            r.stats.median, r.stats.p10, r.stats.p90
        );
    }
    if bwrap_version.is_none() {
        let _ = writeln!(
            md,
            "\nbwrap was not installed (`apt-get install bubblewrap`), so it has no rows."
        );
    }
    let _ = writeln!(md, "\nThe commands, exactly as run:\n");
    for c in cases {
        let _ = writeln!(md, "- {}: `{}`", c.label(), c.shown);
    }
    let _ = writeln!(
        md,
        "\nThe paths P bound read-only at their own place (inside the read-only `/usr`) are the \
         first N of: the entries of `/usr/share`, then the regular files of `/usr/lib/<triple>` \
         and `/usr/lib`, each sorted, symlinks left out; here `{}` to `{}` for N = {}.",
        sources.first().map_or("", String::as_str),
        sources.last().map_or("", String::as_str),
        sources.len()
    );
    let _ = writeln!(
        md,
        "\nIssue 2 aims for nsjail through the setuid helper at no more than 0.8× bwrap's median; \
         issue 3 for no worse than bwrap with the same view, and mount set-up cost linear in the \
         number of operations."
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
    fn sections_are_replaced_or_appended() {
        assert_eq!(put_section("# B\n\ntext\n", "S1"), "# B\n\ntext\n\nS1\n");
        let with = format!("# B\n{BEGIN}\nold\n{END}\nafter\n");
        let new = format!("{BEGIN}\nnew\n{END}");
        assert_eq!(put_section(&with, &new), format!("# B\n{new}\nafter\n"));
    }

    fn row(view: &str, tool: &'static str, median: f64) -> Row {
        Row {
            view: view.to_string(),
            tool,
            stats: Stats {
                median,
                p10: median,
                p90: median,
            },
        }
    }

    #[test]
    fn slopes_per_bind_and_views_in_order() {
        let rows = vec![
            row(DEFAULT_VIEW, "nsjail", 3.0),
            row(DEFAULT_VIEW, "bwrap", 4.0),
            row(&bind_view_name(0), "nsjail", 2.0),
            row(&bind_view_name(50), "nsjail", 3.0),
            row(&bind_view_name(200), "nsjail", 6.0),
            row(REFERENCE, "unshare", 1.0),
        ];
        let (a, b) = slopes(&rows, "nsjail").unwrap();
        assert!((a - 0.02).abs() < 1e-9 && (b - 0.02).abs() < 1e-9);
        assert!(slopes(&rows, "bwrap").is_none());
        let v = views(&rows);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].0, DEFAULT_VIEW);
        assert!(v[0].2.is_some() && v[1].2.is_none());
        assert!(text_table(&rows).contains("0.75×"));
    }

    #[test]
    fn the_bwrap_default_view_mirrors_nsjails() {
        let v = bwrap_default_view();
        for want in [
            "/usr", "/etc", "/opt", "/proc", "/dev", "/tmp", "/var/tmp", "/run",
        ] {
            assert!(v.iter().any(|a| a == want), "{want} missing from {v:?}");
        }
        assert!(!v.iter().any(|a| a == "--bind"));
    }

    #[test]
    fn ratio_needs_bwrap() {
        assert_eq!(ratio(1.0, Some(2.0)), "0.50×");
        assert_eq!(ratio(1.0, None), "–");
    }
}
