//! The caller's process state. A setuid program inherits, across `exec`, much of the state of
//! the process that started it — and that process is its adversary. Left alone, a caller could
//! stop the helper from its terminal (`^Z`), end it with a timer it armed before the exec,
//! starve it with a nice value or `SCHED_IDLE`, or make it fail with a resource limit, and with
//! the helper gone or frozen no time limit is enforced.
//!
//! So the setuid helper, first thing, makes its own state its own ([`take_over`]): it ignores
//! the signals a terminal or a limit sends, disarms the interval timers, leaves the caller's
//! session when it can, and raises its resource limits and scheduling to safe values. What the
//! caller had is recorded, and given back to the sandbox ([`give_to`] from the parent side
//! before the sandbox is released, [`payload_rlimits`] and [`payload_umask`] in the payload
//! before `exec`), so that `nice -n 19 nsjail run -- make` still runs make at nice 19: the
//! payload gets what a normal child of the caller would get.
//!
//! The daemon is started by root or systemd, not by its callers, so its own state is its own;
//! but what a normal child of the caller would get, the payload gets there too: the
//! connection process reads the connecting process's resource limits and umask from its
//! `/proc` files (under the same pidfd check as the peer check, see the daemon's `peer.rs`)
//! and records them with [`record_peer`], each limit within the daemon's own (a payload cannot
//! raise a hard limit above what it inherits).

use std::sync::OnceLock;

use nix::sched::CpuSet;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use nsjail_core::limits::{RLIM_INFINITY, RlimitResource, RlimitSetting};

use crate::error::{HelperError, Result, sys};
use crate::sys as os;

/// The signals the setuid helper ignores: those a terminal sends to its foreground job
/// (`^C`, `^\`, `^Z`, background reads and writes, hang-up), those of the interval timers and
/// the resource limits, and `SIGPIPE` (a closed socket is an error, not a death). Once the
/// helper has set all its ids to 0 nobody but root can send it anything else.
pub const IGNORED: [Signal; 12] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
];

/// Timer slack the helper runs with: the kernel's default for a process tree that never
/// changed it (a reset with `PR_SET_TIMERSLACK` 0 would restore the slack the caller had when
/// it forked us, so the value is set explicitly).
const HELPER_TIMER_SLACK_NS: u64 = 50_000;
/// The stack and open-file limits the helper needs at least.
const HELPER_STACK: u64 = 8 << 20;
const HELPER_NOFILE: u64 = 4096;

const SCHED_BATCH: i32 = 3;
const SCHED_IDLE: i32 = 5;
const SCHED_RESET_ON_FORK: i32 = 0x4000_0000;
const IOPRIO_CLASS_IDLE: i32 = 3;

/// What the caller had where the helper changed it for itself (`None`: left as it was, so the
/// sandbox inherits it unchanged).
struct CallerState {
    rlimits: Vec<RlimitSetting>,
    nice: Option<i32>,
    sched: Option<(i32, i32)>,
    affinity: Option<CpuSet>,
    ioprio: Option<i32>,
    oom_score_adj: Option<i32>,
    timer_slack_ns: Option<u64>,
    umask: Mode,
}

static CALLER: OnceLock<CallerState> = OnceLock::new();

fn nix_resource(r: RlimitResource) -> Resource {
    crate::sandbox::rlimits::resource(r)
}

/// The helper's own limit for `r`, given the caller's: never below what the caller had (so
/// that the payload can be given the caller's values back: lowering a limit needs no
/// privilege, raising a hard one does), and high enough that no limit can stop the helper.
fn own_limit(r: RlimitResource, soft: u64, hard: u64) -> (u64, u64) {
    let at_least = |floor: u64| {
        let s = soft.max(floor);
        (s, hard.max(s))
    };
    match r {
        // CPU time (which counts from before the exec), file size, memory, processes (which the
        // sandbox's first process needs to start the payload), pending signals, realtime CPU.
        RlimitResource::Cpu
        | RlimitResource::Fsize
        | RlimitResource::Data
        | RlimitResource::As
        | RlimitResource::Rss
        | RlimitResource::Nproc
        | RlimitResource::Locks
        | RlimitResource::Sigpending
        | RlimitResource::Rttime => (RLIM_INFINITY, RLIM_INFINITY),
        RlimitResource::Stack => at_least(HELPER_STACK),
        RlimitResource::Nofile => at_least(HELPER_NOFILE),
        // No effect on the helper: root is exempt, or the helper does not use them.
        RlimitResource::Core
        | RlimitResource::Memlock
        | RlimitResource::Msgqueue
        | RlimitResource::Nice
        | RlimitResource::Rtprio => (soft, hard),
    }
}

