//! One container, from warm to destroyed: files in and out of `/box`, the reset and
//! checks between two runs, and its removal, which leaves nothing behind (running a step is
//! `step`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::net::UnixStream;

use crate::cgroup::{Cgroup, CgroupLimits};
use crate::engine::{background_priority, Slot};
use crate::error::SandboxError;
use crate::{channel, forkserver, spawn};
use warmbox_inside::protocol::{FileMeta, Frame, FromInit, ProtocolError, ToInit};

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

/// One container, from warm to destroyed. Dropping it without `destroy` still kills and
/// removes everything (blocking briefly).
#[derive(Debug)]
pub struct Container {
    // The fields are the crate's: the engine (`engine.rs`) fills them at creation and the
    // step supervision (`step.rs`) runs the job with them.
    pub(crate) id: String,
    pub(crate) pid: libc::pid_t,
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) chan: Option<UnixStream>,
    pub(crate) cgroup: Option<Box<dyn Cgroup>>,
    /// The limits last written into the cgroup.
    pub(crate) limits: CgroupLimits,
    /// Host uid of the container's job user (1000 inside), unique to its slot.
    pub(crate) job_uid: u32,
    /// Whether a job message reached the init's channel since the container was last
    /// ready: until then nothing of a request has run here, and a failure may be retried
    /// in another container.
    pub(crate) job_sent: bool,
    /// Runs served (jobs handed to the init).
    pub(crate) runs: u32,
    /// Its layout (the pool it goes back to keeps containers per layout).
    pub(crate) layout: crate::Layout,
    /// When it was made.
    pub(crate) born: Instant,
    /// Why the container must not serve another run, once something cast doubt on it (the
    /// reason is counted in the metrics).
    pub(crate) doubt: Option<&'static str>,
    /// OOM kills its cgroup has counted so far: the next run's baseline.
    pub(crate) oom_seen: u64,
    /// The cgroup's pids peak after the last run.
    pub(crate) pids_peak_seen: Option<u64>,
    /// What it was like when first ready, which a reset must come back to.
    pub(crate) ready: Option<std::sync::Arc<ReadyState>>,
    // Released last: the slot's uids are reused only once every process is gone.
    pub(crate) _slot: Option<Slot>,
}

/// A container's state when it was first ready, recorded at creation: the check before
/// another run compares with it.
#[derive(Debug)]
pub(crate) struct ReadyState {
    /// The cgroup's pids peak (the two inits and the waiting job process): a run that
    /// passed it would show its own peak in the next run's, since the kernel cannot reset
    /// it.
    pub(crate) pids_peak: Option<u64>,
    /// Memory charged to the cgroup.
    pub(crate) memory_bytes: u64,
    /// The init's mounts: mount point and filesystem type of each, sorted.
    pub(crate) mounts: Vec<String>,
    /// The init's `/proc/<pid>/mountinfo`, open (re-read from its start for each check).
    pub(crate) mountinfo: std::fs::File,
    /// Whether the cgroup's memory peak can be reset between runs (or has none to carry
    /// over).
    pub(crate) peak_resettable: bool,
}

