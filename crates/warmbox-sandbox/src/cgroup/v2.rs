//! cgroup v2 backend: the unified hierarchy, a container's cgroup at `<root>/<parent>/<name>`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::{
    check_name, check_parent, child_names, cpu_quota_us, io_error, kill_listed, open_read,
    parent_path, parse_keyed, parse_pids, pread_all, pread_text, pread_u64, read_file,
    read_optional_u64, read_u64, remove_cgroup_dir, write_file, Cgroup, CgroupBackend, CgroupError,
    CgroupLimits, CgroupUsage, CgroupVersion, PeakSupport, CPU_PERIOD_US, V2_CONTROLLERS,
};

/// The unified hierarchy under a mount root (normally `/sys/fs/cgroup`), with warmbox's parent.
#[derive(Debug)]
pub struct V2Backend {
    /// warmbox's parent cgroup.
    parent_dir: PathBuf,
    /// The kernel accounts swap (`memory.swap.max` exists), so swap can be set to zero.
    swap: bool,
    /// Levels of the parent path made here.
    created: usize,
    /// Where the parent was put, and why.
    placement: Placement,
    /// The hierarchy's mount root the placement is relative to.
    mount_root: PathBuf,
}

/// The leaf that warmbox's own processes move into when the cgroup they were started in
/// becomes a parent of cgroups with controllers ("no internal processes").
pub const DAEMON_LEAF: &str = "daemon";

/// Who gave warmbox the cgroup its parent is made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// The hierarchy's real root: a host whose cgroups are warmbox's to make (no
    /// delegation; warmbox was started in the root or in a cgroup not delegated to it).
    Root,
    /// The root of warmbox's cgroup namespace, which is not the real root: a container
    /// or pod, whose own cgroup it is.
    Namespace,
    /// The cgroup warmbox was started in, delegated to it by systemd (`Delegate=yes`
    /// marks it with the `trusted.delegate` or `user.delegate` extended attribute).
    Systemd,
    /// The setting: a parent with `/` first, from the hierarchy's root as written.
    Setting,
}

/// Where warmbox's parent goes in the unified hierarchy ([`place`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Who gave the cgroup the parent is made in.
    pub given: Given,
    /// The parent, relative to the mount root.
    pub parent: PathBuf,
    /// The first level whose controllers warmbox may enable, relative to the mount root
    /// (empty: the root): nothing above it is ever written.
    pub base: PathBuf,
    /// The cgroup (relative to the mount root) whose processes, warmbox among them, must
    /// move into its leaf [`DAEMON_LEAF`] before controllers are enabled in it.
    pub leave: Option<PathBuf>,
}

impl Placement {
    /// One line for `warmbox check` and the log.
    pub fn describe(&self, mount_root: &Path) -> String {
        let given = match self.given {
            Given::Root => "the hierarchy's root (not delegated)",
            Given::Namespace => "the container's own cgroup (cgroup namespace root)",
            Given::Systemd => "the cgroup systemd delegated (Delegate=yes)",
            Given::Setting => "the setting (a parent with `/` first)",
        };
        let mut s = format!(
            "parent {} under {given}",
            mount_root.join(&self.parent).display()
        );
        if let Some(leave) = &self.leave {
            s.push_str(&format!(
                "; warmbox's processes in {}",
                mount_root.join(leave).join(DAEMON_LEAF).display()
            ));
        }
        s
    }
}

/// The cgroup this process is in, from `/proc/self/cgroup` (`0::/path`), relative to its
/// cgroup namespace's root (empty: the root).
pub fn own_cgroup() -> Result<PathBuf, CgroupError> {
    let path = Path::new("/proc/self/cgroup");
    let text = read_file(path)?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| PathBuf::from(p.trim_start_matches('/')))
        .ok_or_else(|| CgroupError::Parse {
            path: path.to_path_buf(),
            content: text.clone(),
        })
}

/// Whether `dir` is the hierarchy's real root: only there has a cgroup no `cgroup.type`.
fn is_real_root(dir: &Path) -> bool {
    dir.join("cgroup.controllers").exists() && !dir.join("cgroup.type").exists()
}

