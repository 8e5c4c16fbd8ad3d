//! A real sandbox (root, namespaces, cgroups) with its own cgroup parent, or a clear skip
//! when the host cannot give one — unless `WARMBOX_REQUIRE_SANDBOX=1` (CI), where a missing
//! capability fails the test. The engine forks its containers from the `warmbox` binary
//! (`init_exe`), which only the root package's tests can name.
//!
//! The shared harness runs its requests the way the service does: on containers of a pool
//! that recycles them (`WARMBOX_RECYCLE_RUNS` steps each, 100 by default), so that the
//! tests' runs land in containers that served earlier tests' runs. The pool and its
//! containers live on the harness's own runtime (each test has its own, which ends with
//! it), and are destroyed when the test process exits. `WARMBOX_RECYCLE_RUNS=1` gives
//! every step a new container, as a private harness always does (those tests look at what
//! is left under their cgroup parent).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use warmbox_runner::profile::ProfileSet;
use warmbox_runner::request::{self, RunRequest, RunResponse, StepResult};
use warmbox_runner::Runner;
use warmbox_sandbox::config::EngineConfig;
use warmbox_sandbox::pool::{Pool, Recycle};
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
    /// The recycling pool `runner` takes its containers from, on its own runtime.
    recycling: Option<(Arc<Pool>, tokio::runtime::Runtime)>,
}

/// Steps a container of the shared harness serves: `WARMBOX_RECYCLE_RUNS`, else the
/// service's default.
pub fn recycle_runs() -> u32 {
    std::env::var("WARMBOX_RECYCLE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Recycle::DEFAULT.runs)
}

/// The shared harness of this test binary (parent [`CGROUP_PARENT`]), or `None` (after
/// [`skip`]) where the host cannot sandbox.
pub fn shared(init_exe: &Path) -> Option<&'static Harness> {
    match SHARED.get_or_init(|| build(init_exe, CGROUP_PARENT, recycle_runs())) {
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
    match build(init_exe, cgroup_parent, 1) {
        Ok(h) => Some(h),
        Err(why) => {
            skip(&why);
            None
        }
    }
}

static SHARED: OnceLock<Result<Harness, String>> = OnceLock::new();

/// At the test process's exit: the shared harness's pool destroys its containers.
extern "C" fn shut_the_shared_pool() {
    if let Some(Ok(Harness {
        recycling: Some((pool, rt)),
        ..
    })) = SHARED.get()
    {
        rt.block_on(pool.shutdown());
    }
}

/// The processes of the shared harness's warm containers, once every container it handed
/// out is back (or destroyed) and none is being made: each init, its run's init and that one's waiting job
/// process. An init whose tree has any other shape counts alone (what else is there shows
/// as left over).
pub fn warm_processes() -> Vec<i32> {
    let Some(Ok(Harness {
        recycling: Some((pool, _)),
        ..
    })) = SHARED.get()
    else {
        return Vec::new();
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (pool.out_total() > 0 || pool.pending_total() > 0) && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let children = crate::children;
    let mut pids = Vec::new();
    for init in pool.warm_pids() {
        pids.push(init);
        if let [run] = children(init)[..] {
            if let [job] = children(run)[..] {
                if children(job).is_empty() {
                    pids.extend([run, job]);
                }
            }
        }
    }
    pids
}

/// A harness whose containers serve `runs` steps each (1: no pool at all).
fn build(init_exe: &Path, cgroup_parent: &str, runs: u32) -> Result<Harness, String> {
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
    if runs <= 1 {
        let runner = Runner::new(sandbox.clone());
        return Ok(Harness {
            sandbox,
            profiles,
            runner,
            recycling: None,
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("the harness's runtime: {e}"))?;
    let specs = warmbox_runner::runner::warm_specs(&profiles, &|_| 2);
    let pool = Pool::new(
        sandbox.clone(),
        specs,
        2,
        Recycle {
            runs,
            ..Recycle::DEFAULT
        },
    );
    // SAFETY: registers a function without arguments to run at exit; it only reads the
    // harness through its OnceLock.
    unsafe { libc::atexit(shut_the_shared_pool) };
    let runner = Runner::with_pool(pool.clone());
    Ok(Harness {
        sandbox,
        profiles,
        runner,
        recycling: Some((pool, rt)),
    })
}

impl Harness {
    /// Validates and runs a request given as JSON.
    pub async fn run(&self, req: serde_json::Value) -> RunResponse {
        let req: RunRequest = serde_json::from_value(req).expect("request JSON matches RunRequest");
        let valid = request::validate(&req, &self.profiles).expect("request is valid");
        let runner = self.runner.clone();
        let run = async move { runner.run(&valid).await };
        match &self.recycling {
            Some((_, rt)) => rt.spawn(run).await.expect("the harness's run task"),
            None => run.await,
        }
        .expect("the sandbox runs the request")
    }

    /// The recycling pool of the shared harness (`None`: every step has a new container).
    pub fn pool(&self) -> Option<&Arc<Pool>> {
        self.recycling.as_ref().map(|(pool, _)| pool)
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
