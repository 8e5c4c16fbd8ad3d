//! Where `warmbox` puts its cgroups in a delegated subtree (a systemd unit with
//! `Delegate=yes`, a container's cgroup namespace), the binary run for real: needs root and
//! a unified hierarchy at /sys/fs/cgroup with memory, pids and cpu (CI runs these in its v2
//! guest, `.ci/v2-guest.sh`; on a v1 host they skip). The v2 backend itself is tested in
//! crates/warmbox-sandbox/tests/cgroup_v2.rs. Each test works under cgroups named
//! `warmbox-test-<pid>-<tag>` and removes them; the host's own are only read.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use warmbox_testkit::kernel::cgroup_backend_available;

use warmbox_sandbox::cgroup::v2::DAEMON_LEAF;
use warmbox_sandbox::cgroup::CgroupVersion;

const ROOT: &str = "/sys/fs/cgroup";
const PYTHON: &str = "/usr/bin/python3";

/// The v2 backend's tests' condition: the same host (a v1 host skips).
fn sandbox_available(test: &str) -> bool {
    cgroup_backend_available(CgroupVersion::V2, test)
}

fn name(tag: &str) -> String {
    format!("warmbox-test-{}-{tag}", std::process::id())
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
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
            .current_dir(warmbox_testkit::repo())
            .env(
                "WARMBOX_PROFILES",
                warmbox_testkit::emulation::profiles_dir(),
            )
            .output()
            .unwrap()
    }

    /// Every cgroup directory under the slice, relative to it, sorted.
    fn tree(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for d in warmbox_testkit::subdirs(dir) {
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
        warmbox_testkit::subdirs(Path::new(ROOT))
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
