//! The job process. The init forks it while the container warms up; it sandboxes itself
//! completely at once — no capabilities, the box user, no_new_privs, landlock, seccomp
//! last — and only then waits for its job. When the job arrives it takes its stdio, applies
//! the job's rlimits and execs. So the costly part (the kernel prepares each seccomp filter
//! at attach time) is paid before a container is handed out, never on a run's clock, and
//! a container whose sandbox cannot be built fails at creation, never mid-run.
//!
//! The init is single-threaded, so this child may allocate. It talks to the init over a
//! CLOEXEC socket: `R` (with the seccomp listener attached) when sandboxed and waiting,
//! `S` + message when the sandbox setup
//! failed (warmbox's fault), `E` + message when exec failed (the user's command); a
//! successful exec closes the socket, which the init reads as EOF.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::landlock::PreparedRuleset;
use crate::mount::{BOX_GID, BOX_UID};
use crate::protocol::{self, JobSpec};
use crate::seccomp::CompiledPolicy;

/// The nice value of a job process: the server's own (the init waits above it). A job
/// process made after the container's first run (by a run's init that inherited the init's
/// raised priority) takes it itself; raising one's nice value needs no capability.
pub const JOB_NICE: i32 = 0;

/// Exit code of a job process whose exec failed (as shells do).
pub const EXEC_FAILED: i32 = 127;
/// Exit code of a job process whose sandbox setup failed.
pub const SETUP_FAILED: i32 = 126;

/// The job process is sandboxed and waits for its job.
pub const READY: u8 = b'R';
/// Prefix of a setup failure report.
pub const SETUP: u8 = b'S';
/// Prefix of an exec failure report.
pub const EXEC: u8 = b'E';

/// Runs in the forked child: sandbox, wait for the job on `sock`, exec. Never returns.
pub fn run(
    mut sock: UnixStream,
    landlock: Option<PreparedRuleset>,
    seccomp: Option<&CompiledPolicy>,
) -> ! {
    let fail = match sandbox(landlock, seccomp) {
        Ok(listener) => {
            // The listener goes to the init and leaves this process at once: whoever holds
            // it could let a forbidden call through.
            let fds: Vec<RawFd> = listener.iter().map(|l| l.as_raw_fd()).collect();
            let sent = protocol::send_with_fds(sock.as_raw_fd(), &[READY], &fds);
            drop(listener);
            match sent {
                Ok(1) => wait_and_exec(&mut sock),
                Ok(_) => Failure::Setup("report ready: short write".into()),
                Err(e) => Failure::Setup(format!("report ready: {e}")),
            }
        }
        Err(f) => f,
    };
    let (kind, msg, code) = match fail {
        Failure::Exec(m) => (EXEC, m, EXEC_FAILED),
        Failure::Setup(m) => (SETUP, m, SETUP_FAILED),
    };
    let mut report = vec![kind];
    report.extend_from_slice(msg.as_bytes());
    let _ = send(&mut sock, &report);
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

fn send(sock: &mut UnixStream, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    sock.write_all(bytes)
}

enum Failure {
    Exec(String),
    Setup(String),
}

fn setup(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Setup(format!("{what}: {e}"))
}

fn errno_setup(what: &str) -> Failure {
    setup(what, std::io::Error::last_os_error())
}

/// Everything that does not depend on the job, in the order that keeps each step possible:
/// privileges go before landlock and seccomp, seccomp is last.
fn sandbox(
    landlock: Option<PreparedRuleset>,
    seccomp: Option<&CompiledPolicy>,
) -> Result<Option<OwnedFd>, Failure> {
    reset_signals()?;
    // Down to the job's priority where the init's is above it (lower is refused without
    // CAP_SYS_NICE, and then the server sets it when the container is ready).
    // SAFETY: setpriority with integer arguments, on this process.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, JOB_NICE) };
    // SAFETY: setsid has no memory-safety preconditions; a new session detaches the job
    // from any controlling terminal.
    if unsafe { libc::setsid() } < 0 {
        return Err(errno_setup("setsid"));
    }
    // Every inherited fd closes at exec (the init socket too: its EOF tells the init that
    // exec succeeded); the landlock ruleset stays usable until then.
    // libc types the flag `c_uint` and the argument `c_int`; the flag is 1 << 2.
    #[allow(clippy::cast_possible_wrap)]
    const CLOEXEC: libc::c_int = libc::CLOSE_RANGE_CLOEXEC as libc::c_int;
    // SAFETY: close_range only changes fd flags.
    if unsafe { libc::close_range(3, libc::c_uint::MAX, CLOEXEC) } < 0 {
        return Err(errno_setup("close_range(3, ~0, CLOEXEC)"));
    }
    std::env::set_current_dir("/box").map_err(|e| setup("chdir /box", e))?;
    // The OOM killer's first choice is the job and whatever it starts, never the init:
    // files in the tmpfs are charged to the cgroup but to no process, so when no job
    // process is larger than the init, the init would be picked and the run lost. (Raising
    // one's own score needs no capability; lowering the init's would need CAP_SYS_RESOURCE.)
    // (The init is not dumpable, so neither is this fork: its /proc files belong to the
    // host's root. Dumpable for this one write; the uid change below clears it again.)
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) } < 0 {
        return Err(errno_setup("prctl(PR_SET_DUMPABLE)"));
    }
    std::fs::write("/proc/self/oom_score_adj", "1000")
        .map_err(|e| setup("write /proc/self/oom_score_adj", e))?;
    fixed_rlimits()?;
    drop_privileges()?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(errno_setup("prctl(PR_SET_NO_NEW_PRIVS)"));
    }
    if let Some(ruleset) = landlock {
        ruleset.restrict_self().map_err(|e| setup("landlock", e))?;
    }
    match seccomp {
        Some(policy) => policy.install().map_err(|e| setup("seccomp", e)),
        None => Ok(None),
    }
}

