//! Judge0 CE 1.13.1 (COMPAT.md) on warmbox's engine: languages from the profiles'
//! `judge0_id` and `judge0_name`, submissions kept in the durable job store (a token is a
//! job id), Judge0's units (seconds as strings, KB), status ids, `base64_encoded`, `wait`,
//! `fields`, batches, callbacks (PUT), and errors as 422 `{"field": ["message"]}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize as _;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{version_number, whole};
use crate::queue::store::{now_ms, JobRecord, JobStatus};
use crate::queue::{JobError, Jobs, Submission};
use crate::service::{body_bytes, execute, AppState, ServiceError};
use warmbox_runner::judging::Verdict;
use warmbox_runner::profile::{LoadedProfile, ProfileSet};
use warmbox_runner::request::{RunResponse, RunStatus, StepResult, StepStatus};

/// The API version Judge0's SDKs pick their language tables by.
pub const VERSION: &str = "1.13.1";

/// Most submissions in one batch.
pub const MAX_BATCH: usize = 20;

/// Most runs of one submission (`number_of_runs`).
pub const MAX_RUNS: u64 = 20;

/// Fields of a submission answered when `fields` is not given.
const DEFAULT_FIELDS: &str = "token,time,memory,stdout,stderr,compile_output,message,status";

/// Base64 as Ruby's `decode64` reads it: the padding may be left out.
const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The Judge0 routes.
pub fn routes() -> Router<Arc<AppState>> {
    let mut r = Router::new()
        .route("/version", get(|| async { VERSION }))
        .route("/languages/{id}", get(language))
        .route("/submissions/{token}", get(show).delete(destroy));
    // Rails ignores a trailing slash, and clients send one (`/submissions/?wait=true`).
    for (path, route) in [
        ("/about", get(about)),
        ("/config_info", get(config_info)),
        ("/statuses", get(statuses)),
        ("/languages", get(languages)),
        ("/submissions", axum::routing::post(create)),
        ("/submissions/batch", get(get_batch).post(create_batch)),
    ] {
        r = r
            .route(path, route.clone())
            .route(&format!("{path}/"), route);
    }
    r
}

/// Judge0's statuses: (id, description).
pub const STATUSES: [(u32, &str); 14] = [
    (1, "In Queue"),
    (2, "Processing"),
    (3, "Accepted"),
    (4, "Wrong Answer"),
    (5, "Time Limit Exceeded"),
    (6, "Compilation Error"),
    (7, "Runtime Error (SIGSEGV)"),
    (8, "Runtime Error (SIGXFSZ)"),
    (9, "Runtime Error (SIGFPE)"),
    (10, "Runtime Error (SIGABRT)"),
    (11, "Runtime Error (NZEC)"),
    (12, "Runtime Error (Other)"),
    (13, "Internal Error"),
    (14, "Exec Format Error"),
];

fn status(id: u32) -> Value {
    let description = STATUSES
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("Internal Error", |(_, d)| d);
    json!({"id": id, "description": description})
}

/// An answer of Judge0's: 422 `{"field": ["message"]}`, 404 `{"error": "Not Found"}`, …
#[derive(Debug)]
pub struct Judge0Error {
    status: StatusCode,
    body: Value,
    retry_after: Option<u32>,
}

impl Judge0Error {
    fn field(field: &str, message: impl Into<String>) -> Self {
        Judge0Error {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({ field: [message.into()] }),
            retry_after: None,
        }
    }

    fn not_found() -> Self {
        Judge0Error {
            status: StatusCode::NOT_FOUND,
            body: json!({"error": "Not Found"}),
            retry_after: None,
        }
    }

    fn other(status: StatusCode, message: impl Into<String>) -> Self {
        Judge0Error {
            status,
            body: json!({"error": message.into()}),
            retry_after: None,
        }
    }
}

impl From<ServiceError> for Judge0Error {
    fn from(e: ServiceError) -> Self {
        Judge0Error {
            status: e.status(),
            body: json!({"error": e.message()}),
            retry_after: e.retry_after(),
        }
    }
}

impl From<JobError> for Judge0Error {
    fn from(e: JobError) -> Self {
        match e {
            JobError::NotFound(_) => Judge0Error::not_found(),
            other => ServiceError::from(other).into(),
        }
    }
}

impl IntoResponse for Judge0Error {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// `true`/`false` of a query parameter (Judge0 reads anything but `true` as false).
fn flag(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(truthy_text)
}

/// Query parameters of the submission routes.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Params {
    base64_encoded: Option<String>,
    wait: Option<String>,
    fields: Option<String>,
    tokens: Option<String>,
}

async fn about() -> Json<Value> {
    Json(json!({
        "version": VERSION,
        "homepage": "https://github.com/warmbox/warmbox",
        "source_code": "https://github.com/warmbox/warmbox",
        "maintainer": "warmbox (Judge0 CE-compatible API)",
    }))
}

async fn statuses() -> Json<Value> {
    Json(Value::Array(
        STATUSES.iter().map(|(i, _)| status(*i)).collect(),
    ))
}

/// (id, name, profile) of every Judge0 language here, by id.
fn language_table(profiles: &ProfileSet) -> Vec<(u32, String, Arc<LoadedProfile>)> {
    let mut out = Vec::new();
    for p in profiles.all().iter().filter(|p| p.availability.available) {
        let version = p
            .availability
            .version
            .as_deref()
            .and_then(version_number)
            .unwrap_or_default();
        let template = p.profile.judge0_name.as_deref().unwrap_or("{name}");
        let name = template
            .replace("{version}", &version)
            .replace("{name}", &p.profile.name);
        for id in &p.profile.judge0_id {
            out.push((*id, name.clone(), p.clone()));
        }
    }
    out.sort_by_key(|(id, _, _)| *id);
    out
}

fn find_language(profiles: &ProfileSet, id: u32) -> Option<(String, Arc<LoadedProfile>)> {
    language_table(profiles)
        .into_iter()
        .find(|(i, _, _)| *i == id)
        .map(|(_, n, p)| (n, p))
}

async fn languages(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(Value::Array(
        language_table(&state.profiles)
            .into_iter()
            .map(|(id, name, _)| json!({"id": id, "name": name}))
            .collect(),
    ))
}

