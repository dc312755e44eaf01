//! Finding, checking and resolving profiles into `nsjail run` options, and keeping the user's
//! profile directory out of every sandbox.
//!
//! A profile is looked up in `~/.config/nsjail/profiles/NAME.toml`, then
//! `/etc/nsjail/profiles/NAME.toml`, then among the built-ins compiled into this binary; never
//! in the current directory. A file is trusted only when it and its directory belong to you or
//! to root and nobody else can write them. Its keys are the long names of `nsjail run`'s own
//! options (clap's definition is the one list), turned into arguments placed before the user's,
//! so one parser reads both and the command line comes later and wins.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::ArgAction;
use nsjail_core::{BindKind, MountOp, OverlayKind};

use crate::profile_toml::{self as profile, Profile, ProfileValue};

/// Profiles shipped with nsjail: compiled in, and installed as files by `cargo xtask dist`.
pub use nsjail_cli::BUILTIN_PROFILES as BUILTINS;

/// The administrator's profiles.
pub const SYSTEM_DIR: &str = "/etc/nsjail/profiles";

/// Options a profile may not set: they are about this one invocation, not about the sandbox.
const NOT_IN_PROFILES: [&str; 6] = ["profile", "helper", "dry_run", "command", "help", "version"];

/// `$XDG_CONFIG_HOME/nsjail` (when absolute) or `$HOME/.config/nsjail`: the user's nsjail
/// configuration, never visible inside a sandbox.
pub fn user_config_dir() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    from("XDG_CONFIG_HOME")
        .or_else(|| from("HOME").map(|h| h.join(".config")))
        .map(|c| c.join("nsjail"))
}

fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(c) = user_config_dir() {
        dirs.push(c.join("profiles"));
    }
    dirs.push(PathBuf::from(SYSTEM_DIR));
    dirs
}

/// Where a profile came from.
#[derive(Clone, Debug)]
pub enum Origin {
    File(PathBuf),
    Builtin,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Builtin => write!(f, "built-in"),
        }
    }
}

/// Someone other than you or root could change what `meta` describes.
fn untrusted(meta: &std::fs::Metadata) -> Option<String> {
    let me = nix::unistd::getuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Some(format!("owned by uid {}, not by you or root", meta.uid()));
    }
    let who = match (meta.mode() & 0o020 != 0, meta.mode() & 0o002 != 0) {
        (true, true) => "its group and others",
        (true, false) => "its group",
        (false, true) => "others",
        (false, false) => return None,
    };
    Some(format!(
        "writable by {who} (mode {:04o}; chmod go-w makes it usable)",
        meta.mode() & 0o7777
    ))
}

/// Read `dir/NAME.toml` if it exists; refuse it when anyone but you or root could have
/// written it or its directory.
fn read_file(dir: &Path, name: &str) -> Result<Option<String>> {
    let path = dir.join(format!("{name}.toml"));
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("profile {}", path.display())),
    };
    // The checks are made on what was opened, so a file swapped afterwards changes nothing.
    let meta = file
        .metadata()
        .with_context(|| format!("profile {}", path.display()))?;
    if !meta.is_file() {
        bail!("profile {}: not a regular file", path.display());
    }
    if let Some(why) = untrusted(&meta) {
        bail!("profile {}: refused: {why}", path.display());
    }
    let dir_meta =
        std::fs::metadata(dir).with_context(|| format!("profile directory {}", dir.display()))?;
    if let Some(why) = untrusted(&dir_meta) {
        bail!("profile directory {}: refused: {why}", dir.display());
    }
    let mut text = String::new();
    (&mut file)
        .take(profile::MAX_PROFILE_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("profile {}", path.display()))?;
    Ok(Some(text))
}

/// The text of profile `name` and where it was found.
pub fn find(name: &str) -> Result<(Origin, String)> {
    profile::check_name(name)?;
    for dir in search_dirs() {
        if let Some(text) = read_file(&dir, name)? {
            return Ok((Origin::File(dir.join(format!("{name}.toml"))), text));
        }
    }
    if let Some((_, text)) = BUILTINS.iter().find(|(n, _)| *n == name) {
        return Ok((Origin::Builtin, text.to_string()));
    }
    let dirs: Vec<String> = search_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    bail!(
        "profile {name:?} not found (looked in {} and the built-ins; see nsjail profile list)",
        dirs.join(", ")
    )
}

