//! The container init: PID 1 of the container's pid namespace, single-threaded: the fork
//! server's clone child runs it at once, with its end of the channel to the server. It sets
//! the container up, reports ready, then serves runs: write files, run, report, hand files
//! back, and between two runs reset what a job could write (`ToInit::Reset`).
//!
//! The init is trusted: it runs as the container's root (an unprivileged host uid) and never
//! runs user code itself. Each run's job process is born in fresh pid, IPC and mount
//! namespaces under a run's init (`runinit`), which the init makes while the container
//! waits; when the run's init ends, the kernel ends everything the job started. When the
//! server closes the channel the init exits, and the kernel kills whatever is left in the
//! container.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::{mkdirat, Mode};

use crate::landlock::{self, LandlockRules, PreparedRuleset};
use crate::locks::{LockCall, Mediator, OwnFiles};
use crate::mount::{self, Op, BOX_GID, BOX_UID, HOSTNAME, WRITABLE};
use crate::protocol::{
    self, ExitKind, FileMeta, Frame, FromInit, InitConfig, JobSpec, StartFailure, ToInit,
    Violation, MAX_PATH_BYTES, MAX_PATH_DEPTH,
};
use crate::runinit::{self, RunInit};
use crate::seccomp::CompiledPolicy;
use crate::{job, net, Error};

/// Entry point of the init, on the channel `fd`. Returns the process exit code.
pub fn main(fd: RawFd) -> i32 {
    // SAFETY: the server passed us this socket fd on the command line; nothing else in
    // this fresh process owns it.
    let sock = unsafe { UnixStream::from_raw_fd(fd) };
    reset_inherited_state();
    let mut init = Init {
        sock,
        job: None,
        listener: None,
        locks: None,
        sigfd: None,
        seccomp: None,
        run_proc: Vec::new(),
        disk_bytes: 0,
    };
    match init.serve() {
        Ok(()) => 0,
        Err(message) => {
            let _ = protocol::write_frame(&mut init.sock, &FromInit::Error { message }, &[]);
            1
        }
    }
}

struct Init {
    sock: UnixStream,
    /// The next run's init and job process, sandboxed and waiting.
    job: Option<RunInit>,
    /// The job's seccomp listener: forbidden calls and lock calls are reported here.
    listener: Option<OwnedFd>,
    /// Answers the lock calls (`crate::locks`); made afresh with each writable tmpfs.
    locks: Option<Mediator>,
    /// SIGCHLD as a file, made at setup so a run does not.
    sigfd: Option<SignalFd>,
    /// The job processes' seccomp policy, kept for every run's job process.
    seccomp: Option<CompiledPolicy>,
    /// Each run's `/proc` (`mount::proc_plan`): the same for every run, made once.
    run_proc: Vec<Op>,
    disk_bytes: u64,
}

/// What the server's process handed down that the container must not keep: signal
/// dispositions it ignored (exec keeps those) and its stdin/stdout (which a caller may be
/// reading to EOF). stderr stays, for the init's own last words.
fn reset_inherited_state() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == libc::SIGPIPE {
            continue;
        }
        // SAFETY: installing SIG_DFL is always valid; invalid numbers just fail.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        // SAFETY: dup2 of an fd we own onto 0 and 1.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

