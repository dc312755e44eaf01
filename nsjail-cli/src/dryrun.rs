//! `--dry-run`: the fully resolved sandbox, as readable text or as JSON, with nothing started.

use std::fmt::Write;

use nsjail_core::SpawnRequest;
use serde::Serialize;

/// What the CLI resolved besides the request itself.
#[derive(Debug, Serialize)]
pub struct Resolved<'a> {
    /// The helper that would be started, how it was found and how it would run.
    pub helper: Option<HelperInfo>,
    /// Why no helper was found, when none was.
    pub helper_error: Option<String>,
    /// Our fds passed along with the request, by index (`--file`, `--bind-data`, Xauthority).
    pub passed_fds: &'a [i32],
    /// Profiles used, in the order their options were added: (name, where from).
    pub profiles: Vec<(String, String)>,
    /// The options the profiles added before the command line's own.
    pub profile_args: &'a [String],
    /// Things asked for that this session does not have (skipped).
    pub skipped: Vec<String>,
    /// Whether the payload would get a new pseudo-terminal (stdin is a terminal).
    pub terminal: bool,
}

#[derive(Debug, Serialize)]
pub struct HelperInfo {
    pub path: String,
    pub found_by: String,
    pub mode: String,
}

#[derive(Serialize)]
struct Json<'a> {
    request: &'a SpawnRequest,
    resolved: &'a Resolved<'a>,
}

pub fn json(req: &SpawnRequest, resolved: &Resolved) -> String {
    serde_json::to_string_pretty(&Json {
        request: req,
        resolved,
    })
    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn text(req: &SpawnRequest, r: &Resolved) -> String {
    let mut o = String::new();
    let argv: Vec<String> = req.argv.iter().map(|a| quote(a)).collect();
    let _ = writeln!(o, "nsjail dry run: nothing was started");
    let _ = writeln!(o, "command:     {}", argv.join(" "));
    if req.argv.first() != Some(&req.program) {
        let _ = writeln!(o, "program:     {}", quote(&req.program));
    }
    match (&r.helper, &r.helper_error) {
        (Some(h), _) => {
            let _ = writeln!(
                o,
                "helper:      {} (found by {}; {})",
                h.path, h.found_by, h.mode
            );
        }
        (None, Some(e)) => {
            let _ = writeln!(o, "helper:      none: {e}");
        }
        _ => {}
    }
    if !r.profiles.is_empty() {
        let p: Vec<String> = r
            .profiles
            .iter()
            .map(|(n, from)| format!("{n} ({from})"))
            .collect();
        let _ = writeln!(o, "profiles:    {}", p.join(", "));
        let args: Vec<String> = r.profile_args.iter().map(|a| quote(a)).collect();
        let _ = writeln!(o, "  adding:    {}", args.join(" "));
    }
    let ns = &req.namespaces;
    let mut new = vec!["user", "mount", "pid"];
    let mut shared = Vec::new();
    for (on, name) in [
        (ns.uts, "uts"),
        (ns.ipc, "ipc"),
        (ns.net, "net"),
        (ns.cgroup, "cgroup"),
        (ns.time, "time"),
    ] {
        if on {
            new.push(name)
        } else {
            shared.push(name)
        }
    }
    let _ = writeln!(
        o,
        "namespaces:  new {}; the host's: {}",
        new.join(", "),
        if shared.is_empty() {
            "none".to_string()
        } else {
            shared.join(", ")
        }
    );
    let me_u = nix::unistd::getuid();
    let me_g = nix::unistd::getgid();
    let _ = writeln!(
        o,
        "ids:         uid {} gid {} inside = your uid {me_u} gid {me_g} outside; nothing else mapped",
        req.ids.uid, req.ids.gid
    );
    let _ = writeln!(
        o,
        "hostname:    {}",
        if ns.uts {
            req.hostname.clone()
        } else {
            "the host's".into()
        }
    );
    let net = match (&req.pasta, ns.net) {
        (Some(p), _) => {
            let fw: Vec<String> = p
                .forward_tcp
                .iter()
                .map(|f| format!("{}->{}", f.host, f.sandbox))
                .collect();
            format!(
                "pasta (outbound through pasta run as you; tcp ports forwarded in: {})",
                if fw.is_empty() {
                    "none".to_string()
                } else {
                    fw.join(", ")
                }
            )
        }
        (None, true) => "none (a new namespace with only lo)".into(),
        (None, false) => "host (the host's network namespace)".into(),
    };
    let _ = writeln!(o, "network:     {net}");
    let _ = writeln!(
        o,
        "pid 1:       {}",
        if req.as_pid_1 {
            "the command itself"
        } else {
            "nsjail's init (reaps, forwards signals), the command under it"
        }
    );
    let _ = writeln!(
        o,
        "terminal:    {}",
        if r.terminal {
            "a new pseudo-terminal (stdin is a terminal)"
        } else {
            "stdin, stdout and stderr passed as they are"
        }
    );
    let cwd = match (&req.cwd, &req.caller_cwd) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => format!("{d} if it exists inside, else /"),
        (None, None) => "/".into(),
    };
    let _ = writeln!(o, "cwd:         {cwd}");
    let _ = writeln!(o, "limits:      none");
    let _ = writeln!(o, "seccomp:     none");
    let _ = writeln!(o, "mounts, in order, on an empty root:");
    for (i, m) in req.mounts.iter().enumerate() {
        let mut line = m.describe();
        if let Some(idx) = m.passed_fd()
            && let Some(fd) = r.passed_fds.get(idx as usize)
        {
            line = line.replace(
                &format!("(passed fd #{idx})"),
                &format!("(fd {fd} of nsjail)"),
            );
        }
        let _ = writeln!(o, "  {:>3}  {line}", i + 1);
    }
    let _ = writeln!(o, "environment ({} variables):", req.env.len());
    for (k, v) in &req.env {
        let _ = writeln!(o, "  {k}={}", quote(v));
    }
    for s in &r.skipped {
        let _ = writeln!(o, "skipped:     {s}");
    }
    o
}
