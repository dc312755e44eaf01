//! The command line, and how it becomes a spawn request.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nsjail_core::caps::{self, CapSet};
use nsjail_core::landlock::LandlockMode;
use nsjail_core::limits::RlimitSetting;
use nsjail_core::request::{CgroupVersion, DEFAULT_HOSTNAME};
use nsjail_core::{IdMapping, IdRange, Limits, Namespaces, SpawnRequest};

use crate::limit_args;

#[derive(Parser, Debug)]
#[command(
    name = "nsjail",
    version,
    about = "Run a program in a sandbox of new Linux namespaces, as root inside and as yourself outside",
    after_help = EXAMPLES,
    // A profile's options come first on the command line and the user's after them: the later
    // value of a single-value option wins (repeatable options keep every use, in order).
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Shown at the end of `nsjail --help` and `nsjail run --help`.
pub const EXAMPLES: &str = "Examples:
  nsjail run -- sh -c 'id; hostname'            # default view: system read-only, cwd writable
  nsjail run --profile devtool -- make          # a named profile (nsjail profile list)
  nsjail run --net pasta -- curl -I https://example.org
  nsjail run --x11 --pulseaudio -- xeyes        # one display socket and the sound socket
  nsjail run --dry-run --profile gui -- firefox # print the resolved sandbox, run nothing
  nsjail run --ro-bind / / --proc /proc --dev /dev --tmpfs /tmp -- env  # a view of your own
  nsjail profile show judge                     # what a profile resolves to
  nsjail bwrap --ro-bind / / --unshare-net -- id  # bubblewrap's command line (also run as `bwrap`)";

#[derive(Subcommand, Debug)]
// One value per process, parsed once: boxing RunArgs would only obscure the code.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run CMD in a new sandbox. Everything after CMD (or after `--`) is CMD's own arguments.
    #[command(after_help = EXAMPLES)]
    Run(RunArgs),
    /// List or show profiles (~/.config/nsjail/profiles, /etc/nsjail/profiles, built-in).
    #[command(subcommand)]
    Profile(ProfileCommand),
}

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// List every profile that can be used, where it comes from, and which are shadowed
    List,
    /// Show a profile fully resolved: its files, the options it adds, the resulting sandbox
    Show {
        /// The profile's name
        name: String,
    },
}

/// `--net`: how the sandbox reaches the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetMode {
    /// A new network namespace with only `lo`
    None,
    /// The host's network namespace (same as --share-net)
    Host,
    /// A new network namespace with outbound access through pasta, run as you
    Pasta,
}

