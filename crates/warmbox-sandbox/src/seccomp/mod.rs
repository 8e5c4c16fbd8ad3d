//! seccomp: per-profile syscall policies kept as JSON under `profiles/seccomp/`, compiled
//! with seccompiler at start-up into BPF programs that the job process installs last,
//! right before exec.
//!
//! # Policy files
//!
//! `profiles/seccomp/<name>.json`, written by us (not seccompiler's own JSON format); the
//! format for policy authors is docs/seccomp.md, kept in step with this summary:
//!
//! ```json
//! {
//!   "description": "what the policy is for",
//!   "include": ["base"],
//!   "default_action": { "errno": "EPERM" },
//!   "kill_clone_namespace_flags": true,
//!   "mediate_locks": true,
//!   "allow": [{ "syscalls": ["read"], "reason": "..." }],
//!   "errno": [{ "syscalls": ["clone3"], "errno": "ENOSYS", "reason": "..." }],
//!   "kill":  [{ "syscalls": ["ptrace"], "reason": "..." }]
//! }
//! ```
//!
//! Every entry needs a non-empty `reason`; unknown keys, unknown syscall names and unknown
//! errno names are refused. An entry may carry `"when": [[check, ...], ...]`: it applies
//! only when one of the inner lists matches completely (OR of ANDs). A check is
//! `{"arg": 0..=5, "op": "eq"|"ne"|"lt"|"le"|"gt"|"ge"|"masked_eq", "value": n,
//! "mask": n (masked_eq only), "width": "dword" (default) | "qword"}`; numbers may be JSON
//! integers or strings (`"0x5412"`). The default width compares the low 32 bits, which is
//! what the kernel uses for `int` arguments, so setting high bits cannot dodge a check.
//! `include` pulls in other policies of the same directory; their entries add up, the
//! including file's `default_action` wins, and `kill_clone_namespace_flags` and
//! `mediate_locks` stay on once any file sets them.
//!
//! `mediate_locks` hands `flock` and the lock commands of `fcntl` (`F_GETLK`, `F_SETLK`,
//! `F_SETLKW` and their `F_OFD_` forms) to the init's listener like a forbidden call, and the
//! init answers them (`warmbox_inside::locks`): locks live on inodes, and the read-only files of
//! the template are the host's and every container's. Both calls must then be allowed
//! unconditionally (the other `fcntl` commands pass), and neither may be in `kill`: the
//! init tells a lock call from a forbidden one by its number and arguments.
//!
//! # Programs
//!
//! The kernel runs every installed filter and applies the most restrictive verdict
//! (kill > errno > notify > allow), whatever the order they were installed in. A policy
//! compiles to, in install order:
//!
//! 1. the kill program: conditional `kill` entries kill the process
//!    (`SECCOMP_RET_KILL_PROCESS`);
//! 2. one program per errno value of the `errno` section: listed calls get that errno,
//!    everything else is allowed;
//! 3. the allowlist (a tree, see `bpf::tree_program`): listed calls are allowed; unconditional
//!    `kill` entries, `clone` with a namespace flag and the mediated lock calls go to the
//!    listener (`SECCOMP_RET_USER_NOTIF`: the kernel allows one listener per filter chain,
//!    so this is the only program that notifies); calls made through a foreign ABI kill;
//!    everything else gets `default_action`. The calls of the `errno` section pass it too
//!    (under their conditions), so that their errno program decides them even under a
//!    `kill_process` default.
//!
//! The allowlist is installed after the others because installing a program is itself a
//! `seccomp` call, which the programs already in place must let through. Its conditional
//! entries are checked by a program of their own, installed last when it decides `seccomp`
//! itself (a policy may refuse a filter of the job's own).
//!
//! seccompiler's programs start by checking `seccomp_data.arch`, killing the process on a
//! mismatch; that stops i386 calls through `int 0x80`. x32 calls use the x86_64 audit arch
//! with bit 30 set in the syscall number, which that check does not see, so the tree
//! program checks for it after the arch.
//!
//! # Modules
//!
//! `policy` reads a policy file and what it includes into one merged set of rules;
//! `bpf` compiles that set into the programs above; `syscalls` names the syscall
//! numbers and errno values a policy may use.

mod bpf;
mod policy;
mod syscalls;

use std::path::{Path, PathBuf};

pub use syscalls::syscall_name;
pub use warmbox_inside::seccomp::CompiledPolicy;

/// Errors loading or compiling a policy.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// Reading the policy file failed.
    #[error("read seccomp policy {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The policy file is not valid (bad JSON, unknown syscall, missing reason...).
    #[error("seccomp policy {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Loads `dir/<name>.json` and compiles it for the host architecture.