/// Profiles resolved into arguments for `nsjail run`.
#[derive(Debug, Default)]
pub struct Resolved {
    pub args: Vec<String>,
    /// Every profile used, in the order its options were added.
    pub used: Vec<(String, Origin)>,
}

/// Resolve `names` (each with its includes, depth first, each profile once) into arguments.
pub fn resolve(names: &[String]) -> Result<Resolved> {
    let mut out = Resolved::default();
    for name in names {
        visit(name, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

fn visit(name: &str, stack: &mut Vec<String>, out: &mut Resolved) -> Result<()> {
    if stack.iter().any(|n| n == name) {
        stack.push(name.to_string());
        bail!("profile include cycle: {}", stack.join(" -> "));
    }
    if out.used.iter().any(|(n, _)| n == name) {
        return Ok(());
    }
    let (origin, text) = find(name)?;
    let parsed: Profile =
        profile::parse(&text).map_err(|e| anyhow!("profile {name} ({origin}): {e}"))?;
    stack.push(name.to_string());
    for inc in &parsed.include {
        visit(inc, stack, out)?;
    }
    stack.pop();
    let args =
        entries_to_args(&parsed.entries).map_err(|e| anyhow!("profile {name} ({origin}): {e}"))?;
    out.args.extend(args);
    out.used.push((name.to_string(), origin));
    Ok(())
}

/// Turn profile settings into `nsjail run` arguments, using clap's own definition of `run`.
pub fn entries_to_args(entries: &[(String, ProfileValue)]) -> Result<Vec<String>, String> {
    use clap::CommandFactory;
    let cli = crate::args::Cli::command();
    let run = cli
        .find_subcommand("run")
        .ok_or("the run command is not defined")?;
    let mut args = Vec::new();
    for (key, value) in entries {
        if NOT_IN_PROFILES.contains(&key.as_str()) {
            return Err(format!(
                "key {key:?} cannot be set in a profile (it is about one invocation)"
            ));
        }
        let Some(arg) = run
            .get_arguments()
            .find(|a| a.get_id() == key.as_str() && a.get_long().is_some())
        else {
            return Err(format!("unknown key {key:?} (not an option of nsjail run)"));
        };
        let flag = format!("--{}", arg.get_long().unwrap_or(key));
        let wrong = |want: &str| format!("key {key:?} ({flag}) takes {want}, not {}", value.kind());
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            match value {
                ProfileValue::Bool(true) => args.push(flag),
                // false is every flag's default: nothing to add.
                ProfileValue::Bool(false) => {}
                _ => return Err(wrong("true or false")),
            }
            continue;
        }
        let n = arg.get_num_args().map(|r| r.max_values()).unwrap_or(1);
        let repeatable = matches!(arg.get_action(), ArgAction::Append);
        match (n, value) {
            (1, ProfileValue::Str(s)) => args.push(format!("{flag}={s}")),
            (1, ProfileValue::Int(i)) => args.push(format!("{flag}={i}")),
            (1, ProfileValue::List(items)) if repeatable => {
                args.extend(items.iter().map(|s| format!("{flag}={s}")))
            }
            (1, _) if repeatable => return Err(wrong("a string or an array of strings")),
            (1, _) => return Err(wrong("a string or an integer")),
            (n, ProfileValue::Table(rows)) => {
                for row in rows {
                    if row.len() != n {
                        return Err(format!(
                            "key {key:?} ({flag}) takes {n} values per use, not {}: {row:?}",
                            row.len()
                        ));
                    }
                    if let Some(v) = row.iter().find(|v| v.starts_with('-')) {
                        return Err(format!(
                            "key {key:?} ({flag}): value {v:?} may not start with '-'"
                        ));
                    }
                    args.push(flag.clone());
                    args.extend(row.iter().cloned());
                }
            }
            (n, _) => return Err(wrong(&format!("an array of arrays of {n} values"))),
        }
    }
    Ok(args)
}

/// Every profile that can be named, with where it comes from: `(name, origin, shadowed)`.
pub fn list() -> Vec<(String, Origin, bool)> {
    let mut out: Vec<(String, Origin, bool)> = Vec::new();
    for dir in search_dirs() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                let stem = n.strip_suffix(".toml")?.to_string();
                profile::check_name(&stem).ok().map(|()| stem)
            })
            .collect();
        names.sort();
        for n in names {
            let shadowed = out.iter().any(|(m, _, _)| *m == n);
            let path = dir.join(format!("{n}.toml"));
            out.push((n, Origin::File(path), shadowed));
        }
    }
    for (n, _) in BUILTINS {
        let shadowed = out.iter().any(|(m, _, _)| m == n);
        out.push((n.to_string(), Origin::Builtin, shadowed));
    }
    out
}

