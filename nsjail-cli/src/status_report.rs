//! The run report for judges and CI runners: how a sandbox ended, classified into one status,
//! with what it used — as one JSON object (`--status-json`, `--status-fd`) or in isolate's
//! `key:value` meta format (`--meta`). Pure functions: the CLI writes what these return.

use serde::Serialize;

use nsjail_core::message::{ExitInfo, LimitHit, Termination};

/// The verdict, as two letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Exited with code 0, within every limit.
    #[serde(rename = "OK")]
    Ok,
    /// Exited with a non-zero code.
    #[serde(rename = "RE")]
    RuntimeError,
    /// Killed by a signal (other than the supervisor's for a time limit, or the OOM killer's).
    #[serde(rename = "SG")]
    Signaled,
    /// Killed by the supervisor for exceeding `--time-limit` or `--wall-time-limit`.
    #[serde(rename = "TO")]
    TimedOut,
    /// A process of the sandbox was killed by the OOM killer (the memory limit was reached).
    #[serde(rename = "ML")]
    MemoryLimit,
    /// The sandbox could not be set up, or the command could not be executed.
    #[serde(rename = "XX")]
    InternalError,
}

impl Status {
    pub fn code(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::RuntimeError => "RE",
            Status::Signaled => "SG",
            Status::TimedOut => "TO",
            Status::MemoryLimit => "ML",
            Status::InternalError => "XX",
        }
    }
}

/// Classify how a sandbox ended. The supervisor's time limit comes first (whatever the payload
/// did once told to stop), then an OOM kill anywhere in the sandbox, then the payload's own end.
/// `exec_failed`: the command could not be executed, so nothing of the submission ran.
pub fn classify(info: &ExitInfo, exec_failed: bool) -> Status {
    if exec_failed {
        return Status::InternalError;
    }
    if info.limit_hit.is_some() {
        return Status::TimedOut;
    }
    if info.cgroup.is_some_and(|c| c.oom_kills > 0) {
        return Status::MemoryLimit;
    }
    match info.termination {
        Termination::Signaled(_) => Status::Signaled,
        Termination::Exited(0) => Status::Ok,
        Termination::Exited(_) => Status::RuntimeError,
    }
}

/// The report, field for field as the JSON object has it. Times are seconds, memory KiB.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub status: Status,
    /// The payload's exit code; `null` when it was killed by a signal or never ran.
    pub exit_code: Option<i32>,
    /// The signal that killed the payload; `null` when it exited or never ran.
    pub signal: Option<i32>,
    /// User + system CPU time of every process of the sandbox, seconds.
    pub cpu_time: f64,
    /// Wall-clock time from the sandbox's start to its end, seconds.
    pub wall_time: f64,
    /// Largest resident set size of any single process, KiB.
    pub max_rss: u64,
    /// Peak memory of the sandbox's cgroup (all processes, page cache and kernel memory
    /// charged to it), KiB; `null` when the sandbox had no memory cgroup.
    pub cgroup_memory_peak: Option<u64>,
    /// Whether the kernel's OOM killer killed a process of the sandbox.
    pub oom_killed: bool,
    /// Whether the supervisor killed the sandbox (for a time limit).
    pub killed_by_supervisor: bool,
    /// One line for humans.
    pub message: String,
    /// Only in the meta format: context switches, and whether a cgroup measured the run.
    #[serde(skip)]
    pub csw_voluntary: u64,
    #[serde(skip)]
    pub csw_forced: u64,
    #[serde(skip)]
    pub cgroup_enabled: bool,
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

