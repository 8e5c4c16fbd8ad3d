//! cgroup v2 backend: the unified hierarchy, a container's cgroup at `<root>/<parent>/<name>`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::{
    check_name, check_parent, child_names, cpu_quota_us, io_error, kill_listed, open_read,
    parse_keyed, pread_text, pread_u64, read_file, read_optional_u64, read_u64, remove_cgroup_dir,
    write_file, Cgroup, CgroupBackend, CgroupError, CgroupLimits, CgroupUsage, CgroupVersion,
    PeakSupport, CPU_PERIOD_US, V2_CONTROLLERS,
};

/// What `cgroup.subtree_control` gets, so that the children have every controller we use.
const ENABLE: &str = "+memory +pids +cpu";

/// The unified hierarchy under a mount root (normally `/sys/fs/cgroup`), with warmbox's parent.
#[derive(Debug)]
pub struct V2Backend {
    /// warmbox's parent cgroup.
    parent_dir: PathBuf,
    /// The kernel accounts swap (`memory.swap.max` exists), so swap can be set to zero.
    swap: bool,
    /// Levels of the parent path made here.
    created: usize,
}

/// Enables memory, pids and cpu for the children of `dir`. Only the hierarchy's root may
/// hold processes and enable controllers at once ("no internal processes"): elsewhere the
/// kernel refuses with EBUSY, which is said plainly, with what to do.
fn enable_controllers(dir: &Path, is_root: bool) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    match write_file(&path, ENABLE) {
        Err(CgroupError::Io { source, .. })
            if !is_root && source.raw_os_error() == Some(libc::EBUSY) =>
        {
            Err(CgroupError::Unsupported(format!(
                "enabling controllers in {} failed (EBUSY): it holds processes, and cgroup v2 \
                 lets a cgroup below the root either hold processes or enable controllers \
                 for its children, not both; move its processes (warmbox's own included) \
                 into a child cgroup first, or give --cgroup-parent a delegated subtree of \
                 its own",
                path.display()
            )))
        }
        other => other,
    }
}

impl V2Backend {
    /// Enables memory, pids and cpu for the children of `mount_root` and of every level of
    /// `parent` (a relative path), creating the parent's directories if missing.
    pub fn new(mount_root: &Path, parent: &str) -> Result<Self, CgroupError> {
        check_parent(parent, mount_root)?;
        enable_controllers(mount_root, true)?;
        let mut dir = mount_root.to_path_buf();
        let mut created = 0;
        for component in Path::new(parent).components() {
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
        })
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
            pids_peak: read_optional_u64(&self.dir.join("pids.peak"))?,
        })
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        kill_dir(&self.dir)
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
        V2Backend::new(root.path(), "warmbox/pool").unwrap();
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
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
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
        let levels = |parent: &str| {
            V2Backend::new(root.path(), parent)
                .unwrap()
                .created_levels()
        };
        assert_eq!(levels("warmbox"), 1);
        assert_eq!(levels("warmbox"), 0);
        assert_eq!(levels("warmbox/pool"), 1);
        assert_eq!(levels("a/b/c"), 3);
        assert_eq!(levels("a/b/c"), 0);
    }

    #[test]
    fn create_writes_limits_and_opens_the_directory() {
        let root = tree(true);
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
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
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
        backend.create("c0", &limits(64 * MIB, 8, None)).unwrap();
        let dir = root.path().join("warmbox/c0");
        assert_eq!(read(dir.join("memory.max")), "67108864");
        assert!(!dir.join("memory.swap.max").exists());
        assert!(!dir.join("cpu.max").exists());
    }

    #[test]
    fn set_limits_rewrites_everything() {
        let root = tree(true);
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
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
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
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
    fn peak_is_read_through_the_fd_that_reset_it() {
        let root = tree(true);
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
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
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
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
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
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
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
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
        let backend = V2Backend::new(root.path(), "warmbox").unwrap();
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
