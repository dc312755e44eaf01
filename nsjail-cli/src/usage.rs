//! clap's errors made into our one line: what was wrong, the fix when there is an obvious one
//! ("did you mean", the valid values, the usage of the subcommand), and which `--help` to read.
//! clap renders several lines with a usage block; ours are one line on stderr and exit 125.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Command, CommandFactory};

use crate::args::Cli;

/// The subcommand path the words of `argv` lead to: `nsjail`, `nsjail run`, `nsjail profile show`.
fn command_path(argv: &[String]) -> (String, Command) {
    let mut cmd = Cli::command();
    let mut path = vec!["nsjail".to_string()];
    for word in argv.iter().skip(1) {
        let Some(sub) = cmd.find_subcommand(word).cloned() else {
            break;
        };
        path.push(sub.get_name().to_string());
        cmd = sub;
    }
    (path.join(" "), cmd)
}

/// What to type instead, for the commands whose arguments people forget.
fn usage_of(path: &str) -> Option<&'static str> {
    match path {
        "nsjail" | "nsjail run" => Some("nsjail run [OPTIONS] -- CMD [ARGS...]"),
        "nsjail profile" => Some("nsjail profile list, or nsjail profile show NAME"),
        "nsjail profile show" => Some("nsjail profile show NAME (names: nsjail profile list)"),
        _ => None,
    }
}

