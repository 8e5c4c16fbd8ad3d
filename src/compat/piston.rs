//! Piston v2: `GET /api/v2/runtimes` and `POST /api/v2/execute`, in Piston's shapes and
//! units (COMPAT.md), on warmbox's engine. Errors are Piston's: 400 `{"message": "…"}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::{version_number, whole};
use crate::service::{body_bytes, execute, AppState, ServiceError};
use warmbox_runner::profile::{LoadedProfile, ProfileSet};
use warmbox_runner::request::{
    self, Encoding, FileSpec, LimitsRequest, RunRequest, RunResponse, StepResult, StepStatus,
};
use warmbox_runner::runner::DEFAULT_COMPILE_LIMITS;
use warmbox_sandbox::OutputMode;

/// The Piston routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/runtimes", get(runtimes))
        .route("/api/v2/execute", post(execute_route))
}

/// A Piston error answer.
#[derive(Debug)]
pub struct PistonError {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
}

impl PistonError {
    fn bad(message: impl Into<String>) -> Self {
        PistonError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<ServiceError> for PistonError {
    fn from(e: ServiceError) -> Self {
        PistonError {
            status: e.status(),
            message: e.message().to_string(),
            retry_after: e.retry_after(),
        }
    }
}

impl IntoResponse for PistonError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({"message": self.message}))).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// A profile as a Piston runtime: (language, version, profile).
fn runtime_list(profiles: &ProfileSet) -> Vec<(String, String, Arc<LoadedProfile>)> {
    profiles
        .all()
        .iter()
        .filter(|p| p.availability.available)
        .filter_map(|p| {
            let language = p.profile.piston_language.clone()?;
            let version = p
                .availability
                .version
                .as_deref()
                .and_then(version_number)
                .unwrap_or_else(|| "0.0.0".to_string());
            Some((language, version, p.clone()))
        })
        .collect()
}

/// Names a client may use for a runtime: its profile's name and aliases, without the
/// language itself.
fn aliases(language: &str, p: &LoadedProfile) -> Vec<String> {
    std::iter::once(&p.profile.name)
        .chain(&p.profile.aliases)
        .filter(|a| a.as_str() != language)
        .cloned()
        .collect()
}

async fn runtimes(State(state): State<Arc<AppState>>) -> Json<Value> {
    let list: Vec<Value> = runtime_list(&state.profiles)
        .into_iter()
        .map(|(language, version, p)| {
            let aliases = aliases(&language, &p);
            json!({"language": language, "version": version, "aliases": aliases})
        })
        .collect();
    Json(Value::Array(list))
}

/// A Java source whose entry class is not `Main`, made to compile as `Main.java` and run
/// as class `Main`, as Piston's source launcher runs it: the entry class (the first
/// top-level class, written at the start of a line, as the launcher picks it) loses a
/// `public` (which would tie it to a file of its name) and a class `Main` is added that
/// calls its `main`. `None` when there is nothing to change (a class `Main` exists, or
/// no class is found).
fn java_main(source: &str) -> Option<String> {
    static TOP_CLASS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?m)^(public\s+)?((?:(?:final|abstract|strictfp)\s+)*)class\s+([A-Za-z_$][\w$]*)",
        )
        .expect("a valid pattern")
    });
    static MAIN_CLASS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\bclass\s+Main\b").expect("a valid pattern")
    });
    if MAIN_CLASS.is_match(source) {
        return None;
    }
    let top = TOP_CLASS.captures(source)?;
    let (whole, name) = (top.get(0)?, top.get(3)?.as_str());
    let declaration = format!("{}class {name}", &top[2]);
    Some(format!(
        "{}{declaration}{}\n\nclass Main {{\n    public static void main(String[] args) throws Throwable {{\n        {name}.main(args);\n    }}\n}}\n",
        &source[..whole.start()],
        source[whole.end()..].trim_end(),
    ))
}

