//! What a step's files take in the tmpfs of `/box`, and whether they fit its limits: the
//! request's own files are checked with it up front, a compile's output before the run it
//! is carried into.

use crate::profile::Limits;

/// Memory that request files may not take from `limits.memory_mb`: the container's init
/// and the program need some to start at all.
pub const FILES_MEMORY_HEADROOM: u64 = 4 << 20;

/// What the kernel is taken to charge to the container's memory for each file and
/// directory of `/box` (its inode and dentry, and the name): measured on Linux 6.18, about
/// 950 bytes with a short name and 1,270 with a 200-byte one.
pub const INODE_MEMORY_BYTES: u64 = 2048;

/// The size of a page of the host, what a tmpfs allocates a file's contents in.
pub fn page_bytes() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|p| u64::try_from(p).ok())
            .unwrap_or(4096)
    })
}

/// What files take in the tmpfs of `/box`: their bytes, the whole pages the tmpfs holds
/// them in, and an inode for each file and each directory of their paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesUse {
    /// The contents' bytes.
    pub bytes: u64,
    /// The contents rounded up, file by file, to whole pages.
    pub page_bytes: u64,
    /// Files and the distinct directories they are in (`/box` itself not counted).
    pub inodes: u64,
}

impl FilesUse {
    /// The use of files given as (path relative to `/box`, length).
    pub fn of<'a>(files: impl IntoIterator<Item = (&'a str, u64)>) -> FilesUse {
        let page = page_bytes();
        let mut dirs: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut used = FilesUse {
            bytes: 0,
            page_bytes: 0,
            inodes: 0,
        };
        for (path, len) in files {
            used.bytes = used.bytes.saturating_add(len);
            used.page_bytes = used
                .page_bytes
                .saturating_add(len.div_ceil(page).saturating_mul(page));
            used.inodes += 1;
            for (end, _) in path.match_indices('/') {
                dirs.insert(&path[..end]);
            }
        }
        used.inodes += dirs.len() as u64;
        used
    }
}

/// The limit that files in `/box` break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesOverflow {
    /// They do not fit in the tmpfs (`disk_mb`).
    Disk,
    /// They leave the processes less than [`FILES_MEMORY_HEADROOM`] of `memory_mb`.
    Memory,
}

/// Which limit, if any, files break, and why when their bytes alone do not (whole pages,
/// inodes): the request's own files are checked with it up front, a compile's output
/// before the run it is carried into. The files live in a tmpfs, charged to the cgroup's
/// memory like anything the program allocates: they must leave room for the container's
/// own processes to start. A request's own files always have inodes enough (see
/// [`warmbox_sandbox::MIN_DISK_INODES`]); a compile's output may not.
pub fn files_overflow(used: &FilesUse, limits: &Limits) -> Option<(FilesOverflow, Option<String>)> {
    use warmbox_sandbox::{disk_inodes, DISK_OWN_INODES};
    let disk = limits.disk_mb.saturating_mul(1 << 20);
    let room = limits
        .memory_mb
        .saturating_mul(1 << 20)
        .saturating_sub(FILES_MEMORY_HEADROOM);
    let inodes = disk_inodes(disk) - DISK_OWN_INODES;
    let memory = used
        .page_bytes
        .saturating_add(used.inodes.saturating_mul(INODE_MEMORY_BYTES));
    if used.bytes > disk {
        Some((FilesOverflow::Disk, None))
    } else if used.page_bytes > disk {
        Some((
            FilesOverflow::Disk,
            Some(format!(
                "in whole {}-byte pages they take {} bytes",
                page_bytes(),
                used.page_bytes
            )),
        ))
    } else if used.inodes > inodes {
        Some((
            FilesOverflow::Disk,
            Some(format!(
                "they are {} files and directories, and it holds {inodes}",
                used.inodes
            )),
        ))
    } else if used.bytes > room {
        Some((FilesOverflow::Memory, None))
    } else if memory > room {
        Some((
            FilesOverflow::Memory,
            Some(format!(
                "in whole pages, and with {INODE_MEMORY_BYTES} bytes of the kernel's for each \
                 of their {} files and directories, they take {memory} bytes",
                used.inodes
            )),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::fixtures::DEFAULTS;

    #[test]
    fn files_use_counts_whole_pages_and_every_directory_once() {
        let used = FilesUse::of([("a/b/x", 1), ("a/b/y", 4097), ("a/c/z", 0), ("top", 0)]);
        assert_eq!(
            used,
            FilesUse {
                bytes: 4098,
                page_bytes: 3 * 4096,
                inodes: 4 + 3,
            }
        );
    }

    #[test]
    fn files_overflow_names_pages_inodes_and_memory() {
        let limits = Limits {
            disk_mb: 1,
            memory_mb: 256,
            ..DEFAULTS
        };
        let over =
            |files: &[(&str, u64)]| files_overflow(&FilesUse::of(files.iter().copied()), &limits);
        assert_eq!(over(&[("a", 1 << 20)]), None);
        assert_eq!(
            over(&[("a", (1 << 20) + 1)]),
            Some((FilesOverflow::Disk, None))
        );
        let small: Vec<(String, u64)> = (0..257).map(|i| (format!("f{i}"), 1)).collect();
        let small: Vec<(&str, u64)> = small.iter().map(|(n, l)| (n.as_str(), *l)).collect();
        assert_eq!(
            over(&small),
            Some((
                FilesOverflow::Disk,
                Some("in whole 4096-byte pages they take 1052672 bytes".into())
            ))
        );
        // A compile's output may hold more files than a request's: the inodes run out.
        let many: Vec<String> = (0..32_769).map(|i| format!("f{i}")).collect();
        let many: Vec<(&str, u64)> = many.iter().map(|n| (n.as_str(), 0)).collect();
        assert_eq!(
            over(&many),
            Some((
                FilesOverflow::Disk,
                Some("they are 32769 files and directories, and it holds 32768".into())
            ))
        );
        // Empty files cost memory too: 2 KiB each is more than 16 MiB less 4 MiB.
        let limits = Limits {
            disk_mb: 1,
            memory_mb: 16,
            ..DEFAULTS
        };
        let over =
            |files: &[(&str, u64)]| files_overflow(&FilesUse::of(files.iter().copied()), &limits);
        assert_eq!(
            over(&many[..6200]),
            Some((
                FilesOverflow::Memory,
                Some(
                    "in whole pages, and with 2048 bytes of the kernel's for each of their \
                     6200 files and directories, they take 12697600 bytes"
                        .into()
                )
            ))
        );
        assert_eq!(over(&many[..6000]), None);
    }
}
