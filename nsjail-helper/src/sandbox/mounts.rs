//! Builds the sandbox's root: an empty tmpfs filled by the request's operations in order, then
//! made `/` with the host's root detached.
//!
//! The order of the steps is the point of this module:
//! 1. Every host path an operation reads is opened first, by the child after it switched to the
//!    caller's ids, so the kernel checks each one as the caller (a privileged process opening a
//!    user's path is firejail CVE-2017-5180). From then on only these fds are used: a path
//!    swapped for a symlink later cannot change what is mounted.
//! 2. The new root is a tmpfs attached over `/tmp` of our private mount namespace; nothing done
//!    there is visible on the host, and the staging place disappears with the final pivot.
//! 3. Every destination is resolved with `openat2(RESOLVE_IN_ROOT)` from the new root, so `..`
//!    and symlinks (absolute or relative) never leave it (Google nsjail #292/#325, bubblewrap
//!    CVE-2026-87766). Missing mount points are created one component at a time with explicit
//!    modes, never through a symlink that leads out.
//! 4. Mounts are made with the new mount API: a detached copy is given its attributes
//!    (read-only, nosuid, nodev — recursively, in one call) before it is attached, so it is
//!    never visible writable, and the cost per operation does not grow with the mount count.
//! 5. `pivot_root(".", ".")` and a lazy unmount of the old root: the host's tree is gone.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat, readlinkat};
use nix::mount::{MntFlags, umount2};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, fstat, mkdirat, umask};
use nix::unistd::{UnlinkatFlags, chdir, pivot_root, symlinkat, unlinkat};
use nsjail_core::{BindKind, MountOp, OverlayKind};

use crate::error::{HelperError, Result};
use crate::setup_report::Reporter;
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// Where the new root is assembled, inside our private mount namespace only.
const STAGING: &CStr = c"/tmp";
/// A directory of the root tmpfs holding data files and overlay scratch space while the root is
/// built; unmounted and removed before the pivot.
const SCRATCH: &CStr = c".nsjail-scratch";

/// The device nodes `--dev` provides, bound from the host's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Host fds an operation reads from, opened in step 1.
enum Sources {
    None,
    /// An optional bind whose source does not exist.
    Skipped,
    Fds(Vec<Option<OwnedFd>>),
    /// Detached copies of host mount trees, made before the new root exists (see `Tree`).
    Trees(Vec<Option<Tree>>),
}

/// A detached copy of a host tree, with its attributes already set, and whether it is a
/// directory. The copy is made while opening the sources, before the new root is attached over
/// `/tmp`: a copy made later of a source at or above `/tmp` (`--ro-bind / /`, or the default
/// view's current directory when that is `/tmp`) would include the root being built.
struct Tree {
    fd: OwnedFd,
    dir: bool,
}

fn detached_copy(src: &OwnedFd, attrs: u64) -> std::result::Result<Tree, Errno> {
    let fd = sys::clone_tree(src.as_fd())?;
    if attrs != 0 {
        sys::set_mount_attrs(fd.as_fd(), attrs)?;
    }
    Ok(Tree {
        fd,
        dir: is_dir(src)?,
    })
}

fn bind_attrs(kind: BindKind) -> u64 {
    let nosuid_nodev = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    match kind {
        BindKind::ReadWrite => nosuid_nodev,
        BindKind::ReadOnly => nosuid_nodev | MOUNT_ATTR_RDONLY,
        BindKind::Dev => 0,
    }
}

fn op_err(op: &MountOp, call: impl std::fmt::Display) -> impl FnOnce(Errno) -> HelperError {
    let call = format!("{}: {call}", op.describe());
    move |source| HelperError::Sys { call, source }
}

fn cstr(s: &str) -> std::result::Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

