//! `cargo xtask man`, `completions`, `dist` and `deb`: man pages and shell completions made
//! from the CLI's own clap definition, and the files laid out where a distribution puts them.
//!
//! Layout under a prefix P (the same for `install`, the tarball and the .deb, with P = /usr):
//!
//! | file | where |
//! |---|---|
//! | the CLI | `P/bin/nsjail` |
//! | the helper | `P/libexec/nsjail/nsjail-helper` (root:root 4755) |
//! | man pages | `P/share/man/man1/nsjail.1`, `nsjail-run.1`, `nsjail-profile.1`, ... |
//! | bash completion | `P/share/bash-completion/completions/nsjail` |
//! | zsh completion | `P/share/zsh/site-functions/_nsjail` |
//! | fish completion | `P/share/fish/vendor_completions.d/nsjail.fish` |
//! | built-in profiles, as files | `P/share/nsjail/profiles/NAME.toml` |
//! | docs, example policy | `P/share/doc/nsjail/`: README.md, SECURITY.md, docs/*.md, policy.toml.example |

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

use crate::{Workspace, run_checked, step};

/// Man pages: one per command, `nsjail.1` and `nsjail-SUB.1` (and deeper), as `(file, bytes)`.
/// No page for clap's `help` subcommand (its text is the pages), so none names one either.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    fn without_help(cmd: clap::Command) -> clap::Command {
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        names
            .iter()
            .fold(cmd.disable_help_subcommand(true), |c, n| {
                c.mut_subcommand(n, without_help)
            })
    }
    let mut cmd = without_help(nsjail_cli::args::Cli::command());
    cmd.build();
    let mut out = Vec::new();
    render_man(&cmd, "nsjail", &mut out)?;
    Ok(out)
}

/// Text for roff: backslashes and hyphens escaped, a leading `.` or `'` defused.
fn roff_escape(line: &str) -> String {
    let s = line.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// EXAMPLES (the lines of `--help`'s examples, kept as lines), EXIT STATUS and SEE ALSO.
fn man_sections(name: &str, examples: Option<&str>) -> String {
    let mut o = String::new();
    if let Some(ex) = examples {
        o.push_str(".SH EXAMPLES\n.nf\n");
        for line in ex.lines().skip_while(|l| l.trim_end().ends_with(':')) {
            o.push_str(&roff_escape(line));
            o.push('\n');
        }
        o.push_str(".fi\n");
    }
    o.push_str(".SH \"EXIT STATUS\"\n");
    let rows: &[(&str, &str)] = if name == "nsjail" || name == "nsjail-run" {
        &[
            ("CMD's code", "CMD exited normally"),
            ("128+N", "CMD was killed by signal N"),
            (
                "125",
                "the sandbox could not be set up, or the arguments were wrong (one line on stderr says why)",
            ),
            ("126", "CMD exists but cannot be executed"),
            ("127", "CMD was not found"),
        ]
    } else {
        &[
            ("0", "success"),
            ("125", "an error (one line on stderr says why)"),
        ]
    };
    for (code, what) in rows {
        o.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            roff_escape(code),
            roff_escape(what)
        ));
    }
    o.push_str(".SH \"SEE ALSO\"\n");
    let pages: Vec<&str> = ["nsjail", "nsjail-run", "nsjail-profile"]
        .into_iter()
        .filter(|p| *p != name)
        .collect();
    let refs: Vec<String> = pages
        .iter()
        .map(|p| format!("\\fB{}\\fR(1)", roff_escape(p)))
        .collect();
    o.push_str(&format!(
        "{}; README.md, SECURITY.md and docs/ in share/doc/nsjail of the install prefix\n",
        refs.join(", ")
    ));
    o
}

