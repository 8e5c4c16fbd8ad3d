//! The container's filesystem: a tmpfs root holding read-only binds of the profile's host
//! directories, `/box`, `/tmp` and `/dev/shm` sharing one size-limited tmpfs, a fresh
//! `/proc` with the sensitive entries masked, a `/dev` with five device nodes, and a
//! read-only root.
//!
//! It is built in two parts. `template_plan` is what every container of a layout shares:
//! its fork server builds it once in its own mount namespace and pivots into it, and each
//! init's mount namespace starts as a copy of it (the copy is the cheap part of clone; a
//! root built per container cost 40 mount operations and a pivot_root whose detach of the
//! old root waits for an RCU grace period). `container_plan` is what each init adds: its
//! writable tmpfs (one, bound on the three writable directories) and its own `/proc`.
//!
//! The plans are lists of `Op`s (pure data, unit-tested without root); `apply` performs
//! them, naming the call and its arguments on failure.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Most files a request may carry (the runner refuses more).
pub const MAX_FILES: usize = 1024;

/// Most path components in a file name (`a/b/c` has 3).
pub const MAX_FILE_DEPTH: usize = 32;

/// The job's user inside the container.
pub const BOX_UID: u32 = 1000;
/// The job's group inside the container.
pub const BOX_GID: u32 = 1000;
/// Hostname of every container.
pub const HOSTNAME: &str = "warmbox";
/// The writable directories of the job: three directories of one size-limited tmpfs.
pub const WRITABLE: [&str; 3] = ["/box", "/tmp", "/dev/shm"];
/// The writable directories: their names in the one tmpfs, and their modes. `/box` comes
/// last: the tmpfs is mounted on `/box` to make them, and the bind of its `box` covers it.
const WRITABLE_DIRS: [(&str, &str, u32); 3] = [
    ("/tmp", "tmp", 0o1777),
    ("/dev/shm", "shm", 0o1777),
    ("/box", "box", 0o755),
];
/// Inodes of the writable tmpfs that are not the job's: its root and the three directories.
pub const DISK_OWN_INODES: u64 = 1 + WRITABLE_DIRS.len() as u64;
/// The fewest inodes of the writable tmpfs, whatever its size: room for the worst request
/// files that validation lets through (every one of [`MAX_FILES`] files at the deepest
/// [`MAX_FILE_DEPTH`], each directory of its path its own), so that they always fit.
pub const MIN_DISK_INODES: u64 = (MAX_FILES * MAX_FILE_DEPTH) as u64 + DISK_OWN_INODES;
/// The most inodes of the writable tmpfs.
pub const MAX_DISK_INODES: u64 = 1 << 20;
/// The device nodes bound from the host.
pub const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Files under `/proc` hidden behind `/dev/null`.
const PROC_MASKED_FILES: [&str; 10] = [
    // The host's boot command line (on a VM it may carry its control-plane settings).
    "cmdline",
    // Every OFD lock of the whole kernel (other pid namespaces' show with pid -1): the
    // host's and other containers' lock activity, and a channel between containers.
    "locks",
    "config.gz",
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "sysrq-trigger",
    "latency_stats",
    "kallsyms",
];
/// Directories under `/proc` hidden behind an empty read-only tmpfs.
const PROC_MASKED_DIRS: [&str; 4] = ["acpi", "scsi", "asound", "driver"];
/// Directories under `/proc` made read-only.
const PROC_READONLY: [&str; 4] = ["sys", "irq", "bus", "fs"];

/// A failed filesystem operation.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {errno}")]
pub struct MountError {
    /// The operation with its arguments.
    pub op: String,
    /// The kernel's answer.
    pub errno: nix::errno::Errno,
}

