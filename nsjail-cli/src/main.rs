//! `nsjail`: the unprivileged command. It turns flags into a spawn request, reaches the helper,
//! hands over its stdio, forwards signals and exits as the payload did.
#![forbid(unsafe_code)]

use nsjail_cli::args;
mod bwrap;
mod daemon;
mod desktop;
mod dryrun;
mod helper;
mod net;
mod passfd;
mod profile_toml;
mod profiles;
mod report_sinks;
mod seccomp;
mod session;
mod status_report;
mod terminal;
mod usage;
mod view;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::status_report::RunReport;
use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use nsjail_core::exit::SETUP_FAILED;

use crate::args::{Cli, Command, DryRun, ProfileCommand, RunArgs};

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    // Run as `bwrap` (a link), or as `nsjail bwrap ARGS…`: bubblewrap's command line.
    let called = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if called.as_deref() == Some("bwrap") {
        return bwrap::main(&argv[1..]);
    }
    if argv.get(1).is_some_and(|a| a == "bwrap") {
        // `nsjail bwrap --dry-run[=json] ARGS…`: what the sandbox would be, run nothing. Only in
        // this form: under the name `bwrap` the command line is bubblewrap's alone.
        let dry = match argv.get(2).and_then(|a| a.to_str()) {
            Some("--dry-run" | "--dry-run=text") => Some(DryRun::Text),
            Some("--dry-run=json") => Some(DryRun::Json),
            _ => None,
        };
        return match dry {
            Some(format) => bwrap::dry_run(&argv[3..], format),
            None => bwrap::main(&argv[2..]),
        };
    }
    let (cli, matches) = match parse(&argv) {
        Ok(p) => p,
        Err(e) => return usage_error(e, &argv, ""),
    };
    let result = match cli.command {
        Command::Run(run) => match matches.subcommand() {
            Some((_, run_matches)) => run_with_profiles(run, run_matches, &argv, None),
            None => Ok(SETUP_FAILED),
        },
        Command::Profile(ProfileCommand::List) => {
            profile_list();
            Ok(0)
        }
        Command::Profile(ProfileCommand::Show { name }) => profile_show(&argv, &name),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes, joined.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("nsjail: {msg}");
            SETUP_FAILED
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn parse(argv: &[OsString]) -> Result<(Cli, ArgMatches), clap::Error> {
    let matches = Cli::command().try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok((cli, matches))
}

/// clap's errors are several lines with a usage block; ours are one line and exit 125. Help and
/// version requests are not errors.
fn usage_error(e: clap::Error, argv: &[OsString], context: &str) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!("nsjail: {context}{}", usage::message(&e, &argv));
    ExitCode::from(SETUP_FAILED as u8)
}

/// What `run` resolved from profiles, for `--dry-run` and `profile show`.
#[derive(Default)]
struct FromProfiles {
    resolved: profiles::Resolved,
}

/// Resolve `--profile`s into options placed before the command line's own, parse again, and
/// run (or describe) the sandbox.
fn run_with_profiles(
    run: RunArgs,
    user_matches: &ArgMatches,
    argv: &[OsString],
    header: Option<&str>,
) -> anyhow::Result<i32> {
    if run.profile.is_empty() {
        let explicit = |id: &str| user_matches.value_source(id) == Some(ValueSource::CommandLine);
        return run_sandbox(
            &run,
            user_matches,
            &explicit,
            &FromProfiles::default(),
            header,
        );
    }
    let resolved = profiles::resolve(&run.profile)?;
    // `nsjail run OPTIONS... -- CMD`: the subcommand is always argv[1] (there are no global
    // options), so the profile's options go right after it.
    let mut spliced: Vec<OsString> = argv.iter().take(2).cloned().collect();
    spliced.extend(resolved.args.iter().map(OsString::from));
    spliced.extend(argv.iter().skip(2).cloned());
    let matches = match Cli::command().try_get_matches_from(&spliced) {
        Ok(m) => m,
        Err(e) => {
            let _ = usage_error(e, &spliced, "with the profiles' options: ");
            return Ok(SETUP_FAILED);
        }
    };
    let Some((_, run_matches)) = matches.subcommand() else {
        return Ok(SETUP_FAILED);
    };
    let run = RunArgs::from_arg_matches(run_matches)?;
    let explicit = |id: &str| user_matches.value_source(id) == Some(ValueSource::CommandLine);
    run_sandbox(
        &run,
        run_matches,
        &explicit,
        &FromProfiles { resolved },
        header,
    )
}

