//! File locks, mediated by the init.
//!
//! Locks live on inodes, and most inodes a job can open are not its container's: the
//! template's read-only binds are the host's own files (`/usr`, `/lib`, ...), and its
//! `/etc` files and `/dev` nodes are one copy for every container of the layout. A lock on
//! one of them (`flock` needs only a read-only fd) would block, and be seen by, the host and
//! every other container: interference and a covert channel between tenants. So the
//! policy sends `flock` and the lock commands of `fcntl` to the init's seccomp listener
//! (`mediate_locks`, see `warmbox_sandbox::seccomp`) and the init answers them here:
//!
//! - a **shared** file's lock never reaches the kernel's lock table. Setting or releasing
//!   a lock succeeds (it is granted and excludes nothing: a read-only shared file has
//!   nothing to protect; only read locks could be taken on it anyway, except on the
//!   device nodes), and a query answers "unlocked" (`l_type = F_UNLCK`).
//! - the container's **own** files really lock. `flock` and OFD locks belong to the open
//!   file description, so the init takes them itself on the same description (fetched
//!   with `pidfd_getfd`), never blocking: a call that would block and may waits in
//!   `pending` and is tried again every `RETRY` until it succeeds or its caller is
//!   interrupted. That is race-free: what the init checked is what it locks. A lock whose
//!   answer finds its caller gone (interrupted or killed since it was checked) is released
//!   again: the description, which may outlive the caller, would keep it.
//! - POSIX locks belong to the calling process (its fd table), so the init cannot take
//!   them: it lets the call run (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`), and the kernel looks
//!   the fd number up again when the caller's thread next runs. That is a race: another
//!   thread of the caller can swap a shared file onto the number in between, and the
//!   caller can make that window as long as it likes (its locking thread at `SCHED_IDLE`,
//!   pinned next to a busy thread, waits milliseconds to be scheduled). So every
//!   `F_SETLK`/`F_SETLKW` let run is watched (whatever its `l_type` said when the init
//!   read it: the caller's memory can change before the kernel reads it), one entry per
//!   (thread, fd), at most `MAX_WATCHED` (past that, new ones fail with `ENOLCK` rather than
//!   run unwatched). Every `CHECK_EVERY` the init looks at the fd number in the fd table of
//!   a live thread of the caller's group (`verdict`): a shared file with a lock placed
//!   through it (the `lock:` lines of `/proc/<tid>/fdinfo/<fd>`, which list exactly the
//!   locks of that fd table through that open file: fs/locks.c `show_fd_locks`) is a
//!   violation (the container is killed, `security_violation` naming `fcntl`): no lock of
//!   the container's ever reaches a shared file otherwise. A call is forgotten once its
//!   thread is known to be past it (a later lock call of the thread, `/proc/<tid>/syscall`
//!   showing it in another call or in user space, or the thread gone) and no lock sits on
//!   a shared file through the number, or once the whole thread group is gone: a lock
//!   placed through the number stays listed there as long as it exists, because closing
//!   or replacing the fd (the only ways to move it) drops the process's POSIX locks on the
//!   file. Until then the call is kept whatever the number is now (closed, own, shared
//!   and unlocked: SQLite unlocks, closes the database and opens a file under `/usr` that
//!   gets the same number, and that is no violation), since it may not have run yet.
//!
//!   What remains: a lock that lands on a shared file is there until the next check, at
//!   most `CHECK_EVERY` (longer when the container's CPU quota throttles its cgroup, init
//!   included); one released before that is not seen, though each hold risks a check and
//!   the kill. Such a lock can contend with the host's processes for that long; another
//!   container sees it only by winning the same race with `F_GETLK`, which is let run
//!   unwatched (a query places nothing, and afterwards nothing shows it ran on a shared
//!   file): a query that wins reads the kernel's locks of a shared file, the host's
//!   included. (A fd table shared with another process, which would outlive the caller's
//!   thread group and keep its locks unwatched, cannot be made: the policy refuses
//!   `clone(CLONE_FILES)` without `CLONE_THREAD` with EINVAL.)
//!
//! A file is the container's own when it is on one of its writable tmpfs (`/box`, `/tmp`,
//! `/dev/shm`: compared by device, recorded by the init after mounting them) or is a pipe
//! or a socket (each has an inode of its own on a filesystem no path reaches). Everything
//! else is shared, including what looks private but is not: every eventfd, epoll, signalfd
//! and timerfd is the one anonymous inode of the whole kernel, so a `flock` on an eventfd
//! used to block every other eventfd's `flock` on the host. Anything not known to be the
//! container's own is shared: a lock that excludes nothing only fails the job itself. A
//! memfd (the job's stdin among them) lives on the kernel's internal tmpfs, not the
//! container's, so it is shared too: its locks are granted and exclude nothing, even
//! between the job's own processes.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use crate::protocol::Violation;

