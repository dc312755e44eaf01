//! `cargo xtask install` / `uninstall`: the install layout under a prefix P is
//! `P/bin/nsjail` (0755) and `P/libexec/nsjail/nsjail-helper` (root:root 4755).

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::geteuid;

use crate::{CLI_BIN, HELPER_BIN, Profile, Workspace, step};

/// Where the CLI goes, relative to the prefix.
pub const CLI_REL: &str = "bin/nsjail";
/// Where the helper goes, relative to the prefix (the CLI looks there, next to `../libexec`).
pub const HELPER_REL: &str = "libexec/nsjail/nsjail-helper";

#[derive(Args)]
pub struct InstallArgs {
    /// Install the helper setuid root (owner root:root, mode 4755). Needs root.
    #[arg(long, required_unless_present = "systemd")]
    setuid: bool,
    /// Install the helper as a systemd socket-activated daemon (not yet implemented: issue 5).
    #[arg(long, conflicts_with = "setuid")]
    systemd: bool,
    /// Installation prefix.
    #[arg(long, default_value = "/usr/local", value_name = "P")]
    prefix: PathBuf,
    /// Stage the files under D/P instead of P (for packagers).
    #[arg(long, value_name = "D")]
    destdir: Option<PathBuf>,
}

#[derive(Args)]
pub struct UninstallArgs {
    /// Installation prefix used at install time.
    #[arg(long, default_value = "/usr/local", value_name = "P")]
    prefix: PathBuf,
    /// Staging directory used at install time.
    #[arg(long, value_name = "D")]
    destdir: Option<PathBuf>,
}

/// `P`, or `D/P` with `--destdir D`.
fn staged_prefix(prefix: &Path, destdir: Option<&Path>) -> Result<PathBuf> {
    if !prefix.is_absolute() {
        bail!(
            "--prefix must be an absolute path, not {}",
            prefix.display()
        );
    }
    if prefix.components().any(|c| c == Component::ParentDir) {
        bail!("--prefix must not contain `..`: {}", prefix.display());
    }
    Ok(match destdir {
        None => prefix.to_path_buf(),
        Some(d) => {
            let rel: PathBuf = prefix
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            d.join(rel)
        }
    })
}

pub fn install(ws: &Workspace, args: &InstallArgs) -> Result<()> {
    if args.systemd {
        bail!("install --systemd: not yet implemented (issue 5)");
    }
    let root = geteuid().is_root();
    if !root && args.destdir.is_none() {
        bail!(
            "installing the helper setuid root needs root: run `sudo cargo xtask install --setuid` \
             (or stage the files for a package with --destdir DIR)"
        );
    }
    let dest = staged_prefix(&args.prefix, args.destdir.as_deref())?;
    let bin_dir = ws.build_bins(Profile::Release, false)?;
    step(&format!("installing into {}", dest.display()));
    install_files(&bin_dir, &dest, root)?;
    for p in crate::package::install_data(&ws.root, &dest)? {
        println!("installed {}", p.display());
    }
    if !root {
        eprintln!(
            "warning: not running as root: the setuid bit could not be set; {} is staged with \
             mode 0755 and your ownership — the package must install it root:root 4755",
            dest.join(HELPER_REL).display()
        );
    }
    Ok(())
}

/// Copy the binaries from `bin_dir` into the layout under `dest`. With `as_root`, both files
/// become root:root and the helper mode 4755; otherwise the helper is 0755.
pub fn install_files(bin_dir: &Path, dest: &Path, as_root: bool) -> Result<()> {
    let cli = dest.join(CLI_REL);
    let helper = dest.join(HELPER_REL);
    copy_into_place(&bin_dir.join(CLI_BIN), &cli, 0o755, as_root)?;
    let helper_mode = if as_root { 0o4755 } else { 0o755 };
    copy_into_place(&bin_dir.join(HELPER_BIN), &helper, helper_mode, as_root)?;
    for path in [&cli, &helper] {
        let meta = fs::metadata(path).with_context(|| format!("checking {}", path.display()))?;
        println!(
            "installed {} (mode {:04o}, owner {}:{})",
            path.display(),
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid()
        );
    }
    let nosuid = statvfs(&helper).is_ok_and(|st| st.flags().contains(FsFlags::ST_NOSUID));
    if as_root && nosuid {
        eprintln!(
            "warning: {} is on a filesystem mounted nosuid: its setuid bit has no effect",
            helper.display()
        );
    }
    Ok(())
}

