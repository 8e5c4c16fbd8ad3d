//! The `warmbox` command: `run`, `check`, `profiles`, and the fork server that clones every
//! container's init (started by the engine itself, as `warmbox-init`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use warmbox::api::{self, metrics::Metrics, AppState, ServiceConfig};
use warmbox::queue::store::{postgres::PgStore, redb::RedbStore, JobStore};
use warmbox::queue::Jobs;
use warmbox::settings::{JobsDb, Layer, Settings};
use warmbox_runner::admission::Admission;
use warmbox_runner::profile::ProfileSet;
use warmbox_runner::request::{self, Encoding, FileSpec, LimitsRequest, RunRequest};
use warmbox_runner::Runner;
use warmbox_sandbox::{config::EngineConfig, pool::Pool, Sandbox};

#[derive(Parser)]
#[command(
    name = "warmbox",
    version,
    about = "Run untrusted code in minimal Linux containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one request locally and print the run response as JSON.
    Run(Box<RunArgs>),
    /// Serve the HTTP API (API.md) over a pool of warm containers.
    Serve(Box<ServeArgs>),
    /// Report what this host supports; exits non-zero where sandboxing is impossible.
    Check(CheckArgs),
    /// List the language profiles and whether each is available here.
    Profiles {
        /// Directory of the profiles.
        #[arg(long, env = "WARMBOX_PROFILES", default_value = "profiles")]
        profiles_dir: PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Settings file (TOML, see docs/operations.md); flags and environment variables win
    /// over it.
    #[arg(long, env = "WARMBOX_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Layer,
}

#[derive(Args)]
struct CheckArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The settings file of the server to check for (its cgroup parent and uid
    /// block); the flags below win over it.
    #[arg(long, env = "WARMBOX_CONFIG")]
    config: Option<PathBuf>,
    /// The cgroup parent a server would use [default: warmbox].
    #[arg(long, env = "WARMBOX_CGROUP_PARENT")]
    cgroup_parent: Option<String>,
    /// The first uid of the container uid block a server would use [default: 600000].
    #[arg(long, env = "WARMBOX_UID_BASE")]
    uid_base: Option<u32>,
}

#[derive(Args)]
struct RunArgs {
    /// Read the run request (API.md) from this file; `-` or no file and no --profile: stdin.
    #[arg(long, short)]
    request: Option<PathBuf>,
    /// Build the request instead: the profile name or alias.
    #[arg(long, short)]
    profile: Option<String>,
    /// A source file to send (repeatable); the first is stored under the profile's source
    /// file name, the others under their own base names.
    #[arg(long = "file", short, requires = "profile")]
    files: Vec<PathBuf>,
    /// Inline source code, stored under the profile's source file name.
    #[arg(long, conflicts_with = "files", requires = "profile")]
    code: Option<String>,
    /// stdin text for the program.
    #[arg(long, requires = "profile")]
    stdin: Option<String>,
    /// Read stdin for the program from this file.
    #[arg(long, conflicts_with = "stdin", requires = "profile")]
    stdin_file: Option<PathBuf>,
    /// Argument appended to the run command (repeatable).
    #[arg(long = "arg", requires = "profile")]
    args: Vec<String>,
    /// CPU time limit, ms.
    #[arg(long, requires = "profile")]
    cpu_ms: Option<u64>,
    /// Wall time limit, ms.
    #[arg(long, requires = "profile")]
    wall_ms: Option<u64>,
    /// Memory limit, MiB.
    #[arg(long, requires = "profile")]
    memory_mb: Option<u64>,
    /// Process and thread limit.
    #[arg(long, requires = "profile")]
    pids: Option<u64>,
    /// Cap on each of stdout and stderr, bytes.
    #[arg(long, requires = "profile")]
    output_bytes: Option<u64>,
    /// Cap on any single file written, bytes.
    #[arg(long, requires = "profile")]
    file_size_bytes: Option<u64>,
    /// Size of each of `/box` and `/tmp`, MiB.
    #[arg(long, requires = "profile")]
    disk_mb: Option<u64>,
    /// Stack size, MiB.
    #[arg(long, requires = "profile")]
    stack_mb: Option<u64>,
    /// Environment variable of the program, `NAME=VALUE` (repeatable).
    #[arg(long = "env", requires = "profile", value_parser = env_pair)]
    env: Vec<(String, String)>,
    /// Extra compiler option (repeatable; the profile's allowlist applies).
    #[arg(
        long = "compiler-option",
        requires = "profile",
        allow_hyphen_values = true
    )]
    compiler_options: Vec<String>,
    /// Send the program's stderr into its stdout, in order.
    #[arg(long, requires = "profile")]
    stderr_to_stdout: bool,
    /// Return stdout/stderr base64-encoded.
    #[arg(long, requires = "profile")]
    base64_output: bool,
    /// Directory of the profiles.
    #[arg(long, env = "WARMBOX_PROFILES", default_value = "profiles")]
    profiles_dir: PathBuf,
    /// State directory.
    #[arg(long, env = "WARMBOX_STATE_DIR", default_value = "/run/warmbox")]
    state_dir: PathBuf,
    /// Parent cgroup of `warmbox run`'s containers: not a server's, whose start would
    /// remove them as stale.
    #[arg(long, env = "WARMBOX_RUN_CGROUP_PARENT", default_value = "warmbox-run")]
    cgroup_parent: String,
    /// First host uid of the ids of `warmbox run`s (each run locks a block of its own of
    /// 128 ids; 64 blocks): apart from a server's block (600000..601024 by default).
    #[arg(long, env = "WARMBOX_RUN_UID_BASE", default_value_t = 601_024)]
    uid_base: u32,
    /// Replace the run command (everything after `--`).
    #[arg(last = true, requires = "profile")]
    cmd: Vec<String>,
}