/// Build the root from `ops` and make it `/`. `passed` are the request's extra fds. Returns,
/// for each operation, whether it was carried out (an optional bind of a missing source is not).
pub fn build(ops: &[MountOp], passed: Vec<OwnedFd>, reporter: &Reporter) -> Result<Vec<bool>> {
    // 1. Sources, as the caller, before anything is mounted.
    let mut sources = Vec::with_capacity(ops.len());
    for op in ops {
        sources.push(open_sources(op)?);
    }
    // Modes below are exactly the ones given; restored before exec.
    let old_umask = umask(Mode::empty());

    // 2. The root.
    let base = sys::new_mount(
        c"tmpfs",
        &[(c"mode", c"0755")],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )
    .map_err(crate::error::sys("fsmount tmpfs (new root)"))?;
    sys::attach_at(base.as_fd(), STAGING)
        .map_err(crate::error::sys("move_mount new root onto /tmp"))?;
    let mut root = Root {
        base,
        scratch: None,
        passed: passed.into_iter().map(Some).collect(),
        counter: 0,
    };

    // 3. + 4. The operations, in order.
    let mut applied = Vec::with_capacity(ops.len());
    for (op, src) in ops.iter().zip(sources) {
        applied.push(!matches!(src, Sources::Skipped));
        root.apply(op, src)?;
        reporter.step(|| format!("mount: {}", op.describe()));
    }

    // 5. Make it `/`.
    root.finish()?;
    umask(old_umask);
    reporter.step(|| "mount: pivot_root into the new root, old root detached".into());
    Ok(applied)
}

fn open_sources(op: &MountOp) -> Result<Sources> {
    let open = |path: &str, dir: bool| -> std::result::Result<OwnedFd, Errno> {
        let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
        if dir {
            flags |= OFlag::O_DIRECTORY;
        }
        openat(AT_FDCWD, path, flags, Mode::empty())
    };
    match op {
        MountOp::Bind {
            src,
            optional,
            kind,
            ..
        } => match open(src, false) {
            Err(Errno::ENOENT) if *optional => Ok(Sources::Skipped),
            Err(e) => Err(op_err(op, format!("open {src}"))(e)),
            Ok(fd) => {
                check_readable(&fd).map_err(op_err(op, format!("open {src} for reading")))?;
                let tree = detached_copy(&fd, bind_attrs(*kind))
                    .map_err(op_err(op, format!("open_tree {src}")))?;
                Ok(Sources::Trees(vec![Some(tree)]))
            }
        },
        // Device nodes are usable on these copies: nosuid and noexec, not nodev.
        MountOp::Dev { .. } => Ok(Sources::Trees(
            DEVICES
                .iter()
                .map(|d| {
                    open(&format!("/dev/{d}"), false)
                        .and_then(|fd| detached_copy(&fd, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC))
                        .ok()
                })
                .collect(),
        )),
        MountOp::Overlay { .. } => {
            let mut fds = Vec::new();
            for src in op.sources() {
                let fd = open(src, true).map_err(op_err(op, format!("open {src}")))?;
                check_readable(&fd).map_err(op_err(op, format!("open {src} for reading")))?;
                fds.push(Some(fd));
            }
            Ok(Sources::Fds(fds))
        }
        _ => Ok(Sources::None),
    }
}