fn io_errno(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn read_number<T: std::str::FromStr>(path: &str) -> Result<T> {
    std::fs::read_to_string(path)
        .map_err(|e| sys(format!("read {path}"))(io_errno(&e)))?
        .trim()
        .parse()
        .map_err(|_| HelperError::Refused(format!("{path}: not a number")))
}

fn read_u64(path: &str) -> Result<u64> {
    read_number(path)
}

fn oom_score_adj(pid: &str) -> Result<i32> {
    read_number(&format!("/proc/{pid}/oom_score_adj"))
}

fn set_oom_score_adj(pid: &str, v: i32) -> Result<()> {
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, v.to_string())
        .map_err(|e| sys(format!("write {v} to {path}"))(io_errno(&e)))
}

/// Make the helper's process state its own. Run first thing on the setuid path, before
/// anything exists that a death would leave behind. `privileged`: the helper runs with euid 0
/// (without privilege it runs as the caller, who can signal, trace or kill it anyway: only the
/// signals, timers and session are taken care of, and nothing is recorded).
pub fn take_over(privileged: bool) -> Result<()> {
    os::helper_signals(&IGNORED).map_err(sys("rt_sigaction (helper signals)"))?;
    os::disarm_interval_timers().map_err(sys("setitimer (disarm)"))?;
    // A session of our own, without a controlling terminal: the caller's terminal can then
    // send us nothing, and SIGCONT (which the kernel lets through within a session) cannot
    // come from the caller either. A process group leader cannot do this (the CLI does not
    // make us one; a hostile caller can): the signals above are ignored anyway.
    let _ = nix::unistd::setsid();
    let umask = nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    if !privileged {
        return Ok(());
    }

    let mut rlimits = Vec::with_capacity(RlimitResource::ALL.len());
    for r in RlimitResource::ALL {
        let res = nix_resource(r);
        let (soft, hard) = getrlimit(res).map_err(sys(format!("getrlimit({})", r.name())))?;
        let (own_soft, own_hard) = own_limit(r, soft, hard);
        if (own_soft, own_hard) != (soft, hard) {
            // Raising a hard limit needs CAP_SYS_RESOURCE, which an administrator may have
            // taken from root's bounding set: then the soft limit goes as high as the hard one
            // allows, and a hard limit below the helper's needs makes it fail closed.
            setrlimit(res, own_soft, own_hard)
                .or_else(|e| match e {
                    nix::errno::Errno::EPERM => setrlimit(res, own_soft.min(hard), hard),
                    e => Err(e),
                })
                .map_err(sys(format!(
                    "setrlimit({}) for the helper itself",
                    r.name()
                )))?;
        }
        rlimits.push(RlimitSetting {
            resource: r,
            soft,
            hard,
        });
    }

    // Scheduling: a low priority is the caller's choice for its work, not for the supervisor
    // that enforces its limits. Realtime policies are left alone (they starve nobody of ours).
    let nice = os::nice_of(0).map_err(sys("getpriority"))?;
    let nice = if nice > 0 {
        os::set_nice(0, 0).map_err(sys("setpriority(0)"))?;
        Some(nice)
    } else {
        None
    };
    let (policy, priority) = os::sched_of(0).map_err(sys("sched_getscheduler"))?;
    let sched = if matches!(policy & !SCHED_RESET_ON_FORK, SCHED_BATCH | SCHED_IDLE) {
        os::set_sched(0, libc::SCHED_OTHER, 0).map_err(sys("sched_setscheduler(SCHED_OTHER)"))?;
        Some((policy, priority))
    } else {
        None
    };
    let affinity =
        nix::sched::sched_getaffinity(Pid::from_raw(0)).map_err(sys("sched_getaffinity"))?;
    let mut every = CpuSet::new();
    for cpu in 0..CpuSet::count() {
        let _ = every.set(cpu);
    }
    // The kernel keeps what the cpuset cgroup allows of it.
    nix::sched::sched_setaffinity(Pid::from_raw(0), &every).map_err(sys("sched_setaffinity"))?;
    let now = nix::sched::sched_getaffinity(Pid::from_raw(0)).map_err(sys("sched_getaffinity"))?;
    let affinity = (now != affinity).then_some(affinity);
    let ioprio = os::ioprio_of(0).map_err(sys("ioprio_get"))?;
    let ioprio = if ioprio >> 13 == IOPRIO_CLASS_IDLE {
        os::set_ioprio(0, 0).map_err(sys("ioprio_set"))?;
        Some(ioprio)
    } else {
        None
    };
    // The OOM killer's choice: the caller may make itself its first victim, not the helper.
    let oom = oom_score_adj("self")?;
    let oom_score_adj = if oom > 0 {
        set_oom_score_adj("self", 0)?;
        Some(oom)
    } else {
        None
    };
    // A large timer slack would let every timeout of ours (the wall-clock limit's) fire late.
    // (PR_GET_TIMERSLACK returns an int, which a slack above 2.1 s overflows: read the file.)
    let slack = read_u64("/proc/self/timerslack_ns")?;
    let timer_slack_ns = if slack != HELPER_TIMER_SLACK_NS {
        nix::sys::prctl::set_timerslack(HELPER_TIMER_SLACK_NS)
            .map_err(sys("prctl(PR_SET_TIMERSLACK)"))?;
        Some(slack)
    } else {
        None
    };
    let _ = CALLER.set(CallerState {
        rlimits,
        nice,
        sched,
        affinity,
        ioprio,
        oom_score_adj,
        timer_slack_ns,
        umask,
    });
    Ok(())
}

