//! The job process: forked by the (single-threaded) init, it takes its stdio, applies
//! rlimits, becomes the unprivileged box user with no capabilities, sets no_new_privs,
//! applies landlock, installs seccomp last, and execs the user's command.
//!
//! Because the init is single-threaded, this code may allocate; still, everything is
//! built before the first irreversible step so that a failure can be reported whole.
//! Failures go to the init over a CLOEXEC pipe: `E` + message when exec itself failed (the
//! user's command), `S` + message when the sandbox setup failed (warmbox's fault).

use std::ffi::CString;
use std::os::fd::RawFd;

use crate::container::landlock::PreparedRuleset;
use crate::container::mount::{BOX_GID, BOX_UID};
use crate::protocol::JobSpec;
use crate::sandbox::seccomp::CompiledPolicy;

/// Exit code of a job process whose exec failed (as shells do).
pub const EXEC_FAILED: i32 = 127;
/// Exit code of a job process whose sandbox setup failed.
pub const SETUP_FAILED: i32 = 126;

/// Everything the job process needs, owned by the init until the fork.
pub struct JobProcess<'a> {
    /// What to run.
    pub spec: &'a JobSpec,
    /// stdin, stdout, stderr as received from the server.
    pub stdio: [RawFd; 3],
    /// Write end of the failure pipe (CLOEXEC).
    pub report: RawFd,
    /// Landlock ruleset built at container setup.
    pub landlock: Option<PreparedRuleset>,
    /// seccomp programs.
    pub seccomp: Option<&'a CompiledPolicy>,
}

/// Runs in the forked child; never returns.
pub fn run(job: JobProcess<'_>) -> ! {
    let report = job.report;
    let err = match setup_and_exec(job) {
        Err(Failure::Exec(m)) => (b'E', m, EXEC_FAILED),
        Err(Failure::Setup(m)) => (b'S', m, SETUP_FAILED),
    };
    let mut msg = vec![err.0];
    msg.extend_from_slice(err.1.as_bytes());
    // SAFETY: `report` is our open pipe fd and `msg` a live buffer of the given length.
    unsafe {
        libc::write(report, msg.as_ptr().cast(), msg.len());
        libc::_exit(err.2)
    }
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

fn setup_and_exec(job: JobProcess<'_>) -> Result<std::convert::Infallible, Failure> {
    let spec = job.spec;
    let argv = cstrings(&spec.argv).map_err(|e| Failure::Exec(format!("argv: {e}")))?;
    let envp = cstrings(&spec.env).map_err(|e| Failure::Exec(format!("env: {e}")))?;
    let Some(arg0) = spec.argv.first() else {
        return Err(Failure::Exec("empty command".into()));
    };
    let candidates = exec_candidates(arg0, &spec.env)?;

    reset_signals()?;
    // SAFETY: setsid has no memory-safety preconditions; a new session detaches the job
    // from any controlling terminal.
    if unsafe { libc::setsid() } < 0 {
        return Err(errno_setup("setsid"));
    }
    for (target, &fd) in job.stdio.iter().enumerate() {
        // SAFETY: dup2 on fds we own; target 0..=2.
        if unsafe { libc::dup2(fd, target as RawFd) } < 0 {
            return Err(errno_setup(&format!("dup2 {fd} -> {target}")));
        }
    }
    // Every other fd closes at exec; the report pipe and the landlock ruleset stay usable
    // until then.
    // SAFETY: close_range only changes fd flags.
    if unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) } < 0 {
        return Err(errno_setup("close_range(3, ~0, CLOEXEC)"));
    }
    std::env::set_current_dir("/box").map_err(|e| setup("chdir /box", e))?;
    apply_rlimits(spec)?;
    drop_privileges()?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(errno_setup("prctl(PR_SET_NO_NEW_PRIVS)"));
    }
    if let Some(ruleset) = job.landlock {
        ruleset.restrict_self().map_err(|e| setup("landlock", e))?;
    }
    if let Some(policy) = job.seccomp {
        policy.install().map_err(|e| setup("seccomp", e))?;
    }

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

fn reset_signals() -> Result<(), Failure> {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL is always valid; invalid numbers just fail.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty set initialised by sigemptyset.
    unsafe {
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
    set_rlimit(libc::RLIMIT_CPU, "CPU", l.cpu_secs, l.cpu_secs + 1)?;
    set_rlimit(libc::RLIMIT_MEMLOCK, "MEMLOCK", 0, 0)?;
    set_rlimit(libc::RLIMIT_MSGQUEUE, "MSGQUEUE", 0, 0)?;
    Ok(())
}

/// Becomes the box user with every capability set empty, for good: the bounding set is
/// emptied and the securebits locked so that no exec can bring a capability back.
fn drop_privileges() -> Result<(), Failure> {
    use caps::CapSet;
    caps::clear(None, CapSet::Bounding).map_err(|e| setup("drop bounding capabilities", e))?;
    let bits = libc::SECBIT_NOROOT
        | libc::SECBIT_NOROOT_LOCKED
        | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
        | libc::SECBIT_KEEP_CAPS_LOCKED
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0, 0, 0) } < 0 {
        return Err(errno_setup("prctl(PR_SET_SECUREBITS)"));
    }
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
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| setup(&format!("clear {set:?} capabilities"), e))?;
    }
    let left = caps::read(None, CapSet::Permitted).map_err(|e| setup("read capabilities", e))?;
    if !left.is_empty() {
        return Err(setup(
            "drop capabilities",
            format!("still permitted: {left:?}"),
        ));
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
