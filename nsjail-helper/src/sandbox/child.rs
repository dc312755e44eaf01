//! The sandbox's first process: the steps after `clone`, in the order the kernel needs them.
//!
//! This process starts with the helper's credentials (euid 0 on the host when the helper is
//! setuid) and a full capability set inside its new user namespace. Until it has switched every
//! id to the mapped ones it must not touch any path: an euid of host root would make the kernel
//! check file access as root.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::prctl;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{Gid, Uid, chdir, dup2_stderr, dup2_stdin, dup2_stdout, execve, read, setsid};
use nsjail_core::SpawnRequest;
use nsjail_core::exit::{NOT_EXECUTABLE, NOT_FOUND, SETUP_FAILED};
use nsjail_core::limits::RlimitSetting;

use crate::error::{Result, sys};
use crate::sandbox::lockdown::{self, Lockdown};
use crate::sandbox::{init, mounts};
use crate::setup_report::Reporter;
use crate::sys;

/// The fds the first process starts with, besides everything it inherited and closes.
pub struct ChildFds {
    pub stdio: [OwnedFd; 3],
    /// The request's extra fds, consumed by the filesystem view.
    pub extra: Vec<OwnedFd>,
    /// The payload's passed fds, one for each of the request's `pass_fds`, in that order.
    pub pass: Vec<OwnedFd>,
    /// Readable once the parent has written the ID maps; hangs up when the parent dies.
    pub sync: OwnedFd,
    pub report: OwnedFd,
    /// Where the init writes the payload's wait status.
    pub status: OwnedFd,
    /// Where to send the master of the payload's terminal, when the request asked for one.
    pub terminal: Option<OwnedFd>,
}

/// Signals the init passes on to the payload. The helper forwards only these.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Run the first process of the sandbox; never returns. `lock` is what the payload is left
/// with (capabilities, seccomp filters), decided by the helper before `clone`.
pub fn run(req: &SpawnRequest, fds: ChildFds, lock: &Lockdown) -> ! {
    let ChildFds {
        stdio,
        extra,
        pass,
        sync,
        report,
        status,
        terminal,
    } = fds;
    let reporter = Reporter::new(report, req.verbose);
    let exec = set_up(req, &sync, extra, &reporter);
    drop(sync);
    let err = match exec {
        Ok(exec) => {
            // After pivot_root, as the caller: the payload's terminal from the sandbox's own
            // /dev/pts (see sandbox/terminal.rs).
            let stdio = match terminal {
                Some(sock) => crate::sandbox::terminal::make_inside(stdio, sock, &reporter),
                None => stdio,
            };
            match start(req, exec, lock, stdio, pass, reporter, status) {
                Ok(never) => match never {},
                Err((e, reporter)) => {
                    reporter.setup_failed(&e.to_string());
                    sys::exit_now(SETUP_FAILED)
                }
            }
        }
        Err(e) => e,
    };
    reporter.setup_failed(&err.to_string());
    sys::exit_now(SETUP_FAILED)
}

/// Everything exec needs, prepared before the payload is forked so that errors are set-up
/// errors.
struct Exec {
    candidates: Vec<CString>,
    argv: Vec<CString>,
    env: Vec<CString>,
    program: String,
    /// Applied in the payload alone, just before exec: our init must not inherit them (a small
    /// `nproc` or `as` would stop it from starting the payload at all).
    rlimits: Vec<RlimitSetting>,
    /// The Landlock ruleset that mirrors the view as it was built.
    landlock: nsjail_core::landlock::Ruleset,
}