/// `--dry-run=FORMAT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Keep the host's network namespace [default: a new one with only `lo`]
    #[arg(long)]
    pub share_net: bool,
    /// Keep the host's IPC namespace [default: a new one]
    #[arg(long)]
    pub share_ipc: bool,
    /// Keep the host's UTS namespace (hostname) [default: a new one]
    #[arg(long)]
    pub share_uts: bool,
    /// Keep the host's cgroup namespace [default: a new one]
    #[arg(long)]
    pub share_cgroup: bool,
    /// Also create a new time namespace [default: the host's]
    #[arg(long)]
    pub unshare_time: bool,

    /// User id inside the sandbox; your own uid outside is mapped to it
    #[arg(long, value_name = "UID", default_value_t = 0)]
    pub uid: u32,
    /// Group id inside the sandbox; your own gid outside is mapped to it
    #[arg(long, value_name = "GID", default_value_t = 0)]
    pub gid: u32,
    /// Hostname inside (needs a new UTS namespace)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_HOSTNAME)]
    pub hostname: String,
    /// Working directory inside [default: the current directory, else /]
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<String>,

    /// Set an environment variable (repeatable) [default: none]
    #[arg(long, num_args = 2, value_names = ["KEY", "VALUE"], action = clap::ArgAction::Append)]
    pub setenv: Vec<String>,
    /// Remove an environment variable (repeatable) [default: none]
    #[arg(long, value_name = "KEY", action = clap::ArgAction::Append)]
    pub unsetenv: Vec<String>,
    /// Start from an empty environment instead of yours [default: yours]
    #[arg(long)]
    pub clearenv: bool,
    /// The name CMD sees as its argv[0] [default: CMD]
    #[arg(long, value_name = "NAME")]
    pub argv0: Option<String>,

    /// Run CMD itself as PID 1 instead of behind nsjail's small init [default: behind the init]
    #[arg(long)]
    pub as_pid_1: bool,
    /// Give CMD your open file descriptor FD, at the same number (3 to 1023, at most 64 of them;
    /// repeatable) [default: only stdin, stdout and stderr]
    #[arg(long, value_name = "FD")]
    pub pass_fd: Vec<u32>,
    /// The helper to use [default: $NSJAIL_HELPER, next to nsjail, ../libexec/nsjail/, then the install location]
    #[arg(long, value_name = "PATH")]
    pub helper: Option<PathBuf>,
    /// Say how the helper was reached and each set-up step, on stderr [default: quiet]
    #[arg(long, short)]
    pub verbose: bool,

    // Filesystem view. Every option below builds the new root in the order given; any of them
    // replaces the default view unless --default-view is also given.
    /// Bind SRC (on the host) at DST, read-write, nosuid,nodev [default: none]
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub bind: Vec<String>,
    /// As --bind, skipped when SRC does not exist [default: none]
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub bind_try: Vec<String>,
    /// Bind SRC at DST read-only (every submount too) [default: none]
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub ro_bind: Vec<String>,
    /// As --ro-bind, skipped when SRC does not exist [default: none]
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub ro_bind_try: Vec<String>,
    /// Bind SRC at DST read-write with device nodes usable [default: none]
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub dev_bind: Vec<String>,
    /// As --dev-bind, skipped when SRC does not exist [default: none]
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub dev_bind_try: Vec<String>,
    /// A new tmpfs at DST [default mode 0755, size: the kernel's default]
    #[arg(long, value_name = "DST", action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub tmpfs: Vec<String>,
    /// A new /proc (of the sandbox's pid namespace) at DST [default: none]
    #[arg(long, value_name = "DST", action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub proc: Vec<String>,
    /// A minimal /dev at DST: null zero full random urandom tty, a new devpts, shm [default: none]
    #[arg(long, value_name = "DST", action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub dev: Vec<String>,
    /// A new mqueue filesystem at DST (needs a new IPC namespace) [default: none]
    #[arg(long, value_name = "DST", action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub mqueue: Vec<String>,
    /// Create directory DST [default mode 0755]
    #[arg(long, value_name = "DST", action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub dir: Vec<String>,
    /// Create symlink LINK pointing at TARGET [default: none]
    #[arg(long, num_args = 2, value_names = ["TARGET", "LINK"], action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub symlink: Vec<String>,
    /// Copy the contents of file descriptor FD to a new file DST [default mode 0644]
    #[arg(long, num_args = 2, value_names = ["FD", "DST"], action = clap::ArgAction::Append, allow_hyphen_values = true, help_heading = "Filesystem view")]
    pub file: Vec<String>,
    /// Bind a file holding the contents of FD at DST [default: none]
    #[arg(long, num_args = 2, value_names = ["FD", "DST"], action = clap::ArgAction::Append, allow_hyphen_values = true, help_heading = "Filesystem view")]
    pub bind_data: Vec<String>,
    /// As --bind-data, read-only [default: none]
    #[arg(long, num_args = 2, value_names = ["FD", "DST"], action = clap::ArgAction::Append, allow_hyphen_values = true, help_heading = "Filesystem view")]
    pub ro_bind_data: Vec<String>,
    /// Make DST (and everything under it) read-only [default: none]
    #[arg(long, value_name = "DST", action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub remount_ro: Vec<String>,
    /// Change the mode of PATH inside the sandbox [default: none]
    #[arg(long, num_args = 2, value_names = ["OCTAL", "PATH"], action = clap::ArgAction::Append, allow_hyphen_values = true, help_heading = "Filesystem view")]
    pub chmod: Vec<String>,
    /// Mode for the next --tmpfs, --dir, --file or --bind-data [default: none]
    #[arg(long, value_name = "OCTAL", action = clap::ArgAction::Append, allow_hyphen_values = true, help_heading = "Filesystem view")]
    pub perms: Vec<String>,
    /// Size in bytes (K, M, G suffixes allowed) for the next --tmpfs [default: none]
    #[arg(long, value_name = "BYTES", action = clap::ArgAction::Append, allow_hyphen_values = true, help_heading = "Filesystem view")]
    pub size: Vec<String>,
    /// A lower layer for the next overlay; each one goes above the ones before it [default: none]
    #[arg(long, value_name = "SRC", action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub overlay_src: Vec<String>,
    /// Overlay the sources at DST; writes go to a tmpfs that vanishes with the sandbox [default: none]
    #[arg(long, value_name = "DST", action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub tmp_overlay: Vec<String>,
    /// Overlay the sources (at least two) at DST, read-only [default: none]
    #[arg(long, value_name = "DST", action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub ro_overlay: Vec<String>,
    /// Overlay the sources at DST with writes going to RWSRC (WORKDIR: an empty directory on the same filesystem) [default: none]
    #[arg(long, num_args = 3, value_names = ["RWSRC", "WORKDIR", "DST"], action = clap::ArgAction::Append, help_heading = "Filesystem view")]
    pub overlay: Vec<String>,
    /// Keep the default view and add the options above to it [default: they replace it]
    #[arg(long, help_heading = "Filesystem view")]
    pub default_view: bool,
    /// In the default view, do not bind the current directory [default: bound read-write]
    #[arg(long, help_heading = "Filesystem view")]
    pub no_cwd: bool,
    /// A resource limit of CMD (repeatable): NAME=SOFT[:HARD], NAME one of as, core, cpu, data,
    /// fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending,
    /// stack; values are numbers with an optional K, M, G or T suffix, or `inf`; without :HARD
    /// the hard limit is SOFT [default: yours, except core=0 (no core dumps)]
    #[arg(long, value_name = "NAME=SOFT[:HARD]", value_parser = rlimit_arg,
          action = clap::ArgAction::Append, allow_hyphen_values = true,
          help_heading = "Limits")]
    pub rlimit: Vec<RlimitSetting>,
    /// CPU time limit of the whole sandbox (user + system of every process), in seconds,
    /// fractions allowed; needs a cgroup [default: none]
    #[arg(long, value_name = "SECS", value_parser = seconds_arg, allow_hyphen_values = true,
          help_heading = "Limits")]
    pub time_limit: Option<u64>,
    /// Wall-clock time limit, in seconds, fractions allowed [default: none]
    #[arg(long, value_name = "SECS", value_parser = seconds_arg, allow_hyphen_values = true,
          help_heading = "Limits")]
    pub wall_time_limit: Option<u64>,
    /// When a time limit is reached: SIGTERM to every process of the sandbox, then SIGKILL after
    /// SECS [default: 0, SIGKILL at once]
    #[arg(long, value_name = "SECS", value_parser = seconds_arg, allow_hyphen_values = true,
          default_value = "0", hide_default_value = true, help_heading = "Limits")]
    pub kill_grace: u64,
    /// Memory limit of the whole sandbox (its cgroup), e.g. 64M or 1G; swap is off
    /// [default: none]
    #[arg(long, value_name = "SIZE", value_parser = size_arg, allow_hyphen_values = true,
          help_heading = "Limits")]
    pub memory_limit: Option<u64>,
    /// At most N processes (and threads) of CMD at once; nsjail's own init is not counted
    /// [default: none]
    #[arg(long, value_name = "N", value_parser = size_arg, allow_hyphen_values = true,
          help_heading = "Limits")]
    pub pids_limit: Option<u64>,
    /// CPU bandwidth of the sandbox in CPUs, e.g. 0.5 for half of one [default: no limit]
    #[arg(long, value_name = "FRACTION", value_parser = cpus_arg, allow_hyphen_values = true,
          help_heading = "Limits")]
    pub cpus: Option<u64>,
    /// The cgroup hierarchy to use on a host that has both [default: auto: 2 when cgroup v2 has
    /// the memory controller, else 1]
    #[arg(long, value_name = "VERSION", value_enum, default_value_t = CgroupVersionArg::Auto,
          hide_default_value = true, help_heading = "Limits")]
    pub cgroup_version: CgroupVersionArg,

    /// When the sandbox ends, write the run report to FILE as one JSON object (see
    /// docs/judges.md) [default: none]
    #[arg(long, value_name = "FILE", help_heading = "Report")]
    pub status_json: Option<PathBuf>,
    /// Write the JSON run report to this open file descriptor (a file, pipe or terminal)
    /// [default: none]
    #[arg(long, value_name = "FD", help_heading = "Report")]
    pub status_fd: Option<u32>,
    /// Write the run report to FILE in isolate's meta format (key:value lines) [default: none]
    #[arg(long, value_name = "FILE", help_heading = "Report")]
    pub meta: Option<PathBuf>,

    /// Add the options of profile NAME before the command line's own (repeatable; later wins) [default: none]
    #[arg(long, value_name = "NAME", action = clap::ArgAction::Append)]
    pub profile: Vec<String>,
    /// Print the fully resolved sandbox (text or json) instead of running it [default: run it]
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, require_equals = true, default_missing_value = "text")]
    pub dry_run: Option<DryRun>,

    /// Network: none (only lo), host (the host's namespace, = --share-net), or pasta (outbound through pasta, run as you)
    #[arg(
        long,
        value_name = "MODE",
        default_value = "none",
        help_heading = "Network"
    )]
    pub net: NetMode,
    /// With --net pasta: forward TCP port PORT of the host (or HOSTPORT to SANDBOXPORT) into the sandbox (repeatable) [default: none forwarded]
    #[arg(long, value_name = "PORT[:PORT]", action = clap::ArgAction::Append, help_heading = "Network")]
    pub forward_port: Vec<String>,

    /// Share the X11 display $DISPLAY: only its socket, and an Xauthority limited to it [default: no display]
    #[arg(long, help_heading = "Desktop")]
    pub x11: bool,
    /// Share the Wayland socket $XDG_RUNTIME_DIR/$WAYLAND_DISPLAY [default: not shared]
    #[arg(long, help_heading = "Desktop")]
    pub wayland: bool,
    /// Share the PulseAudio socket $XDG_RUNTIME_DIR/pulse/native [default: not shared]
    #[arg(long, help_heading = "Desktop")]
    pub pulseaudio: bool,
    /// Share the PipeWire socket $XDG_RUNTIME_DIR/pipewire-0 [default: not shared]
    #[arg(long, help_heading = "Desktop")]
    pub pipewire: bool,
    /// Make the GPU usable: /dev/dri (and NVIDIA's nodes when present), /sys/dev/char and /sys/devices read-only [default: no GPU]
    #[arg(long, help_heading = "Desktop")]
    pub gpu: bool,
    /// Share the D-Bus session bus only through xdg-dbus-proxy's filter, run as you, at $XDG_RUNTIME_DIR/bus inside; refused when it is not installed [default: not shared, and $DBUS_SESSION_BUS_ADDRESS removed]
    #[arg(long, help_heading = "Desktop")]
    pub dbus_session: bool,
    /// With --dbus-session: let the program talk to bus name NAME, or to every name under a
    /// prefix with NAME.* (repeatable) [default: none; only the bus itself]
    #[arg(long, value_name = "NAME", action = clap::ArgAction::Append, help_heading = "Desktop")]
    pub dbus_talk: Vec<String>,
    /// The helper daemon's socket, tried before the setuid helper; `none` skips the daemon
    /// [default: not with --helper; else $NSJAIL_SOCKET; not with $NSJAIL_HELPER; else
    /// /run/nsjail/helper.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Seccomp filter: `none`, or an OCI/Docker JSON profile FILE that replaces the default
    /// filter (or is added on top of it where the admin policy forbids running without it)
    /// [default: nsjail's deny list]
    #[arg(long, value_name = "none|FILE")]
    pub seccomp: Option<String>,
    /// Also install the raw BPF program read from descriptor FD (as bubblewrap's option; repeatable,
    /// at most 5) [default: none]
    #[arg(long, value_name = "FD", action = clap::ArgAction::Append)]
    pub add_seccomp_fd: Vec<i32>,
    /// Landlock behind the filesystem view: CMD may read, write and execute only where the view
    /// lets it (`auto`: where the kernel has Landlock ABI 2 or newer, and not with
    /// --allow-userns or CAP_SYS_ADMIN, which are for mounting; `on`: always, or refuse)
    /// [default: auto]
    #[arg(long, value_name = "auto|on|off", value_enum, default_value_t = LandlockArg::Auto,
          hide_default_value = true)]
    pub landlock: LandlockArg,
    /// Let CMD create nested user namespaces [default: denied by the seccomp filter]
    #[arg(long)]
    pub allow_userns: bool,
    /// Let CMD use ptrace inside the sandbox [default: denied by the seccomp filter]
    #[arg(long)]
    pub allow_ptrace: bool,
    /// Keep capability CAP (e.g. CAP_NET_ADMIN, or ALL) in CMD, inside the sandbox's own user
    /// namespace only (repeatable) [default: no capabilities]
    #[arg(long, value_name = "CAP", value_parser = parse_caps, action = clap::ArgAction::Append)]
    pub cap_add: Vec<CapSet>,
    /// Remove capability CAP from what --cap-add gave (repeatable) [default: none]
    #[arg(long, value_name = "CAP", value_parser = parse_caps, action = clap::ArgAction::Append)]
    pub cap_drop: Vec<CapSet>,
    /// Map COUNT uids from OUTSIDE (host) to INSIDE (repeatable; replaces the default map of
    /// your own uid). Beyond your own uid only what the admin policy grants you
    /// [default: your uid to --uid]
    #[arg(long, value_name = "INSIDE:OUTSIDE:COUNT", value_parser = parse_range, action = clap::ArgAction::Append)]
    pub map_uid: Vec<IdRange>,
    /// Map COUNT gids from OUTSIDE (host) to INSIDE (repeatable; as --map-uid)
    /// [default: your gid to --gid]
    #[arg(long, value_name = "INSIDE:OUTSIDE:COUNT", value_parser = parse_range, action = clap::ArgAction::Append)]
    pub map_gid: Vec<IdRange>,

    /// The command to run and its arguments
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `--landlock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LandlockArg {
    Auto,
    On,
    Off,
}

/// `--cgroup-version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CgroupVersionArg {
    Auto,
    #[value(name = "1")]
    V1,
    #[value(name = "2")]
    V2,
}

