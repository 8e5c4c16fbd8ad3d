//! Pieces of starting a container: the clone arguments, the namespaces, the id maps, the
//! "go" byte, and pidfd signalling and reaping. The clone itself is the fork server's
//! (`forkserver.rs`): its child waits for the go byte (sent once the id maps are written),
//! drops the host's supplementary groups, becomes root of its user namespace and runs the
//! init.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

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

/// The namespaces of every container at clone time. The cgroup namespace is unshared by
/// the init once it is in its cgroup (v2: from the clone, `CLONE_INTO_CGROUP`; v1: moved
/// by the server before the setup): a cgroup namespace is rooted at its creator's cgroup
/// when it is made, and `clone` makes it before it places the child in the target.
pub const NAMESPACES: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS) as u64;

/// `clone3`'s flag that places the child in the cgroup `CloneArgs::cgroup` (linux/sched.h,
/// Linux 5.7); the libc crate does not have it.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// How a new init gets into its container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Born there: `clone3(CLONE_INTO_CGROUP)` (cgroup v2 on Linux 5.7 and later).
    CloneInto,
    /// Moved there by the server (written into `cgroup.procs`) after the clone, before the
    /// init is sent its setup: cgroup v1, which has no cgroup fd to clone into.
    MoveV1,
    /// As `MoveV1`, on cgroup v2 whose kernel refused `CLONE_INTO_CGROUP` with this errno
    /// (before Linux 5.7: `E2BIG` for the longer argument block, or `EINVAL`).
    MoveRefused(i32),
}

impl Placement {
    /// The placement for a `v2` hierarchy (else v1) given what [`clone_into_cgroup`] found.
    pub fn from_probe(v2: bool, probe: Result<(), i32>) -> Placement {
        match (v2, probe) {
            (false, _) => Placement::MoveV1,
            (true, Ok(())) => Placement::CloneInto,
            (true, Err(errno)) => Placement::MoveRefused(errno),
        }
    }
}

/// Clones a child straight into the v2 cgroup `cgroup` (`clone3(CLONE_INTO_CGROUP)`); the
/// child exits at once and is reaped here. `Ok(Err(errno))` when the kernel does not know
/// the flag (before Linux 5.7: `E2BIG` or `EINVAL`); any other failure is an error.
/// Safe to call from a multi-threaded process: the child makes one async-signal-safe call.
pub fn clone_into_cgroup(cgroup: BorrowedFd<'_>) -> Result<Result<(), i32>, SpawnError> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        // A signal number and an open fd are not negative: `unsigned_abs` keeps them.
        exit_signal: u64::from(libc::SIGCHLD.unsigned_abs()),
        cgroup: u64::from(cgroup.as_raw_fd().unsigned_abs()),
        ..Default::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed; no CLONE_VM, so the child
    // runs on its own copy of our stack and memory, and only calls `_exit`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: `_exit` is async-signal-safe: the child of a multi-threaded process may
        // call it.
        unsafe { libc::_exit(0) };
    }
    if pid < 0 {
        let source = std::io::Error::last_os_error();
        return match source.raw_os_error() {
            Some(errno @ (libc::E2BIG | libc::EINVAL)) => Ok(Err(errno)),
            _ => Err(SpawnError::Clone {
                flags: args.flags,
                source,
            }),
        };
    }
    // `syscall` widens the kernel's pid_t result.
    #[allow(clippy::cast_possible_truncation)]
    let pid = pid as libc::pid_t;
    loop {
        let mut status = 0;
        // SAFETY: waitpid of our own child with an out-pointer to a live int.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(Ok(()));
        }
        // The clone succeeded, which is the answer; ECHILD (SIGCHLD ignored, the child
        // reaped by the kernel) does not change it.
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Ok(Ok(()));
        }
    }
}

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
    /// The fork server failed or is gone.
    #[error("fork server: {0}")]
    ForkServer(String),
}

/// Exit code of an init child that never got the go byte.
pub const NO_GO: i32 = 124;
/// Exit code of an init child that could not become root of its namespace.
pub const NO_ROOT: i32 = 125;

/// A started init.
#[derive(Debug)]
pub struct Spawned {
    /// Host pid.
    pub pid: libc::pid_t,
    /// pidfd of the init (CLOEXEC).
    pub pidfd: OwnedFd,
}

/// Tells the waiting child that its id maps (and v1 cgroup) are in place.
pub fn send_go(sock: &std::os::unix::net::UnixStream) -> std::io::Result<()> {
    (&*sock).write_all(&[1])
}

/// Maps container uid/gid 0 to `root_id` and the box user to `box_id` on the host.
pub fn write_id_maps(pid: libc::pid_t, root_id: u32, box_id: u32) -> Result<(), SpawnError> {
    use warmbox_inside::mount::{BOX_GID, BOX_UID};
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
    // An open fd is not negative: `unsigned_abs` keeps its value.
    let id = pidfd.as_raw_fd().unsigned_abs();
    loop {
        // SAFETY: a valid pidfd and an out-pointer to a siginfo_t.
        let r = unsafe { libc::waitid(libc::P_PIDFD, id, &mut info, flags) };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn placement_moves_the_init_wherever_clone_into_cgroup_is_not_there() {
        assert_eq!(Placement::from_probe(true, Ok(())), Placement::CloneInto);
        assert_eq!(
            Placement::from_probe(true, Err(libc::E2BIG)),
            Placement::MoveRefused(libc::E2BIG)
        );
        assert_eq!(Placement::from_probe(false, Ok(())), Placement::MoveV1);
        assert_eq!(
            Placement::from_probe(false, Err(libc::EINVAL)),
            Placement::MoveV1
        );
    }

    #[test]
    fn clone_into_a_directory_that_is_no_cgroup_fails_without_a_child() {
        // A kernel that knows CLONE_INTO_CGROUP (5.7+) looks at the fd and refuses a
        // directory that is not a v2 cgroup with EBADF, before any child exists; one that
        // does not know it refuses the argument block (E2BIG), which the probe reports as
        // "not there".
        let dir = tempfile::tempdir().unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        match clone_into_cgroup(fd.as_fd()) {
            Err(SpawnError::Clone { flags, source }) => {
                assert_eq!(flags, CLONE_INTO_CGROUP);
                assert_eq!(source.raw_os_error(), Some(libc::EBADF), "{source}");
            }
            Ok(Err(errno)) => assert!(matches!(errno, libc::E2BIG | libc::EINVAL)),
            Ok(Ok(())) => panic!("clone3 placed a child in a plain directory"),
            Err(e) => panic!("{e}"),
        }
    }
}
