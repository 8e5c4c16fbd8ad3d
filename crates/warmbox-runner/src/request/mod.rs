//! The run request and response of API.md.
//!
//! [`validate`] turns a [`RunRequest`] into a [`ValidatedRequest`]: every check a client can
//! fail happens there, before any container is touched, and each failure is a
//! [`RequestError`] whose message names the field and says what to fix.

mod files;
#[cfg(test)]
pub(crate) mod fixtures;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::profile::{Limits, LoadedProfile};

pub use files::{
    files_overflow, page_bytes, FilesOverflow, FilesUse, FILES_MEMORY_HEADROOM, INODE_MEMORY_BYTES,
};
pub use validate::{
    limits_over, resolve_stack, validate, MAX_COMPILER_OPTIONS, MAX_FILE_PATH_BYTES,
};
pub use warmbox_sandbox::{StepStatus, Usage, MAX_FILES, MAX_FILE_DEPTH};

/// A request that cannot be run, with the message that tells the client what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// snake_case code, e.g. `invalid_request`, `unknown_profile`, `limit_too_high`.
    pub code: &'static str,
    /// What to fix, naming the field, e.g. `files[1].name: ".." is not allowed`.
    pub message: String,
}

impl RequestError {
    /// A field is malformed or inconsistent (HTTP 400).
    pub const INVALID_REQUEST: &'static str = "invalid_request";
    /// No profile has the requested name or alias (HTTP 404).
    pub const UNKNOWN_PROFILE: &'static str = "unknown_profile";
    /// The profile exists but its runtime is missing on this host.
    pub const PROFILE_UNAVAILABLE: &'static str = "profile_unavailable";
    /// A limit is above the profile's maximum (HTTP 400).
    pub const LIMIT_TOO_HIGH: &'static str = "limit_too_high";

    /// The field the message names (`limits.cpu_ms`, `files[1].name`, `stdin, stdin_base64`):
    /// every message starts with it, then `: `.
    pub fn field(&self) -> &str {
        self.message.split_once(": ").map_or("", |(f, _)| f)
    }

    /// An error with code [`RequestError::INVALID_REQUEST`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: Self::INVALID_REQUEST,
            message: message.into(),
        }
    }
}

/// How a file's content or the output is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 text.
    #[default]
    Utf8,
    /// Standard base64 with padding.
    Base64,
}

/// One file of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Relative path under `/box`.
    pub name: String,
    /// Content in `encoding`.
    pub content: String,
    /// `utf8` (default) or `base64`.
    #[serde(default)]
    pub encoding: Encoding,
}

/// Limits as a request gives them: each optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    /// CPU time of all processes of the step, ms.
    pub cpu_ms: Option<u64>,
    /// Elapsed time, ms.
    pub wall_ms: Option<u64>,
    /// cgroup memory limit, MiB.
    pub memory_mb: Option<u64>,
    /// Processes plus threads.
    pub pids: Option<u64>,
    /// Cap on each of stdout and stderr, bytes.
    pub output_bytes: Option<u64>,
    /// Cap on any single file written, bytes.
    pub file_size_bytes: Option<u64>,
    /// Size of each of `/box` and `/tmp`, MiB.
    pub disk_mb: Option<u64>,
    /// Stack size (RLIMIT_STACK), MiB, at most `memory_mb`.
    pub stack_mb: Option<u64>,
}

/// `POST /v1/run` body (API.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Profile name or alias.
    pub profile: String,
    /// Files written into `/box` before the first step.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Text stdin of the run step.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Binary stdin of the run step, base64; exclusive with `stdin`.
    #[serde(default)]
    pub stdin_base64: Option<String>,
    /// Appended to the profile's run command.
    #[serde(default)]
    pub args: Vec<String>,
    /// Overlaid on the profile's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Replaces the profile's run command entirely.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Limits of the run step; missing ones take the profile's defaults.
    #[serde(default)]
    pub limits: LimitsRequest,
    /// Encoding of stdout and stderr in the response.
    #[serde(default)]
    pub output_encoding: Encoding,
    /// Options added to the compile command, each allowed by the profile's
    /// `compiler_options`.
    #[serde(default)]
    pub compiler_options: Vec<String>,
    /// The run step's stderr goes into its stdout pipe (exact order; stderr stays empty).
    #[serde(default)]
    pub stderr_to_stdout: bool,
    /// Tests: compile once, run each in its own container, judge each output.
    #[serde(default)]
    pub tests: Vec<crate::judging::TestSpec>,
    /// Skip the tests not yet started once one fails.
    #[serde(default)]
    pub stop_on_first_failure: bool,
    /// How outputs are judged (default: `lines`).
    #[serde(default)]
    pub checker: Option<crate::judging::CheckerSpec>,
    /// The interactor of an interactive problem.
    #[serde(default)]
    pub interactor: Option<crate::judging::ProgramSpec>,
}