/// Create `dir` and any missing parents with mode 0755 (regardless of the umask), so an
/// ordinary user can reach the installed files.
pub fn make_dirs(dir: &Path) -> Result<()> {
    let mut missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    missing.reverse();
    for d in missing {
        match fs::DirBuilder::new().mode(0o755).create(d) {
            Ok(()) => fs::set_permissions(d, Permissions::from_mode(0o755))
                .with_context(|| format!("setting the mode of {}", d.display()))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", d.display())),
        }
    }
    Ok(())
}

/// Copy `src` to `dst` through a temporary file in the same directory, set owner (root:root
/// when `as_root`) and then `mode` (after chown, which would clear a setuid bit), and rename it
/// over `dst`, so `dst` is never seen half-written or with the wrong mode.
fn copy_into_place(src: &Path, dst: &Path, mode: u32, as_root: bool) -> Result<()> {
    let dir = dst
        .parent()
        .with_context(|| format!("{} has no parent directory", dst.display()))?;
    make_dirs(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".xtask-install.")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let mut from = fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
    io::copy(&mut from, tmp.as_file_mut())
        .with_context(|| format!("copying {} to {}", src.display(), dir.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("syncing the copy of {}", src.display()))?;
    if as_root {
        std::os::unix::fs::fchown(tmp.as_file(), Some(0), Some(0))
            .with_context(|| format!("chown root:root for {}", dst.display()))?;
    }
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:04o} for {}", dst.display()))?;
    tmp.persist(dst)
        .map_err(|e| e.error)
        .with_context(|| format!("moving the new file to {}", dst.display()))?;
    Ok(())
}

pub fn uninstall(ws_root: &Path, args: &UninstallArgs) -> Result<()> {
    let dest = staged_prefix(&args.prefix, args.destdir.as_deref())?;
    let mut removed = 0;
    let mut files = vec![CLI_REL.to_string(), HELPER_REL.to_string()];
    files.extend(crate::package::data_paths(ws_root)?);
    for rel in &files {
        let path = dest.join(rel);
        match fs::remove_file(&path) {
            Ok(()) => {
                println!("removed {}", path.display());
                removed += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                println!("not present: {}", path.display());
            }
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    // nsjail's own directories go too, if nothing else is in them.
    for dir in [
        "libexec/nsjail",
        "share/nsjail/profiles",
        "share/nsjail",
        "share/doc/nsjail",
    ] {
        let dir = dest.join(dir);
        match fs::remove_dir(&dir) {
            Ok(()) => println!("removed {}", dir.display()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
                ) => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        }
    }
    if removed == 0 {
        println!("nothing to remove under {}", dest.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destdir_prefixes_the_prefix() {
        let p =
            staged_prefix(Path::new("/usr/local"), Some(Path::new("/tmp/stage"))).expect("staged");
        assert_eq!(p, PathBuf::from("/tmp/stage/usr/local"));
        let p = staged_prefix(Path::new("/opt/x"), None).expect("plain");
        assert_eq!(p, PathBuf::from("/opt/x"));
    }

    #[test]
    fn relative_or_dotdot_prefix_is_refused() {
        assert!(staged_prefix(Path::new("usr"), None).is_err());
        assert!(staged_prefix(Path::new("/usr/../etc"), None).is_err());
    }

    #[test]
    fn install_and_uninstall_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bins = tmp.path().join("bins");
        fs::create_dir(&bins).expect("mkdir");
        fs::write(bins.join(CLI_BIN), b"cli").expect("write");
        fs::write(bins.join(HELPER_BIN), b"helper").expect("write");
        let dest = tmp.path().join("stage/usr/local");
        install_files(&bins, &dest, false).expect("install");
        let cli = fs::metadata(dest.join(CLI_REL)).expect("cli");
        assert_eq!(cli.mode() & 0o7777, 0o755);
        let dir = fs::metadata(dest.join("libexec/nsjail")).expect("dir");
        assert_eq!(dir.mode() & 0o7777, 0o755);
        assert_eq!(fs::read(dest.join(HELPER_REL)).expect("read"), b"helper");

        let stage = tmp.path().join("stage");
        let ws_root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        crate::package::install_data(ws_root, &dest).expect("install data");
        assert!(dest.join("share/man/man1/nsjail.1").is_file());
        uninstall(
            ws_root,
            &UninstallArgs {
                prefix: PathBuf::from("/usr/local"),
                destdir: Some(stage),
            },
        )
        .expect("uninstall");
        assert!(!dest.join(CLI_REL).exists());
        assert!(!dest.join("libexec/nsjail").exists());
        assert!(!dest.join("share/man/man1/nsjail.1").exists());
        assert!(!dest.join("share/nsjail").exists());
    }
}
