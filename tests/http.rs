//! The HTTP service, in-process on loopback over a private engine and pool: every
//! endpoint, every error, tokens, overload, readiness.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warmbox::api::{self, AppState, ServiceConfig};
use warmbox_runner::admission::Admission;
use warmbox_sandbox::pool::Pool;

struct Service {
    base: String,
    state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    harness: warmbox_testkit::harness::Harness,
}

struct Options {
    tokens: Vec<String>,
    max_running: usize,
    max_queue: usize,
    max_body_bytes: usize,
    warm: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tokens: Vec::new(),
            max_running: 2,
            max_queue: 8,
            max_body_bytes: 1 << 20,
            warm: true,
        }
    }
}

async fn start(parent: &str, opts: Options) -> Option<Service> {
    let h = common::private_harness(parent)?;
    let pool = Pool::new(
        h.sandbox.clone(),
        warmbox_runner::runner::warm_specs(&h.profiles, &|_| 1),
        2,
        warmbox_sandbox::pool::Recycle::DEFAULT,
    );
    let admission = Arc::new(Admission::new(opts.max_running, opts.max_queue));
    let state = Arc::new(AppState {
        runner: warmbox_runner::Runner::with_pool(pool.clone()).with_admission(admission.clone()),
        pool: pool.clone(),
        profiles: Arc::new(h.profiles.clone()),
        admission,
        jobs: None,
        metrics: api::metrics::Metrics::new().expect("metrics"),
        config: ServiceConfig {
            tokens: opts.tokens,
            max_body_bytes: opts.max_body_bytes,
        },
        ready: AtomicBool::new(false),
    });
    if opts.warm {
        pool.warm_up().await.expect("warm up");
        state.ready.store(true, Ordering::Release);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = api::router(state.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    Some(Service {
        base,
        state,
        stop: Some(stop),
        server: Some(server),
        harness: h,
    })
}

impl Service {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.expect("server task");
        }
        self.state.pool.shutdown().await;
        // Containers of cancelled runs are removed in the background: the harness takes
        // its cgroup parent away (when dropped) once they are gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .harness
            .sandbox
            .cgroups()
            .list()
            .expect("list")
            .is_empty()
        {
            assert!(Instant::now() < deadline, "containers left after the stop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// (status, headers we look at, body) of one request, made from a blocking thread.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn call(method: &str, url: String, body: Option<String>, token: Option<&str>) -> Answer {
    let method = method.to_string();
    let token = token.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        // A token with a space in it is the whole header value (another scheme spelling).
        let auth = token.map(|t| {
            if t.contains(' ') {
                t
            } else {
                format!("Bearer {t}")
            }
        });
        let mut resp = match (method.as_str(), body) {
            ("GET", _) => {
                let mut r = agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = agent.post(&url).header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(body.unwrap_or_default())
            }
        }
        .expect("HTTP round trip");
        Answer {
            status: resp.status().as_u16(),
            retry_after: resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    })
    .await
    .expect("client thread")
}

async fn post(s: &Service, path: &str, body: Value) -> Answer {
    call(
        "POST",
        format!("{}{path}", s.base),
        Some(body.to_string()),
        None,
    )
    .await
}

async fn get(s: &Service, path: &str) -> Answer {
    call("GET", format!("{}{path}", s.base), None, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_answer_as_the_contract_says() {
    let Some(s) = start("warmbox-http-endpoints", Options::default()).await else {
        return;
    };
    let a = get(&s, "/healthz").await;
    assert_eq!((a.status, a.json()), (200, json!({"status": "ok"})));
    let a = get(&s, "/readyz").await;
    assert_eq!((a.status, a.json()), (200, json!({"status": "ready"})));

    let a = get(&s, "/v1/profiles").await;
    assert_eq!(a.status, 200);
    let names: Vec<String> = a
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect();
    // Every profile of profiles/ (the runner's unit test pins the shipped list), in the
    // order of their names.
    let shipped: Vec<String> = warmbox_testkit::profiles()
        .all()
        .iter()
        .map(|p| p.profile.name.clone())
        .collect();
    assert_eq!(names, shipped);
    assert_eq!(names[..2], ["bash", "c"]);
    let c = &a.json()[1];
    assert_eq!(
        (c["compiled"].clone(), c["available"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(c["limits"]["defaults"]["cpu_ms"], 2000);

    // The run takes a warm container, which comes back recycled: no container is made.
    let cgroups = || {
        let mut list = s.state.pool.sandbox().cgroups().list().expect("list");
        list.sort();
        list
    };
    let warm_before = cgroups();
    let recycled_before = s.state.pool.recycled();
    let a = post(
        &s,
        "/v1/run",
        json!({"profile": "python3", "files": [{"name": "main.py", "content": "print(input()[::-1])"}], "stdin": "hello"}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if s.state.pool.recycled() > recycled_before {
            break;
        }
        assert!(Instant::now() < deadline, "no warm container came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cgroups(), warm_before);
    assert_eq!(a.status, 200, "{}", a.body);
    let r = a.json();
    assert_eq!(r["status"], "ok");
    assert_eq!(r["compile"], Value::Null);
    assert_eq!(r["run"]["stdout"], "olleh\n");
    assert_eq!(r["run"]["usage"]["stdout_bytes"], 6);

    let a = post(
        &s,
        "/v1/run",
        json!({"profile": "c", "files": [{"name": "main.c", "content": "int main(void){return 4;}"}]}),
    )
    .await;
    let r = a.json();
    assert_eq!(
        (r["status"].clone(), r["run"]["exit_code"].clone()),
        (json!("runtime_error"), json!(4))
    );
    assert_eq!(r["compile"]["status"], "ok");

    let m = get(&s, "/metrics").await;
    assert_eq!(m.status, 200);
    for line in [
        "warmbox_runs_total{profile=\"python3\",status=\"ok\"} 1",
        "warmbox_runs_total{profile=\"c\",status=\"runtime_error\"} 1",
        "warmbox_http_requests_total{code=\"200\",route=\"/v1/run\"} 2",
        "warmbox_queue_depth 0",
        "warmbox_running_requests 0",
    ] {
        assert!(
            m.body.lines().any(|l| l == line),
            "{line} not in\n{}",
            m.body
        );
    }
    for name in [
        "warmbox_step_duration_seconds_bucket",
        "warmbox_warm_containers{layout=\"python3/run\"}",
        "warmbox_container_create_seconds_count",
        "warmbox_container_failures_total",
        "warmbox_compile_cache{what=\"entries\"}",
        "warmbox_compile_cache_lookups_total{result=\"miss\"}",
    ] {
        assert!(m.body.contains(name), "{name} not in\n{}", m.body);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_json_with_the_fitting_status() {
    let Some(s) = start(
        "warmbox-http-errors",
        Options {
            max_body_bytes: 64 << 10,
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let cases = [
        (json!({"profile": "fortran77"}), 404, "unknown_profile"),
        (
            json!({"profile": "bash", "files": [{"name": "../x", "content": ""}], "cmd": ["true"]}),
            400,
            "invalid_request",
        ),
        (
            json!({"profile": "bash", "cmd": ["true"], "limits": {"memory_mb": 999999}}),
            400,
            "limit_too_high",
        ),
        (
            json!({"profile": "bash", "cmd": ["true"], "unknown_field": 1}),
            400,
            "invalid_json",
        ),
    ];
    for (body, status, code) in cases {
        let a = post(&s, "/v1/run", body.clone()).await;
        assert_eq!(
            (a.status, a.error_code()),
            (status, code.to_string()),
            "{body}: {}",
            a.body
        );
        assert!(!a.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty());
    }
    let a = call(
        "POST",
        format!("{}/v1/run", s.base),
        Some("{not json".into()),
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.error_code()),
        (400, "invalid_json".to_string())
    );
    let big = json!({"profile": "bash", "cmd": ["true"], "stdin": "x".repeat(100 << 10)});
    let a = post(&s, "/v1/run", big).await;
    assert_eq!(
        (a.status, a.error_code()),
        (413, "body_too_large".to_string()),
        "{}",
        a.body
    );
    let a = get(&s, "/v2/nothing").await;
    assert_eq!((a.status, a.error_code()), (404, "not_found".to_string()));
    // A known route with another method: 405, with the same error body.
    let a = get(&s, "/v1/run").await;
    assert_eq!(
        (a.status, a.error_code()),
        (405, "method_not_allowed".to_string()),
        "{}",
        a.body
    );
    // The fields of a request in an array (which serde's derive would take in order).
    let array = json!(["bash", [], null, null, [], {}, ["/bin/echo", "array-form"]]);
    let a = post(&s, "/v1/run", array).await;
    assert_eq!(
        (a.status, a.error_code()),
        (400, "invalid_json".to_string()),
        "{}",
        a.body
    );
    // Nothing ran: no container was taken from the pool.
    assert!(s.state.pool.is_warm());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_guard_everything_but_health() {
    let Some(s) = start(
        "warmbox-http-tokens",
        Options {
            tokens: vec!["s3cret".into()],
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let run = json!({"profile": "bash", "cmd": ["/bin/echo", "hi"]}).to_string();
    let url = format!("{}/v1/run", s.base);
    let a = call("POST", url.clone(), Some(run.clone()), None).await;
    assert_eq!(
        (a.status, a.error_code()),
        (401, "unauthorized".to_string())
    );
    for wrong in ["wrong", "s3cre", "s3cret2", "Basic s3cret", "Bearer  "] {
        let a = call("POST", url.clone(), Some(run.clone()), Some(wrong)).await;
        assert_eq!(a.status, 401, "{wrong:?}");
    }
    // The scheme is case-insensitive.
    for good in ["s3cret", "bearer s3cret", "BEARER s3cret"] {
        let a = call("POST", url.clone(), Some(run.clone()), Some(good)).await;
        assert_eq!(
            (a.status, a.json()["run"]["stdout"].clone()),
            (200, json!("hi\n")),
            "{good:?}"
        );
    }
    let a = call("GET", format!("{}/v1/profiles", s.base), None, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(get(&s, "/healthz").await.status, 200);
    assert_eq!(get(&s, "/readyz").await.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_is_a_fast_503_with_retry_after() {
    let Some(s) = start(
        "warmbox-http-overload",
        Options {
            max_running: 1,
            max_queue: 1,
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    // Long enough that the first is still running when the third is answered, however
    // slowly the second and third are admitted.
    let slow = json!({"profile": "bash", "cmd": ["/bin/sleep", "3"]}).to_string();
    let url = format!("{}/v1/run", s.base);
    let first = tokio::spawn(call("POST", url.clone(), Some(slow.clone()), None));
    while s.state.admission.running() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = tokio::spawn(call("POST", url.clone(), Some(slow.clone()), None));
    while s.state.admission.waiting() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t = Instant::now();
    let third = call("POST", url, Some(slow), None).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        !first.is_finished(),
        "the first run ended before the third was answered"
    );
    assert_eq!(
        (third.status, third.error_code()),
        (503, "overloaded".to_string())
    );
    assert_eq!(third.retry_after.as_deref(), Some("1"));
    for a in [first.await.expect("first"), second.await.expect("second")] {
        assert_eq!(
            (a.status, a.json()["status"].clone()),
            (200, json!("ok")),
            "{}",
            a.body
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn not_ready_until_the_pool_is_warm() {
    let Some(s) = start(
        "warmbox-http-readiness",
        Options {
            warm: false,
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let a = get(&s, "/readyz").await;
    assert_eq!((a.status, a.error_code()), (503, "not_ready".to_string()));
    assert_eq!(get(&s, "/healthz").await.status, 200);
    s.state.pool.warm_up().await.expect("warm up");
    s.state.ready.store(true, Ordering::Release);
    assert_eq!(get(&s, "/readyz").await.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_hangs_up_cancels_its_run() {
    use tokio::io::AsyncWriteExt;
    let Some(s) = start("warmbox-http-hangup", Options::default()).await else {
        return;
    };
    let body =
        // `tail`, which no other test of this binary runs: the checks below look for it
        // among all the uid block's processes.
        json!({"profile": "bash", "cmd": ["/usr/bin/tail", "-f", "/dev/null"], "limits": {"wall_ms": 30000}})
            .to_string();
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let req = format!(
        "POST /v1/run HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.expect("send");
    let sleeping = || {
        warmbox_testkit::processes_in_uid_block()
            .iter()
            .any(|(pid, _)| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "tail")
            })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sleeping() {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(3);
    while sleeping() {
        assert!(Instant::now() < deadline, "the run outlived its client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The processes die first; the cancelled request then removes the container's cgroup
    // and gives its admission place back.
    while s.state.admission.running() != 0 {
        assert!(
            Instant::now() < deadline,
            "the cancelled run kept its admission place"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.stop().await;
}

/// The host version of `profile` in Piston's form (`3.11.2`).
/// Every runtime the Piston API lists here as `language-version`, in the order of the
/// profiles' names: what its "runtime is unknown" message names.
fn runtimes_here(s: &Service) -> String {
    let all: Vec<String> = s
        .state
        .profiles
        .all()
        .iter()
        .filter(|p| p.availability.available)
        .filter_map(|p| {
            let language = p.profile.piston_language.as_deref()?;
            Some(format!("{language}-{}", piston_version(s, &p.profile.name)))
        })
        .collect();
    assert!(all.len() >= 6, "{all:?}");
    all.join(", ")
}

fn piston_version(s: &Service, profile: &str) -> String {
    let p = s.state.profiles.get(profile).expect("profile");
    warmbox::compat::version_number(p.availability.version.as_deref().expect("version"))
        .expect("a version number")
}

#[tokio::test(flavor = "multi_thread")]
async fn piston_runtimes_and_execute_answer_in_pistons_shapes() {
    let Some(s) = start("warmbox-http-piston", Options::default()).await else {
        return;
    };
    let a = get(&s, "/api/v2/runtimes").await;
    assert_eq!(a.status, 200);
    let py = piston_version(&s, "python3");
    let langs: Vec<(String, Value)> = a
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["language"].as_str().expect("language").to_string(),
                r["aliases"].clone(),
            )
        })
        // The first six's: the other languages are listed where their runtime is installed.
        .filter(|(l, _)| ["bash", "c", "c++", "java", "javascript", "python"].contains(&l.as_str()))
        .collect();
    assert_eq!(
        langs,
        [
            ("bash".to_string(), json!(["sh"])),
            ("c".to_string(), json!(["gcc"])),
            ("c++".to_string(), json!(["cpp", "g++", "cxx"])),
            ("java".to_string(), json!(["openjdk"])),
            ("javascript".to_string(), json!(["node", "nodejs", "js"])),
            ("python".to_string(), json!(["python3", "py", "py3"])),
        ]
    );
    let python = a
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["language"] == "python")
        .cloned()
        .expect("python");
    assert_eq!(python["version"], json!(py));

    // A file without a name, stdin, args, stdout and stderr interleaved in `output`.
    // (Writes from two pipes are ordered as the server reads them: these are apart.)
    let code = "import sys, time\nsys.stdout.write('a\\n')\ntime.sleep(0.5)\n\
                sys.stderr.write('b\\n')\ntime.sleep(0.5)\n\
                sys.stdout.write(sys.argv[1] + input() + '\\n')\nsys.exit(3)\n";
    let a = post(
        &s,
        "/api/v2/execute",
        json!({"language": "py", "version": "*", "files": [{"content": code}],
               "stdin": "in", "args": ["arg-"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let j = a.json();
    assert_eq!(
        (j["language"].clone(), j["version"].clone()),
        (json!("python"), json!(py))
    );
    assert!(j.get("compile").is_none(), "python does not compile: {j}");
    let run = &j["run"];
    assert_eq!(run["stdout"], "a\narg-in\n");
    assert_eq!(run["stderr"], "b\n");
    assert_eq!(run["output"], "a\nb\narg-in\n");
    assert_eq!(
        (
            run["code"].clone(),
            run["signal"].clone(),
            run["status"].clone(),
            run["message"].clone()
        ),
        (json!(3), Value::Null, json!("RE"), Value::Null)
    );
    assert!(run["cpu_time"].as_u64().is_some() && run["wall_time"].as_u64().is_some());
    assert!(run["memory"].as_u64().expect("memory") > 0);

    // Each of the six languages by its Piston name.
    let programs = [
        ("bash", "read x; echo \"$x\""),
        ("c", "#include <stdio.h>\nint main(void) { char s[64]; if (scanf(\"%63s\", s) == 1) puts(s); return 0; }"),
        ("c++", "#include <iostream>\n#include <string>\nint main() { std::string s; std::cin >> s; std::cout << s << std::endl; }"),
        ("java", "import java.util.Scanner;\npublic class Main { public static void main(String[] a) { System.out.println(new Scanner(System.in).next()); } }"),
        // Any entry class name, as Piston's source launcher takes it.
        ("java", "import java.util.Scanner;\npublic class Solution { public static void main(String[] a) { System.out.println(new Scanner(System.in).next()); } }"),
        ("java", "class Hello {\n  public static void main(String[] a) { System.out.println(new java.util.Scanner(System.in).next()); }\n}"),
        ("javascript", "process.stdin.on('data', d => process.stdout.write(d.toString().trim() + '\\n'));"),
        ("python", "print(input())"),
    ];
    for (language, code) in programs {
        let a = post(
            &s,
            "/api/v2/execute",
            json!({"language": language, "version": "*", "files": [{"content": code}], "stdin": "hello"}),
        )
        .await;
        let j = a.json();
        assert_eq!(
            (
                j["run"]["stdout"].clone(),
                j["run"]["code"].clone(),
                j["language"].clone()
            ),
            (json!("hello\n"), json!(0), json!(language)),
            "{j}"
        );
    }

    // C++: a compile stage, a crash by signal; hex and base64 files.
    let crash = "#include \"a.h\"\nint main() { volatile int *p = 0; return *p + A; }\n";
    let hex: String = "#define A 1\n"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    let a = post(
        &s,
        "/api/v2/execute",
        json!({"language": "c++", "version": "12", "files": [
            {"name": "x.cpp", "content": crash},
            {"name": "a.h", "content": hex, "encoding": "hex"}]}),
    )
    .await;
    let j = a.json();
    assert_eq!(j["compile"]["code"], 0, "{j}");
    assert_eq!(j["compile"]["status"], Value::Null);
    assert_eq!(
        (
            j["run"]["code"].clone(),
            j["run"]["signal"].clone(),
            j["run"]["status"].clone()
        ),
        (Value::Null, json!("SIGSEGV"), json!("SG"))
    );
    // A failed compile has no run stage.
    let a = post(
        &s,
        "/api/v2/execute",
        json!({"language": "c", "version": "*",
               "files": [{"content": "aW50IG1haW4oIHs=", "encoding": "base64"}]}),
    )
    .await;
    let j = a.json();
    assert_eq!(j["compile"]["code"], 1, "{j}");
    assert!(j["compile"]["stderr"]
        .as_str()
        .expect("stderr")
        .contains("error"));
    assert!(j.get("run").is_none(), "{j}");

    // Limits in Piston's units: a wall-time kill is TO by SIGKILL.
    let a = post(
        &s,
        "/api/v2/execute",
        json!({"language": "bash", "version": "5.x", "run_timeout": 200.0,
               "run_memory_limit": -1, "run_cpu_time": 0, "files": [{"content": "sleep 5"}]}),
    )
    .await;
    let run = &a.json()["run"];
    assert_eq!(
        (
            run["status"].clone(),
            run["signal"].clone(),
            run["code"].clone()
        ),
        (json!("TO"), json!("SIGKILL"), Value::Null),
        "{run}"
    );
    assert!(run["wall_time"].as_u64().expect("wall") >= 200);
    // Compile limits in Piston's units too: 1 ms of CPU is too little for gcc.
    let a = post(
        &s,
        "/api/v2/execute",
        json!({"language": "c", "version": "*", "compile_cpu_time": 1,
               "files": [{"content": "int main(void) { return 0; }"}]}),
    )
    .await;
    let j = a.json();
    assert_eq!(
        (
            j["compile"]["status"].clone(),
            j["compile"]["signal"].clone()
        ),
        (json!("TO"), json!("SIGKILL")),
        "{j}"
    );
    assert!(j.get("run").is_none(), "{j}");
    // Memory in bytes: a run over it is killed (SG with the memory message).
    let a = post(
        &s,
        "/api/v2/execute",
        json!({"language": "python", "version": "*", "run_memory_limit": 64 << 20,
               "files": [{"content": "x = bytearray(200 << 20)"}]}),
    )
    .await;
    let run = &a.json()["run"];
    assert_eq!(
        (
            run["status"].clone(),
            run["signal"].clone(),
            run["message"].clone()
        ),
        (
            json!("SG"),
            json!("SIGKILL"),
            json!("Memory limit exceeded")
        ),
        "{run}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn piston_bad_input_is_a_400_with_a_message() {
    let Some(s) = start("warmbox-http-piston-bad", Options::default()).await else {
        return;
    };
    let cases = [
        (
            json!({"version": "*", "files": []}),
            "language is required as a string".to_string(),
        ),
        (
            json!({"language": "python", "version": 3, "files": []}),
            "version is required as a string".to_string(),
        ),
        (
            json!({"language": "python", "files": {}}),
            "files is required as an array".to_string(),
        ),
        (
            json!({"language": "python", "files": []}),
            "files must hold at least one file, the program's entry point".to_string(),
        ),
        (
            json!({"language": "python", "files": [{"name": "a"}]}),
            "files[0].content is required as a string".to_string(),
        ),
        (
            json!({"language": "python", "files": [{"content": "x", "encoding": "utf16"}]}),
            "files[0].encoding: \"utf16\" is not one of utf8, base64, hex".to_string(),
        ),
        (
            json!({"language": "python", "files": [{"content": "x"}], "run_timeout": 600000}),
            "run_timeout cannot exceed the configured limit of 60000".to_string(),
        ),
        (
            json!({"language": "c", "files": [{"content": "x"}], "compile_timeout": 600000}),
            "compile_timeout cannot exceed the configured limit of 20000".to_string(),
        ),
        (
            json!({"language": "python", "files": [{"content": "x"}], "run_cpu_time": -5}),
            "run_cpu_time must be a positive whole number (or 0 or -1 for the default)".to_string(),
        ),
        (
            json!({"language": "python", "files": [{"content": "x"}], "run_cpu_time": 2.5}),
            "run_cpu_time must be a positive whole number (or 0 or -1 for the default)".to_string(),
        ),
        (
            json!({"language": "python", "files": [{"content": "x"}], "args": [1]}),
            "args[0] must be a string".to_string(),
        ),
        (
            json!({"language": "python", "version": "2.7", "files": [{"content": "x"}]}),
            format!(
                "python-2.7 runtime is unknown; runtimes here: {}",
                runtimes_here(&s)
            ),
        ),
    ];
    for (body, message) in cases {
        let a = post(&s, "/api/v2/execute", body.clone()).await;
        assert_eq!(
            (a.status, a.json()),
            (400, json!({"message": message})),
            "{body}"
        );
    }
    s.stop().await;
}