fn main() {
    // The fork server, which clones every container init: it must stay single-threaded,
    // so nothing else may run first (no runtime, no logging).
    if std::env::var_os(warmbox_sandbox::forkserver::ENV).is_some_and(|v| v == "1") {
        std::process::exit(warmbox_sandbox::forkserver::main());
    }

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARMBOX_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => exit_on_error(run(*args)),
        Command::Serve(args) => exit_on_error(serve(*args)),
        Command::Check(args) => exit_on_error(check(args)),
        Command::Profiles { profiles_dir } => exit_on_error(profiles(&profiles_dir)),
    };
    std::process::exit(code);
}

fn exit_on_error(r: anyhow::Result<i32>) -> i32 {
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warmbox: {e:#}");
            2
        }
    }
}

fn check(args: CheckArgs) -> anyhow::Result<i32> {
    // The instance `serve` would make of the same flags and file.
    let flags = Layer {
        cgroup_parent: args.cgroup_parent,
        uid_base: args.uid_base,
        ..Layer::default()
    };
    let settings = Settings::resolve(flags, args.config.as_deref())?;
    let config = settings.engine_config(engine_defaults()?);
    let report = warmbox_sandbox::check::run_leaving_nothing(&config);
    if args.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        emit(&report.text())?;
    }
    Ok(if report.can_sandbox() { 0 } else { 1 })
}

/// The engine's defaults for this host (the running binary as every container's init).
fn engine_defaults() -> anyhow::Result<EngineConfig> {
    EngineConfig::with_defaults().context("locate the warmbox binary")
}

fn profiles(dir: &Path) -> anyhow::Result<i32> {
    let set = ProfileSet::load_dir(dir)
        .with_context(|| format!("load profiles from {}", dir.display()))?;
    let mut out = String::new();
    for p in set.all() {
        let a = &p.availability;
        let state = if a.available {
            a.version.clone().unwrap_or_else(|| "available".into())
        } else {
            format!("unavailable: {}", a.reason.clone().unwrap_or_default())
        };
        let aliases = p.profile.aliases.join(", ");
        out.push_str(&format!("{:<12} [{aliases}] {state}\n", p.profile.name));
    }
    emit(&out)?;
    Ok(0)
}

/// Writes `text` to stdout. A reader that stopped reading (`warmbox profiles | head -1`)
/// is not an error: what it did not read is dropped, as other tools do.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("write to stdout"),
    }
}

