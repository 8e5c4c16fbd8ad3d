//! Limits given in a request replace the profile's defaults (each one shown to bite below
//! its default). (That a limit above the profile's maximum is refused before anything runs
//! needs no engine: crates/warmbox-runner/tests/validation.rs.)

mod common;

use serde_json::json;
use warmbox_runner::request::{RunStatus, StepStatus};

const MIB: u64 = 1 << 20;

fn py(code: &str, limits: serde_json::Value) -> serde_json::Value {
    json!({"profile": "python3", "files": [{"name": "main.py", "content": code}], "limits": limits})
}

#[tokio::test]
async fn cpu_ms_from_the_request() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "while :; do :; done"], "limits": {"cpu_ms": 300}}))
        .await;
    assert_eq!(resp.status, RunStatus::Step(StepStatus::TimeLimit));
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::TimeLimit);
    assert!(
        (300.0..500.0).contains(&run.usage.cpu_ms),
        "killed soon past 300 ms of CPU (other tests of this binary share the CPUs): {}",
        run.usage.cpu_ms
    );
}

#[tokio::test]
async fn wall_ms_from_the_request() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "bash", "cmd": ["sleep", "5"], "limits": {"wall_ms": 300}}))
        .await;
    assert_eq!(resp.status, RunStatus::Step(StepStatus::WallTimeLimit));
    let run = resp.run.expect("run step");
    assert!(
        (300.0..600.0).contains(&run.usage.wall_ms),
        "wall_ms {}",
        run.usage.wall_ms
    );
}

#[tokio::test]
async fn memory_mb_from_the_request() {
    let Some(h) = common::harness() else { return };
    // 100 MiB fits the default 256 (see accounting.rs) but not 64.
    let resp = h
        .run(py("b = b'x' * (100 << 20)\n", json!({"memory_mb": 64})))
        .await;
    assert_eq!(resp.status, RunStatus::Step(StepStatus::MemoryLimit));
    let run = resp.run.expect("run step");
    assert!(run.usage.oom_killed);
    assert_eq!(run.signal_name.as_deref(), Some("SIGKILL"));
    assert!(
        run.usage.memory_peak_bytes <= 64 * MIB,
        "peak {} over the 64 MiB limit",
        run.usage.memory_peak_bytes
    );
}

#[tokio::test]
async fn output_bytes_from_the_request() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "printf '%.0s0123456789' $(seq 20)"], "limits": {"output_bytes": 100}}))
        .await;
    assert_eq!(resp.status, RunStatus::Step(StepStatus::OutputLimit));
    let run = resp.run.expect("run step");
    assert_eq!(run.stdout, "0123456789".repeat(10));
    assert!(run.stdout_truncated);
    assert!(!run.stderr_truncated);
    assert_eq!(
        run.usage.stdout_bytes, 100,
        "the bytes returned: {:?}",
        run.usage
    );

    // Exactly the limit is not over it.
    let resp = h
        .run(json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "printf '%.0s0123456789' $(seq 10)"], "limits": {"output_bytes": 100}}))
        .await;
    assert_eq!(resp.status, RunStatus::Step(StepStatus::Ok));
    let run = resp.run.expect("run step");
    assert_eq!(run.usage.stdout_bytes, 100);
    assert!(!run.stdout_truncated);
}

#[tokio::test]
async fn pids_from_the_request() {
    let Some(h) = common::harness() else { return };
    let code = "import threading, time\nts = []\ntry:\n    for i in range(20):\n        t = threading.Thread(target=time.sleep, args=(0.5,))\n        t.start()\n        ts.append(t)\nexcept RuntimeError as e:\n    print('stopped at', len(ts), e)\n";
    let resp = h.run(py(code, json!({"pids": 5}))).await;
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    // The limit is the job's own (the init is counted apart): python's main thread and 4
    // more fit in 5.
    assert!(
        run.stdout.starts_with("stopped at ") && run.stdout.contains("can't start new thread"),
        "{run:#?}"
    );
    let started: u64 = run.stdout["stopped at ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert_eq!(started, 4, "threads started under pids 5");
    assert_eq!(run.usage.pids_peak, Some(5), "{:?}", run.usage);
}

#[tokio::test]
async fn file_size_and_disk_from_the_request() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "exec head -c 5000 /dev/zero > f"], "limits": {"file_size_bytes": 4096}}))
        .await;
    assert_eq!(resp.status, RunStatus::Step(StepStatus::FileSizeLimit));
    let run = resp.run.expect("run step");
    assert_eq!(run.signal_name.as_deref(), Some("SIGXFSZ"));

    let resp = h
        .run(json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "head -c 3000000 /dev/zero > f || echo write failed; wc -c < f"], "limits": {"disk_mb": 1, "file_size_bytes": 4_000_000}}))
        .await;
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert!(run.stderr.contains("No space left on device"), "{run:#?}");
    let written: u64 = run
        .stdout
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("wc output");
    assert!(written <= MIB, "{written} bytes written to a 1 MiB /box");
}

#[tokio::test]
async fn tmpfs_files_count_toward_memory_mb() {
    let Some(h) = common::harness() else { return };
    // API.md: memory_mb is the cgroup memory limit, tmpfs files written count toward it.
    // 60 MiB of file in /box (disk and file size allow it) does not fit in 32 MiB.
    let resp = h
        .run(json!({
            "profile": "bash",
            "cmd": ["/bin/bash", "-c", "exec head -c 60M /dev/zero > /box/f"],
            "limits": {"memory_mb": 32, "disk_mb": 200, "file_size_bytes": 67108864},
        }))
        .await;
    assert_memory_limit(&resp, 32);
}

