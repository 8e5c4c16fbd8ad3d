//! The service's settings (docs/operations.md), made in one merge for `serve`, `run` and
//! `check`: each setting is its flag, else its environment variable (clap takes those two
//! into a [`Layer`]), else the settings file's key (a [`Layer`] too), else the default
//! ([`Settings::resolve`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use warmbox_runner::request::LimitsRequest;
use warmbox_sandbox::config::EngineConfig;
use warmbox_sandbox::pool::Recycle;

use crate::queue::JobsConfig;

/// Why the settings could not be made: every message names the setting or the file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The settings file could not be read.
    #[error("read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The settings file is not TOML of the known keys.
    #[error("{}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where (line, column, the key).
        source: toml::de::Error,
    },
    /// A bearer token is empty, which would turn the authentication off without a word.
    #[error(
        "an empty bearer token was given (--token, WARMBOX_TOKENS or `tokens` in the \
         settings file); leave tokens out entirely to serve without authentication"
    )]
    EmptyToken,
    /// A setting below the least the service can serve with.
    #[error("{name} is {value}; it must be at least {least}")]
    TooSmall {
        /// The setting's file key.
        name: &'static str,
        /// Its value.
        value: u64,
        /// The least it may be.
        least: u64,
    },
    /// A `jobs_db` URL that is not PostgreSQL's.
    #[error(
        "jobs_db {0:?}: not a store warmbox knows; give a file path (redb) or a \
         postgres://user:password@host:port/database URL"
    )]
    JobsDb(String),
    /// An empty node name.
    #[error("node_name is empty; leave it out to use the host name")]
    EmptyNodeName,
    /// A compile cache over 1 TiB (its size in bytes would overflow beyond).
    #[error("compile_cache_mb is {0}; it must be at most {MAX_COMPILE_CACHE_MB} (1 TiB)")]
    CompileCacheTooLarge(u64),
    /// A `[warm]` key that is neither `default` nor a layout.
    #[error("[warm] {key:?}: no such layout; the layouts are default, {}", layouts.join(", "))]
    UnknownLayout {
        /// The key.
        key: String,
        /// The layouts there are.
        layouts: Vec<String>,
    },
}

/// Where the async jobs are stored (`jobs_db`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobsDb {
    /// A redb file: this node's own store.
    File(PathBuf),
    /// A `postgres://` or `postgresql://` URL: PostgreSQL, shared by many nodes.
    Postgres(String),
    /// A URL of another kind: refused by [`Settings::check`].
    Unknown(String),
}

impl JobsDb {
    /// A setting's text as a store: a URL by its scheme, else a path.
    pub fn parse(text: &str) -> JobsDb {
        match text.split_once("://") {
            Some(("postgres" | "postgresql", _)) => JobsDb::Postgres(text.to_string()),
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                JobsDb::Unknown(text.to_string())
            }
            _ => JobsDb::File(PathBuf::from(text)),
        }
    }
}

/// Largest compile cache, MiB (1 TiB).
const MAX_COMPILE_CACHE_MB: u64 = 1 << 20;

/// Warm containers per layout when nothing says otherwise.
const DEFAULT_WARM: usize = 2;