fn build_request(args: &RunArgs, profiles: &ProfileSet) -> anyhow::Result<RunRequest> {
    let profile_name = args.profile.clone().context("--profile is required")?;
    let source_name = profiles
        .get(&profile_name)
        .map(|p| p.profile.source_file.clone())
        .unwrap_or_else(|| "main".into());
    let mut files = Vec::new();
    if let Some(code) = &args.code {
        files.push(FileSpec {
            name: source_name.clone(),
            content: code.clone(),
            encoding: Encoding::Utf8,
        });
    }
    for (i, path) in args.files.iter().enumerate() {
        let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let name = if i == 0 {
            source_name.clone()
        } else {
            path.file_name()
                .with_context(|| format!("{} has no file name", path.display()))?
                .to_string_lossy()
                .into_owned()
        };
        let (content, encoding) = match String::from_utf8(bytes) {
            Ok(s) => (s, Encoding::Utf8),
            Err(e) => {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
                (b64, Encoding::Base64)
            }
        };
        files.push(FileSpec {
            name,
            content,
            encoding,
        });
    }
    let (stdin, stdin_base64) = match (&args.stdin, &args.stdin_file) {
        (Some(s), _) => (Some(s.clone()), None),
        (None, Some(p)) => {
            let bytes = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            match String::from_utf8(bytes) {
                Ok(s) => (Some(s), None),
                Err(e) => {
                    use base64::Engine;
                    let b64 = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
                    (None, Some(b64))
                }
            }
        }
        _ => (None, None),
    };
    Ok(RunRequest {
        profile: profile_name,
        files,
        stdin,
        stdin_base64,
        args: args.args.clone(),
        cmd: (!args.cmd.is_empty()).then(|| args.cmd.clone()),
        limits: LimitsRequest {
            cpu_ms: args.cpu_ms,
            wall_ms: args.wall_ms,
            memory_mb: args.memory_mb,
            pids: args.pids,
            output_bytes: args.output_bytes,
            file_size_bytes: args.file_size_bytes,
            disk_mb: args.disk_mb,
            stack_mb: args.stack_mb,
        },
        env: args.env.iter().cloned().collect(),
        compiler_options: args.compiler_options.clone(),
        stderr_to_stdout: args.stderr_to_stdout,
        output_encoding: if args.base64_output {
            Encoding::Base64
        } else {
            Encoding::Utf8
        },
        ..Default::default()
    })
}

/// `NAME=VALUE` of `--env` (the request's checks of names and values apply after).
fn env_pair(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.into(), value.into())),
        _ => bail!("expected NAME=VALUE, got {s:?}"),
    }
}

