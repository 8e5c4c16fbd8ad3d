//! A request with tests: compile once, then run each test in its own fresh container and
//! judge its output (a built-in comparison, a checker program, or an interactor that talks
//! to the submission while it runs). Tests run in parallel on the free places of the
//! admission, and are answered in the request's order.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::checker::{clip, compare, judge_files, judge_spec, judged_by_exit, Compared};
use super::spec::{Judge, JudgeProgram, Judging, ValidatedTest};
use super::verdict::{summarize, TestResult, Verdict};
use crate::request::{wire_name, RunResponse, RunStatus, StepResult, StepStatus, ValidatedRequest};
use crate::runner::{encode, submission_spec, Build, Runner};
use warmbox_sandbox::{BoxFile, SandboxError};

/// A judge program compiled and ready: its request and its files.
pub(super) struct Ready<'a> {
    pub(super) program: &'a JudgeProgram,
    pub(super) files: Arc<Vec<BoxFile>>,
}

/// What every test of one request shares.
pub(super) struct Plan<'a> {
    pub(super) req: &'a ValidatedRequest,
    judging: &'a Judging,
    pub(super) files: Vec<&'a BoxFile>,
    checker: Option<Ready<'a>>,
    interactor: Option<Ready<'a>>,
}

impl Runner {
    /// Runs and judges `judging`'s tests of `req`, whose run starts with `files`.
    pub(crate) async fn judge(
        &self,
        req: &ValidatedRequest,
        judging: &Judging,
        compile: Option<StepResult>,
        files: &[BoxFile],
    ) -> Result<RunResponse, SandboxError> {
        let checker = match &judging.judge {
            Judge::Program(p) => match self.ready("checker", p).await? {
                Ok(r) => Some(r),
                Err(message) => return Ok(failed_judge(compile, message)),
            },
            Judge::Compare(_) | Judge::Accept => None,
        };
        let interactor = match &judging.interactor {
            Some(p) => match self.ready("interactor", p).await? {
                Ok(r) => Some(r),
                Err(message) => return Ok(failed_judge(compile, message)),
            },
            None => None,
        };
        let plan = Plan {
            req,
            judging,
            files: files.iter().collect(),
            checker,
            interactor,
        };
        let tests = self.run_tests(&plan).await?;
        let summary = summarize(&tests);
        Ok(RunResponse {
            id: uuid::Uuid::new_v4(),
            status: summary.verdict.into(),
            compile,
            run: None,
            tests: Some(tests),
            summary: Some(summary),
            message: None,
        })
    }

