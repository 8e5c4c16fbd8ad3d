//! Language profiles: one TOML file per language under `profiles/`, data not code.
//!
//! A profile is checked when it is loaded (a bad file is an error naming the file and the
//! field), then probed once on the host: its `requires` paths must exist for it to be
//! available, and its `version_cmd` supplies the version shown in `GET /v1/profiles`.

mod probe;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::thread;

use serde::{Deserialize, Serialize};

pub use probe::{check_availability, VERSION_TIMEOUT};

/// Placeholder in a profile's `run` command that [`Profile::run_command`] replaces with the
/// run step's memory limit in MiB (e.g. `-XX:MaxRAM={memory_mb}m` for the JVM, which cannot
/// see the cgroup limit from inside the container).
pub const MEMORY_MB_PLACEHOLDER: &str = "{memory_mb}";

/// Longest file name (one path component) Linux accepts, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Errors loading profiles.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A profile file could not be read.
    #[error("read profile {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The profiles directory could not be read (the cause is in the message, not also
    /// as a source, which would print it twice).
    #[error(
        "read the profiles directory {path}: {error}; run warmbox where its profiles/ \
         directory is, or give --profiles-dir (WARMBOX_PROFILES)"
    )]
    Dir {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A profile file is invalid.
    #[error("profile {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// The settings name a profile that is not loaded.
    #[error("profiles.{profile}: no such profile")]
    NoSuchProfile { profile: String },
    /// The settings lower a maximum below the profile's default.
    #[error(
        "profiles.{profile}.maximums.{field}: {value} is below the profile's default {default}"
    )]
    MaximumBelowDefault {
        profile: String,
        field: &'static str,
        value: u64,
        default: u64,
    },
}

pub use warmbox_sandbox::Limits;

/// Default and maximum limits a request may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSet {
    /// Used where the request names no value.
    pub defaults: Limits,
    /// A request above one of these is refused (never clamped).
    pub maximums: Limits,
}

/// One language profile, as read from `profiles/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Unique name, e.g. `python3`.
    pub name: String,
    /// Other names a request may use, e.g. `["python", "py"]`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Command that prints the runtime's version (run on the host, first line kept).
    #[serde(default)]
    pub version_cmd: Vec<String>,
    /// File name of the entry source file in `/box`, e.g. `main.py`.
    pub source_file: String,
    /// Compile command run in `/box` (absent for interpreted languages).
    #[serde(default)]
    pub compile: Option<Vec<String>>,
    /// Run command run in `/box`; the request's `args` are appended. `{memory_mb}` in an
    /// argument becomes the run step's memory limit (see [`Profile::run_command`]).
    pub run: Vec<String>,
    /// Host paths bound read-only, nosuid, nodev at the same path in the container.
    /// A path that is a symlink on the host becomes the same symlink in the container.
    /// Absolute and normal (no `.` or `..`); `/` itself is refused.
    pub binds: Vec<PathBuf>,
    /// Host paths that must exist for the profile to be available (its runtime); symlinks
    /// are followed, so a dangling link makes the profile unavailable.
    pub requires: Vec<PathBuf>,
    /// The Debian packages that install the runtime, named when it is missing.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Environment of both steps.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Limits of the run step.
    pub limits: LimitSet,
    /// Limits of the compile step (not settable by requests).
    #[serde(default)]
    pub compile_limits: Option<Limits>,
    /// CPU bandwidth of a step in cores (`None`: unlimited).
    #[serde(default)]
    pub cpu_cores: Option<f64>,
    /// seccomp policy name: `profiles/seccomp/<name>.json`.
    pub seccomp: String,
    /// Compiler options a request may add (`compiler_options`), each a regular expression
    /// that must match a whole option, e.g. `-O[0-3]`; none: no options.
    #[serde(default)]
    pub compiler_options: Vec<String>,
    /// Judge0 CE language ids this profile answers to (the first is its own).
    #[serde(default)]
    pub judge0_id: Vec<u32>,
    /// Judge0's name of the language; `{version}` becomes the host's version number,
    /// e.g. `Python ({version})`.
    #[serde(default)]
    pub judge0_name: Option<String>,
    /// Piston's name of the language, e.g. `python`, `c++`.
    #[serde(default)]
    pub piston_language: Option<String>,
}

/// Whether a profile can run on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    /// True when every required path exists.
    pub available: bool,
    /// Why not, naming the missing path; `None` when available.
    pub reason: Option<String>,
    /// First line printed by `version_cmd`, when available.
    pub version: Option<String>,
}

