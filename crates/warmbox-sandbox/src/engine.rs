//! The engine: host resources shared by all containers (configuration, cgroup backend,
//! fork servers, compiled seccomp policies, uid slots), and the creation of a warm
//! container.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UnixStream;

use crate::cgroup::{self, CgroupBackend, CgroupLimits, CgroupVersion};
use crate::config::EngineConfig;
use crate::container::Container;
use crate::error::{host, SandboxError};
use crate::{forkserver, seccomp, spawn};
use warmbox_inside::protocol::{FromInit, InitConfig, ToInit};

/// How long a new container may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a container's filesystem and policy look like; containers of one layout are
/// interchangeable (the pool keeps them per layout).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Host paths bound read-only.
    pub binds: Vec<PathBuf>,
    /// seccomp policy name.
    pub seccomp: String,
    /// Initial size of the one tmpfs of `/box`, `/tmp` and `/dev/shm`, bytes.
    pub disk_bytes: u64,
}

/// The fork server of one set of binds, once started.
type ForkSlot = Arc<tokio::sync::Mutex<Option<Arc<forkserver::ForkServer>>>>;

/// The engine: host resources shared by all containers.
#[derive(Debug)]
pub struct Sandbox {
    config: EngineConfig,
    /// One fork server per set of binds (its template root), started on first use.
    /// One slot per set of binds, each behind its own lock: a fork server that starts
    /// (it builds its template root first) holds up only the creations of its binds.
    forks: Mutex<HashMap<Vec<PathBuf>, ForkSlot>>,
    cgroups: Box<dyn CgroupBackend>,
    /// How an init gets into its cgroup, found at start by [`probe_cgroup_features`].
    placement: spawn::Placement,
    /// The peak counters a container's cgroup has, found at the same time.
    peaks: cgroup::PeakSupport,
    policies: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    free_slots: Mutex<Vec<u32>>,
}

impl Sandbox {
    /// Probes the host's cgroups and prepares the state directory.
    pub fn new(config: EngineConfig) -> Result<Arc<Self>, SandboxError> {
        // Checked before the probe makes the cgroup parent: a refused start leaves nothing.
        Self::check_ids(&config)?;
        let cgroups = cgroup::probe(&config.cgroup_parent)?;
        Self::build(config, cgroups)
    }

    /// Refuses a uid block that overlaps the host's ids or passes the largest id.
    pub fn check_ids(config: &EngineConfig) -> Result<(), SandboxError> {
        let conflicts = config.host_id_conflicts();
        if conflicts.is_empty() {
            return Ok(());
        }
        Err(SandboxError::IdBlock {
            base: config.uid_base,
            end: u64::from(config.uid_base) + u64::from(2 * config.slots),
            conflicts: conflicts.join("; "),
        })
    }

    /// Like `new`, with a given cgroup backend.
    pub fn with_backend(
        config: EngineConfig,
        cgroups: Box<dyn CgroupBackend>,
    ) -> Result<Arc<Self>, SandboxError> {
        Self::check_ids(&config)?;
        Self::build(config, cgroups)
    }

