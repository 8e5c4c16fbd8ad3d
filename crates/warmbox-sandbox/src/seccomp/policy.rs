//! Policy files: reading `<name>.json` and what it includes, checking every entry, and
//! resolving syscall names, errno names and argument conditions into one [`Merged`] set
//! of rules for [`super::bpf`] to compile. The format is the module comment of
//! [`super`] and docs/seccomp.md.

use std::path::{Path, PathBuf};

use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
use serde::Deserialize;

use warmbox_inside::seccomp::MAX_NAME_LEN;

use super::syscalls::{errno_value, syscall_nr};
use super::{invalid, SeccompError};

/// How deep `include` may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

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
pub(super) struct Resolved {
    pub(super) nr: i64,
    pub(super) name: String,
    /// Empty: unconditional.
    pub(super) rules: Vec<SeccompRule>,
    /// For the errno section.
    pub(super) errno: u32,
    /// `base.json allow entry 3`, for messages.
    pub(super) origin: String,
}

/// All files of an include tree, flattened.
#[derive(Debug, Default)]
pub(super) struct Merged {
    pub(super) default_action: Option<SeccompAction>,
    pub(super) kill_clone_namespace_flags: bool,
    pub(super) mediate_locks: bool,
    pub(super) allow: Vec<Resolved>,
    pub(super) errno: Vec<Resolved>,
    pub(super) kill: Vec<Resolved>,
}

/// Where policy `name` of `dir` is.
pub(super) fn policy_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads `dir/<name>.json` and, first, everything it includes, into `merged`.
pub(super) fn read_policy(
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{load_err, policy_dir, MINIMAL};
    use super::super::load;

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
}
