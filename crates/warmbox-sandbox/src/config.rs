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
