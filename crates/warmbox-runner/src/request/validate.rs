//! Validation of a run request against its profile: every field a client can get wrong,
//! each refusal a [`RequestError`] whose message names the field and says what to fix.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::files::{files_overflow, FilesOverflow, FilesUse, FILES_MEMORY_HEADROOM};
use super::{Encoding, LimitsRequest, RequestError, RunRequest, ValidatedRequest};
use crate::profile::{
    is_valid_env_name, Limits, LoadedProfile, Profile, ProfileSet, MAX_NAME_BYTES,
};
use warmbox_sandbox::{MAX_FILES, MAX_FILE_DEPTH};

/// Longest file name (whole relative path), in bytes.
pub const MAX_FILE_PATH_BYTES: usize = 4096;

/// Checks a request: profile exists and is available; file names are relative, normal,
/// unique, NUL-free; base64 decodes; env names are valid; limits are within the profile's
/// maximums (a value above is refused, naming the field and the maximum; zero is refused).
///
/// Checked in this order, the first failure wins: profile, limits, command and args, env,
/// stdin, files, then tests, checker and interactor.
pub fn validate(req: &RunRequest, profiles: &ProfileSet) -> Result<ValidatedRequest, RequestError> {
    let loaded = resolve_profile(&req.profile, profiles)?;
    let profile = &loaded.profile;
    let limits = resolve_limits(&req.limits, profile)?;
    let run_cmd = resolve_run_cmd(req, profile, &limits)?;
    let env = resolve_env(&req.env, &profile.env)?;
    let stdin = decode_stdin(req)?;
    let files = decode_files(req, profile, &limits)?;
    let compiler_options = resolve_compiler_options(&req.compiler_options, profile)?;
    let mut valid = ValidatedRequest {
        profile: loaded,
        files,
        stdin,
        run_cmd,
        env,
        limits,
        output_encoding: req.output_encoding,
        judging: None,
        output_mode: if req.stderr_to_stdout {
            warmbox_sandbox::OutputMode::Merged
        } else {
            warmbox_sandbox::OutputMode::Separate
        },
        compile_limits: None,
        compiler_options,
        cmd_given: req.cmd.is_some(),
    };
    valid.judging = crate::judging::validate_judging(
        crate::judging::JudgingRequest {
            tests: &req.tests,
            stop_on_first_failure: req.stop_on_first_failure,
            checker: req.checker.as_ref(),
            interactor: req.interactor.as_ref(),
            has_stdin: req.stdin.is_some() || req.stdin_base64.is_some(),
        },
        &valid,
        profiles,
    )?;
    Ok(valid)
}
/// Finds the profile by name or alias and checks that it can run here.
fn resolve_profile(name: &str, profiles: &ProfileSet) -> Result<Arc<LoadedProfile>, RequestError> {
    let available: Vec<&str> = profiles
        .all()
        .iter()
        .filter(|p| p.availability.available)
        .map(|p| p.profile.name.as_str())
        .collect();
    let choices = if available.is_empty() {
        "no profile is available on this host".to_string()
    } else {
        format!("available profiles: {}", available.join(", "))
    };
    if name.is_empty() {
        return Err(RequestError::invalid(format!(
            "profile: is empty; give a profile name ({choices})"
        )));
    }
    let Some(loaded) = profiles.get(name) else {
        return Err(RequestError {
            code: RequestError::UNKNOWN_PROFILE,
            message: format!("profile: unknown profile {name:?}; {choices}"),
        });
    };
    if !loaded.availability.available {
        let reason = loaded
            .availability
            .reason
            .as_deref()
            .unwrap_or("no reason recorded");
        return Err(RequestError {
            code: RequestError::PROFILE_UNAVAILABLE,
            message: format!(
                "profile: {} is not available on this host: {reason}",
                loaded.profile.name
            ),
        });
    }
    Ok(loaded)
}

/// Request limits over the profile's defaults; zero and values above the maximum refused.
fn resolve_limits(asked: &LimitsRequest, profile: &Profile) -> Result<Limits, RequestError> {
    limits_over(
        asked,
        &profile.limits.defaults,
        profile,
        "limits",
        "the default",
    )
}

/// `asked` over `base`, each value within `profile`'s maximum; `at` names the field in
/// messages (`limits`, `tests[2].limits`), `base_is` what a left-out value takes (`the
/// default`).
pub fn limits_over(
    asked: &LimitsRequest,
    base: &Limits,
    profile: &Profile,
    at: &str,
    base_is: &str,
) -> Result<Limits, RequestError> {
    let maximums = &profile.limits.maximums;
    let one = |field: &str, asked: Option<u64>, base: u64, maximum: u64| match asked {
        None => Ok(base),
        Some(0) => Err(RequestError::invalid(format!(
            "{at}.{field}: 0 is not allowed; give a positive value or leave it out for \
             {base_is} {base}"
        ))),
        Some(value) if value > maximum => Err(RequestError {
            code: RequestError::LIMIT_TOO_HIGH,
            message: format!(
                "{at}.{field}: {value} is above the maximum {maximum} of profile {}",
                profile.name
            ),
        }),
        Some(value) => Ok(value),
    };
    let memory_mb = one(
        "memory_mb",
        asked.memory_mb,
        base.memory_mb,
        maximums.memory_mb,
    )?;
    Ok(Limits {
        cpu_ms: one("cpu_ms", asked.cpu_ms, base.cpu_ms, maximums.cpu_ms)?,
        wall_ms: one("wall_ms", asked.wall_ms, base.wall_ms, maximums.wall_ms)?,
        memory_mb,
        pids: one("pids", asked.pids, base.pids, maximums.pids)?,
        output_bytes: one(
            "output_bytes",
            asked.output_bytes,
            base.output_bytes,
            maximums.output_bytes,
        )?,
        file_size_bytes: one(
            "file_size_bytes",
            asked.file_size_bytes,
            base.file_size_bytes,
            maximums.file_size_bytes,
        )?,
        disk_mb: one("disk_mb", asked.disk_mb, base.disk_mb, maximums.disk_mb)?,
        stack_mb: resolve_stack(asked.stack_mb.or(base.stack_mb), memory_mb, at)?,
    })
}

