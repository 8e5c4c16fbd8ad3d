//! The fork server: a small single-threaded copy of warmbox (started once per layout by the
//! engine, named `warmbox-init`) that clones every container init.
//!
//! Why not clone from the server: the server is multi-threaded, so its clone child may only
//! make raw syscalls until it execs, and the exec and start-up of the init cost most of a
//! millisecond per container; and a clone copies the caller's page tables, so it grows
//! slower as the server's memory grows. The fork server is single-threaded and small: its
//! clone child runs the init directly, at once. `CLONE_PARENT` makes the server (the fork
//! server's parent) the init's parent, so the server still holds the pidfd and reaps.
//!
//! There is one fork server per set of binds (the part of a layout that shapes the root):
//! it builds that root once, as a template in its own mount namespace, and pivots into
//! it; each init's mount namespace is a copy of the template (see `warmbox_inside::mount`).
//! Its command line is only its name, `warmbox-init` (with [`ENV`] set): every init is a
//! clone of it and shares its argument memory, so whatever stood there would be the
//! container's `/proc/1/cmdline`, readable by the job; the host path of the binary and the
//! binds must not be. The new root and the binds come as the first packet on the channel,
//! NUL-separated. The fork server answers with one packet: empty when the template is
//! built, else the reason it could not be.
//!
//! One request: a packet with the clone flags, carrying the init's end of its channel
//! (and on cgroup v2 the cgroup directory fd) as SCM_RIGHTS; one reply: the pid, with the
//! pidfd attached, or an error message.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use super::spawn::{CloneArgs, SpawnError, CLONE_INTO_CGROUP};

/// Set (to `1`) in the fork server's environment: `main` runs the fork server then.
pub const ENV: &str = "WARMBOX_FORKSERVER";
/// The fork server's whole command line, hence every container's `/proc/1/cmdline`.
pub const PROCESS_NAME: &str = "warmbox-init";

/// Nice value of the fork server, hence of every container while it warms up (its job
/// process included, until the container is ready).
pub const SETUP_NICE: i32 = 5;
/// Nice value the server gives an init once its container is ready: a job that keeps every
/// CPU of its cgroup busy must not starve the init, which enforces the wall limit and
/// reports.
pub const RUN_NICE: i32 = -10;
/// Nice value the server gives the job process (and all it starts) once its container is
/// ready: the server's own, above the warm-up of other containers, so that background
/// creation does not stretch a job's wall time.
pub const JOB_NICE: i32 = warmbox_inside::job::JOB_NICE;

/// How long the fork server may take to build its template root and say so.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long it may take to answer one clone request (a clone takes about a millisecond).
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sets how long a receive on `sock` waits before it fails with EAGAIN.
fn receive_timeout(sock: &OwnedFd, t: std::time::Duration) -> Result<(), SpawnError> {
    let tv = nix::sys::time::TimeVal::new(
        libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        libc::suseconds_t::from(t.subsec_micros()),
    );
    nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
        .map_err(|e| io("set the fork server channel's receive timeout", e.into()))
}

/// The server's handle on the fork server.
#[derive(Debug)]
pub struct ForkServer {
    sock: Mutex<OwnedFd>,
    child: Mutex<std::process::Child>,
}

fn io(what: &str, source: std::io::Error) -> SpawnError {
    SpawnError::ForkServer(format!("{what}: {source}"))
}

