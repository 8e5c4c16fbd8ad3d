//! A request with tests: compile once, then run each test in its own fresh container and
//! judge its output (a built-in comparison, a checker program, or an interactor that talks
//! to the submission while it runs). Tests run in parallel on the free places of the
//! admission, and are answered in the request's order.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::checker::{compare, Compared};
use super::{
    encode, env_list, files_do_not_fit, internal_error, submission_spec, Build, Runner, StepKind,
};
use crate::judge::{summarize, Judge, JudgeProgram, Judging, TestResult, ValidatedTest, Verdict};
use crate::request::{wire_name, RunResponse, RunStatus, StepResult, StepStatus, ValidatedRequest};
use warmbox_sandbox::{BoxFile, OutputMode, Piped, SandboxError, StepOutcome, StepSpec};

/// The files a checker finds in its `/box`, and the arguments it is given, testlib's order.
pub const CHECKER_FILES: [&str; 3] = ["input.txt", "output.txt", "answer.txt"];

/// Most of a checker's or interactor's stderr quoted in a test's message, bytes.
const MESSAGE_BYTES: usize = 1024;

/// A judge program compiled and ready: its request and its files.
struct Ready<'a> {
    program: &'a JudgeProgram,
    files: Arc<Vec<BoxFile>>,
}

/// What every test of one request shares.
struct Plan<'a> {
    req: &'a ValidatedRequest,
    judging: &'a Judging,
    files: Vec<&'a BoxFile>,
    checker: Option<Ready<'a>>,
    interactor: Option<Ready<'a>>,
}

impl Runner {
    /// Runs and judges `judging`'s tests of `req`, whose run starts with `files`.
    pub(super) async fn judge(
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

    /// Runs the submission and the interactor of one test side by side, each one's stdout
    /// the other's stdin; the interactor's exit code judges.
    async fn interactive(
        &self,
        plan: &Plan<'_>,
        test: &ValidatedTest,
        interactor: &Ready<'_>,
    ) -> Result<TestResult, SandboxError> {
        let req = plan.req;
        let profile = &req.profile.profile;
        let ireq = &interactor.program.request;
        let iprofile = &ireq.profile.profile;
        // Its stdout is the interactor's: only stderr is kept.
        let spec = submission_spec(
            req,
            req.run_cmd_for(&test.limits),
            test.limits,
            Vec::new(),
            OutputMode::Separate,
        );
        let mut ispec = judge_spec(ireq);
        // The interactor waits on the submission: it must outlast the test's wall limit
        // (by a second, to see the end and say so), or a slow but correct submission
        // would lose its interactor first.
        ispec.limits.wall_ms = ispec
            .limits
            .wall_ms
            .max(test.limits.wall_ms.saturating_add(INTERACTOR_WALL_SLACK_MS));
        let expected = test.expected.as_deref().unwrap_or_default();
        let extra = judge_files([&test.stdin[..], b"", expected]);
        let ifiles: Vec<&BoxFile> = interactor.files.iter().chain(&extra).collect();

        if let Some(s) = files_do_not_fit(&plan.files, &test.limits) {
            return Ok(TestResult {
                name: test.name.clone(),
                verdict: Verdict::Step(s.status),
                message: None,
                run: Some(encode(s, req.output_encoding)),
                checker: None,
                interactor: None,
            });
        }
        if let Some(i) = files_do_not_fit(&ifiles, &ireq.limits) {
            let (verdict, message) = judged_by_exit("interactor", &i);
            return Ok(TestResult {
                name: test.name.clone(),
                verdict,
                message,
                run: None,
                checker: None,
                interactor: Some(encode(i, req.output_encoding)),
            });
        }
        // As for a single step (`Runner::in_container`): a pair whose files could not be
        // written ran nothing of the request, so it is tried once more with another pair.
        let mut retried = false;
        let ready = loop {
            let mut sub = self.container(profile, StepKind::Run, &test.limits).await?;
            let mut int = match self.container(iprofile, StepKind::Run, &ireq.limits).await {
                Ok(c) => c,
                Err(e) => {
                    self.finish(sub).await;
                    return Err(e);
                }
            };
            let written = async {
                sub.write_files(&plan.files, spec.limits.disk_mb << 20)
                    .await?;
                int.write_files(&ifiles, ispec.limits.disk_mb << 20).await
            }
            .await;
            match written {
                Ok(()) => break Ok((sub, int)),
                Err(e) => {
                    self.finish(sub).await;
                    self.finish(int).await;
                    if retried {
                        break Err(e);
                    }
                    tracing::warn!(error = %e, "interactive pair failed before its jobs; trying another");
                    retried = true;
                }
            }
        };
        let (s, i, closed) = match ready {
            Ok((mut sub, mut int)) => {
                let run = async {
                    let (to_sub, from_int) = pipe()?;
                    let (to_int, from_sub) = pipe()?;
                    let watch = Watch::new(&from_int, &to_int)?;
                    let sub_io = Piped {
                        stdin: to_sub,
                        stdout: from_sub,
                    };
                    let int_io = Piped {
                        stdin: to_int,
                        stdout: from_int,
                    };
                    // What the submission had closed is read the moment the interactor's
                    // step ends, and the watch's copies closed right after, so that the
                    // submission then sees the interactor's end.
                    let int_run = async {
                        let i = int.run_piped(&ispec, int_io).await;
                        (i, watch.closed())
                    };
                    let (s, (i, closed)) = tokio::join!(sub.run_piped(&spec, sub_io), int_run);
                    Ok::<_, SandboxError>((
                        s.unwrap_or_else(|e| internal_error(&e)),
                        i.unwrap_or_else(|e| internal_error(&e)),
                        closed,
                    ))
                };
                let outcome = run.await;
                self.finish(sub).await;
                self.finish(int).await;
                outcome
                    .unwrap_or_else(|e| (internal_error(&e), internal_error(&e), Closed::default()))
            }
            Err(e) => (internal_error(&e), internal_error(&e), Closed::default()),
        };
        let (verdict, message) = interactive_verdict(&s, &i, closed);
        Ok(TestResult {
            name: test.name.clone(),
            verdict,
            message,
            run: Some(encode(s, req.output_encoding)),
            checker: None,
            interactor: Some(encode(i, req.output_encoding)),
        })
    }
}

/// How much longer than the test's wall limit its interactor may run, at least.
const INTERACTOR_WALL_SLACK_MS: u64 = 1000;

/// What the submission had closed of its ends of the two pipes while its interactor ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Closed {
    /// Its stdin, the interactor's stdout, had no reader left: writing to it gives the
    /// interactor SIGPIPE or EPIPE.
    input: bool,
    /// Its stdout, the interactor's stdin, had no writer left: the interactor reads
    /// end-of-file.
    output: bool,
}

