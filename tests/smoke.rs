//! The first end-to-end check: a real container runs a command and reports it exactly.

mod common;

#[tokio::test]
async fn echo_in_a_container() {
    let Some(h) = common::harness() else { return };
    let run = h.sh("echo hello; echo oops >&2; exit 3").await;
    assert_eq!(run.status, warmbox::request::StepStatus::RuntimeError);
    assert_eq!(run.exit_code, Some(3));
    assert_eq!(run.stdout, "hello\n");
    assert_eq!(run.stderr, "oops\n");
    assert_eq!(run.usage.stdout_bytes, 6);
    assert!(run.usage.memory_peak_bytes > 0);
}
