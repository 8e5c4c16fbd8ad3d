//! Recycled containers: what one run leaves must be invisible to the next run *in the same
//! container* (each test asserts it was the same one), and the container must be destroyed
//! instead of reused when a run casts doubt on it.
//!
//! Each test makes a container of the `bash` profile's run step, runs a script that leaves
//! something behind, recycles the container (`Container::recycle`, what the pool does
//! between two steps), and runs a second script in it that looks for what the first left.

mod common;

use std::time::Duration;

use warmbox_runner::runner::{default_limits, layout, StepKind};
use warmbox_sandbox::{step::cgroup_limits, Container, Limits, StepOutcome, StepSpec, StepStatus};
use warmbox_testkit::harness::Harness;

/// A container of the `bash` profile's run step and the limits its steps run with.
struct Box1 {
    c: Container,
    limits: Limits,
    disk_bytes: u64,
    cores: Option<f64>,
}

impl Box1 {
    async fn new(h: &Harness) -> Box1 {
        let profile = &h.profiles.get("bash").expect("bash profile").profile;
        let limits = default_limits(profile, StepKind::Run);
        let lay = layout(profile, &limits);
        let c = h
            .sandbox
            .create(&lay, &cgroup_limits(&limits, profile.cpu_cores))
            .await
            .expect("create");
        Box1 {
            c,
            limits,
            disk_bytes: lay.disk_bytes,
            cores: profile.cpu_cores,
        }
    }

    /// Runs `script` under bash with `limits`.
    async fn run_with(&mut self, script: &str, limits: Limits) -> StepOutcome {
        let spec = StepSpec {
            argv: vec!["/bin/bash".into(), "-c".into(), script.into()],
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
            limits,
            cpu_cores: self.cores,
            stdin: Vec::new(),
            output: warmbox_sandbox::OutputMode::Separate,
        };
        self.c.run(&spec).await.expect("run")
    }

    async fn run(&mut self, script: &str) -> StepOutcome {
        self.run_with(script, self.limits).await
    }

    /// Recycles the container, which must pass its checks.
    async fn recycle(&mut self) {
        let id = self.c.id().to_string();
        self.c
            .recycle(self.disk_bytes)
            .await
            .unwrap_or_else(|why| panic!("container {id} not recycled: {why}"));
        assert_eq!(self.c.id(), id);
    }

    /// Runs `leave`, recycles, runs `look`, and returns the second run (after checking that
    /// both ran in the one container and the first exited 0).
    async fn across(&mut self, leave: &str, look: &str) -> StepOutcome {
        let runs = self.c.runs();
        let first = self.run(leave).await;
        assert_eq!(
            (first.status, first.exit_code),
            (StepStatus::Ok, Some(0)),
            "the first run: {:?} {}",
            first.message,
            String::from_utf8_lossy(&first.stderr)
        );
        self.recycle().await;
        let second = self.run(look).await;
        assert_eq!(
            self.c.runs(),
            runs + 2,
            "both runs in container {}",
            self.c.id()
        );
        second
    }

    async fn done(self) {
        self.c.destroy().await;
    }
}

fn out(step: &StepOutcome) -> String {
    String::from_utf8_lossy(&step.stdout).into_owned()
}

#[tokio::test]
async fn files_in_box_tmp_and_shm_are_gone() {
    let Some(h) = common::harness() else { return };
    let mut b = Box1::new(h).await;
    let second = b
        .across(
            "echo a > /box/left; mkdir -p /tmp/d && echo b > /tmp/d/left; echo c > /dev/shm/left",
            "ls -A /box /tmp /dev/shm",
        )
        .await;
    assert_eq!(out(&second), "/box:\n\n/dev/shm:\n\n/tmp:\n");
    b.done().await;
}

#[tokio::test]
async fn processes_of_every_kind_are_gone() {
    let Some(h) = common::harness() else { return };
    let mut b = Box1::new(h).await;
    // A background sleep, one in a new session, a double fork (reparented to the run's
    // init), and a stopped one.
    let second = b
        .across(
            "sleep 600 & setsid sleep 601 & (sleep 602 &) ; sleep 603 & kill -STOP $!; exit 0",
            "ps -e -o pid=,comm= | sort -n; echo $$",
        )
        .await;
    // Only the run's init (1), the job (2, bash) and what it runs now.
    let text = out(&second);
    assert!(!text.contains("sleep"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"2"), "the job is PID 2 again: {text}");
    assert_eq!(lines[0].split_whitespace().next(), Some("1"), "{text}");
    b.done().await;
}