/// Whether `asked` selects `version`: `*`, the exact version, or a prefix of it that ends
/// at a dot (`3` and `3.11` select `3.11.2`), written with wildcards too (`3.x`, `3.11.*`)
/// or as a caret or tilde range of a prefix (`^3`, `~3.11`).
fn version_matches(asked: &str, version: &str) -> bool {
    let mut asked = asked.trim().trim_start_matches(['^', '~', '=', 'v']);
    while let Some(head) = asked
        .strip_suffix(".x")
        .or_else(|| asked.strip_suffix(".X"))
        .or_else(|| asked.strip_suffix(".*"))
    {
        asked = head;
    }
    matches!(asked, "*" | "x" | "X")
        || asked == version
        || version
            .strip_prefix(asked)
            .is_some_and(|rest| rest.starts_with('.'))
}

async fn execute_route(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, PistonError> {
    let body = body_bytes(&state, body)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| PistonError::bad(format!("request body is not JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(PistonError::bad("request body must be a JSON object"));
    };
    let (language, version, valid) = to_request(obj, &state.profiles)?;
    let resp = execute(&state, &valid).await?;
    Ok(Json(answer(&language, &version, &resp)).into_response())
}

/// The warmbox request of a Piston execute body: (language, version, checked request).
fn to_request(
    obj: &Map<String, Value>,
    profiles: &ProfileSet,
) -> Result<(String, String, request::ValidatedRequest), PistonError> {
    let language = obj
        .get("language")
        .and_then(Value::as_str)
        .ok_or_else(|| PistonError::bad("language is required as a string"))?;
    let asked = match obj.get("version") {
        None | Some(Value::Null) => "*",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(PistonError::bad("version is required as a string")),
    };
    let list = runtime_list(profiles);
    let found = list.iter().find(|(l, v, p)| {
        (l == language || aliases(l, p).iter().any(|a| a == language)) && version_matches(asked, v)
    });
    let Some((lang, version, loaded)) = found else {
        let known: Vec<String> = list.iter().map(|(l, v, _)| format!("{l}-{v}")).collect();
        return Err(PistonError::bad(format!(
            "{language}-{asked} runtime is unknown; runtimes here: {}",
            known.join(", ")
        )));
    };
    let profile = &loaded.profile;

    let files = obj
        .get("files")
        .and_then(Value::as_array)
        .ok_or_else(|| PistonError::bad("files is required as an array"))?;
    if files.is_empty() {
        return Err(PistonError::bad(
            "files must hold at least one file, the program's entry point",
        ));
    }
    let mut specs = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let content = f.get("content").and_then(Value::as_str).ok_or_else(|| {
            PistonError::bad(format!("files[{i}].content is required as a string"))
        })?;
        let (content, encoding) = match f.get("encoding").and_then(Value::as_str) {
            None | Some("utf8") => (content.to_string(), Encoding::Utf8),
            Some("base64") => (content.to_string(), Encoding::Base64),
            Some("hex") => (
                BASE64.encode(
                    decode_hex(content)
                        .map_err(|m| PistonError::bad(format!("files[{i}].content: {m}")))?,
                ),
                Encoding::Base64,
            ),
            Some(other) => {
                return Err(PistonError::bad(format!(
                    "files[{i}].encoding: {other:?} is not one of utf8, base64, hex"
                )))
            }
        };
        // Piston runs Java with the source launcher, which runs the first class whatever
        // its name; here Java compiles Main.java and runs class Main.
        let content = if i == 0 && encoding == Encoding::Utf8 && profile.source_file == "Main.java"
        {
            java_main(&content).unwrap_or(content)
        } else {
            content
        };
        // The first file is the entry point: it is stored under the name the profile
        // runs. The others keep theirs (Piston's default for a missing one).
        let name = if i == 0 {
            profile.source_file.clone()
        } else {
            match f.get("name").and_then(Value::as_str) {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => format!("file{i}.code"),
            }
        };
        specs.push(FileSpec {
            name,
            content,
            encoding,
        });
    }
    let stdin = match obj.get("stdin") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(PistonError::bad("stdin must be a string")),
    };
    let args = match obj.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| PistonError::bad(format!("args[{i}] must be a string")))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(PistonError::bad("args must be an array of strings")),
    };

    let max = profile.limits.maximums;
    let limit = |key: &str, max: u64| -> Result<Option<u64>, PistonError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            // Any JSON number that is a whole one (a client computing `3 * 1000.0` sends
            // 3000.0); 0 and -1 mean the default, as `run_timeout || default` does there.
            Some(v) => match v.as_i64().or_else(|| {
                let f = v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15)?;
                // Whole and under 2^53 in magnitude: exactly an i64.
                #[allow(clippy::cast_possible_truncation)]
                let n = f as i64;
                Some(n)
            }) {
                Some(-1 | 0) => Ok(None),
                Some(n) if n > 0 => match u64::try_from(n).ok().filter(|n| *n <= max) {
                    Some(n) => Ok(Some(n)),
                    None => Err(PistonError::bad(format!(
                        "{key} cannot exceed the configured limit of {max}"
                    ))),
                },
                _ => Err(PistonError::bad(format!(
                    "{key} must be a positive whole number (or 0 or -1 for the default)"
                ))),
            },
        }
    };
    let mib = |b: u64| b.div_ceil(1 << 20);
    let limits = LimitsRequest {
        wall_ms: limit("run_timeout", max.wall_ms)?,
        cpu_ms: limit("run_cpu_time", max.cpu_ms)?,
        memory_mb: limit("run_memory_limit", max.memory_mb << 20)?.map(mib),
        ..LimitsRequest::default()
    };
    let compile_max = profile.compile_limits.unwrap_or(DEFAULT_COMPILE_LIMITS);
    let compile_wall = limit("compile_timeout", compile_max.wall_ms)?;
    let compile_cpu = limit("compile_cpu_time", compile_max.cpu_ms)?;
    let compile_mem = limit("compile_memory_limit", compile_max.memory_mb << 20)?.map(mib);

    let req = RunRequest {
        profile: profile.name.clone(),
        files: specs,
        stdin,
        args,
        limits,
        ..RunRequest::default()
    };
    let mut valid = request::validate(&req, profiles).map_err(|e| PistonError {
        status: StatusCode::BAD_REQUEST,
        message: e.message,
        retry_after: None,
    })?;
    valid.output_mode = OutputMode::Interleaved;
    if compile_wall.is_some() || compile_cpu.is_some() || compile_mem.is_some() {
        let mut c = compile_max;
        c.wall_ms = compile_wall.unwrap_or(c.wall_ms);
        c.cpu_ms = compile_cpu.unwrap_or(c.cpu_ms);
        c.memory_mb = compile_mem.unwrap_or(c.memory_mb);
        valid.compile_limits = Some(c);
    }
    Ok((lang.clone(), version.clone(), valid))
}

