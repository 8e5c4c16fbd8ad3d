//! `warmbox serve` as a real process: killed mid-load and restarted, shut down gracefully,
//! and with container inits dying under it.

mod common;

use std::time::{Duration, Instant};

use common::server::*;
use serde_json::{json, Value};

#[test]
fn killed_mid_load_then_restarted_cleans_up_and_serves() {
    if !root_or_skip() {
        return;
    }
    let (parent, uid_base) = ("warmbox-test-service-crash", 910_000);
    let mut a = start(parent, uid_base, &[]);
    let base = a.base.clone();
    let load: Vec<_> = (0..6)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || {
                let _ = run(
                    &base,
                    json!({"profile": "bash", "cmd": ["/bin/sleep", "10"]}),
                );
            })
        })
        .collect();
    wait_until("jobs running", 20, || {
        block_processes(uid_base)
            .iter()
            .any(|(_, _, n)| n == "sleep")
    });
    a.child.kill().expect("SIGKILL the server");
    a.child.wait().expect("reap the server");
    for t in load {
        t.join().expect("client thread");
    }
    // Every container's init lost its channel and ended, and with it its namespace.
    wait_until("no container process left", 10, || {
        block_processes(uid_base).is_empty()
    });
    let stale = cgroups(parent);
    assert!(!stale.is_empty(), "a SIGKILLed server leaves its cgroups");

    let b = start(parent, uid_base, &[]);
    let now = cgroups(parent);
    assert!(
        stale.iter().all(|s| !now.contains(s)),
        "stale cgroups removed at start: {stale:?} vs {now:?}"
    );
    let (status, r) = run(
        &b.base,
        json!({"profile": "bash", "cmd": ["/bin/echo", "back"]}),
    )
    .expect("run after restart");
    assert_eq!((status, r["run"]["stdout"].clone()), (200, json!("back\n")));
    stop(b);
}

/// Field `Max open files` of `/proc/<pid>/limits`: (soft, hard).
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].to_string(), f[4].to_string())
}

/// Warm containers hold descriptors in the server: it raises its soft limit to the hard one.
#[test]
fn the_server_raises_its_open_files_limit() {
    if !root_or_skip() {
        return;
    }
    let (parent, uid_base) = ("warmbox-test-service-nofile", 920_000);
    let s = start_with(parent, uid_base, &[], Some(256));
    let (soft, hard) = open_files_limit(s.child.id());
    assert_eq!(soft, hard);
    assert_ne!(soft, "256");
    stop(s);
}

#[test]
fn sigterm_lets_running_requests_finish_and_leaves_nothing() {
    if !root_or_skip() {
        return;
    }
    let (parent, uid_base) = ("warmbox-test-service-term", 912_000);
    let s = start(parent, uid_base, &[]);
    let base = s.base.clone();
    let running = std::thread::spawn(move || {
        run(
            &base,
            json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "sleep 1; echo done"]}),
        )
    });
    wait_until("the job runs", 20, || {
        block_processes(uid_base)
            .iter()
            .any(|(_, _, n)| n == "sleep")
    });
    let t = Instant::now();
    stop(s);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let (status, r) = running.join().expect("client").expect("answer");
    assert_eq!((status, r["run"]["stdout"].clone()), (200, json!("done\n")));
}