async fn language(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Judge0Error> {
    if id == "all" {
        // Judge0's every language, archived ones included (there are none here).
        return Ok(Json(Value::Array(
            language_table(&state.profiles)
                .into_iter()
                .map(|(id, name, _)| json!({"id": id, "name": name, "is_archived": false}))
                .collect(),
        )));
    }
    let id: u32 = id.parse().map_err(|_| Judge0Error::not_found())?;
    let (name, p) = find_language(&state.profiles, id).ok_or_else(Judge0Error::not_found)?;
    let profile = &p.profile;
    Ok(Json(json!({
        "id": id,
        "name": name,
        "is_archived": false,
        "source_file": profile.source_file,
        "compile_cmd": profile.compile.as_ref().map(|c| c.join(" ")),
        "run_cmd": profile.run_command(&profile.limits.defaults).join(" "),
    })))
}

/// Limits every language here accepts: the smallest maximum and default over the profiles.
fn common_limits(
    profiles: &ProfileSet,
) -> (
    warmbox_runner::profile::Limits,
    warmbox_runner::profile::Limits,
) {
    let all: Vec<_> = language_table(profiles)
        .into_iter()
        .map(|(_, _, p)| p.profile.limits)
        .collect();
    let min = |f: &dyn Fn(&warmbox_runner::profile::Limits) -> u64, which: bool| {
        all.iter()
            .map(|l| f(if which { &l.maximums } else { &l.defaults }))
            .min()
            .unwrap_or(0)
    };
    let pick = |which: bool| warmbox_runner::profile::Limits {
        cpu_ms: min(&|l| l.cpu_ms, which),
        wall_ms: min(&|l| l.wall_ms, which),
        memory_mb: min(&|l| l.memory_mb, which),
        pids: min(&|l| l.pids, which),
        output_bytes: min(&|l| l.output_bytes, which),
        file_size_bytes: min(&|l| l.file_size_bytes, which),
        disk_mb: min(&|l| l.disk_mb, which),
        stack_mb: None,
    };
    (pick(false), pick(true))
}

async fn config_info(State(state): State<Arc<AppState>>) -> Json<Value> {
    let (d, m) = common_limits(&state.profiles);
    let secs = |ms: u64| ms as f64 / 1000.0;
    Json(json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": true,
        "allowed_languages_for_compile_options": language_table(&state.profiles)
            .into_iter()
            .filter(|(_, _, p)| !p.profile.compiler_options.is_empty())
            .map(|(_, name, _)| name)
            .collect::<Vec<_>>(),
        "enable_command_line_arguments": true,
        "enable_submission_delete": true,
        "enable_callbacks": true,
        "callbacks_max_tries": 5,
        "callbacks_timeout": 10.0,
        "enable_additional_files": true,
        "max_queue_size": 10000,
        "cpu_time_limit": secs(d.cpu_ms),
        "max_cpu_time_limit": secs(m.cpu_ms),
        "cpu_extra_time": 0.0,
        "max_cpu_extra_time": secs(m.cpu_ms),
        "wall_time_limit": secs(d.wall_ms),
        "max_wall_time_limit": secs(m.wall_ms),
        "memory_limit": d.memory_mb * 1024,
        "max_memory_limit": m.memory_mb * 1024,
        "stack_limit": d.memory_mb * 1024,
        "max_stack_limit": m.memory_mb * 1024,
        "max_processes_and_or_threads": d.pids,
        "max_max_processes_and_or_threads": m.pids,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": d.file_size_bytes / 1024,
        "max_max_file_size": m.file_size_bytes / 1024,
        "number_of_runs": 1,
        "max_number_of_runs": MAX_RUNS,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": MAX_EXTRACT_BYTES.min(d.disk_mb << 20) / 1024,
        "enable_batched_submissions": true,
        "max_submission_batch_size": MAX_BATCH,
        "submission_cache_duration": 1.0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    }))
}

/// Base64 as Judge0 takes it: line breaks and other whitespace anywhere are ignored.
fn strip_whitespace(s: &str) -> String {
    s.chars().filter(|c| !c.is_ascii_whitespace()).collect()
}

/// Most bytes an `additional_files` zip extracts to (Judge0's `max_extract_size`).
pub const MAX_EXTRACT_BYTES: u64 = 10 << 20;

/// Most entries of an `additional_files` zip.
pub const MAX_ZIP_ENTRIES: usize = 1000;

/// Why an `additional_files` zip was refused; the message follows the field's name.
#[derive(Debug, thiserror::Error)]
pub enum UnzipError {
    /// Not a zip archive.
    #[error("is not a zip archive: {0}")]
    NotZip(zip::result::ZipError),
    /// More than [`MAX_ZIP_ENTRIES`] entries.
    #[error("has {0} entries; at most {MAX_ZIP_ENTRIES}")]
    TooManyEntries(usize),
    /// An entry's header cannot be read.
    #[error("entry {index} cannot be read: {error}")]
    Unreadable {
        /// The entry's index.
        index: usize,
        /// Why.
        error: zip::result::ZipError,
    },
    /// An entry is a symbolic link.
    #[error("entry {0:?} is a link; only regular files are taken")]
    Link(String),
    /// An entry's path is absolute or has `.` or `..` in it.
    #[error("entry {0:?} must be a relative path inside the archive's top")]
    Outside(String),
    /// An entry's content cannot be extracted.
    #[error("entry {name:?} cannot be extracted: {error}")]
    Unextractable {
        /// The entry's path.
        name: String,
        /// Why.
        error: std::io::Error,
    },
    /// The entries extract to more than the budget.
    #[error("extracts to more than {0} bytes (max_extract_size)")]
    TooLarge(u64),
}

/// The regular files of a zip: (path, content), at most `budget` bytes in all once
/// extracted (read with that bound, so a zip bomb stops at it), at most
/// [`MAX_ZIP_ENTRIES`]; directories are implied, links and absolute or `..` paths refused.
pub fn unzip(zip: &[u8], budget: u64) -> Result<Vec<(String, Vec<u8>)>, UnzipError> {
    use std::io::Read;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(UnzipError::NotZip)?;
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(UnzipError::TooManyEntries(archive.len()));
    }
    let mut out = Vec::new();
    let mut left = budget;
    for index in 0..archive.len() {
        let mut f = archive
            .by_index(index)
            .map_err(|error| UnzipError::Unreadable { index, error })?;
        let name = f.name().to_string();
        if f.is_dir() {
            continue;
        }
        if f.is_symlink() {
            return Err(UnzipError::Link(name));
        }
        if name.starts_with('/') || name.split('/').any(|c| c == ".." || c == ".") {
            return Err(UnzipError::Outside(name));
        }
        let mut content = Vec::new();
        if let Err(error) = (&mut f).take(left + 1).read_to_end(&mut content) {
            return Err(UnzipError::Unextractable { name, error });
        }
        // Read with a bound of `left + 1` bytes: `content` is at most that long.
        let read = u64::try_from(content.len()).unwrap_or(u64::MAX);
        if read > left {
            return Err(UnzipError::TooLarge(budget));
        }
        left -= read;
        out.push((name, content));
    }
    Ok(out)
}

