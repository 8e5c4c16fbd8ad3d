//! Every language of `profiles/` through the same checks, from its cases in
//! `tests/languages/<profile>.toml`: hello world, a stdin echo, a compile error (compiled
//! languages) with the compiler's message, a runtime error with its exit code, a time
//! limit, a memory limit (`memory_limit`, not a crash), and a program whose threads (or the
//! runtime's own) all burn CPU, counted whole in the accounting.
//!
//! A language whose runtime is not installed is skipped with the package to install — a
//! failure instead for the required ones under `WARMBOX_REQUIRE_SANDBOX=1` (CI installs
//! them), and for every one under `WARMBOX_REQUIRE_LANGUAGES=all`.

mod common;

use serde::Deserialize;
use serde_json::{json, Value};
use warmbox_runner::request::{RunResponse, RunStatus, StepResult, StepStatus};
use warmbox_testkit::emulation::budget_ms;

/// The languages CI installs: their tests run for real there.
const REQUIRED: &[&str] = &[
    "go",
    "rust",
    "kotlin",
    "csharp",
    "ruby",
    "php",
    "pascal",
    "haskell",
    "lua",
    "perl",
    "typescript",
    "pypy3",
];

/// What the echo program reads, and must print back exactly.
const ECHO_INPUT: &str = "warmbox 42\nsecond line\n";

/// One language's cases (`tests/languages/<profile>.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    /// Prints `hello, world` and a newline.
    hello: String,
    /// Copies stdin to stdout, exactly.
    echo: String,
    /// Does not compile (compiled languages only) ...
    compile_error: Option<String>,
    /// ... and the compiler says these (each a part of `compile.stderr`, or of stdout for
    /// compilers that write their errors there).
    #[serde(default)]
    compile_error_says: Vec<String>,
    /// Ends with an error: a non-zero exit ...
    runtime_error: String,
    /// ... with this code.
    runtime_error_exit: i32,
    /// Computes forever.
    time_limit: String,
    /// Keeps allocating and touching memory.
    memory_limit: String,
    /// The memory limit of the memory case, MiB (the runtime must start under it).
    #[serde(default = "memory_mb")]
    memory_mb: u64,
    /// Starts 4 threads (or the runtime's own), each burning about 200 ms of CPU, and then
    /// prints `4`; None for a language without threads.
    threads: Option<String>,
}

fn memory_mb() -> u64 {
    64
}

/// The request of `src` in `profile` with `limits`.
fn request(profile: &str, source_file: &str, src: &str, stdin: &str, limits: Value) -> Value {
    json!({"profile": profile, "files": [{"name": source_file, "content": src}],
           "stdin": stdin, "limits": limits})
}