/// Whether systemd delegated `dir` (`Delegate=yes`): systemd 251+ sets the extended
/// attribute `trusted.delegate` (or `user.delegate`) to `1` on it.
fn delegated_by_systemd(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    ["trusted.delegate", "user.delegate"].iter().any(|name| {
        let c_name = std::ffi::CString::new(*name).expect("no NUL in an attribute name");
        let mut value = [0u8; 8];
        // SAFETY: both names are NUL-terminated C strings alive for the call; the kernel
        // writes at most value.len() bytes into `value`.
        let n = unsafe {
            libc::getxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        n == 1 && value[0] == b'1'
    })
}

/// Where warmbox's parent `parent` goes under `mount_root`, for a process in the cgroup
/// `own` (relative to the mount root, which is its cgroup namespace's root):
/// - `parent` with `/` first: there, as written ([`Given::Setting`]);
/// - a relative `parent` goes under the cgroup warmbox was given: its own when that is
///   its namespace's root but not the real root (a container, [`Given::Namespace`]) or
///   was delegated by systemd ([`Given::Systemd`]); else the real root ([`Given::Root`]).
///
/// When warmbox's own cgroup is to hold the parent (is it or an ancestor of it) and is not
/// the real root, its processes must leave it for [`DAEMON_LEAF`] first.
pub fn place(mount_root: &Path, parent: &str, own: &Path) -> Result<Placement, CgroupError> {
    check_parent(parent, mount_root)?;
    // Already in the leaf of a cgroup it was given (a second probe of the same process, a
    // tool started there): that cgroup is the one it was given.
    let own = match own.parent() {
        Some(given)
            if own.file_name() == Some(DAEMON_LEAF.as_ref())
                && if given.as_os_str().is_empty() {
                    !is_real_root(mount_root)
                } else {
                    delegated_by_systemd(&mount_root.join(given))
                } =>
        {
            given
        }
        _ => own,
    };
    let (given, base) = if parent.starts_with('/') {
        (Given::Setting, PathBuf::new())
    } else if own.as_os_str().is_empty() {
        if is_real_root(mount_root) {
            (Given::Root, PathBuf::new())
        } else {
            (Given::Namespace, PathBuf::new())
        }
    } else if delegated_by_systemd(&mount_root.join(own)) {
        (Given::Systemd, own.to_path_buf())
    } else {
        (Given::Root, PathBuf::new())
    };
    let parent = base.join(parent_path(parent));
    let own_holds_parent = parent.starts_with(own) && !is_real_root(&mount_root.join(own));
    let leave = own_holds_parent.then(|| own.to_path_buf());
    if let Some(leave) = &leave {
        if parent.starts_with(leave.join(DAEMON_LEAF)) {
            return Err(CgroupError::Unsupported(format!(
                "cgroup parent {}: {} is where warmbox's own processes go; choose another name",
                mount_root.join(&parent).display(),
                mount_root.join(leave).join(DAEMON_LEAF).display()
            )));
        }
    }
    Ok(Placement {
        given,
        parent,
        base,
        leave,
    })
}

/// Moves every process of the cgroup `dir` (this one among them) into its leaf
/// [`DAEMON_LEAF`], so that `dir` may enable controllers for its children.
fn leave_for_leaf(dir: &Path) -> Result<(), CgroupError> {
    let leaf = dir.join(DAEMON_LEAF);
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error("mkdir", &leaf, e)),
    }
    let target = leaf.join("cgroup.procs");
    let mut pids = vec![std::process::id().to_string()];
    // Processes forked meanwhile appear in the list again: a few rounds empty it.
    for _ in 0..16 {
        for pid in &pids {
            match write_file(&target, pid) {
                Ok(()) => {}
                // Gone meanwhile.
                Err(CgroupError::Io { source, .. })
                    if source.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => {
                    return Err(CgroupError::Unsupported(format!(
                        "moving process {pid} out of {} into {}: {e}",
                        dir.display(),
                        leaf.display()
                    )))
                }
            }
        }
        pids = read_file(&dir.join("cgroup.procs"))?
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if pids.is_empty() {
            return Ok(());
        }
    }
    Err(CgroupError::Unsupported(format!(
        "{} keeps getting new processes; warmbox cannot move them all into {}",
        dir.display(),
        leaf.display()
    )))
}

/// Fails, naming what is missing and how to get it, unless `dir` has memory, pids and cpu.
fn require_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = read_file(&dir.join("cgroup.controllers"))?;
    let missing: Vec<&str> = V2_CONTROLLERS
        .into_iter()
        .filter(|c| !available.split_whitespace().any(|a| a == *c))
        .collect();
    if !missing.is_empty() {
        return Err(CgroupError::Unsupported(format!(
            "the cgroup {} lacks the {} controller{} (it has: {}): its parent must enable \
             {} for it — with systemd `Delegate=yes` (or `Delegate=memory pids cpu`) in \
             the unit, in a container a runtime that delegates them (a private cgroup \
             namespace with /sys/fs/cgroup writable)",
            dir.display(),
            missing.join(", "),
            if missing.len() > 1 { "s" } else { "" },
            available.trim(),
            if missing.len() > 1 { "them" } else { "it" },
        )));
    }
    Ok(())
}

/// Enables memory, pids and cpu for the children of `dir`, writing only those not yet
/// enabled (nothing at all when all are); a refused write is explained. Whether `dir` has
/// them is [`require_controllers`]'s (below the placement's base, each level has what its
/// parent enabled).
fn enable_controllers(dir: &Path, is_root: bool) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    let enabled = match std::fs::read_to_string(&path) {
        Ok(enabled) => enabled,
        // A level just made on a fake cgroupfs (tests) has no files: nothing enabled.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_error("read", &path, e)),
    };
    let to_enable: Vec<String> = V2_CONTROLLERS
        .into_iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if to_enable.is_empty() {
        return Ok(());
    }
    match write_file(&path, &to_enable.join(" ")) {
        Err(CgroupError::Io { source, .. })
            if !is_root && source.raw_os_error() == Some(libc::EBUSY) =>
        {
            Err(CgroupError::Unsupported(format!(
                "enabling controllers in {} failed (EBUSY): it holds processes, and cgroup v2 \
                 lets a cgroup below the root either hold processes or enable controllers \
                 for its children, not both; move its processes into a child cgroup first, \
                 or give the cgroup parent a delegated subtree of its own",
                path.display()
            )))
        }
        Err(CgroupError::Io { source, .. })
            if matches!(
                source.raw_os_error(),
                Some(libc::EACCES | libc::EPERM | libc::EROFS)
            ) =>
        {
            Err(CgroupError::Unsupported(format!(
                "enabling controllers in {}: {source}: warmbox may not write there; give it \
                 a cgroup of its own (systemd `Delegate=yes`; a container with its own \
                 cgroup namespace and /sys/fs/cgroup mounted writable) or a cgroup parent \
                 (with `/` first) inside one",
                path.display()
            )))
        }
        other => other,
    }
}

