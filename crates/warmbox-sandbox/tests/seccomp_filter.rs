//! Behaviour of the shipped `default` seccomp policy, observed from a forked child.
//!
//! Each case forks; the child sets no_new_privs, installs the policy, makes one call and
//! `_exit`s with a code that reports the result (0: the call succeeded, otherwise its
//! errno); the parent asserts the exact wait status. Installing a filter is irreversible,
//! so it never happens in the test runner's own process. The child of this multi-threaded
//! runner only makes raw syscalls (`install` does not allocate). Calls that would change
//! the host if the filter failed are given arguments that make them fail harmlessly.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use warmbox_sandbox::seccomp::CompiledPolicy;
use warmbox_testkit::kernel::{default_policy, require_sandbox, seccomp_available};

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Exited(i32),
    Signaled(i32),
}

const KILLED: Outcome = Outcome::Signaled(libc::SIGSYS);
/// The exit code of a test child whose grandchild's call reached the seccomp listener.
const NOTIFIED: i32 = 99;
/// A forbidden call: it never ran, the listener (the container's init in real use) was
/// told, and the caller was killed.
const FORBIDDEN: Outcome = Outcome::Exited(NOTIFIED);
/// The child's report when a call that should have been stopped succeeded.
const SUCCEEDED_UNEXPECTEDLY: i32 = 200;
/// The child's report when the policy could not be installed.
const INSTALL_FAILED: i32 = 125;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// The system call `nr` with six arguments, the ones it does not take ignored by the kernel.
fn raw_syscall(nr: libc::c_long, a: [libc::c_long; 6]) -> libc::c_long {
    // SAFETY: callers pass only integers, null pointers and pointers to NUL-terminated
    // paths that outlive the call; the calls tested read no memory of ours beyond those.
    unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

/// 0 when `rc` says success, else the errno.
fn report(rc: libc::c_long) -> i32 {
    if rc < 0 {
        errno()
    } else {
        0
    }
}

/// Forks; the child installs `policy` (if any) and exits with `call()`'s code.
fn in_child(policy: Option<&CompiledPolicy>, call: impl FnOnce() -> i32) -> Outcome {
    // SAFETY: the child only makes raw syscalls (setrlimit, prctl, the seccomp install,
    // which does not allocate, and `call`, which uses libc only) before `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain syscalls on valid arguments; a SIGSYS kill must not dump core.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        }
        let code = match policy.map(CompiledPolicy::install) {
            Some(Err(_)) => INSTALL_FAILED,
            Some(Ok(Some(listener))) => supervise(listener, call),
            _ => call(),
        };
        // SAFETY: _exit ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) }
    }
    wait(pid)
}

/// Plays the container's init: runs `call` in a grandchild and watches the seccomp
/// listener. `NOTIFIED` when a forbidden call was reported (the grandchild is killed, as
/// the init kills the container), else the grandchild's exit code; a grandchild killed by
/// a signal makes this process die of the same signal.
fn supervise(listener: OwnedFd, call: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the grandchild only runs `call` (libc only) and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(listener);
        let code = call();
        // SAFETY: ends the grandchild.
        unsafe { libc::_exit(code) }
    }
    loop {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 10) } > 0 && pfd.revents & libc::POLLIN != 0;
        if ready {
            // SAFETY: kill and reap our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait(pid);
            return NOTIFIED;
        }
        let mut status = 0;
        // SAFETY: status is a valid out-pointer; pid is our child.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            if libc::WIFSIGNALED(status) {
                // SAFETY: dying of the grandchild's signal (default action, no core).
                unsafe {
                    libc::signal(libc::WTERMSIG(status), libc::SIG_DFL);
                    libc::kill(libc::getpid(), libc::WTERMSIG(status));
                }
            }
            return libc::WEXITSTATUS(status);
        }
    }
}

fn wait(pid: libc::pid_t) -> Outcome {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-pointer; pid is our child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        assert_eq!(errno(), libc::EINTR, "waitpid {pid}");
    }
    if libc::WIFEXITED(status) {
        Outcome::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Outcome::Signaled(libc::WTERMSIG(status))
    } else {
        panic!("unexpected wait status {status:#x}")
    }
}