/// The `/proc/<pid>/limits` line label of each resource.
const PROC_LIMITS: [(&str, RlimitResource); 16] = [
    ("Max cpu time", RlimitResource::Cpu),
    ("Max file size", RlimitResource::Fsize),
    ("Max data size", RlimitResource::Data),
    ("Max stack size", RlimitResource::Stack),
    ("Max core file size", RlimitResource::Core),
    ("Max resident set", RlimitResource::Rss),
    ("Max processes", RlimitResource::Nproc),
    ("Max open files", RlimitResource::Nofile),
    ("Max locked memory", RlimitResource::Memlock),
    ("Max address space", RlimitResource::As),
    ("Max file locks", RlimitResource::Locks),
    ("Max pending signals", RlimitResource::Sigpending),
    ("Max msgqueue size", RlimitResource::Msgqueue),
    ("Max nice priority", RlimitResource::Nice),
    ("Max realtime priority", RlimitResource::Rtprio),
    ("Max realtime timeout", RlimitResource::Rttime),
];

/// The limits a `/proc/<pid>/limits` text shows (`unlimited` is infinity); a line that does
/// not parse is left out (the payload then keeps the daemon's value for it).
pub fn parse_proc_limits(text: &str) -> Vec<RlimitSetting> {
    let value = |w: &str| match w {
        "unlimited" => Some(RLIM_INFINITY),
        n => n.parse().ok(),
    };
    PROC_LIMITS
        .iter()
        .filter_map(|(label, resource)| {
            let line = text.lines().find(|l| l.starts_with(label))?;
            let mut words = line[label.len()..].split_whitespace();
            Some(RlimitSetting {
                resource: *resource,
                soft: value(words.next()?)?,
                hard: value(words.next()?)?,
            })
        })
        .collect()
}

