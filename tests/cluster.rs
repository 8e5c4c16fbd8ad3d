//! Several `warmbox serve` nodes on one PostgreSQL job store (a private PostgreSQL server
//! of the test's own, on loopback): any node answers for any job, a node killed mid-run
//! has its jobs run again elsewhere, and an outage of the store refuses submissions with
//! a clear 503 and loses nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::server::*;
use serde_json::{json, Value};
use warmbox_testkit::postgres::Instance;

// uid blocks (1024 ids each) outside the range `warmbox_testkit::uid_base()` hashes test
// binaries into, and apart from the other service tests'.
const UID_SHARE: [u32; 3] = [5_100_000, 5_102_048, 5_104_096];
const UID_KILL: [u32; 3] = [5_106_144, 5_108_192, 5_110_240];
const UID_OUTAGE: [u32; 2] = [5_112_288, 5_114_336];

/// A node named `name` on database `db` of `pg`, with `extra` flags.
fn node(pg: &Instance, db: &str, name: &str, uid: u32, extra: &[&str]) -> Server {
    let url = pg.url(db);
    let parent = format!("warmbox-test-cluster-{name}");
    let mut flags = vec![
        "--jobs-db",
        url.as_str(),
        "--node-name",
        name,
        "--callback-allow-private",
    ];
    flags.extend_from_slice(extra);
    start(&parent, uid, &flags)
}

fn submit(s: &Server, body: Value) -> String {
    let (status, v) = call("POST", &format!("{}/v1/jobs", s.base), Some(body));
    assert_eq!(status, 202, "{v}");
    v["id"].as_str().expect("id").to_string()
}

fn job(s: &Server, id: &str) -> Value {
    let (status, v) = call("GET", &format!("{}/v1/jobs/{id}", s.base), None);
    assert_eq!(status, 200, "{v}");
    v
}

