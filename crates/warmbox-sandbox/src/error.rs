//! The engine's one error type, collecting the errors of its modules (cgroups, seccomp
//! policies, spawning, the init channel).

use crate::cgroup::CgroupError;
use crate::seccomp::SeccompError;
use crate::spawn::SpawnError;
use warmbox_inside::protocol::ProtocolError;

/// Errors of the sandbox layer (all are warmbox's or the host's fault, never the user's).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The seccomp policy could not be loaded.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// Starting the init failed.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The init channel failed.
    #[error("container {id}: {source}")]
    Channel {
        id: String,
        #[source]
        source: ProtocolError,
    },
    /// The init reported an error or misbehaved.
    #[error("container {id}: {message}")]
    Init { id: String, message: String },
    /// A host operation failed.
    #[error("{what}: {source}")]
    Host {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The container uid block overlaps ids the host gives out.
    #[error(
        "container uid/gid block {base}..{end} overlaps host ids ({conflicts}); \
         choose another uid_base"
    )]
    IdBlock {
        base: u32,
        end: u64,
        conflicts: String,
    },
    /// Every container slot is in use.
    #[error("all {0} container slots are in use")]
    NoSlot(u32),
}

/// The error of a host operation `what`, for `map_err`.
pub(crate) fn host(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Host { what, source }
}