impl Init {
    /// Sets the container up, then serves the server's requests until it closes the
    /// channel. The init's errors end here, as the text of the `FromInit::Error` the
    /// server gets.
    fn serve(&mut self) -> Result<(), String> {
        let frame: Frame<ToInit> = match protocol::read_frame(&mut self.sock) {
            Ok(f) => f,
            Err(protocol::ProtocolError::Closed) => return Ok(()),
            Err(e) => return Err(format!("read setup: {e}")),
        };
        let ToInit::Setup(config) = frame.msg else {
            return Err("first message was not setup".into());
        };
        self.setup(&config, &frame.payload)
            .map_err(|e| format!("container {}: {e}", config.id))?;
        self.reply(&FromInit::Ready, &[])?;
        loop {
            let frame: Frame<ToInit> = match protocol::read_frame(&mut self.sock) {
                Ok(f) => f,
                Err(protocol::ProtocolError::Closed) => return Ok(()),
                Err(e) => return Err(format!("read request: {e}")),
            };
            match frame.msg {
                ToInit::Setup(_) => return Err("setup sent twice".into()),
                ToInit::WriteFiles { files, disk_bytes } => {
                    self.resize_disk(disk_bytes)?;
                    write_files(&files, &frame.payload)?;
                    self.reply(&FromInit::FilesWritten, &[])?;
                }
                ToInit::Run(spec) => {
                    let exited = self.run_job(&spec, frame.fds)?;
                    self.reply(&exited, &[])?;
                }
                ToInit::Reset { disk_bytes } => {
                    self.reset(disk_bytes).map_err(|e| format!("reset: {e}"))?;
                    self.reply(&FromInit::Ready, &[])?;
                }
                ToInit::Kill => {}
                ToInit::Collect {
                    max_bytes,
                    max_files,
                } => {
                    let out = collect_files(max_bytes, max_files)?;
                    let reply = FromInit::Files {
                        files: out.files,
                        truncated: out.truncated,
                    };
                    self.reply(&reply, &out.payload)?;
                }
            }
        }
    }

    fn reply(&mut self, msg: &FromInit, payload: &[u8]) -> Result<(), String> {
        protocol::write_frame(&mut self.sock, msg, payload).map_err(|e| format!("reply: {e}"))
    }

    /// The whole container setup, in order, one kernel concern per call. The order matters:
    /// the cgroup namespace is entered once we are in our cgroup; landlock's rule paths
    /// exist once mounted; the bounding set is emptied and SIGCHLD blocked before the first
    /// run is made, so that its processes inherit the one and we lose none of the other.
    fn setup(&mut self, config: &InitConfig, payload: &[u8]) -> Result<(), Error> {
        unshare_cgroup_namespace()?;
        self.seccomp = seccomp_policy(config, payload)?;
        mount_own_filesystems(config.disk_bytes)?;
        self.run_proc = mount::proc_plan(&mount::proc_kind);
        self.disk_bytes = config.disk_bytes;
        self.locks = Some(Mediator::new(OwnFiles::record(&WRITABLE)?));
        set_hostname()?;
        bring_up_loopback()?;
        job::seal_capabilities()?;
        block_sigchld()?;
        self.sigfd = Some(SignalFd::new()?);
        self.make_run()
    }

    /// Makes the next run's init and job process: the job process sandboxes itself at once
    /// (landlock's rules name the writable mounts of now) and installs seccomp last.
    fn make_run(&mut self) -> Result<(), Error> {
        let ruleset = landlock::prepare(&landlock_rules())?;
        let (run, listener) = spawn_job(&self.run_proc, ruleset, self.seccomp.as_ref())?;
        self.job = Some(run);
        self.listener = listener;
        Ok(())
    }

    /// Between two runs: ends whatever is left of the last (nothing, after a run: its end
    /// reaped it all), checks that no socket of it is left in the container's network
    /// namespace, mounts a fresh writable tmpfs of `disk_bytes` in place of the old one,
    /// and makes the next run.
    fn reset(&mut self, disk_bytes: u64) -> Result<(), Error> {
        self.job = None;
        self.listener = None;
        self.locks = None;
        end_all();
        sockets_left()?;
        mount::apply(&mount::reset_plan(disk_bytes))?;
        self.disk_bytes = disk_bytes;
        self.locks = Some(Mediator::new(OwnFiles::record(&WRITABLE)?));
        self.make_run()
    }

    /// Resizes the one tmpfs of `/box`, `/tmp` and `/dev/shm` (through any of its binds)
    /// when `bytes` differs from its size. Done before the files are written: the kernel
    /// refuses a size or an inode count below what is in use.
    fn resize_disk(&mut self, bytes: u64) -> Result<(), String> {
        if bytes != self.disk_bytes {
            let op = Op::RemountTmpfs {
                target: "/box".into(),
                options: mount::disk_options(bytes),
            };
            mount::apply(std::slice::from_ref(&op)).map_err(|e| e.to_string())?;
            self.disk_bytes = bytes;
        }
        Ok(())
    }

