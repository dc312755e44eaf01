//! Every `unsafe` block of nsjail lives here. Each wraps one system call that neither std nor nix
//! offers safely, and says in its `// SAFETY:` comment why the call cannot break Rust's rules.
//! Everything outside this module is safe code.

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

/// Field layout of `struct clone_args` (linux/sched.h), version 0 (64 bytes).
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
}

/// `clone3` with fork semantics (no shared memory, child continues on a copy of our stack),
/// new namespaces from `flags`, `SIGCHLD` on exit, and a pidfd for the parent.
///
/// The helper is single-threaded, so the child's copy of the address space holds no lock that
/// another thread owned: it may allocate and use the rest of the program, as after `fork`.
pub fn clone_fork(flags: u64) -> Result<Cloned, Errno> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
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

/// Plain `fork(2)`, used by the sandbox's init to start the payload.
pub fn fork() -> Result<Option<Pid>, Errno> {
    // SAFETY: the calling process (the sandbox's first process) is single-threaded, so the
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

/// Resource usage of a reaped child and its reaped descendants.
pub struct Usage {
    pub user_us: u64,
    pub system_us: u64,
    pub max_rss_kib: u64,
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
        },
    )))
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
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the initialised one.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: as above, SIOCSIFFLAGS reads the ifreq we own.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(drop)
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

/// Install a seccomp filter for this thread (`seccomp(SECCOMP_SET_MODE_FILTER)`). Needs
/// `no_new_privs` (or `CAP_SYS_ADMIN`); the kernel checks the program itself.
pub fn seccomp_install(prog: &[crate::seccomp::bpf::Insn], flags: u32) -> Result<(), Errno> {
    // The compiler's instruction type is laid out exactly as the kernel's sock_filter.
    const _: () = assert!(
        std::mem::size_of::<crate::seccomp::bpf::Insn>()
            == std::mem::size_of::<libc::sock_filter>()
            && std::mem::align_of::<crate::seccomp::bpf::Insn>()
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

/// Drop capability `cap` from this thread's bounding set.
pub fn capbset_drop(cap: u8) -> Result<(), Errno> {
    // SAFETY: PR_CAPBSET_DROP takes an integer argument and touches no memory of ours.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// Whether `cap` is in this thread's bounding set (`EINVAL` beyond the kernel's last capability).
pub fn capbset_read(cap: u8) -> Result<bool, Errno> {
    // SAFETY: as above; PR_CAPBSET_READ only returns a value.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
    Errno::result(ret).map(|r| r == 1)
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