fn render_man(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let examples = cmd.get_after_help().map(|h| h.to_string());
    // The examples become their own section (clap_mangen's EXTRA reflows them into one block).
    let cmd = cmd.clone().name(name.to_string()).after_help(None::<&str>);
    let man = clap_mangen::Man::new(cmd.clone());
    let mut buf = Vec::new();
    let context = || format!("rendering the man page of {name}");
    man.render_title(&mut buf).with_context(context)?;
    man.render_name_section(&mut buf).with_context(context)?;
    man.render_synopsis_section(&mut buf)
        .with_context(context)?;
    man.render_description_section(&mut buf)
        .with_context(context)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf).with_context(context)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut buf)
            .with_context(context)?;
    }
    buf.extend_from_slice(man_sections(name, examples.as_deref()).as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut buf).with_context(context)?;
    }
    out.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        render_man(sub, &format!("{name}-{}", sub.get_name()), out)?;
    }
    Ok(())
}

/// Completions for bash, zsh and fish, as `(path under the prefix, bytes)`.
pub fn completions() -> Result<Vec<(String, Vec<u8>)>> {
    use clap_complete::{Shell, generate};
    let mut out = Vec::new();
    for (shell, path) in [
        (Shell::Bash, "share/bash-completion/completions/nsjail"),
        (Shell::Zsh, "share/zsh/site-functions/_nsjail"),
        (Shell::Fish, "share/fish/vendor_completions.d/nsjail.fish"),
    ] {
        let mut cmd = nsjail_cli::args::Cli::command();
        let mut buf = Vec::new();
        generate(shell, &mut cmd, "nsjail", &mut buf);
        let script = String::from_utf8(buf).context("a completion script is not UTF-8")?;
        let script = complete_profile_names(shell, &script)
            .with_context(|| format!("completing profile names in {path}"))?;
        out.push((path.to_string(), script.into_bytes()));
    }
    Ok(out)
}

/// `--profile NAME` and `profile show NAME` complete the names `nsjail profile list` prints
/// (yours, the system's, the built-ins), which clap cannot know: it would offer file names. The
/// generated scripts are changed at the places that complete those two values; each change
/// must find its place, so a new clap that writes them differently fails here, not silently.
fn complete_profile_names(shell: clap_complete::Shell, script: &str) -> Result<String> {
    use clap_complete::Shell;
    let mut s = script.to_string();
    fn replace_in(s: &mut String, from: &str, to: &str) -> Result<()> {
        if !s.contains(from) {
            bail!("the generated script has no {from:?}");
        }
        *s = s.replacen(from, to, 1);
        Ok(())
    }
    match shell {
        Shell::Bash => {
            replace_in(
                &mut s,
                "--profile)\n                    COMPREPLY=($(compgen -f \"${cur}\"))",
                "--profile)\n                    COMPREPLY=($(compgen -W \"$(_nsjail_profiles)\" -- \"${cur}\"))",
            )?;
            replace_in(
                &mut s,
                "nsjail__subcmd__profile__subcmd__show)\n            opts=\"-h --help\"",
                "nsjail__subcmd__profile__subcmd__show)\n            opts=\"-h --help $(_nsjail_profiles)\"",
            )?;
            Ok(format!(
                "# The profiles `nsjail profile list` knows: yours, the system's, the built-ins.\n\
                 _nsjail_profiles() {{\n    \"${{COMP_WORDS[0]}}\" profile list 2>/dev/null | cut -d' ' -f1\n}}\n\n{s}"
            ))
        }
        Shell::Zsh => {
            replace_in(
                &mut s,
                "\\[default\\: none\\]]:NAME:_default'",
                "\\[default\\: none\\]]:NAME:_nsjail_profiles'",
            )?;
            replace_in(
                &mut s,
                "':name -- The profile'\\''s name:_default'",
                "':name -- The profile'\\''s name:_nsjail_profiles'",
            )?;
            replace_in(
                &mut s,
                "#compdef nsjail\n",
                "#compdef nsjail\n\n# The profiles `nsjail profile list` knows: yours, the system's, the built-ins.\n\
                 (( $+functions[_nsjail_profiles] )) ||\n_nsjail_profiles() {\n    local -a profiles\n    \
                 profiles=(${(f)\"$(${words[1]} profile list 2>/dev/null | cut -d' ' -f1)\"})\n    \
                 _describe 'profile' profiles\n}\n",
            )?;
            Ok(s)
        }
        Shell::Fish => {
            let names = "-f -a \"(__fish_nsjail_profiles)\"";
            let profile_opt = s
                .lines()
                .find(|l| l.contains(" -l profile ") && l.ends_with(" -r"))
                .context("no --profile line")?
                .to_string();
            replace_in(&mut s, &profile_opt, &format!("{profile_opt} {names}"))?;
            Ok(format!(
                "# The profiles `nsjail profile list` knows: yours, the system's, the built-ins.\n\
                 function __fish_nsjail_profiles\n    command nsjail profile list 2>/dev/null | string replace -r ' .*' ''\n\
                 end\n\n{s}\
                 complete -c nsjail -n \"__fish_nsjail_using_subcommand profile; and __fish_seen_subcommand_from show\" {names}\n"
            ))
        }
        _ => Ok(s),
    }
}

