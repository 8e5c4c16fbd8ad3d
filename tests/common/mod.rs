//! Shared set-up of the integration tests: a real sandbox (root, namespaces, cgroups) with
//! its own cgroup parent, or a clear skip when the host cannot give one — unless
//! `WARMBOX_REQUIRE_SANDBOX=1` (CI), where a missing capability fails the test.

#![allow(dead_code)]

pub mod cgroupfs;
pub mod emulation;
pub mod kernel;
pub mod server;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use warmbox_runner::profile::ProfileSet;
use warmbox_runner::request::{self, RunRequest, RunResponse, StepResult};
use warmbox_runner::Runner;
use warmbox_sandbox::config::EngineConfig;
use warmbox_sandbox::Sandbox;

/// cgroup parent of every test container (in each v1 controller, or the one v2 tree).
pub const CGROUP_PARENT: &str = "warmbox-test";

/// The warm spec of the step `name` (`bash/run`) of `h`'s profiles, kept `target` warm.
pub fn warm_spec(h: &Harness, name: &str, target: usize) -> warmbox_sandbox::pool::WarmSpec {
    warmbox_runner::runner::warm_specs(&h.profiles, &|_| target)
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no warm spec {name}"))
}

/// The engine and profiles shared by the tests of one test binary.
pub struct Harness {
    pub sandbox: Arc<Sandbox>,
    pub profiles: ProfileSet,
    pub runner: Runner,
}

fn require() -> bool {
    kernel::require_sandbox()
}

/// Fails the test in CI, else prints why it is skipped.
pub fn skip(why: &str) {
    if require() {
        panic!("WARMBOX_REQUIRE_SANDBOX=1 but {why}");
    }
    eprintln!("SKIPPED: {why} (set WARMBOX_REQUIRE_SANDBOX=1 to make this a failure)");
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// uids per test binary: 2 per container slot, 256 slots.
pub const UID_BLOCK: u32 = 1024;

/// A uid block of its own for each test binary, so that parallel test binaries never share
/// container uids (tests look for leftover processes by uid).
pub fn uid_base() -> u32 {
    let exe = std::env::current_exe().unwrap_or_default();
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.split('-').next().unwrap_or_default().to_string();
    let h = name
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    700_000 + UID_BLOCK * (h % 4096)
}

/// Host processes whose uid lies in this binary's container uid block: (pid, uid).
pub fn processes_in_uid_block() -> Vec<(i32, u32)> {
    processes_in(uid_base(), UID_BLOCK)
        .into_iter()
        .map(|(pid, uid, _)| (pid, uid))
        .collect()
}

/// Host processes whose uid lies in `base..base + len`: (pid, uid, name).
pub fn processes_in(base: u32, len: u32) -> Vec<(i32, u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        let uid = field("Uid:").and_then(|u| {
            u.split_whitespace()
                .next()
                .and_then(|u| u.parse::<u32>().ok())
        });
        if let (Some(uid), Some(name)) = (uid, field("Name:")) {
            if (base..base + len).contains(&uid) {
                found.push((pid, uid, name));
            }
        }
    }
    found
}

fn build() -> Result<Harness, String> {
    build_with(CGROUP_PARENT)
}

/// A harness with its own engine and cgroup parent (for tests that check that nothing is
/// left behind: they look at their own parent only). `None` after `skip`.
pub fn private_harness(cgroup_parent: &str) -> Option<Harness> {
    match build_with(cgroup_parent) {
        Ok(h) => Some(h),
        Err(why) => {
            skip(&why);
            None
        }
    }
}

fn build_with(cgroup_parent: &str) -> Result<Harness, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the sandbox tests need root".into());
    }
    let report = warmbox_sandbox::check::run(cgroup_parent);
    if !report.can_sandbox() {
        return Err(format!("this host cannot sandbox:\n{}", report.text()));
    }
    let profiles = ProfileSet::load_dir(&emulation::profiles_dir()).map_err(|e| e.to_string())?;
    let config = EngineConfig {
        init_exe: PathBuf::from(env!("CARGO_BIN_EXE_warmbox")),
        state_dir: PathBuf::from("/run/warmbox-test"),
        cgroup_parent: cgroup_parent.into(),
        uid_base: uid_base(),
        slots: 256,
        profiles_dir: emulation::profiles_dir(),
    };
    let sandbox = Sandbox::new(config).map_err(|e| e.to_string())?;
    let runner = Runner::new(sandbox.clone());
    Ok(Harness {
        sandbox,
        profiles,
        runner,
    })
}

