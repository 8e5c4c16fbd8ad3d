//! Judging end to end: tests per submission with each verdict, every checker (a checker
//! program that crashes included), interactive problems, the order and parallelism of
//! tests, `stop_on_first_failure` and the compile cache. (The requests that are refused need
//! no engine: crates/warmbox-runner/tests/validation.rs.)

mod common;

use serde_json::{json, Value};
use warmbox_runner::judging::{TestResult, Verdict};
use warmbox_runner::request::{RunResponse, RunStatus, StepStatus};

fn py(code: &str) -> Value {
    json!([{"name": "main.py", "content": code}])
}

/// (name, verdict, message) of each test.
fn verdicts(r: &RunResponse) -> Vec<(String, Verdict, Option<String>)> {
    r.tests
        .as_ref()
        .unwrap_or_else(|| panic!("no tests in {r:#?}"))
        .iter()
        .map(|t: &TestResult| (t.name.clone(), t.verdict, t.message.clone()))
        .collect()
}

fn v(name: &str, verdict: Verdict, message: Option<&str>) -> (String, Verdict, Option<String>) {
    (name.to_string(), verdict, message.map(str::to_string))
}

#[tokio::test]
async fn each_verdict_in_the_requests_order_with_a_summary() {
    let Some(h) = common::harness() else { return };
    let code = "import sys\n\
                n = int(input())\n\
                if n == 3:\n    while True: pass\n\
                if n == 4:\n    x = bytearray(512 << 20)\n\
                if n == 5:\n    sys.exit(3)\n\
                print(n * 2)\n";
    let r = h
        .run(json!({
            "profile": "python3",
            "files": py(code),
            "tests": [
                {"name": "ok", "stdin": "1\n", "expected_stdout": "2\n"},
                {"name": "wrong", "stdin": "2\n", "expected_stdout": "5\n"},
                {"name": "slow", "stdin": "3\n", "expected_stdout": "6\n", "limits": {"cpu_ms": 300}},
                {"name": "big", "stdin": "4\n", "expected_stdout": "8\n", "limits": {"memory_mb": 64}},
                {"name": "exit", "stdin": "5\n", "expected_stdout": "10\n"},
                {"stdin_base64": "Ng==", "expected_stdout_base64": "MTIK"},
            ],
        }))
        .await;
    assert_eq!(
        verdicts(&r),
        vec![
            v("ok", Verdict::Accepted, None),
            v(
                "wrong",
                Verdict::WrongAnswer,
                Some("line 1: expected `5`, got `4`")
            ),
            v("slow", Verdict::Step(StepStatus::TimeLimit), None),
            v("big", Verdict::Step(StepStatus::MemoryLimit), None),
            v("exit", Verdict::Step(StepStatus::RuntimeError), None),
            v("6", Verdict::Accepted, None),
        ]
    );
    assert_eq!(r.status, RunStatus::WrongAnswer);
    assert!(r.run.is_none() && r.compile.is_none());
    let s = r.summary.as_ref().expect("summary");
    assert_eq!(
        (s.verdict, s.total, s.accepted, s.failed, s.skipped),
        (Verdict::WrongAnswer, 6, 2, 4, 0)
    );
    let tests = r.tests.as_ref().expect("tests");
    assert_eq!(tests[0].run.as_ref().expect("run").stdout, "2\n");
    assert_eq!(tests[4].run.as_ref().expect("run").exit_code, Some(3));
    let slow = tests[2].run.as_ref().expect("run");
    assert!(s.max_cpu_ms >= slow.usage.cpu_ms && slow.usage.cpu_ms >= 300.0);
    let big = tests[3].run.as_ref().expect("run").usage.memory_peak_bytes;
    assert!(s.max_memory_bytes >= big && big >= 60 << 20, "peak {big}");
}

