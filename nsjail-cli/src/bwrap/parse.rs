//! bubblewrap's command line, parsed as bubblewrap parses it: options are exact words (no
//! `--opt=value`), processed left to right, the first word that is not an option (or the word
//! after `--`) starts the command, and `--args FD` splices NUL-separated words read from FD in
//! place (not from inside such a file: bubblewrap refuses that nesting). Errors are bubblewrap's
//! own wording, without the `bwrap: ` prefix the caller adds.

/// bubblewrap's limit on the words read through `--args`, all files together.
pub const MAX_ARGS: usize = 9000;

pub use nsjail_cli::BWRAP_VERSION;

/// One filesystem operation, in command-line order, as bubblewrap names it. Fds are the
/// caller's numbers; paths are as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsOp {
    /// `--bind`, `--ro-bind`, `--dev-bind` and their `-try` forms.
    Bind {
        src: String,
        dst: String,
        kind: BindKindArg,
        try_: bool,
    },
    /// `--bind-fd`, `--ro-bind-fd`.
    BindFd {
        fd: i32,
        dst: String,
        read_only: bool,
    },
    RemountRo(String),
    Proc(String),
    Dev(String),
    Tmpfs {
        dst: String,
        perms: Option<u32>,
        size: Option<u64>,
    },
    Mqueue(String),
    Dir {
        dst: String,
        perms: Option<u32>,
    },
    File {
        fd: i32,
        dst: String,
        perms: Option<u32>,
    },
    BindData {
        fd: i32,
        dst: String,
        read_only: bool,
        perms: Option<u32>,
    },
    Symlink {
        target: String,
        link: String,
    },
    Chmod {
        mode: u32,
        path: String,
    },
    /// `--tmp-overlay`, `--ro-overlay`, `--overlay` with the `--overlay-src` layers before it.
    Overlay {
        srcs: Vec<String>,
        dst: String,
        /// `--overlay RWSRC WORKDIR DEST`: (upper, work).
        rw: Option<(String, String)>,
        tmp: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindKindArg {
    ReadWrite,
    ReadOnly,
    Dev,
}

/// A change to the environment, applied in order to the caller's (as bubblewrap does while it
/// parses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvOp {
    Set(String, String),
    Unset(String),
    Clear,
}

/// Which namespaces were asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unshare {
    pub user: bool,
    pub user_try: bool,
    pub ipc: bool,
    pub pid: bool,
    pub net: bool,
    pub uts: bool,
    pub cgroup: bool,
    pub cgroup_try: bool,
}

/// Everything one bubblewrap command line says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    pub ops: Vec<FsOp>,
    pub unshare: Unshare,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub hostname: Option<String>,
    pub chdir: Option<String>,
    pub env: Vec<EnvOp>,
    pub argv0: Option<String>,
    pub new_session: bool,
    pub die_with_parent: bool,
    pub as_pid_1: bool,
    /// `--cap-add` (true) and `--cap-drop` (false), in order, each a name or `ALL`.
    pub caps: Vec<(bool, String)>,
    pub seccomp_fd: Option<i32>,
    pub add_seccomp_fds: Vec<i32>,
    pub info_fd: Option<i32>,
    pub json_status_fd: Option<i32>,
    pub sync_fd: Option<i32>,
    pub block_fd: Option<i32>,
    pub userns_block_fd: Option<i32>,
    pub lock_files: Vec<String>,
    pub level_prefix: bool,
    pub disable_userns: bool,
    pub assert_userns_disabled: bool,
    /// `--userns`, `--userns2`, `--pidns`: accepted by the parser, refused by the translation.
    pub join_ns: Vec<(&'static str, i32)>,
    /// Labels are accepted and not used (no SELinux).
    pub labels: Vec<String>,
    /// Lines bubblewrap prints as warnings while parsing.
    pub warnings: Vec<String>,
    pub command: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Box<Invocation>),
    Help,
    Version,
}

/// A usage error: the message (bubblewrap's words) and whether bubblewrap follows it with its
/// usage text (it does when no command was given).
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub show_usage: bool,
}

impl From<String> for UsageError {
    fn from(message: String) -> Self {
        UsageError {
            message,
            show_usage: false,
        }
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError::from(msg.into()))
}

/// Reads the bytes of a caller's fd for `--args` (the whole of it, to its end).
pub type ReadFd<'a> = &'a mut dyn FnMut(i32) -> Result<Vec<u8>, String>;

/// bubblewrap's number parsing for fds: a whole decimal number, not negative.
fn parse_fd(s: &str) -> Result<i32, UsageError> {
    match s.parse::<i32>() {
        Ok(n) if n >= 0 && !s.starts_with('+') => Ok(n),
        _ => err(format!("Invalid fd: {s}")),
    }
}

fn parse_id(what: &str, s: &str) -> Result<u32, UsageError> {
    match s.parse::<u32>() {
        Ok(n) if !s.starts_with('+') && n != u32::MAX => Ok(n),
        _ => err(format!("Invalid {what}: {s}")),
    }
}

fn parse_octal(opt: &str, s: &str) -> Result<u32, UsageError> {
    match u32::from_str_radix(s, 8) {
        Ok(n) if n <= 0o7777 && !s.starts_with('+') => Ok(n),
        _ => err(format!("{opt} takes an octal argument <= 07777")),
    }
}

