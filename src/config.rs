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
