//! The parent side of starting a sandbox: clone into the new namespaces, write the ID maps,
//! release the child. The child side is `sandbox/child.rs`.

use std::os::fd::OwnedFd;
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{Pid, pipe2, write};
use nsjail_core::{Limits, Namespaces, SpawnRequest};

use crate::error::{Result, sys};
use crate::host::caller::Caller;
use crate::host::cgroup::Cgroup;
use crate::host::grants::Grants;
use crate::host::userns;
use crate::sandbox::child::{self, ChildFds};
use crate::sys::{self, Cloned};

/// A started sandbox, as the helper holds it.
pub struct Sandbox {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    /// Our end of the sync pipe, held open for the sandbox's life: the child checks it to know
    /// that we are alive.
    pub _sync: OwnedFd,
    pub report: OwnedFd,
    pub status: OwnedFd,
    pub started: Instant,
    pub as_pid_1: bool,
    /// The sandbox's own cgroup, when its limits asked for one; dropping it kills whatever is
    /// left inside and removes it.
    pub cgroup: Option<Cgroup>,
    pub limits: Limits,
    /// Where SIGKILL comes whatever the grace (the policy's ceilings).
    pub hard_stops: nsjail_core::policy::HardStops,
    /// pasta, for `--net pasta`: killed when the sandbox is dropped.
    pub _pasta: Option<crate::host::pasta::PastaProcess>,
    /// The sandbox's mount namespace, held open until the sandbox is dropped, after its
    /// cgroup's figures have been read and reported (see `spawn`).
    pub _mount_ns: Option<OwnedFd>,
    /// Our end of the socketpair the set-up sends the payload's terminal master on, when the
    /// request asked for one (see `sandbox/terminal.rs`).
    pub terminal: Option<OwnedFd>,
}

/// `CLONE_NEWTIME` is not in nix's `CloneFlags`; clone3 accepts it.
const CLONE_NEWTIME: u64 = 0x80;

fn clone_flags(ns: &Namespaces) -> u64 {
    let mut f = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
    for (on, flag) in [
        (ns.net, CloneFlags::CLONE_NEWNET),
        (ns.ipc, CloneFlags::CLONE_NEWIPC),
        (ns.uts, CloneFlags::CLONE_NEWUTS),
        (ns.cgroup, CloneFlags::CLONE_NEWCGROUP),
    ] {
        if on {
            f |= flag;
        }
    }
    let mut bits = f.bits() as u64;
    if ns.time {
        bits |= CLONE_NEWTIME;
    }
    bits
}

pub fn describe_namespaces(ns: &Namespaces) -> String {
    let mut v = vec!["user", "mount", "pid"];
    for (on, name) in [
        (ns.uts, "uts"),
        (ns.ipc, "ipc"),
        (ns.net, "net"),
        (ns.cgroup, "cgroup"),
        (ns.time, "time"),
    ] {
        if on {
            v.push(name);
        }
    }
    v.join(", ")
}

