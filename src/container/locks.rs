//! File locks, mediated by the init.
//!
//! Locks live on inodes, and most inodes a job can open are not its container's: the
//! template's read-only binds are the host's own files (`/usr`, `/lib`, ...), and its
//! `/etc` files and `/dev` nodes are one copy for every container of the layout. A lock on
//! one of them (`flock` needs only a read-only fd) would block, and be seen by, the host and
//! every other container: interference and a covert channel between tenants. So the
//! policy sends `flock` and the lock commands of `fcntl` to the init's seccomp listener
//! (`mediate_locks`, see `sandbox::seccomp`) and the init answers them here:
//!
//! - a **shared** file's lock never reaches the kernel's lock table. Setting or releasing
//!   a lock succeeds (it is granted and excludes nothing: a read-only shared file has
//!   nothing to protect; only read locks could be taken on it anyway, except on the
//!   device nodes), and a query answers "unlocked" (`l_type = F_UNLCK`).
//! - the container's **own** files really lock. `flock` and OFD locks belong to the open
//!   file description, so the init takes them itself on the same description (fetched
//!   with `pidfd_getfd`), never blocking: a call that would block and may waits in
//!   `pending` and is tried again every `RETRY` until it succeeds or its caller is
//!   interrupted. That is race-free: what the init checked is what it locks. POSIX locks
//!   belong to the calling process, so the init cannot take them: it lets the call run
//!   (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`) and checks the fd number again right after. A
//!   thread of the caller that swapped a shared file onto that number in between is a
//!   violation. The post-check bounds the race rather than closing it: a swap between the
//!   post-check and the kernel's own lookup of the fd (microseconds) gets a real POSIX
//!   lock on a shared file. Other containers never see it (their calls on shared files
//!   never reach the kernel), the lock ends as soon as the fd is closed or replaced (a
//!   close releases all of the process's POSIX locks on that file), and a swap caught by
//!   the post-check kills the container: what remains is a host process taking a lock on
//!   a file under `/usr`, contending with it for a moment, at the price of a lost race
//!   killing the job.
//!
//! A file is the container's own when it is on one of its writable tmpfs (`/box`, `/tmp`,
//! `/dev/shm`: compared by device, recorded by the init after mounting them) or is a pipe
//! or a socket (each has an inode of its own on a filesystem no path reaches). Everything
//! else is shared, including what looks private but is not: every eventfd, epoll, signalfd
//! and timerfd is the one anonymous inode of the whole kernel, so a `flock` on an eventfd
//! used to block every other eventfd's `flock` on the host. Anything not known to be the
//! container's own is shared: a lock that excludes nothing only fails the job itself.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use crate::protocol::Violation;

/// The `fcntl` commands that lock (`F_GETLK`, `F_SETLK`, `F_SETLKW`, `F_OFD_GETLK`,
/// `F_OFD_SETLK`, `F_OFD_SETLKW`; on x86_64 the `*64` forms have the same numbers).
pub const FCNTL_LOCK_COMMANDS: [u32; 6] = [
    libc::F_GETLK as u32,
    libc::F_SETLK as u32,
    libc::F_SETLKW as u32,
    libc::F_OFD_GETLK as u32,
    libc::F_OFD_SETLK as u32,
    libc::F_OFD_SETLKW as u32,
];

/// How often a lock call that has to wait is tried again.
pub const RETRY: Duration = Duration::from_millis(2);

/// `statfs.f_type` of pipes (linux/magic.h).
const PIPEFS_MAGIC: i64 = 0x5049_5045;
/// `statfs.f_type` of sockets (linux/magic.h).
const SOCKFS_MAGIC: i64 = 0x534f_434b;
/// `pidfd_open` of a thread rather than a thread-group leader (Linux 6.9).
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
/// Bounds what blocked lock calls can make the init hold (each keeps an fd).
const MAX_PENDING: usize = 256;

/// An `fcntl` lock command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockCmd {
    GetLk,
    SetLk,
    SetLkw,
    OfdGetLk,
    OfdSetLk,
    OfdSetLkw,
}