/// Runs a raw syscall under the default policy.
fn under_policy(call: impl FnOnce() -> i32) -> Outcome {
    in_child(Some(&default_policy()), call)
}

#[test]
fn getpid_works() {
    if !seccomp_available() {
        return;
    }
    // SAFETY: getpid has no arguments.
    let outcome = under_policy(|| i32::from(unsafe { libc::syscall(libc::SYS_getpid) } <= 0));
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn ptrace_traceme_kills() {
    if !seccomp_available() {
        return;
    }
    let outcome = under_policy(|| {
        // SAFETY: PTRACE_TRACEME takes no pointers.
        report(unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) })
    });
    assert_eq!(outcome, FORBIDDEN);
}

#[test]
fn unshare_newuser_kills() {
    if !seccomp_available() {
        return;
    }
    // SAFETY: unshare takes flags only; unfiltered it would affect only this child.
    let outcome =
        under_policy(|| report(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) }));
    assert_eq!(outcome, FORBIDDEN);
}

/// clone with `flags` in a child; reports how the grandchild ended, or the errno.
fn raw_clone(flags: u64) -> i32 {
    // SAFETY: fork-like clone (no CLONE_VM, null stack means "use the parent's copy"):
    // the new process only calls _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    if pid < 0 {
        return errno();
    }
    if pid == 0 {
        // SAFETY: ends the grandchild.
        unsafe { libc::_exit(7) }
    }
    match wait(libc::pid_t::try_from(pid).expect("clone returns a pid_t")) {
        Outcome::Exited(code) => code,
        Outcome::Signaled(_) => SUCCEEDED_UNEXPECTEDLY + 1,
    }
}

#[test]
fn clone_without_namespace_flags_works() {
    if !seccomp_available() {
        return;
    }
    let outcome = under_policy(|| raw_clone(libc::SIGCHLD as u64));
    assert_eq!(outcome, Outcome::Exited(7));
}

#[test]
fn clone_with_any_namespace_flag_kills() {
    if !seccomp_available() {
        return;
    }
    let flags = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ];
    for flag in flags {
        let flags = u64::try_from(flag | libc::SIGCHLD).expect("clone flags are positive");
        assert_eq!(
            under_policy(|| raw_clone(flags)),
            FORBIDDEN,
            "flag {flag:#x}"
        );
    }
    // The kernel reads only the low 32 bits of clone's flags, and so does the filter:
    // junk in the high half does not hide a namespace flag.
    let junk = (1u64 << 32) | libc::CLONE_NEWNS as u64 | libc::SIGCHLD as u64;
    assert_eq!(under_policy(|| raw_clone(junk)), FORBIDDEN);
}

/// clone3 with `flags` (exit signal SIGCHLD); reports the errno, or
/// `SUCCEEDED_UNEXPECTEDLY` when a process was created.
fn raw_clone3(flags: u64) -> i32 {
    // struct clone_args (CLONE_ARGS_SIZE_VER2, 88 bytes): flags, pidfd, child_tid,
    // parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup.
    let mut args = [0u64; 11];
    args[0] = flags;
    args[4] = libc::SIGCHLD as u64;
    // SAFETY: args is a valid clone_args of the size passed; with no CLONE_VM the new
    // process gets a copy of our memory and only calls _exit.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_mut_ptr(),
            std::mem::size_of_val(&args),
        )
    };
    if pid == 0 {
        // SAFETY: ends the new process at once.
        unsafe { libc::_exit(0) }
    }
    if pid < 0 {
        return errno();
    }
    wait(libc::pid_t::try_from(pid).expect("clone returns a pid_t"));
    SUCCEEDED_UNEXPECTEDLY
}

#[test]
fn clone3_returns_enosys() {
    if !seccomp_available() {
        return;
    }
    let outcome = under_policy(|| raw_clone3(libc::CLONE_NEWUSER as u64));
    assert_eq!(outcome, Outcome::Exited(libc::ENOSYS));
}

