//! The helpers warmbox's tests and benches share, once (a dev-dependency only, never
//! published): what the kernel offers ([`kernel`]), skipping or failing when it lacks
//! something ([`skip`]), slow-host time budgets ([`emulation`]), the host's cgroup tree as
//! the engine lays it out ([`cgroupfs`]), standing in for the container's init on a seccomp
//! listener ([`listener`]), a real engine ([`harness`]), a real `warmbox serve`
//! ([`server`]) and a PostgreSQL server for its shared job store ([`postgres`]), and the
//! benches' bare-process baselines ([`bench`]).
//!
//! Tests that need no container live with the crate they test (`crates/*/tests/`). Tests
//! that need a real engine are end-to-end tests and stay in the root package's `tests/`:
//! the engine forks its containers from the `warmbox` binary, whose path cargo gives
//! (`CARGO_BIN_EXE_warmbox`) only to that package's tests and benches. So [`harness`] and
//! [`server`] take the binary as an argument, and `tests/common/mod.rs` binds them to it.

pub mod bench;
pub mod cgroupfs;
pub mod emulation;
pub mod harness;
pub mod kernel;
pub mod listener;
pub mod postgres;
pub mod server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Fails the test in CI (`WARMBOX_REQUIRE_SANDBOX=1`), else prints why it is skipped.
pub fn skip(why: &str) {
    assert!(
        !kernel::require_sandbox(),
        "WARMBOX_REQUIRE_SANDBOX=1 but {why}"
    );
    eprintln!("SKIPPED: {why} (set WARMBOX_REQUIRE_SANDBOX=1 to make this a failure)");
}

/// The workspace's root directory (profiles/, target/, tests/clients/ are there).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/warmbox-testkit lies two levels below the workspace root")
        .to_path_buf()
}

/// The profiles the tests run under ([`emulation::profiles_dir`]), loaded as the engine
/// loads them; a profile that does not load fails the test.
pub fn profiles() -> warmbox_runner::profile::ProfileSet {
    let dir = emulation::profiles_dir();
    warmbox_runner::profile::ProfileSet::load_dir(&dir)
        .unwrap_or_else(|e| panic!("load the profiles of {}: {e}", dir.display()))
}

/// uids per test binary: 2 per container slot, 256 slots.
pub const UID_BLOCK: u32 = 1024;

/// A uid block of its own for each test binary, so that parallel test binaries never share
/// container uids (tests look for leftover processes by uid).
pub fn uid_base() -> u32 {
    let exe = std::env::current_exe().unwrap_or_default();
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.split('-').next().unwrap_or_default().to_string();
    let h = name.bytes().fold(2_166_136_261_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    700_000 + UID_BLOCK * (h % 4096)
}

/// Host processes whose uid lies in this binary's container uid block, but for the shared
/// harness's warm containers ([`harness::warm_processes`]): (pid, uid).
pub fn processes_in_uid_block() -> Vec<(i32, u32)> {
    let warm = harness::warm_processes();
    processes_in(uid_base(), UID_BLOCK)
        .into_iter()
        .filter(|(pid, _, _)| !warm.contains(pid))
        .map(|(pid, uid, _)| (pid, uid))
        .collect()
}

/// Host processes whose uid lies in `base..base + len`: (pid, uid, name).
pub fn processes_in(base: u32, len: u32) -> Vec<(i32, u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        let uid = field("Uid:").and_then(|u| {
            u.split_whitespace()
                .next()
                .and_then(|u| u.parse::<u32>().ok())
        });
        if let (Some(uid), Some(name)) = (uid, field("Name:")) {
            if (base..base + len).contains(&uid) {
                found.push((pid, uid, name));
            }
        }
    }
    found
}

/// The names of the directories in `dir`, sorted (none when it is missing).
pub fn subdirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The fields of `/proc/<pid>/stat` after the command name: `[0]` is the state, `[1]` the
/// parent pid, `[16]` the nice value. `None` when the process is gone.
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// The children of process `pid` (its main thread's), empty when it is gone.
pub fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A ready container's init's nice value and its job process's (the one child of the one
/// child of the init: the run's init's), asserting that shape.
pub fn waiting_priorities(init: i32) -> (i32, i32) {
    let runs = children(init);
    assert_eq!(runs.len(), 1, "one run's init: {runs:?}");
    let jobs = children(runs[0]);
    assert_eq!(jobs.len(), 1, "one job process: {jobs:?}");
    let nice = |pid: i32| -> i32 { stat_fields(pid).expect("stat")[16].parse().expect("nice") };
    (nice(init), nice(jobs[0]))
}

/// The pid of a child process, as the kernel's `pid_t` (pids fit: `pid_max` is at most 2^22).
pub fn pid_of(child: &std::process::Child) -> i32 {
    i32::try_from(child.id()).expect("a pid fits in pid_t")
}

/// Starts `argv` behind a gate: a shell that waits for a line on stdin, then execs it, so
/// that it can be moved into a cgroup before it runs ([`open_gate`]).
pub fn gated(argv: &[&str]) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", "read go && exec \"$@\"", "sh"])
        .args(argv)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn /bin/sh");
    let stdin = child.stdin.take().expect("stdin pipe");
    (child, stdin)
}

/// Lets the program behind the gate of [`gated`] run.
pub fn open_gate(mut stdin: std::process::ChildStdin) {
    use std::io::Write;
    stdin.write_all(b"go\n").expect("open the gate");
}

/// Polls `ready` every few ms for up to 10 s (scaled on a slow host).
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + emulation::budget(Duration::from_secs(10));
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
