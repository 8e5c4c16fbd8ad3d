//! landlock: the job process may write only under `/box` and `/tmp` (and to the few device
//! files), may not bind or connect TCP, and is scoped from signalling or reaching abstract
//! unix sockets outside its own domain where the kernel's ABI has those scopes.
//!
//! The container init builds the ruleset with [`prepare`] before it reports ready (that
//! opens the rule paths and creates the ruleset fd, close-on-exec); the job process only
//! calls `landlock_restrict_self` through [`PreparedRuleset::restrict_self`].

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd,
    PathFdError, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
    ABI,
};

/// Errors building or applying the ruleset.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// Creating the ruleset or adding a rule failed.
    #[error("landlock {what}: {message}")]
    Ruleset { what: String, message: String },
    /// `landlock_restrict_self` failed.
    #[error("landlock restrict_self: {0}")]
    Restrict(String),
}

/// Which paths the job process may use, and how.
#[derive(Debug, Clone, Default)]
pub struct LandlockRules {
    /// Read and execute anywhere below these (usually `/`).
    pub read_exec: Vec<PathBuf>,
    /// Full access below these (e.g. `/box`, `/tmp`).
    pub read_write: Vec<PathBuf>,
    /// Files that may be written but not created or removed (e.g. `/dev/null`).
    pub write_files: Vec<PathBuf>,
}

/// A ruleset built in the container init before the container reports ready; applied by
/// the job process with `restrict_self`.
#[derive(Debug)]
pub struct PreparedRuleset {
    /// The created ruleset: its fd is close-on-exec (the kernel always sets O_CLOEXEC on
    /// landlock ruleset fds), so it never leaks into the job's program.
    ruleset: RulesetCreated,
}

/// The newest landlock ABI whose rights are requested. Every right up to this ABI has been
/// tested against a kernel that has it; older kernels get what they support (best effort)
/// and report [`Enforcement::Partial`]. ABI 7 (Linux 6.15) adds nothing over ABI 6 for
/// access rights, ABI 9 adds `ResolveUnix` (pathname unix socket connect): raise this after
/// testing on such a kernel.
const TARGET_ABI: ABI = ABI::V7;

/// Builds the ruleset (best effort over the kernel's landlock ABI) from `rules`.
///
/// The ruleset handles every filesystem right of `TARGET_ABI`, TCP bind and connect
/// (with no rule, so both are denied), and the abstract-unix-socket and signal scopes. A
/// path that does not exist is skipped.
pub fn prepare(rules: &LandlockRules) -> Result<PreparedRuleset, LandlockError> {
    let all_fs = AccessFs::from_all(TARGET_ABI);
    let read_exec = AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::Execute | AccessFs::IoctlDev;
    let write_file =
        AccessFs::WriteFile | AccessFs::ReadFile | AccessFs::Truncate | AccessFs::IoctlDev;

    let mut ruleset = Ruleset::default()
        // The default, stated: a kernel without some right still gets all the others.
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all_fs)
        .map_err(|e| ruleset_error("handle filesystem access", e))?
        .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
        .map_err(|e| ruleset_error("handle TCP bind and connect", e))?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(|e| ruleset_error("scope abstract unix sockets and signals", e))?
        .create()
        .map_err(|e| ruleset_error("create ruleset", e))?;

    let groups: [(&[PathBuf], BitFlags<AccessFs>, &str); 3] = [
        (&rules.read_exec, read_exec, "read+exec"),
        (&rules.read_write, all_fs, "read+write"),
        (&rules.write_files, write_file, "write-file"),
    ];
    for (paths, access, kind) in groups {
        for path in paths {
            let Some(fd) = open_path(path, kind)? else {
                tracing::debug!(path = %path.display(), kind, "landlock rule path missing, skipped");
                continue;
            };
            // Directory-only rights on a file would make the crate drop them and report
            // the whole ruleset as only partially enforced; a file never needs them.
            let access = if is_dir(&fd, path, kind)? {
                access
            } else {
                access & AccessFs::from_file(TARGET_ABI)
            };
            ruleset = ruleset
                .add_rule(PathBeneath::new(fd, access))
                .map_err(|e| ruleset_error(&format!("add {kind} rule {}", path.display()), e))?;
        }
    }
    Ok(PreparedRuleset { ruleset })
}

/// Opens `path` with O_PATH; `None` when it does not exist.
fn open_path(path: &Path, kind: &str) -> Result<Option<PathFd>, LandlockError> {
    match PathFd::new(path) {
        Ok(fd) => Ok(Some(fd)),
        Err(PathFdError::OpenCall { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(ruleset_error(
            &format!("open {kind} rule path {}", path.display()),
            e,
        )),
    }
}

fn is_dir(fd: &PathFd, path: &Path, kind: &str) -> Result<bool, LandlockError> {
    let stat = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| LandlockError::Ruleset {
        what: format!("fstat {kind} rule path {}", path.display()),
        message: e.to_string(),
    })?;
    Ok(stat.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

fn ruleset_error(what: &str, error: impl std::fmt::Display) -> LandlockError {
    LandlockError::Ruleset {
        what: what.to_owned(),
        message: error.to_string(),
    }
}

/// What the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Every requested restriction is in force.
    Full,
    /// Some restrictions are unknown to this kernel's ABI.
    Partial,
    /// Landlock is unavailable.
    None,
}

impl PreparedRuleset {
    /// Restricts the calling process (the job process). Needs no_new_privs set first.
    ///
    /// The crate sets no_new_privs again itself (harmless), then calls
    /// `landlock_restrict_self` on the prepared ruleset fd and closes it.
    pub fn restrict_self(self) -> Result<Enforcement, LandlockError> {
        let status = self
            .ruleset
            .restrict_self()
            .map_err(|e| LandlockError::Restrict(e.to_string()))?;
        Ok(match status.ruleset {
            RulesetStatus::FullyEnforced => Enforcement::Full,
            RulesetStatus::PartiallyEnforced => Enforcement::Partial,
            RulesetStatus::NotEnforced => Enforcement::None,
        })
    }
}

/// The kernel's landlock ABI version, or `None` where landlock is unavailable.
pub fn abi_version() -> Option<u32> {
    // SAFETY: with a null attribute pointer, size 0 and LANDLOCK_CREATE_RULESET_VERSION
    // the kernel only returns the ABI version (or an error); no memory is read or written.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    // ENOSYS (not built in) and EOPNOTSUPP (disabled at boot) both mean unavailable.
    u32::try_from(version).ok().filter(|v| *v > 0)
}

/// `LANDLOCK_CREATE_RULESET_VERSION` from linux/landlock.h (libc does not export it).
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_skips_missing_paths_and_accepts_files() {
        if abi_version().is_none() {
            let required = std::env::var("WARMBOX_REQUIRE_SANDBOX").as_deref() == Ok("1");
            assert!(
                !required,
                "landlock unavailable and WARMBOX_REQUIRE_SANDBOX=1"
            );
            eprintln!("skip: landlock unavailable on this kernel");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        let rules = LandlockRules {
            read_exec: vec![PathBuf::from("/"), dir.path().join("missing")],
            read_write: vec![dir.path().to_owned(), PathBuf::from("/no/such/dir")],
            write_files: vec![file, PathBuf::from("/dev/null")],
        };
        // Building a ruleset is reversible (it only creates an fd): no restriction here.
        let prepared = prepare(&rules).expect("prepare");
        // The ruleset fd must not leak into the job's program.
        let fd = Option::<std::os::fd::OwnedFd>::from(prepared.ruleset).expect("ruleset fd");
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).expect("F_GETFD");
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}
