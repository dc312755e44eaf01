//! `--net none | host | pasta` and `--forward-port`, in a network namespace made by the test:
//! a veth pair with documentation addresses (192.0.2.0/24, TEST-NET-1) and a default route
//! stands for the host's network, so nothing leaves the machine. Servers listen there on the
//! loopback address and on the "host's" second address; each mode reaches only what it may.

use std::process::Command;
use std::time::Duration;

use nix::unistd::Pid;

use nsjail_tests::{
    Caller, Daemon, Output, Running, TIMEOUT, as_caller_words, for_each_caller, root_or_skip,
    shell_words, tool, unique,
};

const PORT: u16 = 8081;
/// The host's own address in the test namespace (pasta copies it into the sandbox).
const HOST_ADDR: &str = "192.0.2.2";
/// A second address of the host, reached from the sandbox only through pasta.
const OTHER_ADDR: &str = "192.0.2.3";
/// The default gateway (nobody is there; pasta must not map it to the host's loopback).
const GATEWAY: &str = "192.0.2.1";

/// A network namespace for one test, removed when dropped.
struct TestNet {
    name: String,
    servers: Vec<Running>,
    /// The daemon callers' helper daemon, started in this namespace (a daemon serves sandboxes
    /// from its own network namespace, as the system's does for callers on the host's).
    daemon: std::sync::OnceLock<Daemon>,
}

fn ip(args: &[&str]) {
    let out = Command::new(tool("ip"))
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestNet {
    fn new() -> TestNet {
        // pasta runs as the caller and opens /dev/net/tun; Debian makes it 0666, some container
        // images 0600 (.ci/run restores 0666 there).
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata("/dev/net/tun").map(|m| m.permissions().mode() & 0o777);
        assert_eq!(
            mode.ok(),
            Some(0o666),
            "/dev/net/tun must be mode 0666 as on a standard system (see .ci/run)"
        );
        let name = format!("nsjail-e2e-{}", unique());
        ip(&["netns", "add", &name]);
        let net = TestNet {
            name,
            servers: Vec::new(),
            daemon: std::sync::OnceLock::new(),
        };
        let n = net.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&[
            "-n", n, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{HOST_ADDR}/24"),
            "dev",
            "eth0",
        ]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{OTHER_ADDR}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", n, "link", "set", "eth0", "up"]);
        ip(&["-n", n, "link", "set", "eth0p", "up"]);
        ip(&["-n", n, "route", "add", "default", "via", GATEWAY]);
        net
    }

    /// `ip netns exec NAME WORDS...`
    fn command(&self, words: &[String]) -> Command {
        let mut c = Command::new(tool("ip"));
        c.args(["netns", "exec", &self.name]).args(words);
        c.current_dir("/");
        c
    }

    /// A TCP server in the test namespace answering `hello ADDR` on each address.
    fn serve(&mut self, addrs: &[&str]) {
        let code = format!(
            r#"
import socket, threading, sys, time
def serve(s, addr):
    while True:
        c, _ = s.accept()
        c.sendall(("hello " + addr + "\n").encode())
        c.close()
for addr in {addrs:?}:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, {PORT}))
    s.listen()
    threading.Thread(target=serve, args=(s, addr), daemon=True).start()
print("listening", flush=True)
time.sleep(600)
"#
        );
        let mut cmd = self.command(&["/usr/bin/python3".into(), "-c".into(), code]);
        let mut r =
            Running::spawn_with_timeout(&mut cmd, None, "test server", Duration::from_secs(600));
        r.wait_stdout("listening");
        self.servers.push(r);
    }

    /// A TCP client in the test namespace (outside any sandbox).
    fn connect(&self, addr: &str, port: u16) -> Output {
        let mut cmd = self.command(&[
            "/usr/bin/python3".into(),
            "-c".into(),
            CLIENT.into(),
            addr.into(),
            port.to_string(),
        ]);
        Running::spawn(&mut cmd, None, &format!("client {addr}:{port}")).wait()
    }

    /// `nsjail run ARGS` as `c`, started inside the test namespace.
    fn nsjail(&self, c: &Caller, args: &[&str]) -> Running {
        let socket;
        let mut env = Vec::new();
        if c.via_daemon() {
            let d = self.daemon.get_or_init(|| {
                let wrapper = [tool("ip"), "netns".into(), "exec".into(), self.name.clone()];
                Daemon::start_wrapped(&wrapper, &[])
            });
            socket = d.socket.display().to_string();
            env.push(("NSJAIL_SOCKET", socket.as_str()));
        }
        let mut words = as_caller_words(c, &env);
        words.push(c.nsjail.to_string_lossy().into_owned());
        words.push("run".into());
        words.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = self.command(&words);
        Running::spawn(
            &mut cmd,
            None,
            &format!(
                "[{}] (test netns) nsjail run {}",
                c.name(),
                shell_words(args)
            ),
        )
        .expect_way_in(c.way_in())
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        drop(self.daemon.take());
        for s in self.servers.drain(..) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(s.pid()),
                nix::sys::signal::Signal::SIGKILL,
            );
            drop(s);
        }
        let _ = Command::new(tool("ip"))
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Connect to ADDR PORT, print the first line or why not; bounded by a 5 s timeout.
const CLIENT: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    print(s.makefile().readline().strip())
except Exception as e:
    print("failed:", type(e).__name__)
