//! cgroups: one fresh cgroup per container, v1 and v2 behind one trait.
//!
//! Every cgroup warmbox makes lives under one parent (e.g. `warmbox`), and nothing outside
//! that parent is ever written: the host keeps its own cgroups beside ours.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// Removes warmbox's parent cgroup itself (its last level) if it is empty (for an
    /// engine whose parent is its own, e.g. a test's); a parent with cgroups in it stays.
    fn remove_parent(&self) -> Result<(), CgroupError> {
        self.remove_levels(1)
    }
    /// Where warmbox's parent is, and why there (for `warmbox check` and the log).
    fn describe_parent(&self) -> String;
    /// How many levels of warmbox's parent path making this backend created (0: the
    /// parent was there), so that a probe can take away what it made.
    fn created_levels(&self) -> usize;
    /// Removes the last `levels` levels of warmbox's parent path, deepest first, where
    /// they are empty (a level already gone counts as removed).
    fn remove_levels(&self, levels: usize) -> Result<(), CgroupError>;
}

/// `rmdir` of `dir` and then of its parents, `levels` directories in all; one already gone
/// counts as removed.
fn remove_dir_levels(dir: &Path, levels: usize) -> Result<(), CgroupError> {
    let mut at = Some(dir);
    for _ in 0..levels {
        let Some(d) = at else { break };
        match std::fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("rmdir", d, e)),
        }
        at = d.parent();
    }
    Ok(())
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
    /// Starts a job's accounting and returns the baseline to subtract from `usage` after
    /// it: by default resets the peaks and reads the usage; a backend that can zero its
    /// counters outright does so and returns zeros.
    fn start_accounting(&self) -> Result<CgroupUsage, CgroupError> {
        self.reset_peaks()?;
        self.usage()
    }
    /// Opens what `start_accounting`, `cpu_ns` and `usage` read, so that a job's run
    /// opens nothing (called while the container is made). By default nothing to do.
    fn prepare_accounting(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    /// CPU time of all processes so far, nanoseconds (read often: keep it cheap).
    fn cpu_ns(&self) -> Result<u64, CgroupError>;
    /// Full accounting.
    fn usage(&self) -> Result<CgroupUsage, CgroupError>;
    /// SIGKILLs every process in the cgroup (v2 `cgroup.kill`; v1 freeze, kill, thaw or loop).
    fn kill_all(&self) -> Result<(), CgroupError>;
    /// The processes in the cgroup, host pids (`cgroup.procs`; v1 the pids controller's):
    /// checked before a container serves another run.
    fn procs(&self) -> Result<Vec<i32>, CgroupError>;
    /// Memory charged to the cgroup now, bytes (v1 `memory.usage_in_bytes`, v2
    /// `memory.current`).
    fn memory_bytes(&self) -> Result<u64, CgroupError>;
    /// Between two runs, when the last one made the pids peak rise (the kernel cannot
    /// reset it): gives the next run a peak counter of its own, with the container's init
    /// (host pid `init`) the only process. `false` where the backend cannot (the container
    /// is then not reused).
    fn fresh_pids_peak(&self, init: i32) -> Result<bool, CgroupError> {
        let _ = init;
        Ok(false)
    }
    /// Removes the cgroup directories, retrying while the kernel still reports them busy.
    fn destroy(&self) -> Result<(), CgroupError>;
    /// Once every process of the container is gone: when the kernel memory still charged
    /// to the cgroup is above [`KERNEL_CACHE_BYTES`], reclaims it (v1
    /// `memory.force_empty`, v2 `memory.reclaim`). What stays charged is caches the job
    /// filled, above all the dentries of names it looked up in the shared host
    /// directories: a lookup of a missing name leaves a negative dentry in the host's
    /// cache, so a job looking up made-up names under `/usr/lib` leaves about 150,000 per
    /// 0.4 s, which outlive the cgroup (moved to its parent) and pile up on the host.
    /// Returns whether it reclaimed.
    fn release_kernel_caches(&self) -> Result<bool, CgroupError>;
    /// Which peak counters this kernel gives the cgroup (for `warmbox check`; the
    /// accounting itself copes with each one missing).
    fn peak_support(&self) -> PeakSupport;
}

