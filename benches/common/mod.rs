//! Baselines shared by the benches: bare process creation, no warmbox involved.

#![allow(dead_code)]

use std::ffi::CString;
use std::time::{Duration, Instant};

use warmbox::sandbox::spawn::CloneArgs;

/// fork + exec + wait of `path` with `args` (stdout to /dev/null); the elapsed time.
pub fn fork_exec_wait(path: &CString, args: &[&CString]) -> Duration {
    let mut argv: Vec<*const libc::c_char> = vec![path.as_ptr()];
    argv.extend(args.iter().map(|a| a.as_ptr()));
    argv.push(std::ptr::null());
    let envp = [std::ptr::null()];
    let t = Instant::now();
    // SAFETY: the child only dup2s to /dev/null, execs and _exits, on prepared data.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            libc::dup2(null, 1);
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
        assert_eq!(st, 0, "baseline child failed");
    }
    t.elapsed()
}

/// fork + exec + wait of `path` with its stdin read from the file `input` and stdout to
/// /dev/null; the elapsed time.
pub fn fork_exec_wait_stdin(path: &CString, input: &CString) -> Duration {
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    let t = Instant::now();
    // SAFETY: the child only opens, dup2s, execs and _exits, on prepared data.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let inp = libc::open(input.as_ptr(), libc::O_RDONLY);
            libc::dup2(inp, 0);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            libc::dup2(null, 1);
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
        assert_eq!(st, 0, "baseline child failed");
    }
    t.elapsed()
}

/// clone3 of all seven namespaces + exec + wait of `path`; the elapsed time.
pub fn clone_ns_exec_wait(path: &CString) -> Duration {
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    let args = CloneArgs {
        flags: (libc::CLONE_NEWUSER
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWCGROUP) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    let t = Instant::now();
    // SAFETY: a valid clone_args; the child only calls execve and _exit.
    unsafe {
        let pid = libc::syscall(libc::SYS_clone3, &args, std::mem::size_of::<CloneArgs>());
        assert!(pid >= 0, "clone3: {}", std::io::Error::last_os_error());
        if pid == 0 {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
        let mut st = 0;
        libc::waitpid(pid as i32, &mut st, 0);
        assert_eq!(st, 0, "namespace baseline child failed");
    }
    t.elapsed()
}