"#;

/// In the sandbox: try each target in turn, one line per target.
fn probe_args(targets: &[&str]) -> Vec<String> {
    let mut v = vec!["--".into(), "/usr/bin/python3".into(), "-c".into()];
    v.push(format!(
        "import socket\nfor t in {targets:?}:\n    try:\n        s = socket.create_connection((t, {PORT}), timeout=3)\n        print(t, s.makefile().readline().strip())\n    except Exception as e:\n        print(t, 'failed:', type(e).__name__)\n"
    ));
    v
}

fn probe(net: &TestNet, c: &Caller, opts: &[&str], targets: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
    args.extend(probe_args(targets));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = net.nsjail(c, &args).wait();
    out.expect_success();
    let lines = out.lines();
    assert_eq!(lines.len(), targets.len(), "{}", out.describe());
    lines
}

#[test]
fn each_network_mode_reaches_only_what_it_may() {
    root_or_skip!();
    let mut net = TestNet::new();
    net.serve(&["127.0.0.1", OTHER_ADDR]);
    let targets = ["127.0.0.1", OTHER_ADDR, GATEWAY];
    let ok = |t: &str| format!("{t} hello {t}");
    for_each_caller(|c| {
        // none: nothing but its own loopback.
        let lines = probe(&net, c, &[], &targets);
        assert!(
            lines.iter().all(|l| l.contains("failed")),
            "--net none reached out: {lines:?}"
        );
        let lines = probe(&net, c, &["--net", "none"], &targets);
        assert!(
            lines.iter().all(|l| l.contains("failed")),
            "--net none reached out: {lines:?}"
        );
        // host: the host's own loopback directly.
        for opts in [&["--net", "host"][..], &["--share-net"][..]] {
            let lines = probe(&net, c, opts, &targets[..2]);
            assert_eq!(lines, [ok("127.0.0.1"), ok(OTHER_ADDR)], "{opts:?}");
        }
        // pasta: out to the host's other address; not the host's loopback, neither directly
        // (127.0.0.1 is the sandbox's own) nor through the gateway address.
        let lines = probe(&net, c, &["--net", "pasta"], &targets);
        assert_eq!(lines[1], ok(OTHER_ADDR), "--net pasta: {lines:?}");
        assert!(
            lines[0].contains("failed"),
            "--net pasta reached the host's loopback: {lines:?}"
        );
        assert!(
            lines[2].contains("failed"),
            "--net pasta reached the gateway: {lines:?}"
        );
    });
}