/// A submission checked and turned into a warmbox job, the Judge0 fields kept beside its
/// request (in [`Submission::meta`]).
fn translate(body: &Value, base64: bool, profiles: &ProfileSet) -> Result<Submission, Judge0Error> {
    let Some(obj) = body.as_object() else {
        return Err(Judge0Error::field("submission", "must be a JSON object"));
    };
    let language_id = match obj.get("language_id") {
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| Judge0Error::field("language_id", "is not a number"))?,
        None => return Err(Judge0Error::field("language_id", "can't be blank")),
    };
    let found = u32::try_from(language_id)
        .ok()
        .and_then(|id| find_language(profiles, id));
    let (_, loaded) = found.ok_or_else(|| {
        Judge0Error::field(
            "language_id",
            format!("language with id {language_id} doesn't exist"),
        )
    })?;
    let profile = &loaded.profile;
    let text = |field: &str| -> Result<Option<Vec<u8>>, Judge0Error> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if base64 => LENIENT
                .decode(strip_whitespace(s))
                .map(Some)
                .map_err(|e| Judge0Error::field(field, format!("is not valid base64: {e}"))),
            Some(Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
            Some(_) => Err(Judge0Error::field(field, "must be a string")),
        }
    };
    let source = text("source_code")?.unwrap_or_default();
    let additional = match obj.get("additional_files") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => {
            let zip = LENIENT.decode(strip_whitespace(s)).map_err(|e| {
                Judge0Error::field("additional_files", format!("is not valid base64: {e}"))
            })?;
            let budget = MAX_EXTRACT_BYTES.min(profile.limits.defaults.disk_mb << 20);
            unzip(&zip, budget)
                .map_err(|e| Judge0Error::field("additional_files", e.to_string()))?
        }
        Some(_) => return Err(Judge0Error::field("additional_files", "must be a string")),
    };
    // A multi-file program is its files: a `run` script (and maybe `compile`).
    let multi = source.is_empty() && profile.source_file == "run";
    if multi && !additional.iter().any(|(n, _)| n == "run") {
        return Err(Judge0Error::field(
            "additional_files",
            "a multi-file program needs a script named run at the top of the zip",
        ));
    }
    if source.is_empty() && !multi {
        return Err(Judge0Error::field("source_code", "can't be blank"));
    }
    let stdin = text("stdin")?;
    let expected = text("expected_output")?;
    for (field, why) in [
        ("enable_network", "enabling network is not allowed"),
        (
            "enable_per_process_and_thread_time_limit",
            "setting per process and thread time limit is not allowed",
        ),
        (
            "enable_per_process_and_thread_memory_limit",
            "setting per process and thread memory limit is not allowed",
        ),
    ] {
        if obj.get(field).is_some_and(truthy) {
            return Err(Judge0Error::field(field, why));
        }
    }
    let compiler_options = match obj.get("compiler_options") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => shell_words::split(s)
            .map_err(|e| Judge0Error::field("compiler_options", format!("cannot be split: {e}")))?,
        Some(_) => return Err(Judge0Error::field("compiler_options", "must be a string")),
    };
    let max = profile.limits.maximums;
    let number_in = |field: &str, min: f64, max: f64| -> Result<Option<f64>, Judge0Error> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let n = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| Judge0Error::field(field, "is not a number"))?;
                if !n.is_finite() {
                    Err(Judge0Error::field(field, "is not a number"))
                } else if n < min {
                    Err(Judge0Error::field(
                        field,
                        format!("must be greater than or equal to {min}"),
                    ))
                } else if n > max {
                    Err(Judge0Error::field(
                        field,
                        format!("must be less than or equal to {max}"),
                    ))
                } else {
                    Ok(Some(n))
                }
            }
        }
    };
    let number = |field: &str, max: f64| number_in(field, 0.0, max);
    let cpu = number("cpu_time_limit", max.cpu_ms as f64 / 1000.0)?;
    let extra = number("cpu_extra_time", max.cpu_ms as f64 / 1000.0)?;
    let wall = number("wall_time_limit", max.wall_ms as f64 / 1000.0)?;
    // Judge0's own floor for the memory limit (KB).
    let memory_kb = number_in("memory_limit", 2048.0, (max.memory_mb * 1024) as f64)?;
    let stack_kb = number("stack_limit", (max.memory_mb * 1024) as f64)?;
    let pids = number("max_processes_and_or_threads", max.pids as f64)?;
    let file_kb = number("max_file_size", (max.file_size_bytes / 1024) as f64)?;
    let runs = number("number_of_runs", MAX_RUNS as f64)?.map_or(1, |n| whole(n).max(1));
    let redirect = obj.get("redirect_stderr_to_stdout").is_some_and(truthy);
    let args = match obj.get("command_line_arguments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => shell_words::split(s).map_err(|e| {
            Judge0Error::field("command_line_arguments", format!("cannot be split: {e}"))
        })?,
        Some(_) => {
            return Err(Judge0Error::field(
                "command_line_arguments",
                "must be a string",
            ))
        }
    };
    let callback_url = match obj.get("callback_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Judge0Error::field("callback_url", "must be a string")),
    };

    let ms = |s: f64| whole((s * 1000.0).ceil()).max(1);
    // The kill comes at the limit plus the extra time; over the limit is still a TLE.
    let cpu_kill = cpu.map(|c| ms(c + extra.unwrap_or(0.0)).min(max.cpu_ms));
    let mut limits = json!({});
    if let Some(c) = cpu_kill {
        limits["cpu_ms"] = json!(c);
    }
    if let Some(w) = wall {
        limits["wall_ms"] = json!(ms(w));
    }
    if let Some(m) = memory_kb {
        limits["memory_mb"] = json!(whole(m).div_ceil(1024).max(1));
    }
    if let Some(p) = pids {
        limits["pids"] = json!(whole(p).max(1));
    }
    if let Some(s) = stack_kb {
        limits["stack_mb"] = json!(whole(s).div_ceil(1024).max(1));
    }
    if let Some(f) = file_kb {
        limits["file_size_bytes"] = json!((whole(f) * 1024).max(1));
    }
    // Judge0 writes stdout and stderr to files under max_file_size: that is their bound
    // too (a program that prints a megabyte is accepted there), up to the profile's
    // output maximum.
    let output_bytes = file_kb
        .map_or(profile.limits.defaults.file_size_bytes, |f| whole(f) * 1024)
        .clamp(1, max.output_bytes);
    limits["output_bytes"] = json!(output_bytes);
    let b64 = |b: &[u8]| BASE64.encode(b);
    let mut files: Vec<Value> = Vec::new();
    if !source.is_empty() {
        files.push(
            json!({"name": profile.source_file, "content": b64(&source), "encoding": "base64"}),
        );
    }
    for (name, content) in &additional {
        files.push(json!({"name": name, "content": b64(content), "encoding": "base64"}));
    }
    let mut request = json!({
        "profile": profile.name,
        "files": files,
        "args": args,
        "limits": limits,
        "output_encoding": "base64",
        "stderr_to_stdout": redirect,
        "compiler_options": compiler_options,
    });
    let stdin_b64 = b64(stdin.as_deref().unwrap_or_default());
    if expected.is_some() || runs > 1 {
        let mut test = json!({"stdin_base64": stdin_b64});
        if let Some(e) = &expected {
            test["expected_stdout_base64"] = json!(b64(e));
        }
        request["tests"] = (0..runs).map(|_| test.clone()).collect();
        if expected.is_none() {
            request["checker"] = json!({"type": "none"});
        }
    } else {
        request["stdin_base64"] = json!(stdin_b64);
    }
    // What the answers echo: the inputs as given (base64 kept, to echo either way).
    let meta = json!({"judge0": {
        "language_id": language_id,
        "source_code": b64(&source),
        "stdin": stdin.as_deref().map(b64),
        "expected_output": expected.as_deref().map(b64),
        "cpu_time_limit": cpu,
        "cpu_extra_time": extra,
        "wall_time_limit": wall,
        "memory_limit": memory_kb,
        "stack_limit": stack_kb,
        "max_processes_and_or_threads": pids,
        "max_file_size": file_kb,
        "number_of_runs": runs,
        "redirect_stderr_to_stdout": redirect,
        "command_line_arguments": obj.get("command_line_arguments"),
        "compiler_options": obj.get("compiler_options"),
        "additional_files": obj.get("additional_files"),
        "callback_url": callback_url,
        "base64_encoded": base64,
    }});
    Ok(Submission {
        request,
        callback_url,
        meta: Some(meta),
    })
}

/// A job in Judge0's terms.
struct Outcome {
    /// Status id.
    id: u32,
    /// Judge0's `message`.
    message: Option<String>,
    /// The run the answer's output and numbers come from.
    step: Option<StepResult>,
    /// `time`, `wall_time`, `memory` averaged over the runs, where there were several.
    averages: Map<String, Value>,
}

/// Builds an [`Outcome`].
fn out(
    id: u32,
    message: Option<String>,
    step: Option<StepResult>,
    averages: Map<String, Value>,
) -> Outcome {
    Outcome {
        id,
        message,
        step,
        averages,
    }
}

