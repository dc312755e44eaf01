//! `bwrap` as a real client drives it: Flatpak's launch of an app replayed whole (most options
//! through `--args FD`, `--info-fd`, `--sync-fd`, `--block-fd`, a seccomp program compiled the way
//! a client compiles one), through the setuid helper, and checked for what the client checks.
//! Run through Debian's `/usr/bin/bwrap` too where it can start a sandbox for the test user: the
//! app must see the same thing.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nsjail_tests::{Caller, DEBIAN_BWRAP, Output, Running, debian_bwrap_works};

// ---------------------------------------------------------------------------------------------
// A seccomp program as a client compiles it (Flatpak through libseccomp): classic BPF over
// `struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }`.

/// `BPF_LD | BPF_W | BPF_ABS`: load the 32-bit word at offset k of `seccomp_data`.
const LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`: if A == k skip jt instructions, else jf.
const JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGE | BPF_K`: if A >= k skip jt instructions, else jf.
const JGE_K: u16 = 0x35;
/// `BPF_RET | BPF_K`: return k.
const RET_K: u16 = 0x06;

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// `offsetof(struct seccomp_data, nr)` and `arch`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// x32 system calls reach an x86-64 filter under AUDIT_ARCH_X86_64 with this bit set in `nr`.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: Option<u32> = Some(0x4000_0000);
#[cfg(not(target_arch = "x86_64"))]
const X32_SYSCALL_BIT: Option<u32> = None;

/// Calls Flatpak refuses its apps with EPERM: the kernel's log, process accounting, the kernel
/// keyrings, new namespaces and mounts, tracing and perf.
const EPERM_CALLS: &[libc::c_long] = &[
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_add_key,
    libc::SYS_keyctl,
    libc::SYS_request_key,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_ptrace,
    libc::SYS_perf_event_open,
];

/// Calls refused with ENOSYS, as if the kernel did not have them: clone3, whose flags a filter
/// cannot read (they are behind a pointer), so that the C library falls back to clone.
const ENOSYS_CALLS: &[libc::c_long] = &[libc::SYS_clone3];

/// One `struct sock_filter` (code, jt, jf, k), in the machine's byte order.
fn insn(code: u16, jt: u8, jf: u8, k: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..2].copy_from_slice(&code.to_ne_bytes());
    b[2] = jt;
    b[3] = jf;
    b[4..].copy_from_slice(&k.to_ne_bytes());
    b
}