/// One step of the container's filesystem setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Make every mount private so that nothing propagates back to the host.
    MakePrivate,
    /// Mount a tmpfs with these flags and options.
    Tmpfs {
        target: PathBuf,
        flags: MsFlags,
        options: String,
    },
    /// Remount a tmpfs we own with new options.
    RemountTmpfs { target: PathBuf, options: String },
    /// Create a directory (and its parents).
    Mkdir { path: PathBuf },
    /// Create one directory with this mode and owner.
    MkdirOwned {
        path: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// Create an empty file (a mount point for a file bind).
    Touch { path: PathBuf },
    /// Create a symlink at `link` pointing to `target`.
    Symlink { target: PathBuf, link: PathBuf },
    /// Bind `source` on `target` (recursively).
    Bind { source: PathBuf, target: PathBuf },
    /// Set mount attributes (MOUNT_ATTR_*) on `target`, recursively or not.
    SetAttr {
        target: PathBuf,
        attrs: u64,
        recursive: bool,
    },
    /// Mount a fresh proc.
    Proc { target: PathBuf },
    /// Write a small file.
    WriteFile { path: PathBuf, content: String },
    /// pivot_root into `new_root`, detach the old root, chdir to `/`.
    PivotRoot { new_root: PathBuf },
    /// Unmount the top mount at `target` (not lazily: a busy mount is an error).
    Unmount { target: PathBuf },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::MakePrivate => write!(f, "mount(MS_REC|MS_PRIVATE, /)"),
            Op::Tmpfs {
                target,
                flags,
                options,
            } => write!(f, "mount tmpfs {} ({flags:?}, {options})", target.display()),
            Op::RemountTmpfs { target, options } => {
                write!(f, "remount tmpfs {} ({options})", target.display())
            }
            Op::Mkdir { path } => write!(f, "mkdir {}", path.display()),
            Op::MkdirOwned {
                path,
                mode,
                uid,
                gid,
            } => write!(f, "mkdir {} ({mode:#o}, {uid}:{gid})", path.display()),
            Op::Touch { path } => write!(f, "create {}", path.display()),
            Op::Symlink { target, link } => {
                write!(f, "symlink {} -> {}", link.display(), target.display())
            }
            Op::Bind { source, target } => {
                write!(f, "bind {} on {}", source.display(), target.display())
            }
            Op::SetAttr {
                target,
                attrs,
                recursive,
            } => write!(
                f,
                "mount_setattr {} attrs {attrs:#x}{}",
                target.display(),
                if *recursive { " recursive" } else { "" }
            ),
            Op::Proc { target } => write!(f, "mount proc {}", target.display()),
            Op::WriteFile { path, .. } => write!(f, "write {}", path.display()),
            Op::PivotRoot { new_root } => write!(f, "pivot_root {}", new_root.display()),
            Op::Unmount { target } => write!(f, "umount {}", target.display()),
        }
    }
}

/// What a host path is, as far as binding it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// A directory: bind it.
    Dir,
    /// A file: bind it on an empty file.
    File,
    /// A symlink: recreate it with this target.
    Symlink(PathBuf),
    /// Absent: skip it.
    Missing,
}

/// The kinds of the `/proc` entries that `container_plan` masks, as looked up once by
/// `remember_proc_kinds` (in the fork server, so that every init inherits them).
static PROC_KINDS: std::sync::OnceLock<Vec<(PathBuf, HostKind)>> = std::sync::OnceLock::new();

/// Looks up, once, which of the masked `/proc` entries this kernel has.
pub fn remember_proc_kinds() {
    PROC_KINDS.get_or_init(|| {
        PROC_MASKED_FILES
            .iter()
            .chain(&PROC_MASKED_DIRS)
            .chain(&PROC_READONLY)
            .map(|e| {
                let path = PathBuf::from(format!("/proc/{e}"));
                let kind = host_kind(&path);
                (path, kind)
            })
            .collect()
    });
}

/// `host_kind`, answered from `remember_proc_kinds` when it has the path.
pub fn proc_kind(path: &Path) -> HostKind {
    PROC_KINDS
        .get()
        .and_then(|kinds| kinds.iter().find(|(p, _)| p == path))
        .map(|(_, k)| k.clone())
        .unwrap_or_else(|| host_kind(path))
}

/// Looks a host path up without following a final symlink.
pub fn host_kind(path: &Path) -> HostKind {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(path) {
            Ok(t) => HostKind::Symlink(t),
            Err(_) => HostKind::Missing,
        },
        Ok(m) if m.is_dir() => HostKind::Dir,
        Ok(_) => HostKind::File,
        Err(_) => HostKind::Missing,
    }
}

