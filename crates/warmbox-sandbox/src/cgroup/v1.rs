//! cgroup v1 backend: one hierarchy per controller (memory, pids, cpu, cpuacct; cpu and
//! cpuacct possibly co-mounted), a container's cgroup at `<root>/<controller>/<parent>/<name>`.

use std::fs::File;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::{
    check_name, check_parent, child_names, cpu_quota_us, find_v1_controller, io_error, kill_listed,
    open_read, parent_path, parse_keyed, pread_all, pread_u64, read_file, read_optional_u64,
    read_pids, read_u64, remove_cgroup_dir, write_file, Cgroup, CgroupBackend, CgroupError,
    CgroupLimits, CgroupUsage, CgroupVersion, PeakSupport, CPU_PERIOD_US, V1_CONTROLLERS,
};

/// One directory per controller; cpu and cpuacct are the same path when co-mounted.
#[derive(Debug, Clone)]
struct Dirs {
    memory: PathBuf,
    pids: PathBuf,
    cpu: PathBuf,
    cpuacct: PathBuf,
}

impl Dirs {
    /// The same cgroup one level down, `name` in each controller.
    fn join(&self, name: &str) -> Dirs {
        Dirs {
            memory: self.memory.join(name),
            pids: self.pids.join(name),
            cpu: self.cpu.join(name),
            cpuacct: self.cpuacct.join(name),
        }
    }

    /// Each distinct directory once.
    fn unique(&self) -> Vec<&Path> {
        let mut dirs = vec![
            self.memory.as_path(),
            self.pids.as_path(),
            self.cpu.as_path(),
        ];
        if self.cpuacct != self.cpu {
            dirs.push(self.cpuacct.as_path());
        }
        dirs
    }
}

/// The v1 hierarchies under a mount root (normally `/sys/fs/cgroup`), with warmbox's parent.
#[derive(Debug)]
pub struct V1Backend {
    /// warmbox's parent cgroup in each controller.
    parents: Dirs,
    /// The kernel accounts swap (`memory.memsw.*` exist), so swap can be limited to zero.
    memsw: bool,
    /// Levels of the parent path missing (in the controller that missed most) and made
    /// here.
    created: usize,
}

impl V1Backend {
    /// Finds the memory, pids, cpu and cpuacct hierarchies under `mount_root` and creates
    /// warmbox's parent `parent` in each of them if missing: under each hierarchy's root,
    /// whether relative or with a `/` first (v1 has no delegated placement).
    pub fn new(mount_root: &Path, parent: &str) -> Result<Self, CgroupError> {
        check_parent(parent, mount_root)?;
        let mut found = Vec::with_capacity(V1_CONTROLLERS.len());
        let mut missing = Vec::new();
        for controller in V1_CONTROLLERS {
            match find_v1_controller(mount_root, controller) {
                // Resolved, so that `cpu` and `cpuacct` links to one co-mount compare equal.
                Some(dir) => found
                    .push(std::fs::canonicalize(&dir).map_err(|e| io_error("resolve", &dir, e))?),
                None => missing.push(controller),
            }
        }
        let [memory, pids, cpu, cpuacct] = match <[PathBuf; 4]>::try_from(found) {
            Ok(dirs) if missing.is_empty() => dirs,
            _ => {
                return Err(CgroupError::Unsupported(format!(
                    "cgroup v1 controllers not mounted under {}: {}",
                    mount_root.display(),
                    missing.join(", ")
                )))
            }
        };
        let memsw = memory.join("memory.memsw.limit_in_bytes").exists();
        let mounts = Dirs {
            memory,
            pids,
            cpu,
            cpuacct,
        };
        let parents = mounts.join(parent_path(parent));
        let mut created = 0;
        for dir in parents.unique() {
            let missing = dir.ancestors().take_while(|d| !d.exists()).count();
            created = created.max(missing);
            std::fs::create_dir_all(dir).map_err(|e| io_error("mkdir", dir, e))?;
        }
        if !memsw {
            tracing::warn!(
                "no swap accounting in the v1 memory controller (memory.memsw.* missing): \
                 swap is kept off by memory.swappiness=0 only"
            );
        }
        Ok(V1Backend {
            parents,
            memsw,
            created,
        })
    }