#[tokio::test]
async fn the_built_in_checkers_compare_as_documented() {
    let Some(h) = common::harness() else { return };
    // Prints "1.0000001  2\r\n\n\n" whatever the input.
    let files = py("import sys\nsys.stdout.write('1.0000001  2\\r\\n\\n\\n')\n");
    let judge = |checker: Value, expected: &'static str| {
        let files = files.clone();
        async move {
            let mut req = json!({"profile": "python3", "files": files,
                "tests": [{"expected_stdout": expected}]});
            if !checker.is_null() {
                req["checker"] = checker;
            }
            let r = h.run(req).await;
            verdicts(&r).remove(0)
        }
    };
    let ok = v("1", Verdict::Accepted, None);
    // lines (the default): trailing whitespace and blank lines do not matter, inner do.
    assert_eq!(judge(Value::Null, "1.0000001  2").await, ok);
    assert_eq!(
        judge(json!({"type": "lines"}), "1.0000001 2").await,
        v(
            "1",
            Verdict::WrongAnswer,
            Some("line 1: expected `1.0000001 2`, got `1.0000001  2`")
        )
    );
    // exact: every byte.
    assert_eq!(
        judge(json!({"type": "exact"}), "1.0000001  2\r\n\n\n").await,
        ok
    );
    assert_eq!(
        judge(json!({"type": "exact"}), "1.0000001  2\n").await.1,
        Verdict::WrongAnswer
    );
    // tokens: any whitespace between.
    assert_eq!(judge(json!({"type": "tokens"}), "1.0000001\n2").await, ok);
    assert_eq!(
        judge(json!({"type": "tokens"}), "1 2").await.1,
        Verdict::WrongAnswer
    );
    // float: within abs or rel of the expected number.
    assert_eq!(judge(json!({"type": "float"}), "1 2").await, ok);
    assert_eq!(
        judge(json!({"type": "float", "abs": 1e-9, "rel": 1e-9}), "1 2")
            .await
            .1,
        Verdict::WrongAnswer
    );
    assert_eq!(
        judge(json!({"type": "float", "abs": 0, "rel": 2e-7}), "1 2").await,
        ok
    );
    assert_eq!(
        judge(
            json!({"type": "float", "abs": 0, "rel": 2e-7}),
            "1 2.0000001"
        )
        .await,
        ok
    );
    assert_eq!(
        judge(json!({"type": "float"}), "1 3").await.1,
        Verdict::WrongAnswer
    );
}

/// A testlib-style checker: the output must be a positive multiple of the input.
const MULTIPLE_CHECKER: &str = r#"
import sys
inp, out, ans = [open(f).read() for f in sys.argv[1:4]]
if ans.strip() != "any multiple":
    sys.exit(5)
o = out.split()
if not o:
    sys.exit(2)
if int(o[0]) > 0 and int(o[0]) % int(inp) == 0:
    sys.exit(0)
print("not a multiple of", inp.strip(), file=sys.stderr)
sys.exit(1)
"#;

#[tokio::test]
async fn a_checker_program_judges_with_testlib_exit_codes() {
    let Some(h) = common::harness() else { return };
    let solution = "n = int(input())\nprint(n * 3 if n != 7 else '')\n";
    let r = h
        .run(json!({
            "profile": "python3",
            "files": py(solution),
            "checker": {"type": "program", "profile": "python3", "files": py(MULTIPLE_CHECKER)},
            "tests": [
                {"stdin": "5", "expected_stdout": "any multiple"},
                {"stdin": "7", "expected_stdout": "any multiple"},
                {"stdin": "4", "expected_stdout": "any multiple"},
            ],
        }))
        .await;
    assert_eq!(
        verdicts(&r),
        vec![
            v("1", Verdict::Accepted, None),
            v("2", Verdict::PresentationError, None),
            v("3", Verdict::Accepted, None),
        ]
    );
    let tests = r.tests.as_ref().expect("tests");
    assert_eq!(
        tests[1].checker.as_ref().expect("checker step").exit_code,
        Some(2)
    );

    // A wrong answer carries the checker's stderr as its message.
    let r = h
        .run(json!({
            "profile": "python3",
            "files": py("print(int(input()) + 1)\n"),
            "checker": {"type": "program", "profile": "python3", "files": py(MULTIPLE_CHECKER)},
            "tests": [{"stdin": "5", "expected_stdout": "any multiple"}],
        }))
        .await;
    assert_eq!(
        verdicts(&r),
        vec![v("1", Verdict::WrongAnswer, Some("not a multiple of 5"))]
    );
}

