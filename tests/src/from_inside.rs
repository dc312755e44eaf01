//! Running as a caller from inside another program (a network namespace, a terminal).

use std::path::PathBuf;

use crate::{Caller, ROOT_PATH, USER_PATH, WAY_IN_VAR, daemon_socket_env, tool};

/// The words that run a command as caller `c` with a cleared environment holding `env`: for
/// the ordinary user `setpriv` switches ids (no supplementary groups), for root nothing does.
/// Used where the test cannot start the process itself (`ip netns exec`, a tmux pane).
pub fn as_caller_words(c: &Caller, env: &[(&str, &str)]) -> Vec<String> {
    let mut w = Vec::new();
    if c.is_user() {
        w.extend([
            tool("setpriv"),
            format!("--reuid={}", c.uid),
            format!("--regid={}", c.gid),
            "--clear-groups".into(),
            "--".into(),
        ]);
    }
    w.extend([tool("env"), "-i".into()]);
    let path = if c.is_user() { USER_PATH } else { ROOT_PATH };
    w.push(format!("PATH={path}"));
    // The same way in as the caller's own runs (Caller::command_for): through the daemon for
    // the daemon callers, never through one for the others, and the CLI refuses any other way.
    let socket = if c.via_daemon() {
        daemon_socket_env()
    } else {
        Some(PathBuf::from("none"))
    };
    if let Some(sock) = socket {
        w.push(format!("NSJAIL_SOCKET={}", sock.display()));
    }
    w.push(format!("{WAY_IN_VAR}={}", c.way_in().name()));
    if !env.iter().any(|(k, _)| *k == "HOME") {
        w.push(format!("HOME={}", if c.is_user() { "/" } else { "/root" }));
    }
    w.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    w
}