#[tokio::test]
async fn sysv_ipc_and_posix_mqueues_are_gone() {
    let Some(h) = common::harness() else { return };
    let mut b = Box1::new(h).await;
    let c_leave = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT = 0o1000
assert libc.shmget(0x5151, 4096, IPC_CREAT | 0o600) >= 0
assert libc.semget(0x5252, 1, IPC_CREAT | 0o600) >= 0
assert libc.msgget(0x5353, IPC_CREAT | 0o600) >= 0
# RLIMIT_MSGQUEUE is 0 for every job: a POSIX queue cannot even be made. Tried all the same.
rt = ctypes.CDLL("librt.so.1", use_errno=True)
rt.mq_open(b"/warmbox-left", os.O_CREAT | os.O_RDWR, 0o600, None)
print("made")
"#;
    let c_look = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
rt = ctypes.CDLL("librt.so.1", use_errno=True)
print(libc.shmget(0x5151, 0, 0), libc.semget(0x5252, 0, 0), libc.msgget(0x5353, 0),
      rt.mq_open(b"/warmbox-left", os.O_RDWR, 0, None))
"#;
    let leave = format!("/usr/bin/python3 -c '{c_leave}'");
    let look = format!("/usr/bin/python3 -c '{c_look}'");
    let second = b.across(&leave, &look).await;
    assert_eq!(out(&second), "-1 -1 -1 -1\n", "{second:?}");
    b.done().await;
}

#[tokio::test]
async fn sockets_and_ports_are_free_again() {
    let Some(h) = common::harness() else { return };
    let mut b = Box1::new(h).await;
    // TCP ports cannot be bound at all (landlock refuses bind and connect on TCP): the
    // leaving run tries, and both runs must see the same refusal. UDP and abstract unix
    // sockets can be bound, by a process the first run leaves running.
    let py_leave = r#"
import socket, os
u = socket.socket(socket.AF_UNIX); u.bind("\0warmbox-left"); u.listen()
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); d.bind(("127.0.0.1", 7001))
t = socket.socket()
try:
    t.bind(("127.0.0.1", 7000)); t.listen()
except PermissionError:
    pass
if os.fork() == 0:
    import time; time.sleep(600)
print("bound")
"#;
    let py_look = r#"
import socket
u = socket.socket(socket.AF_UNIX); u.bind("\0warmbox-left")
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); d.bind(("127.0.0.1", 7001))
t = socket.socket()
try:
    t.bind(("127.0.0.1", 7000)); print("tcp bound")
except PermissionError:
    print("tcp refused")