/// Operations that cover the user's nsjail configuration (`config`) wherever the view exposes
/// it: a bind or writable overlay whose host source is that directory, inside it, or above it
/// gets an empty, read-only tmpfs (mode 0) over the matching place inside. So a sandbox can
/// neither read the profiles nor plant one that a later `nsjail run` would trust (firejail
/// CVE-2019-12589). Missing directories are covered too where the sandbox could create them.
pub fn hide_config(ops: &[MountOp], config: &Path) -> Vec<MountOp> {
    let exists = config.exists();
    let mut covers: Vec<String> = Vec::new();
    for op in ops {
        let (src, dst, writable) = match op {
            MountOp::Bind { src, dst, kind, .. } => (src, dst, *kind != BindKind::ReadOnly),
            MountOp::Overlay {
                kind: OverlayKind::ReadWrite { upper, .. },
                dst,
                ..
            } => (upper, dst, true),
            MountOp::Overlay { srcs, dst, .. } => {
                for s in srcs {
                    if let Some(at) = exposed_at(Path::new(s), dst, config)
                        && exists
                    {
                        covers.push(at);
                    }
                }
                continue;
            }
            _ => continue,
        };
        if let Some(at) = exposed_at(Path::new(src), dst, config)
            && (exists || writable)
        {
            covers.push(at);
        }
    }
    covers.dedup();
    let mut out = Vec::new();
    for at in covers {
        out.push(MountOp::Tmpfs {
            dst: at.clone(),
            size: Some(4096),
            perms: Some(0),
        });
        out.push(MountOp::RemountRo { dst: at });
    }
    out
}

/// Where inside the sandbox `config` appears through a mount of host `src` at `dst`, if it does.
fn exposed_at(src: &Path, dst: &str, config: &Path) -> Option<String> {
    let src = std::fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
    let config = canonical_ish(config);
    let dst = dst.trim_end_matches('/');
    if let Ok(rel) = config.strip_prefix(&src) {
        // The source holds the configuration: cover it at its place below dst.
        let at = Path::new(if dst.is_empty() { "/" } else { dst }).join(rel);
        return Some(at.to_string_lossy().into_owned());
    }
    if src.starts_with(&config) {
        // The source is the configuration or inside it: cover the whole mount.
        return Some(if dst.is_empty() {
            "/".into()
        } else {
            dst.into()
        });
    }
    None
}

