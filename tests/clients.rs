//! Real clients of other code runners, unchanged, pointed at a real `warmbox serve`:
//! Judge0's official Python SDK (`judge0` on PyPI) and the `piston-client` npm package.
//! The scripts under `tests/clients/` check each of the first six languages, Go, Rust and
//! Kotlin, and more.
//!
//! The clients live in `target/clients` (`.ci/run` installs them: a Python venv with
//! `judge0`, and `node_modules` with `piston-client`). Without them the test says so and
//! passes, unless `WARMBOX_REQUIRE_CLIENTS=1` (CI), where it fails.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::server::*;

const UID_CLIENTS: u32 = 5_010_240;

fn clients_dir() -> PathBuf {
    warmbox_testkit::repo().join("target/clients")
}

/// The installed clients, or `None` after saying why not (a failure in CI).
fn installed() -> Option<(PathBuf, PathBuf)> {
    let dir = clients_dir();
    let python = dir.join("venv/bin/python");
    let piston = dir.join("node_modules/piston-client");
    if python.exists() && piston.exists() {
        return Some((python, dir));
    }
    let why = format!(
        "the client libraries are not installed in {} (.ci/run installs them)",
        dir.display()
    );
    if std::env::var("WARMBOX_REQUIRE_CLIENTS").is_ok_and(|v| v == "1") {
        panic!("{why}");
    }
    println!("SKIPPED: {why}");
    None
}

fn run(cmd: &mut Command, base: &str) -> String {
    let out = cmd
        .env("WARMBOX_URL", base)
        .output()
        .expect("start the client");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn judge0_and_piston_clients_work_unchanged() {
    if !root_or_skip() {
        return;
    }
    let Some((python, dir)) = installed() else {
        return;
    };
    let parent = "warmbox-test-clients";
    let s = start_fresh(parent, UID_CLIENTS, &[]);

    let said = run(
        Command::new(&python).arg(warmbox_testkit::repo().join("tests/clients/judge0_sdk.py")),
        &s.base,
    );
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(
        lines,
        [
            "python: ok",
            "c: ok",
            "cpp: ok",
            "java: ok",
            "javascript: ok",
            "bash: ok",
            "go: ok",
            "rust: ok",
            "kotlin: ok",
            "async: ok",
            "batch: ok",
            "nzec: ok"
        ]
    );

    // An ES module finds its packages next to itself: run a copy beside node_modules.
    let script = dir.join("piston_client.mjs");
    std::fs::copy(
        warmbox_testkit::repo().join("tests/clients/piston_client.mjs"),
        &script,
    )
    .expect("copy the Piston script");
    let said = run(Command::new("node").arg(&script), &s.base);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(
        lines,
        [
            "runtimes: ok",
            "python: ok",
            "c: ok",
            "c++: ok",
            "java: ok",
            "javascript: ok",
            "bash: ok",
            "go: ok",
            "rust: ok",
            "kotlin: ok",
            "exit code: ok"
        ]
    );
    stop(s);
}
