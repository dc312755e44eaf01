//! Time limits, enforced by the supervisor from outside the sandbox: the payload is never asked
//! or trusted to stop.
//!
//! The CPU limit is on the sandbox's cgroup's CPU usage (every process, alive or reaped). The
//! kernel cannot wake the supervisor when it is crossed, so it looks again after half the
//! shortest time in which the sandbox could use up what is left (what is left, divided by the
//! CPUs it can run on): a wake-up up to that late is still in time, the checks come closer as
//! the limit nears, and the last gap is a millisecond.
//!
//! What the checks cannot bound is a supervisor that does not get a CPU when it wakes. So the
//! sandbox's cgroup gets the cpu controller where there is one (see `cgroup`): the sandbox then
//! competes for CPU as one group, however many processes it runs, and eight spinners cannot
//! crowd out the supervisor's wake-up (under emulation, with them competing as eight tasks, it
//! came ~25 ms late and the sandbox overshot by 50 ms). On v2, where that group sits beside the
//! supervisor's own (the caller's) cgroup, it also gets a low `cpu.weight`, so that the
//! supervisor wins the wake-ups it needs.
//!
//! An earlier version also held the sandbox to what was left through the kernel's CFS bandwidth
//! control (cpu.max rewritten at every check). It made the limit exact even with the supervisor
//! stopped, but while it was in use (a write every 5 ms) the emulated Debian 12 guest (kernel
//! 6.1) locked up twice in the full suite, cause not found, so it was taken out; see
//! docs/judges.md.
//!
//! The wall-clock limit is a plain deadline from the clone.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nsjail_core::LimitHit;
use nsjail_core::limits::show_seconds;

use crate::host::spawn::Sandbox;
use crate::sys;

/// The closest and the farthest two CPU checks may be.
const MIN_CHECK: Duration = Duration::from_millis(1);
const MAX_CHECK: Duration = Duration::from_millis(250);

pub struct Enforcer {
    cpu_limit_us: Option<u64>,
    wall_deadline: Option<Instant>,
    grace: Duration,
    /// CPUs the sandbox can use at once, for the next-check estimate.
    cpus: u64,
    /// SIGTERM went out at a limit; SIGKILL is due at this instant.
    kill_due: Option<Instant>,
    /// The admin's ceilings (CPU microseconds, wall-clock instant): SIGKILL comes there
    /// whatever grace is left, so `--kill-grace` never carries a sandbox past the policy.
    hard_cpu_us: Option<u64>,
    hard_wall: Option<Instant>,
    killed: bool,
    pub hit: Option<LimitHit>,
}

impl Enforcer {
    pub fn new(sb: &Sandbox) -> Enforcer {
        let l = &sb.limits;
        let online = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let cpus = match l.cpu_millis {
            Some(m) => online.min(m.div_ceil(1000)).max(1),
            None => online,
        };
        Enforcer {
            cpu_limit_us: l.cpu_time_us,
            wall_deadline: l
                .wall_time_us
                .map(|us| sb.started + Duration::from_micros(us)),
            grace: Duration::from_micros(l.kill_grace_us),
            cpus,
            kill_due: None,
            hard_cpu_us: sb.hard_stops.cpu_time_us,
            hard_wall: sb
                .hard_stops
                .wall_time_us
                .map(|us| sb.started + Duration::from_micros(us)),
            killed: false,
            hit: None,
        }
    }

    /// How long until the sandbox could use up `limit` microseconds of CPU, halved (a check
    /// that late is still in time); `Err(used)` when it has.
    fn cpu_wait(&self, sb: &Sandbox, limit: u64) -> Option<std::result::Result<Duration, u64>> {
        let cg = sb.cgroup.as_ref()?;
        Some(match cg.cpu_usage_us() {
            Some(used) if used >= limit => Err(used),
            Some(used) => {
                Ok(Duration::from_micros((limit - used) / self.cpus / 2)
                    .clamp(MIN_CHECK, MAX_CHECK))
            }
            None => Ok(MIN_CHECK),
        })
    }