fn rlimit_arg(s: &str) -> Result<RlimitSetting, String> {
    limit_args::parse_rlimit(s).map_err(|e| e.to_string())
}

fn seconds_arg(s: &str) -> Result<u64, String> {
    limit_args::parse_seconds(s).map_err(|e| e.to_string())
}

fn size_arg(s: &str) -> Result<u64, String> {
    limit_args::parse_size(s).map_err(|e| e.to_string())
}

fn cpus_arg(s: &str) -> Result<u64, String> {
    limit_args::parse_cpus(s).map_err(|e| e.to_string())
}

fn parse_caps(s: &str) -> Result<CapSet, String> {
    caps::parse_caps(s).map_err(|e| e.to_string())
}

fn parse_range(s: &str) -> Result<IdRange, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |p: &str| p.trim().parse::<u32>().ok();
    match parts.as_slice() {
        [i, o, c] => match (num(i), num(o), num(c)) {
            (Some(inside), Some(outside), Some(count)) => Ok(IdRange {
                inside,
                outside,
                count,
            }),
            _ => Err(format!("{s:?}: INSIDE, OUTSIDE and COUNT must be numbers")),
        },
        _ => Err(format!("{s:?}: expected INSIDE:OUTSIDE:COUNT")),
    }
}

impl RunArgs {
    /// The capabilities CMD keeps: everything added, less everything dropped.
    pub fn caps(&self) -> CapSet {
        let added = self.cap_add.iter().fold(0, |a, c| a | c.0);
        let dropped = self.cap_drop.iter().fold(0, |a, c| a | c.0);
        CapSet(added & !dropped)
    }