#[test]
fn a_dying_init_fails_only_its_own_step_and_the_pool_heals() {
    if !root_or_skip() {
        return;
    }
    let (parent, uid_base) = ("warmbox-test-service-init", 914_000);
    let s = start(parent, uid_base, &[]);
    // Kill every warm init (the container's root maps to an even uid of the block), and
    // wait until they have exited: an init still dying when it is taken dies during its
    // step, which is the second half of this test.
    let mut killed = Vec::new();
    for (pid, uid, _) in block_processes(uid_base) {
        if (uid - uid_base) % 2 == 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed.push(pid);
        }
    }
    assert!(!killed.is_empty(), "warm inits to kill");
    wait_until("the killed inits exit", 10, || {
        killed.iter().all(|pid| exited(*pid))
    });
    for i in 0..3 {
        let (status, r) = run(
            &s.base,
            json!({"profile": "bash", "cmd": ["/bin/echo", i.to_string()]}),
        )
        .expect("run");
        assert_eq!(
            (status, r["run"]["stdout"].clone(), r["status"].clone()),
            (200, json!(format!("{i}\n")), json!("ok")),
            "{r}"
        );
    }
    // An init killed during its run: that step alone is an internal error.
    let base = s.base.clone();
    let victim = std::thread::spawn(move || {
        run(
            &base,
            json!({"profile": "bash", "cmd": ["/bin/sleep", "5"]}),
        )
    });
    let mut init = None;
    // The container's init is the parent of the job's: the run's init.
    let parent =
        |pid: i32| -> Option<i32> { warmbox_testkit::stat_fields(pid)?.get(1)?.parse().ok() };
    wait_until("the job runs", 20, || {
        init = block_processes(uid_base)
            .iter()
            .find(|(_, _, n)| n == "sleep")
            .and_then(|(pid, _, _)| parent(parent(*pid)?));
        init.is_some()
    });
    let init = init.expect("the job's init");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the init");
    let (status, r) = victim.join().expect("client").expect("answer");
    assert_eq!(status, 200);
    assert_eq!(r["run"]["status"], "internal_error", "{r}");
    let (status, r) = run(
        &s.base,
        json!({"profile": "bash", "cmd": ["/bin/echo", "fine"]}),
    )
    .expect("run after");
    assert_eq!((status, r["run"]["stdout"].clone()), (200, json!("fine\n")));
    stop(s);
}

fn threads_and_fds(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (threads, fds)
}

/// 2,000 runs from 32 clients at once, mixed languages and outcomes, against a queue of
/// 16: every answer is the exact expected result or a 503; the server's threads and fds
/// stay bounded; afterwards nothing is left.
#[test]
fn load_of_two_thousand_mixed_runs() {
    if !root_or_skip() {
        return;
    }
    let (parent, uid_base) = ("warmbox-test-service-load", 916_000);
    let s = start(parent, uid_base, &["--max-queue", "16"]);
    let pid = s.child.id();
    // Let the pool settle, then take the baseline.
    std::thread::sleep(Duration::from_millis(500));
    let (threads0, fds0) = threads_and_fds(pid);
    let cases: Vec<(Value, &str, Value)> = vec![
        (
            json!({"profile": "bash", "cmd": ["/bin/echo", "hi"]}),
            "ok",
            json!("hi\n"),
        ),
        (
            json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "echo err >&2; exit 3"]}),
            "runtime_error",
            json!(""),
        ),
        (
            json!({"profile": "python3", "files": [{"name": "main.py", "content": "print(6*7)"}]}),
            "ok",
            json!("42\n"),
        ),
        (
            json!({"profile": "c", "files": [{"name": "main.c", "content": "#include <stdio.h>\nint main(void){puts(\"c\");return 0;}"}]}),
            "ok",
            json!("c\n"),
        ),
        (
            json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "while :; do :; done"], "limits": {"cpu_ms": 50}}),
            "time_limit",
            json!(""),
        ),
    ];
    // Mostly trivial runs, with every outcome in the mix.
    let weights = [14, 2, 2, 1, 1];
    let plan: Vec<usize> = (0..2000)
        .map(|i| {
            let mut k = i % weights.iter().sum::<usize>();
            weights
                .iter()
                .position(|w| {
                    if k < *w {
                        true
                    } else {
                        k -= w;
                        false
                    }
                })
                .unwrap_or(0)
        })
        .collect();
    let plan = std::sync::Arc::new(plan);
    let cases = std::sync::Arc::new(cases);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let (plan, cases, next, base) =
                (plan.clone(), cases.clone(), next.clone(), s.base.clone());
            std::thread::spawn(move || {
                let (mut ok, mut overloaded) = (0, 0);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&k) = plan.get(i) else { break };
                    let (body, status, stdout) = &cases[k];
                    // Like a client: on 503, retry (sooner than Retry-After, to keep the
                    // test short) until the run is answered.
                    loop {
                        let (code, r) = run(&base, body.clone()).expect("an answer");
                        match code {
                            200 => {
                                assert_eq!(r["status"], *status, "case {k}: {r}");
                                assert_eq!(r["run"]["stdout"], *stdout, "case {k}: {r}");
                                ok += 1;
                                break;
                            }
                            503 => {
                                assert_eq!(r["error"]["code"], "overloaded", "{r}");
                                overloaded += 1;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            other => panic!("unexpected HTTP {other}: {r}"),
                        }
                    }
                }
                (ok, overloaded)
            })
        })
        .collect();
    let (mut ok, mut overloaded) = (0, 0);
    for c in clients {
        let (o, v) = c.join().expect("client");
        ok += o;
        overloaded += v;
    }
    assert_eq!(ok, 2000);
    assert!(
        overloaded > 0,
        "32 clients against 2 running + 16 queued must see 503s"
    );
    eprintln!("load: {ok} answered, {overloaded} overloaded (503)");
    // Background destroys settle; then threads and fds are back where they were.
    let mut now = threads_and_fds(pid);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(now.0 <= threads0 + 16 && now.1 <= fds0 + 8) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        now = threads_and_fds(pid);
    }
    let (threads1, fds1) = now;
    assert!(
        threads1 <= threads0 + 16,
        "threads {threads0} -> {threads1}"
    );
    assert!(fds1 <= fds0 + 8, "fds {fds0} -> {fds1}");
    stop(s);
}

