//! `nsjail`: the unprivileged command. It turns flags into a spawn request, reaches the helper,
//! hands over its stdio, forwards signals and exits as the payload did.
#![forbid(unsafe_code)]

mod args;
mod helper;
mod profile;
mod session;

use std::process::ExitCode;

use clap::Parser;
use nsjail_core::exit::SETUP_FAILED;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let code = match cli.command {
        Command::Run(run) => match run_sandbox(&run) {
            Ok(code) => code,
            Err(e) => {
                // One line: the error and its causes, joined.
                let msg = format!("{e:#}").replace('\n', " ");
                eprintln!("nsjail: {msg}");
                SETUP_FAILED
            }
        },
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

fn run_sandbox(run: &args::RunArgs) -> anyhow::Result<i32> {
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|p| p.into_os_string().into_string().ok());
    let mut req = run.to_request(env, cwd);
    req.seccomp = profile::seccomp_mode(run)?;
    profile::check_bpf_fds(&run.add_seccomp_fd)?;
    nsjail_core::validate::check(&req)?;

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
    let outcome = session::run(sock, &req, &signals, &run.add_seccomp_fd);
    // The helper exits once it has reported; reap it so that nothing of ours lingers.
    let status = child.wait();
    match outcome {
        Ok(o) => Ok(o.code),
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