#[test]
fn mount_kills() {
    if !seccomp_available() {
        return;
    }
    let outcome = under_policy(|| {
        // A target that does not exist: unfiltered this fails with ENOENT, changing nothing.
        let target = c"/proc/self/warmbox-no-such-dir";
        // SAFETY: valid NUL-terminated strings and null optional pointers.
        report(unsafe {
            libc::syscall(
                libc::SYS_mount,
                c"none".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                0,
            )
        })
    });
    assert_eq!(outcome, FORBIDDEN);
}

#[test]
fn other_dangerous_calls_kill() {
    if !seccomp_available() {
        return;
    }
    // Each with arguments that fail harmlessly should the filter not stop it.
    const MISSING: &std::ffi::CStr = c"/warmbox-no-such-path";
    let missing = MISSING.as_ptr() as libc::c_long;
    let tiocsti = libc::c_long::try_from(libc::TIOCSTI).expect("TIOCSTI fits a long");
    let cases: &[(&str, libc::c_long, [libc::c_long; 6])] = &[
        // Null pointers, invalid fds or paths that do not exist: harmless if the filter
        // let one through.
        ("bpf", libc::SYS_bpf, [-1, 0, 0, 0, 0, 0]),
        (
            "perf_event_open",
            libc::SYS_perf_event_open,
            [0, 0, -1, -1, 0, 0],
        ),
        (
            "io_uring_setup",
            libc::SYS_io_uring_setup,
            [0, 0, 0, 0, 0, 0],
        ),
        ("userfaultfd", libc::SYS_userfaultfd, [0, 0, 0, 0, 0, 0]),
        ("keyctl", libc::SYS_keyctl, [-1, 0, 0, 0, 0, 0]),
        ("setns", libc::SYS_setns, [-1, 0, 0, 0, 0, 0]),
        (
            "process_vm_readv",
            libc::SYS_process_vm_readv,
            [0, 0, 0, 0, 0, 0],
        ),
        (
            "open_by_handle_at",
            libc::SYS_open_by_handle_at,
            [-1, 0, 0, 0, 0, 0],
        ),
        ("chroot", libc::SYS_chroot, [missing, 0, 0, 0, 0, 0]),
        ("umount2", libc::SYS_umount2, [missing, 0, 0, 0, 0, 0]),
        (
            "pivot_root",
            libc::SYS_pivot_root,
            [missing, missing, 0, 0, 0, 0],
        ),
        ("fsopen", libc::SYS_fsopen, [0, 0, 0, 0, 0, 0]),
        ("swapoff", libc::SYS_swapoff, [missing, 0, 0, 0, 0, 0]),
        (
            "clock_settime",
            libc::SYS_clock_settime,
            [libc::CLOCK_REALTIME.into(), 0, 0, 0, 0, 0],
        ),
        ("reboot", libc::SYS_reboot, [0, 0, 0, 0, 0, 0]),
        ("init_module", libc::SYS_init_module, [0, 0, 0, 0, 0, 0]),
        ("ioctl TIOCSTI", libc::SYS_ioctl, [-1, tiocsti, 0, 0, 0, 0]),
        (
            "ioctl TIOCSTI with high bits set",
            libc::SYS_ioctl,
            [-1, (1 << 32) | tiocsti, 0, 0, 0, 0],
        ),
    ];
    for &(name, nr, args) in cases {
        // TIOCSTI is a conditional rule (seccompiler's kill program): a plain kill. The
        // others are reported to the listener, which kills the caller.
        let want = if name.starts_with("ioctl") {
            KILLED
        } else {
            FORBIDDEN
        };
        assert_eq!(
            under_policy(|| report(raw_syscall(nr, args))),
            want,
            "{name}"
        );
    }
}

#[test]
fn unlisted_harmless_call_gets_default_errno() {
    if !seccomp_available() {
        return;
    }
    // kcmp is not in the policy; unfiltered, comparing our own VM with itself returns 0.
    let outcome = under_policy(|| {
        // SAFETY: getpid has no arguments.
        let pid = unsafe { libc::getpid() };
        // SAFETY: KCMP_VM (1) on our own pid takes no pointers.
        report(unsafe { libc::syscall(libc::SYS_kcmp, pid, pid, 1, 0, 0) })
    });
    assert_eq!(outcome, Outcome::Exited(libc::EPERM));
}

