//! Async jobs through a real `warmbox serve`: the life cycle with a callback to a local
//! HTTP listener, batches, cancellation of queued and running jobs, failed callbacks,
//! retention, bad input, and jobs queued before a crash running after the restart.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::server::*;
use serde_json::{json, Value};

// uid blocks outside the range `warmbox_testkit::uid_base()` hashes test binaries into.
const UID_LIFECYCLE: u32 = 5_000_000;
const UID_CANCEL: u32 = 5_002_048;
const UID_RESTART: u32 = 5_004_096;
const UID_CALLBACK: u32 = 5_006_144;
const UID_SHUTDOWN: u32 = 5_012_288;
const UID_HANGUP: u32 = 5_014_336;

fn submit(s: &Server, body: Value) -> String {
    let (status, v) = call("POST", &format!("{}/v1/jobs", s.base), Some(body));
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["status"], "queued");
    v["id"].as_str().expect("id").to_string()
}

fn job(s: &Server, id: &str) -> (u16, Value) {
    call("GET", &format!("{}/v1/jobs/{id}", s.base), None)
}

/// Polls job `id` until its status is `want`.
fn wait_for(s: &Server, id: &str, want: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, v) = job(s, id);
        assert_eq!(status, 200, "{v}");
        if v["status"] == want {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not {want} within {secs} s: {v}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Jobs in the store with `status`, from `/metrics`.
fn jobs_count(s: &Server, status: &str) -> u64 {
    let (_, metrics) = get(s, "/metrics");
    let prefix = format!("warmbox_jobs{{status=\"{status}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{prefix} not in\n{metrics}"))
        .parse()
        .expect("a count")
}

fn echo_job(text: &str) -> Value {
    json!({"profile": "bash", "cmd": ["/bin/echo", text]})
}

#[test]
fn a_job_runs_and_its_result_is_kept_and_called_back() {
    if !root_or_skip() {
        return;
    }
    let parent = "warmbox-test-jobs-life";
    let s = start_fresh(
        parent,
        UID_LIFECYCLE,
        // Long enough for every check below on the first job, which must still be kept.
        &["--job-retention-secs", "10", "--callback-allow-private"],
    );
    let (url, calls) = listener(200);
    let mut body = echo_job("hello");
    body["callback_url"] = json!(url);
    let id = submit(&s, body);
    let done = wait_for(&s, &id, "done", 60);
    assert_eq!(done["id"], json!(id));
    assert_eq!(done["result"]["status"], "ok");
    assert_eq!(done["result"]["run"]["stdout"], "hello\n");
    // Each time is set (a null would compare equal to a null) and in order.
    let ms = |k: &str| done[k].as_u64().unwrap_or_else(|| panic!("{k} in {done}"));
    assert!(ms("created_ms") <= ms("started_ms") && ms("started_ms") <= ms("finished_ms"));

    let (_, called) = calls
        .recv_timeout(Duration::from_secs(30))
        .expect("callback");
    assert_eq!(called["id"], json!(id));
    assert_eq!(called["status"], "done");
    assert_eq!(called["result"], done["result"]);
    wait_until("the delivery recorded", 10, || {
        job(&s, &id).1["callback"]
            == json!({"url": url, "attempts": 1, "delivered": true, "last_error": null})
    });

    // A batch: all accepted, each run, in its own job.
    let (status, v) = call(
        "POST",
        &format!("{}/v1/jobs/batch", s.base),
        Some(json!({"jobs": [echo_job("a"), echo_job("b"),
                              {"profile": "python3", "files": [{"name": "main.py", "content": "print(6*7)"}]}]})),
    );
    assert_eq!(status, 202, "{v}");
    let ids: Vec<String> = v["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let outs: Vec<Value> = ids
        .iter()
        .map(|id| wait_for(&s, id, "done", 60)["result"]["run"]["stdout"].clone())
        .collect();
    assert_eq!(outs, [json!("a\n"), json!("b\n"), json!("42\n")]);

    // The store's counts on /metrics.
    assert_eq!(
        (
            jobs_count(&s, "done"),
            jobs_count(&s, "queued"),
            jobs_count(&s, "running")
        ),
        (4, 0, 0)
    );

    // A batch with one bad job is refused whole, naming it.
    let (status, v) = call(
        "POST",
        &format!("{}/v1/jobs/batch", s.base),
        Some(json!({"jobs": [echo_job("a"), {"profile": "fortran77"}]})),
    );
    assert_eq!(status, 404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .starts_with("jobs[1].profile: unknown profile \"fortran77\""),
        "{v}"
    );

    // Bad input, each a clear 4xx.
    let (status, v) = job(&s, "not-a-uuid");
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (400, json!("invalid_request"))
    );
    let unknown = uuid::Uuid::new_v4();
    let (status, v) = job(&s, &unknown.to_string());
    assert_eq!(status, 404);
    assert_eq!(
        v["error"],
        json!({"code": "unknown_job", "message": format!("no job {unknown}: it never existed, or its result expired")})
    );
    let mut bad = echo_job("x");
    bad["callback_url"] = json!("ftp://example/x");
    let (status, v) = call("POST", &format!("{}/v1/jobs", s.base), Some(bad));
    assert_eq!(status, 400);
    assert_eq!(
        v["error"]["message"],
        "callback_url: \"ftp://example/x\" has scheme \"ftp\"; give an absolute http:// or https:// URL"
    );
    let (status, v) = call(
        "POST",
        &format!("{}/v1/jobs", s.base),
        Some(json!({"profile": "bash", "cmd": ["/bin/true"], "bogus": 1})),
    );
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (400, json!("invalid_json"))
    );
    let (status, v) = call("DELETE", &format!("{}/v1/jobs/{id}", s.base), None);
    assert_eq!(status, 409, "{v}");
    assert_eq!(
        v["error"]["message"],
        format!("job {id} is already done; only a queued or running job can be cancelled")
    );

    // Past its retention the job is gone.
    wait_until("the finished job removed", 40, || job(&s, &id).0 == 404);
    stop(s);
}