/// A stack size within the memory limit; `None` leaves it to the memory limit.
pub fn resolve_stack(
    stack_mb: Option<u64>,
    memory_mb: u64,
    at: &str,
) -> Result<Option<u64>, RequestError> {
    match stack_mb {
        Some(0) => Err(RequestError::invalid(format!(
            "{at}.stack_mb: 0 is not allowed; give a positive value or leave it out for the \
             memory limit"
        ))),
        Some(s) if s > memory_mb => Err(RequestError::invalid(format!(
            "{at}.stack_mb: {s} is above {at}.memory_mb {memory_mb}; the stack is part of the \
             memory"
        ))),
        other => Ok(other),
    }
}

/// `cmd` as given, or the profile's run command (placeholders filled) with `args` appended.
fn resolve_run_cmd(
    req: &RunRequest,
    profile: &Profile,
    limits: &Limits,
) -> Result<Vec<String>, RequestError> {
    if let Some(i) = req.args.iter().position(|arg| arg.contains('\0')) {
        return Err(RequestError::invalid(format!(
            "args[{i}]: contains a NUL byte"
        )));
    }
    let Some(cmd) = &req.cmd else {
        let mut run = profile.run_command(limits);
        run.extend(req.args.iter().cloned());
        return Ok(run);
    };
    match cmd.first() {
        None => {
            return Err(RequestError::invalid(
                "cmd: is empty; give the program and its arguments, or leave cmd out to use \
                 the profile's run command",
            ))
        }
        Some(program) if program.is_empty() => {
            return Err(RequestError::invalid(
                "cmd[0]: is empty; give the program to run",
            ))
        }
        Some(_) => {}
    }
    if let Some(i) = cmd.iter().position(|arg| arg.contains('\0')) {
        return Err(RequestError::invalid(format!(
            "cmd[{i}]: contains a NUL byte"
        )));
    }
    // `cmd` replaces the whole run command; silently dropping `args` would hide a mistake.
    if !req.args.is_empty() {
        return Err(RequestError::invalid(
            "args: cannot be combined with cmd, which replaces the whole run command; put the \
             arguments in cmd",
        ));
    }
    Ok(cmd.clone())
}

/// Most compiler options one request may add.
pub const MAX_COMPILER_OPTIONS: usize = 32;

/// Compiler options, each allowed by the profile's patterns.
fn resolve_compiler_options(
    asked: &[String],
    profile: &Profile,
) -> Result<Vec<String>, RequestError> {
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    if profile.compile.is_none() {
        return Err(RequestError::invalid(format!(
            "compiler_options: profile {} does not compile; leave them out",
            profile.name
        )));
    }
    if asked.len() > MAX_COMPILER_OPTIONS {
        return Err(RequestError::invalid(format!(
            "compiler_options: {} given; at most {MAX_COMPILER_OPTIONS}",
            asked.len()
        )));
    }
    for (i, o) in asked.iter().enumerate() {
        if !profile.allows_compiler_option(o) {
            let allowed = if profile.compiler_options.is_empty() {
                "none are".to_string()
            } else {
                format!("those matching {} are", profile.compiler_options.join(", "))
            };
            return Err(RequestError::invalid(format!(
                "compiler_options[{i}]: {o:?} is not allowed for profile {}; {allowed}",
                profile.name
            )));
        }
    }
    Ok(asked.to_vec())
}

/// The profile's environment overlaid with the request's.
fn resolve_env(
    asked: &BTreeMap<String, String>,
    base: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, RequestError> {
    let mut env = base.clone();
    for (name, value) in asked {
        if !is_valid_env_name(name) {
            return Err(RequestError::invalid(format!(
                "env: {name:?} is not a valid variable name; names match [A-Za-z_][A-Za-z0-9_]*"
            )));
        }
        if value.contains('\0') {
            return Err(RequestError::invalid(format!(
                "env.{name}: value contains a NUL byte"
            )));
        }
        env.insert(name.clone(), value.clone());
    }
    Ok(env)
}

/// `stdin` as bytes, or `stdin_base64` decoded; empty when neither is given.
fn decode_stdin(req: &RunRequest) -> Result<Vec<u8>, RequestError> {
    match (&req.stdin, &req.stdin_base64) {
        (Some(_), Some(_)) => Err(RequestError::invalid(
            "stdin, stdin_base64: give one or the other, not both",
        )),
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(encoded)) => BASE64
            .decode(encoded)
            .map_err(|err| RequestError::invalid(format!("stdin_base64: {}", base64_error(&err)))),
        (None, None) => Ok(Vec::new()),
    }
}