#[test]
fn a_port_is_forwarded_into_the_sandbox_only_when_asked() {
    root_or_skip!();
    let net = TestNet::new();
    let server = format!(
        "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', {PORT}))\ns.listen()\nprint('listening', flush=True)\nc, _ = s.accept()\nc.sendall(b'hello from the sandbox\\n')\nc.close()\n"
    );
    for_each_caller(|c| {
        for forward in [false, true] {
            let mut args = vec!["--net", "pasta"];
            let spec = format!("{PORT}");
            if forward {
                args.extend(["--forward-port", &spec]);
            }
            args.extend(["--", "/usr/bin/python3", "-c", &server]);
            let mut sandbox = net.nsjail(c, &args);
            sandbox.wait_stdout("listening");
            let reply = net.connect("127.0.0.1", PORT);
            if forward {
                assert_eq!(
                    reply.out(),
                    "hello from the sandbox",
                    "{}",
                    reply.describe()
                );
                sandbox.wait().expect_success();
            } else {
                assert!(
                    reply.out().starts_with("failed"),
                    "forwarded without --forward-port: {}",
                    reply.describe()
                );
                sandbox.signal(nix::sys::signal::Signal::SIGTERM);
                let out = sandbox.wait();
                assert_eq!(out.code(), Some(143), "{}", out.describe());
            }
        }
        // Refused combinations, in one line.
        for bad in [
            &["--forward-port", "80", "--", "true"][..],
            &["--net", "host", "--forward-port", "80", "--", "true"][..],
            &["--share-net", "--net", "pasta", "--", "true"][..],
            &["--net", "pasta", "--uid", "1000", "--", "true"][..],
        ] {
            c.run(bad).expect_code(125).expect_one_error_line("nsjail:");
        }
    });
}

/// `waitpid(pid, __WALL)` for a tracee: its raw status.
fn wait_tracee(pid: i32) -> i32 {
    let mut st = 0;
    // SAFETY: a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::__WALL) };
    assert_eq!(
        r,
        pid,
        "waitpid({pid}): {}",
        std::io::Error::last_os_error()
    );
    st
}

/// `ptrace(req, pid, 0, data)`.
fn ptrace(req: libc::c_uint, pid: i32, data: usize) -> libc::c_long {
    // SAFETY: the requests used here take an integer or a pointer to a live local as data.
    unsafe { libc::ptrace(req, pid, 0usize, data) }
}