const RO_NOSUID_NODEV: u64 =
    libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;

/// The inodes of a writable tmpfs of `bytes`: one per 16 KiB, within
/// [`MIN_DISK_INODES`]..=[`MAX_DISK_INODES`]. (An inode costs the kernel about 1 KiB,
/// charged to the container's memory like the files' pages.)
pub fn disk_inodes(bytes: u64) -> u64 {
    (bytes / 16384).clamp(MIN_DISK_INODES, MAX_DISK_INODES)
}

/// Size options of the writable tmpfs of `bytes` (for its mount and its resize: a remount
/// may change only these; the kernel refuses one below what is in use).
pub fn disk_options(bytes: u64) -> String {
    format!("size={bytes},nr_inodes={}", disk_inodes(bytes))
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// The template of a layout, built once by its fork server in the fork server's own mount
/// namespace: a tmpfs root at `new_root` holding read-only binds of `binds` (classified by
/// `kind`), `/dev` with five device nodes, a minimal `/etc`, the mount points of the
/// container's own mounts, and the host's `/proc` (which the kernel requires to be visible
/// before a user namespace may mount a proc of its own; each container covers it with its
/// own). Ends with pivot_root into it and a read-only root. Every init's mount namespace
/// is a copy of this one: copied into the container's user namespace, each of these mounts
/// is locked by the kernel (it cannot be unmounted to show what it covers, nor made
/// writable).
pub fn template_plan(
    new_root: &Path,
    binds: &[PathBuf],
    kind: &dyn Fn(&Path) -> HostKind,
) -> Vec<Op> {
    let r = |p: &str| under(new_root, Path::new(p));
    let mut ops = vec![
        Op::MakePrivate,
        Op::Tmpfs {
            target: new_root.to_path_buf(),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            options: "size=4m,nr_inodes=4096,mode=0755".into(),
        },
    ];

    let mut sorted: Vec<&PathBuf> = binds.iter().collect();
    sorted.sort();
    sorted.dedup();
    for host in sorted {
        let inside = under(new_root, host);
        match kind(host) {
            HostKind::Missing => continue,
            HostKind::Symlink(target) => {
                if let Some(parent) = inside.parent() {
                    ops.push(Op::Mkdir {
                        path: parent.to_path_buf(),
                    });
                }
                ops.push(Op::Symlink {
                    target,
                    link: inside,
                });
                continue;
            }
            HostKind::Dir => ops.push(Op::Mkdir {
                path: inside.clone(),
            }),
            HostKind::File => {
                if let Some(parent) = inside.parent() {
                    ops.push(Op::Mkdir {
                        path: parent.to_path_buf(),
                    });
                }
                ops.push(Op::Touch {
                    path: inside.clone(),
                });
            }
        }
        ops.push(Op::Bind {
            source: host.clone(),
            target: inside.clone(),
        });
        ops.push(Op::SetAttr {
            target: inside,
            attrs: RO_NOSUID_NODEV,
            recursive: true,
        });
    }

    // /dev: five host device nodes bound onto empty files of a small tmpfs.
    ops.push(Op::Mkdir { path: r("dev") });
    ops.push(Op::Tmpfs {
        target: r("dev"),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        options: "size=64k,nr_inodes=64,mode=0755".into(),
    });
    for dev in DEVICES {
        let target = r(&format!("dev/{dev}"));
        ops.push(Op::Touch {
            path: target.clone(),
        });
        ops.push(Op::Bind {
            source: PathBuf::from(format!("/dev/{dev}")),
            target,
        });
    }
    ops.push(Op::SetAttr {
        target: r("dev"),
        attrs: libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC,
        recursive: true,
    });
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(Op::Symlink {
            target: PathBuf::from(target),
            link: r(&format!("dev/{name}")),
        });
    }
    // Mount points of the container's writable directories.
    for dir in WRITABLE {
        ops.push(Op::Mkdir { path: r(dir) });
    }
    // The /dev tmpfs is complete: nothing may be created in it later.
    ops.push(Op::SetAttr {
        target: r("dev"),
        attrs: libc::MOUNT_ATTR_RDONLY,
        recursive: false,
    });

    // A minimal /etc naming the container's users.
    ops.push(Op::Mkdir { path: r("etc") });
    ops.push(Op::WriteFile {
        path: r("etc/passwd"),
        content: format!(
            "root:x:0:0:root:/root:/bin/sh\nbox:x:{BOX_UID}:{BOX_GID}:box:/box:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
    });
    ops.push(Op::WriteFile {
        path: r("etc/group"),
        content: format!("root:x:0:\nbox:x:{BOX_GID}:\nnogroup:x:65534:\n"),
    });
    ops.push(Op::WriteFile {
        path: r("etc/hosts"),
        content: format!("127.0.0.1 localhost {HOSTNAME}\n::1 localhost\n"),
    });
    ops.push(Op::WriteFile {
        path: r("etc/hostname"),
        content: format!("{HOSTNAME}\n"),
    });

    // The host's proc, covered in every container by the container's own.
    ops.push(Op::Mkdir { path: r("proc") });
    ops.push(Op::Proc { target: r("proc") });

    ops.push(Op::PivotRoot {
        new_root: new_root.to_path_buf(),
    });
    ops.push(Op::SetAttr {
        target: PathBuf::from("/"),
        attrs: RO_NOSUID_NODEV,
        recursive: false,
    });
    ops
}

/// What each init mounts in its copy of the template: its writable directories and a
/// fresh `/proc` of its pid namespace, sensitive entries masked (`kind` tells which of
/// them the host has).
///
/// The writable directories share one budget: one tmpfs of `disk_bytes` is mounted on
/// `/box`, the three directories are made in it (`box` the job's, `tmp` and `shm` sticky
/// and writable by all, all owned by the job's user) and bound on `/tmp`, `/dev/shm` and
/// last `/box`, whose bind covers the tmpfs's own mount (nothing can reach it by a path
/// any more; the binds share its superblock, and any of them resizes it). Unmounting a
/// staging mount instead would cost an RCU grace period (0.2-0.3 ms measured on 6.18).
pub fn container_plan(disk_bytes: u64, kind: &dyn Fn(&Path) -> HostKind) -> Vec<Op> {
    let mut ops = writable_plan(disk_bytes);
    ops.extend(proc_plan(kind));
    ops
}

/// The one writable tmpfs of `disk_bytes` and its three binds (see [`container_plan`]).
pub fn writable_plan(disk_bytes: u64) -> Vec<Op> {
    let stage = PathBuf::from("/box");
    let mut ops = vec![Op::Tmpfs {
        target: stage.clone(),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        options: format!("{},mode=0700", disk_options(disk_bytes)),
    }];
    for (_, name, mode) in WRITABLE_DIRS {
        ops.push(Op::MkdirOwned {
            path: stage.join(name),
            mode,
            uid: BOX_UID,
            gid: BOX_GID,
        });
    }
    for (dir, name, _) in WRITABLE_DIRS {
        ops.push(Op::Bind {
            source: stage.join(name),
            target: PathBuf::from(dir),
        });
    }
    ops
}

/// Between two runs of a container: the writable tmpfs (everything a job could write) is
/// unmounted — its three binds and, under the bind on `/box`, the tmpfs's own mount — and
/// a fresh one of `disk_bytes` takes its place. Every process of the last run is gone by
/// then; a mount still busy fails the reset (and the container is destroyed).
pub fn reset_plan(disk_bytes: u64) -> Vec<Op> {
    let unmount = |t: &str| Op::Unmount {
        target: PathBuf::from(t),
    };
    let mut ops = vec![
        unmount("/box"),
        unmount("/box"),
        unmount("/tmp"),
        unmount("/dev/shm"),
    ];
    ops.extend(writable_plan(disk_bytes));
    ops
}

/// A fresh `/proc` with the sensitive entries masked (as looked up by `kind`): the
/// container's, mounted by its init, and each run's, mounted over it by the run's own
/// init in the run's mount namespace so that it shows the run's pid namespace.
pub fn proc_plan(kind: &dyn Fn(&Path) -> HostKind) -> Vec<Op> {
    let mut ops = vec![Op::Proc {
        target: PathBuf::from("/proc"),
    }];
    let proc_path = |f: &str| PathBuf::from(format!("/proc/{f}"));
    for f in PROC_MASKED_FILES {
        if kind(&proc_path(f)) == HostKind::File {
            ops.push(Op::Bind {
                source: PathBuf::from("/dev/null"),
                target: proc_path(f),
            });
        }
    }
    for d in PROC_MASKED_DIRS {
        if kind(&proc_path(d)) == HostKind::Dir {
            ops.push(Op::Tmpfs {
                target: proc_path(d),
                flags: MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                options: "size=4k,nr_inodes=1,mode=0555".into(),
            });
        }
    }
    for d in PROC_READONLY {
        if kind(&proc_path(d)) == HostKind::Dir {
            let target = proc_path(d);
            ops.push(Op::Bind {
                source: target.clone(),
                target: target.clone(),
            });
            ops.push(Op::SetAttr {
                target,
                attrs: RO_NOSUID_NODEV,
                recursive: true,
            });
        }
    }
    ops
}

/// Performs `ops` in order; the first failure names its operation.
pub fn apply(ops: &[Op]) -> Result<(), MountError> {
    for op in ops {
        apply_one(op).map_err(|errno| MountError {
            op: op.to_string(),
            errno,
        })?;
    }
    Ok(())
}

fn apply_one(op: &Op) -> nix::Result<()> {
    const NONE: Option<&str> = None;
    match op {
        Op::MakePrivate => mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE),
        Op::Tmpfs {
            target,
            flags,
            options,
        } => mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            *flags,
            Some(options.as_str()),
        ),
        Op::RemountTmpfs { target, options } => mount(
            NONE,
            target,
            NONE,
            MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_str()),
        ),
        Op::Mkdir { path } => std::fs::create_dir_all(path).map_err(io_errno),
        Op::MkdirOwned {
            path,
            mode,
            uid,
            gid,
        } => {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            std::fs::DirBuilder::new()
                .mode(*mode)
                .create(path)
                .map_err(io_errno)?;
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).map_err(io_errno)?;
            // The umask may have narrowed the mode given to mkdir.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).map_err(io_errno)
        }
        Op::Touch { path } => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(drop)
            .map_err(io_errno),
        Op::Symlink { target, link } => std::os::unix::fs::symlink(target, link).map_err(io_errno),
        Op::Bind { source, target } => mount(
            Some(source.as_path()),
            target,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        ),
        Op::SetAttr {
            target,
            attrs,
            recursive,
        } => mount_setattr(target, *attrs, *recursive),
        Op::Proc { target } => mount(
            Some("proc"),
            target,
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            NONE,
        ),
        Op::WriteFile { path, content } => std::fs::write(path, content).map_err(io_errno),
        Op::PivotRoot { new_root } => {
            // pivot_root(".", ".") stacks the old root under the new one; detaching it
            // leaves only the new root (the trick runc and others use: no old-root dir).
            nix::unistd::chdir(new_root)?;
            nix::unistd::pivot_root(".", ".")?;
            umount2(".", MntFlags::MNT_DETACH)?;
            nix::unistd::chdir("/")
        }
        Op::Unmount { target } => umount2(target, MntFlags::empty()),
    }
}

