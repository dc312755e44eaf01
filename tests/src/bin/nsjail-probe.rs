//! `nsjail-probe CHECK [ARG]`: tries one thing a sandboxed program must not be able to do (or a
//! control that it may), and prints one line `CHECK: ok` or `CHECK: <ERRNO NAME>`. A seccomp
//! kill ends it with SIGSYS instead. The end-to-end tests run it inside sandboxes.
//!
//! Each call is made with arguments the kernel itself would answer with something other than
//! EPERM (success, EINVAL, EFAULT…), so that a test can tell the filter's refusal from the
//! kernel's.

use std::ffi::CString;

fn errno_name(e: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(e))
}

fn report(check: &str, ret: i64) {
    if ret < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        println!("{check}: {}", errno_name(e));
    } else {
        println!("{check}: ok");
    }
}

/// `syscall(2)` with up to six arguments.
fn sys(nr: libc::c_long, a: [u64; 6]) -> i64 {
    // SAFETY: each check passes arguments that are valid for its system call (null pointers
    // where the kernel only reads and fails with EFAULT, or pointers to live locals).
    unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

/// getpid through the i386 ABI (`int 0x80`, eax = 20).
fn int80_getpid() -> i64 {
    let ret: i64;
    // SAFETY: int 0x80 with eax=20 is the i386 getpid, which takes no arguments and touches no
    // memory; it clobbers nothing but eax (and r8-r11 are preserved by the kernel's compat entry).
    unsafe {
        std::arch::asm!("int 0x80", inlateout("rax") 20i64 => ret, options(nostack));
    }
    ret
}

/// A child that exits at once (for clone-style checks): reap it.
fn reap_if_parent(ret: i64) {
    if ret == 0 {
        // SAFETY: the child exits without touching the parent's state.
        unsafe { libc::_exit(0) };
    }
    if ret > 0 {
        // SAFETY: waiting for our own child with a null status pointer.
        unsafe { libc::waitpid(ret as i32, std::ptr::null_mut(), libc::__WALL) };
    }
}

fn tiocsti(check: &str, fd: i32, high: bool) {
    let c: u8 = b'#';
    let req = libc::TIOCSTI | if high { 1u64 << 32 } else { 0 };
    let ret = sys(
        libc::SYS_ioctl,
        [fd as u64, req, &c as *const u8 as u64, 0, 0, 0],
    );
    report(check, ret);
}

/// Open a new pty, make it our controlling terminal and push a character into its input with
/// TIOCSTI: the kernel allows that on one's own terminal, so only the filter can refuse it.
fn tiocsti_own_pty(high: bool) {
    let check = if high {
        "tiocsti-own-pty-high"
    } else {
        "tiocsti-own-pty"
    };
    // SAFETY: plain libc calls on descriptors we open here; ptsname_r writes into our buffer.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        if master < 0 || libc::grantpt(master) != 0 || libc::unlockpt(master) != 0 {
            println!("{check}: setup-failed openpt");
            return;
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(master, name.as_mut_ptr(), name.len()) != 0 {
            println!("{check}: setup-failed ptsname");
            return;
        }
        libc::setsid();
        let slave = libc::open(name.as_ptr(), libc::O_RDWR);
        if slave < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
            println!("{check}: setup-failed ctty");
            return;
        }
        tiocsti(check, slave, high);
    }
}

/// Queue SIGRTMIN to ourselves with it blocked, so it stays pending.
fn sigqueue_self() -> i64 {
    // SAFETY: a zeroed sigset, filled by the libc calls; a sigval by value.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGRTMIN());
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let value = libc::sigval {
            sival_ptr: std::ptr::null_mut(),
        };
        libc::sigqueue(libc::getpid(), libc::SIGRTMIN(), value) as i64
    }
}

/// A new POSIX message queue of 10 messages of 8 KiB; its descriptor is kept open.
fn mq_create(name: &str) -> i64 {
    let c = CString::new(name).unwrap_or_default();
    // SAFETY: a NUL-terminated name and an attribute struct that lives across the call.
    unsafe {
        let mut attr: libc::mq_attr = std::mem::zeroed();
        attr.mq_maxmsg = 10;
        attr.mq_msgsize = 8192;
        libc::mq_open(
            c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
            0o600 as libc::mode_t,
            &attr as *const libc::mq_attr,
        ) as i64
    }
}

/// How many times `take` succeeded before it failed (at most a million).
fn fill(mut take: impl FnMut() -> bool) -> u64 {
    let mut n = 0;
    while n < 1_000_000 && take() {
        n += 1;
    }
    n
}