/// The shared harness, or `None` (after `skip`) where the host cannot sandbox.
pub fn harness() -> Option<&'static Harness> {
    static H: OnceLock<Result<Harness, String>> = OnceLock::new();
    match H.get_or_init(build) {
        Ok(h) => Some(h),
        Err(why) => {
            skip(why);
            None
        }
    }
}

impl Harness {
    /// Validates and runs a request given as JSON.
    pub async fn run(&self, req: serde_json::Value) -> RunResponse {
        let req: RunRequest = serde_json::from_value(req).expect("request JSON matches RunRequest");
        let valid = request::validate(&req, &self.profiles).expect("request is valid");
        self.runner
            .run(&valid)
            .await
            .expect("the sandbox runs the request")
    }

    /// A C program compiled by the c profile (the compile must succeed), run with `args`
    /// and `limits`: the run step.
    pub async fn c(&self, src: &str, args: &[&str], limits: serde_json::Value) -> StepResult {
        let resp = self
            .run(
                serde_json::json!({"profile": "c", "files": [{"name": "main.c", "content": src}],
                    "args": args, "limits": limits}),
            )
            .await;
        let compile = resp.compile.as_ref().expect("the c profile compiles");
        assert_eq!(
            compile.status,
            request::StepStatus::Ok,
            "compile failed: {}",
            compile.stderr
        );
        resp.run.expect("run step present")
    }

    /// Runs `cmd` (argv) under the bash profile with default limits and returns the run step.
    pub async fn sh(&self, script: &str) -> StepResult {
        self.run(serde_json::json!({"profile": "bash", "cmd": ["/bin/bash", "-c", script]}))
            .await
            .run
            .expect("run step present")
    }
}

impl Drop for Harness {
    /// A private harness's cgroup parent is its own: leave the host as it was.
    fn drop(&mut self) {
        if self.sandbox.config().cgroup_parent != CGROUP_PARENT {
            let _ = self.sandbox.cgroups().remove_parent();
        }
    }
}

/// The names of the directories in `dir`, sorted (none when it is missing).
pub fn subdirs(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The fields of `/proc/<pid>/stat` after the command name: `[0]` is the state, `[1]` the
/// parent pid, `[16]` the nice value. `None` when the process is gone.
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// The names of the cgroups now under the test parent.
pub fn live_cgroups(h: &Harness) -> Vec<String> {
    h.sandbox.cgroups().list().unwrap_or_default()
}

/// Status, exit code and signal of a step, with the whole step in the message.
pub fn expect(
    r: &StepResult,
    status: request::StepStatus,
    exit_code: Option<i32>,
    signal: Option<i32>,
) {
    assert_eq!(
        (r.status, r.exit_code, r.signal),
        (status, exit_code, signal),
        "unexpected outcome: {r:#?}"
    );
}

/// The step ended well: ok, exit 0.
pub fn expect_ok(r: &StepResult) {
    expect(r, request::StepStatus::Ok, Some(0), None);
}

/// Starts `argv` behind a gate: a shell that waits for a line on stdin, then execs it, so
/// that it can be moved into a cgroup before it runs ([`open_gate`]).
pub fn gated(argv: &[&str]) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", "read go && exec \"$@\"", "sh"])
        .args(argv)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn /bin/sh");
    let stdin = child.stdin.take().expect("stdin pipe");
    (child, stdin)
}

/// Lets the program behind the gate of [`gated`] run.
pub fn open_gate(mut stdin: std::process::ChildStdin) {
    use std::io::Write;
    stdin.write_all(b"go\n").expect("open the gate");
}

/// Polls `ready` every few ms for up to 10 s (scaled on a slow host).
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline =
        std::time::Instant::now() + emulation::budget(std::time::Duration::from_secs(10));
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