#[test]
fn socket_families_are_limited() {
    if !seccomp_available() {
        return;
    }
    let socket = |domain: i32, ty: i32, protocol: i32| {
        move || {
            // SAFETY: socket takes integers; the fd is left for _exit to close.
            report(unsafe { libc::syscall(libc::SYS_socket, domain, ty, protocol) })
        }
    };
    assert_eq!(
        under_policy(socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)),
        Outcome::Exited(0)
    );
    assert_eq!(
        under_policy(socket(libc::AF_INET, libc::SOCK_DGRAM, 0)),
        Outcome::Exited(0)
    );
    assert_eq!(
        under_policy(socket(libc::AF_INET6, libc::SOCK_STREAM, 0)),
        Outcome::Exited(0)
    );
    assert_eq!(
        under_policy(socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW,
            libc::NETLINK_ROUTE
        )),
        Outcome::Exited(0)
    );
    // As root, AF_PACKET and NETLINK_AUDIT would succeed without the filter.
    assert_eq!(
        under_policy(socket(libc::AF_PACKET, libc::SOCK_RAW, 0)),
        Outcome::Exited(libc::EAFNOSUPPORT)
    );
    assert_eq!(
        under_policy(socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW,
            libc::NETLINK_AUDIT
        )),
        Outcome::Exited(libc::EAFNOSUPPORT)
    );
}

#[test]
fn personality_only_default() {
    if !seccomp_available() {
        return;
    }
    let personality = |persona: u64| {
        // SAFETY: personality takes an integer.
        move || report(unsafe { libc::syscall(libc::SYS_personality, persona) })
    };
    assert_eq!(under_policy(personality(0xffff_ffff)), Outcome::Exited(0));
    assert_eq!(under_policy(personality(0)), Outcome::Exited(0));
    assert_eq!(
        under_policy(personality(libc::ADDR_NO_RANDOMIZE as u64)),
        Outcome::Exited(libc::EPERM)
    );
}

/// getpid through the i386 ABI (`int 0x80`, i386 syscall 20).
fn i386_getpid() -> i32 {
    let mut rax: i64 = 20;
    // SAFETY: int 0x80 with eax = 20 (getpid) takes no arguments and touches no memory;
    // the kernel preserves all registers but eax (r8-r11 are zeroed on return, so they
    // are declared clobbered).
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inout("rax") rax,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    i32::from(rax <= 0)
}

#[test]
fn i386_syscalls_kill() {
    if !seccomp_available() {
        return;
    }
    // Without the filter first: the kernel may lack IA32 emulation.
    if in_child(None, i386_getpid) != Outcome::Exited(0) {
        assert!(!require_sandbox(), "int 0x80 does not work on this kernel");
        eprintln!("skip: kernel without IA32 emulation, int 0x80 cannot be tested");
        return;
    }
    assert_eq!(under_policy(i386_getpid), KILLED);
}

#[test]
fn x32_syscalls_kill() {
    if !seccomp_available() {
        return;
    }
    // getpid (39) with __X32_SYSCALL_BIT. Unfiltered this is ENOSYS on kernels without
    // CONFIG_X86_X32_ABI and works on the others; the filter must kill either way.
    let outcome = under_policy(|| {
        // SAFETY: getpid takes no arguments.
        report(unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) })
    });
    assert_eq!(outcome, KILLED);
}