/// Checks the file names, decodes the contents and checks they fit in `/box`.
fn decode_files(
    req: &RunRequest,
    profile: &Profile,
    limits: &Limits,
) -> Result<Vec<(String, Vec<u8>)>, RequestError> {
    if req.files.len() > MAX_FILES {
        return Err(RequestError::invalid(format!(
            "files: {} files given; at most {MAX_FILES}",
            req.files.len()
        )));
    }
    // Every file name and every directory a file implies -> index of the file.
    let mut file_at: HashMap<&str, usize> = HashMap::new();
    let mut dir_of: HashMap<&str, usize> = HashMap::new();
    for (i, file) in req.files.iter().enumerate() {
        let name = file.name.as_str();
        check_file_name(i, name)?;
        if let Some(j) = file_at.get(name) {
            return Err(RequestError::invalid(format!(
                "files[{i}].name: {name:?} is already the name of files[{j}]; file names must \
                 be unique"
            )));
        }
        if let Some(j) = dir_of.get(name) {
            return Err(RequestError::invalid(format!(
                "files[{i}].name: {name:?} is also a directory of files[{j}] ({:?}); a path \
                 cannot be both a file and a directory",
                req.files[*j].name
            )));
        }
        for (end, _) in name.match_indices('/') {
            let dir = &name[..end];
            if let Some(j) = file_at.get(dir) {
                return Err(RequestError::invalid(format!(
                    "files[{i}].name: {name:?} needs a directory {dir:?}, but files[{j}] is a \
                     file of that name; a path cannot be both a file and a directory"
                )));
            }
            dir_of.entry(dir).or_insert(i);
        }
        file_at.insert(name, i);
    }

    if !req.files.is_empty()
        && req.cmd.is_none()
        && !req.files.iter().any(|f| f.name == profile.source_file)
    {
        return Err(RequestError::invalid(format!(
            "files: no file is named {:?}; profile {} runs {:?}, so name the entry file that \
             way (or give cmd)",
            profile.source_file, profile.name, profile.source_file
        )));
    }

    let mut decoded = Vec::with_capacity(req.files.len());
    for (i, file) in req.files.iter().enumerate() {
        let content = match file.encoding {
            Encoding::Utf8 => file.content.as_bytes().to_vec(),
            Encoding::Base64 => BASE64.decode(&file.content).map_err(|err| {
                RequestError::invalid(format!("files[{i}].content: {}", base64_error(&err)))
            })?,
        };
        decoded.push((file.name.clone(), content));
    }
    let used = FilesUse::of(
        decoded
            .iter()
            .map(|(name, c)| (name.as_str(), c.len() as u64)),
    );
    let Some((overflow, why)) = files_overflow(&used, limits) else {
        return Ok(decoded);
    };
    let why = why.map(|w| format!(": {w}")).unwrap_or_default();
    let total = used.bytes;
    Err(RequestError::invalid(match overflow {
        FilesOverflow::Disk => format!(
            "files: {total} bytes in all do not fit in limits.disk_mb {} ({} bytes){why}; \
             send less or raise limits.disk_mb (maximum {})",
            limits.disk_mb,
            limits.disk_mb.saturating_mul(1 << 20),
            profile.limits.maximums.disk_mb
        ),
        FilesOverflow::Memory => format!(
            "files: {total} bytes in all do not fit in limits.memory_mb {} (files count toward \
             it, and {} MiB stay free for the processes){why}; send less or raise \
             limits.memory_mb (maximum {})",
            limits.memory_mb,
            FILES_MEMORY_HEADROOM >> 20,
            profile.limits.maximums.memory_mb
        ),
    }))
}