/// The run step, after a compile step that succeeded (compiled languages).
fn run_step<'r>(what: &str, resp: &'r RunResponse, compiled: bool) -> &'r StepResult {
    if compiled {
        let c = resp
            .compile
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no compile step: {resp:#?}"));
        assert_eq!(c.status, StepStatus::Ok, "{what}: {c:#?}");
    } else {
        assert!(resp.compile.is_none(), "{what}: {resp:#?}");
    }
    resp.run
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no run step: {resp:#?}"))
}

/// Runs every case of `profile`.
async fn check(profile: &str) {
    let Some(h) = common::harness() else { return };
    let loaded = h
        .profiles
        .get(profile)
        .unwrap_or_else(|| panic!("no profile {profile} in profiles/"));
    if !loaded.availability.available {
        let why = format!(
            "{profile}: {}",
            loaded
                .availability
                .reason
                .as_deref()
                .unwrap_or("unavailable")
        );
        if std::env::var("WARMBOX_REQUIRE_LANGUAGES").is_ok_and(|v| v == "all") {
            panic!("{why} (WARMBOX_REQUIRE_LANGUAGES=all)");
        }
        if REQUIRED.contains(&profile) {
            warmbox_testkit::skip(&why);
        } else {
            println!("SKIPPED (optional language): {why}");
        }
        return;
    }
    let path = warmbox_testkit::repo()
        .join("tests/languages")
        .join(format!("{profile}.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Cases = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let p = &loaded.profile;
    let compiled = p.compile.is_some();
    let file = p.source_file.as_str();
    let none = json!({});

    // Hello world, with plausible accounting.
    let resp = h
        .run(request(profile, file, &cases.hello, "", none.clone()))
        .await;
    let run = run_step("hello", &resp, compiled);
    assert_eq!(
        resp.status,
        RunStatus::Step(StepStatus::Ok),
        "hello: {resp:#?}"
    );
    assert_eq!(
        (run.exit_code, run.stdout.as_str()),
        (Some(0), "hello, world\n"),
        "hello: {run:#?}"
    );
    assert!(
        run.usage.cpu_ms > 0.0 && run.usage.memory_peak_bytes > 0,
        "{run:#?}"
    );
    assert!(run.usage.pids_peak.is_some_and(|p| p >= 1), "{run:#?}");

    // stdin, copied exactly.
    let resp = h
        .run(request(
            profile,
            file,
            &cases.echo,
            ECHO_INPUT,
            none.clone(),
        ))
        .await;
    let run = run_step("echo", &resp, compiled);
    assert_eq!(
        (run.status, run.stdout.as_str()),
        (StepStatus::Ok, ECHO_INPUT),
        "echo: {run:#?}"
    );

    // A compile error: the compiler's own message, no run.
    if compiled {
        let src = cases
            .compile_error
            .as_deref()
            .unwrap_or_else(|| panic!("{profile} compiles: its cases need compile_error"));
        let resp = h.run(request(profile, file, src, "", none.clone())).await;
        assert_eq!(resp.status, RunStatus::CompileError, "{resp:#?}");
        let c = resp.compile.as_ref().expect("the compile step");
        let said = format!("{}{}", c.stderr, c.stdout);
        for needle in &cases.compile_error_says {
            assert!(said.contains(needle.as_str()), "{needle:?} not in: {said}");
        }
        assert!(resp.run.is_none(), "{resp:#?}");
    } else {
        assert!(cases.compile_error.is_none(), "{profile} compiles nothing");
    }

    // A runtime error, with its exit code.
    let resp = h
        .run(request(
            profile,
            file,
            &cases.runtime_error,
            "",
            none.clone(),
        ))
        .await;
    let run = run_step("runtime error", &resp, compiled);
    assert_eq!(
        (run.status, run.exit_code),
        (StepStatus::RuntimeError, Some(cases.runtime_error_exit)),
        "runtime error: {run:#?}"
    );

    // The CPU limit.
    let resp = h
        .run(request(
            profile,
            file,
            &cases.time_limit,
            "",
            json!({"cpu_ms": 1000, "wall_ms": budget_ms(10_000)}),
        ))
        .await;
    let run = run_step("time limit", &resp, compiled);
    assert_eq!(run.status, StepStatus::TimeLimit, "time limit: {run:#?}");
    assert!(run.usage.cpu_ms >= 1000.0, "{run:#?}");

    // The memory limit: the kernel's OOM kill, reported as such.
    let resp = h
        .run(request(
            profile,
            file,
            &cases.memory_limit,
            "",
            json!({"memory_mb": cases.memory_mb, "cpu_ms": budget_ms(10_000),
                   "wall_ms": budget_ms(20_000)}),
        ))
        .await;
    let run = run_step("memory limit", &resp, compiled);
    assert_eq!(
        run.status,
        StepStatus::MemoryLimit,
        "memory limit: {run:#?}"
    );
    assert!(run.usage.oom_killed, "{run:#?}");

    // Threads: every one's CPU counted, every task in pids_peak.
    if let Some(src) = &cases.threads {
        let resp = h
            .run(request(
                profile,
                file,
                src,
                "",
                json!({"cpu_ms": budget_ms(10_000), "wall_ms": budget_ms(20_000)}),
            ))
            .await;
        let run = run_step("threads", &resp, compiled);
        assert_eq!(
            (run.status, run.stdout.as_str()),
            (StepStatus::Ok, "4\n"),
            "threads: {run:#?}"
        );
        assert!(run.usage.cpu_ms >= 700.0, "threads: {:?}", run.usage);
        assert!(
            run.usage.pids_peak.is_some_and(|p| p >= 5),
            "threads: {:?}",
            run.usage
        );
    }
}

/// One test a language, and the list of them.
macro_rules! languages {
    ($($name:ident => $profile:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                check($profile).await;
            }
        )*
        /// Every language tested here.
        const TESTED: &[&str] = &[$($profile),*];
    };
}

/// The first six languages (and the multi-file program) have tests of their own
/// (tests/languages.rs); every other profile has its cases here, and a test.
#[test]
fn every_other_profile_has_cases_and_a_test() {
    let first = ["bash", "c", "cpp", "java", "javascript", "multi", "python3"];
    let profiles: std::collections::BTreeSet<String> = warmbox_testkit::profiles()
        .all()
        .iter()
        .map(|p| p.profile.name.clone())
        .filter(|n| !first.contains(&n.as_str()))
        .collect();
    let tested: std::collections::BTreeSet<String> = TESTED.iter().map(|s| s.to_string()).collect();
    let cases: std::collections::BTreeSet<String> =
        std::fs::read_dir(warmbox_testkit::repo().join("tests/languages"))
            .expect("tests/languages")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| p.file_stem().expect("stem").to_string_lossy().to_string())
            .collect();
    assert_eq!(profiles, tested, "profiles vs tests");
    assert_eq!(profiles, cases, "profiles vs case files");
    for name in REQUIRED {
        assert!(profiles.contains(*name), "required {name} has no profile");
    }
}

languages! {
    go => "go",
    rust => "rust",
    kotlin => "kotlin",
    csharp => "csharp",
    ruby => "ruby",
    php => "php",
    pascal => "pascal",
    haskell => "haskell",
    lua => "lua",
    perl => "perl",
    typescript => "typescript",
    pypy3 => "pypy3",
    c_clang => "c-clang",
    cpp_clang => "cpp-clang",
    fortran => "fortran",
    nasm => "nasm",
    sqlite => "sqlite",
    ocaml => "ocaml",
    lisp => "lisp",
    d => "d",
    erlang => "erlang",
    elixir => "elixir",
    scala => "scala",
    groovy => "groovy",
    clojure => "clojure",
    r => "r",
    octave => "octave",
    cobol => "cobol",
    prolog => "prolog",
}
