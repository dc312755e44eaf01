//! Every `unsafe` block of nsjail lives here. Each wraps one system call that neither std nor nix
//! offers safely, and says in its `// SAFETY:` comment why the call cannot break Rust's rules.
//! Everything outside this module is safe code: the crate denies `unsafe_code`, and this is the
//! one module that allows it.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// The result of a fork-like `clone3`.
pub enum Cloned {
    /// We are the new process.
    Child,
    /// We are the parent; `pidfd` refers to the child for as long as we hold it.
    Parent { pid: Pid, pidfd: OwnedFd },
}

/// Field layout of `struct clone_args` (linux/sched.h), version 2 (88 bytes: `set_tid` came in
/// 5.5, `cgroup` in 5.7). Older kernels accept the larger struct as long as the fields they do
/// not know are zero, which they are unless a cgroup is given.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (linux/sched.h): the child starts in the cgroup `clone_args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3` with fork semantics (no shared memory, child continues on a copy of our stack),
/// new namespaces from `flags`, `SIGCHLD` on exit, and a pidfd for the parent. With `cgroup`
/// (an open cgroup v2 directory) the child is born in that cgroup.
///
/// The helper is single-threaded, so the child's copy of the address space holds no lock that
/// another thread owned: it may allocate and use the rest of the program, as after `fork`.
pub fn clone_fork(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<Cloned, Errno> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, initialised clone_args of the size passed; `pidfd` outlives the
    // call. Without CLONE_VM and with a null stack the child runs on a private copy of this
    // address space exactly like fork(2); the process is single-threaded (the helper never
    // starts threads), so no lock or allocator state is left inconsistent in the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Cloned::Child),
        pid => {
            // SAFETY: on success with CLONE_PIDFD the kernel stored a new fd that we own.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Cloned::Parent {
                pid: Pid::from_raw(pid as libc::pid_t),
                pidfd,
            })
        }
    }
}

/// Plain `fork(2)`, used by the sandbox's init to start the payload and by the helper to start
/// pasta.
pub fn fork() -> Result<Option<Pid>, Errno> {
    // SAFETY: both callers (the sandbox's first process, the helper) are single-threaded, so the
    // child may run arbitrary code, as after fork in any single-threaded program.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(None),
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child)),
    }
}

/// Close every fd from `first` upwards except those in `keep` (which must be sorted).
pub fn close_fds_from_except(first: RawFd, keep: &[RawFd]) -> Result<(), Errno> {
    let mut start = first as libc::c_uint;
    for &k in keep.iter().filter(|&&k| k >= first) {
        let k = k as libc::c_uint;
        if k > start {
            close_range(start, k - 1, 0)?;
        }
        start = k + 1;
    }
    close_range(start, libc::c_uint::MAX, 0)
}

/// A close-on-exec copy of `fd` numbered `min` or above (`fcntl(F_DUPFD_CLOEXEC)`).
pub fn dup_at_or_above(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int by value and touches no memory of ours; on success
    // the new fd is installed in this process and nothing else owns it.
    let new = Errno::result(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) })?;
    Ok(take_fd(new))
}

/// A close-on-exec copy of `fd` at exactly `target` (`dup3(O_CLOEXEC)`). Whatever was open at
/// `target` is closed by the kernel: the caller moves every fd it still uses out of the way
/// first (see `sandbox/child.rs`).
pub fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: dup3 takes ints by value and touches no memory of ours; on success `target` is
    // the new copy, and the caller guarantees no live Rust object of this process uses the fd
    // that was at `target` before (it has moved its own above every target).
    let new = Errno::result(unsafe { libc::dup3(fd.as_raw_fd(), target, libc::O_CLOEXEC) })?;
    Ok(take_fd(new))
}

/// Let `fd` stay open across exec (clear `FD_CLOEXEC`).
pub fn keep_across_exec(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: F_SETFD takes an int by value and changes only the descriptor's flags.
    Errno::result(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) }).map(drop)
}

/// Mark every fd from `first` upwards close-on-exec.
pub fn cloexec_from(first: RawFd) -> Result<(), Errno> {
    close_range(
        first as libc::c_uint,
        libc::c_uint::MAX,
        libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
    )
}

fn close_range(first: libc::c_uint, last: libc::c_uint, flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: close_range only closes (or flags) descriptors; no Rust object of this process
    // owns them at the call sites: they are run at start-up before any fd is wrapped, and in
    // the sandbox child on fds it inherited but does not use.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    Errno::result(ret).map(drop)
}