impl LockCmd {
    fn from_raw(cmd: u32) -> Option<Self> {
        Some(match cmd as i32 {
            libc::F_GETLK => LockCmd::GetLk,
            libc::F_SETLK => LockCmd::SetLk,
            libc::F_SETLKW => LockCmd::SetLkw,
            libc::F_OFD_GETLK => LockCmd::OfdGetLk,
            libc::F_OFD_SETLK => LockCmd::OfdSetLk,
            libc::F_OFD_SETLKW => LockCmd::OfdSetLkw,
            _ => return None,
        })
    }

    /// A POSIX (process-owned) lock, which only the caller itself can take.
    fn is_posix(self) -> bool {
        matches!(self, LockCmd::GetLk | LockCmd::SetLk | LockCmd::SetLkw)
    }

    fn is_query(self) -> bool {
        matches!(self, LockCmd::GetLk | LockCmd::OfdGetLk)
    }
}

/// A lock call, as seccomp reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockCall {
    /// `flock(fd, op)`.
    Flock { fd: RawFd, op: i32 },
    /// `fcntl(fd, cmd, arg)`: `arg` points to the caller's `struct flock`.
    Fcntl { fd: RawFd, cmd: LockCmd, arg: u64 },
}

impl LockCall {
    /// The lock call a notification is, if it is one. The kernel reads both calls' fd and
    /// command as unsigned int (the low 32 bits), and so does this.
    pub fn from_notification(nr: i32, args: &[u64; 6]) -> Option<Self> {
        let low = |a: u64| a as u32 as i32;
        match i64::from(nr) {
            libc::SYS_flock => Some(LockCall::Flock {
                fd: low(args[0]),
                op: low(args[1]),
            }),
            libc::SYS_fcntl => Some(LockCall::Fcntl {
                fd: low(args[0]),
                cmd: LockCmd::from_raw(args[1] as u32)?,
                arg: args[2],
            }),
            _ => None,
        }
    }

    fn fd(self) -> RawFd {
        match self {
            LockCall::Flock { fd, .. } | LockCall::Fcntl { fd, .. } => fd,
        }
    }
}

/// Whose a file is, for locking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Only this container can reach it: its locks are real.
    Own,
    /// The host's, or every container's of the layout: its locks never reach the kernel.
    Shared,
}

/// The container's own filesystems, by device number.
#[derive(Debug, Clone)]
pub struct OwnFiles {
    devs: Vec<u64>,
}