    fn run_job(&mut self, spec: &JobSpec, fds: Vec<OwnedFd>) -> Result<FromInit, String> {
        if fds.len() != 3 {
            return Err(format!(
                "run needs 3 fds (stdin, stdout, stderr), got {}",
                fds.len()
            ));
        }
        self.resize_disk(spec.limits.disk_bytes)?;
        let RunInit {
            pid,
            mut job_sock,
            status,
        } = self
            .job
            .take()
            .ok_or("no job process: the container was not reset after its last run")?;
        let sigfd = self
            .sigfd
            .take()
            .ok_or("no SIGCHLD signalfd: setup did not run")?;
        let head = protocol::encode_head(spec, 0).map_err(|e| e.to_string())?;
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let start = Instant::now();
        match protocol::send_with_fds(job_sock.as_raw_fd(), &head, &raw) {
            Ok(n) if n == head.len() => {}
            Ok(n) => job_sock
                .write_all(&head[n..])
                .map_err(|e| format!("send the job: {e}"))?,
            Err(e) => return Err(format!("send the job: {e}")),
        }
        // The job holds the only copies of its stdio now: the server sees EOF exactly
        // when every process in the container is gone.
        drop(fds);
        let failure = read_failure(&mut job_sock);
        drop(job_sock);

        let deadline = start + Duration::from_millis(spec.limits.wall_ms);
        let mut listener = self.listener.take();
        let mut locks = self
            .locks
            .take()
            .ok_or("no lock mediator: setup did not run")?;
        let mut violation = None;
        let mut exit = None;
        let mut wall_timeout = false;
        while exit.is_none() {
            let mut timeout = deadline.saturating_duration_since(Instant::now());
            if timeout.is_zero() {
                if !wall_timeout {
                    wall_timeout = true;
                    kill_all();
                }
                // Killed: only the SIGCHLD is awaited now.
                timeout = Duration::from_millis(100);
            }
            let watch = listener.as_ref().map_or(-1, |l| l.as_raw_fd());
            if watch >= 0 {
                let now = Instant::now();
                if let Some(v) = locks.tick(watch, now) {
                    violation.get_or_insert(v);
                    kill_all();
                }
                if let Some(at) = locks.next_tick() {
                    timeout = timeout.min(at.saturating_duration_since(now));
                }
            }
            // Every fd that is ready is served in the same pass: a stream of lock calls
            // (answered, not killed) keeps the listener always readable, and must hide
            // neither the job's end nor the server's kill.
            let ready = poll4(
                self.sock.as_raw_fd(),
                sigfd.fd.as_raw_fd(),
                watch,
                status.as_raw_fd(),
                timeout,
            )?;
            if ready.notification {
                if let Some(v) = receive(watch, &mut locks) {
                    violation.get_or_insert(v);
                    kill_all();
                }
            } else if ready.listener_gone {
                listener = None;
            }
            if ready.socket {
                match protocol::read_frame::<ToInit>(&mut self.sock) {
                    Ok(Frame {
                        msg: ToInit::Kill, ..
                    }) => kill_all(),
                    Ok(other) => return Err(format!("unexpected {:?} during a job", other.msg)),
                    Err(protocol::ProtocolError::Closed) => {
                        kill_all();
                        std::process::exit(0);
                    }
                    Err(e) => return Err(format!("read during job: {e}")),
                }
            }
            // The job process ended: the run's init wrote its status and waits, so that a
            // notification of a process of the run is still there to take (below).
            if ready.status {
                if let Some(st) = runinit::read_status(&status) {
                    exit = Some(exit_kind(st));
                }
            }
            if ready.signal {
                sigfd.drain();
                if reap_until(pid) && exit.is_none() {
                    // The run's init ended before the job's status came: killed (the wall
                    // limit, a violation, the server's kill), the job with it. A status
                    // written just before counts.
                    exit = Some(
                        runinit::read_status(&status)
                            .map_or(ExitKind::Signal(libc::SIGKILL), exit_kind),
                    );
                }
            }
        }
        self.sigfd = Some(sigfd);
        // Saturates after 584 years.
        let wall_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // A process of the container may be parked in a forbidden call right now (the
        // job's end raced its report): take what the listener holds before the kill.
        // (Bounded: the processes still running may keep making lock calls.)
        if let Some(l) = &listener {
            for _ in 0..MAX_NOTIFICATIONS_AT_END {
                if violation.is_some() || !poll_in(l.as_raw_fd()) {
                    break;
                }
                violation = receive(l.as_raw_fd(), &mut locks);
            }
        }
        // Now the run's init (waiting, or gone) and its pid namespace, and everything else
        // of the container: nothing may outlive the job.
        end_all();
        Ok(FromInit::Exited {
            exit: if failure.is_some() { None } else { exit },
            failure,
            wall_ns,
            wall_timeout,
            violation,
        })
    }
}

