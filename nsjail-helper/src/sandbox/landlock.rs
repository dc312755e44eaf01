//! The payload's Landlock ruleset: built by the sandbox's first process once the view is in place
//! (each rule's path opened inside the new root, as the caller), and applied by the payload to
//! itself just before `execve`, after `no_new_privs` and before the seccomp filters.
//!
//! What each rule grants is decided in `nsjail_core::landlock` from the mount operations; this
//! module only turns those rights into the kernel's, for the ABI the helper found, and adds one
//! rule for each of the payload's own stdio files (a regular file or a terminal): reopening
//! `/dev/stdout` or `/proc/self/fd/1` goes through Landlock's path checks, and a caller's output
//! redirected to a host file, or a terminal on the host's devpts, is outside the view. Each
//! such rule allows only the opening mode the descriptor already has.
//!
//! Nothing here runs with host privilege: the process has switched to the caller's ids.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd,
    RestrictionStatus, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus,
};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::{SFlag, fstat};
use nsjail_core::landlock::{Access as ViewAccess, Ruleset as Plan};

use crate::error::{HelperError, Result};
use crate::setup_report::Reporter;

/// A ruleset with its rules, ready for the payload to apply.
pub struct Prepared {
    ruleset: RulesetCreated,
}

/// The error of a Landlock call: the system call's errno when the crate's error carries one.
fn err(call: impl Into<String>, e: impl std::error::Error + 'static) -> HelperError {
    let call = format!("landlock: {}", call.into());
    let mut cause: Option<&dyn std::error::Error> = Some(&e);
    while let Some(c) = cause {
        if let Some(n) = c
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return HelperError::Sys {
                call,
                source: Errno::from_raw(n),
            };
        }
        cause = c.source();
    }
    HelperError::Refused(format!("{call}: {e}"))
}

/// Rights that apply to a file that is not a directory (the kernel refuses the others there).
fn file_rights() -> BitFlags<AccessFs> {
    AccessFs::Execute
        | AccessFs::WriteFile
        | AccessFs::ReadFile
        | AccessFs::Truncate
        | AccessFs::IoctlDev
        | AccessFs::ResolveUnix
}

/// The kernel's rights for a rule of the view, limited to what the ruleset handles.
fn rights(a: ViewAccess, handled: BitFlags<AccessFs>) -> BitFlags<AccessFs> {
    let mut r = BitFlags::EMPTY;
    if a.read {
        // Connecting to a socket is reading in the view's sense: a read-only bind of a socket
        // is connectable (ABI 9 and later check it).
        r |= AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::ResolveUnix;
    }
    if a.write {
        r |= AccessFs::WriteFile
            | AccessFs::RemoveDir
            | AccessFs::RemoveFile
            | AccessFs::MakeChar
            | AccessFs::MakeDir
            | AccessFs::MakeReg
            | AccessFs::MakeSock
            | AccessFs::MakeFifo
            | AccessFs::MakeBlock
            | AccessFs::MakeSym
            | AccessFs::Refer
            | AccessFs::Truncate
            | AccessFs::IoctlDev;
    }
    if a.exec {
        r |= AccessFs::Execute;
    }
    r & handled
}

fn is_dir(fd: BorrowedFd<'_>) -> std::result::Result<bool, Errno> {
    let st = fstat(fd)?;
    Ok(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR)
}