/// The outcome of a job in Judge0's terms; `None` for a job no Judge0 client submitted.
fn outcome(record: &JobRecord) -> Option<Outcome> {
    let judge0 = &record.meta.as_ref()?["judge0"];
    let mut numbers = Map::new();
    match record.status {
        JobStatus::Queued => return Some(out(1, None, None, numbers)),
        JobStatus::Running => return Some(out(2, None, None, numbers)),
        JobStatus::Cancelled => {
            return Some(out(
                13,
                Some("the submission was cancelled".into()),
                None,
                numbers,
            ))
        }
        JobStatus::Done => {}
    }
    let result = record.result.as_ref()?;
    if let Some(e) = result.get("error") {
        let m = e["message"]
            .as_str()
            .unwrap_or("internal error")
            .to_string();
        return Some(out(13, Some(m), None, numbers));
    }
    let resp = RunResponse::deserialize(result).ok()?;
    if resp.status == RunStatus::CompileError {
        return Some(out(6, None, None, numbers));
    }
    let (step, verdict) = match (&resp.tests, &resp.run) {
        (Some(tests), _) => {
            let runs: Vec<&StepResult> = tests.iter().filter_map(|t| t.run.as_ref()).collect();
            let n = runs.len().max(1) as f64;
            numbers.insert(
                "time".into(),
                json!(format!(
                    "{:.3}",
                    runs.iter().map(|r| r.usage.cpu_ms).sum::<f64>() / n / 1e3
                )),
            );
            numbers.insert(
                "wall_time".into(),
                json!(format!(
                    "{:.3}",
                    runs.iter().map(|r| r.usage.wall_ms).sum::<f64>() / n / 1e3
                )),
            );
            numbers.insert(
                "memory".into(),
                json!(whole(
                    (runs.iter().map(|r| r.usage.memory_peak_bytes).sum::<u64>() as f64
                        / n
                        / 1024.0)
                        .round()
                )),
            );
            let first_bad = tests
                .iter()
                .find(|t| t.verdict != Verdict::Accepted)
                .or(tests.first());
            (
                first_bad.and_then(|t| t.run.clone()),
                first_bad.map_or(Verdict::Accepted, |t| t.verdict),
            )
        }
        (None, Some(run)) => (Some(run.clone()), Verdict::Step(run.status)),
        (None, None) => return Some(out(13, resp.message, None, numbers)),
    };
    let Some(step) = step else {
        return Some(out(13, Some("no run".into()), None, numbers));
    };
    let cpu_limit = judge0["cpu_time_limit"].as_f64();
    let over_cpu = cpu_limit.is_some_and(|l| step.usage.cpu_ms > l * 1000.0);
    let signal = step.signal_name.as_deref();
    let (id, message) = match (verdict, step.status) {
        // Past cpu_time_limit (within the extra time the kill waited for) is a TLE,
        // whatever the run did after.
        _ if over_cpu => (5, None),
        (Verdict::Accepted, _) | (Verdict::Step(StepStatus::Ok), _) => (3, None),
        (Verdict::WrongAnswer | Verdict::PresentationError, _) => (4, None),
        (_, StepStatus::TimeLimit | StepStatus::WallTimeLimit) => (5, None),
        (_, StepStatus::FileSizeLimit) => (8, Some("File size limit exceeded".to_string())),
        (_, StepStatus::Signaled) => match signal {
            Some("SIGSEGV") => (7, None),
            Some("SIGXFSZ") => (8, None),
            Some("SIGFPE") => (9, None),
            Some("SIGABRT") => (10, None),
            _ => (12, step.message.clone()),
        },
        (_, StepStatus::RuntimeError) => match &step.message {
            Some(m) if m.contains("Exec format error") => (14, Some(m.clone())),
            _ => (11, step.message.clone()),
        },
        (_, StepStatus::MemoryLimit) => (12, Some("Memory limit exceeded".to_string())),
        // Past max_file_size on stdout or stderr: where Judge0 gets SIGXFSZ.
        (_, StepStatus::OutputLimit) => (8, Some("Output limit exceeded".to_string())),
        (_, StepStatus::SecurityViolation) => (12, step.message.clone()),
        _ => (13, step.message.clone()),
    };
    Some(out(id, message, Some(step), numbers))
}

/// A boolean as Rails reads one: `true`, `1`, and the strings `"true"`, `"t"`, `"1"`,
/// `"on"`, `"yes"` (any case) are true.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => truthy_text(s),
        _ => false,
    }
}

/// A boolean given as text (a JSON string, a query parameter), as Rails reads one.
fn truthy_text(s: &str) -> bool {
    ["true", "t", "1", "on", "yes", "y"]
        .iter()
        .any(|t| s.trim().eq_ignore_ascii_case(t))
}

fn timestamp(ms: Option<u64>) -> Value {
    ms.and_then(|ms| i64::try_from(ms).ok())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or(Value::Null, |t| {
            json!(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        })
}

/// A submission in Judge0's shape with every field, text or base64 as asked.
fn full_view(record: &JobRecord, base64: bool, profiles: &ProfileSet) -> Map<String, Value> {
    let empty = json!({});
    let j = record.meta.as_ref().map_or(&empty, |m| &m["judge0"]);
    // Stored base64: answered as is, or decoded (invalid UTF-8 replaced).
    let field = |b64: &Value| -> Value {
        match b64.as_str() {
            None => Value::Null,
            Some(s) if base64 => json!(s),
            Some(s) => match BASE64.decode(s) {
                Ok(b) => json!(String::from_utf8_lossy(&b)),
                Err(_) => Value::Null,
            },
        }
    };
    let text = |t: Option<String>| -> Value {
        match t {
            None => Value::Null,
            Some(s) if base64 => json!(BASE64.encode(s.as_bytes())),
            Some(s) => json!(s),
        }
    };
    let mut m = Map::new();
    m.insert("token".into(), json!(record.id));
    for k in ["source_code", "stdin", "expected_output"] {
        m.insert(k.into(), field(&j[k]));
    }
    for k in [
        "language_id",
        "cpu_time_limit",
        "cpu_extra_time",
        "wall_time_limit",
        "memory_limit",
        "stack_limit",
        "max_processes_and_or_threads",
        "max_file_size",
        "compiler_options",
        "number_of_runs",
        "redirect_stderr_to_stdout",
        "command_line_arguments",
        "callback_url",
    ] {
        m.insert(k.into(), j[k].clone());
    }
    m.insert("enable_network".into(), json!(false));
    m.insert("additional_files".into(), j["additional_files"].clone());
    let language = j["language_id"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .and_then(|id| find_language(profiles, id).map(|(n, _)| json!({"id": id, "name": n})));
    m.insert("language".into(), language.unwrap_or(Value::Null));
    m.insert("created_at".into(), timestamp(Some(record.created_ms)));
    m.insert("finished_at".into(), timestamp(record.finished_ms));
    let Outcome {
        id,
        message,
        step,
        averages,
    } = outcome(record)
        .unwrap_or_else(|| out(13, Some("not a Judge0 submission".into()), None, Map::new()));
    m.insert("status_id".into(), json!(id));
    m.insert("status".into(), status(id));
    m.insert("message".into(), text(message));
    // The compile step's stdout and stderr together (base64 in the stored result).
    let compile_output = record
        .result
        .as_ref()
        .and_then(|r| r.get("compile"))
        .map(|c| {
            let out = ["stdout", "stderr"]
                .iter()
                .filter_map(|k| c[*k].as_str())
                .map(|s| BASE64.decode(s).unwrap_or_default())
                .collect::<Vec<_>>()
                .concat();
            json!(BASE64.encode(out))
        })
        .filter(|c| c != "");
    m.insert(
        "compile_output".into(),
        compile_output.map_or(Value::Null, |c| field(&c)),
    );
    match step {
        Some(s) => {
            let nonempty = |v: &str| (!v.is_empty()).then(|| json!(v));
            m.insert(
                "stdout".into(),
                nonempty(&s.stdout).map_or(Value::Null, |v| field(&v)),
            );
            m.insert(
                "stderr".into(),
                nonempty(&s.stderr).map_or(Value::Null, |v| field(&v)),
            );
            m.insert("exit_code".into(), json!(s.exit_code));
            m.insert("exit_signal".into(), json!(s.signal));
            m.insert("time".into(), json!(format!("{:.3}", s.usage.cpu_ms / 1e3)));
            m.insert(
                "wall_time".into(),
                json!(format!("{:.3}", s.usage.wall_ms / 1e3)),
            );
            m.insert(
                "memory".into(),
                json!(whole((s.usage.memory_peak_bytes as f64 / 1024.0).round())),
            );
        }
        None => {
            for k in [
                "stdout",
                "stderr",
                "exit_code",
                "exit_signal",
                "time",
                "wall_time",
                "memory",
            ] {
                m.insert(k.into(), Value::Null);
            }
        }
    }
    m.extend(averages);
    m
}

/// Every field a submission has in Judge0 (`fields=` may name these only).
const FIELDS: [&str; 36] = [
    "token",
    "source_code",
    "language_id",
    "compiler_options",
    "command_line_arguments",
    "stdin",
    "expected_output",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "redirect_stderr_to_stdout",
    "enable_network",
    "number_of_runs",
    "additional_files",
    "callback_url",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "exit_code",
    "exit_signal",
    "status",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "wall_time",
    "memory",
    "language",
    "post_execution_filesystem",
];

/// Judge0's answer to a `fields` list that names a field it does not have: 400.
fn check_fields(fields: Option<&str>) -> Result<(), Judge0Error> {
    let Some(fields) = fields.filter(|f| f.trim() != "*") else {
        return Ok(());
    };
    let unknown: Vec<&str> = fields
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty() && !FIELDS.contains(f))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Judge0Error::other(
        StatusCode::BAD_REQUEST,
        format!("invalid fields: [{}]", unknown.join(", ")),
    ))
}