/// Under seccomp now: receive the job, take its stdio, set its rlimits, exec.
fn wait_and_exec(sock: &mut UnixStream) -> Failure {
    let frame = match protocol::read_frame::<JobSpec>(sock) {
        Ok(f) => f,
        // The init went away before a job came: nothing to report to.
        // SAFETY: _exit has no preconditions.
        Err(protocol::ProtocolError::Closed) => unsafe { libc::_exit(0) },
        Err(e) => return setup("receive the job", e),
    };
    match exec_job(&frame.msg, frame.fds) {
        Ok(never) => match never {},
        Err(f) => f,
    }
}

fn exec_job(spec: &JobSpec, fds: Vec<OwnedFd>) -> Result<std::convert::Infallible, Failure> {
    if fds.len() != 3 {
        return Err(setup(
            "receive the job",
            format!("{} fds, not 3", fds.len()),
        ));
    }
    let argv = cstrings(&spec.argv).map_err(|e| Failure::Exec(format!("argv: {e}")))?;
    let envp = cstrings(&spec.env).map_err(|e| Failure::Exec(format!("env: {e}")))?;
    let Some(arg0) = spec.argv.first() else {
        return Err(Failure::Exec("empty command".into()));
    };
    let candidates = exec_candidates(arg0, &spec.env)?;
    for (target, fd) in (0..).zip(&fds) {
        // SAFETY: dup2 on fds we own onto 0..=2; the copies are not CLOEXEC.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(errno_setup(&format!("dup2 {} -> {target}", fd.as_raw_fd())));
        }
    }
    drop(fds);
    apply_rlimits(spec)?;

    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let mut first_err = None;
    for path in &candidates {
        // SAFETY: all pointers point into live CStrings and are NULL-terminated arrays.
        unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
        let e = std::io::Error::last_os_error();
        let errno = e.raw_os_error().unwrap_or(0);
        if first_err.is_none() || errno != libc::ENOENT {
            first_err = Some((path.to_string_lossy().into_owned(), e));
        }
        if errno != libc::ENOENT && errno != libc::ENOTDIR && errno != libc::EACCES {
            break;
        }
    }
    let (path, e) =
        first_err.unwrap_or_else(|| (arg0.clone(), std::io::ErrorKind::NotFound.into()));
    Err(Failure::Exec(format!("exec {path}: {e}")))
}

fn cstrings(items: &[String]) -> Result<Vec<CString>, std::ffi::NulError> {
    items.iter().map(|s| CString::new(s.as_bytes())).collect()
}

/// The paths exec tries: `arg0` itself when it has a `/`, else each PATH entry.
fn exec_candidates(arg0: &str, env: &[String]) -> Result<Vec<CString>, Failure> {
    let bad = |e: std::ffi::NulError| Failure::Exec(format!("command: {e}"));
    if arg0.contains('/') {
        return Ok(vec![CString::new(arg0).map_err(bad)?]);
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| CString::new(format!("{d}/{arg0}")).map_err(bad))
        .collect()
}

/// Handlers are reset by exec, but ignored signals stay ignored: undo the one the init's
/// runtime ignores (SIGPIPE; the init reset the rest at start-up), and unblock all.
fn reset_signals() -> Result<(), Failure> {
    // SAFETY: installing SIG_DFL is always valid; the sigset is initialised by sigemptyset.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) < 0 {
            return Err(errno_setup("sigprocmask"));
        }
    }
    Ok(())
}

fn set_rlimit(
    resource: libc::__rlimit_resource_t,
    name: &str,
    soft: u64,
    hard: u64,
) -> Result<(), Failure> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit.
    if unsafe { libc::setrlimit(resource, &lim) } < 0 {
        return Err(errno_setup(&format!("setrlimit({name}, {soft}, {hard})")));
    }
    Ok(())
}