/// A cgroup namespace of our own. We are in our cgroup by now (v2: from the clone; v1: the
/// server moved us before sending the setup): the new namespace is rooted there.
fn unshare_cgroup_namespace() -> Result<(), Error> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
        .map_err(Error::sys("unshare(CLONE_NEWCGROUP)"))
}

/// The seccomp policy the server sent with the setup, if any.
fn seccomp_policy(config: &InitConfig, payload: &[u8]) -> Result<Option<CompiledPolicy>, Error> {
    if !config.has_seccomp {
        return Ok(None);
    }
    Ok(Some(CompiledPolicy::from_bytes(payload)?))
}

/// What is this container's alone, mounted on the fork server's template (which our mount
/// namespace copied): the one tmpfs of `disk_bytes` and the container's `/proc`.
fn mount_own_filesystems(disk_bytes: u64) -> Result<(), Error> {
    let ops = mount::container_plan(disk_bytes, &mount::proc_kind);
    Ok(mount::apply(&ops)?)
}

/// The UTS namespace's hostname.
fn set_hostname() -> Result<(), Error> {
    nix::unistd::sethostname(HOSTNAME).map_err(Error::sys("sethostname"))
}

/// The network namespace's loopback, up.
fn bring_up_loopback() -> Result<(), Error> {
    net::loopback_up().map_err(Error::io("bring up lo"))
}

/// What the job process may reach: read and execute everything, write below the writable
/// mounts, and write (not create) the device nodes.
fn landlock_rules() -> LandlockRules {
    LandlockRules {
        read_exec: vec![PathBuf::from("/")],
        read_write: WRITABLE.iter().map(PathBuf::from).collect(),
        write_files: mount::DEVICES
            .iter()
            .map(|d| PathBuf::from(format!("/dev/{d}")))
            .collect(),
    }
}

/// How many notifications the init takes off the listener after the job's end, looking for
/// a forbidden call: more than the container can have parked at once (its pids limit).
const MAX_NOTIFICATIONS_AT_END: usize = 4096;

/// Reaps every child that has ended; returns whether the run's init `run` was among them.
fn reap_until(run: libc::pid_t) -> bool {
    let mut found = false;
    loop {
        // SAFETY: waitpid with a null status pointer is always valid.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if r <= 0 {
            return found;
        }
        found |= r == run;
    }
}

/// A wait status as the job's end.
fn exit_kind(status: libc::c_int) -> ExitKind {
    if libc::WIFSIGNALED(status) {
        ExitKind::Signal(libc::WTERMSIG(status))
    } else {
        ExitKind::Code(libc::WEXITSTATUS(status))
    }
}

/// Kills every other process of the container and reaps them all.
fn end_all() {
    loop {
        kill_all();
        // SAFETY: waitpid with a null status pointer is always valid.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) };
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            break;
        }
    }
}