#[test]
fn queued_and_running_jobs_can_be_cancelled() {
    if !root_or_skip() {
        return;
    }
    let parent = "warmbox-test-jobs-cancel";
    // The settings file allows private callbacks; the flag, which wins, does not.
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = dir.path().join("warmbox.toml");
    std::fs::write(&settings, "callback_allow_private = true\n").expect("settings");
    let s = start_fresh(
        parent,
        UID_CANCEL,
        &[
            "--max-running",
            "1",
            "--config",
            settings.to_str().expect("utf-8"),
            "--callback-allow-private=false",
        ],
    );
    // Then a callback may not point into the server's own network.
    let mut private = echo_job("x");
    private["callback_url"] = json!("http://169.254.169.254/latest/meta-data");
    let (status, v) = call("POST", &format!("{}/v1/jobs", s.base), Some(private));
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        v["error"]["message"],
        "callback_url: \"http://169.254.169.254/latest/meta-data\" points at a loopback, \
         private or link-local address; callbacks go to public addresses (an operator may \
         allow private ones with --callback-allow-private)"
    );
    let sleeper =
        json!({"profile": "bash", "cmd": ["/bin/sleep", "30"], "limits": {"wall_ms": 60000}});
    let running = submit(&s, sleeper.clone());
    let queued = submit(&s, sleeper);
    wait_for(&s, &running, "running", 30);
    wait_until("the sleep running", 20, || {
        block_processes(UID_CANCEL)
            .iter()
            .any(|(_, _, n)| n == "sleep")
    });
    assert_eq!(job(&s, &queued).1["status"], "queued");

    let (status, v) = call("DELETE", &format!("{}/v1/jobs/{queued}", s.base), None);
    assert_eq!((status, v["status"].clone()), (200, json!("cancelled")));
    let (status, v) = call("DELETE", &format!("{}/v1/jobs/{running}", s.base), None);
    assert_eq!((status, v["status"].clone()), (200, json!("cancelled")));
    // The running job's container is killed and removed.
    wait_until("the cancelled job's processes gone", 20, || {
        !block_processes(UID_CANCEL)
            .iter()
            .any(|(_, _, n)| n == "sleep")
    });
    for id in [&running, &queued] {
        let v = job(&s, id).1;
        assert_eq!(
            (v["status"].clone(), v["result"].clone()),
            (json!("cancelled"), Value::Null)
        );
    }
    // Neither comes back to life: the place they held serves the next job.
    let next = submit(&s, echo_job("next"));
    assert_eq!(
        wait_for(&s, &next, "done", 60)["result"]["run"]["stdout"],
        "next\n"
    );
    assert_eq!(job(&s, &queued).1["status"], "cancelled");
    stop(s);
}

