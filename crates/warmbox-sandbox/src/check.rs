//! `warmbox check`: what the host supports, and whether sandboxing is possible at all.

use serde::Serialize;

use crate::cgroup;
use crate::spawn::Placement;
use warmbox_inside::landlock;

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

    let mut features = None;
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
            features = Some((b.version(), crate::probe_cgroup_features(b.as_ref())));
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
    items.extend(landlock_items(ll));
    if let Some((version, features)) = features {
        items.extend(cgroup_feature_items(version, features));
    }
    Report { kernel, items }
}

/// The landlock ABI that refuses TCP bind and connect (Linux 6.7).
const LANDLOCK_NET_ABI: u32 = 4;
/// The landlock ABI that scopes abstract unix sockets and signals (Linux 6.12).
const LANDLOCK_SCOPE_ABI: u32 = 6;

/// The landlock layers older kernels lack, each with what stands in for it.
fn landlock_items(abi: Option<u32>) -> Vec<Item> {
    let have = |needed: u32| abi.is_some_and(|v| v >= needed);
    let why = |needed: u32| match abi {
        Some(v) => format!("absent (ABI {v} < {needed})"),
        None => "absent (no landlock)".to_string(),
    };
    vec![
        Item {
            name: "landlock network",
            ok: have(LANDLOCK_NET_ABI),
            required: false,
            detail: if have(LANDLOCK_NET_ABI) {
                "TCP bind and connect refused (EACCES), inside the container's own network \
                 namespace"
                    .into()
            } else {
                format!(
                    "{}: the container's network namespace alone keeps connections from \
                     leaving: it has only its own loopback and no route (connect fails with \
                     ECONNREFUSED or ENETUNREACH)",
                    why(LANDLOCK_NET_ABI)
                )
            },
        },
        Item {
            name: "landlock scopes",
            ok: have(LANDLOCK_SCOPE_ABI),
            required: false,
            detail: if have(LANDLOCK_SCOPE_ABI) {
                "abstract unix sockets and signals limited to the job's own domain".into()
            } else {
                format!(
                    "{}: the container's namespaces alone keep the job from the host's \
                     abstract unix sockets (network namespace) and processes (pid namespace)",
                    why(LANDLOCK_SCOPE_ABI)
                )
            },
        },
    ]
}

/// The cgroup and clone features older kernels lack, found on a probe cgroup, each with
/// what the engine does without it.
fn cgroup_feature_items(
    version: cgroup::CgroupVersion,
    features: Result<crate::CgroupFeatures, crate::SandboxError>,
) -> Vec<Item> {
    let features = match features {
        Ok(f) => f,
        Err(e) => {
            return vec![Item {
                name: "cgroup features",
                ok: false,
                required: true,
                detail: format!("probing a container cgroup: {e}"),
            }]
        }
    };
    let v2 = version == cgroup::CgroupVersion::V2;
    let peaks = features.peaks;
    let (peak_file, reset_detail) = if v2 {
        ("memory.peak", "a write to memory.peak before each run")
    } else {
        (
            "memory.max_usage_in_bytes",
            "memory.max_usage_in_bytes zeroed before each run",
        )
    };
    let memory = if !peaks.memory_peak {
        Item {
            name: "memory peak",
            ok: false,
            required: false,
            detail: format!(
                "absent (no {peak_file}; v2: kernel < 5.19): a step's memory_peak_bytes is \
                 the cgroup's usage when it ended"
            ),
        }
    } else if !peaks.memory_peak_reset {
        Item {
            name: "memory peak reset",
            ok: false,
            required: false,
            detail: format!(
                "absent ({peak_file} read-only, kernel < 6.12): a step's memory_peak_bytes is \
                 the cgroup's peak since the container was made, its warm-up (init, job \
                 process, mounts) included"
            ),
        }
    } else {
        Item {
            name: "memory peak reset",
            ok: true,
            required: false,
            detail: format!("{reset_detail}: a step's peak is its own run's"),
        }
    };
    let pids = Item {
        name: "pids.peak",
        ok: peaks.pids_peak,
        required: false,
        detail: if peaks.pids_peak {
            "a step reports its processes' peak (pids_peak)".into()
        } else {
            "absent: a step's pids_peak is null (pids.max still limits the processes)".into()
        },
    };
    let clone = Item {
        name: "CLONE_INTO_CGROUP",
        ok: !matches!(features.placement, Placement::MoveRefused(_)),
        required: false,
        detail: match features.placement {
            Placement::CloneInto => "clone3 places every init in its cgroup".into(),
            Placement::MoveV1 => "not used on cgroup v1: the init is moved with cgroup.procs \
                after clone, before it is sent its setup"
                .into(),
            Placement::MoveRefused(errno) => format!(
                "absent (clone3: {}, kernel < 5.7): the init is moved with cgroup.procs after \
                 clone, before it is sent its setup",
                errno_name(errno)
            ),
        },
    };
    vec![memory, pids, clone]
}