/// A loaded profile with its availability.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    /// The profile data.
    pub profile: Profile,
    /// Checked once at load time.
    pub availability: Availability,
}

/// All profiles of a directory.
#[derive(Debug, Clone, Default)]
pub struct ProfileSet {
    profiles: Vec<Arc<LoadedProfile>>,
}

impl ProfileSet {
    /// Loads every `*.toml` of `dir` (sorted by name), checks availability and versions.
    /// Duplicate names or aliases are an error naming both files.
    ///
    /// Blocking: reads files and runs each available profile's `version_cmd` (in parallel,
    /// each bounded by [`VERSION_TIMEOUT`]); call it from a blocking context.
    pub fn load_dir(dir: &Path) -> Result<Self, ProfileError> {
        let read_err = |error| ProfileError::Dir {
            path: dir.to_path_buf(),
            error,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            if path.extension() == Some(OsStr::new("toml")) && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));

        let mut profiles: Vec<Profile> = Vec::with_capacity(paths.len());
        // Every name and alias seen so far -> (profile name, file).
        let mut owners: HashMap<String, (String, PathBuf)> = HashMap::new();
        // Every Judge0 id and Piston name seen so far -> (profile name, file).
        let mut compat_owners: HashMap<String, (String, PathBuf)> = HashMap::new();
        for path in &paths {
            let profile = Profile::from_file(path)?;
            let keys = std::iter::once(("name", &profile.name))
                .chain(profile.aliases.iter().map(|alias| ("alias", alias)));
            for (what, key) in keys {
                if let Some((other, other_path)) = owners.get(key) {
                    return Err(ProfileError::Invalid {
                        path: path.clone(),
                        message: format!(
                            "{what} {key:?} is already used by profile {other} in {}",
                            other_path.display()
                        ),
                    });
                }
            }
            for key in std::iter::once(&profile.name).chain(&profile.aliases) {
                owners.insert(key.clone(), (profile.name.clone(), path.clone()));
            }
            let compat = profile
                .judge0_id
                .iter()
                .map(|id| format!("judge0_id {id}"))
                .chain(
                    profile
                        .piston_language
                        .iter()
                        .map(|l| format!("piston_language {l:?}")),
                );
            for key in compat {
                if let Some((other, other_path)) = compat_owners.get(&key) {
                    return Err(ProfileError::Invalid {
                        path: path.clone(),
                        message: format!(
                            "{key} is already used by profile {other} in {}",
                            other_path.display()
                        ),
                    });
                }
                compat_owners.insert(key, (profile.name.clone(), path.clone()));
            }
            profiles.push(profile);
        }

        // Version commands are probed in parallel so that one slow runtime (the JVM takes
        // ~100 ms, a hung one the full timeout) does not add up across profiles.
        let loaded = thread::scope(|scope| {
            let handles: Vec<_> = profiles
                .into_iter()
                .map(|profile| scope.spawn(move || LoadedProfile::new(profile)))
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Vec<_>>()
        });
        Ok(Self::from_profiles(loaded))
    }

    /// Builds a set from profiles already loaded (tests, or profiles made in code), sorted by
    /// name. Unlike [`ProfileSet::load_dir`] it does not check the profiles or look for
    /// clashing names: [`ProfileSet::get`] returns the first match.
    pub fn from_profiles(profiles: Vec<LoadedProfile>) -> Self {
        let mut profiles: Vec<Arc<LoadedProfile>> = profiles.into_iter().map(Arc::new).collect();
        profiles.sort_by(|a, b| a.profile.name.cmp(&b.profile.name));
        Self { profiles }
    }

    /// Lowers profile `name`'s maximums to those given (an operator's settings); a
    /// maximum below the profile's default is refused, naming both.
    pub fn tighten(
        &mut self,
        name: &str,
        maximums: &crate::request::LimitsRequest,
    ) -> Result<(), ProfileError> {
        let Some(slot) = self.profiles.iter_mut().find(|p| p.profile.name == name) else {
            return Err(ProfileError::NoSuchProfile {
                profile: name.to_string(),
            });
        };
        let mut loaded = (**slot).clone();
        let limits = &mut loaded.profile.limits;
        let fields: [(&str, Option<u64>, &mut u64, u64); 7] = [
            (
                "cpu_ms",
                maximums.cpu_ms,
                &mut limits.maximums.cpu_ms,
                limits.defaults.cpu_ms,
            ),
            (
                "wall_ms",
                maximums.wall_ms,
                &mut limits.maximums.wall_ms,
                limits.defaults.wall_ms,
            ),
            (
                "memory_mb",
                maximums.memory_mb,
                &mut limits.maximums.memory_mb,
                limits.defaults.memory_mb,
            ),
            (
                "pids",
                maximums.pids,
                &mut limits.maximums.pids,
                limits.defaults.pids,
            ),
            (
                "output_bytes",
                maximums.output_bytes,
                &mut limits.maximums.output_bytes,
                limits.defaults.output_bytes,
            ),
            (
                "file_size_bytes",
                maximums.file_size_bytes,
                &mut limits.maximums.file_size_bytes,
                limits.defaults.file_size_bytes,
            ),
            (
                "disk_mb",
                maximums.disk_mb,
                &mut limits.maximums.disk_mb,
                limits.defaults.disk_mb,
            ),
        ];
        for (field, asked, max, default) in fields {
            if let Some(v) = asked {
                if v < default {
                    return Err(ProfileError::MaximumBelowDefault {
                        profile: name.to_string(),
                        field,
                        value: v,
                        default,
                    });
                }
                *max = v;
            }
        }
        *slot = Arc::new(loaded);
        Ok(())
    }

    /// Finds a profile by name or alias.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedProfile>> {
        self.profiles
            .iter()
            .find(|loaded| loaded.profile.name == name)
            .or_else(|| {
                self.profiles
                    .iter()
                    .find(|loaded| loaded.profile.aliases.iter().any(|alias| alias == name))
            })
            .cloned()
    }

    /// All profiles, sorted by name.
    pub fn all(&self) -> &[Arc<LoadedProfile>] {
        &self.profiles
    }
}