impl V2Backend {
    /// Places warmbox's parent `parent` with [`place`] for this process's own cgroup,
    /// moves warmbox's processes into their leaf where needed, enables memory, pids and
    /// cpu from the placement's base down to the parent and creates the parent's
    /// directories if missing. Nothing above the base is written.
    pub fn new(mount_root: &Path, parent: &str) -> Result<Self, CgroupError> {
        Self::placed(mount_root, place(mount_root, parent, &own_cgroup()?)?)
    }

    /// [`V2Backend::new`] for a placement already made.
    pub fn placed(mount_root: &Path, placement: Placement) -> Result<Self, CgroupError> {
        let mut dir = mount_root.join(&placement.base);
        // Checked before anything moves or is made.
        require_controllers(&dir)?;
        if let Some(leave) = &placement.leave {
            leave_for_leaf(&mount_root.join(leave))?;
        }
        enable_controllers(&dir, is_real_root(&dir))?;
        let mut created = 0;
        let below = placement
            .parent
            .strip_prefix(&placement.base)
            .expect("the parent is under the base");
        for component in below.components() {
            dir.push(component);
            match std::fs::create_dir(&dir) {
                Ok(()) => created += 1,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => created = 0,
                Err(e) => return Err(io_error("mkdir", &dir, e)),
            }
            enable_controllers(&dir, false)?;
        }
        let swap = dir.join("memory.swap.max").exists();
        if !swap {
            tracing::warn!(
                "no swap accounting in the v2 memory controller (memory.swap.max missing): \
                 swap cannot be turned off per cgroup"
            );
        }
        Ok(V2Backend {
            parent_dir: dir,
            swap,
            created,
            placement,
            mount_root: mount_root.to_path_buf(),
        })
    }

    /// Where the parent was put, and why.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Creates the cgroup `name` with `limits`.
    fn create_v2(&self, name: &str, limits: &CgroupLimits) -> Result<V2Cgroup, CgroupError> {
        check_name(name, &self.parent_dir)?;
        let dir = self.parent_dir.join(name);
        std::fs::create_dir(&dir).map_err(|e| io_error("mkdir", &dir, e))?;
        // std opens with O_CLOEXEC always; O_DIRECTORY as clone3(CLONE_INTO_CGROUP) wants it.
        let dir_fd = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&dir)
        {
            Ok(fd) => fd,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(io_error("open", &dir, e));
            }
        };
        let cgroup = V2Cgroup {
            name: name.to_string(),
            dir,
            dir_fd,
            swap: self.swap,
            cpu_stat: OnceLock::new(),
            peak: Mutex::new(None),
            checks: OnceLock::new(),
            leaf: Mutex::new(None),
            leaves: std::sync::atomic::AtomicU64::new(0),
        };
        if let Err(e) = cgroup.apply_limits(limits, true) {
            if let Err(cleanup) = cgroup.destroy() {
                tracing::warn!(error = %cleanup, "removing half-made cgroup");
            }
            return Err(e);
        }
        Ok(cgroup)
    }
}

impl CgroupBackend for V2Backend {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn controllers(&self) -> Vec<String> {
        V2_CONTROLLERS.iter().map(|c| c.to_string()).collect()
    }

    fn create(&self, name: &str, limits: &CgroupLimits) -> Result<Box<dyn Cgroup>, CgroupError> {
        Ok(Box::new(self.create_v2(name, limits)?))
    }

