//! Verdicts: of a test (a comparison, a checker's or interactor's exit code, the run's own
//! failure), of an interactive test (a fixed order of rules), and of the whole submission,
//! with its summary.

use serde::{Deserialize, Serialize};

use super::checker::{clip, judged_by_exit};
use crate::request::{RunStatus, StepResult, StepStatus};
use warmbox_sandbox::StepOutcome;

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

/// A submission's status is its summary's verdict.
impl From<Verdict> for RunStatus {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Accepted => RunStatus::Accepted,
            Verdict::WrongAnswer => RunStatus::WrongAnswer,
            Verdict::PresentationError => RunStatus::PresentationError,
            // A summary's verdict is never "skipped": the first test always runs.
            Verdict::Skipped => RunStatus::Step(StepStatus::InternalError),
            Verdict::Step(s) => RunStatus::Step(s),
        }
    }
}

/// What the submission had closed of its ends of the two pipes while its interactor ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Closed {
    /// Its stdin, the interactor's stdout, had no reader left: writing to it gives the
    /// interactor SIGPIPE or EPIPE.
    pub(super) input: bool,
    /// Its stdout, the interactor's stdin, had no writer left: the interactor reads
    /// end-of-file.
    pub(super) output: bool,
}

/// An interactive test's verdict from its two steps and what the submission had closed
/// (`closed`). Each side sees the other's end: a submission that dies leaves its
/// interactor reading end-of-file (which it calls a wrong answer), an interactor that
/// exits leaves the submission a broken pipe or end-of-file. Which process ended first
/// cannot be told reliably (each end is seen when its container's init reaps it, late
/// under load), so the verdict follows a fixed order, as DMOJ's does, and the same
/// submission always gets the same verdict:
/// 1. a limit the submission hit (time, wall time, memory, output, file size);
/// 2. an interactor's failure that the submission caused by closing its end
///    ([`ended_by_submission`]: SIGPIPE, or another exit code after the submission had
///    closed its stdin or stdout): the submission's own failure if it has one (but a
///    broken pipe, which then follows from the same cause), else `wrong_answer`
///    (testlib's "unexpected end of file") with a message saying so;
/// 3. the interactor's own failure (another exit code, a signal, a limit):
///    `internal_error` with a message, the judge's fault;
/// 4. any other failure of the submission (runtime error, signal, forbidden call);
/// 5. the interactor's exit code, testlib's way.
pub(super) fn interactive_verdict(
    sub: &StepOutcome,
    int: &StepOutcome,
    closed: Closed,
) -> (Verdict, Option<String>) {
    let status = sub.status;
    let hit_limit = matches!(
        status,
        StepStatus::TimeLimit
            | StepStatus::WallTimeLimit
            | StepStatus::MemoryLimit
            | StepStatus::OutputLimit
            | StepStatus::FileSizeLimit
    );
    if hit_limit {
        return (Verdict::Step(status), None);
    }
    if let Some(why) = ended_by_submission(int, closed) {
        // A broken pipe of the submission's own follows from the same cause (it wrote
        // after the interactor it had ended was gone): whichever came first under load,
        // the verdict is the same.
        let broken_pipe = status == StepStatus::Signaled && sub.signal == Some(libc::SIGPIPE);
        return match status {
            StepStatus::Ok => (Verdict::WrongAnswer, Some(why)),
            _ if broken_pipe => (Verdict::WrongAnswer, Some(why)),
            other => (Verdict::Step(other), None),
        };
    }
    let (judged, message) = judged_by_exit("interactor", int);
    match judged {
        Verdict::Step(StepStatus::InternalError) => (judged, message),
        _ if status != StepStatus::Ok => (Verdict::Step(status), None),
        other => (other, message),
    }
}