/// Refuses a reset while a socket of the last run is left in the container's network
/// namespace: one in flight in a unix socket, a TCP connection in TIME_WAIT, anything the
/// next run could see. The kernel keeps per-namespace counts: `/proc/net/protocols` has the
/// sockets in use of every protocol (unix, TCP, UDP, raw, netlink, ...), `/proc/net/sockstat`
/// the TCP sockets in TIME_WAIT (`tw`). (The socket tables themselves, `/proc/net/tcp` and
/// the like, walk the host's whole hash tables: milliseconds.)
fn sockets_left() -> Result<(), Error> {
    let read = |path: &str| std::fs::read_to_string(path).map_err(Error::io("read /proc/net"));
    let mut left: Vec<String> = read("/proc/net/protocols")?
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let sockets: u64 = fields.nth(1)?.parse().ok()?;
            (sockets > 0).then(|| format!("{sockets} {name}"))
        })
        .collect();
    let tw = read("/proc/net/sockstat")?
        .lines()
        .find_map(|l| l.strip_prefix("TCP: "))
        .and_then(|fields| {
            let f: Vec<&str> = fields.split_whitespace().collect();
            f.iter()
                .position(|k| *k == "tw")
                .and_then(|i| f.get(i + 1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    if tw > 0 {
        left.push(format!("{tw} TCP in TIME_WAIT"));
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(Error::JobProcess(format!(
            "sockets of the last run are left: {}",
            left.join(", ")
        )))
    }
}

fn kill_all() {
    // SAFETY: kill(-1) from PID 1 signals every other process of our pid namespace.
    unsafe { libc::kill(-1, libc::SIGKILL) };
}

/// Reads the job process's answer to its job: EOF at a successful exec (its socket is
/// CLOEXEC), else its failure report.
fn read_failure(sock: &mut UnixStream) -> Option<StartFailure> {
    use std::io::Read;
    let mut buf = Vec::new();
    let _ = sock.read_to_end(&mut buf);
    let (&kind, msg) = buf.split_first()?;
    let msg = String::from_utf8_lossy(msg).into_owned();
    Some(match kind {
        job::EXEC => StartFailure::Exec(msg),
        _ => StartFailure::Setup(msg),
    })
}

/// Makes a run's init, whose job process sandboxes itself and reports ready with its
/// seccomp listener (or why not).
fn spawn_job(
    proc_plan: &[Op],
    ruleset: PreparedRuleset,
    seccomp: Option<&CompiledPolicy>,
) -> Result<(RunInit, Option<OwnedFd>), Error> {
    use std::io::Read;
    let (mut ours, theirs) = UnixStream::pair().map_err(Error::io("socketpair for the job"))?;
    let (pid, status) = runinit::spawn(theirs, proc_plan, ruleset, seccomp)?;
    let run = |job_sock| RunInit {
        pid,
        job_sock,
        status,
    };
    let mut first = [0u8; 1];
    let (n, mut fds) = protocol::recv_with_fds(ours.as_raw_fd(), &mut first)
        .map_err(|e| Error::JobProcess(format!("read from the job process: {e}")))?;
    match (n, first[0]) {
        (1, job::READY) if seccomp.is_none() || fds.len() == 1 => {
            let listener = fds.pop();
            Ok((run(ours), listener))
        }
        (1, job::READY) => Err(Error::JobProcess(format!(
            "the job process sent {} seccomp listeners, not 1",
            fds.len()
        ))),
        (1, _) => {
            let mut rest = Vec::new();
            let _ = ours.read_to_end(&mut rest);
            Err(Error::JobProcess(format!(
                "job process setup failed: {}",
                String::from_utf8_lossy(&rest)
            )))
        }
        _ => Err(Error::JobProcess("job process died during setup".into())),
    }
}

/// What `poll4` found ready (nothing: the timeout).
struct Ready {
    /// A child ended.
    signal: bool,
    /// A notification waits on the listener.
    notification: bool,
    /// No process is left under the filter (and no notification waits).
    listener_gone: bool,
    /// A message from the server, or its end of the channel closed.
    socket: bool,
    /// The run's init wrote the job process's status.
    status: bool,
}

/// Waits for a child's end, a message from the server, a notification on the seccomp
/// listener (`-1`: none to watch), or the job's status from the run's init; reports all
/// that are ready.
fn poll4(
    sock: RawFd,
    sig: RawFd,
    listener: RawFd,
    status: RawFd,
    timeout: Duration,
) -> Result<Ready, String> {
    let pfd = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [pfd(sig), pfd(listener), pfd(sock), pfd(status)];
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // Round up so that we never spin just short of the deadline.
    let ms = if ms == 0 && !timeout.is_zero() { 1 } else { ms };
    loop {
        // SAFETY: `fds` is a valid array of four pollfd (a negative fd is ignored).
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 4, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        let notification = fds[1].revents & libc::POLLIN != 0;
        return Ok(Ready {
            signal: fds[0].revents != 0,
            notification,
            // POLLHUP: no process is left under the filter.
            listener_gone: !notification && fds[1].revents != 0,
            socket: fds[2].revents != 0,
            status: fds[3].revents & libc::POLLIN != 0,
        });
    }
}

/// Whether `fd` is readable right now.
fn poll_in(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; zero timeout.
    unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLIN != 0 }
}

/// Takes one notification off the seccomp listener. A lock call is answered by `locks`;
/// any other call is forbidden: a process of the container made it (it is blocked in it;
/// the container is killed next).
fn receive(listener: RawFd, locks: &mut Mediator) -> Option<Violation> {
    // SAFETY: seccomp_notif is plain old data; the kernel requires it zeroed.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: a valid listener fd and a pointer to a seccomp_notif of the right size.
    let r = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut notif) };
    if r != 0 {
        // The caller was interrupted before we got to it (ENOENT): nothing to do.
        return None;
    }
    match LockCall::from_notification(notif.data.nr, &notif.data.args) {
        Some(call) => {
            locks.handle(listener, &notif, call);
            None
        }
        None => Some(Violation {
            nr: notif.data.nr,
            pid: notif.pid,
        }),
    }
}

