//! cgroups: one fresh cgroup per container, v1 and v2 behind one trait.
//!
//! HELPER-OWNED: the implementation is being written; the interface below is fixed.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;

pub mod v1;
pub mod v2;

/// Errors of the cgroup layer; each names the file and the operation.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroupfs file or directory operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A cgroupfs file had content we could not parse.
    #[error("parse {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
    /// The host lacks what warmbox needs.
    #[error("cgroups unusable: {0}")]
    Unsupported(String),
}

/// Which cgroup hierarchy a backend drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Limits written into a container's cgroup before its job starts.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupLimits {
    /// Memory limit in bytes, swap included (no swap is ever allowed).
    pub memory_bytes: u64,
    /// Maximum number of processes plus threads.
    pub pids: u64,
    /// CPU bandwidth in cores (cfs quota / period); `None` is unlimited.
    pub cpu_cores: Option<f64>,
}

/// What the kernel accounted for a cgroup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupUsage {
    /// CPU time of every process of the cgroup, nanoseconds.
    pub cpu_ns: u64,
    /// User part of `cpu_ns`.
    pub user_ns: u64,
    /// System part of `cpu_ns`.
    pub sys_ns: u64,
    /// Peak memory charged to the cgroup since the last `reset_peaks`.
    pub memory_peak_bytes: u64,
    /// Number of OOM kills in the cgroup since creation.
    pub oom_kills: u64,
    /// Peak number of tasks, where the kernel reports it.
    pub pids_peak: Option<u64>,
}

/// A cgroup hierarchy (v1 set of controllers, or the v2 unified tree) under warmbox's parent.
pub trait CgroupBackend: Send + Sync + std::fmt::Debug {
    /// v1 or v2.
    fn version(&self) -> CgroupVersion;
    /// Controllers in use, e.g. `["memory", "pids", "cpu", "cpuacct"]`.
    fn controllers(&self) -> Vec<String>;
    /// Creates the cgroup `name` under warmbox's parent with `limits` applied.
    fn create(&self, name: &str, limits: &CgroupLimits) -> Result<Box<dyn Cgroup>, CgroupError>;
    /// Removes every cgroup under warmbox's parent (left by a crashed instance), killing
    /// what still runs in them. Returns how many were removed.
    fn remove_stale(&self) -> Result<usize, CgroupError>;
    /// Names of the cgroups now under warmbox's parent.
    fn list(&self) -> Result<Vec<String>, CgroupError>;
}

/// One container's cgroup.
pub trait Cgroup: Send + Sync + std::fmt::Debug {
    /// The name given at creation.
    fn name(&self) -> &str;
    /// v2: the cgroup directory fd for `clone3(CLONE_INTO_CGROUP)`. v1: `None`.
    fn clone_into_fd(&self) -> Option<BorrowedFd<'_>>;
    /// Moves process `pid` (a host pid) into the cgroup (every controller on v1).
    fn add_process(&self, pid: i32) -> Result<(), CgroupError>;
    /// Rewrites the limits (before a job starts).
    fn set_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError>;
    /// Resets the memory peak (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`) so that the
    /// job's peak excludes the container's setup. Best effort where the kernel cannot.
    fn reset_peaks(&self) -> Result<(), CgroupError>;
    /// CPU time of all processes so far, nanoseconds (read often: keep it cheap).
    fn cpu_ns(&self) -> Result<u64, CgroupError>;
    /// Full accounting.
    fn usage(&self) -> Result<CgroupUsage, CgroupError>;
    /// SIGKILLs every process in the cgroup (v2 `cgroup.kill`; v1 freeze, kill, thaw or loop).
    fn kill_all(&self) -> Result<(), CgroupError>;
    /// Removes the cgroup directories, retrying while the kernel still reports them busy.
    fn destroy(&self) -> Result<(), CgroupError>;
}

/// Probes `/sys/fs/cgroup` and returns the backend to use, with warmbox's parent `parent`
/// (e.g. `"warmbox"`). v2 when the unified hierarchy has the memory, pids and cpu
/// controllers; else v1 when memory, pids, cpu and cpuacct are mounted.
pub fn probe(parent: &str) -> Result<Box<dyn CgroupBackend>, CgroupError> {
    let _ = parent;
    todo!("helper")
}
