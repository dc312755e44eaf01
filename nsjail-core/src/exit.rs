//! The CLI's exit code rules (DESIGN §5), in one place.

use crate::message::{ErrorKind, Termination};

/// The sandbox could not be set up (or the CLI was used wrongly).
pub const SETUP_FAILED: i32 = 125;
/// The command exists but cannot be executed.
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

/// The exit code that reports how the payload ended: its own code, or `128 + N` for signal N.
pub fn code_for_termination(t: Termination) -> i32 {
    match t {
        Termination::Exited(code) => code & 0xff,
        Termination::Signaled(sig) => 128 + (sig & 0x7f),
    }
}

/// The exit code for an error that ended the sandbox before or instead of the payload.
pub fn code_for_error(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::BadRequest | ErrorKind::Setup => SETUP_FAILED,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::NotExecutable => NOT_EXECUTABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_codes_pass_through_and_signals_add_128() {
        assert_eq!(code_for_termination(Termination::Exited(0)), 0);
        assert_eq!(code_for_termination(Termination::Exited(3)), 3);
        assert_eq!(code_for_termination(Termination::Exited(255)), 255);
        assert_eq!(code_for_termination(Termination::Signaled(9)), 137);
        assert_eq!(code_for_termination(Termination::Signaled(11)), 139);
    }

    #[test]
    fn errors_map_to_design_codes() {
        assert_eq!(code_for_error(ErrorKind::Setup), 125);
        assert_eq!(code_for_error(ErrorKind::BadRequest), 125);
        assert_eq!(code_for_error(ErrorKind::NotExecutable), 126);
        assert_eq!(code_for_error(ErrorKind::NotFound), 127);
    }
}
