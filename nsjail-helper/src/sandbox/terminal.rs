//! The payload's terminal inside the sandbox.
//!
//! When the CLI's stdin is a terminal it makes a pseudo-terminal for the payload (so that
//! `TIOCSTI` and job control stay away from the caller's own), and asks (`SpawnRequest::terminal`)
//! for one of the sandbox's own instead. That one is what this module makes: the set-up opens
//! the sandbox's `/dev/ptmx` (the `ptmx` of the devpts instance its view mounted), after
//! `pivot_root` and as the caller, and hands the master to the helper over a socketpair; the
//! helper checks it and passes it to the CLI with [`HelperEvent::Terminal`], which relays it as
//! it relayed its own. The payload's terminal is then `/dev/pts/N` of the sandbox: `tty`, a
//! program's `ttyname()`, `ps` and `GPG_TTY=$(tty)` name a device that exists inside.
//!
//! Why not bind the CLI's terminal onto a node inside (as container managers do with
//! `/dev/console`)? The name would then be a host device bound in: `ttyname()` finds it only by
//! scanning, `ps` still names the host's `pts/N` (which the sandbox's `/dev/pts` does not hold),
//! and a host device node would sit in the sandbox. A pseudo-terminal allocated inside has a
//! name, a device number and an owner that all belong to the sandbox, and the master reaching
//! the CLI is all the outside needs: the same way runc's console socket works.
//!
//! Where the view has no `/dev/ptmx` (a view without `--dev`), nothing changes: the payload
//! keeps the CLI's pseudo-terminal, and `--verbose` says why.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::{OFlag, open};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, sendmsg};
use nix::sys::stat::{Mode, SFlag, fstat, major, minor};
use nix::sys::termios::{SetArg, tcgetattr, tcsetattr};
use nsjail_core::HelperEvent;

use crate::error::{Result, sys};
use crate::host::conn::Conn;
use crate::setup_report::Reporter;
use crate::sys as os;

/// `/dev/ptmx` is character device 5:2; so is every devpts instance's `ptmx`, and a master
/// opened through either reports it.
const PTMX: (u64, u64) = (5, 2);

/// In the sandbox's set-up, after `pivot_root`, as the caller: a new pseudo-terminal of the
/// sandbox with the settings and window size of `given` (the CLI's). Returns (master, slave).
fn open_inside(given: BorrowedFd<'_>) -> std::result::Result<(OwnedFd, OwnedFd), String> {
    if !nix::unistd::isatty(given).unwrap_or(false) {
        return Err("stdin is not a terminal".into());
    }
    // Non-blocking: whatever the view put at /dev/ptmx, the open cannot hang the set-up.
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| format!("open /dev/ptmx: {}", e.desc()))?;
    let slave = os::pty_peer(master.as_fd())
        .map_err(|e| format!("/dev/ptmx: not a pseudo-terminal master: {}", e.desc()))?;
    let settings = tcgetattr(given).map_err(|e| format!("tcgetattr: {}", e.desc()))?;
    tcsetattr(&slave, SetArg::TCSANOW, &settings)
        .map_err(|e| format!("tcsetattr: {}", e.desc()))?;
    os::copy_winsize(given, slave.as_fd()).map_err(|e| format!("window size: {}", e.desc()))?;
    Ok((master, slave))
}

/// The channel the set-up sends the master on: (the helper's end, the set-up's end).
pub fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType};
    nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(sys("socketpair (terminal)"))
}

/// The same terminal: the same device.
fn same_terminal(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (fstat(a), fstat(b)) {
        (Ok(x), Ok(y)) => x.st_rdev == y.st_rdev && x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

/// The set-up's part: make the payload's terminal one of the sandbox's own and send its master
/// over `sock`; every stdio fd that was the CLI's terminal becomes its slave. Anything that
/// fails leaves `stdio` as it was (the CLI then keeps relaying its own pseudo-terminal).
pub fn make_inside(stdio: [OwnedFd; 3], sock: OwnedFd, reporter: &Reporter) -> [OwnedFd; 3] {
    let (master, slave) = match open_inside(stdio[0].as_fd()) {
        Ok(pair) => pair,
        Err(why) => {
            reporter
                .step(|| format!("terminal: none of the sandbox's own ({why}); kept the CLI's"));
            return stdio;
        }
    };
    let fds = [master.as_raw_fd()];
    let sent = sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(b"t")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    );
    drop((master, sock));
    if let Err(e) = sent {
        reporter.step(|| format!("terminal: sending the master: {}; kept the CLI's", e.desc()));
        return stdio;
    }
    let [a, b, c] = stdio;
    let given = a.try_clone();
    let swap = |fd: OwnedFd| -> OwnedFd {
        let is_given = given
            .as_ref()
            .is_ok_and(|g| same_terminal(g.as_fd(), fd.as_fd()));
        match (is_given, slave.try_clone()) {
            (true, Ok(s)) => s,
            _ => fd,
        }
    };
    let out = [swap(a), swap(b), swap(c)];
    reporter.step(|| "terminal: a pseudo-terminal of the sandbox's own /dev/pts".into());
    out
}

/// The helper's part, once the payload has been executed: take the master the set-up sent, if
/// it sent one, and check that it is a pseudo-terminal master before it goes anywhere. Never
/// blocks; anything unexpected (no fd, more than one, not a master) yields `None`.
pub fn receive_master(sock: &OwnedFd) -> Option<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    let mut fds: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            fds.extend(raw.into_iter().map(os::take_fd));
        }
    }
    if truncated || fds.len() != 1 {
        return None;
    }
    let master = fds.pop()?;
    let st = fstat(master.as_fd()).ok()?;
    let is_char = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR;
    (is_char && (major(st.st_rdev), minor(st.st_rdev)) == PTMX).then_some(master)
}

/// Queue [`HelperEvent::Terminal`] with `master` attached, after the events before it.
pub fn send_master(conn: &mut Conn, master: OwnedFd) -> Result<()> {
    conn.send_with_fd(&HelperEvent::Terminal, master)
}
