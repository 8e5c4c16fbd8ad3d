//! Profiles and requests for the unit tests of validation: two available profiles
//! (`python3`, alias `py`, and `java`, which compiles) and one unavailable (`ghost`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{validate, Encoding, FileSpec, RequestError, RunRequest, ValidatedRequest};
use crate::profile::{Availability, LimitSet, Limits, LoadedProfile, Profile, ProfileSet};

/// The run limits every fixture profile defaults to.
pub(crate) const DEFAULTS: Limits = Limits {
    cpu_ms: 2000,
    wall_ms: 5000,
    memory_mb: 256,
    pids: 64,
    output_bytes: 65536,
    file_size_bytes: 1 << 20,
    disk_mb: 1,
    stack_mb: None,
};
/// The most every fixture profile allows.
pub(crate) const MAXIMUMS: Limits = Limits {
    cpu_ms: 20000,
    wall_ms: 60000,
    memory_mb: 1024,
    pids: 256,
    output_bytes: 1 << 24,
    file_size_bytes: 1 << 26,
    disk_mb: 2,
    stack_mb: None,
};

/// A profile that binds `/usr`, with the fixture limits; it does not compile.
pub(crate) fn profile(name: &str, aliases: &[&str], source_file: &str, run: &[&str]) -> Profile {
    Profile {
        name: name.to_string(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        version_cmd: Vec::new(),
        source_file: source_file.to_string(),
        compile: None,
        run: run.iter().map(|a| a.to_string()).collect(),
        binds: vec![PathBuf::from("/usr")],
        requires: Vec::new(),
        packages: Vec::new(),
        env: BTreeMap::from([
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("HOME".to_string(), "/box".to_string()),
        ]),
        limits: LimitSet {
            defaults: DEFAULTS,
            maximums: MAXIMUMS,
        },
        compile_limits: None,
        cpu_cores: Some(1.0),
        seccomp: "default".to_string(),
        compiler_options: Vec::new(),
        judge0_id: Vec::new(),
        judge0_name: None,
        piston_language: None,
    }
}

/// `profile`, available unless `reason` says why not.
pub(crate) fn loaded(profile: Profile, reason: Option<&str>) -> LoadedProfile {
    LoadedProfile {
        profile,
        availability: Availability {
            available: reason.is_none(),
            reason: reason.map(str::to_string),
            version: None,
        },
    }
}

/// `python3` (alias `py`), `java` (compiles; `{memory_mb}` in its run command) and the
/// unavailable `ghost`.
pub(crate) fn profiles() -> ProfileSet {
    let python = profile(
        "python3",
        &["py"],
        "main.py",
        &["/usr/bin/python3", "main.py"],
    );
    let mut java = profile(
        "java",
        &[],
        "Main.java",
        &["/usr/bin/java", "-XX:MaxRAM={memory_mb}m", "Main"],
    );
    java.compile = Some(vec!["/usr/bin/javac".into(), "Main.java".into()]);
    let ghost = profile("ghost", &[], "main.g", &["/opt/ghost"]);
    ProfileSet::from_profiles(vec![
        loaded(python, None),
        loaded(java, None),
        loaded(
            ghost,
            Some("required path /opt/ghost is missing: No such file or directory (os error 2)"),
        ),
    ])
}

/// A `python3` request with these UTF-8 files (name, content).
pub(crate) fn py(files: &[(&str, &str)]) -> RunRequest {
    RunRequest {
        profile: "python3".to_string(),
        files: files
            .iter()
            .map(|(name, content)| FileSpec {
                name: name.to_string(),
                content: content.to_string(),
                encoding: Encoding::Utf8,
            })
            .collect(),
        ..RunRequest::default()
    }
}

/// `req` validated against [`profiles`]; a refusal fails the test.
pub(crate) fn ok(req: &RunRequest) -> ValidatedRequest {
    match validate(req, &profiles()) {
        Ok(v) => v,
        Err(err) => panic!("expected a valid request, got {err:?}"),
    }
}

/// Asserts the code and the exact message.
#[track_caller]
pub(crate) fn refused(req: &RunRequest, code: &str, message: &str) {
    match validate(req, &profiles()) {
        Ok(_) => panic!("expected {code}: {message}"),
        Err(err) => {
            assert_eq!(err.message, message);
            assert_eq!(err.code, code);
        }
    }
}

/// Asserts an `invalid_request` with the exact message.
#[track_caller]
pub(crate) fn invalid(req: &RunRequest, message: &str) {
    refused(req, RequestError::INVALID_REQUEST, message);
}