/// One layer of settings, each one optional: the flags and environment variables of
/// `warmbox serve` (clap fills it; the doc comments are the flags' help), or the settings
/// file (TOML, `--config FILE`; an unknown key is refused). [`Layer::over`] lays one over
/// another.
///
/// The fields keep the file's key order (a parse error lists the keys in it);
/// `display_order` keeps the flags' help in its order.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WARMBOX_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the profiles [default: profiles].
    #[arg(long, env = "WARMBOX_PROFILES")]
    pub profiles_dir: Option<PathBuf>,
    /// State directory [default: /run/warmbox].
    #[arg(long, env = "WARMBOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Warm containers kept per layout (each profile's run step, and compile step)
    /// [default: 2].
    // A flag only: it wins over the whole of the file's `[warm]` table.
    #[arg(long = "warm", value_name = "WARM", env = "WARMBOX_WARM")]
    #[serde(skip)]
    pub warm_all: Option<usize>,
    /// Requests running at once [default: the number of CPUs, so wall times stay honest].
    #[arg(long, env = "WARMBOX_MAX_RUNNING")]
    pub max_running: Option<usize>,
    /// Requests waiting beyond those; more get 503 with Retry-After [default: 64].
    #[arg(long, env = "WARMBOX_MAX_QUEUE")]
    pub max_queue: Option<usize>,
    /// Largest request body, bytes [default: 32 MiB].
    #[arg(long, env = "WARMBOX_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Bearer tokens accepted (comma-separated in the environment); none: no auth.
    #[arg(long = "token", env = "WARMBOX_TOKENS", value_delimiter = ',')]
    pub tokens: Option<Vec<String>>,
    /// warmbox's parent cgroup, one per instance on a host [default: warmbox].
    #[arg(long, env = "WARMBOX_CGROUP_PARENT")]
    pub cgroup_parent: Option<String>,
    /// First host uid of the container uid block (2 per slot, 512 slots) [default: 600000].
    #[arg(long, env = "WARMBOX_UID_BASE")]
    pub uid_base: Option<u32>,
    /// After SIGTERM/SIGINT, how long running requests may finish before they are killed
    /// [default: 30].
    #[arg(long, env = "WARMBOX_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// The durable store of async jobs: a file (redb, this node's own) or a
    /// `postgres://user:password@host:port/database` URL (PostgreSQL, shared by many nodes)
    /// [default: /var/lib/warmbox/jobs.redb].
    #[arg(long, env = "WARMBOX_JOBS_DB")]
    pub jobs_db: Option<String>,
    /// This node's name in the job store [default: the host name].
    #[arg(long, env = "WARMBOX_NODE_NAME")]
    pub node_name: Option<String>,
    /// Seconds a node's claim of a running job holds without renewal; a job whose node
    /// stopped runs again elsewhere after it [default: 30].
    #[arg(long, env = "WARMBOX_JOB_LEASE_SECS")]
    pub job_lease_secs: Option<u64>,
    /// Runs of a job started at most (its node stopping each time) before it ends as an
    /// internal error [default: 3].
    #[arg(long, env = "WARMBOX_JOB_ATTEMPTS")]
    pub job_attempts: Option<u32>,
    /// Let callbacks go to loopback, private and link-local addresses (internal tools on
    /// the same network); by default only public addresses are called.
    #[arg(long, env = "WARMBOX_CALLBACK_ALLOW_PRIVATE", num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new(),
          display_order = 20)]
    pub callback_allow_private: Option<bool>,
    /// Deliveries of a job's callback tried at most [default: 5].
    #[arg(long, env = "WARMBOX_CALLBACK_ATTEMPTS", display_order = 21)]
    pub callback_attempts: Option<u32>,
    /// Wait before a callback's second delivery, ms, doubled before each further one
    /// [default: 1000].
    #[arg(long, env = "WARMBOX_CALLBACK_BACKOFF_MS", display_order = 22)]
    pub callback_backoff_ms: Option<u64>,
    /// Size of the compile cache, MiB; 0 turns it off [default: 256].
    #[arg(long, env = "WARMBOX_COMPILE_CACHE_MB")]
    pub compile_cache_mb: Option<u64>,
    /// Seconds a finished async job and its result are kept [default: 86400].
    #[arg(long, env = "WARMBOX_JOB_RETENTION_SECS")]
    pub job_retention_secs: Option<u64>,
    /// Async jobs queued at most; more get 503 with Retry-After [default: 10000].
    #[arg(long, env = "WARMBOX_MAX_JOBS_QUEUED")]
    pub max_jobs_queued: Option<usize>,
    /// Steps one container serves before it is destroyed; each step gets fresh pid, IPC
    /// and mount namespaces and a fresh /box, /tmp and /dev/shm. 1: a new container for
    /// every step [default: 100].
    #[arg(long, env = "WARMBOX_RECYCLE_RUNS")]
    pub recycle_runs: Option<u32>,
    /// Seconds a container lives at most, however few steps it served [default: 600].
    #[arg(long, env = "WARMBOX_RECYCLE_MAX_AGE_SECS")]
    pub recycle_max_age_secs: Option<u64>,
    /// Warm containers: `default`, and per layout (`"python3/run" = 4`). File only.
    #[arg(skip)]
    #[serde(default)]
    pub warm: BTreeMap<String, usize>,
    /// Per profile: maximums lower than the profile file's (`[profiles.python3.maximums]`).
    /// File only.
    #[arg(skip)]
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileOverride>,
}

