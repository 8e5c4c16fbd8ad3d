//! The judging fields of a run request (API.md, "Tests, checkers, interactors"): tests
//! with expected output, the checker that compares, the interactor of an interactive
//! problem; and their checked form, ready to run.

use serde::{Deserialize, Serialize};

use super::checker::Comparison;
use crate::profile::Limits;
use crate::request::{FileSpec, LimitsRequest, ValidatedRequest};

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
