//! `bwrap`: bubblewrap's command line, run through our helper (setuid or daemon). `parse` reads
//! the words as bubblewrap does; `translate` makes the spawn request `nsjail run` would send;
//! this module runs it and speaks bubblewrap's machine interface (exit status, `--info-fd`,
//! `--json-status-fd`, `--sync-fd`, `--block-fd`, one-line `bwrap: ` errors, exit 1).

mod lock_file;
pub mod parse;
pub mod translate;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use anyhow::Result;

use self::parse::{Invocation, Parsed, UsageError};
use crate::{daemon, seccomp, session};

/// bubblewrap's exit status for anything that is not the command's own.
pub const FAILED: u8 = 1;

/// The most bytes `--args` reads from one fd.
const MAX_ARGS_BYTES: u64 = 16 << 20;

/// How messages start: `bwrap: `, after a syslog level with `--level-prefix`.
struct Say {
    prefix: &'static str,
}

impl Say {
    fn line(&self, msg: &str) {
        eprintln!("{}bwrap: {msg}", self.prefix);
    }
}

fn fd_path(fd: RawFd) -> String {
    format!("/proc/self/fd/{fd}")
}

fn fd_open(fd: RawFd) -> bool {
    fd >= 0 && std::fs::symlink_metadata(fd_path(fd)).is_ok()
}

/// The whole of what fd `fd` holds, read through `/proc/self/fd` (no unsafe code adopts a raw
/// number), bounded.
fn read_fd(fd: RawFd) -> Result<Vec<u8>, String> {
    if !fd_open(fd) {
        return Err("Bad file descriptor".into());
    }
    let f = std::fs::File::open(fd_path(fd)).map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    f.take(MAX_ARGS_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    if data.len() as u64 > MAX_ARGS_BYTES {
        return Err("File too large".into());
    }
    Ok(data)
}

/// `--bind-fd FD`: the directory the fd is open on, by its path, checked to be the same
/// directory (device and inode) so that a path renamed meanwhile is not bound instead.
fn bind_fd_path(fd: RawFd) -> Result<String, String> {
    let link = std::fs::read_link(fd_path(fd)).map_err(|_| {
        format!(
            "Can't find source path {}: No such file or directory",
            fd_path(fd)
        )
    })?;
    let by_fd = std::fs::metadata(fd_path(fd)).map_err(|e| format!("fstat {fd}: {e}"))?;
    let path = link.to_string_lossy().into_owned();
    match std::fs::metadata(&link) {
        Ok(m) if m.dev() == by_fd.dev() && m.ino() == by_fd.ino() && path.starts_with('/') => {
            Ok(path)
        }
        _ => Err(format!(
            "--bind-fd {fd}: the directory it is open on is no longer at {path}"
        )),
    }
}

/// Write `text` to the caller's fd `fd` (reopened, so that this process can close its own
/// copy and the reader sees the end).
fn write_fd(fd: RawFd, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(fd_path(fd))?;
    f.write_all(text.as_bytes())
}

/// The ids of the sandbox's new namespaces, read from the host's view of its first process.
/// A namespace the host cannot read there (the process is gone) is left out.
fn namespace_ids(pid: i32, ns: &nsjail_core::Namespaces) -> Vec<(&'static str, u64)> {
    translate::reported_namespaces(ns)
        .into_iter()
        .filter(|(_, _, new)| *new)
        .filter_map(|(file, key, _)| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{file}")).ok()?;
            let s = link.to_string_lossy().into_owned();
            let id = s.split_once(":[")?.1.trim_end_matches(']').parse().ok()?;
            Some((key, id))
        })
        .collect()
}