fn set_up(
    req: &SpawnRequest,
    sync: &OwnedFd,
    extra: Vec<OwnedFd>,
    reporter: &Reporter,
) -> Result<Exec> {
    // Die with the helper. Armed first so that no step below can outlive it.
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;

    // 1. Wait until the parent has written our ID maps. End-of-file means it died.
    let mut byte = [0u8; 1];
    loop {
        match read(sync.as_fd(), &mut byte) {
            Ok(1) => break,
            Ok(_) => sys::exit_now(SETUP_FAILED),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("read sync pipe")(e)),
        }
    }

    // 2. Become the mapped ids, all of them (real, effective, saved, filesystem), before any
    //    path is touched: from here on the kernel checks every access as the caller.
    //    Capabilities survive: the ids stay "root" of this namespace or are not mapped as 0, so
    //    the setuid fix-up rule never clears them.
    let gid = Gid::from_raw(req.ids.gid);
    let uid = Uid::from_raw(req.ids.uid);
    nix::unistd::setresgid(gid, gid, gid).map_err(sys(format!("setresgid({gid})")))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(sys(format!("setresuid({uid})")))?;
    // A credential change resets the dumpable flag to fs.suid_dumpable and clears the parent
    // death signal; set both again. Non-dumpable keeps the caller from ptracing the set-up
    // (bubblewrap CVE-2016-8659).
    prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE)"))?;
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    // If the helper died before the signal was re-armed, its end of the sync pipe is closed.
    let mut pfd = [PollFd::new(sync.as_fd(), PollFlags::POLLIN)];
    if poll(&mut pfd, PollTimeout::ZERO).map_err(sys("poll sync pipe"))? > 0
        && pfd[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
    {
        sys::exit_now(SETUP_FAILED);
    }
    reporter.step(|| format!("ids: switched to uid {uid} gid {gid} inside"));
    // A session keyring of the sandbox's own, owned by the caller, made now that the ids are
    // theirs: the inherited one is the caller's (setuid) or the daemon's, which systemd gives
    // every service (KeyringMode=private), so every user's sandboxes would share it and read,
    // change or revoke each other's keys (found in review). It goes with the sandbox.
    // Inside another sandbox whose filter denies the keyring calls (EPERM, or ENOSYS from a
    // filter that says so) there is nothing to isolate: that filter binds this sandbox's
    // payload too, so it cannot touch any keyring either.
    match sys::join_new_session_keyring() {
        Ok(()) | Err(Errno::EPERM | Errno::ENOSYS) => {}
        Err(e) => return Err(sys("keyctl(KEYCTL_JOIN_SESSION_KEYRING)")(e)),
    }

    // 3. A new session: the payload loses the caller's controlling terminal, so it cannot push
    //    input into it with TIOCSTI (bubblewrap CVE-2017-5226, firejail CVE-2016-9016).
    setsid().map_err(sys("setsid"))?;

    // 4. Mounts. Make every mount private first, so nothing done here propagates to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("mount --make-rprivate /"))?;
    reporter.step(|| "mount: / and everything below made private".into());
    // The new root: every source opened as the caller, every destination resolved inside it,
    // then pivot_root. See mounts.rs for why each step comes where it does.
    let applied = mounts::build(&req.mounts, extra, reporter)?;
    let landlock = nsjail_core::landlock::plan(
        req.mounts
            .iter()
            .zip(&applied)
            .filter(|(_, done)| **done)
            .map(|(op, _)| op),
    );

    // 5. UTS and network.
    if req.namespaces.uts {
        nix::unistd::sethostname(&req.hostname)
            .map_err(sys(format!("sethostname({:?})", req.hostname)))?;
        reporter.step(|| format!("hostname: {}", req.hostname));
    }
    if req.namespaces.net {
        sys::loopback_up().map_err(sys("ioctl(SIOCSIFFLAGS) lo up"))?;
        reporter.step(|| "net: lo up".into());
    }
    // 5b. A cgroup namespace rooted at the sandbox's own cgroup, which the helper put us in
    //     before releasing us (the one made by the clone is rooted where we were cloned): the
    //     payload sees its cgroup as `/`, not the host's path, and a cgroup filesystem mounted
    //     inside shows nothing above it.
    if req.namespaces.cgroup && req.limits.wants_cgroup() {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(sys("unshare(CLONE_NEWCGROUP)"))?;
        reporter.step(|| "cgroup namespace: rooted at the sandbox's cgroup".into());
    }

    // 6. Working directory: the one asked for, else the caller's when it can be entered.
    let cwd = match (&req.cwd, &req.caller_cwd) {
        (Some(dir), _) => {
            chdir(dir.as_str()).map_err(sys(format!("chdir {dir}")))?;
            dir.clone()
        }
        (None, Some(dir)) if chdir(dir.as_str()).is_ok() => dir.clone(),
        _ => {
            chdir("/").map_err(sys("chdir /"))?;
            "/".to_string()
        }
    };
    reporter.step(|| format!("cwd: {cwd}"));

    prepare_exec(req, landlock)
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| sys(format!("{s:?}"))(Errno::EINVAL))
}

