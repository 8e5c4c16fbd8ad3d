//! Every language profile end to end: a program that reads stdin and writes a transformed
//! line, aliases, multi-file programs, `args`, `env` and `cmd`, compile errors, and the
//! ways a program can end badly (exit code, uncaught exception, fatal signal).

mod common;

use serde_json::{json, Value};
use warmbox_runner::request::{RunResponse, RunStatus, StepResult, StepStatus};

/// stdin of the transform programs, and what each of them must print for it.
const INPUT: &str = "hello world\n";
const EXPECTED: &str = "HELLO WORLD 11\n";

fn file(name: &str, content: &str) -> Value {
    json!({"name": name, "content": content})
}

/// The run step of a response that must have one.
fn run_of(resp: &RunResponse) -> &StepResult {
    resp.run
        .as_ref()
        .unwrap_or_else(|| panic!("response has no run step: {resp:#?}"))
}

/// A run that ended well, printed exactly `stdout` and nothing on stderr, with plausible
/// accounting.
fn assert_ok_run(run: &StepResult, stdout: &str) {
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(run.exit_code, Some(0), "{run:#?}");
    assert_eq!(run.signal, None);
    assert_eq!(run.signal_name, None);
    assert_eq!(run.stdout, stdout, "{run:#?}");
    assert_eq!(run.stderr, "", "{run:#?}");
    assert!(!run.stdout_truncated && !run.stderr_truncated);
    let u = &run.usage;
    assert_eq!(u.stdout_bytes, stdout.len() as u64);
    assert_eq!(u.stderr_bytes, 0);
    assert!(u.cpu_ms > 0.0, "cpu_ms {}", u.cpu_ms);
    assert!(
        u.cpu_ms < warmbox_testkit::emulation::budget_ms(2000) as f64,
        "cpu_ms {} over the default limit",
        u.cpu_ms
    );
    assert!((u.user_ms + u.sys_ms - u.cpu_ms).abs() < 0.01, "{u:?}");
    assert!(
        u.wall_ms > 0.0 && u.wall_ms < warmbox_testkit::emulation::budget_ms(5000) as f64,
        "wall_ms {}",
        u.wall_ms
    );
    assert!(u.memory_peak_bytes > 0, "memory_peak_bytes 0");
    assert!(
        u.memory_peak_bytes < 512 << 20,
        "peak {}",
        u.memory_peak_bytes
    );
    assert!(!u.oom_killed);
    let p = u.pids_peak.expect("pids_peak is reported on this kernel");
    assert!((1..=64).contains(&p), "pids_peak {p}");
}

/// An interpreted profile's response: no compile step, the run printed `stdout`.
fn assert_interpreted_ok(resp: &RunResponse, stdout: &str) {
    assert_eq!(resp.status, RunStatus::Step(StepStatus::Ok), "{resp:#?}");
    assert!(resp.compile.is_none(), "interpreted: compile must be null");
    assert_ok_run(run_of(resp), stdout);
}

/// A compiled profile's response: a compile step that succeeded, then the run.
fn assert_compiled_ok(resp: &RunResponse, stdout: &str) {
    assert_eq!(resp.status, RunStatus::Step(StepStatus::Ok), "{resp:#?}");
    let compile = resp
        .compile
        .as_ref()
        .unwrap_or_else(|| panic!("compiled profile without compile step: {resp:#?}"));
    assert_eq!(compile.status, StepStatus::Ok, "{compile:#?}");
    assert_eq!(compile.exit_code, Some(0));
    assert!(compile.usage.cpu_ms > 0.0);
    assert!(compile.usage.memory_peak_bytes > 0);
    assert_ok_run(run_of(resp), stdout);
}