fn run(args: RunArgs) -> anyhow::Result<i32> {
    let profiles = ProfileSet::load_dir(&args.profiles_dir)
        .with_context(|| format!("load profiles from {}", args.profiles_dir.display()))?;
    let req = match (&args.profile, &args.request) {
        (Some(_), Some(_)) => bail!("give either --request or --profile, not both"),
        (Some(_), None) => build_request(&args, &profiles)?,
        (None, file) => {
            let mut text = String::new();
            match file {
                Some(p) if p != Path::new("-") => {
                    text = std::fs::read_to_string(p)
                        .with_context(|| format!("read request {}", p.display()))?
                }
                _ => {
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("read request from stdin")?;
                }
            }
            serde_json::from_str(&text).context("invalid request JSON")?
        }
    };
    let valid = request::validate(&req, &profiles)
        .map_err(|e| anyhow::anyhow!("invalid request ({}): {}", e.code, e.message))?;

    if !nix::unistd::geteuid().is_root() {
        bail!("warmbox run must run as root: it makes namespaces, id maps and cgroups");
    }
    if let Some(why) = warmbox_sandbox::cgroup::parent_name_problem(&args.cgroup_parent) {
        bail!("--cgroup-parent: {why}");
    }
    // A run's own flags (no settings file): its cgroup parent and uid block are apart from
    // a server's.
    let flags = Layer {
        profiles_dir: Some(args.profiles_dir.clone()),
        state_dir: Some(args.state_dir.clone()),
        cgroup_parent: Some(args.cgroup_parent.clone()),
        ..Layer::default()
    };
    let mut config = Settings::resolve(flags, None)?.engine_config(engine_defaults()?);
    // Runs at the same time (and a server) never share a container uid.
    let (block, _held) = run_id_block()?;
    config.slots = RUN_SLOTS;
    config.uid_base = args
        .uid_base
        .checked_add(block * 2 * RUN_SLOTS)
        .context("--uid-base is too large")?;
    Sandbox::check_ids(&config).context("start the sandbox engine")?;
    // Dropped last (after the engine and the runtime, whose containers are then gone).
    let _parent = RunParent::enter(&config.cgroup_parent)?;
    let report = warmbox_sandbox::check::run_for(&config);
    if !report.can_sandbox() {
        bail!("this host cannot sandbox:\n{}", report.text());
    }
    let sandbox = Sandbox::new(config).context("start the sandbox engine")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    // SIGINT or SIGTERM ends the run as a hang-up ends a server's: its containers are
    // removed (when the runtime is dropped, waiting for its blocking pool) and nothing
    // is printed.
    let runner = Runner::new(sandbox);
    let outcome = rt.block_on(async {
        tokio::select! {
            r = runner.run(&valid) => Some(r),
            () = shutdown_signal() => None,
        }
    });
    drop(runner);
    drop(rt);
    match outcome {
        Some(response) => {
            let response = response.context("run the request")?;
            emit(&format!("{}\n", serde_json::to_string_pretty(&response)?))?;
            Ok(0)
        }
        None => {
            eprintln!("warmbox: interrupted; the run's containers are removed");
            Ok(130)
        }
    }
}

/// The cgroup parent of a `warmbox run` while it runs. Every run holds a shared lock on
/// a lock file of its parent's (in [`RUN_LOCKS`]), taken before the parent is made, so
/// that no run makes its cgroups in a parent that another is removing. A run that made
/// the parent marks it as `warmbox run`'s (a `.made` file beside the lock, with the number
/// of levels made); the last run to end (its lock turns exclusive) removes a parent so
/// marked, with whatever killed runs left in it. A parent that was there before (a
/// server's, or the operator's) is never emptied or removed.
struct RunParent {
    lock: std::fs::File,
    marker: PathBuf,
    backend: Box<dyn warmbox_sandbox::cgroup::CgroupBackend>,
}

impl RunParent {
    fn enter(parent: &str) -> anyhow::Result<Self> {
        // FNV-1a: a stable short name for the parent's files, whatever its length.
        let hash = parent.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let dir = Path::new(RUN_LOCKS);
        let lock_path = dir.join(format!("parent-{hash:016x}.lock"));
        let lock = lock_file(&lock_path, libc::LOCK_SH)?
            .with_context(|| format!("lock {}", lock_path.display()))?;
        let backend = warmbox_sandbox::cgroup::probe(parent)
            .map_err(|e| anyhow::anyhow!("this host cannot sandbox: {e}"))?;
        let marker = dir.join(format!("parent-{hash:016x}.made"));
        let made = backend.created_levels();
        if made > 0 {
            std::fs::write(&marker, format!("{made}\n{parent}\n"))
                .with_context(|| format!("write {}", marker.display()))?;
        }
        Ok(RunParent {
            lock,
            marker,
            backend,
        })
    }
}

impl Drop for RunParent {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own, with integer flags.
        if unsafe { libc::flock(self.lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return;
        }
        let Some(levels) = std::fs::read_to_string(&self.marker)
            .ok()
            .and_then(|t| t.lines().next()?.parse::<usize>().ok())
        else {
            return;
        };
        match self.backend.remove_stale() {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "cgroups left by killed runs removed"),
            Err(e) => tracing::warn!(error = %e, "removing cgroups left by killed runs"),
        }
        match self.backend.remove_levels(levels) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.marker);
            }
            Err(e) => tracing::debug!(error = %e, "cgroup parent left in place"),
        }
    }
}

