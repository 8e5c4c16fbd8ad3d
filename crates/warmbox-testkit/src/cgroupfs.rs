//! The host's cgroup tree as the tests look at it, on v1 and v2 alike: the directories of a
//! cgroup parent, its child cgroups, making and removing a parent. The layout is decided by
//! the engine's own [`warmbox_sandbox::cgroup::hierarchy_at`], so a test looks exactly
//! where the engine writes: v1 a parent directory in each of memory, pids, cpu and cpuacct
//! (`/sys/fs/cgroup/<controller>/<parent>`), v2 one (`/sys/fs/cgroup/<parent>`).
//!
//! The free functions use the host's tree (`/sys/fs/cgroup`) and panic with what failed;
//! [`CgroupFs::at`] takes any root, so the helper is tested against fake trees.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use warmbox_sandbox::cgroup::{hierarchy_at, CgroupError, CgroupVersion, CGROUP_ROOT};

/// One cgroup tree (the host's, or a fake one) as the engine would use it.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupFs {
    version: CgroupVersion,
    /// Where a parent goes: v2 the root; v1 each controller's hierarchy, a co-mount once.
    hierarchies: Vec<PathBuf>,
}

impl CgroupFs {
    /// The tree mounted at `root`, read the way the engine's probe reads it (nothing made).
    pub fn at(root: &Path) -> Result<CgroupFs, CgroupError> {
        let (version, hierarchies) = hierarchy_at(root)?;
        Ok(CgroupFs {
            version,
            hierarchies,
        })
    }

    /// v1 or v2.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Every directory of the cgroup parent `parent`: one per v1 hierarchy, the one on v2.
    pub fn parent_dirs(&self, parent: &str) -> Vec<PathBuf> {
        self.hierarchies.iter().map(|h| h.join(parent)).collect()
    }

    /// Names of the cgroups under `parent` in any of its directories, sorted, once each
    /// (on v1 a cgroup left in one controller only counts too).
    pub fn children(&self, parent: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .parent_dirs(parent)
            .iter()
            .flat_map(|d| crate::subdirs(d))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether any directory of `parent` exists (on v1 a parent left in one controller
    /// counts as left).
    pub fn exists(&self, parent: &str) -> bool {
        self.parent_dirs(parent).iter().any(|d| d.exists())
    }

    /// Whether every directory of `parent` exists.
    pub fn complete(&self, parent: &str) -> bool {
        self.parent_dirs(parent).iter().all(|d| d.is_dir())
    }

    /// Makes `parent` (every level of it) in each of its directories, as an operator's
    /// pre-existing parent would be.
    pub fn make_parent(&self, parent: &str) -> io::Result<()> {
        for d in self.parent_dirs(parent) {
            std::fs::create_dir_all(&d).map_err(|e| named("mkdir -p", &d, e))?;
        }
        Ok(())
    }

    /// Removes the last level of `parent` in each of its directories (it must be empty);
    /// one already gone counts as removed.
    pub fn remove_parent(&self, parent: &str) -> io::Result<()> {
        for d in self.parent_dirs(parent) {
            match std::fs::remove_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(named("rmdir", &d, e)),
            }
        }
        Ok(())
    }

    /// Pids in the cgroup `child` of `parent` (its `cgroup.procs` in every directory), sorted,
    /// once each; none when it is gone.
    pub fn procs(&self, parent: &str, child: &str) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .parent_dirs(parent)
            .iter()
            .map(|d| {
                std::fs::read_to_string(d.join(child).join("cgroup.procs")).unwrap_or_default()
            })
            .collect::<Vec<String>>()
            .iter()
            .flat_map(|text| text.lines().filter_map(|l| l.trim().parse().ok()))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// `e` with the operation and the path it failed on.
fn named(op: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

/// The host's tree at `/sys/fs/cgroup`; panics when the engine could not use it either.
pub fn host() -> &'static CgroupFs {
    static HOST: OnceLock<CgroupFs> = OnceLock::new();
    HOST.get_or_init(|| {
        CgroupFs::at(Path::new(CGROUP_ROOT))
            .unwrap_or_else(|e| panic!("cgroup tree at {CGROUP_ROOT}: {e}"))
    })
}

/// [`CgroupFs::parent_dirs`] on the host.
pub fn parent_dirs(parent: &str) -> Vec<PathBuf> {
    host().parent_dirs(parent)
}

/// [`CgroupFs::children`] on the host.
pub fn children(parent: &str) -> Vec<String> {
    host().children(parent)
}

/// [`CgroupFs::exists`] on the host.
pub fn exists(parent: &str) -> bool {
    host().exists(parent)
}

/// [`CgroupFs::complete`] on the host.
pub fn complete(parent: &str) -> bool {
    host().complete(parent)
}

/// [`CgroupFs::make_parent`] on the host.
pub fn make_parent(parent: &str) {
    host()
        .make_parent(parent)
        .unwrap_or_else(|e| panic!("make cgroup parent {parent}: {e}"));
}

/// [`CgroupFs::remove_parent`] on the host.
pub fn remove_parent(parent: &str) {
    host()
        .remove_parent(parent)
        .unwrap_or_else(|e| panic!("remove cgroup parent {parent}: {e}"));
}

/// [`CgroupFs::procs`] on the host.
pub fn procs(parent: &str, child: &str) -> Vec<i32> {
    host().procs(parent, child)
}