    /// Creates the cgroup `name` with `limits`.
    fn create_v1(&self, name: &str, limits: &CgroupLimits) -> Result<V1Cgroup, CgroupError> {
        check_name(name, &self.parents.memory)?;
        let cgroup = V1Cgroup::at(name, self.parents.join(name), self.memsw);
        let dirs = cgroup.dirs.unique();
        for (i, dir) in dirs.iter().enumerate() {
            if let Err(e) = std::fs::create_dir(dir) {
                for made in &dirs[..i] {
                    let _ = std::fs::remove_dir(made);
                }
                return Err(io_error("mkdir", dir, e));
            }
        }
        if let Err(e) = cgroup.apply_limits(limits, true) {
            if let Err(cleanup) = cgroup.destroy() {
                tracing::warn!(error = %cleanup, "removing half-made cgroup");
            }
            return Err(e);
        }
        Ok(cgroup)
    }

    /// A handle on the existing cgroup `name` (e.g. one left by a crashed instance).
    fn existing(&self, name: &str) -> V1Cgroup {
        V1Cgroup::at(name, self.parents.join(name), self.memsw)
    }
}

impl CgroupBackend for V1Backend {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn controllers(&self) -> Vec<String> {
        V1_CONTROLLERS.iter().map(|c| c.to_string()).collect()
    }

    fn create(&self, name: &str, limits: &CgroupLimits) -> Result<Box<dyn Cgroup>, CgroupError> {
        Ok(Box::new(self.create_v1(name, limits)?))
    }