/// Opens (or creates) the lock file `path` and `flock`s it with `op`: `None` when `op`
/// has `LOCK_NB` and another process holds a conflicting lock.
fn lock_file(path: &Path, op: libc::c_int) -> anyhow::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own, with integer flags.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        return Ok(Some(file));
    }
    match std::io::Error::last_os_error() {
        e if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        e => Err(e).with_context(|| format!("lock {}", path.display())),
    }
}

/// Containers one `warmbox run` may have at once (its tests' run in parallel).
const RUN_SLOTS: u32 = 64;
/// `warmbox run`s at once on a host, at most: each holds a block of ids of its own.
const RUN_BLOCKS: u32 = 64;

/// Where `warmbox run`s lock their id blocks: one place for the host, as ids are the
/// host's (not under a state directory, which each run may choose).
const RUN_LOCKS: &str = "/run/warmbox-run-ids";

/// Locks the first free one of the [`RUN_BLOCKS`] id blocks of `warmbox run` (a file
/// lock in [`RUN_LOCKS`], released when the process ends) and returns its index with the
/// lock.
fn run_id_block() -> anyhow::Result<(u32, std::fs::File)> {
    let dir = Path::new(RUN_LOCKS);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for n in 0..RUN_BLOCKS {
        let path = dir.join(format!("{n}.lock"));
        if let Some(file) = lock_file(&path, libc::LOCK_EX | libc::LOCK_NB)? {
            return Ok((n, file));
        }
    }
    bail!("{RUN_BLOCKS} `warmbox run`s are running on this host already; wait for one to end")
}

/// Every warm container holds a few descriptors in the server (its init's pidfd and
/// channel, its cgroup's accounting files), so a large pool would meet the usual soft
/// limit of 1024: raise it to the hard limit, as servers do. (Jobs set their own.)
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
        || lim.rlim_cur >= lim.rlim_max
    {
        return;
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit with a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "raising the open files limit"
        );
    }
}

/// `warmbox serve`: the settings, the profiles, the engine, then the HTTP service until a
/// signal; then the cgroup parent is removed.
fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    raise_open_files_limit();
    let settings = Settings::resolve(args.settings, args.config.as_deref())?;
    settings.check()?;
    if settings.tokens.is_empty() {
        tracing::warn!("no bearer tokens: every client may run code (see --token)");
    }
    let profiles = load_profiles(&settings)?;
    let sandbox = start_engine(&settings)?;
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus.max(2))
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let engine = sandbox.clone();
    let code = rt.block_on(async {
        let store = open_job_store(&settings.jobs_db).await?;
        serve_http(settings, profiles, sandbox, store).await
    });
    // Dropping the runtime drops the connections still open past the grace period, whose
    // containers are removed as they go (and waits for the blocking pool): only then is
    // the parent empty. Its last level goes when it is (another instance may share it);
    // limits meant for all of warmbox belong on a level above it.
    drop(rt);
    if let Err(e) = engine.cgroups().remove_parent() {
        tracing::info!(error = %e, "cgroup parent left in place");
    }
    code
}

/// The profiles, with the settings file's tighter maximums, and its `[warm]` keys checked
/// against their layouts.
fn load_profiles(settings: &Settings) -> anyhow::Result<ProfileSet> {
    let dir = &settings.profiles_dir;
    let mut profiles = ProfileSet::load_dir(dir)
        .with_context(|| format!("load profiles from {}", dir.display()))?;
    for (name, o) in &settings.profiles {
        profiles
            .tighten(name, &o.maximums)
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    settings.check_warm(&warmbox_runner::runner::layout_names(&profiles))?;
    Ok(profiles)
}

/// The sandbox engine, once its uid block and the host are checked (before the host
/// probe makes the cgroup parent, so that a refused start leaves nothing), with what an
/// earlier instance left removed.
fn start_engine(settings: &Settings) -> anyhow::Result<Arc<Sandbox>> {
    let config = settings.engine_config(engine_defaults()?);
    Sandbox::check_ids(&config).context("start the sandbox engine")?;
    let report = warmbox_sandbox::check::run_for(&config);
    if !report.can_sandbox() {
        bail!("this host cannot sandbox:\n{}", report.text());
    }
    let sandbox = Sandbox::new(config).context("start the sandbox engine")?;
    // What cannot be removed now (a process of it slow to die) does not stop the start:
    // new containers have names of their own; the next start tries again.
    match sandbox.remove_stale() {
        Ok(0) => {}
        Ok(stale) => tracing::warn!(
            cgroups = stale,
            "removed containers an earlier instance left"
        ),
        Err(e) => tracing::error!(error = %e, "could not remove all an earlier instance left"),
    }
    Ok(sandbox)
}

/// The durable store of async jobs: a redb file (its directory made if need be), or
/// PostgreSQL (its schema made or migrated).
async fn open_job_store(db: &JobsDb) -> anyhow::Result<Arc<dyn JobStore>> {
    match db {
        JobsDb::File(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("create the job store's directory {}", dir.display())
                })?;
            }
            Ok(Arc::new(RedbStore::open(path)?))
        }
        JobsDb::Postgres(url) => Ok(Arc::new(PgStore::connect(url).await?)),
        JobsDb::Unknown(url) => bail!("jobs_db {url:?}: not a store warmbox knows"),
    }
}

