//! The crate's error: each module's own error, gathered at the crate boundary.

use crate::admission::Overloaded;
use crate::profile::ProfileError;
use crate::request::RequestError;
use warmbox_sandbox::SandboxError;

/// An error of the runner: a request refused, profiles that do not load, no place to run,
/// or the engine's failure. Each says what failed as its module's error does.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request that cannot be run (the client's to fix).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Profiles that cannot be loaded or tightened (the operator's to fix).
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// No place to run a request now.
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// The engine failed: no container could be had (warmbox's or the host's fault).
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}