impl OwnFiles {
    /// Records the devices of `dirs` (the container's writable tmpfs, once mounted).
    pub fn record(dirs: &[&str]) -> Result<Self, String> {
        let devs = dirs
            .iter()
            .map(|d| {
                nix::sys::stat::stat(*d)
                    .map(|st| st.st_dev)
                    .map_err(|e| format!("stat {d}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { devs })
    }

    /// Whose a file of device `dev` on a filesystem of type `fs_type` is.
    pub fn owner(&self, dev: u64, fs_type: i64) -> Owner {
        if self.devs.contains(&dev) || fs_type == PIPEFS_MAGIC || fs_type == SOCKFS_MAGIC {
            Owner::Own
        } else {
            Owner::Shared
        }
    }

    /// Whose the open file `fd` is; shared when it cannot be told.
    fn owner_of(&self, fd: RawFd) -> Owner {
        // SAFETY: plain old data, filled by the kernel below.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open for the duration (the caller owns it); the out-pointers are
        // valid structs of the right type.
        let ok = unsafe { libc::fstat(fd, &mut st) == 0 && libc::fstatfs(fd, &mut sfs) == 0 };
        if !ok {
            return Owner::Shared;
        }
        self.owner(st.st_dev, sfs.f_type)
    }
}

/// The init's answer to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The call returns this value.
    Value(i64),
    /// The call fails with this errno.
    Errno(i32),
    /// The kernel runs the call as made.
    Continue,
}

/// The answer to a lock call on a shared file, without the kernel. `access` is the file's
/// `O_ACCMODE` (or `O_PATH`), `fl` the caller's `struct flock` for `fcntl`. Checks what the
/// kernel would refuse first, so a wrong call fails as it would without mediation.
pub fn shared_reply(call: LockCall, access: i32, fl: Option<&libc::flock>) -> Reply {
    if access & libc::O_PATH != 0 {
        return Reply::Errno(libc::EBADF);
    }
    let readable = matches!(access & libc::O_ACCMODE, libc::O_RDONLY | libc::O_RDWR);
    let writable = matches!(access & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR);
    match call {
        LockCall::Flock { op, .. } => match op & !libc::LOCK_NB {
            libc::LOCK_SH | libc::LOCK_EX | libc::LOCK_UN => Reply::Value(0),
            _ => Reply::Errno(libc::EINVAL),
        },
        LockCall::Fcntl { cmd, .. } => {
            let Some(fl) = fl else {
                return Reply::Errno(libc::EFAULT);
            };
            let ofd = !cmd.is_posix();
            if ofd && fl.l_pid != 0 {
                return Reply::Errno(libc::EINVAL);
            }
            match (i32::from(fl.l_type), cmd.is_query()) {
                (libc::F_RDLCK | libc::F_WRLCK, true) => Reply::Value(0),
                (libc::F_RDLCK, false) if readable => Reply::Value(0),
                (libc::F_WRLCK, false) if writable => Reply::Value(0),
                (libc::F_RDLCK | libc::F_WRLCK, false) => Reply::Errno(libc::EBADF),
                (libc::F_UNLCK, false) => Reply::Value(0),
                _ => Reply::Errno(libc::EINVAL),
            }
        }
    }
}

/// A lock call that has to wait: tried again every `RETRY`.
struct Pending {
    id: u64,
    call: LockCall,
    /// The caller's open file description (our own fd to it).
    file: OwnedFd,
    /// The caller's `struct flock`, for `fcntl`.
    fl: Option<libc::flock>,
}

/// The lock mediation of one container.
pub struct Mediator {
    own: OwnFiles,
    pending: Vec<Pending>,
}

impl Mediator {
    /// A mediator for a container whose own filesystems are `own`.
    pub fn new(own: OwnFiles) -> Self {
        Self {
            own,
            pending: Vec::new(),
        }
    }

    /// Whether some lock call waits to be tried again.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Answers the lock call of notification `notif` (already received from `listener`).
    /// Returns a violation when the caller swapped a shared file in under a POSIX lock.
    pub fn handle(
        &mut self,
        listener: RawFd,
        notif: &libc::seccomp_notif,
        call: LockCall,
    ) -> Option<Violation> {
        // No call is left unanswered while its caller waits (when it is gone, the answer
        // finds no one: harmless).
        let Some(pidfd) = pidfd_open(notif.pid as libc::pid_t) else {
            send(listener, notif.id, Reply::Errno(libc::ENOLCK));
            return None;
        };
        // From here `pidfd` is the caller's, not a recycled pid's.
        if !id_valid(listener, notif.id) {
            return None;
        }
        let file = match pidfd_getfd(&pidfd, call.fd()) {
            Ok(f) => f,
            Err(errno) => {
                let errno = if errno == libc::EBADF {
                    errno
                } else {
                    libc::ENOLCK
                };
                send(listener, notif.id, Reply::Errno(errno));
                return None;
            }
        };
        let owner = self.own.owner_of(file.as_raw_fd());
        let reply = match (call, owner) {
            (LockCall::Fcntl { cmd, .. }, Owner::Own) if cmd.is_posix() => {
                send(listener, notif.id, Reply::Continue);
                // See the module doc: the fd number must still be the container's own
                // file. (An error: the fd is closed or the caller gone; no lock is left.)
                return match pidfd_getfd(&pidfd, call.fd()) {
                    Ok(now) if self.own.owner_of(now.as_raw_fd()) == Owner::Shared => {
                        Some(Violation {
                            nr: libc::SYS_fcntl as i32,
                            pid: notif.pid,
                        })
                    }
                    _ => None,
                };
            }
            (LockCall::Flock { .. }, Owner::Shared) => {
                Some(shared_reply(call, access_mode(&file), None))
            }
            (LockCall::Flock { .. }, Owner::Own) => self.attempt_or_wait(Pending {
                id: notif.id,
                call,
                file,
                fl: None,
            }),
            (LockCall::Fcntl { cmd, arg, .. }, _) => {
                self.fcntl(listener, notif, call, cmd, arg, file, owner)
            }
        };
        if let Some(reply) = reply {
            send(listener, notif.id, reply);
        }
        None
    }

    /// The `fcntl` calls the init answers itself: all but POSIX locks on own files.
    /// `None`: no answer now (the call waits, or its caller is gone).
    #[allow(clippy::too_many_arguments)]
    fn fcntl(
        &mut self,
        listener: RawFd,
        notif: &libc::seccomp_notif,
        call: LockCall,
        cmd: LockCmd,
        arg: u64,
        file: OwnedFd,
        owner: Owner,
    ) -> Option<Reply> {
        let Some(mem) = CallerMemory::open(notif.pid as libc::pid_t) else {
            return Some(Reply::Errno(libc::ENOLCK));
        };
        // The memory file is the caller's only if its notification is still alive.
        if !id_valid(listener, notif.id) {
            return None;
        }
        let Some(mut fl) = mem.read_flock(arg) else {
            return Some(Reply::Errno(libc::EFAULT));
        };
        if owner == Owner::Shared {
            let reply = shared_reply(call, access_mode(&file), Some(&fl));
            if reply == Reply::Value(0) && cmd.is_query() {
                fl.l_type = libc::F_UNLCK as libc::c_short;
                if !mem.write_flock(arg, &fl) {
                    return Some(Reply::Errno(libc::EFAULT));
                }
            }
            return Some(reply);
        }
        let mut p = Pending {
            id: notif.id,
            call,
            file,
            fl: Some(fl),
        };
        match attempt(&mut p) {
            // A query's answer is the struct the kernel filled in.
            Some(Reply::Value(0)) if cmd.is_query() => match &p.fl {
                Some(fl) if mem.write_flock(arg, fl) => Some(Reply::Value(0)),
                _ => Some(Reply::Errno(libc::EFAULT)),
            },
            Some(reply) => Some(reply),
            None => self.wait(p),
        }
    }

    fn attempt_or_wait(&mut self, mut p: Pending) -> Option<Reply> {
        match attempt(&mut p) {
            Some(reply) => Some(reply),
            None => self.wait(p),
        }
    }

    fn wait(&mut self, p: Pending) -> Option<Reply> {
        if self.pending.len() >= MAX_PENDING {
            return Some(Reply::Errno(libc::ENOLCK));
        }
        self.pending.push(p);
        None
    }

    /// Tries every waiting lock call again; answers those that succeed or fail, drops those
    /// whose caller was interrupted (by a signal, or killed).
    pub fn retry(&mut self, listener: RawFd) {
        for mut p in std::mem::take(&mut self.pending) {
            if !id_valid(listener, p.id) {
                continue;
            }
            match attempt(&mut p) {
                Some(reply) => {
                    send(listener, p.id, reply);
                }
                None => self.pending.push(p),
            }
        }
    }
}

/// Takes or releases a lock of the open file description itself, without blocking.
/// `None`: it would block, and the caller asked to wait.
fn attempt(p: &mut Pending) -> Option<Reply> {
    let fd = p.file.as_raw_fd();
    let (r, may_wait) = match (p.call, p.fl.as_mut()) {
        (LockCall::Flock { op, .. }, _) => {
            // SAFETY: flock on an fd we own; no memory is passed.
            let r = unsafe { libc::flock(fd, op | libc::LOCK_NB) };
            (r, op & libc::LOCK_NB == 0)
        }
        (LockCall::Fcntl { cmd, .. }, Some(fl)) if !cmd.is_posix() => {
            let raw = if cmd == LockCmd::OfdGetLk {
                libc::F_OFD_GETLK
            } else {
                libc::F_OFD_SETLK
            };
            // SAFETY: `fl` is a valid struct flock the kernel reads (and for a query
            // writes); `fd` is ours.
            let r = unsafe { libc::fcntl(fd, raw, fl as *mut libc::flock) };
            (r, cmd == LockCmd::OfdSetLkw)
        }
        // POSIX locks are the caller's to take (`handle` lets them run); never here.
        (LockCall::Fcntl { .. }, _) => return Some(Reply::Errno(libc::EINVAL)),
    };
    if r == 0 {
        return Some(Reply::Value(0));
    }
    let errno = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::ENOLCK);
    // flock says EWOULDBLOCK (= EAGAIN), fcntl EAGAIN or EACCES.
    if may_wait && (errno == libc::EAGAIN || errno == libc::EACCES) {
        return None;
    }
    Some(Reply::Errno(errno))
}

/// The access mode and `O_PATH` of an open file.
fn access_mode(file: &OwnedFd) -> i32 {
    // SAFETY: F_GETFL on an fd we own; no memory is passed.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    // A failure cannot happen on an open fd; O_PATH then refuses the lock.
    if flags < 0 {
        libc::O_PATH
    } else {
        flags
    }
}

/// A pidfd of thread `tid` (a notification names the calling thread).
fn pidfd_open(tid: libc::pid_t) -> Option<OwnedFd> {
    for flags in [PIDFD_THREAD, 0] {
        // SAFETY: pidfd_open takes integers and returns a new fd or -1.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, flags) };
        if r >= 0 {
            // SAFETY: the kernel returned a new fd that nothing else owns.
            return Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        // Before Linux 6.9 only a thread-group leader has a pidfd (EINVAL for a thread).
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return None;
        }
    }
    None
}

/// Our own fd to the open file description behind the caller's `fd` (close-on-exec).
fn pidfd_getfd(pidfd: &OwnedFd, fd: RawFd) -> Result<OwnedFd, i32> {
    // SAFETY: pidfd_getfd takes integers and returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EBADF));
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Whether notification `id` still waits for its answer (its caller is alive and blocked
/// in the call: its pid still names it).
fn id_valid(listener: RawFd, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64 through a valid pointer.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// Answers notification `id`; false when its caller no longer waits (ENOENT).
fn send(listener: RawFd, id: u64, reply: Reply) -> bool {
    let (val, error, flags) = match reply {
        Reply::Value(v) => (v, 0, 0),
        Reply::Errno(e) => (0, -e, 0),
        Reply::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: a valid listener fd and a pointer to a filled seccomp_notif_resp.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) == 0 }
}

/// The caller's memory, through `/proc/<pid>/mem` (opened before the notification is
/// checked to be alive, so the file is the caller's).
struct CallerMemory(File);

/// The size of `struct flock` in the caller (x86_64: 32 bytes).
const FLOCK_SIZE: usize = std::mem::size_of::<libc::flock>();

impl CallerMemory {
    fn open(pid: libc::pid_t) -> Option<Self> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .ok()
            .map(Self)
    }

    fn read_flock(&self, addr: u64) -> Option<libc::flock> {
        let mut b = [0u8; FLOCK_SIZE];
        self.0.read_exact_at(&mut b, addr).ok()?;
        Some(decode_flock(&b))
    }

    fn write_flock(&self, addr: u64, fl: &libc::flock) -> bool {
        self.0.write_all_at(&encode_flock(fl), addr).is_ok()
    }
}

/// The caller's `struct flock` from its bytes, field by field (its padding is not ours to
/// read as a Rust value).
pub fn decode_flock(b: &[u8; FLOCK_SIZE]) -> libc::flock {
    use std::mem::offset_of;
    let at = |off: usize, n: usize| &b[off..off + n];
    // SAFETY: plain old data; every field is set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    let short = |off| i16::from_ne_bytes(at(off, 2).try_into().unwrap_or_default());
    let long = |off| i64::from_ne_bytes(at(off, 8).try_into().unwrap_or_default());
    fl.l_type = short(offset_of!(libc::flock, l_type));
    fl.l_whence = short(offset_of!(libc::flock, l_whence));
    fl.l_start = long(offset_of!(libc::flock, l_start));
    fl.l_len = long(offset_of!(libc::flock, l_len));
    fl.l_pid = i32::from_ne_bytes(
        at(offset_of!(libc::flock, l_pid), 4)
            .try_into()
            .unwrap_or_default(),
    );
    fl
}

/// The bytes of a `struct flock` (padding zero).
pub fn encode_flock(fl: &libc::flock) -> [u8; FLOCK_SIZE] {
    use std::mem::offset_of;
    let mut b = [0u8; FLOCK_SIZE];
    let mut put = |off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
    put(offset_of!(libc::flock, l_type), &fl.l_type.to_ne_bytes());
    put(
        offset_of!(libc::flock, l_whence),
        &fl.l_whence.to_ne_bytes(),
    );
    put(offset_of!(libc::flock, l_start), &fl.l_start.to_ne_bytes());
    put(offset_of!(libc::flock, l_len), &fl.l_len.to_ne_bytes());
    put(offset_of!(libc::flock, l_pid), &fl.l_pid.to_ne_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_calls_are_told_from_other_calls_by_number_and_command() {
        let args = |a: u64, b: u64, c: u64| [a, b, c, 0, 0, 0];
        let flock = libc::SYS_flock as i32;
        let fcntl = libc::SYS_fcntl as i32;
        assert_eq!(
            LockCall::from_notification(flock, &args(3, libc::LOCK_EX as u64, 0)),
            Some(LockCall::Flock {
                fd: 3,
                op: libc::LOCK_EX
            })
        );
        for (raw, cmd) in [
            (libc::F_GETLK, LockCmd::GetLk),
            (libc::F_SETLK, LockCmd::SetLk),
            (libc::F_SETLKW, LockCmd::SetLkw),
            (libc::F_OFD_GETLK, LockCmd::OfdGetLk),
            (libc::F_OFD_SETLK, LockCmd::OfdSetLk),
            (libc::F_OFD_SETLKW, LockCmd::OfdSetLkw),
        ] {
            // The kernel reads fd and command as 32 bits: high bits are ignored.
            let got = LockCall::from_notification(
                fcntl,
                &args(0xffff_0000_0000_0004, (1 << 40) | raw as u64, 0x7000),
            );
            assert_eq!(
                got,
                Some(LockCall::Fcntl {
                    fd: 4,
                    cmd,
                    arg: 0x7000
                })
            );
        }
        assert_eq!(LockCmd::from_raw(libc::F_GETFL as u32), None);
        assert_eq!(
            LockCall::from_notification(fcntl, &args(3, libc::F_GETFL as u64, 0)),
            None
        );
        assert_eq!(
            LockCall::from_notification(libc::SYS_ptrace as i32, &args(0, 0, 0)),
            None
        );
        assert_eq!(FCNTL_LOCK_COMMANDS, [5, 6, 7, 36, 37, 38]);
    }

    #[test]
    fn only_the_containers_filesystems_pipes_and_sockets_are_its_own() {
        let own = OwnFiles {
            devs: vec![40, 41, 42],
        };
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        const ANON_INODE_FS_MAGIC: i64 = 0x0904_1934;
        const EXT4_SUPER_MAGIC: i64 = 0xef53;
        assert_eq!(own.owner(41, TMPFS_MAGIC), Owner::Own);
        assert_eq!(own.owner(12, PIPEFS_MAGIC), Owner::Own);
        assert_eq!(own.owner(13, SOCKFS_MAGIC), Owner::Own);
        // A bound host file, the template's tmpfs, an eventfd, a memfd.
        assert_eq!(own.owner(2049, EXT4_SUPER_MAGIC), Owner::Shared);
        assert_eq!(own.owner(39, TMPFS_MAGIC), Owner::Shared);
        assert_eq!(own.owner(14, ANON_INODE_FS_MAGIC), Owner::Shared);
        assert_eq!(own.owner(5, TMPFS_MAGIC), Owner::Shared);
    }

    fn fl(l_type: i32, l_pid: i32) -> libc::flock {
        // SAFETY: plain old data.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = l_type as libc::c_short;
        fl.l_pid = l_pid;
        fl
    }

    #[test]
    fn shared_files_answer_as_the_kernel_would_on_a_free_file() {
        let flock = |op| LockCall::Flock { fd: 3, op };
        let fcntl = |cmd| LockCall::Fcntl { fd: 3, cmd, arg: 0 };
        let ro = libc::O_RDONLY;
        let ok = Reply::Value(0);
        assert_eq!(shared_reply(flock(libc::LOCK_EX), ro, None), ok);
        assert_eq!(
            shared_reply(flock(libc::LOCK_SH | libc::LOCK_NB), ro, None),
            ok
        );
        assert_eq!(shared_reply(flock(libc::LOCK_UN), ro, None), ok);
        assert_eq!(
            shared_reply(flock(0x40), ro, None),
            Reply::Errno(libc::EINVAL)
        );
        assert_eq!(
            shared_reply(flock(libc::LOCK_EX), libc::O_PATH, None),
            Reply::Errno(libc::EBADF)
        );
        let rd = fl(libc::F_RDLCK, 0);
        let wr = fl(libc::F_WRLCK, 0);
        let un = fl(libc::F_UNLCK, 0);
        assert_eq!(shared_reply(fcntl(LockCmd::SetLk), ro, Some(&rd)), ok);
        assert_eq!(shared_reply(fcntl(LockCmd::SetLkw), ro, Some(&un)), ok);
        // A write lock needs a file open for writing, a read lock one open for reading.
        assert_eq!(
            shared_reply(fcntl(LockCmd::SetLk), ro, Some(&wr)),
            Reply::Errno(libc::EBADF)
        );
        assert_eq!(
            shared_reply(fcntl(LockCmd::OfdSetLk), libc::O_WRONLY, Some(&rd)),
            Reply::Errno(libc::EBADF)
        );
        assert_eq!(
            shared_reply(fcntl(LockCmd::OfdSetLkw), libc::O_RDWR, Some(&wr)),
            ok
        );
        // Queries: any lock type to test, whatever the mode; F_UNLCK is not one.
        assert_eq!(shared_reply(fcntl(LockCmd::GetLk), ro, Some(&wr)), ok);
        assert_eq!(shared_reply(fcntl(LockCmd::OfdGetLk), ro, Some(&rd)), ok);
        assert_eq!(
            shared_reply(fcntl(LockCmd::GetLk), ro, Some(&un)),
            Reply::Errno(libc::EINVAL)
        );
        // OFD locks require l_pid 0; a bad type is EINVAL; no struct is EFAULT.
        assert_eq!(
            shared_reply(fcntl(LockCmd::OfdSetLk), ro, Some(&fl(libc::F_RDLCK, 7))),
            Reply::Errno(libc::EINVAL)
        );
        assert_eq!(
            shared_reply(fcntl(LockCmd::SetLk), ro, Some(&fl(libc::F_RDLCK, 7))),
            ok
        );
        assert_eq!(
            shared_reply(fcntl(LockCmd::SetLk), ro, Some(&fl(9, 0))),
            Reply::Errno(libc::EINVAL)
        );
        assert_eq!(
            shared_reply(fcntl(LockCmd::SetLk), ro, None),
            Reply::Errno(libc::EFAULT)
        );
    }

    #[test]
    fn struct_flock_bytes_round_trip_at_the_kernels_offsets() {
        let mut f = fl(libc::F_WRLCK, 1234);
        f.l_whence = libc::SEEK_END as libc::c_short;
        f.l_start = -5;
        f.l_len = 1 << 40;
        let b = encode_flock(&f);
        assert_eq!(b.len(), 32);
        assert_eq!(&b[0..2], &(libc::F_WRLCK as i16).to_ne_bytes());
        assert_eq!(&b[2..4], &(libc::SEEK_END as i16).to_ne_bytes());
        assert_eq!(&b[4..8], &[0; 4], "padding");
        assert_eq!(&b[8..16], &(-5i64).to_ne_bytes());
        assert_eq!(&b[16..24], &(1i64 << 40).to_ne_bytes());
        assert_eq!(&b[24..28], &1234i32.to_ne_bytes());
        let back = decode_flock(&b);
        assert_eq!(
            (
                back.l_type,
                back.l_whence,
                back.l_start,
                back.l_len,
                back.l_pid
            ),
            (f.l_type, f.l_whence, f.l_start, f.l_len, f.l_pid)
        );
    }
}