fn io_errno(e: std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// mount_setattr(2): adds `attrs` to the mount at `target` (changes no other flag, so the
/// atime flags locked on mounts inherited from the host stay as they are).
fn mount_setattr(target: &Path, attrs: u64, recursive: bool) -> nix::Result<()> {
    let path =
        CString::new(target.as_os_str().as_bytes()).map_err(|_| nix::errno::Errno::EINVAL)?;
    let attr = libc::mount_attr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // libc types the flag `c_int`, mount_setattr's argument `c_uint`; the flag is 0x8000.
    #[allow(clippy::cast_sign_loss)]
    const AT_RECURSIVE: libc::c_uint = libc::AT_RECURSIVE as libc::c_uint;
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `path` is a valid NUL-terminated string and `attr` a valid mount_attr that
    // outlive the call; the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(path: &Path) -> HostKind {
        match path.to_str().unwrap() {
            "/usr" | "/proc/sys" | "/proc/acpi" => HostKind::Dir,
            "/lib" => HostKind::Symlink("usr/lib".into()),
            "/etc/ld.so.cache" | "/proc/kcore" => HostKind::File,
            _ => HostKind::Missing,
        }
    }

    fn plan_fake() -> Vec<Op> {
        let binds = ["/usr", "/lib", "/etc/ld.so.cache", "/opt/missing"].map(PathBuf::from);
        template_plan(Path::new("/nr"), &binds, &fake)
    }

    #[test]
    fn template_starts_private_and_ends_read_only_after_pivot() {
        let ops = plan_fake();
        assert_eq!(ops[0], Op::MakePrivate);
        let n = ops.len();
        // The host's proc is mounted last before the pivot, for the containers to cover.
        assert_eq!(
            ops[n - 3],
            Op::Proc {
                target: "/nr/proc".into()
            }
        );
        assert_eq!(
            ops[n - 2],
            Op::PivotRoot {
                new_root: "/nr".into()
            }
        );
        assert_eq!(
            ops[n - 1],
            Op::SetAttr {
                target: "/".into(),
                attrs: RO_NOSUID_NODEV,
                recursive: false
            }
        );
    }

    #[test]
    fn binds_are_read_only_symlinks_recreated_missing_skipped() {
        let ops = plan_fake();
        let usr = ops
            .iter()
            .position(|o| {
                *o == Op::Bind {
                    source: "/usr".into(),
                    target: "/nr/usr".into(),
                }
            })
            .unwrap();
        assert_eq!(
            ops[usr + 1],
            Op::SetAttr {
                target: "/nr/usr".into(),
                attrs: RO_NOSUID_NODEV,
                recursive: true
            }
        );
        assert!(ops.contains(&Op::Symlink {
            target: "usr/lib".into(),
            link: "/nr/lib".into()
        }));
        assert!(ops.contains(&Op::Touch {
            path: "/nr/etc/ld.so.cache".into()
        }));
        assert!(!ops.iter().any(|o| o.to_string().contains("/opt/missing")));
    }

    #[test]
    fn dev_has_exactly_five_nodes_and_is_sealed() {
        let ops = plan_fake();
        let binds: Vec<_> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Bind { source, target } if target.starts_with("/nr/dev") => {
                    Some(source.to_str().unwrap().to_string())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            binds,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom"
            ]
        );
        assert!(ops.contains(&Op::SetAttr {
            target: "/nr/dev".into(),
            attrs: libc::MOUNT_ATTR_RDONLY,
            recursive: false
        }));
    }

    #[test]
    fn template_has_mount_points_and_etc_but_no_writable_mount() {
        let ops = plan_fake();
        for dir in ["/nr/box", "/nr/tmp", "/nr/dev/shm", "/nr/proc", "/nr/etc"] {
            assert!(ops.contains(&Op::Mkdir { path: dir.into() }), "{dir}");
        }
        // Nothing writable is shared: the only tmpfs are the root and /dev, both made
        // read-only.
        let tmpfs: Vec<_> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Tmpfs { target, .. } => Some(target.to_str().unwrap()),
                _ => None,
            })
            .collect();
        assert_eq!(tmpfs, ["/nr", "/nr/dev"]);
        assert!(ops.iter().any(|o| matches!(o, Op::WriteFile { path, content } if path == Path::new("/nr/etc/passwd") && content.contains("box:x:1000:1000"))));
    }

    #[test]
    fn a_reset_unmounts_the_writable_tmpfs_and_mounts_a_fresh_one() {
        let ops = reset_plan(1 << 20);
        let unmount = |t: &str| Op::Unmount { target: t.into() };
        // The bind on /box, then the tmpfs under it, then the other two binds.
        assert_eq!(
            ops[..4],
            [
                unmount("/box"),
                unmount("/box"),
                unmount("/tmp"),
                unmount("/dev/shm")
            ]
        );
        assert_eq!(ops[4..], writable_plan(1 << 20));
        assert_eq!(
            ops[4].to_string(),
            "mount tmpfs /box (MsFlags(MS_NOSUID | MS_NODEV), size=1048576,nr_inodes=32772,mode=0700)"
        );
        // The container's plan is the writable part and then /proc.
        let mut whole = writable_plan(1 << 20);
        whole.extend(proc_plan(&fake));
        assert_eq!(container_plan(1 << 20, &fake), whole);
    }

    #[test]
    fn container_writable_dirs_share_one_limited_tmpfs() {
        let ops = container_plan(64 << 20, &fake);
        let owned = |path: &str, mode| Op::MkdirOwned {
            path: path.into(),
            mode,
            uid: 1000,
            gid: 1000,
        };
        let bind = |source: &str, target: &str| Op::Bind {
            source: source.into(),
            target: target.into(),
        };
        assert_eq!(
            ops[..7],
            [
                Op::Tmpfs {
                    target: "/box".into(),
                    flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    options: "size=67108864,nr_inodes=32772,mode=0700".into(),
                },
                owned("/box/tmp", 0o1777),
                owned("/box/shm", 0o1777),
                owned("/box/box", 0o755),
                bind("/box/tmp", "/tmp"),
                bind("/box/shm", "/dev/shm"),
                // Last: it covers the tmpfs's own mount, and the two other sources.
                bind("/box/box", "/box"),
            ]
        );
        // The only writable mount is that one: the rest are read-only masks of /proc.
        let rw = ops.iter().filter(
            |o| matches!(o, Op::Tmpfs { flags, .. } if !flags.contains(MsFlags::MS_RDONLY)),
        );
        assert_eq!(rw.count(), 1);
        // Landlock's read-write paths are the three binds.
        assert_eq!(WRITABLE, ["/box", "/tmp", "/dev/shm"]);
        // No pivot, no bind of a host path: the rest is the template's.
        assert!(!ops
            .iter()
            .any(|o| matches!(o, Op::PivotRoot { .. } | Op::MakePrivate)));
    }

    #[test]
    fn disk_inodes_fit_the_worst_valid_request() {
        // 1,024 files each 32 components deep, every directory its own: 32,768 inodes,
        // with the tmpfs's root and its three directories.
        assert_eq!(MIN_DISK_INODES, 32_772);
        assert_eq!(disk_inodes(1 << 20), 32_772);
        assert_eq!(disk_inodes(1024 << 20), 65_536);
        assert_eq!(disk_inodes(u64::MAX), 1 << 20);
        assert_eq!(disk_options(1 << 20), "size=1048576,nr_inodes=32772");
    }

    #[test]
    fn container_proc_is_fresh_and_masked() {
        let ops = container_plan(64 << 20, &fake);
        assert_eq!(
            ops[7],
            Op::Proc {
                target: "/proc".into()
            }
        );
        assert!(ops.contains(&Op::Bind {
            source: "/dev/null".into(),
            target: "/proc/kcore".into()
        }));
        assert!(ops.iter().any(
            |o| matches!(o, Op::Tmpfs { target, flags, .. } if target == Path::new("/proc/acpi") && flags.contains(MsFlags::MS_RDONLY))
        ));
        assert!(ops.contains(&Op::SetAttr {
            target: "/proc/sys".into(),
            attrs: RO_NOSUID_NODEV,
            recursive: true
        }));
        // Entries the host lacks are not masked (there is nothing to mount on).
        assert!(!ops.iter().any(|o| o.to_string().contains("/proc/keys")));
    }

    #[test]
    fn proc_kinds_are_remembered_once() {
        remember_proc_kinds();
        for e in ["kcore", "acpi", "sys"] {
            let path = PathBuf::from(format!("/proc/{e}"));
            assert_eq!(proc_kind(&path), host_kind(&path), "{e}");
        }
        // A path outside the list is looked up.
        assert_eq!(
            proc_kind(Path::new("/proc/self")),
            host_kind(Path::new("/proc/self"))
        );
    }

    #[test]
    fn errors_name_the_operation() {
        let e = MountError {
            op: Op::Bind {
                source: "/usr".into(),
                target: "/nr/usr".into(),
            }
            .to_string(),
            errno: nix::errno::Errno::EPERM,
        };
        assert_eq!(
            e.to_string(),
            "bind /usr on /nr/usr: EPERM: Operation not permitted"
        );
    }
}