/// The program: the architecture first (a foreign one's numbers mean other calls: the process
/// is killed), then each refused call, then allow.
///
/// ```text
///      ld  [arch]
///      jeq AUDIT_ARCH, +1, +0
///      ret KILL_PROCESS
///      ld  [nr]
///      jge X32_SYSCALL_BIT, kill        (x86-64 only)
///      jeq NR, eperm                    (each of EPERM_CALLS)
///      jeq NR, enosys                   (each of ENOSYS_CALLS)
///      ret ALLOW
/// eperm:  ret ERRNO|EPERM
/// enosys: ret ERRNO|ENOSYS
/// kill:   ret KILL_PROCESS
/// ```
fn client_filter() -> Vec<u8> {
    let n_checks = EPERM_CALLS.len() + ENOSYS_CALLS.len() + usize::from(X32_SYSCALL_BIT.is_some());
    // Indices: 0..=3 the arch check and the load of nr; then the checks; then the returns.
    let first_check = 4;
    let allow = first_check + n_checks;
    let (eperm, enosys, kill) = (allow + 1, allow + 2, allow + 3);
    let to = |from: usize, target: usize| -> u8 {
        u8::try_from(target - from - 1).expect("jump offset fits in a byte")
    };
    let mut prog = vec![
        insn(LD_W_ABS, 0, 0, OFF_ARCH),
        insn(JEQ_K, 1, 0, AUDIT_ARCH),
        insn(RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        insn(LD_W_ABS, 0, 0, OFF_NR),
    ];
    if let Some(bit) = X32_SYSCALL_BIT {
        let at = prog.len();
        prog.push(insn(JGE_K, to(at, kill), 0, bit));
    }
    for (calls, target) in [(EPERM_CALLS, eperm), (ENOSYS_CALLS, enosys)] {
        for nr in calls {
            let at = prog.len();
            prog.push(insn(JEQ_K, to(at, target), 0, *nr as u32));
        }
    }
    assert_eq!(prog.len(), allow);
    prog.push(insn(RET_K, 0, 0, SECCOMP_RET_ALLOW));
    prog.push(insn(RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::EPERM as u32));
    prog.push(insn(RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    prog.push(insn(RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS));
    prog.concat()
}

/// A program that allows everything: the control run, where the same calls must work.
const ALLOW_ALL: [u8; 8] = [0x06, 0, 0, 0, 0, 0, 0xff, 0x7f];

/// What the app tries, from python3 through `syscall(2)`: a call the filter refuses with EPERM
/// (`unshare(0)`, which changes nothing and succeeds where allowed), one refused as not there
/// (`clone3(NULL, 0)`), a keyring lookup (EPERM here, the kernel's own answer where allowed),
/// an allowed call, and starting a process (which works either way: the C library falls back
/// from clone3 to clone). On x86-64 also a child making an x32 call, which the filter's
/// "not this ABI" branch kills with SIGSYS (the helper's own filter, next to a replacing
/// program, kills it too: Debian's bwrap, which has only the client's program, shows that the
/// program's branch does it).
fn probe_script() -> String {
    format!(
        "python3 - <<'EOF'\n\
import ctypes, errno, subprocess, sys\n\
libc = ctypes.CDLL(None, use_errno=True)\n\
def call(name, nr, *args):\n    \
ctypes.set_errno(0)\n    \
r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])\n    \
print(name, 'ok' if r != -1 else errno.errorcode[ctypes.get_errno()])\n\
call('unshare', {unshare}, 0)\n\
call('clone3', {clone3}, 0, 0)\n\
call('keyctl', {keyctl}, 0, -2, 0)\n\
call('getppid', {getppid})\n\
print('spawn', subprocess.run(['true']).returncode)\n\
if {x32}:\n    \
x32 = 'import ctypes; ctypes.CDLL(None).syscall({x32})'\n    \
print('x32', subprocess.run([sys.executable, '-c', x32]).returncode)\n\
EOF\n",
        x32 = X32_SYSCALL_BIT.map_or(0, |bit| bit | libc::SYS_getpid as u32),
        unshare = libc::SYS_unshare,
        clone3 = libc::SYS_clone3,
        keyctl = libc::SYS_keyctl,
        getppid = libc::SYS_getppid,
    )
}

// ---------------------------------------------------------------------------------------------

/// A FIFO at `path`, which the test user may open.
fn fifo(path: &Path, c: &Caller) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::os::unix::fs::chown(path, Some(c.uid), Some(c.gid)).unwrap();
}

/// Whether the FIFO read through `r` (non-blocking) has a writer left: EAGAIN while one holds it
/// open with nothing written, end of file once none does.
fn has_writer(r: &mut std::fs::File) -> bool {
    let mut b = [0u8; 16];
    match r.read(&mut b) {
        Ok(0) => false,
        Ok(n) => panic!("{n} bytes written to the sync fd"),
        Err(e) if e.kind() == ErrorKind::WouldBlock => true,
        Err(e) => panic!("reading the sync fifo: {e}"),
    }
}

/// Open `path` (a FIFO) for writing once a reader has it open; `None` on timeout.
fn open_writer_when_read(path: &Path, timeout: Duration) -> Option<std::fs::File> {
    let deadline = Instant::now() + timeout;
    loop {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => return Some(f),
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return None,
        }
    }
}

/// What one launch gave: the app's output and exit, the info fd's JSON.
struct Launch {
    out: Output,
    info: String,
}

struct Client {
    dir: PathBuf,
    args_file: PathBuf,
    info_file: PathBuf,
    metadata: PathBuf,
    seccomp: PathBuf,
    sync: PathBuf,
    block: PathBuf,
    go: PathBuf,
}

impl Client {
    fn new(dir: &Path, c: &Caller) -> Client {
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        std::os::unix::fs::chown(&data, Some(c.uid), Some(c.gid)).unwrap();
        let k = Client {
            dir: data.clone(),
            args_file: dir.join("args"),
            info_file: dir.join("info"),
            metadata: dir.join("metadata"),
            seccomp: dir.join("seccomp"),
            sync: dir.join("sync"),
            block: dir.join("block"),
            go: data.join("go"),
        };
        std::fs::write(&k.metadata, "[Application]\nname=org.example.App\n").unwrap();
        for f in [&k.sync, &k.block, &k.go] {
            fifo(f, c);
        }
        k
    }

    /// The words of `--args`, NUL after each, as Flatpak writes them.
    fn write_args(&self, words: &[String]) {
        let mut bytes = Vec::new();
        for w in words {
            bytes.extend(w.as_bytes());
            bytes.push(0);
        }
        std::fs::write(&self.args_file, bytes).unwrap();
    }

    /// Start `program --args 3 sh -c script` as Flatpak does and go through what Flatpak waits
    /// for: the sandbox does not start before a byte on the block fd; the sync fd is held open
    /// while the app runs and closed once it has ended.
    fn launch(&self, c: &Caller, program: &[&str], seccomp: &[u8], script: &str) -> Launch {
        std::fs::write(&self.seccomp, seccomp).unwrap();
        let _ = std::fs::remove_file(&self.info_file);
        // The reader of the sync fifo first, so the launcher's open for writing does not block.
        let mut sync = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.sync)
            .unwrap();
        // Opened read-write by the test: the launcher's open for reading then returns at once,
        // and reads block until the test writes.
        let mut block = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.block)
            .unwrap();
        let mut cmd = c.command_for("/bin/sh");
        cmd.arg("-c")
            .arg("exec \"$@\" 3<\"$A\" 4>\"$I\" 5<\"$F\" 6<\"$S\" 7>\"$Y\" 8<\"$B\"")
            .arg("sh")
            .args(program)
            .args(["--args", "3", "sh", "-c", script])
            .env("A", &self.args_file)
            .env("I", &self.info_file)
            .env("F", &self.metadata)
            .env("S", &self.seccomp)
            .env("Y", &self.sync)
            .env("B", &self.block);
        let ours = program[0] != DEBIAN_BWRAP;
        let mut run = Running::spawn(&mut cmd, None, &format!("flatpak-like {program:?}"));
        if ours {
            run = run.expect_way_in(c.way_in());
        }
        // --block-fd: nothing runs until the client writes.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            run.wait_timeout(Duration::ZERO),
            None,
            "{program:?} ended while blocked"
        );
        assert_eq!(
            run.stdout.text(),
            "",
            "{program:?}: the app ran before the block fd was written"
        );
        // Ours starts nothing before the byte; bubblewrap has cloned (and may have said so on
        // the info fd) and waits inside.
        if ours {
            assert_eq!(
                std::fs::read_to_string(&self.info_file).unwrap_or_default(),
                "",
                "ours reported a child before the block fd was written"
            );
        }
        block.write_all(b"x").unwrap();
        // The app runs: it says so, then waits for the test to let it end.
        run.wait_stdout("held\n");
        assert!(
            has_writer(&mut sync),
            "{program:?}: the sync fd is closed while the app still runs"
        );
        let mut go = open_writer_when_read(&self.go, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{program:?}: the app never opened its go fifo"));
        go.write_all(b"go\n").unwrap();
        drop(go);
        let out = run.wait();
        // Ours holds the only copy in the `bwrap` process, so it is closed once that has
        // ended. bubblewrap's init inside the sandbox has one too and ends just after the
        // `bwrap` process: the client waits for the close.
        let grace = if ours {
            Duration::ZERO
        } else {
            Duration::from_secs(10)
        };
        assert!(
            nsjail_tests::poll_until(grace, || !has_writer(&mut sync)),
            "{program:?}: the sync fd is still held {grace:?} after the app ended\n{}",
            out.describe()
        );
        let info = std::fs::read_to_string(&self.info_file).unwrap_or_default();
        Launch { out, info }
    }
}