/// The example policy: every key of the reference in docs/policy.md, commented out, so that the
/// file as it is grants the defaults and an admin uncomments what they need.
pub fn policy_example(policy_md: &str) -> Result<String> {
    let start = policy_md
        .find("```toml")
        .context("docs/policy.md has no ```toml reference block")?;
    let body = &policy_md[start + "```toml".len()..];
    let end = body
        .find("```")
        .context("docs/policy.md: the ```toml block does not end")?;
    let mut out = String::from(
        "# nsjail admin policy: every key, with an example value, commented out. As it is, this\n\
         # file grants the defaults (everyone may use the helper, only their own ids are mapped,\n\
         # --cap-add and --allow-userns for root only, every other feature allowed, no ceilings).\n\
         # Copy it to /etc/nsjail/policy.toml (root:root, mode 0644) and uncomment what you need;\n\
         # docs/policy.md next to this file explains each key.\n\n",
    );
    for line in body[..end].trim_matches('\n').lines() {
        match line {
            "" => out.push('\n'),
            l if l.starts_with('#') => out.push_str(&format!("{l}\n")),
            l => out.push_str(&format!("#{l}\n")),
        }
    }
    Ok(out)
}

/// The docs a distribution installs, with the layout of the repository kept (README.md and
/// SECURITY.md link to docs/NAME.md, which link back to ../README.md).
const DOCS: [&str; 2] = ["README.md", "SECURITY.md"];

/// Every data file (not the binaries), as `(path under the prefix, bytes, mode)`.
pub fn data_files(ws_root: &Path) -> Result<Vec<(String, Vec<u8>, u32)>> {
    let mut files = Vec::new();
    for (name, bytes) in man_pages()? {
        files.push((format!("share/man/man1/{name}"), bytes, 0o644));
    }
    for (path, bytes) in completions()? {
        files.push((path, bytes, 0o644));
    }
    for (name, text) in nsjail_cli::BUILTIN_PROFILES {
        files.push((
            format!("share/nsjail/profiles/{name}.toml"),
            text.as_bytes().to_vec(),
            0o644,
        ));
    }
    let policy_md = ws_root.join("docs/policy.md");
    let policy_md = fs::read_to_string(&policy_md)
        .with_context(|| format!("reading {}", policy_md.display()))?;
    files.push((
        "share/doc/nsjail/policy.toml.example".into(),
        policy_example(&policy_md)?.into_bytes(),
        0o644,
    ));
    let mut docs: Vec<String> = DOCS.iter().map(|d| d.to_string()).collect();
    let dir = ws_root.join("docs");
    let mut md: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    md.sort();
    docs.extend(md);
    for doc in docs {
        let p = ws_root.join(&doc);
        let bytes = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        files.push((format!("share/doc/nsjail/{doc}"), bytes, 0o644));
    }
    Ok(files)
}