/// An operator's tightening of one profile.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileOverride {
    /// Maximums a request may ask for.
    #[serde(default)]
    pub maximums: LimitsRequest,
}

impl Layer {
    /// Reads and parses the settings file `path`; errors name the file and the problem.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| SettingsError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// This layer over `under`: each setting this one leaves out comes from `under` (a
    /// table, from `under` when this one's is empty).
    #[must_use]
    pub fn over(self, under: Layer) -> Layer {
        // Every field named (no `..`): a setting added to the layer cannot be left out.
        Layer {
            listen: self.listen.or(under.listen),
            profiles_dir: self.profiles_dir.or(under.profiles_dir),
            state_dir: self.state_dir.or(under.state_dir),
            warm_all: self.warm_all.or(under.warm_all),
            max_running: self.max_running.or(under.max_running),
            max_queue: self.max_queue.or(under.max_queue),
            max_body_bytes: self.max_body_bytes.or(under.max_body_bytes),
            tokens: self.tokens.or(under.tokens),
            cgroup_parent: self.cgroup_parent.or(under.cgroup_parent),
            uid_base: self.uid_base.or(under.uid_base),
            shutdown_grace_secs: self.shutdown_grace_secs.or(under.shutdown_grace_secs),
            jobs_db: self.jobs_db.or(under.jobs_db),
            node_name: self.node_name.or(under.node_name),
            job_lease_secs: self.job_lease_secs.or(under.job_lease_secs),
            job_attempts: self.job_attempts.or(under.job_attempts),
            callback_allow_private: self.callback_allow_private.or(under.callback_allow_private),
            callback_attempts: self.callback_attempts.or(under.callback_attempts),
            callback_backoff_ms: self.callback_backoff_ms.or(under.callback_backoff_ms),
            compile_cache_mb: self.compile_cache_mb.or(under.compile_cache_mb),
            recycle_runs: self.recycle_runs.or(under.recycle_runs),
            recycle_max_age_secs: self.recycle_max_age_secs.or(under.recycle_max_age_secs),
            job_retention_secs: self.job_retention_secs.or(under.job_retention_secs),
            max_jobs_queued: self.max_jobs_queued.or(under.max_jobs_queued),
            warm: table(self.warm, under.warm),
            profiles: table(self.profiles, under.profiles),
        }
    }
}

/// A layer's table, or the one under it where it has none.
fn table<V>(over: BTreeMap<String, V>, under: BTreeMap<String, V>) -> BTreeMap<String, V> {
    if over.is_empty() {
        under
    } else {
        over
    }
}

