//! The sandbox's own cgroup: created before the clone, limits written, the first process put in
//! before it is released, usage read at the end, every process killed, the directory removed.
//!
//! **v2** (one unified hierarchy, every current systemd distribution) is the primary path: one
//! directory `<parent>/nsjail-<name>`, the controllers it needs enabled in the parent's
//! `cgroup.subtree_control`, the first process born inside it with `CLONE_INTO_CGROUP`, killed
//! whole with `cgroup.kill`.
//!
//! **v1** (hybrid hosts, which mount memory, pids, cpu… as separate hierarchies): one directory
//! per hierarchy used, `<mount>/<our own cgroup there>/nsjail/<name>`, the first process's pid
//! written to each `cgroup.procs` before it is released from the sync pipe, killed by freezing,
//! signalling every member and thawing.
//!
//! Where the parent is: [`parent_dir`] is the one function that decides, and it never leaves
//! the subtree the caller was in, so whatever accounts for or bounds the caller (a systemd
//! slice, a service, a job runner) bounds the sandbox too. On v1 that is *below the helper's own
//! cgroup* (the caller's). v2 forbids that (a cgroup with processes cannot hand controllers to
//! children), so there it is the nearest cgroup above ours without processes that only root can
//! write, e.g. the caller's `user-UID.slice`, or the daemon's service (the daemon moves itself
//! into a leaf at start, [`daemon_leaf`]); controllers are enabled there and nowhere above, and a
//! controller it does not offer is refused. The limits of the cgroups the sandbox leaves on the
//! way up (the caller's own scope or service, say `TasksMax=` of a service that runs the setuid
//! helper) are carried over to it as ceilings.
//!
//! The name is `<helper pid>-<helper start time>`: unique over time, and it tells a later helper
//! whether the one that made a directory is still alive. When a helper is killed outright (only
//! root can: it runs with all its ids 0), the sandbox dies with it (the parent-death signal ends
//! its PID 1 and with it the pid namespace), but its empty directories stay; the next helper that
//! creates a cgroup under the same parent removes every empty one whose creator is gone.

mod dir;
mod hierarchy;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{Pid, UnlinkatFlags, unlinkat};
use nsjail_core::request::{CgroupVersion, Limits};

use self::dir::{Dir, clean_stale, make_dir, open_existing, open_parent, sandbox_name, write_path};
use self::hierarchy::{Mount, Parent, available_v2, parent_dir, read_mounts, read_own_cgroups};
use crate::error::{HelperError, Result};
use crate::sys;

/// v1: the directory every sandbox cgroup of ours lives in, under the parent.
pub const PARENT_NAME: &str = "nsjail";
/// v2: the prefix of a sandbox cgroup's name, made right in the parent.
pub const V2_PREFIX: &str = "nsjail-";
/// `cpu.cfs_period_us` / the period of `cpu.max`: the kernel's default, 100 ms.
const CPU_PERIOD_US: u64 = 100_000;

/// v2: `cpu.weight` of a sandbox with a CPU-time limit (the default is 100), so that its
/// supervisor beside it wins every wake-up.
const TIME_LIMITED_WEIGHT: &str = "10";

/// The leaf the daemon moves into at start (v2).
pub const DAEMON_LEAF: &str = "daemon";

/// For the daemon, at start: on v2, if it is alone in its cgroup (as systemd starts a service,
/// with `Delegate=yes` making that cgroup the service's to manage), move into a leaf child
/// `daemon`, so that the service's cgroup holds no process and can hold the sandboxes: they then
/// stay under the service, bounded by its limits (`TasksMax=`, `MemoryMax=`). A daemon sharing
/// its cgroup (started by hand from a shell) stays where it is; its sandboxes go to the nearest
/// cgroup above without processes, as on the setuid path. Returns what it did, for the log.
pub fn daemon_leaf() -> Result<Option<String>> {
    let mounts = read_mounts()?;
    let Some(mount) = mounts.iter().find(|m| m.v2) else {
        return Ok(None);
    };
    let Some(own) = read_own_cgroups()
        .into_iter()
        .find(|(ctrls, _)| ctrls.is_empty())
        .map(|(_, p)| p)
    else {
        return Ok(None);
    };
    let rel = own
        .strip_prefix(mount.root.trim_end_matches('/'))
        .unwrap_or(&own)
        .trim_start_matches('/');
    if rel.is_empty() {
        // The root cgroup may hold processes and children with controllers alike.
        return Ok(None);
    }
    let here = mount.point.join(rel);
    let me = std::process::id().to_string();
    let procs = std::fs::read_to_string(here.join("cgroup.procs")).unwrap_or_default();
    if procs.split_whitespace().ne([me.as_str()]) {
        return Ok(None);
    }
    let leaf = open_parent(&here.join(DAEMON_LEAF))?;
    let dir = Dir {
        path: here.join(DAEMON_LEAF),
        parent: open_existing(&here)?,
        fd: leaf,
        controllers: Vec::new(),
    };
    dir.write("cgroup.procs", &me)?;
    Ok(Some(format!(
        "moved into {} so that sandboxes can go under {}",
        dir.path.display(),
        here.display()
    )))
}

