//! Judging (API.md, "Tests, checkers, interactors"): a request's tests, each run judged by
//! a built-in comparison, a checker program or an interactor, and the verdicts and summary
//! of the answer.
//!
//! - [`spec`]: the judging fields of a request, and their checked form;
//! - [`validate`]: their validation, with the rest of the request;
//! - [`checker`]: the built-in comparisons, and the protocol of a checker program;
//! - [`verdict`]: the verdict rules, and the summary;
//! - `interactive`: a submission and its interactor wired together;
//! - `run`: the tests run, in parallel, and answered in order.

pub mod checker;
mod interactive;
mod run;
pub mod spec;
pub mod validate;
pub mod verdict;

pub use spec::{
    CheckerSpec, Judge, JudgeProgram, Judging, JudgingRequest, ProgramSpec, TestSpec, ValidatedTest,
};
pub use validate::{validate_judging, MAX_TESTS, MAX_TESTS_OUTPUT_BYTES, MAX_TEST_NAME_BYTES};
pub use verdict::{summarize, Summary, TestResult, Verdict};
