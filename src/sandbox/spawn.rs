//! Starting a container: `clone3` into fresh namespaces, then the child immediately
//! re-executes the warmbox binary as the container init.
//!
//! The server is multi-threaded, so between clone and exec the child makes raw syscalls
//! only: everything it needs is built before the clone. It waits for the server's "id maps
//! written" byte, drops the server's supplementary groups, becomes root of its user
//! namespace (so that the exec keeps its namespace capabilities: an exec by a uid that is
//! unmapped in the namespace would clear them) and execs the warmbox binary through an fd
//! opened at start-up (so no host path needs to be traversable by the container's uid).

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `clone3(2)`'s argument block (linux/sched.h, CLONE_ARGS_SIZE_VER2); the libc crate
/// does not have it.
#[repr(C)]
#[derive(Debug, Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The namespaces of every container; the cgroup namespace joins on v2 (at clone time,
/// inside the target cgroup) and on v1 is unshared by the init once it has been moved.
pub const NAMESPACES: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS) as u64;

/// Errors of spawning.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// clone3 failed.
    #[error("clone3(flags {flags:#x}): {source}")]
    Clone {
        flags: u64,
        #[source]
        source: std::io::Error,
    },
    /// Writing an id map or another /proc file of the child failed.
    #[error("write {path}: {source}")]
    IdMap {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The init path or argv contains a NUL.
    #[error("init command: {0}")]
    Command(String),
}

/// Exit code of a pre-exec child that never got the go byte.
pub const NO_GO: i32 = 124;
/// Exit code of a pre-exec child that could not become root of its namespace.
pub const NO_ROOT: i32 = 125;

/// The exec of the init, prepared before the clone.
pub struct InitCommand {
    exe: RawFd,
    argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    child_sock: RawFd,
}

// SAFETY: the raw pointers point into `argv`, which the struct owns and never mutates.
unsafe impl Send for InitCommand {}

impl InitCommand {
    /// `exe __init <fd>` with an empty environment; `exe` is an `O_PATH` fd of the warmbox
    /// binary (see `open_exe`), `child_sock` the init's end of the channel.
    pub fn new(exe: BorrowedFd<'_>, child_sock: RawFd) -> Result<Self, SpawnError> {
        let exe = exe.as_raw_fd();
        let argv = [
            "warmbox-init".to_string(),
            "__init".into(),
            child_sock.to_string(),
        ]
        .into_iter()
        .map(|s| CString::new(s).map_err(|e| SpawnError::Command(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
        let mut argv_ptrs: Vec<_> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        Ok(InitCommand {
            exe,
            argv,
            argv_ptrs,
            envp_ptrs: vec![std::ptr::null()],
            child_sock,
        })
    }
}

/// A started init.
#[derive(Debug)]
pub struct Spawned {
    /// Host pid.
    pub pid: libc::pid_t,
    /// pidfd of the init (CLOEXEC).
    pub pidfd: OwnedFd,
}

/// clone3 with `flags` (plus CLONE_PIDFD, and CLONE_INTO_CGROUP when `cgroup` is given);
/// the child execs `cmd`.
pub fn clone_init(
    cmd: &InitCommand,
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<Spawned, SpawnError> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size passed; without CLONE_VM the child
    // runs on a copy of our memory, so the pointers in `cmd` stay valid in it.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        return Err(SpawnError::Clone {
            flags: args.flags,
            source: std::io::Error::last_os_error(),
        });
    }
    if pid == 0 {
        // SAFETY: only raw syscalls on prepared data; never returns.
        unsafe { child_exec(cmd) }
    }
    let _ = &cmd.argv;
    Ok(Spawned {
        pid: pid as libc::pid_t,
        // SAFETY: clone3 stored a fresh pidfd (CLOEXEC) for us in `pidfd`.
        pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
    })
}

/// The clone child, before exec: raw syscalls only (no allocation, no locks, and none of
/// glibc's set*id wrappers, which would try to reach the parent's other threads).
///
/// # Safety
/// Call only in the child of `clone_init`.
unsafe fn child_exec(cmd: &InitCommand) -> ! {
    let sock = cmd.child_sock;
    libc::syscall(libc::SYS_fcntl, sock, libc::F_SETFD, 0);
    let mut go = 0u8;
    loop {
        let n = libc::syscall(libc::SYS_read, sock, &mut go as *mut u8, 1);
        if n == 1 {
            break;
        }
        if n == 0 || *libc::__errno_location() != libc::EINTR {
            libc::syscall(libc::SYS_exit_group, NO_GO);
        }
    }
    if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) < 0
        || libc::syscall(libc::SYS_setresgid, 0, 0, 0) < 0
        || libc::syscall(libc::SYS_setresuid, 0, 0, 0) < 0
    {
        libc::syscall(libc::SYS_exit_group, NO_ROOT);
    }
    libc::syscall(
        libc::SYS_execveat,
        cmd.exe,
        c"".as_ptr(),
        cmd.argv_ptrs.as_ptr(),
        cmd.envp_ptrs.as_ptr(),
        libc::AT_EMPTY_PATH,
    );
    libc::syscall(libc::SYS_exit_group, 127);
    unreachable!("exit_group returned")
}

/// Opens the warmbox binary for `execveat` (O_PATH, CLOEXEC).
pub fn open_exe(path: &Path) -> std::io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a valid C string; open returns a new fd or -1.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Tells the waiting child that its id maps (and v1 cgroup) are in place.
pub fn send_go(sock: &std::os::unix::net::UnixStream) -> std::io::Result<()> {
    (&*sock).write_all(&[1])
}

/// Maps container uid/gid 0 to `root_id` and the box user to `box_id` on the host.
pub fn write_id_maps(pid: libc::pid_t, root_id: u32, box_id: u32) -> Result<(), SpawnError> {
    use crate::container::mount::{BOX_GID, BOX_UID};
    for (file, inner_box) in [("uid_map", BOX_UID), ("gid_map", BOX_GID)] {
        let path = format!("/proc/{pid}/{file}");
        let map = format!("0 {root_id} 1\n{inner_box} {box_id} 1\n");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(map.as_bytes()))
            .map_err(|source| SpawnError::IdMap { path, source })?;
    }
    Ok(())
}

/// Sends `sig` through a pidfd (no pid-reuse race).
pub fn pidfd_signal(pidfd: BorrowedFd<'_>, sig: i32) -> std::io::Result<()> {
    // SAFETY: a valid pidfd and a null siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps the process behind `pidfd`; with `block` false returns `false` when it still runs.
pub fn pidfd_reap(pidfd: BorrowedFd<'_>, block: bool) -> std::io::Result<bool> {
    // SAFETY: siginfo_t is plain old data.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: a valid pidfd and an out-pointer to a siginfo_t.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                flags,
            )
        };
        if r == 0 {
            // SAFETY: waitid filled `info`; si_pid is 0 when WNOHANG found nothing.
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}