/// Memory a reset container may have charged above its first ready state before the check
/// asks the kernel to reclaim (and, if still above, destroys it).
pub(crate) const MEMORY_SLACK_BYTES: u64 = 1 << 20;

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
    pub(crate) fn leave_warm_up_priority(&self) {
        // A pid is positive: `unsigned_abs` keeps its value.
        let pid = self.pid.unsigned_abs();
        // SAFETY: setpriority with integer arguments, on our own child and on the
        // processes of this container's job uid.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, pid, forkserver::RUN_NICE);
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

    pub(crate) fn cgroup(&self) -> &dyn Cgroup {
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

    pub(crate) async fn send(
        &mut self,
        msg: &ToInit,
        payload: &[u8],
        fds: &[std::os::fd::RawFd],
    ) -> Result<(), SandboxError> {
        let r = channel::send(self.chan(), msg, payload, fds).await;
        r.map_err(self.channel_err())
    }

    pub(crate) async fn recv(&mut self) -> Result<FromInit, SandboxError> {
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

    async fn recv_frame(&mut self) -> Result<Frame<FromInit>, SandboxError> {
        let r = channel::recv(self.chan()).await;
        r.map_err(self.channel_err())
    }

    pub(crate) fn unexpected(&self, msg: FromInit) -> SandboxError {
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
        // Every directory and file is made on its own (1,024 files 32 deep are 32,768).
        let entries: u64 = files
            .iter()
            .map(|f| f.path.split('/').filter(|c| !c.is_empty()).count() as u64)
            .sum();
        let limit = exchange_timeout(bytes) + Duration::from_micros(500 * entries);
        let r = tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or_else(|_| Err(self.overdue("writing the files", limit)));
        self.doubt_on(r)
    }

    /// `r`, marking the container not to be reused when it is an error.
    pub(crate) fn doubt_on<T>(&mut self, r: Result<T, SandboxError>) -> Result<T, SandboxError> {
        if r.is_err() {
            self.doubt.get_or_insert("error");
        }
        r
    }

    /// Runs served so far.
    pub fn runs(&self) -> u32 {
        self.runs
    }

    /// Why the container will not serve another run, if something cast doubt on it.
    pub fn doubt(&self) -> Option<&'static str> {
        self.doubt
    }

    /// How long ago it was made.
    pub fn age(&self) -> Duration {
        self.born.elapsed()
    }

    /// Records what the container is like when first ready (see [`ReadyState`]).
    pub(crate) fn record_ready(&mut self, peak_resettable: bool) -> Result<(), SandboxError> {
        let usage = self.cgroup().usage()?;
        self.oom_seen = usage.oom_kills;
        let err = |source| SandboxError::Host {
            what: format!("container {}: read the init's mountinfo", self.id),
            source,
        };
        let mountinfo =
            std::fs::File::open(format!("/proc/{}/mountinfo", self.pid)).map_err(err)?;
        self.ready = Some(std::sync::Arc::new(ReadyState {
            pids_peak: usage.pids_peak,
            memory_bytes: self.cgroup().memory_bytes()?,
            mounts: mounts_of(&mountinfo).map_err(err)?,
            mountinfo,
            peak_resettable,
        }));
        Ok(())
    }

    /// Makes the container ready for another run, or says why it must not serve one:
    /// checks that only its init is left in its cgroup, has the init reset what a job
    /// could write (a fresh tmpfs of `disk_bytes` for `/box`, `/tmp` and `/dev/shm`) and
    /// make the next run's job process, then checks that its mounts are those it was made
    /// with and its memory is back to where it was (asking the kernel to reclaim caches
    /// first when it is not). The accounting is reset when the next run starts.
    pub async fn recycle(&mut self, disk_bytes: u64) -> Result<(), &'static str> {
        if let Some(why) = self.doubt {
            return Err(why);
        }
        let Some(ready) = self.ready.clone() else {
            return Err("not_recorded");
        };
        match self.cgroup().procs() {
            Ok(procs) if procs == [self.pid] => {}
            Ok(procs) => {
                tracing::warn!(container = %self.id, ?procs, "processes other than the init left after a run");
                return Err("processes");
            }
            Err(e) => {
                tracing::warn!(container = %self.id, error = %e, "cgroup.procs unreadable");
                return Err("check_failed");
            }
        }
        // The pids peak cannot be reset: one the last run raised gets a new counter (with
        // the init in it, before the next run's processes are made), or the container
        // goes.
        if self.pids_peak_seen > ready.pids_peak {
            match self.cgroup().fresh_pids_peak(self.pid) {
                Ok(true) => {}
                Ok(false) => return Err("pids_peak"),
                Err(e) => {
                    tracing::warn!(container = %self.id, error = %e, "no fresh pids peak counter");
                    return Err("check_failed");
                }
            }
        }
        let exchange = async {
            self.send(&ToInit::Reset { disk_bytes }, &[], &[]).await?;
            self.recv().await
        };
        match tokio::time::timeout(RESET_TIMEOUT, exchange).await {
            Ok(Ok(FromInit::Ready)) => {}
            Ok(Ok(other)) => {
                tracing::warn!(container = %self.id, reply = ?other, "unexpected reply to a reset");
                return Err("reset_failed");
            }
            Ok(Err(e)) => {
                tracing::warn!(container = %self.id, error = %e, "reset failed");
                return Err("reset_failed");
            }
            Err(_) => return Err("reset_failed"),
        }
        match mounts_of(&ready.mountinfo) {
            Ok(mounts) if mounts == ready.mounts => {}
            Ok(mounts) => {
                tracing::warn!(container = %self.id, ?mounts, expected = ?ready.mounts, "mounts differ after a reset");
                return Err("mounts");
            }
            Err(_) => return Err("check_failed"),
        }
        let bound = ready.memory_bytes.saturating_add(MEMORY_SLACK_BYTES);
        let memory = self.cgroup().memory_bytes().map_err(|_| "check_failed")?;
        if memory > bound {
            // Kernel caches the run filled (dentries of the names it looked up): reclaim,
            // on the blocking pool (a few ms), and look again.
            let cg = self.cgroup.take();
            let (cg, after) = tokio::task::spawn_blocking(move || {
                let after = cg.as_deref().map(|c| {
                    let _ = c.release_kernel_caches();
                    c.memory_bytes()
                });
                (cg, after)
            })
            .await
            .map_err(|_| "check_failed")?;
            self.cgroup = cg;
            match after {
                Some(Ok(m)) if m <= bound => {}
                Some(Ok(m)) => {
                    tracing::info!(container = %self.id, bytes = m, ready = ready.memory_bytes, "memory not back to its ready state after a reset");
                    return Err("memory");
                }
                _ => return Err("check_failed"),
            }
        }
        self.job_sent = false;
        Ok(())
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
        let raised = self.cgroup().set_limits(&roomy).map_err(SandboxError::from);
        self.doubt_on(raised)?;
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
            .unwrap_or_else(|_| Err(self.overdue("collecting the files", limit)));
        let frame = self.doubt_on(frame)?;
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
            let content = usize::try_from(m.len)
                .ok()
                .and_then(|len| frame.payload.get(off..off.checked_add(len)?))
                .ok_or_else(|| SandboxError::Init {
                    id: self.id.clone(),
                    message: format!("file list overruns the payload at {}", m.path),
                })?;
            out.push(BoxFile {
                path: m.path,
                content: content.to_vec(),
                executable: m.executable,
            });
            off += content.len();
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

/// How long an init may take to reset between runs.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// The mounts of a mount namespace (its `mountinfo`, read from the start), each as its
/// mount point and filesystem type, sorted (the ids and the order change when a reset
/// remounts; the set must not).
fn mounts_of(mountinfo: &std::fs::File) -> std::io::Result<Vec<String>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = Vec::with_capacity(4096);
    let mut buf = [0u8; 4096];
    loop {
        let n = mountinfo.read_at(&mut buf, bytes.len() as u64)?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut mounts: Vec<String> = text
        .lines()
        .map(|line| {
            let point = line.split(' ').nth(4).unwrap_or("");
            let fs = line
                .split_once(" - ")
                .and_then(|(_, rest)| rest.split(' ').next())
                .unwrap_or("");
            format!("{point} {fs}")
        })
        .collect();
    mounts.sort();
    Ok(mounts)
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
            let ms = i32::try_from(self.reap_wait.as_millis()).unwrap_or(i32::MAX);
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
