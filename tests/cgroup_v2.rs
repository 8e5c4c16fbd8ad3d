//! The cgroup v2 backend for real, and where warmbox puts its cgroups in a delegated
//! subtree: needs root and a unified hierarchy at /sys/fs/cgroup with memory, pids and cpu
//! (CI runs these in its v2 guest, `.ci/v2-guest.sh`; on a v1 host they skip, as
//! tests/cgroup_v1.rs does on v2). Each test works under cgroups named
//! `warmbox-test-<pid>-<tag>` and removes them; the host's own are only read.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{gated, open_gate, wait_until};

use warmbox_sandbox::cgroup::v2::{V2Backend, DAEMON_LEAF};
use warmbox_sandbox::cgroup::{probe, CgroupBackend, CgroupLimits, CgroupVersion};

const ROOT: &str = "/sys/fs/cgroup";
const MIB: u64 = 1 << 20;
const PYTHON: &str = "/usr/bin/python3";

/// Whether the host can run these tests; if not, says why and skips, or fails when
/// WARMBOX_REQUIRE_SANDBOX=1. A v1 host is not a missing capability: it skips.
fn sandbox_available(test: &str) -> bool {
    if !Path::new(ROOT).join("cgroup.controllers").exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {test}: {ROOT} is not a unified (v2) hierarchy; tests/cgroup_v1.rs covers it"
        );
        return false;
    }
    let why = if !nix::unistd::geteuid().is_root() {
        "needs root"
    } else if !Path::new(PYTHON).exists() {
        "needs /usr/bin/python3"
    } else {
        return true;
    };
    if std::env::var("WARMBOX_REQUIRE_SANDBOX").as_deref() == Ok("1") {
        panic!("{test}: {why}, and WARMBOX_REQUIRE_SANDBOX=1 requires it");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIP {test}: {why} (set WARMBOX_REQUIRE_SANDBOX=1 to make this a failure)"
    );
    false
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
    let pid = child.id() as i32;
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
    cg.add_process(child.id() as i32).unwrap();
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
    cg.add_process(child.id() as i32).unwrap();
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
    busy.add_process(child.id() as i32).unwrap();
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

/// A cgroup the way systemd makes a unit with `Delegate=yes`: `<slice>/<unit>`, the
/// slice enabling `slice_enables` for it, the unit marked `trusted.delegate=1`. Removed
/// (after killing what is left in it) when dropped.
struct Delegated {
    slice: PathBuf,
    unit: PathBuf,
}

impl Delegated {
    fn new(tag: &str, slice_enables: &str) -> Delegated {
        let slice = Path::new(ROOT).join(format!("{}.slice", name(tag)));
        let unit = slice.join("warmbox.service");
        fs::create_dir_all(&unit).unwrap();
        fs::write(slice.join("cgroup.subtree_control"), slice_enables).unwrap();
        let status = Command::new(PYTHON)
            .args([
                "-c",
                "import os, sys; os.setxattr(sys.argv[1], 'trusted.delegate', b'1')",
            ])
            .arg(&unit)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "setxattr trusted.delegate on {}",
            unit.display()
        );
        Delegated { slice, unit }
    }

    /// `warmbox <args>` started inside the unit's cgroup, to its end.
    fn warmbox(&self, args: &[&str]) -> Output {
        self.warmbox_through(&[], args)
    }

    /// [`Delegated::warmbox`], exec'd through `wrapper` (argv that execs what follows it).
    fn warmbox_through(&self, wrapper: &[&str], args: &[&str]) -> Output {
        let procs = self.unit.join("cgroup.procs");
        Command::new("/bin/sh")
            .args(["-c", "echo $$ > \"$0\" && exec \"$@\""])
            .arg(&procs)
            .args(wrapper)
            .arg(env!("CARGO_BIN_EXE_warmbox"))
            .args(args)
            .current_dir(common::repo())
            .env("WARMBOX_PROFILES", common::emulation::profiles_dir())
            .output()
            .unwrap()
    }

    /// Every cgroup directory under the slice, relative to it, sorted.
    fn tree(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for d in common::subdirs(dir) {
                let path = dir.join(&d);
                out.push(path.strip_prefix(base).unwrap().display().to_string());
                walk(&path, base, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.slice, &self.slice, &mut out);
        out.sort();
        out
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        let mut dirs: Vec<PathBuf> = self.tree().iter().map(|d| self.slice.join(d)).collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs.iter().chain([&self.slice]) {
            let _ = fs::write(d.join("cgroup.kill"), "1");
            let _ = fs::remove_dir(d);
        }
    }
}