#[tokio::test]
async fn a_checker_that_fails_is_the_checkers_fault() {
    let Some(h) = common::harness() else { return };
    // Exit code 5 (the checker's own "fail"), and a crash by signal.
    let r = h
        .run(json!({
            "profile": "python3",
            "files": py("print(10)\n"),
            "checker": {"type": "program", "profile": "python3", "files": py(MULTIPLE_CHECKER)},
            "tests": [{"stdin": "5", "expected_stdout": "no such answer"}],
        }))
        .await;
    assert_eq!(
        verdicts(&r),
        vec![v(
            "1",
            Verdict::Step(StepStatus::InternalError),
            Some("the checker failed (exited with 5)")
        )]
    );
    assert_eq!(r.status, RunStatus::Step(StepStatus::InternalError));
    assert_eq!(
        r.tests.as_ref().expect("tests")[0]
            .run
            .as_ref()
            .expect("run")
            .status,
        StepStatus::Ok,
        "the submission itself ran fine"
    );
    let crash = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n";
    let r = h
        .run(json!({
            "profile": "python3",
            "files": py("print(10)\n"),
            "checker": {"type": "program", "profile": "python3", "files": py(crash)},
            "tests": [{"stdin": "5"}],
        }))
        .await;
    assert_eq!(
        verdicts(&r),
        vec![v(
            "1",
            Verdict::Step(StepStatus::InternalError),
            Some("the checker failed (signaled)")
        )]
    );
    // A checker that does not compile judges nothing.
    let r = h
        .run(json!({
            "profile": "python3",
            "files": py("print(10)\n"),
            "checker": {"type": "program", "profile": "c",
                        "files": [{"name": "main.c", "content": "int main( {"}]},
            "tests": [{"stdin": "5"}],
        }))
        .await;
    assert_eq!(r.status, RunStatus::Step(StepStatus::InternalError));
    assert!(r.tests.is_none());
    let m = r.message.expect("message");
    assert!(
        m.starts_with("the checker did not compile (runtime_error): "),
        "{m}"
    );
}

const GUESS_INTERACTOR: &str = r#"
import sys
secret = int(open(sys.argv[1]).read())
for _ in range(20):
    g = int(input())
    if g == secret:
        print("=", flush=True)
        sys.exit(0)
    print("<" if secret < g else ">", flush=True)
print("no guesses left", file=sys.stderr)
sys.exit(1)
"#;

/// Guesses by bisection, from 1..1000, as GUESS_INTERACTOR answers.
const BISECT: &str = "lo, hi = 1, 1000\n\
    while True:\n    m = (lo + hi) // 2\n    print(m, flush=True)\n    r = input()\n\
    \x20   if r == '=': break\n    if r == '<': hi = m - 1\n    else: lo = m + 1\n";

#[tokio::test]
async fn interactive_guess_the_number() {
    let Some(h) = common::harness() else { return };
    let bisect = BISECT;
    let tests = json!([{"stdin": "1"}, {"stdin": "777"}, {"stdin": "1000"}]);
    let interactor = json!({"profile": "python3", "files": py(GUESS_INTERACTOR)});
    let r = h
        .run(json!({"profile": "python3", "files": py(bisect),
                    "interactor": interactor, "tests": tests}))
        .await;
    assert_eq!(
        verdicts(&r),
        vec![
            v("1", Verdict::Accepted, None),
            v("2", Verdict::Accepted, None),
            v("3", Verdict::Accepted, None),
        ]
    );
    let t = &r.tests.as_ref().expect("tests")[1];
    let (run, int) = (
        t.run.as_ref().expect("run"),
        t.interactor.as_ref().expect("interactor"),
    );
    assert_eq!((run.status, int.status), (StepStatus::Ok, StepStatus::Ok));
    assert!(run.usage.cpu_ms > 0.0 && int.usage.cpu_ms > 0.0);
    assert_eq!(
        run.stdout, "",
        "the submission's stdout went to the interactor"
    );

    // Always guessing 500: wrong for every secret but 500 (it ends quietly when the
    // interactor gives up; a crash of its own would be its verdict instead).
    let stubborn = "import os\ntry:\n    while True:\n        print(500, flush=True)\n\
                    \x20       if input() == '=': break\n\
                    except (EOFError, BrokenPipeError):\n    os._exit(0)\n";
    let r = h
        .run(json!({"profile": "python3", "files": py(stubborn),
                    "interactor": interactor,
                    "tests": [{"stdin": "500"}, {"stdin": "3"}]}))
        .await;
    assert_eq!(
        verdicts(&r),
        vec![
            v("1", Verdict::Accepted, None),
            v("2", Verdict::WrongAnswer, Some("no guesses left")),
        ]
    );
    assert_eq!(r.status, RunStatus::WrongAnswer);
}

