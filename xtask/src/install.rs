//! `cargo xtask install` / `uninstall`: the install layout under a prefix P is
//! `P/bin/nsjail` (0755), `P/libexec/nsjail/nsjail-helper`: root:root 4755 with `--setuid`,
//! root:root 0755 with `--systemd`, and the daemon `P/libexec/nsjail/nsjail-helperd` (root:root
//! 0755, never setuid); with `--systemd` also the units
//! `P/lib/systemd/system/nsjail-helper.socket` and `.service` (0644), which systemd finds there
//! for P = /usr/local and P = /usr.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::geteuid;

use crate::{CLI_BIN, HELPER_BIN, HELPERD_BIN, Profile, Workspace, run_checked, step};

/// Where the CLI goes, relative to the prefix.
pub const CLI_REL: &str = "bin/nsjail";
/// The `bwrap` link to the CLI (`--bwrap`), relative to the prefix.
pub const BWRAP_REL: &str = "bin/bwrap";
/// Where the helper goes, relative to the prefix (the CLI looks there, next to `../libexec`).
pub const HELPER_REL: &str = "libexec/nsjail/nsjail-helper";
/// Where the helper daemon goes, relative to the prefix.
pub const HELPERD_REL: &str = "libexec/nsjail/nsjail-helperd";
/// Where the systemd units go, relative to the prefix.
pub const UNIT_DIR_REL: &str = "lib/systemd/system";
pub const SOCKET_UNIT: &str = "nsjail-helper.socket";
pub const SERVICE_UNIT: &str = "nsjail-helper.service";
/// The units as shipped in dist/systemd; `@HELPERD@` becomes the installed daemon's path.
const SOCKET_UNIT_TEXT: &str = include_str!("../../dist/systemd/nsjail-helper.socket");
const SERVICE_UNIT_TEXT: &str = include_str!("../../dist/systemd/nsjail-helper.service");