const PYTHON: &str = "s = input()\nprint(s.upper(), len(s))\n";
const C: &str = r#"#include <ctype.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    char line[256];
    if (!fgets(line, sizeof line, stdin)) return 1;
    line[strcspn(line, "\n")] = 0;
    size_t n = strlen(line);
    for (size_t i = 0; i < n; i++) line[i] = (char)toupper((unsigned char)line[i]);
    printf("%s %zu\n", line, n);
    return 0;
}
"#;
const CPP: &str = r#"#include <algorithm>
#include <cctype>
#include <iostream>
#include <string>
int main() {
    std::string s;
    std::getline(std::cin, s);
    std::size_t n = s.size();
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
    std::cout << s << ' ' << n << '\n';
}
"#;
const JAVA: &str = r#"import java.io.*;
public class Main {
    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String s = in.readLine();
        System.out.println(s.toUpperCase() + " " + s.length());
    }
}
"#;
const JAVASCRIPT: &str = r#"const s = require("fs").readFileSync(0, "utf8").split("\n")[0];
console.log(s.toUpperCase() + " " + s.length);
"#;
const BASH: &str = "read -r line\necho \"${line^^} ${#line}\"\n";

#[tokio::test]
async fn python3_transforms_stdin() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "python3", "files": [file("main.py", PYTHON)], "stdin": INPUT}))
        .await;
    assert_interpreted_ok(&resp, EXPECTED);
}

#[tokio::test]
async fn c_transforms_stdin() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "c", "files": [file("main.c", C)], "stdin": INPUT}))
        .await;
    assert_compiled_ok(&resp, EXPECTED);
}

#[tokio::test]
async fn cpp_transforms_stdin() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "cpp", "files": [file("main.cpp", CPP)], "stdin": INPUT}))
        .await;
    assert_compiled_ok(&resp, EXPECTED);
}

#[tokio::test]
async fn java_transforms_stdin() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "java", "files": [file("Main.java", JAVA)], "stdin": INPUT}))
        .await;
    assert_compiled_ok(&resp, EXPECTED);
}

#[tokio::test]
async fn javascript_transforms_stdin() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "javascript", "files": [file("main.js", JAVASCRIPT)], "stdin": INPUT}))
        .await;
    assert_interpreted_ok(&resp, EXPECTED);
}

#[tokio::test]
async fn bash_transforms_stdin() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "bash", "files": [file("main.sh", BASH)], "stdin": INPUT}))
        .await;
    assert_interpreted_ok(&resp, EXPECTED);
}

#[tokio::test]
async fn every_alias_runs_its_profile() {
    let Some(h) = common::harness() else { return };
    let cases: [(&str, &str, &str, bool); 12] = [
        ("python", "main.py", PYTHON, false),
        ("py", "main.py", PYTHON, false),
        ("py3", "main.py", PYTHON, false),
        ("gcc", "main.c", C, true),
        ("c++", "main.cpp", CPP, true),
        ("g++", "main.cpp", CPP, true),
        ("cxx", "main.cpp", CPP, true),
        ("openjdk", "Main.java", JAVA, true),
        ("node", "main.js", JAVASCRIPT, false),
        ("nodejs", "main.js", JAVASCRIPT, false),
        ("js", "main.js", JAVASCRIPT, false),
        ("sh", "main.sh", BASH, false),
    ];
    for (alias, name, code, compiled) in cases {
        let resp = h
            .run(json!({"profile": alias, "files": [file(name, code)], "stdin": INPUT}))
            .await;
        if compiled {
            assert_compiled_ok(&resp, EXPECTED);
        } else {
            assert_interpreted_ok(&resp, EXPECTED);
        }
    }
}

#[tokio::test]
async fn c_program_with_a_header() {
    let Some(h) = common::harness() else { return };
    let header = "#pragma once\nstatic inline int twice(int x) { return 2 * x; }\n";
    let main = "#include <stdio.h>\n#include \"lib/twice.h\"\n\
                int main(void) { int x; if (scanf(\"%d\", &x) != 1) return 1; \
                printf(\"%d\\n\", twice(x)); return 0; }\n";
    let resp = h
        .run(json!({
            "profile": "c",
            "files": [file("main.c", main), file("lib/twice.h", header)],
            "stdin": "21\n",
        }))
        .await;
    assert_compiled_ok(&resp, "42\n");
}

#[tokio::test]
async fn java_program_with_two_classes() {
    let Some(h) = common::harness() else { return };
    let main = "public class Main { public static void main(String[] a) { \
                String s = new java.util.Scanner(System.in).nextLine(); \
                System.out.println(Helper.shout(s)); } }\n";
    let helper =
        "class Helper { static String shout(String s) { return s.toUpperCase() + \"!\"; } }\n";
    let resp = h
        .run(json!({
            "profile": "java",
            "files": [file("Main.java", main), file("Helper.java", helper)],
            "stdin": "two classes\n",
        }))
        .await;
    assert_compiled_ok(&resp, "TWO CLASSES!\n");
}