    /// The engine of a checked `config`: the state directory prepared.
    fn build(
        config: EngineConfig,
        cgroups: Box<dyn CgroupBackend>,
    ) -> Result<Arc<Self>, SandboxError> {
        let root = config.new_root();
        std::fs::create_dir_all(&root).map_err(host(format!("mkdir {}", root.display())))?;
        // The container's root (an unprivileged host uid) must traverse to its mount point.
        use std::os::unix::fs::PermissionsExt;
        for dir in [&config.state_dir, &root] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(host(format!("chmod 755 {}", dir.display())))?;
        }
        let features = probe_cgroup_features(cgroups.as_ref())?;
        let (placement, peaks) = (features.placement, features.peaks);
        if let spawn::Placement::MoveRefused(errno) = placement {
            tracing::warn!(
                errno = %std::io::Error::from_raw_os_error(errno),
                "clone3 refuses CLONE_INTO_CGROUP (kernel before 5.7): every init is moved \
                 into its cgroup with cgroup.procs after the clone, before its setup"
            );
        }
        let free_slots = (0..config.slots).rev().collect();
        Ok(Arc::new(Sandbox {
            config,
            forks: Mutex::new(HashMap::new()),
            cgroups,
            placement,
            peaks,
            policies: Mutex::new(HashMap::new()),
            free_slots: Mutex::new(free_slots),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The cgroup backend in use.
    pub fn cgroups(&self) -> &dyn CgroupBackend {
        self.cgroups.as_ref()
    }

    /// Removes the cgroups a crashed earlier instance left.
    pub fn remove_stale(&self) -> Result<usize, SandboxError> {
        Ok(self.cgroups.remove_stale()?)
    }

    fn policy(&self, name: &str) -> Result<Arc<Vec<u8>>, SandboxError> {
        let mut map = self.policies.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = map.get(name) {
            return Ok(p.clone());
        }
        let bytes = Arc::new(seccomp::load(&self.config.seccomp_dir(), name)?.to_bytes());
        map.insert(name.to_string(), bytes.clone());
        Ok(bytes)
    }

    /// The fork server whose template root has `binds`, started (on the blocking pool:
    /// it builds the template before it answers) when it is the first of its kind.
    async fn fork_server(
        &self,
        binds: &[PathBuf],
    ) -> Result<Arc<forkserver::ForkServer>, SandboxError> {
        let mut key = binds.to_vec();
        key.sort();
        key.dedup();
        let slot = self
            .forks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let mut fork = slot.lock().await;
        match fork.as_ref() {
            Some(f) if f.is_alive() => return Ok(f.clone()),
            Some(_) => {
                // Killed, crashed, or ended for a broken reply: another takes its place.
                tracing::warn!(binds = ?key, "the fork server is gone: starting another");
                *fork = None;
            }
            None => {}
        }
        let (exe, root, b) = (
            self.config.init_exe.clone(),
            self.config.new_root(),
            key.clone(),
        );
        let started =
            tokio::task::spawn_blocking(move || forkserver::ForkServer::start(&exe, &root, &b))
                .await
                .map_err(|e| {
                    SandboxError::Spawn(spawn::SpawnError::ForkServer(format!("start task: {e}")))
                })??;
        let f = Arc::new(started);
        *fork = Some(f.clone());
        Ok(f)
    }

    fn take_slot(self: &Arc<Self>) -> Result<Slot, SandboxError> {
        let mut free = self.free_slots.lock().unwrap_or_else(|p| p.into_inner());
        let n = free.pop().ok_or(SandboxError::NoSlot(self.config.slots))?;
        Ok(Slot {
            sandbox: self.clone(),
            n,
        })
    }

    /// Creates a warm container of `layout` whose cgroup starts with `limits` (those its
    /// step most likely runs with, so that a run with them writes none): its init is set up
    /// and its job process sandboxed and waiting.
    pub async fn create(
        self: &Arc<Self>,
        layout: &Layout,
        limits: &CgroupLimits,
    ) -> Result<Container, SandboxError> {
        let policy = self.policy(&layout.seccomp)?;
        let forks = self.fork_server(&layout.binds).await?;
        let slot = self.take_slot()?;
        // The host side of creation (cgroup directories and limits, the fork server's clone,
        // the id maps, the v1 cgroup move) is a few dozen blocking calls on cgroupfs and
        // procfs: on the blocking pool, at the fork server's background priority, so that
        // it neither holds up nor competes with the runtime's request handling.
        let me = self.clone();
        let limits = limits.clone();
        let lay = layout.clone();
        let (mut c, ours) = tokio::task::spawn_blocking(move || {
            background_priority();
            me.start_container(forks.as_ref(), slot, &limits, lay)
        })
        .await
        .map_err(|e| SandboxError::Init {
            id: "-".into(),
            message: format!("creation task: {e}"),
        })??;
        let id = c.id.clone();
        ours.set_nonblocking(true)
            .map_err(host(format!("container {id}: set channel non-blocking")))?;
        c.chan = Some(
            UnixStream::from_std(ours)
                .map_err(host(format!("container {id}: register channel")))?,
        );
        let setup = ToInit::Setup(InitConfig {
            id: c.id.clone(),
            disk_bytes: layout.disk_bytes,
            has_seccomp: true,
        });
        c.send(&setup, &policy, &[]).await?;
        match tokio::time::timeout(READY_TIMEOUT, c.recv()).await {
            Ok(Ok(FromInit::Ready)) => {
                c.leave_warm_up_priority();
                // A memory peak the kernel cannot reset would carry one run's into the
                // next: such a container serves one run (none: the usage at the end is
                // the step's figure, nothing carries over).
                let p = self.peaks;
                c.record_ready(p.memory_peak_reset || !p.memory_peak)?;
                Ok(c)
            }
            Ok(Ok(other)) => Err(c.unexpected(other)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SandboxError::Init {
                id: c.id.clone(),
                message: format!("not ready within {READY_TIMEOUT:?}"),
            }),
        }
    }
}

/// Lowers the calling (blocking-pool) thread to the fork server's background priority,
/// once per thread.
pub(crate) fn background_priority() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    DONE.with(|done| {
        if !done.replace(true) {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            // SAFETY: setpriority with integer arguments, on this thread only (a tid, which
            // is positive: `unsigned_abs` keeps its value).
            unsafe {
                libc::setpriority(
                    libc::PRIO_PROCESS,
                    tid.unsigned_abs(),
                    forkserver::SETUP_NICE,
                )
            };
        }
    });
}

impl Sandbox {
    /// The blocking part of `create`: the cgroup, the clone, the id maps and "go", and on
    /// v1 the move into the cgroup. Returns the container (no channel yet) and our end of
    /// the init's channel.
    fn start_container(
        &self,
        forks: &forkserver::ForkServer,
        slot: Slot,
        limits: &CgroupLimits,
        layout: Layout,
    ) -> Result<(Container, std::os::unix::net::UnixStream), SandboxError> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let cg = self.cgroups.create(&format!("c-{id}"), limits)?;
        // Where the init is not born in its cgroup, the server moves it there.
        let clone_into =
            self.placement == spawn::Placement::CloneInto && cg.clone_into_fd().is_some();

        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(host(format!("socketpair for container {id}")))?;
        let spawned = match forks.clone_init_blocking(
            spawn::NAMESPACES,
            theirs.as_fd(),
            if clone_into { cg.clone_into_fd() } else { None },
        ) {
            Ok(s) => s,
            Err(e) => {
                let _ = cg.destroy();
                return Err(e.into());
            }
        };
        drop(theirs);
        let base = self.config.uid_base + 2 * slot.n;
        let c = Container {
            id,
            pid: spawned.pid,
            pidfd: Some(spawned.pidfd),
            chan: None,
            cgroup: Some(cg),
            limits: limits.clone(),
            job_uid: base + 1,
            job_sent: false,
            runs: 0,
            layout,
            born: std::time::Instant::now(),
            doubt: None,
            oom_seen: 0,
            pids_peak_seen: None,
            ready: None,
            _slot: Some(slot),
        };
        spawn::write_id_maps(c.pid, base, base + 1)?;
        spawn::send_go(&ours).map_err(host(format!("container {}: send go", c.id)))?;
        if !clone_into {
            // While the child becomes the init: the move is done before the setup is sent,
            // so all the init does for the container (mounts, the job process, the cgroup
            // namespace rooted at its cgroup) happens in its cgroup.
            c.cgroup().add_process(c.pid)?;
        }
        c.cgroup().prepare_accounting()?;
        Ok((c, ours))
    }
}

/// What a container's cgroup gets from this kernel, probed on a real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupFeatures {
    /// The peak counters.
    pub peaks: cgroup::PeakSupport,
    /// How an init gets into its cgroup.
    pub placement: spawn::Placement,
}

/// Makes a probe cgroup under the parent of `cgroups`, looks at its peak counters, on v2
/// clones a child that exits at once straight into it (`CLONE_INTO_CGROUP`), and removes
/// it again.
pub fn probe_cgroup_features(cgroups: &dyn CgroupBackend) -> Result<CgroupFeatures, SandboxError> {
    let name = format!("probe-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let limits = CgroupLimits {
        memory_bytes: 64 << 20,
        pids: 4,
        cpu_cores: None,
    };
    let cg = cgroups.create(&name, &limits)?;
    let peaks = cg.peak_support();
    let v2 = cgroups.version() == CgroupVersion::V2;
    let probe = match cg.clone_into_fd() {
        Some(fd) if v2 => spawn::clone_into_cgroup(fd),
        _ => Ok(Ok(())),
    };
    let removed = cg.destroy();
    let placement = spawn::Placement::from_probe(v2, probe?);
    removed?;
    Ok(CgroupFeatures { peaks, placement })
}

/// A container slot: an index into the uid block, returned when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    sandbox: Arc<Sandbox>,
    pub(crate) n: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut free = self
            .sandbox
            .free_slots
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        free.push(self.n);
    }
}