fn run_sandbox(
    run: &RunArgs,
    matches: &ArgMatches,
    explicit: &dyn Fn(&str) -> bool,
    from_profiles: &FromProfiles,
    header: Option<&str>,
) -> anyhow::Result<i32> {
    // The raw BPF programs first: an fd that never ends fails here, in one line, before
    // anything else is said or started.
    let bpf_programs = seccomp::read_bpf_programs(&run.add_seccomp_fd)?;
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let cwd_path = std::env::current_dir().ok();
    let cwd = cwd_path
        .as_ref()
        .and_then(|p| p.to_str().map(str::to_string));
    let mut view = view::from_args(matches, cwd_path.as_deref().unwrap_or(Path::new("/")))
        .map_err(anyhow::Error::msg)?;
    let not_found_hint = replaced_view_hint(run, matches, explicit, &view.ops);
    if view.ops.is_empty() || run.default_view {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let shared = view::shared_dirs(&|k| std::env::var(k).ok());
        let mut default =
            view::default_view(cwd_path.as_deref(), home.as_deref(), !run.no_cwd, &shared);
        default.ops.append(&mut view.ops);
        default.fds = std::mem::take(&mut view.fds);
        default.keep = std::mem::take(&mut view.keep);
        view = default;
    }
    // Desktop sockets and devices go after the view (into the default view when no other
    // filesystem option was given).
    let wanted = desktop::Wanted {
        x11: run.x11,
        wayland: run.wayland,
        pulseaudio: run.pulseaudio,
        pipewire: run.pipewire,
        gpu: run.gpu,
        dbus_session: run.dbus_session,
        dbus_talk: run.dbus_talk.clone(),
        dry_run: run.dry_run.is_some(),
    };
    let mut skipped = Vec::new();
    let mut desktop_env = Vec::new();
    let mut desktop_unset = Vec::new();
    // The D-Bus filter runs while this holds it (until the sandbox ends, or we die).
    let mut dbus_proxy = None;
    if wanted.any() {
        let getenv = |k: &str| std::env::var(k).ok();
        let added = desktop::add(wanted, &getenv, &mut view)?;
        desktop_env = added.env;
        desktop_unset = added.unset;
        dbus_proxy = added.dbus_proxy;
        for (msg, flag) in added.skipped {
            let id = flag.trim_start_matches("--").replace('-', "_");
            if explicit(&id) && run.dry_run.is_none() {
                eprintln!("nsjail: warning: {msg}");
            } else if run.verbose {
                eprintln!("nsjail: {msg}");
            }
            skipped.push(msg);
        }
    }
    // Last, on top of everything: the user's profiles are never visible inside.
    if let Some(config) = profiles::user_config_dir() {
        let covers = profiles::hide_config(&view.ops, &config);
        if !covers.is_empty() {
            view.notes.push(format!(
                "{} is covered inside: the sandbox can neither read nor write your profiles",
                config.display()
            ));
        }
        view.ops.extend(covers);
    }
    if run.verbose && run.dry_run.is_none() {
        for note in &view.notes {
            eprintln!("nsjail: {note}");
        }
    }
    let mut req = run.to_request(env, cwd, view.ops, view.fds.len() as u32);
    // With a terminal on stdin the payload gets a pseudo-terminal (see terminal.rs): the
    // sandbox's own where it has a /dev/pts.
    req.terminal = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    let seccomp = seccomp::choose(run)?;
    req.seccomp = seccomp.mode;
    req.seccomp_programs = bpf_programs;
    net::apply(run, &mut req)?;
    desktop::drop_caller_bus_variable(&mut req.env, &run.setenv);
    // The bus checks the uid a client claims against the proxy's (yours): the program must
    // have your uid inside, unless --uid says otherwise.
    if desktop_env.iter().any(|(k, _)| k == desktop::BUS_VAR)
        && matches.value_source("uid") == Some(ValueSource::DefaultValue)
    {
        req.ids.uid = nix::unistd::getuid().as_raw();
    }
    for k in desktop_unset {
        if !run.setenv.chunks(2).any(|p| p[0] == k) {
            req.env.retain(|(key, _)| key != k);
        }
    }
    for (k, v) in desktop_env {
        req.env.retain(|(key, _)| *key != k);
        req.env.push((k, v));
    }
    req.pass_fds = run.pass_fd.clone();
    nsjail_core::validate::check(&req)?;
    for &fd in &req.pass_fds {
        passfd::check(fd).map_err(anyhow::Error::msg)?;
    }

    let located = helper::locate(run.helper.as_deref());
    if let Some(format) = run.dry_run {
        let (helper, helper_error) = match &located {
            Ok(l) => (
                Some(dryrun::HelperInfo {
                    path: l.path.display().to_string(),
                    found_by: l.how.to_string(),
                    mode: helper::describe(&l.path),
                }),
                None,
            ),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        // The ruleset the helper would build, without the optional binds it would skip.
        let landlock = nsjail_core::landlock::plan(req.mounts.iter().filter(|op| match op {
            nsjail_core::MountOp::Bind {
                src,
                optional: true,
                ..
            } => std::fs::symlink_metadata(src).is_ok(),
            _ => true,
        }));
        let resolved = dryrun::Resolved {
            helper,
            helper_error,
            passed_fds: &view.fds,
            profiles: from_profiles
                .resolved
                .used
                .iter()
                .map(|(n, o)| (n.clone(), o.to_string()))
                .collect(),
            profile_args: &from_profiles.resolved.args,
            skipped,
            notes: &view.notes,
            landlock: &landlock,
            seccomp_profile: seccomp
                .profile
                .as_ref()
                .map(|(p, len)| dryrun::describe_profile(p, *len)),
            terminal: nix::unistd::isatty(std::io::stdin()).unwrap_or(false),
        };
        if let Some(h) = header {
            print!("{h}");
        }
        match format {
            DryRun::Text => print!("{}", dryrun::text(&req, &resolved)),
            DryRun::Json => println!("{}", dryrun::json(&req, &resolved)),
        }
        return Ok(0);
    }
    let route = daemon::choose(run.socket.as_deref(), run.helper.as_deref())?;
    daemon::say_way_in(&route)?;
    // Bad input ends above with no report; from here on a report is always written, XX when
    // the sandbox could not be set up.
    let mut sinks = report_sinks::Sinks::open(run)?;
    let mut hooks = session::Hooks {
        not_found_hint: not_found_hint.as_deref(),
        ..Default::default()
    };
    let fds = passfd::with_passed(&view.fds, &req.pass_fds);
    let result = start_and_supervise(run.verbose, &req, route, &fds, &mut hooks);
    drop(dbus_proxy);
    let report = match &result {
        Ok(o) => RunReport::from_exit(&o.exit, o.exec_error.as_deref()),
        Err(e) => RunReport::internal_error(&format!("{e:#}").replace('\n', " ")),
    };
    let written = sinks.write(&report);
    // A set-up error is the one line to show; else a report that could not be written is.
    let code = result?.code;
    written?;
    Ok(code)
}

pub(crate) fn start_and_supervise(
    verbose: bool,
    req: &nsjail_core::SpawnRequest,
    route: daemon::Route,
    extra_fds: &[std::os::fd::RawFd],
    hooks: &mut session::Hooks,
) -> anyhow::Result<session::Outcome> {
    let mut term = terminal::Terminal::for_stdio()?;
    let stdio = term.as_ref().map(|t| t.stdio()).unwrap_or([0, 1, 2]);
    let signals = session::catch_signals(term.is_some())?;
    // The daemon serves this connection until we close it (if we die, it kills the sandbox);
    // the setuid helper is our child on one end of a socketpair.
    let (mut child, sock) = match route {
        daemon::Route::Daemon { path, how, sock } => {
            if verbose {
                eprintln!(
                    "nsjail: daemon at {} (socket from {how}); no helper process of ours",
                    path.display()
                );
            }
            (None, sock)
        }
        daemon::Route::Helper { located, skipped } => {
            if verbose {
                eprintln!("nsjail: {skipped}");
                eprintln!(
                    "nsjail: helper {} (found by {}; {})",
                    located.path.display(),
                    located.how,
                    helper::describe(&located.path)
                );
            }
            let (child, sock) = helper::start(&located.path)?;
            (Some(child), sock)
        }
    };
    if let Some(t) = term.as_mut() {
        t.enter_raw_if_foreground()?;
    }
    let outcome = session::run(
        sock,
        req,
        session::Passed {
            stdio,
            extra: extra_fds,
        },
        &signals,
        term.as_mut(),
        hooks,
    );
    // Our terminal back to how it was before anything else is printed.
    drop(term);
    if let Some(line) = outcome
        .as_ref()
        .ok()
        .and_then(|o| session::limit_message(&o.exit, &req.limits))
    {
        eprintln!("nsjail: {line}");
    }
    // The helper exits once it has reported; reap it so that nothing of ours lingers.
    let status = child.as_mut().map(|c| c.wait());
    match outcome {
        Ok(o) => Ok(o),
        Err(e) => match status {
            Some(Ok(st)) if !st.success() && st.code() != Some(2) => {
                Err(e.context(format!("helper {}", describe_status(st))))
            }
            _ => Err(e),
        },
    }
}

/// When filesystem options on the command line replaced the default view and nothing of the
/// system is in theirs, a command that is not found most likely is not there because of that:
/// what to say after "cannot execute".
fn replaced_view_hint(
    run: &RunArgs,
    matches: &ArgMatches,
    explicit: &dyn Fn(&str) -> bool,
    ops: &[nsjail_core::MountOp],
) -> Option<String> {
    if run.default_view || ops.is_empty() {
        return None;
    }
    let system = ops.iter().any(|op| {
        let t = op.target().trim_end_matches('/');
        t.is_empty()
            || ["/usr", "/bin"]
                .iter()
                .any(|d| t == *d || t.starts_with(&format!("{d}/")))
    });
    let first = view::FS_ARGS
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| explicit(id))
        .min_by_key(|id| matches.index_of(id))?;
    (!system).then(|| {
        format!(
            "; --{} replaced the default view, so the system's /usr and /bin are not inside \
             (--default-view keeps it and adds your options)",
            first.replace('_', "-")
        )
    })
}