impl LoadedProfile {
    /// Probes the host for `profile` (see [`check_availability`]). Blocking.
    pub fn new(profile: Profile) -> Self {
        let availability = check_availability(&profile);
        Self {
            profile,
            availability,
        }
    }
}

impl Profile {
    /// Reads and checks one profile file; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message| ProfileError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let profile = Self::from_toml(&text).map_err(invalid)?;
        profile.check().map_err(invalid)?;
        Ok(profile)
    }

    /// Parses a profile from TOML text (not checked: see [`Profile::check`]). The error says
    /// where: `line 3, column 7: unknown field ...`.
    fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|err: toml::de::Error| {
            let message = err.message().trim_end();
            match err.span() {
                Some(span) => {
                    let before = text.get(..span.start).unwrap_or(text);
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!("line {line}, column {column}: {message}")
                }
                None => message.to_string(),
            }
        })
    }

    /// True when the profile has a compile step.
    pub fn compiled(&self) -> bool {
        self.compile.is_some()
    }

    /// The run command for a run step with `limits`: `run` with [`MEMORY_MB_PLACEHOLDER`]
    /// replaced by `limits.memory_mb`.
    pub fn run_command(&self, limits: &Limits) -> Vec<String> {
        let memory_mb = limits.memory_mb.to_string();
        self.run
            .iter()
            .map(|arg| arg.replace(MEMORY_MB_PLACEHOLDER, &memory_mb))
            .collect()
    }

    /// Whether `option` is one of the compiler options requests may add.
    pub fn allows_compiler_option(&self, option: &str) -> bool {
        self.compiler_options
            .iter()
            .any(|p| option_pattern(p).is_some_and(|r| r.is_match(option)))
    }

    /// Checks the fields of one profile; the message names the field and what to fix.
    fn check(&self) -> Result<(), String> {
        check_profile_name("name", &self.name)?;
        if !self.compiler_options.is_empty() && self.compile.is_none() {
            return Err("compiler_options: the profile does not compile".into());
        }
        for (i, pattern) in self.compiler_options.iter().enumerate() {
            regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                format!("compiler_options[{i}]: {pattern:?} is not a regular expression: {e}")
            })?;
        }
        let mut seen = HashSet::new();
        for (i, alias) in self.aliases.iter().enumerate() {
            let field = format!("aliases[{i}]");
            check_profile_name(&field, alias)?;
            if *alias == self.name {
                return Err(format!("{field}: {alias:?} is the profile's own name"));
            }
            if !seen.insert(alias) {
                return Err(format!("{field}: {alias:?} is listed twice"));
            }
        }

        check_command("run", &self.run)?;
        if let Some(compile) = &self.compile {
            check_command("compile", compile)?;
            check_no_placeholder("compile", compile)?;
        }
        if !self.version_cmd.is_empty() {
            check_command("version_cmd", &self.version_cmd)?;
            check_no_placeholder("version_cmd", &self.version_cmd)?;
        }

        if !is_plain_file_name(&self.source_file) {
            return Err(format!(
                "source_file: {:?} is not a plain file name; give a name such as \"main.py\" \
                 (no \"/\", not \".\" or \"..\", at most {MAX_NAME_BYTES} bytes)",
                self.source_file
            ));
        }

        for (i, bind) in self.binds.iter().enumerate() {
            let field = format!("binds[{i}]");
            check_host_path(&field, bind)?;
            if bind == Path::new("/") {
                return Err(format!(
                    "{field}: \"/\" would expose the whole host; bind the runtime's \
                     directories instead"
                ));
            }
        }
        for (i, path) in self.requires.iter().enumerate() {
            check_host_path(&format!("requires[{i}]"), path)?;
        }

        for (name, value) in &self.env {
            if !is_valid_env_name(name) {
                return Err(format!(
                    "env: {name:?} is not a valid variable name; names match \
                     [A-Za-z_][A-Za-z0-9_]*"
                ));
            }
            if value.contains('\0') {
                return Err(format!("env.{name}: value contains a NUL byte"));
            }
        }

        let defaults = self.limits.defaults.entries();
        let maximums = self.limits.maximums.entries();
        for ((field, default), (_, maximum)) in defaults.into_iter().zip(maximums) {
            if maximum == 0 {
                return Err(format!(
                    "limits.maximums.{field}: 0 is not allowed; give a positive value"
                ));
            }
            if default == 0 {
                return Err(format!(
                    "limits.defaults.{field}: 0 is not allowed; give a positive value"
                ));
            }
            if default > maximum {
                return Err(format!(
                    "limits.defaults.{field}: {default} is above limits.maximums.{field} \
                     {maximum}; lower the default or raise the maximum"
                ));
            }
        }
        if let Some(compile_limits) = &self.compile_limits {
            if self.compile.is_none() {
                return Err(
                    "compile_limits: given without a compile command; add compile or \
                            remove compile_limits"
                        .to_string(),
                );
            }
            for (field, value) in compile_limits.entries() {
                if value == 0 {
                    return Err(format!(
                        "compile_limits.{field}: 0 is not allowed; give a positive value"
                    ));
                }
            }
        }

        if let Some(cores) = self.cpu_cores {
            if !(cores.is_finite() && cores > 0.0) {
                return Err(format!(
                    "cpu_cores: {cores} is not a positive number of cores; give e.g. 1.0, or \
                     leave it out for no CPU quota"
                ));
            }
        }

        if !is_plain_file_name(&self.seccomp) {
            return Err(format!(
                "seccomp: {:?} is not a policy name; give the name of a file under \
                 profiles/seccomp/ without \".json\", e.g. \"default\"",
                self.seccomp
            ));
        }
        Ok(())
    }
}

