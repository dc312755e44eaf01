//! `--dry-run`: the fully resolved sandbox, as readable text or as JSON, with nothing started.

use std::fmt::Write;

use nsjail_core::SpawnRequest;
use nsjail_core::limits::{RLIM_INFINITY, RlimitResource, RlimitSetting, human_size};
use nsjail_core::request::{CgroupVersion, Limits};
use nsjail_core::seccomp::SeccompMode;
use nsjail_seccomp::SeccompProfile;
use nsjail_seccomp::profile::SeccompAction;
use serde::Serialize;

use nsjail_cli::limit_args::human_seconds;

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
    /// What the CLI decided about the view, one line each (as `--verbose` says them): whether
    /// and why the current directory is bound, what is covered.
    pub notes: &'a [String],
    /// The Landlock ruleset that mirrors the view (optional binds of missing sources left out,
    /// as the helper leaves them out).
    pub landlock: &'a nsjail_core::landlock::Ruleset,
    /// The `--seccomp` profile as read, in words (the request carries only its BPF).
    pub seccomp_profile: Option<String>,
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

/// The Landlock mode and, when it would be applied, the ruleset, one rule a line.
fn landlock_text(o: &mut String, req: &SpawnRequest, rs: &nsjail_core::landlock::Ruleset) {
    use nsjail_core::landlock::{Decision, LandlockMode, MIN_ABI, decide};
    // Whether the payload itself leaves it out; the kernel's ABI and the admin policy are the
    // helper's to check.
    let mode = match (
        req.landlock,
        decide(req.landlock, false, MIN_ABI, req.caps, req.allow_userns),
    ) {
        (_, Decision::Skip(why)) => {
            let _ = writeln!(o, "landlock:    {why}");
            return;
        }
        (LandlockMode::On, _) => "on (refused where the kernel has no Landlock ABI 2 or newer)",
        _ => {
            "auto (where the kernel has Landlock ABI 2 or newer; required where the admin policy says so)"
        }
    };
    let _ = writeln!(
        o,
        "landlock:    {mode}; rules, each for the path and everything below it:"
    );
    for rule in &rs.rules {
        let _ = writeln!(o, "  {}  {}", rule.access.letters(), rule.path);
    }
    let _ = writeln!(
        o,
        "  (and the payload's stdio files, reopened only as they were opened)"
    );
    for n in &rs.notes {
        let _ = writeln!(o, "  note: {n}");
    }
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
            "a new pseudo-terminal, in the sandbox's own /dev/pts when its view has one (stdin is a terminal)"
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
    let _ = writeln!(o, "limits:      {}", describe_limits(&req.limits));
    let _ = writeln!(o, "rlimits:     {}", describe_rlimits(&req.limits.rlimits));
    let _ = writeln!(
        o,
        "seccomp:     {}",
        describe_seccomp(req, r.seccomp_profile.as_deref())
    );
    let _ = writeln!(
        o,
        "caps:        {}",
        if req.caps.is_empty() {
            "none".to_string()
        } else {
            format!("{} (inside the sandbox's user namespace only)", req.caps)
        }
    );
    if !req.pass_fds.is_empty() {
        let list: Vec<String> = req.pass_fds.iter().map(u32::to_string).collect();
        let _ = writeln!(
            o,
            "passed fds:  {} (yours, at the same numbers, to the command only)",
            list.join(", ")
        );
    }
    landlock_text(&mut o, req, r.landlock);
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
    for n in r.notes {
        let _ = writeln!(o, "note:        {n}");
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

/// The cgroup and time limits, as the options said them (the admin's policy may add ceilings
/// for what was not asked).
fn describe_limits(l: &Limits) -> String {
    let mut v = Vec::new();
    if let Some(us) = l.cpu_time_us {
        v.push(format!(
            "CPU time {} (every process together)",
            human_seconds(us)
        ));
    }
    if let Some(us) = l.wall_time_us {
        v.push(format!("wall-clock time {}", human_seconds(us)));
    }
    if (l.cpu_time_us.is_some() || l.wall_time_us.is_some()) && l.kill_grace_us > 0 {
        v.push(format!(
            "at a time limit SIGTERM, then SIGKILL after {}",
            human_seconds(l.kill_grace_us)
        ));
    }
    if let Some(b) = l.memory_bytes {
        v.push(format!("memory {} (swap off)", human_size(b)));
    }
    if let Some(n) = l.pids {
        v.push(format!("{n} processes"));
    }
    if let Some(m) = l.cpu_millis {
        let cpus = human_seconds(m * 1000);
        v.push(format!("CPU bandwidth {} CPU", cpus.trim_end_matches(" s")));
    }
    if v.is_empty() {
        return "none".into();
    }
    let cgroup = match l.cgroup_version {
        CgroupVersion::Auto => "",
        CgroupVersion::V1 => " (cgroup v1)",
        CgroupVersion::V2 => " (cgroup v2)",
    };
    format!("{}{cgroup}", v.join(", "))
}

/// The rlimits the payload gets: the ones asked for, and no core dumps unless asked.
fn describe_rlimits(r: &[RlimitSetting]) -> String {
    let value = |v: u64| {
        if v == RLIM_INFINITY {
            "inf".to_string()
        } else {
            v.to_string()
        }
    };
    let mut v: Vec<String> = r
        .iter()
        .map(|s| {
            if s.soft == s.hard {
                format!("{}={}", s.resource.name(), value(s.soft))
            } else {
                format!("{}={}:{}", s.resource.name(), value(s.soft), value(s.hard))
            }
        })
        .collect();
    if !r.iter().any(|s| s.resource == RlimitResource::Core) {
        v.push("core=0 (no core dumps)".into());
    }
    format!("{}; the rest as yours", v.join(", "))
}

/// A `--seccomp` profile in words: its rules and its default, and how long its program is.
pub fn describe_profile(p: &SeccompProfile, insns: usize) -> String {
    format!(
        "the --seccomp profile: {} rule{}, any other system call: {} ({insns} BPF instructions)",
        p.rules.len(),
        if p.rules.len() == 1 { "" } else { "s" },
        describe_action(p.default_action)
    )
}

fn describe_seccomp(req: &SpawnRequest, profile: Option<&str>) -> String {
    let mut s = match &req.seccomp {
        SeccompMode::Default => {
            let mut allowed = Vec::new();
            if req.allow_userns {
                allowed.push("nested user namespaces");
            }
            if req.allow_ptrace {
                allowed.push("ptrace");
            }
            let mut s =
                "nsjail's default filter (dangerous system calls and TIOCSTI denied)".to_string();
            if !allowed.is_empty() {
                s.push_str(&format!(", but {} allowed", allowed.join(" and ")));
            }
            s
        }
        SeccompMode::Disabled => "none (--seccomp none)".into(),
        SeccompMode::Profile(p) => profile.map_or_else(
            || {
                format!(
                    "a compiled profile ({} BPF instructions)",
                    p.bpf.len() / nsjail_core::seccomp::BPF_INSN_BYTES
                )
            },
            str::to_string,
        ),
    };
    let n = req.seccomp_programs.len();
    if n > 0 {
        s.push_str(&format!(
            "; plus {n} raw BPF program{} (--add-seccomp-fd)",
            if n == 1 { "" } else { "s" }
        ));
    }
    s
}

fn describe_action(a: SeccompAction) -> String {
    match a {
        SeccompAction::Allow => "allowed".into(),
        SeccompAction::Errno(e) => match nix::errno::Errno::from_raw(e as i32) {
            nix::errno::Errno::UnknownErrno => format!("fails with errno {e}"),
            errno => format!("fails with {errno:?}"),
        },
        SeccompAction::KillThread => "kills the thread".into(),
        SeccompAction::KillProcess => "kills the process".into(),
        SeccompAction::Trap => "SIGSYS".into(),
        SeccompAction::Log => "allowed and logged".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(req: &SpawnRequest) -> String {
        let r = Resolved {
            helper: None,
            helper_error: None,
            passed_fds: &[],
            profiles: Vec::new(),
            profile_args: &[],
            skipped: Vec::new(),
            notes: &[],
            landlock: &nsjail_core::landlock::Ruleset::default(),
            seccomp_profile: None,
            terminal: false,
        };
        text(req, &r)
    }

    fn line<'a>(text: &'a str, key: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in:\n{text}"))
    }

    #[test]
    fn limits_and_seccomp_are_what_the_request_says() {
        let mut req = SpawnRequest::new(vec!["true".into()]);
        let t = text_of(&req);
        assert_eq!(line(&t, "limits:"), "limits:      none");
        assert_eq!(
            line(&t, "rlimits:"),
            "rlimits:     core=0 (no core dumps); the rest as yours"
        );
        assert_eq!(
            line(&t, "seccomp:"),
            "seccomp:     nsjail's default filter (dangerous system calls and TIOCSTI denied)"
        );

        req.limits.memory_bytes = Some(64 << 20);
        req.limits.cpu_time_us = Some(2_000_000);
        req.limits.rlimits.push(RlimitSetting {
            resource: RlimitResource::Nofile,
            soft: 100,
            hard: RLIM_INFINITY,
        });
        req.seccomp = SeccompMode::Disabled;
        req.seccomp_programs = vec![vec![0; 8]; 2];
        let t = text_of(&req);
        assert_eq!(
            line(&t, "limits:"),
            "limits:      CPU time 2 s (every process together), memory 64 MiB (swap off)"
        );
        assert_eq!(
            line(&t, "rlimits:"),
            "rlimits:     nofile=100:inf, core=0 (no core dumps); the rest as yours"
        );
        assert_eq!(
            line(&t, "seccomp:"),
            "seccomp:     none (--seccomp none); plus 2 raw BPF programs (--add-seccomp-fd)"
        );
    }

    #[test]
    fn a_seccomp_profile_is_described_as_read_and_as_compiled() {
        use nsjail_seccomp::oci::{OciContext, parse};
        let profile = parse(
            br#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                 "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}"#,
            &OciContext::default(),
        )
        .unwrap();
        let compiled = profile.compile().unwrap();
        let mut req = SpawnRequest::new(vec!["true".into()]);
        req.seccomp = SeccompMode::Profile(nsjail_core::seccomp::BpfProgram {
            bpf: compiled.bytes(),
            flags: compiled.flags,
        });
        let n = compiled.insns.len();
        let described = describe_profile(&profile, n);
        assert_eq!(
            described,
            format!(
                "the --seccomp profile: 2 rules, any other system call: fails with EPERM \
                 ({n} BPF instructions)"
            )
        );
        assert_eq!(describe_seccomp(&req, Some(&described)), described);
        // Without the profile at hand, what the request carries.
        assert_eq!(
            describe_seccomp(&req, None),
            format!("a compiled profile ({n} BPF instructions)")
        );
    }
}
