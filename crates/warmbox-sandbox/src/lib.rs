//! The engine: the server's side of containers. The `Sandbox` creates warm containers
//! (clone3, id maps, cgroup, setup over the init channel); a `Container` then serves one
//! step and is destroyed, leaving nothing behind; the `Pool` keeps them warm.
//!
//! It knows nothing of HTTP, requests or profiles: its vocabulary is [`Limits`], a
//! [`StepSpec`], a [`StepOutcome`] and its [`Usage`]. What runs inside a container is
//! `warmbox-inside`.

pub mod cgroup;
pub mod channel;
pub mod check;
pub mod config;
pub mod forkserver;
pub mod pool;
pub mod seccomp;
pub mod spawn;
pub mod step;

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::net::UnixStream;

use crate::config::EngineConfig;
use cgroup::{Cgroup, CgroupBackend, CgroupError, CgroupLimits, CgroupVersion};
use seccomp::SeccompError;
use warmbox_inside::protocol::{FileMeta, FromInit, InitConfig, ProtocolError, ToInit};

pub use step::{Limits, OutputMode, Piped, StepOutcome, StepSpec, StepStatus, Usage};
// What the runner must know of the box: how many files and inodes fit, and the exit code
// of a job that could not exec.
pub use warmbox_inside::job::EXEC_FAILED;
pub use warmbox_inside::mount::{
    disk_inodes, DISK_OWN_INODES, MAX_FILES, MAX_FILE_DEPTH, MIN_DISK_INODES,
};

/// How long a new container may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the sandbox layer (all are warmbox's or the host's fault, never the user's).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The seccomp policy could not be loaded.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// Starting the init failed.
    #[error(transparent)]
    Spawn(#[from] spawn::SpawnError),
    /// The init channel failed.
    #[error("container {id}: {source}")]
    Channel {
        id: String,
        #[source]
        source: ProtocolError,
    },
    /// The init reported an error or misbehaved.
    #[error("container {id}: {message}")]
    Init { id: String, message: String },
    /// A host operation failed.
    #[error("{what}: {source}")]
    Host {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The container uid block overlaps ids the host gives out.
    #[error(
        "container uid/gid block {base}..{end} overlaps host ids ({conflicts}); \
         choose another uid_base"
    )]
    IdBlock {
        base: u32,
        end: u64,
        conflicts: String,
    },
    /// Every container slot is in use.
    #[error("all {0} container slots are in use")]
    NoSlot(u32),
}

fn host(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Host { what, source }
}

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

