//! Language profiles: one TOML file per language under `profiles/`, data not code.
//!
//! HELPER-OWNED: the implementation is being written; the interface below is fixed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Errors loading profiles.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A profile file could not be read.
    #[error("read profile {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A profile file is invalid.
    #[error("profile {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Resource limits of one step; every field is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPU time of all processes of the step, ms.
    pub cpu_ms: u64,
    /// Elapsed time, ms.
    pub wall_ms: u64,
    /// cgroup memory limit (swap included, tmpfs files count), MiB.
    pub memory_mb: u64,
    /// Processes plus threads.
    pub pids: u64,
    /// Cap on each of stdout and stderr, bytes.
    pub output_bytes: u64,
    /// Cap on any single file written, bytes.
    pub file_size_bytes: u64,
    /// Size of each of `/box` and `/tmp`, MiB.
    pub disk_mb: u64,
}

/// Default and maximum limits a request may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSet {
    /// Used where the request names no value.
    pub defaults: Limits,
    /// A request above one of these is refused (never clamped).
    pub maximums: Limits,
}

/// One language profile, as read from `profiles/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Unique name, e.g. `python3`.
    pub name: String,
    /// Other names a request may use, e.g. `["python", "py"]`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Command that prints the runtime's version (run on the host, first line kept).
    #[serde(default)]
    pub version_cmd: Vec<String>,
    /// File name of the entry source file in `/box`, e.g. `main.py`.
    pub source_file: String,
    /// Compile command run in `/box` (absent for interpreted languages).
    #[serde(default)]
    pub compile: Option<Vec<String>>,
    /// Run command run in `/box`; the request's `args` are appended.
    pub run: Vec<String>,
    /// Host paths bound read-only, nosuid, nodev at the same path in the container.
    /// A path that is a symlink on the host becomes the same symlink in the container.
    pub binds: Vec<PathBuf>,
    /// Host paths that must exist for the profile to be available (its runtime).
    pub requires: Vec<PathBuf>,
    /// Environment of both steps.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Limits of the run step.
    pub limits: LimitSet,
    /// Limits of the compile step (not settable by requests).
    #[serde(default)]
    pub compile_limits: Option<Limits>,
    /// CPU bandwidth of a step in cores (`None`: unlimited).
    #[serde(default)]
    pub cpu_cores: Option<f64>,
    /// seccomp policy name: `profiles/seccomp/<name>.json`.
    pub seccomp: String,
}

/// Whether a profile can run on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    /// True when every required path exists.
    pub available: bool,
    /// Why not, naming the missing path; `None` when available.
    pub reason: Option<String>,
    /// First line printed by `version_cmd`, when available.
    pub version: Option<String>,
}

/// A loaded profile with its availability.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    /// The profile data.
    pub profile: Profile,
    /// Checked once at load time.
    pub availability: Availability,
}

/// All profiles of a directory.
#[derive(Debug, Clone, Default)]
pub struct ProfileSet {
    profiles: Vec<Arc<LoadedProfile>>,
}

impl ProfileSet {
    /// Loads every `*.toml` of `dir` (sorted by name), checks availability and versions.
    /// Duplicate names or aliases are an error naming both files.
    pub fn load_dir(dir: &Path) -> Result<Self, ProfileError> {
        let _ = dir;
        todo!("helper")
    }

    /// Finds a profile by name or alias.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedProfile>> {
        let _ = name;
        todo!("helper")
    }

    /// All profiles, sorted by name.
    pub fn all(&self) -> &[Arc<LoadedProfile>] {
        &self.profiles
    }
}