/// SIGCHLD blocked, to be read from a signalfd (see [`SignalFd`]).
fn block_sigchld() -> Result<(), Error> {
    // SAFETY: a sigset initialised by sigemptyset/sigaddset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) < 0 {
            return Err(Error::last_os_error("block SIGCHLD"));
        }
    }
    Ok(())
}

struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    fn new() -> Result<Self, Error> {
        // SAFETY: a sigset initialised by sigemptyset/sigaddset; signalfd returns a new fd.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(Error::last_os_error("signalfd"));
            }
            Ok(SignalFd {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    fn drain(&self) {
        let mut buf = [0u8; 128 * 8];
        // SAFETY: reading into a live buffer of its own length; the fd is non-blocking.
        while unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

/// Checks a relative path from the server: normal components only, at most
/// [`MAX_PATH_DEPTH`] of them and [`MAX_PATH_BYTES`] in all (the bounds of the read-back,
/// wider than a request's own files).
fn box_path(rel: &str) -> Result<Vec<&str>, String> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("bad file path {:?}", short(rel)));
    }
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    if parts.len() > MAX_PATH_DEPTH || rel.len() > MAX_PATH_BYTES {
        return Err(format!(
            "file path {:?} has {} components and {} bytes; at most {MAX_PATH_DEPTH} and \
             {MAX_PATH_BYTES}",
            short(rel),
            parts.len(),
            rel.len()
        ));
    }
    Ok(parts)
}