fn prepare_exec(req: &SpawnRequest, landlock: nsjail_core::landlock::Ruleset) -> Result<Exec> {
    let argv = req
        .argv
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<Vec<_>>>()?;
    let env = req
        .env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}")))
        .collect::<Result<Vec<_>>>()?;
    // PATH lookup as execvp does it, with the payload's own PATH.
    let candidates = if req.program.contains('/') {
        vec![cstring(&req.program)?]
    } else {
        let path = req
            .path_var()
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':')
            .map(|dir| {
                let dir = if dir.is_empty() { "." } else { dir };
                cstring(&format!("{}/{}", dir.trim_end_matches('/'), req.program))
            })
            .collect::<Result<Vec<_>>>()?
    };
    Ok(Exec {
        candidates,
        argv,
        env,
        program: req.program.clone(),
        // The caller's limits first (what a normal child of the caller would have; the helper
        // raised its own), then the request's on top.
        rlimits: crate::host::inherit::payload_rlimits()
            .into_iter()
            .chain(crate::sandbox::rlimits::with_defaults(&req.limits.rlimits))
            .collect(),
        landlock,
    })
}

type StartError = (crate::error::HelperError, Reporter);

/// Hand the payload its stdio, close everything else, and start it behind the init (or as
/// PID 1 itself).
fn start(
    req: &SpawnRequest,
    exec: Exec,
    lock: &Lockdown,
    stdio: [OwnedFd; 3],
    pass: Vec<OwnedFd>,
    reporter: Reporter,
    status: OwnedFd,
) -> std::result::Result<std::convert::Infallible, StartError> {
    let fail = |e: crate::error::HelperError, r: Reporter| (e, r);
    let [stdin, stdout, stderr] = stdio;
    if let Err(e) = dup2_stdin(&stdin)
        .and_then(|()| dup2_stdout(&stdout))
        .and_then(|()| dup2_stderr(&stderr))
    {
        return Err(fail(sys("dup2 stdio")(e), reporter));
    }
    drop((stdin, stdout, stderr));
    // A terminal on stdin (the pseudo-terminal the CLI made) becomes this session's controlling
    // terminal, so job control works inside and the terminal's signal keys reach the
    // foreground job. Not stolen from another session: a terminal that already controls one
    // (the caller's own) stays without, and then TIOCSTI cannot reach it.
    let ctty = nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
        && sys::set_controlling_tty(std::io::stdin().as_fd()).is_ok();
    if ctty {
        reporter.step(|| "terminal: stdin is the session's controlling terminal".into());
    }
    // The caller's passed fds at their numbers (still close-on-exec; the payload clears that
    // right before exec, the init closes them).
    let (reporter, status, passed) = match place_passed(&req.pass_fds, pass, reporter, status) {
        Ok(placed) => placed,
        Err((e, r)) => return Err(fail(e, r)),
    };
    // Every other inherited fd (the client socket, the helper's pipe ends) goes now; the two
    // pipes we keep are close-on-exec.
    let mut keep = vec![reporter_fd(&reporter), status.as_raw_fd()];
    keep.extend(passed.iter().map(AsRawFd::as_raw_fd));
    keep.sort_unstable();
    if let Err(e) = sys::close_fds_from_except(3, &keep) {
        return Err(fail(sys("close_range")(e), reporter));
    }
    // The payload's Landlock ruleset, built here inside the new root with the stdio in place
    // (before any capability is dropped, so every path the payload could reach opens); the
    // payload applies it to itself right before exec.
    let landlock = match lock.landlock {
        Some(abi) => match crate::sandbox::landlock::prepare(&exec.landlock, abi, &reporter) {
            Ok(p) => Some(p),
            Err(e) => return Err(fail(e, reporter)),
        },
        None => None,
    };

    // The bounding set down to the payload's capabilities, once for the init and the payload
    // (both inherit it across the fork below).
    if let Err(e) = lockdown::limit_bounding_set(lock.caps) {
        return Err(fail(e, reporter));
    }

    if req.as_pid_1 {
        drop(status);
        reporter.step(|| format!("exec: {} as PID 1", exec.program));
        exec_payload(&exec, lock, landlock, &passed, &reporter);
    }

    // The init takes signals through a signalfd; block them before the fork so none is lost
    // between fork and the init's first read. The payload restores an empty mask.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    // SIGCONT from the helper: continue the payload after a stop (see init.rs).
    mask.add(Signal::SIGCONT);
    for s in FORWARDED {
        mask.add(s);
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None) {
        return Err(fail(sys("sigprocmask")(e), reporter));
    }
    let sigfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => return Err(fail(sys("signalfd")(e), reporter)),
    };
    reporter.step(|| format!("exec: {} behind init (PID 1)", exec.program));
    match sys::fork() {
        Err(e) => Err(fail(sys("fork payload")(e), reporter)),
        Ok(None) => {
            drop(sigfd);
            drop(status);
            if ctty {
                foreground();
            }
            exec_payload(&exec, lock, landlock, &passed, &reporter)
        }
        Ok(Some(payload)) => {
            // The passed fds are the payload's alone: the init never holds a caller's socket,
            // so its peer sees the end when the payload (and what it gave them to) is done.
            drop(passed);
            // The ruleset is the payload's; the init runs without it.
            drop(landlock);
            // The init needs no capability at all: waiting, signalling its own child and
            // writing a pipe. It never execs, and it gets no seccomp filter, so that a strict
            // custom profile cannot break the reaping of the payload.
            if let Err(e) = nix::sys::prctl::set_no_new_privs()
                .map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))
                .and_then(|()| lockdown::limit_capabilities(lock.caps, nsjail_core::CapSet::EMPTY))
            {
                let _ = nix::sys::signal::kill(payload, Signal::SIGKILL);
                reporter.setup_failed(&format!("init: {e}"));
                sys::exit_now(SETUP_FAILED);
            }
            // The init must not hold the report pipe: its end-of-file tells the helper that
            // the payload's exec happened.
            drop(reporter.into_fd());
            init::run(payload, sigfd, status)
        }
    }
}