    /// The spawn request this command line describes. `env` is the caller's environment and
    /// `cwd` its working directory.
    pub fn to_request(
        &self,
        env: impl Iterator<Item = (String, String)>,
        cwd: Option<String>,
        mounts: Vec<nsjail_core::MountOp>,
        extra_fds: u32,
    ) -> SpawnRequest {
        let mut req = SpawnRequest::new(self.command.clone());
        req.mounts = mounts;
        req.extra_fds = extra_fds;
        if let Some(name) = &self.argv0 {
            req.argv[0] = name.clone();
        }
        let mut vars: Vec<(String, String)> = if self.clearenv {
            Vec::new()
        } else {
            env.collect()
        };
        vars.retain(|(k, _)| !self.unsetenv.contains(k));
        for pair in self.setenv.chunks(2) {
            if let [k, v] = pair {
                vars.retain(|(key, _)| key != k);
                vars.push((k.clone(), v.clone()));
            }
        }
        req.env = vars;
        req.cwd = self.chdir.clone();
        req.caller_cwd = cwd;
        req.namespaces = Namespaces {
            net: !self.share_net,
            ipc: !self.share_ipc,
            uts: !self.share_uts,
            cgroup: !self.share_cgroup,
            time: self.unshare_time,
        };
        req.ids = IdMapping {
            uid: self.uid,
            gid: self.gid,
        };
        req.hostname = self.hostname.clone();
        req.as_pid_1 = self.as_pid_1;
        req.verbose = self.verbose;
        req.limits = self.limits();
        req.landlock = match self.landlock {
            LandlockArg::Auto => LandlockMode::Auto,
            LandlockArg::On => LandlockMode::On,
            LandlockArg::Off => LandlockMode::Off,
        };
        req.allow_userns = self.allow_userns;
        req.allow_ptrace = self.allow_ptrace;
        req.caps = self.caps();
        req.uid_map = self.map_uid.clone();
        req.gid_map = self.map_gid.clone();
        // `seccomp` needs the profile file read: see `seccomp::choose`.
        req
    }