#[tokio::test]
async fn interactive_verdicts_follow_a_fixed_order() {
    let Some(h) = common::harness() else { return };
    let bisect = BISECT;
    let guess = json!({"profile": "python3", "files": py(GUESS_INTERACTOR)});
    let one = |limits: Value| json!([{"stdin": "777", "limits": limits}]);
    // A submission past its CPU limit: its interactor then reads end-of-file and calls
    // it a wrong answer, but the limit is the verdict.
    let r = h
        .run(
            json!({"profile": "python3", "files": py("while True:\n    pass\n"),
                    "interactor": guess, "tests": one(json!({"cpu_ms": 300}))}),
        )
        .await;
    assert_eq!(
        verdicts(&r),
        vec![v("1", Verdict::Step(StepStatus::TimeLimit), None)]
    );
    // One that exits with an error before it says anything: its own runtime error (and
    // not the wrong answer its interactor then gives).
    let r = h
        .run(
            json!({"profile": "python3", "files": py("import sys\nsys.exit(3)\n"),
                    "interactor": guess, "tests": one(json!({}))}),
        )
        .await;
    assert_eq!(
        verdicts(&r),
        vec![v("1", Verdict::Step(StepStatus::RuntimeError), None)]
    );
    // An interactor that fails leaves the submission reading end-of-file, which then
    // fails too: the judge's fault, with what it said.
    let broken = "import sys\nprint('FAIL bad test data', file=sys.stderr)\nsys.exit(3)\n";
    let r = h
        .run(json!({"profile": "python3", "files": py(bisect),
                    "interactor": {"profile": "python3", "files": py(broken)},
                    "tests": one(json!({}))}))
        .await;
    assert_eq!(
        verdicts(&r),
        vec![v(
            "1",
            Verdict::Step(StepStatus::InternalError),
            Some("the interactor failed (exited with 3): FAIL bad test data")
        )]
    );
    // A slow submission within the test's wall limit: its interactor, whose own wall
    // limit is shorter, waits for it anyway.
    let slow = format!("import time\ntime.sleep(1.5)\n{bisect}");
    let r = h
        .run(json!({"profile": "python3", "files": py(&slow),
                    "interactor": {"profile": "python3", "files": py(GUESS_INTERACTOR),
                                   "limits": {"wall_ms": 1000}},
                    "tests": one(json!({"wall_ms": 5000}))}))
        .await;
    assert_eq!(verdicts(&r), vec![v("1", Verdict::Accepted, None)]);
}

fn c(code: &str) -> Value {
    json!([{"name": "main.c", "content": code}])
}

/// An interactor that writes to the submission until a write fails; SIGPIPE is left as
/// it is (it kills), or ignored (`write` fails with EPIPE and it exits with 3).
fn writing_interactor(ignore_sigpipe: bool) -> Value {
    let ignore = if ignore_sigpipe {
        "signal(SIGPIPE, SIG_IGN);"
    } else {
        ""
    };
    let code = format!(
        "#include <errno.h>\n#include <signal.h>\n#include <stdio.h>\n#include <string.h>\n\
         #include <unistd.h>\n\
         int main(void) {{ {ignore}\n\
           for (;;) if (write(1, \"1\\n\", 2) < 0) {{\n\
             fprintf(stderr, \"write: %s\\n\", strerror(errno)); return 3; }} }}\n"
    );
    c(&code)
}

/// Closes its stdin at once and exits with `code`, writing nothing.
fn closes_its_input_silently(code: i32) -> Value {
    c(&format!(
        "#include <unistd.h>\nint main(void) {{ close(0); return {code}; }}\n"
    ))
}

/// Closes its stdin at once, prints garbage and exits with `code`.
fn closes_its_input(code: i32) -> Value {
    c(&format!(
        "#include <stdio.h>\n#include <unistd.h>\n\
         int main(void) {{ close(0); printf(\"garbage\\n\"); return {code}; }}\n"
    ))
}

/// One interactive test (stdin "1") of the c programs `submission` and `interactor`
/// (their `files`).
async fn interact(
    h: &warmbox_testkit::harness::Harness,
    submission: Value,
    interactor: Value,
) -> RunResponse {
    h.run(json!({"profile": "c", "files": submission,
                 "interactor": {"profile": "c", "files": interactor},
                 "tests": [{"stdin": "1"}]}))
        .await
}