#[tokio::test]
async fn python_imports_a_module_and_a_package() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({
            "profile": "python3",
            "files": [
                file("main.py", "import helper\nfrom pkg.mod import triple\nprint(helper.greet(input()), triple(3))\n"),
                file("helper.py", "def greet(name):\n    return 'hi ' + name\n"),
                file("pkg/__init__.py", ""),
                file("pkg/mod.py", "def triple(x):\n    return 3 * x\n"),
            ],
            "stdin": "ann\n",
        }))
        .await;
    assert_interpreted_ok(&resp, "hi ann 9\n");
}

#[tokio::test]
async fn args_are_appended_to_the_run_command() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({
            "profile": "python3",
            "files": [file("main.py", "import sys\nprint(sys.argv)\n")],
            "args": ["--flag", "two words", ""],
        }))
        .await;
    assert_interpreted_ok(&resp, "['main.py', '--flag', 'two words', '']\n");

    // A compiled program gets them too.
    let c = "#include <stdio.h>\nint main(int c, char **v) { for (int i = 1; i < c; i++) \
             printf(\"[%s]\", v[i]); puts(\"\"); return 0; }\n";
    let resp = h
        .run(json!({"profile": "c", "files": [file("main.c", c)], "args": ["a b", "-x"]}))
        .await;
    assert_compiled_ok(&resp, "[a b][-x]\n");
}

#[tokio::test]
async fn env_reaches_the_program_over_the_profile_env() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({
            "profile": "python3",
            "files": [file("main.py", "import os\nfor k in ('GREETING', 'HOME', 'LANG', 'TZ'):\n    print(k, os.environ.get(k))\n")],
            "env": {"GREETING": "hi there", "TZ": "Europe/Paris"},
        }))
        .await;
    assert_interpreted_ok(
        &resp,
        "GREETING hi there\nHOME /box\nLANG C.UTF-8\nTZ Europe/Paris\n",
    );
}

#[tokio::test]
async fn cmd_replaces_the_run_command() {
    let Some(h) = common::harness() else { return };
    // main.py is there but not run.
    let resp = h
        .run(json!({
            "profile": "python3",
            "files": [file("main.py", "print('main.py ran')\n")],
            "cmd": ["/usr/bin/python3", "-c", "import sys; print('cmd', sys.argv[1:])", "x"],
        }))
        .await;
    assert_interpreted_ok(&resp, "cmd ['x']\n");

    // A compiled profile still compiles; cmd runs the binary its own way.
    let c = "#include <stdio.h>\nint main(void) { puts(\"binary\"); return 0; }\n";
    let resp = h
        .run(json!({
            "profile": "c",
            "files": [file("main.c", c)],
            "cmd": ["/bin/sh", "-c", "./main; ./main; echo after"],
        }))
        .await;
    assert_compiled_ok(&resp, "binary\nbinary\nafter\n");

    // No files at all: cmd runs alone.
    let resp = h
        .run(json!({"profile": "python3", "cmd": ["/usr/bin/python3", "-c", "print(6 * 7)"]}))
        .await;
    assert_interpreted_ok(&resp, "42\n");
}

/// A failed compilation: top-level compile_error, the compile step's non-zero exit with the
/// compiler's message, and no run step.
fn assert_compile_error(resp: &RunResponse, needles: &[&str]) {
    assert_eq!(resp.status, RunStatus::CompileError, "{resp:#?}");
    assert!(
        resp.run.is_none(),
        "run must be null after a failed compile"
    );
    let compile = resp.compile.as_ref().expect("compile step present");
    assert_eq!(compile.status, StepStatus::RuntimeError, "{compile:#?}");
    assert_eq!(compile.exit_code, Some(1), "{compile:#?}");
    assert_eq!(compile.signal, None);
    for needle in needles {
        assert!(
            compile.stderr.contains(needle) || compile.stdout.contains(needle),
            "compiler output lacks {needle:?}: {compile:#?}"
        );
    }
    assert_eq!(
        compile.usage.stderr_bytes + compile.usage.stdout_bytes,
        (compile.stderr.len() + compile.stdout.len()) as u64
    );
}

