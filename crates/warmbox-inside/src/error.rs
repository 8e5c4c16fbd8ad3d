//! The crate's one error type: what a container's setup can fail at, gathered from the
//! modules that do each part (youki's style: one `thiserror` enum per module, collected here
//! with `#[from]`). The init reports it to the server as the message of
//! [`FromInit::Error`](crate::protocol::FromInit::Error).

use crate::job::SealError;
use crate::landlock::LandlockError;
use crate::locks::LocksError;
use crate::mount::MountError;
use crate::protocol::ProtocolError;
use crate::seccomp::FilterError;

/// Errors of the code that runs inside a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mount or another filesystem operation of the setup failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The landlock ruleset could not be built.
    #[error(transparent)]
    Landlock(#[from] LandlockError),
    /// The seccomp policy's bytes were malformed.
    #[error("seccomp: {0}")]
    Seccomp(#[from] FilterError),
    /// The channel to the server or to the job process failed.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The lock mediator could not be set up.
    #[error(transparent)]
    Locks(#[from] LocksError),
    /// The capabilities could not be sealed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A system call of the init failed (`nix`'s errno).
    #[error("{call}: {errno}")]
    Sys {
        /// The call with its arguments.
        call: &'static str,
        /// The kernel's answer.
        errno: nix::errno::Errno,
    },
    /// A system call of the init failed (`std`'s error).
    #[error("{call}: {source}")]
    Io {
        /// The call with its arguments.
        call: &'static str,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// The job process could not be started or did not sandbox itself.
    #[error("{0}")]
    JobProcess(String),
}

impl Error {
    /// For `map_err`: the failure of `call`, a `nix` call.
    pub(crate) fn sys(call: &'static str) -> impl FnOnce(nix::errno::Errno) -> Self {
        move |errno| Error::Sys { call, errno }
    }

    /// For `map_err`: the failure of `call`, a `std` call.
    pub(crate) fn io(call: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Error::Io { call, source }
    }

    /// The failure of `call`, from `errno`.
    pub(crate) fn last_os_error(call: &'static str) -> Self {
        Error::io(call)(std::io::Error::last_os_error())
    }
}