fn parse_size(s: &str) -> Result<u64, UsageError> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 && !s.starts_with('+') => Ok(n),
        _ => err("--size takes a non-zero number of bytes"),
    }
}

/// How many values each option takes; `None` for a word that is not an option of bubblewrap.
fn arity(opt: &str) -> Option<usize> {
    Some(match opt {
        "--help"
        | "--version"
        | "--unshare-all"
        | "--share-net"
        | "--unshare-user"
        | "--unshare-user-try"
        | "--unshare-ipc"
        | "--unshare-pid"
        | "--unshare-net"
        | "--unshare-uts"
        | "--unshare-cgroup"
        | "--unshare-cgroup-try"
        | "--disable-userns"
        | "--assert-userns-disabled"
        | "--clearenv"
        | "--new-session"
        | "--die-with-parent"
        | "--as-pid-1"
        | "--level-prefix" => 0,
        "--args" | "--argv0" | "--userns" | "--userns2" | "--pidns" | "--uid" | "--gid"
        | "--hostname" | "--chdir" | "--unsetenv" | "--lock-file" | "--sync-fd"
        | "--remount-ro" | "--exec-label" | "--file-label" | "--proc" | "--dev" | "--tmpfs"
        | "--mqueue" | "--dir" | "--seccomp" | "--add-seccomp-fd" | "--block-fd"
        | "--userns-block-fd" | "--info-fd" | "--json-status-fd" | "--cap-add" | "--cap-drop"
        | "--perms" | "--size" | "--overlay-src" | "--tmp-overlay" | "--ro-overlay" => 1,
        "--setenv" | "--bind" | "--bind-try" | "--dev-bind" | "--dev-bind-try" | "--ro-bind"
        | "--ro-bind-try" | "--bind-fd" | "--ro-bind-fd" | "--file" | "--bind-data"
        | "--ro-bind-data" | "--symlink" | "--chmod" => 2,
        "--overlay" => 3,
        _ => return None,
    })
}

/// The state that lives between options: `--perms`, `--size` and `--overlay-src` modify the
/// next operation.
#[derive(Default)]
struct Pending {
    perms: Option<u32>,
    size: Option<u64>,
    overlay_srcs: Vec<String>,
}

struct Parser<'a> {
    inv: Invocation,
    pending: Pending,
    read_fd: ReadFd<'a>,
    total_from_files: usize,
}

/// Parse bubblewrap's arguments (without the program name).
pub fn parse(args: &[String], read_fd: ReadFd) -> Result<Parsed, UsageError> {
    let mut p = Parser {
        inv: Invocation::default(),
        pending: Pending::default(),
        read_fd,
        total_from_files: 0,
    };
    let (rest, early) = p.words(args, false)?;
    if let Some(e) = early {
        return Ok(e);
    }
    if p.pending.perms.is_some() {
        return err("--perms must be followed by an option that creates a file");
    }
    if p.pending.size.is_some() {
        return err("--size must be followed by --tmpfs");
    }
    if !p.pending.overlay_srcs.is_empty() {
        return err(
            "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay",
        );
    }
    if rest.is_empty() {
        return Err(UsageError {
            message: String::new(),
            show_usage: true,
        });
    }
    p.inv.command = rest;
    Ok(Parsed::Run(Box::new(p.inv)))
}