#[tokio::test]
async fn c_compile_error() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "c", "files": [file("main.c", "int main(void) {\n    return undefined_name;\n}\n")]}))
        .await;
    assert_compile_error(
        &resp,
        &["main.c:2:12: error:", "undefined_name", "undeclared"],
    );
}

#[tokio::test]
async fn cpp_compile_error() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "cpp", "files": [file("main.cpp", "int main() {\n    return undefined_name;\n}\n")]}))
        .await;
    assert_compile_error(
        &resp,
        &[
            "main.cpp:2:12: error:",
            "undefined_name",
            "was not declared in this scope",
        ],
    );
}

#[tokio::test]
async fn java_compile_error() {
    let Some(h) = common::harness() else { return };
    let code = "public class Main {\n    public static void main(String[] a) {\n        int x = \"s\";\n    }\n}\n";
    let resp = h
        .run(json!({"profile": "java", "files": [file("Main.java", code)]}))
        .await;
    assert_compile_error(
        &resp,
        &[
            "Main.java:3: error: incompatible types: String cannot be converted to int",
            "1 error",
        ],
    );
}

/// A run step that ended with `status` and exactly this exit code and signal.
fn assert_run_ended(
    resp: &RunResponse,
    status: StepStatus,
    code: Option<i32>,
    signal: Option<(i32, &str)>,
) -> StepResult {
    assert_eq!(resp.status, RunStatus::Step(status), "{resp:#?}");
    let run = run_of(resp).clone();
    assert_eq!(run.status, status, "{run:#?}");
    assert_eq!(run.exit_code, code, "{run:#?}");
    assert_eq!(run.signal, signal.map(|s| s.0), "{run:#?}");
    assert_eq!(run.signal_name.as_deref(), signal.map(|s| s.1), "{run:#?}");
    assert!(!run.usage.oom_killed);
    run
}

#[tokio::test]
async fn non_zero_exit_is_a_runtime_error_with_the_exact_code() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "python3", "files": [file("main.py", "import sys\nprint('partial')\nsys.exit(42)\n")]}))
        .await;
    let run = assert_run_ended(&resp, StepStatus::RuntimeError, Some(42), None);
    assert_eq!(run.stdout, "partial\n");

    let resp = h
        .run(json!({"profile": "c", "files": [file("main.c", "int main(void) { return 7; }\n")]}))
        .await;
    assert_eq!(
        resp.compile.as_ref().map(|c| c.status),
        Some(StepStatus::Ok)
    );
    assert_run_ended(&resp, StepStatus::RuntimeError, Some(7), None);

    let resp = h
        .run(json!({"profile": "bash", "files": [file("main.sh", "exit 255\n")]}))
        .await;
    assert_run_ended(&resp, StepStatus::RuntimeError, Some(255), None);
}

#[tokio::test]
async fn python_uncaught_exception() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "python3", "files": [file("main.py", "raise ValueError('bad value')\n")]}))
        .await;
    let run = assert_run_ended(&resp, StepStatus::RuntimeError, Some(1), None);
    assert!(
        run.stderr.contains("Traceback (most recent call last)"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("ValueError: bad value"), "{run:#?}");
    assert_eq!(run.usage.stderr_bytes, run.stderr.len() as u64);
}

#[tokio::test]
async fn java_uncaught_exception() {
    let Some(h) = common::harness() else { return };
    let code = "public class Main { public static void main(String[] a) { \
                throw new IllegalStateException(\"boom\"); } }\n";
    let resp = h
        .run(json!({"profile": "java", "files": [file("Main.java", code)]}))
        .await;
    assert_eq!(
        resp.compile.as_ref().map(|c| c.status),
        Some(StepStatus::Ok)
    );
    let run = assert_run_ended(&resp, StepStatus::RuntimeError, Some(1), None);
    assert!(
        run.stderr
            .contains("Exception in thread \"main\" java.lang.IllegalStateException: boom"),
        "{run:#?}"
    );
}

#[tokio::test]
async fn node_uncaught_exception() {
    let Some(h) = common::harness() else { return };
    let resp = h
        .run(json!({"profile": "node", "files": [file("main.js", "throw new TypeError('bad type');\n")]}))
        .await;
    let run = assert_run_ended(&resp, StepStatus::RuntimeError, Some(1), None);
    assert!(run.stderr.contains("TypeError: bad type"), "{run:#?}");
}

