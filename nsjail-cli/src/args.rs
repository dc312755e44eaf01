//! The command line, and how it becomes a spawn request.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nsjail_core::caps::{self, CapSet};
use nsjail_core::request::DEFAULT_HOSTNAME;
use nsjail_core::{IdMapping, IdRange, Namespaces, SpawnRequest};

#[derive(Parser, Debug)]
#[command(
    name = "nsjail",
    version,
    about = "Run a program in a sandbox of new Linux namespaces, as root inside and as yourself outside",
    after_help = "Examples:\n  nsjail run -- sh -c 'id; hostname'\n  nsjail run --share-net -- curl -I https://example.org\n  nsjail run --uid 1000 --gid 1000 --hostname box -- id"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run CMD in a new sandbox. Everything after CMD (or after `--`) is CMD's own arguments.
    Run(RunArgs),
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

    /// Set an environment variable (repeatable)
    #[arg(long, num_args = 2, value_names = ["KEY", "VALUE"], action = clap::ArgAction::Append)]
    pub setenv: Vec<String>,
    /// Remove an environment variable (repeatable)
    #[arg(long, value_name = "KEY", action = clap::ArgAction::Append)]
    pub unsetenv: Vec<String>,
    /// Start from an empty environment instead of yours [default: yours]
    #[arg(long)]
    pub clearenv: bool,
    /// The name CMD sees as its argv[0] [default: CMD]
    #[arg(long, value_name = "NAME")]
    pub argv0: Option<String>,

    /// Run CMD itself as PID 1 instead of behind nsjail's small init
    #[arg(long)]
    pub as_pid_1: bool,
    /// The helper to use [default: $NSJAIL_HELPER, next to nsjail, ../libexec/nsjail/, then the install location]
    #[arg(long, value_name = "PATH")]
    pub helper: Option<PathBuf>,
    /// Say how the helper was reached and each set-up step, on stderr
    #[arg(long, short)]
    pub verbose: bool,

    /// Seccomp filter: `none`, or an OCI/Docker JSON profile FILE that replaces the default
    /// filter (or is added on top of it where the admin policy forbids running without it)
    /// [default: nsjail's deny list]
    #[arg(long, value_name = "none|FILE")]
    pub seccomp: Option<String>,
    /// Also install the raw BPF program read from descriptor FD (as bubblewrap's option; repeatable,
    /// at most 5) [default: none]
    #[arg(long, value_name = "FD", action = clap::ArgAction::Append)]
    pub add_seccomp_fd: Vec<i32>,
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
    ) -> SpawnRequest {
        let mut req = SpawnRequest::new(self.command.clone());
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
        req.seccomp_fds = self.add_seccomp_fd.len().min(u8::MAX as usize) as u8;
        req.allow_userns = self.allow_userns;
        req.allow_ptrace = self.allow_ptrace;
        req.caps = self.caps();
        req.uid_map = self.map_uid.clone();
        req.gid_map = self.map_gid.clone();
        // `seccomp` needs the profile file read: see `profile::seccomp_mode`.
        req
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
        let req = r.to_request(env.into_iter(), Some("/w".into()));
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
        let req = r.to_request(vec![("A".into(), "1".into())].into_iter(), None);
        assert!(req.env.is_empty());
        assert_eq!(req.argv, ["x"]);
        assert_eq!(req.program, "env");
        assert!(!req.namespaces.net && req.namespaces.time);
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
        let req = r.to_request(std::iter::empty(), None);
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
        assert_eq!(req.seccomp_fds, 2);
        assert!(req.allow_userns && req.allow_ptrace);
        assert_eq!(r.seccomp.as_deref(), Some("none"));

        let r = parse(&["--", "id"]).unwrap();
        let req = r.to_request(std::iter::empty(), None);
        assert!(req.caps.is_empty() && req.uid_map.is_empty() && req.seccomp_fds == 0);
        assert_eq!(req.seccomp, nsjail_core::SeccompMode::Default);

        for bad in [
            &["--cap-add", "CAP_FLYING", "--", "id"][..],
            &["--map-uid", "0:1000", "--", "id"][..],
            &["--map-uid", "a:b:c", "--", "id"][..],
            &["--add-seccomp-fd", "x", "--", "id"][..],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--uid", "-1", "--", "id"]).is_err());
        assert!(parse(&["--bogus", "--", "id"]).is_err());
    }
}