/// The settings in force: every one given, by a layer or by its default.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the profiles.
    pub profiles_dir: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// Warm containers of every layout (`--warm`): wins over [`Settings::warm`].
    pub warm_all: Option<usize>,
    /// Warm containers: `default`, and per layout.
    pub warm: BTreeMap<String, usize>,
    /// Requests running at once.
    pub max_running: usize,
    /// Requests waiting beyond those.
    pub max_queue: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Accepted bearer tokens; empty: no authentication.
    pub tokens: Vec<String>,
    /// warmbox's parent cgroup; `None`: the engine's default.
    pub cgroup_parent: Option<String>,
    /// First host uid of the container uid block; `None`: the engine's default.
    pub uid_base: Option<u32>,
    /// How long running requests may finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// The durable store of async jobs.
    pub jobs_db: JobsDb,
    /// Size of the compile cache, MiB (0: none).
    pub compile_cache_mb: u64,
    /// How long a container serves.
    pub recycle: Recycle,
    /// The async jobs' settings.
    pub jobs: JobsConfig,
    /// Per profile: maximums lower than the profile file's.
    pub profiles: BTreeMap<String, ProfileOverride>,
}

impl Settings {
    /// The settings of `flags` over the settings file `file` (when given) over the
    /// defaults. Only the file is checked here; [`Settings::check`] checks the values.
    pub fn resolve(flags: Layer, file: Option<&Path>) -> Result<Settings, SettingsError> {
        let file = file.map(Layer::load).transpose()?.unwrap_or_default();
        Ok(Settings::with_defaults(flags.over(file)))
    }

    /// `layer`, with the default of each setting it leaves out.
    fn with_defaults(layer: Layer) -> Settings {
        let jobs = JobsConfig::default();
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Settings {
            listen: layer.listen.unwrap_or(([127, 0, 0, 1], 8080).into()),
            profiles_dir: layer.profiles_dir.unwrap_or_else(|| "profiles".into()),
            state_dir: layer.state_dir.unwrap_or_else(|| "/run/warmbox".into()),
            warm_all: layer.warm_all,
            warm: layer.warm,
            max_running: layer.max_running.unwrap_or(cpus),
            max_queue: layer.max_queue.unwrap_or(64),
            max_body_bytes: layer.max_body_bytes.unwrap_or(32 << 20),
            tokens: layer.tokens.unwrap_or_default(),
            cgroup_parent: layer.cgroup_parent,
            uid_base: layer.uid_base,
            shutdown_grace: Duration::from_secs(layer.shutdown_grace_secs.unwrap_or(30)),
            jobs_db: JobsDb::parse(
                layer
                    .jobs_db
                    .as_deref()
                    .unwrap_or("/var/lib/warmbox/jobs.redb"),
            ),
            compile_cache_mb: layer
                .compile_cache_mb
                .unwrap_or(warmbox_runner::runner::DEFAULT_COMPILE_CACHE_BYTES >> 20),
            recycle: Recycle {
                runs: layer.recycle_runs.unwrap_or(Recycle::DEFAULT.runs),
                max_age: layer
                    .recycle_max_age_secs
                    .map_or(Recycle::DEFAULT.max_age, Duration::from_secs),
            },
            jobs: JobsConfig {
                retention: layer
                    .job_retention_secs
                    .map_or(jobs.retention, Duration::from_secs),
                max_queued: layer.max_jobs_queued.unwrap_or(jobs.max_queued),
                callback_attempts: layer.callback_attempts.unwrap_or(jobs.callback_attempts),
                callback_backoff: layer
                    .callback_backoff_ms
                    .map_or(jobs.callback_backoff, Duration::from_millis),
                allow_private_callbacks: layer
                    .callback_allow_private
                    .unwrap_or(jobs.allow_private_callbacks),
                node_name: layer.node_name.unwrap_or(jobs.node_name),
                lease: layer.job_lease_secs.map_or(jobs.lease, Duration::from_secs),
                attempts: layer.job_attempts.unwrap_or(jobs.attempts),
                ..jobs
            },
            profiles: layer.profiles,
        }
    }