impl RunReport {
    /// The report of a sandbox that ran. `exec_error` is the message of an exec failure (the
    /// command was not found or could not be executed).
    pub fn from_exit(info: &ExitInfo, exec_error: Option<&str>) -> RunReport {
        let status = classify(info, exec_error.is_some());
        let (exit_code, signal) = match (exec_error, info.termination) {
            (Some(_), _) => (None, None),
            (None, Termination::Exited(c)) => (Some(c), None),
            (None, Termination::Signaled(s)) => (None, Some(s)),
        };
        let oom_kills = info.cgroup.map_or(0, |c| c.oom_kills);
        let message = match (status, exec_error) {
            (_, Some(e)) => e.to_string(),
            (Status::TimedOut, _) => match info.limit_hit {
                Some(LimitHit::WallTime) => "Time limit exceeded (wall clock)".to_string(),
                _ => "Time limit exceeded".to_string(),
            },
            (Status::MemoryLimit, _) => format!(
                "Memory limit exceeded ({oom_kills} process{} killed by the OOM killer)",
                if oom_kills == 1 { "" } else { "es" }
            ),
            (Status::Signaled, _) => {
                let s = signal.unwrap_or(0);
                match signal_name(s) {
                    Some(name) => format!("Caught fatal signal {s} ({name})"),
                    None => format!("Caught fatal signal {s}"),
                }
            }
            (Status::RuntimeError, _) => {
                format!("Exited with error status {}", exit_code.unwrap_or(0))
            }
            (Status::Ok | Status::InternalError, _) => "Exited normally".to_string(),
        };
        RunReport {
            status,
            exit_code,
            signal,
            cpu_time: seconds(info.cpu_time_us),
            wall_time: seconds(info.wall_time_us),
            max_rss: info.max_rss_kib,
            cgroup_memory_peak: info
                .cgroup
                .and_then(|c| c.memory_peak_bytes)
                .map(|b| b.div_ceil(1024)),
            oom_killed: oom_kills > 0,
            killed_by_supervisor: info.limit_hit.is_some(),
            message,
            csw_voluntary: info.voluntary_switches,
            csw_forced: info.involuntary_switches,
            cgroup_enabled: info.cgroup.is_some(),
        }
    }

    /// The report of a sandbox that could not be set up.
    pub fn internal_error(message: &str) -> RunReport {
        RunReport {
            status: Status::InternalError,
            exit_code: None,
            signal: None,
            cpu_time: 0.0,
            wall_time: 0.0,
            max_rss: 0,
            cgroup_memory_peak: None,
            oom_killed: false,
            killed_by_supervisor: false,
            message: message.to_string(),
            csw_voluntary: 0,
            csw_forced: 0,
            cgroup_enabled: false,
        }
    }

    /// One JSON object and a newline.
    pub fn to_json(&self) -> String {
        // Serialising a struct of numbers, booleans and strings cannot fail; a non-finite float
        // (impossible here: times come from integers) would become `null`.
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string());
        s.push('\n');
        s
    }

    /// isolate's meta format: one `key:value` per line, keys as isolate writes them.
    ///
    /// isolate has no `ML` status: an OOM kill is reported there as the process's own end
    /// (`SG` with `exitsig:9`, usually) plus `cg-oom-killed:1`, and that is what is written
    /// here, so judge software reading isolate's files reads these unchanged. `status` and
    /// `message` are left out when the run was OK, as isolate does.
    pub fn to_meta(&self) -> String {
        let mut lines = vec![
            format!("time:{:.3}", self.cpu_time),
            format!("time-wall:{:.3}", self.wall_time),
            format!("max-rss:{}", self.max_rss),
            format!("csw-voluntary:{}", self.csw_voluntary),
            format!("csw-forced:{}", self.csw_forced),
        ];
        if self.cgroup_enabled {
            lines.push("cg-enabled:1".to_string());
        }
        if let Some(kib) = self.cgroup_memory_peak {
            lines.push(format!("cg-mem:{kib}"));
        }
        if self.oom_killed {
            lines.push("cg-oom-killed:1".to_string());
        }
        if let Some(c) = self.exit_code {
            lines.push(format!("exitcode:{c}"));
        }
        if let Some(s) = self.signal {
            lines.push(format!("exitsig:{s}"));
        }
        if self.killed_by_supervisor {
            lines.push("killed:1".to_string());
        }
        let status = match self.status {
            Status::MemoryLimit => match (self.signal, self.exit_code) {
                (Some(_), _) => Some(Status::Signaled),
                (None, Some(0)) => None,
                _ => Some(Status::RuntimeError),
            },
            Status::Ok => None,
            other => Some(other),
        };
        if let Some(st) = status {
            lines.push(format!("status:{}", st.code()));
            lines.push(format!("message:{}", one_line(&self.message)));
        }
        let mut s = lines.join("\n");
        s.push('\n');
        s
    }
}