/// True for an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True for a single, ordinary file name: non-empty, no `/`, `\`, NUL or control
/// character, not `.` or `..`, at most [`MAX_NAME_BYTES`] bytes.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// The compiled, anchored form of a `compiler_options` pattern, compiled once per
/// process; `None` for one that does not compile (refused when the profile loads).
fn option_pattern(pattern: &str) -> Option<regex::Regex> {
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(&format!("^(?:{pattern})$")).ok())
        .clone()
}

/// Checks a profile or alias name: it appears in URLs, logs and metric labels.
fn check_profile_name(field: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field}: {name:?} is not a valid profile name; use up to 64 ASCII letters, digits \
             and \"_-.+\", starting with a letter or digit"
        ))
    }
}

/// Checks a command: non-empty, a non-empty program, no NUL bytes.
fn check_command(field: &str, cmd: &[String]) -> Result<(), String> {
    match cmd.first() {
        None => {
            return Err(format!(
                "{field}: is empty; give the program and its arguments"
            ))
        }
        Some(program) if program.is_empty() => {
            return Err(format!("{field}[0]: is empty; give the program to run"))
        }
        Some(_) => {}
    }
    match cmd.iter().position(|arg| arg.contains('\0')) {
        Some(i) => Err(format!("{field}[{i}]: contains a NUL byte")),
        None => Ok(()),
    }
}

/// `{memory_mb}` only means something in `run`; elsewhere it would reach the program as is.
fn check_no_placeholder(field: &str, cmd: &[String]) -> Result<(), String> {
    match cmd
        .iter()
        .position(|arg| arg.contains(MEMORY_MB_PLACEHOLDER))
    {
        Some(i) => Err(format!(
            "{field}[{i}]: {MEMORY_MB_PLACEHOLDER} is only replaced in run; write the value"
        )),
        None => Ok(()),
    }
}

