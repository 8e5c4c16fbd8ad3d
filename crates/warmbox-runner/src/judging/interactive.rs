//! An interactive test: the submission and its interactor run side by side in two
//! containers, each one's stdout the other's stdin; the interactor's exit code judges.

use std::os::fd::{AsRawFd, OwnedFd};

use super::checker::{judge_files, judge_spec, judged_by_exit};
use super::run::{Plan, Ready};
use super::spec::ValidatedTest;
use super::verdict::{interactive_verdict, Closed, TestResult, Verdict};
use crate::runner::{encode, files_do_not_fit, internal_error, submission_spec, Runner, StepKind};
use warmbox_sandbox::{BoxFile, OutputMode, Piped, SandboxError};

impl Runner {
    /// Runs the submission and the interactor of one test side by side, each one's stdout
    /// the other's stdin; the interactor's exit code judges.
    pub(super) async fn interactive(
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

/// A blocking pipe (read end, write end), close-on-exec: the ends go to two jobs.
fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SandboxError::Host {
        what: "pipe for an interactive test".into(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