/// Remove every environment variable of this process.
pub fn clear_environment() {
    // SAFETY: called first thing in main, while the process has one thread and no other code
    // holds a pointer into the environment.
    unsafe {
        libc::clearenv();
    }
}

/// Put every catchable signal back to its default action (except `SIGPIPE`, which stays
/// ignored so a closed socket is an error, not a death) and unblock all of them. A setuid
/// program inherits ignored signals and the signal mask from its caller: an ignored `SIGCHLD`
/// would make the kernel reap the sandbox before we could read its status.
pub fn reset_signals() -> Result<(), Errno> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, sigaction};
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGPIPE) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code, so no async-signal-safety rule can
        // be broken.
        unsafe { sigaction(sig, &dfl) }?;
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// The kernel's `struct sigaction` as `rt_sigaction(2)` takes it (x86_64 and arm64 lay it out
/// alike: handler, flags, restorer, a 64-bit mask).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// The highest signal number (`SIGRTMAX` as the kernel counts, `_NSIG - 1`).
const LAST_SIGNAL: libc::c_int = 64;

/// `rt_sigaction(sig, SIG_DFL or SIG_IGN)` without the C library, which refuses the two
/// signals it keeps for itself (32 and 33).
fn set_disposition(sig: libc::c_int, ignore: bool) -> Result<(), Errno> {
    let act = KernelSigaction {
        handler: if ignore { libc::SIG_IGN } else { libc::SIG_DFL },
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: `act` is a valid kernel sigaction of the size the kernel expects for an 8-byte
    // mask; SIG_DFL and SIG_IGN run no code of ours; no old action is asked for.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            std::ptr::addr_of!(act),
            std::ptr::null_mut::<KernelSigaction>(),
            8usize,
        )
    };
    Errno::result(ret).map(drop)
}

/// The setuid helper's own signal state, whatever its caller left it: every signal `ignored`
/// lists is ignored, every other standard signal has its default action, every realtime one
/// (which the helper never uses) is ignored, and none is blocked. Each is ignored first, which
/// discards any the caller left pending (a pending `SIGALRM` or `SIGTERM` would otherwise end
/// the helper the moment it unblocks it). The C library's own two (32, 33) are left alone.
pub fn helper_signals(ignored: &[Signal]) -> Result<(), Errno> {
    for sig in 1..=LAST_SIGNAL {
        if matches!(sig, libc::SIGKILL | libc::SIGSTOP | 32 | 33) {
            continue;
        }
        set_disposition(sig, true)?;
        let standard = sig < 32;
        if standard && !ignored.iter().any(|s| *s as libc::c_int == sig) {
            set_disposition(sig, false)?;
        }
    }
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
}

/// Every signal back to its default action, as a program started by a shell expects (the
/// signal mask is left to the caller). Run in the payload before exec, and for pasta: an
/// ignored signal stays ignored across exec, and the helper ignores several.
pub fn default_signals() -> Result<(), Errno> {
    for sig in 1..=LAST_SIGNAL {
        if !matches!(sig, libc::SIGKILL | libc::SIGSTOP) {
            set_disposition(sig, false)?;
        }
    }
    Ok(())
}

/// Disarm the three interval timers (`ITIMER_REAL`, `ITIMER_VIRTUAL`, `ITIMER_PROF`), which
/// survive exec: armed by the caller, they would end the helper with SIGALRM, SIGVTALRM or
/// SIGPROF.
pub fn disarm_interval_timers() -> Result<(), Errno> {
    let zero = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    for which in [libc::ITIMER_REAL, libc::ITIMER_VIRTUAL, libc::ITIMER_PROF] {
        // SAFETY: `zero` is a valid itimerval for the duration of the call; no old value is
        // asked for.
        Errno::result(unsafe { libc::setitimer(which, &zero, std::ptr::null_mut()) })?;
    }
    Ok(())
}

/// The nice value of process `pid` (0: this one).
pub fn nice_of(pid: i32) -> Result<i32, Errno> {
    // SAFETY: integer arguments. The raw system call returns 20 - nice (1..=40), so that no
    // nice value looks like an error, as -1 does from the C library's wrapper.
    let ret = unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, pid) };
    Errno::result(ret).map(|r| 20 - r as i32)
}

/// Set the nice value of process `pid` (0: this one).
pub fn set_nice(pid: i32, nice: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments.
    let ret = unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, nice) };
    Errno::result(ret).map(drop)
}

// The scheduler calls go to the kernel directly: musl's wrappers of sched_getscheduler(2),
// sched_getparam(2) and sched_setscheduler(2) only fail with ENOSYS (POSIX gives these calls a
// process-wide meaning Linux's per-thread ones do not have). The kernel's `struct sched_param`
// is one `int`, the static priority.