impl Parser<'_> {
    /// Parse `args` up to the command; return the command's words. `in_file`: these words
    /// came from `--args`, where a command ends the file's options and is not used.
    fn words(
        &mut self,
        args: &[String],
        in_file: bool,
    ) -> Result<(Vec<String>, Option<Parsed>), UsageError> {
        let mut i = 0;
        while i < args.len() {
            let opt = args[i].as_str();
            if opt == "--" {
                return Ok((args[i + 1..].to_vec(), None));
            }
            if !opt.starts_with('-') {
                break;
            }
            let Some(n) = arity(opt) else {
                return err(format!("Unknown option {opt}"));
            };
            if args.len() - i - 1 < n {
                return err(match n {
                    // bubblewrap's wording differs for these two.
                    1 if matches!(opt, "--chdir" | "--remount-ro") => {
                        format!("{opt} takes one argument")
                    }
                    1 => format!("{opt} takes an argument"),
                    2 => format!("{opt} takes two arguments"),
                    _ => format!("{opt} takes three arguments"),
                });
            }
            let v: Vec<String> = args[i + 1..=i + n].to_vec();
            i += 1 + n;
            match opt {
                "--help" => return Ok((Vec::new(), Some(Parsed::Help))),
                "--version" => return Ok((Vec::new(), Some(Parsed::Version))),
                "--args" => {
                    if in_file {
                        return err("--args not supported in arguments file");
                    }
                    let fd = parse_fd(&v[0])?;
                    let data = (self.read_fd)(fd)
                        .map_err(|e| UsageError::from(format!("Can't read --args data: {e}")))?;
                    let mut words: Vec<String> = Vec::new();
                    let body = data.strip_suffix(b"\0").unwrap_or(&data);
                    if !data.is_empty() {
                        for w in body.split(|b| *b == 0) {
                            words.push(String::from_utf8_lossy(w).into_owned());
                        }
                    }
                    self.total_from_files += words.len();
                    if self.total_from_files > MAX_ARGS {
                        return err("Exceeded maximum number of arguments");
                    }
                    let (_, early) = self.words(&words, true)?;
                    if early.is_some() {
                        return Ok((Vec::new(), early));
                    }
                }
                _ => self.option(opt, v)?,
            }
        }
        Ok((args[i..].to_vec(), None))
    }

    fn take_perms(&mut self) -> Option<u32> {
        self.pending.perms.take()
    }

    fn push(&mut self, op: FsOp) {
        self.inv.ops.push(op);
    }

    fn option(&mut self, opt: &str, v: Vec<String>) -> Result<(), UsageError> {
        let mut v = v.into_iter();
        let mut next = || v.next().unwrap_or_default();
        // What each option may follow: --perms and --size apply only to the next operation
        // that uses them, and bubblewrap says so when another comes first.
        let uses_perms = matches!(
            opt,
            "--perms"
                | "--size"
                | "--tmpfs"
                | "--dir"
                | "--file"
                | "--bind-data"
                | "--ro-bind-data"
        );
        if self.pending.perms.is_some() && !uses_perms {
            return err("--perms must be followed by an option that creates a file");
        }
        if self.pending.size.is_some() && !matches!(opt, "--tmpfs" | "--size" | "--perms") {
            return err("--size must be followed by --tmpfs");
        }
        if !self.pending.overlay_srcs.is_empty()
            && !matches!(
                opt,
                "--overlay-src" | "--overlay" | "--tmp-overlay" | "--ro-overlay"
            )
        {
            return err(
                "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay",
            );
        }
        let inv = &mut self.inv;
        match opt {
            "--unshare-all" => {
                // bubblewrap: the -try forms for user and cgroup, the rest as asked.
                inv.unshare.user_try = true;
                inv.unshare.ipc = true;
                inv.unshare.pid = true;
                inv.unshare.net = true;
                inv.unshare.uts = true;
                inv.unshare.cgroup_try = true;
            }
            "--share-net" => inv.unshare.net = false,
            "--unshare-user" => inv.unshare.user = true,
            "--unshare-user-try" => inv.unshare.user_try = true,
            "--unshare-ipc" => inv.unshare.ipc = true,
            "--unshare-pid" => inv.unshare.pid = true,
            "--unshare-net" => inv.unshare.net = true,
            "--unshare-uts" => inv.unshare.uts = true,
            "--unshare-cgroup" => inv.unshare.cgroup = true,
            "--unshare-cgroup-try" => inv.unshare.cgroup_try = true,
            "--disable-userns" => inv.disable_userns = true,
            "--assert-userns-disabled" => inv.assert_userns_disabled = true,
            "--clearenv" => inv.env.push(EnvOp::Clear),
            "--new-session" => inv.new_session = true,
            "--die-with-parent" => inv.die_with_parent = true,
            "--as-pid-1" => inv.as_pid_1 = true,
            "--level-prefix" => inv.level_prefix = true,
            "--argv0" => inv.argv0 = Some(next()),
            "--userns" | "--userns2" | "--pidns" => {
                let name = match opt {
                    "--userns" => "--userns",
                    "--userns2" => "--userns2",
                    _ => "--pidns",
                };
                let fd = parse_fd(&next())?;
                inv.join_ns.push((name, fd));
            }
            "--uid" => inv.uid = Some(parse_id("uid", &next())?),
            "--gid" => inv.gid = Some(parse_id("gid", &next())?),
            "--hostname" => inv.hostname = Some(next()),
            "--chdir" => inv.chdir = Some(next()),
            "--setenv" => {
                let k = next();
                inv.env.push(EnvOp::Set(k, next()));
            }
            "--unsetenv" => inv.env.push(EnvOp::Unset(next())),
            "--lock-file" => inv.lock_files.push(next()),
            "--sync-fd" => inv.sync_fd = Some(parse_fd(&next())?),
            "--block-fd" => inv.block_fd = Some(parse_fd(&next())?),
            "--userns-block-fd" => inv.userns_block_fd = Some(parse_fd(&next())?),
            "--info-fd" => inv.info_fd = Some(parse_fd(&next())?),
            "--json-status-fd" => inv.json_status_fd = Some(parse_fd(&next())?),
            "--seccomp" => {
                let fd = parse_fd(&next())?;
                if !inv.add_seccomp_fds.is_empty() {
                    return err("--seccomp cannot be combined with --add-seccomp-fd");
                }
                if inv.seccomp_fd.replace(fd).is_some() {
                    inv.warnings
                        .push("Only the last --seccomp option will take effect".into());
                }
            }
            "--add-seccomp-fd" => {
                let fd = parse_fd(&next())?;
                if inv.seccomp_fd.is_some() {
                    return err("--add-seccomp-fd cannot be combined with --seccomp");
                }
                inv.add_seccomp_fds.push(fd);
            }
            "--exec-label" | "--file-label" => inv.labels.push(next()),
            "--cap-add" | "--cap-drop" => {
                let name = next();
                if name != "ALL" && nsjail_core::caps::parse_caps(&name).is_err() {
                    return err(format!("unknown cap: {name}"));
                }
                inv.caps.push((opt == "--cap-add", name));
            }
            "--perms" => {
                let p = parse_octal("--perms", &next())?;
                if self.pending.perms.replace(p).is_some() {
                    return err("--perms given twice for the same action");
                }
            }
            "--size" => {
                let s = parse_size(&next())?;
                if self.pending.size.replace(s).is_some() {
                    return err("--size given twice for the same action");
                }
            }
            "--chmod" => {
                // bubblewrap reads --chmod's mode itself; a pending --perms does not apply.
                let mode = parse_octal("--chmod", &next())?;
                let path = next();
                self.push(FsOp::Chmod { mode, path });
            }
            "--bind" | "--bind-try" | "--dev-bind" | "--dev-bind-try" | "--ro-bind"
            | "--ro-bind-try" => {
                let src = next();
                let dst = next();
                let kind = if opt.starts_with("--ro-") {
                    BindKindArg::ReadOnly
                } else if opt.starts_with("--dev-") {
                    BindKindArg::Dev
                } else {
                    BindKindArg::ReadWrite
                };
                self.push(FsOp::Bind {
                    src,
                    dst,
                    kind,
                    try_: opt.ends_with("-try"),
                });
            }
            "--bind-fd" | "--ro-bind-fd" => {
                let fd = parse_fd(&next())?;
                let dst = next();
                self.push(FsOp::BindFd {
                    fd,
                    dst,
                    read_only: opt == "--ro-bind-fd",
                });
            }
            "--remount-ro" => self.push(FsOp::RemountRo(next())),
            "--proc" => self.push(FsOp::Proc(next())),
            "--dev" => self.push(FsOp::Dev(next())),
            "--mqueue" => self.push(FsOp::Mqueue(next())),
            "--tmpfs" => {
                let dst = next();
                let perms = self.take_perms();
                let size = self.pending.size.take();
                self.push(FsOp::Tmpfs { dst, perms, size });
            }
            "--dir" => {
                let dst = next();
                let perms = self.take_perms();
                self.push(FsOp::Dir { dst, perms });
            }
            "--file" | "--bind-data" | "--ro-bind-data" => {
                let fd = parse_fd(&next())?;
                let dst = next();
                let perms = self.take_perms();
                self.push(if opt == "--file" {
                    FsOp::File { fd, dst, perms }
                } else {
                    FsOp::BindData {
                        fd,
                        dst,
                        read_only: opt == "--ro-bind-data",
                        perms,
                    }
                });
            }
            "--symlink" => {
                let target = next();
                let link = next();
                self.push(FsOp::Symlink { target, link });
            }
            "--overlay-src" => self.pending.overlay_srcs.push(next()),
            "--tmp-overlay" | "--ro-overlay" | "--overlay" => {
                let srcs = std::mem::take(&mut self.pending.overlay_srcs);
                let need = if opt == "--ro-overlay" { 2 } else { 1 };
                if srcs.len() < need {
                    return err(if need == 2 {
                        format!("{opt} requires at least two --overlay-src options")
                    } else {
                        format!("{opt} requires at least one --overlay-src")
                    });
                }
                let (rw, dst) = if opt == "--overlay" {
                    let upper = next();
                    let work = next();
                    (Some((upper, work)), next())
                } else {
                    (None, next())
                };
                self.push(FsOp::Overlay {
                    srcs,
                    dst,
                    rw,
                    tmp: opt == "--tmp-overlay",
                });
            }
            _ => return err(format!("Unknown option {opt}")),
        }
        Ok(())
    }
}

