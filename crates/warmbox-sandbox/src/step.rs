//! Running one step in a warm container: write the job's limits into the cgroup, hand the
//! init the job with its stdio, watch CPU time, output and the clock, kill at the first
//! limit hit, then account and decide the verdict.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::{cgroup::CgroupLimits, channel, Container, SandboxError};
use serde::{Deserialize, Serialize};
use warmbox_inside::protocol::{
    ExitKind, FromInit, JobLimits, JobSpec, StartFailure, ToInit, Violation,
};

/// The init enforces the wall limit; the server asks it to kill this long after the limit
/// if no report came (a job can starve the init of CPU).
const WALL_SLACK: Duration = Duration::from_millis(20);
/// After asking the init to kill, the server waits this long for its report, then kills
/// the init itself: SIGKILL of a pid namespace's init ends every process in it at once.
const KILL_GRACE: Duration = Duration::from_millis(50);
/// After the job ended, the pipes must reach EOF within this (everything is dead by then).
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// CPU polls are at most this far apart...
const POLL_MAX: Duration = Duration::from_millis(20);
/// ...and at least this far apart.
const POLL_MIN: Duration = Duration::from_millis(2);

/// One step to run.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Command.
    pub argv: Vec<String>,
    /// Environment as `KEY=value`.
    pub env: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// CPU bandwidth in cores (`None`: unlimited).
    pub cpu_cores: Option<f64>,
    /// stdin content.
    pub stdin: Vec<u8>,
    /// How stdout and stderr are kept.
    pub output: OutputMode,
}

/// How a step's stdout and stderr are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputMode {
    /// Each on its own.
    #[default]
    Separate,
    /// Each on its own, and both together in the order they arrived (Piston's `output`).
    Interleaved,
    /// stderr is the same pipe as stdout (Judge0's `redirect_stderr_to_stdout`): the order
    /// is exact and stderr stays empty.
    Merged,
}

/// How one step ended: its status, exit, usage and raw output (the runner encodes it).
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// The verdict on the step.
    pub status: StepStatus,
    /// The exit code, where the job exited (or could not exec).
    pub exit_code: Option<i32>,
    /// The signal that ended the job.
    pub signal: Option<i32>,
    /// Resource accounting.
    pub usage: Usage,
    /// Why the step ended where that is not obvious from the status (an exec failure, a
    /// forbidden call, an internal error's cause).
    pub message: Option<String>,
    /// stdout, cut at the limit.
    pub stdout: Vec<u8>,
    /// stderr, cut at the limit.
    pub stderr: Vec<u8>,
    /// With [`OutputMode::Interleaved`]: stdout and stderr in the order they arrived, cut
    /// at twice the limit; else empty.
    pub combined: Vec<u8>,
    /// stdout passed the output limit and was cut.
    pub stdout_truncated: bool,
    /// stderr passed the output limit and was cut.
    pub stderr_truncated: bool,
}

impl StepOutcome {
    /// A step that ended with `status` before it ran: no exit, no output, no usage.
    pub fn blank(status: StepStatus) -> Self {
        StepOutcome {
            status,
            exit_code: None,
            signal: None,
            usage: Usage::default(),
            message: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            combined: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
        }
    }

    /// A step that ended with `status` before it ran, saying why.
    pub fn failed(status: StepStatus, message: impl Into<String>) -> Self {
        StepOutcome {
            message: Some(message.into()),
            ..Self::blank(status)
        }
    }
}

/// Outcome of one step (API.md's step statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    RuntimeError,
    Signaled,
    TimeLimit,
    WallTimeLimit,
    MemoryLimit,
    OutputLimit,
    FileSizeLimit,
    SecurityViolation,
    InternalError,
}

/// Resource accounting of one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_ms: f64,
    pub user_ms: f64,
    pub sys_ms: f64,
    pub wall_ms: f64,
    pub memory_peak_bytes: u64,
    pub oom_killed: bool,
    pub pids_peak: Option<u64>,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
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
    /// Stack size (RLIMIT_STACK), MiB, at most `memory_mb`; `None`: the memory limit
    /// (at most 1 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_mb: Option<u64>,
}