#[test]
fn past_the_grace_period_running_requests_are_killed() {
    if !root_or_skip() {
        return;
    }
    let (parent, uid_base) = ("warmbox-test-service-grace", 918_000);
    let s = start(parent, uid_base, &["--shutdown-grace-secs", "1"]);
    let base = s.base.clone();
    let running = std::thread::spawn(move || {
        run(
            &base,
            json!({"profile": "bash", "cmd": ["/bin/sleep", "30"], "limits": {"wall_ms": 60000}}),
        )
    });
    wait_until("the job runs", 20, || {
        block_processes(uid_base)
            .iter()
            .any(|(_, _, n)| n == "sleep")
    });
    let t = Instant::now();
    stop(s);
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(15)).contains(&t.elapsed()),
        "{:?}",
        t.elapsed()
    );
    assert!(
        running.join().expect("client").is_err(),
        "the connection was closed"
    );
}

#[test]
fn bad_settings_stop_the_start_with_a_message_and_leave_nothing() {
    if !root_or_skip() {
        return;
    }
    let parent = "warmbox-test-service-settings";
    let dir = tempfile::tempdir().expect("tempdir");
    let warm = dir.path().join("warm.toml");
    std::fs::write(&warm, "[warm]\n\"pyhton3/run\" = 8\n").expect("write");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, "tokens = [\"sekret\"]\n").expect("write");
    let serve = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_warmbox"))
            .current_dir(warmbox_testkit::repo())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--cgroup-parent",
                parent,
            ])
            .args(["--state-dir", "/run/warmbox-test-service"])
            .args(["--jobs-db", &jobs_db(parent)])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run warmbox serve");
        assert!(!out.status.success(), "{args:?} {env:?} started");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    /// Arguments, environment, the message's part.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 7] = [
        (
            &["--token", ""],
            &[],
            "warmbox: an empty bearer token was given",
        ),
        // An empty variable does not quietly drop the file's tokens either.
        (
            &["--config", tokens.to_str().expect("utf-8")],
            &[("WARMBOX_TOKENS", "")],
            "warmbox: an empty bearer token was given",
        ),
        (
            &["--max-running", "0"],
            &[],
            "warmbox: max_running is 0; it must be at least 1",
        ),
        (
            &["--max-body-bytes", "10"],
            &[],
            "warmbox: max_body_bytes is 10; it must be at least 1024",
        ),
        (
            &["--compile-cache-mb", "17592186044416"],
            &[],
            "warmbox: compile_cache_mb is 17592186044416; it must be at most 1048576 (1 TiB)",
        ),
        (
            &["--config", warm.to_str().expect("utf-8")],
            &[],
            "warmbox: [warm] \"pyhton3/run\": no such layout; the layouts are default, bash/run",
        ),
        // Its ids would wrap around to the host's first ones (root's).
        (
            &["--uid-base", "4294967294"],
            &[],
            "(ids 4294967294..4294968318 pass the largest id, 4294967294: choose a uid_base at \
             most 4294966271)",
        ),
    ];
    for (args, env, message) in cases {
        let said = serve(args, env);
        assert!(said.contains(message), "{args:?}: {said}");
        // Refused before anything was made.
        assert!(!warmbox_testkit::cgroupfs::exists(parent), "{args:?}");
    }
}
