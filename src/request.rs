//! The run request and response of API.md, and validation of requests against profiles.
//!
//! HELPER-OWNED: `validate` is being written; the types below are the contract.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::profile::{Limits, LoadedProfile, ProfileSet};

/// A request that cannot be run, with the message that tells the client what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// snake_case code, e.g. `invalid_request`, `unknown_profile`, `limit_too_high`.
    pub code: &'static str,
    /// What to fix, naming the field, e.g. `files[1].name: ".." is not allowed`.
    pub message: String,
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
    pub cpu_ms: Option<u64>,
    pub wall_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub pids: Option<u64>,
    pub output_bytes: Option<u64>,
    pub file_size_bytes: Option<u64>,
    pub disk_mb: Option<u64>,
}

/// `POST /v1/run` body (API.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub profile: String,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub stdin: Option<String>,
    #[serde(default)]
    pub stdin_base64: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub limits: LimitsRequest,
    #[serde(default)]
    pub output_encoding: Encoding,
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
}

/// Checks a request: profile exists and is available; file names are relative, normal,
/// unique, NUL-free; base64 decodes; env names are valid; limits are within the profile's
/// maximums (a value above is refused, naming the field and the maximum; zero is refused).
pub fn validate(req: &RunRequest, profiles: &ProfileSet) -> Result<ValidatedRequest, RequestError> {
    let _ = (req, profiles);
    todo!("helper")
}

/// Outcome of one step (API.md's step statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    RuntimeError,
    Signaled,
    TimeLimit,
    WallTimeLimit,
    MemoryLimit,
    OutputLimit,
    FileSizeLimit,
    SecurityViolation,
    InternalError,
}

/// Top-level status: a step status, or `compile_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    CompileError,
    #[serde(untagged)]
    Step(StepStatus),
}

/// Resource accounting of one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_ms: f64,
    pub user_ms: f64,
    pub sys_ms: f64,
    pub wall_ms: f64,
    pub memory_peak_bytes: u64,
    pub oom_killed: bool,
    pub pids_peak: Option<u64>,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

/// Result of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub status: StepStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub signal_name: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub usage: Usage,
    /// Why the step ended where that is not obvious from the status (e.g. an exec failure
    /// or an internal error's cause); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST /v1/run` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResponse {
    pub id: uuid::Uuid,
    pub status: RunStatus,
    pub compile: Option<StepResult>,
    pub run: Option<StepResult>,
}

/// Encodes output bytes for the response: UTF-8 (invalid bytes replaced) or base64.
pub fn encode_output(bytes: &[u8], enc: Encoding) -> String {
    let _ = (bytes, enc);
    todo!("helper")
}