    fn remove_stale(&self) -> Result<usize, CgroupError> {
        let names = self.list()?;
        let mut first_error = None;
        let mut removed = 0;
        for name in &names {
            let cgroup = self.existing(name);
            match cgroup.kill_all().and_then(|()| cgroup.destroy()) {
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
        let dirs: Vec<String> = self
            .parents
            .unique()
            .into_iter()
            .map(|d| d.display().to_string())
            .collect();
        format!(
            "parent {} (v1: under each hierarchy's root)",
            dirs.join(", ")
        )
    }

    fn created_levels(&self) -> usize {
        self.created
    }

    fn remove_levels(&self, levels: usize) -> Result<(), CgroupError> {
        for dir in self.parents.unique() {
            super::remove_dir_levels(dir, levels)?;
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<String>, CgroupError> {
        // A crash between two mkdirs leaves a cgroup in some controllers only.
        let mut names = Vec::new();
        for dir in self.parents.unique() {
            names.extend(child_names(dir)?);
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// How far below its limit a cgroup's memory peak proves that no charge failed (the
/// kernel charges in batches of 64 pages; 1 MiB is well above).
const OOM_SLACK_BYTES: u64 = 1 << 20;

/// One container's cgroup in every v1 controller.
#[derive(Debug)]
pub struct V1Cgroup {
    name: String,
    dirs: Dirs,
    memsw: bool,
    /// The memory limit last written (`u64::MAX` on a fresh cgroup): it decides the order
    /// of the `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes` writes.
    memory_limit: AtomicU64,
    /// The accounting files, opened once (at creation, or on first use) and re-read
    /// with pread after that.
    acct: OnceLock<Acct>,
    /// The child cgroup of the pids hierarchy the container's processes are in, once a
    /// run made the peak rise (see `fresh_pids_peak`); its `pids.peak` is the one read.
    leaf: std::sync::Mutex<Option<Leaf>>,
    /// Leaves made so far (their names).
    leaves: AtomicU64,
    /// `memory.usage_in_bytes`, opened on first use: the checks between two runs read it.
    memory_usage: OnceLock<File>,
}

/// A child cgroup of the pids hierarchy. Its peak counter is read by path, not kept open:
/// a container holds the same fds whether its runs forked or not.
#[derive(Debug)]
struct Leaf {
    dir: PathBuf,
}

/// The files a job's accounting reads and resets.
#[derive(Debug)]
struct Acct {
    /// `cpuacct.usage`, read-write: `start_accounting` zeroes it.
    cpu_usage: File,
    /// `cpuacct.usage_all`: user and system time per CPU.
    usage_all: File,
    /// `memory.max_usage_in_bytes`, read-write: `reset_peaks` zeroes it.
    max_usage: File,
    /// `pids.peak`, where the kernel has it.
    pids_peak: Option<File>,
}

impl Acct {
    fn open(dirs: &Dirs) -> Result<Acct, CgroupError> {
        let open_rw = |path: PathBuf| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_error("open", &path, e))
        };
        let pids_peak = match open_read(&dirs.pids.join("pids.peak")) {
            Ok(f) => Some(f),
            Err(CgroupError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Acct {
            cpu_usage: open_rw(dirs.cpuacct.join("cpuacct.usage"))?,
            usage_all: open_read(&dirs.cpuacct.join("cpuacct.usage_all"))?,
            max_usage: open_rw(dirs.memory.join("memory.max_usage_in_bytes"))?,
            pids_peak,
        })
    }
}

impl V1Cgroup {
    fn at(name: &str, dirs: Dirs, memsw: bool) -> V1Cgroup {
        V1Cgroup {
            name: name.to_string(),
            dirs,
            memsw,
            memory_limit: AtomicU64::new(u64::MAX),
            acct: OnceLock::new(),
            leaf: std::sync::Mutex::new(None),
            leaves: AtomicU64::new(0),
            memory_usage: OnceLock::new(),
        }
    }

    fn memory_usage(&self) -> Result<&File, CgroupError> {
        if let Some(file) = self.memory_usage.get() {
            return Ok(file);
        }
        let file = open_read(&self.dirs.memory.join("memory.usage_in_bytes"))?;
        Ok(self.memory_usage.get_or_init(|| file))
    }

    fn leaf(&self) -> std::sync::MutexGuard<'_, Option<Leaf>> {
        self.leaf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `limits`; on a `fresh` cgroup the writes of kernel defaults are skipped.
    fn apply_limits(&self, limits: &CgroupLimits, fresh: bool) -> Result<(), CgroupError> {
        self.write_memory_limit(limits.memory_bytes)?;
        if fresh && !self.memsw {
            // Without swap accounting the limit cannot include swap; keep the cgroup's
            // pages out of swap instead. The kernel refuses this for some hierarchies
            // (e.g. under a parent with use_hierarchy and children), so it is best effort.
            let path = self.dirs.memory.join("memory.swappiness");
            if let Err(e) = write_file(&path, "0") {
                tracing::debug!(error = %e, "setting swappiness");
            }
        }
        write_file(&self.dirs.pids.join("pids.max"), &limits.pids.to_string())?;
        let quota_path = self.dirs.cpu.join("cpu.cfs_quota_us");
        match limits.cpu_cores {
            Some(cores) => {
                let quota = cpu_quota_us(cores, CPU_PERIOD_US, &quota_path)?;
                // A fresh cgroup already has the default period.
                if !fresh {
                    write_file(
                        &self.dirs.cpu.join("cpu.cfs_period_us"),
                        &CPU_PERIOD_US.to_string(),
                    )?;
                }
                write_file(&quota_path, &quota.to_string())?;
            }
            // A fresh cgroup already has no quota.
            None if fresh => {}
            None => write_file(&quota_path, "-1")?,
        }
        Ok(())
    }

    /// Sets memory and memory+swap limits both to `bytes`, so that no swap is used. The
    /// kernel keeps memsw >= memory at every step, so lowering writes memory first and
    /// raising writes memsw first; should the remembered limit be wrong, EINVAL on the
    /// first write means the other order.
    fn write_memory_limit(&self, bytes: u64) -> Result<(), CgroupError> {
        let value = bytes.to_string();
        let limit = self.dirs.memory.join("memory.limit_in_bytes");
        if !self.memsw {
            write_file(&limit, &value)?;
            self.memory_limit.store(bytes, Ordering::Relaxed);
            return Ok(());
        }
        let memsw = self.dirs.memory.join("memory.memsw.limit_in_bytes");
        let (first, second) = if bytes <= self.memory_limit.load(Ordering::Relaxed) {
            (&limit, &memsw)
        } else {
            (&memsw, &limit)
        };
        match write_file(first, &value) {
            Ok(()) => write_file(second, &value)?,
            Err(CgroupError::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
                write_file(second, &value)?;
                write_file(first, &value)?;
            }
            Err(e) => return Err(e),
        }
        self.memory_limit.store(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// The accounting files, opened on first use.
    fn acct(&self) -> Result<&Acct, CgroupError> {
        if let Some(acct) = self.acct.get() {
            return Ok(acct);
        }
        let acct = Acct::open(&self.dirs)?;
        Ok(self.acct.get_or_init(|| acct))
    }
}

/// User and system time summed over the CPUs of `cpuacct.usage_all` (`cpu user system`
/// header, then one line per CPU), nanoseconds.
fn parse_usage_all(path: &Path, content: &str) -> Result<(u64, u64), CgroupError> {
    let bad = || CgroupError::Parse {
        path: path.to_path_buf(),
        content: content.to_string(),
    };
    let mut lines = content.lines();
    if lines
        .next()
        .map(str::split_whitespace)
        .map(Iterator::collect::<Vec<_>>)
        != Some(vec!["cpu", "user", "system"])
    {
        return Err(bad());
    }
    let (mut user, mut sys) = (0u64, 0u64);
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_, u, s] = f[..] else {
            return Err(bad());
        };
        user += u.parse::<u64>().map_err(|_| bad())?;
        sys += s.parse::<u64>().map_err(|_| bad())?;
    }
    Ok((user, sys))
}

impl Cgroup for V1Cgroup {
    fn name(&self) -> &str {
        &self.name
    }

    fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        for dir in self.dirs.unique() {
            write_file(&dir.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    fn set_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        self.apply_limits(limits, false)
    }

    fn reset_peaks(&self) -> Result<(), CgroupError> {
        self.acct()?.max_usage.write_at(b"0", 0).map_err(|e| {
            io_error(
                "write",
                &self.dirs.memory.join("memory.max_usage_in_bytes"),
                e,
            )
        })?;
        Ok(())
    }

    fn prepare_accounting(&self) -> Result<(), CgroupError> {
        self.acct().map(|_| ())
    }

    /// v1 zeroes its counters: `cpuacct.usage` (and with it the per-CPU user and system
    /// times) through the file `cpu_ns` polls, and the memory peak: two writes instead of
    /// six reads. The OOM counter cannot be zeroed: the container keeps the count its
    /// earlier runs reached as the baseline (`Container::oom_seen`).
    fn start_accounting(&self) -> Result<CgroupUsage, CgroupError> {
        let file = &self.acct()?.cpu_usage;
        file.write_at(b"0", 0)
            .map_err(|e| io_error("write", &self.dirs.cpuacct.join("cpuacct.usage"), e))?;
        self.reset_peaks()?;
        Ok(CgroupUsage::default())
    }

    fn cpu_ns(&self) -> Result<u64, CgroupError> {
        pread_u64(
            &self.acct()?.cpu_usage,
            &self.dirs.cpuacct.join("cpuacct.usage"),
        )
    }

    fn usage(&self) -> Result<CgroupUsage, CgroupError> {
        let acct = self.acct()?;
        let all = self.dirs.cpuacct.join("cpuacct.usage_all");
        let (user_ns, sys_ns) = parse_usage_all(&all, &pread_all(&acct.usage_all, &all)?)?;
        let memory_peak_bytes = pread_u64(
            &acct.max_usage,
            &self.dirs.memory.join("memory.max_usage_in_bytes"),
        )?;
        // The OOM killer acts only on a cgroup whose charge reached its limit: below it by
        // more than the kernel's charge batch, there was no OOM kill to count.
        let limit = self.memory_limit.load(Ordering::Relaxed);
        let oom_kills = if memory_peak_bytes.saturating_add(OOM_SLACK_BYTES) < limit {
            0
        } else {
            let oom_control = self.dirs.memory.join("memory.oom_control");
            parse_keyed(&oom_control, &read_file(&oom_control)?, "oom_kill")?
        };
        Ok(CgroupUsage {
            cpu_ns: self.cpu_ns()?,
            user_ns,
            sys_ns,
            memory_peak_bytes,
            oom_kills,
            pids_peak: match (&*self.leaf(), &acct.pids_peak) {
                (Some(leaf), _) => Some(read_u64(&leaf.dir.join("pids.peak"))?),
                (None, Some(f)) => Some(pread_u64(f, &self.dirs.pids.join("pids.peak"))?),
                (None, None) => None,
            },
        })
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        // No freezer: a container is a pid namespace, so the kernel already kills all of it
        // when its init dies; this loop is the backstop, and pids.max bounds its work.
        if let Some(leaf) = &*self.leaf() {
            kill_listed(&leaf.dir.join("cgroup.procs"))?;
        }
        kill_listed(&self.dirs.pids.join("cgroup.procs"))
    }

    fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        // Opened afresh for each read: v1 keeps the list it read for an open file (for a
        // second after its last use), so an fd kept open would show a stale list.
        let mut procs = read_pids(&self.dirs.pids.join("cgroup.procs"))?.unwrap_or_default();
        if let Some(leaf) = &*self.leaf() {
            procs.extend(read_pids(&leaf.dir.join("cgroup.procs"))?.unwrap_or_default());
        }
        Ok(procs)
    }

    /// v1 moves the init into a new child cgroup of the pids hierarchy (the processes it
    /// makes next are born there): a new cgroup's peak starts at what is in it. The limit
    /// stays the container cgroup's, which counts its children's tasks.
    fn fresh_pids_peak(&self, init: i32) -> Result<bool, CgroupError> {
        if self.acct()?.pids_peak.is_none() {
            // No peak counter: nothing carries over.
            return Ok(true);
        }
        let n = self.leaves.fetch_add(1, Ordering::Relaxed);
        let dir = self.dirs.pids.join(format!("run-{n}"));
        std::fs::create_dir(&dir).map_err(|e| io_error("mkdir", &dir, e))?;
        write_file(&dir.join("cgroup.procs"), &init.to_string())?;
        let old = self.leaf().replace(Leaf { dir });
        if let Some(old) = old {
            remove_cgroup_dir(&old.dir)?;
        }
        Ok(true)
    }

    fn memory_bytes(&self) -> Result<u64, CgroupError> {
        pread_u64(
            self.memory_usage()?,
            &self.dirs.memory.join("memory.usage_in_bytes"),
        )
    }

    fn release_kernel_caches(&self) -> Result<bool, CgroupError> {
        // Absent when the kernel does not account kernel memory (`cgroup.memory=nokmem`):
        // then nothing of it is charged here either.
        let kmem = self.dirs.memory.join("memory.kmem.usage_in_bytes");
        match read_optional_u64(&kmem)? {
            Some(bytes) if bytes > super::KERNEL_CACHE_BYTES => {
                write_file(&self.dirs.memory.join("memory.force_empty"), "0")?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for dir in self.dirs.unique() {
            if let Err(e) = remove_cgroup_dir(dir) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn peak_support(&self) -> PeakSupport {
        // v1's peak is `memory.max_usage_in_bytes`, writable (a reset) on every kernel.
        let peak = self.dirs.memory.join("memory.max_usage_in_bytes").exists();
        PeakSupport {
            memory_peak: peak,
            memory_peak_reset: peak,
            pids_peak: self.dirs.pids.join("pids.peak").exists(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tempfile::TempDir;

    const MIB: u64 = 1 << 20;

    fn limits(memory_bytes: u64, pids: u64, cpu_cores: Option<f64>) -> CgroupLimits {
        CgroupLimits {
            memory_bytes,
            pids,
            cpu_cores,
        }
    }

    /// A tree shaped like v1 cgroupfs: memory, pids, cpu and cpuacct hierarchies, with
    /// swap accounting when `memsw`.
    fn tree(memsw: bool) -> TempDir {
        let root = tempfile::tempdir().unwrap();
        for c in ["memory", "pids", "cpu", "cpuacct", "freezer"] {
            fs::create_dir(root.path().join(c)).unwrap();
            fs::write(root.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        if memsw {
            fs::write(
                root.path().join("memory/memory.memsw.limit_in_bytes"),
                "9223372036854771712\n",
            )
            .unwrap();
        }
        root
    }

    /// The accounting files of a real cgroup, which a fake tree's mkdir does not make.
    fn fake_acct(memory: &Path, cpuacct: &Path) {
        fs::write(cpuacct.join("cpuacct.usage"), "").unwrap();
        fs::write(cpuacct.join("cpuacct.usage_all"), "cpu user system\n").unwrap();
        fs::write(memory.join("memory.max_usage_in_bytes"), "").unwrap();
    }

    fn read(path: PathBuf) -> String {
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn create_writes_limits_in_each_controller() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        let cg = backend
            .create("c0", &limits(256 * MIB, 64, Some(1.0)))
            .unwrap();
        assert_eq!(cg.name(), "c0");
        assert!(cg.clone_into_fd().is_none());
        let r = root.path();
        assert_eq!(
            read(r.join("memory/warmbox/c0/memory.limit_in_bytes")),
            "268435456"
        );
        assert_eq!(
            read(r.join("memory/warmbox/c0/memory.memsw.limit_in_bytes")),
            "268435456"
        );
        assert_eq!(read(r.join("pids/warmbox/c0/pids.max")), "64");
        assert_eq!(read(r.join("cpu/warmbox/c0/cpu.cfs_quota_us")), "100000");
        // Defaults of a fresh cgroup are not rewritten.
        assert!(!r.join("cpu/warmbox/c0/cpu.cfs_period_us").exists());
        assert!(!r.join("memory/warmbox/c0/memory.swappiness").exists());
        assert!(r.join("cpuacct/warmbox/c0").is_dir());
        // Only warmbox's parent is touched; freezer is not used.
        assert!(!r.join("freezer/warmbox").exists());
    }

    #[test]
    fn create_without_quota_leaves_cpu_alone() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("cpu/warmbox/c0");
        assert!(dir.is_dir());
        assert_eq!(fs::read_dir(dir).unwrap().count(), 0);
    }

    #[test]
    fn set_limits_rewrites_everything() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        let cg = backend
            .create("c0", &limits(64 * MIB, 8, Some(1.0)))
            .unwrap();
        let r = root.path();
        cg.set_limits(&limits(512 * MIB, 32, Some(0.5))).unwrap();
        assert_eq!(
            read(r.join("memory/warmbox/c0/memory.limit_in_bytes")),
            "536870912"
        );
        assert_eq!(
            read(r.join("memory/warmbox/c0/memory.memsw.limit_in_bytes")),
            "536870912"
        );
        assert_eq!(read(r.join("pids/warmbox/c0/pids.max")), "32");
        assert_eq!(read(r.join("cpu/warmbox/c0/cpu.cfs_period_us")), "100000");
        assert_eq!(read(r.join("cpu/warmbox/c0/cpu.cfs_quota_us")), "50000");
        cg.set_limits(&limits(128 * MIB, 32, None)).unwrap();
        assert_eq!(
            read(r.join("memory/warmbox/c0/memory.limit_in_bytes")),
            "134217728"
        );
        assert_eq!(
            read(r.join("memory/warmbox/c0/memory.memsw.limit_in_bytes")),
            "134217728"
        );
        assert_eq!(read(r.join("cpu/warmbox/c0/cpu.cfs_quota_us")), "-1");
    }

    #[test]
    fn without_swap_accounting_swappiness_is_zeroed() {
        let root = tree(false);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        backend.create("c0", &limits(32 * MIB, 8, None)).unwrap();
        let dir = root.path().join("memory/warmbox/c0");
        assert_eq!(read(dir.join("memory.limit_in_bytes")), "33554432");
        assert_eq!(read(dir.join("memory.swappiness")), "0");
        assert!(!dir.join("memory.memsw.limit_in_bytes").exists());
    }

    #[test]
    fn usage_is_parsed_from_the_controller_files() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let r = root.path();
        let acct = r.join("cpuacct/warmbox/c0");
        fake_acct(&r.join("memory/warmbox/c0"), &acct);
        cg.prepare_accounting().unwrap();
        fs::write(acct.join("cpuacct.usage"), "1500000000\n").unwrap();
        fs::write(
            acct.join("cpuacct.usage_all"),
            "cpu user system\n0 1000000000 100000000\n1 200000000 200000000\n",
        )
        .unwrap();
        fs::write(
            r.join("memory/warmbox/c0/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        // A peak 24 MiB under the 64 MiB limit: no charge failed, so no OOM kill to read.
        let peak = r.join("memory/warmbox/c0/memory.max_usage_in_bytes");
        fs::write(&peak, "41943040\n").unwrap();
        assert_eq!(
            cg.usage().unwrap(),
            CgroupUsage {
                cpu_ns: 1_500_000_000,
                user_ns: 1_200_000_000,
                sys_ns: 300_000_000,
                memory_peak_bytes: 41_943_040,
                oom_kills: 0,
                pids_peak: None,
            }
        );
        // At the limit, the OOM counter is read.
        fs::write(&peak, format!("{}\n", 64 * MIB)).unwrap();
        assert_eq!(cg.usage().unwrap().oom_kills, 1);
        fs::write(acct.join("cpuacct.usage_all"), "cpu user\n0 1\n").unwrap();
        assert!(matches!(cg.usage(), Err(CgroupError::Parse { .. })));
        fs::write(
            acct.join("cpuacct.usage_all"),
            "cpu user system\n0 1000000000 100000000\n1 200000000 200000000\n",
        )
        .unwrap();
        // pids.peak is read where the kernel has it.
        let c1 = backend.create("c1", &limits(64 * MIB, 8, None)).unwrap();
        let c1_acct = r.join("cpuacct/warmbox/c1");
        fake_acct(&r.join("memory/warmbox/c1"), &c1_acct);
        fs::write(c1_acct.join("cpuacct.usage"), "0\n").unwrap();
        fs::write(r.join("memory/warmbox/c1/memory.max_usage_in_bytes"), "0\n").unwrap();
        fs::write(r.join("pids/warmbox/c1/pids.peak"), "3\n").unwrap();
        assert_eq!(c1.usage().unwrap().pids_peak, Some(3));
        // cpu_ns re-reads the file it keeps open.
        fs::write(acct.join("cpuacct.usage"), "2500000000\n").unwrap();
        assert_eq!(cg.cpu_ns().unwrap(), 2_500_000_000);
        fs::write(acct.join("cpuacct.usage"), "garbage\n").unwrap();
        assert!(matches!(cg.cpu_ns(), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn start_accounting_add_process_and_kill_write_the_right_files() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let r = root.path();
        fake_acct(&r.join("memory/warmbox/c0"), &r.join("cpuacct/warmbox/c0"));
        assert_eq!(cg.start_accounting().unwrap(), CgroupUsage::default());
        assert_eq!(
            read(r.join("memory/warmbox/c0/memory.max_usage_in_bytes")),
            "0"
        );
        assert_eq!(read(r.join("cpuacct/warmbox/c0/cpuacct.usage")), "0");
        cg.add_process(4242).unwrap();
        for c in ["memory", "pids", "cpu", "cpuacct"] {
            assert_eq!(read(r.join(c).join("warmbox/c0/cgroup.procs")), "4242");
        }
        // An empty list: nothing to kill.
        fs::write(r.join("pids/warmbox/c0/cgroup.procs"), "").unwrap();
        cg.kill_all().unwrap();
    }

    #[test]
    fn peak_support_is_the_reset_peak_and_pids_peak_where_present() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let memory = root.path().join("memory/warmbox/c0");
        fs::write(memory.join("memory.max_usage_in_bytes"), "0\n").unwrap();
        let mut support = PeakSupport {
            memory_peak: true,
            memory_peak_reset: true,
            pids_peak: false,
        };
        assert_eq!(cg.peak_support(), support);
        fs::write(root.path().join("pids/warmbox/c0/pids.peak"), "1\n").unwrap();
        support.pids_peak = true;
        assert_eq!(cg.peak_support(), support);
    }

    #[test]
    fn destroy_removes_every_directory_and_is_idempotent() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        let cg = backend
            .create("c0", &limits(64 * MIB, 8, Some(1.0)))
            .unwrap();
        cg.destroy().unwrap();
        for c in ["memory", "pids", "cpu", "cpuacct"] {
            let parent = root.path().join(c).join("warmbox");
            assert!(parent.is_dir(), "{c}");
            assert!(!parent.join("c0").exists(), "{c}");
        }
        cg.destroy().unwrap();
    }

    #[test]
    fn kernel_caches_are_reclaimed_only_above_the_bound() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        let cg = backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("memory/warmbox/c0");
        // No kernel memory accounting: nothing to do.
        assert!(!cg.release_kernel_caches().unwrap());
        assert!(!dir.join("memory.force_empty").exists());
        fs::write(dir.join("memory.kmem.usage_in_bytes"), "1048576\n").unwrap();
        assert!(!cg.release_kernel_caches().unwrap());
        assert!(!dir.join("memory.force_empty").exists());
        fs::write(dir.join("memory.kmem.usage_in_bytes"), "1048577\n").unwrap();
        assert!(cg.release_kernel_caches().unwrap());
        assert_eq!(
            fs::read_to_string(dir.join("memory.force_empty")).unwrap(),
            "0"
        );
    }

    #[test]
    fn list_and_remove_stale_cover_every_controller() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        backend.create("b", &limits(64 * MIB, 8, None)).unwrap();
        backend.create("a", &limits(64 * MIB, 8, None)).unwrap();
        // Left by a crash between two mkdirs.
        fs::create_dir(root.path().join("cpuacct/warmbox/half")).unwrap();
        assert_eq!(backend.list().unwrap(), ["a", "b", "half"]);
        assert_eq!(backend.remove_stale().unwrap(), 3);
        assert!(backend.list().unwrap().is_empty());
        for c in ["memory", "pids", "cpu", "cpuacct"] {
            assert!(root.path().join(c).join("warmbox").is_dir());
        }
    }

    #[test]
    fn a_name_in_use_is_refused_and_left_alone() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let err = backend
            .create("c0", &limits(32 * MIB, 8, None))
            .unwrap_err();
        assert!(matches!(&err, CgroupError::Io { op: "mkdir", .. }), "{err}");
        assert_eq!(
            read(root.path().join("memory/warmbox/c0/memory.limit_in_bytes")),
            "67108864"
        );
        // Half-made: exists in pids only; the directories made before the failure go.
        fs::create_dir(root.path().join("pids/warmbox/c1")).unwrap();
        backend
            .create("c1", &limits(32 * MIB, 8, None))
            .unwrap_err();
        assert!(!root.path().join("memory/warmbox/c1").exists());
        assert!(root.path().join("pids/warmbox/c1").exists());
    }

    #[test]
    fn bad_names_touch_nothing() {
        let root = tree(true);
        let backend = V1Backend::new(root.path(), "warmbox").unwrap();
        for bad in ["..", "../escape", "a/b", ""] {
            backend.create(bad, &limits(64 * MIB, 8, None)).unwrap_err();
        }
        assert!(!root.path().join("memory/escape").exists());
        assert!(backend.list().unwrap().is_empty());
        V1Backend::new(root.path(), "../outside").unwrap_err();
        assert!(!root.path().join("../outside").exists());
    }

    #[test]
    fn co_mounted_cpu_and_cpuacct_share_one_directory() {
        for symlinks in [false, true] {
            let root = tempfile::tempdir().unwrap();
            for c in ["memory", "pids", "cpu,cpuacct"] {
                fs::create_dir(root.path().join(c)).unwrap();
                fs::write(root.path().join(c).join("cgroup.procs"), "").unwrap();
            }
            if symlinks {
                // The systemd layout: cpu and cpuacct link to the co-mount.
                std::os::unix::fs::symlink("cpu,cpuacct", root.path().join("cpu")).unwrap();
                std::os::unix::fs::symlink("cpu,cpuacct", root.path().join("cpuacct")).unwrap();
            }
            let backend = V1Backend::new(root.path(), "warmbox").unwrap();
            let cg = backend
                .create("c0", &limits(64 * MIB, 8, Some(2.0)))
                .unwrap();
            let dir = root.path().join("cpu,cpuacct/warmbox/c0");
            assert_eq!(read(dir.join("cpu.cfs_quota_us")), "200000");
            fake_acct(&root.path().join("memory/warmbox/c0"), &dir);
            fs::write(dir.join("cpuacct.usage"), "77\n").unwrap();
            assert_eq!(cg.cpu_ns().unwrap(), 77);
            cg.add_process(4242).unwrap();
            assert_eq!(read(dir.join("cgroup.procs")), "4242");
            cg.destroy().unwrap();
            assert!(!dir.exists());
        }
    }

    #[test]
    fn missing_controllers_are_named() {
        let root = tempfile::tempdir().unwrap();
        for c in ["memory", "cpu"] {
            fs::create_dir(root.path().join(c)).unwrap();
            fs::write(root.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let err = V1Backend::new(root.path(), "warmbox").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cgroups unusable: cgroup v1 controllers not mounted under {}: pids, cpuacct",
                root.path().display()
            )
        );
        assert!(!root.path().join("memory/warmbox").exists());
    }
}