/// A file of `/box`, moved in or out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxFile {
    /// Relative path.
    pub path: String,
    /// Content.
    pub content: Vec<u8>,
    /// Executable bit.
    pub executable: bool,
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
        let placement = probe_cgroup_features(cgroups.as_ref())?.placement;
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
        let (mut c, ours) = tokio::task::spawn_blocking(move || {
            background_priority();
            me.start_container(forks.as_ref(), slot, &limits)
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
fn background_priority() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    DONE.with(|done| {
        if !done.replace(true) {
            // SAFETY: setpriority with integer arguments, on this thread only (a tid).
            unsafe {
                libc::setpriority(
                    libc::PRIO_PROCESS,
                    libc::gettid() as libc::id_t,
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
struct Slot {
    sandbox: Arc<Sandbox>,
    n: u32,
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

/// One container, from warm to destroyed. Dropping it without `destroy` still kills and
/// removes everything (blocking briefly).
#[derive(Debug)]
pub struct Container {
    id: String,
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    chan: Option<UnixStream>,
    cgroup: Option<Box<dyn Cgroup>>,
    /// The limits last written into the cgroup.
    limits: CgroupLimits,
    /// Host uid of the container's job user (1000 inside), unique to its slot.
    job_uid: u32,
    /// Whether a job message reached the init's channel: until then nothing of a request
    /// has run here, and a failure may be retried in another container.
    job_sent: bool,
    // Released last: the slot's uids are reused only once every process is gone.
    _slot: Option<Slot>,
}

impl Container {
    /// Short unique id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether a job was handed to the init (see [`Container::run`]). A container that
    /// failed before that ran nothing of the request.
    pub fn job_sent(&self) -> bool {
        self.job_sent
    }

    /// Once set up, the container waits at the priorities its run needs, so that a run
    /// makes no such call: the init, which enforces limits and reports, above its job
    /// (best effort: without CAP_SYS_NICE it keeps the fork server's value); the job
    /// process at the server's own, by its host uid, which is this container's alone.
    /// Both are blocked until the run, so this takes no CPU from anyone.
    fn leave_warm_up_priority(&self) {
        // SAFETY: setpriority with integer arguments, on our own child and on the
        // processes of this container's job uid.
        unsafe {
            libc::setpriority(
                libc::PRIO_PROCESS,
                self.pid as libc::id_t,
                forkserver::RUN_NICE,
            );
            libc::setpriority(
                libc::PRIO_USER,
                self.job_uid as libc::id_t,
                forkserver::JOB_NICE,
            );
        }
    }

    /// Host pid of the init.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Whether the init is still running (a pidfd turns readable when it exits).
    pub fn is_alive(&self) -> bool {
        let Some(pidfd) = &self.pidfd else {
            return false;
        };
        let mut p = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) == 0 }
    }

    /// Name of the container's cgroup.
    pub fn cgroup_name(&self) -> String {
        format!("c-{}", self.id)
    }

    fn cgroup(&self) -> &dyn Cgroup {
        // `cgroup` is Some from creation until destroy/drop consume the container.
        self.cgroup
            .as_deref()
            .expect("cgroup present while the container lives")
    }

    fn chan(&mut self) -> &mut UnixStream {
        // `chan` is Some from creation until destroy/drop consume the container.
        self.chan
            .as_mut()
            .expect("channel present while the container lives")
    }

    fn channel_err(&self) -> impl FnOnce(ProtocolError) -> SandboxError + '_ {
        move |source| SandboxError::Channel {
            id: self.id.clone(),
            source,
        }
    }

    async fn send(
        &mut self,
        msg: &ToInit,
        payload: &[u8],
        fds: &[std::os::fd::RawFd],
    ) -> Result<(), SandboxError> {
        let r = channel::send(self.chan(), msg, payload, fds).await;
        r.map_err(self.channel_err())
    }

    async fn recv(&mut self) -> Result<FromInit, SandboxError> {
        let r = channel::recv(self.chan()).await;
        let frame = r.map_err(self.channel_err())?;
        match frame.msg {
            FromInit::Error { message } => Err(SandboxError::Init {
                id: self.id.clone(),
                message,
            }),
            msg => Ok(msg),
        }
    }

    async fn recv_frame(
        &mut self,
    ) -> Result<warmbox_inside::protocol::Frame<FromInit>, SandboxError> {
        let r = channel::recv(self.chan()).await;
        r.map_err(self.channel_err())
    }

    fn unexpected(&self, msg: FromInit) -> SandboxError {
        SandboxError::Init {
            id: self.id.clone(),
            message: format!("unexpected reply {msg:?}"),
        }
    }

    /// Writes files into `/box` (before the job runs), after sizing the container's
    /// writable tmpfs to `disk_bytes` (the step's disk limit: the files must fit in it, and
    /// the kernel refuses to shrink a tmpfs below what is in use).
    pub async fn write_files(
        &mut self,
        files: &[&BoxFile],
        disk_bytes: u64,
    ) -> Result<(), SandboxError> {
        if files.is_empty() {
            return Ok(());
        }
        let metas = files
            .iter()
            .map(|f| FileMeta {
                path: f.path.clone(),
                len: f.content.len() as u64,
                executable: f.executable,
            })
            .collect();
        let parts: Vec<&[u8]> = files.iter().map(|f| f.content.as_slice()).collect();
        let bytes = parts.iter().map(|p| p.len() as u64).sum();
        let msg = ToInit::WriteFiles {
            files: metas,
            disk_bytes,
        };
        let exchange = async {
            let r = channel::send_parts(self.chan(), &msg, &parts, &[]).await;
            r.map_err(self.channel_err())?;
            match self.recv().await? {
                FromInit::FilesWritten => Ok(()),
                other => Err(self.unexpected(other)),
            }
        };
        let limit = exchange_timeout(bytes);
        tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or_else(|_| Err(self.overdue("writing the files", limit)))
    }

    /// The error of an init that did not answer within `limit`.
    fn overdue(&self, what: &str, limit: Duration) -> SandboxError {
        SandboxError::Init {
            id: self.id.clone(),
            message: format!("{what}: no answer within {limit:?}"),
        }
    }

    /// Reads back the regular files of `/box` (after the job ran); `Some(why)` when a
    /// bound left files out (`why` is short: it names the bound and the start of a path).
    /// The init reads them into its own memory, which the cgroup charges: the limit is
    /// raised by `max_bytes` twice over first (every user process is gone by now, so
    /// nothing else can use the room).
    pub async fn collect_files(
        &mut self,
        max_bytes: u64,
        max_files: u64,
    ) -> Result<(Vec<BoxFile>, Option<String>), SandboxError> {
        let mut roomy = self.limits.clone();
        roomy.memory_bytes = roomy.memory_bytes.saturating_add(2 * max_bytes);
        self.cgroup().set_limits(&roomy)?;
        self.limits = roomy;
        let exchange = async {
            self.send(
                &ToInit::Collect {
                    max_bytes,
                    max_files,
                },
                &[],
                &[],
            )
            .await?;
            self.recv_frame().await
        };
        let limit = exchange_timeout(max_bytes);
        let frame = tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or_else(|_| Err(self.overdue("collecting the files", limit)))?;
        let (metas, truncated) = match frame.msg {
            FromInit::Files { files, truncated } => (files, truncated),
            FromInit::Error { message } => {
                return Err(SandboxError::Init {
                    id: self.id.clone(),
                    message,
                })
            }
            other => return Err(self.unexpected(other)),
        };
        let mut out = Vec::with_capacity(metas.len());
        let mut off = 0usize;
        for m in metas {
            let end = off + m.len as usize;
            let content = frame
                .payload
                .get(off..end)
                .ok_or_else(|| SandboxError::Init {
                    id: self.id.clone(),
                    message: format!("file list overruns the payload at {}", m.path),
                })?;
            out.push(BoxFile {
                path: m.path,
                content: content.to_vec(),
                executable: m.executable,
            });
            off = end;
        }
        Ok((out, truncated))
    }

    /// Kills the container and removes everything it had: processes, cgroup, slot.
    pub async fn destroy(mut self) {
        let mut remains = self.kill();
        if let Some(pidfd) = remains.pidfd.take() {
            // Waits here, not on a blocking thread: a pidfd turns readable when the process
            // has exited (for an init, its whole pid namespace with it).
            // SAFETY: the AsyncFd owns `pidfd`, an open fd that stays the same until it is
            // given back by `into_inner`.
            remains.pidfd = Some(match unsafe { AsyncFd::register(pidfd) } {
                Ok(afd) => {
                    let _ = tokio::time::timeout(REAP_TIMEOUT, afd.readable()).await;
                    // Waited: the removal only reaps what has ended by now.
                    remains.reap_wait = Duration::ZERO;
                    afd.into_inner()
                }
                Err(e) => e.into_parts().0,
            });
        }
        // The rest is blocking cgroupfs work: on the blocking pool, at the background
        // priority; the slot goes back only when it is done.
        let removed = tokio::task::spawn_blocking(move || {
            background_priority();
            drop(remains);
        })
        .await;
        if let Err(e) = removed {
            tracing::error!(error = %e, "container removal task failed");
        }
    }

    /// SIGKILLs the init (and with it the pid namespace) and hands over what is left to
    /// remove.
    fn kill(&mut self) -> Remains {
        self.chan = None;
        if let Some(pidfd) = &self.pidfd {
            let _ = spawn::pidfd_signal(pidfd.as_fd(), libc::SIGKILL);
        }
        Remains {
            id: std::mem::take(&mut self.id),
            pidfd: self.pidfd.take(),
            reap_wait: REAP_TIMEOUT,
            cgroup: self.cgroup.take(),
            slot: self._slot.take(),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Dropped in a request that ended early (a client that hung up, a cancelled job):
        // the blocking part goes to the blocking pool, not the runtime thread that drops.
        // Without a runtime, or if it no longer takes work (then `remains` is dropped with
        // the closure), the removal happens here.
        let remains = self.kill();
        if remains.pidfd.is_none() && remains.cgroup.is_none() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || drop(remains));
            }
            Err(_) => drop(remains),
        }
    }
}

/// How long an init may take to write or read back `bytes` of files in `/box` (tmpfs:
/// far faster than the 16 MB/s allowed here) before it counts as broken.
fn exchange_timeout(bytes: u64) -> Duration {
    Duration::from_secs(5) + Duration::from_millis(bytes / 16_384)
}

/// How long the removal of a container waits for its init to exit after SIGKILL.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// What is left of a killed container. Dropping it removes it, blocking: the init is
/// reaped, the cgroup emptied and removed, and only then is the slot given back. If the
/// init could not be reaped and its cgroup not removed, a process of the container may
/// still live: the slot's uids are then never handed out again.
struct Remains {
    id: String,
    pidfd: Option<OwnedFd>,
    /// How long the removal waits for the init to exit (none when the caller waited).
    reap_wait: Duration,
    cgroup: Option<Box<dyn Cgroup>>,
    slot: Option<Slot>,
}

impl Drop for Remains {
    fn drop(&mut self) {
        let reaped = self.pidfd.take().is_none_or(|pidfd| {
            // A pidfd turns readable when its process has exited.
            let mut pfd = libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = self.reap_wait.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: poll on one valid pollfd; a timeout or an error other than EINTR
            // leaves the reap below to find nothing.
            while unsafe { libc::poll(&mut pfd, 1, ms) } < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
            matches!(spawn::pidfd_reap(pidfd.as_fd(), false), Ok(true))
        });
        let removed = self.cgroup.take().is_none_or(|cg| {
            // An init that has exited took its whole pid namespace with it, and nothing
            // else ever joins the cgroup: the kill is the backstop for one not seen to end.
            if !reaped {
                let _ = cg.kill_all();
            } else if let Err(e) = cg.release_kernel_caches() {
                tracing::warn!(container = %self.id, error = %e, "kernel caches not reclaimed");
            }
            match cg.destroy() {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(container = %self.id, error = %e, "cgroup left behind");
                    false
                }
            }
        });
        if !reaped {
            tracing::error!(container = %self.id, "init not reaped after SIGKILL");
            if !removed {
                if let Some(slot) = self.slot.take() {
                    tracing::error!(container = %self.id, slot = slot.n, "slot withdrawn: a process of it may live on");
                    std::mem::forget(slot);
                }
            }
        }
    }
}