impl Limits {
    /// Each limit with its field name, in declaration order.
    pub fn entries(&self) -> [(&'static str, u64); 7] {
        [
            ("cpu_ms", self.cpu_ms),
            ("wall_ms", self.wall_ms),
            ("memory_mb", self.memory_mb),
            ("pids", self.pids),
            ("output_bytes", self.output_bytes),
            ("file_size_bytes", self.file_size_bytes),
            ("disk_mb", self.disk_mb),
        ]
    }
}

/// Why the server killed a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// CPU time passed the limit.
    Cpu,
    /// stdout or stderr passed `output_bytes`.
    Output,
    /// The wall limit passed without a report from the init.
    Wall,
}

/// Everything known about how a step ended, for `verdict`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// How the job process ended.
    pub exit: Option<ExitKind>,
    /// A forbidden system call made by any process of the container.
    pub violation: Option<Violation>,
    /// Why it never started.
    pub failure: Option<StartFailure>,
    /// Why the server killed it.
    pub killed: Option<KillReason>,
    /// The init killed it at the wall limit.
    pub wall_timeout: bool,
    /// CPU time used, ns.
    pub cpu_ns: u64,
    /// CPU limit, ns.
    pub cpu_limit_ns: u64,
    /// OOM kills in the container during the step.
    pub oom_kills: u64,
}

/// The step status from the evidence, most specific cause first.
pub fn verdict(ev: &Evidence) -> StepStatus {
    match (&ev.failure, ev.killed) {
        (Some(StartFailure::Setup(_)), _) => return StepStatus::InternalError,
        (Some(StartFailure::Exec(_)), _) => return StepStatus::RuntimeError,
        _ => {}
    }
    // Whatever else happened, an attempt on the sandbox is what the run is.
    if ev.violation.is_some() {
        return StepStatus::SecurityViolation;
    }
    if ev.killed == Some(KillReason::Output) {
        return StepStatus::OutputLimit;
    }
    // An OOM kill is the definite event: a cgroup at its memory limit also burns CPU and
    // time in reclaim, so the time limits it pushed past come second.
    if ev.oom_kills > 0 && ev.exit != Some(ExitKind::Code(0)) {
        return StepStatus::MemoryLimit;
    }
    let signal = match ev.exit {
        Some(ExitKind::Signal(s)) => Some(s),
        _ => None,
    };
    if ev.killed == Some(KillReason::Cpu)
        || ev.cpu_ns > ev.cpu_limit_ns
        || signal == Some(libc::SIGXCPU)
    {
        return StepStatus::TimeLimit;
    }
    if ev.wall_timeout || ev.killed == Some(KillReason::Wall) {
        return StepStatus::WallTimeLimit;
    }
    match ev.exit {
        Some(ExitKind::Code(0)) => StepStatus::Ok,
        Some(ExitKind::Code(_)) => StepStatus::RuntimeError,
        Some(ExitKind::Signal(libc::SIGXFSZ)) => StepStatus::FileSizeLimit,
        Some(ExitKind::Signal(libc::SIGSYS)) => StepStatus::SecurityViolation,
        Some(ExitKind::Signal(_)) => StepStatus::Signaled,
        None => StepStatus::InternalError,
    }
}

/// The user part of `cpu_ns`. The total is exact (the scheduler's own clock); the kernel
/// splits it into user and system time by sampling at ticks (v1's `cpuacct.usage_user`),
/// so the split is scaled to the exact total: user + sys = cpu, always.
pub fn split_user(cpu_ns: u64, user_ns: u64, sys_ns: u64) -> u64 {
    let sampled = user_ns as u128 + sys_ns as u128;
    if sampled == 0 {
        return cpu_ns;
    }
    // user <= sampled: the share is at most cpu_ns, which fits.
    u64::try_from(u128::from(cpu_ns) * u128::from(user_ns) / sampled).unwrap_or(cpu_ns)
}

