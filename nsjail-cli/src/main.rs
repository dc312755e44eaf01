//! `nsjail`: the unprivileged command. It turns flags into a spawn request, reaches the helper,
//! hands over its stdio, forwards signals and exits as the payload did.
#![forbid(unsafe_code)]

mod args;
mod helper;
mod report;
mod session;
mod view;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches};
use nsjail_core::exit::SETUP_FAILED;
use nsjail_core::report::RunReport;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let code = match (cli.command, matches.subcommand()) {
        (Command::Run(run), Some((_, run_matches))) => match run_sandbox(&run, run_matches) {
            Ok(code) => code,
            Err(e) => {
                // One line: the error and its causes, joined.
                let msg = format!("{e:#}").replace('\n', " ");
                eprintln!("nsjail: {msg}");
                SETUP_FAILED
            }
        },
        (Command::Run(_), None) => SETUP_FAILED,
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// clap's errors are several lines with a usage block; ours are one line and exit 125. Help and
/// version requests are not errors.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        eprintln!(
            "nsjail: no command given: nsjail run [OPTIONS] -- CMD [ARGS...] (see nsjail --help)"
        );
        return ExitCode::from(SETUP_FAILED as u8);
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    eprintln!("nsjail: {first} (see nsjail run --help)");
    ExitCode::from(SETUP_FAILED as u8)
}

fn run_sandbox(run: &args::RunArgs, matches: &ArgMatches) -> anyhow::Result<i32> {
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let cwd_path = std::env::current_dir().ok();
    let cwd = cwd_path
        .as_ref()
        .and_then(|p| p.to_str().map(str::to_string));
    let mut view = view::from_args(matches, cwd_path.as_deref().unwrap_or(Path::new("/")))
        .map_err(anyhow::Error::msg)?;
    if view.ops.is_empty() || run.default_view {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut default = view::default_view(cwd_path.as_deref(), home.as_deref(), !run.no_cwd);
        default.ops.append(&mut view.ops);
        default.fds = view.fds;
        view = default;
    }
    if run.verbose {
        for note in &view.notes {
            eprintln!("nsjail: {note}");
        }
    }
    let req = run.to_request(env, cwd, view.ops, view.fds.len() as u32);
    nsjail_core::validate::check(&req)?;
    // Bad input ends above with no report; from here on a report is always written, XX when
    // the sandbox could not be set up.
    let mut sinks = report::Sinks::open(run)?;
    let result = start_and_supervise(run, &req, &view.fds);
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

fn start_and_supervise(
    run: &args::RunArgs,
    req: &nsjail_core::SpawnRequest,
    extra_fds: &[std::os::fd::RawFd],
) -> anyhow::Result<session::Outcome> {
    let located = helper::locate(run.helper.as_deref())?;
    if run.verbose {
        eprintln!(
            "nsjail: helper {} (found by {}; {})",
            located.path.display(),
            located.how,
            helper::describe(&located.path)
        );
    }
    let signals = session::catch_signals()?;
    let (mut child, sock) = helper::start(&located.path)?;
    let outcome = session::run(sock, req, extra_fds, &signals);
    // The helper exits once it has reported; reap it so that nothing of ours lingers.
    let status = child.wait();
    match outcome {
        Ok(o) => Ok(o),
        Err(e) => match status {
            Ok(st) if !st.success() && st.code() != Some(2) => {
                Err(e.context(format!("helper {}", describe_status(st))))
            }
            _ => Err(e),
        },
    }
}

fn describe_status(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "ended".into(),
    }
}
