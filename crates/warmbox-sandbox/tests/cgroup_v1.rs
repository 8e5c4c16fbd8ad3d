//! The cgroup v1 backend for real: needs root and the v1 memory, pids, cpu and cpuacct
//! hierarchies under /sys/fs/cgroup (a v2 host skips them, as a v1 host does the cgroup_v2
//! tests). Each test works under its own parent
//! `warmbox-test-<pid>-<tag>` and removes it afterwards; nothing else is touched.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use warmbox_testkit::kernel::cgroup_backend_available;
use warmbox_testkit::{gated, open_gate, pid_of, wait_until};

use warmbox_sandbox::cgroup::v1::V1Backend;
use warmbox_sandbox::cgroup::{probe, CgroupBackend, CgroupLimits, CgroupVersion};

const ROOT: &str = "/sys/fs/cgroup";
const CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "cpuacct"];
const MIB: u64 = 1 << 20;
const PYTHON: &str = "/usr/bin/python3";

fn sandbox_available(test: &str) -> bool {
    cgroup_backend_available(CgroupVersion::V1, test)
}

/// warmbox's parent for one test; removed with everything in it when dropped.
struct TestParent {
    name: String,
    backend: V1Backend,
}

impl TestParent {
    fn new(tag: &str) -> TestParent {
        let name = format!("warmbox-test-{}-{tag}", std::process::id());
        let backend = V1Backend::new(Path::new(ROOT), &name).unwrap();
        TestParent { name, backend }
    }

    /// The directory of the cgroup `cgroup` in `controller`.
    fn dir(&self, controller: &str, cgroup: &str) -> PathBuf {
        Path::new(ROOT)
            .join(controller)
            .join(&self.name)
            .join(cgroup)
    }

    fn read(&self, controller: &str, cgroup: &str, file: &str) -> String {
        let path = self.dir(controller, cgroup).join(file);
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_string()
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        let _ = self.backend.remove_stale();
        for c in CONTROLLERS {
            let _ = fs::remove_dir(Path::new(ROOT).join(c).join(&self.name));
        }
    }
}

fn limits(memory_bytes: u64, pids: u64, cpu_cores: Option<f64>) -> CgroupLimits {
    CgroupLimits {
        memory_bytes,
        pids,
        cpu_cores,
    }
}