fn last_errno() -> String {
    errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// Wait until `path` exists, at most a minute.
fn hold(path: &str) {
    for _ in 0..6000 {
        if std::path::Path::new(path).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.first().map(String::as_str).unwrap_or("");
    let arg = args.get(1).cloned().unwrap_or_default();
    let null = 0u64;
    match check {
        "keyctl" => {
            // KEYCTL_GET_KEYRING_ID of the session keyring, creating it.
            report(
                check,
                sys(libc::SYS_keyctl, [0, (-3i64) as u64, 1, 0, 0, 0]),
            );
        }
        "add_key" => {
            let t = CString::new("user").unwrap();
            let d = CString::new("nsjail-probe").unwrap();
            let ret = sys(
                libc::SYS_add_key,
                [
                    t.as_ptr() as u64,
                    d.as_ptr() as u64,
                    d.as_ptr() as u64,
                    4,
                    (-2i64) as u64, // KEY_SPEC_PROCESS_KEYRING
                    0,
                ],
            );
            report(check, ret);
        }
        // An unknown command: EINVAL from the kernel.
        "bpf" => report(check, sys(libc::SYS_bpf, [9999, null, 0, 0, 0, 0])),
        // UFFD_USER_MODE_ONLY is allowed to everyone.
        "userfaultfd" => report(check, sys(libc::SYS_userfaultfd, [1, 0, 0, 0, 0, 0])),
        // A null attr: EFAULT from the kernel.
        "perf_event_open" => report(
            check,
            sys(
                libc::SYS_perf_event_open,
                [null, 0, (-1i64) as u64, (-1i64) as u64, 0, 0],
            ),
        ),
        "io_uring_setup" => report(check, sys(libc::SYS_io_uring_setup, [0, null, 0, 0, 0, 0])),
        "unshare-user" => report(
            check,
            sys(
                libc::SYS_unshare,
                [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
            ),
        ),
        "clone-user" => {
            let ret = sys(
                libc::SYS_clone,
                [(libc::CLONE_NEWUSER | libc::SIGCHLD) as u64, 0, 0, 0, 0, 0],
            );
            reap_if_parent(ret);
            report(check, ret);
        }
        "clone3-user" => {
            let mut a = [0u64; 11];
            a[0] = libc::CLONE_NEWUSER as u64;
            a[4] = libc::SIGCHLD as u64;
            let ret = sys(libc::SYS_clone3, [a.as_mut_ptr() as u64, 88, 0, 0, 0, 0]);
            reap_if_parent(ret);
            report(check, ret);
        }
        // ADDR_NO_RANDOMIZE: switches off ASLR.
        "personality-norandom" => report(
            check,
            sys(libc::SYS_personality, [0x0040000, 0, 0, 0, 0, 0]),
        ),
        "personality-query" => report(
            check,
            sys(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]),
        ),
        "i386-getpid" => {
            let r = int80_getpid();
            if r < 0 {
                println!("{check}: {}", errno_name(-r as i32));
            } else {
                println!("{check}: ok");
            }
        }
        "x32-getpid" => report(check, sys(libc::SYS_getpid | 0x4000_0000, [0; 6])),
        "ptrace-child" => {
            // SAFETY: fork in a single-threaded program; the child only sleeps.
            let child = unsafe { libc::fork() };
            if child == 0 {
                // SAFETY: the child sleeps until killed.
                unsafe {
                    libc::pause();
                    libc::_exit(0)
                };
            }
            let ret = sys(
                libc::SYS_ptrace,
                [libc::PTRACE_ATTACH as u64, child as u64, 0, 0, 0, 0],
            );
            report(check, ret);
            // SAFETY: our own child.
            unsafe {
                libc::kill(child, libc::SIGKILL);
                libc::waitpid(child, std::ptr::null_mut(), 0);
            }
        }
        "ptrace" => {
            // PTRACE_SEIZE: attaches without stopping the target; our exit detaches again.
            let pid: i32 = arg.parse().unwrap_or(-1);
            let ret = sys(
                libc::SYS_ptrace,
                [libc::PTRACE_SEIZE as u64, pid as u64, 0, 0, 0, 0],
            );
            report(check, ret);
        }
        "process_vm_readv" => {
            let pid: i32 = arg.parse().unwrap_or(-1);
            let mut buf = [0u8; 8];
            let local = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: 8,
            };
            // Read our own stack address in the target: any address will do for the check.
            let remote = libc::iovec {
                iov_base: 0x1000 as *mut libc::c_void,
                iov_len: 8,
            };
            let ret = sys(
                libc::SYS_process_vm_readv,
                [
                    pid as u64,
                    &local as *const _ as u64,
                    1,
                    &remote as *const _ as u64,
                    1,
                    0,
                ],
            );
            report(check, ret);
        }
        "pidfd_getfd" => {
            // A pidfd of our own process and its fd 0: the kernel allows it (we may ptrace
            // ourselves), so only a filter refuses.
            let pidfd = sys(
                libc::SYS_pidfd_open,
                [std::process::id() as u64, 0, 0, 0, 0, 0],
            );
            if pidfd < 0 {
                report("pidfd_getfd (pidfd_open)", pidfd);
                return;
            }
            report(
                check,
                sys(libc::SYS_pidfd_getfd, [pidfd as u64, 0, 0, 0, 0, 0]),
            );
        }
        "process_madvise" => {
            // Flags other than 0 are EINVAL before anything else is looked at.
            report(
                check,
                sys(libc::SYS_process_madvise, [u64::MAX, null, 0, 0, 1, 0]),
            );
        }
        "kcmp" => {
            // Are our fds 0 and 0 the same file? Yes (0): only a filter refuses.
            let me = std::process::id() as u64;
            report(
                check,
                sys(libc::SYS_kcmp, [me, me, 0 /* KCMP_FILE */, 0, 0, 0]),
            );
        }
        "tiocsti" => tiocsti(check, arg.parse().unwrap_or(0), false),
        "tiocsti-high" => tiocsti(check, arg.parse().unwrap_or(0), true),
        "tiocsti-own-pty" => tiocsti_own_pty(false),
        "tiocsti-own-pty-high" => tiocsti_own_pty(true),
        "mount-tmpfs" => {
            let src = CString::new("none").unwrap();
            let dir = CString::new(arg).unwrap();
            let fs = CString::new("tmpfs").unwrap();
            // SAFETY: valid C strings; null data.
            let ret = unsafe {
                libc::mount(src.as_ptr(), dir.as_ptr(), fs.as_ptr(), 0, std::ptr::null())
            };
            report(check, ret as i64);
        }
        "capset-all" => {
            // Try to raise every capability in the permitted and effective sets.
            let mut header = [0x2008_0522u32, 0];
            let data = [u32::MAX; 6];
            let ret = sys(
                libc::SYS_capset,
                [header.as_mut_ptr() as u64, data.as_ptr() as u64, 0, 0, 0, 0],
            );
            report(check, ret);
        }
        "ambient-raise" => {
            // CAP_SYS_ADMIN into the ambient set.
            let ret = sys(
                libc::SYS_prctl,
                [
                    libc::PR_CAP_AMBIENT as u64,
                    libc::PR_CAP_AMBIENT_RAISE as u64,
                    21,
                    0,
                    0,
                    0,
                ],
            );
            report(check, ret);
        }
        "open-read" => match std::fs::read(&arg) {
            Ok(_) => println!("{check}: ok"),
            Err(e) => println!("{check}: {}", errno_name(e.raw_os_error().unwrap_or(0))),
        },
        "open-write" => match std::fs::OpenOptions::new().write(true).open(&arg) {
            Ok(_) => println!("{check}: ok"),
            Err(e) => println!("{check}: {}", errno_name(e.raw_os_error().unwrap_or(0))),
        },
        // Per-user kernel resources counted under rlimits, taken until the kernel says no:
        // `CHECK: N ERRNO`, then held until the file `arg` exists (at most a minute).
        "sigqueue-fill" => {
            let n = fill(|| sigqueue_self() == 0);
            println!("{check}: {n} {}", last_errno());
            hold(&arg);
        }
        "mq-fill" => {
            let mut i = 0u32;
            let n = fill(|| {
                i += 1;
                mq_create(&format!("/probe-{}-{i}", std::process::id())) >= 0
            });
            println!("{check}: {n} {}", last_errno());
            hold(&arg);
        }
        // One of each, as anyone else on the host would take it.
        "sigqueue-one" => report(check, sigqueue_self()),
        "mq-one" => {
            let name = format!("/probe-one-{}", std::process::id());
            let ret = mq_create(&name);
            report(check, ret);
            if ret >= 0 {
                let c = CString::new(name).unwrap_or_default();
                // SAFETY: a NUL-terminated name.
                unsafe { libc::mq_unlink(c.as_ptr()) };
            }
        }
        _ => {
            eprintln!("nsjail-probe: unknown check {check:?}");
            std::process::exit(2);
        }
    }
}
