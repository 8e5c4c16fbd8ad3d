//! A real sandbox (root, namespaces, cgroups) with its own cgroup parent, or a clear skip
//! when the host cannot give one — unless `WARMBOX_REQUIRE_SANDBOX=1` (CI), where a missing
//! capability fails the test. The engine forks its containers from the `warmbox` binary
//! (`init_exe`), which only the root package's tests can name.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use warmbox_runner::profile::ProfileSet;
use warmbox_runner::request::{self, RunRequest, RunResponse, StepResult};
use warmbox_runner::Runner;
use warmbox_sandbox::config::EngineConfig;
use warmbox_sandbox::Sandbox;

use crate::{emulation, skip, uid_base};

/// cgroup parent of every test container (in each v1 controller, or the one v2 tree).
pub const CGROUP_PARENT: &str = "warmbox-test";

/// The engine and profiles shared by the tests of one test binary.
pub struct Harness {
    /// The engine.
    pub sandbox: Arc<Sandbox>,
    /// The profiles the tests run under ([`emulation::profiles_dir`]).
    pub profiles: ProfileSet,
    /// The runner of compile and run steps over `sandbox`.
    pub runner: Runner,
}

/// The shared harness of this test binary (parent [`CGROUP_PARENT`]), or `None` (after
/// [`skip`]) where the host cannot sandbox.
pub fn shared(init_exe: &Path) -> Option<&'static Harness> {
    static H: OnceLock<Result<Harness, String>> = OnceLock::new();
    match H.get_or_init(|| build(init_exe, CGROUP_PARENT)) {
        Ok(h) => Some(h),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// A harness with its own engine and cgroup parent (for tests that check that nothing is
/// left behind: they look at their own parent only). `None` after [`skip`].
pub fn private(init_exe: &Path, cgroup_parent: &str) -> Option<Harness> {
    match build(init_exe, cgroup_parent) {
        Ok(h) => Some(h),
        Err(why) => {
            skip(&why);
            None
        }
    }
}

fn build(init_exe: &Path, cgroup_parent: &str) -> Result<Harness, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the sandbox tests need root".into());
    }
    let report = warmbox_sandbox::check::run(cgroup_parent);
    if !report.can_sandbox() {
        return Err(format!("this host cannot sandbox:\n{}", report.text()));
    }
    let profiles = ProfileSet::load_dir(&emulation::profiles_dir()).map_err(|e| e.to_string())?;
    let config = EngineConfig {
        init_exe: init_exe.to_path_buf(),
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

    /// The warm spec of the step `name` (`bash/run`) of the profiles, kept `target` warm.
    pub fn warm_spec(&self, name: &str, target: usize) -> warmbox_sandbox::pool::WarmSpec {
        warmbox_runner::runner::warm_specs(&self.profiles, &|_| target)
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no warm spec {name}"))
    }

    /// The names of the cgroups now under the harness's parent.
    pub fn live_cgroups(&self) -> Vec<String> {
        self.sandbox.cgroups().list().unwrap_or_default()
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
