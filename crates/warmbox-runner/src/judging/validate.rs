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

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::request::fixtures::{invalid, ok, refused, DEFAULTS};

    /// A python3 request with `main.py` and the fields of `extra`.
    fn req(extra: Value) -> RunRequest {
        let mut r = json!({"profile": "python3", "files": [{"name": "main.py", "content": ""}]});
        for (k, v) in extra.as_object().expect("an object") {
            r[k] = v.clone();
        }
        serde_json::from_value(r).unwrap_or_else(|e| panic!("request JSON: {e}"))
    }

    /// `n` tests that each expect "1".
    fn tests(n: usize) -> Value {
        Value::Array(vec![json!({"expected_stdout": "1"}); n])
    }

    /// A program of a judge in python3.
    fn program(files: Value) -> Value {
        json!({"profile": "python3", "files": files})
    }

    fn main_py() -> Value {
        json!([{"name": "main.py", "content": "x"}])
    }

    fn judging(extra: Value) -> Judging {
        ok(&req(extra)).judging.expect("the request has tests")
    }

    #[test]
    fn tests_are_checked_and_decoded() {
        let j = judging(json!({
            "limits": {"cpu_ms": 3000, "memory_mb": 512},
            "stop_on_first_failure": true,
            "tests": [
                {"stdin": "a\n", "expected_stdout": "b\n"},
                {"name": "bin", "stdin_base64": "AP8=", "expected_stdout_base64": "/wA=",
                 "limits": {"cpu_ms": 500, "stack_mb": 64}},
            ],
        }));
        assert!(j.stop_on_first_failure);
        assert!(matches!(j.judge, Judge::Compare(Comparison::Lines)));
        assert!(j.interactor.is_none());
        let [first, second] = &j.tests[..] else {
            panic!("two tests: {:?}", j.tests)
        };
        assert_eq!(first.name, "1", "a test's name defaults to its position");
        assert_eq!(
            (&first.stdin[..], first.expected.as_deref()),
            (&b"a\n"[..], Some(&b"b\n"[..]))
        );
        let request = Limits {
            cpu_ms: 3000,
            memory_mb: 512,
            ..DEFAULTS
        };
        assert_eq!(first.limits, request);
        assert_eq!(second.name, "bin");
        assert_eq!(
            (&second.stdin[..], second.expected.as_deref()),
            (&[0, 0xff][..], Some(&[0xff, 0][..]))
        );
        assert_eq!(
            second.limits,
            Limits {
                cpu_ms: 500,
                stack_mb: Some(64),
                ..request
            },
            "a test's limits over the request's"
        );
    }

    #[test]
    fn each_checker_judges_as_named() {
        let judge = |checker: Value| judging(json!({"tests": tests(1), "checker": checker})).judge;
        assert!(matches!(
            judge(json!({"type": "exact"})),
            Judge::Compare(Comparison::Exact)
        ));
        assert!(matches!(
            judge(json!({"type": "lines"})),
            Judge::Compare(Comparison::Lines)
        ));
        assert!(matches!(
            judge(json!({"type": "tokens"})),
            Judge::Compare(Comparison::Tokens)
        ));
        assert!(matches!(judge(json!({"type": "none"})), Judge::Accept));
        assert!(matches!(
            judge(json!({"type": "float", "abs": 0.5})),
            Judge::Compare(Comparison::Float { abs, rel }) if abs == 0.5 && rel == 1e-6
        ));
        match judge(json!({"type": "program", "profile": "py", "files": main_py(), "args": ["-q"]}))
        {
            Judge::Program(p) => {
                assert_eq!(p.request.profile.profile.name, "python3");
                assert_eq!(p.request.run_cmd, ["/usr/bin/python3", "main.py", "-q"]);
            }
            other => panic!("a program checker, got {other:?}"),
        }
    }

    #[test]
    fn only_a_comparison_needs_the_expected_output() {
        for checker in ["lines", "exact", "tokens", "float"] {
            invalid(
                &req(json!({"tests": [{"stdin": "1"}], "checker": {"type": checker}})),
                &format!(
                    "tests[0].expected_stdout: missing; checker {checker:?} compares the output \
                     with it (give expected_stdout or expected_stdout_base64, or use a program \
                     checker)"
                ),
            );
        }
        invalid(
            &req(json!({"tests": [{"expected_stdout": "1"}, {"stdin": "2"}]})),
            "tests[1].expected_stdout: missing; the default checker (lines) compares the output \
             with it (give expected_stdout or expected_stdout_base64, or use a program checker)",
        );
        let no_expected = json!([{"stdin": "1"}]);
        judging(json!({"tests": no_expected, "checker": {"type": "none"}}));
        judging(json!({"tests": no_expected,
                       "checker": {"type": "program", "profile": "python3", "files": main_py()}}));
        judging(json!({"tests": no_expected, "interactor": program(main_py())}));
    }

    #[test]
    fn judging_fields_without_tests_are_refused() {
        let stray = |field: &str| {
            format!(
                "{field}: applies to tests, and the request has none; give \"tests\": \
                 [{{\"stdin\": …, \"expected_stdout\": …}}]"
            )
        };
        invalid(
            &req(json!({"checker": {"type": "exact"}})),
            &stray("checker"),
        );
        invalid(
            &req(json!({"interactor": program(main_py())})),
            &stray("interactor"),
        );
        invalid(
            &req(json!({"stop_on_first_failure": true})),
            &stray("stop_on_first_failure"),
        );
        assert!(ok(&req(json!({}))).judging.is_none());
    }

    #[test]
    fn too_many_tests_are_refused() {
        invalid(
            &req(json!({"tests": tests(MAX_TESTS + 1)})),
            "tests: 1001 tests given; at most 1000",
        );
        assert_eq!(
            judging(json!({"tests": tests(MAX_TESTS)})).tests.len(),
            MAX_TESTS
        );
    }

    #[test]
    fn a_request_with_tests_has_no_stdin_of_its_own() {
        let message = "stdin: a request with tests takes each test's stdin; move it into the tests";
        invalid(&req(json!({"stdin": "1", "tests": tests(1)})), message);
        invalid(
            &req(json!({"stdin_base64": "MQ==", "tests": tests(1)})),
            message,
        );
    }

    #[test]
    fn test_names_are_short_and_unique() {
        let message = "tests[0].name: must be 1 to 128 bytes, or left out for the test's position";
        invalid(
            &req(json!({"tests": [{"name": "", "expected_stdout": "1"}]})),
            message,
        );
        let long = "n".repeat(MAX_TEST_NAME_BYTES + 1);
        invalid(
            &req(json!({"tests": [{"name": long, "expected_stdout": "1"}]})),
            message,
        );
        let longest = "n".repeat(MAX_TEST_NAME_BYTES);
        assert_eq!(
            judging(json!({"tests": [{"name": longest, "expected_stdout": "1"}]})).tests[0].name,
            longest
        );
        invalid(
            &req(json!({"tests": [{"name": "a", "expected_stdout": "1"},
                                  {"name": "a", "expected_stdout": "1"}]})),
            "tests[1].name: \"a\" is already the name of tests[0]; test names must be unique",
        );
        // A position is a name too.
        invalid(
            &req(
                json!({"tests": [{"name": "2", "expected_stdout": "1"}, {"expected_stdout": "1"}]}),
            ),
            "tests[1].name: \"2\" is already the name of tests[0]; test names must be unique",
        );
    }

    #[test]
    fn a_tests_input_and_output_are_text_or_base64() {
        invalid(
            &req(
                json!({"tests": [{"stdin": "a", "stdin_base64": "YQ==", "expected_stdout": "1"}]}),
            ),
            "tests[0].stdin, tests[0].stdin_base64: give one or the other, not both",
        );
        invalid(
            &req(json!({"tests": [{"expected_stdout": "a", "expected_stdout_base64": "YQ=="}]})),
            "tests[0].expected_stdout, tests[0].expected_stdout_base64: give one or the other, \
             not both",
        );
        invalid(
            &req(json!({"tests": [{"stdin_base64": "%%%", "expected_stdout": "1"}]})),
            "tests[0].stdin_base64: invalid base64 (Invalid symbol 37, offset 0.); use standard \
             base64 with padding",
        );
        invalid(
            &req(json!({"tests": [{"expected_stdout": "1"}, {"expected_stdout_base64": "YQ"}]})),
            "tests[1].expected_stdout_base64: invalid base64 (Invalid padding); use standard \
             base64 with padding",
        );
    }

    #[test]
    fn a_tests_limits_are_checked_over_the_requests() {
        let one = |limits: Value| {
            req(
                json!({"limits": {"cpu_ms": 3000}, "tests": [{"expected_stdout": "1", "limits": limits}]}),
            )
        };
        invalid(
            &one(json!({"disk_mb": 2})),
            "tests[0].limits.disk_mb: set disk_mb for the whole request, not per test",
        );
        invalid(
            &one(json!({"cpu_ms": 0})),
            "tests[0].limits.cpu_ms: 0 is not allowed; give a positive value or leave it out \
             for the request's 3000",
        );
        refused(
            &one(json!({"memory_mb": 2048})),
            RequestError::LIMIT_TOO_HIGH,
            "tests[0].limits.memory_mb: 2048 is above the maximum 1024 of profile python3",
        );
        invalid(
            &one(json!({"stack_mb": 300})),
            "tests[0].limits.stack_mb: 300 is above tests[0].limits.memory_mb 256; the stack is \
             part of the memory",
        );
    }

    #[test]
    fn float_tolerances_are_finite_and_not_negative() {
        invalid(
            &req(json!({"tests": tests(1), "checker": {"type": "float", "abs": -1}})),
            "checker.abs: must be a finite number >= 0, got -1",
        );
        invalid(
            &req(json!({"tests": tests(1), "checker": {"type": "float", "rel": -0.5}})),
            "checker.rel: must be a finite number >= 0, got -0.5",
        );
    }

    #[test]
    fn a_checker_or_interactor_is_checked_like_a_submission_naming_its_field() {
        let checker = |p: Value| {
            let mut c = p;
            c["type"] = json!("program");
            req(json!({"tests": tests(1), "checker": c}))
        };
        let interactor = |p: Value| req(json!({"tests": tests(1), "interactor": p}));
        invalid(
            &checker(program(json!([]))),
            "checker.files: empty; give the checker's source",
        );
        invalid(
            &interactor(program(json!([]))),
            "interactor.files: empty; give the interactor's source",
        );
        invalid(
            &checker(program(
                json!([{"name": "main.py", "content": ""}, {"name": "answer.txt", "content": ""}]),
            )),
            "checker.files[1].name: \"answer.txt\" is where warmbox puts the test's files \
             (input.txt, output.txt, answer.txt); rename it",
        );
        invalid(
            &interactor(program(json!([{"name": "input.txt", "content": ""}]))),
            "interactor.files[0].name: \"input.txt\" is where warmbox puts the test's files \
             (input.txt, output.txt, answer.txt); rename it",
        );
        // The program's own validation, its field named first, its code kept.
        refused(
            &checker(json!({"profile": "fortran77", "files": main_py()})),
            RequestError::UNKNOWN_PROFILE,
            "checker.profile: unknown profile \"fortran77\"; available profiles: java, python3",
        );
        refused(
            &interactor(json!({"profile": "ghost", "files": main_py()})),
            RequestError::PROFILE_UNAVAILABLE,
            "interactor.profile: ghost is not available on this host: required path /opt/ghost \
             is missing: No such file or directory (os error 2)",
        );
        refused(
            &checker(
                json!({"profile": "python3", "files": main_py(), "limits": {"memory_mb": 4096}}),
            ),
            RequestError::LIMIT_TOO_HIGH,
            "checker.limits.memory_mb: 4096 is above the maximum 1024 of profile python3",
        );
        invalid(
            &interactor(program(json!([{"name": "judge.py", "content": ""}]))),
            "interactor.files: no file is named \"main.py\"; profile python3 runs \"main.py\", \
             so name the entry file that way (or give cmd)",
        );
        invalid(
            &checker(json!({"profile": "python3", "files": main_py(), "args": ["a\u{0}"]})),
            "checker.args[0]: contains a NUL byte",
        );
    }

    #[test]
    fn an_interactive_problem_has_no_checker() {
        invalid(
            &req(json!({"tests": tests(1), "checker": {"type": "exact"},
                        "interactor": program(main_py())})),
            "checker: an interactive problem is judged by its interactor's exit code; leave \
             checker out",
        );
    }

    #[test]
    fn the_output_all_tests_may_keep_is_bounded() {
        let too_much = |n: usize, kept: u64| {
            format!(
                "tests: {n} tests may keep {kept} bytes of output (stdout and stderr up to \
                 limits.output_bytes each, and the checker's or interactor's up to its own), \
                 above the 268435456 a request may keep; lower limits.output_bytes or send \
                 fewer tests"
            )
        };
        let big = 16 << 20;
        invalid(
            &req(json!({"tests": tests(20), "limits": {"output_bytes": big}})),
            &too_much(20, 20 * 2 * big),
        );
        // 8 tests of 16 MiB each way are exactly the bound.
        judging(json!({"tests": tests(8), "limits": {"output_bytes": big}}));
        // A checker's stdout and stderr count for each test, an interactor's stderr.
        let checker = json!({"type": "program", "profile": "python3", "files": main_py(),
                             "limits": {"output_bytes": big}});
        invalid(
            &req(json!({"tests": tests(10), "limits": {"output_bytes": 1000}, "checker": checker})),
            &too_much(10, 10 * (2000 + 2 * big)),
        );
        let interactor = json!({"profile": "python3", "files": main_py(),
                                "limits": {"output_bytes": big}});
        invalid(
            &req(
                json!({"tests": tests(16), "limits": {"output_bytes": 1000}, "interactor": interactor}),
            ),
            &too_much(16, 16 * (2000 + big)),
        );
        judging(
            json!({"tests": tests(15), "limits": {"output_bytes": 1000}, "interactor": interactor}),
        );
    }
}
