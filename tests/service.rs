//! `warmbox serve` as a real process: killed mid-load and restarted, shut down gracefully,
//! and with container inits dying under it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Server {
    child: Child,
    base: String,
    parent: String,
    uid_base: u32,
}

/// A test that panics before `stop` must not leave its server running (and holding its
/// uid block for the next run): kill it. After `stop` the child is reaped and this fails.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    common::skip("the service tests need root");
    false
}

fn start(parent: &str, uid_base: u32, extra: &[&str]) -> Server {
    start_with(parent, uid_base, extra, None)
}

/// [`start`], with the server's soft limit of open files lowered to `soft_nofile`.
fn start_with(parent: &str, uid_base: u32, extra: &[&str], soft_nofile: Option<u64>) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warmbox"));
    if let Some(soft) = soft_nofile {
        use std::os::unix::process::CommandExt;
        // SAFETY: only getrlimit/setrlimit between fork and exec (async-signal-safe).
        unsafe {
            cmd.pre_exec(move || {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                lim.rlim_cur = soft;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .current_dir(common::repo())
        .args(["serve", "--listen", "127.0.0.1:0", "--warm", "1"])
        .args([
            "--cgroup-parent",
            parent,
            "--uid-base",
            &uid_base.to_string(),
        ])
        .args(["--state-dir", "/run/warmbox-test-service"])
        .args(if extra.contains(&"--jobs-db") {
            vec![]
        } else {
            vec!["--jobs-db".to_string(), jobs_db(parent)]
        })
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warmbox serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("warmbox serve ended before listening")
            .expect("read stderr");
        if let Some(addr) = line.strip_prefix("warmbox: serving on ") {
            break addr.to_string();
        }
    };
    // Keep draining stderr so that the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    let s = Server {
        child,
        base,
        parent: parent.to_string(),
        uid_base,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&s, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "not ready within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

/// A server's own job store (fresh at each test run: removed first).
fn jobs_db(parent: &str) -> String {
    format!("/run/warmbox-test-service/{parent}.redb")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn get(s: &Server, path: &str) -> (u16, String) {
    match agent().get(format!("{}{path}", s.base)).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

fn run(base: &str, body: Value) -> Result<(u16, Value), String> {
    let mut r = agent()
        .post(format!("{base}/v1/run"))
        .send(body.to_string())
        .map_err(|e| e.to_string())?;
    let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    let v = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    Ok((r.status().as_u16(), v))
}

/// (pid, uid, name) of host processes whose uid is in the server's container uid block.
fn block_processes(uid_base: u32) -> Vec<(i32, u32, String)> {
    common::processes_in(uid_base, 1024)
}

/// Whether `pid` has ended: gone, or a zombie that its parent has not reaped yet.
fn exited(pid: i32) -> bool {
    common::stat_fields(pid).is_none_or(|f| f.first().is_some_and(|s| s == "Z" || s == "X"))
}

fn cgroups(parent: &str) -> Vec<String> {
    common::subdirs(&std::path::Path::new("/sys/fs/cgroup/memory").join(parent))
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cleanup_parent(parent: &str) {
    for c in ["memory", "pids", "cpu", "cpuacct"] {
        let _ = std::fs::remove_dir(std::path::Path::new("/sys/fs/cgroup").join(c).join(parent));
    }
}

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
    cleanup_parent(parent);
}

fn stop(mut s: Server) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = s.child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert_eq!(cgroups(&s.parent), Vec::<String>::new());
    assert_eq!(block_processes(s.uid_base), Vec::new());
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
    cleanup_parent(parent);
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
    cleanup_parent(parent);
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
    wait_until("the job runs", 20, || {
        init = block_processes(uid_base)
            .iter()
            .find(|(_, _, n)| n == "sleep")
            .and_then(|(pid, _, _)| common::stat_fields(*pid)?.get(1)?.parse().ok());
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
    cleanup_parent(parent);
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
    std::thread::sleep(Duration::from_millis(500));
    let (threads1, fds1) = threads_and_fds(pid);
    assert!(
        threads1 <= threads0 + 16,
        "threads {threads0} -> {threads1}"
    );
    assert!(fds1 <= fds0 + 8, "fds {fds0} -> {fds1}");
    stop(s);
    cleanup_parent(parent);
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
        (Duration::from_secs(1)..Duration::from_secs(5)).contains(&t.elapsed()),
        "{:?}",
        t.elapsed()
    );
    assert!(
        running.join().expect("client").is_err(),
        "the connection was closed"
    );
    cleanup_parent(parent);
}