    /// Check the limits now and act on any that was reached. Returns how long the supervisor
    /// may wait before the next check (`None`: no check is due), and a line for `--verbose`
    /// when something was done.
    pub fn check(&mut self, sb: &Sandbox) -> (Option<Duration>, Option<String>) {
        if self.killed {
            return (None, None);
        }
        let now = Instant::now();
        if let Some(due) = self.kill_due {
            let mut ceiling = None;
            let mut next = due.saturating_duration_since(now);
            if let Some(hard) = self.hard_wall {
                if now >= hard {
                    ceiling = Some("the policy's wall-clock ceiling");
                }
                next = next.min(hard.saturating_duration_since(now));
            }
            if let Some(limit) = self.hard_cpu_us {
                match self.cpu_wait(sb, limit) {
                    Some(Err(_)) => ceiling = Some("the policy's CPU time ceiling"),
                    Some(Ok(wait)) => next = next.min(wait),
                    None => {}
                }
            }
            if now >= due || ceiling.is_some() {
                kill(sb);
                self.killed = true;
                let why = ceiling.map_or("kill grace over".to_string(), |c| format!("{c} reached"));
                return (
                    None,
                    Some(format!("limit: {why}; SIGKILL to every process")),
                );
            }
            return (Some(next), None);
        }
        let mut next: Option<Duration> = None;
        if let Some(deadline) = self.wall_deadline {
            if now >= deadline {
                return self.reached(sb, LimitHit::WallTime, "wall-clock time".into());
            }
            next = Some(deadline - now);
        }
        if let Some(limit) = self.cpu_limit_us {
            match self.cpu_wait(sb, limit) {
                Some(Err(used)) => {
                    return self.reached(
                        sb,
                        LimitHit::CpuTime,
                        format!("CPU time {} of {}", show_seconds(used), show_seconds(limit)),
                    );
                }
                Some(Ok(wait)) => next = Some(next.map_or(wait, |n| n.min(wait))),
                None => {}
            }
        }
        (next, None)
    }

    fn reached(
        &mut self,
        sb: &Sandbox,
        hit: LimitHit,
        what: String,
    ) -> (Option<Duration>, Option<String>) {
        self.hit = Some(hit);
        if self.grace.is_zero() {
            kill(sb);
            self.killed = true;
            return (
                None,
                Some(format!("limit: {what} reached; SIGKILL to every process")),
            );
        }
        match &sb.cgroup {
            // Our init (PID 1 unless --as-pid-1) is in the cgroup too, and it passes SIGTERM on
            // to the payload: signalled as well, it made the payload get SIGTERM twice (once
            // from here, once relayed a moment later, or once only when both were still pending
            // and merged). A payload that handles the first and is then interrupted again by the
            // second (a shell's `wait` after its trap) ends early, and with it our init and the
            // whole pid namespace: processes still running their own SIGTERM handler were
            // SIGKILLed by the kernel. Init itself needs no SIGTERM: it ends when the payload
            // does. So every process but init gets exactly one SIGTERM, from here.
            Some(cg) => {
                cg.signal_all_but(Signal::SIGTERM, (!sb.as_pid_1).then_some(sb.pid.as_raw()))
            }
            // Without a cgroup our init passes SIGTERM on to the payload.
            None => {
                let _ = sys::pidfd_send_signal(sb.pidfd.as_fd(), Signal::SIGTERM);
            }
        }
        self.kill_due = Some(Instant::now() + self.grace);
        // The next check says how long the grace may last (a policy ceiling may end it first).
        (
            Some(MIN_CHECK),
            Some(format!(
                "limit: {what} reached; SIGTERM to every process, SIGKILL in {}",
                show_seconds(self.grace.as_micros() as u64)
            )),
        )
    }
}

/// SIGKILL to everything in the sandbox: its PID 1, whose end takes down every process of its
/// pid namespace at once, and every member of its cgroup.
pub fn kill(sb: &Sandbox) {
    // The cgroup first: SIGKILL reaches every process straight away, where through PID 1 it
    // would wait for PID 1 to run and kill the rest; until then they spin on past a CPU limit.
    if let Some(cg) = &sb.cgroup {
        cg.kill_all();
    }
    let _ = sys::pidfd_send_signal(sb.pidfd.as_fd(), Signal::SIGKILL);
}
