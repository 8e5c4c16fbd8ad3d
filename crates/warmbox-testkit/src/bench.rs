//! What the benches share: baselines of bare process creation (no warmbox involved), a
//! release `warmbox serve`, and their settings.

use std::ffi::CString;
use std::time::{Duration, Instant};

use warmbox_sandbox::spawn::CloneArgs;

/// fork + exec + wait of `path` with `args` (stdout to /dev/null); the elapsed time.
pub fn fork_exec_wait(path: &CString, args: &[&CString]) -> Duration {
    fork_exec_wait_io(path, args, None)
}

/// fork + exec + wait of `path` with its stdin read from the file `input` and stdout to
/// /dev/null; the elapsed time.
pub fn fork_exec_wait_stdin(path: &CString, input: &CString) -> Duration {
    fork_exec_wait_io(path, &[], Some(input))
}

fn fork_exec_wait_io(path: &CString, args: &[&CString], input: Option<&CString>) -> Duration {
    let mut argv: Vec<*const libc::c_char> = vec![path.as_ptr()];
    argv.extend(args.iter().map(|a| a.as_ptr()));
    argv.push(std::ptr::null());
    let envp = [std::ptr::null()];
    let t = Instant::now();
    // SAFETY: the child only opens, dup2s, execs and _exits, on prepared data.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            if let Some(input) = input {
                let inp = libc::open(input.as_ptr(), libc::O_RDONLY);
                libc::dup2(inp, 0);
            }
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

/// A release `warmbox serve` for a bench, on a loopback port, with its own cgroup parent,
/// uid block and state; returns it once `/readyz` says ready, with its base URL.
pub fn start_server(name: &str, uid_base: u32) -> (std::process::Child, String) {
    let repo = crate::repo();
    let exe = repo.join("target/release/warmbox");
    assert!(
        exe.exists(),
        "{} missing: cargo build --release first",
        exe.display()
    );
    let state = format!("/run/warmbox-bench-{name}");
    crate::server::serve(
        std::process::Command::new(&exe)
            .current_dir(&repo)
            .args(["serve", "--listen", "127.0.0.1:0", "--max-queue", "1024"])
            .args(["--cgroup-parent", &format!("warmbox-bench-{name}")])
            .args(["--uid-base", &uid_base.to_string()])
            .args(["--state-dir", &state])
            .args(["--jobs-db", &format!("{state}/jobs.redb")]),
    )
}

/// The whole number in the environment variable `var`, or `default`.
pub fn count_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Whether this process is root; if not, prints that the bench `name` is skipped.
pub fn root_or_skip(name: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    println!("{name} bench: SKIPPED, needs root");
    false
}

/// clone3 of all seven namespaces + exec + wait of `path`; the elapsed time.
pub fn clone_ns_exec_wait(path: &CString) -> Duration {
    clone_exec_wait(
        path,
        libc::CLONE_NEWUSER
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWCGROUP,
    )
}

/// clone3 of a pid and an IPC namespace + exec + wait of `path`: what a run in a recycled
/// container must pay at least (its job process is PID 1 of a fresh pid namespace with
/// fresh IPC); the elapsed time.
pub fn clone_pid_ipc_exec_wait(path: &CString) -> Duration {
    clone_exec_wait(path, libc::CLONE_NEWPID | libc::CLONE_NEWIPC)
}

/// clone3 with `flags` (namespace flags) + exec + wait of `path`; the elapsed time.
fn clone_exec_wait(path: &CString, flags: libc::c_int) -> Duration {
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    let args = CloneArgs {
        flags: u64::try_from(flags).expect("namespace flags are positive"),
        exit_signal: u64::try_from(libc::SIGCHLD).expect("SIGCHLD is positive"),
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
        let pid = libc::pid_t::try_from(pid).expect("clone3 returns a pid_t");
        libc::waitpid(pid, &mut st, 0);
        assert_eq!(st, 0, "namespace baseline child failed");
    }
    t.elapsed()
}
