//! `cargo xtask bench`: start-up cost of `nsjail run -- /bin/true` through the setuid helper and
//! through the helper daemon, as an ordinary user, side by side with bwrap, unshare and plain
//! `/bin/true`, and of our `bwrap` drop-in against Debian's given the same arguments; then
//! sandboxes per second through each nsjail path, sequentially and from 8 parallel clients.

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

use crate::facts::{machine_facts, method_line, nsjail_setuid_line, produced_by};
use crate::install::{CLI_REL, HELPER_REL, HELPERD_REL, install_files};
use crate::{Profile, Workspace, run_checked, shell_word, step};

pub(crate) const BENCH_USER: &str = "nsjail-bench";
pub(crate) const WARMUP_RUNS: u32 = 10;
pub(crate) const CHILD_PATH: &str = "/usr/bin:/bin";
/// Clients at once in the parallel throughput run.
/// bwrap running `/bin/true` with every namespace and the host's root read-only: the row the
/// start-up and throughput benches compare nsjail with.
pub(crate) const BWRAP_TRUE: [&str; 10] = [
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
];

const PARALLEL: u32 = 8;

/// Our `bwrap` drop-in: `$PREFIX/bin/bwrap`, the link `install --bwrap` makes, given exactly
/// [`BWRAP_TRUE`]'s arguments, through the setuid helper.
pub(crate) const DROP_IN: &str = "bwrap (nsjail)";
/// Debian's bwrap given [`BWRAP_TRUE`]'s arguments: the drop-in's reference.
pub(crate) const HOSTROOT: &str = "bwrap-hostroot";

/// The installed daemon (`nsjail-helperd`) run by root on `$PREFIX/helper.sock`, ended (SIGTERM,
/// which drains it) when dropped.
struct BenchDaemon {
    child: std::process::Child,
    socket: PathBuf,
}