/// Checks one file name: a relative, normal path that stays under `/box`.
fn check_file_name(i: usize, name: &str) -> Result<(), RequestError> {
    let err = |what: String| Err(RequestError::invalid(format!("files[{i}].name: {what}")));
    if name.is_empty() {
        return err("is empty; give a path relative to /box, e.g. \"main.py\"".into());
    }
    if name.len() > MAX_FILE_PATH_BYTES {
        return err(format!(
            "is {} bytes long; at most {MAX_FILE_PATH_BYTES}",
            name.len()
        ));
    }
    if name.contains('\0') {
        return err("contains a NUL byte".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return err(format!(
            "{name:?} contains the control character U+{:04X}; use printable characters",
            u32::from(c)
        ));
    }
    // A backslash is an ordinary byte to Linux but a separator to Windows clients and to
    // tools that unpack archives: refuse it rather than guess.
    if name.contains('\\') {
        return err(format!(
            "{name:?} contains a backslash; separate directories with \"/\""
        ));
    }
    if name.starts_with('/') {
        return err(format!(
            "{name:?} is absolute; give a path relative to /box"
        ));
    }
    let components: Vec<&str> = name.split('/').collect();
    if components.len() > MAX_FILE_DEPTH {
        return err(format!(
            "{name:?} has {} path components; at most {MAX_FILE_DEPTH}",
            components.len()
        ));
    }
    for component in components {
        match component {
            "" => {
                return err(format!(
                    "{name:?} has an empty path component; remove the extra \"/\""
                ))
            }
            "." => return err(format!("{name:?} has a \".\" component; remove it")),
            ".." => {
                return err(format!(
                    "{name:?} has a \"..\" component, which is not allowed; paths stay inside \
                     /box"
                ))
            }
            _ if component.len() > MAX_NAME_BYTES => {
                return err(format!(
                    "a path component is {} bytes long; at most {MAX_NAME_BYTES}",
                    component.len()
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Says where and why base64 failed to decode, for a client to find the spot.
fn base64_error(err: &base64::DecodeError) -> String {
    use base64::DecodeError;
    let describe = |byte: u8| match byte {
        b'\n' => "a newline (send base64 without line breaks)".to_string(),
        b'\r' => "a carriage return (send base64 without line breaks)".to_string(),
        b' ' | b'\t' => "whitespace (send base64 without spaces)".to_string(),
        b'=' => "\"=\" (padding may only end the text)".to_string(),
        b'-' | b'_' => format!(
            "{:?} (URL-safe base64; use the standard alphabet with + and /)",
            char::from(byte)
        ),
        0x21..=0x7e => format!("{:?}", char::from(byte)),
        _ => format!("byte 0x{byte:02x}"),
    };
    match *err {
        DecodeError::InvalidByte(offset, byte) => {
            format!("invalid base64 at offset {offset}: {}", describe(byte))
        }
        DecodeError::InvalidLastSymbol(offset, byte) => format!(
            "invalid base64 at offset {offset}: last symbol {:?} has bits left over; the text \
             is truncated or corrupted",
            char::from(byte)
        ),
        DecodeError::InvalidLength(symbols) => format!(
            "invalid base64: {symbols} symbols do not make whole bytes; the text is truncated \
             or has a stray character"
        ),
        DecodeError::InvalidPadding => {
            "invalid base64: padding is missing or wrong; standard base64 pads with \"=\" to a \
             multiple of 4 characters"
                .to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::fixtures::{self, invalid, ok, profiles, py, refused, DEFAULTS, MAXIMUMS};
    use crate::request::{page_bytes, FileSpec};

    #[track_caller]
    fn bad_name(name: &str, message: &str) {
        invalid(&py(&[("main.py", ""), (name, "")]), message);
    }

    #[test]
    fn defaults_are_filled_in() {
        let v = ok(&py(&[("main.py", "print(1)")]));
        assert_eq!(v.profile.profile.name, "python3");
        assert_eq!(v.limits, DEFAULTS);
        assert_eq!(v.run_cmd, ["/usr/bin/python3", "main.py"]);
        assert_eq!(v.files, [("main.py".to_string(), b"print(1)".to_vec())]);
        assert_eq!(v.stdin, b"");
        assert_eq!(
            v.env,
            profiles()
                .get("python3")
                .map(|p| p.profile.env.clone())
                .unwrap_or_default()
        );
        assert_eq!(v.output_encoding, Encoding::Utf8);
    }

    #[test]
    fn alias_resolves_to_the_profile() {
        let mut req = py(&[("main.py", "")]);
        req.profile = "py".to_string();
        assert_eq!(ok(&req).profile.profile.name, "python3");
    }

    #[test]
    fn limits_override_defaults_up_to_the_maximum() {
        let mut req = py(&[("main.py", "")]);
        req.limits = LimitsRequest {
            cpu_ms: Some(20000),
            memory_mb: Some(512),
            pids: Some(1),
            ..LimitsRequest::default()
        };
        let limits = ok(&req).limits;
        assert_eq!(
            limits,
            Limits {
                cpu_ms: 20000,
                memory_mb: 512,
                pids: 1,
                ..DEFAULTS
            }
        );
    }

    #[test]
    fn an_error_names_its_field_first() {
        let mut req = py(&[("main.py", "")]);
        req.limits.cpu_ms = Some(0);
        assert_eq!(
            validate(&req, &profiles()).unwrap_err().field(),
            "limits.cpu_ms"
        );
        assert_eq!(RequestError::invalid("no colon here").field(), "");
    }

    #[test]
    fn a_stack_size_stays_within_the_memory_limit() {
        let mut req = py(&[("main.py", "")]);
        req.limits.stack_mb = Some(64);
        assert_eq!(ok(&req).limits.stack_mb, Some(64));
        req.limits.stack_mb = Some(300);
        invalid(
            &req,
            "limits.stack_mb: 300 is above limits.memory_mb 256; the stack is part of the memory",
        );
        req.limits.stack_mb = Some(0);
        invalid(
            &req,
            "limits.stack_mb: 0 is not allowed; give a positive value or leave it out for the \
             memory limit",
        );
        req.limits = LimitsRequest::default();
        assert_eq!(ok(&req).limits.stack_mb, None);
        assert_eq!(
            warmbox_sandbox::step::job_limits(&ok(&req).limits).stack_bytes,
            256 << 20
        );
    }

    #[test]
    fn memory_limit_reaches_the_run_command() {
        let mut req = RunRequest {
            profile: "java".to_string(),
            ..RunRequest::default()
        };
        req.limits.memory_mb = Some(768);
        req.args = vec!["x".to_string()];
        assert_eq!(
            ok(&req).run_cmd,
            ["/usr/bin/java", "-XX:MaxRAM=768m", "Main", "x"]
        );
        // Other limits (a test's) rebuild it, args kept; a `cmd` stays as given.
        let other = Limits {
            memory_mb: 300,
            ..ok(&req).limits
        };
        assert_eq!(
            ok(&req).run_cmd_for(&other),
            ["/usr/bin/java", "-XX:MaxRAM=300m", "Main", "x"]
        );
        req.args.clear();
        req.cmd = Some(vec!["/usr/bin/java".to_string(), "-version".to_string()]);
        assert_eq!(ok(&req).run_cmd_for(&other), ["/usr/bin/java", "-version"]);
    }

    #[test]
    fn base64_files_and_stdin_are_decoded() {
        let mut req = py(&[("main.py", "")]);
        req.files.push(FileSpec {
            name: "data/blob.bin".to_string(),
            content: BASE64.encode([0u8, 0xff, 0x80, b'\n']),
            encoding: Encoding::Base64,
        });
        req.stdin_base64 = Some(BASE64.encode([1u8, 2, 0xfe]));
        req.output_encoding = Encoding::Base64;
        let v = ok(&req);
        assert_eq!(
            v.files[1],
            ("data/blob.bin".to_string(), vec![0, 0xff, 0x80, b'\n'])
        );
        assert_eq!(v.stdin, [1, 2, 0xfe]);
        assert_eq!(v.output_encoding, Encoding::Base64);
    }

    #[test]
    fn text_stdin_is_taken_as_utf8_bytes() {
        let mut req = py(&[("main.py", "")]);
        req.stdin = Some("héllo\n".to_string());
        assert_eq!(ok(&req).stdin, "héllo\n".as_bytes());
    }

    #[test]
    fn args_are_appended_to_the_run_command() {
        let mut req = py(&[("main.py", "")]);
        req.args = vec!["--flag".to_string(), "two words".to_string()];
        assert_eq!(
            ok(&req).run_cmd,
            ["/usr/bin/python3", "main.py", "--flag", "two words"]
        );
    }

    #[test]
    fn cmd_replaces_the_run_command_and_may_run_without_files() {
        let mut req = py(&[]);
        req.cmd = Some(vec!["/usr/bin/env".to_string()]);
        assert_eq!(ok(&req).run_cmd, ["/usr/bin/env"]);
        // With cmd, files need not include the source file.
        let mut req = py(&[("other.py", "")]);
        req.cmd = Some(vec!["/usr/bin/python3".to_string(), "other.py".to_string()]);
        assert_eq!(ok(&req).run_cmd, ["/usr/bin/python3", "other.py"]);
    }

    #[test]
    fn request_env_overlays_the_profile_env() {
        let mut req = py(&[("main.py", "")]);
        req.env = BTreeMap::from([
            ("HOME".to_string(), "/tmp".to_string()),
            ("_X1".to_string(), String::new()),
        ]);
        let env = ok(&req).env;
        assert_eq!(
            env,
            BTreeMap::from([
                ("HOME".to_string(), "/tmp".to_string()),
                ("PATH".to_string(), "/usr/bin:/bin".to_string()),
                ("_X1".to_string(), String::new()),
            ])
        );
    }

    #[test]
    fn nested_files_and_sibling_directories_are_fine() {
        let v = ok(&py(&[
            ("main.py", ""),
            ("a/b", "1"),
            ("a/c/d", "2"),
            ("ab", "3"),
            (".env", ""),
        ]));
        assert_eq!(v.files.len(), 5);
    }

    #[test]
    fn unknown_profile_lists_the_available_names() {
        let mut req = py(&[]);
        req.profile = "rust".to_string();
        refused(
            &req,
            RequestError::UNKNOWN_PROFILE,
            "profile: unknown profile \"rust\"; available profiles: java, python3",
        );
        req.profile = "Python3".to_string();
        refused(
            &req,
            RequestError::UNKNOWN_PROFILE,
            "profile: unknown profile \"Python3\"; available profiles: java, python3",
        );
    }

    #[test]
    fn unknown_profile_with_no_profile_available() {
        let req = py(&[]);
        match validate(&req, &ProfileSet::default()) {
            Err(err) => {
                assert_eq!(err.code, RequestError::UNKNOWN_PROFILE);
                assert_eq!(
                    err.message,
                    "profile: unknown profile \"python3\"; no profile is available on this host"
                );
            }
            Ok(_) => panic!("no profiles, yet the request validated"),
        }
    }

    #[test]
    fn empty_profile_name_is_invalid() {
        let mut req = py(&[]);
        req.profile = String::new();
        invalid(
            &req,
            "profile: is empty; give a profile name (available profiles: java, python3)",
        );
    }

    #[test]
    fn unavailable_profile_says_why() {
        let mut req = py(&[]);
        req.profile = "ghost".to_string();
        refused(
            &req,
            RequestError::PROFILE_UNAVAILABLE,
            "profile: ghost is not available on this host: required path /opt/ghost is \
             missing: No such file or directory (os error 2)",
        );
    }

    #[test]
    fn limit_above_the_maximum_names_field_and_maximum() {
        let mut req = py(&[("main.py", "")]);
        req.limits.memory_mb = Some(4096);
        refused(
            &req,
            RequestError::LIMIT_TOO_HIGH,
            "limits.memory_mb: 4096 is above the maximum 1024 of profile python3",
        );
        // The canonical name is used even when the request gave an alias.
        let mut req = py(&[("main.py", "")]);
        req.profile = "py".to_string();
        req.limits.output_bytes = Some((1 << 24) + 1);
        refused(
            &req,
            RequestError::LIMIT_TOO_HIGH,
            "limits.output_bytes: 16777217 is above the maximum 16777216 of profile python3",
        );
    }

    #[test]
    fn zero_limit_is_refused() {
        let mut req = py(&[("main.py", "")]);
        req.limits.wall_ms = Some(0);
        invalid(
            &req,
            "limits.wall_ms: 0 is not allowed; give a positive value or leave it out for the \
             default 5000",
        );
    }

    #[test]
    fn file_name_rules() {
        bad_name(
            "",
            "files[1].name: is empty; give a path relative to /box, e.g. \"main.py\"",
        );
        bad_name(
            "/etc/passwd",
            "files[1].name: \"/etc/passwd\" is absolute; give a path relative to /box",
        );
        bad_name(
            "..",
            "files[1].name: \"..\" has a \"..\" component, which is not allowed; paths stay \
             inside /box",
        );
        bad_name(
            "a/../../x",
            "files[1].name: \"a/../../x\" has a \"..\" component, which is not allowed; paths \
             stay inside /box",
        );
        bad_name(
            "./a",
            "files[1].name: \"./a\" has a \".\" component; remove it",
        );
        bad_name(".", "files[1].name: \".\" has a \".\" component; remove it");
        bad_name(
            "a//b",
            "files[1].name: \"a//b\" has an empty path component; remove the extra \"/\"",
        );
        bad_name(
            "dir/",
            "files[1].name: \"dir/\" has an empty path component; remove the extra \"/\"",
        );
        bad_name("a\0b", "files[1].name: contains a NUL byte");
        bad_name(
            "a\nb",
            "files[1].name: \"a\\nb\" contains the control character U+000A; use printable \
             characters",
        );
        bad_name(
            "..\\x",
            "files[1].name: \"..\\\\x\" contains a backslash; separate directories with \"/\"",
        );
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        bad_name(
            &format!("d/{long}"),
            "files[1].name: a path component is 256 bytes long; at most 255",
        );
        let deep = vec!["d"; MAX_FILE_DEPTH + 1].join("/");
        bad_name(
            &deep,
            &format!("files[1].name: {deep:?} has 33 path components; at most 32"),
        );
        let huge = vec!["d"; 2100].join("/");
        bad_name(&huge, "files[1].name: is 4199 bytes long; at most 4096");
        // Exactly at the limits is fine.
        let name = format!("{}/{}", "x".repeat(MAX_NAME_BYTES), vec!["d"; 31].join("/"));
        assert_eq!(ok(&py(&[("main.py", ""), (&name, "")])).files[1].0, name);
    }

    #[test]
    fn duplicate_file_names_are_refused() {
        invalid(
            &py(&[("main.py", ""), ("lib.py", ""), ("main.py", "")]),
            "files[2].name: \"main.py\" is already the name of files[0]; file names must be unique",
        );
    }

    #[test]
    fn a_file_cannot_also_be_a_directory() {
        invalid(
            &py(&[("main.py", ""), ("a", ""), ("a/b", "")]),
            "files[2].name: \"a/b\" needs a directory \"a\", but files[1] is a file of that \
             name; a path cannot be both a file and a directory",
        );
        invalid(
            &py(&[("main.py", ""), ("a/b/c", ""), ("a/b", "")]),
            "files[2].name: \"a/b\" is also a directory of files[1] (\"a/b/c\"); a path cannot \
             be both a file and a directory",
        );
    }

    #[test]
    fn too_many_files_are_refused() {
        let names: Vec<String> = (0..=MAX_FILES).map(|i| format!("f{i}")).collect();
        let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
        invalid(&py(&files), "files: 1025 files given; at most 1024");
    }

    #[test]
    fn files_without_the_source_file_need_cmd() {
        invalid(
            &py(&[("prog.py", "print(1)")]),
            "files: no file is named \"main.py\"; profile python3 runs \"main.py\", so name the \
             entry file that way (or give cmd)",
        );
        // A source file in a subdirectory does not count.
        invalid(
            &py(&[("src/main.py", "")]),
            "files: no file is named \"main.py\"; profile python3 runs \"main.py\", so name the \
             entry file that way (or give cmd)",
        );
        // No files at all is allowed (API.md): nothing to check.
        assert_eq!(ok(&py(&[])).files, []);
    }

    #[test]
    fn bad_base64_content_names_the_file_and_offset() {
        let mut req = py(&[("main.py", ""), ("a", ""), ("b", "")]);
        req.files[2].encoding = Encoding::Base64;
        req.files[2].content = "aGVs!G8=".to_string();
        invalid(&req, "files[2].content: invalid base64 at offset 4: '!'");
        req.files[2].content = "aGVs\nbG8=".to_string();
        invalid(
            &req,
            "files[2].content: invalid base64 at offset 4: a newline (send base64 without line \
             breaks)",
        );
        req.files[2].content = "aGVsbG8".to_string();
        invalid(
            &req,
            "files[2].content: invalid base64: padding is missing or wrong; standard base64 \
             pads with \"=\" to a multiple of 4 characters",
        );
        req.files[2].content = "aGVsb-8=".to_string();
        invalid(
            &req,
            "files[2].content: invalid base64 at offset 5: '-' (URL-safe base64; use the \
             standard alphabet with + and /)",
        );
        req.files[2].content = "aGVsbG9=".to_string();
        invalid(
            &req,
            "files[2].content: invalid base64 at offset 6: last symbol '9' has bits left over; \
             the text is truncated or corrupted",
        );
        req.files[2].content = "aGVsb".to_string();
        invalid(
            &req,
            "files[2].content: invalid base64: 5 symbols do not make whole bytes; the text is \
             truncated or has a stray character",
        );
    }

    #[test]
    fn bad_base64_names_what_it_found() {
        let mut req = py(&[("main.py", "")]);
        req.files[0].encoding = Encoding::Base64;
        for (content, found) in [
            (
                "aGVs\rbG8=",
                "at offset 4: a carriage return (send base64 without line breaks)",
            ),
            (
                "aGVs bG8=",
                "at offset 4: whitespace (send base64 without spaces)",
            ),
            (
                "aGVs\tbG8=",
                "at offset 4: whitespace (send base64 without spaces)",
            ),
            (
                "aG=sbG8=",
                "at offset 2: \"=\" (padding may only end the text)",
            ),
            (
                "aGVs_G8=",
                "at offset 4: '_' (URL-safe base64; use the standard alphabet with + and /)",
            ),
            ("aGVs\u{1}bG8=", "at offset 4: byte 0x01"),
            ("aGVséG8=", "at offset 4: byte 0xc3"),
        ] {
            req.files[0].content = content.to_string();
            invalid(&req, &format!("files[0].content: invalid base64 {found}"));
        }
    }

    #[test]
    fn every_limit_is_refused_at_zero_and_above_its_maximum() {
        let fields = DEFAULTS.entries().into_iter().zip(MAXIMUMS.entries());
        for ((field, default), (_, maximum)) in fields {
            let with = |value: u64| {
                let mut req = py(&[]);
                req.limits = serde_json::from_value(serde_json::json!({ field: value }))
                    .unwrap_or_else(|e| panic!("limits.{field}: {e}"));
                req
            };
            invalid(
                &with(0),
                &format!(
                    "limits.{field}: 0 is not allowed; give a positive value or leave it out for \
                     the default {default}"
                ),
            );
            refused(
                &with(maximum + 1),
                RequestError::LIMIT_TOO_HIGH,
                &format!(
                    "limits.{field}: {} is above the maximum {maximum} of profile python3",
                    maximum + 1
                ),
            );
            assert_eq!(ok(&with(maximum)).limits.entries(), {
                let mut e = DEFAULTS.entries();
                e.iter_mut()
                    .find(|(f, _)| *f == field)
                    .expect("the field")
                    .1 = maximum;
                e
            });
        }
    }

    #[test]
    fn files_in_whole_pages_must_fit_in_the_disk_limit() {
        // One byte each, a page each in the tmpfs: one file more than 1 MiB of pages.
        let n = (1 << 20) / page_bytes() + 1;
        let names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
        let mut files = vec![("main.py", "")];
        files.extend(names.iter().map(|n| (n.as_str(), "x")));
        invalid(
            &py(&files),
            &format!(
                "files: {n} bytes in all do not fit in limits.disk_mb 1 (1048576 bytes): in \
                 whole {}-byte pages they take {} bytes; send less or raise limits.disk_mb \
                 (maximum 2)",
                page_bytes(),
                n * page_bytes()
            ),
        );
    }

    #[test]
    fn files_with_their_inodes_must_fit_in_the_memory_limit() {
        // 200 files of a page each: 800 KiB fit in the 1 MiB that memory_mb 5 leaves, but not
        // with 2 KiB of the kernel's for each of them and main.py.
        let page = page_bytes();
        let content = "x".repeat(usize::try_from(page).expect("a page fits in memory"));
        let names: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
        let mut files = vec![("main.py", "")];
        files.extend(names.iter().map(|n| (n.as_str(), content.as_str())));
        let mut req = py(&files);
        req.limits.memory_mb = Some(5);
        req.limits.disk_mb = Some(2);
        invalid(
            &req,
            &format!(
                "files: {} bytes in all do not fit in limits.memory_mb 5 (files count toward it, \
                 and 4 MiB stay free for the processes): in whole pages, and with 2048 bytes of \
                 the kernel's for each of their 201 files and directories, they take {} bytes; \
                 send less or raise limits.memory_mb (maximum 1024)",
                200 * page,
                200 * page + 201 * 2048
            ),
        );
    }

    #[test]
    fn compiler_options_rules() {
        let mut req = py(&[("main.py", "")]);
        req.compiler_options = vec!["-O2".to_string()];
        invalid(
            &req,
            "compiler_options: profile python3 does not compile; leave them out",
        );
        let mut java = RunRequest {
            profile: "java".to_string(),
            compiler_options: vec!["-O2".to_string()],
            ..RunRequest::default()
        };
        invalid(
            &java,
            "compiler_options[0]: \"-O2\" is not allowed for profile java; none are",
        );
        let mut profile = fixtures::profile("java", &[], "Main.java", &["/usr/bin/java", "Main"]);
        profile.compile = Some(vec!["/usr/bin/javac".into(), "Main.java".into()]);
        profile.compiler_options = vec!["-O[0-3]".to_string(), "-g".to_string()];
        let set = ProfileSet::from_profiles(vec![fixtures::loaded(profile, None)]);
        let check = |req: &RunRequest| validate(req, &set);
        java.compiler_options = vec!["-g".to_string(), "-O0".to_string()];
        assert_eq!(
            check(&java).map(|v| v.compiler_options),
            Ok(vec!["-g".to_string(), "-O0".to_string()])
        );
        java.compiler_options = vec!["-O2".to_string(), "-O9".to_string()];
        assert_eq!(
            check(&java).map(|_| ()),
            Err(RequestError::invalid(
                "compiler_options[1]: \"-O9\" is not allowed for profile java; those matching \
                 -O[0-3], -g are"
            ))
        );
        // A pattern matches a whole option.
        java.compiler_options = vec!["-O2 -fplugin=x".to_string()];
        assert_eq!(
            check(&java).map(|_| ()).map_err(|e| e.field().to_string()),
            Err("compiler_options[0]".to_string())
        );
        java.compiler_options = vec!["-g".to_string(); MAX_COMPILER_OPTIONS + 1];
        assert_eq!(
            check(&java).map(|_| ()),
            Err(RequestError::invalid(
                "compiler_options: 33 given; at most 32"
            ))
        );
    }

    #[test]
    fn bad_base64_stdin_is_refused() {
        let mut req = py(&[("main.py", "")]);
        req.stdin_base64 = Some("@@@@".to_string());
        invalid(&req, "stdin_base64: invalid base64 at offset 0: '@'");
    }

    #[test]
    fn stdin_and_stdin_base64_together_are_refused() {
        let mut req = py(&[("main.py", "")]);
        req.stdin = Some("a".to_string());
        req.stdin_base64 = Some("YQ==".to_string());
        invalid(&req, "stdin, stdin_base64: give one or the other, not both");
    }

    #[test]
    fn cmd_rules() {
        let mut req = py(&[("main.py", "")]);
        req.cmd = Some(Vec::new());
        invalid(
            &req,
            "cmd: is empty; give the program and its arguments, or leave cmd out to use the \
             profile's run command",
        );
        req.cmd = Some(vec![String::new(), "x".to_string()]);
        invalid(&req, "cmd[0]: is empty; give the program to run");
        req.cmd = Some(vec!["/bin/echo".to_string(), "a\0b".to_string()]);
        invalid(&req, "cmd[1]: contains a NUL byte");
        req.cmd = Some(vec!["/bin/echo".to_string()]);
        req.args = vec!["x".to_string()];
        invalid(
            &req,
            "args: cannot be combined with cmd, which replaces the whole run command; put the \
             arguments in cmd",
        );
    }

    #[test]
    fn args_with_nul_are_refused() {
        let mut req = py(&[("main.py", "")]);
        req.args = vec!["ok".to_string(), "b\0d".to_string()];
        invalid(&req, "args[1]: contains a NUL byte");
    }

    #[test]
    fn env_rules() {
        for name in ["1X", "A-B", "A=B", "", "Ä"] {
            let mut req = py(&[("main.py", "")]);
            req.env = BTreeMap::from([(name.to_string(), "v".to_string())]);
            invalid(
                &req,
                &format!(
                    "env: {name:?} is not a valid variable name; names match \
                     [A-Za-z_][A-Za-z0-9_]*"
                ),
            );
        }
        let mut req = py(&[("main.py", "")]);
        req.env = BTreeMap::from([("KEY".to_string(), "a\0b".to_string())]);
        invalid(&req, "env.KEY: value contains a NUL byte");
    }

    #[test]
    fn files_must_fit_in_the_memory_limit() {
        // 1.5 MiB of files fit the disk (2 MiB) but not memory_mb 5 less the headroom.
        let big = "x".repeat(768 * 1024);
        let mut req = py(&[("main.py", &big), ("b", &big)]);
        req.limits.disk_mb = Some(2);
        req.limits.memory_mb = Some(5);
        invalid(
            &req,
            "files: 1572864 bytes in all do not fit in limits.memory_mb 5 (files count toward \
             it, and 4 MiB stay free for the processes); send less or raise limits.memory_mb \
             (maximum 1024)",
        );
        req.limits.memory_mb = Some(6);
        assert_eq!(ok(&req).files.len(), 2);
    }

    #[test]
    fn files_must_fit_in_the_disk_limit() {
        // disk_mb defaults to 1 MiB in these profiles; the maximum is 2.
        let big = "x".repeat(600 * 1024);
        let req = py(&[("main.py", &big), ("b", &big)]);
        invalid(
            &req,
            "files: 1228800 bytes in all do not fit in limits.disk_mb 1 (1048576 bytes); send \
             less or raise limits.disk_mb (maximum 2)",
        );
        let mut req = req;
        req.limits.disk_mb = Some(2);
        assert_eq!(ok(&req).files.len(), 2);
        // Exactly the limit fits; sizes count decoded bytes, not base64 text.
        let mut req = py(&[("main.py", "")]);
        req.files.push(FileSpec {
            name: "blob".to_string(),
            content: BASE64.encode(vec![7u8; 1 << 20]),
            encoding: Encoding::Base64,
        });
        assert_eq!(ok(&req).files[1].1.len(), 1 << 20);
    }

    #[test]
    fn request_json_follows_api_md() {
        let req: RunRequest = serde_json::from_str(
            r#"{"profile": "python3",
                "files": [{"name": "main.py", "content": "print(input())", "encoding": "utf8"},
                          {"name": "d.bin", "content": "AAE=", "encoding": "base64"}],
                "stdin": "hello\n", "args": ["--flag"], "env": {"KEY": "value"}, "cmd": null,
                "limits": {"cpu_ms": 2000, "memory_mb": 256}, "output_encoding": "base64"}"#,
        )
        .unwrap_or_else(|err| panic!("API.md's example parses: {err}"));
        let v = ok(&req);
        assert_eq!(v.files[1].1, [0, 1]);
        assert_eq!(v.stdin, b"hello\n");
        assert_eq!(v.run_cmd, ["/usr/bin/python3", "main.py", "--flag"]);
        assert_eq!(v.env.get("KEY").map(String::as_str), Some("value"));
        assert_eq!(v.output_encoding, Encoding::Base64);
    }
}