#[test]
fn every_program_is_needed_for_the_outcomes() {
    if !seccomp_available() {
        return;
    }
    // The tree (the program that checks for x32 calls right after the arch) settles
    // every unconditional verdict by itself...
    let full = default_policy();
    let trees: Vec<_> = full
        .programs
        .iter()
        .filter(|p| p.len() > 4 && p[4].k == 0x4000_0000)
        .cloned()
        .collect();
    assert_eq!(trees.len(), 1);
    let tree_only = CompiledPolicy {
        name: full.name.clone(),
        programs: trees,
    };
    // SAFETY: PTRACE_TRACEME takes no pointers.
    let traceme =
        || report(unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) });
    assert_eq!(in_child(Some(&tree_only), traceme), FORBIDDEN);
    // clone's namespace flags are checked in the tree too.
    let newns = || raw_clone(libc::CLONE_NEWNS as u64 | libc::SIGCHLD as u64);
    assert_eq!(in_child(Some(&tree_only), newns), FORBIDDEN);
    let clone3 = || raw_clone3(0);
    assert_eq!(
        in_child(Some(&tree_only), clone3),
        Outcome::Exited(libc::ENOSYS)
    );
    // ...but lets the calls whose verdict depends on their policy conditions through:
    // without the conditional programs, a packet socket and TIOCSTI would pass.
    let packet = || {
        // SAFETY: socket takes integers; a socket that opens is closed at the child's exit.
        let fd = unsafe { libc::syscall(libc::SYS_socket, libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd >= 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        }
    };
    assert_eq!(in_child(Some(&tree_only), packet), Outcome::Exited(0));
    assert_eq!(
        in_child(Some(&full), packet),
        Outcome::Exited(libc::EAFNOSUPPORT)
    );
    // SAFETY: an ioctl on an invalid fd with a null argument.
    let tiocsti = || report(unsafe { libc::syscall(libc::SYS_ioctl, -1, libc::TIOCSTI, 0) });
    assert_eq!(
        in_child(Some(&tree_only), tiocsti),
        Outcome::Exited(libc::EBADF)
    );
    assert_eq!(in_child(Some(&full), tiocsti), KILLED);
    // A round trip through bytes installs the same programs.
    let shipped = CompiledPolicy::from_bytes(&full.to_bytes()).expect("from_bytes");
    assert_eq!(
        in_child(Some(&shipped), clone3),
        Outcome::Exited(libc::ENOSYS)
    );
}

#[test]
fn errno_entries_hold_under_a_kill_default() {
    if !seccomp_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = r#"{
        "description": "kill everything unlisted",
        "include": ["base"],
        "default_action": "kill_process"
    }"#;
    std::fs::write(dir.path().join("strict.json"), policy).expect("write policy");
    let base = warmbox_testkit::repo().join("profiles/seccomp/base.json");
    std::fs::copy(base, dir.path().join("base.json")).expect("copy base.json");
    let strict =
        warmbox_sandbox::seccomp::load(dir.path(), "strict").unwrap_or_else(|e| panic!("{e}"));

    let enosys = in_child(Some(&strict), || raw_clone3(libc::CLONE_NEWUSER as u64));
    assert_eq!(enosys, Outcome::Exited(libc::ENOSYS));
    // SAFETY: socket takes integers.
    let packet =
        || report(unsafe { libc::syscall(libc::SYS_socket, libc::AF_PACKET, libc::SOCK_RAW, 0) });
    assert_eq!(
        in_child(Some(&strict), packet),
        Outcome::Exited(libc::EAFNOSUPPORT)
    );
    // SAFETY: getpid has no arguments.
    let getpid = || i32::from(unsafe { libc::syscall(libc::SYS_getpid) } <= 0);
    assert_eq!(in_child(Some(&strict), getpid), Outcome::Exited(0));
    // kcmp is unlisted: killed under this default.
    let kcmp = || {
        // SAFETY: getpid has no arguments.
        let pid = unsafe { libc::getpid() };
        // SAFETY: KCMP_VM (1) on our own pid takes no pointers.
        report(unsafe { libc::syscall(libc::SYS_kcmp, pid, pid, 1, 0, 0) })
    };
    assert_eq!(in_child(Some(&strict), kcmp), KILLED);
}

