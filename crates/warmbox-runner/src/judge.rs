//! The judging part of a run request (API.md, "Tests, checkers, interactors"): tests with
//! expected output, the checker that compares, the interactor of an interactive problem;
//! their validation, and the verdicts and summary of the answer.
//!
//! Validation happens with the rest of the request, before any container is touched: a
//! request that cannot be judged is a 400 naming the field.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::job::checker::Comparison;
use crate::profile::{Limits, ProfileSet};
use crate::request::{
    validate, Encoding, FileSpec, LimitsRequest, RequestError, RunRequest, StepResult, StepStatus,
    ValidatedRequest,
};

/// Most tests one request may carry.
pub const MAX_TESTS: usize = 1000;

/// Most output all the tests of one request may keep, bytes (each test's stdout and
/// stderr up to its `output_bytes`).
pub const MAX_TESTS_OUTPUT_BYTES: u64 = 256 << 20;

/// Longest test name, bytes.
pub const MAX_TEST_NAME_BYTES: usize = 128;

/// One test of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// Name reported back; by default the test's 1-based position.
    #[serde(default)]
    pub name: Option<String>,
    /// Text stdin.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Binary stdin, base64; exclusive with `stdin`.
    #[serde(default)]
    pub stdin_base64: Option<String>,
    /// Expected stdout, text.
    #[serde(default)]
    pub expected_stdout: Option<String>,
    /// Expected stdout, base64; exclusive with `expected_stdout`.
    #[serde(default)]
    pub expected_stdout_base64: Option<String>,
    /// This test's limits over the request's own.
    #[serde(default)]
    pub limits: LimitsRequest,
}

/// A program of the judge (checker or interactor): a profile, its files, arguments and
/// limits. It runs in its own sandbox, like the submission.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramSpec {
    /// Profile name or alias.
    pub profile: String,
    /// The program's files (its source, for a compiled profile).
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Appended to the profile's run command, before the file arguments warmbox adds.
    #[serde(default)]
    pub args: Vec<String>,
    /// The program's limits; missing ones take the profile's defaults.
    #[serde(default)]
    pub limits: LimitsRequest,
}

/// `"checker"` of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckerSpec {
    /// Byte for byte.
    Exact,
    /// Line by line, trailing whitespace and trailing blank lines ignored (the default).
    Lines,
    /// Whitespace-separated tokens.
    Tokens,
    /// No comparison: a test whose run ends well is accepted (runs repeated to measure,
    /// or output checked elsewhere).
    None,
    /// Tokens; numbers equal within `abs` or `rel`.
    Float {
        /// Absolute tolerance.
        #[serde(default = "default_tolerance")]
        abs: f64,
        /// Relative tolerance.
        #[serde(default = "default_tolerance")]
        rel: f64,
    },
    /// A checker program, testlib-style: `checker input.txt output.txt answer.txt`, exit 0
    /// accepted, 1 wrong answer, 2 presentation error, anything else its own failure.
    Program {
        /// Profile name or alias.
        profile: String,
        /// The checker's files.
        #[serde(default)]
        files: Vec<FileSpec>,
        /// Appended to the profile's run command, before the three file names.
        #[serde(default)]
        args: Vec<String>,
        /// The checker's limits.
        #[serde(default)]
        limits: LimitsRequest,
    },
}

fn default_tolerance() -> f64 {
    1e-6
}

/// A checked program of the judge, ready to compile and run.
#[derive(Debug, Clone)]
pub struct JudgeProgram {
    /// Its request, validated like a submission (profile, files, limits, run command).
    pub request: ValidatedRequest,
}

/// How a test's output is judged.
#[derive(Debug, Clone)]
pub enum Judge {
    /// A built-in comparison.
    Compare(Comparison),
    /// Every run that ends well is accepted.
    Accept,
    /// A checker program.
    Program(Box<JudgeProgram>),
}

