//! What a submission could do to the judge beyond its own container, found by an outside
//! review: hold an answer back without bound (its stdout kept alive in flight on a unix
//! socket), learn the host's paths from its init's command line, and leave kernel memory
//! (negative dentries) behind on the host. Each test runs the hostile program for real and
//! asserts the exact outcome.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warmbox_runner::request::StepStatus;

/// A job that sends its own stdout and stderr, and the two socket pairs themselves, into
/// the pairs with SCM_RIGHTS, then exits: the descriptors sit in flight in a reference
/// cycle, so the pipe write ends stay open until the kernel's unix-socket garbage collector
/// happens to run (seconds to minutes), long after every process of the container is gone.
const FDS_IN_FLIGHT: &str = r#"
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void send_fds(int sock, const int *fds, int n) {
    char control[CMSG_SPACE(sizeof(int) * 4)];
    memset(control, 0, sizeof control);
    char byte = 'x';
    struct iovec iov = { &byte, 1 };
    struct msghdr m = { 0 };
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    if (sendmsg(sock, &m, 0) != 1) { perror("sendmsg"); _exit(3); }
}

int main(void) {
    int a[2], b[2];
    printf("before\n");
    fflush(stdout);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, a) || socketpair(AF_UNIX, SOCK_STREAM, 0, b)) {
        perror("socketpair");
        return 4;
    }
    int into_b[4] = { a[0], a[1], 1, 2 };
    send_fds(b[0], into_b, 4);
    int into_a[2] = { b[0], b[1] };
    send_fds(a[0], into_a, 2);
    return 0;
}
"#;

/// The tests of this binary run one at a time: a container removed by one closes unix
/// sockets, which starts the kernel's garbage collector for another's cycle and would hide
/// the bug from it.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long an answer (compile cached) may take at most here: the run takes well under a
/// second; before the fix the answer waited for the garbage collector, which starts when
/// some unix socket of the host is closed: 6 s on this machine, 15 s to minutes on a quiet
/// host. (A compile step would hide the bug: its container's removal during the run closes
/// a unix socket. So the C program runs a second time, its compile cached, and the CLI,
/// which has no cache, runs the python3 version.)
const ANSWER_BOUND: Duration = Duration::from_secs(4);
/// Runs of the program per test: before the fix, how long an answer waited was up to the
/// host's other activity (one run in three or four waited more than the bound here).
const ROUNDS: usize = 3;
/// Before each round, time for the containers of the last one to be removed: a removal
/// closes the container's channel (a unix socket), which would start the garbage
/// collector for this round's cycle and hide the bug.
const SETTLE: Duration = Duration::from_millis(1500);

/// [`FDS_IN_FLIGHT`] in python3, which has no compile step.
const FDS_IN_FLIGHT_PY: &str = r#"
import socket, sys
print("before", flush=True)
a0, a1 = socket.socketpair()
b0, b1 = socket.socketpair()
socket.send_fds(b0, [b"x"], [a0.fileno(), a1.fileno(), 1, 2])
socket.send_fds(a0, [b"x"], [b0.fileno(), b1.fileno()])
sys.exit(0)
"#;

fn in_flight_request() -> Value {
    json!({"profile": "c", "files": [{"name": "main.c", "content": FDS_IN_FLIGHT}]})
}

fn in_flight_request_py() -> Value {
    json!({"profile": "python3", "files": [{"name": "main.py", "content": FDS_IN_FLIGHT_PY}]})
}

/// The run step of a response to [`in_flight_request`] (compile cached, when `compiled`)
/// or [`in_flight_request_py`]: ok, exit 0, the output written before the cycle.
fn assert_in_flight_outcome(resp: &Value, compiled: bool) {
    if compiled {
        assert_eq!(
            (
                resp["compile"]["status"].clone(),
                resp["compile"]["cached"].clone()
            ),
            (json!("ok"), json!(true)),
            "{resp:#}"
        );
    }
    let run = &resp["run"];
    assert_eq!(
        (
            run["status"].clone(),
            run["exit_code"].clone(),
            run["stdout"].clone(),
            run["stderr"].clone()
        ),
        (json!("ok"), json!(0), json!("before\n"), json!("")),
        "{resp:#}"
    );
}

#[tokio::test]
async fn output_kept_in_flight_does_not_hold_the_answer_in_process() {
    let Some(h) = common::harness() else { return };
    let _serial = SERIAL.lock().await;
    // The first run fills the compile cache.
    h.run(in_flight_request()).await;
    for round in 0..ROUNDS {
        tokio::time::sleep(SETTLE).await;
        let start = Instant::now();
        let resp = h.run(in_flight_request()).await;
        let took = start.elapsed();
        let resp = serde_json::to_value(&resp).expect("response as JSON");
        assert_in_flight_outcome(&resp, true);
        assert!(
            took < ANSWER_BOUND,
            "round {round}: the answer took {took:?}"
        );
    }
}

