//! Request validation against the shipped profiles: what is refused before anything runs,
//! with the exact code and message the user sees, and the limits a valid request gets. It
//! needs no root and no engine (the engine's own tests are the root package's tests/).

use std::sync::OnceLock;

use serde_json::{json, Value};
use warmbox_runner::profile::ProfileSet;
use warmbox_runner::request::{self, RunRequest};
use warmbox_testkit::emulation::budget_ms;

/// The profiles the end-to-end tests run under, loaded once.
fn profiles() -> &'static ProfileSet {
    static PROFILES: OnceLock<ProfileSet> = OnceLock::new();
    PROFILES.get_or_init(warmbox_testkit::profiles)
}

fn py(code: &str, limits: Value) -> Value {
    json!({"profile": "python3", "files": [{"name": "main.py", "content": code}], "limits": limits})
}

fn py_files(code: &str) -> Value {
    json!([{"name": "main.py", "content": code}])
}

fn request(v: serde_json::Value) -> RunRequest {
    serde_json::from_value(v).expect("request JSON")
}

fn py_with_files(others: impl Iterator<Item = (String, String)>) -> serde_json::Value {
    let main = "import os\nfiles = depth = 0\nfor d, _, fs in os.walk('.'):\n    files += len(fs)\n    depth = max(depth, d.count('/'))\nprint(files, depth)\n";
    let mut files = vec![json!({"name": "main.py", "content": main})];
    files.extend(others.map(|(name, content)| json!({"name": name, "content": content})));
    json!({"profile": "python3", "files": files, "limits": {"disk_mb": 1}})
}

#[test]
fn a_limit_above_the_maximum_is_refused_naming_field_and_maximum() {
    // (field, maximum) of profiles/python3.toml (times scaled on a slow host).
    let maximums = [
        ("cpu_ms", budget_ms(20000)),
        ("wall_ms", budget_ms(60000)),
        ("memory_mb", 1024),
        ("pids", 256),
        ("output_bytes", 16777216),
        ("file_size_bytes", 67108864),
        ("disk_mb", 512),
    ];
    for (field, max) in maximums {
        let req = request(py("", json!({ field: max + 1 })));
        let err = request::validate(&req, profiles()).expect_err("over the maximum");
        assert_eq!(err.code, "limit_too_high", "{field}");
        assert_eq!(
            err.message,
            format!(
                "limits.{field}: {} is above the maximum {max} of profile python3",
                max + 1
            )
        );
        // The maximum itself is allowed and used as given.
        let req = request(py("", json!({ field: max })));
        let valid = request::validate(&req, profiles()).expect("the maximum is allowed");
        let got = match field {
            "cpu_ms" => valid.limits.cpu_ms,
            "wall_ms" => valid.limits.wall_ms,
            "memory_mb" => valid.limits.memory_mb,
            "pids" => valid.limits.pids,
            "output_bytes" => valid.limits.output_bytes,
            "file_size_bytes" => valid.limits.file_size_bytes,
            _ => valid.limits.disk_mb,
        };
        assert_eq!(got, max, "{field}");
    }
    // Maximums are per profile: java allows 2048 MiB, an alias names the profile.
    let req = request(json!({"profile": "openjdk", "limits": {"memory_mb": 2049}}));
    let err = request::validate(&req, profiles()).expect_err("over java's maximum");
    assert_eq!(err.code, "limit_too_high");
    assert_eq!(
        err.message,
        "limits.memory_mb: 2049 is above the maximum 2048 of profile java"
    );
    let req = request(json!({"profile": "java", "limits": {"memory_mb": 2048}}));
    request::validate(&req, profiles()).expect("java's own maximum is allowed");
    // Missing limits take the defaults.
    let valid =
        request::validate(&request(py("", json!({"cpu_ms": 700}))), profiles()).expect("valid");
    assert_eq!(valid.limits.cpu_ms, 700);
    assert_eq!(valid.limits.wall_ms, budget_ms(5000));
    assert_eq!(valid.limits.memory_mb, 256);
}

#[test]
fn files_taking_more_whole_pages_than_the_disk_are_refused_naming_the_field() {
    // 1,159 bytes (main.py's 136 and 1,023 of one byte), but a tmpfs holds each file in
    // whole pages: 1,024 of 4 KiB.
    let req = request(py_with_files(
        (1..1024).map(|i| (format!("f{i}"), "x".into())),
    ));
    let err = request::validate(&req, profiles()).expect_err("does not fit");
    assert_eq!(err.code, "invalid_request");
    assert_eq!(
        err.message,
        "files: 1159 bytes in all do not fit in limits.disk_mb 1 (1048576 bytes): in whole \
         4096-byte pages they take 4194304 bytes; send less or raise limits.disk_mb \
         (maximum 512)"
    );
}

/// The error `req` is refused with, or a panic when it is accepted.
fn refused(req: Value) -> String {
    let req: RunRequest = match serde_json::from_value(req) {
        Ok(r) => r,
        Err(e) => return format!("json: {e}"),
    };
    match request::validate(&req, profiles()) {
        Ok(_) => panic!("accepted: {req:#?}"),
        Err(e) => e.message,
    }
}