/// The peak counters a container's cgroup has on this kernel, read from a real cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeakSupport {
    /// There is a memory peak file (v1 `memory.max_usage_in_bytes`; v2 `memory.peak`,
    /// Linux 5.19). Without it a step's peak is the usage when it ended.
    pub memory_peak: bool,
    /// The memory peak can be reset before a job (v1 always; v2 since Linux 6.12). Without
    /// it a step's peak is the cgroup's since the container was made, warm-up included.
    pub memory_peak_reset: bool,
    /// There is `pids.peak` (newer kernels; which version depends on v1 or v2, so it is
    /// looked for). Without it a step's `pids_peak` is `None`.
    pub pids_peak: bool,
}

/// Kernel memory a finished container may leave charged before its removal reclaims it.
/// A normal run leaves well under this (python3 86 KiB, `java -version` 420 KiB, a g++
/// compile 180 KiB); a flood of lookups of missing names passes it after about 5,000
/// (a dentry is 192 bytes). Reclaiming costs about 4 ms (and drops the page cache the
/// job brought in), so it is not done for every container.
pub const KERNEL_CACHE_BYTES: u64 = 1 << 20;

/// Probes `/sys/fs/cgroup` and returns the backend to use, with warmbox's parent `parent`
/// (e.g. `"warmbox"`). v2 when the unified hierarchy has the memory, pids and cpu
/// controllers; else v1 when memory, pids, cpu and cpuacct are mounted.
pub fn probe(parent: &str) -> Result<Box<dyn CgroupBackend>, CgroupError> {
    probe_at(Path::new(CGROUP_ROOT), parent)
}

/// Where the kernel's cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Controllers the v2 backend needs in the unified hierarchy.
const V2_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// Controllers the v1 backend needs mounted.
const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "cpuacct"];

/// [`probe`] with the cgroup mount point `root` instead of `/sys/fs/cgroup`.
///
/// Only `root` itself counts as a v2 hierarchy: on hybrid hosts the v2 tree at
/// `root/unified` usually has no controllers (systemd keeps them on v1), so v1 is chosen.
pub fn probe_at(root: &Path, parent: &str) -> Result<Box<dyn CgroupBackend>, CgroupError> {
    match hierarchy_at(root)?.0 {
        CgroupVersion::V2 => Ok(Box::new(v2::V2Backend::new(root, parent)?)),
        CgroupVersion::V1 => Ok(Box::new(v1::V1Backend::new(root, parent)?)),
    }
}