    fn remove_stale(&self) -> Result<usize, CgroupError> {
        let mut first_error = None;
        let mut removed = 0;
        for name in self.list()? {
            let dir = self.parent_dir.join(&name);
            match kill_dir(&dir).and_then(|()| remove_cgroup_dir(&dir)) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(cgroup = %name, error = %e, "removing stale cgroup");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    fn describe_parent(&self) -> String {
        self.placement.describe(&self.mount_root)
    }

    fn created_levels(&self) -> usize {
        self.created
    }

    fn remove_levels(&self, levels: usize) -> Result<(), CgroupError> {
        super::remove_dir_levels(&self.parent_dir, levels)
    }

    fn list(&self) -> Result<Vec<String>, CgroupError> {
        child_names(&self.parent_dir)
    }
}

/// SIGKILLs every process of the cgroup `dir` with `cgroup.kill`, or before Linux 5.14
/// (no `cgroup.kill`) by killing what `cgroup.procs` lists.
fn kill_dir(dir: &Path) -> Result<(), CgroupError> {
    match write_file(&dir.join("cgroup.kill"), "1") {
        Err(CgroupError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            kill_listed(&dir.join("cgroup.procs"))
        }
        other => other,
    }
}

/// One container's cgroup in the unified hierarchy.
#[derive(Debug)]
pub struct V2Cgroup {
    name: String,
    dir: PathBuf,
    /// The cgroup directory, opened at creation for `clone3(CLONE_INTO_CGROUP)`.
    dir_fd: File,
    swap: bool,
    /// `cpu.stat`, opened on the first `cpu_ns` and re-read with pread after that.
    cpu_stat: OnceLock<File>,
    /// `memory.peak` as written by `reset_peaks`: since Linux 6.12 a write resets the peak
    /// seen through that open file only, so the peak must be read through the same fd.
    peak: Mutex<Option<File>>,
    /// `cgroup.procs` and `memory.current`, opened on first use: the checks between two
    /// runs read them.
    checks: OnceLock<(File, File)>,
    /// The child cgroup the container's processes are in, once a run made the pids peak
    /// rise (see `fresh_pids_peak`): its `pids.peak` is the one read.
    leaf: Mutex<Option<PathBuf>>,
    /// Leaves made so far (their names).
    leaves: std::sync::atomic::AtomicU64,
}

impl V2Cgroup {
    /// Writes `limits`; on a `fresh` cgroup the writes of kernel defaults are skipped.
    fn apply_limits(&self, limits: &CgroupLimits, fresh: bool) -> Result<(), CgroupError> {
        write_file(
            &self.dir.join("memory.max"),
            &limits.memory_bytes.to_string(),
        )?;
        if fresh && self.swap {
            write_file(&self.dir.join("memory.swap.max"), "0")?;
        }
        write_file(&self.dir.join("pids.max"), &limits.pids.to_string())?;
        let cpu_max = self.dir.join("cpu.max");
        match limits.cpu_cores {
            Some(cores) => {
                let quota = cpu_quota_us(cores, CPU_PERIOD_US, &cpu_max)?;
                write_file(&cpu_max, &format!("{quota} {CPU_PERIOD_US}"))?;
            }
            // A fresh cgroup already has no quota.
            None if fresh => {}
            None => write_file(&cpu_max, &format!("max {CPU_PERIOD_US}"))?,
        }
        Ok(())
    }

    /// `cpu.stat`, opened once.
    fn cpu_stat_file(&self) -> Result<&File, CgroupError> {
        if let Some(file) = self.cpu_stat.get() {
            return Ok(file);
        }
        let file = open_read(&self.dir.join("cpu.stat"))?;
        Ok(self.cpu_stat.get_or_init(|| file))
    }

    /// Reads `cpu.stat` and returns the values of `keys`, microseconds.
    fn cpu_stat<const N: usize>(&self, keys: [&str; N]) -> Result<[u64; N], CgroupError> {
        let file = self.cpu_stat_file()?;
        let path = self.dir.join("cpu.stat");
        let mut buf = [0u8; 2048];
        let text = pread_text(file, &path, &mut buf)?;
        let mut values = [0; N];
        for (value, key) in values.iter_mut().zip(keys) {
            *value = parse_keyed(&path, text, key)?;
        }
        Ok(values)
    }

    /// The memory peak, through the fd of the last reset if there was one. Before Linux
    /// 5.19 there is no `memory.peak`: the usage now (`memory.current`) is the best left.
    fn memory_peak(&self) -> Result<u64, CgroupError> {
        let path = self.dir.join("memory.peak");
        let slot = self.peak.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(file) => pread_u64(file, &path),
            None => match read_optional_u64(&path)? {
                Some(peak) => Ok(peak),
                None => read_u64(&self.dir.join("memory.current")),
            },
        }
    }
}

impl V2Cgroup {
    fn leaf(&self) -> std::sync::MutexGuard<'_, Option<PathBuf>> {
        self.leaf.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn checks(&self) -> Result<&(File, File), CgroupError> {
        if let Some(files) = self.checks.get() {
            return Ok(files);
        }
        let files = (
            open_read(&self.dir.join("cgroup.procs"))?,
            open_read(&self.dir.join("memory.current"))?,
        );
        Ok(self.checks.get_or_init(|| files))
    }
}

impl Cgroup for V2Cgroup {
    fn name(&self) -> &str {
        &self.name
    }

    fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.dir_fd.as_fd())
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        write_file(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    fn set_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        self.apply_limits(limits, false)
    }