/// Polls job `id` on `s` until it is `done` (within `secs`).
fn done(s: &Server, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = job(s, id);
        if v["status"] == "done" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not done within {secs} s: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A gauge of `/metrics` on `s` (the whole line's name with labels).
fn metric(s: &Server, name: &str) -> u64 {
    let (_, text) = get(s, "/metrics");
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
        .parse()
        .expect("a count")
}

/// The node name a job's `node` names (without the suffix of the node's start).
fn node_name(v: &Value) -> String {
    let full = v["node"].as_str().unwrap_or_else(|| panic!("no node: {v}"));
    full.rsplit_once('-').expect("name-suffix").0.to_string()
}

#[test]
fn three_nodes_answer_for_each_others_jobs_and_run_each_once() {
    if !root_or_skip() {
        return;
    }
    let Some(pg) = Instance::start() else { return };
    pg.create_db("share");
    let names = ["share-a", "share-b", "share-c"];
    let nodes: Vec<Server> = names
        .iter()
        .zip(UID_SHARE)
        .map(|(name, uid)| node(&pg, "share", name, uid, &[]))
        .collect();

    // 200 jobs and 200 Judge0 submissions, round-robin over the nodes.
    let mut jobs = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..200 {
        let s = &nodes[i % 3];
        jobs.push(submit(
            s,
            json!({"profile": "bash", "cmd": ["/bin/echo", format!("job {i}")]}),
        ));
        let (status, v) = call(
            "POST",
            &format!("{}/submissions?base64_encoded=false&wait=false", s.base),
            Some(json!({"language_id": 46, "source_code": format!("echo sub {i}")})),
        );
        assert_eq!(status, 201, "{v}");
        tokens.push(v["token"].as_str().expect("token").to_string());
    }

    // Each read back through another node than the one it was submitted to.
    let mut ran_on: BTreeMap<String, usize> = BTreeMap::new();
    for (i, id) in jobs.iter().enumerate() {
        let v = done(&nodes[(i + 1) % 3], id, 120);
        assert_eq!(v["result"]["run"]["stdout"], format!("job {i}\n"), "{v}");
        // Claimed once: stored once.
        assert_eq!(v["attempts"], 1, "{v}");
        *ran_on.entry(node_name(&v)).or_default() += 1;
    }
    for (i, token) in tokens.iter().enumerate() {
        let s = &nodes[(i + 2) % 3];
        let deadline = Instant::now() + Duration::from_secs(120);
        let v = loop {
            let (status, v) = call(
                "GET",
                &format!(
                    "{}/submissions/{token}?base64_encoded=false&fields=stdout,status",
                    s.base
                ),
                None,
            );
            assert_eq!(status, 200, "{v}");
            if v["status"]["id"].as_u64().is_some_and(|id| id > 2) {
                break v;
            }
            assert!(Instant::now() < deadline, "submission {token}: {v}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(
            v,
            json!({"stdout": format!("sub {i}\n"), "status": {"id": 3, "description": "Accepted"}})
        );
    }
    // A batch read names submissions made on every node.
    let some: Vec<&str> = tokens.iter().take(6).map(String::as_str).collect();
    let (status, v) = call(
        "GET",
        &format!(
            "{}/submissions/batch?tokens={}&base64_encoded=false&fields=stdout",
            nodes[0].base,
            some.join(",")
        ),
        None,
    );
    assert_eq!(status, 200, "{v}");
    let outs: Vec<Value> = v["submissions"]
        .as_array()
        .expect("submissions")
        .iter()
        .map(|s| s["stdout"].clone())
        .collect();
    assert_eq!(
        outs,
        (0..6)
            .map(|i| json!(format!("sub {i}\n")))
            .collect::<Vec<_>>()
    );

    // Every node ran jobs, and every node counts all 400 as done.
    assert_eq!(ran_on.values().sum::<usize>(), 200, "{ran_on:?}");
    assert!(ran_on.len() >= 2, "jobs ran on {ran_on:?}");
    for s in &nodes {
        assert_eq!(metric(s, "warmbox_jobs{status=\"done\"}"), 400);
        assert_eq!(metric(s, "warmbox_jobs{status=\"queued\"}"), 0);
        assert_eq!(metric(s, "warmbox_job_store_up"), 1);
    }
    for s in nodes {
        stop(s);
    }
}

#[test]
fn jobs_of_a_killed_node_run_again_on_the_others_and_are_called_back_once() {
    if !root_or_skip() {
        return;
    }
    let Some(pg) = Instance::start() else { return };
    pg.create_db("kill");
    let lease = ["--job-lease-secs", "3", "--max-running", "2"];
    let (url, hooks) = hook_listener(200);
    // Node a alone first: it claims two jobs (its two places) and starts them.
    let a = node(&pg, "kill", "kill-a", UID_KILL[0], &lease);
    let ids: Vec<String> = (0..6)
        .map(|i| {
            submit(
                &a,
                json!({"profile": "bash", "cmd": ["/bin/sh", "-c", format!("sleep 4; echo {i}")],
                       "callback_url": url}),
            )
        })
        .collect();
    wait_until("a runs two jobs", 30, || {
        ids.iter()
            .filter(|id| job(&a, id)["status"] == "running")
            .count()
            == 2
    });
    let on_a: BTreeSet<String> = ids
        .iter()
        .filter(|id| job(&a, id)["status"] == "running")
        .cloned()
        .collect();
    let b = node(&pg, "kill", "kill-b", UID_KILL[1], &lease);
    let c = node(&pg, "kill", "kill-c", UID_KILL[2], &lease);
    // Starting nodes take no claim of a live one.
    for id in &on_a {
        let v = job(&c, id);
        assert_eq!(
            (v["status"].as_str(), node_name(&v), v["attempts"].as_u64()),
            (Some("running"), "kill-a".to_string(), Some(1)),
            "{v}"
        );
    }
    // a dies mid-run, holding its claims.
    let mut a = a;
    a.child.kill().expect("SIGKILL");
    a.child.wait().expect("reap");
    let killed = Instant::now();

    for (i, id) in ids.iter().enumerate() {
        let v = done(&b, id, 60);
        assert_eq!(v["result"]["run"]["stdout"], format!("{i}\n"), "{v}");
        let again = on_a.contains(id);
        assert_eq!(v["attempts"], if again { 2 } else { 1 }, "{v}");
        assert_ne!(node_name(&v), "kill-a", "{v}");
    }
    // Within the lease, a maintenance round and the 4 s jobs themselves, and some slack.
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}");

    // Every job called back exactly once, with the key naming the run that made it.
    let mut called: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while called.len() < ids.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let h = hooks.recv_timeout(left).expect("every callback");
        let id = h.body["id"].as_str().expect("id").to_string();
        assert_eq!(h.body["status"], "done", "{}", h.body);
        let attempts = h.body["attempts"].as_u64().expect("attempts");
        let key = h.header("idempotency-key").expect("Idempotency-Key");
        assert_eq!(key, format!("{id}:{attempts}"));
        assert!(
            called.insert(id, (key, attempts)).is_none(),
            "called back twice"
        );
    }
    assert_eq!(
        called.keys().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert!(
        hooks.recv_timeout(Duration::from_secs(2)).is_err(),
        "a callback came twice"
    );

    stop(b);
    stop(c);
    // Node a starts again on its uid block and removes what it left; then stops cleanly.
    let a = node(&pg, "kill", "kill-a", UID_KILL[0], &lease);
    stop(a);
}

#[test]
fn an_outage_of_the_store_is_a_clear_503_and_loses_nothing() {
    if !root_or_skip() {
        return;
    }
    let Some(pg) = Instance::start() else { return };
    pg.create_db("outage");
    let nodes: Vec<Server> = ["outage-a", "outage-b"]
        .iter()
        .zip(UID_OUTAGE)
        .map(|(name, uid)| node(&pg, "outage", name, uid, &[]))
        .collect();
    let body = |i: usize| json!({"profile": "bash", "cmd": ["/bin/sh", "-c", format!("sleep 0.2; echo {i}")]});

    let mut accepted: Vec<(usize, String)> = Vec::new();
    let mut refused = 0;
    let mut i = 0;
    let post = |i: usize, accepted: &mut Vec<(usize, String)>| -> u16 {
        let s = &nodes[i % 2];
        let (status, v) = call("POST", &format!("{}/v1/jobs", s.base), Some(body(i)));
        match status {
            202 => accepted.push((i, v["id"].as_str().expect("id").to_string())),
            503 => {
                assert_eq!(v["error"]["code"], "job_store_unavailable", "{v}");
                let m = v["error"]["message"].as_str().expect("message");
                assert!(
                    m.starts_with("the job store (PostgreSQL 127.0.0.1:")
                        && m.ends_with("; nothing was changed, retry shortly"),
                    "{m}"
                );
            }
            _ => panic!("{status} {v}"),
        }
        status
    };
    // Load before the outage.
    for _ in 0..20 {
        assert_eq!(post(i, &mut accepted), 202);
        i += 1;
    }
    pg.stop();
    let down = Instant::now();
    // Submissions now are refused, with the store named, and the nodes are not ready.
    while down.elapsed() < Duration::from_secs(3) {
        if post(i, &mut accepted) == 503 {
            refused += 1;
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        refused > 0,
        "no submission was refused while the store was down"
    );
    for s in &nodes {
        let (status, v) = get(s, "/readyz");
        assert_eq!(status, 503, "{v}");
        assert!(v.contains("the job store cannot be reached"), "{v}");
    }
    pg.start_again();
    // Service resumes by itself.
    let back = Instant::now();
    loop {
        let status = post(i, &mut accepted);
        i += 1;
        if status == 202 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "still refused after the store returned"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..20 {
        assert_eq!(post(i, &mut accepted), 202);
        i += 1;
    }
    for s in &nodes {
        wait_until("ready again", 15, || get(s, "/readyz").0 == 200);
    }
    // Nothing accepted is lost: every job ends done with its own output.
    for (n, id) in &accepted {
        let v = done(&nodes[(n + 1) % 2], id, 120);
        assert_eq!(v["result"]["run"]["stdout"], format!("{n}\n"), "{v}");
    }
    for s in nodes {
        stop(s);
    }
}
