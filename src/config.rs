//! Engine configuration: where things live on the host and how containers are numbered.

use std::path::PathBuf;

/// Settings of the sandbox engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The warmbox binary, re-executed as each container's init.
    pub init_exe: PathBuf,
    /// Host directory for warmbox's state; holds the empty `root` mount point.
    pub state_dir: PathBuf,
    /// Name of warmbox's parent cgroup (under each v1 controller, or the v2 root).
    pub cgroup_parent: String,
    /// First host uid of the container uid block: slot `n` maps its root to
    /// `uid_base + 2n` and its box user to `uid_base + 2n + 1` (same for gids).
    pub uid_base: u32,
    /// Number of slots, i.e. containers alive at once.
    pub slots: u32,
    /// Directory of the language profiles (`*.toml`) and of `seccomp/*.json`.
    pub profiles_dir: PathBuf,
}

impl EngineConfig {
    /// Defaults for this host: the running binary as init, `/run/warmbox`, cgroup parent
    /// `warmbox`, uids from 600000 (above the usual subordinate-id ranges), 512 slots,
    /// profiles from `./profiles`.
    pub fn with_defaults() -> std::io::Result<Self> {
        Ok(EngineConfig {
            init_exe: std::env::current_exe()?,
            state_dir: PathBuf::from("/run/warmbox"),
            cgroup_parent: "warmbox".into(),
            uid_base: 600_000,
            slots: 512,
            profiles_dir: PathBuf::from("profiles"),
        })
    }

    /// The seccomp policy directory.
    pub fn seccomp_dir(&self) -> PathBuf {
        self.profiles_dir.join("seccomp")
    }

    /// The empty directory each container mounts its root tmpfs on (in its own mount
    /// namespace, so all containers share it without seeing each other).
    pub fn new_root(&self) -> PathBuf {
        self.state_dir.join("root")
    }
}

/// Where the container uid/gid block `[base, base + len)` overlaps ids the host already
/// gives out: a user or group in `passwd`/`group` text, or a subordinate range in
/// `subuid`/`subgid` text (`name:start:count`). Each entry names the file and the line, so
/// that an operator can choose another `uid_base`.
pub fn id_block_conflicts(base: u32, len: u32, files: &[(&str, &str)]) -> Vec<String> {
    let end = u64::from(base) + u64::from(len);
    let overlaps = |start: u64, count: u64| start < end && u64::from(base) < start + count;
    let mut found = Vec::new();
    // Ids are 32-bit and 4294967295 is no id (`(uid_t)-1`): past it, a container's ids
    // would wrap around to the host's first ones, root's among them.
    if end > u64::from(u32::MAX) {
        found.push(format!(
            "ids {base}..{end} pass the largest id, {}: choose a uid_base at most {}",
            u32::MAX - 1,
            u64::from(u32::MAX) - u64::from(len)
        ));
    }
    for (name, text) in files {
        let ranges = name.ends_with("subuid") || name.ends_with("subgid");
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let fields: Vec<&str> = line.split(':').collect();
            let hit = if ranges {
                match (fields.get(1), fields.get(2)) {
                    (Some(s), Some(c)) => match (s.parse::<u64>(), c.parse::<u64>()) {
                        (Ok(s), Ok(c)) => overlaps(s, c),
                        _ => false,
                    },
                    _ => false,
                }
            } else {
                fields
                    .get(2)
                    .and_then(|id| id.parse::<u64>().ok())
                    .is_some_and(|id| overlaps(id, 1))
            };
            if hit {
                found.push(format!("{name}: {line}"));
            }
        }
    }
    found
}

