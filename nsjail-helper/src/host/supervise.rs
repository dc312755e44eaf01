//! Waits for the sandbox, relays the client's signals and reports how it ended.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nsjail_core::limits::show_seconds;
use nsjail_core::{
    CgroupUsage, ClientMessage, ErrorKind, ExitInfo, HelperEvent, LimitHit, Limits, Termination,
};

use crate::error::{HelperError, Result, sys};
use crate::host::conn::{Conn, Gone};
use crate::host::enforce::{self, Enforcer};
use crate::host::spawn::Sandbox;
use crate::sandbox::child::FORWARDED;
use crate::sandbox::terminal;
use crate::setup_report::{ChildReport, parse};
use crate::sys as os;

/// How often a stop of the payload the client has not been told of is tried again.
const STOP_RETRY: Duration = Duration::from_millis(20);

/// What woke us.
enum Wake {
    /// The client sent something, or hung up.
    Client,
    /// The client's socket takes more of the queued events.
    Writable,
    Report,
    Exited,
}

fn wait_for(
    conn: &Conn,
    other: Option<&OwnedFd>,
    pidfd: &OwnedFd,
    timeout: Option<Duration>,
) -> Result<Vec<Wake>> {
    let ready = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
    let mut client = PollFlags::POLLIN;
    if conn.wants_to_write() {
        client |= PollFlags::POLLOUT;
    }
    let mut fds = vec![
        PollFd::new(conn.fd(), client),
        PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
    ];
    if let Some(fd) = other {
        fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
    }
    // Whole milliseconds, rounded up so that a check is never early.
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(d) => {
            let ms = d.as_micros().div_ceil(1000).clamp(1, i32::MAX as u128) as i32;
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    };
    loop {
        match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("poll")(e)),
            Ok(_) => break,
        }
    }
    let revents = |i: usize| {
        fds.get(i)
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty())
    };
    let hit = |i: usize| revents(i).intersects(ready);
    let mut out = Vec::new();
    if hit(0) {
        out.push(Wake::Client);
    }
    if revents(0).contains(PollFlags::POLLOUT) {
        out.push(Wake::Writable);
    }
    if hit(2) {
        out.push(Wake::Report);
    }
    if hit(1) {
        out.push(Wake::Exited);
    }
    Ok(out)
}

