//! Pseudo-terminals for the tests that put a sandbox on one.

use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::pty::OpenptyResult;
use nix::sys::stat::Mode;

/// A new pseudo-terminal whose two ends are close-on-exec from the moment they exist. The test
/// process runs tests on many threads, and `openpty(3)` opens both ends inheritable: a sandbox
/// another test started in that moment inherited the master (a stray `/dev/ptmx` on fd 3 in the
/// bwrap corpus). Children get an end only as their stdio, which `Command` dups in.
pub fn openpty() -> OpenptyResult {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = nix::pty::posix_openpt(flags).expect("posix_openpt");
    nix::pty::grantpt(&master).expect("grantpt");
    nix::pty::unlockpt(&master).expect("unlockpt");
    let name = nix::pty::ptsname_r(&master).expect("ptsname_r");
    let slave =
        nix::fcntl::open(name.as_str(), flags, Mode::empty()).expect("open the pty's slave");
    OpenptyResult {
        master: OwnedFd::from(master),
        slave,
    }
}
