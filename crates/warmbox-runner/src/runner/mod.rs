//! A request becomes steps: compile (when the profile compiles) in one container, then run
//! in another, or one run per test, each judged by a checker or an interactor
//! ([`crate::judging`]). Artifacts move between containers through the server: the run
//! container never shares anything with the container the compiler ran in.

pub mod cache;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::admission::Admission;
use crate::profile::{Limits, Profile};
use crate::request::{
    encode_output, Encoding, RunResponse, RunStatus, StepResult, StepStatus, ValidatedRequest,
};
use cache::{CompileCache, Compiled, Inputs};
use warmbox_sandbox::pool::{Pool, WarmSpec};
use warmbox_sandbox::step::cgroup_limits;
use warmbox_sandbox::{
    BoxFile, Container, Layout, OutputMode, Sandbox, SandboxError, StepOutcome, StepSpec,
};

/// Limits of a compile step when the profile names none.
pub const DEFAULT_COMPILE_LIMITS: Limits = Limits {
    cpu_ms: 10_000,
    wall_ms: 20_000,
    memory_mb: 512,
    pids: 64,
    output_bytes: 1 << 20,
    file_size_bytes: 64 << 20,
    disk_mb: 256,
    stack_mb: None,
};

/// At most this much is carried from the compile container to the run container.
const MAX_ARTIFACT_BYTES: u64 = 128 << 20;
/// At most this many files are carried.
const MAX_ARTIFACT_FILES: u64 = 10_000;

/// Runs validated requests on a sandbox, taking containers from a pool when it has one.
#[derive(Debug, Clone)]
pub struct Runner {
    sandbox: Arc<Sandbox>,
    /// With a pool (the service), used containers are destroyed in the background;
    /// without (the command line, the tests), before answering.
    pool: Option<Arc<Pool>>,
    /// Where a request's tests get their extra places to run in parallel.
    pub(crate) admission: Arc<Admission>,
    cache: Arc<CompileCache>,
}

/// The compile cache's size unless configured: a few hundred compiled programs.
pub const DEFAULT_COMPILE_CACHE_BYTES: u64 = 256 << 20;

/// Which step of a profile a container serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// The compile step.
    Compile,
    /// The run step.
    Run,
}

/// The limits a profile's step has by default.
pub fn default_limits(profile: &Profile, step: StepKind) -> Limits {
    match step {
        StepKind::Compile => profile.compile_limits.unwrap_or(DEFAULT_COMPILE_LIMITS),
        StepKind::Run => profile.limits.defaults,
    }
}

/// The containers a pool keeps warm for `profiles`: every available profile's run step,
/// and its compile step where it compiles; `target` gives each layout's count by name
/// (`python3/run`, `c/compile`).
pub fn warm_specs(
    profiles: &crate::profile::ProfileSet,
    target: &dyn Fn(&str) -> usize,
) -> Vec<WarmSpec> {
    let mut specs = Vec::new();
    for p in profiles.all().iter().filter(|p| p.availability.available) {
        let profile = &p.profile;
        for step in steps(profile) {
            let limits = default_limits(profile, step);
            let name = layout_name(profile, step);
            specs.push(WarmSpec {
                target: target(&name),
                name,
                layout: layout(profile, &limits),
                limits: cgroup_limits(&limits, profile.cpu_cores),
            });
        }
    }
    specs
}

/// The steps of `profile`: its compile step where it compiles, then its run step.
fn steps(profile: &Profile) -> impl Iterator<Item = StepKind> {
    profile
        .compile
        .is_some()
        .then_some(StepKind::Compile)
        .into_iter()
        .chain([StepKind::Run])
}

/// A step's name in warm targets and metrics: `<profile>/run`, `<profile>/compile`.
fn layout_name(profile: &Profile, step: StepKind) -> String {
    let step = match step {
        StepKind::Run => "run",
        StepKind::Compile => "compile",
    };
    format!("{}/{step}", profile.name)
}

/// The names of every profile's steps (`<profile>/run`, `<profile>/compile`), available
/// here or not: what a warm target may name.
pub fn layout_names(profiles: &crate::profile::ProfileSet) -> Vec<String> {
    profiles
        .all()
        .iter()
        .flat_map(|p| steps(&p.profile).map(|step| layout_name(&p.profile, step)))
        .collect()
}