fn strings(e: &clap::Error, kind: ContextKind) -> Vec<String> {
    match e.get(kind) {
        Some(ContextValue::Strings(v)) => v.clone(),
        Some(ContextValue::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn string(e: &clap::Error, kind: ContextKind) -> Option<String> {
    strings(e, kind).into_iter().next()
}

/// Levenshtein distance, for subcommand suggestions clap's own similarity misses (`rn`).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest subcommand of `cmd` to `word`, if it is close enough to be a typo.
fn closest_subcommand(cmd: &Command, word: &str) -> Option<String> {
    cmd.get_subcommands()
        .map(|s| s.get_name())
        .filter(|n| *n != "help")
        .map(|n| (distance(word, n), n))
        .filter(|(d, n)| *d <= 2 && *d < n.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n.to_string())
}

/// The first line clap renders, without its `error: ` prefix.
fn clap_first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string()
}

/// The one line (without `nsjail: `) for a clap error on `argv`.
pub fn message(e: &clap::Error, argv: &[String]) -> String {
    let (path, cmd) = command_path(argv);
    let what = match e.kind() {
        ErrorKind::MissingRequiredArgument
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let missing = strings(e, ContextKind::InvalidArg);
            let what = match (path.as_str(), missing.first().map(String::as_str)) {
                ("nsjail profile show", _) => "no profile name given".to_string(),
                ("nsjail profile", _) => "profile needs a subcommand".to_string(),
                ("nsjail" | "nsjail run", _) => "no command given".to_string(),
                (_, Some(_)) => format!("missing {}", missing.join(", ")),
                (_, None) => "missing arguments".to_string(),
            };
            match usage_of(&path) {
                Some(u) => format!("{what}: {u}"),
                None => what,
            }
        }
        ErrorKind::InvalidSubcommand => {
            let word = string(e, ContextKind::InvalidSubcommand).unwrap_or_default();
            let suggestion = string(e, ContextKind::SuggestedSubcommand)
                .or_else(|| closest_subcommand(&cmd, &word));
            let names: Vec<&str> = cmd
                .get_subcommands()
                .map(|s| s.get_name())
                .filter(|n| *n != "help")
                .collect();
            match suggestion {
                Some(s) => format!("unknown subcommand '{word}': did you mean '{s}'?"),
                None => format!(
                    "unknown subcommand '{word}' (subcommands: {})",
                    names.join(", ")
                ),
            }
        }
        ErrorKind::UnknownArgument => {
            let arg = string(e, ContextKind::InvalidArg).unwrap_or_default();
            match string(e, ContextKind::SuggestedArg) {
                Some(s) => format!("unknown option '{arg}': did you mean '{s}'?"),
                None if arg.starts_with('-') => format!("unknown option '{arg}'"),
                None => format!("unexpected argument '{arg}'"),
            }
        }
        ErrorKind::InvalidValue => {
            let arg = string(e, ContextKind::InvalidArg).unwrap_or_default();
            let value = string(e, ContextKind::InvalidValue).unwrap_or_default();
            let valid = strings(e, ContextKind::ValidValue);
            match (value.is_empty(), valid.is_empty()) {
                (true, _) => format!("'{arg}' needs a value"),
                (false, true) => format!("invalid value '{value}' for '{arg}'"),
                (false, false) => format!(
                    "invalid value '{value}' for '{arg}': one of {}",
                    valid.join(", ")
                ),
            }
        }
        _ => clap_first_line(e),
    };
    format!("{what} (see {path} --help)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(args: &[&str]) -> String {
        let argv: Vec<String> = std::iter::once("nsjail")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let e = Cli::command()
            .try_get_matches_from(&argv)
            .expect_err("must not parse");
        message(&e, &argv)
    }

    #[test]
    fn each_error_says_what_and_which_help() {
        let cmd = "no command given: nsjail run [OPTIONS] -- CMD [ARGS...]";
        for (args, want) in [
            (&[][..], format!("{cmd} (see nsjail --help)")),
            (&["run"][..], format!("{cmd} (see nsjail run --help)")),
            (&["run", "--"][..], format!("{cmd} (see nsjail run --help)")),
            (
                &["profile"][..],
                "profile needs a subcommand: nsjail profile list, or nsjail profile show NAME \
                 (see nsjail profile --help)"
                    .into(),
            ),
            (
                &["profile", "show"][..],
                "no profile name given: nsjail profile show NAME (names: nsjail profile list) \
                 (see nsjail profile show --help)"
                    .into(),
            ),
            (
                &["rn"][..],
                "unknown subcommand 'rn': did you mean 'run'? (see nsjail --help)".into(),
            ),
            (
                &["profile", "shw"][..],
                "unknown subcommand 'shw': did you mean 'show'? (see nsjail profile --help)".into(),
            ),
            (
                &["frobnicate"][..],
                "unknown subcommand 'frobnicate' (subcommands: run, profile) (see nsjail --help)"
                    .into(),
            ),
            (
                &["run", "--net", "tor", "--", "true"][..],
                "invalid value 'tor' for '--net <MODE>': one of none, host, pasta \
                 (see nsjail run --help)"
                    .into(),
            ),
            (
                &["run", "--hostnam", "x", "--", "true"][..],
                "unknown option '--hostnam': did you mean '--hostname'? (see nsjail run --help)"
                    .into(),
            ),
            (
                &["run", "--hostname"][..],
                "'--hostname <NAME>' needs a value (see nsjail run --help)".into(),
            ),
            (
                &["run", "--memory-limit", "lots", "--", "true"][..],
                "invalid value 'lots' for '--memory-limit <SIZE>': \"lots\" is not a number \
                 (digits with an optional K, M, G or T suffix, or `inf`) (see nsjail run --help)"
                    .into(),
            ),
            (
                &["profile", "list", "x"][..],
                "unexpected argument 'x' (see nsjail profile list --help)".into(),
            ),
        ] {
            assert_eq!(msg(args), want, "nsjail {args:?}");
        }
    }

    #[test]
    fn typos_are_near_and_strangers_are_not() {
        let cmd = Cli::command();
        assert_eq!(closest_subcommand(&cmd, "rn").as_deref(), Some("run"));
        assert_eq!(closest_subcommand(&cmd, "rnu").as_deref(), Some("run"));
        assert_eq!(
            closest_subcommand(&cmd, "profil").as_deref(),
            Some("profile")
        );
        assert_eq!(closest_subcommand(&cmd, "ls"), None);
        assert_eq!(closest_subcommand(&cmd, "x"), None);
    }
}
