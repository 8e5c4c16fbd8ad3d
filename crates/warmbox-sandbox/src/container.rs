//! One container, from warm to destroyed: files in and out of `/box`, and its removal,
//! which leaves nothing behind (running its step is `step`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

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
    /// Whether a job message reached the init's channel: until then nothing of a request
    /// has run here, and a failure may be retried in another container.
    pub(crate) job_sent: bool,
    // Released last: the slot's uids are reused only once every process is gone.
    pub(crate) _slot: Option<Slot>,
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