/// A meta value must stay on its line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// The usual name of a Linux signal (x86-64 and arm64 numbering).
pub fn signal_name(sig: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|s| s.checked_sub(1))
        .and_then(|i| NAMES.get(i).copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsjail_core::message::CgroupUsage;

    fn info(t: Termination) -> ExitInfo {
        ExitInfo {
            termination: t,
            wall_time_us: 1_500_000,
            user_time_us: 700_000,
            system_time_us: 300_000,
            max_rss_kib: 2048,
            cpu_time_us: 1_000_123,
            voluntary_switches: 3,
            involuntary_switches: 4,
            cgroup: Some(CgroupUsage {
                version: 1,
                memory_peak_bytes: Some(4096 * 1024 + 1),
                oom_kills: 0,
            }),
            limit_hit: None,
        }
    }

    fn oom(mut i: ExitInfo) -> ExitInfo {
        i.cgroup = Some(CgroupUsage {
            version: 2,
            memory_peak_bytes: Some(64 << 20),
            oom_kills: 1,
        });
        i
    }

    #[test]
    fn classification_order() {
        let ok = info(Termination::Exited(0));
        assert_eq!(classify(&ok, false), Status::Ok);
        assert_eq!(classify(&ok, true), Status::InternalError);
        assert_eq!(
            classify(&info(Termination::Exited(3)), false),
            Status::RuntimeError
        );
        assert_eq!(
            classify(&info(Termination::Signaled(11)), false),
            Status::Signaled
        );
        // An OOM kill anywhere beats the payload's own end.
        assert_eq!(
            classify(&oom(info(Termination::Signaled(9))), false),
            Status::MemoryLimit
        );
        assert_eq!(
            classify(&oom(info(Termination::Exited(0))), false),
            Status::MemoryLimit
        );
        // The supervisor's kill beats everything the payload did afterwards, even an exit 0
        // during the kill grace, and an OOM kill.
        for t in [Termination::Signaled(9), Termination::Exited(0)] {
            let mut i = oom(info(t));
            i.limit_hit = Some(LimitHit::CpuTime);
            assert_eq!(classify(&i, false), Status::TimedOut);
        }
        // Without a cgroup there is no OOM figure: a SIGKILL is just a signal.
        let mut i = info(Termination::Signaled(9));
        i.cgroup = None;
        assert_eq!(classify(&i, false), Status::Signaled);
    }

    #[test]
    fn json_has_exactly_the_documented_fields() {
        let r = RunReport::from_exit(&info(Termination::Exited(0)), None);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "cgroup_memory_peak",
                "cpu_time",
                "exit_code",
                "killed_by_supervisor",
                "max_rss",
                "message",
                "oom_killed",
                "signal",
                "status",
                "wall_time"
            ]
        );
        assert_eq!(v["status"], "OK");
        assert_eq!(v["exit_code"], 0);
        assert!(v["signal"].is_null());
        assert_eq!(v["cpu_time"], 1.000123);
        assert_eq!(v["wall_time"], 1.5);
        assert_eq!(v["max_rss"], 2048);
        // Rounded up to whole KiB.
        assert_eq!(v["cgroup_memory_peak"], 4097);
        assert_eq!(v["oom_killed"], false);
        assert_eq!(v["killed_by_supervisor"], false);
        assert_eq!(v["message"], "Exited normally");
        assert!(r.to_json().ends_with("}\n"));
    }

    #[test]
    fn json_per_status() {
        let r = RunReport::from_exit(&info(Termination::Signaled(25)), None);
        assert_eq!(
            (r.status, r.exit_code, r.signal),
            (Status::Signaled, None, Some(25))
        );
        assert_eq!(r.message, "Caught fatal signal 25 (SIGXFSZ)");

        let mut i = info(Termination::Signaled(9));
        i.limit_hit = Some(LimitHit::WallTime);
        let r = RunReport::from_exit(&i, None);
        assert_eq!(r.status, Status::TimedOut);
        assert!(r.killed_by_supervisor);
        assert_eq!(r.message, "Time limit exceeded (wall clock)");

        let r = RunReport::from_exit(&oom(info(Termination::Signaled(9))), None);
        assert_eq!(r.status, Status::MemoryLimit);
        assert!(r.oom_killed && !r.killed_by_supervisor);
        assert_eq!(r.cgroup_memory_peak, Some(65536));

        let r = RunReport::from_exit(&info(Termination::Exited(127)), Some("cannot execute"));
        assert_eq!((r.status, r.exit_code), (Status::InternalError, None));
        assert_eq!(r.message, "cannot execute");

        let r = RunReport::internal_error("clone3: no");
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["status"], "XX");
        assert!(v["exit_code"].is_null() && v["cgroup_memory_peak"].is_null());
        assert_eq!(v["message"], "clone3: no");

        let mut i = info(Termination::Exited(0));
        i.cgroup = None;
        let v: serde_json::Value =
            serde_json::from_str(&RunReport::from_exit(&i, None).to_json()).unwrap();
        assert!(v["cgroup_memory_peak"].is_null());
    }

    fn meta_map(s: &str) -> Vec<(String, String)> {
        s.lines()
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn meta_format_is_isolates() {
        let r = RunReport::from_exit(&info(Termination::Exited(0)), None);
        let m = meta_map(&r.to_meta());
        let get = |k: &str| m.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("time"), Some("1.000"));
        assert_eq!(get("time-wall"), Some("1.500"));
        assert_eq!(get("max-rss"), Some("2048"));
        assert_eq!(get("csw-voluntary"), Some("3"));
        assert_eq!(get("csw-forced"), Some("4"));
        assert_eq!(get("cg-enabled"), Some("1"));
        assert_eq!(get("cg-mem"), Some("4097"));
        assert_eq!(get("exitcode"), Some("0"));
        assert_eq!(get("status"), None);
        assert_eq!(get("message"), None);
        assert_eq!(get("exitsig"), None);
        assert_eq!(get("killed"), None);
        assert_eq!(get("cg-oom-killed"), None);

        let mut i = info(Termination::Signaled(9));
        i.limit_hit = Some(LimitHit::CpuTime);
        let m = meta_map(&RunReport::from_exit(&i, None).to_meta());
        assert!(m.contains(&("status".into(), "TO".into())));
        assert!(m.contains(&("killed".into(), "1".into())));
        assert!(m.contains(&("exitsig".into(), "9".into())));
        assert!(m.contains(&("message".into(), "Time limit exceeded".into())));

        // isolate has no ML: the process's own end, plus cg-oom-killed.
        let m =
            meta_map(&RunReport::from_exit(&oom(info(Termination::Signaled(9))), None).to_meta());
        assert!(m.contains(&("status".into(), "SG".into())));
        assert!(m.contains(&("cg-oom-killed".into(), "1".into())));
        let m = meta_map(&RunReport::from_exit(&oom(info(Termination::Exited(1))), None).to_meta());
        assert!(m.contains(&("status".into(), "RE".into())));

        let m = meta_map(&RunReport::internal_error("a\nb").to_meta());
        assert!(m.contains(&("status".into(), "XX".into())));
        assert!(m.contains(&("message".into(), "a b".into())));
        assert!(!m.iter().any(|(k, _)| k == "cg-enabled" || k == "exitcode"));
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(25), Some("SIGXFSZ"));
        assert_eq!(signal_name(31), Some("SIGSYS"));
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(32), None);
        assert_eq!(signal_name(-1), None);
    }
}
