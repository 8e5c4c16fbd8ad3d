//! BPF generation: a merged policy becomes the programs the job process installs (see
//! [`super`] for which programs, in which order, and why): a binary-search tree over
//! syscall numbers for every unconditional verdict, and small seccompiler programs, gated
//! to the calls they name, for the conditional ones.

use std::collections::BTreeMap;
use std::path::Path;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

use warmbox_inside::locks::FCNTL_LOCK_COMMANDS;
use warmbox_inside::seccomp::BPF_RET_K;

use super::policy::{Merged, Resolved};
use super::syscalls::syscall_name;
use super::{invalid, SeccompError};

/// The namespace flags that kill `clone` when set in its first argument (compared as 32
/// bits: the kernel takes `lower_32_bits(clone_flags)`). `CLONE_NEWTIME` (0x80) is not
/// here: in `clone()` that bit belongs to the exit-signal byte (`CSIGNAL`), so the kernel
/// never reads it as a namespace flag there; time namespaces are only reachable through
/// `unshare` (killed) and `clone3` (ENOSYS).
const CLONE_NAMESPACE_FLAGS: [(&str, u32); 7] = [
    ("CLONE_NEWNS", clone_flag(libc::CLONE_NEWNS)),
    ("CLONE_NEWCGROUP", clone_flag(libc::CLONE_NEWCGROUP)),
    ("CLONE_NEWUTS", clone_flag(libc::CLONE_NEWUTS)),
    ("CLONE_NEWIPC", clone_flag(libc::CLONE_NEWIPC)),
    ("CLONE_NEWUSER", clone_flag(libc::CLONE_NEWUSER)),
    ("CLONE_NEWPID", clone_flag(libc::CLONE_NEWPID)),
    ("CLONE_NEWNET", clone_flag(libc::CLONE_NEWNET)),
];

/// A namespace flag (a positive `c_int` in libc) as the 32 bits the filter compares.
#[allow(clippy::cast_sign_loss)] // each CLONE_NEW* flag is one bit below bit 31
const fn clone_flag(flag: libc::c_int) -> u32 {
    flag as u32
}

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

/// Compiles a merged policy (from `top` and its includes) into its programs, in install
/// order.
pub(super) fn compile(
    top: &Path,
    merged: Merged,
) -> Result<Vec<Vec<libc::sock_filter>>, SeccompError> {
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
    // arguments say so (`warmbox_inside::locks::LockCall::from_notification`): a kill entry on
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
        Some(gate(top, &names, program)?)
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
                let mask = CLONE_NAMESPACE_FLAGS.iter().fold(0u32, |m, (_, b)| m | *b);
                vec![
                    // The kernel reads clone's flags as 32 bits: the low word of arg 0.
                    insn(BPF_LD_W_ABS, DATA_ARGS_OFFSET, 0, 0),
                    insn(BPF_JMP_JSET_K, mask, 0, 1),
                    insn(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF, 0, 0),
                    insn(BPF_RET_K, self.ret_k(), 0, 0),
                ]
            }
            Verdict::FcntlLocks => {
                // The kernel reads fcntl's command as an unsigned int: the low word of
                // arg 1, so high bits cannot dodge the compare.
                let mut out = vec![insn(BPF_LD_W_ABS, DATA_ARGS_OFFSET + 8, 0, 0)];
                // On a match, jump over the remaining compares and the allow.
                let skips = (1..=LOCK_COMMANDS).rev();
                for (skip, cmd) in skips.zip(FCNTL_LOCK_COMMANDS) {
                    out.push(insn(BPF_JMP_JEQ_K, cmd, skip, 0));
                }
                out.push(insn(BPF_RET_K, self.ret_k(), 0, 0));
                out.push(insn(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF, 0, 0));
                out
            }
            _ => vec![insn(BPF_RET_K, self.ret_k(), 0, 0)],
        }
    }
}

/// How many lock commands the fcntl leaf compares, as a jump offset (8 bits).
#[allow(clippy::cast_possible_truncation)] // six; the assertion below keeps it so
const LOCK_COMMANDS: u8 = FCNTL_LOCK_COMMANDS.len() as u8;
const _: () = assert!(FCNTL_LOCK_COMMANDS.len() == LOCK_COMMANDS as usize);

/// Offset of `args[0]` in `struct seccomp_data` (its low word on little-endian x86_64).
const DATA_ARGS_OFFSET: u32 = 16;
/// `BPF_JMP | BPF_JSET | BPF_K`.
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;

