//! A fork server that dies, or stops answering, is replaced: its layouts do not stay
//! down. (A test binary of its own: it kills the fork servers of this process.)

mod common;

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Pids of this process's fork servers (children named `warmbox-init` in our own pid
/// namespace; the container inits, also our children by CLONE_PARENT, carry the same
/// command line but live in pid namespaces of their own).
fn fork_servers() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // The fields after the command's closing parenthesis: state, ppid, …
        let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
        let ppid = after.split_whitespace().nth(1).unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let own_pid_ns = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .is_some_and(|ids| ids.split_whitespace().count() == 1);
        if ppid == me && cmdline == b"warmbox-init\0" && own_pid_ns {
            pids.push(pid);
        }
    }
    pids
}

/// Creates a container of `spec` (failing the test with `what` if it cannot) and removes it.
async fn one_container(
    h: &warmbox_testkit::harness::Harness,
    spec: &warmbox_sandbox::pool::WarmSpec,
    what: &str,
) {
    h.sandbox
        .create(&spec.layout, &spec.limits)
        .await
        .expect(what)
        .destroy()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fork_server_that_dies_or_hangs_is_replaced() {
    let Some(h) = common::private_harness("warmbox-test-forkserver") else {
        return;
    };
    let spec = h.warm_spec("bash/run", 1);
    one_container(&h, &spec, "first container").await;
    let first = fork_servers();
    assert_eq!(first.len(), 1, "{first:?}");

    // Killed: the next creation starts another, and the dead one is reaped.
    kill(Pid::from_raw(first[0]), Signal::SIGKILL).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{}/stat", first[0]))
        .is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(Instant::now() < deadline, "the fork server did not die");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    one_container(&h, &spec, "a container after the fork server was killed").await;
    let second = fork_servers();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);
    assert!(
        !std::path::Path::new(&format!("/proc/{}", first[0])).exists(),
        "the dead fork server was not reaped"
    );

    // Stopped: the creation fails once its reply is overdue (not forever), and the one
    // after it gets a fresh fork server.
    kill(Pid::from_raw(second[0]), Signal::SIGSTOP).expect("stop");
    let t = Instant::now();
    let err = h
        .sandbox
        .create(&spec.layout, &spec.limits)
        .await
        .expect_err("a stopped fork server cannot clone");
    assert!(
        err.to_string().contains("receive from the fork server"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    one_container(&h, &spec, "a container after the fork server hung").await;
    let third = fork_servers();
    assert_eq!(third.len(), 1, "{third:?}");
    assert!(!third.contains(&second[0]));
    let left = h.sandbox.cgroups().list().expect("list cgroups");
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}