/// The one test, and so the run, is a wrong answer with `message`.
fn assert_wrong_answer(r: &RunResponse, message: &str) {
    assert_eq!(
        verdicts(r),
        vec![v("1", Verdict::WrongAnswer, Some(message))]
    );
    assert_eq!(r.status, RunStatus::WrongAnswer);
}

#[tokio::test]
async fn interactive_a_submission_that_closes_its_input_is_judged_not_the_interactor() {
    let Some(h) = common::harness() else { return };
    // The interactor writes without end; the submission closes its stdin, so the
    // interactor's next write kills it with SIGPIPE. The submission's doing: a wrong
    // answer (exit 0) or its own runtime error (exit 4), never the judge's fault.
    let r = interact(h, closes_its_input(0), writing_interactor(false)).await;
    assert_wrong_answer(
        &r,
        "the submission closed its input while the interactor was writing to it \
         (the interactor got SIGPIPE)",
    );
    let t = &r.tests.as_ref().expect("tests")[0];
    let (run, int) = (
        t.run.as_ref().expect("run"),
        t.interactor.as_ref().expect("interactor"),
    );
    // The submission's own end: its exit, or (when the interactor's end was reported
    // before the submission flushed its garbage) SIGPIPE; the verdict is the same.
    assert!(
        matches!(
            (run.status, run.exit_code, run.signal),
            (StepStatus::Ok, Some(0), None) | (StepStatus::Signaled, None, Some(libc::SIGPIPE))
        ),
        "{run:#?}"
    );
    assert_eq!(
        (int.status, int.signal),
        (StepStatus::Signaled, Some(libc::SIGPIPE))
    );
    // Its own failure is its verdict: it writes nothing, so nothing else can end it.
    let r = interact(h, closes_its_input_silently(4), writing_interactor(false)).await;
    assert_eq!(
        verdicts(&r),
        vec![v("1", Verdict::Step(StepStatus::RuntimeError), None)]
    );
}

#[tokio::test]
async fn interactive_an_interactor_that_gets_a_broken_pipe_judges_the_submission() {
    let Some(h) = common::harness() else { return };
    // The same interactor ignoring SIGPIPE: its write fails with EPIPE and it exits
    // with 3, after the server saw the submission's stdin closed.
    let r = interact(h, closes_its_input(0), writing_interactor(true)).await;
    assert_wrong_answer(
        &r,
        "the submission closed its end of the interaction while the interactor was \
         running; the interactor then exited with 3: write: Broken pipe",
    );
}

#[tokio::test]
async fn interactive_an_interactor_that_reads_end_of_file_judges_the_submission() {
    let Some(h) = common::harness() else { return };
    // A submission that ends without a word: the interactor reads end-of-file and exits
    // with 3.
    let reads = "#include <stdio.h>\n\
                 int main(void) { int x;\n\
                   if (scanf(\"%d\", &x) != 1) { fprintf(stderr, \"no answer\\n\"); return 3; }\n\
                   return x == 42 ? 0 : 1; }\n";
    let r = interact(h, c("int main(void) { return 0; }\n"), c(reads)).await;
    assert_wrong_answer(
        &r,
        "the submission closed its end of the interaction while the interactor was \
         running; the interactor then exited with 3: no answer",
    );
}

#[tokio::test]
async fn interactive_an_interactor_that_fails_on_its_own_is_the_judges_fault() {
    let Some(h) = common::harness() else { return };
    // The submission waits for a number; the interactor aborts, or exits with 3, before
    // it says anything. The submission's end-of-file comes only after the interactor's
    // end is seen, so it has closed nothing by then.
    let waits = c("#include <stdio.h>\n\
                   int main(void) { int x;\n\
                     if (scanf(\"%d\", &x) != 1) return 5;\n\
                     printf(\"%d\\n\", x); return 0; }\n");
    let cases = [
        (
            "#include <stdlib.h>\nint main(void) { abort(); }\n",
            "the interactor failed (signaled)",
        ),
        (
            "#include <stdio.h>\n\
             int main(void) { fprintf(stderr, \"bad test\\n\"); return 3; }\n",
            "the interactor failed (exited with 3): bad test",
        ),
    ];
    for (interactor, message) in cases {
        let r = interact(h, waits.clone(), c(interactor)).await;
        assert_eq!(
            verdicts(&r),
            vec![v(
                "1",
                Verdict::Step(StepStatus::InternalError),
                Some(message)
            )],
            "{interactor}"
        );
        let run = r.tests.as_ref().expect("tests")[0]
            .run
            .clone()
            .expect("run");
        assert_eq!(
            (run.status, run.exit_code),
            (StepStatus::RuntimeError, Some(5))
        );
    }
}

