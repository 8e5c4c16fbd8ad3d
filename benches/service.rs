//! The service through HTTP on loopback, beside baselines measured in the same run:
//!
//! - trivial run (`bash` profile, `cmd: ["/bin/true"]`) at concurrency 1, p50 and p99, vs
//!   bare fork+exec+wait of `/bin/true`;
//! - throughput at concurrency 16 vs the bare rate of "clone all seven namespaces + exec
//!   + wait" on all cores;
//! - python3 hello world p50 vs bare `python3 -c 'print(1)'`;
//! - idle server memory, memory per warm container, and the server's memory across
//!   10,000 runs;
//! - the server's own cost per run at concurrency 1 and 16: the CPU time and context
//!   switches of the `warmbox serve` process's threads (its children, the fork servers and
//!   the containers, are other processes: the fork servers' CPU is printed beside it).
//!
//! Every figure twice: with the default recycling, and with `--recycle-runs 1` (a new
//! container for every step), each pass with its own baselines.
//!
//! Needs root and a release build: `cargo build --release && cargo bench --bench service`
//! (`WARMBOX_BENCH_RUNS` sets the count of the memory run, default 10000).

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warmbox_testkit::bench::{self, clone_ns_exec_wait, fork_exec_wait, ThreadsCost};

fn p50(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> (u16, String) {
    let mut r = agent.post(url).send(body).expect("HTTP");
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The fork servers of the server `pid`: its children in the host's pid namespace that
/// are named `warmbox-init` (the inits, also its children and named so, are in pid
/// namespaces of their own).
fn fork_servers(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        if field("PPid:") == [pid.to_string().as_str()]
            && field("NSpid:").len() == 1
            && cmdline == b"warmbox-init\0"
        {
            out.push(p);
        }
    }
    out
}

/// What the server `pid` has spent so far: its own threads' cost, and its fork servers' CPU
/// time (ns, each by its own clock).
fn server_spent(pid: u32) -> (ThreadsCost, u64) {
    let forks = fork_servers(pid)
        .into_iter()
        .map(|p| ThreadsCost::of(p).cpu_ns)
        .sum();
    (ThreadsCost::of(pid), forks)
}

/// Prints what the server spent per run over `runs` runs between two [`server_spent`].
fn print_server_cost(
    what: &str,
    before: &(ThreadsCost, u64),
    after: &(ThreadsCost, u64),
    runs: u64,
) {
    println!(
        "server's own cost, {what}: {} over {runs} runs   (the `warmbox serve` process's threads only, \
         pool refill and container removal included; not its children: its fork servers spent \
         {:.3} ms CPU per run, the containers are accounted in their cgroups)",
        after.0.since(&before.0).per_run(runs),
        after.1.saturating_sub(before.1) as f64 / 1e6 / runs.max(1) as f64
    );
}

/// The recycling counters of the server at `base`, from its `/metrics`.
fn recycling_counters(base: &str) -> String {
    let mut r = agent()
        .get(&format!("{base}/metrics"))
        .call()
        .expect("metrics");
    let text = r.body_mut().read_to_string().unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("warmbox_containers_"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() {
    if !bench::root_or_skip("service") {
        return;
    }
    let runs: usize = bench::count_from_env("WARMBOX_BENCH_RUNS", 10_000);
    println!("warmbox service bench, through HTTP on loopback, baselines from this same run");
    // The default, then a new container for every step (what warmbox did before recycling).
    for (label, args) in [
        ("recycle_runs = 100 (default)", &[][..]),
        ("recycle_runs = 1", &["--recycle-runs", "1"][..]),
    ] {
        println!("\n== {label}");
        measure(runs, args);
    }
}

/// One pass of every figure, against a server started with `args`.
fn measure(runs: usize, args: &[&str]) {
    let (mut child, base) = bench::start_server_with("service", 930_000, args);
    let a = agent();
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    let url = format!("{base}/v1/run");
    let trivial = r#"{"profile":"bash","cmd":["/bin/true"]}"#;
    let python = r#"{"profile":"python3","files":[{"name":"main.py","content":"print(1)"}]}"#;
    let bin_true = CString::new("/bin/true").expect("no NUL");
    let python3 = CString::new("/usr/bin/python3").expect("no NUL");
    let (dash_c, print1) = (
        CString::new("-c").expect("no NUL"),
        CString::new("print(1)").expect("no NUL"),
    );

    // Idle memory: the server process, and per warm container (its cgroup's usage).
    let idle_kb = rss_kb(pid);
    let warm_dir = std::path::Path::new("/sys/fs/cgroup/memory/warmbox-bench-service");
    let usages: Vec<u64> = std::fs::read_dir(warm_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            std::fs::read_to_string(e.path().join("memory.usage_in_bytes"))
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    let per = usages.iter().sum::<u64>() as f64 / usages.len().max(1) as f64 / 1048576.0;
    let forks = fork_servers(pid);
    let forks_kb: u64 = forks.iter().map(|&p| rss_kb(p)).sum();
    println!(
        "idle server RSS {:.1} MB + its {} fork servers {:.1} MB = {:.1} MB; {} warm containers, {:.2} MB each (cgroup usage)   (target <= 30 MB + 1 MB per container)",
        idle_kb as f64 / 1024.0,
        forks.len(),
        forks_kb as f64 / 1024.0,
        (idle_kb + forks_kb) as f64 / 1024.0,
        usages.len(),
        per
    );

    // Trivial run at concurrency 1, interleaved with its baseline.
    let (mut http, mut bare) = (Vec::new(), Vec::new());
    let spent_before = server_spent(pid);
    for _ in 0..500 {
        bare.push(fork_exec_wait(&bin_true, &[]));
        let t = Instant::now();
        let (code, body) = post(&a, &url, trivial);
        http.push(t.elapsed());
        assert_eq!(code, 200, "{body}");
    }
    let p99 = {
        let mut v = http.clone();
        v.sort();
        v[v.len() * 99 / 100].as_secs_f64() * 1e3
    };
    let (h, b) = (p50(http), p50(bare));
    println!(
        "trivial run, concurrency 1: p50 {h:.3} ms vs bare fork+exec+wait /bin/true {b:.3} ms = {:.2}x   (target <= 1.5x); p99 {p99:.3} ms = {:.2}x its p50   (target <= 3x)",
        h / b,
        p99 / h
    );
    let spent = server_spent(pid);
    print_server_cost("trivial run, concurrency 1", &spent_before, &spent, 500);

    // python3 hello world.
    let (mut http, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        bare.push(fork_exec_wait(&python3, &[&dash_c, &print1]));
        let t = Instant::now();
        let (code, body) = post(&a, &url, python);
        http.push(t.elapsed());
        assert!(
            code == 200 && body.contains("\"stdout\":\"1\\n\""),
            "{body}"
        );
    }
    let (h, b) = (p50(http), p50(bare));
    println!(
        "python3 hello: p50 {h:.3} ms vs bare python3 -c 'print(1)' {b:.3} ms = +{:.2} ms   (target <= +2 ms)",
        h - b
    );

    // Throughput at concurrency 16, then the bare namespace rate on all cores.
    let window = Duration::from_secs(5);
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let spent_before = server_spent(pid);
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (done, errors, stop, url) =
                (done.clone(), errors.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || {
                let a = agent();
                while !stop.load(Ordering::Relaxed) {
                    let (code, _) = post(&a, &url, trivial);
                    if code == 200 {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(window);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    let http_rate = done.load(Ordering::Relaxed) as f64 / window.as_secs_f64();
    let http_done = done.load(Ordering::Relaxed) + errors.load(Ordering::Relaxed);
    // Read as the clients stop, printed after the baseline's line.
    let spent = server_spent(pid);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bare_done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..cores)
        .map(|_| {
            let (bare_done, stop) = (bare_done.clone(), stop.clone());
            std::thread::spawn(move || {
                let t = CString::new("/bin/true").expect("no NUL");
                while !stop.load(Ordering::Relaxed) {
                    clone_ns_exec_wait(&t);
                    bare_done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(window);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    let bare_rate = bare_done.load(Ordering::Relaxed) as f64 / window.as_secs_f64();
    println!(
        "throughput, concurrency 16: {http_rate:.0} runs/s ({} errors) vs bare clone 7 namespaces+exec+wait on {cores} cores {bare_rate:.0}/s = {:.0}%   (target >= 80%, zero errors)",
        errors.load(Ordering::Relaxed),
        100.0 * http_rate / bare_rate
    );
    print_server_cost(
        "trivial runs, concurrency 16",
        &spent_before,
        &spent,
        http_done,
    );

    // Server memory across many runs.
    let before = rss_kb(pid);
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (next, url) = (next.clone(), url.clone());
            std::thread::spawn(move || {
                let a = agent();
                while next.fetch_add(1, Ordering::Relaxed) < runs {
                    let (code, body) = post(&a, &url, trivial);
                    assert_eq!(code, 200, "{body}");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kb(pid);
    println!(
        "server RSS across {runs} runs: {:.1} MB -> {:.1} MB",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );

    println!("containers: {}", recycling_counters(&base));

    // SAFETY: signalling our own child.
    unsafe { libc::kill(warmbox_testkit::pid_of(&child), libc::SIGTERM) };
    let _ = child.wait();
    for c in ["memory", "pids", "cpu", "cpuacct"] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{c}/warmbox-bench-service"));
    }
}