/// Serves the API over a pool of `sandbox`'s containers until SIGTERM or SIGINT, then
/// lets running requests and jobs finish for the grace period.
async fn serve_http(
    settings: Settings,
    profiles: ProfileSet,
    sandbox: Arc<Sandbox>,
    store: Arc<dyn JobStore>,
) -> anyhow::Result<i32> {
    let pool = Pool::new(
        sandbox,
        warmbox_runner::runner::warm_specs(&profiles, &|layout: &str| settings.warm_for(layout)),
        2,
        settings.recycle,
    );
    let admission = Arc::new(Admission::new(settings.max_running, settings.max_queue));
    let runner = Runner::with_pool(pool.clone())
        .with_admission(admission.clone())
        .with_compile_cache(settings.compile_cache_bytes());
    let profiles = Arc::new(profiles);
    let jobs = Jobs::start(
        store,
        runner.clone(),
        profiles.clone(),
        admission.clone(),
        settings.jobs.clone(),
        warmbox::compat::callback,
    )
    .await?;
    let state = Arc::new(AppState {
        runner,
        pool: pool.clone(),
        profiles,
        admission,
        jobs: Some(jobs.clone()),
        metrics: Metrics::new().context("register metrics")?,
        config: ServiceConfig {
            tokens: settings.tokens,
            max_body_bytes: settings.max_body_bytes,
        },
        ready: AtomicBool::new(false),
    });
    let listen = settings.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen}"))?;
    eprintln!("warmbox: serving on http://{}", listener.local_addr()?);
    tokio::spawn(warm_until_ready(state.clone()));

    // At the signal: stop accepting and let running requests finish; past the grace
    // period, drop them (which kills and removes their containers).
    let grace = settings.shutdown_grace;
    let stopping = Arc::new(tokio::sync::Notify::new());
    let serve = axum::serve(listener, api::router(state)).with_graceful_shutdown({
        let stopping = stopping.clone();
        async move { stopping.notified().await }
    });
    let signalled = std::sync::OnceLock::new();
    let deadline = async {
        shutdown_signal().await;
        let _ = signalled.set(std::time::Instant::now());
        stopping.notify_one();
        jobs.close();
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = serve => r.context("serve")?,
        () = deadline => {
            tracing::warn!(?grace, "grace period over: killing the requests still running");
        }
    }
    let left = signalled
        .get()
        .map_or(grace, |at| grace.saturating_sub(at.elapsed()));
    jobs.shutdown(left).await;
    pool.shutdown().await;
    Ok(0)
}

/// Warms the pool and then marks the service ready. A failure (a fork server that died, a
/// transient clone error) is tried again, less and less often.
async fn warm_until_ready(state: Arc<AppState>) {
    let mut pause = Duration::from_millis(500);
    loop {
        match state.pool.warm_up().await {
            Ok(()) => {
                state.ready.store(true, Ordering::Release);
                tracing::info!("pool warm: ready");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?pause, "warming the pool failed");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// Resolves at SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
