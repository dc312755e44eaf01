//! Running a process with captured output and a deadline: a test never hangs forever.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{TIMEOUT, WAY_IN_LINE, WAY_IN_VAR, WayIn};

/// A pipe being drained by a thread into a shared buffer.
#[derive(Clone)]
pub struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    eof: Arc<AtomicBool>,
    /// Lines starting with this are left out of [`Capture::text`] (the CLI's way-in line).
    hide: Option<&'static str>,
}

impl Capture {
    pub fn start(mut r: impl Read + Send + 'static) -> Capture {
        let cap = Capture {
            buf: Arc::new(Mutex::new(Vec::new())),
            eof: Arc::new(AtomicBool::new(false)),
            hide: None,
        };
        let c = cap.clone();
        thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => c.buf.lock().unwrap().extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO: a pty master whose slaves are all closed.
                    Err(_) => break,
                }
            }
            c.eof.store(true, Ordering::SeqCst);
        });
        cap
    }

    /// What was read so far, without the lines [`Capture::hide_lines`] names.
    pub fn text(&self) -> String {
        let raw = self.raw_text();
        match self.hide {
            None => raw,
            Some(prefix) => raw
                .split_inclusive('\n')
                .filter(|l| !l.starts_with(prefix))
                .collect(),
        }
    }

    /// Everything read so far.
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// Leave lines starting with `prefix` out of [`Capture::text`] from now on.
    pub fn hide_lines(&mut self, prefix: &'static str) {
        self.hide = Some(prefix);
    }

    pub fn is_eof(&self) -> bool {
        self.eof.load(Ordering::SeqCst)
    }

    /// Wait (bounded) until the text contains `needle`; `false` on timeout or EOF without it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.text().contains(needle) {
                return true;
            }
            if self.is_eof() || Instant::now() >= deadline {
                return self.text().contains(needle);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_eof(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_eof() {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// What a finished run left.
#[derive(Debug)]
pub struct Output {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code, or `None` when the process itself died of a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn describe(&self) -> String {
        format!(
            "{}\n  status: {}\n  stdout: {:?}\n  stderr: {:?}",
            self.what, self.status, self.stdout, self.stderr
        )
    }

    /// Panic unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit code {code}:\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        self.expect_code(0)
    }

    /// Panic if anything looks like a Rust panic or backtrace.
    #[track_caller]
    pub fn expect_no_panic(&self) -> &Self {
        for s in [&self.stdout, &self.stderr] {
            for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
                assert!(
                    !s.contains(bad),
                    "output mentions {bad:?}:\n{}",
                    self.describe()
                );
            }
        }
        self
    }

    /// The stdout lines, trimmed.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(|l| l.trim().to_string()).collect()
    }

    /// Stdout with surrounding whitespace removed.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// Exactly one non-empty line on stderr and it starts with `prefix`.
    #[track_caller]
    pub fn expect_one_error_line(&self, prefix: &str) -> &Self {
        let lines = self.stderr_lines();
        assert!(
            lines.len() == 1 && lines[0].starts_with(prefix),
            "expected exactly one stderr line starting {prefix:?}:\n{}",
            self.describe()
        );
        self
    }
}

/// A spawned process whose stdout and stderr are being captured, with a deadline.
pub struct Running {
    pub what: String,
    pub child: Child,
    pub stdout: Capture,
    /// The process's stderr, without the CLI's way-in line when a way in was stated.
    pub stderr: Capture,
    pub deadline: Instant,
    /// The way in this run of the CLI stated (`$NSJAIL_WAY_IN`), checked by [`Running::wait`].
    pub way_in: Option<WayIn>,
    /// The run goes as far as choosing its way in (`nsjail run` without `--dry-run`, `--help`
    /// or `--version`), so the CLI must name it unless it refused its input (125).
    pub must_say_way_in: bool,
}

/// The way in `cmd` states in `$NSJAIL_WAY_IN`, and whether it runs `nsjail run` far enough to
/// choose one.
fn stated_way_in(cmd: &Command) -> (Option<WayIn>, bool) {
    let way = cmd
        .get_envs()
        .find(|(k, _)| *k == WAY_IN_VAR)
        .and_then(|(_, v)| v)
        .and_then(|v| WayIn::from_name(&v.to_string_lossy()));
    let is_cli = Path::new(cmd.get_program()).file_name() == Some(OsStr::new("nsjail"));
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let options = args.iter().skip(1).take_while(|a| *a != "--");
    let no_route = options.clone().any(|a| {
        a.starts_with("--dry-run") || ["--help", "-h", "--version", "-V"].contains(&a.as_str())
    });
    let runs = is_cli && args.first().is_some_and(|a| a == "run") && !no_route;
    (way, runs)
}