/// `config` with symlinks resolved as far as it exists (it may not exist yet).
fn canonical_ish(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut p = path.to_path_buf();
    loop {
        if let Ok(c) = std::fs::canonicalize(&p) {
            let mut c = c;
            for m in missing.iter().rev() {
                c.push(m);
            }
            return c;
        }
        match (p.file_name().map(|f| f.to_os_string()), p.parent()) {
            (Some(f), Some(parent)) => {
                missing.push(f);
                p = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, ProfileValue)> {
        profile::parse(text).unwrap().entries
    }

    #[test]
    fn builtins_parse_and_map_onto_run_options() {
        use clap::Parser;
        for (name, text) in BUILTINS {
            let p = profile::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let args = entries_to_args(&p.entries).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Every setting but a `false` (the default) becomes an option ...
            assert!(!args.is_empty(), "{name} adds nothing");
            for (key, value) in &p.entries {
                let flag = format!("--{}", key.replace('_', "-"));
                assert_eq!(
                    args.iter()
                        .any(|a| a == &flag || a.starts_with(&format!("{flag}="))),
                    !matches!(value, ProfileValue::Bool(false)),
                    "{name}: {key} in {args:?}"
                );
            }
            // ... that `nsjail run` itself accepts.
            let mut argv = vec!["nsjail".to_string(), "run".into()];
            argv.extend(args.iter().cloned());
            argv.extend(["--".into(), "true".into()]);
            crate::args::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn keys_become_options() {
        let args = entries_to_args(&entries(
            r#"
            share-net = true
            as_pid_1 = false
            hostname = "box"
            uid = 7
            tmpfs = ["/a", "/b"]
            bind = [["/s", "/d"]]
            setenv = [["K", "V"]]
            "#,
        ))
        .unwrap();
        assert_eq!(
            args,
            [
                "--share-net",
                "--hostname=box",
                "--uid=7",
                "--tmpfs=/a",
                "--tmpfs=/b",
                "--bind",
                "/s",
                "/d",
                "--setenv",
                "K",
                "V"
            ]
        );
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let e = entries_to_args(&entries("bogus = 1")).unwrap_err();
        assert!(e.contains("unknown key \"bogus\""), "{e}");
        let e = entries_to_args(&entries("helper = \"/x\"")).unwrap_err();
        assert!(e.contains("\"helper\""), "{e}");
        let e = entries_to_args(&entries("share-net = \"yes\"")).unwrap_err();
        assert!(e.contains("share_net"), "{e}");
        let e = entries_to_args(&entries("bind = [[\"/a\"]]")).unwrap_err();
        assert!(e.contains("2 values"), "{e}");
        let e = entries_to_args(&entries("bind = [\"/a\", \"/b\"]")).unwrap_err();
        assert!(e.contains("bind"), "{e}");
        let e = entries_to_args(&entries("hostname = [\"a\"]")).unwrap_err();
        assert!(e.contains("hostname"), "{e}");
    }

    #[test]
    fn the_config_directory_is_covered_where_a_bind_exposes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let config = home.join(".config/nsjail");
        std::fs::create_dir_all(config.join("profiles")).unwrap();
        let h = home.to_str().unwrap();
        let bind = |src: &str, dst: &str, kind| MountOp::Bind {
            src: src.into(),
            dst: dst.into(),
            kind,
            optional: false,
        };
        let covered = |ops: &[MountOp]| -> Vec<String> {
            hide_config(ops, &config)
                .iter()
                .filter_map(|o| match o {
                    MountOp::Tmpfs {
                        dst,
                        perms: Some(0),
                        ..
                    } => Some(dst.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            covered(&[bind(h, "/box", BindKind::ReadWrite)]),
            ["/box/.config/nsjail"]
        );
        let cfg = format!("{h}/.config");
        assert_eq!(
            covered(&[bind(&cfg, &cfg, BindKind::ReadOnly)]),
            [format!("{h}/.config/nsjail")]
        );
        let prof = format!("{h}/.config/nsjail/profiles");
        assert_eq!(covered(&[bind(&prof, "/p", BindKind::ReadOnly)]), ["/p"]);
        assert!(covered(&[bind("/usr", "/usr", BindKind::ReadOnly)]).is_empty());
        assert!(
            covered(&[bind(
                &format!("{h}/.config/other"),
                "/o",
                BindKind::ReadWrite
            )])
            .is_empty()
        );
        // Through a symlink to the home directory.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&home, &link).unwrap();
        assert_eq!(
            covered(&[bind(link.to_str().unwrap(), "/l", BindKind::ReadWrite)]),
            ["/l/.config/nsjail"]
        );
        // Not there yet: covered only where the sandbox could create it.
        let absent = home.join(".config/absent");
        let ops = [
            bind(h, "/rw", BindKind::ReadWrite),
            bind(h, "/ro", BindKind::ReadOnly),
        ];
        let out: Vec<String> = hide_config(&ops, &absent)
            .iter()
            .map(|o| o.target().to_string())
            .collect();
        assert_eq!(out, ["/rw/.config/absent", "/rw/.config/absent"]);
    }
}