impl BenchDaemon {
    fn start(prefix: &Path) -> Result<BenchDaemon> {
        let socket = prefix.join("helper.sock");
        let helperd = prefix.join(HELPERD_REL);
        // More than the parallel clients, so the per-user limit never refuses one.
        let child = Command::new(&helperd)
            .args(["--max-per-user", "1000", "--socket"])
            .arg(&socket)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", helperd.display()))?;
        let d = BenchDaemon { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&d.socket).is_err() {
            if Instant::now() > deadline {
                bail!("the daemon never listened on {}", d.socket.display());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(d)
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// Sandboxes per second: `total` runs of `case` spread over `clients` threads.
fn rate(case: &Case, user: &RunAs, total: u32, clients: u32) -> Result<f64> {
    let each = total.div_ceil(clients);
    let start = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    for _ in 0..each {
                        time_once(case, user)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a throughput client panicked"))??;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(f64::from(each * clients) / start.elapsed().as_secs_f64())
}

#[derive(Args)]
pub struct BenchArgs {
    /// Timed runs of each command.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// (Re)write FILE as markdown with the results, e.g. docs/benchmarks.md. With
    /// --throughput only its own section of FILE is replaced (or added).
    #[arg(long, value_name = "FILE")]
    pub(crate) write: Option<PathBuf>,
    /// Instead of start-up latency, measure throughput: sandboxes per second over many
    /// sequential `/bin/true` sandboxes with limits on, against bwrap (and isolate where it is
    /// installed). Slow: the default bench leaves it out.
    #[arg(long)]
    pub(crate) throughput: bool,
    /// Instead of the start-up rows, time several filesystem views (the default view, /usr plus
    /// 0, 50 and 200 read-only binds) against bwrap given the same view; with --write only that
    /// section of FILE is replaced (or added).
    #[arg(long, conflicts_with = "throughput")]
    pub(crate) views: bool,
    /// With --throughput: sequential sandboxes per command.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) sandboxes: u32,
    /// After the timed runs, profile this many starts through the setuid helper with `perf
    /// record -a` and print the top entries (0: no profile; without perf installed, none).
    #[arg(long, value_name = "N", default_value_t = 200)]
    profile_starts: u32,
}

/// Hand-written notes in the benchmarks file, kept by every `--write`.
const NOTES_BEGIN: &str = "<!-- notes: hand-written, kept by cargo xtask bench --write -->";
const NOTES_END: &str = "<!-- /notes -->";

fn notes_of(md: &str) -> Option<&str> {
    crate::sections::find(md, NOTES_BEGIN, NOTES_END)
}

/// One command being timed.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) argv: Vec<OsString>,
    /// How the command is shown in the output (the nsjail prefix is a temporary directory).
    pub(crate) shown: String,
    /// Set in the command's environment, after it is cleared.
    pub(crate) env: Vec<(&'static str, &'static str)>,
    pub(crate) times: Vec<Duration>,
    /// CPU time (user + system) of each run's whole process tree, in the order of `times`.
    pub(crate) cpu: Vec<Duration>,
}

impl Case {
    pub(crate) fn new(name: &'static str, argv: Vec<OsString>, shown: Option<String>) -> Self {
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
            env: Vec::new(),
            times: Vec::new(),
            cpu: Vec::new(),
        }
    }
}

pub(crate) struct RunAs {
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
}

/// Something that is run and timed: its command line, and how it is shown.
pub(crate) trait Timed {
    fn argv(&self) -> &[OsString];
    fn shown(&self) -> &str;
    fn record(&mut self, took: Took);
    /// Variables set in the command's environment, after it is cleared.
    fn env(&self) -> &[(&'static str, &'static str)] {
        &[]
    }
}

/// One run's figures.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Took {
    /// From spawn to wait, as the caller sees it.
    pub(crate) wall: Duration,
    /// User and system time of the whole process tree the run started, as the kernel accounts
    /// reaped children: the CLI, the setuid helper (which reaps the sandbox's init, which reaps
    /// the payload) and the payload; for bwrap, bwrap's processes and the payload. A daemon's
    /// own process is not a child, so the daemon path's figure leaves out the daemon's share.
    pub(crate) cpu: Duration,
}

impl Timed for Case {
    fn argv(&self) -> &[OsString] {
        &self.argv
    }
    fn shown(&self) -> &str {
        &self.shown
    }
    fn record(&mut self, took: Took) {
        self.times.push(took.wall);
        self.cpu.push(took.cpu);
    }
    fn env(&self) -> &[(&'static str, &'static str)] {
        &self.env
    }
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
    crate::install::install_bwrap_link(prefix.path())?;
    let user = ensure_user()?;
    if args.throughput {
        return crate::throughput::run(args, prefix.path(), &user);
    }
    if args.views {
        drop(prefix);
        return crate::views::bench(
            ws,
            &crate::views::BenchArgs {
                runs: args.runs,
                write: args.write.clone(),
            },
        );
    }
    let daemon = BenchDaemon::start(prefix.path())?;

    let nsjail = |name: &'static str, socket: &Path, shown: &str| {
        Case::new(
            name,
            vec![
                prefix.path().join(CLI_REL).into(),
                "run".into(),
                "--socket".into(),
                socket.into(),
                "--".into(),
                "/bin/true".into(),
            ],
            Some(format!(
                "$PREFIX/bin/nsjail run --socket {shown} -- /bin/true"
            )),
        )
    };
    let mut cases = vec![
        nsjail("nsjail", Path::new("none"), "none"),
        nsjail("nsjail-d", &daemon.socket, "$PREFIX/helper.sock"),
    ];
    // The same without any seccomp filter: the difference is what installing the default
    // filter (precompiled, so nothing is compiled per spawn) costs a start.
    cases.push(Case::new(
        "nsjail-nosec",
        vec![
            prefix.path().join(CLI_REL).into(),
            "run".into(),
            "--socket".into(),
            "none".into(),
            "--seccomp".into(),
            "none".into(),
            "--".into(),
            "/bin/true".into(),
        ],
        Some("$PREFIX/bin/nsjail run --socket none --seccomp none -- /bin/true".to_string()),
    ));
    // The same without the Landlock ruleset: the difference is what building it (opening each
    // rule's path inside the new root) and applying it cost a start.
    cases.push(Case::new(
        "nsjail-nolandlock",
        vec![
            prefix.path().join(CLI_REL).into(),
            "run".into(),
            "--socket".into(),
            "none".into(),
            "--landlock".into(),
            "off".into(),
            "--".into(),
            "/bin/true".into(),
        ],
        Some("$PREFIX/bin/nsjail run --socket none --landlock off -- /bin/true".to_string()),
    ));
    // bwrap given the same view as `nsjail run` (the reference of every ratio), and bwrap with
    // the host's whole tree read-only, the row earlier benches compared with.
    let bwrap = find_program("bwrap");
    let bwrap_version = match &bwrap {
        Some(path) => {
            let mut same_view: Vec<OsString> = vec!["bwrap".into(), "--unshare-all".into()];
            same_view.extend(
                crate::views::bwrap_default_view()
                    .into_iter()
                    .map(OsString::from),
            );
            same_view.push("/bin/true".into());
            cases.push(Case::new(
                "bwrap",
                same_view,
                Some(
                    "bwrap --unshare-all <nsjail's default view as bwrap options> /bin/true"
                        .to_string(),
                ),
            ));
            cases.push(Case::new(
                HOSTROOT,
                BWRAP_TRUE.into_iter().map(OsString::from).collect(),
                None,
            ));
            version_of(path)
        }
        None => {
            eprintln!("bwrap not found: apt-get install bubblewrap (skipping its row and ratios)");
            None
        }
    };
    // Ours, by the same arguments, through the setuid helper (never a daemon of the host).
    let mut drop_in = Case::new(
        DROP_IN,
        std::iter::once(
            prefix
                .path()
                .join(crate::install::BWRAP_REL)
                .into_os_string(),
        )
        .chain(BWRAP_TRUE[1..].iter().map(OsString::from))
        .collect(),
        Some(format!(
            "NSJAIL_SOCKET=none $PREFIX/bin/bwrap {}",
            BWRAP_TRUE[1..].join(" ")
        )),
    );
    drop_in.env.push(("NSJAIL_SOCKET", "none"));
    cases.push(drop_in);
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

    warm_up_and_time(&mut cases, &user, args.runs)?;

    let reference = cases.iter().find(|c| c.name == "bwrap");
    let rows: Vec<Row> = cases
        .iter()
        .map(|c| Row {
            name: c.name,
            wall: Stats::of(&c.times),
            cpu: Stats::of(&c.cpu),
            wall_ratio: reference.map(|b| Ratio::paired(&c.times, &b.times)),
            cpu_ratio: reference.map(|b| Ratio::paired(&c.cpu, &b.cpu)),
        })
        .collect();
    println!();
    print!("{}", text_table(&rows));
    let times = |name: &str| cases.iter().find(|c| c.name == name).map(|c| &c.times);
    if let (Some(on), Some(off)) = (times("nsjail"), times("nsjail-nolandlock")) {
        let (diff, pct) = paired_change(on, off);
        println!("Landlock, paired run by run: {diff:+.3} ms, {pct:+.1} % of a start without it");
    }
    let cpu = |name: &str| cases.iter().find(|c| c.name == name).map(|c| &c.cpu);
    if let (Some(ours), Some(debian)) = (times(DROP_IN), times(HOSTROOT)) {
        let (diff, _) = paired_change(ours, debian);
        println!(
            "our bwrap ÷ Debian's, same arguments, paired run by run: wall {} (median difference \
             {diff:+.3} ms), CPU {}",
            Ratio::show(Some(Ratio::paired(ours, debian))),
            Ratio::show(
                cpu(DROP_IN)
                    .zip(cpu(HOSTROOT))
                    .map(|(a, b)| Ratio::paired(a, b))
            )
        );
    }
    println!();
    println!("commands (each as {BENCH_USER}, env HOME=/ PATH={CHILD_PATH}, stdio /dev/null):");
    for c in &cases {
        println!("  {:<22} {}", c.name, c.shown);
    }
    println!(
        "  ($PREFIX = {}, helper at $PREFIX/{HELPER_REL}, root:root 4755; nsjail-d: the same \
         CLI through the daemon `nsjail-helperd --socket $PREFIX/helper.sock`, run by root)",
        prefix.path().display()
    );

    let profile = match cases.first() {
        Some(c) if args.profile_starts > 0 => profile_starts(c, &user, args.profile_starts)?,
        _ => None,
    };

    step(&format!(
        "throughput: {} sandboxes through each nsjail path, sequentially and from {PARALLEL} \
         parallel clients",
        args.runs
    ));
    let mut rates = Vec::new();
    for case in &cases[..2] {
        let seq = rate(case, &user, args.runs, 1)?;
        let par = rate(case, &user, args.runs, PARALLEL)?;
        println!(
            "  {:<10} {seq:>8.1}/s sequential {par:>8.1}/s with {PARALLEL} clients",
            case.name
        );
        rates.push((case.name, seq, par));
    }
    drop(daemon);

    if let Some(path) = &args.write {
        let mut md = markdown(
            args,
            &cases,
            &rows,
            bwrap_version.as_deref(),
            &load,
            profile.as_deref(),
        )?;
        let _ = writeln!(
            md,
            "
## Throughput without limits: setuid helper and daemon

Sandboxes (`/bin/true`) started and finished per second by the \
             same user, {} in all: one client after another, and {PARALLEL} clients at once \
             ({} each).

| path | sequential /s | {PARALLEL} parallel clients /s |\n|---|---:|---:|",
            args.runs,
            args.runs.div_ceil(PARALLEL)
        );
        for (name, seq, par) in &rates {
            let _ = writeln!(md, "| {name} | {seq:.1} | {par:.1} |");
        }
        // The sections written by `--throughput` and `--views`, and the hand-written notes,
        // are kept.
        let old = fs::read_to_string(path).unwrap_or_default();
        for section in [
            crate::throughput::section_of(&old),
            crate::views::section_of(&old),
            notes_of(&old),
        ]
        .into_iter()
        .flatten()
        {
            md.push('\n');
            md.push_str(section);
            md.push('\n');
        }
        fs::write(path, md).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Where a start's time goes: `perf record -a` (the setuid helper cannot be followed from its
/// parent, so the whole machine is sampled) around `starts` runs of `case`, reported for the
/// sandbox's own processes only (the CLI `nsjail`, the helper and its init `nsjail-helper`, the
/// payload `true`): the share of each, then the top functions. Printed, and returned as a
/// markdown section; `None` when perf is not installed.
fn profile_starts(case: &Case, user: &RunAs, starts: u32) -> Result<Option<String>> {
    let Some(perf) = ["/usr/bin/perf", "/usr/local/bin/perf"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        eprintln!("perf not found (apt-get install linux-perf): no profile of the starts");
        return Ok(None);
    };
    step(&format!(
        "profiling {starts} starts of `{}` with {} record -a",
        case.shown,
        perf.display()
    ));
    let dir = tempfile::tempdir().context("a directory for perf.data")?;
    let data = dir.path().join("perf.data");
    let mut rec = Command::new(perf)
        .args(["record", "-a", "-F", "4999", "-q", "-o"])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} record", perf.display()))?;
    // perf opens its events before it samples; a start before that would go unseen.
    std::thread::sleep(Duration::from_millis(500));
    let mut result = Ok(());
    for _ in 0..starts {
        if let Err(e) = time_once(case, user) {
            result = Err(e);
            break;
        }
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rec.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let status = rec.wait().context("waiting for perf record")?;
    result?;
    // perf record ends on SIGINT by raising it again once it has written its data.
    let interrupted = std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc_sigint());
    if !(status.success() || interrupted) || !data.is_file() {
        eprintln!("perf record failed ({status}): no profile of the starts");
        return Ok(None);
    }
    let report = |sort: &str, limit: &str| -> Result<Vec<String>> {
        let out = Command::new(perf)
            .args([
                "report",
                "--stdio",
                "--no-children",
                "-g",
                "none",
                "--percentage",
            ])
            .args([
                "relative",
                "--comms",
                "nsjail,nsjail-helper,true",
                "--sort",
                sort,
            ])
            .args(["--percent-limit", limit, "-i"])
            .arg(&data)
            .stderr(Stdio::null())
            .output()
            .context("perf report")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .collect())
    };
    let by_process = report("comm", "0.1")?;
    let mut top = report("comm,dso,sym", "0.3")?;
    top.truncate(30);
    println!(
        "\nwhere {starts} starts of `{}` spend their CPU (perf, whole machine, the sandbox's processes only):",
        case.name
    );
    for l in by_process
        .iter()
        .chain(std::iter::once(&String::new()))
        .chain(&top)
    {
        println!("  {l}");
    }
    let mut md = format!(
        "\n### Where a start's time goes\n\n`perf record -a -F 4999` around {starts} starts of \
         `{}`, reported for the sandbox's processes only (`perf report --comms \
         nsjail,nsjail-helper,true --percentage relative`): the CLI is `nsjail`, the helper and \
         the sandbox's init are `nsjail-helper`, the payload is `true`. The binaries are \
         stripped, so their own code shows as addresses; the kernel's functions are named.\n\n\
         By process:\n\n```\n",
        case.name
    );
    for l in &by_process {
        let _ = writeln!(md, "{l}");
    }
    md.push_str("```\n\nTop entries (process, object, function):\n\n```\n");
    for l in &top {
        let _ = writeln!(md, "{l}");
    }
    md.push_str("```\n");
    Ok(Some(md))
}

fn libc_sigint() -> i32 {
    nix::sys::signal::Signal::SIGINT as i32
}

/// A fresh temporary prefix, mode 0755 so the bench user can reach it, on a filesystem that
/// honours setuid bits.
pub(crate) fn temp_prefix() -> Result<tempfile::TempDir> {
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
pub(crate) fn ensure_user() -> Result<RunAs> {
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
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(CHILD_PATH)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub(crate) fn version_of(program: &Path) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

/// The case's command, run as the bench user with a minimal environment.
pub(crate) fn command(case: &impl Timed, user: &RunAs) -> Result<Command> {
    let (program, rest) = case
        .argv()
        .split_first()
        .with_context(|| format!("{}: empty command", case.shown()))?;
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env_clear()
        .env("HOME", "/")
        .env("PATH", CHILD_PATH)
        .current_dir("/")
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .stdin(Stdio::null());
    for (k, v) in case.env() {
        cmd.env(k, v);
    }
    Ok(cmd)
}

/// Run once, capturing output; fail with that output unless the command exits 0.
pub(crate) fn check_once(case: &impl Timed, user: &RunAs) -> Result<()> {
    let out = command(case, user)?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("could not start `{}`", case.shown()))?;
    if !out.status.success() {
        bail!(
            "`{}` failed as {BENCH_USER} ({}); stdout: {:?}; stderr: {:?}",
            case.shown(),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// User plus system time of this process's reaped children so far.
fn children_cpu() -> Result<Duration> {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage(RUSAGE_CHILDREN)")?;
    let us = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Ok(us(u.user_time()) + us(u.system_time()))
}

/// One timed run: spawn to wait, and the CPU time of what it started (the difference of the
/// reaped children's totals around it; runs are one at a time, except in `rate`, which only
/// uses the wall time).
pub(crate) fn time_once(case: &impl Timed, user: &RunAs) -> Result<Took> {
    let mut cmd = command(case, user)?;
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let cpu_before = children_cpu()?;
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{}`", case.shown()))?;
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{}`", case.shown()))?;
    let wall = start.elapsed();
    let cpu = children_cpu()?.saturating_sub(cpu_before);
    if !status.success() {
        // Run it again with its output kept, to say why.
        check_once(case, user)?;
        bail!("`{}` failed once ({status}) during timing", case.shown());
    }
    Ok(Took { wall, cpu })
}

/// Warm up (each case must succeed), then time `runs` runs of each, interleaved round-robin
/// with the starting case rotated, so no case always follows the same one and drift affects
/// all alike.
pub(crate) fn warm_up_and_time<C: Timed>(cases: &mut [C], user: &RunAs, runs: u32) -> Result<()> {
    step(&format!(
        "warm-up: {WARMUP_RUNS} runs of each command as {BENCH_USER} (uid {})",
        user.uid
    ));
    for _ in 0..WARMUP_RUNS {
        for case in cases.iter() {
            check_once(case, user)?;
        }
    }
    step(&format!(
        "timing {runs} runs of each command, interleaved round-robin"
    ));
    let n = cases.len();
    for i in 0..runs as usize {
        for k in 0..n {
            let case = &mut cases[(i + k) % n];
            let elapsed = time_once(case, user)?;
            case.record(elapsed);
        }
    }
    Ok(())
}

/// Milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Stats {
    pub(crate) median: f64,
    pub(crate) p10: f64,
    pub(crate) p90: f64,
}

impl Stats {
    pub(crate) fn of(times: &[Duration]) -> Self {
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
    wall: Stats,
    cpu: Stats,
    /// Paired with the same-view bwrap row, run by run; `None` without bwrap.
    wall_ratio: Option<Ratio>,
    cpu_ratio: Option<Ratio>,
}

/// The ratios `a[i] / b[i]` of runs of the same round: median, p10 and p90.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Ratio {
    pub(crate) median: f64,
    pub(crate) p10: f64,
    pub(crate) p90: f64,
}

impl Ratio {
    pub(crate) fn paired(a: &[Duration], b: &[Duration]) -> Ratio {
        let mut r: Vec<f64> = a
            .iter()
            .zip(b)
            .filter(|(_, y)| !y.is_zero())
            .map(|(x, y)| x.as_secs_f64() / y.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        Ratio {
            median: percentile(&r, 50.0),
            p10: percentile(&r, 10.0),
            p90: percentile(&r, 90.0),
        }
    }

    fn show(r: Option<Ratio>) -> String {
        match r {
            Some(r) if r.median.is_finite() => {
                format!("{:.2}× ({:.2}–{:.2})", r.median, r.p10, r.p90)
            }
            _ => "–".to_string(),
        }
    }
}

fn text_table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<18} {:>9} {:>15} {:>20} {:>8} {:>20}\n",
        "command", "wall ms", "p10–p90", "wall ÷ bwrap", "CPU ms", "CPU ÷ bwrap"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<18} {:>9.3} {:>15} {:>20} {:>8.3} {:>20}",
            r.name,
            r.wall.median,
            format!("{:.3}–{:.3}", r.wall.p10, r.wall.p90),
            Ratio::show(r.wall_ratio),
            r.cpu.median,
            Ratio::show(r.cpu_ratio)
        );
    }
    s
}

