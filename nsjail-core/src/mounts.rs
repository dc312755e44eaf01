//! The filesystem view of a sandbox: a new, empty root and the operations that fill it, in
//! order. The names follow bubblewrap's options so that its users need not relearn them.

use serde::{Deserialize, Serialize};

/// How a bind mount is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindKind {
    /// Read-write, `nosuid,nodev`.
    ReadWrite,
    /// Read-only (recursively, every submount too), `nosuid,nodev`.
    ReadOnly,
    /// Read-write with device nodes usable: the one bind that is not `nodev`.
    Dev,
}

/// What kind of overlay an overlay operation mounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverlayKind {
    /// Writes go to an invisible tmpfs and vanish with the sandbox (`--tmp-overlay`).
    Tmp,
    /// Read-only union of the sources (`--ro-overlay`).
    ReadOnly,
    /// Writes go to `upper` on the host, with `work` as overlayfs' work directory (`--overlay`).
    ReadWrite { upper: String, work: String },
}

/// One step of building the new root. Paths named `dst`, `link` and `path` are inside the
/// sandbox; `src` paths are the caller's, on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountOp {
    Bind {
        src: String,
        dst: String,
        kind: BindKind,
        /// Skip silently when `src` does not exist (`--bind-try` and friends).
        optional: bool,
    },
    Tmpfs {
        dst: String,
        size: Option<u64>,
        perms: Option<u32>,
    },
    Proc {
        dst: String,
    },
    Dev {
        dst: String,
    },
    Mqueue {
        dst: String,
    },
    Dir {
        dst: String,
        perms: Option<u32>,
    },
    Symlink {
        target: String,
        link: String,
    },
    /// Copy the contents of passed fd number `fd` (an index into the request's extra fds) into a
    /// new file.
    File {
        fd: u32,
        dst: String,
        perms: Option<u32>,
    },
    /// Like `File`, but bind-mounted over `dst` (so it can cover an existing file), optionally
    /// read-only.
    BindData {
        fd: u32,
        dst: String,
        read_only: bool,
        perms: Option<u32>,
    },
    RemountRo {
        dst: String,
    },
    Chmod {
        mode: u32,
        path: String,
    },
    Overlay {
        srcs: Vec<String>,
        dst: String,
        kind: OverlayKind,
    },
}

impl MountOp {
    /// The operation as the command line spells it, for messages.
    pub fn describe(&self) -> String {
        match self {
            MountOp::Bind {
                src,
                dst,
                kind,
                optional,
            } => {
                let name = match kind {
                    BindKind::ReadWrite => "--bind",
                    BindKind::ReadOnly => "--ro-bind",
                    BindKind::Dev => "--dev-bind",
                };
                let t = if *optional { "-try" } else { "" };
                format!("{name}{t} {src} {dst}")
            }
            MountOp::Tmpfs { dst, .. } => format!("--tmpfs {dst}"),
            MountOp::Proc { dst } => format!("--proc {dst}"),
            MountOp::Dev { dst } => format!("--dev {dst}"),
            MountOp::Mqueue { dst } => format!("--mqueue {dst}"),
            MountOp::Dir { dst, .. } => format!("--dir {dst}"),
            MountOp::Symlink { target, link } => format!("--symlink {target} {link}"),
            MountOp::File { fd, dst, .. } => format!("--file (passed fd #{fd}) {dst}"),
            MountOp::BindData {
                fd, dst, read_only, ..
            } => {
                let name = if *read_only {
                    "--ro-bind-data"
                } else {
                    "--bind-data"
                };
                format!("{name} (passed fd #{fd}) {dst}")
            }
            MountOp::RemountRo { dst } => format!("--remount-ro {dst}"),
            MountOp::Chmod { mode, path } => format!("--chmod {mode:o} {path}"),
            MountOp::Overlay { dst, kind, .. } => match kind {
                OverlayKind::Tmp => format!("--tmp-overlay {dst}"),
                OverlayKind::ReadOnly => format!("--ro-overlay {dst}"),
                OverlayKind::ReadWrite { upper, work } => {
                    format!("--overlay {upper} {work} {dst}")
                }
            },
        }
    }

    /// The path inside the sandbox this operation acts on.
    pub fn target(&self) -> &str {
        match self {
            MountOp::Bind { dst, .. }
            | MountOp::Tmpfs { dst, .. }
            | MountOp::Proc { dst }
            | MountOp::Dev { dst }
            | MountOp::Mqueue { dst }
            | MountOp::Dir { dst, .. }
            | MountOp::File { dst, .. }
            | MountOp::BindData { dst, .. }
            | MountOp::RemountRo { dst }
            | MountOp::Overlay { dst, .. } => dst,
            MountOp::Symlink { link, .. } => link,
            MountOp::Chmod { path, .. } => path,
        }
    }

    /// Host paths this operation reads from.
    pub fn sources(&self) -> Vec<&str> {
        match self {
            MountOp::Bind { src, .. } => vec![src],
            MountOp::Overlay { srcs, kind, .. } => {
                let mut v: Vec<&str> = srcs.iter().map(String::as_str).collect();
                if let OverlayKind::ReadWrite { upper, work } = kind {
                    v.push(upper);
                    v.push(work);
                }
                v
            }
            _ => Vec::new(),
        }
    }

    /// Which passed fd (index into the extra fds) this operation consumes, if any.
    pub fn passed_fd(&self) -> Option<u32> {
        match self {
            MountOp::File { fd, .. } | MountOp::BindData { fd, .. } => Some(*fd),
            _ => None,
        }
    }
}