/// Check the CLI's way-in line in `raw_stderr` against `way` (see [`Running::wait`]).
#[track_caller]
pub fn check_way_in(raw_stderr: &str, way: WayIn, must_say: bool, out: &Output) {
    let said: Vec<&str> = raw_stderr
        .lines()
        .filter(|l| l.starts_with(WAY_IN_LINE))
        .collect();
    assert!(
        said.len() <= 1,
        "the CLI named its way in more than once: {said:?}\n{}",
        out.describe()
    );
    match said.first() {
        Some(line) => assert!(
            line.starts_with(&way.line()),
            "the run was to go in by `{}`, but the CLI says: {line}\n{}",
            way.name(),
            out.describe()
        ),
        None => assert!(
            !must_say || out.code() == Some(125),
            "the CLI never named its way in (the run was to go in by `{}`): a run that does not \
             say how it reached the helper may have taken another way\n{}",
            way.name(),
            out.describe()
        ),
    }
}

impl Running {
    /// Spawn `cmd` with stdout/stderr captured and stdin fed from `input` (or /dev/null). The
    /// process gets its own process group so a timeout can kill it with everything it started.
    pub fn spawn(cmd: &mut Command, input: Option<Vec<u8>>, what: &str) -> Running {
        Self::spawn_with_timeout(cmd, input, what, TIMEOUT)
    }

    pub fn spawn_with_timeout(
        cmd: &mut Command,
        input: Option<Vec<u8>>,
        what: &str,
        timeout: Duration,
    ) -> Running {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.process_group(0);
        // ETXTBSY: a binary the tests just copied may still be open for writing in a child that
        // another test thread forked meanwhile (until that child execs); try again shortly.
        let start = Instant::now();
        let mut child = loop {
            match cmd.spawn() {
                Ok(c) => break c,
                Err(e)
                    if e.raw_os_error() == Some(libc::ETXTBSY)
                        && start.elapsed() < Duration::from_secs(10) =>
                {
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot start {what}: {e}"),
            }
        };
        if let Some(data) = input {
            let mut stdin = child.stdin.take().unwrap();
            thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
        }
        let stdout = Capture::start(child.stdout.take().unwrap());
        let mut stderr = Capture::start(child.stderr.take().unwrap());
        let (way_in, must_say_way_in) = stated_way_in(cmd);
        if way_in.is_some() {
            stderr.hide_lines(WAY_IN_LINE);
        }
        Running {
            what: what.to_string(),
            child,
            stdout,
            stderr,
            deadline: Instant::now() + timeout,
            way_in,
            must_say_way_in,
        }
    }

    /// For a CLI started by other words (`ip netns exec … env -i … nsjail run …`): check, as
    /// for a run through [`Caller::command_for`], that it went in by `way` and said so.
    pub fn expect_way_in(mut self, way: WayIn) -> Running {
        self.way_in = Some(way);
        self.must_say_way_in = true;
        self.stderr.hide_lines(WAY_IN_LINE);
        self
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send `sig` to the process (not its group).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .unwrap_or_else(|e| panic!("kill({}, {sig}) of {}: {e}", self.pid(), self.what));
    }

    /// Wait until stdout contains `needle`; panics with everything seen so far on timeout.
    #[track_caller]
    pub fn wait_stdout(&mut self, needle: &str) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if !self.stdout.wait_for(needle, left) {
            let status = self.child.try_wait().ok().flatten();
            self.kill_group();
            panic!(
                "{}: {needle:?} never appeared on stdout (status so far: {status:?})\n  stdout: {:?}\n  stderr: {:?}",
                self.what,
                self.stdout.text(),
                self.stderr.text()
            );
        }
    }

    fn kill_group(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait (bounded) for the process to end; `None` on timeout (the process is left running).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait for the end and for both pipes to close; panics (after killing the process group)
    /// when the deadline passes.
    #[track_caller]
    pub fn wait(mut self) -> Output {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let status = match self.wait_timeout(left) {
            Some(st) => st,
            None => {
                self.kill_group();
                thread::sleep(Duration::from_millis(200));
                panic!(
                    "{}: still running after {:?}; killed\n  stdout: {:?}\n  stderr: {:?}",
                    self.what,
                    TIMEOUT,
                    self.stdout.text(),
                    self.stderr.text()
                );
            }
        };
        // Once the process has ended, its pipes close unless something it started survived.
        let grace = Duration::from_secs(20);
        let closed = self.stdout.wait_eof(grace) && self.stderr.wait_eof(grace);
        let out = Output {
            what: self.what.clone(),
            status,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        };
        assert!(
            closed,
            "the process ended but its stdout/stderr stayed open for {grace:?}: something it \
             started survived it\n{}",
            out.describe()
        );
        if let Some(way) = self.way_in {
            check_way_in(&self.stderr.raw_text(), way, self.must_say_way_in, &out);
        }
        out
    }
}

/// Describe an exit status as the shell would see it (`128+N` for a signal).
pub fn shell_code(st: &ExitStatus) -> i32 {
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}