/// Clone the sandbox and write its maps. `step` receives `--verbose` lines.
pub fn spawn(
    req: &SpawnRequest,
    caller: &Caller,
    stdio: [OwnedFd; 3],
    extra: Vec<OwnedFd>,
    pass: Vec<OwnedFd>,
    grants: &Grants,
    step: &mut dyn FnMut(String),
) -> Result<Sandbox> {
    // The cgroup comes first: on v2 the child is born in it. Our own init counts as a process
    // of the sandbox; --pids-limit counts the payload's.
    let pids_extra = if req.as_pid_1 { 0 } else { 1 };
    let mut cgroup = Cgroup::for_limits(&req.limits, caller.privileged, pids_extra, step)?;
    let (sync_r, sync_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2 (sync)"))?;
    let (report_r, report_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2 (report)"))?;
    let (status_r, status_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2 (status)"))?;
    let (terminal, terminal_child) = if req.terminal {
        let (ours, theirs) = crate::sandbox::terminal::socketpair()?;
        (Some(ours), Some(theirs))
    } else {
        (None, None)
    };

    let flags = clone_flags(&req.namespaces);
    let started = Instant::now();
    // With privilege we are still euid 0 here, so the new user namespace belongs to root: the
    // caller can neither ptrace the set-up nor setns() into the namespace to get one of their
    // own (which matters where the admin disabled unprivileged user namespaces).
    let into = cgroup.as_ref().and_then(Cgroup::clone_into);
    // Being root's, the namespace charges what its processes hold to root: the limits at the
    // clone cap that charge (see `inherit::ROOT_SHARE`).
    let clamped = if caller.privileged {
        Some(crate::host::inherit::clamp_for_clone()?)
    } else {
        None
    };
    let mut cloned = sys::clone_fork(flags, into);
    let born_inside = into.is_some() && cloned.is_ok();
    if into.is_some()
        && matches!(
            cloned,
            Err(nix::errno::Errno::E2BIG | nix::errno::Errno::EINVAL)
        )
    {
        // A kernel before 5.7 has no CLONE_INTO_CGROUP: clone, then move the child in.
        cloned = sys::clone_fork(flags, None);
    }
    let (pid, pidfd) = match cloned {
        Err(e) => return Err(clone_error(caller, &req.namespaces, e)),
        Ok(Cloned::Child) => {
            drop((sync_w, report_r, status_r));
            child::run(
                req,
                ChildFds {
                    stdio,
                    extra,
                    pass,
                    sync: sync_r,
                    report: report_w,
                    status: status_w,
                    terminal: terminal_child,
                },
                &grants.lockdown,
            )
        }
        Ok(Cloned::Parent { pid, pidfd }) => (pid, pidfd),
    };
    // The namespace has its ceilings; the helper's own limits come back.
    drop(clamped);
    // The helper keeps none of the caller's fds: a passed socket's peer sees its end when the
    // sandbox's last holder closes it.
    drop((
        sync_r,
        report_w,
        status_w,
        stdio,
        extra,
        pass,
        terminal_child,
    ));
    // Whoever drops the last reference to the sandbox's mount namespace unmounts its whole
    // tree, and the CPU that takes is charged to that process's cgroup. Held here, that is the
    // helper after the sandbox's usage has been read, not the sandbox's last process while it
    // is being killed at its CPU limit (tens of milliseconds under emulation). Best effort.
    let mount_ns = nix::fcntl::open(
        format!("/proc/{pid}/ns/mnt").as_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok();
    step(format!(
        "clone3: new {} namespaces, host pid {pid}",
        describe_namespaces(&req.namespaces)
    ));

    let kill = |e| {
        let _ = sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&pidfd), Signal::SIGKILL);
        let _ = sys::wait4(pid, false);
        e
    };
    match userns::write_maps(
        pid,
        &grants.uid_map,
        &grants.gid_map,
        grants.setgroups_allow,
    ) {
        Ok(lines) => lines.into_iter().for_each(&mut *step),
        Err(e) => return Err(kill(e)),
    }
    // Into its cgroup before it runs a single instruction of its own set-up: it is still
    // waiting for the sync byte.
    if let Some(cg) = &mut cgroup {
        if born_inside {
            cg.set_joined_at_clone();
        }
        match cg.add(pid) {
            Ok(line) => step(line),
            Err(e) => return Err(kill(e)),
        }
    }
    // The caller's scheduling (nice, policy, CPUs, I/O priority, OOM score, timer slack), which
    // the helper did not keep for itself, for the sandbox and everything in it.
    match crate::host::inherit::give_to(pid) {
        Ok(lines) => lines.into_iter().for_each(&mut *step),
        Err(e) => return Err(kill(e)),
    }
    // The sandbox's network must be there before its payload runs.
    let pasta = match &req.pasta {
        None => None,
        Some(cfg) => match crate::host::pasta::start(pid, caller, cfg, req.ids, step) {
            Ok(p) => Some(p),
            Err(e) => return Err(kill(e)),
        },
    };
    // Release the child: its maps are in place.
    if let Err(e) = write(&sync_w, b"1") {
        return Err(kill(sys("write sync pipe")(e)));
    }
    Ok(Sandbox {
        pid,
        pidfd,
        _sync: sync_w,
        report: report_r,
        status: status_r,
        started,
        as_pid_1: req.as_pid_1,
        cgroup,
        limits: req.limits.clone(),
        hard_stops: grants.hard_stops,
        _pasta: pasta,
        _mount_ns: mount_ns,
        terminal,
    })
}

fn clone_error(
    caller: &Caller,
    ns: &Namespaces,
    e: nix::errno::Errno,
) -> crate::error::HelperError {
    let call = format!("clone3(new {} namespaces)", describe_namespaces(ns));
    if e == nix::errno::Errno::EPERM && !caller.privileged {
        return crate::error::HelperError::Refused(format!(
            "{call}: {}: this host does not allow unprivileged user namespaces \
             (see sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, \
             kernel.apparmor_restrict_unprivileged_userns); install the helper setuid-root \
             with `sudo cargo xtask install --setuid`",
            e.desc()
        ));
    }
    sys(call)(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_mount_and_pid_namespaces_are_always_new_the_others_as_asked() {
        let always = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID) as u64;
        let none = Namespaces {
            net: false,
            ipc: false,
            uts: false,
            cgroup: false,
            time: false,
        };
        assert_eq!(clone_flags(&none), always);
        for (ns, flag) in [
            (Namespaces { net: true, ..none }, libc::CLONE_NEWNET as u64),
            (Namespaces { ipc: true, ..none }, libc::CLONE_NEWIPC as u64),
            (Namespaces { uts: true, ..none }, libc::CLONE_NEWUTS as u64),
            (
                Namespaces {
                    cgroup: true,
                    ..none
                },
                libc::CLONE_NEWCGROUP as u64,
            ),
            (
                Namespaces { time: true, ..none },
                libc::CLONE_NEWTIME as u64,
            ),
        ] {
            assert_eq!(clone_flags(&ns), always | flag, "{ns:?}");
        }
    }
}