/// The hierarchy [`probe_at`] chooses under `root`, and the directories warmbox's parent
/// goes in: v2 `[root]`; v1 the memory, pids, cpu and cpuacct hierarchies (resolved, a
/// co-mount once). Creates nothing, so tests can look at the host the way the engine does.
pub fn hierarchy_at(root: &Path) -> Result<(CgroupVersion, Vec<PathBuf>), CgroupError> {
    let mut reasons = Vec::new();
    let controllers_file = root.join("cgroup.controllers");
    match std::fs::read_to_string(&controllers_file) {
        Ok(list) => {
            let have: Vec<&str> = list.split_whitespace().collect();
            let missing: Vec<&str> = V2_CONTROLLERS
                .into_iter()
                .filter(|c| !have.contains(c))
                .collect();
            if missing.is_empty() {
                return Ok((CgroupVersion::V2, vec![root.to_path_buf()]));
            }
            reasons.push(format!(
                "cgroup v2 at {} lacks controllers {}",
                root.display(),
                missing.join(", ")
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            reasons.push(format!("no cgroup v2 hierarchy at {}", root.display()));
        }
        Err(source) => {
            return Err(CgroupError::Io {
                op: "read",
                path: controllers_file,
                source,
            })
        }
    }
    let mut dirs: Vec<PathBuf> = Vec::with_capacity(V1_CONTROLLERS.len());
    let mut missing = Vec::new();
    for controller in V1_CONTROLLERS {
        match find_v1_controller(root, controller) {
            Some(dir) => {
                let dir = std::fs::canonicalize(&dir).map_err(|e| io_error("resolve", &dir, e))?;
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
            None => missing.push(controller),
        }
    }
    if missing.is_empty() {
        return Ok((CgroupVersion::V1, dirs));
    }
    reasons.push(format!(
        "cgroup v1 controllers not mounted under {}: {}",
        root.display(),
        missing.join(", ")
    ));
    Err(CgroupError::Unsupported(reasons.join("; ")))
}

/// The v1 hierarchy of `controller` under `root`: `root/<controller>`, or a co-mount such
/// as `root/cpu,cpuacct`. A directory counts only if it is a cgroup hierarchy (it has
/// `cgroup.procs`), not an empty mount point.
fn find_v1_controller(root: &Path, controller: &str) -> Option<PathBuf> {
    let direct = root.join(controller);
    if direct.join("cgroup.procs").exists() {
        return Some(direct);
    }
    let entries = std::fs::read_dir(root).ok()?;
    entries.flatten().map(|e| e.path()).find(|path| {
        let co_mounted = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.split(',').any(|c| c == controller));
        co_mounted && path.join("cgroup.procs").exists()
    })
}

/// CFS period written with every quota, microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;
/// How long `destroy` waits for a busy cgroup (processes still exiting) to become removable:
/// a killed process with a large address space, or one in reclaim at its memory limit, can
/// take a while to finish exiting; a cgroup given up on stays until the next start.
const RMDIR_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the `cgroup.procs` kill loop keeps killing before it gives up.
const KILL_TIMEOUT: Duration = Duration::from_secs(1);

/// An [`CgroupError::Io`] for `op` on `path`.
fn io_error(op: &'static str, path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses a cgroup name that is not one plain path component (`..`, `/`, empty): a
/// name must never reach outside warmbox's parent.
fn check_name(name: &str, parent_dir: &Path) -> Result<(), CgroupError> {
    let mut components = Path::new(name).components();
    let plain = matches!(components.next(), Some(Component::Normal(_)))
        && components.next().is_none()
        && !name.contains(['/', '\0']);
    if plain {
        return Ok(());
    }
    Err(io_error(
        "create cgroup",
        &parent_dir.join(name),
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cgroup name {name:?} is not a single path component"),
        ),
    ))
}

/// Refuses a parent that is not a path of plain components.
fn check_parent(parent: &str, root: &Path) -> Result<(), CgroupError> {
    parent_name_problem(parent).map_or(Ok(()), |why| {
        Err(io_error(
            "use cgroup parent",
            &root.join(parent_path(parent)),
            io::Error::new(io::ErrorKind::InvalidInput, why),
        ))
    })
}

/// What is wrong with `parent` as a cgroup parent name, if anything: it must be a
/// non-empty path of plain names, relative (placed under the cgroup warmbox was given,
/// see [`v2::place`]) or with one `/` first (from the hierarchy's root, as given).
pub fn parent_name_problem(parent: &str) -> Option<String> {
    let rest = parent_path(parent);
    if rest.is_empty() {
        return Some("the cgroup parent name is empty".into());
    }
    let plain = !rest.contains('\0')
        && !rest.starts_with('/')
        && Path::new(rest)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    (!plain).then(|| {
        format!(
            "cgroup parent {parent:?} must be a path of plain names, relative or with one `/` \
             first (no `//`, `.` or `..`)"
        )
    })
}

/// `parent` without the `/` that marks it as given from the hierarchy's root.
fn parent_path(parent: &str) -> &str {
    parent.strip_prefix('/').unwrap_or(parent)
}

/// Writes `content` to the cgroupfs file `path` in one `write`.
fn write_file(path: &Path, content: &str) -> Result<(), CgroupError> {
    std::fs::write(path, content).map_err(|e| {
        // Opening with O_CREAT a name that cgroupfs does not have fails with EACCES (kernfs
        // directories cannot create files); say what really happened.
        let e = if e.kind() == io::ErrorKind::PermissionDenied && !path.exists() {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no such cgroup file (controller not enabled?)",
            )
        } else {
            e
        };
        io_error("write", path, e)
    })
}

/// Reads the whole cgroupfs file `path`.
fn read_file(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|e| io_error("read", path, e))
}