/// `theirs` within `ours` (the hard limit no higher than ours, the soft no higher than that).
pub fn within(theirs: RlimitSetting, ours: (u64, u64)) -> RlimitSetting {
    let hard = theirs.hard.min(ours.1);
    RlimitSetting {
        soft: theirs.soft.min(hard),
        hard,
        ..theirs
    }
}

/// The daemon's connection process: record the connecting process's resource limits and
/// umask (read from its `/proc` files, checked alive), for the payload.
pub fn record_peer(limits: &[RlimitSetting], umask: Mode) {
    let rlimits = limits
        .iter()
        .filter_map(|l| {
            let ours = getrlimit(nix_resource(l.resource)).ok()?;
            Some(within(*l, ours))
        })
        .collect();
    let _ = CALLER.set(CallerState {
        rlimits,
        nice: None,
        sched: None,
        affinity: None,
        ioprio: None,
        oom_score_adj: None,
        timer_slack_ns: None,
        umask,
    });
}

/// Give the sandbox's first process `pid` (our unreaped child, not yet released) the caller's
/// scheduling state that the helper changed for itself; everything it starts inherits it.
/// Returns `--verbose` lines.
pub fn give_to(pid: Pid) -> Result<Vec<String>> {
    let Some(c) = CALLER.get() else {
        return Ok(Vec::new());
    };
    let p = pid.as_raw();
    let mut steps = Vec::new();
    if let Some(n) = c.nice {
        os::set_nice(p, n).map_err(sys(format!("setpriority({pid}, {n})")))?;
        steps.push(format!("scheduling: nice {n}, as the caller"));
    }
    if let Some((policy, priority)) = c.sched {
        os::set_sched(p, policy, priority)
            .map_err(sys(format!("sched_setscheduler({pid}, {policy})")))?;
        steps.push(format!("scheduling: policy {policy}, as the caller"));
    }
    if let Some(set) = &c.affinity {
        nix::sched::sched_setaffinity(pid, set)
            .map_err(sys(format!("sched_setaffinity({pid})")))?;
        steps.push("scheduling: the caller's CPU affinity".into());
    }
    if let Some(v) = c.ioprio {
        os::set_ioprio(p, v).map_err(sys(format!("ioprio_set({pid})")))?;
        steps.push("scheduling: the caller's I/O priority".into());
    }
    if let Some(v) = c.oom_score_adj {
        set_oom_score_adj(&p.to_string(), v)?;
        steps.push(format!("oom_score_adj: {v}, as the caller"));
    }
    if let Some(ns) = c.timer_slack_ns {
        let path = format!("/proc/{p}/timerslack_ns");
        std::fs::write(&path, ns.to_string())
            .map_err(|e| sys(format!("write {ns} to {path}"))(io_errno(&e)))?;
        steps.push(format!("timer slack: {ns} ns, as the caller"));
    }
    Ok(steps)
}

/// The caller's resource limits, for the payload before the request's own (`--rlimit`, the
/// policy's ceilings): what a normal child of the caller would have.
pub fn payload_rlimits() -> Vec<RlimitSetting> {
    CALLER.get().map(|c| c.rlimits.clone()).unwrap_or_default()
}

/// What the sandboxes of a privileged helper may hold, all together, of the per-user resources
/// the kernel counts under rlimits: pending signals, and bytes of POSIX message queues. Half of
/// the system's default limit for each (or of the caller's own, if lower).
///
/// The sandbox's user namespace belongs to root, so the kernel charges those to root, and
/// checks root's total (root's own processes and every root-owned namespace) against the limit
/// the creator had when the namespace was made. The helper's own are raised; at the clone they
/// are these, so root keeps at least half of its own (found in review: a payload took every
/// pending signal root had, and root's `sigqueue` failed).
pub const ROOT_SHARE: [RlimitResource; 2] = [RlimitResource::Sigpending, RlimitResource::Msgqueue];

