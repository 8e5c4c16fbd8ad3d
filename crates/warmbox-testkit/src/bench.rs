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
    start_server_with(name, uid_base, &[])
}

/// [`start_server`] with more arguments for `warmbox serve` (e.g. `--recycle-runs 1`).
pub fn start_server_with(
    name: &str,
    uid_base: u32,
    extra: &[&str],
) -> (std::process::Child, String) {
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
            .args(if extra.contains(&"--jobs-db") {
                vec![]
            } else {
                vec!["--jobs-db".to_string(), format!("{state}/jobs.redb")]
            })
            .args(extra),
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

/// What the threads of one process have spent so far. Its children (for `warmbox serve`:
/// the fork servers and every container's processes) are processes of their own and are
/// not in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadsCost {
    /// CPU time of all its threads, the ended ones included, ns (the process's CPU-time
    /// clock, exact).
    pub cpu_ns: u64,
    /// User time, ns (`utime` of `/proc/PID/stat`: whole clock ticks).
    pub user_ns: u64,
    /// System time, ns (`stime` of `/proc/PID/stat`: whole clock ticks).
    pub sys_ns: u64,
    /// Voluntary context switches (blocking waits: each is a sleep and a later wake-up),
    /// summed over its live threads: those of a thread that has ended are lost.
    pub voluntary: u64,
    /// Involuntary context switches (preemptions), summed the same way.
    pub involuntary: u64,
    /// Live threads.
    pub threads: u64,
}

impl ThreadsCost {
    /// What the process `pid` has spent so far; zeroes for what cannot be read (the
    /// process is gone).
    pub fn of(pid: u32) -> ThreadsCost {
        let cpu_ns = libc::pid_t::try_from(pid)
            .ok()
            .and_then(warmbox_sandbox::step::process_cpu_ns)
            .unwrap_or(0);
        // utime and stime are fields 14 and 15; the name (field 2) may hold spaces and
        // parentheses, so fields are counted after its last ')', where field 3 starts.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace())
            .into_iter()
            .flatten()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // SAFETY: sysconf with a valid name has no other precondition.
        let tick_hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
            .unwrap_or(100)
            .max(1);
        let ticks_ns = |i: usize| fields.get(i).copied().unwrap_or(0) * 1_000_000_000 / tick_hz;
        let mut cost = ThreadsCost {
            cpu_ns,
            user_ns: ticks_ns(11),
            sys_ns: ticks_ns(12),
            ..ThreadsCost::default()
        };
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
        for task in tasks.into_iter().flatten().flatten() {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let count = |key: &str| -> u64 {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            cost.voluntary += count("voluntary_ctxt_switches:");
            cost.involuntary += count("nonvoluntary_ctxt_switches:");
            cost.threads += 1;
        }
        cost
    }

    /// What was spent between `earlier` and this reading; the live threads are this
    /// reading's. A count that went down (threads ended in between) gives 0.
    pub fn since(&self, earlier: &ThreadsCost) -> ThreadsCost {
        ThreadsCost {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            sys_ns: self.sys_ns.saturating_sub(earlier.sys_ns),
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
            threads: self.threads,
        }
    }

    /// This cost (a [`ThreadsCost::since`]) spread over `runs`, in words: CPU ms per run
    /// with its user/system split, context switches per run, and the live threads.
    pub fn per_run(&self, runs: u64) -> String {
        let runs = runs.max(1) as f64;
        let ms = |ns: u64| ns as f64 / 1e6 / runs;
        format!(
            "{:.3} ms CPU per run (user {:.3} + sys {:.3} by tick-grained utime/stime), \
             {:.1} context switches per run ({:.1} voluntary, {:.1} involuntary; {} live threads)",
            ms(self.cpu_ns),
            ms(self.user_ns),
            ms(self.sys_ns),
            (self.voluntary + self.involuntary) as f64 / runs,
            self.voluntary as f64 / runs,
            self.involuntary as f64 / runs,
            self.threads
        )
    }
}
