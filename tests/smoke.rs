//! The first end-to-end check: a real container runs a command and reports it exactly.

mod common;

use warmbox_runner::runner::{default_limits, layout, StepKind};
use warmbox_sandbox::forkserver::{JOB_NICE, RUN_NICE};
use warmbox_sandbox::{step::cgroup_limits, Container, StepSpec};

#[tokio::test]
async fn echo_in_a_container() {
    let Some(h) = common::harness() else { return };
    let run = h.sh("echo hello; echo oops >&2; exit 3").await;
    assert_eq!(
        run.status,
        warmbox_runner::request::StepStatus::RuntimeError
    );
    assert_eq!(run.exit_code, Some(3));
    assert_eq!(run.stdout, "hello\n");
    assert_eq!(run.stderr, "oops\n");
    assert_eq!(run.usage.stdout_bytes, 6);
    assert!(run.usage.memory_peak_bytes > 0);
}

/// A new ready container of the `bash` profile's run step, and a `/bin/true` step for it.
async fn bash_container(h: &warmbox_testkit::harness::Harness) -> (Container, StepSpec) {
    let profile = h.profiles.get("bash").expect("bash profile");
    let profile = &profile.profile;
    let limits = default_limits(profile, StepKind::Run);
    let c = h
        .sandbox
        .create(
            &layout(profile, &limits),
            &cgroup_limits(&limits, profile.cpu_cores),
        )
        .await
        .expect("create");
    let spec = StepSpec {
        argv: vec!["/bin/true".into()],
        env: Vec::new(),
        limits,
        cpu_cores: profile.cpu_cores,
        stdin: Vec::new(),
        output: warmbox_sandbox::OutputMode::Separate,
    };
    (c, spec)
}

/// A container whose init died before it was handed a job says so (the runner then tries
/// another container), and one that ran a job says that too.
#[tokio::test]
async fn a_container_tells_whether_it_was_handed_a_job() {
    let Some(h) = common::harness() else { return };
    let (mut dead, spec) = bash_container(h).await;
    // SAFETY: kill with integer arguments, on our own child.
    assert_eq!(unsafe { libc::kill(dead.pid(), libc::SIGKILL) }, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while dead.is_alive() {
        assert!(std::time::Instant::now() < deadline, "init exits");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    dead.run(&spec)
        .await
        .expect_err("a container whose init died takes no job");
    assert!(!dead.job_sent());
    dead.destroy().await;

    let (mut ran, spec) = bash_container(h).await;
    assert!(!ran.job_sent());
    let step = ran.run(&spec).await.expect("run");
    assert_eq!(step.exit_code, Some(0));
    assert!(ran.job_sent());
    ran.destroy().await;
}

/// A ready container waits at its run's priorities (so that a run sets none): the init at
/// -10, above its job process (the child of the run's init) at the server's 0.
#[tokio::test]
async fn a_ready_container_waits_at_its_run_priorities() {
    let Some(h) = common::harness() else { return };
    let (c, _) = bash_container(h).await;
    // The init's one child is the run's init, whose one child is the job process.
    assert_eq!(
        warmbox_testkit::waiting_priorities(c.pid()),
        (RUN_NICE, JOB_NICE)
    );
    c.destroy().await;
}