    fn reset_peaks(&self) -> Result<(), CgroupError> {
        let path = self.dir.join("memory.peak");
        let mut slot = self.peak.lock().unwrap_or_else(PoisonError::into_inner);
        let file = match slot.take() {
            Some(file) => Ok(file),
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path),
        };
        // Any non-empty write resets; before 6.12 memory.peak is read-only (the open fails
        // with EACCES) and the peak keeps the setup's usage: best effort, as documented.
        match file.and_then(|mut f| f.write_all(b"0\n").map(|()| f)) {
            Ok(file) => *slot = Some(file),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "memory.peak cannot be reset")
            }
        }
        Ok(())
    }

    fn cpu_ns(&self) -> Result<u64, CgroupError> {
        let [usage] = self.cpu_stat(["usage_usec"])?;
        Ok(usage.saturating_mul(1000))
    }

    fn usage(&self) -> Result<CgroupUsage, CgroupError> {
        let [usage, user, system] = self.cpu_stat(["usage_usec", "user_usec", "system_usec"])?;
        let events = self.dir.join("memory.events");
        Ok(CgroupUsage {
            cpu_ns: usage.saturating_mul(1000),
            user_ns: user.saturating_mul(1000),
            sys_ns: system.saturating_mul(1000),
            memory_peak_bytes: self.memory_peak()?,
            oom_kills: parse_keyed(&events, &read_file(&events)?, "oom_kill")?,
            pids_peak: read_optional_u64(
                &self
                    .leaf()
                    .as_deref()
                    .unwrap_or(&self.dir)
                    .join("pids.peak"),
            )?,
        })
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        kill_dir(&self.dir)
    }

    fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        let path = self.dir.join("cgroup.procs");
        let mut procs = parse_pids(&path, &pread_all(&self.checks()?.0, &path)?)?;
        if let Some(leaf) = &*self.leaf() {
            let path = leaf.join("cgroup.procs");
            procs.extend(parse_pids(&path, &read_file(&path)?)?);
        }
        Ok(procs)
    }

    /// v2 enables the pids controller for the container cgroup's children (a threaded
    /// controller: allowed beside the init) and moves the init into a new child: a new
    /// cgroup's peak starts at what is in it. `cgroup.kill`, the limits and the other
    /// counters stay the container cgroup's, which count its child.
    fn fresh_pids_peak(&self, init: i32) -> Result<bool, CgroupError> {
        if !self.dir.join("pids.peak").exists() {
            // No peak counter: nothing carries over.
            return Ok(true);
        }
        let n = self
            .leaves
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n == 0 {
            write_file(&self.dir.join("cgroup.subtree_control"), "+pids")?;
        }
        let dir = self.dir.join(format!("run-{n}"));
        std::fs::create_dir(&dir).map_err(|e| io_error("mkdir", &dir, e))?;
        write_file(&dir.join("cgroup.procs"), &init.to_string())?;
        let old = self.leaf().replace(dir);
        if let Some(old) = old {
            remove_cgroup_dir(&old)?;
        }
        Ok(true)
    }

    fn memory_bytes(&self) -> Result<u64, CgroupError> {
        pread_u64(&self.checks()?.1, &self.dir.join("memory.current"))
    }

    fn release_kernel_caches(&self) -> Result<bool, CgroupError> {
        let stat_path = self.dir.join("memory.stat");
        let slab = parse_keyed(&stat_path, &read_file(&stat_path)?, "slab_reclaimable")?;
        if slab <= super::KERNEL_CACHE_BYTES {
            return Ok(false);
        }
        let current = read_u64(&self.dir.join("memory.current"))?;
        // The kernel answers EAGAIN when it reclaimed less than asked (what is left is not
        // reclaimable): done all the same.
        match write_file(&self.dir.join("memory.reclaim"), &current.to_string()) {
            Err(CgroupError::Io { source, .. }) if source.raw_os_error() == Some(libc::EAGAIN) => {}
            other => other?,
        }
        Ok(true)
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        remove_cgroup_dir(&self.dir)
    }

    fn peak_support(&self) -> PeakSupport {
        let peak = std::fs::metadata(self.dir.join("memory.peak")).ok();
        PeakSupport {
            memory_peak: peak.is_some(),
            // cgroupfs gives a control file its owner's write bit exactly when the file has
            // a write handler (`cgroup_file_mode`): memory.peak has one since Linux 6.12,
            // before it is 0444 and an open for writing fails with EACCES, even for root.
            memory_peak_reset: peak.is_some_and(|m| m.permissions().mode() & 0o200 != 0),
            pids_peak: self.dir.join("pids.peak").exists(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use tempfile::TempDir;

    const MIB: u64 = 1 << 20;

    /// The backend for a process in the root of the fake tree `root`.
    fn backend_at(root: &Path, parent: &str) -> Result<V2Backend, CgroupError> {
        V2Backend::placed(root, place(root, parent, Path::new(""))?)
    }

    /// Marks `dir` delegated the way systemd's `Delegate=yes` does.
    fn mark_delegated(dir: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated strings and a one-byte value, all alive for the call.
        let r = unsafe {
            libc::setxattr(
                path.as_ptr(),
                c"trusted.delegate".as_ptr(),
                b"1".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
    }

    /// A non-root cgroup directory of a fake tree, with the controllers `controllers`.
    fn cgroup_dir(dir: &Path, controllers: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
        fs::write(dir.join("cgroup.type"), "domain\n").unwrap();
        fs::write(dir.join("cgroup.procs"), "").unwrap();
        fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
    }

    #[test]
    fn a_relative_parent_goes_under_the_cgroup_warmbox_was_given() {
        let root = tree(false);
        let r = root.path();
        // A process in the real root: the root, as before.
        let p = place(r, "warmbox", Path::new("")).unwrap();
        assert_eq!(
            (p.given, p.parent.clone(), p.base.clone(), p.leave.clone()),
            (Given::Root, "warmbox".into(), "".into(), None)
        );
        // In a cgroup nobody delegated (a login session's scope): still the root.
        cgroup_dir(&r.join("user.slice/session-1.scope"), "memory pids cpu");
        let p = place(r, "warmbox", Path::new("user.slice/session-1.scope")).unwrap();
        assert_eq!(
            (p.given, p.parent, p.leave),
            (Given::Root, "warmbox".into(), None)
        );
        // In a cgroup systemd delegated: inside it, warmbox moved to its leaf.
        let svc = Path::new("system.slice/warmbox.service");
        cgroup_dir(&r.join(svc), "memory pids cpu");
        mark_delegated(&r.join(svc));
        let p = place(r, "warmbox", svc).unwrap();
        assert_eq!(
            (p.given, p.parent.clone(), p.base.clone(), p.leave.clone()),
            (
                Given::Systemd,
                svc.join("warmbox"),
                svc.to_path_buf(),
                Some(svc.to_path_buf())
            )
        );
        assert_eq!(
            p.describe(r),
            format!(
                "parent {}/system.slice/warmbox.service/warmbox under the cgroup systemd \
                 delegated (Delegate=yes); warmbox's processes in \
                 {}/system.slice/warmbox.service/daemon",
                r.display(),
                r.display()
            )
        );
    }

    #[test]
    fn from_its_leaf_warmbox_still_finds_the_cgroup_it_was_given() {
        let root = tree(false);
        let r = root.path();
        let svc = Path::new("system.slice/warmbox.service");
        cgroup_dir(&r.join(svc).join(DAEMON_LEAF), "memory pids cpu");
        mark_delegated(&r.join(svc));
        let p = place(r, "warmbox", &svc.join(DAEMON_LEAF)).unwrap();
        assert_eq!(
            (p.given, p.parent, p.leave),
            (Given::Systemd, svc.join("warmbox"), Some(svc.to_path_buf()))
        );
        // A cgroup named `daemon` that nobody delegated is just a cgroup.
        let other = Path::new("user.slice/daemon");
        cgroup_dir(&r.join(other), "memory pids cpu");
        let p = place(r, "warmbox", other).unwrap();
        assert_eq!(
            (p.given, p.parent, p.leave),
            (Given::Root, "warmbox".into(), None)
        );
        // In a container, from the leaf of its namespace root.
        let ctr = tempfile::tempdir().unwrap();
        cgroup_dir(ctr.path(), "memory pids cpu");
        let p = place(ctr.path(), "warmbox", Path::new(DAEMON_LEAF)).unwrap();
        assert_eq!(
            (p.given, p.parent, p.leave),
            (Given::Namespace, "warmbox".into(), Some("".into()))
        );
    }

    #[test]
    fn a_container_places_the_parent_in_its_own_cgroup() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        // The namespace root of a container: a cgroup (it has cgroup.type), not the root.
        cgroup_dir(r, "cpuset cpu io memory pids");
        let p = place(r, "warmbox", Path::new("")).unwrap();
        assert_eq!(
            (p.given, p.parent.clone(), p.leave.clone()),
            (Given::Namespace, "warmbox".into(), Some("".into()))
        );
        let backend = V2Backend::placed(r, p).unwrap();
        // warmbox asked to move into the leaf, and the parent is beside it.
        assert_eq!(
            read(r.join("daemon/cgroup.procs")),
            std::process::id().to_string()
        );
        assert_eq!(read(r.join("cgroup.subtree_control")), "+memory +pids +cpu");
        assert_eq!(backend.parent_dir, r.join("warmbox"));
        assert_eq!(backend.placement().given, Given::Namespace);
    }

    #[test]
    fn a_parent_from_the_root_is_used_as_written() {
        let root = tree(false);
        let r = root.path();
        let svc = Path::new("system.slice/warmbox.service");
        cgroup_dir(&r.join(svc), "memory pids cpu");
        // Inside warmbox's own cgroup: warmbox leaves it.
        let p = place(r, "/system.slice/warmbox.service/jobs", svc).unwrap();
        assert_eq!(
            (p.given, p.parent, p.base, p.leave),
            (
                Given::Setting,
                svc.join("jobs"),
                "".into(),
                Some(svc.to_path_buf())
            )
        );
        // Elsewhere: warmbox stays where it is.
        let p = place(r, "/warmbox", svc).unwrap();
        assert_eq!((p.parent, p.leave), ("warmbox".into(), None));
        // Never the leaf warmbox moves into.
        let err = place(r, "/system.slice/warmbox.service/daemon/x", svc).unwrap_err();
        assert!(
            err.to_string()
                .contains("is where warmbox's own processes go"),
            "{err}"
        );
    }

    #[test]
    fn controllers_already_enabled_are_not_written_again() {
        let root = tree(false);
        let r = root.path();
        let svc = r.join("system.slice/warmbox.service");
        cgroup_dir(&svc, "memory pids cpu");
        fs::write(r.join("cgroup.subtree_control"), "cpu memory pids").unwrap();
        fs::write(
            r.join("system.slice/cgroup.subtree_control"),
            "memory pids cpu io",
        )
        .unwrap();
        // Read-only: a write there would fail the test.
        for f in [
            "cgroup.subtree_control",
            "system.slice/cgroup.subtree_control",
        ] {
            let mut perm = fs::metadata(r.join(f)).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o444);
            fs::set_permissions(r.join(f), perm).unwrap();
        }
        let p = place(
            r,
            "/system.slice/warmbox.service/jobs",
            Path::new("system.slice/warmbox.service"),
        )
        .unwrap();
        let backend = V2Backend::placed(r, p).unwrap();
        assert_eq!(read(r.join("cgroup.subtree_control")), "cpu memory pids");
        assert_eq!(
            read(r.join("system.slice/cgroup.subtree_control")),
            "memory pids cpu io"
        );
        assert_eq!(
            read(svc.join("cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
        assert_eq!(backend.parent_dir, svc.join("jobs"));
    }

    #[test]
    fn a_missing_controller_is_named() {
        let root = tree(false);
        let r = root.path();
        let svc = Path::new("system.slice/warmbox.service");
        cgroup_dir(&r.join(svc), "memory pids");
        mark_delegated(&r.join(svc));
        let err = V2Backend::placed(r, place(r, "warmbox", svc).unwrap()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("warmbox.service lacks the cpu controller (it has: memory pids)")
                && msg.contains("Delegate=yes"),
            "{msg}"
        );
        // Nothing moved, nothing made.
        assert!(!r.join(svc).join("daemon").exists());
        assert!(!r.join(svc).join("warmbox").exists());
        assert_eq!(read(r.join(svc).join("cgroup.subtree_control")), "");
    }

    fn limits(memory_bytes: u64, pids: u64, cpu_cores: Option<f64>) -> CgroupLimits {
        CgroupLimits {
            memory_bytes,
            pids,
            cpu_cores,
        }
    }

    /// A tree shaped like a unified cgroupfs whose `warmbox` parent has swap accounting
    /// when `swap`.
    fn tree(swap: bool) -> TempDir {
        let root = tempfile::tempdir().unwrap();
        fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        if swap {
            fs::create_dir(root.path().join("warmbox")).unwrap();
            fs::write(root.path().join("warmbox/memory.swap.max"), "max\n").unwrap();
        }
        root
    }

    /// The smallest cpu.stat and memory.events `usage` reads.
    fn minimal_stats(dir: &Path) {
        fs::write(
            dir.join("cpu.stat"),
            "usage_usec 1\nuser_usec 1\nsystem_usec 0\n",
        )
        .unwrap();
        fs::write(dir.join("memory.events"), "oom_kill 0\n").unwrap();
    }

    fn read(path: PathBuf) -> String {
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn new_enables_controllers_down_to_the_parent() {
        let root = tree(false);
        backend_at(root.path(), "warmbox/pool").unwrap();
        for dir in ["", "warmbox", "warmbox/pool"] {
            assert_eq!(
                read(root.path().join(dir).join("cgroup.subtree_control")),
                "+memory +pids +cpu",
                "{dir:?}"
            );
        }
    }

    #[test]
    fn kernel_caches_are_reclaimed_only_above_the_bound() {
        let root = tree(false);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("warmbox/c0");
        fs::write(dir.join("memory.current"), "31457280\n").unwrap();
        fs::write(
            dir.join("memory.stat"),
            "anon 0\nslab_reclaimable 1048576\n",
        )
        .unwrap();
        assert!(!cg.release_kernel_caches().unwrap());
        assert!(!dir.join("memory.reclaim").exists());
        fs::write(
            dir.join("memory.stat"),
            "anon 0\nslab_reclaimable 29360128\n",
        )
        .unwrap();
        assert!(cg.release_kernel_caches().unwrap());
        assert_eq!(read(dir.join("memory.reclaim")), "31457280");
    }

    #[test]
    fn created_levels_counts_the_levels_made() {
        let root = tree(false);
        let levels = |parent: &str| backend_at(root.path(), parent).unwrap().created_levels();
        assert_eq!(levels("warmbox"), 1);
        assert_eq!(levels("warmbox"), 0);
        assert_eq!(levels("warmbox/pool"), 1);
        assert_eq!(levels("a/b/c"), 3);
        assert_eq!(levels("a/b/c"), 0);
    }

    #[test]
    fn create_writes_limits_and_opens_the_directory() {
        let root = tree(true);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        let cg = backend
            .create("c0", &limits(256 * MIB, 64, Some(1.0)))
            .unwrap();
        let dir = root.path().join("warmbox/c0");
        assert_eq!(read(dir.join("memory.max")), "268435456");
        assert_eq!(read(dir.join("memory.swap.max")), "0");
        assert_eq!(read(dir.join("pids.max")), "64");
        assert_eq!(read(dir.join("cpu.max")), "100000 100000");
        let fd = cg.clone_into_fd().expect("v2 has a directory fd");
        let fd_meta = File::from(fd.try_clone_to_owned().unwrap())
            .metadata()
            .unwrap();
        let dir_meta = fs::metadata(&dir).unwrap();
        assert!(fd_meta.is_dir());
        assert_eq!(
            (fd_meta.dev(), fd_meta.ino()),
            (dir_meta.dev(), dir_meta.ino())
        );
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    #[test]
    fn create_without_quota_or_swap_accounting_skips_those_files() {
        let root = tree(false);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("warmbox/c0");
        assert_eq!(read(dir.join("memory.max")), "67108864");
        assert!(!dir.join("memory.swap.max").exists());
        assert!(!dir.join("cpu.max").exists());
    }

    #[test]
    fn set_limits_rewrites_everything() {
        let root = tree(true);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        let cg = backend
            .create("c0", &limits(64 * MIB, 8, Some(1.0)))
            .unwrap();
        let dir = root.path().join("warmbox/c0");
        cg.set_limits(&limits(128 * MIB, 16, Some(2.5))).unwrap();
        assert_eq!(read(dir.join("memory.max")), "134217728");
        assert_eq!(read(dir.join("pids.max")), "16");
        assert_eq!(read(dir.join("cpu.max")), "250000 100000");
        cg.set_limits(&limits(128 * MIB, 16, None)).unwrap();
        assert_eq!(read(dir.join("cpu.max")), "max 100000");
        assert_eq!(read(dir.join("memory.swap.max")), "0");
    }

    #[test]
    fn usage_is_parsed_from_the_controller_files() {
        let root = tree(true);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("warmbox/c0");
        fs::write(
            dir.join("cpu.stat"),
            "usage_usec 1500000\nuser_usec 1200000\nsystem_usec 300000\n\
             core_sched.force_idle_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n\
             nr_bursts 0\nburst_usec 0\n",
        )
        .unwrap();
        fs::write(dir.join("memory.peak"), "41943040\n").unwrap();
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 40\noom 2\noom_kill 2\noom_group_kill 0\n",
        )
        .unwrap();
        fs::write(dir.join("pids.peak"), "5\n").unwrap();
        assert_eq!(
            cg.usage().unwrap(),
            CgroupUsage {
                cpu_ns: 1_500_000_000,
                user_ns: 1_200_000_000,
                sys_ns: 300_000_000,
                memory_peak_bytes: 41_943_040,
                oom_kills: 2,
                pids_peak: Some(5),
            }
        );
        fs::remove_file(dir.join("pids.peak")).unwrap();
        assert_eq!(cg.usage().unwrap().pids_peak, None);
        // cpu_ns re-reads the file it keeps open.
        fs::write(dir.join("cpu.stat"), "usage_usec 7\nuser_usec 5\n").unwrap();
        assert_eq!(cg.cpu_ns().unwrap(), 7000);
    }

    #[test]
    fn a_fresh_pids_peak_is_a_child_cgroup_with_the_init_in_it() {
        let root = tree(true);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("warmbox/c0");
        fs::write(dir.join("pids.peak"), "9\n").unwrap();
        fs::write(dir.join("cgroup.procs"), "").unwrap();
        fs::write(dir.join("memory.current"), "0\n").unwrap();
        assert!(cg.fresh_pids_peak(4242).unwrap());
        assert_eq!(
            fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap(),
            "+pids"
        );
        assert_eq!(
            fs::read_to_string(dir.join("run-0/cgroup.procs")).unwrap(),
            "4242"
        );
        // The leaf's peak is the one read, and its processes are the container's.
        fs::write(dir.join("run-0/pids.peak"), "3\n").unwrap();
        minimal_stats(&dir);
        fs::write(dir.join("memory.peak"), "4096\n").unwrap();
        assert_eq!(cg.usage().unwrap().pids_peak, Some(3));
        assert_eq!(cg.procs().unwrap(), [4242]);
        // The next one replaces it.
        assert!(cg.fresh_pids_peak(4242).unwrap());
        assert!(dir.join("run-1").is_dir());
        assert!(!dir.join("run-0").exists());
        // Without a pids.peak there is nothing to carry over: no leaf.
        fs::remove_file(dir.join("pids.peak")).unwrap();
        assert!(cg.fresh_pids_peak(4242).unwrap());
        assert!(!dir.join("run-2").exists());
    }

    #[test]
    fn peak_is_read_through_the_fd_that_reset_it() {
        let root = tree(true);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("warmbox/c0");
        let peak = dir.join("memory.peak");
        fs::write(&peak, "41943040\n").unwrap();
        minimal_stats(&dir);
        cg.reset_peaks().unwrap();
        assert_eq!(read(peak.clone()), "0\n");
        assert_eq!(cg.usage().unwrap().memory_peak_bytes, 0);
        // Replace the file: a fresh open would see the new one, the kept fd the old inode.
        fs::remove_file(&peak).unwrap();
        fs::write(&peak, "999\n").unwrap();
        assert_eq!(cg.usage().unwrap().memory_peak_bytes, 0);
        // A second reset goes through the same fd.
        cg.reset_peaks().unwrap();
        assert_eq!(read(peak), "999\n");
    }

    #[test]
    fn without_memory_peak_the_usage_reports_the_current_usage() {
        // Kernels before 5.19 have no memory.peak (and then no reset either).
        let root = tree(true);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("warmbox/c0");
        minimal_stats(&dir);
        fs::write(dir.join("memory.current"), "1234567\n").unwrap();
        assert!(!dir.join("memory.peak").exists());
        assert_eq!(cg.usage().unwrap().memory_peak_bytes, 1234567);
    }

    #[test]
    fn peak_support_follows_the_files_the_kernel_gives() {
        let root = tree(true);
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("warmbox/c0");
        let peak = dir.join("memory.peak");
        let mode = |m: u32| fs::set_permissions(&peak, fs::Permissions::from_mode(m)).unwrap();
        let support = |memory_peak, memory_peak_reset, pids_peak| PeakSupport {
            memory_peak,
            memory_peak_reset,
            pids_peak,
        };
        // Before 5.19: no memory.peak; no pids.peak either.
        assert_eq!(cg.peak_support(), support(false, false, false));
        // 5.19 to 6.11: a read-only memory.peak (cgroupfs makes it 0444).
        fs::write(&peak, "1\n").unwrap();
        mode(0o444);
        assert_eq!(cg.peak_support(), support(true, false, false));
        // 6.12 on: it has a write handler, so cgroupfs makes it 0644.
        mode(0o644);
        fs::write(dir.join("pids.peak"), "1\n").unwrap();
        assert_eq!(cg.peak_support(), support(true, true, true));
    }

    #[test]
    fn kill_all_writes_cgroup_kill_and_destroy_is_idempotent() {
        let root = tree(true);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("warmbox/c0");
        cg.add_process(4242).unwrap();
        assert_eq!(read(dir.join("cgroup.procs")), "4242");
        cg.kill_all().unwrap();
        assert_eq!(read(dir.join("cgroup.kill")), "1");
        cg.destroy().unwrap();
        assert!(!dir.exists());
        assert!(root.path().join("warmbox").is_dir());
        cg.destroy().unwrap();
    }

    #[test]
    fn list_and_remove_stale_cover_the_parent_only() {
        let root = tree(true);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        backend.create("b", &limits(64 * MIB, 8, None)).unwrap();
        backend.create("a", &limits(64 * MIB, 8, None)).unwrap();
        fs::create_dir(root.path().join("elsewhere")).unwrap();
        assert_eq!(backend.list().unwrap(), ["a", "b"]);
        assert_eq!(backend.remove_stale().unwrap(), 2);
        assert!(backend.list().unwrap().is_empty());
        assert!(root.path().join("elsewhere").is_dir());
        assert!(root.path().join("warmbox/memory.swap.max").is_file());
    }

    #[test]
    fn a_name_in_use_or_outside_the_parent_is_refused() {
        let root = tree(true);
        let backend = backend_at(root.path(), "warmbox").unwrap();
        backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let err = backend
            .create("c0", &limits(32 * MIB, 8, None))
            .unwrap_err();
        assert!(matches!(&err, CgroupError::Io { op: "mkdir", .. }), "{err}");
        assert_eq!(read(root.path().join("warmbox/c0/memory.max")), "67108864");
        for bad in ["..", "../escape", "a/b"] {
            backend.create(bad, &limits(64 * MIB, 8, None)).unwrap_err();
        }
        assert!(!root.path().join("escape").exists());
        assert_eq!(backend.list().unwrap(), ["c0"]);
    }
}