/// bubblewrap's usage text, with the options this `bwrap` knows.
pub fn usage(prog: &str) -> String {
    let mut s = format!("usage: {prog} [OPTIONS...] [--] COMMAND [ARGS...]\n\n");
    for (opt, help) in HELP {
        s.push_str(&format!("    {opt:<28} {help}\n"));
    }
    s
}

const HELP: &[(&str, &str)] = &[
    ("--help", "Show this text"),
    (
        "--version",
        "Show the bubblewrap version this command line follows",
    ),
    ("--args FD", "Read more options, NUL-separated, from FD"),
    ("--argv0 VALUE", "The name the command sees as its argv[0]"),
    (
        "--level-prefix",
        "Start each message with a syslog level such as <3>",
    ),
    (
        "--unshare-all",
        "New ipc, pid, net, uts, cgroup (and user) namespaces",
    ),
    (
        "--share-net",
        "Keep the network namespace (after --unshare-all)",
    ),
    (
        "--unshare-user",
        "New user namespace (always made by the helper)",
    ),
    ("--unshare-user-try", "As --unshare-user"),
    ("--unshare-ipc", "New IPC namespace"),
    (
        "--unshare-pid",
        "New pid namespace (always made by the helper)",
    ),
    ("--unshare-net", "New network namespace with only lo"),
    ("--unshare-uts", "New UTS namespace (hostname)"),
    ("--unshare-cgroup", "New cgroup namespace"),
    ("--unshare-cgroup-try", "As --unshare-cgroup"),
    (
        "--userns FD",
        "Refused: not joined through a privileged helper",
    ),
    (
        "--userns2 FD",
        "Refused: not joined through a privileged helper",
    ),
    (
        "--disable-userns",
        "The command cannot make user namespaces",
    ),
    (
        "--assert-userns-disabled",
        "Make sure the command cannot make user namespaces",
    ),
    (
        "--pidns FD",
        "Refused: not joined through a privileged helper",
    ),
    ("--uid UID", "User id inside [default: yours]"),
    ("--gid GID", "Group id inside [default: yours]"),
    ("--hostname NAME", "Hostname inside (needs --unshare-uts)"),
    ("--chdir DIR", "Working directory inside"),
    ("--clearenv", "Start from an empty environment"),
    ("--setenv VAR VALUE", "Set VAR to VALUE"),
    ("--unsetenv VAR", "Remove VAR"),
    (
        "--lock-file DEST",
        "Hold a read lock on DEST (under a bind) while running",
    ),
    ("--sync-fd FD", "Hold FD open until the sandbox ends"),
    ("--bind SRC DEST", "Bind host path SRC at DEST, read-write"),
    (
        "--bind-try SRC DEST",
        "As --bind; nothing when SRC does not exist",
    ),
    ("--dev-bind SRC DEST", "As --bind, device nodes usable"),
    (
        "--dev-bind-try SRC DEST",
        "As --dev-bind; nothing when SRC does not exist",
    ),
    (
        "--ro-bind SRC DEST",
        "Bind host path SRC at DEST, read-only",
    ),
    (
        "--ro-bind-try SRC DEST",
        "As --ro-bind; nothing when SRC does not exist",
    ),
    ("--bind-fd FD DEST", "Bind the directory open as FD at DEST"),
    ("--ro-bind-fd FD DEST", "As --bind-fd, read-only"),
    (
        "--remount-ro DEST",
        "Make DEST (and every mount under it) read-only",
    ),
    ("--overlay-src SRC", "A lower layer of the next overlay"),
    (
        "--overlay RWSRC WORKDIR DEST",
        "Overlay at DEST, writes to host directory RWSRC",
    ),
    (
        "--tmp-overlay DEST",
        "Overlay at DEST, writes to a tmpfs that vanishes",
    ),
    ("--ro-overlay DEST", "Overlay at DEST, read-only"),
    (
        "--exec-label LABEL",
        "Accepted; SELinux labels are not used",
    ),
    (
        "--file-label LABEL",
        "Accepted; SELinux labels are not used",
    ),
    ("--proc DEST", "A new /proc at DEST"),
    ("--dev DEST", "A minimal new /dev at DEST"),
    ("--tmpfs DEST", "A new tmpfs at DEST"),
    ("--mqueue DEST", "A new mqueue filesystem at DEST"),
    ("--dir DEST", "Make directory DEST"),
    ("--file FD DEST", "A new file DEST with what FD holds"),
    (
        "--bind-data FD DEST",
        "A file with what FD holds, bound at DEST",
    ),
    ("--ro-bind-data FD DEST", "As --bind-data, read-only"),
    ("--symlink SRC DEST", "Symlink DEST pointing to SRC"),
    (
        "--seccomp FD",
        "A BPF program from FD instead of the default filter",
    ),
    (
        "--add-seccomp-fd FD",
        "Another BPF program from FD (repeatable)",
    ),
    ("--block-fd FD", "Wait for data on FD before starting"),
    ("--userns-block-fd FD", "As --block-fd"),
    (
        "--info-fd FD",
        "Write the child's pid and namespaces to FD as JSON",
    ),
    (
        "--json-status-fd FD",
        "Write start and exit as JSON lines to FD",
    ),
    ("--new-session", "A new session for the command"),
    (
        "--die-with-parent",
        "The sandbox dies with this process (always)",
    ),
    ("--as-pid-1", "The command is pid 1 (no init)"),
    ("--cap-add CAP", "Keep capability CAP inside (or ALL)"),
    ("--cap-drop CAP", "Drop CAP from what --cap-add kept"),
    (
        "--perms OCTAL",
        "Mode of the next --tmpfs, --dir, --file, --bind-data",
    ),
    ("--size BYTES", "Size of the next --tmpfs"),
    ("--chmod OCTAL PATH", "Change the mode of PATH inside"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    /// Parse with `--args` fds served from `files` (fd, bytes).
    fn parse_with(args: &[&str], files: &[(i32, &[u8])]) -> Result<Parsed, UsageError> {
        let files: Vec<(i32, Vec<u8>)> = files.iter().map(|(f, b)| (*f, b.to_vec())).collect();
        let mut read = |fd: i32| {
            files
                .iter()
                .find(|(f, _)| *f == fd)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| "Bad file descriptor".to_string())
        };
        parse(&words(args), &mut read)
    }

    fn inv(args: &[&str]) -> Invocation {
        match parse_with(args, &[]) {
            Ok(Parsed::Run(i)) => *i,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse_with(args, &[]) {
            Err(e) => e.message,
            other => panic!("{args:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn nothing_is_unshared_unless_asked_and_the_root_starts_empty() {
        let i = inv(&["true"]);
        assert_eq!(i.unshare, Unshare::default());
        assert!(i.ops.is_empty());
        assert_eq!(i.command, ["true"]);
    }

    #[test]
    fn the_command_starts_at_the_first_non_option_or_after_the_double_dash() {
        // firejail CVE-2020-17367: nothing after the command is ours.
        let i = inv(&["--unshare-net", "sh", "--unshare-ipc", "-c", "x"]);
        assert!(i.unshare.net && !i.unshare.ipc);
        assert_eq!(i.command, ["sh", "--unshare-ipc", "-c", "x"]);
        let i = inv(&["--", "--unshare-ipc"]);
        assert_eq!(i.command, ["--unshare-ipc"]);
        assert!(!i.unshare.ipc);
    }

    #[test]
    fn unshare_all_and_share_net() {
        let i = inv(&["--unshare-all", "true"]);
        let u = i.unshare;
        assert!(u.user_try && u.ipc && u.pid && u.net && u.uts && u.cgroup_try);
        assert!(!u.user && !u.cgroup);
        let i = inv(&["--unshare-all", "--share-net", "true"]);
        assert!(!i.unshare.net && i.unshare.ipc);
        for (opt, get) in [
            (
                "--unshare-user",
                (|u: Unshare| u.user) as fn(Unshare) -> bool,
            ),
            ("--unshare-user-try", |u| u.user_try),
            ("--unshare-ipc", |u| u.ipc),
            ("--unshare-pid", |u| u.pid),
            ("--unshare-net", |u| u.net),
            ("--unshare-uts", |u| u.uts),
            ("--unshare-cgroup", |u| u.cgroup),
            ("--unshare-cgroup-try", |u| u.cgroup_try),
        ] {
            let u = inv(&[opt, "true"]).unshare;
            assert!(get(u), "{opt}");
            let others = [
                u.user,
                u.user_try,
                u.ipc,
                u.pid,
                u.net,
                u.uts,
                u.cgroup,
                u.cgroup_try,
            ];
            assert_eq!(others.iter().filter(|b| **b).count(), 1, "{opt}");
        }
    }

    #[test]
    fn filesystem_operations_keep_their_order_and_modifiers() {
        let i = inv(&[
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--bind-try",
            "/a",
            "/b",
            "--dev-bind",
            "/dev",
            "/dev",
            "--ro-bind-try",
            "/c",
            "/c",
            "--dev-bind-try",
            "/d",
            "/d",
            "--bind",
            "/e",
            "/e",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "0700",
            "--size",
            "4096",
            "--tmpfs",
            "/tmp",
            "--mqueue",
            "/dev/mqueue",
            "--perms",
            "750",
            "--dir",
            "/x",
            "--file",
            "5",
            "/f",
            "--perms",
            "0600",
            "--bind-data",
            "6",
            "/g",
            "--ro-bind-data",
            "7",
            "/h",
            "--remount-ro",
            "/usr",
            "--chmod",
            "0755",
            "/x",
            "--bind-fd",
            "8",
            "/i",
            "--ro-bind-fd",
            "9",
            "/j",
            "--overlay-src",
            "/l1",
            "--overlay-src",
            "/l2",
            "--ro-overlay",
            "/o",
            "--overlay-src",
            "/l",
            "--tmp-overlay",
            "/t",
            "--overlay-src",
            "/l",
            "--overlay",
            "/up",
            "/work",
            "/w",
            "cmd",
        ]);
        use BindKindArg::*;
        let bind = |s: &str, d: &str, kind, try_| FsOp::Bind {
            src: s.into(),
            dst: d.into(),
            kind,
            try_,
        };
        assert_eq!(
            i.ops,
            vec![
                bind("/usr", "/usr", ReadOnly, false),
                FsOp::Symlink {
                    target: "usr/lib".into(),
                    link: "/lib".into()
                },
                bind("/a", "/b", ReadWrite, true),
                bind("/dev", "/dev", Dev, false),
                bind("/c", "/c", ReadOnly, true),
                bind("/d", "/d", Dev, true),
                bind("/e", "/e", ReadWrite, false),
                FsOp::Proc("/proc".into()),
                FsOp::Dev("/dev".into()),
                FsOp::Tmpfs {
                    dst: "/tmp".into(),
                    perms: Some(0o700),
                    size: Some(4096)
                },
                FsOp::Mqueue("/dev/mqueue".into()),
                FsOp::Dir {
                    dst: "/x".into(),
                    perms: Some(0o750)
                },
                FsOp::File {
                    fd: 5,
                    dst: "/f".into(),
                    perms: None
                },
                FsOp::BindData {
                    fd: 6,
                    dst: "/g".into(),
                    read_only: false,
                    perms: Some(0o600)
                },
                FsOp::BindData {
                    fd: 7,
                    dst: "/h".into(),
                    read_only: true,
                    perms: None
                },
                FsOp::RemountRo("/usr".into()),
                FsOp::Chmod {
                    mode: 0o755,
                    path: "/x".into()
                },
                FsOp::BindFd {
                    fd: 8,
                    dst: "/i".into(),
                    read_only: false
                },
                FsOp::BindFd {
                    fd: 9,
                    dst: "/j".into(),
                    read_only: true
                },
                FsOp::Overlay {
                    srcs: vec!["/l1".into(), "/l2".into()],
                    dst: "/o".into(),
                    rw: None,
                    tmp: false
                },
                FsOp::Overlay {
                    srcs: vec!["/l".into()],
                    dst: "/t".into(),
                    rw: None,
                    tmp: true
                },
                FsOp::Overlay {
                    srcs: vec!["/l".into()],
                    dst: "/w".into(),
                    rw: Some(("/up".into(), "/work".into())),
                    tmp: false
                },
            ]
        );
        assert_eq!(i.command, ["cmd"]);
    }

    #[test]
    fn process_options() {
        let i = inv(&[
            "--uid",
            "5",
            "--gid",
            "6",
            "--hostname",
            "h",
            "--chdir",
            "/w",
            "--setenv",
            "A",
            "1",
            "--unsetenv",
            "B",
            "--clearenv",
            "--setenv",
            "C",
            "2",
            "--argv0",
            "zero",
            "--new-session",
            "--die-with-parent",
            "--as-pid-1",
            "--cap-add",
            "CAP_CHOWN",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "cap_net_raw",
            "--add-seccomp-fd",
            "11",
            "--add-seccomp-fd",
            "12",
            "--info-fd",
            "13",
            "--json-status-fd",
            "14",
            "--sync-fd",
            "15",
            "--block-fd",
            "16",
            "--userns-block-fd",
            "17",
            "--lock-file",
            "/l",
            "--lock-file",
            "/m",
            "--exec-label",
            "x",
            "--file-label",
            "y",
            "--level-prefix",
            "--disable-userns",
            "--assert-userns-disabled",
            "cmd",
            "a",
        ]);
        assert_eq!((i.uid, i.gid), (Some(5), Some(6)));
        assert_eq!(i.hostname.as_deref(), Some("h"));
        assert_eq!(i.chdir.as_deref(), Some("/w"));
        assert_eq!(
            i.env,
            vec![
                EnvOp::Set("A".into(), "1".into()),
                EnvOp::Unset("B".into()),
                EnvOp::Clear,
                EnvOp::Set("C".into(), "2".into())
            ]
        );
        assert_eq!(i.argv0.as_deref(), Some("zero"));
        assert!(i.new_session && i.die_with_parent && i.as_pid_1 && i.level_prefix);
        assert!(i.disable_userns && i.assert_userns_disabled);
        assert_eq!(
            i.caps,
            vec![
                (true, "CAP_CHOWN".into()),
                (false, "ALL".into()),
                (true, "cap_net_raw".into())
            ]
        );
        assert_eq!(i.seccomp_fd, None);
        assert_eq!(i.add_seccomp_fds, [11, 12]);
        assert_eq!(inv(&["--seccomp", "10", "true"]).seccomp_fd, Some(10));
        assert_eq!(
            (
                i.info_fd,
                i.json_status_fd,
                i.sync_fd,
                i.block_fd,
                i.userns_block_fd
            ),
            (Some(13), Some(14), Some(15), Some(16), Some(17))
        );
        assert_eq!(i.lock_files, ["/l", "/m"]);
        assert_eq!(i.labels, ["x", "y"]);
        assert!(i.warnings.is_empty());
        assert_eq!(i.command, ["cmd", "a"]);
    }

    #[test]
    fn seccomp_and_add_seccomp_fd_exclude_each_other_in_either_order() {
        for (args, msg) in [
            (
                &["--seccomp", "3", "--add-seccomp-fd", "4", "true"],
                "--add-seccomp-fd cannot be combined with --seccomp",
            ),
            (
                &["--add-seccomp-fd", "4", "--seccomp", "3", "true"],
                "--seccomp cannot be combined with --add-seccomp-fd",
            ),
        ] {
            assert_eq!(error(args), msg, "{args:?}");
        }
    }

    #[test]
    fn joining_namespaces_is_parsed_for_the_translation_to_refuse() {
        let i = inv(&["--userns", "3", "--userns2", "4", "--pidns", "5", "true"]);
        assert_eq!(
            i.join_ns,
            [("--userns", 3), ("--userns2", 4), ("--pidns", 5)]
        );
    }

    #[test]
    fn a_second_seccomp_warns_and_the_last_wins() {
        let i = inv(&["--seccomp", "3", "--seccomp", "4", "true"]);
        assert_eq!(i.seccomp_fd, Some(4));
        assert_eq!(
            i.warnings,
            ["Only the last --seccomp option will take effect"]
        );
    }

    #[test]
    fn args_fd_splices_words_in_place() {
        let file: &[u8] = b"--setenv\0A\0from file\0--unshare-net\0";
        let Ok(Parsed::Run(i)) = parse_with(
            &["--unshare-ipc", "--args", "3", "--setenv", "B", "2", "cmd"],
            &[(3, file)],
        ) else {
            panic!()
        };
        assert!(i.unshare.ipc && i.unshare.net);
        assert_eq!(
            i.env,
            vec![
                EnvOp::Set("A".into(), "from file".into()),
                EnvOp::Set("B".into(), "2".into())
            ]
        );
        assert_eq!(i.command, ["cmd"]);
        // Without a trailing NUL the last word still counts; an empty file adds nothing.
        let Ok(Parsed::Run(i)) = parse_with(
            &["--args", "3", "--args", "4", "cmd"],
            &[(3, b"--unshare-pid"), (4, b"")],
        ) else {
            panic!()
        };
        assert!(i.unshare.pid);
        // The first word that is not an option ends the file's options; bubblewrap does not
        // take a command from there.
        let Ok(Parsed::Run(i)) = parse_with(
            &["--args", "3", "echo", "a"],
            &[(3, b"--unshare-uts\0env\0--unshare-net\0")],
        ) else {
            panic!()
        };
        assert!(i.unshare.uts && !i.unshare.net);
        assert_eq!(i.command, ["echo", "a"]);
        // --help inside a file is still --help.
        assert_eq!(
            parse_with(&["--args", "3", "x"], &[(3, b"--help\0")]),
            Ok(Parsed::Help)
        );
    }

    #[test]
    fn args_files_do_not_nest() {
        let e = parse_with(&["--args", "3", "cmd"], &[(3, b"--args\x004\0"), (4, b"")]);
        assert_eq!(
            e.unwrap_err().message,
            "--args not supported in arguments file"
        );
        let e = parse_with(&["--args", "9", "cmd"], &[]);
        assert_eq!(
            e.unwrap_err().message,
            "Can't read --args data: Bad file descriptor"
        );
        let many = "--unshare-ipc\0".repeat(MAX_ARGS / 2 + 1);
        let e = parse_with(
            &["--args", "3", "--args", "4", "cmd"],
            &[(3, many.as_bytes()), (4, many.as_bytes())],
        );
        assert_eq!(
            e.unwrap_err().message,
            "Exceeded maximum number of arguments"
        );
    }

    #[test]
    fn usage_errors_in_bubblewraps_words() {
        for (args, msg) in [
            (&["--foo", "true"][..], "Unknown option --foo"),
            (&["-x", "true"], "Unknown option -x"),
            (&["--bind=/a", "/b", "true"], "Unknown option --bind=/a"),
            (&["--bind", "/"], "--bind takes two arguments"),
            (&["--uid"], "--uid takes an argument"),
            (&["--chdir"], "--chdir takes one argument"),
            (&["--remount-ro"], "--remount-ro takes one argument"),
            (&["--overlay", "a", "b"], "--overlay takes three arguments"),
            (&["--uid", "x", "true"], "Invalid uid: x"),
            (&["--gid", "-1", "true"], "Invalid gid: -1"),
            (&["--sync-fd", "x", "true"], "Invalid fd: x"),
            (&["--file", "-1", "/x", "true"], "Invalid fd: -1"),
            (&["--args", "x", "true"], "Invalid fd: x"),
            (
                &["--perms", "abc", "--dir", "/x", "true"],
                "--perms takes an octal argument <= 07777",
            ),
            (
                &["--perms", "10000", "--dir", "/x", "true"],
                "--perms takes an octal argument <= 07777",
            ),
            (
                &["--chmod", "999", "/x", "true"],
                "--chmod takes an octal argument <= 07777",
            ),
            (
                &["--size", "0", "--tmpfs", "/x", "true"],
                "--size takes a non-zero number of bytes",
            ),
            (
                &["--size", "x", "--tmpfs", "/x", "true"],
                "--size takes a non-zero number of bytes",
            ),
            (
                &["--size", "1", "--size", "2", "--tmpfs", "/x", "true"],
                "--size given twice for the same action",
            ),
            (
                &["--perms", "1", "--perms", "2", "--dir", "/x", "true"],
                "--perms given twice for the same action",
            ),
            (
                &["--perms", "0755", "--ro-bind", "/", "/", "true"],
                "--perms must be followed by an option that creates a file",
            ),
            (
                &["--perms", "0755", "true"],
                "--perms must be followed by an option that creates a file",
            ),
            (
                &["--size", "10", "--dir", "/x", "true"],
                "--size must be followed by --tmpfs",
            ),
            (
                &["--size", "10", "true"],
                "--size must be followed by --tmpfs",
            ),
            (&["--cap-add", "FOO", "true"], "unknown cap: FOO"),
            (
                &["--overlay-src", "/a", "--dir", "/x", "true"],
                "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay",
            ),
            (
                &["--overlay-src", "/a", "--ro-overlay", "/x", "true"],
                "--ro-overlay requires at least two --overlay-src options",
            ),
            (
                &["--tmp-overlay", "/x", "true"],
                "--tmp-overlay requires at least one --overlay-src",
            ),
        ] {
            assert_eq!(error(args), msg, "{args:?}");
        }
    }

    #[test]
    fn no_command_shows_the_usage() {
        for args in [&[][..], &["--unshare-net"], &["--unshare-net", "--"]] {
            let e = parse_with(args, &[]).unwrap_err();
            assert!(e.show_usage && e.message.is_empty(), "{args:?}");
        }
        assert!(!parse_with(&["--foo"], &[]).unwrap_err().show_usage);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_with(&["--help"], &[]), Ok(Parsed::Help));
        assert_eq!(
            parse_with(&["--unshare-net", "--version"], &[]),
            Ok(Parsed::Version)
        );
        // After the command they are the command's.
        assert!(matches!(
            parse_with(&["sh", "--help"], &[]),
            Ok(Parsed::Run(_))
        ));
        let u = usage("bwrap");
        assert!(u.starts_with("usage: bwrap [OPTIONS...] [--] COMMAND [ARGS...]"));
        // Every option of the parser is in the usage, and nothing else.
        for (opt, _) in HELP {
            let name = opt.split(' ').next().unwrap();
            assert!(arity(name).is_some(), "{name}");
        }
        assert_eq!(HELP.len(), 67);
    }
}