/// The container layout of a profile's steps.
pub fn layout(profile: &Profile, limits: &Limits) -> Layout {
    Layout {
        binds: profile.binds.clone(),
        seccomp: profile.seccomp.clone(),
        disk_bytes: limits.disk_mb << 20,
    }
}

/// The submission's run step: `argv` under `limits`, with the request's env.
pub(crate) fn submission_spec(
    req: &ValidatedRequest,
    argv: Vec<String>,
    limits: Limits,
    stdin: Vec<u8>,
    output: OutputMode,
) -> StepSpec {
    StepSpec {
        argv,
        env: env_list(&req.env),
        limits,
        cpu_cores: req.profile.profile.cpu_cores,
        stdin,
        output,
    }
}

pub(crate) fn env_list(env: &BTreeMap<String, String>) -> Vec<String> {
    env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The step that never starts because its files (a compile's artifacts, known only now)
/// do not fit in its tmpfs or leave its processes no memory (files in `/box` count toward
/// `memory_mb`): the request's own files were checked against its limits up front.
pub(crate) fn files_do_not_fit(files: &[&BoxFile], limits: &Limits) -> Option<StepOutcome> {
    use crate::request::{files_overflow, FilesOverflow, FilesUse, FILES_MEMORY_HEADROOM};
    let used = FilesUse::of(
        files
            .iter()
            .map(|f| (f.path.as_str(), f.content.len() as u64)),
    );
    let total = used.bytes;
    let (overflow, why) = files_overflow(&used, limits)?;
    let why = why.map(|w| format!(": {w}")).unwrap_or_default();
    let (status, message) = match overflow {
        FilesOverflow::Disk => (
            StepStatus::FileSizeLimit,
            format!(
                "the step's files in /box, {total} bytes in all, do not fit in its disk_mb {}{why}",
                limits.disk_mb
            ),
        ),
        FilesOverflow::Memory => (
            StepStatus::MemoryLimit,
            format!(
                "the step's files in /box, {total} bytes in all, do not fit in its memory_mb {} \
                 (files count toward it, and {} MiB stay free for the processes){why}",
                limits.memory_mb,
                FILES_MEMORY_HEADROOM >> 20
            ),
        ),
    };
    Some(StepOutcome::failed(status, message))
}

/// A step result for warmbox's own failure: the run reports it instead of vanishing.
pub(crate) fn internal_error(e: &SandboxError) -> StepOutcome {
    StepOutcome::failed(StepStatus::InternalError, e.to_string())
}

impl Runner {
    /// A runner on `sandbox` that creates a container per step.
    pub fn new(sandbox: Arc<Sandbox>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Runner {
            sandbox,
            pool: None,
            admission: Arc::new(Admission::new(cpus, 0)),
            cache: Arc::new(CompileCache::new(DEFAULT_COMPILE_CACHE_BYTES)),
        }
    }

    /// A runner that takes its containers from `pool` and gives them back after each step
    /// (to be recycled or destroyed in the background).
    pub fn with_pool(pool: Arc<Pool>) -> Self {
        Runner {
            pool: Some(pool.clone()),
            ..Runner::new(pool.sandbox().clone())
        }
    }

    /// Tests run in parallel on the places of `admission` (the service's own) that are
    /// free, besides the one their request holds.
    pub fn with_admission(mut self, admission: Arc<Admission>) -> Self {
        self.admission = admission;
        self
    }

    /// A compile cache of `max_bytes` (0: none).
    pub fn with_compile_cache(mut self, max_bytes: u64) -> Self {
        self.cache = Arc::new(CompileCache::new(max_bytes));
        self
    }

    /// The compile cache.
    pub fn compile_cache(&self) -> &CompileCache {
        &self.cache
    }

    pub(crate) async fn container(
        &self,
        profile: &Profile,
        step: StepKind,
        limits: &Limits,
    ) -> Result<Container, SandboxError> {
        // The layout is the profile's: a request's own disk size is applied by the init
        // at job time, so it does not miss the warm containers.
        let layout = layout(profile, &default_limits(profile, step));
        let cg = cgroup_limits(limits, profile.cpu_cores);
        match &self.pool {
            Some(pool) => pool.take(&layout, &cg).await,
            None => self.sandbox.create(&layout, &cg).await,
        }
    }

    pub(crate) async fn finish(&self, c: Container) {
        match &self.pool {
            Some(pool) => pool.give_back(c),
            None => c.destroy().await,
        }
    }

    /// Runs `step` in a container of the pool (or a fresh one) and gives it back. The outer `Err` is "no container
    /// could be had"; the inner one is the step's own failure. A container that failed
    /// before its init was handed the job (its init died while it waited, or the files
    /// could not be written) ran nothing of the request, so the step is tried once more
    /// in another; a failure after that is the step's.
    async fn in_container(
        &self,
        profile: &Profile,
        kind: StepKind,
        limits: &Limits,
        files: &[&BoxFile],
        spec: &StepSpec,
    ) -> Result<Result<StepAndFiles, SandboxError>, SandboxError> {
        if let Some(step) = files_do_not_fit(files, limits) {
            return Ok(Ok((step, None)));
        }
        let mut retried = false;
        loop {
            let mut c = self.container(profile, kind, limits).await?;
            let r = Self::step_in(&mut c, kind, files, spec).await;
            let retry = r.is_err() && !c.job_sent() && !retried;
            if let (true, Err(e)) = (retry, &r) {
                tracing::warn!(container = c.id(), error = %e, "container failed before its job; trying another");
            }
            self.finish(c).await;
            if !retry {
                return Ok(r);
            }
            retried = true;
        }
    }

    /// A run step of `profile` in a fresh container; warmbox's own failure inside it is
    /// the step's `internal_error`.
    pub(crate) async fn run_step(
        &self,
        profile: &Profile,
        files: &[&BoxFile],
        spec: &StepSpec,
    ) -> Result<StepOutcome, SandboxError> {
        Ok(self
            .in_container(profile, StepKind::Run, &spec.limits, files, spec)
            .await?
            .map_or_else(|e| internal_error(&e), |(step, _)| step))
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Runs `req` to its response. `Err` only when no container could be created at all
    /// (the host cannot sandbox: [`crate::Error::Sandbox`]); a failure inside a step is
    /// that step's `internal_error`.
    pub async fn run(&self, req: &ValidatedRequest) -> Result<RunResponse, crate::Error> {
        let profile = &req.profile.profile;
        let (compile, files) = match self.build(req).await? {
            Build::Ready { compile, files } => (compile, files),
            Build::Failed(step) => {
                let status = match step.status {
                    StepStatus::InternalError => RunStatus::Step(StepStatus::InternalError),
                    _ => RunStatus::CompileError,
                };
                return Ok(response(status, Some(step), None));
            }
        };
        if let Some(judging) = &req.judging {
            return Ok(self.judge(req, judging, compile, &files).await?);
        }
        let spec = submission_spec(
            req,
            req.run_cmd.clone(),
            req.limits,
            req.stdin.clone(),
            req.output_mode,
        );
        let files: Vec<&BoxFile> = files.iter().collect();
        let step = self.run_step(profile, &files, &spec).await?;
        let run = encode(step, req.output_encoding);
        Ok(response(RunStatus::Step(run.status), compile, Some(run)))
    }

    /// The files a request's run starts with: its own, or what its compile left in `/box`
    /// (from the compile cache when the same inputs compiled before).
    pub(crate) async fn build(&self, req: &ValidatedRequest) -> Result<Build, SandboxError> {
        let profile = &req.profile.profile;
        let files: Vec<BoxFile> = req
            .files
            .iter()
            .map(|(path, content)| BoxFile {
                path: path.clone(),
                content: content.clone(),
                executable: false,
            })
            .collect();
        let compiles = req.files.iter().any(|(p, _)| *p == profile.source_file);
        let (Some(cmd), true) = (&profile.compile, compiles) else {
            return Ok(Build::Ready {
                compile: None,
                files: Arc::new(files),
            });
        };
        let limits = req
            .compile_limits
            .or(profile.compile_limits)
            .unwrap_or(DEFAULT_COMPILE_LIMITS);
        // The request's env is the program's, not the compiler's (an LD_PRELOAD of the
        // user's would run inside gcc): the compile step has the profile's env only.
        // At the end, so that they win over the profile's own (`-O0` after `-O2`).
        let mut argv = cmd.clone();
        argv.extend(req.compiler_options.iter().cloned());
        let spec = StepSpec {
            argv,
            env: env_list(&profile.env),
            limits,
            cpu_cores: profile.cpu_cores,
            stdin: Vec::new(),
            output: OutputMode::Separate,
        };
        let key = Inputs {
            profile: &profile.name,
            argv: &spec.argv,
            env: &spec.env,
            limits: &limits,
            files: &files,
        }
        .key();
        if let Some(hit) = self.cache.get(&key) {
            let mut step = encode(hit.step.clone(), req.output_encoding);
            step.cached = Some(true);
            return Ok(Build::Ready {
                compile: Some(step),
                files: hit.files.clone(),
            });
        }
        let sources: Vec<&BoxFile> = files.iter().collect();
        let (step, artifacts) = self
            .in_container(profile, StepKind::Compile, &limits, &sources, &spec)
            .await?
            .unwrap_or_else(|e| (internal_error(&e), None));
        let ok = step.status == StepStatus::Ok;
        match artifacts {
            Some(a) if ok => {
                let compiled = Arc::new(Compiled {
                    step,
                    files: Arc::new(a),
                });
                self.cache.put(key, compiled.clone());
                let mut step = encode(compiled.step.clone(), req.output_encoding);
                step.cached = Some(false);
                Ok(Build::Ready {
                    compile: Some(step),
                    files: compiled.files.clone(),
                })
            }
            _ => {
                let mut step = encode(step, req.output_encoding);
                step.cached = Some(false);
                Ok(Build::Failed(step))
            }
        }
    }

    /// Writes `files`, runs `spec`, and after a successful compile collects `/box`.
    async fn step_in(
        c: &mut Container,
        kind: StepKind,
        files: &[&BoxFile],
        spec: &StepSpec,
    ) -> Result<StepAndFiles, SandboxError> {
        c.write_files(files, spec.limits.disk_mb << 20).await?;
        let step = c.run(spec).await?;
        if kind != StepKind::Compile || step.status != StepStatus::Ok {
            return Ok((step, None));
        }
        let (artifacts, truncated) = c
            .collect_files(MAX_ARTIFACT_BYTES, MAX_ARTIFACT_FILES)
            .await?;
        if let Some(why) = truncated {
            let mut step = step;
            step.status = StepStatus::OutputLimit;
            step.message = Some(format!(
                "the compile left more in /box than is carried to the run: {why}"
            ));
            return Ok((step, None));
        }
        Ok((step, Some(artifacts)))
    }
}

/// A step's result and, after a successful compile, the artifacts of `/box`.
type StepAndFiles = (StepOutcome, Option<Vec<BoxFile>>);

/// What a request's run starts from.
pub(crate) enum Build {
    /// The compile step (if the profile compiles) and the files of `/box`.
    Ready {
        compile: Option<StepResult>,
        files: Arc<Vec<BoxFile>>,
    },
    /// The compile step, which failed.
    Failed(StepResult),
}

pub(crate) fn encode(step: StepOutcome, enc: Encoding) -> StepResult {
    StepResult {
        status: step.status,
        exit_code: step.exit_code,
        signal: step.signal,
        signal_name: step.signal.and_then(warmbox_sandbox::step::signal_name),
        stdout: encode_output(&step.stdout, enc),
        stderr: encode_output(&step.stderr, enc),
        stdout_truncated: step.stdout_truncated,
        stderr_truncated: step.stderr_truncated,
        usage: step.usage,
        output: (!step.combined.is_empty()).then(|| encode_output(&step.combined, enc)),
        cached: None,
        message: step.message,
    }
}

fn response(
    status: RunStatus,
    compile: Option<StepResult>,
    run: Option<StepResult>,
) -> RunResponse {
    RunResponse {
        id: uuid::Uuid::new_v4(),
        status,
        compile,
        run,
        tests: None,
        summary: None,
        message: None,
    }
}