fn apply_rlimits(spec: &JobSpec) -> Result<(), Failure> {
    let l = &spec.limits;
    set_rlimit(libc::RLIMIT_CORE, "CORE", 0, 0)?;
    set_rlimit(
        libc::RLIMIT_FSIZE,
        "FSIZE",
        l.file_size_bytes,
        l.file_size_bytes,
    )?;
    set_rlimit(libc::RLIMIT_STACK, "STACK", l.stack_bytes, l.stack_bytes)?;
    set_rlimit(libc::RLIMIT_NOFILE, "NOFILE", l.open_files, l.open_files)?;
    set_rlimit(libc::RLIMIT_NPROC, "NPROC", l.processes, l.processes)?;
    // The cgroup's CPU accounting is the real limit; this is the kernel's own backstop
    // should the server's watch fail (SIGXCPU at soft, SIGKILL at hard).
    set_rlimit(libc::RLIMIT_CPU, "CPU", l.cpu_secs, l.cpu_secs + 1)
}

/// The rlimits that are the same for every job, set before the job is known.
fn fixed_rlimits() -> Result<(), Failure> {
    set_rlimit(libc::RLIMIT_CORE, "CORE", 0, 0)?;
    set_rlimit(libc::RLIMIT_MEMLOCK, "MEMLOCK", 0, 0)?;
    set_rlimit(libc::RLIMIT_MSGQUEUE, "MSGQUEUE", 0, 0)?;
    // Queued signals are counted per user of the container's namespace, and every
    // container's namespace is owned by the server's root: without this bound one job
    // could take host root's whole quota (timer_create and sigqueue on the host fail).
    set_rlimit(
        libc::RLIMIT_SIGPENDING,
        "SIGPENDING",
        SIGPENDING_MAX,
        SIGPENDING_MAX,
    )
}

/// Signals the processes of one container may have queued at once.
pub const SIGPENDING_MAX: u64 = 1024;

/// Becomes the box user with every capability set empty, for good. The init already
/// emptied the bounding set and locked the securebits (so no exec can bring a capability
/// back); here the setuid fixup clears permitted, effective and ambient, and the
/// inheritable set is cleared explicitly.
fn drop_privileges() -> Result<(), Failure> {
    use caps::CapSet;
    // SAFETY: setgroups with an empty list; setres[ug]id with plain integers.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) < 0 {
            return Err(errno_setup("setgroups([])"));
        }
        if libc::setresgid(BOX_GID, BOX_GID, BOX_GID) < 0 {
            return Err(errno_setup("setresgid(box)"));
        }
        if libc::setresuid(BOX_UID, BOX_UID, BOX_UID) < 0 {
            return Err(errno_setup("setresuid(box)"));
        }
    }
    caps::clear(None, CapSet::Inheritable)
        .map_err(|e| setup("clear inheritable capabilities", e))?;
    for set in [
        CapSet::Permitted,
        CapSet::Effective,
        CapSet::Ambient,
        CapSet::Bounding,
    ] {
        let left = caps::read(None, set).map_err(|e| setup("read capabilities", e))?;
        if !left.is_empty() {
            return Err(setup(
                "drop capabilities",
                format!("{set:?} still has {left:?}"),
            ));
        }
    }
    Ok(())
}

/// Errors sealing the capabilities (in the init).
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The bounding set could not be emptied.
    #[error("drop bounding capabilities: {0}")]
    Bounding(caps::errors::CapsError),
    /// The securebits could not be set and locked.
    #[error("prctl(PR_SET_SECUREBITS): {0}")]
    Securebits(std::io::Error),
}

/// In the init at setup: empties the bounding set and locks the securebits so that the job
/// process (forked later) can never regain a capability, by exec or otherwise.
pub fn seal_capabilities() -> Result<(), SealError> {
    caps::clear(None, caps::CapSet::Bounding).map_err(SealError::Bounding)?;
    let bits = libc::SECBIT_NOROOT
        | libc::SECBIT_NOROOT_LOCKED
        | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
        | libc::SECBIT_KEEP_CAPS_LOCKED
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // The SECBIT_ flags are bits 0 to 7 of a c_int: positive.
    #[allow(clippy::cast_sign_loss)]
    let bits = bits as libc::c_ulong;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) } < 0 {
        return Err(SealError::Securebits(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_candidates_follow_path() {
        let env = vec!["PATH=/a:/b::/c".to_string()];
        let c = exec_candidates("prog", &env).ok().unwrap();
        let c: Vec<_> = c.iter().map(|s| s.to_str().unwrap().to_string()).collect();
        assert_eq!(c, ["/a/prog", "/b/prog", "/c/prog"]);
        let c = exec_candidates("./main", &env).ok().unwrap();
        assert_eq!(c[0].to_str().unwrap(), "./main");
    }

    #[test]
    fn default_path_when_env_has_none() {
        let c = exec_candidates("python3", &[]).ok().unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[1].to_str().unwrap(), "/usr/bin/python3");
    }
}