fn profile_list() {
    for (name, origin, shadowed) in profiles::list() {
        let note = if shadowed {
            "  (shadowed by the one above)"
        } else {
            ""
        };
        println!("{name:<12} {origin}{note}");
    }
}

/// `nsjail profile show NAME`: the files, the options they add, and the sandbox
/// `nsjail run --profile NAME -- CMD` would start from here, now.
fn profile_show(argv: &[OsString], name: &str) -> anyhow::Result<i32> {
    let (origin, text) = profiles::find(name)?;
    let mut header = format!("# profile {name} ({origin})\n");
    for line in text.lines() {
        header.push_str(&format!("#   {line}\n"));
    }
    header.push_str(&format!(
        "# as `nsjail run --profile {name} -- CMD` would run it from this directory:\n"
    ));
    let run_argv: Vec<OsString> = [
        argv.first().cloned().unwrap_or_else(|| "nsjail".into()),
        "run".into(),
        "--profile".into(),
        name.into(),
        "--dry-run".into(),
        "--".into(),
        "CMD".into(),
    ]
    .into();
    let (cli, matches) = parse(&run_argv).context("profile show")?;
    let (Command::Run(run), Some((_, run_matches))) = (cli.command, matches.subcommand()) else {
        return Ok(SETUP_FAILED);
    };
    run_with_profiles(run, run_matches, &run_argv, Some(&header))
}

fn describe_status(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "ended".into(),
    }
}
