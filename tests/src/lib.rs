//! Support for the end-to-end tests: finding the real binaries, running them with a timeout
//! (a test never hangs forever), installing the helper setuid into a temporary prefix, and the
//! ordinary user the tests run the CLI as.
//!
//! Nothing here mocks the kernel: every test runs `nsjail` and `nsjail-helper` as built.

use std::time::Duration;

mod binaries;
mod callers;
mod debian_bwrap;
mod from_inside;
pub mod hardening;
mod helper_direct;
mod host_processes;
mod install;
mod pty;
mod running;
mod scratch;
mod skip;
mod system;

pub use binaries::*;
pub use callers::*;
pub use debian_bwrap::*;
pub use from_inside::*;
pub use helper_direct::*;
pub use host_processes::*;
pub use install::*;
pub use pty::*;
pub use running::*;
pub use scratch::*;
pub use skip::*;
pub use system::*;

/// How long one CLI run may take before it is killed and the test fails. Generous: CI has two
/// cores and runs the tests in parallel.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The name of the ordinary user the tests create and run the CLI as.
pub const TEST_USER: &str = "nsjail-e2e";

/// The environment an ordinary user's CLI runs with (everything else is cleared).
pub const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The environment root's CLI runs with.
pub const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