/// Parses a file holding one decimal number.
fn parse_u64(path: &Path, content: &str) -> Result<u64, CgroupError> {
    content.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: content.to_string(),
    })
}

/// Reads a file holding one decimal number.
fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    parse_u64(path, &read_file(path)?)
}

/// Reads a file holding one decimal number; `None` when the kernel does not have it.
fn read_optional_u64(path: &Path) -> Result<Option<u64>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(content) => parse_u64(path, &content).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path, e)),
    }
}

/// The value of the line `<key> <number>` in a flat-keyed file (`cpu.stat`,
/// `memory.events`, `memory.oom_control`).
fn parse_keyed(path: &Path, content: &str, key: &str) -> Result<u64, CgroupError> {
    content
        .lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or_else(|| CgroupError::Parse {
            path: path.to_path_buf(),
            content: content.to_string(),
        })
}

/// Opens `path` read-only, to be re-read with [`pread_text`].
fn open_read(path: &Path) -> Result<File, CgroupError> {
    File::open(path).map_err(|e| io_error("open", path, e))
}

/// Re-reads an open cgroupfs file from offset 0 in one `pread` into `buf`: seq_file
/// regenerates the content on every read at offset 0, so a file opened once serves every
/// poll. `path` is for errors only.
fn pread_text<'a>(file: &File, path: &Path, buf: &'a mut [u8]) -> Result<&'a str, CgroupError> {
    let n = file
        .read_at(buf, 0)
        .map_err(|e| io_error("read", path, e))?;
    let text = std::str::from_utf8(&buf[..n]).map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: String::from_utf8_lossy(&buf[..n]).into_owned(),
    })?;
    if n == buf.len() {
        // The flat files read this way (cpuacct.usage, cpu.stat, memory.peak) are far below
        // the buffer; a full buffer means the content is not what we think it is.
        return Err(CgroupError::Parse {
            path: path.to_path_buf(),
            content: text.to_string(),
        });
    }
    Ok(text)
}

/// A file holding one decimal number, re-read with [`pread_text`].
fn pread_u64(file: &File, path: &Path) -> Result<u64, CgroupError> {
    let mut buf = [0u8; 64];
    parse_u64(path, pread_text(file, path, &mut buf)?)
}

/// The whole content of a kernel text file kept open, read from offset 0 again.
fn pread_all(file: &File, path: &Path) -> Result<String, CgroupError> {
    let mut out = Vec::with_capacity(512);
    let mut buf = [0u8; 4096];
    loop {
        let n = file
            .read_at(&mut buf, out.len() as u64)
            .map_err(|e| io_error("read", path, e))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).map_err(|e| CgroupError::Parse {
        path: path.to_path_buf(),
        content: String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The CFS quota for `cores` over `period_us`; `path` names the quota file in the error.
fn cpu_quota_us(cores: f64, period_us: u64, path: &Path) -> Result<u64, CgroupError> {
    if !(cores.is_finite() && cores > 0.0) {
        return Err(io_error(
            "write",
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cpu_cores {cores} is not a positive number"),
            ),
        ));
    }
    // `as` from f64 saturates, and `cores` is positive and finite: a huge quota becomes
    // u64::MAX, never a wrapped one.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let quota = (cores * period_us as f64).round() as u64;
    // The kernel refuses quotas below 1 ms.
    Ok(quota.max(1000))
}

/// Names of the cgroups (subdirectories) in `dir`; none when `dir` does not exist.
fn child_names(dir: &Path) -> Result<Vec<String>, CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("list", dir, e))?;
        let is_dir = entry
            .file_type()
            .map_err(|e| io_error("stat", &entry.path(), e))?
            .is_dir();
        if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Removes the cgroup directory `dir` (and any cgroups nested in it). A missing directory
/// is fine. While the kernel reports it busy (its last processes are still exiting) the
/// removal is retried with short sleeps for up to [`RMDIR_TIMEOUT`].
fn remove_cgroup_dir(dir: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + RMDIR_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        let err = match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        match err.raw_os_error() {
            // A nested cgroup keeps its parent busy as well.
            Some(libc::EBUSY) => remove_nested(dir)?,
            // cgroupfs never reports ENOTEMPTY (its control files do not count); a plain
            // directory does, and that is the cgroupfs stand-in of the unit tests, whose
            // regular files play the control files.
            Some(libc::ENOTEMPTY) => {
                remove_nested(dir)?;
                remove_plain_files(dir)?;
            }
            _ => return Err(io_error("rmdir", dir, err)),
        }
        if Instant::now() >= deadline {
            return Err(io_error("rmdir", dir, err));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Removes the cgroups nested in `dir`.
fn remove_nested(dir: &Path) -> Result<(), CgroupError> {
    for name in child_names(dir)? {
        remove_cgroup_dir(&dir.join(name))?;
    }
    Ok(())
}

/// Removes the regular files of a plain (non-cgroupfs) directory.
fn remove_plain_files(dir: &Path) -> Result<(), CgroupError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error("list", dir, e))?;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| io_error("unlink", &path, e))?;
        }
    }
    Ok(())
}