/// The server's own copies of the interactor's ends of the two pipes, only to learn
/// (with `poll`, which neither reads nor writes) whether the submission had closed its
/// ends before the interactor's step ended. Holding them also means that neither the
/// interactor's exit nor its closing its own ends reaches the submission (as end-of-file
/// or a broken pipe) before that look: whatever the submission closed by then, it closed
/// on its own, not because the interactor had gone. Neither program sees an extra reader
/// or writer in what it reads or writes; only the end-of-file or broken pipe the
/// submission gets from its interactor comes when the interactor's step ends (its exit
/// reported), not when its process ends.
struct Watch {
    /// A copy of the interactor's stdout, the write end of the pipe the submission reads.
    to_sub: OwnedFd,
    /// A copy of the interactor's stdin, the read end of the pipe the submission writes.
    from_sub: OwnedFd,
}

impl Watch {
    fn new(int_stdout: &OwnedFd, int_stdin: &OwnedFd) -> Result<Self, SandboxError> {
        let copy = |fd: &OwnedFd, which: &str| {
            fd.try_clone().map_err(|source| SandboxError::Host {
                what: format!("copy of the interactor's {which} for an interactive test"),
                source,
            })
        };
        Ok(Self {
            to_sub: copy(int_stdout, "stdout")?,
            from_sub: copy(int_stdin, "stdin")?,
        })
    }