/// The kernel's default limit for a [`ROOT_SHARE`] resource, as every process inherits it from
/// the first: pending signals are half of `kernel.threads-max`, message-queue bytes 819,200
/// (`MQ_BYTES_MAX`).
fn system_default(r: RlimitResource) -> Result<u64> {
    match r {
        RlimitResource::Sigpending => Ok(read_u64("/proc/sys/kernel/threads-max")? / 2),
        _ => Ok(819_200),
    }
}

/// The helper's soft limits while it clones a sandbox's user namespace ([`ROOT_SHARE`]);
/// dropping it puts the helper's own back.
pub struct ClampedForClone(Vec<(Resource, u64, u64)>);

pub fn clamp_for_clone() -> Result<ClampedForClone> {
    let mut saved = Vec::with_capacity(ROOT_SHARE.len());
    for r in ROOT_SHARE {
        let res = nix_resource(r);
        let (soft, hard) = getrlimit(res).map_err(sys(format!("getrlimit({})", r.name())))?;
        let system = system_default(r)?;
        let callers = payload_rlimits()
            .into_iter()
            .find(|l| l.resource == r)
            .map_or(system, |l| l.soft);
        let share = system.min(callers) / 2;
        setrlimit(res, share.min(hard), hard)
            .map_err(sys(format!("setrlimit({}) for the clone", r.name())))?;
        saved.push((res, soft, hard));
    }
    Ok(ClampedForClone(saved))
}

impl Drop for ClampedForClone {
    fn drop(&mut self) {
        for &(res, soft, hard) in &self.0 {
            // Lowered by us, within the same hard limit: putting it back cannot fail.
            let _ = setrlimit(res, soft, hard);
        }
    }
}

/// The caller's umask, for the payload.
pub fn payload_umask() -> Option<Mode> {
    CALLER.get().map(|c| c.umask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_limits_parse_and_stay_within_ours() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max file size             2048                 4096                 bytes     \n\
                    Max open files            40                   60                   files     \n\
                    Max address space         garbage              unlimited            bytes     \n";
        let l = parse_proc_limits(text);
        let setting = |resource, soft, hard| RlimitSetting {
            resource,
            soft,
            hard,
        };
        assert_eq!(
            l,
            [
                setting(RlimitResource::Cpu, RLIM_INFINITY, RLIM_INFINITY),
                setting(RlimitResource::Fsize, 2048, 4096),
                setting(RlimitResource::Nofile, 40, 60),
            ]
        );
        // Within ours: a hard limit above ours comes down to it, the soft with it.
        assert_eq!(
            within(setting(RlimitResource::Nofile, 100, 200), (50, 80)),
            setting(RlimitResource::Nofile, 80, 80)
        );
        assert_eq!(
            within(setting(RlimitResource::Nofile, 40, 60), (1024, 4096)),
            setting(RlimitResource::Nofile, 40, 60)
        );
        assert_eq!(
            within(
                setting(RlimitResource::Cpu, RLIM_INFINITY, RLIM_INFINITY),
                (10, 20)
            ),
            setting(RlimitResource::Cpu, 20, 20)
        );
    }

    #[test]
    fn the_helpers_limits_never_fall_below_the_callers() {
        for r in RlimitResource::ALL {
            for (soft, hard) in [
                (0, 0),
                (1, 2),
                (3, 3),
                (1 << 30, RLIM_INFINITY),
                (RLIM_INFINITY, RLIM_INFINITY),
            ] {
                let (s, h) = own_limit(r, soft, hard);
                assert!(
                    s >= soft && h >= hard && s <= h,
                    "{r:?} {soft}:{hard} -> {s}:{h}"
                );
            }
        }
        assert_eq!(
            own_limit(RlimitResource::Cpu, 1, 1),
            (RLIM_INFINITY, RLIM_INFINITY)
        );
        assert_eq!(own_limit(RlimitResource::Nofile, 12, 12), (4096, 4096));
        assert_eq!(
            own_limit(RlimitResource::Nofile, 1024, 1 << 20),
            (4096, 1 << 20)
        );
        assert_eq!(own_limit(RlimitResource::Core, 0, 0), (0, 0));
    }
}