/// SIGKILLs every process listed in the `cgroup.procs` file `procs`, round after round,
/// until the list is empty or [`KILL_TIMEOUT`] has passed. A missing file means the
/// cgroup is gone, which is fine.
///
/// A pid read from `cgroup.procs` may have exited and been reused by a process outside
/// the cgroup before it is signalled. So each listed pid is pinned with a pidfd first,
/// and signalled only if a second read of `cgroup.procs`, made after the pin, still lists
/// it: a pidfd's process cannot change, and if it died meanwhile the signal goes nowhere.
fn kill_listed(procs: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + KILL_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        let Some(listed) = read_pids(procs)? else {
            return Ok(());
        };
        if listed.is_empty() {
            return Ok(());
        }
        let mut pinned = Vec::with_capacity(listed.len());
        for &pid in &listed {
            match pidfd_open(pid) {
                Ok(fd) => pinned.push((pid, Some(fd))),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                // Before Linux 5.3: no pidfds, fall back to kill(2) after the second read.
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => pinned.push((pid, None)),
                Err(e) => return Err(io_error("pidfd_open for a pid of", procs, e)),
            }
        }
        let still = read_pids(procs)?.unwrap_or_default();
        for (pid, fd) in pinned {
            if !still.contains(&pid) {
                continue;
            }
            let sent = match &fd {
                Some(fd) => pidfd_kill(fd),
                // SAFETY: kill(2) takes no pointers; the pid was just listed in the cgroup.
                None => match unsafe { libc::kill(pid, libc::SIGKILL) } {
                    0 => Ok(()),
                    _ => Err(io::Error::last_os_error()),
                },
            };
            match sent {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(io_error("SIGKILL a process of", procs, e)),
            }
        }
        if Instant::now() >= deadline {
            return Err(io_error(
                "kill every process of",
                procs,
                io::Error::from_raw_os_error(libc::EBUSY),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The pids in a `cgroup.procs` file; `None` when the file does not exist.
fn read_pids(procs: &Path) -> Result<Option<Vec<i32>>, CgroupError> {
    let content = match std::fs::read_to_string(procs) {
        Ok(content) => content,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", procs, e)),
    };
    parse_pids(procs, &content).map(Some)
}

/// The pids of a `cgroup.procs` file's `content` (`procs` names it in errors).
fn parse_pids(procs: &Path, content: &str) -> Result<Vec<i32>, CgroupError> {
    content
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim().parse().map_err(|_| CgroupError::Parse {
                path: procs.to_path_buf(),
                content: content.to_string(),
            })
        })
        .collect()
}

/// pidfd_open(2): a descriptor that keeps naming process `pid` even after the pid is reused.
fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // The kernel returns an int-sized descriptor; `syscall` widens it to a long.
    #[allow(clippy::cast_possible_truncation)]
    let fd = fd as libc::c_int;
    // SAFETY: `fd` is a new descriptor the kernel just returned and nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// pidfd_send_signal(2) of SIGKILL.
fn pidfd_kill(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: `fd` is an open pidfd; a null siginfo is allowed and means "as kill(2)".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::process::ExitStatusExt;

    /// A v1-shaped tree: one directory per controller, each a "hierarchy" (has cgroup.procs).
    fn v1_tree(root: &Path, controllers: &[&str]) {
        for c in controllers {
            fs::create_dir_all(root.join(c)).unwrap();
            fs::write(root.join(c).join("cgroup.procs"), "").unwrap();
        }
    }

    #[test]
    fn probe_picks_v1_beside_an_empty_unified_hierarchy() {
        // The shape of the build machines: v1 controllers plus /sys/fs/cgroup/unified
        // holding only hugetlb.
        let root = tempfile::tempdir().unwrap();
        v1_tree(
            root.path(),
            &["memory", "pids", "cpu", "cpuacct", "freezer"],
        );
        fs::create_dir(root.path().join("unified")).unwrap();
        fs::write(root.path().join("unified/cgroup.controllers"), "hugetlb\n").unwrap();
        let backend = probe_at(root.path(), "warmbox").unwrap();
        assert_eq!(backend.version(), CgroupVersion::V1);
        assert_eq!(
            backend.controllers(),
            ["memory", "pids", "cpu", "cpuacct"].map(String::from)
        );
        for c in ["memory", "pids", "cpu", "cpuacct"] {
            assert!(root.path().join(c).join("warmbox").is_dir(), "{c}");
        }
        assert!(!root.path().join("unified/warmbox").exists());
        assert!(!root.path().join("freezer/warmbox").exists());
    }

    #[test]
    fn probe_picks_v2_when_the_root_is_unified_with_every_controller() {
        let root = tempfile::tempdir().unwrap();
        fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .unwrap();
        let backend = probe_at(root.path(), "warmbox").unwrap();
        assert_eq!(backend.version(), CgroupVersion::V2);
        assert_eq!(
            backend.controllers(),
            ["memory", "pids", "cpu"].map(String::from)
        );
        assert!(root.path().join("warmbox").is_dir());
    }

    #[test]
    fn probe_accepts_co_mounted_cpu_and_cpuacct() {
        let root = tempfile::tempdir().unwrap();
        v1_tree(root.path(), &["memory", "pids", "cpu,cpuacct"]);
        let backend = probe_at(root.path(), "warmbox").unwrap();
        assert_eq!(backend.version(), CgroupVersion::V1);
        assert!(root.path().join("cpu,cpuacct/warmbox").is_dir());
    }

    #[test]
    fn probe_names_what_is_missing() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        // An empty mount point is not a hierarchy.
        fs::create_dir(root.path().join("pids")).unwrap();
        v1_tree(root.path(), &["memory"]);
        let err = probe_at(root.path(), "warmbox").unwrap_err();
        let CgroupError::Unsupported(message) = &err else {
            panic!("{err}");
        };
        let r = root.path().display();
        assert_eq!(
            message,
            &format!(
                "cgroup v2 at {r} lacks controllers pids; \
                 cgroup v1 controllers not mounted under {r}: pids, cpu, cpuacct"
            )
        );
        // Nothing was created.
        assert!(!root.path().join("warmbox").exists());
        assert!(!root.path().join("memory/warmbox").exists());
    }

    #[test]
    fn probe_of_an_empty_directory_is_unsupported() {
        let root = tempfile::tempdir().unwrap();
        let err = probe_at(root.path(), "warmbox").unwrap_err();
        let r = root.path().display();
        assert_eq!(
            err.to_string(),
            format!(
                "cgroups unusable: no cgroup v2 hierarchy at {r}; \
                 cgroup v1 controllers not mounted under {r}: memory, pids, cpu, cpuacct"
            )
        );
    }

    #[test]
    fn names_must_be_one_plain_component() {
        let parent = Path::new("/sys/fs/cgroup/warmbox");
        for bad in ["", ".", "..", "../x", "a/b", "/abs", "a/", "a\0b"] {
            let err = check_name(bad, parent).unwrap_err();
            assert!(
                matches!(&err, CgroupError::Io { op: "create cgroup", source, .. }
                    if source.kind() == io::ErrorKind::InvalidInput),
                "{bad:?}: {err}"
            );
        }
        for good in ["c0", "3f2a-run", "a.b", "..x"] {
            check_name(good, parent).unwrap();
        }
        for bad in ["", "/", "//warmbox", "../warmbox", "/a/../b", "./a", "a\0b"] {
            check_parent(bad, Path::new("/sys/fs/cgroup")).unwrap_err();
        }
        for good in [
            "warmbox/test",
            "/warmbox",
            "/system.slice/warmbox.service/jobs",
        ] {
            check_parent(good, Path::new("/sys/fs/cgroup")).unwrap();
        }
    }

    #[test]
    fn keyed_values_are_found_by_exact_key() {
        let path = Path::new("memory.events");
        let events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 1\n";
        assert_eq!(parse_keyed(path, events, "oom_kill").unwrap(), 2);
        assert_eq!(parse_keyed(path, events, "oom").unwrap(), 3);
        let err = parse_keyed(path, events, "usage_usec").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("parse memory.events: unexpected content {events:?}")
        );
        assert_eq!(
            parse_u64(path, "12x").unwrap_err().to_string(),
            "parse memory.events: unexpected content \"12x\""
        );
        assert_eq!(parse_u64(path, "12\n").unwrap(), 12);
    }

    #[test]
    fn quota_is_cores_times_period_and_at_least_one_ms() {
        let p = Path::new("cpu.max");
        assert_eq!(cpu_quota_us(1.0, 100_000, p).unwrap(), 100_000);
        assert_eq!(cpu_quota_us(2.5, 100_000, p).unwrap(), 250_000);
        assert_eq!(cpu_quota_us(0.001, 100_000, p).unwrap(), 1000);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            cpu_quota_us(bad, 100_000, p).unwrap_err();
        }
    }

    #[test]
    fn removing_a_cgroup_dir_is_idempotent_and_takes_nested_ones() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("c0");
        fs::create_dir_all(dir.join("nested/deeper")).unwrap();
        fs::write(dir.join("memory.max"), "1").unwrap();
        fs::write(dir.join("nested/pids.max"), "1").unwrap();
        remove_cgroup_dir(&dir).unwrap();
        assert!(!dir.exists());
        remove_cgroup_dir(&dir).unwrap();
        assert!(root.path().exists());
    }

    #[test]
    fn missing_file_write_is_reported_as_not_found() {
        let root = tempfile::tempdir().unwrap();
        let mut missing = vec![root.path().join("no/such/file")];
        // On cgroupfs, opening a missing name with O_CREAT fails with EACCES (no side
        // effect), which write_file reports as NotFound.
        for hierarchy in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"] {
            if Path::new(hierarchy).join("cgroup.procs").exists() {
                missing.push(Path::new(hierarchy).join("warmbox-no-such-control-file"));
                break;
            }
        }
        for path in missing {
            let err = write_file(&path, "1").unwrap_err();
            assert!(
                matches!(&err, CgroupError::Io { op: "write", source, .. }
                    if source.kind() == io::ErrorKind::NotFound),
                "{err}"
            );
        }
    }

    #[test]
    fn kill_listed_with_no_or_empty_procs_is_done() {
        let root = tempfile::tempdir().unwrap();
        kill_listed(&root.path().join("cgroup.procs")).unwrap();
        fs::write(root.path().join("cgroup.procs"), "\n").unwrap();
        kill_listed(&root.path().join("cgroup.procs")).unwrap();
        fs::write(root.path().join("cgroup.procs"), "12x\n").unwrap();
        assert!(matches!(
            kill_listed(&root.path().join("cgroup.procs")),
            Err(CgroupError::Parse { .. })
        ));
    }

    #[test]
    fn kill_listed_kills_listed_processes_and_gives_up_when_the_list_stays() {
        // A plain file never empties, so after the kill the loop runs out its time budget;
        // the child (our own) must have been SIGKILLed all the same.
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let root = tempfile::tempdir().unwrap();
        let procs = root.path().join("cgroup.procs");
        fs::write(&procs, format!("{}\n", child.id())).unwrap();
        let started = Instant::now();
        let err = kill_listed(&procs).unwrap_err();
        assert!(started.elapsed() >= KILL_TIMEOUT);
        assert!(
            matches!(&err, CgroupError::Io { op: "kill every process of", source, .. }
                if source.raw_os_error() == Some(libc::EBUSY)),
            "{err}"
        );
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