    /// What the submission has closed by now; the copies are closed after the look.
    fn closed(self) -> Closed {
        let pfd = |fd: &OwnedFd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        let mut fds = [pfd(&self.to_sub), pfd(&self.from_sub)];
        // SAFETY: `fds` is a valid array of two pollfd on fds that `self` keeps open; a
        // zero timeout never blocks.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, 0) };
        if r < 0 {
            // Nothing learnt: every failure of the interactor stays its own.
            tracing::warn!(error = %std::io::Error::last_os_error(), "poll of an interactive test's pipes");
            return Closed::default();
        }
        // A pipe's write end polls POLLERR once it has no reader, its read end POLLHUP
        // once it has no writer (`pipe_poll`); neither comes back on an unnamed pipe.
        Closed {
            input: fds[0].revents & libc::POLLERR != 0,
            output: fds[1].revents & libc::POLLHUP != 0,
        }
    }
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
fn interactive_verdict(
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
/// [`Watch`]): the interactor killed by SIGPIPE with the submission's stdin closed (its
/// only reader), or exited with a code other than testlib's 0, 1, 2 (say on EPIPE, or on
/// end-of-file) after the submission had closed its stdin or its stdout. Any other end of
/// an interactor (another signal such as `abort()`, a limit, a program that did not
/// start), or a failure while the submission kept both ends open, is its own.
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

/// The files a checker or interactor finds in its `/box`: the test's input, the
/// submission's output, the expected output ([`CHECKER_FILES`]).
fn judge_files(contents: [&[u8]; 3]) -> Vec<BoxFile> {
    CHECKER_FILES
        .iter()
        .zip(contents)
        .map(|(name, content)| BoxFile {
            path: name.to_string(),
            content: content.to_vec(),
            executable: false,
        })
        .collect()
}

/// A checker's or interactor's step: its run command with the three file names, its own
/// env and limits, its output kept apart.
fn judge_spec(jreq: &ValidatedRequest) -> StepSpec {
    let mut argv = jreq.run_cmd.clone();
    argv.extend(CHECKER_FILES.iter().map(|s| s.to_string()));
    StepSpec {
        argv,
        env: env_list(&jreq.env),
        limits: jreq.limits,
        cpu_cores: jreq.profile.profile.cpu_cores,
        stdin: Vec::new(),
        output: OutputMode::Separate,
    }
}

/// A blocking pipe (read end, write end), close-on-exec: the ends go to two jobs.
fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SandboxError::Host {
        what: "pipe for an interactive test".into(),
        source: e.into(),
    })
}

/// A checker's or interactor's verdict from its exit code, testlib's convention: 0
/// accepted, 1 wrong answer, 2 presentation error; anything else (another code, a signal,
/// a limit) is its own failure, not the submission's.
fn judged_by_exit(role: &str, step: &StepOutcome) -> (Verdict, Option<String>) {
    let said = clip(&step.stderr);
    let said = (!said.is_empty()).then_some(said);
    let r = step;
    match (r.status, r.exit_code) {
        (StepStatus::Ok, _) => (Verdict::Accepted, said),
        (StepStatus::RuntimeError, Some(1)) => (Verdict::WrongAnswer, said),
        (StepStatus::RuntimeError, Some(2)) => (Verdict::PresentationError, said),
        (status, code) => {
            let how = match code {
                Some(c) => format!("exited with {c}"),
                None => wire_name(&status),
            };
            let detail = match (&r.message, said) {
                (Some(m), _) => format!(": {m}"),
                (None, Some(s)) => format!(": {s}"),
                (None, None) => String::new(),
            };
            (
                Verdict::Step(StepStatus::InternalError),
                Some(format!("the {role} failed ({how}){detail}")),
            )
        }
    }
}

/// At most [`MESSAGE_BYTES`] of `bytes`, as text, trimmed.
fn clip(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MESSAGE_BYTES)];
    let mut s = String::from_utf8_lossy(cut).trim().to_string();
    if bytes.len() > MESSAGE_BYTES {
        s.push('…');
    }
    s
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

    #[test]
    fn the_watch_sees_what_the_other_side_closed_and_then_lets_go() {
        let (to_sub, from_int) = pipe().unwrap();
        let (to_int, from_sub) = pipe().unwrap();
        let watch = Watch::new(&from_int, &to_int).unwrap();
        assert_eq!(watch.closed(), Closed::default());

        let watch = Watch::new(&from_int, &to_int).unwrap();
        drop(to_sub);
        assert_eq!(
            watch.closed(),
            Closed {
                input: true,
                output: false
            }
        );
        let watch = Watch::new(&from_int, &to_int).unwrap();
        drop(from_sub);
        assert_eq!(
            watch.closed(),
            Closed {
                input: true,
                output: true
            }
        );

        // After the look its copies are closed: once the interactor's stdout is, the
        // submission reads end-of-file.
        let (to_sub, from_int) = pipe().unwrap();
        let (to_int, _from_sub) = pipe().unwrap();
        Watch::new(&from_int, &to_int).unwrap().closed();
        drop(from_int);
        let mut buf = [0u8; 1];
        assert_eq!(nix::unistd::read(&to_sub, &mut buf), Ok(0));
    }
}
