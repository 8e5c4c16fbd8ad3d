//! The job store and the cluster: what the store costs a job (claim + result + read, the
//! store's calls alone, no container), on redb and on PostgreSQL, and jobs/s through one
//! node on redb against three nodes on one PostgreSQL, in the same run. PostgreSQL is a
//! private server on loopback (warmbox-testkit), durable (fsync on, as redb's commits are).
//!
//! `WARMBOX_BENCH_JOBS` (default 2000): jobs per figure.

use std::time::{Duration, Instant};

use serde_json::json;
use warmbox::queue::store::postgres::PgStore;
use warmbox::queue::store::redb::RedbStore;
use warmbox::queue::store::{now_ms, JobRecord, JobStore};
use warmbox_testkit::bench;
use warmbox_testkit::postgres::Instance;

fn main() {
    if !bench::root_or_skip("cluster") {
        return;
    }
    let jobs = bench::count_from_env("WARMBOX_BENCH_JOBS", 2000);
    let Some(pg) = Instance::start() else {
        println!("cluster bench: SKIPPED, no PostgreSQL server binaries");
        return;
    };
    // Durable, as redb's every commit is (the test instances are not).
    pg.psql(&[
        "ALTER SYSTEM SET fsync = on",
        "ALTER SYSTEM SET synchronous_commit = on",
        "ALTER SYSTEM SET full_page_writes = on",
        "SELECT pg_reload_conf()",
    ]);
    println!("warmbox cluster bench: {jobs} jobs per figure, same run");

    println!("\n== the store's calls per job (insert, claim, finish, get; one at a time)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let redb = RedbStore::open(&dir.path().join("jobs.redb")).expect("redb");
    store_calls("redb", &rt, &redb, jobs, None);
    pg.create_db("bench_store");
    let store = rt
        .block_on(PgStore::connect(&pg.url("bench_store")))
        .expect("PostgreSQL");
    store_calls("PostgreSQL", &rt, &store, jobs, pg.pid());
    drop(store);
    drop(rt);

    println!("\n== jobs/s through the HTTP API: bash /bin/true, batches of 100");
    let one = {
        let (child, base) = bench::start_server_with("cluster-redb", 940_000, &[]);
        let took = through(&[base.as_str()], jobs);
        stop(child);
        took
    };
    println!(
        "one node, redb:          {:>7.1} jobs/s ({:.3} s)",
        per_sec(jobs, one),
        one.as_secs_f64()
    );
    pg.create_db("bench_cluster");
    let url = pg.url("bench_cluster");
    let nodes: Vec<(std::process::Child, String)> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let uid = 942_048 + 2048 * u32::try_from(i).expect("three");
            bench::start_server_with(
                &format!("cluster-{name}"),
                uid,
                &["--jobs-db", &url, "--node-name", name],
            )
        })
        .collect();
    let bases: Vec<&str> = nodes.iter().map(|(_, b)| b.as_str()).collect();
    let pg_cpu_before = pg.pid().map(tree_cpu);
    let three = through(&bases, jobs);
    let pg_cpu = pg
        .pid()
        .map(tree_cpu)
        .zip(pg_cpu_before)
        .map(|(after, before)| after - before);
    println!(
        "three nodes, PostgreSQL: {:>7.1} jobs/s ({:.3} s) = {:.2}x one node on redb",
        per_sec(jobs, three),
        three.as_secs_f64(),
        one.as_secs_f64() / three.as_secs_f64()
    );
    if let Some(cpu) = pg_cpu {
        println!(
            "  PostgreSQL server CPU meanwhile: {:.3} ms per job (all three nodes' store calls, \
             polls and notifications)",
            cpu.as_secs_f64() * 1000.0 / jobs as f64
        );
    }
    for (child, _) in nodes {
        stop(child);
    }
    println!(
        "\n(the three nodes share this machine's {} CPUs: they show the cluster's overhead, \
         not more capacity)",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
}