/// Checks a host path: absolute, normal (no `.`/`..` components), no NUL byte.
fn check_host_path(field: &str, path: &Path) -> Result<(), String> {
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(format!("{field}: contains a NUL byte"));
    }
    if !path.is_absolute() {
        return Err(format!(
            "{field}: {:?} is relative; give an absolute host path such as \"/usr\"",
            path.display().to_string()
        ));
    }
    let normal = path
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !normal {
        return Err(format!(
            "{field}: {:?} has \".\" or \"..\" components; give the path without them",
            path.display().to_string()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_profiles() -> ProfileSet {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
        ProfileSet::load_dir(&dir).expect("the shipped profiles load")
    }

    const LIMITS: &str = r#"
[limits.defaults]
cpu_ms = 1000
wall_ms = 2000
memory_mb = 64
pids = 8
output_bytes = 1024
file_size_bytes = 1024
disk_mb = 8

[limits.maximums]
cpu_ms = 2000
wall_ms = 4000
memory_mb = 128
pids = 16
output_bytes = 2048
file_size_bytes = 2048
disk_mb = 16
"#;

    /// A valid profile as TOML text; `top` is inserted before the tables.
    pub(super) fn toml_with(name: &str, top: &str) -> String {
        format!(
            "name = {name:?}\nsource_file = \"main.sh\"\nrun = [\"/usr/bin/bash\", \"main.sh\"]\n\
             binds = [\"/usr\"]\nrequires = [\"/usr/bin/bash\"]\nseccomp = \"default\"\n\
             {top}\n{LIMITS}"
        )
    }

    fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, text).expect("write test profile");
        path
    }

    fn invalid_message(result: Result<ProfileSet, ProfileError>, file: &Path) -> String {
        match result {
            Err(ProfileError::Invalid { path, message }) => {
                assert_eq!(path, file);
                message
            }
            other => panic!("expected an invalid-profile error for {file:?}, got {other:?}"),
        }
    }

    fn check_err(top: &str) -> String {
        let text = toml_with("t", top);
        let profile = Profile::from_toml(&text).expect("parses");
        profile.check().expect_err("check refuses it")
    }

    #[test]
    fn shipped_profiles_load_with_aliases_and_sane_limits() {
        let set = real_profiles();
        let names: Vec<&str> = set.all().iter().map(|p| p.profile.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bash",
                "c",
                "c-clang",
                "clojure",
                "cobol",
                "cpp",
                "cpp-clang",
                "csharp",
                "d",
                "elixir",
                "erlang",
                "fortran",
                "go",
                "groovy",
                "haskell",
                "java",
                "javascript",
                "kotlin",
                "lisp",
                "lua",
                "multi",
                "nasm",
                "ocaml",
                "octave",
                "pascal",
                "perl",
                "php",
                "prolog",
                "pypy3",
                "python3",
                "r",
                "ruby",
                "rust",
                "scala",
                "sqlite",
                "typescript"
            ],
            "sorted by name"
        );
        let expect_aliases: [(&str, &[&str]); 7] = [
            ("multi", &["multi-file"]),
            ("python3", &["python", "py", "py3"]),
            ("c", &["gcc"]),
            ("cpp", &["c++", "g++", "cxx"]),
            ("java", &["openjdk"]),
            ("javascript", &["node", "nodejs", "js"]),
            ("bash", &["sh"]),
        ];
        for (name, aliases) in expect_aliases {
            let loaded = set.get(name).expect("profile present");
            assert_eq!(loaded.profile.aliases, aliases, "aliases of {name}");
            for alias in aliases {
                let by_alias = set.get(alias).expect("alias resolves");
                assert_eq!(by_alias.profile.name, name);
            }
            let p = &loaded.profile;
            p.check().expect("shipped profile passes its own checks");
            assert_eq!(p.seccomp, "default");
            assert!(
                p.binds.iter().any(|b| b == Path::new("/usr")),
                "{name} binds /usr"
            );
            assert!(
                p.binds.iter().any(|b| b == Path::new("/lib64")),
                "{name} binds /lib64"
            );
            assert_eq!(p.env.get("HOME").map(String::as_str), Some("/box"));
            assert_eq!(p.env.get("LANG").map(String::as_str), Some("C.UTF-8"));
            let d = p.limits.defaults;
            assert_eq!((d.cpu_ms, d.wall_ms, d.pids), (2000, 5000, 64), "{name}");
            assert_eq!(
                (d.output_bytes, d.file_size_bytes),
                (65536, 1 << 20),
                "{name}"
            );
            assert_eq!(
                d.memory_mb,
                if matches!(name, "java" | "multi") {
                    512
                } else {
                    256
                },
                "{name}"
            );
            for ((field, def), (_, max)) in d.entries().into_iter().zip(p.limits.maximums.entries())
            {
                assert!(def > 0 && def <= max, "{name} {field}: {def} <= {max}");
            }
            let compiled = matches!(name, "c" | "cpp" | "java" | "multi");
            assert_eq!(p.compiled(), compiled, "{name} compiles");
            assert_eq!(
                p.compile_limits.is_some(),
                compiled,
                "{name} compile limits"
            );
        }
        assert_eq!(
            set.get("python3").map(|p| p.profile.run.clone()),
            Some(vec!["/usr/bin/python3".to_string(), "main.py".to_string()])
        );
        assert!(set.get("Python").is_none(), "exact match only");
    }

    /// Every shipped profile: its own checks pass, it names the Debian packages of its
    /// runtime, and no two answer to the same Judge0 id or Piston language.
    #[test]
    fn shipped_profiles_have_packages_and_distinct_api_names() {
        let set = real_profiles();
        let mut judge0 = std::collections::BTreeMap::new();
        let mut piston = std::collections::BTreeMap::new();
        for loaded in set.all() {
            let p = &loaded.profile;
            p.check().expect("shipped profile passes its own checks");
            assert!(!p.packages.is_empty(), "{} names no Debian package", p.name);
            for id in &p.judge0_id {
                if let Some(other) = judge0.insert(*id, p.name.clone()) {
                    panic!("Judge0 id {id}: {other} and {}", p.name);
                }
            }
            if let Some(l) = &p.piston_language {
                if let Some(other) = piston.insert(l.clone(), p.name.clone()) {
                    panic!("Piston language {l}: {other} and {}", p.name);
                }
            }
            assert_eq!(
                p.judge0_id.is_empty(),
                p.judge0_name.is_none(),
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn shipped_profiles_are_available_here_with_versions() {
        let set = real_profiles();
        let expected = [
            ("python3", "3.11"),
            ("c", "12"),
            ("cpp", "12"),
            ("java", "17"),
            ("javascript", "v20"),
            ("bash", "version 5"),
        ];
        for (name, digits) in expected {
            let loaded = set.get(name).expect("profile present");
            let a = &loaded.availability;
            assert!(a.available, "{name} unavailable: {:?}", a.reason);
            assert_eq!(a.reason, None);
            let version = a.version.as_deref().unwrap_or_default();
            assert!(
                version.contains(digits),
                "{name} version {version:?} lacks {digits:?}"
            );
        }
    }

    #[test]
    fn java_run_command_sizes_the_heap_from_the_memory_limit() {
        let set = real_profiles();
        let java = set.get("java").expect("java profile");
        let mut limits = java.profile.limits.defaults;
        limits.memory_mb = 300;
        let run = java.profile.run_command(&limits);
        assert!(run.iter().any(|a| a == "-XX:MaxRAM=300m"), "{run:?}");
        assert!(!run.iter().any(|a| a.contains('{')), "{run:?}");
        assert_eq!(run.last().map(String::as_str), Some("Main"));
    }

    #[test]
    fn missing_required_path_makes_profile_unavailable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = toml_with("ghost", "").replace(
            "requires = [\"/usr/bin/bash\"]",
            "requires = [\"/usr/bin/bash\", \"/nonexistent/warmbox-runtime\"]\n\
             packages = [\"ghost-runtime\", \"ghost-extras\"]",
        );
        write(dir.path(), "ghost.toml", &text);
        let set = ProfileSet::load_dir(dir.path()).expect("loads");
        let ghost = set.get("ghost").expect("listed although unavailable");
        assert!(!ghost.availability.available);
        assert_eq!(ghost.availability.version, None);
        let reason = ghost.availability.reason.clone().unwrap_or_default();
        assert_eq!(
            reason,
            "required path /nonexistent/warmbox-runtime is missing: No such file or directory \
             (os error 2) (apt-get install ghost-runtime ghost-extras)"
        );
    }

    #[test]
    fn broken_toml_is_rejected_naming_the_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.toml", &toml_with("a", ""));
        let bad = write(dir.path(), "b.toml", "name = \"b\"\nrun = [\"x\"\n");
        let err = ProfileSet::load_dir(dir.path()).expect_err("broken file refused");
        assert!(err
            .to_string()
            .starts_with(&format!("profile {}: line ", bad.display())));
        let message = invalid_message(Err(err), &bad);
        assert_eq!(message, "line 2, column 11: unclosed array, expected `]`");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = write(dir.path(), "a.toml", &toml_with("a", "colour = \"blue\""));
        let message = invalid_message(ProfileSet::load_dir(dir.path()), &bad);
        assert!(message.contains("unknown field `colour`"), "{message}");
        assert!(message.starts_with("line 7, column 1:"), "{message}");
    }

    #[test]
    fn duplicate_alias_is_rejected_naming_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = write(dir.path(), "a.toml", &toml_with("a", "aliases = [\"x\"]"));
        let second = write(
            dir.path(),
            "b.toml",
            &toml_with("b", "aliases = [\"y\", \"x\"]"),
        );
        let message = invalid_message(ProfileSet::load_dir(dir.path()), &second);
        assert_eq!(
            message,
            format!(
                "alias \"x\" is already used by profile a in {}",
                first.display()
            )
        );
    }

    #[test]
    fn alias_clashing_with_another_name_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = write(dir.path(), "a.toml", &toml_with("a", ""));
        let second = write(dir.path(), "b.toml", &toml_with("b", "aliases = [\"a\"]"));
        let message = invalid_message(ProfileSet::load_dir(dir.path()), &second);
        assert_eq!(
            message,
            format!(
                "alias \"a\" is already used by profile a in {}",
                first.display()
            )
        );
        // And a name clashing with an earlier alias.
        let dir = tempfile::tempdir().expect("tempdir");
        let first = write(dir.path(), "a.toml", &toml_with("a", "aliases = [\"b\"]"));
        let second = write(dir.path(), "b.toml", &toml_with("b", ""));
        let message = invalid_message(ProfileSet::load_dir(dir.path()), &second);
        assert_eq!(
            message,
            format!(
                "name \"b\" is already used by profile a in {}",
                first.display()
            )
        );
    }

    #[test]
    fn load_dir_ignores_other_files_and_reports_a_missing_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.toml", &toml_with("a", ""));
        write(dir.path(), "README.md", "not a profile");
        std::fs::create_dir(dir.path().join("seccomp")).expect("mkdir");
        let set = ProfileSet::load_dir(dir.path()).expect("loads");
        assert_eq!(set.all().len(), 1);

        let missing = dir.path().join("nope");
        let err = ProfileSet::load_dir(&missing).expect_err("no such directory");
        assert_eq!(
            err.to_string(),
            format!(
                "read the profiles directory {}: No such file or directory (os error 2); run \
                 warmbox where its profiles/ directory is, or give --profiles-dir \
                 (WARMBOX_PROFILES)",
                missing.display()
            )
        );
        // The cause is said once: no source to print again.
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn empty_run_command_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = toml_with("a", "").replace("run = [\"/usr/bin/bash\", \"main.sh\"]", "run = []");
        let bad = write(dir.path(), "a.toml", &text);
        let message = invalid_message(ProfileSet::load_dir(dir.path()), &bad);
        assert_eq!(message, "run: is empty; give the program and its arguments");
    }

    #[test]
    fn field_checks_name_the_field() {
        let with = |from: &str, to: &str| {
            let text = toml_with("t", "").replace(from, to);
            Profile::from_toml(&text)
                .expect("parses")
                .check()
                .expect_err("check refuses it")
        };
        assert!(
            with("source_file = \"main.sh\"", "source_file = \"src/main.sh\"")
                .starts_with("source_file: \"src/main.sh\" is not a plain file name")
        );
        assert!(with("source_file = \"main.sh\"", "source_file = \"..\"")
            .starts_with("source_file: \"..\" is not a plain file name"));
        assert_eq!(
            with("binds = [\"/usr\"]", "binds = [\"/usr\", \"lib\"]"),
            "binds[1]: \"lib\" is relative; give an absolute host path such as \"/usr\""
        );
        assert_eq!(
            with("binds = [\"/usr\"]", "binds = [\"/usr/../etc\"]"),
            "binds[0]: \"/usr/../etc\" has \".\" or \"..\" components; give the path without them"
        );
        assert!(with("binds = [\"/usr\"]", "binds = [\"/\"]")
            .starts_with("binds[0]: \"/\" would expose the whole host"));
        assert_eq!(
            with(
                "requires = [\"/usr/bin/bash\"]",
                "requires = [\"bin/bash\"]"
            ),
            "requires[0]: \"bin/bash\" is relative; give an absolute host path such as \"/usr\""
        );
        assert_eq!(
            with(
                "[limits.defaults]\ncpu_ms = 1000",
                "[limits.defaults]\ncpu_ms = 3000"
            ),
            "limits.defaults.cpu_ms: 3000 is above limits.maximums.cpu_ms 2000; lower the \
             default or raise the maximum"
        );
        assert_eq!(
            with(
                "[limits.defaults]\ncpu_ms = 1000",
                "[limits.defaults]\ncpu_ms = 0"
            ),
            "limits.defaults.cpu_ms: 0 is not allowed; give a positive value"
        );
        assert_eq!(
            with("disk_mb = 16", "disk_mb = 0"),
            "limits.maximums.disk_mb: 0 is not allowed; give a positive value"
        );
        assert!(with("name = \"t\"", "name = \"bad name\"")
            .starts_with("name: \"bad name\" is not a valid profile name"));
        assert_eq!(
            with("seccomp = \"default\"", "seccomp = \"../x\""),
            "seccomp: \"../x\" is not a policy name; give the name of a file under \
             profiles/seccomp/ without \".json\", e.g. \"default\""
        );
        assert_eq!(
            check_err("aliases = [\"t\"]"),
            "aliases[0]: \"t\" is the profile's own name"
        );
        assert_eq!(
            check_err("aliases = [\"u\", \"u\"]"),
            "aliases[1]: \"u\" is listed twice"
        );
        assert_eq!(
            check_err("compile = [\"/usr/bin/cc\", \"-DMEM={memory_mb}\"]"),
            "compile[1]: {memory_mb} is only replaced in run; write the value"
        );
        assert_eq!(
            check_err("compile = [\"\"]"),
            "compile[0]: is empty; give the program to run"
        );
        assert!(check_err("cpu_cores = 0.0").starts_with("cpu_cores: 0 is not a positive number"));
        assert!(check_err("env = { \"1A\" = \"x\" }").starts_with("env: \"1A\" is not a valid"));
    }

    #[test]
    fn from_profiles_sorts_and_get_prefers_names_over_aliases() {
        let mk = |name: &str, aliases: &str| {
            let top = format!("aliases = {aliases}");
            let profile = Profile::from_toml(&toml_with(name, &top)).expect("parses");
            LoadedProfile {
                profile,
                availability: Availability {
                    available: true,
                    reason: None,
                    version: None,
                },
            }
        };
        let set = ProfileSet::from_profiles(vec![mk("zed", "[\"a\"]"), mk("a", "[]")]);
        let names: Vec<&str> = set.all().iter().map(|p| p.profile.name.as_str()).collect();
        assert_eq!(names, ["a", "zed"]);
        assert_eq!(
            set.get("a").map(|p| p.profile.name.clone()),
            Some("a".into())
        );
        assert!(set.get("").is_none());
    }

    #[test]
    fn env_names_and_file_names() {
        for ok in ["A", "_", "a_1", "PATH"] {
            assert!(is_valid_env_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A=B", "A B", "É"] {
            assert!(!is_valid_env_name(bad), "{bad}");
        }
        for ok in ["main.py", "Main.java", ".hidden", "a..b"] {
            assert!(is_plain_file_name(ok), "{ok}");
        }
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb", long.as_str()] {
            assert!(!is_plain_file_name(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod tighten_tests {
    use super::*;
    use crate::request::LimitsRequest;

    #[test]
    fn tighten_lowers_maximums_and_refuses_below_default() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
        let mut set = ProfileSet::load_dir(&dir).unwrap();
        let ask = |memory_mb| LimitsRequest {
            memory_mb: Some(memory_mb),
            ..Default::default()
        };
        set.tighten("python3", &ask(300)).unwrap();
        let p = set.get("py").unwrap();
        assert_eq!(p.profile.limits.maximums.memory_mb, 300);
        assert_eq!(p.profile.limits.maximums.cpu_ms, 20000, "others unchanged");
        assert_eq!(
            set.tighten("python3", &ask(100)).unwrap_err().to_string(),
            "profiles.python3.maximums.memory_mb: 100 is below the profile's default 256"
        );
        assert_eq!(
            set.tighten("fortran77", &ask(300)).unwrap_err().to_string(),
            "profiles.fortran77: no such profile"
        );
    }
}