/// The root's own file that a delegated warmbox must never write, and the root's cgroups
/// (those of this binary's other tests, running meanwhile, left out).
fn root_state() -> (String, Vec<String>) {
    let ours = format!("warmbox-test-{}-", std::process::id());
    (
        read(&Path::new(ROOT).join("cgroup.subtree_control")),
        common::subdirs(Path::new(ROOT))
            .into_iter()
            .filter(|d| !d.starts_with(&ours))
            .collect(),
    )
}

/// A bash run of `warmbox run` that prints `hi`, with its cgroup parent `parent`.
fn run_args(parent: &str) -> Vec<String> {
    [
        "run",
        "--profile",
        "bash",
        "--code",
        "cat /proc/self/cgroup; echo hi",
        "--cgroup-parent",
        parent,
    ]
    .map(String::from)
    .to_vec()
}

fn stdout_of_run(out: &Output) -> String {
    assert!(
        out.status.success(),
        "warmbox run failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let resp: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resp["status"], "ok", "{resp:#}");
    resp["run"]["stdout"].as_str().unwrap().to_string()
}

#[test]
fn a_systemd_delegated_cgroup_holds_everything_warmbox_makes() {
    if !sandbox_available("a_systemd_delegated_cgroup_holds_everything_warmbox_makes") {
        return;
    }
    // Controllers on at the root, as systemd has them (the guest's root starts empty).
    fs::write(
        Path::new(ROOT).join("cgroup.subtree_control"),
        "+memory +pids +cpu",
    )
    .unwrap();
    let unit = Delegated::new("systemd", "+memory +pids +cpu");
    let before = root_state();
    let slice_enabled = read(&unit.slice.join("cgroup.subtree_control"));

    let args = run_args("jobs");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = unit.warmbox(&args);
    // The job's cgroup namespace is rooted at its container's cgroup.
    assert_eq!(stdout_of_run(&out), "0::/\nhi\n");
    // Inside the unit: warmbox in its leaf, its parent beside it (removed after the run,
    // which made it), nothing else; nothing written above the unit.
    assert_eq!(
        unit.tree(),
        ["warmbox.service", &format!("warmbox.service/{DAEMON_LEAF}")]
    );
    assert_eq!(
        read(&unit.unit.join("cgroup.subtree_control")),
        "cpu memory pids"
    );
    assert_eq!(
        read(&unit.slice.join("cgroup.subtree_control")),
        slice_enabled
    );
    assert_eq!(root_state(), before);
}

#[test]
fn a_cgroup_namespace_root_is_the_containers_own_cgroup() {
    if !sandbox_available("a_cgroup_namespace_root_is_the_containers_own_cgroup") {
        return;
    }
    fs::write(
        Path::new(ROOT).join("cgroup.subtree_control"),
        "+memory +pids +cpu",
    )
    .unwrap();
    // A container: its own cgroup, a cgroup namespace rooted there, cgroupfs mounted anew.
    let ctr = Delegated::new("ctr", "+memory +pids +cpu");
    let before = root_state();
    let wrapper = [
        "unshare",
        "--cgroup",
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        "umount /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"",
        "sh",
    ];
    let args = run_args("warmbox");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ctr.warmbox_through(&wrapper, &args);
    assert_eq!(stdout_of_run(&out), "0::/\nhi\n");
    assert_eq!(
        unit_tree_names(&ctr),
        [format!("warmbox.service/{DAEMON_LEAF}")]
    );
    assert_eq!(root_state(), before);
}

/// The cgroups inside the unit (the unit itself left out).
fn unit_tree_names(d: &Delegated) -> Vec<String> {
    d.tree()
        .into_iter()
        .filter(|p| p != "warmbox.service")
        .collect()
}

#[test]
fn a_delegated_cgroup_without_a_controller_is_refused_by_name() {
    if !sandbox_available("a_delegated_cgroup_without_a_controller_is_refused_by_name") {
        return;
    }
    fs::write(
        Path::new(ROOT).join("cgroup.subtree_control"),
        "+memory +pids +cpu",
    )
    .unwrap();
    let unit = Delegated::new("nocpu", "+memory +pids");
    let before = root_state();
    let args = run_args("jobs");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = unit.warmbox(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the cgroup {} lacks the cpu controller",
            unit.unit.display()
        )) && stderr.contains("Delegate=yes"),
        "{stderr}"
    );
    // Nothing moved, nothing made.
    assert_eq!(unit.tree(), ["warmbox.service"]);
    assert_eq!(read(&unit.unit.join("cgroup.subtree_control")), "");
    assert_eq!(root_state(), before);
}
