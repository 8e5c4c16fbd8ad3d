//! The run's init: one per run, made by the container's init while the container waits.
//!
//! A container serves many runs; what a run may leave behind must not reach the next. So
//! each run's job process is born in fresh namespaces: the container's init clones this
//! small process with `CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNS | CLONE_NEWCGROUP`. It is
//! PID 1 of the run's pid namespace, mounts that namespace's own `/proc` (masked as the
//! container's is) in its own copy of the container's mounts, forks the job process (PID 2,
//! which sandboxes itself as always), reaps whatever is reparented to it, and when the job
//! process ends writes the job's exact wait status to the init and waits: the init first
//! takes any notification a process of the run left on the seccomp listener (parked in a
//! forbidden call as the job ended), then kills it. Its end ends the pid namespace: the
//! kernel kills every process the job left, and the run's SysV IPC, POSIX message queues
//! and mounts go with it.
//!
//! The job is not PID 1 itself because PID 1 of a namespace is special: the kernel drops
//! the signals it sends itself whose action is the default, so `abort()` or `kill -SEGV $$`
//! would not end it the way they end any program.
//!
//! The run's init keeps the init's privileges (the container's root, whose capabilities are
//! sealed already) and a different uid from the job's: the job can neither signal it nor
//! read it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::landlock::PreparedRuleset;
use crate::seccomp::CompiledPolicy;
use crate::{job, mount, Error};

/// A run's init and its job process, made and waiting for the job.
#[derive(Debug)]
pub struct RunInit {
    /// The run's init, in the container's pid namespace.
    pub pid: libc::pid_t,
    /// Our end of the job process's socket (see `job`).
    pub job_sock: UnixStream,
    /// Where the run's init writes the job process's wait status (4 bytes, native order)
    /// when the job process ends (it then waits to be killed); non-blocking.
    pub status: OwnedFd,
}

/// The namespaces each run gets fresh. The cgroup namespace too: between runs the server
/// may move the container's init into a child cgroup (v1 pids: a fresh peak counter), and
/// the job must see its own cgroup as the root, as in the container's first run.
const RUN_NAMESPACES: libc::c_int =
    libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP;

/// Clones the run's init, which forks the job process with `job_sock` (the job end of the
/// job's socket pair). Returns the run's init's pid and the read end of its status pipe.
/// `proc_plan` is the run's `/proc` (`mount::proc_plan`, made once per container).
pub fn spawn(
    job_sock: UnixStream,
    proc_plan: &[mount::Op],
    landlock: PreparedRuleset,
    seccomp: Option<&CompiledPolicy>,
) -> Result<(libc::pid_t, OwnedFd), Error> {
    let (status_r, status_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
            .map_err(Error::sys("pipe2 for the run's status"))?;
    let flags = libc::c_ulong::from((RUN_NAMESPACES | libc::SIGCHLD).unsigned_abs());
    // SAFETY: clone without a new stack is fork with namespace flags: the child runs on a
    // copy of our stack. The init is single-threaded, so the child may run any code.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        return Err(Error::last_os_error("clone the run's init"));
    }
    if pid == 0 {
        drop(status_r);
        run(job_sock, proc_plan, status_w, landlock, seccomp);
    }
    // `syscall` widens the kernel's pid_t result.
    #[allow(clippy::cast_possible_truncation)]
    let pid = pid as libc::pid_t;
    Ok((pid, status_r))
}

/// The run's init, in the child. Never returns.
fn run(
    mut job_sock: UnixStream,
    proc_plan: &[mount::Op],
    status: OwnedFd,
    landlock: PreparedRuleset,
    seccomp: Option<&CompiledPolicy>,
) -> ! {
    // The run's `/proc`: a proc of the new pid namespace, masked like the container's.
    if let Err(e) = mount::apply(proc_plan) {
        report_setup_failure(&mut job_sock, &format!("the run's /proc: {e}"));
    }
    // SAFETY: this process is single-threaded (a fork of the single-threaded init).
    let job = unsafe { libc::fork() };
    if job < 0 {
        let e = std::io::Error::last_os_error();
        report_setup_failure(&mut job_sock, &format!("fork the job process: {e}"));
    }
    if job == 0 {
        drop(status);
        job::run(job_sock, Some(landlock), seccomp);
    }
    drop(job_sock);
    drop(landlock);
    let wait_status = reap_until(job);
    let bytes = wait_status.to_ne_bytes();
    // SAFETY: writing 4 bytes from a live buffer to our own pipe (64 KiB of room: it never
    // blocks).
    unsafe { libc::write(status.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    // Our exit would end the pid namespace, and with it a process of the run parked in a
    // forbidden call, whose notification would go unseen: the container's init takes what
    // its seccomp listener holds first, then kills us (and the namespace with us).
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}

/// Reaps every child (the job process, and the orphans reparented to us) until the job
/// process ends; returns its wait status. Should the job process be gone unseen (it cannot
/// be), a SIGKILL status.
fn reap_until(job: libc::pid_t) -> libc::c_int {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == job {
            return status;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return libc::SIGKILL;
        }
    }
}

/// Tells the init through the job's socket that the run could not be set up (as the job
/// process itself would), and exits.
fn report_setup_failure(sock: &mut UnixStream, message: &str) -> ! {
    use std::io::Write;
    let mut report = vec![job::SETUP];
    report.extend_from_slice(message.as_bytes());
    let _ = sock.write_all(&report);
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(job::SETUP_FAILED) }
}

/// Reads the job process's wait status the run's init left in `status` (after it was
/// reaped); `None` when it left none (it was killed first).
pub fn read_status(status: &OwnedFd) -> Option<libc::c_int> {
    let mut buf = [0u8; 4];
    // SAFETY: reading at most 4 bytes into a live buffer; the fd is non-blocking.
    let n = unsafe { libc::read(status.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    (n == 4).then(|| libc::c_int::from_ne_bytes(buf))
}
