//! A real `warmbox serve` process for the tests that need one (crash, restart, shutdown,
//! async jobs), and the host-side checks around it. `warmbox` is the binary to start:
//! `CARGO_BIN_EXE_warmbox` of the root package's tests, or a release build for the benches.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `warmbox serve`.
pub struct Server {
    /// The server process.
    pub child: Child,
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its cgroup parent.
    pub parent: String,
    /// The first uid of its containers' uid block.
    pub uid_base: u32,
}

/// A test that panics before `stop` must not leave its server running (and holding its
/// uid block for the next run): kill it. After `stop` the child is reaped and this fails.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this process is root; if not, [`skip`](crate::skip)s (a failure in CI).
pub fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    crate::skip("the service tests need root");
    false
}

/// `warmbox serve` on a loopback port with one warm container per layout, its cgroup
/// parent `parent`, uid block from `uid_base` and its own job store ([`jobs_db`]), and
/// `extra` flags; returned once `/readyz` says ready.
pub fn start(warmbox: &Path, parent: &str, uid_base: u32, extra: &[&str]) -> Server {
    start_with(warmbox, parent, uid_base, extra, None)
}

/// [`start`], with the server's soft limit of open files lowered to `soft_nofile`.
pub fn start_with(
    warmbox: &Path,
    parent: &str,
    uid_base: u32,
    extra: &[&str],
    soft_nofile: Option<u64>,
) -> Server {
    let mut cmd = Command::new(warmbox);
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
    cmd.current_dir(crate::repo())
        .env("WARMBOX_PROFILES", crate::emulation::profiles_dir())
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
        .args(extra);
    let (child, base) = serve(&mut cmd);
    Server {
        child,
        base,
        parent: parent.to_string(),
        uid_base,
    }
}

/// Spawns `cmd` (a `warmbox serve` command line) and waits until it listens and `/readyz`
/// answers 200 (60 s at the most); the process and its base URL.
pub fn serve(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
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
    let deadline = Instant::now() + Duration::from_secs(60);
    while status_of(&base, "/readyz").0 != 200 {
        if Instant::now() >= deadline {
            // Not left running (and holding its uid block) past the failed test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("not ready within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, base)
}

/// A server's own job store, named after its cgroup parent (kept across its restarts;
/// [`fresh_jobs_db`] empties it): a redb file, or with `WARMBOX_TEST_JOBS_DB=postgres` a
/// database of this process's PostgreSQL server ([`crate::postgres::shared`]), created at
/// its first use.
pub fn jobs_db(parent: &str) -> String {
    if jobs_in_postgres() {
        return crate::postgres::ensure_db(&crate::postgres::db_name(parent))
            .unwrap_or_else(|| panic!("{POSTGRES_MISSING}"));
    }
    format!("/run/warmbox-test-service/{parent}.redb")
}

/// Whether the servers' job stores are PostgreSQL databases (`WARMBOX_TEST_JOBS_DB=postgres`)
/// rather than redb files.
pub fn jobs_in_postgres() -> bool {
    std::env::var("WARMBOX_TEST_JOBS_DB").is_ok_and(|v| v == "postgres")
}

const POSTGRES_MISSING: &str =
    "WARMBOX_TEST_JOBS_DB=postgres, but no PostgreSQL server could be started";

/// [`start`] with a job store of none yet ([`fresh_jobs_db`] first).
pub fn start_fresh(warmbox: &Path, parent: &str, uid_base: u32, extra: &[&str]) -> Server {
    fresh_jobs_db(parent);
    start(warmbox, parent, uid_base, extra)
}

/// Removes the job store of `parent`'s server, for a test that starts from none (a
/// PostgreSQL database is made afresh, empty).
pub fn fresh_jobs_db(parent: &str) {
    if jobs_in_postgres() {
        crate::postgres::fresh_db(&crate::postgres::db_name(parent))
            .unwrap_or_else(|| panic!("{POSTGRES_MISSING}"));
        return;
    }
    let _ = std::fs::remove_file(jobs_db(parent));
}

/// An HTTP client that returns error statuses as answers, with a 60 s budget a request.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// (status, body) of `GET path` on `s`; (0, "") when it does not answer.
pub fn get(s: &Server, path: &str) -> (u16, String) {
    status_of(&s.base, path)
}

fn status_of(base: &str, path: &str) -> (u16, String) {
    match agent().get(format!("{base}{path}")).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

/// (status, JSON body) of `POST /v1/run` with `body`; the transport's error as text.
pub fn run(base: &str, body: Value) -> Result<(u16, Value), String> {
    let mut r = agent()
        .post(format!("{base}/v1/run"))
        .send(body.to_string())
        .map_err(|e| e.to_string())?;
    let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    let v = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    Ok((r.status().as_u16(), v))
}

/// (pid, uid, name) of host processes whose uid is in the server's container uid block.
pub fn block_processes(uid_base: u32) -> Vec<(i32, u32, String)> {
    crate::processes_in(uid_base, crate::UID_BLOCK)
}

/// Whether `pid` has ended: gone, or a zombie that its parent has not reaped yet.
pub fn exited(pid: i32) -> bool {
    crate::stat_fields(pid).is_none_or(|f| f.first().is_some_and(|s| s == "Z" || s == "X"))
}

/// The cgroups under the server's parent `parent` (in any controller on v1).
pub fn cgroups(parent: &str) -> Vec<String> {
    crate::cgroupfs::children(parent)
}

/// Polls `ok` every 20 ms for up to `secs` seconds.
pub fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops `s` with SIGTERM and asserts it left nothing: a clean exit, no process in its uid
/// block, no cgroup under its parent.
pub fn stop(mut s: Server) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(crate::pid_of(&s.child)),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = s.child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert_eq!(block_processes(s.uid_base), Vec::new());
    // Its containers and then its parent cgroup are gone, in every controller.
    for dir in crate::cgroupfs::parent_dirs(&s.parent) {
        assert!(!dir.exists(), "{} left after a clean stop", dir.display());
    }
}

/// (status, JSON body) of one request: GET, POST (with `body`) or DELETE.
pub fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let agent = agent();
    let resp = match method {
        "POST" => agent
            .post(url)
            .send(body.unwrap_or(Value::Null).to_string()),
        "DELETE" => agent.delete(url).call(),
        _ => agent.get(url).call(),
    };
    let mut r = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let text = r.body_mut().read_to_string().expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (r.status().as_u16(), v)
}

/// A local HTTP listener (a callback's peer) that answers every request with `status`
/// and hands over its method and JSON body.
pub fn listener(status: u16) -> (String, std::sync::mpsc::Receiver<(String, Value)>) {
    let (url, hooks) = hook_listener(status);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for h in hooks {
            if tx.send((h.method, h.body)).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

/// One request a [`hook_listener`] took.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Its method.
    pub method: String,
    /// Its headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Its JSON body.
    pub body: Value,
}

impl Hook {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

/// A local HTTP listener (a callback's peer) that answers every request with `status`
/// and hands over each request with a JSON body whole.
pub fn hook_listener(status: u16) -> (String, std::sync::mpsc::Receiver<Hook>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let method = first
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            let mut len = 0usize;
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    let name = name.trim().to_ascii_lowercase();
                    let value = value.trim().to_string();
                    if name == "content-length" {
                        len = value.parse().unwrap_or(0);
                    }
                    headers.push((name, value));
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if let Ok(body) = serde_json::from_slice(&body) {
                let _ = tx.send(Hook {
                    method,
                    headers,
                    body,
                });
            }
        }
    });
    (url, rx)
}
