//! The spawn request: the single description of a sandbox. The CLI builds it (from its flags and
//! profiles), the helper validates it and carries it out.

use serde::{Deserialize, Serialize};

use crate::caps::CapSet;
use crate::landlock::LandlockMode;
use crate::limits::RlimitSetting;
use crate::mounts::MountOp;
use crate::seccomp::SeccompMode;

/// Everything the helper needs to start one sandbox. A new feature's fields go here, so that the
/// CLI, profiles and policy all produce or check this one type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnRequest {
    /// The program and its arguments; `argv[0]` is what the payload sees as its name.
    pub argv: Vec<String>,
    /// What to execute, looked up in `PATH` (from `env`) when it has no slash. Usually
    /// `argv[0]`, different when `--argv0` was given.
    pub program: String,
    /// The payload's complete environment, `KEY=VALUE` pairs, in order.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox; `None` keeps the caller's when it is reachable,
    /// else `/`.
    pub cwd: Option<String>,
    /// The working directory the caller had, used when `cwd` is `None`.
    pub caller_cwd: Option<String>,
    pub namespaces: Namespaces,
    pub ids: IdMapping,
    /// Hostname inside a new UTS namespace.
    pub hostname: String,
    /// Run the payload itself as PID 1 instead of behind the small init.
    pub as_pid_1: bool,
    /// Ask the helper to report each set-up step as an event.
    pub verbose: bool,
    /// The new root, built by these operations in order on an empty tmpfs.
    pub mounts: Vec<MountOp>,
    /// How many fds beyond stdin, stdout and stderr travel with the request (for `--file`,
    /// `--bind-data` and the like, which refer to them by index).
    pub extra_fds: u32,
    /// Fds of the caller's the payload gets, at these numbers (each at least 3), open and not
    /// close-on-exec when it starts: `--pass-fd`, and what `bwrap` passes on as bubblewrap does.
    /// The fds themselves travel after the extra fds, in this order. Only the payload gets them,
    /// never the sandbox's init.
    pub pass_fds: Vec<u32>,
    /// Resource limits, time limits and accounting.
    pub limits: Limits,
    /// Outbound network through `pasta` (run as the caller, in the host's network namespace)
    /// into the sandbox's new network namespace; `None`: only `lo` (or the host's namespace
    /// when `namespaces.net` is false).
    pub pasta: Option<Pasta>,
    /// The payload's seccomp filter: the default deny list, none, or the caller's profile as a
    /// BPF program the CLI compiled (which the policy lets replace the default filter or not).
    pub seccomp: SeccompMode,
    /// Raw BPF programs (`--add-seccomp-fd`), as the caller's fds held them: the CLI reads them
    /// (as the caller, bounded in size and time), the helper checks only their framing and
    /// installs each on top of `seccomp`. Never fds: the helper reads nothing the caller chose.
    pub seccomp_programs: Vec<Vec<u8>>,
    /// Whether the payload runs under a Landlock ruleset mirroring its view (see `landlock`).
    pub landlock: LandlockMode,
    /// Let the payload create nested user namespaces (the default filter denies it).
    pub allow_userns: bool,
    /// Let the payload use ptrace (the default filter denies it).
    pub allow_ptrace: bool,
    /// The capabilities the payload keeps, inside its user namespace (default: none).
    pub caps: CapSet,
    /// The uid map; empty: the caller's own uid outside mapped to `ids.uid` inside.
    pub uid_map: Vec<IdRange>,
    /// The gid map; empty: the caller's own gid outside mapped to `ids.gid` inside.
    pub gid_map: Vec<IdRange>,
    /// Stdin is a pseudo-terminal the CLI made for the payload: where the sandbox has a
    /// `/dev/ptmx`, give the payload a pseudo-terminal of the sandbox's own instead (so that
    /// `tty` names a terminal that exists inside) and send its master back
    /// ([`crate::HelperEvent::Terminal`]).
    pub terminal: bool,
}

/// How the sandbox reaches the network through `pasta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Pasta {
    /// TCP ports forwarded from the host into the sandbox; nothing else is forwarded.
    pub forward_tcp: Vec<PortForward>,
}