/// The payload in its own process group, in the terminal's foreground, as a shell starts a
/// job: Ctrl-C and Ctrl-Z reach it (and whatever it starts in that group), not the init.
fn foreground() {
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    // A process outside the foreground group may change it only with SIGTTOU blocked.
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), None);
    let me = nix::unistd::getpid();
    if nix::unistd::setpgid(me, me).is_ok() {
        let _ = nix::unistd::tcsetpgrp(std::io::stdin(), me);
    }
}

fn reporter_fd(r: &Reporter) -> i32 {
    r.raw_fd()
}

/// Put each passed fd at its number inside. First every fd this process still uses (the
/// report and status pipes, the passed fds as they arrived) moves above the highest target, so
/// that placing one never closes another or one of ours; never onto 0 to 2 (validation keeps
/// every target at 3 or above). Returns the pipes, moved, and the placed fds (close-on-exec).
#[allow(clippy::type_complexity)]
fn place_passed(
    targets: &[u32],
    pass: Vec<OwnedFd>,
    reporter: Reporter,
    status: OwnedFd,
) -> std::result::Result<(Reporter, OwnedFd, Vec<OwnedFd>), StartError> {
    let Some(&top) = targets.iter().max() else {
        return Ok((reporter, status, Vec::new()));
    };
    let verbose = reporter.is_verbose();
    if targets.len() != pass.len() || targets.iter().any(|&t| t < 3) {
        return Err((
            crate::error::HelperError::Refused(format!(
                "{} fds passed for {} --pass-fd targets",
                pass.len(),
                targets.len()
            )),
            reporter,
        ));
    }
    let above = top as i32 + 1;
    let report = reporter.into_fd();
    let moved = sys::dup_at_or_above(report.as_fd(), above);
    // The original goes either way; on failure the error is written to the original's copy.
    let reporter = match moved {
        Ok(fd) => {
            drop(report);
            Reporter::new(fd, verbose)
        }
        Err(e) => {
            return Err((
                sys("fcntl(F_DUPFD_CLOEXEC) of the report pipe")(e),
                Reporter::new(report, verbose),
            ));
        }
    };
    let status = match sys::dup_at_or_above(status.as_fd(), above) {
        Ok(fd) => fd,
        Err(e) => {
            return Err((
                sys("fcntl(F_DUPFD_CLOEXEC) of the status pipe")(e),
                reporter,
            ));
        }
    };
    let mut sources = Vec::with_capacity(pass.len());
    for fd in pass {
        match sys::dup_at_or_above(fd.as_fd(), above) {
            Ok(moved) => sources.push(moved),
            Err(e) => return Err((sys("fcntl(F_DUPFD_CLOEXEC) of a passed fd")(e), reporter)),
        }
    }
    let mut placed = Vec::with_capacity(targets.len());
    for (&target, fd) in targets.iter().zip(&sources) {
        match sys::dup_onto(fd.as_fd(), target as i32) {
            Ok(at) => placed.push(at),
            Err(e) => return Err((sys(format!("dup3 onto passed fd {target}"))(e), reporter)),
        }
    }
    drop(sources);
    reporter.step(|| {
        let list: Vec<String> = targets.iter().map(u32::to_string).collect();
        format!("fds: passed to the payload at {}", list.join(", "))
    });
    Ok((reporter, status, placed))
}

