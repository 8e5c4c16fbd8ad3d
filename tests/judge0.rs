//! The Judge0 CE drop-in API through a real `warmbox serve`: the reference endpoints, each
//! status id reached by a real submission, `wait`, `base64_encoded` with binary output,
//! `fields`, batches, `DELETE`, callbacks (PUT), and 422 errors.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::server::*;
use serde_json::{json, Value};

const UID_JUDGE0: u32 = 5_008_192;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A submission run with `wait=true`, all fields.
fn wait(s: &Server, body: Value) -> Value {
    let (status, v) = call(
        "POST",
        &format!("{}/submissions?wait=true&fields=*", s.base),
        Some(body),
    );
    assert_eq!(status, 201, "{v}");
    v
}

/// A C program that puts 4 MiB on its stack.
const BIG_STACK: &str = "#include <string.h>\nint main(void) { volatile char big[4 << 20]; \
    memset((char *)big, 1, sizeof big); return big[100] - 1; }";

fn c(code: &str) -> Value {
    json!({"language_id": 50, "source_code": code})
}

#[test]
fn judge0_clients_work_unchanged() {
    if !root_or_skip() {
        return;
    }
    let parent = "warmbox-test-judge0";
    let s = start_fresh(parent, UID_JUDGE0, &["--callback-allow-private"]);

    // Reference endpoints.
    let (_, about) = call("GET", &format!("{}/about", s.base), None);
    assert_eq!(about["version"], "1.13.1");
    let (_, statuses) = call("GET", &format!("{}/statuses", s.base), None);
    assert_eq!(statuses.as_array().expect("list").len(), 14);
    assert_eq!(
        statuses[10],
        json!({"id": 11, "description": "Runtime Error (NZEC)"})
    );
    let (_, langs) = call("GET", &format!("{}/languages", s.base), None);
    let ids: Vec<u64> = langs
        .as_array()
        .expect("list")
        .iter()
        .map(|l| l["id"].as_u64().expect("id"))
        .collect();
    // Every available profile's ids, in order: the first six's always (and the
    // multi-file program), each other language's where its runtime is installed.
    let mut expected: Vec<u64> = warmbox_testkit::profiles()
        .all()
        .iter()
        .filter(|p| p.availability.available)
        .flat_map(|p| p.profile.judge0_id.clone())
        .map(u64::from)
        .collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    for id in [46, 50, 52, 54, 62, 63, 71, 89] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
    let python = langs
        .as_array()
        .expect("list")
        .iter()
        .find(|l| l["id"] == 71)
        .expect("71");
    assert!(
        python["name"]
            .as_str()
            .expect("name")
            .starts_with("Python (3."),
        "{python}"
    );
    let (status, l) = call("GET", &format!("{}/languages/54", s.base), None);
    assert_eq!(status, 200);
    assert_eq!(
        (
            l["source_file"].clone(),
            l["is_archived"].clone(),
            l["run_cmd"].clone()
        ),
        (json!("main.cpp"), json!(false), json!("./main"))
    );
    assert_eq!(
        call("GET", &format!("{}/languages/999", s.base), None).0,
        404
    );
    let (_, config) = call("GET", &format!("{}/config_info", s.base), None);
    assert_eq!(config["enable_network"], false);
    assert_eq!(config["max_submission_batch_size"], 20);

    // Every status id a submission can reach, by a real program.
    let cases: Vec<(u64, Value)> = vec![
        (
            3,
            json!({"language_id": 71, "source_code": "print(input())", "stdin": "hi", "expected_output": "hi"}),
        ),
        (
            4,
            json!({"language_id": 71, "source_code": "print(input())", "stdin": "hi", "expected_output": "ho"}),
        ),
        (
            5,
            json!({"language_id": 71, "source_code": "while True: pass", "cpu_time_limit": 0.2}),
        ),
        (6, c("int main( {")),
        (7, c("int main(void) { volatile int *p = 0; return *p; }")),
        (
            8,
            json!({"language_id": 50, "max_file_size": 4,
                   "source_code": "#include <stdio.h>\nint main(void) { FILE *f = fopen(\"f\", \"w\"); for (int i = 0; i < 100000; i++) fputc('x', f); fclose(f); return 0; }"}),
        ),
        (
            9,
            c("int main(int argc, char **argv) { volatile int z = argc - 1; volatile int r = 100 / z; return r; }"),
        ),
        (10, c("#include <stdlib.h>\nint main(void) { abort(); }")),
        (
            11,
            json!({"language_id": 71, "source_code": "import sys\nsys.exit(3)"}),
        ),
        // 4 MiB on the stack: past a 1 MiB stack_limit, a segmentation fault; fine without.
        (7, json!({"language_id": 50, "stack_limit": 1024, "source_code": BIG_STACK})),
        (3, json!({"language_id": 50, "source_code": BIG_STACK})),
    ];
    for (want, body) in cases {
        let v = wait(&s, body.clone());
        assert_eq!(v["status"]["id"], want, "{body} → {v}");
        assert_eq!(v["status_id"], want);
        match want {
            6 => {
                assert!(v["compile_output"]
                    .as_str()
                    .expect("compile_output")
                    .contains("error"));
                assert_eq!(v["time"], Value::Null);
            }
            11 => assert_eq!(v["exit_code"], 3),
            7 => assert_eq!(v["exit_signal"], 11),
            _ => {}
        }
        if want != 6 {
            // Seconds as strings with three decimals, as Judge0 writes them.
            for key in ["time", "wall_time"] {
                let secs = v[key].as_str().expect("seconds as a string");
                let (whole, frac) = secs.split_once('.').expect("a decimal point");
                assert!(
                    whole.parse::<u64>().is_ok()
                        && frac.len() == 3
                        && frac.bytes().all(|b| b.is_ascii_digit()),
                    "{key} {secs:?}"
                );
            }
            assert!(v["memory"].as_u64().expect("memory in KB") > 0);
        }
        assert!(v["created_at"].as_str().expect("created_at").ends_with('Z'));
        assert_eq!(v["language"]["id"], body["language_id"]);
    }

    // Each of the six languages by its Judge0 id: echo a line, judged against it.
    let programs = [
        (46, "read x; echo \"$x\""),
        (50, "#include <stdio.h>\nint main(void) { char s[64]; if (scanf(\"%63s\", s) == 1) puts(s); return 0; }"),
        (54, "#include <iostream>\n#include <string>\nint main() { std::string s; std::cin >> s; std::cout << s << std::endl; }"),
        (52, "#include <iostream>\n#include <string>\nint main() { std::string s; std::cin >> s; std::cout << s << std::endl; }"),
        (62, "import java.util.Scanner;\npublic class Main { public static void main(String[] a) { System.out.println(new Scanner(System.in).next()); } }"),
        (63, "process.stdin.on('data', d => process.stdout.write(d.toString().trim() + '\\n'));"),
        (71, "print(input())"),
    ];
    for (id, code) in programs {
        let v = wait(
            &s,
            json!({"language_id": id, "source_code": code, "stdin": "hello", "expected_output": "hello"}),
        );
        assert_eq!(
            (v["status"]["id"].clone(), v["stdout"].clone()),
            (json!(3), json!("hello\n")),
            "language {id}: {v}"
        );
    }

    // Every field, with every input field given: echoed in Judge0's units.
    let v = wait(
        &s,
        json!({"language_id": 71, "source_code": "import sys\nprint(input(), sys.argv[1:])",
               "stdin": "x", "expected_output": "x ['-v']", "cpu_time_limit": 1.5,
               "cpu_extra_time": 0.5, "wall_time_limit": 4, "memory_limit": 262144,
               "stack_limit": 65536, "max_processes_and_or_threads": 30, "max_file_size": 2048,
               "number_of_runs": 1, "redirect_stderr_to_stdout": false,
               "command_line_arguments": "-v", "enable_network": false,
               "enable_per_process_and_thread_time_limit": false,
               "enable_per_process_and_thread_memory_limit": false}),
    );
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "additional_files",
            "callback_url",
            "command_line_arguments",
            "compile_output",
            "compiler_options",
            "cpu_extra_time",
            "cpu_time_limit",
            "created_at",
            "enable_network",
            "exit_code",
            "exit_signal",
            "expected_output",
            "finished_at",
            "language",
            "language_id",
            "max_file_size",
            "max_processes_and_or_threads",
            "memory",
            "memory_limit",
            "message",
            "number_of_runs",
            "redirect_stderr_to_stdout",
            "source_code",
            "stack_limit",
            "status",
            "status_id",
            "stderr",
            "stdin",
            "stdout",
            "time",
            "token",
            "wall_time",
            "wall_time_limit",
        ]
    );
    let echoed: Vec<Value> = [
        "cpu_time_limit",
        "cpu_extra_time",
        "wall_time_limit",
        "memory_limit",
        "stack_limit",
        "max_processes_and_or_threads",
        "max_file_size",
        "command_line_arguments",
        "stdin",
        "expected_output",
        "exit_code",
        "exit_signal",
        "stdout",
        "stderr",
        "message",
        "compile_output",
        "callback_url",
        "additional_files",
        "compiler_options",
    ]
    .iter()
    .map(|k| v[*k].clone())
    .collect();
    assert_eq!(
        echoed,
        [
            json!(1.5),
            json!(0.5),
            json!(4.0),
            json!(262144.0),
            json!(65536.0),
            json!(30.0),
            json!(2048.0),
            json!("-v"),
            json!("x"),
            json!("x ['-v']"),
            json!(0),
            Value::Null,
            json!("x ['-v']\n"),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ]
    );
    assert_eq!(v["status"], json!({"id": 3, "description": "Accepted"}));
    let finished = v["finished_at"].as_str().expect("finished_at");
    assert_eq!(
        finished.len(),
        "2026-01-01T00:00:00.000Z".len(),
        "{finished}"
    );

    // Binary output round trip with base64_encoded=true; text fields decoded otherwise.
    let code = "import sys\nsys.stdout.buffer.write(bytes([0, 255, 10]) + sys.stdin.buffer.read())";
    let (status, v) = call(
        "POST",
        &format!("{}/submissions?base64_encoded=true&wait=true", s.base),
        Some(
            // Base64 broken into lines (as Ruby's encode64 writes it) is taken too, and
            // without its padding (bytes 1, 2 are "AQI=").
            json!({"language_id": 71, "source_code": wrapped(&B64.encode(code)),
                   "stdin": "AQI"}),
        ),
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["status"]["id"], 3);
    assert_eq!(
        B64.decode(v["stdout"].as_str().expect("stdout"))
            .expect("base64"),
        [0, 255, 10, 1, 2]
    );
    // Judge0's default fields only.
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "compile_output",
            "memory",
            "message",
            "status",
            "stderr",
            "stdout",
            "time",
            "token"
        ]
    );

    // Asynchronous: a token at once, then the result; `fields` picks.
    let (status, t) = call(
        "POST",
        &format!("{}/submissions", s.base),
        Some(
            json!({"language_id": 46, "source_code": "echo \"$1-$2\" >&2; echo out",
                    "command_line_arguments": "a 'b c'", "redirect_stderr_to_stdout": true}),
        ),
    );
    assert_eq!(status, 201, "{t}");
    let token = t["token"].as_str().expect("token").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let (_, v) = call(
            "GET",
            &format!("{}/submissions/{token}?fields=status,stdout,stderr", s.base),
            None,
        );
        if v["status"]["id"].as_u64().expect("id") >= 3 {
            break v;
        }
        assert!(Instant::now() < deadline, "not done: {v}");
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(
        v,
        json!({"status": {"id": 3, "description": "Accepted"}, "stdout": "a-b c\nout\n", "stderr": null})
    );

    // number_of_runs: the runs' average.
    let v = wait(
        &s,
        json!({"language_id": 71, "source_code": "print(1)", "number_of_runs": 3}),
    );
    assert_eq!(
        (v["status"]["id"].clone(), v["stdout"].clone()),
        (json!(3), json!("1\n"))
    );
    assert_eq!(v["number_of_runs"], 3);

    // Batches: a bad submission answers with its errors in its place.
    let (status, b) = call(
        "POST",
        &format!("{}/submissions/batch", s.base),
        Some(json!({"submissions": [
            {"language_id": 71, "source_code": "print(6*7)"},
            {"language_id": 9999, "source_code": "x"},
            {"language_id": 71, "source_code": "print(1)", "callback_url": "ftp://example.com/x"},
            {"language_id": 71, "source_code": "print(2)"},
        ]})),
    );
    assert_eq!(status, 201, "{b}");
    assert_eq!(
        b[1],
        json!({"language_id": ["language with id 9999 doesn't exist"]})
    );
    assert_eq!(
        b[2],
        json!({"callback_url": ["\"ftp://example.com/x\" has scheme \"ftp\"; give an absolute http:// or https:// URL"]})
    );
    assert_ne!(b[3]["token"], b[0]["token"]);
    assert!(b[3]["token"].as_str().is_some(), "{b}");
    // None valid: 422; none at all, or more than 20: 400, in Judge0's words.
    let url = format!("{}/submissions/batch", s.base);
    let (status, answer) = call(
        "POST",
        &url,
        Some(json!({"submissions": [{"language_id": 9999, "source_code": "x"}]})),
    );
    assert_eq!(
        (status, answer),
        (
            422,
            json!([{"language_id": ["language with id 9999 doesn't exist"]}])
        )
    );
    let (status, answer) = call("POST", &url, Some(json!({"submissions": []})));
    assert_eq!(
        (status, answer),
        (
            400,
            json!({"error": "there should be at least one submission in a batch"})
        )
    );
    let many = vec![json!({"language_id": 71, "source_code": "print(1)"}); 21];
    let (status, answer) = call("POST", &url, Some(json!({ "submissions": many })));
    assert_eq!(
        (status, answer),
        (
            400,
            json!({"error": "number of submissions in a batch should be less than or equal to 20"})
        )
    );
    let first = b[0]["token"].as_str().expect("token").to_string();
    let missing = uuid::Uuid::new_v4();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = call(
            "GET",
            &format!(
                "{}/submissions/batch?tokens={first},{missing}&fields=stdout,status_id",
                s.base
            ),
            None,
        );
        assert_eq!(status, 200);
        if v["submissions"][0]["status_id"] == 3 {
            assert_eq!(
                v,
                json!({"submissions": [{"stdout": "42\n", "status_id": 3}, null]})
            );
            break;
        }
        assert!(Instant::now() < deadline, "batch not done: {v}");
        std::thread::sleep(Duration::from_millis(25));
    }

    // DELETE a finished submission: answered once (always in base64, as Judge0 does),
    // then gone.
    let (status, d) = call(
        "DELETE",
        &format!("{}/submissions/{first}?fields=stdout", s.base),
        None,
    );
    assert_eq!((status, d), (200, json!({"stdout": "NDIK"})));
    let (status, v) = call("GET", &format!("{}/submissions/{first}", s.base), None);
    assert_eq!((status, v), (404, json!({"error": "Not Found"})));

    // A callback: a PUT of the submission.
    let (url, puts) = listener(200);
    let (status, t) = call(
        "POST",
        &format!("{}/submissions", s.base),
        Some(json!({"language_id": 71, "source_code": "print('cb')", "callback_url": url})),
    );
    assert_eq!(status, 201);
    let (method, body) = puts
        .recv_timeout(Duration::from_secs(60))
        .expect("callback");
    assert_eq!(method, "PUT");
    assert_eq!(body["token"], t["token"]);
    assert_eq!(
        (body["status"]["id"].clone(), body["stdout"].clone()),
        (json!(3), json!("cb\n"))
    );

    // Compiler options: passed to the compiler when the profile's patterns allow them.
    let v = wait(
        &s,
        json!({"language_id": 50, "compiler_options": "-O0 -DANSWER=42",
               "source_code": "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", ANSWER); return 0; }"}),
    );
    assert_eq!(
        (v["status"]["id"].clone(), v["stdout"].clone()),
        (json!(3), json!("42\n")),
        "{v}"
    );
    assert_eq!(v["compiler_options"], "-O0 -DANSWER=42");
    let (status, v) = call(
        "POST",
        &format!("{}/submissions", s.base),
        Some(
            json!({"language_id": 50, "source_code": "int main(void){return 0;}",
                    "compiler_options": "-fplugin=/tmp/x.so"}),
        ),
    );
    assert_eq!(status, 422, "{v}");
    let m = v["compiler_options"][0].as_str().expect("message");
    assert!(
        m.starts_with("compiler_options[0]: \"-fplugin=/tmp/x.so\" is not allowed for profile c; those matching -std="),
        "{m}"
    );
    let (status, v) = call(
        "POST",
        &format!("{}/submissions", s.base),
        Some(json!({"language_id": 71, "source_code": "print(1)", "compiler_options": "-O2"})),
    );
    assert_eq!(
        (status, v),
        (
            422,
            json!({"compiler_options": ["profile python3 does not compile; leave them out"]})
        )
    );

    // additional_files: a zip extracted beside the source; language 89 is only the zip.
    let helper = zip(&[("lib/helper.py", b"def f():\n    return 42\n".to_vec())]);
    let v = wait(
        &s,
        json!({"language_id": 71, "additional_files": helper,
               "source_code": "import sys\nsys.path.insert(0, 'lib')\nimport helper\nprint(helper.f())"}),
    );
    assert_eq!(
        (v["status"]["id"].clone(), v["stdout"].clone()),
        (json!(3), json!("42\n")),
        "{v}"
    );
    let multi = zip(&[
        (
            "main.c",
            b"#include <stdio.h>\nint main(void) { puts(\"multi\"); return 0; }\n".to_vec(),
        ),
        ("compile", b"gcc -O2 -o prog main.c\n".to_vec()),
        ("run", b"./prog\n".to_vec()),
    ]);
    let v = wait(&s, json!({"language_id": 89, "additional_files": multi}));
    assert_eq!(
        (v["status"]["id"].clone(), v["stdout"].clone()),
        (json!(3), json!("multi\n")),
        "{v}"
    );
    let (status, v) = call(
        "POST",
        &format!("{}/submissions", s.base),
        Some(json!({"language_id": 89, "additional_files": zip(&[("compile", b"true".to_vec())])})),
    );
    assert_eq!(
        (status, v),
        (
            422,
            json!({"additional_files": ["a multi-file program needs a script named run at the top of the zip"]})
        )
    );
    let (status, v) = call(
        "POST",
        &format!("{}/submissions", s.base),
        Some(json!({"language_id": 71, "source_code": "print(1)",
                    "additional_files": zip(&[("../evil", b"x".to_vec())])})),
    );
    assert_eq!(
        (status, v),
        (
            422,
            json!({"additional_files": ["entry \"../evil\" must be a relative path inside the archive's top"]})
        )
    );
    // A zip bomb stops at the language's disk size.
    let bomb = zip(&[("zeros", vec![0u8; 20 << 20])]);
    assert!(bomb.len() < 1 << 20, "compressed to {} bytes", bomb.len());
    let (status, v) = call(
        "POST",
        &format!("{}/submissions", s.base),
        Some(json!({"language_id": 71, "source_code": "print(1)", "additional_files": bomb})),
    );
    assert_eq!(
        (status, v),
        (
            422,
            json!({"additional_files": ["extracts to more than 10485760 bytes (max_extract_size)"]})
        )
    );

    // Bad input: 422 with the field and what is wrong.
    let bad = [
        (
            json!({"source_code": "x"}),
            json!({"language_id": ["can't be blank"]}),
        ),
        (
            json!({"language_id": 71}),
            json!({"source_code": ["can't be blank"]}),
        ),
        (
            json!({"language_id": 71, "source_code": "x", "enable_network": true}),
            json!({"enable_network": ["enabling network is not allowed"]}),
        ),
        // Rails reads these as true too.
        (
            json!({"language_id": 71, "source_code": "x", "enable_network": "true"}),
            json!({"enable_network": ["enabling network is not allowed"]}),
        ),
        (
            json!({"language_id": 71, "source_code": "x", "enable_network": 1}),
            json!({"enable_network": ["enabling network is not allowed"]}),
        ),
        (
            json!({"language_id": 71, "source_code": "x", "cpu_time_limit": 1000}),
            json!({"cpu_time_limit": ["must be less than or equal to 20"]}),
        ),
        (
            json!({"language_id": 71, "source_code": "x", "memory_limit": -1}),
            json!({"memory_limit": ["must be greater than or equal to 2048"]}),
        ),
        (
            json!({"language_id": 71, "source_code": "x", "memory_limit": 100}),
            json!({"memory_limit": ["must be greater than or equal to 2048"]}),
        ),
        (
            json!({"language_id": 71, "source_code": "x", "memory_limit": 3000}),
            json!({"memory_limit": ["is too small for the submission's files, which are kept in memory with \
                4 MiB left for the program (files: 1 bytes in all do not fit in limits.memory_mb 3 \
                (files count toward it, and 4 MiB stay free for the processes); send less or \
                raise limits.memory_mb (maximum 1024))"]}),
        ),
        (
            json!({"language_id": 71, "source_code": "x", "max_file_size": -1}),
            json!({"max_file_size": ["must be greater than or equal to 0"]}),
        ),
        (
            json!({"language_id": 71, "source_code": "x", "stack_limit": 512000}),
            json!({"stack_limit": ["limits.stack_mb: 500 is above limits.memory_mb 256; the stack is part of the memory"]}),
        ),
        (
            json!({"language_id": 71, "source_code": "x", "cpu_time_limit": "NaN"}),
            json!({"cpu_time_limit": ["is not a number"]}),
        ),
        (
            json!({"language_id": 4294967346u64, "source_code": "x"}),
            json!({"language_id": ["language with id 4294967346 doesn't exist"]}),
        ),
    ];
    for (body, want) in bad {
        let (status, v) = call(
            "POST",
            &format!("{}/submissions", s.base),
            Some(body.clone()),
        );
        assert_eq!((status, v), (422, want), "{body}");
    }
    // A callback URL warmbox will not call: the same 422 queued or waited for.
    for wait in ["false", "true"] {
        let (status, v) = call(
            "POST",
            &format!("{}/submissions?wait={wait}", s.base),
            Some(json!({"language_id": 71, "source_code": "x", "callback_url": "ftp://e/x"})),
        );
        assert_eq!(
            (status, v),
            (
                422,
                json!({"callback_url": ["\"ftp://e/x\" has scheme \"ftp\"; give an absolute http:// or https:// URL"]})
            ),
            "wait={wait}"
        );
    }

    // What clients rely on beyond the reference: a trailing slash, a megabyte of output
    // (bounded by max_file_size, past it SIGXFSZ's status), Rails booleans, DELETE in
    // base64, /languages/all, /version, at most 20 tokens a batch.
    let big =
        json!({"language_id": 71, "source_code": "import sys\nsys.stdout.write('x' * 600000)"});
    let (status, v) = call(
        "POST",
        &format!("{}/submissions/?wait=true&fields=status,stdout", s.base),
        Some(big.clone()),
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["status"]["id"], 3, "{}", v["status"]);
    assert_eq!(v["stdout"].as_str().map(str::len), Some(600_000));
    for path in ["/about", "/config_info", "/statuses", "/languages"] {
        let plain = call("GET", &format!("{}{path}", s.base), None);
        let slash = call("GET", &format!("{}{path}/", s.base), None);
        assert_eq!((plain.0, &plain.1), (200, &slash.1), "{path}/");
        assert_eq!(slash.0, 200, "{path}/");
    }
    let mut small = big;
    small["max_file_size"] = json!(64);
    let v = wait(&s, small);
    assert_eq!(
        (v["status"]["id"].clone(), v["message"].clone()),
        (json!(8), json!("Output limit exceeded"))
    );
    let v = wait(
        &s,
        json!({"language_id": 71, "source_code": "import sys\nprint('e', file=sys.stderr)",
               "redirect_stderr_to_stdout": "true"}),
    );
    assert_eq!(v["stdout"], "e\n");
    let token = v["token"].as_str().expect("token");
    let (status, v) = call(
        "DELETE",
        &format!("{}/submissions/{token}?fields=stdout", s.base),
        None,
    );
    assert_eq!((status, v), (200, json!({"stdout": "ZQo="})));
    let (status, v) = call(
        "GET",
        &format!(
            "{}/submissions/{token}?fields=status,foo,stdout,bar",
            s.base
        ),
        None,
    );
    assert_eq!(
        (status, v),
        (400, json!({"error": "invalid fields: [foo, bar]"}))
    );
    // A form-encoded submission, as older Rails-era clients send.
    let text = ureq::post(&format!(
        "{}/submissions?wait=true&fields=stdout,status_id",
        s.base
    ))
    .header("Content-Type", "application/x-www-form-urlencoded")
    .send("language_id=71&source_code=print%286%2A7%29")
    .expect("form POST")
    .body_mut()
    .read_to_string()
    .expect("body");
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("JSON"),
        json!({"stdout": "42\n", "status_id": 3})
    );
    let (status, all) = call("GET", &format!("{}/languages/all", s.base), None);
    assert_eq!(status, 200);
    assert_eq!(all.as_array().map(Vec::len), Some(expected.len()));
    assert_eq!(all[0]["is_archived"], false);
    let version = ureq::get(&format!("{}/version", s.base))
        .call()
        .expect("GET /version")
        .body_mut()
        .read_to_string()
        .expect("body");
    assert_eq!(version, "1.13.1");
    let tokens = vec![token; 21].join(",");
    let (status, v) = call(
        "GET",
        &format!("{}/submissions/batch?tokens={tokens}", s.base),
        None,
    );
    assert_eq!(
        (status, v),
        (
            400,
            json!({"error": "number of submissions in a batch should be less than or equal to 20"})
        )
    );
    stop(s);
}

/// `b64` in lines of 60 characters.
fn wrapped(b64: &str) -> String {
    b64.as_bytes()
        .chunks(60)
        .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
        .collect()
}

/// A deflated zip of `files`, base64.
fn zip(files: &[(&str, Vec<u8>)]) -> String {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        w.start_file(*name, opts).expect("zip entry");
        w.write_all(content).expect("zip write");
    }
    B64.encode(w.finish().expect("zip").into_inner())
}