    /// Refuses the settings a service could not serve with, or would overflow on.
    pub fn check(&self) -> Result<(), SettingsError> {
        if self.tokens.iter().any(|t| t.trim().is_empty()) {
            return Err(SettingsError::EmptyToken);
        }
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        for (name, value, least) in [
            ("max_running", wide(self.max_running), 1),
            ("max_body_bytes", wide(self.max_body_bytes), 1024),
            ("max_jobs_queued", wide(self.jobs.max_queued), 1),
            ("recycle_runs", u64::from(self.recycle.runs), 1),
            ("recycle_max_age_secs", self.recycle.max_age.as_secs(), 1),
            ("job_lease_secs", self.jobs.lease.as_secs(), 1),
            ("job_attempts", u64::from(self.jobs.attempts), 1),
            (
                "callback_attempts",
                u64::from(self.jobs.callback_attempts),
                1,
            ),
        ] {
            if value < least {
                return Err(SettingsError::TooSmall { name, value, least });
            }
        }
        if self.compile_cache_mb > MAX_COMPILE_CACHE_MB {
            return Err(SettingsError::CompileCacheTooLarge(self.compile_cache_mb));
        }
        if let JobsDb::Unknown(url) = &self.jobs_db {
            return Err(SettingsError::JobsDb(url.clone()));
        }
        if self.jobs.node_name.trim().is_empty() {
            return Err(SettingsError::EmptyNodeName);
        }
        Ok(())
    }

    /// Refuses a `[warm]` key that is neither `default` nor one of `layouts`: misspelt, it
    /// would leave its layout at the default without a word.
    pub fn check_warm(&self, layouts: &[String]) -> Result<(), SettingsError> {
        match self
            .warm
            .keys()
            .find(|k| *k != "default" && !layouts.contains(k))
        {
            Some(key) => Err(SettingsError::UnknownLayout {
                key: key.clone(),
                layouts: layouts.to_vec(),
            }),
            None => Ok(()),
        }
    }

    /// The compile cache's size, bytes.
    pub fn compile_cache_bytes(&self) -> u64 {
        // At most 2^40 once checked; saturating otherwise.
        self.compile_cache_mb.saturating_mul(1 << 20)
    }

    /// The warm target of a layout: `--warm`, else its own `[warm]` entry, else
    /// `[warm] default`, else 2.
    pub fn warm_for(&self, layout: &str) -> usize {
        self.warm_all
            .or_else(|| {
                self.warm
                    .get(layout)
                    .or_else(|| self.warm.get("default"))
                    .copied()
            })
            .unwrap_or(DEFAULT_WARM)
    }