pub fn load(dir: &Path, name: &str) -> Result<CompiledPolicy, SeccompError> {
    let top = policy::policy_path(dir, name);
    if !cfg!(target_arch = "x86_64") {
        return Err(invalid(
            &top,
            format!(
                "seccomp policies are written for x86_64 only; this host is {}",
                std::env::consts::ARCH
            ),
        ));
    }
    let mut merged = policy::Merged::default();
    let mut stack = Vec::new();
    policy::read_policy(dir, name, &mut stack, &mut merged)?;
    let programs = bpf::compile(&top, merged)?;
    Ok(CompiledPolicy {
        name: name.to_owned(),
        programs,
    })
}

/// A policy error about the file at `path`.
fn invalid(path: &Path, message: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod fixtures {
    //! Policy directories for the tests of this module and its children.
    use std::path::{Path, PathBuf};

    /// The shipped policies.
    pub(super) fn profiles_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles/seccomp")
    }

    /// Writes `files` (name, JSON) into a temporary policy directory.
    pub(super) fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            std::fs::write(dir.path().join(format!("{name}.json")), text).expect("write policy");
        }
        dir
    }

    /// The message with which `name` of `files` fails to load.
    pub(super) fn load_err(files: &[(&str, &str)], name: &str) -> String {
        let dir = policy_dir(files);
        match super::load(dir.path(), name) {
            Ok(p) => panic!("policy {name} compiled to {} programs", p.programs.len()),
            Err(e) => e.to_string(),
        }
    }

    /// A policy that compiles: two unconditional allows.
    pub(super) const MINIMAL: &str = r#"{
        "description": "test",
        "default_action": {"errno": "EPERM"},
        "allow": [{"syscalls": ["read", "write"], "reason": "io"}]
    }"#;
}

#[cfg(test)]
mod tests {
    use super::fixtures::profiles_dir;
    use super::*;

    #[test]
    fn every_shipped_policy_compiles() {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(profiles_dir()).expect("read profiles/seccomp") {
            let path = entry.expect("dir entry").path();
            if path.extension().and_then(|e| e.to_str()) == Some("json") {
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .expect("utf-8 stem");
                let policy = load(&profiles_dir(), name).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(policy.name, name);
                // The conditional programs (kill: TIOCSTI; errno 0: msync, fadvise64;
                // EINVAL: fcntl's leases and dnotify; EAFNOSUPPORT: socket; allow:
                // personality, prctl, seccomp) and the tree.
                assert_eq!(policy.programs.len(), 6, "{name}");
                for program in &policy.programs {
                    assert!(
                        !program.is_empty()
                            && program.len() <= warmbox_inside::seccomp::BPF_MAXINSNS
                    );
                }
                names.push(name.to_owned());
            }
        }
        names.sort();
        assert_eq!(names, ["base", "default"]);
    }

    #[test]
    fn bytes_round_trip() {
        let policy = load(&profiles_dir(), "default").expect("load default");
        let bytes = policy.to_bytes();
        let insns: usize = policy.programs.iter().map(Vec::len).sum();
        assert_eq!(
            bytes.len(),
            8 + 4 + 4 + "default".len() + 4 + 4 * policy.programs.len() + 8 * insns
        );
        assert_eq!(CompiledPolicy::from_bytes(&bytes).expect("parse"), policy);
    }

    #[test]
    fn garbage_bytes_are_rejected() {
        let good = load(&profiles_dir(), "base").expect("load base").to_bytes();
        let reject = |bytes: &[u8], needle: &str| match CompiledPolicy::from_bytes(bytes) {
            Err(warmbox_inside::seccomp::FilterError::Bytes(m)) => {
                assert!(m.contains(needle), "{m:?} lacks {needle:?}")
            }
            other => panic!("expected a Bytes error containing {needle:?}, got {other:?}"),
        };
        reject(b"", "truncated: magic");
        reject(b"not a policy at all", "bad magic");
        let mut bad_version = good.clone();
        bad_version[8] = 9;
        reject(&bad_version, "format version 9");
        reject(&good[..good.len() - 1], "truncated: instructions");
        let mut trailing = good.clone();
        trailing.push(0);
        reject(&trailing, "1 trailing bytes");
        let mut huge = good.clone();
        // The first program's instruction count follows magic, version, name, count.
        let at = 8 + 4 + 4 + "base".len() + 4;
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        reject(&huge, "outside 1..=4096");
        let mut no_programs = good[..at - 4].to_vec();
        no_programs.extend_from_slice(&0u32.to_le_bytes());
        reject(&no_programs, "program count 0");
        let mut bad_name = good;
        bad_name[16] = 0xff;
        reject(&bad_name, "not UTF-8");
    }
}