#[test]
fn jobs_queued_before_a_crash_run_after_the_restart() {
    if !root_or_skip() {
        return;
    }
    let parent = "warmbox-test-jobs-restart";
    let slow_retries = [
        "--max-running",
        "1",
        "--callback-allow-private",
        "--callback-attempts",
        "3",
        "--callback-backoff-ms",
        "600000",
    ];
    let mut a = start_fresh(parent, UID_RESTART, &slow_retries);
    // A finished job whose callback failed once and waits (10 min) for its retry.
    let (url, _calls) = listener(500);
    let mut body = echo_job("called");
    body["callback_url"] = json!(url);
    let called = submit(&a, body);
    wait_until("the first delivery recorded", 30, || {
        job(&a, &called).1["callback"]["attempts"] == 1
    });
    let first = submit(&a, json!({"profile": "bash", "cmd": ["/bin/sleep", "2"]}));
    let rest: Vec<String> = (0..3)
        .map(|i| submit(&a, echo_job(&format!("after {i}"))))
        .collect();
    wait_for(&a, &first, "running", 30);
    a.child.kill().expect("SIGKILL the server");
    a.child.wait().expect("reap the server");
    let killed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let killed_ms = u64::try_from(killed_ms).expect("milliseconds since 1970 fit in u64");

    let b = start(
        parent,
        UID_RESTART,
        &[
            "--max-running",
            "1",
            "--callback-allow-private",
            "--callback-attempts",
            "3",
            "--callback-backoff-ms",
            "20",
        ],
    );
    // The callback's retries go on after the restart, up to the attempts allowed.
    wait_until("the callback retried after the restart", 30, || {
        job(&b, &called).1["callback"]["attempts"] == 3
    });
    // The job that was running when the server died starts over, first.
    let v = wait_for(&b, &first, "done", 60);
    assert_eq!(v["result"]["status"], "ok", "{v}");
    assert!(
        v["started_ms"].as_u64().expect("started") >= killed_ms,
        "{v}"
    );
    assert!(
        v["result"]["run"]["usage"]["wall_ms"]
            .as_f64()
            .expect("wall")
            >= 2000.0
    );
    for (i, id) in rest.iter().enumerate() {
        let v = wait_for(&b, id, "done", 60);
        assert_eq!(v["result"]["run"]["stdout"], format!("after {i}\n"));
        assert!(
            v["started_ms"].as_u64().expect("started") >= killed_ms,
            "{v}"
        );
    }
    stop(b);
}

#[test]
fn a_callback_that_cannot_be_delivered_is_retried_then_recorded() {
    if !root_or_skip() {
        return;
    }
    let parent = "warmbox-test-jobs-callback";
    let s = start_fresh(
        parent,
        UID_CALLBACK,
        &[
            "--callback-attempts",
            "3",
            "--callback-backoff-ms",
            "20",
            "--callback-allow-private",
        ],
    );
    // A port nobody listens on, then a listener that answers 500.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/hook", l.local_addr().expect("addr"))
    };
    let mut body = echo_job("x");
    body["callback_url"] = json!(closed);
    let id = submit(&s, body);
    wait_until("three attempts recorded", 30, || {
        job(&s, &id).1["callback"]["attempts"] == 3
    });
    let cb = job(&s, &id).1["callback"].clone();
    assert_eq!(cb["delivered"], false);
    let err = cb["last_error"].as_str().expect("last_error");
    assert!(err.starts_with("could not deliver: "), "{err}");
    assert!(err.contains("Connection refused (os error 111)"), "{err}");

    let (url, calls) = listener(500);
    let mut body = echo_job("y");
    body["callback_url"] = json!(url);
    let id = submit(&s, body);
    for _ in 0..3 {
        calls
            .recv_timeout(Duration::from_secs(30))
            .expect("an attempt");
    }
    wait_until("three attempts recorded", 30, || {
        job(&s, &id).1["callback"]["attempts"] == 3
    });
    assert_eq!(
        job(&s, &id).1["callback"],
        json!({"url": url, "attempts": 3, "delivered": false,
               "last_error": "the callback answered 500 Internal Server Error"})
    );
    assert!(
        calls.recv_timeout(Duration::from_millis(300)).is_err(),
        "no fourth attempt"
    );
    stop(s);
}

#[test]
fn a_job_still_running_past_the_shutdown_grace_runs_again_at_the_next_start() {
    if !root_or_skip() {
        return;
    }
    let parent = "warmbox-test-jobs-shutdown";
    let flags = ["--max-running", "1", "--shutdown-grace-secs", "1"];
    let a = start_fresh(parent, UID_SHUTDOWN, &flags);
    let id = submit(
        &a,
        json!({"profile": "bash", "cmd": ["/bin/sleep", "30"], "limits": {"wall_ms": 60000}}),
    );
    let first = wait_for(&a, &id, "running", 30);
    // SIGTERM: the grace period passes, the job's container is removed, nothing is left.
    stop(a);

    let b = start(parent, UID_SHUTDOWN, &flags);
    let again = wait_for(&b, &id, "running", 30);
    assert!(
        again["started_ms"].as_u64().expect("started again")
            > first["started_ms"].as_u64().expect("started first"),
        "{first} then {again}"
    );
    let (status, v) = call("DELETE", &format!("{}/v1/jobs/{id}", b.base), None);
    assert_eq!((status, v["status"].clone()), (200, json!("cancelled")));
    stop(b);
}