/// One checked test.
#[derive(Debug, Clone)]
pub struct ValidatedTest {
    /// Its name.
    pub name: String,
    /// Its stdin.
    pub stdin: Vec<u8>,
    /// The expected stdout, when given.
    pub expected: Option<Vec<u8>>,
    /// The run limits of this test.
    pub limits: Limits,
}

/// The judging part of a checked request.
#[derive(Debug, Clone)]
pub struct Judging {
    /// The tests, in the request's order.
    pub tests: Vec<ValidatedTest>,
    /// Skip the tests not yet started once one fails.
    pub stop_on_first_failure: bool,
    /// How outputs are judged (ignored for interactive problems: the interactor judges).
    pub judge: Judge,
    /// The interactor of an interactive problem.
    pub interactor: Option<Box<JudgeProgram>>,
}

/// The judging fields of a request, as given.
#[derive(Debug, Clone, Copy)]
pub struct JudgingRequest<'a> {
    /// `tests`.
    pub tests: &'a [TestSpec],
    /// `stop_on_first_failure`.
    pub stop_on_first_failure: bool,
    /// `checker`.
    pub checker: Option<&'a CheckerSpec>,
    /// `interactor`.
    pub interactor: Option<&'a ProgramSpec>,
    /// Whether the request has its own `stdin`/`stdin_base64`.
    pub has_stdin: bool,
}

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
            crate::job::checker::validate(&how).map_err(RequestError::invalid)?;
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
        .find(|(_, f)| crate::job::CHECKER_FILES.contains(&f.name.as_str()))
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

/// The verdict of one test, or of a whole submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The output is right.
    Accepted,
    /// The output is wrong.
    WrongAnswer,
    /// The checker or interactor said the output's form is wrong (exit code 2).
    PresentationError,
    /// Not run: an earlier test failed and the request asked to stop.
    Skipped,
    /// The run failed: its step status (`time_limit`, `memory_limit`, `runtime_error`, …),
    /// or `internal_error` when warmbox or the checker failed.
    #[serde(untagged)]
    Step(StepStatus),
}

/// The result of one test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why, where the verdict alone does not say (the first difference of a wrong answer,
    /// the checker's complaint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The submission's run; absent when skipped.
    pub run: Option<StepResult>,
    /// The checker program's run, when a program checked this test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checker: Option<StepResult>,
    /// The interactor's run, for an interactive problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactor: Option<StepResult>,
}

/// Totals over a submission's tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The first verdict other than accepted and skipped, in the request's order, else
    /// accepted.
    pub verdict: Verdict,
    /// Tests in the request.
    pub total: usize,
    /// Tests accepted.
    pub accepted: usize,
    /// Tests that ran and were not accepted.
    pub failed: usize,
    /// Tests skipped.
    pub skipped: usize,
    /// Largest CPU time of a run, ms.
    pub max_cpu_ms: f64,
    /// Largest wall time of a run, ms.
    pub max_wall_ms: f64,
    /// Largest memory peak of a run, bytes.
    pub max_memory_bytes: u64,
}

/// Sums up `tests`.
pub fn summarize(tests: &[TestResult]) -> Summary {
    let count = |f: &dyn Fn(Verdict) -> bool| tests.iter().filter(|t| f(t.verdict)).count();
    let runs = || tests.iter().filter_map(|t| t.run.as_ref());
    Summary {
        verdict: tests
            .iter()
            .map(|t| t.verdict)
            .find(|v| !matches!(v, Verdict::Accepted | Verdict::Skipped))
            .unwrap_or(Verdict::Accepted),
        total: tests.len(),
        accepted: count(&|v| v == Verdict::Accepted),
        failed: count(&|v| !matches!(v, Verdict::Accepted | Verdict::Skipped)),
        skipped: count(&|v| v == Verdict::Skipped),
        max_cpu_ms: runs().map(|r| r.usage.cpu_ms).fold(0.0, f64::max),
        max_wall_ms: runs().map(|r| r.usage.wall_ms).fold(0.0, f64::max),
        max_memory_bytes: runs().map(|r| r.usage.memory_peak_bytes).max().unwrap_or(0),
    }
}
