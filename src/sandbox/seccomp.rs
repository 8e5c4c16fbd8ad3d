//! seccomp: per-profile syscall policies kept as JSON under `profiles/seccomp/`, compiled
//! with seccompiler at start-up into BPF programs that the job process installs last,
//! right before exec.
//!
//! HELPER-OWNED: the implementation is being written; the interface below is fixed.

use std::path::{Path, PathBuf};

/// Errors loading, compiling or installing a policy.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// Reading the policy file failed.
    #[error("read seccomp policy {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The policy file is not valid (bad JSON, unknown syscall, missing reason...).
    #[error("seccomp policy {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Serialized BPF bytes are malformed.
    #[error("seccomp program bytes: {0}")]
    Bytes(String),
    /// The kernel refused to install the filter.
    #[error("install seccomp filter: {0}")]
    Install(std::io::Error),
}

/// A compiled policy: BPF programs, installed in order; the kernel applies the most
/// restrictive verdict of all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPolicy {
    /// The policy's name (its file stem).
    pub name: String,
    /// The programs, each a list of classic-BPF instructions.
    pub programs: Vec<Vec<libc::sock_filter>>,
}

impl CompiledPolicy {
    /// Loads `dir/<name>.json` and compiles it for the host architecture.
    pub fn load(dir: &Path, name: &str) -> Result<Self, SeccompError> {
        let _ = (dir, name);
        todo!("helper")
    }

    /// Serializes to bytes (to ship to the container init).
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!("helper")
    }

    /// Parses what `to_bytes` produced.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SeccompError> {
        let _ = bytes;
        todo!("helper")
    }

    /// Installs every program on the calling thread. The caller has set no_new_privs.
    /// Called in the job process, the last step before exec; must not allocate.
    pub fn install(&self) -> Result<(), SeccompError> {
        todo!("helper")
    }
}