/// `BPF_JMP | BPF_JA`.
const BPF_JMP_JA: u16 = 0x05;

/// Highest syscall number the tree lists explicitly; above it (to the x32 bit) is default.
const TREE_MAX_NR: u32 = 1023;

/// The tree program: arch check, x32 check, then a binary search over ranges of syscall
/// numbers that share a verdict.
fn tree_program(verdicts: &BTreeMap<i64, Verdict>, default: Verdict) -> Vec<libc::sock_filter> {
    // Ranges [start, next start) of equal verdict, covering 0..=u32::MAX below the x32 bit.
    let mut ranges: Vec<(u32, Verdict)> = Vec::new();
    for nr in 0..=TREE_MAX_NR + 1 {
        let v = if nr > TREE_MAX_NR {
            default
        } else {
            verdicts.get(&i64::from(nr)).copied().unwrap_or(default)
        };
        if ranges.last().map(|(_, last)| *last) != Some(v) {
            ranges.push((nr, v));
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
            // A program is at most BPF_MAXINSNS (4096) long; the kernel checks it.
            #[allow(clippy::cast_possible_truncation)]
            let skip = left.len() as u32;
            out.push(insn(BPF_JMP_JA, skip, 0, 0));
        }
    }
    out.extend(left);
    out.extend(right);
    out
}

/// Prefixes `program` so that calls other than `nrs` are allowed before it runs (a
/// seccompiler filter applies its mismatch action to unlisted calls too).
fn gate(
    top: &Path,
    nrs: &[i64],
    program: Vec<libc::sock_filter>,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let n = nrs.len();
    let mut out = vec![insn(BPF_LD_W_ABS, DATA_NR_OFFSET, 0, 0)];
    for (i, nr) in nrs.iter().enumerate() {
        // Jump over the remaining compares and the allow, into the program: a conditional
        // jump skips at most 255 instructions.
        let skip = u8::try_from(n - i).map_err(|_| {
            invalid(
                top,
                format!("{n} syscalls are allowed conditionally; at most 255 can be"),
            )
        })?;
        // Numbers of the syscall table: 0..=TREE_MAX_NR.
        let nr = u32::try_from(*nr)
            .map_err(|_| invalid(top, format!("syscall number {nr} out of range")))?;
        out.push(insn(BPF_JMP_JEQ_K, nr, skip, 0));
    }
    out.push(insn(BPF_RET_K, libc::SECCOMP_RET_ALLOW, 0, 0));
    out.extend(program);
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{load_err, profiles_dir};
    use super::super::syscalls::syscall_nr;
    use super::super::{load, CompiledPolicy};
    use super::*;

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
                _ => Verdict::Errno(u32::try_from(nr).unwrap() % 50 + 1),
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
        let nr = |name: &str| u32::try_from(syscall_nr(name).unwrap()).unwrap();
        let ret = |name: &str| emulate(tree, nr(name), AUDIT_ARCH_X86_64);
        assert_eq!(ret("read"), libc::SECCOMP_RET_ALLOW);
        assert_eq!(ret("ptrace"), libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(ret("unshare"), libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(ret("clone3"), libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        assert_eq!(ret("kcmp"), libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
        // clone: allowed, unless a namespace flag is set.
        let clone = nr("clone");
        let sigchld = libc::SIGCHLD as u32;
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD) as u32 | sigchld;
        assert_eq!(
            emulate_with(tree, clone, AUDIT_ARCH_X86_64, thread),
            libc::SECCOMP_RET_ALLOW
        );
        for (name, flag) in CLONE_NAMESPACE_FLAGS {
            let flags = flag | sigchld;
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
        let fcntl_nr = u32::try_from(libc::SYS_fcntl).unwrap();
        let fcntl = |cmd: u32| emulate_args(tree, fcntl_nr, AUDIT_ARCH_X86_64, [3, cmd]);
        for cmd in FCNTL_LOCK_COMMANDS {
            assert_eq!(fcntl(cmd), notify, "fcntl command {cmd}");
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
            let got = fcntl(u32::try_from(cmd).unwrap());
            assert_eq!(got, libc::SECCOMP_RET_ALLOW, "fcntl command {cmd}");
        }
        let flock = u32::try_from(libc::SYS_flock).unwrap();
        let flock = emulate(tree, flock, AUDIT_ARCH_X86_64);
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
}
