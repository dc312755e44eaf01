//! The helper's error type. Every error names the call, the path where there is one, and the
//! reason; it becomes one line for the caller.

use nix::errno::Errno;
use nsjail_core::ErrorKind;
use nsjail_core::policy::Refusal;
use nsjail_core::validate::ValidationError;
use nsjail_core::wire::WireError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HelperError {
    /// A system call failed; `call` names it and what it was applied to.
    #[error("{call}: {}", .source.desc())]
    Sys {
        call: String,
        #[source]
        source: Errno,
    },
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationError),
    /// The request is well-formed but asks for something this helper will not do.
    #[error("{0}")]
    Refused(String),
    /// The admin policy refuses the request.
    #[error("{0}")]
    Policy(#[from] Refusal),
}

impl HelperError {
    /// The kind of error the CLI is told about.
    pub fn kind(&self) -> ErrorKind {
        match self {
            HelperError::Sys { .. } => ErrorKind::Setup,
            HelperError::Wire(_)
            | HelperError::Invalid(_)
            | HelperError::Refused(_)
            | HelperError::Policy(_) => ErrorKind::BadRequest,
        }
    }
}

/// `result.map_err(sys("mount proc on /proc"))`.
pub fn sys(call: impl Into<String>) -> impl FnOnce(Errno) -> HelperError {
    let call = call.into();
    move |source| HelperError::Sys { call, source }
}

pub type Result<T, E = HelperError> = std::result::Result<T, E>;