#[tokio::test]
async fn parallel_tests_keep_the_requests_order_and_stop_on_the_first_failure() {
    let Some(h) = common::harness() else { return };
    // Each test sleeps as many tenths of a second as its input says and prints when it
    // started and ended (the host's clock: no time namespace).
    let code = "import time\nn = int(input())\nt0 = time.time()\ntime.sleep(n / 10)\n\
                print(n, t0, time.time())\n";
    let sleeps = [6, 1, 4, 2, 5, 3];
    let tests: Vec<Value> = sleeps
        .iter()
        .map(|n| json!({"name": format!("t{n}"), "stdin": n.to_string()}))
        .collect();
    let r = h
        .run(
            json!({"profile": "python3", "files": py(code), "tests": tests,
                    "checker": {"type": "program", "profile": "bash",
                                "files": [{"name": "main.sh", "content": "exit 0"}]}}),
        )
        .await;
    let tests = r.tests.as_ref().expect("tests");
    let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["t6", "t1", "t4", "t2", "t5", "t3"]);
    let spans: Vec<(f64, f64)> = tests
        .iter()
        .map(|t| {
            let out = &t.run.as_ref().expect("run").stdout;
            let f: Vec<f64> = out
                .split_whitespace()
                .map(|x| x.parse().expect("number"))
                .collect();
            assert_eq!(f.len(), 3, "{out}");
            (f[1], f[2])
        })
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus > 1 {
        let overlap = spans
            .iter()
            .enumerate()
            .any(|(i, a)| spans.iter().skip(i + 1).any(|b| a.0 < b.1 && b.0 < a.1));
        assert!(overlap, "no two tests ran at the same time: {spans:?}");
    }

    // The first test fails at once while the second sleeps: the tests after them are
    // skipped (with one place, the second is skipped too).
    let code = "import time\nn = int(input())\ntime.sleep(n / 10)\nprint(n)\n";
    let r = h
        .run(
            json!({"profile": "python3", "files": py(code), "stop_on_first_failure": true,
                    "tests": [{"stdin": "0", "expected_stdout": "1"},
                              {"stdin": "10", "expected_stdout": "10"},
                              {"stdin": "0", "expected_stdout": "0"},
                              {"stdin": "0", "expected_stdout": "0"}]}),
        )
        .await;
    let second = if cpus > 1 {
        Verdict::Accepted
    } else {
        Verdict::Skipped
    };
    let got: Vec<Verdict> = verdicts(&r).into_iter().map(|t| t.1).collect();
    assert_eq!(
        got,
        [
            Verdict::WrongAnswer,
            second,
            Verdict::Skipped,
            Verdict::Skipped
        ]
    );
    let tests = r.tests.as_ref().expect("tests");
    assert!(tests[2].run.is_none());
    let s = r.summary.as_ref().expect("summary");
    assert_eq!((s.failed, s.skipped), (1, if cpus > 1 { 2 } else { 3 }));
}

#[tokio::test]
async fn the_compile_cache_compiles_identical_inputs_once() {
    let Some(h) = common::harness() else { return };
    // Unique to this run, so that no earlier compile is cached.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let src = format!(
        "#include <stdio.h>\n/* {tag} */\nint main(void) {{ int n; scanf(\"%d\", &n); printf(\"%d\\n\", n + 1); return 0; }}\n"
    );
    let req = json!({"profile": "c", "files": [{"name": "main.c", "content": src}],
                     "tests": [{"stdin": "1", "expected_stdout": "2"},
                               {"stdin": "41", "expected_stdout": "42"}]});
    let (entries, _) = h.runner.compile_cache().len_bytes();
    let first = h.run(req.clone()).await;
    assert_eq!(first.compile.as_ref().expect("compile").cached, Some(false));
    assert_eq!(first.status, RunStatus::Accepted);
    assert_eq!(h.runner.compile_cache().len_bytes().0, entries + 1);
    let second = h.run(req).await;
    let compile = second.compile.as_ref().expect("compile");
    assert_eq!(compile.cached, Some(true));
    assert_eq!(
        compile.usage,
        first.compile.as_ref().expect("compile").usage
    );
    assert_eq!(second.status, RunStatus::Accepted);
    assert_eq!(h.runner.compile_cache().len_bytes().0, entries + 1);
    // Not the same inputs: compiled again.
    let other = h
        .run(json!({"profile": "c",
                    "files": [{"name": "main.c", "content": src.replace("n + 1", "n + 2")}],
                    "stdin": "1"}))
        .await;
    assert_eq!(other.compile.as_ref().expect("compile").cached, Some(false));
    assert_eq!(other.run.as_ref().expect("run").stdout, "3\n");
    // A run step never says "cached".
    assert_eq!(other.run.as_ref().expect("run").cached, None);
}

