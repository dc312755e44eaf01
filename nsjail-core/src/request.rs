//! The spawn request: the single description of a sandbox. The CLI (and later profiles) build it,
//! the helper validates it and carries it out.

use serde::{Deserialize, Serialize};

use crate::caps::CapSet;
use crate::seccomp::SeccompMode;

/// Everything the helper needs to start one sandbox. Fields that later features add go here, so
/// that the CLI, profiles and policy all produce or check this one type.
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
    /// The payload's seccomp filter: the default deny list, none, or a custom profile.
    pub seccomp: SeccompMode,
    /// How many raw BPF programs (`--add-seccomp-fd`) travel as fds after the three stdio fds;
    /// each is installed on top of `seccomp`.
    pub seccomp_fds: u8,
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
/// are mapped to these; nothing else is mapped unless a later policy grants it.
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
            seccomp: SeccompMode::Default,
            seccomp_fds: 0,
            allow_userns: false,
            allow_ptrace: false,
            caps: CapSet::EMPTY,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
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