#[test]
fn a_cancelled_queued_job_is_called_back_and_clients_that_hang_up_lose_nothing() {
    if !root_or_skip() {
        return;
    }
    let parent = "warmbox-test-jobs-hangup";
    let s = start_fresh(
        parent,
        UID_HANGUP,
        &[
            "--max-running",
            "1",
            "--max-jobs-queued",
            "4",
            "--callback-allow-private",
        ],
    );
    // A batch larger than the queue could ever hold is the client's to split: 400.
    let five: Vec<Value> = (0..5).map(|i| echo_job(&i.to_string())).collect();
    let (status, v) = call(
        "POST",
        &format!("{}/v1/jobs/batch", s.base),
        Some(json!({ "jobs": five })),
    );
    assert_eq!(
        (status, v["error"]["message"].clone()),
        (
            400,
            json!(
                "5 jobs at once, but the job queue holds at most 4; send them in smaller batches"
            )
        )
    );
    // The only place is held by a synchronous run: a job waits "queued", without a start.
    let base = s.base.clone();
    let sync = std::thread::spawn(move || {
        call(
            "POST",
            &format!("{base}/v1/run"),
            Some(json!({"profile": "bash", "cmd": ["/bin/sleep", "5"]})),
        )
    });
    wait_until("the sync run's sleep", 20, || {
        block_processes(UID_HANGUP)
            .iter()
            .any(|(_, _, n)| n == "sleep")
    });
    let waiting = submit(&s, echo_job("after"));
    std::thread::sleep(Duration::from_millis(300));
    let v = job(&s, &waiting).1;
    assert_eq!(
        (v["status"].clone(), v["started_ms"].clone()),
        (json!("queued"), Value::Null),
        "{v}"
    );
    // A queued job cancelled is called back at once, not at the next start.
    let (url, calls) = listener(200);
    let mut body = echo_job("never");
    body["callback_url"] = json!(url);
    let cancelled = submit(&s, body);
    let (status, v) = call("DELETE", &format!("{}/v1/jobs/{cancelled}", s.base), None);
    assert_eq!((status, v["status"].clone()), (200, json!("cancelled")));
    let (_, called) = calls
        .recv_timeout(Duration::from_secs(20))
        .expect("the cancelled job's callback");
    assert_eq!(
        (called["id"].clone(), called["status"].clone()),
        (json!(cancelled), json!("cancelled"))
    );
    assert_eq!(sync.join().expect("sync run").0, 200);
    let v = wait_for(&s, &waiting, "done", 60);
    assert_eq!(v["result"]["run"]["stdout"], "after\n");

    // Clients that send a job and hang up at once: whatever was accepted runs, and the
    // queue's places all come back.
    for _ in 0..40 {
        use std::io::Write;
        let mut c =
            std::net::TcpStream::connect(s.base.trim_start_matches("http://")).expect("connect");
        let body = echo_job("dropped").to_string();
        let _ = write!(
            c,
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        drop(c);
    }
    // The server reads the hung-up requests in its own time, and a place is taken a moment
    // before its job is in the store: wait until the jobs are at rest (none queued or
    // running, and no new one) for a second.
    let mut seen = (u64::MAX, u64::MAX);
    let mut since = Instant::now();
    wait_until("every accepted job run, and no new one", 60, || {
        let unfinished = jobs_count(&s, "queued") + jobs_count(&s, "running");
        let now = (
            unfinished,
            unfinished + jobs_count(&s, "done") + jobs_count(&s, "cancelled"),
        );
        if now != seen {
            (seen, since) = (now, Instant::now());
        }
        unfinished == 0 && since.elapsed() >= Duration::from_secs(1)
    });
    let last: Vec<String> = (0..4)
        .map(|i| submit(&s, echo_job(&i.to_string())))
        .collect();
    for (i, id) in last.iter().enumerate() {
        assert_eq!(
            wait_for(&s, id, "done", 60)["result"]["run"]["stdout"],
            format!("{i}\n")
        );
    }
    stop(s);
}