/// Compiles and runs a C program that must die of `signal`.
async fn c_dies_of(h: &warmbox_testkit::harness::Harness, body: &str, signal: (i32, &str)) {
    let code = format!("#include <stdio.h>\n#include <stdlib.h>\nint main(void) {{ {body} }}\n");
    let resp = h
        .run(json!({"profile": "c", "files": [file("main.c", &code)]}))
        .await;
    assert_eq!(
        resp.compile.as_ref().map(|c| c.status),
        Some(StepStatus::Ok),
        "{resp:#?}"
    );
    let run = assert_run_ended(&resp, StepStatus::Signaled, None, Some(signal));
    // What was flushed before the crash is kept.
    assert_eq!(run.stdout, "before\n");
}

#[tokio::test]
async fn c_segfault_is_sigsegv() {
    let Some(h) = common::harness() else { return };
    c_dies_of(
        h,
        "puts(\"before\"); fflush(stdout); volatile int *p = 0; *p = 1; return 0;",
        (libc::SIGSEGV, "SIGSEGV"),
    )
    .await;
}

#[tokio::test]
async fn c_abort_is_sigabrt() {
    let Some(h) = common::harness() else { return };
    c_dies_of(
        h,
        "puts(\"before\"); fflush(stdout); abort();",
        (libc::SIGABRT, "SIGABRT"),
    )
    .await;
}

#[tokio::test]
async fn c_division_by_zero_is_sigfpe() {
    let Some(h) = common::harness() else { return };
    c_dies_of(
        h,
        "puts(\"before\"); fflush(stdout); volatile int n = 100, z = 0; printf(\"%d\\n\", n / z); return 0;",
        (libc::SIGFPE, "SIGFPE"),
    )
    .await;
}

/// A `multi` request whose compile script is `compile` and run script is `run`.
fn multi(compile: &str, run: &str) -> Value {
    json!({"profile": "multi", "files": [file("compile", compile), file("run", run)]})
}

#[tokio::test]
async fn a_compile_leaving_a_tree_deeper_than_carried_is_an_output_limit() {
    let Some(h) = common::harness() else { return };
    // 1,100 directories: their path is far past PATH_MAX. The read-back walks by directory
    // fd and stops at 64 path components, saying so in a few words. (Made by one `mkdir
    // -p`, which goes one directory at a time: a bash loop of `mkdir` and `cd` spends
    // seconds per hundred levels in bash's own checks of its long $PWD.)
    let resp = h
        .run(multi(
            "mkdir -p $(printf 'aaaa/%.0s' $(seq 1100))",
            "echo ran",
        ))
        .await;
    assert_eq!(resp.status, RunStatus::CompileError, "{resp:#?}");
    assert!(resp.run.is_none());
    let compile = resp.compile.as_ref().expect("compile step");
    assert_eq!(compile.status, StepStatus::OutputLimit, "{compile:#?}");
    assert_eq!(compile.exit_code, Some(0));
    let message = compile.message.as_deref().expect("a message");
    assert_eq!(
        message,
        format!(
            "the compile left more in /box than is carried to the run: a directory 64 levels \
             deep is not empty ({}…), and files at most 64 path components deep are carried",
            &"aaaa/".repeat(13)[..64]
        )
    );
    assert!(message.len() <= 300, "{} bytes", message.len());
}

#[tokio::test]
async fn a_compile_output_path_as_long_as_carried_comes_back_intact() {
    let Some(h) = common::harness() else { return };
    // 31 directories of 127-byte names and a 128-byte file name: a 4,096-byte path
    // relative to /box (4,101 bytes from /, past PATH_MAX), 32 components deep. The
    // read-back and the write into the run container go one directory fd at a time.
    let dir = "d".repeat(127);
    let name = "f".repeat(128);
    let compile = format!(
        "for i in $(seq 31); do mkdir {dir} && cd {dir}; done; printf 'deep and long' > {name}"
    );
    let run = format!("for i in $(seq 31); do cd {dir}; done; cat {name}");
    let resp = h.run(multi(&compile, &run)).await;
    assert_compiled_ok(&resp, "deep and long");
}