#[tokio::test]
async fn compiled_files_that_do_not_fit_a_steps_limits_are_its_verdict() {
    let Some(h) = common::harness() else { return };
    // A 6 MiB initialised array: the binary carried into each run container is as big.
    let src = "#include <stdio.h>\nchar big[6 << 20] = {1};\nint main(void) { puts(\"hi\"); return big[0] - 1; }\n";
    let r = h
        .run(json!({"profile": "c", "files": [{"name": "main.c", "content": src}],
                    "tests": [{"name": "small", "stdin": "", "expected_stdout": "hi", "limits": {"memory_mb": 8}},
                              {"name": "roomy", "stdin": "", "expected_stdout": "hi"}]}))
        .await;
    assert_eq!(r.compile.as_ref().expect("compile").status, StepStatus::Ok);
    assert_eq!(
        verdicts(&r),
        vec![
            v("small", Verdict::Step(StepStatus::MemoryLimit), None),
            v("roomy", Verdict::Accepted, None)
        ]
    );
    let tests = r.tests.as_ref().expect("tests");
    let run = tests[0].run.as_ref().expect("run step");
    let size = run
        .message
        .as_deref()
        .and_then(|m| m.strip_prefix("the step's files in /box, "))
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{run:#?}"));
    assert!(size > 6 << 20, "{run:#?}");
    assert_eq!(
        run.message.as_deref(),
        Some(
            format!(
                "the step's files in /box, {size} bytes in all, do not fit in its memory_mb 8 \
                 (files count toward it, and 4 MiB stay free for the processes)"
            )
            .as_str()
        )
    );
    assert_eq!(run.usage.cpu_ms, 0.0, "it never ran: {run:#?}");
    // The same under an interactor: that test never starts, the other is judged.
    let guess_500 = "#include <stdio.h>\n#include <string.h>\nchar big[6 << 20] = {1};\n\
                     int main(void) { char r[8]; do { printf(\"500\\n\"); fflush(stdout); } \
                     while (scanf(\"%7s\", r) == 1 && strcmp(r, \"=\") != 0); return big[0] - 1; }\n";
    let r = h
        .run(
            json!({"profile": "c", "files": [{"name": "main.c", "content": guess_500}],
                    "interactor": {"profile": "python3", "files": py(GUESS_INTERACTOR)},
                    "tests": [{"name": "small", "stdin": "500", "limits": {"memory_mb": 8}},
                              {"name": "roomy", "stdin": "500"}]}),
        )
        .await;
    assert_eq!(
        verdicts(&r),
        vec![
            v("small", Verdict::Step(StepStatus::MemoryLimit), None),
            v("roomy", Verdict::Accepted, None)
        ]
    );
    let small = &r.tests.as_ref().expect("tests")[0];
    assert!(small.interactor.is_none(), "{small:#?}");
    let message = small.run.as_ref().and_then(|s| s.message.clone());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.starts_with("the step's files in /box, ")
                && m.ends_with(
                    " bytes in all, do not fit in its memory_mb 8 (files count toward it, \
                             and 4 MiB stay free for the processes)"
                )),
        "{small:#?}"
    );
    // The run of a single request: the disk.
    let r = h
        .run(
            json!({"profile": "c", "files": [{"name": "main.c", "content": src}],
                    "limits": {"disk_mb": 4}}),
        )
        .await;
    let run = r.run.as_ref().expect("run step");
    assert_eq!(run.status, StepStatus::FileSizeLimit, "{run:#?}");
    assert_eq!(
        run.message.as_deref(),
        Some(
            format!("the step's files in /box, {size} bytes in all, do not fit in its disk_mb 4")
                .as_str()
        )
    );
}
