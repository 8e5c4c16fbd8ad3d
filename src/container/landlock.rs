//! landlock: the job process may write only under `/box` and `/tmp` (and to the few device
//! files), may not bind or connect TCP, and is scoped from signalling or reaching abstract
//! unix sockets outside its own domain where the kernel's ABI has those scopes.
//!
//! HELPER-OWNED: the implementation is being written; the interface below is fixed.

use std::path::PathBuf;

/// Errors building or applying the ruleset.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// Creating the ruleset or adding a rule failed.
    #[error("landlock {what}: {message}")]
    Ruleset { what: String, message: String },
    /// `landlock_restrict_self` failed.
    #[error("landlock restrict_self: {0}")]
    Restrict(String),
}

/// Which paths the job process may use, and how.
#[derive(Debug, Clone, Default)]
pub struct LandlockRules {
    /// Read and execute anywhere below these (usually `/`).
    pub read_exec: Vec<PathBuf>,
    /// Full access below these (e.g. `/box`, `/tmp`).
    pub read_write: Vec<PathBuf>,
    /// Files that may be written but not created or removed (e.g. `/dev/null`).
    pub write_files: Vec<PathBuf>,
}

/// A ruleset built in the container init before the container reports ready; applied by
/// the job process with `restrict_self`.
#[derive(Debug)]
pub struct PreparedRuleset {
    _private: (),
}

/// Builds the ruleset (best effort over the kernel's landlock ABI) from `rules`.
pub fn prepare(rules: &LandlockRules) -> Result<PreparedRuleset, LandlockError> {
    let _ = rules;
    todo!("helper")
}

/// What the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Every requested restriction is in force.
    Full,
    /// Some restrictions are unknown to this kernel's ABI.
    Partial,
    /// Landlock is unavailable.
    None,
}

impl PreparedRuleset {
    /// Restricts the calling process (the job process). Needs no_new_privs set first.
    pub fn restrict_self(self) -> Result<Enforcement, LandlockError> {
        todo!("helper")
    }
}

/// The kernel's landlock ABI version, or `None` where landlock is unavailable.
pub fn abi_version() -> Option<u32> {
    todo!("helper")
}
