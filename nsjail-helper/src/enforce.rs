//! Time limits, enforced by the supervisor from outside the sandbox: the payload is never asked
//! or trusted to stop.
//!
//! The CPU limit is on the sandbox's cgroup's CPU usage (every process, alive or reaped). The
//! kernel cannot wake the supervisor when it is crossed, so two things keep the overshoot small:
//!
//! - **Checks that close in.** The next check is due after half the shortest time in which the
//!   sandbox could use up what is left (what is left, divided by the CPUs it can run on), so a
//!   wake-up up to that late is still in time; the last gap is a millisecond.
//! - **The brake**, where the sandbox's cgroup has the cpu controller: the supervisor can be
//!   late (a loaded host, an emulated one where a wake-up can be tens of milliseconds late, a
//!   stopped supervisor), and eight spinners would run on through the delay. So at every check
//!   the supervisor grants the sandbox, through the kernel's CFS bandwidth control, only the CPU
//!   time it may use until a little after the next check: what is left of the limit, or
//!   [`BRAKE_STEP`] × 1.5 per CPU if that is less. Each write of the quota refills the budget to
//!   exactly that and lifts any throttling, so an on-time supervisor never slows the sandbox,
//!   and a late one finds it throttled. The kernel also refills the budget once per period
//!   (the longest it allows, one second) on its own: a supervisor that stays away longer lets
//!   one more grant through per second. The price is a wake-up every [`BRAKE_STEP`] while a CPU
//!   limit is set (about 1% of a CPU, measured). With `--cpus` the brake keeps that option's
//!   period and rate and only lowers the quota to what is left near the end.
//!
//! The wall-clock limit is a plain deadline from the clone.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nsjail_core::LimitHit;
use nsjail_core::limits::show_seconds;

use crate::cgroup::{CPU_PERIOD_US, Cgroup};
use crate::spawn::Sandbox;
use crate::sys;

/// The closest and the farthest two CPU checks may be.
const MIN_CHECK: Duration = Duration::from_millis(1);
const MAX_CHECK: Duration = Duration::from_millis(250);
/// The brake's CFS period: the longest the kernel accepts, so that a refill the supervisor did
/// not ask for (one per period) is as rare as it can be.
const BRAKE_PERIOD_US: u64 = 1_000_000;
/// The farthest two checks may be while the brake is on.
pub const BRAKE_STEP: Duration = Duration::from_millis(5);
/// The smallest quota the kernel accepts.
const BRAKE_MIN_QUOTA_US: u64 = 1_000;

enum Braked {
    No,
    /// With a line for `--verbose` the first time.
    Yes(Option<String>),
}

pub struct Enforcer {
    cpu_limit_us: Option<u64>,
    wall_deadline: Option<Instant>,
    grace: Duration,
    /// CPUs the sandbox can use at once, for the next-check estimate.
    cpus: u64,
    /// `--cpus`, in thousandths of a CPU: the brake never grants more than that.
    cpu_millis: Option<u64>,
    /// The brake has been applied at least once (said once under `--verbose`).
    braking: bool,
    /// SIGTERM went out at a limit; SIGKILL is due at this instant.
    kill_due: Option<Instant>,
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
            cpu_millis: l.cpu_millis,
            braking: false,
            kill_due: None,
            killed: false,
            hit: None,
        }
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
            if now >= due {
                kill(sb);
                self.killed = true;
                return (
                    None,
                    Some("limit: kill grace over; SIGKILL to every process".into()),
                );
            }
            return (Some(due - now), None);
        }
        let mut next: Option<Duration> = None;
        if let Some(deadline) = self.wall_deadline {
            if now >= deadline {
                return self.reached(sb, LimitHit::WallTime, "wall-clock time".into());
            }
            next = Some(deadline - now);
        }
        let mut said = None;
        if let (Some(limit), Some(cg)) = (self.cpu_limit_us, &sb.cgroup) {
            let wait = match cg.cpu_usage_us() {
                Some(used) if used >= limit => {
                    return self.reached(
                        sb,
                        LimitHit::CpuTime,
                        format!("CPU time {} of {}", show_seconds(used), show_seconds(limit)),
                    );
                }
                Some(used) => {
                    let left = limit - used;
                    let wait = Duration::from_micros(left / self.cpus / 2);
                    match self.brake(cg, left) {
                        Braked::No => wait,
                        Braked::Yes(line) => {
                            said = line;
                            wait.min(BRAKE_STEP)
                        }
                    }
                }
                None => MIN_CHECK,
            };
            let wait = wait.clamp(MIN_CHECK, MAX_CHECK);
            next = Some(next.map_or(wait, |n| n.min(wait)));
        }
        (next, said)
    }

    /// Grant the sandbox what it may use until a little after the next check, with the
    /// kernel's bandwidth control (see the module comment).
    fn brake(&mut self, cg: &Cgroup, left_us: u64) -> Braked {
        let step_us = BRAKE_STEP.as_micros() as u64;
        let (quota, period) = match self.cpu_millis {
            // `--cpus` keeps its own period and rate; the brake only lowers the quota once
            // less than a period's worth is left. A stalled supervisor then lets the sandbox
            // run on at its `--cpus` rate, no faster.
            Some(m) => (left_us.min(m * CPU_PERIOD_US / 1000), CPU_PERIOD_US),
            None => (left_us.min(self.cpus * step_us * 3 / 2), BRAKE_PERIOD_US),
        };
        let quota = quota.max(BRAKE_MIN_QUOTA_US);
        if !cg.brake_cpu(quota, period, !self.braking) {
            return Braked::No;
        }
        if self.braking {
            return Braked::Yes(None);
        }
        self.braking = true;
        Braked::Yes(Some(format!(
            "limit: CPU time held by the kernel's bandwidth control to what is left, \
             granted {} ms at a time",
            BRAKE_STEP.as_millis()
        )))
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
                // The grace period is for the payload to act on SIGTERM, which it cannot do
                // while throttled.
                cg.release_cpu(sb.limits.cpu_millis);
                cg.signal_all_but(Signal::SIGTERM, (!sb.as_pid_1).then_some(sb.pid.as_raw()))
            }
            // Without a cgroup our init passes SIGTERM on to the payload.
            None => {
                let _ = sys::pidfd_send_signal(sb.pidfd.as_fd(), Signal::SIGTERM);
            }
        }
        self.kill_due = Some(Instant::now() + self.grace);
        (
            Some(self.grace),
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
    let _ = sys::pidfd_send_signal(sb.pidfd.as_fd(), Signal::SIGKILL);
    if let Some(cg) = &sb.cgroup {
        cg.kill_all();
    }
}