/// The symbolic name of an errno the clone probe reports (`E2BIG`, `EINVAL`).
fn errno_name(errno: i32) -> String {
    match errno {
        libc::E2BIG => "E2BIG".into(),
        libc::EINVAL => "EINVAL".into(),
        _ => std::io::Error::from_raw_os_error(errno).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{CgroupLimits, CgroupVersion, PeakSupport};
    use crate::CgroupFeatures;
    use std::os::unix::fs::PermissionsExt;

    fn report(items: Vec<Item>) -> String {
        Report {
            kernel: "6.1.0-test".into(),
            items,
        }
        .text()
    }

    #[test]
    fn a_6_1_host_on_cgroup_v2_is_told_what_stands_in_for_each_missing_feature() {
        // A fake unified tree as Debian 12's kernel makes it: memory.peak read-only (no
        // reset before 6.12), no pids.peak; its clone3 taken to refuse CLONE_INTO_CGROUP
        // as a kernel before 5.7 does (6.1 has it; a fake cgroup has no real fd to test).
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let backend = cgroup::probe_at(root.path(), "warmbox").unwrap();
        assert_eq!(backend.version(), CgroupVersion::V2);
        let limits = CgroupLimits {
            memory_bytes: 1 << 26,
            pids: 4,
            cpu_cores: None,
        };
        let cg = backend.create("probe", &limits).unwrap();
        let peak = root.path().join("warmbox/probe/memory.peak");
        std::fs::write(&peak, "0\n").unwrap();
        std::fs::set_permissions(&peak, std::fs::Permissions::from_mode(0o444)).unwrap();
        let features = CgroupFeatures {
            peaks: cg.peak_support(),
            placement: Placement::MoveRefused(libc::E2BIG),
        };
        assert_eq!(
            features.peaks,
            PeakSupport {
                memory_peak: true,
                memory_peak_reset: false,
                pids_peak: false
            }
        );
        let mut items = landlock_items(Some(2));
        items.extend(cgroup_feature_items(CgroupVersion::V2, Ok(features)));
        assert!(items.iter().all(|i| !i.ok && !i.required));
        assert_eq!(
            report(items),
            "kernel 6.1.0-test\n\
             absent  landlock network   absent (ABI 2 < 4): the container's network namespace \
             alone keeps connections from leaving: it has only its own loopback and no route \
             (connect fails with ECONNREFUSED or ENETUNREACH)\n\
             absent  landlock scopes    absent (ABI 2 < 6): the container's namespaces alone \
             keep the job from the host's abstract unix sockets (network namespace) and \
             processes (pid namespace)\n\
             absent  memory peak reset  absent (memory.peak read-only, kernel < 6.12): a \
             step's memory_peak_bytes is the cgroup's peak since the container was made, its \
             warm-up (init, job process, mounts) included\n\
             absent  pids.peak          absent: a step's pids_peak is null (pids.max still \
             limits the processes)\n\
             absent  CLONE_INTO_CGROUP  absent (clone3: E2BIG, kernel < 5.7): the init is \
             moved with cgroup.procs after clone, before it is sent its setup\n\
             sandboxing: possible\n"
        );
    }

    #[test]
    fn a_kernel_with_every_feature_reports_them_ok() {
        let features = CgroupFeatures {
            peaks: PeakSupport {
                memory_peak: true,
                memory_peak_reset: true,
                pids_peak: true,
            },
            placement: Placement::CloneInto,
        };
        let mut items = landlock_items(Some(7));
        items.extend(cgroup_feature_items(CgroupVersion::V2, Ok(features)));
        let names: Vec<_> = items.iter().map(|i| (i.name, i.ok)).collect();
        assert_eq!(
            names,
            [
                ("landlock network", true),
                ("landlock scopes", true),
                ("memory peak reset", true),
                ("pids.peak", true),
                ("CLONE_INTO_CGROUP", true)
            ]
        );
        // Before 5.19 there is no memory.peak at all; without landlock no layer of it.
        let features = CgroupFeatures {
            peaks: PeakSupport {
                memory_peak: false,
                memory_peak_reset: false,
                pids_peak: false,
            },
            placement: Placement::CloneInto,
        };
        let memory = &cgroup_feature_items(CgroupVersion::V2, Ok(features))[0];
        assert_eq!(
            (memory.name, memory.ok, memory.detail.as_str()),
            (
                "memory peak",
                false,
                "absent (no memory.peak; v2: kernel < 5.19): a step's memory_peak_bytes is the \
                 cgroup's usage when it ended"
            )
        );
        assert!(landlock_items(None)[0]
            .detail
            .starts_with("absent (no landlock): "));
    }
}