/// Supervise `sb` until it ends. Returns when the final event has been sent (or the client is
/// gone and the sandbox has been killed).
pub fn supervise(mut sb: Sandbox, conn: &mut Conn, verbose: bool) -> Result<()> {
    let mut enforcer = Enforcer::new(&sb);
    // Phase 1: until the payload's exec (end-of-file on the report pipe).
    let mut report = Vec::new();
    let mut report_open = true;
    let mut exited = false;
    // Messages that came in with the request (a signal sent at once) are acted on first.
    if !handle_client(&sb, conn)? {
        return client_gone(&sb, conn);
    }
    while report_open && !exited {
        let timeout = enforce(&mut enforcer, &sb, conn, verbose)?;
        if conn.gone.is_some() {
            return client_gone(&sb, conn);
        }
        for wake in wait_for(conn, Some(&sb.report), &sb.pidfd, timeout)? {
            match wake {
                Wake::Client => {
                    if !handle_client(&sb, conn)? {
                        return client_gone(&sb, conn);
                    }
                }
                Wake::Writable => conn.flush()?,
                Wake::Report => {
                    if !read_some(&mut sb.report, &mut report)? {
                        report_open = false;
                    }
                }
                Wake::Exited => exited = true,
            }
        }
    }
    // The first process may have died before its writes were read; with every writer gone,
    // the rest of the pipe is there to read.
    while report_open {
        report_open = read_some(&mut sb.report, &mut report)?;
    }
    let mut exec_failed = false;
    for r in parse(&report) {
        match r {
            ChildReport::Step(s) if verbose => conn.send(&HelperEvent::Step(s))?,
            ChildReport::Step(_) => {}
            ChildReport::SetupFailed(message) => {
                let _ = kill_and_reap(&sb);
                conn.send(&HelperEvent::Error {
                    kind: ErrorKind::Setup,
                    message,
                })?;
                return Ok(());
            }
            ChildReport::ExecFailed { errno, message } => {
                exec_failed = true;
                let kind = if matches!(Errno::from_raw(errno), Errno::ENOENT | Errno::ENOTDIR) {
                    ErrorKind::NotFound
                } else {
                    ErrorKind::NotExecutable
                };
                conn.send(&HelperEvent::Error { kind, message })?;
            }
        }
    }
    if !exec_failed {
        // The set-up sent the master of the payload's terminal before the exec that ended
        // phase 1, if it made one (see sandbox/terminal.rs); it goes to the client before `Started`.
        if let Some(master) = sb
            .terminal
            .take()
            .and_then(|s| terminal::receive_master(&s))
        {
            terminal::send_master(conn, master)?;
        }
        conn.send(&HelperEvent::Started {
            pid: sb.pid.as_raw(),
        })?;
    }

    // Phase 2: until the sandbox's first process exits. Behind our init, the status pipe also
    // says when the payload stops (Ctrl-Z), for the client to stop in turn.
    let mut status_open = !sb.as_pid_1;
    let mut final_status = None;
    // A stop not told yet: it is told only once the client has read everything sent before
    // (so the send cannot block: a client that stops reading while the payload stops and
    // continues over and over must not hold up the limits' enforcement), checked again every
    // STOP_RETRY until then. Stops in between are one.
    let mut untold_stop: Option<i32> = None;
    while !exited {
        let mut timeout = enforce(&mut enforcer, &sb, conn, verbose)?;
        if conn.gone.is_some() {
            return client_gone(&sb, conn);
        }
        if untold_stop.is_some() {
            timeout = Some(timeout.map_or(STOP_RETRY, |t| t.min(STOP_RETRY)));
        }
        let status = status_open.then_some(&sb.status);
        for wake in wait_for(conn, status, &sb.pidfd, timeout)? {
            match wake {
                Wake::Client => {
                    if !handle_client(&sb, conn)? {
                        return client_gone(&sb, conn);
                    }
                }
                Wake::Writable => conn.flush()?,
                Wake::Exited => exited = true,
                Wake::Report => match read_status(&sb.status) {
                    Some(raw) if libc::WIFSTOPPED(raw) => untold_stop = Some(libc::WSTOPSIG(raw)),
                    Some(raw) => {
                        final_status = Some(raw);
                        status_open = false;
                    }
                    None => status_open = false,
                },
            }
        }
        if let Some(signal) = untold_stop
            && !conn.wants_to_write()
            && os::unread_by_peer(conn.fd()) == Ok(0)
        {
            conn.send(&HelperEvent::Stopped { signal })?;
            untold_stop = None;
        }
    }
    let mut info = reap(&mut sb, final_status)?;
    info.limit_hit = enforcer.hit;
    if let Some(cg) = &mut sb.cgroup {
        // Every process has ended (the pid namespace went with its PID 1), so the figures are
        // final; then the cgroup goes, before the client hears that the sandbox is over.
        if let Some(us) = cg.cpu_usage_us() {
            info.cpu_time_us = us;
        }
        info.cgroup = Some(CgroupUsage {
            version: cg.version(),
            memory_peak_bytes: if cg.has_memory() {
                cg.memory_peak()
            } else {
                None
            },
            oom_kills: cg.oom_kills(),
        });
        let paths = cg.paths();
        match cg.remove() {
            Ok(()) if verbose => conn.send(&HelperEvent::Step(format!(
                "cgroup: removed {}",
                paths.join(", ")
            )))?,
            Ok(()) => {}
            Err(e) if verbose => conn.send(&HelperEvent::Step(format!("cgroup: {e}")))?,
            Err(_) => {}
        }
    }
    conn.record.limit = limit_reached(&sb.limits, &info);
    conn.send(&HelperEvent::Exited(info))
}

