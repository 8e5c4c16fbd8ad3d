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

fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    common::skip("the service tests need root");
    false
}

fn start(parent: &str, uid_base: u32, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warmbox"))
        .current_dir(common::repo())
        .args(["serve", "--listen", "127.0.0.1:0", "--warm", "1"])
        .args([
            "--cgroup-parent",
            parent,
            "--uid-base",
            &uid_base.to_string(),
        ])
        .args(["--state-dir", "/run/warmbox-test-service"])
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

/// (pid, uid, comm) of host processes whose uid is in the server's container uid block.
fn block_processes(uid_base: u32) -> Vec<(i32, u32, String)> {
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
            if (uid_base..uid_base + 1024).contains(&uid) {
                found.push((pid, uid, name));
            }
        }
    }
    found
}

fn cgroups(parent: &str) -> Vec<String> {
    let dir = std::path::Path::new("/sys/fs/cgroup/memory").join(parent);
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
    // Kill every warm init (the container's root maps to an even uid of the block).
    for (pid, uid, _) in block_processes(uid_base) {
        if (uid - uid_base) % 2 == 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    for i in 0..3 {
        let (status, r) = run(
            &s.base,
            json!({"profile": "bash", "cmd": ["/bin/echo", i.to_string()]}),
        )
        .expect("run");
        assert_eq!(
            (status, r["run"]["stdout"].clone()),
            (200, json!(format!("{i}\n")))
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
            .and_then(|(pid, _, _)| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let after = stat.rsplit_once(')')?.1;
                after.split_whitespace().nth(1)?.parse::<i32>().ok()
            });
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