    /// Whether a run report was asked for.
    pub fn wants_report(&self) -> bool {
        self.status_json.is_some() || self.status_fd.is_some() || self.meta.is_some()
    }

    fn limits(&self) -> Limits {
        // A later --rlimit for the same resource replaces an earlier one.
        let mut rlimits: Vec<RlimitSetting> = Vec::new();
        for r in &self.rlimit {
            rlimits.retain(|x| x.resource != r.resource);
            rlimits.push(*r);
        }
        Limits {
            rlimits,
            cpu_time_us: self.time_limit,
            wall_time_us: self.wall_time_limit,
            kill_grace_us: self.kill_grace,
            memory_bytes: self.memory_limit,
            pids: self.pids_limit,
            cpu_millis: self.cpus,
            cgroup_version: match self.cgroup_version {
                CgroupVersionArg::Auto => CgroupVersion::Auto,
                CgroupVersionArg::V1 => CgroupVersion::V1,
                CgroupVersionArg::V2 => CgroupVersion::V2,
            },
            account: self.wants_report(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut v = vec!["nsjail", "run"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| match c.command {
            Command::Run(r) => r,
            Command::Profile(_) => panic!("not run"),
        })
    }

    #[test]
    fn options_after_the_command_belong_to_the_command() {
        // firejail CVE-2020-17367: nothing after `--` (or after CMD) is parsed as our option.
        let r = parse(&["--", "sh", "--share-net", "--helper", "/x"]).unwrap();
        assert_eq!(r.command, ["sh", "--share-net", "--helper", "/x"]);
        assert!(!r.share_net && r.helper.is_none());
        let r = parse(&["id", "-u", "--verbose"]).unwrap();
        assert_eq!(r.command, ["id", "-u", "--verbose"]);
        assert!(!r.verbose);
    }

    #[test]
    fn defaults_and_environment() {
        let r = parse(&["--setenv", "A", "1", "--unsetenv", "B", "--", "env"]).unwrap();
        let env = vec![
            ("B".into(), "2".into()),
            ("A".into(), "0".into()),
            ("C".into(), "3".into()),
        ];
        let req = r.to_request(env.into_iter(), Some("/w".into()), Vec::new(), 0);
        assert_eq!(
            req.env,
            vec![("C".into(), "3".into()), ("A".into(), "1".into())]
        );
        assert_eq!(req.hostname, "sandbox");
        assert_eq!(req.namespaces, Namespaces::default());
        assert_eq!(req.ids, IdMapping { uid: 0, gid: 0 });
        assert_eq!(req.caller_cwd.as_deref(), Some("/w"));

        let r = parse(&[
            "--clearenv",
            "--argv0",
            "x",
            "--share-net",
            "--unshare-time",
            "--",
            "env",
        ])
        .unwrap();
        let req = r.to_request(
            vec![("A".into(), "1".into())].into_iter(),
            None,
            Vec::new(),
            0,
        );
        assert!(req.env.is_empty());
        assert_eq!(req.argv, ["x"]);
        assert_eq!(req.program, "env");
        assert!(!req.namespaces.net && req.namespaces.time);
    }

    #[test]
    fn later_single_values_win_and_repeatable_ones_accumulate() {
        let r = parse(&[
            "--hostname",
            "a",
            "--share-net",
            "--tmpfs",
            "/x",
            "--hostname",
            "b",
            "--share-net",
            "--tmpfs",
            "/y",
            "--",
            "id",
        ])
        .unwrap();
        assert_eq!(r.hostname, "b");
        assert!(r.share_net);
        assert_eq!(r.tmpfs, ["/x", "/y"]);
        assert_eq!(
            parse(&["--dry-run", "--", "id"]).unwrap().dry_run,
            Some(DryRun::Text)
        );
        assert_eq!(
            parse(&["--dry-run=json", "--", "id"]).unwrap().dry_run,
            Some(DryRun::Json)
        );
        assert_eq!(parse(&["--", "id"]).unwrap().net, NetMode::None);
    }

    #[test]
    fn every_option_says_its_default() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let run = cmd.find_subcommand("run").unwrap();
        for a in run.get_arguments() {
            if a.is_positional() || ["help", "version"].contains(&a.get_id().as_str()) {
                continue;
            }
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            let ok = help.contains("[default") || !a.get_default_values().is_empty();
            assert!(ok, "--{} does not say its default: {help:?}", a.get_id());
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--uid", "-1", "--", "id"]).is_err());
        assert!(parse(&["--bogus", "--", "id"]).is_err());
    }

    #[test]
    fn limits_become_the_request() {
        let r = parse(&[
            "--rlimit",
            "nofile=10:20",
            "--rlimit",
            "fsize=1M",
            "--rlimit",
            "nofile=30",
            "--time-limit",
            "1.5",
            "--wall-time-limit",
            "3",
            "--kill-grace",
            "0.25",
            "--memory-limit",
            "64M",
            "--pids-limit",
            "16",
            "--cpus",
            "0.5",
            "--cgroup-version",
            "1",
            "--status-json",
            "s.json",
            "--",
            "true",
        ])
        .unwrap();
        let l = r.to_request(std::iter::empty(), None, Vec::new(), 0).limits;
        use nsjail_core::limits::RlimitResource::{Fsize, Nofile};
        assert_eq!(
            l.rlimits
                .iter()
                .map(|r| (r.resource, r.soft, r.hard))
                .collect::<Vec<_>>(),
            [(Fsize, 1 << 20, 1 << 20), (Nofile, 30, 30)]
        );
        assert_eq!(l.cpu_time_us, Some(1_500_000));
        assert_eq!(l.wall_time_us, Some(3_000_000));
        assert_eq!(l.kill_grace_us, 250_000);
        assert_eq!(l.memory_bytes, Some(64 << 20));
        assert_eq!(l.pids, Some(16));
        assert_eq!(l.cpu_millis, Some(500));
        assert_eq!(l.cgroup_version, CgroupVersion::V1);
        assert!(l.account);

        let l = parse(&["--", "true"])
            .unwrap()
            .to_request(std::iter::empty(), None, Vec::new(), 0)
            .limits;
        assert_eq!(l, Limits::default());
        assert!(!l.wants_cgroup());
    }

    #[test]
    fn bad_limits_are_errors() {
        for args in [
            ["--rlimit", "bogus=1"],
            ["--rlimit", "nofile=-1"],
            ["--rlimit", "nofile=x"],
            ["--rlimit", "nofile=2:1"],
            ["--time-limit", "-1"],
            ["--time-limit", "soon"],
            ["--wall-time-limit", "1s"],
            ["--memory-limit", "-64M"],
            ["--memory-limit", "lots"],
            ["--pids-limit", "-1"],
            ["--cpus", "half"],
            ["--cgroup-version", "3"],
        ] {
            let mut v = args.to_vec();
            v.extend(["--", "true"]);
            assert!(parse(&v).is_err(), "{args:?}");
        }
    }

    #[test]
    fn hardening_flags() {
        let r = parse(&[
            "--cap-add",
            "ALL",
            "--cap-drop",
            "sys_admin",
            "--cap-add",
            "CAP_NET_RAW",
            "--map-uid",
            "0:1000:1",
            "--map-uid",
            "1:100000:65536",
            "--map-gid",
            "0:1000:1",
            "--add-seccomp-fd",
            "7",
            "--add-seccomp-fd",
            "8",
            "--allow-userns",
            "--allow-ptrace",
            "--seccomp",
            "none",
            "--",
            "id",
        ])
        .unwrap();
        let req = r.to_request(std::iter::empty(), None, Vec::new(), 0);
        assert!(req.caps.contains(13) && !req.caps.contains(21) && req.caps.contains(0));
        assert_eq!(req.uid_map.len(), 2);
        assert_eq!(
            req.uid_map[1],
            IdRange {
                inside: 1,
                outside: 100000,
                count: 65536
            }
        );
        assert_eq!(req.gid_map.len(), 1);
        assert_eq!(r.add_seccomp_fd, [7, 8]);
        assert!(req.allow_userns && req.allow_ptrace);
        assert_eq!(r.seccomp.as_deref(), Some("none"));

        let r = parse(&["--", "id"]).unwrap();
        let req = r.to_request(std::iter::empty(), None, Vec::new(), 0);
        assert!(req.caps.is_empty() && req.uid_map.is_empty() && r.add_seccomp_fd.is_empty());
        assert_eq!(req.seccomp, nsjail_core::SeccompMode::Default);
        assert_eq!(req.landlock, LandlockMode::Auto);
        for (arg, mode) in [
            ("on", LandlockMode::On),
            ("off", LandlockMode::Off),
            ("auto", LandlockMode::Auto),
        ] {
            let r = parse(&["--landlock", arg, "--", "id"]).unwrap();
            let req = r.to_request(std::iter::empty(), None, Vec::new(), 0);
            assert_eq!(req.landlock, mode);
        }
        assert!(parse(&["--landlock", "maybe", "--", "id"]).is_err());

        for bad in [
            &["--cap-add", "CAP_FLYING", "--", "id"][..],
            &["--map-uid", "0:1000", "--", "id"][..],
            &["--map-uid", "a:b:c", "--", "id"][..],
            &["--add-seccomp-fd", "x", "--", "id"][..],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