/// The scheduling policy (with `SCHED_RESET_ON_FORK` if set) and static priority of `pid`.
pub fn sched_of(pid: i32) -> Result<(i32, i32), Errno> {
    // SAFETY: an integer argument.
    let policy = Errno::result(unsafe { libc::syscall(libc::SYS_sched_getscheduler, pid) })?;
    let mut priority: libc::c_int = 0;
    // SAFETY: `priority` is a valid, writable kernel sched_param (one int).
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_sched_getparam,
            pid,
            &mut priority as *mut libc::c_int,
        )
    })?;
    Ok((policy as i32, priority))
}

/// Set the scheduling policy and static priority of `pid` (0: this one).
pub fn set_sched(pid: i32, policy: i32, priority: i32) -> Result<(), Errno> {
    let param: libc::c_int = priority;
    // SAFETY: `param` is a valid kernel sched_param (one int) for the duration of the call.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            pid,
            policy,
            &param as *const libc::c_int,
        )
    })
    .map(drop)
}

/// `IOPRIO_WHO_PROCESS` of ioprio_get(2)/ioprio_set(2).
const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// The I/O priority of `pid` (0: this one): class << 13 | level.
pub fn ioprio_of(pid: i32) -> Result<i32, Errno> {
    // SAFETY: integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, pid) };
    Errno::result(ret).map(|r| r as i32)
}

/// Set the I/O priority of `pid` (0: this one).
pub fn set_ioprio(pid: i32, prio: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, pid, prio) };
    Errno::result(ret).map(drop)
}

/// Resource usage of a reaped child and its reaped descendants.
pub struct Usage {
    pub user_us: u64,
    pub system_us: u64,
    pub max_rss_kib: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

/// `wait4(pid)`: reap our child and return its raw wait status and usage.
pub fn wait4(pid: Pid, nohang: bool) -> Result<Option<(i32, Usage)>, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: both pointers are to live, writable locals of the right types.
        let ret = unsafe { libc::wait4(pid.as_raw(), &mut status, flags | libc::__WALL, &mut ru) };
        match ret {
            -1 if Errno::last() == Errno::EINTR => continue,
            -1 => return Err(Errno::last()),
            0 => return Ok(None),
            _ => break,
        }
    }
    let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    Ok(Some((
        status,
        Usage {
            user_us: us(ru.ru_utime),
            system_us: us(ru.ru_stime),
            max_rss_kib: ru.ru_maxrss.max(0) as u64,
            voluntary_switches: ru.ru_nvcsw.max(0) as u64,
            involuntary_switches: ru.ru_nivcsw.max(0) as u64,
        },
    )))
}

/// `pidfd_open(pid)`: a handle on the process that has `pid` now, which keeps naming that
/// process (and no other) even after the pid is recycled.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes two integers and returns a new fd (close-on-exec by default),
    // which we take ownership of on success.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    Errno::result(ret).map(|fd| {
        // SAFETY: on success the kernel installed a new fd that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
    })
}

/// Send a signal through a pidfd: unlike `kill(pid)`, it can never hit a recycled pid.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: Signal) -> Result<(), Errno> {
    // SAFETY: the fd is a live pidfd; a null info pointer asks the kernel to fill in the
    // siginfo as kill(2) would.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// `SO_PEERGROUPS` (asm-generic/socket.h, Linux 4.13): the peer's supplementary groups.
const SO_PEERGROUPS: libc::c_int = 59;
/// `SO_PEERPIDFD` (asm-generic/socket.h, Linux 6.5): a pidfd of the peer process.
const SO_PEERPIDFD: libc::c_int = 77;
/// `NGROUPS_MAX` (linux/limits.h): the most supplementary groups a process can have.
const NGROUPS_MAX: usize = 65_536;