/// A TCP port of the host (all its addresses) forwarded to a port inside the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    pub host: u16,
    pub sandbox: u16,
}

/// One line of an ID map: `count` ids from `inside` map to `count` ids from `outside`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Which namespaces are new. User, mount and PID namespaces are always new: the whole design
/// (root inside, private mounts, an init that owns the sandbox's processes) depends on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
    pub time: bool,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            net: true,
            ipc: true,
            uts: true,
            cgroup: true,
            time: false,
        }
    }
}

/// The ids the payload runs as inside its user namespace. The caller's own uid and gid outside
/// are mapped to these; nothing else is mapped unless the admin policy grants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IdMapping {
    pub uid: u32,
    pub gid: u32,
}

/// The hostname a sandbox gets unless `--hostname` says otherwise.
pub const DEFAULT_HOSTNAME: &str = "sandbox";

impl SpawnRequest {
    /// A request to run `argv` with every default: all namespaces new, root inside, hostname
    /// `sandbox`, empty environment.
    pub fn new(argv: Vec<String>) -> Self {
        let program = argv.first().cloned().unwrap_or_default();
        SpawnRequest {
            argv,
            program,
            env: Vec::new(),
            cwd: None,
            caller_cwd: None,
            namespaces: Namespaces::default(),
            ids: IdMapping::default(),
            hostname: DEFAULT_HOSTNAME.to_string(),
            as_pid_1: false,
            verbose: false,
            mounts: Vec::new(),
            extra_fds: 0,
            pass_fds: Vec::new(),
            limits: Limits::default(),
            pasta: None,
            seccomp: SeccompMode::Default,
            seccomp_programs: Vec::new(),
            landlock: LandlockMode::Auto,
            allow_userns: false,
            allow_ptrace: false,
            caps: CapSet::EMPTY,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            terminal: false,
        }
    }

    /// The value of `PATH` the payload will see, if it has one.
    pub fn path_var(&self) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
    }
}

/// Which cgroup hierarchy the helper uses for a sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CgroupVersion {
    /// v2 when its memory controller is available, else v1 where v1 hierarchies are mounted.
    #[default]
    Auto,
    V1,
    V2,
}

/// What the sandbox may use, and whether its usage is measured. Every `None` is "no limit".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Limits {
    /// `setrlimit` calls made in the payload before exec, at most one per resource. Without a
    /// `core` entry the helper sets `core` to 0:0 (no core dumps).
    pub rlimits: Vec<RlimitSetting>,
    /// CPU time (user + system) of every process of the sandbox together, microseconds.
    pub cpu_time_us: Option<u64>,
    /// Wall-clock time from the start of the sandbox, microseconds.
    pub wall_time_us: Option<u64>,
    /// When a time limit is hit: SIGTERM to every process, then SIGKILL after this long.
    /// 0: SIGKILL at once.
    pub kill_grace_us: u64,
    /// Memory of the sandbox's cgroup, bytes; swap is not allowed on top.
    pub memory_bytes: Option<u64>,
    /// Processes (tasks) of the payload; nsjail's own init is not counted.
    pub pids: Option<u64>,
    /// CPU bandwidth in thousandths of a CPU (500 = half a CPU).
    pub cpu_millis: Option<u64>,
    /// The cgroup hierarchy to use.
    pub cgroup_version: CgroupVersion,
    /// Measure usage (memory peak, OOM kills, CPU of the whole sandbox) in a cgroup when the
    /// helper can create one, even if no limit needs it; set when a report was asked for.
    pub account: bool,
}

impl Limits {
    /// Limits that only a cgroup can enforce; a helper without privilege refuses them.
    pub fn cgroup_limits(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.memory_bytes.is_some() {
            v.push("--memory-limit");
        }
        if self.pids.is_some() {
            v.push("--pids-limit");
        }
        if self.cpu_millis.is_some() {
            v.push("--cpus");
        }
        if self.cpu_time_us.is_some() {
            v.push("--time-limit");
        }
        v
    }

    /// Whether the helper should create a cgroup for this sandbox (when it can).
    pub fn wants_cgroup(&self) -> bool {
        self.account || !self.cgroup_limits().is_empty()
    }
}