print("free")
"#;
    let leave = format!("/usr/bin/python3 -c '{py_leave}'");
    let look = format!("/usr/bin/python3 -c '{py_look}'");
    let second = b.across(&leave, &look).await;
    assert_eq!(
        (second.status, out(&second).as_str()),
        (StepStatus::Ok, "tcp refused\nfree\n"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    b.done().await;
}

#[tokio::test]
async fn file_locks_are_released() {
    let Some(h) = common::harness() else { return };
    let mut b = Box1::new(h).await;
    // The lock is held by a process the first run leaves running; the second takes it at
    // once (a file of its own /tmp: the old one is gone with its tmpfs).
    let second = b
        .across(
            "exec 9>/tmp/lock; flock 9; (sleep 600 9>&9 &); exit 0",
            "exec 9>/tmp/lock; flock -n 9 && echo took",
        )
        .await;
    assert_eq!(out(&second), "took\n");
    b.done().await;
}

#[tokio::test]
async fn environment_cwd_umask_and_rlimits_start_afresh() {
    let Some(h) = common::harness() else { return };
    let mut b = Box1::new(h).await;
    let look = "echo ${LEFT:-none} $(pwd) $(umask) $(ulimit -n) $(ulimit -c)";
    let fresh = b.run(look).await;
    b.recycle().await;
    let second = b
        .across(
            "export LEFT=1; cd /tmp; umask 077; ulimit -n 64; exit 0",
            look,
        )
        .await;
    assert_eq!(out(&second), out(&fresh));
    assert_eq!(out(&second), "none /box 0022 512 0\n");
    assert_eq!(b.c.runs(), 3);
    b.done().await;
}

#[tokio::test]
async fn accounting_of_one_run_is_absent_from_the_next() {
    let Some(h) = common::harness() else { return };
    let mut b = Box1::new(h).await;
    // CPU, memory peak, pids peak.
    let heavy = b
        .run("head -c 48M /dev/zero | tail -c 1 >/dev/null; for i in $(seq 20); do sleep 0.2 & done; x=0; while [ $x -lt 200000 ]; do x=$((x+1)); done; exit 0")
        .await;
    assert_eq!(heavy.status, StepStatus::Ok);
    assert!(heavy.usage.cpu_ms > 100.0, "{:?}", heavy.usage);
    assert!(heavy.usage.pids_peak >= Some(21), "{:?}", heavy.usage);
    b.recycle().await;
    let light = b.run("exit 0").await;
    assert_eq!(light.status, StepStatus::Ok);
    assert!(light.usage.cpu_ms < 50.0, "{:?}", light.usage);
    assert!(
        light.usage.memory_peak_bytes < heavy.usage.memory_peak_bytes / 2,
        "{:?} after {:?}",
        light.usage,
        heavy.usage
    );
    assert_eq!(light.usage.pids_peak, Some(1), "{:?}", light.usage);
    // The OOM flag: a run that meets the OOM killer, then one that does not.
    b.recycle().await;
    let small = Limits {
        memory_mb: 32,
        ..b.limits
    };
    let oom = b
        .run_with("x=$(head -c 100M /dev/zero | tr '\\0' a); exit 0", small)
        .await;
    assert_eq!(oom.status, StepStatus::MemoryLimit, "{:?}", oom.usage);
    assert!(oom.usage.oom_killed);
    b.recycle().await;
    let after = b.run("exit 0").await;
    assert_eq!(after.status, StepStatus::Ok);
    assert!(!after.usage.oom_killed, "{:?}", after.usage);
    assert_eq!(b.c.runs(), 4);
    b.done().await;
}

#[tokio::test]
async fn a_run_that_casts_doubt_is_not_recycled() {
    let Some(h) = common::harness() else { return };
    // A forbidden system call.
    let mut b = Box1::new(h).await;
    let bad = b
        .run("/usr/bin/python3 -c 'import ctypes; ctypes.CDLL(None).syscall(165, 0, 0, 0, 0, 0)'")
        .await;
    assert_eq!(bad.status, StepStatus::SecurityViolation, "{bad:?}");
    assert_eq!(b.c.doubt(), Some("security_violation"));
    assert_eq!(b.c.recycle(b.disk_bytes).await, Err("security_violation"));
    b.done().await;
    // An ordinary run is recycled; the wall clock's kill is not doubt either.
    let mut b = Box1::new(h).await;
    let slow = b
        .run_with(
            "sleep 5",
            Limits {
                wall_ms: 200,
                ..b.limits
            },
        )
        .await;
    assert_eq!(slow.status, StepStatus::WallTimeLimit);
    assert_eq!(b.c.doubt(), None);
    b.recycle().await;
    b.done().await;
}

/// A recycled container's job process waits at the job's priority again, below its init.
#[tokio::test]
async fn a_recycled_container_waits_at_its_run_priorities() {
    let Some(h) = common::harness() else { return };
    let mut b = Box1::new(h).await;
    b.run("exit 0").await;
    b.recycle().await;
    // The job process sets its priority before it reports ready.
    assert_eq!(
        warmbox_testkit::waiting_priorities(b.c.pid()),
        (
            warmbox_sandbox::forkserver::RUN_NICE,
            warmbox_sandbox::forkserver::JOB_NICE
        )
    );
    b.done().await;
}

/// Through the pool: a container comes back recycled (the next take gets the same one)
/// until it has served `runs` steps or a step casts doubt on it; each destroy is counted
/// with its reason.
#[tokio::test(flavor = "multi_thread")]
async fn the_pool_recycles_until_runs_or_doubt_and_counts_why() {
    let Some(h) = common::private_harness("warmbox-test-recycle-pool") else {
        return;
    };
    use warmbox_sandbox::pool::{Pool, Recycle};
    let spec = h.warm_spec("bash/run", 1);
    let (lay, cg) = (spec.layout.clone(), spec.limits.clone());
    let pool = Pool::new(
        h.sandbox.clone(),
        vec![spec],
        1,
        Recycle {
            runs: 3,
            ..Recycle::DEFAULT
        },
    );
    pool.warm_up().await.expect("warm up");
    let profile = &h.profiles.get("bash").expect("bash").profile;
    let step = |script: &str| StepSpec {
        argv: vec!["/bin/bash".into(), "-c".into(), script.into()],
        env: vec!["PATH=/usr/bin:/bin".into()],
        limits: default_limits(profile, StepKind::Run),
        cpu_cores: profile.cpu_cores,
        stdin: Vec::new(),
        output: warmbox_sandbox::OutputMode::Separate,
    };
    // Waits until the container given back is warm again (or destroyed and replaced).
    let settle = |pool: std::sync::Arc<Pool>| async move {
        for _ in 0..500 {
            if pool.warm_counts()[0].1 == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the pool did not settle");
    };
    let mut ids = Vec::new();
    for _ in 0..4 {
        let mut c = pool.take(&lay, &cg).await.expect("take");
        ids.push(c.id().to_string());
        let r = c.run(&step("echo $$")).await.expect("run");
        assert_eq!(out(&r), "2\n");
        pool.give_back(c);
        settle(pool.clone()).await;
    }
    // Three steps in one container, the fourth in a new one.
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    assert_ne!(ids[2], ids[3]);
    assert_eq!(pool.recycled(), 3);
    assert_eq!(pool.destroyed(), [("runs", 1)]);
    // A forbidden call: that container is destroyed, the next take gets another.
    let mut c = pool.take(&lay, &cg).await.expect("take");
    assert_eq!(c.id(), ids[3]);
    let r = c
        .run(&step(
            "/usr/bin/python3 -c 'import ctypes; ctypes.CDLL(None).syscall(165, 0, 0, 0, 0, 0)'",
        ))
        .await
        .expect("run");
    assert_eq!(r.status, StepStatus::SecurityViolation);
    pool.give_back(c);
    settle(pool.clone()).await;
    assert_eq!(pool.destroyed(), [("runs", 1), ("security_violation", 1)]);
    let c = pool.take(&lay, &cg).await.expect("take");
    assert_ne!(c.id(), ids[3]);
    pool.destroy_later(c);
    pool.shutdown().await;
    assert_eq!(h.live_cgroups(), Vec::<String>::new());
}
