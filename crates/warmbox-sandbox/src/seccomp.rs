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
//! init answers them (`container::locks`): locks live on inodes, and the read-only files of
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
//! 3. the allowlist (a tree, see `tree_program`): listed calls are allowed; unconditional
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
//! with bit 30 set in the syscall number, which that check does not see, so the kill
//! program gets an extra check for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::Deserialize;

use warmbox_inside::locks::FCNTL_LOCK_COMMANDS;
pub use warmbox_inside::seccomp::CompiledPolicy;
use warmbox_inside::seccomp::{BPF_RET_K, MAX_NAME_LEN};

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

/// How deep `include` may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

/// Loads `dir/<name>.json` and compiles it for the host architecture.
pub fn load(dir: &Path, name: &str) -> Result<CompiledPolicy, SeccompError> {
    let top = policy_path(dir, name);
    if !cfg!(target_arch = "x86_64") {
        return Err(invalid(
            &top,
            format!(
                "seccomp policies are written for x86_64 only; this host is {}",
                std::env::consts::ARCH
            ),
        ));
    }
    let mut merged = Merged::default();
    let mut stack = Vec::new();
    read_policy(dir, name, &mut stack, &mut merged)?;
    let programs = compile(&top, merged)?;
    Ok(CompiledPolicy {
        name: name.to_owned(),
        programs,
    })
}

// ---------------------------------------------------------------------------------------
// Policy files.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    description: String,
    #[serde(default)]
    include: Vec<String>,
    default_action: Option<DefaultAction>,
    #[serde(default)]
    kill_clone_namespace_flags: bool,
    #[serde(default)]
    mediate_locks: bool,
    #[serde(default)]
    allow: Vec<Entry>,
    #[serde(default)]
    errno: Vec<Entry>,
    #[serde(default)]
    kill: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum DefaultAction {
    /// Fail unlisted calls with this errno.
    Errno(String),
    /// Kill the process on any unlisted call.
    KillProcess,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    syscalls: Vec<String>,
    reason: Option<String>,
    /// Only in the `errno` section.
    errno: Option<String>,
    #[serde(default)]
    when: Vec<Vec<ArgCheck>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArgCheck {
    arg: u8,
    op: Op,
    value: Number,
    mask: Option<Number>,
    #[serde(default)]
    width: Width,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Width {
    #[default]
    Dword,
    Qword,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Text(String),
}

impl Number {
    fn parse(&self) -> Result<u64, String> {
        match self {
            Number::Int(n) => Ok(*n),
            Number::Text(s) => {
                let t = s.trim();
                let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => t.parse::<u64>(),
                };
                parsed.map_err(|e| format!("number {s:?}: {e}"))
            }
        }
    }
}

/// Which section an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Allow,
    Errno,
    Kill,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Section::Allow => "allow",
            Section::Errno => "errno",
            Section::Kill => "kill",
        }
    }
}

/// One syscall's rule from one entry, validated and resolved.
#[derive(Debug)]
struct Resolved {
    nr: i64,
    name: String,
    /// Empty: unconditional.
    rules: Vec<SeccompRule>,
    /// For the errno section.
    errno: u32,
    /// `base.json allow entry 3`, for messages.
    origin: String,
}

/// All files of an include tree, flattened.
#[derive(Debug, Default)]
struct Merged {
    default_action: Option<SeccompAction>,
    kill_clone_namespace_flags: bool,
    mediate_locks: bool,
    allow: Vec<Resolved>,
    errno: Vec<Resolved>,
    kill: Vec<Resolved>,
}