impl EngineConfig {
    /// The host's ids that the container uid block would collide with (read from `/etc`).
    pub fn host_id_conflicts(&self) -> Vec<String> {
        let files = ["/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid"];
        let texts: Vec<(&str, String)> = files
            .iter()
            .map(|f| (*f, std::fs::read_to_string(f).unwrap_or_default()))
            .collect();
        let borrowed: Vec<(&str, &str)> = texts.iter().map(|(f, t)| (*f, t.as_str())).collect();
        id_block_conflicts(self.uid_base, 2 * self.slots, &borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_block_past_the_largest_id_is_a_conflict() {
        assert_eq!(
            id_block_conflicts(4_294_967_294, 1024, &[]),
            [
                "ids 4294967294..4294968318 pass the largest id, 4294967294: choose a uid_base at \
              most 4294966271"
            ]
        );
        assert!(id_block_conflicts(4_294_966_271, 1024, &[]).is_empty());
    }

    #[test]
    fn id_block_conflicts_name_the_entry() {
        let passwd = "root:x:0:0::/root:/bin/sh\nbob:x:600100:600100::/home/bob:/bin/sh\n";
        let subuid = "alice:558752:65536\ncarol:700000:65536\n";
        let found = id_block_conflicts(
            600_000,
            1024,
            &[("/etc/passwd", passwd), ("/etc/subuid", subuid)],
        );
        assert_eq!(
            found,
            [
                "/etc/passwd: bob:x:600100:600100::/home/bob:/bin/sh",
                "/etc/subuid: alice:558752:65536"
            ]
        );
        // Adjacent ranges do not overlap.
        assert!(id_block_conflicts(600_000, 1024, &[("/etc/subuid", "x:601024:10\n")]).is_empty());
        assert!(id_block_conflicts(600_000, 1024, &[("/etc/subuid", "x:599990:10\n")]).is_empty());
    }
}

/// The service's settings file (`warmbox serve --config FILE`), TOML. Every key is
/// optional; a flag or environment variable given for the same setting wins over it.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// Address to listen on.
    pub listen: Option<std::net::SocketAddr>,
    /// Directory of the profiles.
    pub profiles_dir: Option<PathBuf>,
    /// State directory.
    pub state_dir: Option<PathBuf>,
    /// Requests running at once.
    pub max_running: Option<usize>,
    /// Requests waiting beyond those.
    pub max_queue: Option<usize>,
    /// Largest request body, bytes.
    pub max_body_bytes: Option<usize>,
    /// Accepted bearer tokens.
    pub tokens: Option<Vec<String>>,
    /// warmbox's parent cgroup.
    pub cgroup_parent: Option<String>,
    /// First host uid of the container uid block.
    pub uid_base: Option<u32>,
    /// Seconds running requests may finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: Option<u64>,
    /// The durable store of async jobs.
    pub jobs_db: Option<PathBuf>,
    /// Let callbacks go to loopback, private and link-local addresses.
    pub callback_allow_private: Option<bool>,
    /// Deliveries of a job's callback tried at most.
    pub callback_attempts: Option<u32>,
    /// Wait before a callback's second delivery, ms; doubled before each further one.
    pub callback_backoff_ms: Option<u64>,
    /// Size of the compile cache, MiB (0: none).
    pub compile_cache_mb: Option<u64>,
    /// Seconds a finished async job's result is kept.
    pub job_retention_secs: Option<u64>,
    /// Async jobs queued at most; more are refused with 503.
    pub max_jobs_queued: Option<usize>,
    /// Warm containers: `default`, and per layout (`"python3/run" = 4`).
    #[serde(default)]
    pub warm: std::collections::BTreeMap<String, usize>,
    /// Per profile: maximums lower than the profile file's (`[profiles.python3.maximums]`).
    #[serde(default)]
    pub profiles: std::collections::BTreeMap<String, ProfileOverride>,
}

/// An operator's tightening of one profile.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileOverride {
    /// Maximums a request may ask for.
    #[serde(default)]
    pub maximums: crate::request::LimitsRequest,
}

impl ServiceFile {
    /// Reads and parses `path`; errors name the file and the problem.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The warm target of a layout: its own entry, else `default`, else `fallback`.
    pub fn warm_for(&self, layout: &str, fallback: usize) -> usize {
        self.warm
            .get(layout)
            .or_else(|| self.warm.get("default"))
            .copied()
            .unwrap_or(fallback)
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn service_file_parses_and_rejects_unknown_keys() {
        let f: ServiceFile = toml::from_str(
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
        assert_eq!(f.warm_for("python3/run", 2), 6);
        assert_eq!(f.warm_for("c/run", 2), 3);
        assert_eq!(f.profiles["python3"].maximums.memory_mb, Some(512));
        let e = toml::from_str::<ServiceFile>("listn = \"x\"").unwrap_err();
        assert!(e.to_string().contains("unknown field `listn`"), "{e}");
        assert_eq!(ServiceFile::default().warm_for("x", 2), 2);
    }

    /// The settings files shipped in deploy/ (the systemd example, the one in the
    /// Kubernetes ConfigMap, and the container image's) parse, with exactly the values
    /// they say.
    #[test]
    fn deploy_settings_files_parse() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let systemd = ServiceFile::load(&root.join("deploy/systemd/warmbox.toml")).unwrap();
        let expected = ServiceFile {
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
            ..ServiceFile::default()
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
        let k8s: ServiceFile = toml::from_str(&block).unwrap();
        let expected = ServiceFile {
            profiles_dir: Some("/usr/local/share/warmbox/profiles".into()),
            state_dir: Some("/run/warmbox".into()),
            cgroup_parent: Some("warmbox".into()),
            max_running: Some(2),
            max_queue: Some(64),
            shutdown_grace_secs: Some(30),
            compile_cache_mb: Some(256),
            jobs_db: Some("/var/lib/warmbox/jobs.redb".into()),
            warm: [("default".to_string(), 2)].into(),
            ..ServiceFile::default()
        };
        assert_eq!(k8s, expected);

        // The container image's /etc/warmbox/warmbox.toml (deploy/Dockerfile).
        let image = ServiceFile::load(&root.join("deploy/image/warmbox.toml")).unwrap();
        let expected = ServiceFile {
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
            ..ServiceFile::default()
        };
        assert_eq!(image, expected);
    }
}