/// The pids the cgroup's pids controller lists.
fn procs(parent: &TestParent, cgroup: &str) -> Vec<i32> {
    parent
        .read("pids", cgroup, "cgroup.procs")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn a_cgroup_limits_accounts_kills_and_goes_away() {
    if !sandbox_available("a_cgroup_limits_accounts_kills_and_goes_away") {
        return;
    }
    let parent = TestParent::new("life");
    let cg = parent
        .backend
        .create("run", &limits(256 * MIB, 16, Some(1.0)))
        .unwrap();
    assert_eq!(parent.backend.list().unwrap(), ["run"]);
    assert_eq!(
        parent.read("memory", "run", "memory.limit_in_bytes"),
        "268435456"
    );
    assert_eq!(
        parent.read("memory", "run", "memory.memsw.limit_in_bytes"),
        "268435456"
    );
    assert_eq!(parent.read("pids", "run", "pids.max"), "16");
    assert_eq!(parent.read("cpu", "run", "cpu.cfs_quota_us"), "100000");
    assert_eq!(parent.read("cpu", "run", "cpu.cfs_period_us"), "100000");

    // Raising and lowering need opposite write orders (memsw >= memory at every step).
    cg.set_limits(&limits(512 * MIB, 16, Some(1.0))).unwrap();
    assert_eq!(
        parent.read("memory", "run", "memory.limit_in_bytes"),
        "536870912"
    );
    assert_eq!(
        parent.read("memory", "run", "memory.memsw.limit_in_bytes"),
        "536870912"
    );
    cg.set_limits(&limits(128 * MIB, 8, Some(1.0))).unwrap();
    assert_eq!(
        parent.read("memory", "run", "memory.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(
        parent.read("memory", "run", "memory.memsw.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(parent.read("pids", "run", "pids.max"), "8");

    let (mut child, gate) = gated(&[PYTHON, "-c", "x = b'\\x01' * (32 << 20)\nwhile True: pass"]);
    let pid = pid_of(&child);
    cg.add_process(pid).unwrap();
    let membership = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for c in CONTROLLERS {
        let line = format!(":{c}:/{}/run", parent.name);
        assert!(
            membership.lines().any(|l| l.ends_with(&line)),
            "{line} in {membership}"
        );
    }
    cg.reset_peaks().unwrap();
    open_gate(gate);

    let first = cg.cpu_ns().unwrap();
    wait_until("200 ms of CPU", || cg.cpu_ns().unwrap() >= 200_000_000);
    assert!(cg.cpu_ns().unwrap() > first);
    let usage = cg.usage().unwrap();
    assert!(usage.cpu_ns >= 200_000_000, "{usage:?}");
    assert!(usage.user_ns > 0, "{usage:?}");
    assert!(
        usage.memory_peak_bytes >= 32 * MIB && usage.memory_peak_bytes <= 128 * MIB,
        "{usage:?}"
    );
    assert_eq!(usage.oom_kills, 0);
    let expected_pids_peak = parent
        .dir("pids", "run")
        .join("pids.peak")
        .exists()
        .then_some(1);
    assert_eq!(usage.pids_peak, expected_pids_peak);

    // The child is still ours to reap: its zombie must not keep the cgroup busy.
    cg.kill_all().unwrap();
    assert_eq!(procs(&parent, "run"), Vec::<i32>::new());
    cg.destroy().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    for c in CONTROLLERS {
        assert!(!parent.dir(c, "run").exists(), "{c}");
    }
    assert!(parent.backend.list().unwrap().is_empty());
    cg.destroy().unwrap();
}

#[test]
fn memory_over_the_limit_is_an_oom_kill() {
    if !sandbox_available("memory_over_the_limit_is_an_oom_kill") {
        return;
    }
    let parent = TestParent::new("oom");
    let cg = parent
        .backend
        .create("run", &limits(32 * MIB, 16, None))
        .unwrap();
    let (mut child, gate) = gated(&[PYTHON, "-c", "x = bytearray(200 << 20)"]);
    cg.add_process(pid_of(&child)).unwrap();
    cg.reset_peaks().unwrap();
    open_gate(gate);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let usage = cg.usage().unwrap();
    assert_eq!(usage.oom_kills, 1, "{usage:?}");
    assert_eq!(usage.memory_peak_bytes, 32 * MIB, "{usage:?}");
    cg.destroy().unwrap();
    for c in CONTROLLERS {
        assert!(!parent.dir(c, "run").exists(), "{c}");
    }
}

#[test]
fn kill_all_gets_every_process_of_a_tree() {
    if !sandbox_available("kill_all_gets_every_process_of_a_tree") {
        return;
    }
    let parent = TestParent::new("tree");
    let cg = parent
        .backend
        .create("run", &limits(64 * MIB, 16, None))
        .unwrap();
    let script = "for i in 1 2 3 4 5; do sleep 100 & done; wait";
    let (mut child, gate) = gated(&["/bin/sh", "-c", script]);
    cg.add_process(pid_of(&child)).unwrap();
    open_gate(gate);
    wait_until("six processes", || procs(&parent, "run").len() == 6);
    if parent.dir("pids", "run").join("pids.peak").exists() {
        assert_eq!(cg.usage().unwrap().pids_peak, Some(6));
    }
    cg.kill_all().unwrap();
    assert_eq!(procs(&parent, "run"), Vec::<i32>::new());
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    cg.destroy().unwrap();
    for c in CONTROLLERS {
        assert!(!parent.dir(c, "run").exists(), "{c}");
    }
}

#[test]
fn remove_stale_kills_and_removes_leftovers() {
    if !sandbox_available("remove_stale_kills_and_removes_leftovers") {
        return;
    }
    let parent = TestParent::new("stale");
    let busy = parent
        .backend
        .create("busy", &limits(64 * MIB, 16, None))
        .unwrap();
    parent
        .backend
        .create("idle", &limits(64 * MIB, 16, None))
        .unwrap();
    let mut child = Command::new("sleep").arg("100").spawn().unwrap();
    busy.add_process(pid_of(&child)).unwrap();
    // A crashed instance's handles are gone; only the directories remain.
    drop(busy);
    assert_eq!(parent.backend.list().unwrap(), ["busy", "idle"]);
    assert_eq!(parent.backend.remove_stale().unwrap(), 2);
    assert!(parent.backend.list().unwrap().is_empty());
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    for c in CONTROLLERS {
        for name in ["busy", "idle"] {
            assert!(!parent.dir(c, name).exists(), "{c}/{name}");
        }
        assert!(Path::new(ROOT).join(c).join(&parent.name).is_dir());
    }
}

#[test]
fn probe_chooses_v1_on_this_host() {
    if !sandbox_available("probe_chooses_v1_on_this_host") {
        return;
    }
    let parent = TestParent::new("probe");
    let backend = probe(&parent.name).unwrap();
    assert_eq!(backend.version(), CgroupVersion::V1);
    assert_eq!(
        backend.controllers(),
        ["memory", "pids", "cpu", "cpuacct"].map(String::from)
    );
    assert!(!Path::new(ROOT).join("unified").join(&parent.name).exists());
}