#[test]
fn host_wide_flushes_and_evictions_succeed_without_running() {
    if !seccomp_available() {
        return;
    }
    // On fd -1 each of these fails with EBADF (or on an unmapped address with ENOMEM)
    // when it runs: a 0 proves the filter answered without running it.
    let unmapped: libc::c_long = 0x1000_0000;
    let dontneed = libc::POSIX_FADV_DONTNEED as libc::c_long;
    let willneed = libc::POSIX_FADV_WILLNEED as libc::c_long;
    let calls: [(&str, libc::c_long, [libc::c_long; 4], i32); 6] = [
        ("fsync", libc::SYS_fsync, [-1, 0, 0, 0], 0),
        ("fdatasync", libc::SYS_fdatasync, [-1, 0, 0, 0], 0),
        (
            "fadvise64 DONTNEED",
            libc::SYS_fadvise64,
            [-1, 0, 0, dontneed],
            0,
        ),
        (
            "fadvise64 WILLNEED runs",
            libc::SYS_fadvise64,
            [-1, 0, 0, willneed],
            libc::EBADF,
        ),
        (
            "msync MS_SYNC",
            libc::SYS_msync,
            [unmapped, 4096, libc::MS_SYNC as libc::c_long, 0],
            0,
        ),
        (
            "msync MS_ASYNC runs",
            libc::SYS_msync,
            [unmapped, 4096, libc::MS_ASYNC as libc::c_long, 0],
            libc::ENOMEM,
        ),
    ];
    for (what, nr, [a, b, c, d], want) in calls {
        // SAFETY: integer arguments, or an unmapped address nothing is read or written
        // through.
        let call = || report(unsafe { libc::syscall(nr, a, b, c, d) });
        assert_eq!(under_policy(call), Outcome::Exited(want), "{what}");
        if want == 0 {
            assert_ne!(
                in_child(None, call),
                Outcome::Exited(0),
                "{what} unfiltered"
            );
        }
    }
}

#[test]
fn inotify_is_not_available() {
    if !seccomp_available() {
        return;
    }
    // SAFETY: inotify_init1 takes a flag word.
    let init = || report(unsafe { libc::syscall(libc::SYS_inotify_init1, libc::IN_CLOEXEC) });
    assert_eq!(in_child(None, init), Outcome::Exited(0));
    assert_eq!(under_policy(init), Outcome::Exited(libc::ENOSYS));
}

#[test]
fn a_job_cannot_add_seccomp_filters_of_its_own() {
    if !seccomp_available() {
        return;
    }
    // A filter of the job's own could answer a forbidden call with its own errno and
    // hide it from the init's listener: refused, in both ways of installing one.
    let allow_all = [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ALLOW,
    }];
    let filter = move || {
        let prog = libc::sock_fprog {
            len: 1,
            filter: allow_all.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points to one valid instruction that outlives the call.
        report(unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        })
    };
    assert_eq!(under_policy(filter), Outcome::Exited(libc::EPERM));
    let via_prctl = move || {
        let prog = libc::sock_fprog {
            len: 1,
            filter: allow_all.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: as above.
        report(unsafe {
            libc::syscall(
                libc::SYS_prctl,
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            )
        })
    };
    assert_eq!(under_policy(via_prctl), Outcome::Exited(libc::EPERM));
    // SAFETY: strict mode takes no pointer.
    let strict =
        || report(unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_STRICT, 0, 0) });
    assert_eq!(under_policy(strict), Outcome::Exited(libc::EPERM));
    // The queries still answer: is SECCOMP_RET_ALLOW available?
    let query = || {
        let action: u32 = libc::SECCOMP_RET_ALLOW;
        // SAFETY: `action` is a valid u32 the kernel reads.
        report(unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_GET_ACTION_AVAIL,
                0,
                &action as *const u32,
            )
        })
    };
    assert_eq!(under_policy(query), Outcome::Exited(0));
    // PR_GET_SECCOMP says the job is filtered (mode 2).
    let mode = || {
        // SAFETY: PR_GET_SECCOMP takes no pointer.
        let mode = unsafe { libc::syscall(libc::SYS_prctl, libc::PR_GET_SECCOMP) };
        i32::try_from(mode).expect("a seccomp mode or -1")
    };
    assert_eq!(under_policy(mode), Outcome::Exited(2));
}