/// A sandbox's cgroup. Dropping it kills whatever is still inside and removes it.
pub struct Cgroup {
    version: u8,
    dirs: Vec<Dir>,
    name: String,
    /// The first process was born inside with `CLONE_INTO_CGROUP`.
    joined_at_clone: bool,
    removed: bool,
}

impl Cgroup {
    /// The cgroup `limits` ask for, or `None` when they need none (or only accounting, and the
    /// helper has no privilege to make one). `privileged`: the helper runs with euid 0.
    pub fn for_limits(
        limits: &Limits,
        privileged: bool,
        pids_extra: u64,
        step: &mut dyn FnMut(String),
    ) -> Result<Option<Cgroup>> {
        if !limits.wants_cgroup() {
            return Ok(None);
        }
        let needed = limits.cgroup_limits();
        if !privileged {
            if needed.is_empty() {
                return Ok(None);
            }
            return Err(HelperError::Refused(format!(
                "{} need{} a cgroup, which this helper can only create when it runs as root: \
                 install it setuid-root (sudo cargo xtask install --setuid) or run as root",
                needed.join(", "),
                if needed.len() == 1 { "s" } else { "" }
            )));
        }
        let mounts = read_mounts()?;
        let own = read_own_cgroups();
        let v2_mount = mounts.iter().find(|m| m.v2);
        // Whether v2 is this host's hierarchy for limits is the root's to say; where a sandbox
        // goes, and what it may use there, [`parent_dir`]'s.
        let v2_controllers = v2_mount.map(|m| available_v2(&m.point)).unwrap_or_default();
        let has_v1 = mounts.iter().any(|m| !m.v2);
        let version = match limits.cgroup_version {
            CgroupVersion::V1 => 1,
            CgroupVersion::V2 => 2,
            CgroupVersion::Auto if v2_controllers.iter().any(|c| c == "memory") => 2,
            CgroupVersion::Auto if has_v1 => 1,
            CgroupVersion::Auto => 2,
        };
        let cg = if version == 2 {
            let mount = v2_mount.ok_or_else(|| {
                HelperError::Refused("no cgroup2 filesystem is mounted on this host".into())
            })?;
            // Our v2 cgroup: the line without controllers.
            let own_v2 = own
                .iter()
                .find(|(ctrls, _)| ctrls.is_empty())
                .map(|(_, p)| p.as_str());
            Self::create_v2(limits, &parent_dir(mount, own_v2), has_v1, pids_extra, step)?
        } else {
            Self::create_v1(limits, &mounts, &own, pids_extra, step)?
        };
        Ok(Some(cg))
    }