/// Write the data files under `dest` (a prefix, possibly staged).
pub fn install_data(ws_root: &Path, dest: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, bytes, mode) in data_files(ws_root)? {
        let path = dest.join(&rel);
        if let Some(dir) = path.parent() {
            crate::install::make_dirs(dir)?;
        }
        fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The data files' paths under a prefix, for `uninstall`.
pub fn data_paths(ws_root: &Path) -> Result<Vec<String>> {
    Ok(data_files(ws_root)?
        .into_iter()
        .map(|(p, _, _)| p)
        .collect())
}

/// `cargo xtask man --out DIR`.
pub fn man(out: &Path) -> Result<()> {
    crate::install::make_dirs(out)?;
    for (name, bytes) in man_pages()? {
        let p = out.join(&name);
        fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
        println!("{}", p.display());
    }
    Ok(())
}

/// `cargo xtask completions --out DIR`: `DIR/<share/...>` for each shell.
pub fn completions_into(out: &Path) -> Result<()> {
    for (rel, bytes) in completions()? {
        let p = out.join(&rel);
        if let Some(d) = p.parent() {
            crate::install::make_dirs(d)?;
        }
        fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
        println!("{}", p.display());
    }
    Ok(())
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Stage the whole install (static release binaries and data) under `stage/prefix`.
fn stage(ws: &Workspace, stage: &Path, prefix: &str) -> Result<PathBuf> {
    let bins = ws.build_bins(crate::Profile::Release, false)?;
    let dest = stage.join(prefix.trim_start_matches('/'));
    let as_root = nix::unistd::geteuid().is_root();
    crate::install::install_files(&bins, &dest, as_root)?;
    install_data(&ws.root, &dest)?;
    Ok(dest)
}

/// `cargo xtask dist`: `target/dist/nsjail-VERSION-TRIPLE.tar.gz`, a tree to unpack over a
/// prefix (`tar -xzf ... -C /usr/local --strip-components=1`).
pub fn dist(ws: &Workspace) -> Result<PathBuf> {
    let triple = crate::release_triple()?;
    let name = format!("nsjail-{}-{triple}", version());
    let out_dir = ws.target.join("dist");
    crate::install::make_dirs(&out_dir)?;
    let tmp = tempfile::tempdir_in(&out_dir).context("a staging directory")?;
    let top = tmp.path().join(&name);
    stage(ws, &top, "/")?;
    let tarball = out_dir.join(format!("{name}.tar.gz"));
    step(&format!("packing {}", tarball.display()));
    let mut tar = Command::new("tar");
    tar.arg("--owner=0")
        .arg("--group=0")
        .arg("--numeric-owner")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp.path())
        .arg(&name);
    run_checked(&mut tar)?;
    println!("{}", tarball.display());
    Ok(tarball)
}

/// The main package's name (`nsjail` is Debian's package of Google's nsjail).
pub const DEB_MAIN: &str = "nsjail-rs";
/// The package of the `bwrap` link.
pub const DEB_BWRAP: &str = "nsjail-bwrap";

/// The main package's `DEBIAN/control`.
fn control_main(arch: &str) -> String {
    format!(
        "Package: {DEB_MAIN}\n\
         Version: {}\n\
         Architecture: {arch}\n\
         Maintainer: nsjail maintainers <maintainers@localhost>\n\
         Section: admin\n\
         Priority: optional\n\
         Recommends: passt\n\
         Suggests: {DEB_BWRAP}\n\
         Description: process sandbox with a small setuid helper\n \
         nsjail run -- CMD starts CMD in new Linux namespaces as an ordinary user, with a\n \
         chosen filesystem view, profiles, desktop sockets and network through pasta.\n",
        version()
    )
}

/// `nsjail-bwrap`'s `DEBIAN/control`. It ships `/usr/bin/bwrap`, as Debian's `bubblewrap` does,
/// so it takes that package's place (Conflicts and Replaces, the replacing-a-package idiom of
/// Debian's policy, 7.6.2) and provides it at the version of bubblewrap's command line it
/// speaks, so that packages depending on `bubblewrap (>= X)` (Flatpak, GNOME's thumbnailers)
/// are satisfied by it. docs/admin.md says why and how to keep Debian's instead.
fn control_bwrap(arch: &str) -> String {
    let v = version();
    let bwrap = nsjail_cli::BWRAP_VERSION;
    format!(
        "Package: {DEB_BWRAP}\n\
         Version: {v}\n\
         Architecture: {arch}\n\
         Maintainer: nsjail maintainers <maintainers@localhost>\n\
         Section: admin\n\
         Priority: optional\n\
         Depends: {DEB_MAIN} (= {v})\n\
         Provides: bubblewrap (= {bwrap})\n\
         Conflicts: bubblewrap\n\
         Replaces: bubblewrap\n\
         Description: bubblewrap's command line on nsjail's setuid helper\n \
         /usr/bin/bwrap as a link to nsjail, which run by that name speaks bubblewrap's\n \
         command line ({bwrap}) and starts the sandbox through nsjail's helper, so that\n \
         Flatpak and the other programs that run bwrap work where unprivileged user\n \
         namespaces are switched off, under the admin's policy.\n"
    )
}

/// The architecture dpkg builds for, from `dpkg --print-architecture`.
fn deb_arch() -> Result<String> {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        bail!("dpkg-deb is not installed (Debian: apt install dpkg)");
    }
    let arch_out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .context("running dpkg --print-architecture")?;
    let arch = String::from_utf8_lossy(&arch_out.stdout).trim().to_string();
    if arch.is_empty() {
        bail!("dpkg --print-architecture said nothing");
    }
    Ok(arch)
}