/// The start of a path, for a message that stays short whatever the path.
fn short(path: &str) -> String {
    const SHOWN: usize = 64;
    if path.len() <= SHOWN {
        return path.to_string();
    }
    let mut end = SHOWN;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// `/box`, opened: files are written and read relative to it, one directory fd at a
/// time, so no path is ever longer than one component (PATH_MAX does not apply) and no
/// symlink is ever followed.
fn open_box() -> Result<OwnedFd, String> {
    openat(AT_FDCWD, "/box", DIR_FLAGS, Mode::empty()).map_err(|e| format!("open /box: {e}"))
}

fn write_files(files: &[FileMeta], payload: &[u8]) -> Result<(), String> {
    let root = open_box()?;
    let mut off = 0usize;
    for f in files {
        let content = usize::try_from(f.len)
            .ok()
            .and_then(|len| payload.get(off..off.checked_add(len)?))
            .ok_or_else(|| format!("payload too short for {}", short(&f.path)))?;
        off += content.len();
        let parts = box_path(&f.path)?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(format!("bad file path {:?}", short(&f.path)));
        };
        let mut parent: Option<OwnedFd> = None;
        for dir in dirs {
            let at = parent.as_ref().unwrap_or(&root);
            parent = Some(
                mkdir_owned_at(at, dir)
                    .map_err(|e| format!("mkdir {:?} of {}: {e}", short(dir), short(&f.path)))?,
            );
        }
        let at = parent.as_ref().unwrap_or(&root);
        let mode = if f.executable { 0o755 } else { 0o644 };
        let fd = openat(
            at,
            *name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| format!("create {}: {e}", short(&f.path)))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(content)
            .map_err(|e| format!("write {}: {e}", short(&f.path)))?;
        std::os::unix::fs::fchown(&file, Some(BOX_UID), Some(BOX_GID))
            .map_err(|e| format!("chown {}: {e}", short(&f.path)))?;
        // The umask may have narrowed the mode given at creation.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", short(&f.path)))?;
    }
    Ok(())
}

/// Opens the directory `name` of `at`, made (0755, the job's) when missing.
fn mkdir_owned_at(at: &OwnedFd, name: &str) -> nix::Result<OwnedFd> {
    let made = match mkdirat(at, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) => true,
        Err(nix::errno::Errno::EEXIST) => false,
        Err(e) => return Err(e),
    };
    let dir = openat(at, name, DIR_FLAGS, Mode::empty())?;
    if made {
        nix::unistd::fchown(&dir, Some(BOX_UID.into()), Some(BOX_GID.into()))?;
        // The umask may have narrowed the mode given to mkdir.
        nix::sys::stat::fchmod(&dir, Mode::from_bits_truncate(0o755))?;
    }
    Ok(dir)
}

/// What the read-back of `/box` gathers: the files and their contents, and why it left
/// some out (the first bound it met).
struct Collected {
    files: Vec<FileMeta>,
    payload: Vec<u8>,
    max_bytes: u64,
    max_files: u64,
    truncated: Option<String>,
}

impl Collected {
    fn cut(&mut self, why: impl FnOnce() -> String) {
        if self.truncated.is_none() {
            self.truncated = Some(why());
        }
    }
}

/// Reads the regular files of `/box` (symlinks and special files are skipped, never
/// followed), within the given bounds and [`MAX_PATH_DEPTH`] and [`MAX_PATH_BYTES`]. It
/// walks by directory fd (at most [`MAX_PATH_DEPTH`] open at once), so a tree deeper than
/// PATH_MAX allows is read as far as the bounds go, not failed.
fn collect_files(max_bytes: u64, max_files: u64) -> Result<Collected, String> {
    let mut out = Collected {
        files: Vec::new(),
        payload: Vec::new(),
        max_bytes,
        max_files,
        truncated: None,
    };
    collect_dir(open_box()?, "", 0, &mut out)?;
    Ok(out)
}

