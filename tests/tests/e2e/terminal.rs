//! A shell in a real terminal (a tmux pane): prompt and line editing, Ctrl-C stopping only the
//! foreground job inside, Ctrl-Z and `fg`, the window size following a resize, TIOCSTI reaching
//! only the sandbox's own terminal, and the caller's terminal restored afterwards.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nsjail_tests::{
    Caller, as_caller_words, for_each_caller, pids_with_argv, poll_until, proc_state, root_or_skip,
    tool, unique,
};

const PROMPT: &str = "NSJ-PROMPT$";

/// A tmux server of our own with one session, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new(tool("tmux"))
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "tmux send-keys {keys:?}: {out:?}");
    }

    fn line(&self, text: &str) {
        self.keys(&["-l", text]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-J", "-t", "t", "-S", "-200"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until the screen satisfies `cond`; panics with the screen otherwise.
    #[track_caller]
    fn wait(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = poll_until(Duration::from_secs(30), || {
            last = self.screen();
            cond(&last)
        });
        assert!(ok, "{what}: never appeared on the screen:\n{last}");
        last
    }

    #[track_caller]
    fn wait_for(&self, needle: &str) -> String {
        self.wait(needle, |s| s.contains(needle))
    }

    fn prompts(&self) -> usize {
        self.screen().matches(PROMPT).count()
    }

    /// Wait until there are at least `n` prompts on the screen.
    #[track_caller]
    fn wait_prompts(&self, n: usize) {
        self.wait(&format!("{n} prompts"), |s| s.matches(PROMPT).count() >= n);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn session(c: &Caller, cwd: &Path, outer: &str) -> Tmux {
    let t = Tmux {
        socket: format!("nsjail-e2e-{}", unique()),
    };
    let mut words = as_caller_words(c, &[("TERM", "screen"), ("PS1", &format!("{PROMPT} "))]);
    words.extend(["/bin/sh".into(), "-c".into(), outer.into()]);
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect();
    let out = t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "120",
        "-y",
        "40",
        "-c",
        cwd.to_str().unwrap(),
        &quoted.join(" "),
    ]);
    assert!(out.status.success(), "tmux new-session: {out:?}");
    let _ = t.cmd(&["set-option", "-t", "t", "remain-on-exit", "on"]);
    t
}

#[test]
fn a_shell_inside_behaves_like_one_outside() {
    root_or_skip!();
    for_each_caller(|c| {
        let dir = c.scratch();
        // The outer script: the sandboxed shell, then a read in the caller's own terminal that
        // shows (a) the terminal is back in its normal mode, (b) nothing was injected into it.
        let outer = format!(
            "{} run -- /bin/bash --norc --noprofile -i; echo OUTER_BACK; read line; echo \"OUTER_GOT:$line\"; sleep 600",
            c.nsjail.display()
        );
        let t = session(c, dir.path(), &outer);
        t.wait_prompts(1);
        // The CLI went in by the caller's way (as_caller_words states it; the CLI says it).
        t.wait_for(&c.way_in().line());

        // Line editing: the typed line is edited by the shell inside (Left, then insert).
        t.keys(&["-l", "echo $((6*7))X"]);
        t.keys(&["Left"]);
        t.line("Y");
        t.wait_for("42YX");

        // Ctrl-C stops the foreground job inside; the sandbox lives on.
        let n = t.prompts();
        t.line("echo started-$((9*9)); sleep 100");
        t.wait_for("started-81");
        t.keys(&["C-c"]);
        t.wait_prompts(n + 1);
        t.line("echo alive-$((1+1))");
        t.wait_for("alive-2");

        // Job control: Ctrl-Z stops the job, `fg` resumes it where it was.
        let n = t.prompts();
        t.line("(echo zjob-$((8*8)); sleep 5; echo resumed-$((5+5)))");
        t.wait_for("zjob-64");
        t.keys(&["C-z"]);
        t.wait_prompts(n + 1);
        t.line("jobs");
        t.wait_for("Stopped");
        assert!(
            !t.screen().contains("resumed-10"),
            "the job was not stopped:\n{}",
            t.screen()
        );
        t.line("fg");
        t.wait_for("resumed-10");
        t.line("echo after-fg-$((2+2))");
        t.wait_for("after-fg-4");

        // The terminal has a name inside, a device that exists there, and `ps` shows it.
        t.line("t=$(tty); test -c \"$t\" && echo \"named-$((4*4)):$t:$(ps -o tty= -p $$)\"");
        let screen = t.wait_for("named-16:");
        assert!(
            screen.contains("named-16:/dev/pts/0:pts/0"),
            "tty inside:\n{screen}"
        );

        // The window size follows the terminal's.
        t.line("stty size");
        t.wait_for("40 120");
        let out = t.cmd(&["resize-window", "-t", "t", "-x", "100", "-y", "30"]);
        assert!(out.status.success(), "tmux resize-window: {out:?}");
        t.line("stty size");
        t.wait_for("30 100");

        // TIOCSTI stays blocked: the default seccomp filter refuses it even on the sandbox's own
        // terminal (where the kernel would allow it).
        let inject = |text: &str| {
            format!(
                "python3 -c 'import fcntl,termios; [fcntl.ioctl(0, termios.TIOCSTI, ch.encode()) for ch in \"{text}\"]'"
            )
        };
        t.line(&inject("echo INNER_$((3+4))\\n"));
        t.wait_for("Operation not permitted");
        t.line("echo after-inject-$((2+3))");
        let screen = t.wait_for("after-inject-5");
        assert!(
            !screen.contains("INNER_7"),
            "TIOCSTI was not blocked:\n{screen}"
        );
        // ...and only there: pushed just before the sandbox ends, it never reaches the
        // caller's terminal, whose `read` gets only what is typed afterwards.
        t.line(&format!("{}; exit", inject("OUTER_INJECTED\\n")));
        t.wait_for("OUTER_BACK");
        t.line("typed-later");
        let screen = t.wait_for("OUTER_GOT:");
        assert!(
            screen.contains("OUTER_GOT:typed-later")
                && !screen.contains("OUTER_GOT:OUTER_INJECTED"),
            "the outer terminal got injected input:\n{screen}"
        );
    });
}

/// The state (`/proc/PID/stat`) of the one process whose argv is exactly `argv`.
#[track_caller]
fn state_of(argv: &[&str]) -> char {
    let mut pids = Vec::new();
    assert!(
        poll_until(Duration::from_secs(30), || {
            pids = pids_with_argv(argv);
            pids.len() == 1
        }),
        "no single process {argv:?}: {pids:?}"
    );
    proc_state(pids[0]).unwrap_or('?')
}

/// Wait until the one process `argv` is in `state` (`T`: stopped; `S`: sleeping).
#[track_caller]
fn wait_state(argv: &[&str], state: char) {
    let mut last = '?';
    let ok = poll_until(Duration::from_secs(30), || {
        last = state_of(argv);
        last == state
    });
    assert!(ok, "{argv:?}: state {last}, expected {state}");
}

#[test]
fn ctrl_z_suspends_a_program_that_is_not_a_shell_and_fg_resumes_it() {
    root_or_skip!();
    for_each_caller(|c| {
        let dir = c.scratch();
        // The caller's own interactive shell, with job control, as in a terminal window.
        let t = session(c, dir.path(), "exec /bin/bash --norc --noprofile -i");
        t.wait_prompts(1);
        let nsjail = c.nsjail.display().to_string();
        let tag = unique();
        // In the outer shell: is the terminal in its normal (canonical) mode?
        let mode = |want: &str| {
            t.line(&format!(
                "case $(stty -a) in *-icanon*) echo mode-raw-{tag};; *) echo mode-cooked-{tag};; esac"
            ));
            t.wait_for(&format!("mode-{want}-{tag}"));
        };

        // 1. Ctrl-Z stops the payload and gives the outer shell its terminal back, cooked;
        //    `fg` continues the payload where it was.
        let sleeper = format!("4.{tag}");
        let n = t.prompts();
        t.line(&format!(
            "{nsjail} run -- /bin/sh -c 'echo zstart-$((6*7)); /bin/sleep {sleeper}; echo zend-$((7*7))'"
        ));
        t.wait_for("zstart-42");
        let inner = ["/bin/sleep", sleeper.as_str()];
        wait_state(&inner, 'S');
        t.keys(&["C-z"]);
        t.wait_prompts(n + 1);
        t.wait_for("Stopped");
        wait_state(&inner, 'T');
        mode("cooked");
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            !t.screen().contains("zend-49"),
            "the payload went on while stopped:\n{}",
            t.screen()
        );
        let n = t.prompts();
        t.line("fg");
        t.wait_for("zend-49");
        t.wait_prompts(n + 1);
        t.line("echo rc-$?");
        t.wait_for("rc-0");

        // 2. Ctrl-C and Ctrl-\ still reach a payload that was stopped and continued.
        for (key, code) in [("C-c", 130), ("C-\\", 131)] {
            let long = format!("100.{tag}{code}");
            let argv = ["/bin/sleep", long.as_str()];
            let n = t.prompts();
            t.line(&format!("{nsjail} run -- /bin/sleep {long}"));
            wait_state(&argv, 'S');
            t.keys(&["C-z"]);
            t.wait_prompts(n + 1);
            wait_state(&argv, 'T');
            t.line("fg");
            wait_state(&argv, 'S');
            let n = t.prompts();
            t.keys(&[key]);
            t.wait_prompts(n + 1);
            t.line("echo code-$?");
            t.wait_for(&format!("code-{code}"));
        }
        mode("cooked");
    });
}
