//! Nothing is left behind: after 21 runs that end every way a run can end, the engine's own
//! cgroup parent is empty, no host process has a container uid, the server holds no more
//! file descriptors than before, and the host's mount table is unchanged.
//!
//! It counts the process's own fds and the container uids' processes, which a test running
//! beside it would disturb: the tests of this binary run one at a time ([`SERIAL`]).

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warmbox_runner::request::{RunStatus, StepStatus};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo")
}

fn bash(script: &str, limits: Value) -> Value {
    json!({"profile": "bash", "cmd": ["/bin/bash", "-c", script], "limits": limits})
}

fn python(code: &str, limits: Value) -> Value {
    json!({"profile": "python3", "files": [{"name": "main.py", "content": code}], "limits": limits})
}

fn c(code: &str) -> Value {
    json!({"profile": "c", "files": [{"name": "main.c", "content": code}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mixed_runs_leave_nothing_behind() {
    let _serial = SERIAL.lock().await;
    let mounts_before = mountinfo();
    let Some(h) = common::private_harness("warmbox-test-cleanup") else {
        return;
    };
    // A crashed earlier run of this test may have left cgroups: start clean.
    h.sandbox.remove_stale().expect("remove stale cgroups");
    assert_eq!(h.live_cgroups(), Vec::<String>::new());

    // The checks below can see a live container: its processes and its cgroup.
    let (resp, (procs, cgroups)) = tokio::join!(h.run(bash("sleep 3", json!({}))), async {
        // Looked at until both are seen (the first container of an engine may take a
        // while on a loaded host), well before the sleep ends.
        let deadline = Instant::now() + Duration::from_millis(2500);
        loop {
            let seen = (warmbox_testkit::processes_in_uid_block(), h.live_cgroups());
            if (!seen.0.is_empty() && seen.1.len() == 1) || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(resp.status, RunStatus::Step(StepStatus::Ok));
    assert!(!procs.is_empty(), "no container process seen during a run");
    assert_eq!(cgroups.len(), 1, "one cgroup during a run: {cgroups:?}");

    // Warm-up: lazily opened fds (seccomp policy cache, runtime internals, the fork server
    // of each kind of root, which lives as long as the engine) exist after it.
    for req in [
        bash("echo warm", json!({})),
        python("print('warm')", json!({})),
        json!({"profile": "javascript", "files": [{"name": "main.js", "content": "console.log('warm')"}]}),
        c("#include <stdio.h>\nint main(void) { puts(\"warm\"); return 0; }"),
    ] {
        let run = h.run(req.clone()).await.run.expect("run step");
        assert_eq!(run.stdout, "warm\n", "{req}");
    }
    let fds_before = open_fds();

    let none = json!({});
    let cases: Vec<(Value, RunStatus)> = vec![
        (
            bash("echo ok", none.clone()),
            RunStatus::Step(StepStatus::Ok),
        ),
        (
            python("print(input())", none.clone()),
            RunStatus::Step(StepStatus::RuntimeError),
        ),
        (
            bash("while :; do :; done", json!({"cpu_ms": 200})),
            RunStatus::Step(StepStatus::TimeLimit),
        ),
        // A CPU hog with busy children: all of them must die.
        (
            bash(
                "for i in 1 2 3; do (while :; do :; done) & done; wait",
                json!({"cpu_ms": 300}),
            ),
            RunStatus::Step(StepStatus::TimeLimit),
        ),
        (
            bash("sleep 100", json!({"wall_ms": 200})),
            RunStatus::Step(StepStatus::WallTimeLimit),
        ),
        (
            bash("sleep 100 & sleep 100 & sleep 100", json!({"wall_ms": 200})),
            RunStatus::Step(StepStatus::WallTimeLimit),
        ),
        (
            python("b = b'x' * (200 << 20)", json!({"memory_mb": 32})),
            RunStatus::Step(StepStatus::MemoryLimit),
        ),
        (
            bash("yes", json!({"output_bytes": 1000})),
            RunStatus::Step(StepStatus::OutputLimit),
        ),
        (
            bash("yes >&2", json!({"output_bytes": 1000})),
            RunStatus::Step(StepStatus::OutputLimit),
        ),
        (
            bash(
                "head -c 100000000 /dev/urandom",
                json!({"output_bytes": 65536}),
            ),
            RunStatus::Step(StepStatus::OutputLimit),
        ),
        (
            c("int main(void) { return nope; }"),
            RunStatus::CompileError,
        ),
        (
            c("int main(void) { return 0; }"),
            RunStatus::Step(StepStatus::Ok),
        ),
        (
            c("#include <stdlib.h>\nint main(void) { abort(); }"),
            RunStatus::Step(StepStatus::Signaled),
        ),
        // Background processes, detached or not, holding the pipes or not, killed at the end.
        (
            bash("(sleep 100 &); echo detached", none.clone()),
            RunStatus::Step(StepStatus::Ok),
        ),
        (
            bash(
                "sleep 100 > /dev/null 2>&1 < /dev/null & echo bg",
                none.clone(),
            ),
            RunStatus::Step(StepStatus::Ok),
        ),
        (
            bash(
                "setsid sleep 100 & nohup sleep 100 > /dev/null 2>&1 & disown; echo setsid",
                none.clone(),
            ),
            RunStatus::Step(StepStatus::Ok),
        ),
        (
            bash(
                "for i in $(seq 20); do sleep 100 & done; exit 4",
                none.clone(),
            ),
            RunStatus::Step(StepStatus::RuntimeError),
        ),
        (
            bash(
                "trap '' TERM HUP; (trap '' TERM HUP; sleep 100) & echo trapped",
                none.clone(),
            ),
            RunStatus::Step(StepStatus::Ok),
        ),
        (
            bash("exec 3>/tmp/held; sleep 100 & echo fd", none.clone()),
            RunStatus::Step(StepStatus::Ok),
        ),
        (
            json!({"profile": "javascript", "files": [{"name": "main.js", "content": "setInterval(() => {}, 1000); console.log('node')"}], "limits": {"wall_ms": 300}}),
            RunStatus::Step(StepStatus::WallTimeLimit),
        ),
    ];
    assert_eq!(cases.len(), 20);
    for (req, status) in cases {
        let resp = h.run(req.clone()).await;
        assert_eq!(resp.status, status, "{req}: {resp:#?}");
    }
    // An OOM in a container where no process is large: the kernel may kill the container's
    // init (limits.rs asserts the verdict); whatever the verdict, nothing may stay behind.
    let resp = h
        .run(bash(
            "sleep 100 & exec head -c 60M /dev/zero > /box/f",
            json!({"memory_mb": 32, "disk_mb": 200, "file_size_bytes": 67108864}),
        ))
        .await;
    assert!(resp.run.is_some());

    assert_eq!(
        h.live_cgroups(),
        Vec::<String>::new(),
        "cgroups left under the private parent"
    );
    assert_eq!(
        warmbox_testkit::processes_in_uid_block(),
        Vec::<(i32, u32)>::new(),
        "host processes left with a container uid"
    );
    assert_eq!(open_fds(), fds_before, "fds leaked by the engine");
    assert_eq!(mountinfo(), mounts_before, "the host's mount table changed");
}

/// A private engine's cgroup parent goes with it: the host keeps no empty cgroups from
/// test runs.
#[tokio::test]
async fn private_parent_is_removed_with_its_engine() {
    let _serial = SERIAL.lock().await;
    let parent = "warmbox-test-parent-removal";
    let Some(h) = common::private_harness(parent) else {
        return;
    };
    let run = h.sh("echo hi").await;
    assert_eq!(run.stdout, "hi\n");
    let dirs = warmbox_testkit::cgroupfs::parent_dirs(parent);
    assert!(
        dirs.iter().all(|d| d.is_dir()),
        "the parent exists while in use"
    );
    drop(h);
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}
