//! The tests' view of the host's cgroup tree (`warmbox_testkit::cgroupfs`), checked
//! against fake v1, co-mounted v1, v2 and hybrid trees in a temporary directory, so that the
//! host-state checks of the other tests mean the same on a v1 and a v2 host. (That the
//! host's own tree is read as the engine lays it out needs the engine: the root package's
//! tests/cgroupfs_host.rs.)

use std::fs;
use std::path::{Path, PathBuf};

use warmbox_sandbox::cgroup::{CgroupError, CgroupVersion};
use warmbox_testkit::cgroupfs::CgroupFs;

/// A fake v1 hierarchy `name` under `root` (a directory with `cgroup.procs`).
fn v1_hierarchy(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("cgroup.procs"), "").expect("write cgroup.procs");
    dir
}

/// A fake v1 host: memory, pids, cpu and cpuacct mounted apart, an empty v2 tree beside.
fn v1_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for c in ["memory", "pids", "cpu", "cpuacct", "freezer"] {
        v1_hierarchy(tmp.path(), c);
    }
    fs::create_dir(tmp.path().join("unified")).expect("mkdir unified");
    tmp
}

/// A fake v2 host with `controllers` in the root's `cgroup.controllers`.
fn v2_tree(controllers: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(tmp.path().join("cgroup.controllers"), controllers).expect("write");
    fs::write(tmp.path().join("cgroup.procs"), "1\n").expect("write");
    tmp
}

fn resolved(p: &Path) -> PathBuf {
    fs::canonicalize(p).expect("canonicalize")
}

#[test]
fn v1_parent_is_in_every_controller() {
    let tmp = v1_tree();
    let root = resolved(tmp.path());
    let fs_ = CgroupFs::at(tmp.path()).expect("v1 tree");
    assert_eq!(fs_.version(), CgroupVersion::V1);
    assert_eq!(
        fs_.parent_dirs("p/q"),
        ["memory", "pids", "cpu", "cpuacct"].map(|c| root.join(c).join("p/q"))
    );
    assert!(!fs_.exists("p"));
    fs_.make_parent("p").expect("make");
    assert!(fs_.exists("p") && fs_.complete("p"));
    for c in ["memory", "pids", "cpu", "cpuacct"] {
        assert!(root.join(c).join("p").is_dir(), "{c}");
    }
    assert!(
        !root.join("freezer/p").exists(),
        "only the engine's controllers"
    );
    assert!(!root.join("p").exists(), "nothing at the root");

    // Children: every controller's, once each; one left in a single controller counts.
    for c in ["memory", "pids", "cpu", "cpuacct"] {
        fs::create_dir(root.join(c).join("p/c-1")).expect("mkdir");
    }
    fs::create_dir(root.join("pids/p/c-2")).expect("mkdir");
    fs::write(root.join("memory/p/c-1/cgroup.procs"), "7\n5\n").expect("write");
    fs::write(root.join("pids/p/c-1/cgroup.procs"), "5\n7\n").expect("write");
    fs::write(root.join("pids/p/not-a-cgroup"), "").expect("write");
    assert_eq!(fs_.children("p"), ["c-1", "c-2"]);
    assert_eq!(fs_.procs("p", "c-1"), [5, 7]);
    assert_eq!(fs_.procs("p", "c-9"), Vec::<i32>::new());

    // A parent still holding a cgroup is not removed; once emptied it goes everywhere.
    assert!(fs_.remove_parent("p").is_err());
    for c in ["memory", "pids", "cpu", "cpuacct"] {
        let _ = fs::remove_file(root.join(c).join("p/c-1/cgroup.procs"));
        fs::remove_dir(root.join(c).join("p/c-1")).expect("rmdir");
    }
    fs::remove_dir(root.join("pids/p/c-2")).expect("rmdir");
    fs::remove_file(root.join("pids/p/not-a-cgroup")).expect("rm");
    // A level that one controller lost already counts as removed.
    fs::remove_dir(root.join("cpu/p")).expect("rmdir");
    assert!(fs_.exists("p") && !fs_.complete("p"));
    fs_.remove_parent("p").expect("remove");
    assert!(!fs_.exists("p"));
    assert_eq!(fs_.children("p"), Vec::<String>::new());
}