    fn create_v2(
        limits: &Limits,
        parent: &Parent,
        hybrid: bool,
        pids_extra: u64,
        step: &mut dyn FnMut(String),
    ) -> Result<Cgroup> {
        let dir = &parent.dir;
        let available = available_v2(dir);
        let mut want = Vec::new();
        let mut optional = Vec::new();
        for (ctrl, flag) in [
            ("memory", limits.memory_bytes.map(|_| "--memory-limit")),
            ("pids", limits.pids.map(|_| "--pids-limit")),
            ("cpu", limits.cpu_millis.map(|_| "--cpus")),
        ] {
            let have = available.iter().any(|c| c == ctrl);
            match (flag, have) {
                (Some(flag), false) => {
                    // Never enabled higher up: the cgroups above are not the caller's.
                    let hint = if hybrid {
                        "; on a hybrid host use --cgroup-version 1".to_string()
                    } else {
                        // (CPUAccounting= no longer needs the cpu controller on v2: a weight
                        // does.)
                        let setting = match ctrl {
                            "memory" => "MemoryAccounting=yes",
                            "pids" => "TasksAccounting=yes",
                            _ => "CPUWeight=100",
                        };
                        format!(
                            "; an administrator can offer it there (systemd: {setting} for that \
                             slice)"
                        )
                    };
                    return Err(HelperError::Refused(format!(
                        "{flag} needs the {ctrl} controller, which cgroup v2 does not offer in \
                         {} (where this sandbox's cgroup goes: the nearest cgroup above yours \
                         without processes; available: {}){hint}",
                        dir.display(),
                        if available.is_empty() {
                            "none".to_string()
                        } else {
                            available.join(" ")
                        },
                    )));
                }
                (Some(_), true) => want.push(ctrl.to_string()),
                // Accounting only: the memory peak when the controller is there.
                (None, true) if ctrl == "memory" && limits.account => optional.push(ctrl),
                // A time-limited sandbox competes for CPU as one group (see `enforce`).
                (None, true) if ctrl == "cpu" && limits.cpu_time_us.is_some() => {
                    optional.push(ctrl)
                }
                _ => {}
            }
        }
        // The limits of the cgroups the sandbox leaves on the way up, as ceilings.
        let ceilings = Ceilings::of(&parent.between);
        for (ctrl, has) in [
            ("memory", ceilings.memory.is_some()),
            ("pids", ceilings.pids.is_some()),
            ("cpu", ceilings.cpu.is_some()),
        ] {
            if has && available.iter().any(|c| c == ctrl) && !want.iter().any(|c| c == ctrl) {
                want.push(ctrl.to_string());
            }
        }
        // Controllers are enabled in the parent only: never above it, in cgroups that are not
        // the caller's to have changed.
        if !want.is_empty() {
            let enable = want
                .iter()
                .map(|c| format!("+{c}"))
                .collect::<Vec<_>>()
                .join(" ");
            write_path(&dir.join("cgroup.subtree_control"), &enable)?;
        }
        // Controllers that only help are enabled one by one, and a refusal is no error (the
        // cpu controller, for one, cannot be enabled while a realtime task sits in a non-root
        // cgroup on some kernels).
        for ctrl in optional {
            if write_path(&dir.join("cgroup.subtree_control"), &format!("+{ctrl}")).is_ok()
                && !want.iter().any(|c| c == ctrl)
            {
                want.push(ctrl.to_string());
            }
        }
        let name = sandbox_name(V2_PREFIX)?;
        let parent_fd = open_existing(dir)?;
        clean_stale(&parent_fd, dir, V2_PREFIX, &name);
        let made = make_dir(parent_fd, dir, &name, want)?;
        let cg = Cgroup {
            version: 2,
            dirs: vec![made],
            name,
            joined_at_clone: false,
            removed: false,
        };
        let d = &cg.dirs[0];
        let mut set = Vec::new();
        let settings = v2_settings(limits, &ceilings, pids_extra, &|c| d.has(c), &|f| {
            d.exists(f)
        });
        for (file, value) in settings {
            d.write(file, &value)?;
            set.push(format!("{file} {value}"));
        }
        if let Some(below) = parent.between.first() {
            step(format!(
                "cgroup: in {}, the nearest cgroup above yours ({}) without processes{}",
                dir.display(),
                parent.between.last().unwrap_or(below).display(),
                ceilings.describe()
            ));
        }
        step(describe(&cg.dirs[0], &set));
        Ok(cg)
    }