/// The `fcntl` commands that lock, as the filter compares them (`F_GETLK`, `F_SETLK`,
/// `F_SETLKW`, `F_OFD_GETLK`, `F_OFD_SETLK`, `F_OFD_SETLKW`; on x86_64 the `*64` forms have
/// the same numbers).
pub const FCNTL_LOCK_COMMANDS: [u32; 6] = {
    let mut out = [0; 6];
    let mut i = 0;
    while i < LockCmd::ALL.len() {
        out[i] = LockCmd::ALL[i] as u32;
        i += 1;
    }
    out
};

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
/// How often the POSIX lock calls let run are checked again (see the module doc).
pub const CHECK_EVERY: Duration = Duration::from_millis(10);
/// Bounds the POSIX lock calls watched at once (each keeps a pidfd); past it, new ones are
/// refused with ENOLCK rather than let run unwatched.
const MAX_WATCHED: usize = 256;

/// An `fcntl` lock command; its value is the command's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LockCmd {
    GetLk = libc::F_GETLK,
    SetLk = libc::F_SETLK,
    SetLkw = libc::F_SETLKW,
    OfdGetLk = libc::F_OFD_GETLK,
    OfdSetLk = libc::F_OFD_SETLK,
    OfdSetLkw = libc::F_OFD_SETLKW,
}

impl LockCmd {
    /// Every lock command.
    const ALL: [LockCmd; 6] = [
        LockCmd::GetLk,
        LockCmd::SetLk,
        LockCmd::SetLkw,
        LockCmd::OfdGetLk,
        LockCmd::OfdSetLk,
        LockCmd::OfdSetLkw,
    ];