/// The limit the sandbox was ended at, as the log names it: the time limit the supervisor
/// enforced, or the memory limit when the kernel's OOM killer acted.
fn limit_reached(limits: &Limits, info: &ExitInfo) -> Option<String> {
    match info.limit_hit {
        Some(LimitHit::WallTime) => limits
            .wall_time_us
            .map(|us| format!("wall-clock time limit ({})", show_seconds(us))),
        Some(LimitHit::CpuTime) => limits
            .cpu_time_us
            .map(|us| format!("CPU time limit ({})", show_seconds(us))),
        None if info.cgroup.is_some_and(|c| c.oom_kills > 0) => limits
            .memory_bytes
            .map(|b| format!("memory limit ({})", show_bytes(b))),
        None => None,
    }
}

/// `32 MiB`, `1 GiB`, `1536 KiB`, `1000 bytes`: the largest unit the size is a whole number of.
fn show_bytes(b: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if b >= 1 << shift && b.is_multiple_of(1 << shift) {
            return format!("{} {unit}", b >> shift);
        }
    }
    format!("{b} bytes")
}

/// The client has gone (or stopped reading): its sandbox ends with it.
fn client_gone(sb: &Sandbox, conn: &mut Conn) -> Result<()> {
    if conn.gone == Some(Gone::NotReading) {
        conn.record.end = Some(format!(
            "the client did not read its events (over {} MiB waiting); sandbox killed",
            crate::host::conn::MAX_QUEUED >> 20
        ));
    }
    kill_and_reap(sb)
}

/// Run the time-limit checks; returns how long the next wait may last.
fn enforce(
    enforcer: &mut Enforcer,
    sb: &Sandbox,
    conn: &mut Conn,
    verbose: bool,
) -> Result<Option<Duration>> {
    let (timeout, said) = enforcer.check(sb);
    if let (Some(line), true) = (said, verbose) {
        conn.send(&HelperEvent::Step(line))?;
    }
    Ok(timeout)
}

/// Act on what the client sent. `false` when it has gone away.
fn handle_client(sb: &Sandbox, conn: &mut Conn) -> Result<bool> {
    let msgs = match conn.receive() {
        Ok(m) => m,
        Err(e) => {
            let _ = kill_and_reap(sb);
            return Err(e);
        }
    };
    for msg in msgs {
        match msg {
            ClientMessage::Signal(n) => {
                // Re-checked here: only the forwardable signals, only to our own sandbox,
                // through the pidfd so a recycled pid can never be hit.
                if let Some(sig) = FORWARDED.into_iter().find(|s| *s as i32 == n) {
                    let _ = os::pidfd_send_signal(sb.pidfd.as_fd(), sig);
                }
            }
            ClientMessage::Continue => {
                // SIGCONT to our own sandbox's first process, through the pidfd: our init
                // passes it on to the payload's process group inside (see sandbox/init.rs). Nothing
                // else can be named by this message.
                let _ = os::pidfd_send_signal(sb.pidfd.as_fd(), nix::sys::signal::Signal::SIGCONT);
            }
            ClientMessage::Spawn(_) => {
                let _ = kill_and_reap(sb);
                return Err(HelperError::Refused(
                    "only one spawn request per connection".into(),
                ));
            }
        }
    }
    Ok(conn.gone.is_none())
}

/// `false` at end-of-file.
fn read_some(fd: &mut OwnedFd, buf: &mut Vec<u8>) -> Result<bool> {
    let mut chunk = [0u8; 4096];
    loop {
        match nix::unistd::read(fd.as_fd(), &mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("read report pipe")(e)),
        }
    }
}