/// Why a `hex` file's content was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// An odd number of digits.
    #[error("hex has an odd number of digits")]
    Odd,
    /// Two characters that are no hex byte, and where.
    #[error("{pair:?} at {at} is not a hex byte")]
    NotHex {
        /// The two characters.
        pair: String,
        /// Their offset.
        at: usize,
    },
}

fn decode_hex(s: &str) -> Result<Vec<u8>, HexError> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return Err(HexError::Odd);
    }
    let digit = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    s.as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(HexError::NotHex {
                pair: String::from_utf8_lossy(pair).into_owned(),
                at: 2 * i,
            }),
        })
        .collect()
}

/// Piston's answer for a warmbox response.
pub fn answer(language: &str, version: &str, resp: &RunResponse) -> Value {
    let mut out = json!({"language": language, "version": version});
    if let Some(c) = &resp.compile {
        out["compile"] = stage(c);
    }
    // As in Piston, a failed compile has no run stage.
    if let Some(r) = &resp.run {
        out["run"] = stage(r);
    }
    out
}

/// One stage in Piston's shape: times in ms, memory in bytes, `status` one of RE, SG, TO,
/// OL, EL, XX or null.
fn stage(s: &StepResult) -> Value {
    let status = match s.status {
        StepStatus::Ok => None,
        StepStatus::RuntimeError => Some("RE"),
        StepStatus::TimeLimit | StepStatus::WallTimeLimit => Some("TO"),
        StepStatus::OutputLimit if s.stdout_truncated => Some("OL"),
        StepStatus::OutputLimit => Some("EL"),
        StepStatus::Signaled
        | StepStatus::MemoryLimit
        | StepStatus::FileSizeLimit
        | StepStatus::SecurityViolation => Some("SG"),
        StepStatus::InternalError => Some("XX"),
    };
    let message = s.message.clone().or_else(|| match s.status {
        StepStatus::TimeLimit => Some("CPU time limit exceeded".to_string()),
        StepStatus::WallTimeLimit => Some("Wall time limit exceeded".to_string()),
        StepStatus::MemoryLimit => Some("Memory limit exceeded".to_string()),
        StepStatus::OutputLimit => Some("Output limit exceeded".to_string()),
        StepStatus::FileSizeLimit => Some("File size limit exceeded".to_string()),
        _ => None,
    });
    // A run killed for a limit ends by SIGKILL (or SIGXFSZ) as in Piston.
    let signal = s.signal_name.clone().or_else(|| match s.status {
        StepStatus::TimeLimit
        | StepStatus::WallTimeLimit
        | StepStatus::MemoryLimit
        | StepStatus::OutputLimit => Some("SIGKILL".to_string()),
        _ => None,
    });
    let output = s
        .output
        .clone()
        .unwrap_or_else(|| format!("{}{}", s.stdout, s.stderr));
    json!({
        "stdout": s.stdout,
        "stderr": s.stderr,
        "output": output,
        "code": if signal.is_some() { None } else { s.exit_code },
        "signal": signal,
        "message": message,
        "status": status,
        "cpu_time": whole(s.usage.cpu_ms.round()),
        "wall_time": whole(s.usage.wall_ms.round()),
        "memory": s.usage.memory_peak_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_star_exact_and_dotted_prefixes() {
        assert!(version_matches("*", "3.11.2"));
        assert!(version_matches("3.11.2", "3.11.2"));
        assert!(version_matches("3.11", "3.11.2"));
        assert!(version_matches("3", "3.11.2"));
        assert!(!version_matches("3.1", "3.11.2"));
        assert!(!version_matches("3.11.2.1", "3.11.2"));
        assert!(!version_matches("", "3.11.2"));
        for asked in [
            "3.x", "3.11.x", "3.11.*", "^3", "~3.11", "3.x.x", "x", "v3.11.2",
        ] {
            assert!(version_matches(asked, "3.11.2"), "{asked}");
        }
        for asked in ["4.x", "^3.1", "~3.12", "3.11.3.x", "^"] {
            assert!(!version_matches(asked, "3.11.2"), "{asked}");
        }
    }

    #[test]
    fn a_java_entry_class_of_any_name_runs_as_main() {
        let wrapped = java_main(
            "import java.util.*;\npublic final class Solution {\n  public static void main(String[] a) {}\n}\n",
        )
        .expect("a class to wrap");
        assert_eq!(
            wrapped,
            "import java.util.*;\nfinal class Solution {\n  public static void main(String[] a) {}\n}\n\n\
             class Main {\n    public static void main(String[] args) throws Throwable {\n        \
             Solution.main(args);\n    }\n}\n"
        );
        assert_eq!(java_main("public class Main { }"), None);
        assert_eq!(java_main("interface I {}"), None);
        // An inner class (indented) is not the entry class.
        assert!(java_main("class A {\n  public class B {}\n}")
            .expect("A")
            .ends_with("A.main(args);\n    }\n}\n"));
    }

    #[test]
    fn hex_decodes_or_says_where_it_fails() {
        assert_eq!(decode_hex("00ff41").unwrap(), vec![0, 255, b'A']);
        assert_eq!(
            decode_hex("abc").unwrap_err().to_string(),
            "hex has an odd number of digits"
        );
        assert_eq!(
            decode_hex("00zz").unwrap_err().to_string(),
            "\"zz\" at 2 is not a hex byte"
        );
        assert_eq!(
            decode_hex("+1").unwrap_err().to_string(),
            "\"+1\" at 0 is not a hex byte"
        );
        // A multi-byte character is not hex, and does not panic.
        assert_eq!(
            decode_hex("a\u{e9}a").unwrap_err().to_string(),
            "\"a\u{fffd}\" at 0 is not a hex byte"
        );
    }
}