    /// Compiles a checker or interactor (through the compile cache); `Err` says why it
    /// cannot judge.
    async fn ready<'a>(
        &self,
        role: &str,
        p: &'a JudgeProgram,
    ) -> Result<Result<Ready<'a>, String>, SandboxError> {
        Ok(match self.build(&p.request).await? {
            Build::Ready { files, .. } => Ok(Ready { program: p, files }),
            Build::Failed(step) => Err(format!(
                "the {role} did not compile ({}): {}",
                wire_name(&step.status),
                clip(step.stderr.as_bytes())
            )),
        })
    }

    /// Every test, in order. One worker always runs, on the request's own place; the
    /// others each wait for a free place of the admission and stop waiting once every
    /// test has been taken.
    async fn run_tests(&self, plan: &Plan<'_>) -> Result<Vec<TestResult>, SandboxError> {
        let n = plan.judging.tests.len();
        let next = AtomicUsize::new(0);
        let stopped = AtomicBool::new(false);
        let all_taken = CancellationToken::new();
        let results: Mutex<Vec<Option<TestResult>>> = Mutex::new(vec![None; n]);
        // Takes the next test and runs it (or skips it); `false` once none is left.
        let take = || async {
            let i = next.fetch_add(1, Ordering::AcqRel);
            if i + 1 >= n {
                all_taken.cancel();
            }
            let Some(test) = plan.judging.tests.get(i) else {
                return Ok::<bool, SandboxError>(false);
            };
            let result = if stopped.load(Ordering::Acquire) {
                skipped(test)
            } else {
                match self.one_test(plan, test).await {
                    Ok(r) => {
                        if plan.judging.stop_on_first_failure && r.verdict != Verdict::Accepted {
                            stopped.store(true, Ordering::Release);
                        }
                        r
                    }
                    Err(e) => {
                        // The request fails as a whole: the others stop taking tests.
                        stopped.store(true, Ordering::Release);
                        all_taken.cancel();
                        return Err(e);
                    }
                }
            };
            results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
            Ok(true)
        };
        // The request's own place runs tests until none is left.
        let worker = || async {
            while take().await? {}
            Ok::<(), SandboxError>(())
        };
        // Each extra place serves one test, then goes back to the admission's queue, so
        // that a request with many tests does not hold the places others wait for.
        let extra = || async {
            loop {
                tokio::select! {
                    ticket = self.admission.wait_extra() => {
                        let _ticket = ticket;
                        if !take().await? {
                            return Ok::<(), SandboxError>(());
                        }
                    }
                    _ = all_taken.cancelled() => return Ok(()),
                }
            }
        };
        let helpers = n.min(self.admission.capacity()).saturating_sub(1);
        let extras = futures_util::future::join_all((0..helpers).map(|_| extra()));
        let (first, rest) = tokio::join!(worker(), extras);
        first?;
        rest.into_iter().collect::<Result<Vec<()>, _>>()?;
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(results
            .into_iter()
            .zip(&plan.judging.tests)
            .map(|(r, t)| r.unwrap_or_else(|| skipped(t)))
            .collect())
    }

    /// Runs and judges one test.
    async fn one_test(
        &self,
        plan: &Plan<'_>,
        test: &ValidatedTest,
    ) -> Result<TestResult, SandboxError> {
        if let Some(interactor) = &plan.interactor {
            return self.interactive(plan, test, interactor).await;
        }
        let req = plan.req;
        let spec = submission_spec(
            req,
            req.run_cmd_for(&test.limits),
            test.limits,
            test.stdin.clone(),
            req.output_mode,
        );
        let raw = self
            .run_step(&req.profile.profile, &plan.files, &spec)
            .await?;
        let mut result = TestResult {
            name: test.name.clone(),
            verdict: Verdict::Accepted,
            message: None,
            run: None,
            checker: None,
            interactor: None,
        };
        if raw.status != StepStatus::Ok {
            result.verdict = Verdict::Step(raw.status);
        } else {
            let expected = test.expected.as_deref().unwrap_or_default();
            // A program judge is always compiled by now (`judge` made `plan.checker`).
            match (&plan.checker, &plan.judging.judge) {
                (Some(checker), _) => {
                    let inputs = [&test.stdin[..], &raw.stdout[..], expected];
                    let (step, verdict, message) = self.check(plan, checker, inputs).await?;
                    result.verdict = verdict;
                    result.message = message;
                    result.checker = Some(step);
                }
                (None, Judge::Compare(how)) => match compare(*how, expected, &raw.stdout) {
                    Compared::Accepted => {}
                    Compared::WrongAnswer(m) => {
                        result.verdict = Verdict::WrongAnswer;
                        result.message = Some(m);
                    }
                },
                (None, _) => {}
            }
        }
        result.run = Some(encode(raw, plan.req.output_encoding));
        Ok(result)
    }

    /// Runs the checker program on a test's input, output and expected output.
    async fn check(
        &self,
        plan: &Plan<'_>,
        checker: &Ready<'_>,
        inputs: [&[u8]; 3],
    ) -> Result<(StepResult, Verdict, Option<String>), SandboxError> {
        let creq = &checker.program.request;
        let extra = judge_files(inputs);
        let files: Vec<&BoxFile> = checker.files.iter().chain(&extra).collect();
        let raw = self
            .run_step(&creq.profile.profile, &files, &judge_spec(creq))
            .await?;
        let (verdict, message) = judged_by_exit("checker", &raw);
        Ok((encode(raw, plan.req.output_encoding), verdict, message))
    }
}

fn skipped(test: &ValidatedTest) -> TestResult {
    TestResult {
        name: test.name.clone(),
        verdict: Verdict::Skipped,
        message: None,
        run: None,
        checker: None,
        interactor: None,
    }
}

/// The answer when a checker or interactor cannot judge: nothing of the submission is run.
fn failed_judge(compile: Option<StepResult>, message: String) -> RunResponse {
    RunResponse {
        id: uuid::Uuid::new_v4(),
        status: RunStatus::Step(StepStatus::InternalError),
        compile,
        run: None,
        tests: None,
        summary: None,
        message: Some(message),
    }
}