fn kill_and_reap(sb: &Sandbox) -> Result<()> {
    // SIGKILL to the sandbox's PID 1 ends its whole pid namespace; the cgroup's members are
    // killed too. The cgroup itself is removed when the sandbox is dropped.
    enforce::kill(sb);
    os::wait4(sb.pid, false).map_err(sys("wait4"))?;
    Ok(())
}

/// One record of the status pipe: a wait status the init wrote (the payload stopped, or its
/// end). `None` at end-of-file or on a short read.
fn read_status(fd: &OwnedFd) -> Option<i32> {
    let mut buf = [0u8; 4];
    loop {
        match nix::unistd::read(fd.as_fd(), &mut buf) {
            Ok(4) => return Some(i32::from_le_bytes(buf)),
            Err(Errno::EINTR) => continue,
            _ => return None,
        }
    }
}

/// `status`: the payload's final wait status if it was already read from the status pipe.
fn reap(sb: &mut Sandbox, status: Option<i32>) -> Result<ExitInfo> {
    let (raw, usage) = os::wait4(sb.pid, false)
        .map_err(sys("wait4"))?
        .ok_or_else(|| sys("wait4")(Errno::ECHILD))?;
    let wall = sb.started.elapsed();
    // Behind our init, the payload's own status comes through the status pipe (after any
    // stops); the init's exit code could not tell "exit 137" from "killed by SIGKILL". Every
    // writer is gone now, so these reads end.
    let status = if sb.as_pid_1 {
        raw
    } else {
        let mut found = status;
        while found.is_none() {
            match read_status(&sb.status) {
                Some(s) if libc::WIFSTOPPED(s) => continue,
                Some(s) => found = Some(s),
                None => break,
            }
        }
        found.unwrap_or(raw)
    };
    Ok(ExitInfo {
        termination: termination(status),
        wall_time_us: wall.as_micros() as u64,
        user_time_us: usage.user_us,
        system_time_us: usage.system_us,
        max_rss_kib: usage.max_rss_kib,
        cpu_time_us: usage.user_us + usage.system_us,
        voluntary_switches: usage.voluntary_switches,
        involuntary_switches: usage.involuntary_switches,
        cgroup: None,
        limit_hit: None,
    })
}

fn termination(status: i32) -> Termination {
    if libc::WIFSIGNALED(status) {
        Termination::Signaled(libc::WTERMSIG(status))
    } else {
        Termination::Exited(libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shown_in_the_largest_whole_unit() {
        assert_eq!(show_bytes(32 << 20), "32 MiB");
        assert_eq!(show_bytes(1 << 30), "1 GiB");
        assert_eq!(show_bytes(1536 << 10), "1536 KiB");
        assert_eq!(show_bytes(1000), "1000 bytes");
    }

    #[test]
    fn the_limit_reached_is_named_with_its_value() {
        let limits = Limits {
            wall_time_us: Some(3_000_000),
            cpu_time_us: Some(500_000),
            memory_bytes: Some(64 << 20),
            ..Limits::default()
        };
        let mut info = ExitInfo {
            termination: Termination::Signaled(9),
            wall_time_us: 0,
            user_time_us: 0,
            system_time_us: 0,
            max_rss_kib: 0,
            cpu_time_us: 0,
            voluntary_switches: 0,
            involuntary_switches: 0,
            cgroup: None,
            limit_hit: Some(LimitHit::WallTime),
        };
        let said = |i: &ExitInfo| limit_reached(&limits, i);
        assert_eq!(said(&info).unwrap(), "wall-clock time limit (3.000 s)");
        info.limit_hit = Some(LimitHit::CpuTime);
        assert_eq!(said(&info).unwrap(), "CPU time limit (0.500 s)");
        info.limit_hit = None;
        assert_eq!(said(&info), None);
        info.cgroup = Some(CgroupUsage {
            version: 2,
            memory_peak_bytes: None,
            oom_kills: 1,
        });
        assert_eq!(said(&info).unwrap(), "memory limit (64 MiB)");
    }
}