    fn create_v1(
        limits: &Limits,
        mounts: &[Mount],
        own: &[(Vec<String>, String)],
        pids_extra: u64,
        step: &mut dyn FnMut(String),
    ) -> Result<Cgroup> {
        // (controller, the flag that needs it, or None when it only helps)
        let mut want: Vec<(&str, Option<&str>)> = Vec::new();
        if limits.memory_bytes.is_some() {
            want.push(("memory", Some("--memory-limit")));
        } else if limits.account {
            want.push(("memory", None));
        }
        if limits.pids.is_some() {
            want.push(("pids", Some("--pids-limit")));
        }
        if limits.cpu_millis.is_some() {
            want.push(("cpu", Some("--cpus")));
        } else if limits.cpu_time_us.is_some() {
            // A time-limited sandbox competes for CPU as one group (see `enforce`).
            want.push(("cpu", None));
        }
        if limits.cpu_time_us.is_some() {
            want.push(("cpuacct", Some("--time-limit")));
        } else if limits.account {
            want.push(("cpuacct", None));
        }
        // Freezing makes killing every member race-free; without the hierarchy, the pid
        // namespace's end still kills them all.
        want.push(("freezer", None));

        // The hierarchies to use: each once, even when it carries several of the controllers.
        let mut hierarchies: Vec<(&Mount, Vec<String>)> = Vec::new();
        for (ctrl, flag) in &want {
            match mounts
                .iter()
                .find(|m| !m.v2 && m.controllers.iter().any(|c| c == ctrl))
            {
                Some(m) => match hierarchies.iter_mut().find(|(h, _)| h.point == m.point) {
                    Some((_, used)) => used.push(ctrl.to_string()),
                    None => hierarchies.push((m, vec![ctrl.to_string()])),
                },
                None => {
                    if let Some(flag) = flag {
                        return Err(HelperError::Refused(format!(
                            "{flag} needs the {ctrl} controller, which is not mounted as a \
                             cgroup v1 hierarchy on this host{}",
                            if mounts.iter().any(|m| m.v2) {
                                "; try --cgroup-version 2"
                            } else {
                                ""
                            }
                        )));
                    }
                }
            }
        }
        let name = sandbox_name("")?;
        let mut cg = Cgroup {
            version: 1,
            dirs: Vec::new(),
            name: name.clone(),
            joined_at_clone: false,
            removed: false,
        };
        for (mount, used) in hierarchies {
            let own_path = own
                .iter()
                .find(|(ctrls, _)| ctrls.iter().any(|c| mount.controllers.contains(c)))
                .map(|(_, p)| p.as_str());
            let parent = parent_dir(mount, own_path).dir;
            let parent_fd = open_parent(&parent)?;
            clean_stale(&parent_fd, &parent, "", &name);
            // The whole hierarchy's controllers are there; remember all, use `used`.
            let dir = match make_dir(parent_fd, &parent, &name, mount.controllers.clone()) {
                // The last sandbox of another helper took the empty `nsjail` with it between
                // our open and our mkdir: make it again.
                Err(HelperError::Sys {
                    source: Errno::ENOENT,
                    ..
                }) => make_dir(
                    open_parent(&parent)?,
                    &parent,
                    &name,
                    mount.controllers.clone(),
                )?,
                made => made?,
            };
            cg.dirs.push(dir);
            let d = cg
                .dirs
                .last()
                .ok_or(HelperError::Refused("no cgroup".into()))?;
            let mut set = Vec::new();
            for (file, value) in v1_settings(&used, limits, pids_extra, &|f| d.exists(f)) {
                d.write(file, &value)?;
                set.push(format!("{file} {value}"));
            }
            if limits.cpu_time_us.is_some() && used.iter().any(|c| c == "cpuacct") {
                set.push("cpuacct.usage watched for --time-limit".into());
            }
            if used.iter().any(|c| c == "freezer") {
                set.push("freezer, to kill every member".into());
            }
            step(describe(d, &set));
        }
        Ok(cg)
    }

    pub fn version(&self) -> u8 {
        self.version
    }