/// Wait until fd `fd` has data (bubblewrap reads one byte) or its end. A read that fails (a
/// closed fd) does not wait, and is no error, as in bubblewrap.
fn block_on(fd: RawFd) {
    let Ok(mut f) = std::fs::File::open(fd_path(fd)) else {
        return;
    };
    let mut b = [0u8; 1];
    while let Err(e) = f.read(&mut b) {
        if e.kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

fn hostname() -> String {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| u.nodename().to_str().map(str::to_string))
        .unwrap_or_default()
}

/// `nsjail bwrap --dry-run[=json] ARGS…`: the request these arguments make, as `nsjail run
/// --dry-run` prints it; nothing is started and no fd is waited on.
pub fn dry_run(args: &[OsString], format: crate::args::DryRun) -> ExitCode {
    let say = Say { prefix: "" };
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Unlike a run, the dry run leaves the --args fds open: they are left out by number.
    let mut consumed = Vec::new();
    let mut reader = |fd: RawFd| {
        consumed.push(fd);
        read_fd(fd)
    };
    let parsed = parse::parse(&args, &mut reader);
    let inv = match parsed {
        Ok(Parsed::Run(inv)) => inv,
        Ok(Parsed::Help | Parsed::Version) => return main(&[OsString::from("--help")]),
        Err(e) => {
            say.line(if e.message.is_empty() {
                "no command"
            } else {
                &e.message
            });
            return ExitCode::from(FAILED);
        }
    };
    match prepare(&inv, &consumed) {
        Ok((req, fds)) => {
            let located = crate::helper::locate(None);
            let (helper, helper_error) = match &located {
                Ok(l) => (
                    Some(crate::dryrun::HelperInfo {
                        path: l.path.display().to_string(),
                        found_by: l.how.to_string(),
                        mode: crate::helper::describe(&l.path),
                    }),
                    None,
                ),
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            let landlock = nsjail_core::landlock::plan(req.mounts.iter());
            let resolved = crate::dryrun::Resolved {
                helper,
                helper_error,
                passed_fds: &fds,
                profiles: Vec::new(),
                profile_args: &[],
                skipped: Vec::new(),
                notes: &[],
                landlock: &landlock,
                seccomp_profile: None,
                terminal: req.terminal,
            };
            match format {
                crate::args::DryRun::Text => print!("{}", crate::dryrun::text(&req, &resolved)),
                crate::args::DryRun::Json => {
                    println!("{}", crate::dryrun::json(&req, &resolved))
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            say.line(&format!("{e:#}").replace('\n', " "));
            ExitCode::from(FAILED)
        }
    }
}

pub fn main(args: &[OsString]) -> ExitCode {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // --level-prefix applies to every message, those of parsing included.
    let say = Say {
        prefix: if args
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a == "--level-prefix")
        {
            "<3>"
        } else {
            ""
        },
    };
    // bubblewrap closes an --args fd once read: a second --args of the same fd fails.
    let mut reader = |fd: RawFd| {
        let data = read_fd(fd)?;
        let _ = nix::unistd::close(fd);
        Ok(data)
    };
    let inv = match parse::parse(&args, &mut reader) {
        Ok(Parsed::Help) => {
            print!("{}", parse::usage("bwrap"));
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("bubblewrap {}", parse::BWRAP_VERSION);
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(inv)) => inv,
        Err(UsageError {
            message,
            show_usage,
        }) => {
            if !message.is_empty() {
                say.line(&message);
            }
            if show_usage {
                eprint!("{}", parse::usage("bwrap"));
            }
            return ExitCode::from(FAILED);
        }
    };
    for w in &inv.warnings {
        say.line(w);
    }
    match run(&inv, &say) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            say.line(&format!("{e:#}").replace('\n', " "));
            ExitCode::from(FAILED)
        }
    }
}

/// The fds bubblewrap itself reads, waits on, writes or holds outside the command, and does not
/// pass on (each checked against Debian's bwrap 0.8 with `ls -l /proc/self/fd` inside): the
/// data of `--file`, `--bind-data`, `--ro-bind-data`, `--seccomp`, `--add-seccomp-fd`, the
/// directories of `--bind-fd`, `--info-fd`, `--json-status-fd`, `--block-fd`,
/// `--userns-block-fd`, `--sync-fd` (its init holds it, not the command; here this process
/// does) and the namespaces to join. `--args` fds are closed once read.
fn consumed_fds(inv: &Invocation) -> Vec<RawFd> {
    let mut v: Vec<RawFd> = inv
        .seccomp_fd
        .iter()
        .chain(&inv.add_seccomp_fds)
        .chain(&inv.info_fd)
        .chain(&inv.json_status_fd)
        .chain(&inv.sync_fd)
        .chain(&inv.block_fd)
        .chain(&inv.userns_block_fd)
        .copied()
        .collect();
    v.extend(inv.join_ns.iter().map(|(_, fd)| *fd));
    for op in &inv.ops {
        match op {
            parse::FsOp::BindFd { fd, .. }
            | parse::FsOp::File { fd, .. }
            | parse::FsOp::BindData { fd, .. } => v.push(*fd),
            _ => {}
        }
    }
    v
}

/// The request and the fds that go with it, checked as the helper will check it. `read` are
/// the `--args` fds parsing read.
fn prepare(inv: &Invocation, read: &[RawFd]) -> Result<(nsjail_core::SpawnRequest, Vec<RawFd>)> {
    if let Some(msg) = translate::refused(inv) {
        anyhow::bail!("{msg}");
    }
    translate::check_combinations(inv).map_err(anyhow::Error::msg)?;
    // A closed seccomp fd, in bubblewrap's words (its read fails).
    if !inv
        .seccomp_fd
        .iter()
        .chain(&inv.add_seccomp_fds)
        .all(|fd| fd_open(*fd))
    {
        anyhow::bail!("Can't read seccomp data: Bad file descriptor");
    }
    let seccomp_prog = match inv.seccomp_fd {
        Some(fd) => Some(
            seccomp::read_bpf_programs(&[fd])
                .map_err(|e| anyhow::anyhow!("Can't read seccomp data: {e:#}"))?
                .remove(0),
        ),
        None => None,
    };
    let programs = seccomp::read_bpf_programs(&inv.add_seccomp_fds)?;
    // bubblewrap checks only the length of what it read, and says so in these words.
    let framed = |p: &Vec<u8>| !p.is_empty() && p.len().is_multiple_of(8);
    if !seccomp_prog.iter().chain(&programs).all(framed) {
        anyhow::bail!("Invalid seccomp data, must be multiple of 8");
    }
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string));
    let caller = translate::Caller {
        env,
        cwd,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        hostname: hostname(),
        fd_open: &fd_open,
        fd_path: &bind_fd_path,
    };
    let t = translate::request(inv, &caller, seccomp_prog, programs).map_err(anyhow::Error::msg)?;
    // A source that is not there, in bubblewrap's words, before a helper starts (the helper
    // opens each source again, as the caller).
    for op in &t.req.mounts {
        if let nsjail_core::MountOp::Bind {
            src,
            optional: false,
            ..
        } = op
            && let Err(e) = std::fs::metadata(src)
            && e.kind() == std::io::ErrorKind::NotFound
        {
            anyhow::bail!("Can't find source path {src}: No such file or directory");
        }
    }
    let mut req = t.req;
    // Every other fd the caller left open (not close-on-exec) goes to the command at its
    // number, as bubblewrap leaves it; this process's own are all close-on-exec.
    let mut not_passed = consumed_fds(inv);
    not_passed.extend_from_slice(read);
    req.pass_fds = crate::passfd::inherited(&not_passed);
    // With a terminal on stdin the payload gets one of its own, --new-session or not: TIOCSTI
    // then reaches no terminal of the caller (bwrap CVE-2017-5226), whatever filter it runs under.
    req.terminal = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    nsjail_core::validate::check(&req)?;
    let fds = crate::passfd::with_passed(&t.fds, &req.pass_fds);
    Ok((req, fds))
}