#[test]
fn v1_co_mounted_controllers_count_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    v1_hierarchy(tmp.path(), "memory");
    v1_hierarchy(tmp.path(), "pids");
    let both = v1_hierarchy(tmp.path(), "cpu,cpuacct");
    // As systemd links them: `cpu` and `cpuacct` point at the co-mount.
    std::os::unix::fs::symlink("cpu,cpuacct", tmp.path().join("cpu")).expect("symlink");
    std::os::unix::fs::symlink("cpu,cpuacct", tmp.path().join("cpuacct")).expect("symlink");
    let fs_ = CgroupFs::at(tmp.path()).expect("v1 tree");
    let root = resolved(tmp.path());
    assert_eq!(fs_.version(), CgroupVersion::V1);
    assert_eq!(
        fs_.parent_dirs("p"),
        [
            root.join("memory/p"),
            root.join("pids/p"),
            resolved(&both).join("p")
        ]
    );
    fs_.make_parent("p").expect("make");
    fs_.remove_parent("p").expect("remove");
    assert!(!fs_.exists("p"));
}

#[test]
fn v2_parent_is_one_directory_at_the_root() {
    let tmp = v2_tree("cpuset cpu io memory hugetlb pids rdma misc\n");
    let fs_ = CgroupFs::at(tmp.path()).expect("v2 tree");
    assert_eq!(fs_.version(), CgroupVersion::V2);
    assert_eq!(fs_.parent_dirs("p/q"), [tmp.path().join("p/q")]);
    fs_.make_parent("p").expect("make");
    assert!(fs_.exists("p") && fs_.complete("p"));
    // No v1 controller directories are made at the v2 root (they would be cgroups there).
    assert_eq!(warmbox_testkit::subdirs(tmp.path()), ["p"]);
    fs::create_dir(tmp.path().join("p/c-1")).expect("mkdir");
    fs::write(tmp.path().join("p/c-1/cgroup.procs"), "42\n").expect("write");
    assert_eq!(fs_.children("p"), ["c-1"]);
    assert_eq!(fs_.procs("p", "c-1"), [42]);
    fs::remove_file(tmp.path().join("p/c-1/cgroup.procs")).expect("rm");
    fs::remove_dir(tmp.path().join("p/c-1")).expect("rmdir");
    fs_.remove_parent("p").expect("remove");
    assert!(!fs_.exists("p"));
    assert_eq!(warmbox_testkit::subdirs(tmp.path()), Vec::<String>::new());
}

/// A v2 root without the engine's controllers (a hybrid host) is not the engine's tree:
/// the v1 hierarchies are, as the engine's probe decides.
#[test]
fn v2_root_lacking_controllers_means_v1() {
    let tmp = v2_tree("cpuset io\n");
    for c in ["memory", "pids", "cpu", "cpuacct"] {
        v1_hierarchy(tmp.path(), c);
    }
    let fs_ = CgroupFs::at(tmp.path()).expect("hybrid tree");
    assert_eq!(fs_.version(), CgroupVersion::V1);
    assert_eq!(fs_.parent_dirs("p").len(), 4);
}

#[test]
fn a_tree_without_the_controllers_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    v1_hierarchy(tmp.path(), "memory");
    match CgroupFs::at(tmp.path()) {
        Err(CgroupError::Unsupported(why)) => assert_eq!(
            why,
            format!(
                "no cgroup v2 hierarchy at {0}; cgroup v1 controllers not mounted under {0}: \
                 pids, cpu, cpuacct",
                tmp.path().display()
            )
        ),
        other => panic!("{other:?}"),
    }
}
