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
//! | docs, example policy | `P/share/doc/nsjail/` |

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

use crate::{Workspace, run_checked, step};

/// Man pages: one per command, `nsjail.1` and `nsjail-SUB.1` (and deeper), as `(file, bytes)`.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = nsjail_cli::args::Cli::command();
    cmd.build();
    let mut out = Vec::new();
    render_man(&cmd, "nsjail", &mut out)?;
    Ok(out)
}

fn render_man(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let cmd = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .with_context(|| format!("rendering the man page of {name}"))?;
    out.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
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
        out.push((path.to_string(), buf));
    }
    Ok(out)
}

/// The example policy, with every key and its default (`dist/policy.toml.example`).
const POLICY_EXAMPLE: &str = include_str!("../../dist/policy.toml.example");

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
    files.push((
        "share/doc/nsjail/policy.toml.example".into(),
        POLICY_EXAMPLE.as_bytes().to_vec(),
        0o644,
    ));
    for doc in [
        "README.md",
        "docs/security-model.md",
        "docs/desktop.md",
        "docs/admin.md",
        "docs/judges.md",
    ] {
        let p = ws_root.join(doc);
        if p.is_file() {
            let name = Path::new(doc)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(doc);
            let bytes = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            files.push((format!("share/doc/nsjail/{name}"), bytes, 0o644));
        }
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
    let triple = crate::host_triple()?;
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

/// `cargo xtask deb`: `target/dist/nsjail_VERSION_ARCH.deb`, built with Debian's own
/// `dpkg-deb` (no other packaging tool needed), installing under /usr with the helper
/// root:root 4755.
pub fn deb(ws: &Workspace) -> Result<PathBuf> {
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
    let control_dir = root.join("DEBIAN");
    crate::install::make_dirs(&control_dir)?;
    let control = format!(
        "Package: nsjail-rs\n\
         Version: {}\n\
         Architecture: {arch}\n\
         Maintainer: nsjail maintainers <maintainers@localhost>\n\
         Section: admin\n\
         Priority: optional\n\
         Recommends: passt\n\
         Description: process sandbox with a small setuid helper\n \
         nsjail run -- CMD starts CMD in new Linux namespaces as an ordinary user, with a\n \
         chosen filesystem view, profiles, desktop sockets and network through pasta.\n",
        version()
    );
    fs::write(control_dir.join("control"), control).context("writing DEBIAN/control")?;
    let deb = out_dir.join(format!("nsjail-rs_{}_{arch}.deb", version()));
    let mut cmd = Command::new("dpkg-deb");
    cmd.args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb);
    run_checked(&mut cmd)?;
    println!("{}", deb.display());
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
        let comp = completions().unwrap();
        assert_eq!(comp.len(), 3);
        for (path, bytes) in comp {
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains("dry-run"), "{path}");
        }
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
        ] {
            assert!(
                written.iter().any(|p| p == &tmp.path().join(want)),
                "{want} not written"
            );
        }
    }
}
