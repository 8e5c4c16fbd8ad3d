//! What the kernel offers the tests that need no sandbox harness (seccomp and landlock
//! tests, which include this file alone with `#[path]`): whether a missing capability fails
//! (`WARMBOX_REQUIRE_SANDBOX=1`, CI) or skips, and the shipped `default` seccomp policy.

#![allow(dead_code)]

use std::path::Path;

use warmbox_sandbox::seccomp::CompiledPolicy;

/// Whether a missing kernel capability must fail the test (CI) rather than skip it.
pub fn require_sandbox() -> bool {
    std::env::var("WARMBOX_REQUIRE_SANDBOX").as_deref() == Ok("1")
}

/// Whether this kernel has seccomp filters with `SECCOMP_RET_KILL_PROCESS` (Linux 4.14+);
/// says why when it has not (a failure under `WARMBOX_REQUIRE_SANDBOX=1`).
pub fn seccomp_available() -> bool {
    // SAFETY: PR_GET_SECCOMP takes no pointer; it reports the calling thread's mode.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    let action: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 from the pointer, which is valid.
    let kill_process = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    } == 0;
    if mode >= 0 && kill_process {
        return true;
    }
    let why = "kernel lacks seccomp filters or SECCOMP_RET_KILL_PROCESS (Linux 4.14+)";
    assert!(!require_sandbox(), "{why} and WARMBOX_REQUIRE_SANDBOX=1");
    eprintln!("skip: {why}");
    false
}

/// The shipped `default` policy of `profiles/seccomp`, compiled.
pub fn default_policy() -> CompiledPolicy {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/seccomp");
    warmbox_sandbox::seccomp::load(&dir, "default").unwrap_or_else(|e| panic!("{e}"))
}
