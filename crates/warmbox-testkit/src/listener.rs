//! Standing in for the container's init on the seccomp listener, for tests that run
//! programs under a policy outside a container: lock calls (which the policy hands to the
//! init, see `warmbox_inside::locks`) run as made; anything else fails with ENOSYS.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use warmbox_inside::locks::LockCall;

/// Sends `fd` over the socket `sock` (async-signal-safe: no allocation).
pub fn send_fd(sock: RawFd, fd: RawFd) -> std::io::Result<()> {
    #[repr(C)]
    union Cmsg {
        buf: [u8; 64],
        _align: libc::cmsghdr,
    }
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cmsg = Cmsg { buf: [0; 64] };
    // SAFETY: msghdr is plain old data; the CMSG macros stay within `cmsg`, which is
    // aligned for cmsghdr and larger than CMSG_SPACE(4).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.buf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let hdr = libc::CMSG_FIRSTHDR(&msg);
        (*hdr).cmsg_level = libc::SOL_SOCKET;
        (*hdr).cmsg_type = libc::SCM_RIGHTS;
        (*hdr).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(hdr).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &msg, 0) != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Installs `policy` in this (forked, about to exec) process and hands its listener, if
/// it has one, over `sock` to the thread running [`answer_lock_calls`]. Async-signal-safe:
/// install() neither allocates nor takes locks (its errors carry an OS error code only).
pub fn install_and_hand_over(
    policy: &warmbox_sandbox::seccomp::CompiledPolicy,
    sock: RawFd,
) -> std::io::Result<()> {
    use warmbox_inside::seccomp::FilterError;
    let listener = policy.install().map_err(|e| match e {
        FilterError::Install(e) => e,
        _ => std::io::Error::from(std::io::ErrorKind::Other),
    })?;
    if let Some(l) = listener {
        send_fd(sock, l.as_raw_fd())?;
    }
    Ok(())
}

/// Runs `program args` in `dir` confined as a job process is, right before exec:
/// RLIMIT_CORE 0, no_new_privs, then `landlock` (when given), then `policy`, in that
/// order. A thread of this process stands in for the init on the seccomp listener
/// ([`answer_lock_calls`]). Returns the program's output.
pub fn run_confined(
    dir: &std::path::Path,
    program: &str,
    args: &[&str],
    policy: warmbox_sandbox::seccomp::CompiledPolicy,
    landlock: Option<warmbox_inside::landlock::PreparedRuleset>,
) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let theirs_fd = theirs.as_raw_fd();
    let mut landlock = landlock;
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: the hook runs in the forked child of this multi-threaded process: it makes
    // raw syscalls (setrlimit, prctl, landlock_restrict_self, seccomp, sendmsg) and
    // allocates only on error paths, which glibc keeps usable after fork; install()
    // neither allocates nor takes locks.
    unsafe {
        command.pre_exec(move || {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(ruleset) = landlock.take() {
                ruleset
                    .restrict_self()
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::PermissionDenied))?;
            }
            install_and_hand_over(&policy, theirs_fd)
        });
    }
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    drop(theirs);
    let supervisor = std::thread::spawn(move || answer_lock_calls(&ours));
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {program}: {e}"));
    supervisor.join().expect("supervisor thread");
    output
}

/// Asserts that `output` is a clean exit (no signal, code 0) with exactly `stdout`.
pub fn assert_clean_exit(output: &std::process::Output, what: &str, stdout: &str) {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        None,
        "{what} was killed by a signal (SIGSYS = 31 means a killed syscall); stderr: {stderr}"
    );
    assert_eq!(output.status.code(), Some(0), "{what}: stderr: {stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), stdout, "{what}");
}

/// Receives the listener (none: the child failed before sending it) and answers its
/// notifications until no process is left under the filter.
pub fn answer_lock_calls(sock: &UnixStream) {
    let mut byte = [0u8; 1];
    let listener = match warmbox_inside::protocol::recv_with_fds(sock.as_raw_fd(), &mut byte) {
        Ok((1, mut fds)) if fds.len() == 1 => fds.remove(0),
        _ => return,
    };
    // libc declares the flag u64; the response's field is the kernel's u32.
    let continue_flag = u32::try_from(libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE)
        .expect("SECCOMP_USER_NOTIF_FLAG_CONTINUE is 1");
    loop {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
            continue;
        }
        if pfd.revents & libc::POLLIN == 0 {
            return; // POLLHUP: the program and all its children are gone
        }
        // SAFETY: plain old data, zeroed as the kernel requires.
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: a valid listener and a seccomp_notif of the right size.
        if unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut notif,
            )
        } != 0
        {
            continue;
        }
        let lock = LockCall::from_notification(notif.data.nr, &notif.data.args).is_some();
        let mut resp = libc::seccomp_notif_resp {
            id: notif.id,
            val: 0,
            error: if lock { 0 } else { -libc::ENOSYS },
            flags: if lock { continue_flag } else { 0 },
        };
        // SAFETY: a valid listener and a filled response.
        unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp,
            )
        };
    }
}
