//! The service's settings file (`warmbox serve --config FILE`).

use std::path::PathBuf;

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
    pub maximums: warmbox_runner::request::LimitsRequest,
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