fn markdown(
    args: &BenchArgs,
    cases: &[Case],
    rows: &[Row],
    bwrap_version: Option<&str>,
    load: &str,
    profile: Option<&str>,
) -> Result<String> {
    let facts = machine_facts()?;
    let produced = produced_by(args.runs, args.write.as_deref());
    let date = &facts.date;

    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Start-up cost of running `/bin/true` in a sandbox, timed from spawn to exit as seen by \
         the caller. Produced by `{produced}` (as root) on {date}.\n"
    );
    let _ = writeln!(md, "{}", facts.kernel_line());
    let _ = writeln!(
        md,
        "{}; load average (1, 5, 15 min) before the run: {load}",
        facts.cpu_line()
    );
    let _ = writeln!(md, "{} (`--socket none`)", nsjail_setuid_line());
    let _ = writeln!(
        md,
        "- nsjail-d: the same CLI through the helper daemon, run by root as \
         `nsjail-helperd --socket $PREFIX/helper.sock` (one fork per sandbox, no exec)"
    );
    if let Some(v) = bwrap_version {
        let _ = writeln!(md, "- bwrap: Debian's `bubblewrap` ({v})");
    }
    let _ = writeln!(md, "{}\n", method_line(args.runs, ""));
    let _ = writeln!(
        md,
        "Wall: from spawn to exit as the caller sees it. CPU: user + system time of the whole \
         process tree the command started (CLI, helper, the sandbox's init and the payload; for \
         bwrap its processes and the payload), from the kernel's accounting of reaped children; \
         the daemon's own forked process is not a child of the CLI, so `nsjail-d`'s CPU leaves \
         its share out. Ratios are paired run by run with `bwrap` (given nsjail's default view) \
         of the same round: median, with p10–p90 in brackets.\n"
    );
    let _ = writeln!(
        md,
        "| command | wall median ms | wall p10–p90 ms | wall ÷ bwrap | CPU median ms | CPU ÷ bwrap |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.3} | {:.3}–{:.3} | {} | {:.3} | {} |",
            r.name,
            r.wall.median,
            r.wall.p10,
            r.wall.p90,
            Ratio::show(r.wall_ratio),
            r.cpu.median,
            Ratio::show(r.cpu_ratio)
        );
    }
    if bwrap_version.is_none() {
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
        "\nThe aim: through the setuid helper, wall at most 1.00× bwrap's and CPU at most 1.6×; \
         through the daemon, wall at most 0.70×."
    );
    if let Some(p) = profile {
        md.push_str(p);
    }
    let _ = writeln!(
        md,
        "\n`nsjail` runs with its default seccomp filter (and no capabilities); `nsjail --seccomp \
         none` is the same start without any filter. The filter is compiled into the helper at \
         build time, so a start only installs it; the two rows differ by what one `seccomp()` \
         call and the filter's run on the payload's system calls cost (for comparison, \
         hakoniwa's libseccomp path is reported at about 20 ms a start)."
    );
    let times = |name: &str| cases.iter().find(|c| c.name == name).map(|c| &c.times);
    let cpu = |name: &str| cases.iter().find(|c| c.name == name).map(|c| &c.cpu);
    if let (Some(ours), Some(debian)) = (times(DROP_IN), times(HOSTROOT)) {
        let (diff, _) = paired_change(ours, debian);
        let _ = writeln!(
            md,
            "\n`{DROP_IN}` is the drop-in: `$PREFIX/bin/bwrap`, the link `cargo xtask install \
             --bwrap` makes, given exactly the `{HOSTROOT}` row's arguments and starting the sandbox \
             through the setuid helper (its ratios in the table are against the same-view \
             `bwrap` row, like every row's). Paired run by run against Debian's bwrap with the \
             same arguments (each run against Debian's of the same round): wall {}, median \
             difference {diff:+.3} ms; CPU {}.",
            Ratio::show(Some(Ratio::paired(ours, debian))),
            Ratio::show(
                cpu(DROP_IN)
                    .zip(cpu(HOSTROOT))
                    .map(|(a, b)| Ratio::paired(a, b))
            )
        );
    }
    if let (Some(on), Some(off)) = (times("nsjail"), times("nsjail-nolandlock")) {
        let (on_m, off_m) = (Stats::of(on).median, Stats::of(off).median);
        let (diff, pct) = paired_change(on, off);
        let _ = writeln!(
            md,
            "\n`nsjail` also applies its Landlock ruleset (where the kernel has Landlock ABI 2 or \
             newer; here it does); `nsjail --landlock off` is the same start without it. The \
             ruleset is meant to cost at most 3 % of a start. Here the median with it is {:+.1} % \
             of the median without; paired run by run (each run with it against the run without \
             it of the same round, so that a drifting load affects both alike), the median \
             difference is {diff:+.3} ms, {pct:+.1} % of the median without.",
            (on_m / off_m - 1.0) * 100.0
        );
    }
    Ok(md)
}