fn policy_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn invalid(path: &Path, message: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads `dir/<name>.json` and, first, everything it includes, into `merged`.
fn read_policy(
    dir: &Path,
    name: &str,
    stack: &mut Vec<String>,
    merged: &mut Merged,
) -> Result<(), SeccompError> {
    let path = policy_path(dir, name);
    if !valid_name(name) {
        return Err(invalid(
            &path,
            format!("policy name {name:?} must be 1-255 characters of [A-Za-z0-9_-]"),
        ));
    }
    if stack.iter().any(|n| n == name) {
        return Err(invalid(
            &path,
            format!("include cycle: {} -> {name}", stack.join(" -> ")),
        ));
    }
    if stack.len() >= MAX_INCLUDE_DEPTH {
        return Err(invalid(
            &path,
            format!("includes nest deeper than {MAX_INCLUDE_DEPTH}"),
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|source| SeccompError::Read {
        path: path.clone(),
        source,
    })?;
    let file: PolicyFile =
        serde_json::from_str(&text).map_err(|e| invalid(&path, e.to_string()))?;
    if file.description.trim().is_empty() {
        return Err(invalid(&path, "\"description\" is empty"));
    }

    stack.push(name.to_owned());
    for include in &file.include {
        read_policy(dir, include, stack, merged)?;
    }
    stack.pop();

    if let Some(action) = &file.default_action {
        let resolved = match action {
            DefaultAction::Errno(errno) if errno == "0" => {
                return Err(invalid(
                    &path,
                    "default_action: errno \"0\" would let every unlisted call seem to succeed",
                ))
            }
            DefaultAction::Errno(errno) => {
                SeccompAction::Errno(errno_value(errno).ok_or_else(|| {
                    invalid(&path, format!("default_action: unknown errno {errno:?}"))
                })?)
            }
            DefaultAction::KillProcess => SeccompAction::KillProcess,
        };
        merged.default_action = Some(resolved);
    }
    merged.kill_clone_namespace_flags |= file.kill_clone_namespace_flags;
    merged.mediate_locks |= file.mediate_locks;

    let file_name = format!("{name}.json");
    for (section, entries) in [
        (Section::Allow, &file.allow),
        (Section::Errno, &file.errno),
        (Section::Kill, &file.kill),
    ] {
        for (index, entry) in entries.iter().enumerate() {
            let origin = format!("{file_name} {} entry {}", section.key(), index + 1);
            let resolved = resolve_entry(entry, section, &origin).map_err(|m| invalid(&path, m))?;
            match section {
                Section::Allow => merged.allow.extend(resolved),
                Section::Errno => merged.errno.extend(resolved),
                Section::Kill => merged.kill.extend(resolved),
            }
        }
    }
    Ok(())
}

/// Validates one entry and resolves its syscall names and conditions.
fn resolve_entry(entry: &Entry, section: Section, origin: &str) -> Result<Vec<Resolved>, String> {
    let label = format!("{origin} {:?}", entry.syscalls);
    if entry.syscalls.is_empty() {
        return Err(format!("{origin}: \"syscalls\" is empty"));
    }
    match &entry.reason {
        Some(r) if !r.trim().is_empty() => {}
        _ => return Err(format!("{label} has no \"reason\"")),
    }
    let errno = match (section, &entry.errno) {
        (Section::Errno, Some(name)) => {
            errno_value(name).ok_or_else(|| format!("{label}: unknown errno {name:?}"))?
        }
        (Section::Errno, None) => return Err(format!("{label} has no \"errno\"")),
        (_, Some(_)) => {
            return Err(format!(
                "{label}: \"errno\" belongs only in entries of the errno section"
            ))
        }
        (_, None) => 0,
    };
    let mut rules = Vec::with_capacity(entry.when.len());
    for (alt, checks) in entry.when.iter().enumerate() {
        if checks.is_empty() {
            return Err(format!(
                "{label}: \"when\" alternative {} is empty",
                alt + 1
            ));
        }
        let conditions = checks
            .iter()
            .map(|c| {
                condition(c).map_err(|m| format!("{label}: \"when\" alternative {}: {m}", alt + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(SeccompRule::new(conditions).map_err(|e| format!("{label}: {e}"))?);
    }
    let mut out = Vec::with_capacity(entry.syscalls.len());
    for name in &entry.syscalls {
        let nr = syscall_nr(name)
            .ok_or_else(|| format!("{label}: unknown syscall {name:?} (x86_64)"))?;
        out.push(Resolved {
            nr,
            name: name.clone(),
            rules: rules.clone(),
            errno,
            origin: origin.to_owned(),
        });
    }
    Ok(out)
}

fn condition(check: &ArgCheck) -> Result<SeccompCondition, String> {
    if check.arg > 5 {
        return Err(format!("arg {} is not 0..=5", check.arg));
    }
    let value = check.value.parse()?;
    let (width, limit) = match check.width {
        Width::Dword => (SeccompCmpArgLen::Dword, u64::from(u32::MAX)),
        Width::Qword => (SeccompCmpArgLen::Qword, u64::MAX),
    };
    if value > limit {
        return Err(format!(
            "value {value:#x} does not fit a dword; say \"width\": \"qword\""
        ));
    }
    let op = match (check.op, &check.mask) {
        (Op::MaskedEq, Some(mask)) => {
            let mask = mask.parse()?;
            if mask > limit {
                return Err(format!("mask {mask:#x} does not fit a dword"));
            }
            SeccompCmpOp::MaskedEq(mask)
        }
        (Op::MaskedEq, None) => return Err("op masked_eq needs a \"mask\"".to_owned()),
        (_, Some(_)) => return Err("\"mask\" belongs only to op masked_eq".to_owned()),
        (Op::Eq, None) => SeccompCmpOp::Eq,
        (Op::Ne, None) => SeccompCmpOp::Ne,
        (Op::Lt, None) => SeccompCmpOp::Lt,
        (Op::Le, None) => SeccompCmpOp::Le,
        (Op::Gt, None) => SeccompCmpOp::Gt,
        (Op::Ge, None) => SeccompCmpOp::Ge,
    };
    SeccompCondition::new(check.arg, width, op, value).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------
// Compilation.

/// The namespace flags that kill `clone` when set in its first argument (compared as 32
/// bits: the kernel takes `lower_32_bits(clone_flags)`). `CLONE_NEWTIME` (0x80) is not
/// here: in `clone()` that bit belongs to the exit-signal byte (`CSIGNAL`), so the kernel
/// never reads it as a namespace flag there; time namespaces are only reachable through
/// `unshare` (killed) and `clone3` (ENOSYS).
const CLONE_NAMESPACE_FLAGS: [(&str, u64); 7] = [
    ("CLONE_NEWNS", libc::CLONE_NEWNS as u64),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP as u64),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS as u64),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC as u64),
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER as u64),
    ("CLONE_NEWPID", libc::CLONE_NEWPID as u64),
    ("CLONE_NEWNET", libc::CLONE_NEWNET as u64),
];

/// `AUDIT_ARCH_X86_64`: `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// x32 syscalls are x86_64 syscalls with this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// Offsets into `struct seccomp_data`.
const DATA_NR_OFFSET: u32 = 0;
const DATA_ARCH_OFFSET: u32 = 4;
/// Classic-BPF opcodes (linux/bpf_common.h).
/// `BPF_LD | BPF_W | BPF_ABS` (0x00 | 0x00 | 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
/// `BPF_JMP | BPF_JGE | BPF_K`.
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
fn insn(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn compile(top: &Path, merged: Merged) -> Result<Vec<Vec<libc::sock_filter>>, SeccompError> {
    let Some(default_action) = merged.default_action else {
        return Err(invalid(
            top,
            "no \"default_action\" in the policy or anything it includes",
        ));
    };

    // Each syscall appears at most once per section (and once across all errno values),
    // and an unconditional kill or errno entry may not also be allowed: that entry would
    // be dead, and a reader could not tell which one was meant.
    let allow = by_syscall(top, &merged.allow, "allowed")?;
    let errno = by_syscall(top, &merged.errno, "given an errno")?;
    let kill = by_syscall(top, &merged.kill, "killed")?;
    for (deny, verb) in [(&errno, "fails with an errno"), (&kill, "kills")] {
        for r in deny.values().filter(|r| r.rules.is_empty()) {
            for other in [&allow, &errno, &kill] {
                if let Some(o) = other.get(&r.nr).copied().filter(|o| !std::ptr::eq(*o, *r)) {
                    return Err(invalid(
                        top,
                        format!(
                            "syscall {:?} always {verb} ({}) but is also listed in {}",
                            r.name, r.origin, o.origin
                        ),
                    ));
                }
            }
        }
    }

    // One program, a binary search over syscall numbers, settles every call whose verdict
    // does not depend on its arguments; it lets the others through to small seccompiler
    // programs that hold only the conditional rules. (A linear allowlist of ~300 calls is
    // over a thousand instructions, and the kernel emulates every attached filter once per
    // syscall number to build its allow-cache: that made attaching cost most of a
    // millisecond; the tree costs a few dozen microseconds.)
    let mut tree: BTreeMap<i64, Verdict> = BTreeMap::new();
    for r in allow.values() {
        // A conditional allow passes the tree; the gated program below applies the default
        // when its condition fails.
        tree.insert(r.nr, Verdict::Allow);
    }
    let mut kill_map = BTreeMap::new();
    let mut errno_maps: BTreeMap<u32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    let mut cond_allow = BTreeMap::new();
    for r in kill.values() {
        if r.rules.is_empty() {
            tree.insert(r.nr, Verdict::Notify);
        } else {
            kill_map.insert(r.nr, r.rules.clone());
        }
    }
    for r in errno.values() {
        if r.rules.is_empty() {
            tree.insert(r.nr, Verdict::Errno(r.errno));
            continue;
        }
        // The errno program answers when the condition holds; otherwise the call must be
        // allowed outright, or two errno verdicts would compete.
        match allow.get(&r.nr) {
            Some(a) if a.rules.is_empty() => {}
            _ => {
                return Err(invalid(
                    top,
                    format!(
                        "syscall {:?} has a conditional errno ({}) but is not allowed \
                         unconditionally; allow it, or make the errno unconditional",
                        r.name, r.origin
                    ),
                ))
            }
        }
        errno_maps
            .entry(r.errno)
            .or_default()
            .insert(r.nr, r.rules.clone());
    }
    for r in allow.values().filter(|r| !r.rules.is_empty()) {
        cond_allow.insert(r.nr, r.rules.clone());
    }
    if merged.kill_clone_namespace_flags {
        if kill.contains_key(&libc::SYS_clone) {
            return Err(invalid(
                top,
                "clone is in the kill list and kill_clone_namespace_flags is set; keep one",
            ));
        }
        let otherwise = match tree.get(&libc::SYS_clone).copied() {
            Some(Verdict::Allow) => Simple::Allow,
            Some(Verdict::Errno(e)) => Simple::Errno(e),
            None => match default_action {
                SeccompAction::Errno(e) => Simple::Errno(e),
                SeccompAction::Allow => Simple::Allow,
                _ => Simple::Kill,
            },
            Some(other) => {
                return Err(invalid(
                    top,
                    format!("clone is {other:?} and kill_clone_namespace_flags is set"),
                ))
            }
        };
        if let Some(a) = allow.get(&libc::SYS_clone).filter(|a| !a.rules.is_empty()) {
            return Err(invalid(
                top,
                format!(
                    "clone is allowed conditionally ({}) and kill_clone_namespace_flags is set; \
                     allow it unconditionally",
                    a.origin
                ),
            ));
        }
        tree.insert(libc::SYS_clone, Verdict::CloneFlags(otherwise));
    }

    // The init answers whatever reaches the listener as a lock call when its number and
    // arguments say so (`container::locks::LockCall::from_notification`): a kill entry on
    // either call would be answered as a lock instead of a violation.
    for nr in [libc::SYS_flock, libc::SYS_fcntl] {
        if let Some(k) = kill.get(&nr) {
            return Err(invalid(
                top,
                format!(
                    "syscall {:?} may not be killed ({}): the init takes its notifications \
                     for lock calls",
                    k.name, k.origin
                ),
            ));
        }
    }
    if merged.mediate_locks {
        for nr in [libc::SYS_flock, libc::SYS_fcntl] {
            match allow.get(&nr) {
                Some(a) if a.rules.is_empty() => {}
                _ => {
                    return Err(invalid(
                        top,
                        format!(
                            "mediate_locks is set but {:?} is not allowed unconditionally",
                            syscall_name(nr).unwrap_or("?")
                        ),
                    ))
                }
            }
        }
        tree.insert(libc::SYS_flock, Verdict::Notify);
        tree.insert(libc::SYS_fcntl, Verdict::FcntlLocks);
    }

    // Install order: the conditional kill and errno programs, then the conditional allow
    // program and the tree (see below for which goes first). Each program installed
    // before another must let `seccomp` itself through: the conditional programs allow
    // every call they do not name, and the tree allows a conditionally allowed call.
    // Verdicts do not depend on order.
    let arch = TargetArch::x86_64;
    let mut programs = Vec::new();
    if !kill_map.is_empty() {
        programs.push(build(
            top,
            "conditional kill program",
            kill_map,
            SeccompAction::Allow,
            SeccompAction::KillProcess,
            arch,
        )?);
    }
    for (code, map) in errno_maps {
        let what = format!("conditional errno {code} program");
        programs.push(build(
            top,
            &what,
            map,
            SeccompAction::Allow,
            SeccompAction::Errno(code),
            arch,
        )?);
    }
    // The conditional allow program goes last when it decides `seccomp` itself (the tree,
    // installed before it, lets that call through); else before the tree, which may not
    // allow `seccomp` at all.
    let seccomp_gated = cond_allow.contains_key(&libc::SYS_seccomp);
    let gated = if cond_allow.is_empty() {
        None
    } else {
        let names: Vec<i64> = cond_allow.keys().copied().collect();
        let program = build(
            top,
            "conditional allow program",
            cond_allow,
            default_action.clone(),
            SeccompAction::Allow,
            arch,
        )?;
        Some(gate(&names, program))
    };
    let default = match default_action {
        SeccompAction::Errno(e) => Verdict::Errno(e),
        SeccompAction::KillProcess => Verdict::Kill,
        SeccompAction::Allow => Verdict::Allow,
        other => {
            return Err(invalid(
                top,
                format!("default action {other:?} is not one of errno, kill, allow"),
            ))
        }
    };
    if seccomp_gated {
        programs.push(tree_program(&tree, default));
        programs.extend(gated);
    } else {
        programs.extend(gated);
        programs.push(tree_program(&tree, default));
    }
    Ok(programs)
}

/// A verdict of the tree program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    /// The process is killed (foreign ABIs, a policy whose default is kill).
    Kill,
    /// A forbidden call: it never runs; the init (holding the listener) is told which
    /// process made it, reports `security_violation` and kills the whole container.
    Notify,
    Errno(u32),
    /// clone: notify when a namespace flag is set in its first argument, else this.
    CloneFlags(Simple),
    /// fcntl: notify when its command is a lock command, else allow.
    FcntlLocks,
}

/// A verdict without an argument check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simple {
    Allow,
    Kill,
    Errno(u32),
}

impl Verdict {
    fn ret_k(self) -> u32 {
        match self {
            Verdict::Allow | Verdict::CloneFlags(Simple::Allow) | Verdict::FcntlLocks => {
                libc::SECCOMP_RET_ALLOW
            }
            Verdict::Kill | Verdict::CloneFlags(Simple::Kill) => libc::SECCOMP_RET_KILL_PROCESS,
            Verdict::Notify => libc::SECCOMP_RET_USER_NOTIF,
            Verdict::Errno(e) | Verdict::CloneFlags(Simple::Errno(e)) => {
                libc::SECCOMP_RET_ERRNO | (e & libc::SECCOMP_RET_DATA)
            }
        }
    }

    /// The code of a leaf of the tree.
    fn leaf(self) -> Vec<libc::sock_filter> {
        match self {
            Verdict::CloneFlags(_) => {
                let mask = CLONE_NAMESPACE_FLAGS
                    .iter()
                    .fold(0u32, |m, (_, b)| m | *b as u32);
                vec![
                    // The kernel reads clone's flags as 32 bits: the low word of arg 0.
                    insn(BPF_LD_W_ABS, DATA_ARGS_OFFSET, 0, 0),
                    insn(BPF_JMP_JSET_K, mask, 0, 1),
                    insn(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF, 0, 0),
                    insn(BPF_RET_K, self.ret_k(), 0, 0),
                ]
            }
            Verdict::FcntlLocks => {
                let n = FCNTL_LOCK_COMMANDS.len();
                // The kernel reads fcntl's command as an unsigned int: the low word of
                // arg 1, so high bits cannot dodge the compare.
                let mut out = vec![insn(BPF_LD_W_ABS, DATA_ARGS_OFFSET + 8, 0, 0)];
                for (i, cmd) in FCNTL_LOCK_COMMANDS.iter().enumerate() {
                    // On a match, jump over the remaining compares and the allow.
                    out.push(insn(BPF_JMP_JEQ_K, *cmd, (n - i) as u8, 0));
                }
                out.push(insn(BPF_RET_K, self.ret_k(), 0, 0));
                out.push(insn(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF, 0, 0));
                out
            }
            _ => vec![insn(BPF_RET_K, self.ret_k(), 0, 0)],
        }
    }
}

/// Offset of `args[0]` in `struct seccomp_data` (its low word on little-endian x86_64).
const DATA_ARGS_OFFSET: u32 = 16;
/// `BPF_JMP | BPF_JSET | BPF_K`.
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;

/// `BPF_JMP | BPF_JA`.
const BPF_JMP_JA: u16 = 0x05;

/// Highest syscall number the tree lists explicitly; above it (to the x32 bit) is default.
const TREE_MAX_NR: i64 = 1023;

/// The tree program: arch check, x32 check, then a binary search over ranges of syscall
/// numbers that share a verdict.
fn tree_program(verdicts: &BTreeMap<i64, Verdict>, default: Verdict) -> Vec<libc::sock_filter> {
    // Ranges [start, next start) of equal verdict, covering 0..=u32::MAX below the x32 bit.
    let mut ranges: Vec<(u32, Verdict)> = Vec::new();
    for nr in 0..=TREE_MAX_NR + 1 {
        let v = if nr > TREE_MAX_NR {
            default
        } else {
            verdicts.get(&nr).copied().unwrap_or(default)
        };
        if ranges.last().map(|(_, last)| *last) != Some(v) {
            ranges.push((nr as u32, v));
        }
    }
    let mut out = vec![
        insn(BPF_LD_W_ABS, DATA_ARCH_OFFSET, 0, 0),
        insn(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        insn(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        insn(BPF_LD_W_ABS, DATA_NR_OFFSET, 0, 0),
        insn(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
        insn(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
    ];
    out.extend(search(&ranges));
    out
}

/// Code that returns the verdict of the range the accumulator (the syscall number) is in.
fn search(ranges: &[(u32, Verdict)]) -> Vec<libc::sock_filter> {
    if ranges.len() == 1 {
        return ranges[0].1.leaf();
    }
    let mid = ranges.len() / 2;
    let left = search(&ranges[..mid]);
    let right = search(&ranges[mid..]);
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        // if nr >= boundary: skip the left half, else fall into it
        Ok(skip) => out.push(insn(BPF_JMP_JGE_K, ranges[mid].0, skip, 0)),
        // Too far for a conditional jump's 8-bit offset: go through an unconditional one.
        Err(_) => {
            out.push(insn(BPF_JMP_JGE_K, ranges[mid].0, 0, 1));
            out.push(insn(BPF_JMP_JA, left.len() as u32, 0, 0));
        }
    }
    out.extend(left);
    out.extend(right);
    out
}

/// Prefixes `program` so that calls other than `nrs` are allowed before it runs (a
/// seccompiler filter applies its mismatch action to unlisted calls too).
fn gate(nrs: &[i64], program: Vec<libc::sock_filter>) -> Vec<libc::sock_filter> {
    let n = nrs.len();
    let mut out = vec![insn(BPF_LD_W_ABS, DATA_NR_OFFSET, 0, 0)];
    for (i, nr) in nrs.iter().enumerate() {
        // Jump over the remaining compares and the allow, into the program.
        out.push(insn(BPF_JMP_JEQ_K, *nr as u32, (n - i) as u8, 0));
    }
    out.push(insn(BPF_RET_K, libc::SECCOMP_RET_ALLOW, 0, 0));
    out.extend(program);
    out
}

/// Indexes one section by syscall number, refusing duplicates.
fn by_syscall<'a>(
    top: &Path,
    entries: &'a [Resolved],
    verb: &str,
) -> Result<BTreeMap<i64, &'a Resolved>, SeccompError> {
    let mut map: BTreeMap<i64, &Resolved> = BTreeMap::new();
    for r in entries {
        if let Some(previous) = map.insert(r.nr, r) {
            return Err(invalid(
                top,
                format!(
                    "syscall {:?} is {verb} twice: {} and {}",
                    r.name, previous.origin, r.origin
                ),
            ));
        }
    }
    Ok(map)
}

fn build(
    top: &Path,
    what: &str,
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: TargetArch,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let program: BpfProgram = SeccompFilter::new(rules, mismatch, matched, arch)
        .and_then(BpfProgram::try_from)
        .map_err(|e| invalid(top, format!("compile {what}: {e}")))?;
    Ok(program
        .into_iter()
        .map(|i| insn(i.code, i.k, i.jt, i.jf))
        .collect())
}

/// The errno names a policy may use.
fn errno_value(name: &str) -> Option<u32> {
    let value = match name {
        // The call does not run and returns 0: for calls whose only effect here would be
        // on the host (a disk cache flush, evicting shared pages).
        "0" => 0,
        "EPERM" => libc::EPERM,
        "ENOENT" => libc::ENOENT,
        "EACCES" => libc::EACCES,
        "EINVAL" => libc::EINVAL,
        "ENOSYS" => libc::ENOSYS,
        "EOPNOTSUPP" => libc::EOPNOTSUPP,
        "EAFNOSUPPORT" => libc::EAFNOSUPPORT,
        "EPROTONOSUPPORT" => libc::EPROTONOSUPPORT,
        "ENOTTY" => libc::ENOTTY,
        _ => return None,
    };
    u32::try_from(value).ok()
}

/// The x86_64 number of syscall `name`. A linear scan: policies are compiled once.
/// The name of a syscall number of the host architecture.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    SYSCALLS
        .iter()
        .chain(SYSCALLS_NOT_IN_LIBC)
        .find(|(_, n)| *n == nr)
        .map(|(name, _)| *name)
}

fn syscall_nr(name: &str) -> Option<i64> {
    SYSCALLS
        .iter()
        .chain(SYSCALLS_NOT_IN_LIBC)
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

/// x86_64 syscall names, from the libc crate's numbers.
#[cfg(target_arch = "x86_64")]
const SYSCALLS: &[(&str, i64)] = &[
    ("read", libc::SYS_read),
    ("write", libc::SYS_write),
    ("open", libc::SYS_open),
    ("close", libc::SYS_close),
    ("stat", libc::SYS_stat),
    ("fstat", libc::SYS_fstat),
    ("lstat", libc::SYS_lstat),
    ("poll", libc::SYS_poll),
    ("lseek", libc::SYS_lseek),
    ("mmap", libc::SYS_mmap),
    ("mprotect", libc::SYS_mprotect),
    ("munmap", libc::SYS_munmap),
    ("brk", libc::SYS_brk),
    ("rt_sigaction", libc::SYS_rt_sigaction),
    ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
    ("rt_sigreturn", libc::SYS_rt_sigreturn),
    ("ioctl", libc::SYS_ioctl),
    ("pread64", libc::SYS_pread64),
    ("pwrite64", libc::SYS_pwrite64),
    ("readv", libc::SYS_readv),
    ("writev", libc::SYS_writev),
    ("access", libc::SYS_access),
    ("pipe", libc::SYS_pipe),
    ("select", libc::SYS_select),
    ("sched_yield", libc::SYS_sched_yield),
    ("mremap", libc::SYS_mremap),
    ("msync", libc::SYS_msync),
    ("mincore", libc::SYS_mincore),
    ("madvise", libc::SYS_madvise),
    ("shmget", libc::SYS_shmget),
    ("shmat", libc::SYS_shmat),
    ("shmctl", libc::SYS_shmctl),
    ("dup", libc::SYS_dup),
    ("dup2", libc::SYS_dup2),
    ("pause", libc::SYS_pause),
    ("nanosleep", libc::SYS_nanosleep),
    ("getitimer", libc::SYS_getitimer),
    ("alarm", libc::SYS_alarm),
    ("setitimer", libc::SYS_setitimer),
    ("getpid", libc::SYS_getpid),
    ("sendfile", libc::SYS_sendfile),
    ("socket", libc::SYS_socket),
    ("connect", libc::SYS_connect),
    ("accept", libc::SYS_accept),
    ("sendto", libc::SYS_sendto),
    ("recvfrom", libc::SYS_recvfrom),
    ("sendmsg", libc::SYS_sendmsg),
    ("recvmsg", libc::SYS_recvmsg),
    ("shutdown", libc::SYS_shutdown),
    ("bind", libc::SYS_bind),
    ("listen", libc::SYS_listen),
    ("getsockname", libc::SYS_getsockname),
    ("getpeername", libc::SYS_getpeername),
    ("socketpair", libc::SYS_socketpair),
    ("setsockopt", libc::SYS_setsockopt),
    ("getsockopt", libc::SYS_getsockopt),
    ("clone", libc::SYS_clone),
    ("fork", libc::SYS_fork),
    ("vfork", libc::SYS_vfork),
    ("execve", libc::SYS_execve),
    ("exit", libc::SYS_exit),
    ("wait4", libc::SYS_wait4),
    ("kill", libc::SYS_kill),
    ("uname", libc::SYS_uname),
    ("semget", libc::SYS_semget),
    ("semop", libc::SYS_semop),
    ("semctl", libc::SYS_semctl),
    ("shmdt", libc::SYS_shmdt),
    ("msgget", libc::SYS_msgget),
    ("msgsnd", libc::SYS_msgsnd),
    ("msgrcv", libc::SYS_msgrcv),
    ("msgctl", libc::SYS_msgctl),
    ("fcntl", libc::SYS_fcntl),
    ("flock", libc::SYS_flock),
    ("fsync", libc::SYS_fsync),
    ("fdatasync", libc::SYS_fdatasync),
    ("truncate", libc::SYS_truncate),
    ("ftruncate", libc::SYS_ftruncate),
    ("getdents", libc::SYS_getdents),
    ("getcwd", libc::SYS_getcwd),
    ("chdir", libc::SYS_chdir),
    ("fchdir", libc::SYS_fchdir),
    ("rename", libc::SYS_rename),
    ("mkdir", libc::SYS_mkdir),
    ("rmdir", libc::SYS_rmdir),
    ("creat", libc::SYS_creat),
    ("link", libc::SYS_link),
    ("unlink", libc::SYS_unlink),
    ("symlink", libc::SYS_symlink),
    ("readlink", libc::SYS_readlink),
    ("chmod", libc::SYS_chmod),
    ("fchmod", libc::SYS_fchmod),
    ("chown", libc::SYS_chown),
    ("fchown", libc::SYS_fchown),
    ("lchown", libc::SYS_lchown),
    ("umask", libc::SYS_umask),
    ("gettimeofday", libc::SYS_gettimeofday),
    ("getrlimit", libc::SYS_getrlimit),
    ("getrusage", libc::SYS_getrusage),
    ("sysinfo", libc::SYS_sysinfo),
    ("times", libc::SYS_times),
    ("ptrace", libc::SYS_ptrace),
    ("getuid", libc::SYS_getuid),
    ("syslog", libc::SYS_syslog),
    ("getgid", libc::SYS_getgid),
    ("setuid", libc::SYS_setuid),
    ("setgid", libc::SYS_setgid),
    ("geteuid", libc::SYS_geteuid),
    ("getegid", libc::SYS_getegid),
    ("setpgid", libc::SYS_setpgid),
    ("getppid", libc::SYS_getppid),
    ("getpgrp", libc::SYS_getpgrp),
    ("setsid", libc::SYS_setsid),
    ("setreuid", libc::SYS_setreuid),
    ("setregid", libc::SYS_setregid),
    ("getgroups", libc::SYS_getgroups),
    ("setgroups", libc::SYS_setgroups),
    ("setresuid", libc::SYS_setresuid),
    ("getresuid", libc::SYS_getresuid),
    ("setresgid", libc::SYS_setresgid),
    ("getresgid", libc::SYS_getresgid),
    ("getpgid", libc::SYS_getpgid),
    ("setfsuid", libc::SYS_setfsuid),
    ("setfsgid", libc::SYS_setfsgid),
    ("getsid", libc::SYS_getsid),
    ("capget", libc::SYS_capget),
    ("capset", libc::SYS_capset),
    ("rt_sigpending", libc::SYS_rt_sigpending),
    ("rt_sigtimedwait", libc::SYS_rt_sigtimedwait),
    ("rt_sigqueueinfo", libc::SYS_rt_sigqueueinfo),
    ("rt_sigsuspend", libc::SYS_rt_sigsuspend),
    ("sigaltstack", libc::SYS_sigaltstack),
    ("utime", libc::SYS_utime),
    ("mknod", libc::SYS_mknod),
    ("uselib", libc::SYS_uselib),
    ("personality", libc::SYS_personality),
    ("ustat", libc::SYS_ustat),
    ("statfs", libc::SYS_statfs),
    ("fstatfs", libc::SYS_fstatfs),
    ("sysfs", libc::SYS_sysfs),
    ("getpriority", libc::SYS_getpriority),
    ("setpriority", libc::SYS_setpriority),
    ("sched_setparam", libc::SYS_sched_setparam),
    ("sched_getparam", libc::SYS_sched_getparam),
    ("sched_setscheduler", libc::SYS_sched_setscheduler),
    ("sched_getscheduler", libc::SYS_sched_getscheduler),
    ("sched_get_priority_max", libc::SYS_sched_get_priority_max),
    ("sched_get_priority_min", libc::SYS_sched_get_priority_min),
    ("sched_rr_get_interval", libc::SYS_sched_rr_get_interval),
    ("mlock", libc::SYS_mlock),
    ("munlock", libc::SYS_munlock),
    ("mlockall", libc::SYS_mlockall),
    ("munlockall", libc::SYS_munlockall),
    ("vhangup", libc::SYS_vhangup),
    ("modify_ldt", libc::SYS_modify_ldt),
    ("pivot_root", libc::SYS_pivot_root),
    ("_sysctl", libc::SYS__sysctl),
    ("prctl", libc::SYS_prctl),
    ("arch_prctl", libc::SYS_arch_prctl),
    ("adjtimex", libc::SYS_adjtimex),
    ("setrlimit", libc::SYS_setrlimit),
    ("chroot", libc::SYS_chroot),
    ("sync", libc::SYS_sync),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("init_module", libc::SYS_init_module),
    ("delete_module", libc::SYS_delete_module),
    ("quotactl", libc::SYS_quotactl),
    ("nfsservctl", libc::SYS_nfsservctl),
    ("getpmsg", libc::SYS_getpmsg),
    ("putpmsg", libc::SYS_putpmsg),
    ("afs_syscall", libc::SYS_afs_syscall),
    ("tuxcall", libc::SYS_tuxcall),
    ("security", libc::SYS_security),
    ("gettid", libc::SYS_gettid),
    ("readahead", libc::SYS_readahead),
    ("setxattr", libc::SYS_setxattr),
    ("lsetxattr", libc::SYS_lsetxattr),
    ("fsetxattr", libc::SYS_fsetxattr),
    ("getxattr", libc::SYS_getxattr),
    ("lgetxattr", libc::SYS_lgetxattr),
    ("fgetxattr", libc::SYS_fgetxattr),
    ("listxattr", libc::SYS_listxattr),
    ("llistxattr", libc::SYS_llistxattr),
    ("flistxattr", libc::SYS_flistxattr),
    ("removexattr", libc::SYS_removexattr),
    ("lremovexattr", libc::SYS_lremovexattr),
    ("fremovexattr", libc::SYS_fremovexattr),
    ("tkill", libc::SYS_tkill),
    ("time", libc::SYS_time),
    ("futex", libc::SYS_futex),
    ("sched_setaffinity", libc::SYS_sched_setaffinity),
    ("sched_getaffinity", libc::SYS_sched_getaffinity),
    ("set_thread_area", libc::SYS_set_thread_area),
    ("io_setup", libc::SYS_io_setup),
    ("io_destroy", libc::SYS_io_destroy),
    ("io_getevents", libc::SYS_io_getevents),
    ("io_submit", libc::SYS_io_submit),
    ("io_cancel", libc::SYS_io_cancel),
    ("get_thread_area", libc::SYS_get_thread_area),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("epoll_create", libc::SYS_epoll_create),
    ("epoll_ctl_old", libc::SYS_epoll_ctl_old),
    ("epoll_wait_old", libc::SYS_epoll_wait_old),
    ("remap_file_pages", libc::SYS_remap_file_pages),
    ("getdents64", libc::SYS_getdents64),
    ("set_tid_address", libc::SYS_set_tid_address),
    ("restart_syscall", libc::SYS_restart_syscall),
    ("semtimedop", libc::SYS_semtimedop),
    ("fadvise64", libc::SYS_fadvise64),
    ("timer_create", libc::SYS_timer_create),
    ("timer_settime", libc::SYS_timer_settime),
    ("timer_gettime", libc::SYS_timer_gettime),
    ("timer_getoverrun", libc::SYS_timer_getoverrun),
    ("timer_delete", libc::SYS_timer_delete),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_gettime", libc::SYS_clock_gettime),
    ("clock_getres", libc::SYS_clock_getres),
    ("clock_nanosleep", libc::SYS_clock_nanosleep),
    ("exit_group", libc::SYS_exit_group),
    ("epoll_wait", libc::SYS_epoll_wait),
    ("epoll_ctl", libc::SYS_epoll_ctl),
    ("tgkill", libc::SYS_tgkill),
    ("utimes", libc::SYS_utimes),
    ("vserver", libc::SYS_vserver),
    ("mbind", libc::SYS_mbind),
    ("set_mempolicy", libc::SYS_set_mempolicy),
    ("get_mempolicy", libc::SYS_get_mempolicy),
    ("mq_open", libc::SYS_mq_open),
    ("mq_unlink", libc::SYS_mq_unlink),
    ("mq_timedsend", libc::SYS_mq_timedsend),
    ("mq_timedreceive", libc::SYS_mq_timedreceive),
    ("mq_notify", libc::SYS_mq_notify),
    ("mq_getsetattr", libc::SYS_mq_getsetattr),
    ("kexec_load", libc::SYS_kexec_load),
    ("waitid", libc::SYS_waitid),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("keyctl", libc::SYS_keyctl),
    ("ioprio_set", libc::SYS_ioprio_set),
    ("ioprio_get", libc::SYS_ioprio_get),
    ("inotify_init", libc::SYS_inotify_init),
    ("inotify_add_watch", libc::SYS_inotify_add_watch),
    ("inotify_rm_watch", libc::SYS_inotify_rm_watch),
    ("migrate_pages", libc::SYS_migrate_pages),
    ("openat", libc::SYS_openat),
    ("mkdirat", libc::SYS_mkdirat),
    ("mknodat", libc::SYS_mknodat),
    ("fchownat", libc::SYS_fchownat),
    ("futimesat", libc::SYS_futimesat),
    ("newfstatat", libc::SYS_newfstatat),
    ("unlinkat", libc::SYS_unlinkat),
    ("renameat", libc::SYS_renameat),
    ("linkat", libc::SYS_linkat),
    ("symlinkat", libc::SYS_symlinkat),
    ("readlinkat", libc::SYS_readlinkat),
    ("fchmodat", libc::SYS_fchmodat),
    ("faccessat", libc::SYS_faccessat),
    ("pselect6", libc::SYS_pselect6),
    ("ppoll", libc::SYS_ppoll),
    ("unshare", libc::SYS_unshare),
    ("set_robust_list", libc::SYS_set_robust_list),
    ("get_robust_list", libc::SYS_get_robust_list),
    ("splice", libc::SYS_splice),
    ("tee", libc::SYS_tee),
    ("sync_file_range", libc::SYS_sync_file_range),
    ("vmsplice", libc::SYS_vmsplice),
    ("move_pages", libc::SYS_move_pages),
    ("utimensat", libc::SYS_utimensat),
    ("epoll_pwait", libc::SYS_epoll_pwait),
    ("signalfd", libc::SYS_signalfd),
    ("timerfd_create", libc::SYS_timerfd_create),
    ("eventfd", libc::SYS_eventfd),
    ("fallocate", libc::SYS_fallocate),
    ("timerfd_settime", libc::SYS_timerfd_settime),
    ("timerfd_gettime", libc::SYS_timerfd_gettime),
    ("accept4", libc::SYS_accept4),
    ("signalfd4", libc::SYS_signalfd4),
    ("eventfd2", libc::SYS_eventfd2),
    ("epoll_create1", libc::SYS_epoll_create1),
    ("dup3", libc::SYS_dup3),
    ("pipe2", libc::SYS_pipe2),
    ("inotify_init1", libc::SYS_inotify_init1),
    ("preadv", libc::SYS_preadv),
    ("pwritev", libc::SYS_pwritev),
    ("rt_tgsigqueueinfo", libc::SYS_rt_tgsigqueueinfo),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("recvmmsg", libc::SYS_recvmmsg),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("fanotify_mark", libc::SYS_fanotify_mark),
    ("prlimit64", libc::SYS_prlimit64),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("syncfs", libc::SYS_syncfs),
    ("sendmmsg", libc::SYS_sendmmsg),
    ("setns", libc::SYS_setns),
    ("getcpu", libc::SYS_getcpu),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kcmp", libc::SYS_kcmp),
    ("finit_module", libc::SYS_finit_module),
    ("sched_setattr", libc::SYS_sched_setattr),
    ("sched_getattr", libc::SYS_sched_getattr),
    ("renameat2", libc::SYS_renameat2),
    ("seccomp", libc::SYS_seccomp),
    ("getrandom", libc::SYS_getrandom),
    ("memfd_create", libc::SYS_memfd_create),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("bpf", libc::SYS_bpf),
    ("execveat", libc::SYS_execveat),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("membarrier", libc::SYS_membarrier),
    ("mlock2", libc::SYS_mlock2),
    ("copy_file_range", libc::SYS_copy_file_range),
    ("preadv2", libc::SYS_preadv2),
    ("pwritev2", libc::SYS_pwritev2),
    ("pkey_mprotect", libc::SYS_pkey_mprotect),
    ("pkey_alloc", libc::SYS_pkey_alloc),
    ("pkey_free", libc::SYS_pkey_free),
    ("statx", libc::SYS_statx),
    ("rseq", libc::SYS_rseq),
    ("pidfd_send_signal", libc::SYS_pidfd_send_signal),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("pidfd_open", libc::SYS_pidfd_open),
    ("clone3", libc::SYS_clone3),
    ("close_range", libc::SYS_close_range),
    ("openat2", libc::SYS_openat2),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("faccessat2", libc::SYS_faccessat2),
    ("process_madvise", libc::SYS_process_madvise),
    ("epoll_pwait2", libc::SYS_epoll_pwait2),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("quotactl_fd", libc::SYS_quotactl_fd),
    ("landlock_create_ruleset", libc::SYS_landlock_create_ruleset),
    ("landlock_add_rule", libc::SYS_landlock_add_rule),
    ("landlock_restrict_self", libc::SYS_landlock_restrict_self),
    ("memfd_secret", libc::SYS_memfd_secret),
    ("process_mrelease", libc::SYS_process_mrelease),
    ("futex_waitv", libc::SYS_futex_waitv),
    ("set_mempolicy_home_node", libc::SYS_set_mempolicy_home_node),
    ("fchmodat2", libc::SYS_fchmodat2),
    ("mseal", libc::SYS_mseal),
];

/// Syscalls this libc version lacks, numbered from the kernel's
/// arch/x86/entry/syscalls/syscall_64.tbl.
#[cfg(target_arch = "x86_64")]
const SYSCALLS_NOT_IN_LIBC: &[(&str, i64)] = &[
    ("io_pgetevents", 333),
    ("uretprobe", 335),
    ("cachestat", 451),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460),
    ("lsm_list_modules", 461),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
    ("open_tree_attr", 467),
    ("file_getattr", 468),
    ("file_setattr", 469),
];

#[cfg(not(target_arch = "x86_64"))]
const SYSCALLS: &[(&str, i64)] = &[];
#[cfg(not(target_arch = "x86_64"))]
const SYSCALLS_NOT_IN_LIBC: &[(&str, i64)] = &[];

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles/seccomp")
    }

    /// Writes `files` (name, JSON) into a temporary policy directory.
    fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            std::fs::write(dir.path().join(format!("{name}.json")), text).expect("write policy");
        }
        dir
    }

    fn load_err(files: &[(&str, &str)], name: &str) -> String {
        let dir = policy_dir(files);
        match load(dir.path(), name) {
            Ok(p) => panic!("policy {name} compiled to {} programs", p.programs.len()),
            Err(e) => e.to_string(),
        }
    }

    const MINIMAL: &str = r#"{
        "description": "test",
        "default_action": {"errno": "EPERM"},
        "allow": [{"syscalls": ["read", "write"], "reason": "io"}]
    }"#;

    /// The tree program of a policy: the one that checks for x32 calls after the arch.
    fn tree_of(policy: &CompiledPolicy) -> &Vec<libc::sock_filter> {
        let trees: Vec<_> = policy
            .programs
            .iter()
            .filter(|p| p.len() > 4 && p[4].code == BPF_JMP_JGE_K && p[4].k == X32_SYSCALL_BIT)
            .collect();
        assert_eq!(trees.len(), 1, "one tree program");
        trees[0]
    }

    #[test]
    fn the_conditional_allow_program_goes_last_when_it_decides_seccomp() {
        let default = load(&profiles_dir(), "default").expect("load default");
        assert!(
            std::ptr::eq(tree_of(&default), &default.programs[4]),
            "default: the tree before the program that refuses the job's own filters"
        );
        let base = load(&profiles_dir(), "base").expect("load base");
        assert!(
            std::ptr::eq(tree_of(&base), &base.programs[5]),
            "base does not allow seccomp: the tree is last"
        );
    }

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

    #[test]
    fn unknown_syscall_is_named() {
        let text = MINIMAL.replace("\"write\"", "\"wirte\"");
        let err = load_err(&[("p", &text)], "p");
        assert!(err.contains("unknown syscall \"wirte\""), "{err}");
        assert!(err.contains("p.json allow entry 1"), "{err}");
    }

    #[test]
    fn missing_or_empty_reason_is_named() {
        let text = MINIMAL.replace(", \"reason\": \"io\"", "");
        let err = load_err(&[("p", &text)], "p");
        assert!(
            err.contains("p.json allow entry 1 [\"read\", \"write\"] has no \"reason\""),
            "{err}"
        );
        let text = MINIMAL.replace("\"io\"", "\"  \"");
        let err = load_err(&[("p", &text)], "p");
        assert!(err.contains("has no \"reason\""), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = MINIMAL.replace("\"description\"", "\"descripton\": \"x\", \"description\"");
        let err = load_err(&[("p", &text)], "p");
        assert!(err.contains("unknown field `descripton`"), "{err}");
        let text = MINIMAL.replace("\"reason\": \"io\"", "\"reason\": \"io\", \"why\": 1");
        let err = load_err(&[("p", &text)], "p");
        assert!(err.contains("unknown field `why`"), "{err}");
    }

    #[test]
    fn other_mistakes_are_named() {
        let cases: &[(&str, &str, &str)] = &[
            ("{\"errno\": \"EPERM\"}", "{\"errno\": \"EPREM\"}", "unknown errno \"EPREM\""),
            ("\"syscalls\": [\"read\", \"write\"]", "\"syscalls\": []", "\"syscalls\" is empty"),
            (
                "\"reason\": \"io\"",
                "\"reason\": \"io\", \"errno\": \"EPERM\"",
                "\"errno\" belongs only in entries of the errno section",
            ),
            (
                "\"reason\": \"io\"",
                "\"reason\": \"io\", \"when\": [[{\"arg\": 0, \"op\": \"eq\", \"value\": \"0x1ffffffff\"}]]",
                "does not fit a dword",
            ),
            (
                "\"reason\": \"io\"",
                "\"reason\": \"io\", \"when\": [[{\"arg\": 6, \"op\": \"eq\", \"value\": 1}]]",
                "arg 6 is not 0..=5",
            ),
            (
                "\"reason\": \"io\"",
                "\"reason\": \"io\", \"when\": [[{\"arg\": 0, \"op\": \"masked_eq\", \"value\": 1}]]",
                "masked_eq needs a \"mask\"",
            ),
            (
                "\"default_action\": {\"errno\": \"EPERM\"},",
                "",
                "no \"default_action\"",
            ),
            (
                "\"allow\"",
                "\"kill\": [{\"syscalls\": [\"read\"], \"reason\": \"r\"}], \"allow\"",
                "syscall \"read\" always kills (p.json kill entry 1) but is also listed in p.json allow entry 1",
            ),
            (
                "\"allow\"",
                "\"errno\": [{\"syscalls\": [\"read\"], \"reason\": \"r\"}], \"allow\"",
                "p.json errno entry 1 [\"read\"] has no \"errno\"",
            ),
            (
                "[\"read\", \"write\"]",
                "[\"read\", \"write\", \"read\"]",
                "syscall \"read\" is allowed twice: p.json allow entry 1 and p.json allow entry 1",
            ),
        ];
        for (from, to, needle) in cases {
            assert!(MINIMAL.contains(from), "{from}");
            let err = load_err(&[("p", &MINIMAL.replacen(from, to, 1))], "p");
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
            assert!(err.contains("p.json"), "{err:?} does not name the file");
        }
    }

    #[test]
    fn includes_merge_and_cycles_are_refused() {
        let child = r#"{
            "description": "child",
            "include": ["p"],
            "allow": [{"syscalls": ["close"], "reason": "c"}],
            "kill": [{"syscalls": ["ptrace"], "reason": "k"}]
        }"#;
        let dir = policy_dir(&[("p", MINIMAL), ("child", child)]);
        let policy = load(dir.path(), "child").expect("load child");
        // every rule is unconditional: the tree program alone
        assert_eq!(policy.programs.len(), 1);

        let dup = child.replace("\"close\"", "\"read\"");
        let err = load_err(&[("p", MINIMAL), ("child", &dup)], "child");
        assert!(
            err.contains("syscall \"read\" is allowed twice: p.json allow entry 1 and child.json allow entry 1"),
            "{err}"
        );

        let a = r#"{"description": "a", "include": ["b"]}"#;
        let b = r#"{"description": "b", "include": ["a"]}"#;
        let err = load_err(&[("a", a), ("b", b)], "a");
        assert!(err.contains("include cycle: a -> b -> a"), "{err}");

        let err = load_err(&[("p", MINIMAL)], "../p");
        assert!(err.contains("must be 1-255 characters"), "{err}");
        let err = load_err(
            &[(
                "p",
                &MINIMAL.replace(
                    "\"description\"",
                    "\"include\": [\"nope\"], \"description\"",
                ),
            )],
            "p",
        );
        assert!(
            err.contains("read seccomp policy") && err.contains("nope.json"),
            "{err}"
        );
    }

    #[test]
    fn tree_program_guards_foreign_abis() {
        let policy = load(&profiles_dir(), "default").expect("load default");
        let tree = tree_of(&policy);
        let ops: Vec<(u16, u32)> = tree.iter().take(6).map(|i| (i.code, i.k)).collect();
        assert_eq!(
            ops,
            [
                (BPF_LD_W_ABS, DATA_ARCH_OFFSET),
                (BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64),
                (BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
                (BPF_LD_W_ABS, DATA_NR_OFFSET),
                (BPF_JMP_JGE_K, X32_SYSCALL_BIT),
                (BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
            ]
        );
        // Every other program checks the arch first, or is gated: it allows the calls it
        // does not name (the tree has judged those, arch included) and then checks.
        for program in &policy.programs {
            let gated = (program[0].code, program[0].k) == (BPF_LD_W_ABS, DATA_NR_OFFSET);
            let at = if gated {
                program
                    .iter()
                    .position(|i| i.code == BPF_RET_K && i.k == libc::SECCOMP_RET_ALLOW)
                    .expect("gate's allow")
                    + 2
            } else {
                1
            };
            assert_eq!(
                (program[at].code, program[at].k),
                (BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64)
            );
        }
    }

    /// Runs a classic-BPF seccomp program of the opcodes we emit on (nr, arch, arg 0).
    fn emulate_with(program: &[libc::sock_filter], nr: u32, arch: u32, arg0: u32) -> u32 {
        emulate_args(program, nr, arch, [arg0, 0])
    }

    /// The same, with the low words of args 0 and 1.
    fn emulate_args(program: &[libc::sock_filter], nr: u32, arch: u32, args: [u32; 2]) -> u32 {
        let [arg0, arg1] = args;
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = program[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS if i.k == DATA_NR_OFFSET => acc = nr,
                BPF_LD_W_ABS if i.k == DATA_ARCH_OFFSET => acc = arch,
                BPF_LD_W_ABS if i.k == DATA_ARGS_OFFSET => acc = arg0,
                BPF_LD_W_ABS if i.k == DATA_ARGS_OFFSET + 8 => acc = arg1,
                BPF_JMP_JSET_K => pc += usize::from(if acc & i.k != 0 { i.jt } else { i.jf }),
                BPF_JMP_JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                BPF_JMP_JGE_K => pc += usize::from(if acc >= i.k { i.jt } else { i.jf }),
                BPF_JMP_JA => pc += i.k as usize,
                BPF_RET_K => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn emulate(program: &[libc::sock_filter], nr: u32, arch: u32) -> u32 {
        emulate_with(program, nr, arch, 0)
    }

    #[test]
    fn tree_program_decides_every_number_as_listed() {
        let kill = libc::SECCOMP_RET_KILL_PROCESS;
        let errno = |e: u32| libc::SECCOMP_RET_ERRNO | e;
        // Alternating verdicts make a tree whose left halves exceed a conditional jump's
        // 8-bit offset, so the long-jump path is exercised too.
        let mut map = BTreeMap::new();
        for nr in 0..600i64 {
            let v = match nr % 4 {
                0 => Verdict::Allow,
                1 => Verdict::Kill,
                2 => Verdict::Notify,
                _ => Verdict::Errno(nr as u32 % 50 + 1),
            };
            map.insert(nr, v);
        }
        let program = tree_program(&map, Verdict::Errno(1));
        assert!(
            program.iter().any(|i| i.code == BPF_JMP_JA),
            "long jumps used"
        );
        for nr in 0..2000u32 {
            let want = map.get(&(nr as i64)).map_or(errno(1), |v| v.ret_k());
            assert_eq!(emulate(&program, nr, AUDIT_ARCH_X86_64), want, "nr {nr}");
        }
        assert_eq!(emulate(&program, 0x4000_0000 | 39, AUDIT_ARCH_X86_64), kill);
        assert_eq!(emulate(&program, 0, 0x4000_0003), kill, "i386 arch");
    }

    #[test]
    fn shipped_tree_is_shallow_and_agrees_with_the_policy() {
        let policy = load(&profiles_dir(), "default").expect("load default");
        let tree = tree_of(&policy);
        let ret = |name: &str| emulate(tree, syscall_nr(name).unwrap() as u32, AUDIT_ARCH_X86_64);
        assert_eq!(ret("read"), libc::SECCOMP_RET_ALLOW);
        assert_eq!(ret("ptrace"), libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(ret("unshare"), libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(ret("clone3"), libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        assert_eq!(ret("kcmp"), libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
        // clone: allowed, unless a namespace flag is set.
        let clone = syscall_nr("clone").unwrap() as u32;
        let sigchld = libc::SIGCHLD as u32;
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD) as u32 | sigchld;
        assert_eq!(
            emulate_with(tree, clone, AUDIT_ARCH_X86_64, thread),
            libc::SECCOMP_RET_ALLOW
        );
        for (name, flag) in CLONE_NAMESPACE_FLAGS {
            let flags = flag as u32 | sigchld;
            let got = emulate_with(tree, clone, AUDIT_ARCH_X86_64, flags);
            assert_eq!(got, libc::SECCOMP_RET_USER_NOTIF, "{name}");
        }
        assert!(tree.len() < 700, "tree has {} instructions", tree.len());
    }

    #[test]
    fn shipped_tree_sends_lock_calls_to_the_listener() {
        let policy = load(&profiles_dir(), "default").expect("load default");
        let tree = tree_of(&policy);
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        let fcntl = |cmd: i32| {
            emulate_args(
                tree,
                libc::SYS_fcntl as u32,
                AUDIT_ARCH_X86_64,
                [3, cmd as u32],
            )
        };
        for cmd in FCNTL_LOCK_COMMANDS {
            assert_eq!(fcntl(cmd as i32), notify, "fcntl command {cmd}");
        }
        for cmd in [
            libc::F_GETFL,
            libc::F_SETFL,
            libc::F_GETFD,
            libc::F_SETFD,
            libc::F_DUPFD_CLOEXEC,
            libc::F_ADD_SEALS,
            // Decided by the EINVAL program, which wins over the tree's allow.
            libc::F_NOTIFY,
            libc::F_SETLEASE,
        ] {
            assert_eq!(fcntl(cmd), libc::SECCOMP_RET_ALLOW, "fcntl command {cmd}");
        }
        let flock = emulate(tree, libc::SYS_flock as u32, AUDIT_ARCH_X86_64);
        assert_eq!(flock, notify);
    }

    #[test]
    fn lock_calls_may_not_be_killed_and_mediation_needs_them_allowed() {
        for (entry, syscall) in [
            (r#"{"syscalls": ["flock"], "reason": "r"}"#, "flock"),
            (
                r#"{"syscalls": ["fcntl"], "when": [[{"arg": 1, "op": "eq", "value": 6}]], "reason": "r"}"#,
                "fcntl",
            ),
        ] {
            let policy = format!(
                r#"{{"description": "t", "default_action": {{"errno": "EPERM"}},
                    "allow": [{{"syscalls": ["read"], "reason": "io"}}],
                    "kill": [{entry}]}}"#
            );
            let err = load_err(&[("p", &policy)], "p");
            assert!(
                err.contains(&format!("syscall \"{syscall}\" may not be killed")),
                "{err}"
            );
        }
        let policy = r#"{"description": "t", "default_action": {"errno": "EPERM"},
            "mediate_locks": true,
            "allow": [{"syscalls": ["flock"], "reason": "io"}]}"#;
        let err = load_err(&[("p", policy)], "p");
        assert!(
            err.contains("mediate_locks is set but \"fcntl\" is not allowed unconditionally"),
            "{err}"
        );
    }

    #[test]
    fn syscall_table_matches_the_kernel_numbers() {
        assert_eq!(syscall_nr("read"), Some(0));
        assert_eq!(syscall_nr("clone3"), Some(435));
        assert_eq!(syscall_nr("open_tree_attr"), Some(467));
        assert_eq!(syscall_nr("mseal"), Some(462));
        assert_eq!(syscall_nr("nosuchcall"), None);
        let mut numbers: Vec<i64> = SYSCALLS
            .iter()
            .chain(SYSCALLS_NOT_IN_LIBC.iter())
            .map(|(_, nr)| *nr)
            .collect();
        let count = numbers.len();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), count, "two names share a number");
    }
}
