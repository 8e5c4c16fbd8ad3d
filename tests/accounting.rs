//! Resource accounting of a run step against programs whose use is known: CPU time of
//! every process of the container, the memory peak, the task peak, wall time and exact
//! output byte counts.

mod common;

use serde_json::json;
use warmbox_runner::request::StepStatus;
use warmbox_testkit::emulation::budget_ms;

const MIB: u64 = 1 << 20;

#[tokio::test]
async fn cpu_time_of_child_processes_counts() {
    let Some(h) = common::harness() else { return };
    // Two subshells each burn 200 ms of their own CPU time (utime + stime from their
    // /proc stat, in 10 ms ticks) using only builtins, in parallel; bash itself only waits.
    let run = h
        .sh(r#"burn() { local s; while :; do read -r -a s < /proc/$BASHPID/stat; (( s[13] + s[14] >= 20 )) && break; done; }
burn & burn & wait; echo burned"#)
        .await;
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(run.stdout, "burned\n");
    let u = &run.usage;
    assert!(
        u.cpu_ms >= 350.0,
        "two children burned 200 ms each, cpu_ms is {}",
        u.cpu_ms
    );
    assert!(u.cpu_ms < budget_ms(1500) as f64, "cpu_ms {}", u.cpu_ms);
    // A busy loop of builtins is user time; the split adds up to the exact total.
    assert!(u.user_ms > 0.0, "{u:?}");
    assert!((u.user_ms + u.sys_ms - u.cpu_ms).abs() < 0.01, "{u:?}");
    assert!(u.pids_peak.is_some_and(|p| p >= 3), "{u:?}");
}

#[tokio::test]
async fn memory_peak_reflects_a_known_allocation() {
    let Some(h) = common::harness() else { return };
    // bytes * n writes every byte: 100 MiB resident.
    let resp = h
        .run(json!({
            "profile": "python3",
            "files": [{"name": "main.py", "content": "b = b'\\x01' * (100 << 20)\nprint(len(b), b[-1])\n"}],
        }))
        .await;
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(run.stdout, "104857600 1\n");
    let peak = run.usage.memory_peak_bytes;
    assert!(
        (100 * MIB..160 * MIB).contains(&peak),
        "100 MiB allocated, peak {} MiB",
        peak as f64 / MIB as f64
    );
    assert!(!run.usage.oom_killed);

    // And a small program's peak is small: the peak is this run's, not the container's
    // set-up or another run's.
    let run = h.sh("echo small").await;
    assert_eq!(run.status, StepStatus::Ok);
    assert!(
        run.usage.memory_peak_bytes > 0 && run.usage.memory_peak_bytes < 32 * MIB,
        "peak of echo: {}",
        run.usage.memory_peak_bytes
    );
}

#[tokio::test]
async fn pids_peak_counts_every_process() {
    let Some(h) = common::harness() else { return };
    let run = h
        .sh("for i in 1 2 3 4 5; do sleep 0.3 & done; wait; echo waited")
        .await;
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(run.stdout, "waited\n");
    let peak = run
        .usage
        .pids_peak
        .expect("pids_peak is reported on this kernel (pids.peak exists)");
    assert!(peak >= 6, "bash and 5 sleeps, pids_peak {peak}");
    assert!(peak <= 64, "pids_peak {peak} above the pids limit");
}

#[tokio::test]
async fn wall_time_of_a_sleep() {
    let Some(h) = common::harness() else { return };
    let run = h.sh("sleep 0.2").await;
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    let u = &run.usage;
    assert!(
        (200.0..=budget_ms(450) as f64).contains(&u.wall_ms),
        "sleep 0.2 took wall_ms {}",
        u.wall_ms
    );
    assert!(
        u.cpu_ms < budget_ms(100) as f64,
        "sleeping is not CPU time: {}",
        u.cpu_ms
    );
}

#[tokio::test]
async fn output_byte_counts_are_exact() {
    let Some(h) = common::harness() else { return };
    let run = h
        .sh("head -c 1000 /dev/zero | tr '\\0' a; printf 'é\\n' >&2; printf '%.0s-' $(seq 37) >&2")
        .await;
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(run.stdout, "a".repeat(1000));
    assert_eq!(run.usage.stdout_bytes, 1000);
    assert_eq!(run.stderr, format!("é\n{}", "-".repeat(37)));
    // "é" is two bytes.
    assert_eq!(run.usage.stderr_bytes, 2 + 1 + 37);
    assert!(!run.stdout_truncated && !run.stderr_truncated);

    let run = h.sh("true").await;
    assert_eq!(run.status, StepStatus::Ok);
    assert_eq!((run.usage.stdout_bytes, run.usage.stderr_bytes), (0, 0));
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
}

#[tokio::test]
async fn user_and_sys_time_split_cpu_time() {
    let Some(h) = common::harness() else { return };
    // user_ms and sys_ms are the two parts of cpu_ms (API.md's example: 8.0 + 3.2 = 11.2;
    // CgroupUsage: "System part of cpu_ns"), so they add up to it, whatever the load.
    // Two CPU-bound children under a one-core quota, three times.
    for _ in 0..3 {
        let run = h
            .sh(r#"burn() { local s; while :; do read -r -a s < /proc/$BASHPID/stat; (( s[13] + s[14] >= 20 )) && break; done; }
burn & burn & wait"#)
            .await;
        assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
        let u = &run.usage;
        let sum = u.user_ms + u.sys_ms;
        assert!(
            (sum - u.cpu_ms).abs() <= (u.cpu_ms * 0.02).max(2.0),
            "user_ms {} + sys_ms {} = {sum}, but cpu_ms is {}",
            u.user_ms,
            u.sys_ms,
            u.cpu_ms
        );
    }
}

#[tokio::test]
async fn cpu_time_is_the_jobs_own_at_least() {
    let Some(h) = common::harness() else { return };
    // The job's own CPU clock (ns, since its fork) at its last statement: the step's
    // cpu_ms, which takes the init's share of the cgroup off, can never be below it.
    for _ in 0..5 {
        let resp = h
            .run(json!({
                "profile": "python3",
                "files": [{"name": "main.py", "content": "import time\nprint(time.process_time_ns())\n"}],
            }))
            .await;
        let run = resp.run.expect("run step");
        assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
        let own_ms = run.stdout.trim().parse::<u64>().expect("ns") as f64 / 1e6;
        assert!(own_ms > 0.0, "{run:#?}");
        assert!(
            run.usage.cpu_ms >= own_ms,
            "cpu_ms {} below the job's own clock {own_ms} ms",
            run.usage.cpu_ms
        );
    }
}