    /// `base` with these settings' directories, cgroup parent and uid block.
    pub fn engine_config(&self, mut base: EngineConfig) -> EngineConfig {
        base.profiles_dir.clone_from(&self.profiles_dir);
        base.state_dir.clone_from(&self.state_dir);
        if let Some(p) = &self.cgroup_parent {
            base.cgroup_parent.clone_from(p);
        }
        if let Some(u) = self.uid_base {
            base.uid_base = u;
        }
        base
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn service_file_parses_and_rejects_unknown_keys() {
        let f: Layer = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            max_running = 4
            tokens = ["a", "b"]
            [warm]
            default = 3
            "python3/run" = 6
            [profiles.python3.maximums]
            memory_mb = 512
            "#,
        )
        .unwrap();
        assert_eq!(f.listen, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(f.profiles["python3"].maximums.memory_mb, Some(512));
        let s = Settings::with_defaults(f);
        assert_eq!(s.warm_for("python3/run"), 6);
        assert_eq!(s.warm_for("c/run"), 3);
        let e = toml::from_str::<Layer>("listn = \"x\"").unwrap_err();
        assert!(e.to_string().contains("unknown field `listn`"), "{e}");
        // `--warm` is a flag only: the file has a table of that name.
        let e = toml::from_str::<Layer>("warm_all = 3").unwrap_err();
        assert!(e.to_string().contains("unknown field `warm_all`"), "{e}");
        assert_eq!(Settings::with_defaults(Layer::default()).warm_for("x"), 2);
    }

    /// Flag (or environment variable) over file over default, for every kind of setting.
    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let file: Layer = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            max_queue = 7
            tokens = ["file"]
            uid_base = 700000
            callback_allow_private = true
            recycle_runs = 20
            recycle_max_age_secs = 60
            [warm]
            "python3/run" = 6
            "#,
        )
        .unwrap();
        let flags = Layer {
            max_queue: Some(9),
            tokens: Some(vec!["flag".into()]),
            warm_all: Some(1),
            recycle_runs: Some(1),
            ..Layer::default()
        };
        let s = Settings::with_defaults(flags.over(file));
        assert_eq!(
            s.recycle,
            Recycle {
                runs: 1,
                max_age: Duration::from_secs(60)
            }
        );
        assert_eq!(
            Settings::with_defaults(Layer::default()).recycle,
            Recycle::DEFAULT
        );
        assert_eq!(s.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(s.max_queue, 9);
        assert_eq!(s.tokens, ["flag"]);
        assert_eq!(s.uid_base, Some(700_000));
        assert!(s.jobs.allow_private_callbacks);
        // `--warm` wins over every `[warm]` entry; the table is still checked.
        assert_eq!(s.warm_for("python3/run"), 1);
        assert_eq!(s.warm.get("python3/run"), Some(&6));
        // Untouched: the defaults.
        assert_eq!(s.profiles_dir, Path::new("profiles"));
        assert_eq!(s.jobs_db, JobsDb::File("/var/lib/warmbox/jobs.redb".into()));
        assert_eq!(s.max_body_bytes, 32 << 20);
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
        assert_eq!(s.compile_cache_bytes(), 256 << 20);
        assert_eq!(s.jobs.callback_attempts, 5);
        assert_eq!(s.cgroup_parent, None);
    }

