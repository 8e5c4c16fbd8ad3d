//! The cgroup v2 backend for real: needs root and a unified hierarchy at /sys/fs/cgroup
//! with memory, pids and cpu (CI runs these in its v2 guest, `.ci/v2-guest.sh`; on a v1
//! host they skip, as the cgroup_v1 tests do on v2). Where warmbox puts its cgroups in a
//! delegated subtree is the root package's tests/cgroup_delegation.rs. Each test works
//! under its own parent `warmbox-test-<pid>-<tag>` and removes it; the host's own cgroups
//! are only read.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use warmbox_testkit::kernel::cgroup_backend_available;
use warmbox_testkit::{gated, open_gate, pid_of, wait_until};

use warmbox_sandbox::cgroup::v2::V2Backend;
use warmbox_sandbox::cgroup::{probe, CgroupBackend, CgroupLimits, CgroupVersion};

const ROOT: &str = "/sys/fs/cgroup";
const MIB: u64 = 1 << 20;
const PYTHON: &str = "/usr/bin/python3";

fn sandbox_available(test: &str) -> bool {
    cgroup_backend_available(CgroupVersion::V2, test)
}

fn name(tag: &str) -> String {
    format!("warmbox-test-{}-{tag}", std::process::id())
}

/// warmbox's parent for one test, at the root; removed with everything in it when dropped.
struct TestParent {
    name: String,
    backend: V2Backend,
}

impl TestParent {
    fn new(tag: &str) -> TestParent {
        let name = name(tag);
        let backend = V2Backend::new(Path::new(ROOT), &name).unwrap();
        TestParent { name, backend }
    }

    fn dir(&self, cgroup: &str) -> PathBuf {
        Path::new(ROOT).join(&self.name).join(cgroup)
    }

    fn read(&self, cgroup: &str, file: &str) -> String {
        read(&self.dir(cgroup).join(file))
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        let _ = self.backend.remove_stale();
        let _ = fs::remove_dir(Path::new(ROOT).join(&self.name));
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn limits(memory_bytes: u64, pids: u64, cpu_cores: Option<f64>) -> CgroupLimits {
    CgroupLimits {
        memory_bytes,
        pids,
        cpu_cores,
    }
}

fn procs(dir: &Path) -> Vec<i32> {
    read(&dir.join("cgroup.procs"))
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
    assert_eq!(parent.read("run", "memory.max"), "268435456");
    assert_eq!(parent.read("run", "memory.swap.max"), "0");
    assert_eq!(parent.read("run", "pids.max"), "16");
    assert_eq!(parent.read("run", "cpu.max"), "100000 100000");
    cg.set_limits(&limits(128 * MIB, 8, Some(0.5))).unwrap();
    assert_eq!(parent.read("run", "memory.max"), "134217728");
    assert_eq!(parent.read("run", "pids.max"), "8");
    assert_eq!(parent.read("run", "cpu.max"), "50000 100000");
    cg.set_limits(&limits(128 * MIB, 8, Some(1.0))).unwrap();

    let (mut child, gate) = gated(&[PYTHON, "-c", "x = b'\\x01' * (32 << 20)\nwhile True: pass"]);
    let pid = pid_of(&child);
    cg.add_process(pid).unwrap();
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        format!("0::/{}/run\n", parent.name)
    );
    cg.reset_peaks().unwrap();
    open_gate(gate);

    let first = cg.cpu_ns().unwrap();
    wait_until("200 ms of CPU", || cg.cpu_ns().unwrap() >= 200_000_000);
    // Emulated, python can still be starting after 200 ms of CPU: wait for its allocation.
    wait_until("the 32 MiB allocation", || {
        parent.read("run", "memory.current").parse::<u64>().unwrap() >= 32 * MIB
    });
    assert!(cg.cpu_ns().unwrap() > first);
    let usage = cg.usage().unwrap();
    assert!(usage.cpu_ns >= 200_000_000, "{usage:?}");
    assert!(usage.user_ns > 0, "{usage:?}");
    assert!(
        usage.memory_peak_bytes >= 32 * MIB && usage.memory_peak_bytes <= 128 * MIB,
        "{usage:?}"
    );
    assert_eq!(usage.oom_kills, 0);
    let expected_pids_peak = parent.dir("run").join("pids.peak").exists().then_some(1);
    assert_eq!(usage.pids_peak, expected_pids_peak);

    cg.kill_all().unwrap();
    // cgroup.kill signals; the processes leave the list as they die.
    wait_until("the cgroup to empty", || {
        procs(&parent.dir("run")).is_empty()
    });
    cg.destroy().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(!parent.dir("run").exists());
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
    assert_eq!(parent.read("run", "cpu.max"), "max 100000");
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
    assert!(!parent.dir("run").exists());
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
    wait_until("six processes", || procs(&parent.dir("run")).len() == 6);
    if parent.dir("run").join("pids.peak").exists() {
        assert_eq!(cg.usage().unwrap().pids_peak, Some(6));
    }
    cg.kill_all().unwrap();
    // cgroup.kill signals; the processes leave the list as they die.
    wait_until("the cgroup to empty", || {
        procs(&parent.dir("run")).is_empty()
    });
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    cg.destroy().unwrap();
    assert!(!parent.dir("run").exists());
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
    drop(busy);
    assert_eq!(parent.backend.list().unwrap(), ["busy", "idle"]);
    assert_eq!(parent.backend.remove_stale().unwrap(), 2);
    assert!(parent.backend.list().unwrap().is_empty());
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    for name in ["busy", "idle"] {
        assert!(!parent.dir(name).exists(), "{name}");
    }
    assert!(Path::new(ROOT).join(&parent.name).is_dir());
}

#[test]
fn probe_chooses_v2_at_the_root_on_this_host() {
    if !sandbox_available("probe_chooses_v2_at_the_root_on_this_host") {
        return;
    }
    let parent = TestParent::new("probe");
    let backend = probe(&parent.name).unwrap();
    assert_eq!(backend.version(), CgroupVersion::V2);
    assert_eq!(
        backend.controllers(),
        ["memory", "pids", "cpu"].map(String::from)
    );
    assert_eq!(
        backend.describe_parent(),
        format!(
            "parent {ROOT}/{} under the hierarchy's root (not delegated)",
            parent.name
        )
    );
}