#[test]
fn requests_that_cannot_be_judged_are_refused() {
    let base = |extra: Value| {
        let mut r = json!({"profile": "python3", "files": py_files("print(1)")});
        for (k, v) in extra.as_object().expect("object") {
            r[k] = v.clone();
        }
        r
    };
    assert!(refused(base(json!({"tests": [{"expected_stdout": "1"}],
                                  "checker": {"type": "fuzzy"}})))
    .starts_with("json: unknown variant `fuzzy`, expected one of `exact`, `lines`, `tokens`, `none`, `float`, `program`"));
    assert_eq!(
        refused(base(json!({"tests": [{"stdin": "1"}]}))),
        "tests[0].expected_stdout: missing; the default checker (lines) compares the output \
         with it (give expected_stdout or expected_stdout_base64, or use a program checker)"
    );
    assert_eq!(
        refused(base(
            json!({"tests": [{"expected_stdout": "1"}, {"stdin": "2"}],
                             "checker": {"type": "tokens"}})
        )),
        "tests[1].expected_stdout: missing; checker \"tokens\" compares the output with it \
         (give expected_stdout or expected_stdout_base64, or use a program checker)"
    );
    assert_eq!(
        refused(base(json!({"checker": {"type": "exact"}}))),
        "checker: applies to tests, and the request has none; give \"tests\": [{\"stdin\": …, \
         \"expected_stdout\": …}]"
    );
    assert_eq!(
        refused(base(
            json!({"stdin": "1", "tests": [{"expected_stdout": "1"}]})
        )),
        "stdin: a request with tests takes each test's stdin; move it into the tests"
    );
    assert_eq!(
        refused(base(
            json!({"tests": [{"name": "a", "expected_stdout": "1"},
                                       {"name": "a", "expected_stdout": "1"}]})
        )),
        "tests[1].name: \"a\" is already the name of tests[0]; test names must be unique"
    );
    assert_eq!(
        refused(base(
            json!({"tests": [{"expected_stdout": "1", "limits": {"cpu_ms": 999999999}}]})
        )),
        "tests[0].limits.cpu_ms: 999999999 is above the maximum 20000 of profile python3"
    );
    assert_eq!(
        refused(base(json!({"tests": [{"expected_stdout": "1"}],
                             "checker": {"type": "float", "abs": -1}}))),
        "checker.abs: must be a finite number >= 0, got -1"
    );
    // Every profile available on this host is named (the first seven always).
    let available: Vec<&str> = profiles()
        .all()
        .iter()
        .filter(|p| p.availability.available)
        .map(|p| p.profile.name.as_str())
        .collect();
    for name in ["bash", "c", "cpp", "java", "javascript", "multi", "python3"] {
        assert!(available.contains(&name), "{name}: {available:?}");
    }
    assert_eq!(
        refused(base(json!({"tests": [{"expected_stdout": "1"}],
                             "checker": {"type": "program", "profile": "fortran77", "files": py_files("x")}}))),
        format!(
            "checker.profile: unknown profile \"fortran77\"; available profiles: {}",
            available.join(", ")
        )
    );
    assert_eq!(
        refused(base(json!({"tests": [{"expected_stdout": "1"}],
                             "interactor": {"profile": "python3", "files": []}}))),
        "interactor.files: empty; give the interactor's source"
    );
    assert_eq!(
        refused(base(json!({"tests": [{"expected_stdout": "1"}],
                             "checker": {"type": "exact"},
                             "interactor": {"profile": "python3", "files": py_files("x")}}))),
        "checker: an interactive problem is judged by its interactor's exit code; leave \
         checker out"
    );
    let many: Vec<Value> = (0..20).map(|_| json!({"expected_stdout": "1"})).collect();
    assert_eq!(
        refused(base(
            json!({"tests": many, "limits": {"output_bytes": 16 << 20}})
        )),
        "tests: 20 tests may keep 671088640 bytes of output (stdout and stderr up to \
         limits.output_bytes each, and the checker's or interactor's up to its own), above \
         the 268435456 a request may keep; lower \
         limits.output_bytes or send fewer tests"
    );
    // A checker's output counts too (its stdout and stderr, for each test).
    let ten: Vec<Value> = (0..10).map(|_| json!({"expected_stdout": "1"})).collect();
    assert_eq!(
        refused(base(json!({"tests": ten, "limits": {"output_bytes": 1000},
                             "checker": {"type": "program", "profile": "bash",
                                         "files": [{"name": "main.sh", "content": "exit 0"}],
                                         "limits": {"output_bytes": 16 << 20}}}))),
        "tests: 10 tests may keep 335564320 bytes of output (stdout and stderr up to \
         limits.output_bytes each, and the checker's or interactor's up to its own), above \
         the 268435456 a request may keep; lower limits.output_bytes or send fewer tests"
    );
    assert_eq!(
        refused(base(json!({"tests": [{"expected_stdout": "1"}],
                             "checker": {"type": "program", "profile": "python3",
                                         "files": [{"name": "main.py", "content": "x"},
                                                   {"name": "answer.txt", "content": "x"}]}}))),
        "checker.files[1].name: \"answer.txt\" is where warmbox puts the test's files \
         (input.txt, output.txt, answer.txt); rename it"
    );
    assert_eq!(
        refused(base(json!({"tests": [{"expected_stdout_base64": "%%%"}]}))),
        "tests[0].expected_stdout_base64: invalid base64 (Invalid symbol 37, offset 0.); use \
         standard base64 with padding"
    );
}