/// Collects the directory `dir`, at `rel` (`depth` components) under `/box`.
fn collect_dir(dir: OwnedFd, rel: &str, depth: usize, out: &mut Collected) -> Result<(), String> {
    use nix::dir::{Dir, Type};
    let shown = || {
        if rel.is_empty() {
            "/box".to_string()
        } else {
            short(rel)
        }
    };
    let mut dir = Dir::from_fd(dir).map_err(|e| format!("read {}: {e}", shown()))?;
    let mut entries: Vec<(String, Option<Type>)> = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(|e| format!("read {}: {e}", shown()))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        // The server carries names as UTF-8: a lossy copy could name another file.
        match std::str::from_utf8(name) {
            Ok(name) => entries.push((name.to_string(), entry.file_type())),
            Err(_) => out.cut(|| {
                format!(
                    "{:?} in {} is not UTF-8, and only UTF-8 names are carried",
                    short(&String::from_utf8_lossy(name)),
                    shown()
                )
            }),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let at = |name: &str| format!("{rel}{}{name}", if rel.is_empty() { "" } else { "/" });
    let mut subdirs = Vec::new();
    for (name, kind) in entries {
        match kind {
            Some(Type::Directory) => subdirs.push(name),
            Some(Type::File) => collect_file(&dir, &name, &at(&name), depth + 1, out),
            _ => {}
        }
    }
    for name in subdirs {
        let path = at(&name);
        // O_NOFOLLOW|O_DIRECTORY: a symlink (or anything else) swapped in is not entered.
        let Ok(sub) = openat(&dir, name.as_str(), DIR_FLAGS, Mode::empty()) else {
            continue;
        };
        if depth + 1 >= MAX_PATH_DEPTH {
            // Its files would be deeper than the bound: an empty directory carries
            // nothing anyway, anything else is left out.
            let empty = Dir::from_fd(sub).is_ok_and(|mut d| {
                d.iter()
                    .flatten()
                    .all(|e| matches!(e.file_name().to_bytes(), b"." | b".."))
            });
            if !empty {
                out.cut(|| {
                    format!(
                        "a directory {} levels deep is not empty ({}), and files at most \
                         {MAX_PATH_DEPTH} path components deep are carried",
                        depth + 1,
                        short(&path)
                    )
                });
            }
            continue;
        }
        collect_dir(sub, &path, depth + 1, out)?;
    }
    Ok(())
}

/// Collects the regular file `name` of `dir`, at `rel` (`depth` components) under `/box`.
fn collect_file(dir: &nix::dir::Dir, name: &str, rel: &str, depth: usize, out: &mut Collected) {
    use std::io::Read;
    debug_assert!(depth <= MAX_PATH_DEPTH);
    if rel.len() > MAX_PATH_BYTES {
        out.cut(|| {
            format!(
                "a file's path is {} bytes long ({}), and paths of at most {MAX_PATH_BYTES} \
                 bytes are carried",
                rel.len(),
                short(rel)
            )
        });
        return;
    }
    let Ok(fd) = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let mut f = std::fs::File::from(fd);
    let Ok(meta) = f.metadata() else { return };
    if !meta.is_file() {
        return;
    }
    if out.files.len() as u64 >= out.max_files {
        let max = out.max_files;
        out.cut(|| format!("more than {max} files"));
        return;
    }
    if out.payload.len() as u64 + meta.len() > out.max_bytes {
        let max = out.max_bytes;
        out.cut(|| format!("more than {max} bytes of files"));
        return;
    }
    let before = out.payload.len();
    if (&mut f)
        .take(meta.len())
        .read_to_end(&mut out.payload)
        .is_err()
    {
        out.payload.truncate(before);
        return;
    }
    out.files.push(FileMeta {
        path: rel.to_string(),
        len: (out.payload.len() - before) as u64,
        executable: meta.permissions().mode() & 0o111 != 0,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_paths_stay_in_box() {
        assert_eq!(box_path("a/b.c").unwrap(), ["a", "b.c"]);
        for bad in ["", "../x", "/etc/passwd", "a/../../x", "./a"] {
            assert!(box_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn box_paths_are_bounded_with_a_short_message() {
        let deep = vec!["a"; MAX_PATH_DEPTH].join("/");
        assert_eq!(box_path(&deep).unwrap().len(), MAX_PATH_DEPTH);
        let deeper = format!("{deep}/a");
        assert_eq!(
            box_path(&deeper).unwrap_err(),
            format!(
                "file path {:?} has 65 components and 129 bytes; at most 64 and 4096",
                format!("{}…", &deeper[..64])
            )
        );
        let long = "x".repeat(200) + "/" + &"y".repeat(4000);
        let err = box_path(&long).unwrap_err();
        assert!(err.len() < 200, "{err}");
    }
}