/// A request checked against its profile: decoded, resolved, ready to run.
#[derive(Debug, Clone)]
pub struct ValidatedRequest {
    /// The resolved profile.
    pub profile: Arc<LoadedProfile>,
    /// Decoded files: (relative path, content).
    pub files: Vec<(String, Vec<u8>)>,
    /// Decoded stdin of the run step.
    pub stdin: Vec<u8>,
    /// Run command: `cmd`, or the profile's run command with `args` appended.
    pub run_cmd: Vec<String>,
    /// Profile env overlaid with the request's env.
    pub env: BTreeMap<String, String>,
    /// Limits of the run step: request values, else profile defaults.
    pub limits: Limits,
    /// Encoding of stdout/stderr in the response.
    pub output_encoding: Encoding,
    /// Tests, checker and interactor, when the request has tests.
    pub judging: Option<crate::judging::Judging>,
    /// How the run step's stdout and stderr are kept (the compat APIs change it).
    pub output_mode: warmbox_sandbox::OutputMode,
    /// Compile limits below the profile's (the compat APIs set them); `None`: the
    /// profile's.
    pub compile_limits: Option<Limits>,
    /// Options added at the end of the compile command.
    pub compiler_options: Vec<String>,
    /// Whether `run_cmd` is the request's own `cmd` (else the profile's run command, then
    /// `args`: rebuilt for other limits, so that a test's `memory_mb` reaches the JVM).
    pub cmd_given: bool,
}

impl ValidatedRequest {
    /// The run command under `limits` (the profile's, with their placeholders filled,
    /// and the request's `args`; or the request's `cmd` as given).
    pub fn run_cmd_for(&self, limits: &Limits) -> Vec<String> {
        if self.cmd_given {
            return self.run_cmd.clone();
        }
        let profile = &self.profile.profile;
        let args = self.run_cmd.get(profile.run.len()..).unwrap_or_default();
        let mut cmd = profile.run_command(limits);
        cmd.extend_from_slice(args);
        cmd
    }
}

/// Encodes a step's stdout or stderr for the response: UTF-8 with invalid bytes replaced by
/// U+FFFD, or standard base64 with padding.
pub fn encode_output(bytes: &[u8], enc: Encoding) -> String {
    match enc {
        Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        Encoding::Base64 => BASE64.encode(bytes),
    }
}

/// The name a unit enum value has on the wire (`time_limit`, `compile_error`, `queued`),
/// for messages and metric labels.
pub fn wire_name<T: Serialize + std::fmt::Debug>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{v:?}"),
    }
}

/// Top-level status: a step status, or `compile_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The compile step failed.
    CompileError,
    /// With tests: every test accepted.
    Accepted,
    /// With tests: the first failed test's output was wrong.
    WrongAnswer,
    /// With tests: the first failed test's output had the wrong form.
    PresentationError,
    /// The run step's status; with tests, the first failed test's.
    #[serde(untagged)]
    Step(StepStatus),
}

/// Result of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// How the step ended.
    pub status: StepStatus,
    /// The program's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// That signal's name, e.g. `SIGKILL`.
    pub signal_name: Option<String>,
    /// stdout, in the request's `output_encoding`.
    pub stdout: String,
    /// stderr, in the request's `output_encoding`.
    pub stderr: String,
    /// stdout was cut at `limits.output_bytes`.
    pub stdout_truncated: bool,
    /// stderr was cut at `limits.output_bytes`.
    pub stderr_truncated: bool,
    /// CPU time, wall time and memory the step used.
    pub usage: Usage,
    /// stdout and stderr together in the order they arrived, where asked for (Piston's
    /// `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// On a compile step: whether its result and artifacts came from the compile cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
    /// Why the step ended where that is not obvious from the status (e.g. an exec failure
    /// or an internal error's cause); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST /v1/run` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResponse {
    /// The run's id.
    pub id: uuid::Uuid,
    /// The run's status as a whole.
    pub status: RunStatus,
    /// The compile step, when the profile compiles.
    pub compile: Option<StepResult>,
    /// The run step; absent when the compile failed, and with tests.
    pub run: Option<StepResult>,
    /// With tests: each test's result, in the request's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<Vec<crate::judging::TestResult>>,
    /// With tests: the totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<crate::judging::Summary>,
    /// Why the request failed as a whole, where the steps do not say (a checker that did
    /// not compile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_output_is_lossy_utf8_or_base64() {
        let bytes = b"ok \xff\xfe\n";
        assert_eq!(
            encode_output(bytes, Encoding::Utf8),
            "ok \u{fffd}\u{fffd}\n"
        );
        assert_eq!(encode_output(bytes, Encoding::Base64), "b2sg//4K");
        assert_eq!(encode_output(b"", Encoding::Base64), "");
        assert_eq!(encode_output("é".as_bytes(), Encoding::Utf8), "é");
    }
}