/// The last steps before the payload's code runs: its rlimits, no inherited fd, no new
/// privileges, its Landlock ruleset, only the capabilities asked for, the seccomp filters, exec.
fn exec_payload(
    exec: &Exec,
    lock: &Lockdown,
    landlock: Option<crate::sandbox::landlock::Prepared>,
    passed: &[OwnedFd],
    reporter: &Reporter,
) -> ! {
    // Every signal at its default action and none blocked, as a shell starts a program: the
    // helper ignores the terminal's and the timers' signals for itself, and an ignored signal
    // would stay ignored across exec.
    if let Err(e) = sys::default_signals()
        .and_then(|()| sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None))
    {
        reporter.setup_failed(&sys("rt_sigaction (default signals)")(e).to_string());
        sys::exit_now(SETUP_FAILED);
    }
    if let Some(mask) = crate::host::inherit::payload_umask() {
        nix::sys::stat::umask(mask);
    }
    if let Err(e) = crate::sandbox::rlimits::apply(&exec.rlimits) {
        reporter.setup_failed(&e.to_string());
        sys::exit_now(SETUP_FAILED);
    }
    if let Err(e) = sys::cloexec_from(3) {
        reporter.setup_failed(&sys("close_range(CLOEXEC)")(e).to_string());
        sys::exit_now(SETUP_FAILED);
    }
    // The caller's passed fds, and only they, survive the exec (before the filters, which
    // could deny fcntl).
    for fd in passed {
        if let Err(e) = sys::keep_across_exec(fd.as_fd()) {
            reporter.setup_failed(
                &sys(format!("fcntl(F_SETFD) on passed fd {}", fd.as_raw_fd()))(e).to_string(),
            );
            sys::exit_now(SETUP_FAILED);
        }
    }
    if let Err(e) = lockdown::apply(lock, landlock) {
        reporter.setup_failed(&e.to_string());
        sys::exit_now(SETUP_FAILED);
    }
    let mut denied = false;
    let mut last = Errno::ENOENT;
    // A file that is there but could not run for want of its interpreter (see interp.rs): the
    // search ends there, as in a shell, and the message names what is missing.
    let mut needs: Option<(&CString, Option<String>)> = None;
    for path in &exec.candidates {
        let Err(e) = execve(path, &exec.argv, &exec.env);
        match e {
            Errno::ENOENT if nix::sys::stat::stat(path.as_c_str()).is_ok() => {
                needs = Some((path, crate::sandbox::interp::missing_for(path)));
                last = e;
                break;
            }
            Errno::ENOENT | Errno::ENOTDIR => {}
            // Like a shell: "permission denied" only when the file exists and cannot be
            // executed; an unreadable directory on PATH just does not have it.
            Errno::EACCES if nix::sys::stat::stat(path.as_c_str()).is_ok() => denied = true,
            Errno::EACCES => {}
            other => {
                last = other;
                break;
            }
        }
        if e != Errno::EACCES {
            last = e;
        }
    }
    let errno = if denied && matches!(last, Errno::ENOENT | Errno::ENOTDIR) {
        Errno::EACCES
    } else {
        last
    };
    let why = match needs {
        Some((path, Some(interp))) => format!(
            "{} needs {interp}, which is not in the sandbox",
            path.to_string_lossy()
        ),
        Some((path, None)) => format!(
            "{} is there, but a file it needs to run (its interpreter or loader) is not",
            path.to_string_lossy()
        ),
        None => errno.desc().to_string(),
    };
    reporter.exec_failed(
        errno as i32,
        &format!("cannot execute {:?}: {why}", exec.program),
    );
    sys::exit_now(if matches!(errno, Errno::ENOENT | Errno::ENOTDIR) {
        NOT_FOUND
    } else {
        NOT_EXECUTABLE
    })
}