/// How Flatpak starts an app: most options through `--args FD` (about a hundred words), the info
/// fd, the sync fd, the block fd, a seccomp program it compiled, a lock on the runtime, then the
/// command. Through the setuid helper, and through the daemon.
#[test]
fn a_flatpak_like_launch_through_args_info_sync_and_seccomp() {
    if !nsjail_tests::require_root("bwrap flatpak launch") {
        return;
    }
    let c = Caller::setuid_user();
    let scratch = c.scratch();
    let client = Client::new(scratch.path(), &c);
    let uid = c.uid.to_string();
    let run_user = format!("/run/user/{uid}");
    let data = client.dir.to_string_lossy().into_owned();
    let mut words: Vec<String> = [
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "app-host",
        "--ro-bind",
        "/usr",
        "/usr",
        "--lock-file",
        "/etc/passwd",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/sbin",
        "/sbin",
        "--ro-bind",
        "/etc/passwd",
        "/etc/passwd",
        "--ro-bind",
        "/etc/group",
        "/etc/group",
        "--dir",
        "/app",
        "--dir",
        "/var",
        "--dir",
        "/var/tmp",
        "--bind",
        &data,
        "/var/data",
        "--tmpfs",
        "/tmp",
        "--dir",
        "/run",
        "--dir",
        &run_user,
        "--perms",
        "0700",
        "--dir",
        "/run/secret",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--dir",
        "/home",
        "--tmpfs",
        "/home/app",
        "--ro-bind-data",
        "5",
        "/.flatpak-info",
        "--symlink",
        "../../.flatpak-info",
        "/run/user/info-link",
        "--chdir",
        "/home/app",
        "--clearenv",
        "--setenv",
        "PATH",
        "/app/bin:/usr/bin",
        "--setenv",
        "HOME",
        "/home/app",
        "--setenv",
        "XDG_RUNTIME_DIR",
        &run_user,
        "--setenv",
        "FLATPAK_ID",
        "org.example.App",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--unsetenv",
        "LANG",
        "--exec-label",
        "unconfined_u:unconfined_r:unconfined_t:s0",
        "--seccomp",
        "6",
        "--info-fd",
        "4",
        "--sync-fd",
        "7",
        "--block-fd",
        "8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    words.push("--die-with-parent".into());
    assert!(words.len() >= 60, "{} words", words.len());
    client.write_args(&words);
    let script = format!(
        "id -u; hostname; pwd; env | sort; cat /.flatpak-info; \
         cat /run/user/info-link | head -1; stat -c '%a %n' /run/secret; \
         grep '^Seccomp:' /proc/self/status; echo $$; ls /; {}\
         echo held; read x </var/data/go",
        probe_script()
    );
    let nsjail = c.nsjail.to_string_lossy().into_owned();
    let filter = client_filter();
    assert_eq!(filter.len() % 8, 0);

    let Launch { out: o, info } = client.launch(&c, &[&nsjail, "bwrap"], &filter, &script);
    o.expect_success();
    let lines = o.lines();
    assert_eq!(lines[0], uid, "{}", o.describe());
    assert_eq!(lines[1], "app-host", "{}", o.describe());
    assert_eq!(lines[2], "/home/app", "{}", o.describe());
    for want in [
        "FLATPAK_ID=org.example.App\n",
        "name=org.example.App\n",
        "700 /run/secret\n",
        "Seccomp:\t2\n",
        // The filter's refusals, each with the errno it chose; the rest works.
        "unshare EPERM\n",
        "clone3 ENOSYS\n",
        "keyctl EPERM\n",
        "getppid ok\n",
        "spawn 0\n",
    ] {
        assert!(o.stdout.contains(want), "{want:?}\n{}", o.describe());
    }
    if X32_SYSCALL_BIT.is_some() {
        let sigsys = format!("x32 -{}\n", libc::SIGSYS);
        assert!(o.stdout.contains(&sigsys), "{}", o.describe());
    }
    assert!(!o.stdout.contains("LANG="), "{}", o.describe());
    // What Flatpak reads from the info fd: the pid of the sandbox's first process, on the host.
    let info: serde_json::Value = serde_json::from_str(&info).expect("info JSON");
    assert!(info["child-pid"].as_i64().is_some_and(|p| p > 1), "{info}");

    // Through the daemon: the app sees the same.
    let d = Caller::daemon_user();
    assert_eq!((d.uid, d.gid), (c.uid, c.gid));
    let via_daemon = d.nsjail.to_string_lossy().into_owned();
    let Launch {
        out: od,
        info: dinfo,
    } = client.launch(&d, &[&via_daemon, "bwrap"], &filter, &script);
    assert_eq!(
        o.stdout,
        od.stdout,
        "setuid:\n{}\ndaemon:\n{}",
        o.describe(),
        od.describe()
    );
    assert_eq!(od.code(), Some(0), "{}", od.describe());
    let dinfo: serde_json::Value = serde_json::from_str(&dinfo).expect("info JSON (daemon)");
    assert!(
        dinfo["child-pid"].as_i64().is_some_and(|p| p > 1),
        "{dinfo}"
    );

    // The control: the same launch under a program that allows everything, where the same
    // calls get the kernel's own answers. (clone3 stays ENOSYS and the x32 call is still
    // killed: a program that replaces the default filter gets the helper's denial of nested
    // user namespaces next to it, which cannot read clone3's flags either and admits one ABI.)
    let Launch { out: open, .. } = client.launch(&c, &[&nsjail, "bwrap"], &ALLOW_ALL, &script);
    open.expect_success();
    for want in ["unshare ok\n", "getppid ok\n", "spawn 0\n"] {
        assert!(open.stdout.contains(want), "{want:?}\n{}", open.describe());
    }
    assert!(
        !open.stdout.contains("keyctl EPERM\n"),
        "{}",
        open.describe()
    );

    let debian = debian_bwrap_works(&c);
    // CI's host has Debian's bwrap and unprivileged user namespaces: there the comparison must
    // run. The guest turns them off, and ours runs alone.
    if nsjail_tests::in_ci() && nsjail_tests::system_install().is_none() {
        assert!(
            debian,
            "Debian's {DEBIAN_BWRAP} cannot start a sandbox on CI's host"
        );
    }
    if debian {
        // Debian's bwrap without SELinux refuses --exec-label; the rest is the same.
        let filtered: Vec<String> = words
            .iter()
            .enumerate()
            .filter(|(i, w)| *w != "--exec-label" && !(*i > 0 && words[i - 1] == "--exec-label"))
            .map(|(_, w)| w.clone())
            .collect();
        client.write_args(&filtered);
        let Launch {
            out: d,
            info: dinfo,
        } = client.launch(&c, &[DEBIAN_BWRAP], &filter, &script);
        assert_eq!(
            o.stdout,
            d.stdout,
            "ours:\n{}\nDebian's:\n{}",
            o.describe(),
            d.describe()
        );
        assert_eq!(o.code(), d.code());
        let dinfo: serde_json::Value = serde_json::from_str(&dinfo).expect("Debian's info");
        assert!(dinfo["child-pid"].as_i64().is_some(), "{dinfo}");
    } else {
        eprintln!("Debian's bwrap cannot start a sandbox here: ours alone");
    }
}