/// `dpkg-deb --root-owner-group --build ROOT DEB`: every file root:root, modes as in the tree.
fn build_deb(root: &Path, control: &str, deb: &Path) -> Result<()> {
    let control_dir = root.join("DEBIAN");
    crate::install::make_dirs(&control_dir)?;
    fs::write(control_dir.join("control"), control).context("writing DEBIAN/control")?;
    let mut cmd = Command::new("dpkg-deb");
    cmd.args(["--root-owner-group", "--build"])
        .arg(root)
        .arg(deb);
    run_checked(&mut cmd)
}

/// `nsjail-bwrap_VERSION_ARCH.deb` in `out_dir`: the link `/usr/bin/bwrap` -> `nsjail`, laid out
/// as `cargo xtask install --bwrap` makes it.
pub fn bwrap_deb(out_dir: &Path, arch: &str) -> Result<PathBuf> {
    let tmp = tempfile::tempdir_in(out_dir).context("a staging directory")?;
    let root = tmp.path().join("root");
    let usr = root.join("usr");
    crate::install::make_dirs(&usr.join("bin"))?;
    crate::install::install_bwrap_link(&usr)?;
    let deb = out_dir.join(format!("{DEB_BWRAP}_{}_{arch}.deb", version()));
    build_deb(&root, &control_bwrap(arch), &deb)?;
    Ok(deb)
}