/// Run the helper (started by hand as the user, inside `net`) until it forks pasta, with pasta's
/// process held stopped the instant it exists. Returns the helper's Running, its socket, and
/// pasta's pid (stopped, traced by this thread).
fn helper_at_the_pasta_fork(
    net: &TestNet,
    c: &Caller,
) -> (Running, std::os::unix::net::UnixStream, i32) {
    use std::os::fd::AsRawFd;
    let (ours, theirs) = nsjail_tests::socketpair_as(c.uid, c.gid);
    let fd = theirs.as_raw_fd();
    let mut words = as_caller_words(c, &[]);
    words.push(c.helper.to_string_lossy().into_owned());
    words.extend(["--fd".to_string(), fd.to_string()]);
    let mut cmd = net.command(&words);
    // SAFETY: fcntl is async-signal-safe; only the child's copy loses CLOEXEC.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = Running::spawn(&mut cmd, None, "nsjail-helper --fd (in the test netns)");
    drop(theirs);
    // `ip netns exec`, setpriv and env each exec the next: the helper keeps this pid.
    let helper = run.pid();
    assert!(
        nsjail_tests::poll_until(Duration::from_secs(20), || {
            std::fs::read_to_string(format!("/proc/{helper}/comm"))
                .is_ok_and(|c| c.trim() == "nsjail-helper")
        }),
        "the helper did not start: {}",
        run.stderr.text()
    );
    let opts = libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_TRACECLONE;
    assert_eq!(
        ptrace(libc::PTRACE_SEIZE, helper, opts as usize),
        0,
        "PTRACE_SEIZE the helper: {}",
        std::io::Error::last_os_error()
    );
    let mut req = nsjail_tests::spawn_request(&["/bin/sleep", "60"]);
    req.pasta = Some(nsjail_core::Pasta {
        forward_tcp: Vec::new(),
    });
    let frame =
        nsjail_core::wire::encode(&nsjail_core::ClientMessage::Spawn(Box::new(req))).unwrap();
    let null = nsjail_tests::devnull_stdio();
    let raw: Vec<i32> = null.iter().map(|f| f.as_raw_fd()).collect();
    {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        sendmsg::<()>(
            ours.as_raw_fd(),
            &[std::io::IoSlice::new(&frame)],
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .expect("send the request");
    }
    // The helper's forks, in order: the sandbox (let go at once), then pasta (held).
    let mut forks = 0;
    loop {
        let st = wait_tracee(helper);
        assert!(
            libc::WIFSTOPPED(st),
            "the helper ended before it forked pasta ({st:#x}): {}",
            run.stderr.text()
        );
        let event = st >> 16;
        if event == libc::PTRACE_EVENT_FORK || event == libc::PTRACE_EVENT_CLONE {
            let mut child: libc::c_ulong = 0;
            ptrace(
                libc::PTRACE_GETEVENTMSG,
                helper,
                std::ptr::addr_of_mut!(child) as usize,
            );
            let child = child as i32;
            // A new tracee of a seized parent starts in a group stop.
            wait_tracee(child);
            forks += 1;
            if forks == 2 {
                return (run, ours, child);
            }
            ptrace(libc::PTRACE_DETACH, child, 0);
            ptrace(libc::PTRACE_CONT, helper, 0);
        } else {
            // Anything else (a signal, a group stop): pass it on.
            let sig = if event == 0 { libc::WSTOPSIG(st) } else { 0 };
            let sig = if sig == libc::SIGTRAP { 0 } else { sig };
            ptrace(libc::PTRACE_CONT, helper, sig as usize);
        }
    }
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn pasta_does_not_outlive_a_helper_that_dies_as_it_starts_it() {
    root_or_skip!();
    let c = Caller::setuid_user();
    let net = TestNet::new();

    // The control: let the held process go and the helper on: it becomes pasta, and the
    // sandbox starts.
    let (mut run, mut sock, pasta) = helper_at_the_pasta_fork(&net, &c);
    let helper = run.pid();
    ptrace(libc::PTRACE_DETACH, pasta, 0);
    ptrace(libc::PTRACE_DETACH, helper, 0);
    // (pasta re-executes itself as `passt.avx2` where the CPU has AVX2)
    let started = nsjail_tests::poll_until(Duration::from_secs(30), || {
        comm(pasta).starts_with("pasta") || comm(pasta).starts_with("passt")
    });
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let first = loop {
        match nsjail_core::wire::read_frame::<_, nsjail_core::HelperEvent>(&mut sock) {
            Ok(Some(nsjail_core::HelperEvent::Step(_))) => continue,
            other => break other,
        }
    };
    drop(sock);
    assert!(
        started && matches!(first, Ok(Some(nsjail_core::HelperEvent::Started { .. }))),
        "control: the second fork should have become pasta ({:?}) and the sandbox started: \
         {first:?}\n{}",
        comm(pasta),
        run.stderr.text()
    );
    assert!(
        run.wait_timeout(TIMEOUT).is_some(),
        "control: the helper did not end"
    );

    // The attack: the helper dies (here: SIGKILL, as root) the instant after it forked pasta,
    // before that process could arm its parent-death signal. Still traced, it must end before
    // it executes pasta: a pasta with no one to kill it would otherwise be left to run
    // `--no-netns-quit` in the sandbox's namespaces (it used to be saved only by failing to
    // report that it was ready, on a pipe whose reader was gone).
    let (mut run, sock, pasta) = helper_at_the_pasta_fork(&net, &c);
    let helper = run.pid();
    nix::sys::signal::kill(Pid::from_raw(helper), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(
        run.wait_timeout(TIMEOUT).is_some(),
        "the helper did not die"
    );
    drop(sock);
    ptrace(
        libc::PTRACE_SETOPTIONS,
        pasta,
        libc::PTRACE_O_TRACEEXEC as usize,
    );
    ptrace(libc::PTRACE_CONT, pasta, 0);
    let end = loop {
        let st = wait_tracee(pasta);
        if libc::WIFEXITED(st) || libc::WIFSIGNALED(st) {
            break Ok(st);
        }
        if st >> 16 == libc::PTRACE_EVENT_EXEC {
            break Err(st);
        }
        let sig = if st >> 16 == 0 { libc::WSTOPSIG(st) } else { 0 };
        ptrace(libc::PTRACE_CONT, pasta, sig as usize);
    };
    if end.is_err() {
        let _ = nix::sys::signal::kill(Pid::from_raw(pasta), nix::sys::signal::Signal::SIGKILL);
        ptrace(libc::PTRACE_DETACH, pasta, 0);
    }
    assert!(
        end.is_ok(),
        "the process the helper forked for pasta went on to execute it after the helper died \
         ({end:?})"
    );
}