/// Runs `n` jobs' store calls on `store`, one call at a time, in phases (every insert,
/// then every claim, every finish, every get), and prints each phase's wall time and CPU
/// (this process's, and the PostgreSQL server's when `server` is its pid) per job, and
/// the sum of claim + finish + get: what the store costs a job once it is accepted.
fn store_calls(
    label: &str,
    rt: &tokio::runtime::Runtime,
    store: &dyn JobStore,
    n: usize,
    server: Option<i32>,
) {
    let request = json!({"profile": "bash", "cmd": ["/bin/true"]});
    let result = json!({"status": "ok", "run": {"status": "ok", "exit_code": 0, "stdout": ""}});
    let records: Vec<JobRecord> = (0..n)
        .map(|_| JobRecord::queued(uuid::Uuid::new_v4(), request.clone(), now_ms()))
        .collect();
    let ids: Vec<uuid::Uuid> = records.iter().map(|r| r.id).collect();
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
    // (wall, CPU here, CPU in the server) of one phase.
    let phase = |name: &str, f: &dyn Fn()| -> (Duration, Duration, Duration) {
        let cpu0 = self_cpu();
        let server0 = server.map(tree_cpu);
        let t = Instant::now();
        f();
        let wall = t.elapsed();
        let cpu = self_cpu() - cpu0;
        let server_cpu = server
            .map(tree_cpu)
            .zip(server0)
            .map_or(Duration::ZERO, |(after, before)| after - before);
        println!(
            "{label:<11} {name:<7} {:.3} ms wall, {:.3} ms CPU here + {:.3} ms in the server",
            per(wall),
            per(cpu),
            per(server_cpu)
        );
        (wall, cpu, server_cpu)
    };
    phase("insert", &|| {
        rt.block_on(async {
            for r in &records {
                store.insert(vec![r.clone()]).await.expect("insert");
            }
        });
    });
    let attempts = std::sync::Mutex::new(Vec::with_capacity(n));
    let claim = phase("claim", &|| {
        rt.block_on(async {
            for _ in 0..n {
                let now = now_ms();
                let claimed = store
                    .claim("bench", now, now + 30_000)
                    .await
                    .expect("claim")
                    .expect("a queued job");
                attempts
                    .lock()
                    .expect("lock")
                    .push((claimed.id, claimed.attempts));
            }
        });
    });
    let finish = phase("finish", &|| {
        rt.block_on(async {
            let claimed = attempts.lock().expect("lock").clone();
            for (id, attempt) in &claimed {
                store
                    .finish(*id, *attempt, "bench", result.clone(), now_ms())
                    .await
                    .expect("finish")
                    .expect("still claimed");
            }
        });
    });
    let get = phase("get", &|| {
        rt.block_on(async {
            for id in &ids {
                store.get(*id).await.expect("get").expect("the job");
            }
        });
    });
    let sum =
        |f: fn(&(Duration, Duration, Duration)) -> Duration| per(f(&claim) + f(&finish) + f(&get));
    println!(
        "{label:<11} claim + finish + get: {:.3} ms wall, {:.3} ms CPU per job ({:.3} here + {:.3} in the server)",
        sum(|p| p.0),
        sum(|p| p.1) + sum(|p| p.2),
        sum(|p| p.1),
        sum(|p| p.2)
    );
}

/// Submits `n` jobs in batches of 100 round-robin over `bases`, and waits until the
/// store counts them all done; the time from the first submission.
fn through(bases: &[&str], n: usize) -> Duration {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let done_before = done(&agent, bases[0]);
    let t = Instant::now();
    let mut left = n;
    let mut i = 0;
    while left > 0 {
        let batch = left.min(100);
        let body = json!({"jobs": vec![json!({"profile": "bash", "cmd": ["/bin/true"]}); batch]});
        let mut r = agent
            .post(format!("{}/v1/jobs/batch", bases[i % bases.len()]))
            .send(body.to_string())
            .expect("submit");
        assert_eq!(
            r.status().as_u16(),
            202,
            "{:?}",
            r.body_mut().read_to_string()
        );
        left -= batch;
        i += 1;
    }
    let want = done_before + u64::try_from(n).expect("fits");
    while done(&agent, bases[0]) < want {
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "jobs not done in 10 min"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.elapsed()
}

/// `warmbox_jobs{status="done"}` of the node at `base`.
fn done(agent: &ureq::Agent, base: &str) -> u64 {
    let text = agent
        .get(format!("{base}/metrics"))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("warmbox_jobs{status=\"done\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn pid_of(child: &std::process::Child) -> i32 {
    i32::try_from(child.id()).expect("a pid")
}

/// SIGTERM, then wait.
fn stop(mut child: std::process::Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid_of(&child)),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

/// This process's CPU time (user + system, all threads).
fn self_cpu() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

/// CPU time (user + system) of `pid` and its live children, from /proc.
fn tree_cpu(pid: i32) -> Duration {
    let ticks = |p: i32| -> u64 {
        warmbox_testkit::stat_fields(p).map_or(0, |f| {
            // stat fields after the command: state is [0], utime [11], stime [12].
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
    };
    let total: u64 = std::iter::once(pid)
        .chain(warmbox_testkit::children(pid))
        .map(ticks)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    Duration::from_micros(total * 1_000_000 / hz.max(1))
}