#[test]
fn lock_calls_go_to_the_listener_and_other_fcntl_commands_run() {
    if !seccomp_available() {
        return;
    }
    // On fd -1 every one of these fails with EBADF when it runs; NOTIFIED means it went to
    // the listener (where the init answers it, see container::locks).
    let lock_cmds = [
        ("F_GETLK", libc::F_GETLK as u64),
        ("F_SETLK", libc::F_SETLK as u64),
        ("F_SETLKW", libc::F_SETLKW as u64),
        ("F_OFD_GETLK", libc::F_OFD_GETLK as u64),
        ("F_OFD_SETLK", libc::F_OFD_SETLK as u64),
        ("F_OFD_SETLKW", libc::F_OFD_SETLKW as u64),
        // The kernel reads the command as an unsigned int: high bits change nothing.
        (
            "F_SETLK with high bits",
            0x1_0000_0000 | libc::F_SETLK as u64,
        ),
    ];
    for (what, cmd) in lock_cmds {
        // SAFETY: fcntl on an invalid fd; the null struct pointer is never read.
        let call = || report(unsafe { libc::syscall(libc::SYS_fcntl, -1, cmd, 0) });
        assert_eq!(under_policy(call), FORBIDDEN, "{what}");
    }
    // SAFETY: flock on an invalid fd takes integers only.
    let flock = || report(unsafe { libc::syscall(libc::SYS_flock, -1, libc::LOCK_EX) });
    assert_eq!(under_policy(flock), FORBIDDEN, "flock");
    let other_cmds = [
        ("F_GETFL", libc::F_GETFL),
        ("F_SETFD", libc::F_SETFD),
        ("F_DUPFD_CLOEXEC", libc::F_DUPFD_CLOEXEC),
        ("F_GETPIPE_SZ", libc::F_GETPIPE_SZ),
    ];
    for (what, cmd) in other_cmds {
        // SAFETY: fcntl on an invalid fd with an integer argument.
        let call = || report(unsafe { libc::syscall(libc::SYS_fcntl, -1, cmd, 0) });
        assert_eq!(under_policy(call), Outcome::Exited(libc::EBADF), "{what}");
    }
    // And on a real fd they work: F_SETFD then F_GETFD reads the flag back.
    let setfd = || {
        // SAFETY: fcntl on stderr with integer arguments.
        unsafe {
            if libc::fcntl(2, libc::F_SETFD, libc::FD_CLOEXEC) != 0 {
                return errno();
            }
            libc::fcntl(2, libc::F_GETFD)
        }
    };
    assert_eq!(under_policy(setfd), Outcome::Exited(libc::FD_CLOEXEC));
}

/// linux/fcntl.h (not in the libc crate).
const DN_ACCESS: libc::c_long = 0x1;
const DN_MULTISHOT: libc::c_long = 0x8000_0000;

#[test]
fn dnotify_and_leases_fail_with_einval() {
    if !seccomp_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("f"), b"x").expect("create");
    // Read-only and the only open: a read lease needs no writer.
    let file = std::fs::File::open(dir.path().join("f")).expect("open");
    let d = std::fs::File::open(dir.path()).expect("open dir");
    let (dfd, ffd) = (d.as_raw_fd(), file.as_raw_fd());
    let calls: [(&str, RawFd, libc::c_int, libc::c_long); 3] = [
        ("F_NOTIFY", dfd, libc::F_NOTIFY, DN_ACCESS | DN_MULTISHOT),
        (
            "F_SETLEASE",
            ffd,
            libc::F_SETLEASE,
            libc::F_RDLCK as libc::c_long,
        ),
        ("F_GETLEASE", ffd, libc::F_GETLEASE, 0),
    ];
    for (what, fd, cmd, arg) in calls {
        // SAFETY: fcntl on an fd of ours with an integer argument.
        let call = || report(unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) });
        // Unfiltered, each works (as root, here) ...
        assert_eq!(
            in_child(None, call),
            Outcome::Exited(0),
            "{what} unfiltered"
        );
        // ... and under the policy fails as on a kernel without them, not killed.
        assert_eq!(under_policy(call), Outcome::Exited(libc::EINVAL), "{what}");
    }
}