/// The median of the run-by-run differences `a[i] - b[i]` (runs of the same round), in ms, and
/// as a share of `b`'s median in per cent: less moved by a load that drifts than the
/// difference of the two medians.
pub(crate) fn paired_change(a: &[Duration], b: &[Duration]) -> (f64, f64) {
    let mut d: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.as_secs_f64() - y.as_secs_f64()) * 1e3)
        .collect();
    d.sort_by(f64::total_cmp);
    let diff = percentile(&d, 50.0);
    (diff, diff / Stats::of(b).median * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_change_is_the_median_difference() {
        let ms =
            |v: &[u64]| -> Vec<Duration> { v.iter().map(|m| Duration::from_millis(*m)).collect() };
        // Drift (10, 20, 30) cancels out run by run; a constant 1 ms remains.
        let (diff, pct) = paired_change(&ms(&[11, 21, 31]), &ms(&[10, 20, 30]));
        assert!((diff - 1.0).abs() < 1e-9);
        assert!((pct - 5.0).abs() < 1e-9);
    }

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
    fn ratios_are_paired_run_by_run() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        // Round by round 2/1, 6/2, 9/3 and 8/4: the median of the ratios, not of the runs.
        let r = Ratio::paired(&ms(&[2, 6, 9, 8]), &ms(&[1, 2, 3, 4]));
        assert!((r.median - 2.5).abs() < 1e-9, "{r:?}");
        assert!(r.p10 < r.median && r.median < r.p90, "{r:?}");
        assert_eq!(Ratio::show(Some(r)), "2.50× (2.00–3.00)");
        assert_eq!(Ratio::show(None), "–");
        // A run of no measurable time is left out rather than divided by.
        let r = Ratio::paired(&ms(&[1, 2]), &ms(&[0, 1]));
        assert!((r.median - 2.0).abs() < 1e-9, "{r:?}");
    }
}