impl ForkServer {
    /// Starts `exe` as the fork server with its end of the channel as stdin, sends it
    /// `new_root` and `binds`, and
    /// waits until it has built the template root of `binds` on `new_root` (an empty host
    /// directory; each fork server mounts on it in its own mount namespace).
    pub fn start(exe: &Path, new_root: &Path, binds: &[PathBuf]) -> Result<Self, SpawnError> {
        // SEQPACKET, not datagrams: message boundaries, and an EOF for the fork server when
        // the server is gone (a datagram socket would leave it waiting forever).
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| io("socketpair", e.into()))?;
        receive_timeout(&ours, START_TIMEOUT)?;
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new(exe)
            .arg0(PROCESS_NAME)
            .stdin(std::process::Stdio::from(theirs))
            .stdout(std::process::Stdio::null())
            .env_clear()
            .env(ENV, "1")
            .spawn()
            .map_err(|e| io(&format!("start {} as the fork server", exe.display()), e))?;
        let told = nix::sys::socket::send(
            ours.as_raw_fd(),
            &encode_root(new_root, binds),
            MsgFlags::MSG_NOSIGNAL,
        );
        if let Err(e) = told {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io("send the fork server its root", e.into()));
        }
        let mut status = [0u8; 4096];
        let ready = warmbox_inside::protocol::recv_with_fds(ours.as_raw_fd(), &mut status);
        let failure = match ready {
            Ok((0, _)) => None,
            Ok((n, _)) => Some(String::from_utf8_lossy(&status[..n]).into_owned()),
            Err(e) => Some(format!("no word from it within {START_TIMEOUT:?}: {e}")),
        };
        if let Some(why) = failure {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SpawnError::ForkServer(format!(
                "the container root of binds {binds:?}: {why}"
            )));
        }
        receive_timeout(&ours, REPLY_TIMEOUT)?;
        Ok(ForkServer {
            sock: Mutex::new(ours),
            child: Mutex::new(child),
        })
    }

    /// Whether the fork server is still running; one that exited is reaped here.
    pub fn is_alive(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        matches!(child.try_wait(), Ok(None))
    }

    /// Ends a fork server whose channel can no longer be trusted (a reply that did not
    /// come, or came broken, would answer the next request): the engine starts another.
    fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Clones an init with `flags` (plus CLONE_PIDFD and CLONE_PARENT; CLONE_INTO_CGROUP
    /// when `cgroup` is given) whose channel end is `init_sock`. Blocks until the fork
    /// server answers: call it from a blocking-pool thread.
    pub(crate) fn clone_init_blocking(
        &self,
        flags: u64,
        init_sock: BorrowedFd<'_>,
        cgroup: Option<BorrowedFd<'_>>,
    ) -> Result<super::spawn::Spawned, SpawnError> {
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let mut fds = vec![init_sock.as_raw_fd()];
        fds.extend(cgroup.map(|c| c.as_raw_fd()));
        let req = flags.to_le_bytes();
        let iov = [IoSlice::new(&req)];
        let broken = |e: SpawnError| {
            self.kill();
            e
        };
        sendmsg::<()>(
            sock.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| broken(io("send to the fork server", e.into())))?;
        let mut reply = [0u8; 512];
        let (n, mut got) = warmbox_inside::protocol::recv_with_fds(sock.as_raw_fd(), &mut reply)
            .map_err(|e| {
                broken(SpawnError::ForkServer(format!(
                    "receive from the fork server (within {REPLY_TIMEOUT:?}): {e}"
                )))
            })?;
        match (n, got.pop()) {
            (0, _) => Err(broken(SpawnError::ForkServer(
                "the fork server is gone".into(),
            ))),
            (4, None) => Err(broken(SpawnError::ForkServer(
                "the fork server's reply carried no pidfd".into(),
            ))),
            (4, Some(pidfd)) => Ok(super::spawn::Spawned {
                pid: i32::from_le_bytes([reply[0], reply[1], reply[2], reply[3]]),
                pidfd,
            }),
            _ => Err(SpawnError::Clone {
                flags,
                source: std::io::Error::other(String::from_utf8_lossy(&reply[..n]).into_owned()),
            }),
        }
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The fork server's first packet: the new root and the binds, each followed by a NUL.
fn encode_root(new_root: &Path, binds: &[PathBuf]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for p in std::iter::once(new_root).chain(binds.iter().map(PathBuf::as_path)) {
        out.extend_from_slice(p.as_os_str().as_bytes());
        out.push(0);
    }
    out
}

/// What [`encode_root`] made: (new root, binds).
fn decode_root(bytes: &[u8]) -> Result<(PathBuf, Vec<PathBuf>), String> {
    use std::os::unix::ffi::OsStrExt;
    let body = bytes
        .strip_suffix(&[0])
        .ok_or("the root packet does not end with a NUL")?;
    let mut paths = body
        .split(|&b| b == 0)
        .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)));
    let new_root = paths.next().ok_or("the root packet is empty")?;
    Ok((new_root, paths.collect()))
}

/// Entry point of the fork server (`ENV` set): reads its root and binds from fd 0, builds
/// the template root, says so, then serves clone requests on fd 0 until it closes.
pub fn main() -> i32 {
    // SAFETY: fd 0 is the channel the server gave us as stdin; nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(0) };
    // Whatever the server's own parent left open without close-on-exec (a shell's
    // redirections, a supervisor's sockets) has no business here, nor in any container.
    // SAFETY: close_range on our own fd table; 0-2 stay.
    unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    // The largest packet the server sends: a path list far beyond any profile's.
    let mut root = vec![0u8; 1 << 16];
    let root = match nix::sys::socket::recv(sock.as_raw_fd(), &mut root, MsgFlags::empty()) {
        Ok(n) => decode_root(&root[..n]),
        Err(e) => Err(format!("read the root packet: {e}")),
    };
    let status = match root.and_then(|(new_root, binds)| build_template(&new_root, &binds)) {
        Ok(()) => String::new(),
        Err(why) => why,
    };
    let told = nix::sys::socket::send(sock.as_raw_fd(), status.as_bytes(), MsgFlags::MSG_NOSIGNAL);
    if told.is_err() || !status.is_empty() {
        return 1;
    }
    // Creating containers is background work: below the server's request handling. The
    // inits inherit this; the server lifts an init when it is ready (`RUN_NICE`).
    // SAFETY: setpriority with integer arguments.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, SETUP_NICE) };
    loop {
        let mut req = [0u8; 8];
        let (n, fds) = match warmbox_inside::protocol::recv_with_fds(sock.as_raw_fd(), &mut req) {
            Ok((0, _)) => return 0,
            Ok(r) => r,
            Err(_) => return 1,
        };
        let reply = if n != 8 || fds.is_empty() || fds.len() > 2 {
            Err(format!("bad request: {n} bytes, {} fds", fds.len()))
        } else {
            clone_one(u64::from_le_bytes(req), &fds)
        };
        let sent = match &reply {
            Ok((pid, pidfd)) => sendmsg::<()>(
                sock.as_raw_fd(),
                &[IoSlice::new(&pid.to_le_bytes())],
                &[ControlMessage::ScmRights(&[pidfd.as_raw_fd()])],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ),
            Err(msg) => sendmsg::<()>(
                sock.as_raw_fd(),
                &[IoSlice::new(msg.as_bytes())],
                &[],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ),
        };
        if sent.is_err() {
            return 1;
        }
    }
}

