//! `warmbox check`: what the host supports, and whether sandboxing is possible at all.

use serde::Serialize;

use crate::container::landlock;
use crate::sandbox::cgroup;

/// One capability of the host.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// What was checked.
    pub name: &'static str,
    /// Whether it is there.
    pub ok: bool,
    /// Without it warmbox cannot sandbox at all.
    pub required: bool,
    /// What was found, or what is missing and how to get it.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Every check.
    pub items: Vec<Item>,
}

impl Report {
    /// True when every required item is there.
    pub fn can_sandbox(&self) -> bool {
        self.items.iter().all(|i| i.ok || !i.required)
    }

    /// Human-readable lines.
    pub fn text(&self) -> String {
        let mut s = format!("kernel {}\n", self.kernel);
        for i in &self.items {
            let mark = match (i.ok, i.required) {
                (true, _) => "ok     ",
                (false, true) => "MISSING",
                (false, false) => "absent ",
            };
            s.push_str(&format!("{mark} {:<18} {}\n", i.name, i.detail));
        }
        s.push_str(if self.can_sandbox() {
            "sandboxing: possible\n"
        } else {
            "sandboxing: IMPOSSIBLE (see MISSING above)\n"
        });
        s
    }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Probes the host for the default configuration with `cgroup_parent` as warmbox's
/// cgroup parent name.
pub fn run(cgroup_parent: &str) -> Report {
    match crate::config::EngineConfig::with_defaults() {
        Ok(mut config) => {
            config.cgroup_parent = cgroup_parent.to_string();
            run_for(&config)
        }
        Err(_) => run_with(cgroup_parent, None, false),
    }
}

/// Probes the host for `config`: its cgroup parent, its container uid block. The
/// parent is made if missing, and stays (for the engine that follows).
pub fn run_for(config: &crate::config::EngineConfig) -> Report {
    run_with(&config.cgroup_parent, Some(config), false)
}

/// [`run_for`] that leaves nothing behind: the levels of the cgroup parent the probe had
/// to make are removed again (`warmbox check`, which runs nothing).
pub fn run_leaving_nothing(config: &crate::config::EngineConfig) -> Report {
    run_with(&config.cgroup_parent, Some(config), true)
}

fn run_with(
    cgroup_parent: &str,
    config: Option<&crate::config::EngineConfig>,
    leave_nothing: bool,
) -> Report {
    let mut items = Vec::new();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"));

    let root = nix::unistd::geteuid().is_root();
    items.push(Item {
        name: "root",
        ok: root,
        required: true,
        detail: if root {
            "running as root".into()
        } else {
            "warmbox must run as root (it writes id maps and cgroups)".into()
        },
    });

    let max_userns = read_trim("/proc/sys/user/max_user_namespaces")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    items.push(Item {
        name: "user namespaces",
        ok: max_userns > 0,
        required: true,
        detail: format!("user.max_user_namespaces = {max_userns}"),
    });

    for (name, file) in [
        ("pid namespaces", "pid"),
        ("mount namespaces", "mnt"),
        ("net namespaces", "net"),
        ("ipc namespaces", "ipc"),
        ("uts namespaces", "uts"),
        ("cgroup namespaces", "cgroup"),
    ] {
        let ok = std::path::Path::new(&format!("/proc/self/ns/{file}")).exists();
        items.push(Item {
            name,
            ok,
            required: true,
            detail: if ok {
                format!("/proc/self/ns/{file}")
            } else {
                format!("kernel lacks /proc/self/ns/{file}")
            },
        });
    }

    match cgroup::probe(cgroup_parent) {
        Ok(b) => {
            items.push(Item {
                name: "cgroups",
                ok: true,
                required: true,
                detail: format!(
                    "{:?} with controllers {}",
                    b.version(),
                    b.controllers().join(", ")
                )
                .to_lowercase(),
            });
            items.push(Item {
                name: "cgroup parent",
                ok: true,
                required: true,
                detail: b.describe_parent(),
            });
            if leave_nothing {
                if let Err(e) = b.remove_levels(b.created_levels()) {
                    tracing::debug!(error = %e, "the probe's cgroup parent left in place");
                }
            }
        }
        Err(e) => items.push(Item {
            name: "cgroups",
            ok: false,
            required: true,
            detail: e.to_string(),
        }),
    }

    let seccomp = read_trim("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false);
    items.push(Item {
        name: "seccomp",
        ok: seccomp,
        required: true,
        detail: if seccomp {
            "seccomp filters supported".into()
        } else {
            "kernel built without CONFIG_SECCOMP_FILTER".into()
        },
    });

    if let Some(config) = config {
        let conflicts = config.host_id_conflicts();
        items.push(Item {
            name: "container uids",
            ok: conflicts.is_empty(),
            required: true,
            detail: if conflicts.is_empty() {
                format!(
                    "{}..{} free on this host",
                    config.uid_base,
                    u64::from(config.uid_base) + u64::from(2 * config.slots)
                )
            } else {
                format!("block overlaps host ids: {}", conflicts.join("; "))
            },
        });
    }

    let ll = landlock::abi_version();
    items.push(Item {
        name: "landlock",
        ok: ll.is_some(),
        required: false,
        detail: match ll {
            Some(v) => format!("ABI {v}"),
            None => "unavailable: add `landlock` to the lsm= boot parameter; runs lose that layer"
                .into(),
        },
    });
    Report { kernel, items }
}