/// `cargo xtask deb`: `target/dist/nsjail-rs_VERSION_ARCH.deb`, built with Debian's own
/// `dpkg-deb` (no other packaging tool needed), installing under /usr with the helper
/// root:root 4755; and `nsjail-bwrap_VERSION_ARCH.deb`, the `bwrap` link on its own.
pub fn deb(ws: &Workspace) -> Result<PathBuf> {
    let arch = deb_arch()?;
    let out_dir = ws.target.join("dist");
    crate::install::make_dirs(&out_dir)?;
    let tmp = tempfile::tempdir_in(&out_dir).context("a staging directory")?;
    let root = tmp.path().join("root");
    let dest = stage(ws, &root, "/usr")?;
    // dpkg-deb --root-owner-group makes every file root:root; the mode is what the tree has.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        dest.join(crate::install::HELPER_REL),
        fs::Permissions::from_mode(0o4755),
    )
    .context("chmod 4755 the staged helper")?;
    let deb = out_dir.join(format!("{DEB_MAIN}_{}_{arch}.deb", version()));
    build_deb(&root, &control_main(&arch), &deb)?;
    println!("{}", deb.display());
    let bwrap = bwrap_deb(&out_dir, &arch)?;
    println!("{}", bwrap.display());
    Ok(deb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_and_completions_cover_every_command() {
        let pages: Vec<String> = man_pages().unwrap().into_iter().map(|(n, _)| n).collect();
        for want in [
            "nsjail.1",
            "nsjail-run.1",
            "nsjail-profile.1",
            "nsjail-profile-show.1",
        ] {
            assert!(pages.iter().any(|p| p == want), "{want} missing: {pages:?}");
        }
        let run = man_pages()
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == "nsjail-run.1")
            .unwrap()
            .1;
        let run = String::from_utf8_lossy(&run);
        assert!(
            run.contains("forward\\-port") && run.contains("profile"),
            "{run}"
        );
        // Every page says how nsjail exits and names only pages that are installed; the
        // examples stay one per line (no-fill), not reflowed into a paragraph.
        for (name, bytes) in man_pages().unwrap() {
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains(".SH \"EXIT STATUS\""), "{name}");
            for (at, _) in text.match_indices("(1)") {
                let before = &text[..at];
                let word = before
                    .rsplit(|c: char| c.is_whitespace() || c == ',')
                    .next()
                    .unwrap_or("");
                let page = word
                    .replace("\\fB", "")
                    .replace("\\fR", "")
                    .replace("\\-", "-");
                let file = format!("{page}.1");
                assert!(pages.contains(&file), "{name} names {file}, not installed");
            }
        }
        let examples = run.split(".SH EXAMPLES\n").nth(1).unwrap_or("");
        assert!(
            examples.starts_with(".nf\n")
                && examples.contains("  nsjail run \\-\\-profile devtool \\-\\- make"),
            "{run}"
        );
        let comp = completions().unwrap();
        assert_eq!(comp.len(), 3);
        for (path, bytes) in comp {
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains("dry-run"), "{path}");
        }
    }

    /// What bash completes for `words` (the last one being completed), with `nsjail` a stub
    /// that lists two profiles, in a directory holding a file named like one of them.
    fn bash_completes(words: &[&str]) -> Vec<String> {
        let tmp = tempfile::tempdir().unwrap();
        let (path, script) = completions()
            .unwrap()
            .into_iter()
            .find(|(p, _)| p.contains("bash-completion"))
            .unwrap();
        let script_path = tmp.path().join("nsjail.bash");
        fs::write(&script_path, script).unwrap();
        let stub = tmp.path().join("nsjail");
        fs::write(
            &stub,
            "#!/bin/sh\n[ \"$1 $2\" = \"profile list\" ] || exit 1\n\
             printf 'devtool      built-in\\nmine         /home/me/.config/nsjail/profiles/mine.toml\\n'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(tmp.path().join("devfile"), "").unwrap();
        let mut all = vec![stub.to_str().unwrap().to_string()];
        all.extend(words[1..].iter().map(|w| w.to_string()));
        let quoted: Vec<String> = all.iter().map(|w| format!("'{w}'")).collect();
        let n = all.len() - 1;
        let prog = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={n}; _nsjail \"${{COMP_WORDS[0]}}\" \
             \"${{COMP_WORDS[{n}]}}\" \"${{COMP_WORDS[{}]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script_path.display(),
            quoted.join(" "),
            n - 1
        );
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &prog])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{path}: {out:?}");
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn bash_completes_profile_names_not_file_names() {
        assert_eq!(
            bash_completes(&["nsjail", "run", "--profile", "de"]),
            ["devtool"]
        );
        assert_eq!(
            bash_completes(&["nsjail", "run", "--profile", "m"]),
            ["mine"]
        );
        assert_eq!(
            bash_completes(&["nsjail", "profile", "show", ""]),
            ["--help", "-h", "devtool", "mine"]
        );
        // The control: an option that takes a file still completes file names.
        assert_eq!(
            bash_completes(&["nsjail", "run", "--seccomp", "de"]),
            ["devfile"]
        );
    }

    #[test]
    fn the_example_policy_grants_the_defaults_and_uncommented_is_the_reference() {
        let ws_root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let md = fs::read_to_string(ws_root.join("docs/policy.md")).unwrap();
        let example = policy_example(&md).unwrap();
        let as_is = nsjail_core::policy::Policy::parse(&example).unwrap();
        assert_eq!(as_is, nsjail_core::policy::Policy::parse("").unwrap());
        // Every key uncommented: the whole reference, which parses (so no key is misspelt).
        let uncommented: String = example
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with(' ') && !rest.is_empty() => format!("{rest}\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        let all = nsjail_core::policy::Policy::parse(&uncommented).unwrap();
        assert_eq!(all.limits.max_sandboxes_per_user, Some(8), "{uncommented}");
        assert!(example.contains("#[limits]"), "{example}");
    }

    /// `dpkg-deb ARGS DEB`'s stdout.
    fn dpkg_deb(args: &[&str], deb: &Path) -> String {
        let out = Command::new("dpkg-deb")
            .args(args)
            .arg(deb)
            .output()
            .expect("dpkg-deb (Debian: apt install dpkg)");
        assert!(out.status.success(), "dpkg-deb {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_bwrap_package_is_the_link_and_takes_bubblewraps_place() {
        let out = tempfile::tempdir().unwrap();
        let arch = deb_arch().unwrap();
        let deb = bwrap_deb(out.path(), &arch).unwrap();
        assert_eq!(
            deb.file_name().unwrap().to_str().unwrap(),
            format!("nsjail-bwrap_{}_{arch}.deb", version())
        );
        let f = |name: &str| {
            let out = Command::new("dpkg-deb")
                .arg("-f")
                .arg(&deb)
                .arg(name)
                .output()
                .unwrap();
            assert!(out.status.success(), "dpkg-deb -f {name}: {out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        assert_eq!(f("Package"), "nsjail-bwrap");
        assert_eq!(f("Version"), version());
        assert_eq!(f("Architecture"), arch);
        // The exact CLI it links to, whose name is the main package's.
        assert_eq!(f("Depends"), format!("nsjail-rs (= {})", version()));
        assert!(control_main(&arch).starts_with("Package: nsjail-rs\n"));
        assert_eq!(
            f("Provides"),
            format!("bubblewrap (= {})", nsjail_cli::BWRAP_VERSION)
        );
        assert_eq!(f("Conflicts"), "bubblewrap");
        assert_eq!(f("Replaces"), "bubblewrap");
        // Its one file: /usr/bin/bwrap, root's, a link to nsjail next to it.
        let listing = dpkg_deb(&["-c"], &deb);
        let entries: Vec<&str> = listing.lines().filter(|l| !l.starts_with('d')).collect();
        assert_eq!(entries.len(), 1, "{listing}");
        let words: Vec<&str> = entries[0].split_whitespace().collect();
        assert!(words[0].starts_with('l'), "{listing}");
        assert_eq!(words[1], "root/root", "{listing}");
        assert_eq!(
            words[words.len() - 3..],
            ["./usr/bin/bwrap", "->", "nsjail"],
            "{listing}"
        );
    }

    #[test]
    fn data_files_land_where_a_distribution_puts_them() {
        let tmp = tempfile::tempdir().unwrap();
        let ws_root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let written = install_data(ws_root, tmp.path()).unwrap();
        for want in [
            "share/man/man1/nsjail-run.1",
            "share/bash-completion/completions/nsjail",
            "share/zsh/site-functions/_nsjail",
            "share/fish/vendor_completions.d/nsjail.fish",
            "share/nsjail/profiles/judge.toml",
            "share/doc/nsjail/policy.toml.example",
            "share/doc/nsjail/README.md",
            "share/doc/nsjail/SECURITY.md",
            "share/doc/nsjail/docs/policy.md",
            "share/doc/nsjail/docs/benchmarks.md",
            "share/doc/nsjail/docs/security-model.md",
        ] {
            assert!(
                written.iter().any(|p| p == &tmp.path().join(want)),
                "{want} not written"
            );
        }
    }
}
