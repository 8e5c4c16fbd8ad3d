//! Judging through HTTP on loopback, beside baselines measured in the same run: a 50-test
//! C++ submission of a trivial echo problem, its 50 tests against their target, 50 ×
//! (bare run of the same binary) × 1.5 / CPUs, and against the same work done as 50
//! separate `/v1/run` calls that each compile (at concurrency = CPUs). Twice: with the
//! default recycling and with `--recycle-runs 1`.
//!
//! Needs root and a release build: `cargo build --release && cargo bench --bench judging`
//! (`WARMBOX_BENCH_ROUNDS` sets the rounds, default 5; each figure is the median).

use std::ffi::CString;
use std::process::Command;
use std::time::{Duration, Instant};
use warmbox_testkit::bench::{self, fork_exec_wait_stdin};

use serde_json::{json, Value};

const TESTS: usize = 50;

const ECHO: &str = "#include <iostream>\n#include <string>\n\
int main() { std::string s; std::getline(std::cin, s); std::cout << s << '\\n'; }\n";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Value {
    let mut r = agent.post(url).send(body.to_string()).expect("HTTP");
    assert_eq!(r.status().as_u16(), 200);
    serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON")
}

/// The echo program, made unique by `tag` so that the compile cache does not know it.
fn source(tag: &str) -> String {
    format!("// {tag}\n{ECHO}")
}

fn main() {
    if !bench::root_or_skip("judging") {
        return;
    }
    let rounds: usize = bench::count_from_env("WARMBOX_BENCH_ROUNDS", 5);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Baseline: the same program compiled on the host, fork + exec + wait with its input.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("main.cpp");
    std::fs::write(&src, ECHO).expect("write source");
    let bin = dir.path().join("echo");
    let st = Command::new("/usr/bin/g++")
        .args(["-O2", "-std=gnu++17", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("g++");
    assert!(st.success());
    let input = dir.path().join("input");
    std::fs::write(&input, "7\n").expect("write input");
    let c = |p: &std::path::Path| CString::new(p.to_str().expect("path")).expect("path");
    let (bin_c, input_c) = (c(&bin), c(&input));
    for _ in 0..20 {
        fork_exec_wait_stdin(&bin_c, &input_c);
    }
    let bare_ms = median(
        (0..200)
            .map(|_| fork_exec_wait_stdin(&bin_c, &input_c).as_secs_f64() * 1e3)
            .collect(),
    );

    println!("judging bench ({rounds} rounds, medians, {cpus} CPUs)");
    println!("  bare fork+exec+wait of the echo binary:        {bare_ms:8.3} ms");
    for (label, args) in [
        ("recycle_runs = 100 (default)", &[][..]),
        ("recycle_runs = 1", &["--recycle-runs", "1"][..]),
    ] {
        println!("== {label}");
        measure(rounds, cpus, bare_ms, args);
    }
}

/// One pass of the figures, against a server started with `args`.
fn measure(rounds: usize, cpus: usize, bare_ms: f64, args: &[&str]) {
    let (mut child, base) = bench::start_server_with("judging", 5_100_000, args);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    let run_url = format!("{base}/v1/run");
    let tests: Vec<Value> = (0..TESTS)
        .map(|i| json!({"stdin": format!("{i}\n"), "expected_stdout": format!("{i}\n")}))
        .collect();
    let submission = |tag: &str| {
        json!({"profile": "cpp", "files": [{"name": "main.cpp", "content": source(tag)}],
               "tests": tests})
    };
    // Warm-up: one of each kind.
    post(&agent, &run_url, &submission("warm-up"));

    let (mut total, mut compile, mut cached, mut separate) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let tag = format!("{}-{round}", uuid::Uuid::new_v4());
        let body = submission(&tag);
        let t = Instant::now();
        let r = post(&agent, &run_url, &body);
        total.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r["status"], "accepted", "{r}");
        assert_eq!(r["summary"]["accepted"], TESTS);
        assert_eq!(r["compile"]["cached"], false);
        compile.push(
            r["compile"]["usage"]["wall_ms"]
                .as_f64()
                .expect("compile wall"),
        );

        let t = Instant::now();
        let r = post(&agent, &run_url, &body);
        cached.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r["compile"]["cached"], true);

        // The same work as 50 separate requests, each compiling its own copy.
        let t = Instant::now();
        std::thread::scope(|s| {
            for w in 0..cpus {
                let (agent, run_url, tag) = (&agent, &run_url, &tag);
                s.spawn(move || {
                    for i in (w..TESTS).step_by(cpus) {
                        let body = json!({"profile": "cpp",
                            "files": [{"name": "main.cpp", "content": source(&format!("{tag}-{i}"))}],
                            "stdin": format!("{i}\n")});
                        let r = post(agent, run_url, &body);
                        assert_eq!(r["run"]["stdout"], format!("{i}\n"), "{r}");
                    }
                });
            }
        });
        separate.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // SAFETY: kill with integer arguments, on our child.
    unsafe { libc::kill(warmbox_testkit::pid_of(&child), libc::SIGTERM) };
    let _ = child.wait();

    let (total, compile, cached, separate) = (
        median(total),
        median(compile),
        median(cached),
        median(separate),
    );
    let tests_target = TESTS as f64 * bare_ms * 1.5 / cpus as f64;
    println!("  compile step (wall, in the sandbox):           {compile:8.1} ms");
    println!("  50-test submission, total:                     {total:8.1} ms");
    println!(
        "  of which the 50 tests:                         {:8.1} ms = {:.2} ms per test   \
         target {tests_target:.1} ms (50 × bare × 1.5 / {cpus}) → {}",
        total - compile,
        (total - compile) / TESTS as f64,
        if total - compile <= tests_target {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("  the same submission again (compile cached):   {cached:8.1} ms");
    println!(
        "  50 separate /v1/run calls, each compiling:     {separate:8.1} ms ({:.1} × the submission)",
        separate / total
    );
}