/// The caller must be able to read what they bind: a directory or regular file is opened for
/// reading through the fd we hold (as the caller, so the kernel decides). Other kinds (sockets,
/// devices, fifos) are not opened, since opening can have effects; their permissions apply as
/// usual inside.
fn check_readable(fd: &OwnedFd) -> std::result::Result<(), Errno> {
    let st = fstat(fd.as_fd())?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let flags = match kind {
        SFlag::S_IFDIR => OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        SFlag::S_IFREG => OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        _ => return Ok(()),
    };
    openat(
        AT_FDCWD,
        proc_fd(fd).as_str(),
        flags | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(drop)
}

fn proc_fd(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn is_dir(fd: &OwnedFd) -> std::result::Result<bool, Errno> {
    let st = fstat(fd.as_fd())?;
    Ok(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR)
}

struct Root {
    /// The root tmpfs itself (the lowest mount at `/`).
    base: OwnedFd,
    /// The scratch tmpfs, once something needed it.
    scratch: Option<OwnedFd>,
    passed: Vec<Option<OwnedFd>>,
    counter: u32,
}

type R<T> = std::result::Result<T, Errno>;

impl Root {
    /// The top of the new root as it stands now (something may have been mounted over `/`).
    fn top(&self) -> R<OwnedFd> {
        openat(
            AT_FDCWD,
            STAGING,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    }

    /// Resolve `path` inside the new root.
    fn resolve(&self, path: &str, flags: OFlag) -> R<OwnedFd> {
        let top = self.top()?;
        let rel = cstr(path.trim_start_matches('/'))?;
        let rel = if rel.is_empty() { c".".to_owned() } else { rel };
        sys::open_in_root(top.as_fd(), &rel, (flags | OFlag::O_PATH).bits())
    }

    /// `mkdir -p` inside the root; the last component gets `mode`, the others 0755.
    fn make_dirs(&self, path: &str, mode: u32) -> R<OwnedFd> {
        let parts: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let mut done = String::from("/");
        for (i, part) in parts.iter().enumerate() {
            let next = format!("{}{part}", done);
            match self.resolve(&next, OFlag::O_DIRECTORY) {
                Ok(_) => {}
                Err(Errno::ENOENT) => {
                    let parent = self.resolve(&done, OFlag::O_DIRECTORY)?;
                    let m = if i + 1 == parts.len() { mode } else { 0o755 };
                    match mkdirat(parent.as_fd(), *part, Mode::from_bits_truncate(m)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
            done = format!("{next}/");
        }
        self.resolve(path, OFlag::O_DIRECTORY)
    }

    /// The directory that will hold `path`'s last component (created if missing), and that
    /// component.
    fn make_parent(&self, path: &str) -> R<(OwnedFd, CString)> {
        let trimmed = path.trim_end_matches('/');
        let (dir, name) = trimmed.rsplit_once('/').ok_or(Errno::EINVAL)?;
        if name.is_empty() || name == "." {
            return Err(Errno::EINVAL);
        }
        let parent = self.make_dirs(if dir.is_empty() { "/" } else { dir }, 0o755)?;
        Ok((parent, cstr(name)?))
    }

    /// A mount point at `path`: existing, or created as a directory (0755) or an empty file
    /// (0444). `O_NOFOLLOW | O_EXCL` means a symlink is never created through; an existing
    /// symlink is then followed only inside the root.
    fn mount_point(&self, path: &str, dir: bool) -> R<OwnedFd> {
        if dir {
            return self.make_dirs(path, 0o755);
        }
        match self.resolve(path, OFlag::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let (parent, name) = self.make_parent(path)?;
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW;
        match openat(
            parent.as_fd(),
            name.as_c_str(),
            flags | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o444),
        ) {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
        self.resolve(path, OFlag::empty())
    }

    /// The scratch tmpfs, mounted on a directory of the root tmpfs on first use.
    fn scratch(&mut self) -> R<BorrowedFd<'_>> {
        if self.scratch.is_none() {
            mkdirat(self.base.as_fd(), SCRATCH, Mode::from_bits_truncate(0o700))?;
            let dir = openat(
                self.base.as_fd(),
                SCRATCH,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let fs = sys::new_mount(
                c"tmpfs",
                &[(c"mode", c"0700")],
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )?;
            sys::attach(fs.as_fd(), dir.as_fd())?;
            self.scratch = Some(fs);
        }
        self.scratch
            .as_ref()
            .map(|f| f.as_fd())
            .ok_or(Errno::EINVAL)
    }

    fn fresh_name(&mut self, stem: &str) -> R<CString> {
        self.counter += 1;
        cstr(&format!("{stem}-{}", self.counter))
    }

    /// Attach a detached copy made in step 1 on a mount point at `dst`.
    fn attach_tree(&self, tree: &Tree, dst: &str) -> R<()> {
        let target = self.mount_point(dst, tree.dir)?;
        sys::attach(tree.fd.as_fd(), target.as_fd())
    }

    fn apply_trees(&mut self, op: &MountOp, trees: Vec<Option<Tree>>) -> R<()> {
        match op {
            MountOp::Bind { dst, .. } => {
                let tree = trees.first().and_then(Option::as_ref).ok_or(Errno::EBADF)?;
                self.attach_tree(tree, dst)
            }
            MountOp::Dev { dst } => self.dev(dst, trees),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Attach a clone of the tree at `src` on a mount point at `dst`, with `attrs`.
    fn bind(&self, src: &OwnedFd, dst: &str, attrs: u64) -> R<()> {
        let tree = sys::clone_tree(src.as_fd())?;
        if attrs != 0 {
            sys::set_mount_attrs(tree.as_fd(), attrs)?;
        }
        let target = self.mount_point(dst, is_dir(src)?)?;
        sys::attach(tree.as_fd(), target.as_fd())
    }

    fn mount_new(&self, fstype: &CStr, opts: &[(&CStr, &CStr)], attrs: u64, dst: &str) -> R<()> {
        let fs = sys::new_mount(fstype, opts, attrs)?;
        let target = self.mount_point(dst, true)?;
        sys::attach(fs.as_fd(), target.as_fd())
    }

    fn take_passed(&mut self, fd: u32) -> R<File> {
        self.passed
            .get_mut(fd as usize)
            .and_then(Option::take)
            .map(File::from)
            .ok_or(Errno::EBADF)
    }

    fn apply(&mut self, op: &MountOp, src: Sources) -> Result<()> {
        let fds = match src {
            Sources::Skipped => return Ok(()),
            Sources::None => Vec::new(),
            Sources::Fds(f) => f,
            Sources::Trees(trees) => {
                return self.apply_trees(op, trees).map_err(op_err(op, "mount"));
            }
        };
        self.apply_op(op, fds).map_err(op_err(op, "mount"))
    }

    fn apply_op(&mut self, op: &MountOp, fds: Vec<Option<OwnedFd>>) -> R<()> {
        let nosuid_nodev = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        match op {
            // Binds and devices were copied in step 1 and come through `apply_trees`.
            MountOp::Bind { .. } | MountOp::Dev { .. } => Err(Errno::EINVAL),
            MountOp::Tmpfs { dst, size, perms } => {
                let mode = cstr(&format!("{:o}", perms.unwrap_or(0o755)))?;
                let size = size.map(|s| cstr(&s.to_string())).transpose()?;
                let mut opts = vec![(c"mode", mode.as_c_str())];
                if let Some(s) = &size {
                    opts.push((c"size", s.as_c_str()));
                }
                self.mount_new(c"tmpfs", &opts, nosuid_nodev, dst)
            }
            MountOp::Proc { dst } => {
                self.mount_new(c"proc", &[], nosuid_nodev | MOUNT_ATTR_NOEXEC, dst)
            }
            MountOp::Mqueue { dst } => {
                self.mount_new(c"mqueue", &[], nosuid_nodev | MOUNT_ATTR_NOEXEC, dst)
            }
            MountOp::Dir { dst, perms } => self.make_dirs(dst, perms.unwrap_or(0o755)).map(drop),
            MountOp::Symlink { target, link } => self.symlink(target, link),
            MountOp::File { fd, dst, perms } => {
                let mut data = self.take_passed(*fd)?;
                let (parent, name) = self.make_parent(dst)?;
                let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW;
                let out = openat(
                    parent.as_fd(),
                    name.as_c_str(),
                    flags | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(perms.unwrap_or(0o644)),
                )?;
                copy(&mut data, out)
            }
            MountOp::BindData {
                fd,
                dst,
                read_only,
                perms,
            } => {
                let mut data = self.take_passed(*fd)?;
                let name = self.fresh_name("data")?;
                let scratch = self.scratch()?;
                let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW;
                let out = openat(
                    scratch,
                    name.as_c_str(),
                    flags | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(perms.unwrap_or(0o644)),
                )?;
                copy(&mut data, out)?;
                let file = openat(
                    scratch,
                    name.as_c_str(),
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                let attrs = nosuid_nodev | if *read_only { MOUNT_ATTR_RDONLY } else { 0 };
                self.bind(&file, dst, attrs)
            }
            MountOp::RemountRo { dst } => {
                // A read-only copy of whatever is at `dst`, stacked on it: works the same on a
                // mount point and on a plain directory, and every submount goes read-only too.
                let at = self.resolve(dst, OFlag::empty())?;
                let tree = sys::clone_tree(at.as_fd())?;
                sys::set_mount_attrs(tree.as_fd(), MOUNT_ATTR_RDONLY)?;
                sys::attach(tree.as_fd(), at.as_fd())
            }
            MountOp::Chmod { mode, path } => {
                let at = self.resolve(path, OFlag::empty())?;
                fchmodat(
                    AT_FDCWD,
                    proc_fd(&at).as_str(),
                    Mode::from_bits_truncate(*mode),
                    FchmodatFlags::FollowSymlink,
                )
            }
            MountOp::Overlay { dst, kind, srcs } => self.overlay(dst, kind, srcs.len(), fds),
        }
    }

    fn symlink(&self, target: &str, link: &str) -> R<()> {
        let (parent, name) = self.make_parent(link)?;
        match symlinkat(target, parent.as_fd(), name.as_c_str()) {
            Ok(()) => Ok(()),
            // Already there with the same target (say, a second --symlink): fine.
            Err(Errno::EEXIST) => match readlinkat(parent.as_fd(), name.as_c_str()) {
                Ok(existing) if existing == std::ffi::OsStr::new(target) => Ok(()),
                _ => Err(Errno::EEXIST),
            },
            Err(e) => Err(e),
        }
    }

    fn dev(&mut self, dst: &str, devices: Vec<Option<Tree>>) -> R<()> {
        self.mount_new(
            c"tmpfs",
            &[(c"mode", c"0755"), (c"size", c"65536")],
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            dst,
        )?;
        let dst = dst.trim_end_matches('/');
        for (name, tree) in DEVICES.iter().zip(devices) {
            if let Some(tree) = tree {
                self.attach_tree(&tree, &format!("{dst}/{name}"))?;
            }
        }
        self.make_dirs(&format!("{dst}/shm"), 0o1777)?;
        self.mount_new(
            c"devpts",
            &[
                (c"newinstance", c""),
                (c"ptmxmode", c"0666"),
                (c"mode", c"0620"),
            ],
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            &format!("{dst}/pts"),
        )?;
        for (target, link) in [
            ("pts/ptmx", "ptmx"),
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
            ("/proc/kcore", "core"),
        ] {
            self.symlink(target, &format!("{dst}/{link}"))?;
        }
        Ok(())
    }

    fn overlay(
        &mut self,
        dst: &str,
        kind: &OverlayKind,
        layers: usize,
        fds: Vec<Option<OwnedFd>>,
    ) -> R<()> {
        let fds: Vec<OwnedFd> = fds.into_iter().flatten().collect();
        let (lower, rest) = fds.split_at(layers.min(fds.len()));
        // Each --overlay-src goes above the ones before it; overlayfs lists the top first.
        let lowerdir = lower
            .iter()
            .rev()
            .map(proc_fd)
            .collect::<Vec<_>>()
            .join(":");
        let lowerdir = cstr(&lowerdir)?;
        let mut opts: Vec<(&CStr, CString)> = vec![(c"lowerdir", lowerdir)];
        let mut attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        let mut keep = Vec::new();
        match kind {
            OverlayKind::ReadOnly => attrs |= MOUNT_ATTR_RDONLY,
            OverlayKind::ReadWrite { .. } => {
                let [upper, work] = rest else {
                    return Err(Errno::EINVAL);
                };
                opts.push((c"upperdir", cstr(&proc_fd(upper))?));
                opts.push((c"workdir", cstr(&proc_fd(work))?));
            }
            OverlayKind::Tmp => {
                let name = self.fresh_name("overlay")?;
                let scratch = self.scratch()?;
                mkdirat(scratch, name.as_c_str(), Mode::from_bits_truncate(0o755))?;
                let dir = openat(
                    scratch,
                    name.as_c_str(),
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                for sub in [c"upper", c"work"] {
                    mkdirat(dir.as_fd(), sub, Mode::from_bits_truncate(0o755))?;
                    let fd = openat(
                        dir.as_fd(),
                        sub,
                        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )?;
                    opts.push((
                        if sub == c"upper" {
                            c"upperdir"
                        } else {
                            c"workdir"
                        },
                        cstr(&proc_fd(&fd))?,
                    ));
                    keep.push(fd);
                }
            }
        }
        opts.push((c"userxattr", CString::default()));
        let borrowed: Vec<(&CStr, &CStr)> = opts.iter().map(|(k, v)| (*k, v.as_c_str())).collect();
        self.mount_new(c"overlay", &borrowed, attrs, dst)?;
        drop(keep);
        Ok(())
    }

    /// Remove the scratch space and make the root `/`.
    fn finish(self) -> Result<()> {
        if let Some(scratch) = &self.scratch {
            // Whatever was bound or overlaid from it keeps its own references.
            umount2(proc_fd(scratch).as_str(), MntFlags::MNT_DETACH)
                .map_err(crate::error::sys("umount scratch tmpfs"))?;
            unlinkat(self.base.as_fd(), SCRATCH, UnlinkatFlags::RemoveDir)
                .map_err(crate::error::sys("rmdir scratch directory"))?;
        }
        chdir(STAGING).map_err(crate::error::sys("chdir into the new root"))?;
        // With new_root and put_old the same directory, the old root ends up stacked on the
        // new one at "/", and the lazy unmount of "." then takes the whole host tree away.
        pivot_root(".", ".").map_err(crate::error::sys("pivot_root"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(crate::error::sys("umount old root"))?;
        chdir("/").map_err(crate::error::sys("chdir /"))?;
        Ok(())
    }
}

fn copy(from: &mut File, to: OwnedFd) -> R<()> {
    let mut to = File::from(to);
    std::io::copy(from, &mut to)
        .map(drop)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}
