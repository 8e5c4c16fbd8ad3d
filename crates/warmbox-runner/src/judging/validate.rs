//! Validation of the judging fields, with the rest of the request, before any container is
//! touched: a request that cannot be judged is a 400 naming the field.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::checker::{Comparison, CHECKER_FILES};
use super::spec::{CheckerSpec, Judge, JudgeProgram, Judging, JudgingRequest, ValidatedTest};
use crate::profile::{Limits, ProfileSet};
use crate::request::{
    validate, Encoding, FileSpec, LimitsRequest, RequestError, RunRequest, ValidatedRequest,
};

/// Most tests one request may carry.
pub const MAX_TESTS: usize = 1000;

/// Most output all the tests of one request may keep, bytes (each test's stdout and
/// stderr up to its `output_bytes`).
pub const MAX_TESTS_OUTPUT_BYTES: u64 = 256 << 20;

/// Longest test name, bytes.
pub const MAX_TEST_NAME_BYTES: usize = 128;
/// Checks the judging fields of a request whose run limits are `run_limits`, and its
/// profile's maximums through `submission`. `None` when the request has no tests.
pub fn validate_judging(
    req: JudgingRequest<'_>,
    submission: &ValidatedRequest,
    profiles: &ProfileSet,
) -> Result<Option<Judging>, RequestError> {
    if req.tests.is_empty() {
        let stray = if req.checker.is_some() {
            Some("checker")
        } else if req.interactor.is_some() {
            Some("interactor")
        } else if req.stop_on_first_failure {
            Some("stop_on_first_failure")
        } else {
            None
        };
        return match stray {
            Some(field) => Err(RequestError::invalid(format!(
                "{field}: applies to tests, and the request has none; give \"tests\": \
                 [{{\"stdin\": …, \"expected_stdout\": …}}]"
            ))),
            None => Ok(None),
        };
    }
    if req.tests.len() > MAX_TESTS {
        return Err(RequestError::invalid(format!(
            "tests: {} tests given; at most {MAX_TESTS}",
            req.tests.len()
        )));
    }
    if req.has_stdin {
        return Err(RequestError::invalid(
            "stdin: a request with tests takes each test's stdin; move it into the tests",
        ));
    }
    let interactor = req
        .interactor
        .map(|p| {
            program(
                "interactor",
                &p.profile,
                &p.files,
                &p.args,
                &p.limits,
                profiles,
            )
        })
        .transpose()?;
    let judge = match req.checker {
        None | Some(CheckerSpec::Lines) => Judge::Compare(Comparison::Lines),
        Some(CheckerSpec::Exact) => Judge::Compare(Comparison::Exact),
        Some(CheckerSpec::Tokens) => Judge::Compare(Comparison::Tokens),
        Some(CheckerSpec::None) => Judge::Accept,
        Some(&CheckerSpec::Float { abs, rel }) => {
            let how = Comparison::Float { abs, rel };
            super::checker::validate(&how).map_err(|e| RequestError::invalid(e.to_string()))?;
            Judge::Compare(how)
        }
        Some(CheckerSpec::Program {
            profile,
            files,
            args,
            limits,
        }) => Judge::Program(program("checker", profile, files, args, limits, profiles)?),
    };
    if interactor.is_some() && req.checker.is_some() {
        return Err(RequestError::invalid(
            "checker: an interactive problem is judged by its interactor's exit code; leave \
             checker out",
        ));
    }
    let needs_expected = interactor.is_none() && matches!(judge, Judge::Compare(_));
    let mut names = std::collections::HashMap::new();
    let mut tests = Vec::with_capacity(req.tests.len());
    for (i, t) in req.tests.iter().enumerate() {
        let name = match &t.name {
            Some(n) if n.is_empty() || n.len() > MAX_TEST_NAME_BYTES => {
                return Err(RequestError::invalid(format!(
                    "tests[{i}].name: must be 1 to {MAX_TEST_NAME_BYTES} bytes, or left out \
                     for the test's position"
                )))
            }
            Some(n) => n.clone(),
            None => (i + 1).to_string(),
        };
        if let Some(j) = names.insert(name.clone(), i) {
            return Err(RequestError::invalid(format!(
                "tests[{i}].name: {name:?} is already the name of tests[{j}]; test names must \
                 be unique"
            )));
        }
        let stdin = text_or_base64(
            &format!("tests[{i}].stdin"),
            t.stdin.as_deref(),
            t.stdin_base64.as_deref(),
        )?
        .unwrap_or_default();
        let expected = text_or_base64(
            &format!("tests[{i}].expected_stdout"),
            t.expected_stdout.as_deref(),
            t.expected_stdout_base64.as_deref(),
        )?;
        if expected.is_none() && needs_expected {
            let how = match req.checker {
                None => "the default checker (lines)".to_string(),
                Some(c) => format!("checker {:?}", checker_name(c)),
            };
            return Err(RequestError::invalid(format!(
                "tests[{i}].expected_stdout: missing; {how} compares the output with it (give \
                 expected_stdout or expected_stdout_base64, or use a program checker)"
            )));
        }
        let limits = test_limits(i, &t.limits, submission)?;
        tests.push(ValidatedTest {
            name,
            stdin,
            expected,
            limits,
        });
    }
    // Every test's output is kept until the answer is made, its checker's or
    // interactor's too (a checker's stdout and stderr, an interactor's stderr): bound it.
    let judged_by: u64 = match &judge {
        Judge::Program(p) => p.request.limits.output_bytes.saturating_mul(2),
        _ => 0,
    };
    let judged_by = judged_by.saturating_add(
        interactor
            .as_ref()
            .map_or(0, |p| p.request.limits.output_bytes),
    );
    let kept: u64 = tests
        .iter()
        .map(|t| {
            t.limits
                .output_bytes
                .saturating_mul(2)
                .saturating_add(judged_by)
        })
        .fold(0u64, u64::saturating_add);
    if kept > MAX_TESTS_OUTPUT_BYTES {
        return Err(RequestError::invalid(format!(
            "tests: {} tests may keep {kept} bytes of output (stdout and stderr up to \
             limits.output_bytes each, and the checker's or interactor's up to its own), above \
             the {MAX_TESTS_OUTPUT_BYTES} a request may keep; lower limits.output_bytes or \
             send fewer tests",
            tests.len()
        )));
    }
    Ok(Some(Judging {
        tests,
        stop_on_first_failure: req.stop_on_first_failure,
        judge,
        interactor,
    }))
}