/// Build the ruleset for `plan` at Landlock ABI `abi` (at least 2, checked by the caller), with
/// the rules for the process's stdio. Runs inside the new root, before capabilities are dropped,
/// so every path the payload could reach can be opened.
pub fn prepare(plan: &Plan, abi: u32, reporter: &Reporter) -> Result<Prepared> {
    let abi_enum = ABI::from(i32::try_from(abi).unwrap_or(i32::MAX));
    let handled = AccessFs::from_all(abi_enum);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(handled)
        .and_then(|r| r.create())
        .map_err(|e| err(format!("landlock_create_ruleset (ABI {abi})"), e))?;
    let mut count = 0;
    for rule in &plan.rules {
        let fd = match PathFd::new(&rule.path) {
            Ok(fd) => fd,
            Err(e) => {
                // Not there (an optional bind, a mount point behind a symbolic link that led
                // elsewhere): nothing to grant. Anything else is an error.
                let gone = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .and_then(std::io::Error::raw_os_error)
                    .is_some_and(|n| [libc::ENOENT, libc::ENOTDIR, libc::EACCES].contains(&n));
                if gone {
                    reporter.step(|| format!("landlock: {} is not reachable, no rule", rule.path));
                    continue;
                }
                return Err(err(format!("open {}", rule.path), e));
            }
        };
        let dir = is_dir(fd.as_fd())
            .map_err(crate::error::sys(format!("landlock: fstat {}", rule.path)))?;
        let mut access = rights(rule.access, handled);
        if !dir {
            access &= file_rights();
        }
        if access.is_empty() {
            continue;
        }
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| err(format!("landlock_add_rule {}", rule.path), e))?;
        count += 1;
        reporter.step(|| format!("landlock: {} {}", rule.access.letters(), rule.path));
    }
    for (n, name) in [(0, "stdin"), (1, "stdout"), (2, "stderr")] {
        if let Some((fd, access)) = stdio_rule(n, handled)? {
            ruleset = ruleset
                .add_rule(PathBeneath::new(fd, access))
                .map_err(|e| err(format!("landlock_add_rule {name}"), e))?;
            count += 1;
            reporter.step(|| format!("landlock: {name}: its own file, reopened only as opened"));
        }
    }
    reporter.step(|| {
        format!(
            "landlock: ruleset at ABI {abi} ({} access rights handled), {count} rules; the payload applies it to itself before exec",
            handled.iter().count()
        )
    });
    Ok(Prepared { ruleset })
}

/// A rule for stdio descriptor `n` when it is a regular file or a terminal (pipes and sockets
/// are not files Landlock checks): reading if it was opened for reading, writing and
/// truncating if for writing, device ioctls for a terminal.
fn stdio_rule(
    n: i32,
    handled: BitFlags<AccessFs>,
) -> Result<Option<(OwnedFd, BitFlags<AccessFs>)>> {
    let fd = match n {
        0 => nix::unistd::dup(std::io::stdin().as_fd()),
        1 => nix::unistd::dup(std::io::stdout().as_fd()),
        _ => nix::unistd::dup(std::io::stderr().as_fd()),
    }
    .map_err(crate::error::sys(format!("landlock: dup fd {n}")))?;
    let st = fstat(fd.as_fd()).map_err(crate::error::sys(format!("landlock: fstat fd {n}")))?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFREG && kind != SFlag::S_IFCHR {
        return Ok(None);
    }
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL).map_err(crate::error::sys(format!(
        "landlock: fcntl(F_GETFL) fd {n}"
    )))?;
    let mode = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE;
    let mut access = BitFlags::EMPTY;
    if mode == OFlag::O_RDONLY || mode == OFlag::O_RDWR {
        access |= AccessFs::ReadFile;
    }
    if mode == OFlag::O_WRONLY || mode == OFlag::O_RDWR {
        access |= AccessFs::WriteFile | AccessFs::Truncate;
    }
    if kind == SFlag::S_IFCHR {
        access |= AccessFs::IoctlDev;
    }
    let access = access & handled;
    Ok((!access.is_empty()).then_some((fd, access)))
}

/// Apply the ruleset to this process (the payload; needs `no_new_privs`). Anything short of
/// the whole ruleset enforced is an error: the request asked for it.
pub fn restrict(p: Prepared) -> Result<()> {
    let status: RestrictionStatus = p
        .ruleset
        .restrict_self()
        .map_err(|e| err("landlock_restrict_self", e))?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(HelperError::Refused(format!(
            "landlock: landlock_restrict_self: the ruleset is {:?}",
            status.ruleset
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_rights_map_to_the_kernels_within_what_is_handled() {
        let all = AccessFs::from_all(ABI::V7);
        let ro = ViewAccess {
            read: true,
            write: false,
            exec: false,
        };
        let r = rights(ro, all);
        assert!(r.contains(AccessFs::ReadFile | AccessFs::ReadDir));
        assert!(!r.contains(AccessFs::Execute) && !r.contains(AccessFs::WriteFile));
        let rwx = ViewAccess {
            read: true,
            write: true,
            exec: true,
        };
        assert_eq!(rights(rwx, all), all);
        // ABI 2 handles neither truncation nor device ioctls: they are left out.
        let v2 = AccessFs::from_all(ABI::V2);
        let r = rights(rwx, v2);
        assert!(r.contains(AccessFs::Refer) && !r.contains(AccessFs::Truncate));
        assert_eq!(r, v2);
    }
}