/// The fields asked for (`*`: all; default: Judge0's default list).
fn select(full: Map<String, Value>, fields: Option<&str>) -> Value {
    let fields = fields.unwrap_or(DEFAULT_FIELDS);
    if fields.trim() == "*" {
        return Value::Object(full);
    }
    let mut out = Map::new();
    for f in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if let Some(v) = full.get(f) {
            out.insert(f.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

/// The body of a Judge0 job's callback (a PUT of the submission, as it was submitted:
/// base64 or text), or `None` for another kind of job.
pub fn callback(record: &JobRecord, profiles: &ProfileSet) -> Option<Value> {
    let j = &record.meta.as_ref()?["judge0"];
    let base64 = j["base64_encoded"].as_bool().unwrap_or(false);
    Some(select(full_view(record, base64, profiles), None))
}

fn jobs(state: &AppState) -> Result<&Arc<Jobs>, Judge0Error> {
    state
        .jobs
        .as_ref()
        .ok_or_else(|| Judge0Error::other(StatusCode::NOT_FOUND, "submissions are not enabled"))
}

fn parse_body(
    state: &AppState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Value, Judge0Error> {
    parse_body_as(state, body, false)
}

/// The body as JSON, or (`form`: a form-encoded body, which Rails takes as well) as an
/// object of its fields' strings, which `translate` reads as it reads JSON strings.
fn parse_body_as(
    state: &AppState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    form: bool,
) -> Result<Value, Judge0Error> {
    let body = body_bytes(state, body)?;
    // `curl -d '{…}'` labels JSON as a form: a body that is a JSON object is JSON.
    if form && body.trim_ascii_start().first() != Some(&b'{') {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|e| {
            Judge0Error::other(
                StatusCode::BAD_REQUEST,
                format!("request body is not a form: {e}"),
            )
        })?;
        return Ok(Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        Judge0Error::other(
            StatusCode::BAD_REQUEST,
            format!("request body is not JSON: {e}"),
        )
    })
}

async fn create(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Judge0Error> {
    let base64 = flag(&q.base64_encoded);
    if flag(&q.wait) {
        check_fields(q.fields.as_deref())?;
    }
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let v = parse_body_as(&state, body, form)?;
    let sub = translate(&v, base64, &state.profiles)?;
    let jobs = jobs(&state)?;
    if !flag(&q.wait) {
        let records = jobs.submit(vec![sub], false).await.map_err(request_error)?;
        let token = records.first().map(|r| r.id);
        return Ok((StatusCode::CREATED, Json(json!({"token": token}))).into_response());
    }
    // wait=true: run now, answer when the run ends, and keep it for later reads.
    if let Some(url) = &sub.callback_url {
        jobs.check_callback_url(url)
            .map_err(|e| request_error(JobError::Request(e)))?;
    }
    let req: warmbox_runner::request::RunRequest = serde_json::from_value(sub.request.clone())
        .map_err(|e| Judge0Error::other(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let valid = warmbox_runner::request::validate(&req, &state.profiles)
        .map_err(|e| request_error(JobError::Request(e)))?;
    let started = now_ms();
    let resp = execute(&state, &valid).await?;
    let result = serde_json::to_value(&resp).ok();
    let record = jobs.insert_finished(sub, started, result).await?;
    let view = select(
        full_view(&record, base64, &state.profiles),
        q.fields.as_deref(),
    );
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// A request the engine refused after translation: Judge0's 422 on the field it names.
fn request_error(e: JobError) -> Judge0Error {
    match e {
        JobError::Request(r) => {
            // warmbox's field names back to the Judge0 fields they came from.
            let field = match r.field().split(['.', '[', ',']).collect::<Vec<_>>()[..] {
                // Files that do not fit the memory (tmpfs is memory) are the memory
                // limit's to raise.
                ["files", ..] if r.message.contains("limits.memory_mb") => "memory_limit",
                ["files", ..] => "source_code",
                ["limits", "cpu_ms", ..] => "cpu_time_limit",
                ["limits", "wall_ms", ..] => "wall_time_limit",
                ["limits", "memory_mb", ..] => "memory_limit",
                ["limits", "stack_mb", ..] => "stack_limit",
                ["limits", "pids", ..] => "max_processes_and_or_threads",
                ["limits", "file_size_bytes", ..] => "max_file_size",
                ["limits", other, ..] | [other, ..] if !other.is_empty() => other,
                _ => "submission",
            }
            .to_string();
            // Judge0 names the field once, as the key; a warmbox name it was mapped from
            // stays in the message, to explain it.
            let message = match r.message.strip_prefix(&format!("{field}: ")) {
                Some(rest) => rest.to_string(),
                None if field == "memory_limit" && r.field() == "files" => format!(
                    "is too small for the submission's files, which are kept in memory with \
                     4 MiB left for the program ({})",
                    r.message
                ),
                None => r.message,
            };
            Judge0Error::field(&field, message)
        }
        other => other.into(),
    }
}

async fn create_batch(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Judge0Error> {
    let base64 = flag(&q.base64_encoded);
    let v = parse_body(&state, body)?;
    // Judge0's own answers for a batch that is empty or too big: 400 with an `error`.
    let list = match v.get("submissions").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list,
        _ => {
            return Err(Judge0Error::other(
                StatusCode::BAD_REQUEST,
                "there should be at least one submission in a batch",
            ))
        }
    };
    if list.len() > MAX_BATCH {
        return Err(Judge0Error::other(
            StatusCode::BAD_REQUEST,
            format!("number of submissions in a batch should be less than or equal to {MAX_BATCH}"),
        ));
    }
    let jobs = jobs(&state)?;
    // Each submission validated on its own, as Judge0 does: a bad one is answered with
    // its errors in its place. The good ones are queued together, in one transaction of
    // the store (all of them, or none with the store's error in each place).
    let mut out = Vec::with_capacity(list.len());
    let mut good = Vec::new();
    for s in list {
        match translate(s, base64, &state.profiles) {
            Ok(sub) => match jobs.check(&sub) {
                Ok(()) => {
                    good.push(sub);
                    out.push(None);
                }
                Err(e) => out.push(Some(request_error(JobError::Request(e)).body)),
            },
            Err(e) => out.push(Some(e.body)),
        }
    }
    let queued: Vec<Value> = if good.is_empty() {
        Vec::new()
    } else {
        let n = good.len();
        match jobs.submit_checked(good).await {
            Ok(records) => records.iter().map(|r| json!({"token": r.id})).collect(),
            Err(e) => vec![request_error(e).body; n],
        }
    };
    let mut queued = queued.into_iter();
    let out: Vec<Value> = out
        .into_iter()
        .map(|o| o.unwrap_or_else(|| queued.next().unwrap_or(Value::Null)))
        .collect();
    // 201 when at least one was queued; 422 when none could be, as Judge0 answers.
    let code = if out.iter().any(|o| o.get("token").is_some()) {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((code, Json(Value::Array(out))).into_response())
}

fn token(s: &str) -> Result<Uuid, Judge0Error> {
    Uuid::parse_str(s).map_err(|_| Judge0Error::not_found())
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(t): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, Judge0Error> {
    check_fields(q.fields.as_deref())?;
    let record = jobs(&state)?.get(token(&t)?).await?;
    if record.meta.is_none() {
        return Err(Judge0Error::not_found());
    }
    let full = full_view(&record, flag(&q.base64_encoded), &state.profiles);
    Ok(Json(select(full, q.fields.as_deref())))
}

async fn destroy(
    State(state): State<Arc<AppState>>,
    Path(t): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, Judge0Error> {
    check_fields(q.fields.as_deref())?;
    let jobs = jobs(&state)?;
    let id = token(&t)?;
    let record = jobs.get(id).await?;
    if record.meta.is_none() {
        return Err(Judge0Error::not_found());
    }
    let record = jobs.remove_finished(id).await.map_err(|e| match e {
        JobError::Finished(_) => {
            let sid = outcome(&record).map_or(1, |o| o.id);
            let description = status(sid)["description"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Judge0Error::other(
                StatusCode::BAD_REQUEST,
                format!("submission cannot be deleted because its status is {sid} ({description})"),
            )
        }
        other => other.into(),
    })?;
    // Judge0: "base64_encoded is implicitly set to true and cannot be changed" here.
    let full = full_view(&record, true, &state.profiles);
    Ok(Json(select(full, q.fields.as_deref())))
}

async fn get_batch(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, Judge0Error> {
    check_fields(q.fields.as_deref())?;
    let Some(tokens) = q.tokens.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Err(Judge0Error::field("tokens", "can't be blank"));
    };
    let jobs = jobs(&state)?;
    let tokens: Vec<&str> = tokens.split(',').map(str::trim).collect();
    if tokens.len() > MAX_BATCH {
        return Err(Judge0Error::other(
            StatusCode::BAD_REQUEST,
            format!("number of submissions in a batch should be less than or equal to {MAX_BATCH}"),
        ));
    }
    let mut out = Vec::new();
    for t in tokens {
        let record = match Uuid::parse_str(t) {
            Ok(id) => jobs.get(id).await.ok().filter(|r| r.meta.is_some()),
            Err(_) => None,
        };
        out.push(record.map_or(Value::Null, |r| {
            select(
                full_view(&r, flag(&q.base64_encoded), &state.profiles),
                q.fields.as_deref(),
            )
        }));
    }
    Ok(Json(json!({"submissions": out})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warmbox_runner::profile::{Availability, Profile};
    use warmbox_runner::request::RequestError;

    /// Python (Judge0 id 71), available as Python 3.11.2, with the limits of the shipped
    /// profile; made in code, so that nothing on the host is probed.
    fn profiles() -> ProfileSet {
        let profile = toml::from_str::<Profile>(
            r#"
            name = "python3"
            source_file = "main.py"
            run = ["/usr/bin/python3", "main.py"]
            binds = ["/usr"]
            requires = ["/usr/bin/python3"]
            seccomp = "default"
            judge0_id = [71]
            judge0_name = "Python ({version})"
            [limits.defaults]
            cpu_ms = 2000
            wall_ms = 5000
            memory_mb = 256
            pids = 64
            output_bytes = 65536
            file_size_bytes = 1048576
            disk_mb = 64
            [limits.maximums]
            cpu_ms = 20000
            wall_ms = 60000
            memory_mb = 1024
            pids = 256
            output_bytes = 16777216
            file_size_bytes = 67108864
            disk_mb = 512
            "#,
        )
        .unwrap();
        ProfileSet::from_profiles(vec![LoadedProfile {
            profile,
            availability: Availability {
                available: true,
                reason: None,
                version: Some("Python 3.11.2".into()),
            },
        }])
    }

    fn b64(s: &str) -> String {
        BASE64.encode(s)
    }

    /// The 422 body of a submission `translate` refuses.
    fn refused(body: Value, base64: bool) -> Value {
        match translate(&body, base64, &profiles()) {
            Ok(s) => panic!("accepted: {:?}", s.request),
            Err(e) => {
                assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", e.body);
                e.body
            }
        }
    }

    #[test]
    fn statuses_are_judge0s_ids_and_descriptions() {
        let ids: Vec<u32> = STATUSES.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (1..=14).collect::<Vec<_>>());
        assert_eq!(status(3), json!({"id": 3, "description": "Accepted"}));
        assert_eq!(
            status(7),
            json!({"id": 7, "description": "Runtime Error (SIGSEGV)"})
        );
        assert_eq!(
            status(14),
            json!({"id": 14, "description": "Exec Format Error"})
        );
        // An id Judge0 does not have is described as its internal error.
        assert_eq!(
            status(99),
            json!({"id": 99, "description": "Internal Error"})
        );
    }

    #[test]
    fn booleans_are_read_as_rails_reads_them() {
        for v in [
            json!(true),
            json!(1),
            json!(0.5),
            json!("t"),
            json!("YES"),
            json!(" on "),
        ] {
            assert!(truthy(&v), "{v}");
        }
        for v in [
            json!(false),
            json!(0),
            json!("false"),
            json!("2"),
            json!(""),
            Value::Null,
        ] {
            assert!(!truthy(&v), "{v}");
        }
        assert!(flag(&Some("true".into())));
        assert!(!flag(&Some("false".into())));
        assert!(!flag(&None));
    }

    #[test]
    fn base64_is_taken_without_padding_and_across_lines() {
        assert_eq!(LENIENT.decode("aGk").unwrap(), b"hi");
        assert_eq!(LENIENT.decode("aGk=").unwrap(), b"hi");
        assert_eq!(strip_whitespace("aGVs\nbG8=\r\n \t"), "aGVsbG8=");
        assert_eq!(
            LENIENT.decode(strip_whitespace("aGVs\nbG8=\r\n")).unwrap(),
            b"hello"
        );
    }

    #[test]
    fn a_text_submission_becomes_a_run_request_in_warmbox_units() {
        let sub = translate(
            &json!({
                "language_id": "71",
                "source_code": "print(input())",
                "stdin": "x\n",
                "cpu_time_limit": 1.5,
                "cpu_extra_time": "0.5",
                "wall_time_limit": 3,
                "memory_limit": 131_072,
                "stack_limit": 65_000,
                "max_processes_and_or_threads": 10,
                "max_file_size": 2048,
                "command_line_arguments": "a 'b c'",
                "compiler_options": "",
                "redirect_stderr_to_stdout": "true",
                "callback_url": "https://judge.example/cb",
            }),
            false,
            &profiles(),
        )
        .unwrap();
        assert_eq!(
            sub.request,
            json!({
                "profile": "python3",
                "files": [{"name": "main.py", "content": b64("print(input())"), "encoding": "base64"}],
                "args": ["a", "b c"],
                // The kill at the limit plus the extra time; KB up to whole MiB.
                "limits": {
                    "cpu_ms": 2000,
                    "wall_ms": 3000,
                    "memory_mb": 128,
                    "stack_mb": 64,
                    "pids": 10,
                    "file_size_bytes": 2_097_152,
                    "output_bytes": 2_097_152,
                },
                "output_encoding": "base64",
                "stderr_to_stdout": true,
                "compiler_options": [],
                "stdin_base64": b64("x\n"),
            })
        );
        assert_eq!(
            sub.callback_url.as_deref(),
            Some("https://judge.example/cb")
        );
        assert_eq!(
            sub.meta,
            Some(json!({"judge0": {
                "language_id": 71,
                "source_code": b64("print(input())"),
                "stdin": b64("x\n"),
                "expected_output": null,
                "cpu_time_limit": 1.5,
                "cpu_extra_time": 0.5,
                "wall_time_limit": 3.0,
                "memory_limit": 131_072.0,
                "stack_limit": 65_000.0,
                "max_processes_and_or_threads": 10.0,
                "max_file_size": 2048.0,
                "number_of_runs": 1,
                "redirect_stderr_to_stdout": true,
                "command_line_arguments": "a 'b c'",
                "compiler_options": "",
                "additional_files": null,
                "callback_url": "https://judge.example/cb",
                "base64_encoded": false,
            }}))
        );
    }

    #[test]
    fn expected_output_and_several_runs_become_tests() {
        let sub = translate(
            &json!({
                "language_id": 71,
                "source_code": b64("print(1)"),
                "stdin": "eA",
                "expected_output": b64("1\n"),
                "number_of_runs": 3,
            }),
            true,
            &profiles(),
        )
        .unwrap();
        let test = json!({"stdin_base64": b64("x"), "expected_stdout_base64": b64("1\n")});
        assert_eq!(sub.request["tests"], json!([test, test, test]));
        assert_eq!(sub.request.get("checker"), None);
        assert_eq!(sub.request.get("stdin_base64"), None);
        // The output bound is the profile's file size default when none is given.
        assert_eq!(sub.request["limits"], json!({"output_bytes": 1_048_576}));
        // Several runs without an expected output are runs, not judged.
        let sub = translate(
            &json!({"language_id": 71, "source_code": "1", "number_of_runs": 2}),
            false,
            &profiles(),
        )
        .unwrap();
        assert_eq!(
            sub.request["tests"],
            json!([{"stdin_base64": ""}, {"stdin_base64": ""}])
        );
        assert_eq!(sub.request["checker"], json!({"type": "none"}));
    }

    #[test]
    fn bad_submissions_are_422_on_the_field() {
        assert_eq!(
            refused(json!([1]), false),
            json!({"submission": ["must be a JSON object"]})
        );
        assert_eq!(
            refused(json!({"source_code": "x"}), false),
            json!({"language_id": ["can't be blank"]})
        );
        assert_eq!(
            refused(json!({"language_id": "py", "source_code": "x"}), false),
            json!({"language_id": ["is not a number"]})
        );
        assert_eq!(
            refused(json!({"language_id": 999, "source_code": "x"}), false),
            json!({"language_id": ["language with id 999 doesn't exist"]})
        );
        assert_eq!(
            refused(json!({"language_id": 71}), false),
            json!({"source_code": ["can't be blank"]})
        );
        assert_eq!(
            refused(json!({"language_id": 71, "source_code": "!!"}), true),
            json!({"source_code": ["is not valid base64: Invalid symbol 33, offset 0."]})
        );
        assert_eq!(
            refused(json!({"language_id": 71, "source_code": 5}), false),
            json!({"source_code": ["must be a string"]})
        );
        assert_eq!(
            refused(
                json!({"language_id": 71, "source_code": "x", "cpu_time_limit": 21}),
                false
            ),
            json!({"cpu_time_limit": ["must be less than or equal to 20"]})
        );
        assert_eq!(
            refused(
                json!({"language_id": 71, "source_code": "x", "memory_limit": 1000}),
                false
            ),
            json!({"memory_limit": ["must be greater than or equal to 2048"]})
        );
        assert_eq!(
            refused(
                json!({"language_id": 71, "source_code": "x", "wall_time_limit": "soon"}),
                false
            ),
            json!({"wall_time_limit": ["is not a number"]})
        );
        assert_eq!(
            refused(
                json!({"language_id": 71, "source_code": "x", "enable_network": true}),
                false
            ),
            json!({"enable_network": ["enabling network is not allowed"]})
        );
        assert_eq!(
            refused(
                json!({"language_id": 71, "source_code": "x", "command_line_arguments": "'a"}),
                false
            ),
            json!({"command_line_arguments": ["cannot be split: missing closing quote"]})
        );
    }

    #[test]
    fn warmbox_request_errors_are_named_by_the_judge0_field() {
        let field =
            |message: &str| request_error(JobError::Request(RequestError::invalid(message))).body;
        assert_eq!(
            field("limits.cpu_ms: 30000 is above the maximum 20000"),
            json!({"cpu_time_limit": ["limits.cpu_ms: 30000 is above the maximum 20000"]})
        );
        assert_eq!(field("stdin: too long"), json!({"stdin": ["too long"]}));
        assert_eq!(
            field("files: 300 MiB do not fit limits.memory_mb"),
            json!({"memory_limit": [
                "is too small for the submission's files, which are kept in memory with 4 MiB \
                 left for the program (files: 300 MiB do not fit limits.memory_mb)"
            ]})
        );
        assert_eq!(
            field("files[0].content: not UTF-8"),
            json!({"source_code": ["files[0].content: not UTF-8"]})
        );
        assert_eq!(
            field("no field here"),
            json!({"submission": ["no field here"]})
        );
    }

    #[test]
    fn fields_are_checked_and_selected() {
        check_fields(None).unwrap();
        check_fields(Some(" * ")).unwrap();
        check_fields(Some("token, stdout,status_id")).unwrap();
        let e = check_fields(Some("token,nope, bad")).unwrap_err();
        assert_eq!(
            (e.status, e.body),
            (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid fields: [nope, bad]"})
            )
        );
        let full: Map<String, Value> = FIELDS.iter().map(|f| (f.to_string(), json!(f))).collect();
        assert_eq!(
            select(full.clone(), Some("stdout, token")),
            json!({"stdout": "stdout", "token": "token"})
        );
        assert_eq!(select(full.clone(), Some("*")), Value::Object(full.clone()));
        let default = select(full, None);
        let keys: Vec<&str> = default
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // serde_json's maps are sorted by key.
        assert_eq!(
            keys,
            [
                "compile_output",
                "memory",
                "message",
                "status",
                "stderr",
                "stdout",
                "time",
                "token"
            ]
        );
    }

    /// A step of a run response as stored (output base64).
    fn step(status: &str, signal_name: Option<&str>, cpu_ms: f64, stdout: &str) -> Value {
        json!({
            "status": status,
            "exit_code": if signal_name.is_some() { Value::Null } else { json!(0) },
            "signal": signal_name.map(|_| 11),
            "signal_name": signal_name,
            "stdout": b64(stdout),
            "stderr": "",
            "stdout_truncated": false,
            "stderr_truncated": false,
            "usage": {
                "cpu_ms": cpu_ms, "user_ms": cpu_ms, "sys_ms": 0.0, "wall_ms": cpu_ms + 10.0,
                "memory_peak_bytes": 10_700_000, "oom_killed": false, "pids_peak": 1,
                "stdout_bytes": stdout.len(), "stderr_bytes": 0,
            },
        })
    }

    /// A finished Judge0 job with `result`, its cpu_time_limit 1 s.
    fn done(result: Value) -> JobRecord {
        JobRecord {
            status: JobStatus::Done,
            started_ms: Some(1_600),
            finished_ms: Some(86_400_000 + 2_250),
            result: Some(result),
            meta: Some(json!({"judge0": {
                "language_id": 71,
                "source_code": b64("print(1)"),
                "cpu_time_limit": 1.0,
                "number_of_runs": 1,
                "base64_encoded": false,
            }})),
            attempts: 1,
            ..JobRecord::queued(Uuid::nil(), json!({}), 1_500)
        }
    }

    fn run_result(status: &str, run: Value) -> Value {
        json!({"id": Uuid::nil(), "status": status, "compile": null, "run": run})
    }

    /// `(status_id, message)` of a record.
    fn judged(record: &JobRecord) -> (u32, Option<String>) {
        let o = outcome(record).expect("a Judge0 job");
        (o.id, o.message)
    }

    #[test]
    fn run_outcomes_map_to_judge0_statuses() {
        let cases = [
            ("ok", step("ok", None, 20.0, "1\n"), 3, None),
            (
                "signaled",
                step("signaled", Some("SIGSEGV"), 20.0, ""),
                7,
                None,
            ),
            (
                "signaled",
                step("signaled", Some("SIGFPE"), 20.0, ""),
                9,
                None,
            ),
            (
                "signaled",
                step("signaled", Some("SIGABRT"), 20.0, ""),
                10,
                None,
            ),
            ("time_limit", step("time_limit", None, 1500.0, ""), 5, None),
            (
                "wall_time_limit",
                step("wall_time_limit", None, 20.0, ""),
                5,
                None,
            ),
            // Ended well but past cpu_time_limit, within the extra time: a TLE.
            ("ok", step("ok", None, 1000.5, ""), 5, None),
            (
                "memory_limit",
                step("memory_limit", None, 20.0, ""),
                12,
                Some("Memory limit exceeded"),
            ),
            (
                "output_limit",
                step("output_limit", None, 20.0, ""),
                8,
                Some("Output limit exceeded"),
            ),
            (
                "file_size_limit",
                step("file_size_limit", None, 20.0, ""),
                8,
                Some("File size limit exceeded"),
            ),
        ];
        for (status, run, id, message) in cases {
            let record = done(run_result(status, run.clone()));
            assert_eq!(
                judged(&record),
                (id, message.map(String::from)),
                "{status} {run}"
            );
        }
        let mut exec = step("runtime_error", None, 0.0, "");
        exec["exit_code"] = json!(126);
        exec["message"] = json!("exec ./main: Exec format error");
        assert_eq!(
            judged(&done(run_result("runtime_error", exec))),
            (14, Some("exec ./main: Exec format error".into()))
        );
        let mut nzec = step("runtime_error", None, 0.0, "");
        nzec["exit_code"] = json!(1);
        assert_eq!(judged(&done(run_result("runtime_error", nzec))), (11, None));
        let compile_error = json!({"id": Uuid::nil(), "status": "compile_error",
            "compile": step("runtime_error", None, 5.0, ""), "run": null});
        assert_eq!(judged(&done(compile_error)), (6, None));
        let failed = json!({"error": {"code": "sandbox_failure", "message": "no container"}});
        assert_eq!(judged(&done(failed)), (13, Some("no container".into())));
    }

    #[test]
    fn unfinished_and_cancelled_jobs_have_their_statuses() {
        let mut record = done(Value::Null);
        record.result = None;
        record.status = JobStatus::Queued;
        assert_eq!(judged(&record), (1, None));
        record.status = JobStatus::Running;
        assert_eq!(judged(&record), (2, None));
        record.status = JobStatus::Cancelled;
        assert_eq!(
            judged(&record),
            (13, Some("the submission was cancelled".into()))
        );
        // Not a Judge0 job: no outcome.
        record.meta = None;
        assert!(outcome(&record).is_none());
    }

    #[test]
    fn several_runs_answer_the_first_failed_one_and_the_averages() {
        let test = |verdict: &str, cpu_ms: f64| json!({"name": "t", "verdict": verdict, "run": step("ok", None, cpu_ms, "1\n")});
        let result = json!({
            "id": Uuid::nil(), "status": "wrong_answer", "compile": null, "run": null,
            "tests": [test("accepted", 100.0), test("wrong_answer", 300.0)],
        });
        let record = done(result);
        let o = outcome(&record).unwrap();
        assert_eq!((o.id, o.message), (4, None));
        assert_eq!(o.step.map(|s| s.usage.cpu_ms), Some(300.0));
        assert_eq!(
            Value::Object(o.averages),
            json!({"time": "0.200", "wall_time": "0.210", "memory": 10_449})
        );
    }

    #[test]
    fn the_submission_is_answered_in_judge0s_units_as_text_or_base64() {
        let mut record = done(run_result("ok", step("ok", None, 123.4, "héllo\n")));
        let mut compile = step("ok", None, 5.0, "warn ");
        compile["stderr"] = json!(b64("ing"));
        record.result.as_mut().unwrap()["compile"] = compile;
        let view = full_view(&record, false, &profiles());
        let pick = |v: &Map<String, Value>, keys: &[&str]| -> Value {
            keys.iter()
                .map(|k| (k.to_string(), v[*k].clone()))
                .collect::<Map<_, _>>()
                .into()
        };
        let keys = [
            "token",
            "status_id",
            "status",
            "stdout",
            "stderr",
            "compile_output",
            "time",
            "wall_time",
            "memory",
            "exit_code",
            "source_code",
            "language",
            "created_at",
            "finished_at",
            "enable_network",
        ];
        assert_eq!(
            pick(&view, &keys),
            json!({
                "token": "00000000-0000-0000-0000-000000000000",
                "status_id": 3,
                "status": {"id": 3, "description": "Accepted"},
                "stdout": "héllo\n",
                "stderr": null,
                "compile_output": "warn ing",
                "time": "0.123",
                "wall_time": "0.133",
                "memory": 10_449,
                "exit_code": 0,
                "source_code": "print(1)",
                "language": {"id": 71, "name": "Python (3.11.2)"},
                "created_at": "1970-01-01T00:00:01.500Z",
                "finished_at": "1970-01-02T00:00:02.250Z",
                "enable_network": false,
            })
        );
        let view = full_view(&record, true, &profiles());
        assert_eq!(
            pick(
                &view,
                &["stdout", "compile_output", "source_code", "message"]
            ),
            json!({
                "stdout": b64("héllo\n"),
                "compile_output": b64("warn ing"),
                "source_code": b64("print(1)"),
                "message": null,
            })
        );
        // Judge0's callback: the default fields, as the submission was made (text here).
        assert_eq!(
            callback(&record, &profiles()),
            Some(json!({
                "token": "00000000-0000-0000-0000-000000000000",
                "status": {"id": 3, "description": "Accepted"},
                "stdout": "héllo\n",
                "stderr": null,
                "compile_output": "warn ing",
                "message": null,
                "time": "0.123",
                "memory": 10_449,
            }))
        );
    }

    /// A zip of `(name, content)` entries; a name ending in `/` is a directory.
    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        for (name, content) in entries {
            if name.ends_with('/') {
                w.add_directory(*name, options).unwrap();
            } else {
                w.start_file(*name, options).unwrap();
                w.write_all(content).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn additional_files_are_unzipped_within_bounds() {
        let zip = zip_of(&[
            ("run", b"python3 lib/a.py"),
            ("lib/", b""),
            ("lib/a.py", b"print(2)"),
        ]);
        assert_eq!(
            unzip(&zip, 24).unwrap(),
            vec![
                ("run".to_string(), b"python3 lib/a.py".to_vec()),
                ("lib/a.py".to_string(), b"print(2)".to_vec()),
            ]
        );
        assert_eq!(
            unzip(&zip, 23).unwrap_err().to_string(),
            "extracts to more than 23 bytes (max_extract_size)"
        );
        assert_eq!(
            unzip(&zip_of(&[("../x", b"")]), 10)
                .unwrap_err()
                .to_string(),
            "entry \"../x\" must be a relative path inside the archive's top"
        );
        assert_eq!(
            unzip(&zip_of(&[("/etc/x", b"")]), 10)
                .unwrap_err()
                .to_string(),
            "entry \"/etc/x\" must be a relative path inside the archive's top"
        );
        assert_eq!(
            unzip(b"not a zip", 10).unwrap_err().to_string(),
            "is not a zip archive: invalid Zip archive: Could not find EOCD"
        );
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(timestamp(Some(0)), json!("1970-01-01T00:00:00.000Z"));
        assert_eq!(
            timestamp(Some(1_700_000_000_123)),
            json!("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(timestamp(None), Value::Null);
        // Past what a date can be: no date rather than a wrong one.
        assert_eq!(timestamp(Some(u64::MAX)), Value::Null);
    }
}