fn checker_name(c: &CheckerSpec) -> &'static str {
    match c {
        CheckerSpec::Exact => "exact",
        CheckerSpec::Lines => "lines",
        CheckerSpec::Tokens => "tokens",
        CheckerSpec::None => "none",
        CheckerSpec::Float { .. } => "float",
        CheckerSpec::Program { .. } => "program",
    }
}

/// A test's limits: the request's run limits with the test's own over them, each within
/// the profile's maximum.
fn test_limits(
    i: usize,
    asked: &LimitsRequest,
    submission: &ValidatedRequest,
) -> Result<Limits, RequestError> {
    // /box is the same for every test: it holds the compiled program.
    if asked.disk_mb.is_some() {
        return Err(RequestError::invalid(format!(
            "tests[{i}].limits.disk_mb: set disk_mb for the whole request, not per test"
        )));
    }
    crate::request::limits_over(
        asked,
        &submission.limits,
        &submission.profile.profile,
        &format!("tests[{i}].limits"),
        "the request's",
    )
}

/// `text` or `base64` decoded; `None` when neither is given.
fn text_or_base64(
    field: &str,
    text: Option<&str>,
    base64: Option<&str>,
) -> Result<Option<Vec<u8>>, RequestError> {
    match (text, base64) {
        (Some(_), Some(_)) => Err(RequestError::invalid(format!(
            "{field}, {field}_base64: give one or the other, not both"
        ))),
        (Some(t), None) => Ok(Some(t.as_bytes().to_vec())),
        (None, Some(b)) => BASE64.decode(b).map(Some).map_err(|e| {
            RequestError::invalid(format!(
                "{field}_base64: invalid base64 ({e}); use standard base64 with padding"
            ))
        }),
        (None, None) => Ok(None),
    }
}

/// A checker or interactor, validated like a submission of its own; errors name the field.
fn program(
    field: &str,
    profile: &str,
    files: &[FileSpec],
    args: &[String],
    limits: &LimitsRequest,
    profiles: &ProfileSet,
) -> Result<Box<JudgeProgram>, RequestError> {
    if files.is_empty() {
        return Err(RequestError::invalid(format!(
            "{field}.files: empty; give the {field}'s source"
        )));
    }
    if let Some((i, f)) = files
        .iter()
        .enumerate()
        .find(|(_, f)| CHECKER_FILES.contains(&f.name.as_str()))
    {
        return Err(RequestError::invalid(format!(
            "{field}.files[{i}].name: {:?} is where warmbox puts the test's files \
             (input.txt, output.txt, answer.txt); rename it",
            f.name
        )));
    }
    let req = RunRequest {
        profile: profile.to_string(),
        files: files.to_vec(),
        args: args.to_vec(),
        limits: *limits,
        output_encoding: Encoding::Utf8,
        ..RunRequest::default()
    };
    let request = validate(&req, profiles).map_err(|e| RequestError {
        code: e.code,
        message: format!("{field}.{}", e.message),
    })?;
    Ok(Box::new(JudgeProgram { request }))
}