/// Why the interactor's failure is the submission's doing, when the server saw it so
/// (`closed`, taken while the interactor's end could not yet reach the submission, see
/// `interactive::Watch`): the interactor killed by SIGPIPE with the submission's stdin
/// closed (its only reader), or exited with a code other than testlib's 0, 1, 2 (say on
/// EPIPE, or on end-of-file) after the submission had closed its stdin or its stdout. Any
/// other end of an interactor (another signal such as `abort()`, a limit, a program that
/// did not start), or a failure while the submission kept both ends open, is its own.
fn ended_by_submission(int: &StepOutcome, closed: Closed) -> Option<String> {
    let r = int;
    let said = clip(&int.stderr);
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    match (r.status, r.exit_code, r.signal) {
        (StepStatus::Signaled, _, Some(libc::SIGPIPE)) if closed.input => Some(
            "the submission closed its input while the interactor was writing to it \
             (the interactor got SIGPIPE)"
                .into(),
        ),
        (StepStatus::RuntimeError, Some(code), _)
            if code != 1 && code != 2 && r.message.is_none() && (closed.input || closed.output) =>
        {
            Some(format!(
                "the submission closed its end of the interaction while the interactor was \
                 running; the interactor then exited with {code}{said}"
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(status: StepStatus, exit_code: Option<i32>, signal: Option<i32>) -> StepOutcome {
        StepOutcome {
            exit_code,
            signal,
            ..StepOutcome::blank(status)
        }
    }

    #[test]
    fn an_interactors_failure_is_the_submissions_only_when_it_closed_its_end() {
        use StepStatus::*;
        let ok = step(Ok, Some(0), None);
        let exited = |c| step(RuntimeError, Some(c), None);
        let signaled = |s| step(Signaled, None, Some(s));
        let (none, input, output) = (
            Closed::default(),
            Closed {
                input: true,
                output: false,
            },
            Closed {
                input: false,
                output: true,
            },
        );
        let sigpipe = "the submission closed its input while the interactor was writing to \
                       it (the interactor got SIGPIPE)";
        let exit3 = "the submission closed its end of the interaction while the interactor \
                     was running; the interactor then exited with 3";
        let mut not_started = exited(warmbox_sandbox::EXEC_FAILED);
        not_started.message = Some("exec ./main: ENOENT".into());
        let wa = |m: &str| (Verdict::WrongAnswer, Some(m.to_string()));
        let ie = |m: &str| (Verdict::Step(InternalError), Some(m.to_string()));
        let cases = [
            // The submission's limit first, whatever the interactor did.
            (
                step(TimeLimit, None, Some(9)),
                signaled(libc::SIGPIPE),
                input,
                (Verdict::Step(TimeLimit), None),
            ),
            // SIGPIPE with the submission's stdin closed: its wrong answer, or its own failure.
            (ok.clone(), signaled(libc::SIGPIPE), input, wa(sigpipe)),
            (
                exited(4),
                signaled(libc::SIGPIPE),
                input,
                (Verdict::Step(RuntimeError), None),
            ),
            // The submission's own broken pipe, once the interactor it ended was gone.
            (
                signaled(libc::SIGPIPE),
                signaled(libc::SIGPIPE),
                input,
                wa(sigpipe),
            ),
            (signaled(libc::SIGPIPE), exited(3), output, wa(exit3)),
            // SIGPIPE while the submission still read: not from that pipe.
            (
                ok.clone(),
                signaled(libc::SIGPIPE),
                output,
                ie("the interactor failed (signaled)"),
            ),
            // Another code after either end closed (EPIPE, end-of-file).
            (ok.clone(), exited(3), input, wa(exit3)),
            (ok.clone(), exited(3), output, wa(exit3)),
            (
                ok.clone(),
                exited(3),
                none,
                ie("the interactor failed (exited with 3)"),
            ),
            // testlib's codes keep their meaning.
            (ok.clone(), exited(1), output, (Verdict::WrongAnswer, None)),
            (
                ok.clone(),
                exited(2),
                output,
                (Verdict::PresentationError, None),
            ),
            (ok.clone(), ok.clone(), output, (Verdict::Accepted, None)),
            // Its own crash, a limit, a program that did not start: the judge's fault.
            (
                ok.clone(),
                signaled(libc::SIGABRT),
                input,
                ie("the interactor failed (signaled)"),
            ),
            (
                ok.clone(),
                step(TimeLimit, None, Some(9)),
                input,
                ie("the interactor failed (time_limit)"),
            ),
            (
                ok.clone(),
                not_started,
                input,
                ie("the interactor failed (exited with 127): exec ./main: ENOENT"),
            ),
        ];
        for (sub, int, closed, want) in cases {
            assert_eq!(
                interactive_verdict(&sub, &int, closed),
                want,
                "{:?} / {:?} / {closed:?}",
                sub.status,
                int
            );
        }
    }
}