#[test]
fn output_kept_in_flight_does_not_hold_the_answer_over_http() {
    if !common::server::root_or_skip() {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    let s = common::server::start("warmbox-test-hostfx-http", 930_000, &[]);
    // The first run fills the compile cache.
    common::server::run(&s.base, in_flight_request()).expect("an answer over HTTP");
    for round in 0..ROUNDS {
        std::thread::sleep(SETTLE);
        let start = Instant::now();
        let (status, resp) =
            common::server::run(&s.base, in_flight_request()).expect("an answer over HTTP");
        let took = start.elapsed();
        assert_eq!(status, 200, "{resp:#}");
        assert_in_flight_outcome(&resp, true);
        assert!(
            took < ANSWER_BOUND,
            "round {round}: the answer took {took:?}"
        );
    }
    common::server::stop(s);
}

#[test]
fn output_kept_in_flight_does_not_hold_the_answer_on_the_command_line() {
    if !common::server::root_or_skip() {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    for round in 0..ROUNDS {
        let state = tempfile::tempdir().expect("tempdir");
        let start = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_warmbox"))
            .args(["run", "--state-dir"])
            .arg(state.path().join("state"))
            .args(["--request", "-"])
            .current_dir(warmbox_testkit::repo())
            .env(
                "WARMBOX_PROFILES",
                warmbox_testkit::emulation::profiles_dir(),
            )
            .env_remove("WARMBOX_LOG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                let mut stdin = child.stdin.take().expect("stdin pipe");
                stdin.write_all(in_flight_request_py().to_string().as_bytes())?;
                drop(stdin);
                child.wait_with_output()
            })
            .expect("run warmbox");
        let took = start.elapsed();
        assert_eq!(
            out.status.code(),
            Some(0),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let resp: Value = serde_json::from_slice(&out.stdout).expect("a JSON response");
        assert_in_flight_outcome(&resp, false);
        assert!(
            took < ANSWER_BOUND,
            "round {round}: the answer took {took:?}"
        );
    }
}

/// The same hold, made certain: the job sends its stdout and stderr over a unix socket
/// to a listener of the host (this test) that accepts and never reads, so the write ends
/// stay open for as long as the test holds the connection (no garbage collector frees
/// them). The answer must not wait for that. (The socket lies in a host directory bound
/// read-only into the container; a pathname socket can be connected to through a
/// read-only mount.)
#[tokio::test]
async fn output_held_by_a_live_peer_does_not_hold_the_answer() {
    let Some(h) = common::harness() else { return };
    let _serial = SERIAL.lock().await;
    // Removed on drop, also when the test fails midway.
    let dir = tempfile::Builder::new()
        .prefix("warmbox-hostfx-")
        .tempdir_in("/usr/share")
        .expect("a directory under /usr/share");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.path().join("s");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let acceptor = std::thread::spawn(move || {
        // Held, unread, until the test has its answer (or has given up on it: then the
        // test itself connects, so that this never waits for ever).
        let conn = listener.accept();
        let _ = held_rx.recv();
        drop(conn);
    });
    let code = "import socket, sys\n\
                print('before', flush=True)\n\
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
                s.connect(sys.argv[1])\n\
                socket.send_fds(s, [b'x'], [1, 2])\n";
    let req = json!({"profile": "python3", "files": [{"name": "main.py", "content": code}],
                     "args": [path.to_str().expect("utf-8 path")]});
    let start = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(30), h.run(req)).await;
    let took = start.elapsed();
    // Connected to by the job, or now by us (a job that never connected): accept returns.
    let _ = std::os::unix::net::UnixStream::connect(&path);
    let _ = held_tx.send(());
    acceptor.join().expect("acceptor thread");
    let resp = serde_json::to_value(resp.expect("an answer within 30 s")).expect("JSON");
    assert_in_flight_outcome(&resp, false);
    assert!(took < ANSWER_BOUND, "the answer took {took:?}");
}

#[tokio::test]
async fn the_inits_command_line_shows_nothing_of_the_host() {
    let Some(h) = common::harness() else { return };
    let _serial = SERIAL.lock().await;
    // /proc/1 is the container's init; its command line is world-readable.
    let run = h
        .sh("od -An -c /proc/1/cmdline | tr -d ' \\n'; echo; cat /proc/1/comm")
        .await;
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(run.stdout, "warmbox-init\\0\nwarmbox\n", "{run:#?}");
    // Nothing else of the init is open to the job (it is not dumpable).
    let run = h
        .sh("cat /proc/1/environ; echo \"environ $?\"; readlink /proc/1/exe; echo \"exe $?\"")
        .await;
    assert_eq!(run.stdout, "environ 1\nexe 1\n", "{run:#?}");
}

/// The host's count of negative dentries (`/proc/sys/fs/dentry-state`, fifth field).
fn negative_dentries() -> i64 {
    let state = std::fs::read_to_string("/proc/sys/fs/dentry-state").expect("dentry-state");
    state
        .split_whitespace()
        .nth(4)
        .and_then(|n| n.parse().ok())
        .expect("the negative dentry count")
}

/// A job that looks up made-up names in the shared `/usr/lib` for 0.4 s leaves a negative
/// dentry in the host's cache for each (about 150,000): the container's removal reclaims
/// them, so the host's count is back near where it was.
#[tokio::test]
async fn names_looked_up_in_the_shared_binds_do_not_pile_up_on_the_host() {
    let Some(h) = common::harness() else { return };
    let _serial = SERIAL.lock().await;
    let tag = format!("wbneg{}x", std::process::id());
    let code = "import os, sys, time\n\
                t, i = time.time(), 0\n\
                while time.time() - t < 0.4:\n\
                \x20   try: os.stat('/usr/lib/%s%d' % (sys.argv[1], i))\n\
                \x20   except OSError: pass\n\
                \x20   i += 1\n\
                print(i)\n";
    let before = negative_dentries();
    let resp = h
        .run(
            json!({"profile": "python3", "files": [{"name": "main.py", "content": code}],
                    "args": [tag]}),
        )
        .await;
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    let lookups: i64 = run.stdout.trim().parse().expect("the lookup count");
    assert!(lookups > 20_000, "only {lookups} lookups in 0.4 s");
    // The removal runs after the answer: wait for it. Other work on the host makes and
    // frees dentries meanwhile, so the bound is a share of what the job made.
    let bound = lookups / 10;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let grown = negative_dentries() - before;
        if grown < bound {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{lookups} lookups left {grown} more negative dentries on the host (bound {bound})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