fn run(inv: &Invocation, say: &Say) -> Result<i32> {
    // `--die-with-parent`: as bubblewrap, this process dies (SIGKILL) with the one that started
    // it, and the sandbox with it (the helper ends a sandbox whose CLI is gone). A client that
    // crashes then leaves no sandbox behind.
    if inv.die_with_parent {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .map_err(|e| anyhow::anyhow!("prctl(PR_SET_PDEATHSIG): {e}"))?;
    }
    let (req, fds) = prepare(inv, &[])?;
    // bubblewrap fails on its first write to a closed info or status fd; here the sandbox
    // would have started by then, so the fd is checked first, in the same words.
    for fd in [inv.info_fd, inv.json_status_fd].into_iter().flatten() {
        if !fd_open(fd) {
            anyhow::bail!("Write to info_fd: Bad file descriptor");
        }
    }
    for fd in [inv.block_fd, inv.userns_block_fd].into_iter().flatten() {
        block_on(fd);
    }
    // Held until this process ends, which is when the sandbox has ended.
    let _locks = lock_file::take(&inv.lock_files, &req.mounts)?;
    let route = daemon::choose(None, None)?;
    daemon::say_way_in(&route)?;

    let ns = req.namespaces;
    let (info_fd, status_fd) = (inv.info_fd, inv.json_status_fd);
    let on_started = move |pid: i32| {
        let ids = namespace_ids(pid, &ns);
        if let Some(fd) = info_fd {
            let _ = write_fd(fd, &translate::info_json(pid, &ids));
            // The reader waits for the end: our copy goes now (the sandbox never had one).
            let _ = nix::unistd::close(fd);
        }
        if let Some(fd) = status_fd {
            let _ = write_fd(fd, &translate::status_start_json(pid, &ids));
        }
    };
    let mut hooks = session::Hooks {
        on_started: Some(Box::new(on_started)),
        quiet_exec_error: true,
        ..Default::default()
    };
    let outcome = crate::start_and_supervise(false, &req, route, &fds, &mut hooks)?;
    let code = match &outcome.exec_error {
        Some(_) => {
            let cmd = &inv.command[0];
            let why = if outcome.code == nsjail_core::exit::NOT_FOUND {
                "No such file or directory"
            } else {
                "Permission denied"
            };
            say.line(&format!("execvp {cmd}: {why}"));
            i32::from(FAILED)
        }
        None => outcome.code,
    };
    if let Some(fd) = status_fd {
        let _ = write_fd(fd, &translate::status_exit_json(code));
    }
    // --sync-fd stays open in this process until here, as bubblewrap holds it.
    let _ = inv.sync_fd;
    Ok(code)
}