    /// The directory to pass to `clone3` with `CLONE_INTO_CGROUP` (v2 only).
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        (self.version == 2).then(|| self.dirs.first().map(|d| d.fd.as_fd()))?
    }

    /// The first process was born inside (the clone had `CLONE_INTO_CGROUP`).
    pub fn set_joined_at_clone(&mut self) {
        self.joined_at_clone = true;
    }

    /// Put `pid` (our unreaped child, so the pid cannot have been recycled) into every directory,
    /// unless it was born inside. Returns a line for `--verbose`.
    pub fn add(&self, pid: Pid) -> Result<String> {
        if self.joined_at_clone {
            return Ok(format!("cgroup: pid {pid} born inside (CLONE_INTO_CGROUP)"));
        }
        for d in &self.dirs {
            d.write("cgroup.procs", &pid.to_string())?;
        }
        Ok(format!(
            "cgroup: pid {pid} moved into {} before it was released",
            self.name
        ))
    }

    fn dir_with(&self, controller: &str) -> Option<&Dir> {
        if self.version == 2 {
            self.dirs.first()
        } else {
            self.dirs.iter().find(|d| d.has(controller))
        }
    }

    /// CPU time of every process of the cgroup, past and present, microseconds.
    pub fn cpu_usage_us(&self) -> Option<u64> {
        if self.version == 2 {
            self.dirs.first()?.read_key("cpu.stat", "usage_usec")
        } else {
            self.dir_with("cpuacct")?
                .read_u64("cpuacct.usage")
                .map(|ns| ns / 1000)
        }
    }

    /// Peak memory of the cgroup, bytes.
    pub fn memory_peak(&self) -> Option<u64> {
        if self.version == 2 {
            let d = self.dirs.first()?;
            if !d.has("memory") {
                return None;
            }
            d.read_u64("memory.peak")
        } else {
            self.dir_with("memory")?
                .read_u64("memory.max_usage_in_bytes")
        }
    }

    /// How many processes the OOM killer killed in the cgroup.
    pub fn oom_kills(&self) -> u64 {
        let v = if self.version == 2 {
            self.dirs
                .first()
                .filter(|d| d.has("memory"))
                .and_then(|d| d.read_key("memory.events", "oom_kill"))
        } else {
            self.dir_with("memory")
                .and_then(|d| d.read_key("memory.oom_control", "oom_kill"))
        };
        v.unwrap_or(0)
    }

    /// Whether the cgroup has a memory controller (so that a peak can be reported).
    pub fn has_memory(&self) -> bool {
        self.dir_with("memory").is_some_and(|d| d.has("memory"))
    }

    /// Freeze the cgroup (best effort, bounded): frozen processes can neither fork nor exit, so
    /// the member list stays true while it is being signalled.
    fn freeze(&self, on: bool) -> bool {
        let Some(d) = self.dir_with("freezer") else {
            return false;
        };
        let (file, value, done): (&str, &str, fn(&Dir) -> bool) = if self.version == 2 {
            (
                "cgroup.freeze",
                if on { "1" } else { "0" },
                if on {
                    |d: &Dir| d.read_key("cgroup.events", "frozen") == Some(1)
                } else {
                    |_: &Dir| true
                },
            )
        } else {
            (
                "freezer.state",
                if on { "FROZEN" } else { "THAWED" },
                if on {
                    |d: &Dir| {
                        d.read("freezer.state")
                            .is_some_and(|s| s.trim() == "FROZEN")
                    }
                } else {
                    |_: &Dir| true
                },
            )
        };
        if d.write(file, value).is_err() {
            return false;
        }
        let deadline = Instant::now() + Duration::from_millis(100);
        while !done(d) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Send `sig` to every process in the cgroup, frozen (when the freeze completes in time) so
    /// that none can fork while the members are listed and signalled.
    pub fn signal_all(&self, sig: Signal) {
        self.signal_all_but(sig, None);
    }

    /// [`Cgroup::signal_all`], sparing one member (by pid in the helper's pid namespace): the
    /// sandbox's own init, which passes every signal it gets on to the payload, so signalling
    /// it too would hit the payload twice.
    pub fn signal_all_but(&self, sig: Signal, spare: Option<i32>) {
        let Some(d) = self.dirs.first() else {
            return;
        };
        // Whether or not the freeze completed in time, it was asked for: always thaw afterwards,
        // or a slow freeze would leave the sandbox frozen until the kill.
        let _ = self.freeze(true);
        signal_listed(d, sig, spare);
        self.freeze(false);
    }

    /// SIGKILL to every process: `cgroup.kill` on v2, freeze-signal-thaw on v1.
    pub fn kill_all(&self) {
        if self.version == 2
            && let Some(d) = self.dirs.first()
            && d.write("cgroup.kill", "1").is_ok()
        {
            return;
        }
        self.signal_all(Signal::SIGKILL);
    }

    fn is_empty(&self) -> bool {
        self.dirs.iter().all(|d| d.pids().is_empty())
    }

    /// Kill what is left and remove every directory. The kernel refuses to remove a cgroup
    /// until its last process has fully exited, so this retries (bounded, 2 s) while killing.
    pub fn remove(&mut self) -> std::result::Result<(), String> {
        if self.removed {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        if !self.is_empty() {
            self.kill_all();
        }
        let mut failed = Vec::new();
        for d in &self.dirs {
            loop {
                match unlinkat(
                    d.parent.as_fd(),
                    self.name.as_str(),
                    UnlinkatFlags::RemoveDir,
                ) {
                    Ok(()) | Err(Errno::ENOENT) => {
                        // v1: the `nsjail` directory we made below the caller's cgroup goes
                        // with its last sandbox, or the caller's cgroup could never be removed
                        // by whoever manages it (found in review). Another sandbox still there
                        // keeps it (EBUSY); a helper making one meanwhile makes it again.
                        if self.version == 1
                            && let Some(ours) = d.path.parent()
                        {
                            let _ = std::fs::remove_dir(ours);
                        }
                        break;
                    }
                    Err(Errno::EBUSY) if Instant::now() < deadline => {
                        if !d.pids().is_empty() {
                            self.kill_all();
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => {
                        failed.push(format!("rmdir {}: {}", d.path.display(), e.desc()));
                        break;
                    }
                }
            }
        }
        self.removed = true;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }

    /// The directories, for `--verbose`.
    pub fn paths(&self) -> Vec<String> {
        self.dirs
            .iter()
            .map(|d| d.path.display().to_string())
            .collect()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Send `sig` to every process listed in `d` but `spare`. Each member is opened as a pidfd and
/// signalled only if it is still listed after the open, so a pid that was recycled for a
/// process outside the sandbox is never hit.
fn signal_listed(d: &Dir, sig: Signal, spare: Option<i32>) {
    let opened: Vec<(i32, OwnedFd)> = d
        .pids()
        .into_iter()
        .filter_map(|p| sys::pidfd_open(p).ok().map(|fd| (p, fd)))
        .collect();
    let still = d.pids();
    for (p, fd) in &opened {
        if still.contains(p) && spare != Some(*p) {
            let _ = sys::pidfd_send_signal(fd.as_fd(), sig);
        }
    }
}

/// One write into a sandbox's cgroup: the file and its value.
type Setting = (&'static str, String);

/// What a v2 cgroup is given for `limits` under the `ceilings` of the cgroups it leaves: the
/// files to write, in order. Decided here, written by `create_v2`. `has`: the cgroup has that
/// controller; `exists`: it has that file.
fn v2_settings(
    limits: &Limits,
    ceilings: &Ceilings,
    pids_extra: u64,
    has: &dyn Fn(&str) -> bool,
    exists: &dyn Fn(&str) -> bool,
) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(b) = min_some(limits.memory_bytes, ceilings.memory).filter(|_| has("memory")) {
        out.push(("memory.max", b.to_string()));
        // Swap off when a limit was asked for: the limit is the limit. Kernels without swap
        // support lack the file.
        if limits.memory_bytes.is_some() && exists("memory.swap.max") {
            out.push(("memory.swap.max", "0".to_string()));
        }
    }
    let pids = min_some(
        limits.pids.map(|n| n.saturating_add(pids_extra)),
        ceilings.pids,
    );
    if let Some(n) = pids.filter(|_| has("pids")) {
        out.push(("pids.max", pids_max(n)));
    }
    // A CPU-time limit is enforced by the supervisor, which sits beside the sandbox under the
    // parent (in the caller's cgroup): it must win every wake-up against the sandbox's group, or
    // the limit is checked late. With the default weight it came late enough in the emulated
    // guest for the limit to overshoot by 60 ms; the sandbox still gets any CPU that nobody else
    // beside it wants.
    if limits.cpu_time_us.is_some() && has("cpu") && exists("cpu.weight") {
        out.push(("cpu.weight", TIME_LIMITED_WEIGHT.to_string()));
    }
    if let Some(m) = min_some(limits.cpu_millis, ceilings.cpu).filter(|_| has("cpu")) {
        let quota = (m * CPU_PERIOD_US / 1000).max(1000);
        out.push(("cpu.max", format!("{quota} {CPU_PERIOD_US}")));
    }
    out
}

/// What a v1 cgroup is given in a hierarchy where it uses the controllers `used`: the files to
/// write, in order. Decided here, written by `create_v1`. `exists`: the cgroup has that file.
fn v1_settings(
    used: &[String],
    limits: &Limits,
    pids_extra: u64,
    exists: &dyn Fn(&str) -> bool,
) -> Vec<Setting> {
    let mut out = Vec::new();
    for ctrl in used {
        match (ctrl.as_str(), limits) {
            (
                "memory",
                Limits {
                    memory_bytes: Some(b),
                    ..
                },
            ) => {
                out.push(("memory.limit_in_bytes", b.to_string()));
                // Swap off: memory+swap may not exceed memory. Without swap accounting
                // (swapaccount=0) the best v1 offers is swappiness 0.
                if exists("memory.memsw.limit_in_bytes") {
                    out.push(("memory.memsw.limit_in_bytes", b.to_string()));
                } else {
                    out.push(("memory.swappiness", "0".to_string()));
                }
            }
            ("pids", Limits { pids: Some(n), .. }) => {
                out.push(("pids.max", pids_max(n.saturating_add(pids_extra))));
            }
            (
                "cpu",
                Limits {
                    cpu_millis: Some(m),
                    ..
                },
            ) => {
                out.push(("cpu.cfs_period_us", CPU_PERIOD_US.to_string()));
                out.push(("cpu.cfs_quota_us", (m * CPU_PERIOD_US / 1000).to_string()));
            }
            _ => {}
        }
    }
    out
}

/// The most tasks the kernel ever has (`PID_MAX_LIMIT`): `pids.max` takes no more.
const PID_MAX_LIMIT: u64 = 4 << 20;

/// The `pids.max` value for `n` tasks: `max` from `PID_MAX_LIMIT` on, which is the same (and
/// `--pids-limit 4194304` plus our init would otherwise be refused by the kernel).
fn pids_max(n: u64) -> String {
    if n >= PID_MAX_LIMIT {
        "max".to_string()
    } else {
        n.to_string()
    }
}

/// The smaller of two optional limits.
fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The tightest limits of some v2 cgroups (`memory.max`, `pids.max`, `cpu.max` as thousandths
/// of a CPU); `None` where none has one.
#[derive(Debug, Default, PartialEq, Eq)]
struct Ceilings {
    memory: Option<u64>,
    pids: Option<u64>,
    cpu: Option<u64>,
}

impl Ceilings {
    fn of(cgroups: &[std::path::PathBuf]) -> Ceilings {
        let mut c = Ceilings::default();
        for d in cgroups {
            let read = |f: &str| std::fs::read_to_string(d.join(f)).ok();
            c.memory = min_some(c.memory, read("memory.max").and_then(|s| parse_max(&s)));
            c.pids = min_some(c.pids, read("pids.max").and_then(|s| parse_max(&s)));
            c.cpu = min_some(c.cpu, read("cpu.max").and_then(|s| parse_cpu_max(&s)));
        }
        c
    }

    fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(b) = self.memory {
            v.push(format!("memory.max {b}"));
        }
        if let Some(n) = self.pids {
            v.push(format!("pids.max {n}"));
        }
        if let Some(m) = self.cpu {
            v.push(format!("{m}/1000 of a cpu"));
        }
        if v.is_empty() {
            String::new()
        } else {
            format!(
                "; ceilings carried from the cgroups it left: {}",
                v.join(", ")
            )
        }
    }
}

/// A `memory.max`/`pids.max` value: a number, or `max` (none).
fn parse_max(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// `cpu.max` (`QUOTA PERIOD`, or `max PERIOD`) as thousandths of a CPU.
fn parse_cpu_max(s: &str) -> Option<u64> {
    let mut w = s.split_whitespace();
    let quota: u64 = w.next()?.parse().ok()?;
    let period: u64 = w.next()?.parse().ok()?;
    (period > 0).then(|| (quota * 1000).div_ceil(period))
}

fn describe(d: &Dir, set: &[String]) -> String {
    if set.is_empty() {
        format!("cgroup: {} (accounting)", d.path.display())
    } else {
        format!("cgroup: {} ({})", d.path.display(), set.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(list: &[(&'static str, &str)]) -> Vec<Setting> {
        list.iter().map(|(f, v)| (*f, v.to_string())).collect()
    }

    #[test]
    fn a_v2_cgroup_gets_the_limits_asked_for_within_the_ceilings() {
        let all = |_: &str| true;
        let asked = Limits {
            memory_bytes: Some(64 << 20),
            pids: Some(16),
            cpu_millis: Some(250),
            ..Limits::default()
        };
        let none = Ceilings::default();
        assert_eq!(
            v2_settings(&asked, &none, 1, &all, &all),
            settings(&[
                ("memory.max", "67108864"),
                ("memory.swap.max", "0"),
                ("pids.max", "17"),
                ("cpu.max", "25000 100000"),
            ])
        );
        // A ceiling below what was asked wins; one above it does not.
        let tight = Ceilings {
            memory: Some(1 << 20),
            pids: Some(99),
            cpu: Some(5),
        };
        assert_eq!(
            v2_settings(&asked, &tight, 1, &all, &all),
            settings(&[
                ("memory.max", "1048576"),
                ("memory.swap.max", "0"),
                ("pids.max", "17"),
                // The kernel's smallest quota is 1 ms.
                ("cpu.max", "1000 100000"),
            ])
        );
        // A ceiling alone is carried over; swap is left alone when no limit was asked for.
        let only_ceilings = v2_settings(&Limits::default(), &tight, 1, &all, &all);
        assert_eq!(
            only_ceilings,
            settings(&[
                ("memory.max", "1048576"),
                ("pids.max", "99"),
                ("cpu.max", "1000 100000"),
            ])
        );
        // Nothing is written for a controller the cgroup lacks, or to a file it lacks.
        let no_memory = |c: &str| c != "memory";
        let no_swap = |f: &str| f != "memory.swap.max";
        assert_eq!(
            v2_settings(&asked, &none, 1, &no_memory, &all),
            settings(&[("pids.max", "17"), ("cpu.max", "25000 100000")])
        );
        assert_eq!(
            v2_settings(&asked, &none, 1, &all, &no_swap)[..2],
            settings(&[("memory.max", "67108864"), ("pids.max", "17")])[..]
        );
        assert!(v2_settings(&Limits::default(), &none, 1, &all, &all).is_empty());
    }

    #[test]
    fn a_time_limited_v2_cgroup_gets_a_low_cpu_weight() {
        let all = |_: &str| true;
        let timed = Limits {
            cpu_time_us: Some(1_000_000),
            ..Limits::default()
        };
        let none = Ceilings::default();
        assert_eq!(
            v2_settings(&timed, &none, 1, &all, &all),
            settings(&[("cpu.weight", TIME_LIMITED_WEIGHT)])
        );
        assert!(v2_settings(&timed, &none, 1, &|c| c != "cpu", &all).is_empty());
        assert!(v2_settings(&timed, &none, 1, &all, &|f| f != "cpu.weight").is_empty());
    }

    #[test]
    fn a_v1_cgroup_gets_the_limits_of_the_controllers_its_hierarchy_carries() {
        let asked = Limits {
            memory_bytes: Some(64 << 20),
            pids: Some(4 << 20),
            cpu_millis: Some(250),
            cpu_time_us: Some(1),
            ..Limits::default()
        };
        let used = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = |_: &str| true;
        assert_eq!(
            v1_settings(&used(&["memory"]), &asked, 1, &all),
            settings(&[
                ("memory.limit_in_bytes", "67108864"),
                ("memory.memsw.limit_in_bytes", "67108864"),
            ])
        );
        // Without swap accounting: swappiness 0 instead.
        assert_eq!(
            v1_settings(&used(&["memory"]), &asked, 1, &|_| false),
            settings(&[
                ("memory.limit_in_bytes", "67108864"),
                ("memory.swappiness", "0"),
            ])
        );
        // pids.max counts our init; at the kernel's most it is "max".
        assert_eq!(
            v1_settings(&used(&["pids"]), &asked, 1, &all),
            settings(&[("pids.max", "max")])
        );
        // One hierarchy may carry several controllers (cpu,cpuacct): each gets its files.
        assert_eq!(
            v1_settings(&used(&["cpu", "cpuacct", "freezer"]), &asked, 1, &all),
            settings(&[
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "25000")
            ])
        );
        // A controller used only to account for or to kill gets nothing written.
        let accounting = Limits {
            account: true,
            ..Limits::default()
        };
        assert!(v1_settings(&used(&["memory", "pids", "cpu"]), &accounting, 1, &all).is_empty());
    }

    #[test]
    fn limit_values() {
        assert_eq!(pids_max(17), "17");
        assert_eq!(pids_max(4_194_304 + 1), "max");
        assert_eq!(min_some(Some(3), None), Some(3));
        assert_eq!(min_some(None, Some(4)), Some(4));
        assert_eq!(min_some(Some(5), Some(4)), Some(4));
        assert_eq!(min_some(None, None), None);
        assert_eq!(parse_max("max\n"), None);
        assert_eq!(parse_max("2344\n"), Some(2344));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(500));
        assert_eq!(parse_cpu_max("1 3"), Some(334));
    }
}