/// A mount namespace of our own whose root is the template of `binds` on `new_root`.
fn build_template(new_root: &Path, binds: &[PathBuf]) -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    let ops =
        warmbox_inside::mount::template_plan(new_root, binds, &warmbox_inside::mount::host_kind);
    warmbox_inside::mount::apply(&ops).map_err(|e| e.to_string())?;
    warmbox_inside::mount::remember_proc_kinds();
    Ok(())
}

/// clone3 for one init; in the child, runs the init.
fn clone_one(flags: u64, fds: &[OwnedFd]) -> Result<(libc::pid_t, OwnedFd), String> {
    let init_sock = fds[0].as_fd();
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64 | libc::CLONE_PARENT as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        ..Default::default()
    };
    if let Some(cg) = fds.get(1) {
        args.flags |= CLONE_INTO_CGROUP;
        // An open fd is not negative: `unsigned_abs` keeps its value.
        args.cgroup = u64::from(cg.as_raw_fd().unsigned_abs());
    }
    // SAFETY: `args` is a valid clone_args of the size passed. We are single-threaded, so
    // the child may run any code (it is a fork).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        return Err(format!(
            "clone3(flags {:#x}): {}",
            args.flags,
            std::io::Error::last_os_error()
        ));
    }
    if pid == 0 {
        std::process::exit(init_child(init_sock.as_raw_fd()));
    }
    // `syscall` widens the kernel's pid_t result.
    #[allow(clippy::cast_possible_truncation)]
    let pid = pid as libc::pid_t;
    // SAFETY: clone3 stored a fresh pidfd (CLOEXEC) for us in `pidfd`.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// The clone child: keep only the init's channel, wait for the server's "id maps written",
/// become root of the new user namespace (the host's supplementary groups dropped), and
/// be the init.
fn init_child(sock: RawFd) -> i32 {
    // Move the channel to fd 3 and close everything else (fd 0 is the fork server's
    // socket; 1 is /dev/null; 2, stderr, stays for the init's last words).
    // SAFETY: dup2/close_range on our own fd table.
    unsafe {
        if sock != 3 && libc::dup2(sock, 3) < 0 {
            return 120;
        }
        libc::close_range(4, libc::c_uint::MAX, 0);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
    }
    let mut go = [0u8; 1];
    loop {
        // SAFETY: reading one byte into a live buffer.
        let n = unsafe { libc::read(3, go.as_mut_ptr().cast(), 1) };
        if n == 1 {
            break;
        }
        if n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return super::spawn::NO_GO;
        }
    }
    // SAFETY: plain integer arguments; we hold every capability of the new namespace.
    let root = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresgid(0, 0, 0) == 0
            && libc::setresuid(0, 0, 0) == 0
    };
    if !root {
        return super::spawn::NO_ROOT;
    }
    warmbox_inside::init::main(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_packet_round_trips() {
        let binds = [PathBuf::from("/usr"), PathBuf::from("/etc/ld.so.cache")];
        let bytes = encode_root(Path::new("/run/warmbox/root"), &binds);
        assert_eq!(bytes, b"/run/warmbox/root\0/usr\0/etc/ld.so.cache\0");
        assert_eq!(
            decode_root(&bytes).unwrap(),
            (PathBuf::from("/run/warmbox/root"), binds.to_vec())
        );
        assert_eq!(
            decode_root(b"/r\0").unwrap(),
            (PathBuf::from("/r"), Vec::new())
        );
        assert_eq!(
            decode_root(b"/r").unwrap_err(),
            "the root packet does not end with a NUL"
        );
        assert_eq!(
            decode_root(b"").unwrap_err(),
            "the root packet does not end with a NUL"
        );
    }
}