    #[test]
    fn settings_a_service_cannot_serve_with_are_refused_by_name() {
        let refused = |flags: Layer| {
            Settings::with_defaults(flags)
                .check()
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(refused(Layer::default()), None);
        assert_eq!(
            refused(Layer {
                tokens: Some(vec![String::new()]),
                ..Layer::default()
            })
            .as_deref(),
            Some(
                "an empty bearer token was given (--token, WARMBOX_TOKENS or `tokens` in the \
                 settings file); leave tokens out entirely to serve without authentication"
            )
        );
        assert_eq!(
            refused(Layer {
                recycle_runs: Some(0),
                ..Layer::default()
            })
            .as_deref(),
            Some("recycle_runs is 0; it must be at least 1")
        );
        assert_eq!(
            refused(Layer {
                max_body_bytes: Some(10),
                ..Layer::default()
            })
            .as_deref(),
            Some("max_body_bytes is 10; it must be at least 1024")
        );
        assert_eq!(
            refused(Layer {
                compile_cache_mb: Some(MAX_COMPILE_CACHE_MB + 1),
                ..Layer::default()
            })
            .as_deref(),
            Some("compile_cache_mb is 1048577; it must be at most 1048576 (1 TiB)")
        );
        for (layer, message) in [
            (
                Layer {
                    jobs_db: Some("mysql://db/jobs".into()),
                    ..Layer::default()
                },
                "jobs_db \"mysql://db/jobs\": not a store warmbox knows; give a file path \
                 (redb) or a postgres://user:password@host:port/database URL",
            ),
            (
                Layer {
                    node_name: Some(" ".into()),
                    ..Layer::default()
                },
                "node_name is empty; leave it out to use the host name",
            ),
            (
                Layer {
                    job_lease_secs: Some(0),
                    ..Layer::default()
                },
                "job_lease_secs is 0; it must be at least 1",
            ),
            (
                Layer {
                    job_attempts: Some(0),
                    ..Layer::default()
                },
                "job_attempts is 0; it must be at least 1",
            ),
        ] {
            assert_eq!(refused(layer).as_deref(), Some(message));
        }
        let s = Settings::with_defaults(toml::from_str("[warm]\n\"pyhton3/run\" = 8").unwrap());
        assert_eq!(
            s.check_warm(&["bash/run".into()]).unwrap_err().to_string(),
            "[warm] \"pyhton3/run\": no such layout; the layouts are default, bash/run"
        );
    }

    #[test]
    fn jobs_db_is_a_path_or_a_postgres_url() {
        for (text, db) in [
            (
                "/var/lib/warmbox/jobs.redb",
                JobsDb::File("/var/lib/warmbox/jobs.redb".into()),
            ),
            ("jobs.redb", JobsDb::File("jobs.redb".into())),
            (
                "postgres://w:pw@db:5432/warmbox",
                JobsDb::Postgres("postgres://w:pw@db:5432/warmbox".into()),
            ),
            (
                "postgresql://db/warmbox",
                JobsDb::Postgres("postgresql://db/warmbox".into()),
            ),
            ("mysql://db/x", JobsDb::Unknown("mysql://db/x".into())),
            // A path may hold "://" further on.
            ("/data/a://b", JobsDb::File("/data/a://b".into())),
        ] {
            assert_eq!(JobsDb::parse(text), db, "{text}");
        }
    }

    /// The settings files shipped in deploy/ (the systemd example, the one in the
    /// Kubernetes ConfigMap, and the container image's) parse, with exactly the values
    /// they say.
    #[test]
    fn deploy_settings_files_parse() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let systemd = Layer::load(&root.join("deploy/systemd/warmbox.toml")).unwrap();
        let expected = Layer {
            listen: Some("127.0.0.1:8080".parse().unwrap()),
            profiles_dir: Some("/usr/local/share/warmbox/profiles".into()),
            state_dir: Some("/run/warmbox".into()),
            jobs_db: Some("/var/lib/warmbox/jobs.redb".into()),
            cgroup_parent: Some("warmbox".into()),
            uid_base: Some(600_000),
            shutdown_grace_secs: Some(30),
            max_queue: Some(64),
            compile_cache_mb: Some(256),
            tokens: Some(vec!["change-me".into()]),
            warm: [("default".to_string(), 2)].into(),
            ..Layer::default()
        };
        assert_eq!(systemd, expected);

        // The ConfigMap's `warmbox.toml: |` block, its 4-space indent removed.
        let yaml = std::fs::read_to_string(root.join("deploy/k8s/configmap.yaml")).unwrap();
        let block: String = yaml
            .lines()
            .skip_while(|l| l.trim() != "warmbox.toml: |")
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
            .collect();
        let k8s: Layer = toml::from_str(&block).unwrap();
        let expected = Layer {
            profiles_dir: Some("/usr/local/share/warmbox/profiles".into()),
            state_dir: Some("/run/warmbox".into()),
            cgroup_parent: Some("warmbox".into()),
            max_running: Some(2),
            max_queue: Some(64),
            shutdown_grace_secs: Some(30),
            compile_cache_mb: Some(256),
            // PostgreSQL's URL comes from a Secret, by environment.
            jobs_db: None,
            warm: [("default".to_string(), 2)].into(),
            ..Layer::default()
        };
        assert_eq!(k8s, expected);

        // The container image's /etc/warmbox/warmbox.toml (deploy/Dockerfile).
        let image = Layer::load(&root.join("deploy/image/warmbox.toml")).unwrap();
        let expected = Layer {
            listen: Some("0.0.0.0:8080".parse().unwrap()),
            profiles_dir: Some("/usr/local/share/warmbox/profiles".into()),
            state_dir: Some("/run/warmbox".into()),
            jobs_db: Some("/var/lib/warmbox/jobs.redb".into()),
            cgroup_parent: Some("warmbox-image".into()),
            uid_base: Some(610_000),
            shutdown_grace_secs: Some(30),
            max_queue: Some(64),
            compile_cache_mb: Some(256),
            warm: [("default".to_string(), 2)].into(),
            ..Layer::default()
        };
        assert_eq!(image, expected);
    }
}