/// CPU time `pid` (a whole process) has used, ns, by its CPU-time clock: the kernel's
/// `MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)`, what `clock_getcpuclockid` returns.
/// `None` once the process is gone.
pub fn process_cpu_ns(pid: libc::pid_t) -> Option<u64> {
    let clock = (!(pid as libc::clockid_t) << 3) | 2;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; an invalid clock id is an error, not UB.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    if r != 0 {
        return None;
    }
    let (secs, nanos) = (
        u64::try_from(ts.tv_sec).ok()?,
        u64::try_from(ts.tv_nsec).ok()?,
    );
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// The conventional name of a signal, e.g. `SIGKILL`.
pub fn signal_name(sig: i32) -> Option<String> {
    nix::sys::signal::Signal::try_from(sig)
        .ok()
        .map(|s| s.as_str().to_string())
}

/// Tasks of a container's cgroup that are not the job's: the container's init and the
/// run's init (see `warmbox_inside::runinit`).
pub const OWN_TASKS: u64 = 2;

/// The cgroup limits of a step. The two inits are in the cgroup too, so `pids` gets
/// [`OWN_TASKS`] more: the job's budget is what the request says.
pub fn cgroup_limits(l: &Limits, cpu_cores: Option<f64>) -> CgroupLimits {
    CgroupLimits {
        memory_bytes: l.memory_mb << 20,
        pids: l.pids + OWN_TASKS,
        cpu_cores,
    }
}

/// The init-side limits for a step.
pub fn job_limits(l: &Limits) -> JobLimits {
    JobLimits {
        wall_ms: l.wall_ms,
        cpu_secs: l.cpu_ms.div_ceil(1000) + 1,
        file_size_bytes: l.file_size_bytes,
        stack_bytes: l.stack_mb.map_or((l.memory_mb << 20).min(1 << 30), |s| {
            (s << 20).min(l.memory_mb << 20)
        }),
        open_files: 512,
        processes: l.pids,
        disk_bytes: l.disk_mb << 20,
    }
}

/// A sealed, read-only memfd holding `data`: the job's stdin, fed without a writer task
/// and without any deadlock whatever its size.
fn stdin_memfd(data: &[u8]) -> std::io::Result<OwnedFd> {
    use std::io::Write;
    // SAFETY: the name is a valid C string; memfd_create returns a new fd or -1.
    let raw = unsafe {
        libc::memfd_create(
            c"stdin".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd we own.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
    file.write_all(data)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our fd with integer arguments.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Sealed against writes, so the job may share our description; just rewind it.
    use std::io::Seek;
    file.rewind()?;
    Ok(file.into())
}

/// A pipe: (async read end for us, write end for the job).
fn output_pipe(limit: u64) -> std::io::Result<(tokio::net::unix::pipe::Receiver, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        .map_err(std::io::Error::from)?;
    // The job's end blocks like any normal stdout.
    nix::fcntl::fcntl(
        w.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .map_err(std::io::Error::from)?;
    // A larger pipe means fewer wake-ups for chatty programs; best effort, and only where
    // the output may be large (the default 64 KiB costs nothing to set up).
    if limit > 64 << 10 {
        // SAFETY: fcntl on our fd with integer arguments.
        unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    }
    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(r)?;
    Ok((rx, w))
}

/// One output stream being read, kept up to a limit.
struct Capture {
    kept: Vec<u8>,
    total: u64,
    limit: u64,
    eof: bool,
}

impl Capture {
    fn new(limit: u64) -> Self {
        Capture {
            kept: Vec::new(),
            total: 0,
            limit,
            eof: false,
        }
    }

    /// Takes a chunk; returns true when the limit has just been passed.
    fn take(&mut self, chunk: &[u8]) -> bool {
        let was_over = self.total > self.limit;
        self.total += chunk.len() as u64;
        let room = usize::try_from(self.limit.saturating_sub(self.kept.len() as u64))
            .unwrap_or(usize::MAX);
        self.kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        !was_over && self.total > self.limit
    }

    fn truncated(&self) -> bool {
        self.total > self.limit
    }
}

/// Reads from `rx` into `buf` (cleared first; up to its capacity, which is not zeroed for
/// it); never ready once it is at EOF or when there is no pipe to read.
async fn read_some(
    rx: Option<&mut tokio::net::unix::pipe::Receiver>,
    buf: &mut Vec<u8>,
    eof: bool,
) -> std::io::Result<usize> {
    match rx {
        Some(rx) if !eof => {
            buf.clear();
            rx.read_buf(buf).await
        }
        _ => std::future::pending().await,
    }
}

/// Sleeps until `deadline`; never ready without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// A job's stdin and stdout given by the caller instead of warmbox's own (an interactive
/// problem's cross-connected pipes): its `spec.stdin` is then unused and its stdout not
/// captured.
#[derive(Debug)]
pub struct Piped {
    /// The job's fd 0.
    pub stdin: OwnedFd,
    /// The job's fd 1.
    pub stdout: OwnedFd,
}

impl Container {
    /// Runs `spec` as this container's one job. `Err` is warmbox's own failure; every
    /// outcome of the user's program, including limits hit, is an `Ok(StepOutcome)`.
    pub async fn run(&mut self, spec: &StepSpec) -> Result<StepOutcome, SandboxError> {
        self.run_io(spec, None).await
    }

    /// Runs `spec` with its stdin and stdout connected to `io`.
    pub async fn run_piped(
        &mut self,
        spec: &StepSpec,
        io: Piped,
    ) -> Result<StepOutcome, SandboxError> {
        self.run_io(spec, Some(io)).await
    }

    async fn run_io(
        &mut self,
        spec: &StepSpec,
        io: Option<Piped>,
    ) -> Result<StepOutcome, SandboxError> {
        let r = self.run_watched(spec, io).await;
        self.doubt_on(r)
    }

    /// After a run: whether it casts doubt on the container (see [`Container::recycle`]):
    /// what it did, how it ended, or a figure of it the next run's would show.
    fn doubt_after(
        ready: Option<&super::container::ReadyState>,
        status: StepStatus,
        hard_killed: bool,
    ) -> Option<&'static str> {
        match status {
            _ if hard_killed => Some("fallback_kill"),
            StepStatus::SecurityViolation => Some("security_violation"),
            StepStatus::InternalError => Some("internal_error"),
            _ if ready.is_some_and(|r| !r.peak_resettable) => Some("memory_peak"),
            _ => None,
        }
    }

    async fn run_watched(
        &mut self,
        spec: &StepSpec,
        io: Option<Piped>,
    ) -> Result<StepOutcome, SandboxError> {
        let l = spec.limits;
        let host = |what: &str| {
            let what = format!("container {}: {what}", self.id);
            move |source| SandboxError::Host { what, source }
        };
        let limits = cgroup_limits(&l, spec.cpu_cores);
        if limits != self.limits {
            self.cgroup().set_limits(&limits)?;
            self.limits = limits;
        }
        let base = self.cgroup().start_accounting()?;
        // The init shares the cgroup; what it spends on the run (receiving and passing the
        // job, reaping, reporting) is taken off, so that limits and figures are the job's
        // processes' alone. Unreadable (the init is gone): nothing is taken off.
        let init_pid = self.pid;
        // The init's clock is read after the cgroup's at the start and before it at each
        // reading (`init_spent`, then the cgroup): what the init spends between two reads is then never taken
        // off without being in the cgroup's figure, so the job's figure is never below
        // its own clock (on a slow host, e.g. emulated, the gap was tens of ms).
        let init_base = process_cpu_ns(init_pid);
        let init_spent = || match (init_base, process_cpu_ns(init_pid)) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        let job_cpu =
            |init: u64, cgroup_ns: u64| cgroup_ns.saturating_sub(base.cpu_ns).saturating_sub(init);

        // Pipes only for what is captured: none for stdout when the caller gives the job's
        // stdio (`io`), none for stderr when it is stdout's pipe (`Merged`).
        let (mut out_rx, stdin, out_w) = match io {
            None => {
                let (rx, w) = output_pipe(l.output_bytes).map_err(host("stdout pipe"))?;
                let stdin = stdin_memfd(&spec.stdin).map_err(host("stdin memfd"))?;
                (Some(rx), stdin, w)
            }
            Some(p) => (None, p.stdin, p.stdout),
        };
        let (mut err_rx, err_w) = match spec.output {
            OutputMode::Merged => (None, None),
            _ => {
                let (rx, w) = output_pipe(l.output_bytes).map_err(host("stderr pipe"))?;
                (Some(rx), Some(w))
            }
        };
        let job = ToInit::Run(JobSpec {
            argv: spec.argv.clone(),
            env: spec.env.clone(),
            limits: job_limits(&l),
        });
        let err_fd = err_w.as_ref().unwrap_or(&out_w).as_raw_fd();
        let fds = [stdin.as_raw_fd(), out_w.as_raw_fd(), err_fd];
        self.send(&job, &[], &fds).await?;
        self.job_sent = true;
        self.runs += 1;
        let start = Instant::now();
        // Only the job holds the write ends now, so EOF means every writer is gone.
        drop((stdin, out_w, err_w));

        let cpu_limit_ns = l.cpu_ms * 1_000_000;
        let cores = spec
            .cpu_cores
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) as f64)
            .max(0.01);
        let wall_deadline = start + Duration::from_millis(l.wall_ms) + WALL_SLACK;
        let mut kill_deadline: Option<Instant> = None;
        let mut hard_killed = false;

        let mut out = Capture::new(l.output_bytes);
        out.eof = out_rx.is_none();
        let mut err = Capture::new(l.output_bytes);
        err.eof = err_rx.is_none();
        let mut combined = (spec.output == OutputMode::Interleaved)
            .then(|| Capture::new(l.output_bytes.saturating_mul(2)));
        let interleave = |c: &mut Option<Capture>, chunk: &[u8]| {
            if let Some(c) = c {
                c.take(chunk);
            }
        };
        let mut killed: Option<KillReason> = None;
        let mut exited: Option<FromInit> = None;
        let mut drain_deadline: Option<Instant> = None;
        // Read into without zeroing: most runs write little or nothing.
        let mut obuf = Vec::with_capacity(64 * 1024);
        let mut ebuf = Vec::with_capacity(64 * 1024);
        let mut next_poll = start + POLL_MIN;
        let id = self.id.clone();

        let cgroup = self.cgroup.as_deref().ok_or_else(|| SandboxError::Init {
            id: id.clone(),
            message: "cgroup already removed".into(),
        })?;
        let chan = self.chan.as_mut().ok_or_else(|| SandboxError::Init {
            id: id.clone(),
            message: "channel already closed".into(),
        })?;
        let (mut rd, mut wr) = chan.split();
        let mut report = std::pin::pin!(channel::recv(&mut rd));
        let mut report_done = false;

        loop {
            if exited.is_some() && out.eof && err.eof {
                break;
            }
            if let Some(d) = drain_deadline {
                if Instant::now() >= d {
                    tracing::info!(container = %id, "output pipes still open after the job ended (a job kept a write end alive); ending the step");
                    break;
                }
            }
            let mut kill = None;
            tokio::select! {
                r = read_some(out_rx.as_mut(), &mut obuf, out.eof) => match r {
                    Ok(0) | Err(_) => out.eof = true,
                    Ok(n) => {
                        interleave(&mut combined, &obuf[..n]);
                        if out.take(&obuf[..n]) { kill = Some(KillReason::Output) }
                    }
                },
                r = read_some(err_rx.as_mut(), &mut ebuf, err.eof) => match r {
                    Ok(0) | Err(_) => err.eof = true,
                    Ok(n) => {
                        interleave(&mut combined, &ebuf[..n]);
                        if err.take(&ebuf[..n]) { kill = Some(KillReason::Output) }
                    }
                },
                r = &mut report, if !report_done => {
                    report_done = true;
                    match r {
                        Ok(f) => match f.msg {
                            m @ FromInit::Exited { .. } => {
                                exited = Some(m);
                                drain_deadline = Some(Instant::now() + DRAIN_GRACE);
                            }
                            FromInit::Error { message } => return Err(SandboxError::Init { id, message }),
                            other => return Err(SandboxError::Init { id, message: format!("unexpected reply {other:?}") }),
                        },
                        // We killed the init ourselves: no report comes.
                        Err(_) if hard_killed => {}
                        Err(source) => return Err(SandboxError::Channel { id, source }),
                    }
                },
                // Once the job has ended, its pipes get a bounded grace: a job can keep a
                // write end alive after every process is gone (its stdout sent over a unix
                // socket in a reference cycle lives until the kernel's garbage collector
                // runs, seconds to minutes later), and nothing else wakes this loop then.
                _ = sleep_until_some(drain_deadline), if drain_deadline.is_some() => {}
                _ = tokio::time::sleep_until(next_poll.into()), if exited.is_none() => {
                    let now = Instant::now();
                    let init = init_spent();
                    let used = job_cpu(init, cgroup.cpu_ns()?);
                    if used > cpu_limit_ns {
                        kill = Some(KillReason::Cpu);
                    } else if now >= wall_deadline {
                        kill = Some(KillReason::Wall);
                    }
                    if kill_deadline.is_some_and(|d| now >= d) && !hard_killed {
                        // The init did not report in time (starved by the job, or wedged):
                        // end the container from here and account for it ourselves.
                        if let Some(pidfd) = &self.pidfd {
                            let _ = super::spawn::pidfd_signal(pidfd.as_fd(), libc::SIGKILL);
                        }
                        hard_killed = true;
                        tracing::warn!(container = %id, reason = ?killed, "init did not report after a kill; killed it");
                        exited = Some(FromInit::Exited {
                            exit: Some(ExitKind::Signal(libc::SIGKILL)),
                            failure: None,
                            wall_ns: u64::try_from(start.elapsed().as_nanos())
                                .unwrap_or(u64::MAX),
                            wall_timeout: false,
                            violation: None,
                        });
                        drain_deadline = Some(now + DRAIN_GRACE);
                    }
                    // CPU time grows at most `cores` times as fast as the clock.
                    // `as` from f64 saturates; `cores` is positive.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let left = (cpu_limit_ns.saturating_sub(used) as f64 / cores) as u64;
                    let left = Duration::from_nanos(left);
                    next_poll = (now + left.clamp(POLL_MIN, POLL_MAX))
                        .min(wall_deadline.max(now + POLL_MIN))
                        .min(kill_deadline.unwrap_or(wall_deadline).max(now + POLL_MIN));
                },
            }
            if let (Some(reason), None) = (kill, killed) {
                killed = Some(reason);
                kill_deadline = Some(Instant::now() + KILL_GRACE);
                next_poll = next_poll.min(Instant::now() + KILL_GRACE);
                if channel::send_plain(&mut wr, &ToInit::Kill).await.is_err() {
                    // The init is gone or not reading: kill it at the next poll.
                    kill_deadline = Some(Instant::now());
                    next_poll = Instant::now();
                }
            }
        }

        let Some(FromInit::Exited {
            exit,
            failure,
            wall_ns,
            wall_timeout,
            violation,
        }) = exited
        else {
            return Err(SandboxError::Init {
                id,
                message: "no exit report".into(),
            });
        };
        let init = init_spent();
        let usage = cgroup.usage()?;
        let ev = Evidence {
            exit,
            violation,
            failure: failure.clone(),
            killed,
            wall_timeout,
            cpu_ns: job_cpu(init, usage.cpu_ns),
            cpu_limit_ns,
            // The counter is the cgroup's since creation: what earlier runs met is not
            // this one's.
            oom_kills: usage
                .oom_kills
                .saturating_sub(base.oom_kills.max(self.oom_seen)),
        };
        self.oom_seen = self.oom_seen.max(usage.oom_kills);
        let status = verdict(&ev);
        if let Some(why) = Self::doubt_after(self.ready.as_deref(), status, hard_killed) {
            self.doubt.get_or_insert(why);
        }
        self.pids_peak_seen = usage.pids_peak;
        let user_ns = split_user(
            ev.cpu_ns,
            usage.user_ns.saturating_sub(base.user_ns),
            usage.sys_ns.saturating_sub(base.sys_ns),
        );
        let ms = |ns: u64| (ns as f64 / 1e6 * 1000.0).round() / 1000.0;
        let (exit_code, signal) = match exit {
            Some(ExitKind::Code(c)) => (Some(c), None),
            Some(ExitKind::Signal(s)) => (None, Some(s)),
            None => match &failure {
                Some(StartFailure::Exec(_)) => (Some(warmbox_inside::job::EXEC_FAILED), None),
                _ => (None, None),
            },
        };
        let message = match (failure, violation) {
            (Some(StartFailure::Exec(m)), _) => Some(m),
            (Some(StartFailure::Setup(m)), _) => Some(format!("sandbox setup failed: {m}")),
            (None, Some(v)) => Some(format!(
                "forbidden system call {} ({}) by process {} of the container",
                super::seccomp::syscall_name(v.nr.into()).unwrap_or("unknown"),
                v.nr,
                v.pid
            )),
            (None, None) => None,
        };
        Ok(StepOutcome {
            status,
            exit_code,
            signal,
            stdout_truncated: out.truncated(),
            stderr_truncated: err.truncated(),
            usage: Usage {
                cpu_ms: ms(ev.cpu_ns),
                user_ms: ms(user_ns),
                sys_ms: ms(ev.cpu_ns - user_ns),
                wall_ms: ms(wall_ns),
                memory_peak_bytes: usage.memory_peak_bytes,
                oom_killed: ev.oom_kills > 0,
                // The two inits are among the cgroup's tasks; the job's count is the rest.
                pids_peak: usage.pids_peak.map(|p| p.saturating_sub(OWN_TASKS)),
                stdout_bytes: out.kept.len() as u64,
                stderr_bytes: err.kept.len() as u64,
            },
            message,
            stdout: out.kept,
            stderr: err.kept,
            combined: combined.map(|c| c.kept).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_clock_of_another_process() {
        // A child that burns CPU until killed: its clock, read from here, grows by what it
        // used; once it is reaped, there is no clock.
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("spawn sh");
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        let first = process_cpu_ns(pid).expect("a live child's clock");
        let until = Instant::now() + Duration::from_secs(5);
        while process_cpu_ns(pid).expect("clock") < first + 20_000_000 {
            assert!(Instant::now() < until, "the child's clock did not move");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert_eq!(process_cpu_ns(pid), None);
        let me = libc::pid_t::try_from(std::process::id()).unwrap();
        assert!(process_cpu_ns(me).is_some_and(|n| n > 0));
    }

    fn ev(exit: ExitKind) -> Evidence {
        Evidence {
            exit: Some(exit),
            cpu_limit_ns: 1_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn verdicts() {
        use ExitKind::*;
        assert_eq!(verdict(&ev(Code(0))), StepStatus::Ok);
        assert_eq!(verdict(&ev(Code(3))), StepStatus::RuntimeError);
        assert_eq!(verdict(&ev(Signal(libc::SIGSEGV))), StepStatus::Signaled);
        assert_eq!(
            verdict(&ev(Signal(libc::SIGSYS))),
            StepStatus::SecurityViolation
        );
        assert_eq!(
            verdict(&ev(Signal(libc::SIGXFSZ))),
            StepStatus::FileSizeLimit
        );
        assert_eq!(verdict(&ev(Signal(libc::SIGXCPU))), StepStatus::TimeLimit);
        let mut e = ev(Signal(libc::SIGKILL));
        e.oom_kills = 1;
        assert_eq!(verdict(&e), StepStatus::MemoryLimit);
        // Reclaim at the memory limit can push the time limits over: memory still wins.
        e.wall_timeout = true;
        e.killed = Some(KillReason::Cpu);
        assert_eq!(verdict(&e), StepStatus::MemoryLimit);
        e.killed = Some(KillReason::Output);
        assert_eq!(verdict(&e), StepStatus::OutputLimit);
        let mut e = ev(Signal(libc::SIGKILL));
        e.wall_timeout = true;
        assert_eq!(verdict(&e), StepStatus::WallTimeLimit);
        e.killed = Some(KillReason::Cpu);
        assert_eq!(verdict(&e), StepStatus::TimeLimit);
        let mut e = ev(Signal(libc::SIGKILL));
        e.killed = Some(KillReason::Wall);
        assert_eq!(verdict(&e), StepStatus::WallTimeLimit);
        let mut e = ev(Code(0));
        e.cpu_ns = 1_000_000_001;
        assert_eq!(verdict(&e), StepStatus::TimeLimit);
        let e = Evidence {
            failure: Some(StartFailure::Exec("exec x: ENOENT".into())),
            ..Default::default()
        };
        assert_eq!(verdict(&e), StepStatus::RuntimeError);
        let e = Evidence {
            failure: Some(StartFailure::Setup("landlock".into())),
            ..Default::default()
        };
        assert_eq!(verdict(&e), StepStatus::InternalError);
        // A violation outranks how the job ended (it was killed for it, or even exited 0
        // when a child made the call).
        let mut e = ev(Code(0));
        e.violation = Some(Violation { nr: 101, pid: 3 });
        e.killed = Some(KillReason::Output);
        assert_eq!(verdict(&e), StepStatus::SecurityViolation);
    }

    #[test]
    fn capture_keeps_the_limit_and_counts_the_rest() {
        let mut c = Capture::new(5);
        assert!(!c.take(b"abc"));
        assert!(c.take(b"defg"));
        assert!(!c.take(b"h"));
        assert_eq!(c.kept, b"abcde");
        assert_eq!(c.total, 8);
        assert!(c.truncated());
    }

    #[test]
    fn user_and_sys_add_up_to_cpu() {
        assert_eq!(split_user(400, 300, 100), 300);
        assert_eq!(split_user(400, 150, 150), 200);
        assert_eq!(split_user(400, 0, 0), 400);
        assert_eq!(split_user(400, 0, 50), 0);
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9).as_deref(), Some("SIGKILL"));
        assert_eq!(signal_name(1000), None);
    }

    #[test]
    fn stdin_memfd_is_read_only_and_complete() {
        use std::io::{Read, Write};
        let data = vec![7u8; 3 << 20];
        let fd = stdin_memfd(&data).unwrap();
        let mut f = std::fs::File::from(fd);
        assert!(f.write_all(b"x").is_err(), "sealed against writes");
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }
}