/// `getsockopt(SO_PEERGROUPS)`: the supplementary groups the kernel recorded for the peer of a
/// Unix socket when it connected (or made the pair), as gids of our user namespace.
/// `ENOPROTOOPT` on a kernel without it.
pub fn peer_groups(sock: BorrowedFd<'_>) -> Result<Vec<u32>, Errno> {
    let size = std::mem::size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * size) as libc::socklen_t;
        // SAFETY: the buffer is `len` writable bytes of gid_t, and `len` is a live local the
        // kernel writes the needed or used size into.
        let ret = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / size;
        match Errno::result(ret) {
            Ok(_) => {
                groups.truncate(needed.min(groups.len()));
                return Ok(groups);
            }
            // Too small: the kernel said how much it needs.
            Err(Errno::ERANGE) if needed > groups.len() && needed <= NGROUPS_MAX => {
                groups.resize(needed, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `getsockopt(SO_PEERPIDFD)`: a pidfd of the very process that connected to (or made) the
/// peer end of a Unix socket. `ENOPROTOOPT` on a kernel before 6.5; `EINVAL` or `ESRCH` when
/// that process has exited (on kernels that give no pidfd of an exited process).
pub fn peer_pidfd(sock: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` and `len` are live locals of the size passed; on success the kernel has
    // installed a new fd (close-on-exec) that nothing else owns.
    let ret = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            std::ptr::addr_of_mut!(fd).cast(),
            &mut len,
        )
    };
    Errno::result(ret)?;
    if fd < 0 {
        return Err(Errno::EBADF);
    }
    // SAFETY: as above, the fd is new and ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: give this process a new, empty, anonymous
/// session keyring, owned by its current ids, instead of the one it inherited.
pub fn join_new_session_keyring() -> Result<(), Errno> {
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING takes a name pointer that may be null (an anonymous
    // keyring); no other memory of ours is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING as libc::c_long,
            std::ptr::null::<libc::c_char>(),
        )
    };
    Errno::result(ret).map(drop)
}

// ioctl(2)'s request is a `c_ulong` in glibc and a `c_int` in musl; the numbers fit both.
#[allow(clippy::unnecessary_cast)]
const SIOCGIFFLAGS: libc::Ioctl = libc::SIOCGIFFLAGS as libc::Ioctl;
#[allow(clippy::unnecessary_cast)]
const SIOCSIFFLAGS: libc::Ioctl = libc::SIOCSIFFLAGS as libc::Ioctl;

/// Bring the loopback interface of the current network namespace up.
pub fn loopback_up() -> Result<(), Errno> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: an all-zero ifreq is valid; we fill in the name below.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the ifreq we own, which is the argument the request
    // expects.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the initialised one.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: as above, SIOCSIFFLAGS reads the ifreq we own.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), SIOCSIFFLAGS, &req) }).map(drop)
}

/// `ioctl(fd, TIOCSCTTY, 0)`: make the terminal `fd` the controlling terminal of this session
/// (whose leader we must be), without stealing it from another session.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int by value (0: do not steal); no memory is passed.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

/// `ioctl(master, TIOCSPTLCK, 0)` then `ioctl(master, TIOCGPTPEER)`: unlock a pseudo-terminal
/// master and open its slave through the master itself, never through a path (which, inside a
/// view the caller built, could lead anywhere). Fails with `ENOTTY` when `master` is not one.
pub fn pty_peer(master: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which points at a live local.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags by value and returns a new fd, which we take
    // ownership of on success.
    let fd = Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) })?;
    // SAFETY: on success the kernel installed a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Bytes we sent on the Unix stream socket `fd` that its peer has not read yet (`SIOCOUTQ`,
/// which shares its number with `TIOCOUTQ`).
pub fn unread_by_peer(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int into the local we own.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) })?;
    Ok(n)
}

/// Give the terminal `to` the window size of the terminal `from`.
pub fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: an all-zero winsize is valid; TIOCGWINSZ fills in the one we own.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    Errno::result(unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    // SAFETY: TIOCSWINSZ reads one winsize from the struct we own.
    Errno::result(unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// Take ownership of an fd the kernel has just installed in this process (received with
/// `SCM_RIGHTS`, or named on our command line and checked to be open).
pub fn take_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller guarantees `fd` is open and that nothing else in this process owns it,
    // so exactly one OwnedFd will close it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `_exit(2)`: leave at once, without running exit handlers or flushing anything a parent
/// process buffered before we were forked.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// Whether `fd` is an open descriptor of this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; on a closed fd it fails with EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

// ---------------------------------------------------------------------------------------------
// The new mount API and openat2, which neither std nor nix wrap. Constants from
// linux/mount.h, linux/openat2.h and linux/fcntl.h.

const OPEN_TREE_CLONE: u32 = 1;
const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const FSOPEN_CLOEXEC: u32 = 1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 1;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn fd_result(ret: libc::c_long) -> Result<OwnedFd, Errno> {
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: on success these system calls return a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// `openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: open `path` as if
/// `root` were `/`, so neither `..` nor any symlink (absolute or relative) can leave it, and
/// no `/proc` magic link can be used to jump elsewhere.
pub fn open_in_root(root: BorrowedFd<'_>, path: &CStr, flags: i32) -> Result<OwnedFd, Errno> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `path` is NUL-terminated, `how` is a valid open_how of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    fd_result(ret)
}

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_RECURSIVE | AT_EMPTY_PATH)`: a detached copy of the
/// mount tree at `fd`, ready to be changed and attached elsewhere.
pub fn clone_tree(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | AT_RECURSIVE | libc::AT_EMPTY_PATH as u32;
    // SAFETY: an empty, NUL-terminated path with AT_EMPTY_PATH names `fd` itself.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    fd_result(ret)
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE)`: set `attrs` on the mount at `fd` and
/// every mount below it, in one call (no O(n²) remounting, bubblewrap #754).
pub fn set_mount_attrs(fd: BorrowedFd<'_>, attrs: u64) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH as u32 | AT_RECURSIVE;
    // SAFETY: `attr` is a valid mount_attr of the size passed; the path is empty with
    // AT_EMPTY_PATH.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `move_mount(from, "", to, "")`: attach the detached tree `from` on the file or directory
/// `to` refers to.
pub fn attach(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: both paths are empty, NUL-terminated strings used with the *_EMPTY_PATH flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// `move_mount(from, "", AT_FDCWD, path)`: attach the detached tree `from` at `path`.
pub fn attach_at(from: BorrowedFd<'_>, path: &CStr) -> Result<(), Errno> {
    // SAFETY: both paths are NUL-terminated; the source is empty with F_EMPTY_PATH.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// A new filesystem of type `fstype` configured with `options` (key, value; an empty value sets
/// a flag), returned as a detached mount with `attrs`.
pub fn new_mount(fstype: &CStr, options: &[(&CStr, &CStr)], attrs: u64) -> Result<OwnedFd, Errno> {
    // SAFETY: `fstype` is NUL-terminated.
    let fs =
        fd_result(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    for (key, value) in options {
        let (cmd, val) = if value.is_empty() {
            (FSCONFIG_SET_FLAG, std::ptr::null())
        } else {
            (FSCONFIG_SET_STRING, value.as_ptr())
        };
        // SAFETY: key and value are NUL-terminated (or value is null for a flag).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                key.as_ptr(),
                val,
                0,
            )
        };
        Errno::result(ret)?;
    }
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    Errno::result(ret)?;
    // SAFETY: plain integer arguments.
    fd_result(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
}

/// Install a seccomp filter for this thread (`seccomp(SECCOMP_SET_MODE_FILTER)`). Needs
/// `no_new_privs` (or `CAP_SYS_ADMIN`); the kernel checks the program itself.
pub fn seccomp_install(prog: &[nsjail_core::seccomp::Insn], flags: u32) -> Result<(), Errno> {
    // The request's instruction type is laid out exactly as the kernel's sock_filter.
    const _: () = assert!(
        std::mem::size_of::<nsjail_core::seccomp::Insn>()
            == std::mem::size_of::<libc::sock_filter>()
            && std::mem::align_of::<nsjail_core::seccomp::Insn>()
                == std::mem::align_of::<libc::sock_filter>()
    );
    let len = libc::c_ushort::try_from(prog.len()).map_err(|_| Errno::EINVAL)?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `len` initialised instructions with sock_filter's layout (checked
    // above), alive for the duration of the call; the kernel copies the program and never
    // writes through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            std::ptr::addr_of!(fprog),
        )
    };
    Errno::result(ret).map(drop)
}

/// The running kernel's Landlock ABI version (`landlock_create_ruleset` with
/// `LANDLOCK_CREATE_RULESET_VERSION`); 0 when the kernel has no Landlock or has it disabled.
pub fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with the VERSION flag the kernel reads no attribute (a null pointer and size 0 are
    // what it requires) and only returns a number.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(ret).unwrap_or(0)
}

/// Drop capability `cap` from this thread's bounding set.
pub fn capbset_drop(cap: u8) -> Result<(), Errno> {
    // SAFETY: PR_CAPBSET_DROP takes an integer argument and touches no memory of ours.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// Layout of `struct __user_cap_header_struct` and `__user_cap_data_struct` (version 3).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Set this thread's effective, permitted and inheritable capability sets (64-bit masks).
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and the two data structs have the kernel's layout for version 3 and live
    // across the call; capset reads the data and may write the header's version field, which
    // is ours and writable.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capset,
            std::ptr::addr_of_mut!(header),
            data.as_ptr(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Empty the ambient set, then raise each capability of `caps` in it.
pub fn ambient_set(caps: impl Iterator<Item = u8>) -> Result<(), Errno> {
    // SAFETY: PR_CAP_AMBIENT takes integer arguments and touches no memory of ours.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(ret)?;
    for cap in caps {
        // SAFETY: as above.
        let ret = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        Errno::result(ret)?;
    }
    Ok(())
}