    fn from_raw(cmd: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u32 == cmd)
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
        match i64::from(nr) {
            libc::SYS_flock => Some(LockCall::Flock {
                fd: low_int(args[0]),
                op: low_int(args[1]),
            }),
            libc::SYS_fcntl => Some(LockCall::Fcntl {
                fd: low_int(args[0]),
                cmd: LockCmd::from_raw(low_u32(args[1]))?,
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

/// Errors setting up the mediator.
#[derive(Debug, thiserror::Error)]
pub enum LocksError {
    /// One of the container's own directories could not be looked at.
    #[error("stat {dir}: {errno}")]
    Stat {
        /// The directory.
        dir: &'static str,
        /// The kernel's answer.
        errno: nix::errno::Errno,
    },
}

/// The container's own filesystems, by device number.
#[derive(Debug, Clone)]
pub struct OwnFiles {
    devs: Vec<u64>,
}

impl OwnFiles {
    /// Records the devices of `dirs` (the container's writable tmpfs, once mounted).
    pub fn record(dirs: &[&'static str]) -> Result<Self, LocksError> {
        let devs = dirs
            .iter()
            .map(|dir| {
                nix::sys::stat::stat(*dir)
                    .map(|st| st.st_dev)
                    .map_err(|errno| LocksError::Stat { dir, errno })
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

/// A lock call being answered: its notification, the call, and the caller's file.
struct Incoming<'a> {
    notif: &'a libc::seccomp_notif,
    call: LockCall,
    file: OwnedFd,
    owner: Owner,
}

/// A POSIX set-lock call let run on an own file (`F_SETLK`/`F_SETLKW`, whatever its
/// `l_type`: the caller's memory can change after the init read it), watched until no
/// lock of it can be on a shared file (see the module doc).
struct Watched {
    /// The calling thread, and its thread group (whose fd table owns the lock).
    tid: libc::pid_t,
    tgid: libc::pid_t,
    fd: RawFd,
    /// The call's `fcntl` command and argument, to recognise it in `/proc/<tid>/syscall`.
    cmd: u64,
    arg: u64,
    /// A pidfd of a live thread of the group, through which the fd table is looked at:
    /// the caller's, then another's once it is gone.
    holder: OwnedFd,
    holder_tid: libc::pid_t,
    /// The call may not have run yet (its thread was let go and not seen past it).
    in_flight: bool,
}

/// What a watched fd number is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// No thread of the caller's thread group is left.
    Gone,
    /// The fd number is not open.
    Closed,
    /// A file of the container's own.
    Own,
    /// A shared file; `locked`: the fd table holds a lock placed through it (the `lock:`
    /// lines of `/proc/<tid>/fdinfo/<fd>`).
    Shared { locked: bool },
}

/// What to do with a watched call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Look again at the next check.
    Keep,
    /// No lock of it can be on a shared file any more.
    Forget,
    /// A lock sits on a shared file: kill the container.
    Violation,
}

/// The decision on a watched call, `returned` when its thread is known to be past it.
///
/// A lock on a shared file can only have come through the race (the init never lets a
/// shared file's lock reach the kernel), so holding one is a violation whatever else is
/// known. Otherwise the call can do no harm once it has returned: a lock it placed on a
/// shared file would still be listed there, since closing or replacing the fd (the only
/// ways to move it) drops the process's POSIX locks on that file. Until it has returned,
/// the fd number may yet be made a shared file before the kernel looks it up, so it is
/// kept whatever the number is now (closed, own, or shared and not locked).
pub fn verdict(returned: bool, seen: Seen) -> Verdict {
    match seen {
        Seen::Shared { locked: true } => Verdict::Violation,
        // The whole thread group is gone: its call too, and its locks with its fd table.
        Seen::Gone => Verdict::Forget,
        _ if returned => Verdict::Forget,
        _ => Verdict::Keep,
    }
}

/// The lock mediation of one container.
pub struct Mediator {
    own: OwnFiles,
    pending: Vec<Pending>,
    watched: Vec<Watched>,
    last_retry: Instant,
    last_check: Instant,
}

impl Mediator {
    /// A mediator for a container whose own filesystems are `own`.
    pub fn new(own: OwnFiles) -> Self {
        let now = Instant::now();
        Self {
            own,
            pending: Vec::new(),
            watched: Vec::new(),
            last_retry: now,
            last_check: now,
        }
    }

    /// When `tick` has something to do next; `None`: nothing waits or is watched.
    pub fn next_tick(&self) -> Option<Instant> {
        let retry = (!self.pending.is_empty()).then(|| self.last_retry + RETRY);
        let check = (!self.watched.is_empty()).then(|| self.last_check + CHECK_EVERY);
        match (retry, check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Tries the waiting lock calls again (every `RETRY`) and checks the watched POSIX
    /// calls (every `CHECK_EVERY`), each when due.
    pub fn tick(&mut self, listener: RawFd, now: Instant) -> Option<Violation> {
        if !self.pending.is_empty() && now >= self.last_retry + RETRY {
            self.last_retry = now;
            self.retry(listener);
        }
        if !self.watched.is_empty() && now >= self.last_check + CHECK_EVERY {
            self.last_check = now;
            return self.check();
        }
        None
    }

    /// Answers the lock call of notification `notif` (already received from `listener`).
    pub fn handle(&mut self, listener: RawFd, notif: &libc::seccomp_notif, call: LockCall) {
        // No call is left unanswered while its caller waits (when it is gone, the answer
        // finds no one: harmless).
        let Some(pidfd) = pidfd_open(caller(notif)) else {
            send(listener, notif.id, Reply::Errno(libc::ENOLCK));
            return;
        };
        // From here `pidfd` is the caller's, not a recycled pid's.
        if !id_valid(listener, notif.id) {
            return;
        }
        // A thread makes one call at a time: whatever it let run before has returned.
        for w in self.watched.iter_mut().filter(|w| w.tid == caller(notif)) {
            w.in_flight = false;
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
                return;
            }
        };
        let owner = self.own.owner_of(file.as_raw_fd());
        let inc = Incoming {
            notif,
            call,
            file,
            owner,
        };
        match (call, owner) {
            (LockCall::Fcntl { cmd, .. }, Owner::Own) if cmd.is_posix() => {
                self.let_run(listener, inc, pidfd);
            }
            (LockCall::Flock { .. }, Owner::Shared) => {
                let reply = shared_reply(call, access_mode(&inc.file), None);
                send(listener, notif.id, reply);
            }
            (LockCall::Flock { .. }, Owner::Own) => {
                let p = Pending {
                    id: notif.id,
                    call,
                    file: inc.file,
                    fl: None,
                };
                self.attempt_or_wait(listener, p);
            }
            (LockCall::Fcntl { .. }, _) => self.fcntl(listener, inc),
        }
    }

    /// Lets a POSIX lock call on an own file run, and watches it when it sets a lock.
    fn let_run(&mut self, listener: RawFd, inc: Incoming, pidfd: OwnedFd) {
        let LockCall::Fcntl { fd, cmd, arg } = inc.call else {
            return;
        };
        let id = inc.notif.id;
        // A query places nothing; what it may read of a shared file is in the module doc.
        if cmd == LockCmd::GetLk {
            send(listener, id, Reply::Continue);
            return;
        }
        let tid = caller(inc.notif);
        let known = self.watched.iter().position(|w| w.tid == tid && w.fd == fd);
        let tgid = match known {
            Some(_) => None,
            None => {
                // Read while the caller waits for us: `tid` still names it.
                let tgid = std::fs::read_to_string(format!("/proc/{tid}/status"))
                    .ok()
                    .and_then(|s| tgid_of(&s));
                if tgid.is_none() || self.watched.len() >= MAX_WATCHED {
                    // Refused rather than let run unwatched.
                    send(listener, id, Reply::Errno(libc::ENOLCK));
                    return;
                }
                tgid
            }
        };
        if !send(listener, id, Reply::Continue) {
            // Interrupted before it ran: a restart is a new notification.
            return;
        }
        let cmd = as_shown(cmd);
        match (known, tgid) {
            (Some(i), _) => {
                let w = &mut self.watched[i];
                (w.cmd, w.arg, w.in_flight) = (cmd, arg, true);
            }
            (None, Some(tgid)) => self.watched.push(Watched {
                tid,
                tgid,
                fd,
                cmd,
                arg,
                holder: pidfd,
                holder_tid: tid,
                in_flight: true,
            }),
            (None, None) => {}
        }
    }

    /// The `fcntl` calls the init answers itself: all but POSIX locks on own files.
    fn fcntl(&mut self, listener: RawFd, inc: Incoming) {
        let (id, pid) = (inc.notif.id, caller(inc.notif));
        let LockCall::Fcntl { cmd, arg, .. } = inc.call else {
            return;
        };
        let Some(mem) = CallerMemory::open(pid) else {
            send(listener, id, Reply::Errno(libc::ENOLCK));
            return;
        };
        // The memory file is the caller's only if its notification is still alive.
        if !id_valid(listener, id) {
            return;
        }
        let Some(mut fl) = mem.read_flock(arg) else {
            send(listener, id, Reply::Errno(libc::EFAULT));
            return;
        };
        if inc.owner == Owner::Shared {
            let mut reply = shared_reply(inc.call, access_mode(&inc.file), Some(&fl));
            if reply == Reply::Value(0) && cmd.is_query() {
                fl.l_type = UNLOCKED;
                if !mem.write_flock(arg, &fl) {
                    reply = Reply::Errno(libc::EFAULT);
                }
            }
            send(listener, id, reply);
            return;
        }
        let mut p = Pending {
            id,
            call: inc.call,
            file: inc.file,
            fl: Some(fl),
        };
        let reply = match attempt(&mut p) {
            // A query's answer is the struct the kernel filled in.
            Some(Reply::Value(0)) if cmd.is_query() => match &p.fl {
                Some(fl) if mem.write_flock(arg, fl) => Reply::Value(0),
                _ => Reply::Errno(libc::EFAULT),
            },
            Some(reply) => reply,
            None => return self.wait(listener, p),
        };
        deliver(listener, &p, reply);
    }

    fn attempt_or_wait(&mut self, listener: RawFd, mut p: Pending) {
        match attempt(&mut p) {
            Some(reply) => deliver(listener, &p, reply),
            None => self.wait(listener, p),
        }
    }

    fn wait(&mut self, listener: RawFd, p: Pending) {
        if self.pending.len() >= MAX_PENDING {
            send(listener, p.id, Reply::Errno(libc::ENOLCK));
            return;
        }
        if self.pending.is_empty() {
            self.last_retry = Instant::now();
        }
        self.pending.push(p);
    }

    /// Tries every waiting lock call again; answers those that succeed or fail, drops those
    /// whose caller was interrupted (by a signal, or killed).
    fn retry(&mut self, listener: RawFd) {
        for mut p in std::mem::take(&mut self.pending) {
            if !id_valid(listener, p.id) {
                continue;
            }
            match attempt(&mut p) {
                Some(reply) => deliver(listener, &p, reply),
                None => self.pending.push(p),
            }
        }
    }

    /// Looks at every watched call: forgets those that can no longer do harm; a lock held
    /// on a shared file is a violation.
    fn check(&mut self) -> Option<Violation> {
        let mut found = None;
        let own = &self.own;
        self.watched.retain_mut(|w| {
            if found.is_some() {
                return true;
            }
            if w.in_flight && has_returned(w) {
                w.in_flight = false;
            }
            let Some(seen) = look(own, w) else {
                return true;
            };
            match verdict(!w.in_flight, seen) {
                Verdict::Keep => true,
                Verdict::Forget => false,
                Verdict::Violation => {
                    found = Some(Violation {
                        nr: SYS_FCNTL,
                        // A tid is positive: `unsigned_abs` keeps its value.
                        pid: w.tid.unsigned_abs(),
                    });
                    true
                }
            }
        });
        found
    }
}

/// Whether the thread of a watched call is known to be past it: gone, or in another call,
/// or back in user space. A thread runnable or running is not known to be.
fn has_returned(w: &Watched) -> bool {
    let line = std::fs::read_to_string(format!("/proc/{}/syscall", w.tid));
    // Checked after the read: while the thread lives, its tid names no one else.
    if w.holder_tid != w.tid || exited(&w.holder) {
        return true;
    }
    line.is_ok_and(|l| past_call(&l, w.fd, w.cmd, w.arg))
}

/// Whether a thread whose `/proc/<tid>/syscall` reads `line` is past the `fcntl(fd, cmd,
/// arg)` it was let make. `running`: it may be about to make it.
pub fn past_call(line: &str, fd: RawFd, cmd: u64, arg: u64) -> bool {
    let mut words = line.split_whitespace();
    let Some(Ok(nr)) = words.next().map(str::parse::<i64>) else {
        return false;
    };
    if nr != libc::SYS_fcntl {
        // -1: blocked outside any call (back in user space); else in another call.
        return true;
    }
    let hex = |w: Option<&str>| {
        w.and_then(|w| w.strip_prefix("0x"))
            .and_then(|w| u64::from_str_radix(w, 16).ok())
    };
    let same = hex(words.next()).map(low_int) == Some(fd)
        && hex(words.next()).map(|c| u64::from(low_u32(c))) == Some(cmd)
        && hex(words.next()) == Some(arg);
    !same
}

/// What the watched fd number is now, in the fd table of a live thread of the caller's
/// group; `None` when it cannot be told this time.
fn look(own: &OwnFiles, w: &mut Watched) -> Option<Seen> {
    // A few turns: the thread looked through may end while we look.
    for _ in 0..4 {
        if exited(&w.holder) {
            let Some((tid, pidfd)) = other_thread(w.tgid) else {
                return Some(Seen::Gone);
            };
            (w.holder_tid, w.holder) = (tid, pidfd);
        }
        let file = match pidfd_getfd(&w.holder, w.fd) {
            Ok(f) => f,
            // A live thread's table has no such fd (a thread that ended has none at all).
            Err(libc::EBADF) if !exited(&w.holder) => return Some(Seen::Closed),
            Err(libc::EBADF | libc::ESRCH) => continue,
            Err(_) => return None,
        };
        if own.owner_of(file.as_raw_fd()) == Owner::Own {
            return Some(Seen::Own);
        }
        let locked = locked_through(w.holder_tid, w.fd, &file)?;
        if exited(&w.holder) {
            continue;
        }
        return Some(Seen::Shared { locked });
    }
    None
}

/// A live thread of thread group `tgid` and a pidfd of it.
fn other_thread(tgid: libc::pid_t) -> Option<(libc::pid_t, OwnedFd)> {
    let dir = std::fs::read_dir(format!("/proc/{tgid}/task")).ok()?;
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Some(pidfd) = pidfd_open(tid) else {
            continue;
        };
        // Still a thread of the group once its pidfd is held: not a recycled tid.
        if std::path::Path::new(&format!("/proc/{tgid}/task/{tid}")).exists() && !exited(&pidfd) {
            return Some((tid, pidfd));
        }
    }
    None
}

/// Whether the fd table of thread `tid` holds a lock placed through its fd `fd`, which is
/// `file`: the `lock:` lines of its fdinfo (fs/locks.c `show_fd_locks`). `None` when the
/// fdinfo read is of another file (the fd was replaced meanwhile) or could not be read.
fn locked_through(tid: libc::pid_t, fd: RawFd, file: &OwnedFd) -> Option<bool> {
    let info = std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}")).ok()?;
    let (mnt_id, ino) = mount_and_inode(file)?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if field("mnt_id:") != Some(mnt_id) || field("ino:") != Some(ino) {
        return None;
    }
    Some(info.lines().any(|l| l.starts_with("lock:")))
}

/// The mount id and inode number of an open file (as fdinfo shows them).
fn mount_and_inode(file: &OwnedFd) -> Option<(u64, u64)> {
    // SAFETY: plain old data, filled by the kernel below.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an fd we own, an empty C string with AT_EMPTY_PATH, a valid out-pointer.
    let r = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_INO | libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    (r == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0).then_some((stx.stx_mnt_id, stx.stx_ino))
}

/// Whether the task of `pidfd` has ended (a pidfd polls readable then).
fn exited(pidfd: &OwnedFd) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r == 1 && p.revents != 0
}

/// The `Tgid:` of a `/proc/<tid>/status`.
pub fn tgid_of(status: &str) -> Option<libc::pid_t> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Sends the answer to `p`'s call. A lock taken for a caller that no longer waits (it was
/// interrupted or killed since it was checked) is released again: its open file
/// description, which may outlive it, would keep it.
fn deliver(listener: RawFd, p: &Pending, reply: Reply) {
    if !send(listener, p.id, reply) && reply == Reply::Value(0) {
        undo(p);
    }
}

/// Releases the lock `p`'s call took (nothing for an unlock or a query).
fn undo(p: &Pending) {
    let fd = p.file.as_raw_fd();
    match (p.call, p.fl) {
        (LockCall::Flock { op, .. }, _) if op & !libc::LOCK_NB != libc::LOCK_UN => {
            // SAFETY: flock on an fd we own; no memory is passed.
            unsafe { libc::flock(fd, libc::LOCK_UN) };
        }
        (LockCall::Fcntl { cmd, .. }, Some(fl))
            if matches!(cmd, LockCmd::OfdSetLk | LockCmd::OfdSetLkw)
                && i32::from(fl.l_type) != libc::F_UNLCK =>
        {
            let mut un = fl;
            un.l_type = UNLOCKED;
            // SAFETY: a valid struct flock the kernel reads; `fd` is ours.
            unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &un as *const libc::flock) };
        }
        _ => {}
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
            return Some(unsafe { OwnedFd::from_raw_fd(new_fd(r)) });
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
    Ok(unsafe { OwnedFd::from_raw_fd(new_fd(r)) })
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
        Reply::Continue => (0, 0, FLAG_CONTINUE),
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

// The kernel's integers as the notification, libc and `/proc` give them. Each conversion
// below keeps the bits: it is how the kernel itself reads the value.

/// The low 32 bits of a syscall argument: the kernel reads an `unsigned int` argument (an
/// fd, a command) so, whatever the high bits hold.
#[allow(clippy::cast_possible_truncation)] // the truncation is the kernel's own reading
fn low_u32(arg: u64) -> u32 {
    arg as u32
}

/// The same, as the `int` libc gives fds and commands.
#[allow(clippy::cast_possible_wrap)] // the same 32 bits: the kernel's int is this unsigned int
fn low_int(arg: u64) -> i32 {
    low_u32(arg) as i32
}

/// The calling thread of a notification: `__u32` in the uapi, a `pid_t` to the kernel.
#[allow(clippy::cast_possible_wrap)] // pids are at most PID_MAX_LIMIT (2^22)
fn caller(notif: &libc::seccomp_notif) -> libc::pid_t {
    notif.pid as libc::pid_t
}

/// An `fcntl` command as `/proc/<tid>/syscall` shows it: the argument register of an
/// `int`, sign-extended.
#[allow(clippy::cast_sign_loss)] // the same bits, sign-extended
fn as_shown(cmd: LockCmd) -> u64 {
    i64::from(cmd as i32) as u64
}

/// The fd a successful fd-returning syscall returned (`syscall` widens its `int` result).
#[allow(clippy::cast_possible_truncation)] // the kernel's fds are ints
fn new_fd(r: libc::c_long) -> RawFd {
    r as RawFd
}

/// `fcntl`'s number, as a notification carries it (x86_64 numbers are below 1024).
#[allow(clippy::cast_possible_truncation)]
const SYS_FCNTL: i32 = libc::SYS_fcntl as i32;

/// `F_UNLCK` (2) as `struct flock`'s `l_type`, a short.
#[allow(clippy::cast_possible_truncation)]
const UNLOCKED: libc::c_short = libc::F_UNLCK as libc::c_short;

/// `SECCOMP_USER_NOTIF_FLAG_CONTINUE` (1) as `seccomp_notif_resp`'s `flags`, a `__u32`.
#[allow(clippy::cast_possible_truncation)]
const FLAG_CONTINUE: u32 = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_calls_are_told_from_other_calls_by_number_and_command() {
        let args = |a: u64, b: u64, c: u64| [a, b, c, 0, 0, 0];
        let flock = i32::try_from(libc::SYS_flock).unwrap();
        let fcntl = i32::try_from(libc::SYS_fcntl).unwrap();
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
                &args(
                    0xffff_0000_0000_0004,
                    (1 << 40) | u64::try_from(raw).unwrap(),
                    0x7000,
                ),
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
            LockCall::from_notification(i32::try_from(libc::SYS_ptrace).unwrap(), &args(0, 0, 0)),
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
        fl.l_type = libc::c_short::try_from(l_type).unwrap();
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
    fn a_watched_call_is_a_violation_exactly_when_a_shared_file_is_locked_through_it() {
        use Seen::*;
        use Verdict::*;
        for returned in [false, true] {
            // Only the race puts a lock on a shared file: whatever else is known.
            assert_eq!(verdict(returned, Shared { locked: true }), Violation);
            // The thread group is gone: its call with it, its locks with its fd table.
            assert_eq!(verdict(returned, Gone), Forget);
        }
        // Returned: a lock it placed on a shared file would still be listed (closing or
        // replacing the fd drops it), so nothing is left to watch.
        for seen in [Closed, Own, Shared { locked: false }] {
            assert_eq!(verdict(true, seen), Forget, "{seen:?}");
        }
        // Not known to have run: the fd may yet be swapped before the kernel looks it up
        // (SQLite's unlock, close and open of a /usr file is this, and no violation).
        for seen in [Closed, Own, Shared { locked: false }] {
            assert_eq!(verdict(false, seen), Keep, "{seen:?}");
        }
    }

    #[test]
    fn a_thread_is_past_its_call_when_proc_shows_it_in_another_or_none() {
        let setlk = libc::F_SETLK as u64;
        let line = |nr: i64, fd: u64, cmd: u64, arg: u64| {
            format!("{nr} {fd:#x} {cmd:#x} {arg:#x} 0x0 0x0 0x0 0x7ffd1000 0x7f001234\n")
        };
        // Still in it (e.g. an F_SETLKW waiting in the kernel), or runnable: not past.
        assert!(!past_call(&line(72, 10, setlk, 0x7000), 10, setlk, 0x7000));
        assert!(!past_call("running\n", 10, setlk, 0x7000));
        assert!(!past_call("", 10, setlk, 0x7000));
        // In another call, another fcntl, or back in user space: past.
        assert!(past_call(&line(230, 0, 0, 0), 10, setlk, 0x7000));
        assert!(past_call(&line(72, 11, setlk, 0x7000), 10, setlk, 0x7000));
        assert!(past_call(
            &line(72, 10, libc::F_GETFL as u64, 0),
            10,
            setlk,
            0x7000
        ));
        assert!(past_call(&line(72, 10, setlk, 0x7008), 10, setlk, 0x7000));
        assert!(past_call("-1 0x7ffd1000 0x7f001234\n", 10, setlk, 0x7000));
        // The kernel takes fd and command as 32 bits; the register may carry more.
        let wide = line(72, 0xffff_0000_0000_000a, (1 << 40) | setlk, 0x7000);
        assert!(!past_call(&wide, 10, setlk, 0x7000));
    }

    #[test]
    fn the_thread_group_is_read_from_proc_status() {
        let status = "Name:\tjava\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t17\nNgid:\t0\n\
                      Pid:\t23\nPPid:\t1\n";
        assert_eq!(tgid_of(status), Some(17));
        assert_eq!(tgid_of("Name:\tx\nPid:\t3\n"), None);
    }

    #[test]
    fn struct_flock_bytes_round_trip_at_the_kernels_offsets() {
        let mut f = fl(libc::F_WRLCK, 1234);
        f.l_whence = libc::c_short::try_from(libc::SEEK_END).unwrap();
        f.l_start = -5;
        f.l_len = 1 << 40;
        let b = encode_flock(&f);
        assert_eq!(b.len(), 32);
        assert_eq!(
            &b[0..2],
            &i16::try_from(libc::F_WRLCK).unwrap().to_ne_bytes()
        );
        assert_eq!(
            &b[2..4],
            &i16::try_from(libc::SEEK_END).unwrap().to_ne_bytes()
        );
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
