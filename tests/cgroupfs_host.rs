//! The tests' view of the host's cgroup tree (`warmbox_testkit::cgroupfs`) matches where a
//! real engine makes its cgroup parent. (The view against fake v1, co-mounted v1, v2 and
//! hybrid trees, which needs no engine: crates/warmbox-testkit/tests/cgroupfs.rs.)

mod common;

use std::path::{Path, PathBuf};

use warmbox_sandbox::cgroup::CgroupVersion;

fn resolved(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).expect("canonicalize")
}

/// The host's tree is read as the engine reads it: the same version as its probe, and the
/// harness's parent where the engine made it.
#[test]
fn host_tree_matches_the_engine() {
    let Some(h) = common::harness() else { return };
    let version = h.sandbox.cgroups().version();
    assert_eq!(warmbox_testkit::cgroupfs::host().version(), version);
    let root = Path::new("/sys/fs/cgroup");
    let mut expected: Vec<PathBuf> = match version {
        CgroupVersion::V1 => h
            .sandbox
            .cgroups()
            .controllers()
            .iter()
            .map(|c| resolved(&root.join(c)).join(warmbox_testkit::harness::CGROUP_PARENT))
            .collect(),
        CgroupVersion::V2 => vec![root.join(warmbox_testkit::harness::CGROUP_PARENT)],
    };
    expected.dedup();
    assert_eq!(
        warmbox_testkit::cgroupfs::parent_dirs(warmbox_testkit::harness::CGROUP_PARENT),
        expected
    );
    assert!(warmbox_testkit::cgroupfs::complete(
        warmbox_testkit::harness::CGROUP_PARENT
    ));
}