#[tokio::test]
async fn memory_limit_hit_by_many_small_processes() {
    let Some(h) = common::harness() else { return };
    // 16 workers of 3 MiB each under 32 MiB: no single process is large.
    let code = r#"#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
int main(void) {
    for (int i = 0; i < 16; i++) {
        if (fork() == 0) {
            volatile char *p = malloc(3 << 20);
            for (int j = 0; j < (3 << 20); j += 4096) p[j] = 1;
            sleep(1);
            _exit(0);
        }
    }
    int st, killed = 0;
    while (wait(&st) > 0) killed += WIFSIGNALED(st);
    return killed ? 1 : 0;
}
"#;
    let resp = h
        .run(json!({
            "profile": "c",
            "files": [{"name": "main.c", "content": code}],
            "limits": {"memory_mb": 32},
        }))
        .await;
    assert_eq!(
        resp.compile.as_ref().map(|c| c.status),
        Some(StepStatus::Ok)
    );
    // Which process the kernel kills is its choice; the verdict is the same.
    assert_memory_limit(&resp, 32);
}

/// A python3 request of `main.py` (which prints how many files and how many levels of
/// directories it sees under /box) and `others`, with disk_mb 1.
/// A memory_limit verdict: the OOM kill is the program's, reported as such.
fn assert_memory_limit(resp: &warmbox_runner::request::RunResponse, limit_mb: u64) {
    assert_eq!(
        resp.status,
        RunStatus::Step(StepStatus::MemoryLimit),
        "{resp:#?}"
    );
    let run = resp.run.as_ref().expect("run step");
    assert!(run.usage.oom_killed, "{run:#?}");
    assert!(run.message.is_none(), "{run:#?}");
    assert!(
        run.usage.memory_peak_bytes > (limit_mb - 4) * MIB
            && run.usage.memory_peak_bytes <= limit_mb * MIB,
        "peak {} against a {limit_mb} MiB limit",
        run.usage.memory_peak_bytes
    );
}

fn py_with_files(others: impl Iterator<Item = (String, String)>) -> serde_json::Value {
    let main = "import os\nfiles = depth = 0\nfor d, _, fs in os.walk('.'):\n    files += len(fs)\n    depth = max(depth, d.count('/'))\nprint(files, depth)\n";
    let mut files = vec![json!({"name": "main.py", "content": main})];
    files.extend(others.map(|(name, content)| json!({"name": name, "content": content})));
    json!({"profile": "python3", "files": files, "limits": {"disk_mb": 1}})
}

#[tokio::test]
async fn the_most_files_fit_the_smallest_disk() {
    let Some(h) = common::harness() else { return };
    // 1,024 files (the most a request may carry) in 1 MiB: they need more inodes than one
    // per 16 KiB of disk; the tmpfs has room for every valid request's files.
    let resp = h
        .run(py_with_files(
            (1..1024).map(|i| (format!("f{i}"), String::new())),
        ))
        .await;
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(run.stdout, "1024 0\n");
}

#[tokio::test]
async fn the_deepest_files_validation_allows_fit_the_smallest_disk() {
    let Some(h) = common::harness() else { return };
    // The worst case: 1,023 files 32 path components deep, each directory its own, and
    // main.py: 32,737 inodes in a 1 MiB disk.
    let others = (1..1024).map(|i| {
        let dirs: Vec<String> = (0..31).map(|d| format!("{i}-{d}")).collect();
        (format!("{}/f", dirs.join("/")), String::new())
    });
    let resp = h.run(py_with_files(others)).await;
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(run.stdout, "1024 31\n");
}

#[tokio::test]
async fn disk_mb_is_one_budget_for_box_tmp_and_shm() {
    let Some(h) = common::harness() else { return };
    // 10 MiB to each of /box, /tmp and /dev/shm with disk_mb 16: the first fits, the
    // second stops at the 6 MiB left (less the page of main.py), the third has nothing.
    // `df` shows the budget; the three keep their modes, owner and nosuid,nodev.
    let code = r#"
import errno, os
chunk = b"x" * 65536
for d in ("/box", "/tmp", "/dev/shm"):
    total, err = 0, "-"
    fd = os.open(d + "/fill", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while total < 10 << 20:
            total += os.write(fd, chunk)
    except OSError as e:
        err = errno.errorcode[e.errno]
    os.close(fd)
    print(d, total, err)
s = os.statvfs("/box")
print("size", s.f_blocks * s.f_frsize)
for d in ("/box", "/tmp", "/dev/shm"):
    st, vfs = os.stat(d), os.statvfs(d)
    print(d, oct(st.st_mode & 0o7777), st.st_uid, st.st_gid, vfs.f_flag & (os.ST_NOSUID | os.ST_NODEV))
"#;
    let resp = h
        .run(py(
            code,
            json!({"disk_mb": 16, "file_size_bytes": 16 * MIB}),
        ))
        .await;
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(
        run.stdout,
        "/box 10485760 -\n/tmp 6287360 ENOSPC\n/dev/shm 0 ENOSPC\nsize 16777216\n\
         /box 0o755 1000 1000 6\n/tmp 0o1777 1000 1000 6\n/dev/shm 0o1777 1000 1000 6\n"
    );
}
