//! What the kernel offers the tests: whether a missing capability fails
//! (`WARMBOX_REQUIRE_SANDBOX=1`, CI) or skips, seccomp's and the cgroup backends'
//! availability, and the shipped `default` seccomp policy.

use std::path::Path;

use warmbox_sandbox::cgroup::{CgroupVersion, CGROUP_ROOT};
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
            &raw const action,
        )
    } == 0;
    if mode >= 0 && kill_process {
        return true;
    }
    crate::skip("kernel lacks seccomp filters or SECCOMP_RET_KILL_PROCESS (Linux 4.14+)");
    false
}

/// Whether this kernel has landlock; says why when it has not (a failure under
/// `WARMBOX_REQUIRE_SANDBOX=1`).
pub fn landlock_available() -> bool {
    if warmbox_inside::landlock::abi_version().is_some() {
        return true;
    }
    crate::skip("landlock is not available on this kernel");
    false
}

/// Whether `program` exists on this host; says so when it does not (a failure under
/// `WARMBOX_REQUIRE_SANDBOX=1`: CI installs every runtime).
pub fn installed(program: &str) -> bool {
    if Path::new(program).exists() {
        return true;
    }
    crate::skip(&format!("{program} is not installed on this host"));
    false
}

/// The shipped `default` policy of `profiles/seccomp`, compiled.
pub fn default_policy() -> CompiledPolicy {
    let dir = crate::repo().join("profiles/seccomp");
    warmbox_sandbox::seccomp::load(&dir, "default").unwrap_or_else(|e| panic!("{e}"))
}

/// Whether the host can run the tests of the cgroup `version` backend for real: root, that
/// hierarchy at `/sys/fs/cgroup` (v1: the memory, pids, cpu and cpuacct controllers), and
/// `/usr/bin/python3`. If not, says why on stderr — the test harness captures `eprintln!`
/// of passing tests — and fails under `WARMBOX_REQUIRE_SANDBOX=1`; a host of the other
/// version is not a missing capability (its own tests cover it): that only skips.
pub fn cgroup_backend_available(version: CgroupVersion, test: &str) -> bool {
    use std::io::Write;
    let root = Path::new(CGROUP_ROOT);
    let unified = root.join("cgroup.controllers").exists();
    let other = match (version, unified) {
        (CgroupVersion::V1, true) => Some("is a unified (v2) hierarchy; the cgroup_v2 tests"),
        (CgroupVersion::V2, false) => Some("is not a unified (v2) hierarchy; the cgroup_v1 tests"),
        _ => None,
    };
    if let Some(other) = other {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {test}: {CGROUP_ROOT} {other} covers it"
        );
        return false;
    }
    let why = if !nix::unistd::geteuid().is_root() {
        "needs root"
    } else if version == CgroupVersion::V1
        && ["memory", "pids", "cpu", "cpuacct"]
            .iter()
            .any(|c| !root.join(c).join("cgroup.procs").exists())
    {
        "needs the cgroup v1 memory, pids, cpu and cpuacct hierarchies under /sys/fs/cgroup"
    } else if !Path::new("/usr/bin/python3").exists() {
        "needs /usr/bin/python3"
    } else {
        return true;
    };
    assert!(
        !require_sandbox(),
        "{test}: {why}, and WARMBOX_REQUIRE_SANDBOX=1 requires it"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIP {test}: {why} (set WARMBOX_REQUIRE_SANDBOX=1 to make this a failure)"
    );
    false
}