#[derive(Args)]
pub struct InstallArgs {
    /// Install the helper setuid root (owner root:root, mode 4755). Needs root.
    #[arg(long, required_unless_present = "systemd")]
    setuid: bool,
    /// Install the helper as a socket-activated systemd service (nsjail-helper.socket and
    /// .service, helper not setuid); enables and starts the socket when systemd is running.
    /// Needs root.
    #[arg(long, conflicts_with = "setuid")]
    systemd: bool,
    /// Installation prefix.
    #[arg(long, default_value = "/usr/local", value_name = "P")]
    prefix: PathBuf,
    /// Stage the files under D/P instead of P (for packagers); nothing is enabled.
    #[arg(long, value_name = "D")]
    destdir: Option<PathBuf>,
    /// Install these prebuilt `nsjail`, `nsjail-helper` and `nsjail-helperd` instead of building
    /// them [default:
    /// build release binaries]. No cargo workspace is needed then (the VM test uses this).
    #[arg(long, value_name = "DIR")]
    bins: Option<PathBuf>,
    /// Also install `P/bin/bwrap`, a symlink to `nsjail`: run by that name it speaks
    /// bubblewrap's command line (see docs/bwrap.md).
    #[arg(long)]
    bwrap: bool,
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

pub fn install(ws: impl FnOnce() -> Result<Workspace>, args: &InstallArgs) -> Result<()> {
    let root = geteuid().is_root();
    let kind = if args.systemd {
        "the helper as a systemd service"
    } else {
        "the helper setuid root"
    };
    let flag = if args.systemd {
        "--systemd"
    } else {
        "--setuid"
    };
    if !root && args.destdir.is_none() {
        bail!(
            "installing {kind} needs root: run `sudo cargo xtask install {flag}` (or stage the \
             files for a package with --destdir DIR)"
        );
    }
    let dest = staged_prefix(&args.prefix, args.destdir.as_deref())?;
    // Prebuilt binaries (--bins) need no workspace; then the man pages, completions and
    // profiles, which are made from the workspace, are not installed.
    let ws = match &args.bins {
        Some(_) => None,
        None => Some(ws()?),
    };
    let bin_dir = match (&args.bins, &ws) {
        (Some(d), _) => d.clone(),
        (None, Some(ws)) => ws.build_bins(Profile::Release, false)?,
        (None, None) => bail!("no binaries to install"),
    };
    step(&format!("installing into {}", dest.display()));
    if let Some(ws) = &ws {
        for p in crate::package::install_data(&ws.root, &dest)? {
            println!("installed {}", p.display());
        }
    }
    if args.systemd {
        install_files_mode(&bin_dir, &dest, root, 0o755)?;
        if args.bwrap {
            install_bwrap_link(&dest)?;
        }
        install_units(&args.prefix, &dest, root)?;
        if args.destdir.is_none() {
            enable_units()?;
        }
        return Ok(());
    }
    install_files(&bin_dir, &dest, root)?;
    if args.bwrap {
        install_bwrap_link(&dest)?;
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

/// `P/bin/bwrap` -> `nsjail` (relative, so a staged tree keeps working where it is copied).
/// A `bwrap` that is anything but our link is left alone: refusing beats replacing another
/// package's file.
pub fn install_bwrap_link(dest: &Path) -> Result<()> {
    let link = dest.join(BWRAP_REL);
    match fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() && fs::read_link(&link)? == Path::new("nsjail") => {
            fs::remove_file(&link).with_context(|| format!("replacing {}", link.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not nsjail's link: remove it (or divert it) first",
            link.display()
        ),
        Err(_) => {}
    }
    std::os::unix::fs::symlink("nsjail", &link)
        .with_context(|| format!("symlink {} -> nsjail", link.display()))?;
    println!("installed {} -> nsjail", link.display());
    Ok(())
}

/// Copy the binaries from `bin_dir` into the layout under `dest`. With `as_root`, every file
/// becomes root:root and the helper mode 4755; otherwise the helper is 0755. The daemon is 0755
/// either way.
pub fn install_files(bin_dir: &Path, dest: &Path, as_root: bool) -> Result<()> {
    install_files_mode(bin_dir, dest, as_root, if as_root { 0o4755 } else { 0o755 })
}

/// Copy the binaries with the helper at `helper_mode`.
fn install_files_mode(bin_dir: &Path, dest: &Path, as_root: bool, helper_mode: u32) -> Result<()> {
    let cli = dest.join(CLI_REL);
    let helper = dest.join(HELPER_REL);
    let helperd = dest.join(HELPERD_REL);
    copy_into_place(&bin_dir.join(CLI_BIN), &cli, 0o755, as_root)?;
    copy_into_place(&bin_dir.join(HELPER_BIN), &helper, helper_mode, as_root)?;
    copy_into_place(&bin_dir.join(HELPERD_BIN), &helperd, 0o755, as_root)?;
    for path in [&cli, &helper, &helperd] {
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
    if as_root && nosuid && helper_mode & 0o4000 != 0 {
        eprintln!(
            "warning: {} is on a filesystem mounted nosuid: its setuid bit has no effect",
            helper.display()
        );
    }
    Ok(())
}

/// The unit files with the daemon's final path (under the prefix, not the staging dir).
fn unit_texts(prefix: &Path) -> [(&'static str, String); 2] {
    let helperd = prefix.join(HELPERD_REL);
    [
        (SOCKET_UNIT, SOCKET_UNIT_TEXT.to_string()),
        (
            SERVICE_UNIT,
            SERVICE_UNIT_TEXT.replace("@HELPERD@", &helperd.to_string_lossy()),
        ),
    ]
}

/// Write the two units into `dest/lib/systemd/system` (0644).
fn install_units(prefix: &Path, dest: &Path, as_root: bool) -> Result<()> {
    let dir = dest.join(UNIT_DIR_REL);
    for (name, text) in unit_texts(prefix) {
        let path = dir.join(name);
        write_into_place(text.as_bytes(), &path, 0o644, as_root)?;
        println!("installed {} (mode 0644)", path.display());
    }
    Ok(())
}

/// Whether systemd is this machine's init (the test sd_booted() makes).
fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn systemctl(args: &[&str]) -> Result<()> {
    let mut cmd = std::process::Command::new("systemctl");
    cmd.args(args);
    step(&crate::show(&cmd));
    run_checked(&mut cmd)
}

/// Make systemd see the new units, enable the socket and start it (the service starts on the
/// first connection). A running daemon is restarted so that it runs the new binary.
fn enable_units() -> Result<()> {
    if !systemd_running() {
        println!(
            "systemd is not running here: {SOCKET_UNIT} was installed but not enabled; enable it \
             with `systemctl enable --now {SOCKET_UNIT}` once systemd runs"
        );
        return Ok(());
    }
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", "--now", SOCKET_UNIT])?;
    systemctl(&["try-restart", SERVICE_UNIT])?;
    println!("the helper daemon listens on /run/nsjail/helper.sock (socket activation)");
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
    let mut from = fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
    place(&mut from, dst, mode, as_root)
        .with_context(|| format!("installing {} as {}", src.display(), dst.display()))
}

/// `copy_into_place` for bytes we made.
fn write_into_place(bytes: &[u8], dst: &Path, mode: u32, as_root: bool) -> Result<()> {
    place(&mut &bytes[..], dst, mode, as_root)
}

fn place(from: &mut impl io::Read, dst: &Path, mode: u32, as_root: bool) -> Result<()> {
    let src = dst;
    let dir = dst
        .parent()
        .with_context(|| format!("{} has no parent directory", dst.display()))?;
    make_dirs(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".xtask-install.")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    io::copy(from, tmp.as_file_mut()).with_context(|| format!("writing {}", dir.display()))?;
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

pub fn uninstall(args: &UninstallArgs) -> Result<()> {
    let dest = staged_prefix(&args.prefix, args.destdir.as_deref())?;
    let units = [SOCKET_UNIT, SERVICE_UNIT].map(|u| dest.join(UNIT_DIR_REL).join(u));
    // A live install: stop and disable the units before their files go.
    if args.destdir.is_none() && systemd_running() && units.iter().any(|u| u.exists()) {
        systemctl(&["disable", "--now", SOCKET_UNIT, SERVICE_UNIT])?;
    }
    let mut removed = 0;
    let mut units_removed = false;
    // Our bwrap link, never a bwrap of another package.
    let bwrap = dest.join(BWRAP_REL);
    if fs::read_link(&bwrap).is_ok_and(|t| t == Path::new("nsjail")) {
        fs::remove_file(&bwrap).with_context(|| format!("removing {}", bwrap.display()))?;
        println!("removed {}", bwrap.display());
        removed += 1;
    }
    let mut files = vec![
        dest.join(CLI_REL),
        dest.join(HELPER_REL),
        dest.join(HELPERD_REL),
    ];
    // The man pages, completions and profiles, when the workspace that made them is here.
    if let Ok(ws) = Workspace::locate() {
        files.extend(
            crate::package::data_paths(&ws.root)?
                .into_iter()
                .map(|rel| dest.join(rel)),
        );
    }
    for path in files.iter().chain(&units) {
        match fs::remove_file(path) {
            Ok(()) => {
                println!("removed {}", path.display());
                removed += 1;
                units_removed |= units.contains(path);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                println!("not present: {}", path.display());
            }
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    if args.destdir.is_none() && systemd_running() && units_removed {
        systemctl(&["daemon-reload"])?;
    }
    // nsjail's own directories go too, if nothing else is in them.
    for dir in [
        "libexec/nsjail",
        "share/nsjail/profiles",
        "share/nsjail",
        "share/doc/nsjail/docs",
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
        fs::write(bins.join(HELPERD_BIN), b"helperd").expect("write");
        let dest = tmp.path().join("stage/usr/local");
        install_files(&bins, &dest, false).expect("install");
        let cli = fs::metadata(dest.join(CLI_REL)).expect("cli");
        assert_eq!(cli.mode() & 0o7777, 0o755);
        let dir = fs::metadata(dest.join("libexec/nsjail")).expect("dir");
        assert_eq!(dir.mode() & 0o7777, 0o755);
        assert_eq!(fs::read(dest.join(HELPER_REL)).expect("read"), b"helper");
        // --bwrap: a link to nsjail, made again over our own, never over another file.
        install_bwrap_link(&dest).expect("bwrap link");
        install_bwrap_link(&dest).expect("bwrap link again");
        assert_eq!(
            fs::read(dest.join(BWRAP_REL)).expect("read via link"),
            b"cli"
        );
        let helperd = fs::metadata(dest.join(HELPERD_REL)).expect("helperd");
        assert_eq!(helperd.mode() & 0o7777, 0o755);

        let stage = tmp.path().join("stage");
        uninstall(&UninstallArgs {
            prefix: PathBuf::from("/usr/local"),
            destdir: Some(stage),
        })
        .expect("uninstall");
        assert!(!dest.join(CLI_REL).exists());
        assert!(fs::symlink_metadata(dest.join(BWRAP_REL)).is_err());
        assert!(!dest.join("libexec/nsjail").exists());

        // Another package's bwrap stays, and the install says why it stops.
        fs::write(dest.join(BWRAP_REL), b"debian").expect("write");
        let e = install_bwrap_link(&dest).expect_err("refused");
        assert!(e.to_string().contains("not nsjail's link"), "{e}");
        assert_eq!(fs::read(dest.join(BWRAP_REL)).expect("read"), b"debian");
    }

    #[test]
    fn systemd_install_stages_units_with_the_helper_path_and_uninstall_removes_them() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bins = tmp.path().join("bins");
        fs::create_dir(&bins).expect("mkdir");
        fs::write(bins.join(CLI_BIN), b"cli").expect("write");
        fs::write(bins.join(HELPER_BIN), b"helper").expect("write");
        fs::write(bins.join(HELPERD_BIN), b"helperd").expect("write");
        let stage = tmp.path().join("stage");
        let args = InstallArgs {
            setuid: false,
            systemd: true,
            prefix: PathBuf::from("/opt/nsj"),
            destdir: Some(stage.clone()),
            bins: Some(bins),
            bwrap: false,
        };
        install(|| bail!("no workspace needed"), &args).expect("install");
        let dest = stage.join("opt/nsj");
        let unit_dir = dest.join(UNIT_DIR_REL);
        let service = fs::read_to_string(unit_dir.join(SERVICE_UNIT)).expect("service");
        assert!(service.contains("\nExecStart=/opt/nsj/libexec/nsjail/nsjail-helperd\n"));
        assert!(service.contains("\nDelegate=yes\n") && !service.contains('@'));
        let socket = fs::read_to_string(unit_dir.join(SOCKET_UNIT)).expect("socket");
        assert!(socket.contains("\nListenStream=/run/nsjail/helper.sock\n"));
        for rel in [HELPER_REL, HELPERD_REL] {
            let file = fs::metadata(dest.join(rel)).expect("helper");
            assert_eq!(
                file.mode() & 0o7777,
                0o755,
                "{rel}: nothing is setuid in a daemon install"
            );
        }
        let unit = fs::metadata(unit_dir.join(SOCKET_UNIT)).expect("unit");
        assert_eq!(unit.mode() & 0o7777, 0o644);

        uninstall(&UninstallArgs {
            prefix: PathBuf::from("/opt/nsj"),
            destdir: Some(stage),
        })
        .expect("uninstall");
        assert!(!unit_dir.join(SOCKET_UNIT).exists() && !unit_dir.join(SERVICE_UNIT).exists());
        assert!(!dest.join(HELPER_REL).exists() && !dest.join(CLI_REL).exists());
        assert!(!dest.join(HELPERD_REL).exists());
    }

    #[test]
    fn every_hardening_option_of_the_service_is_used_or_explained() {
        // The options systemd.exec(5) lists for sandboxing: each appears in the unit, either set
        // or named in the comment that explains why not.
        for opt in [
            "NoNewPrivileges",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "PrivateDevices",
            "PrivateNetwork",
            "PrivateUsers",
            "PrivateMounts",
            "ProtectHostname",
            "ProtectClock",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
            "ProtectProc",
            "ProcSubset",
            "RestrictNamespaces",
            "RestrictAddressFamilies",
            "RestrictRealtime",
            "RestrictSUIDSGID",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "SystemCallFilter",
            "SystemCallArchitectures",
            "CapabilityBoundingSet",
            "AmbientCapabilities",
            "DevicePolicy",
            "DeviceAllow",
            "IPAddressDeny",
            "KeyringMode",
            "UMask",
            "DynamicUser",
            "Delegate",
        ] {
            assert!(
                SERVICE_UNIT_TEXT.contains(&format!("{opt}=")),
                "{opt} is neither used nor explained in {SERVICE_UNIT}"
            );
        }
    }
}
