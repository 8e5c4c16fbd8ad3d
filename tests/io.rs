//! stdin and stdout as bytes: a large stdin comes back unchanged, invalid UTF-8 is replaced
//! in text and exact in base64, binary stdin, and output pipes held open by leftovers.

mod common;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::json;
use warmbox_runner::request::{RunResponse, RunStatus, StepStatus};

#[tokio::test]
async fn five_megabytes_of_stdin_come_back_identical() {
    let Some(h) = common::harness() else { return };
    let stdin: String = (0..500_000).map(|i| format!("{i:09}\n")).collect();
    assert_eq!(stdin.len(), 5_000_000);
    let resp = h
        .run(json!({
            "profile": "bash",
            "cmd": ["cat"],
            "stdin": stdin,
            "limits": {"output_bytes": 8_000_000},
        }))
        .await;
    assert_eq!(resp.status, RunStatus::Step(StepStatus::Ok));
    let run = resp.run.expect("run step");
    assert_eq!(run.usage.stdout_bytes, 5_000_000);
    assert!(!run.stdout_truncated);
    assert!(run.stdout == stdin, "stdout differs from stdin");
}

#[tokio::test]
async fn invalid_utf8_is_replaced_in_text_and_exact_in_base64() {
    let Some(h) = common::harness() else { return };
    let script = r"printf 'ok \xff\xfe\n'; printf '\xc3' >&2";
    let resp = h
        .run(json!({"profile": "bash", "cmd": ["/bin/bash", "-c", script]}))
        .await;
    // The response is valid JSON (a serde String cannot hold invalid UTF-8; check the
    // wire form all the same).
    let wire = serde_json::to_string(&resp).expect("serialize");
    let back: RunResponse = serde_json::from_str(&wire).expect("response JSON parses");
    let run = back.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok);
    assert_eq!(run.stdout, "ok \u{fffd}\u{fffd}\n");
    assert_eq!(run.stderr, "\u{fffd}");
    // Byte counts are of the program's bytes, not of the replacement text.
    assert_eq!(run.usage.stdout_bytes, 6);
    assert_eq!(run.usage.stderr_bytes, 1);

    let resp = h
        .run(json!({
            "profile": "bash",
            "cmd": ["/bin/bash", "-c", script],
            "output_encoding": "base64",
        }))
        .await;
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok);
    assert_eq!(
        BASE64.decode(&run.stdout).expect("stdout is base64"),
        b"ok \xff\xfe\n"
    );
    assert_eq!(
        BASE64.decode(&run.stderr).expect("stderr is base64"),
        b"\xc3"
    );
    assert_eq!(run.usage.stdout_bytes, 6);
    assert_eq!(run.usage.stderr_bytes, 1);
}

#[tokio::test]
async fn binary_stdin_base64_reaches_the_program_exactly() {
    let Some(h) = common::harness() else { return };
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let resp = h
        .run(json!({
            "profile": "bash",
            "cmd": ["cat"],
            "stdin_base64": BASE64.encode(&bytes),
            "output_encoding": "base64",
            "limits": {"output_bytes": 100_000},
        }))
        .await;
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok, "{run:?}");
    assert_eq!(run.usage.stdout_bytes, 70_000);
    assert!(BASE64.decode(&run.stdout).expect("base64") == bytes);

    // Also counted by a program that reads it as bytes.
    let resp = h
        .run(json!({
            "profile": "python3",
            "files": [{"name": "main.py", "content": "import sys, hashlib\nd = sys.stdin.buffer.read()\nprint(len(d), d.count(0), hashlib.sha256(d).hexdigest()[:16])\n"}],
            "stdin_base64": BASE64.encode([0u8, 255, 0, 10, 13, 0x80]),
        }))
        .await;
    let run = resp.run.expect("run step");
    assert_eq!(run.status, StepStatus::Ok, "{run:?}");
    let digest = {
        // sha256 of 00 ff 00 0a 0d 80, first 16 hex digits, computed by the host's python.
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import hashlib; print(hashlib.sha256(bytes([0,255,0,10,13,0x80])).hexdigest()[:16])",
            ])
            .output()
            .expect("host python3");
        String::from_utf8(out.stdout).expect("utf8")
    };
    assert_eq!(run.stdout, format!("6 2 {digest}"));
}

#[tokio::test]
async fn a_background_process_holding_stdout_does_not_hold_the_run() {
    let Some(h) = common::harness() else { return };
    let run = h.sh("(sleep 100 &); echo done").await;
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(run.stdout, "done\n");
    assert_eq!(run.exit_code, Some(0));
    assert!(
        run.usage.wall_ms < 500.0,
        "the run waited for the background sleep: wall_ms {}",
        run.usage.wall_ms
    );
    // The same with stderr, and with a plain `&` child.
    let started = std::time::Instant::now();
    let run = h.sh("sleep 100 >&2 & echo done").await;
    assert_eq!(run.status, StepStatus::Ok, "{run:#?}");
    assert_eq!(run.stdout, "done\n");
    assert!(run.usage.wall_ms < 500.0, "wall_ms {}", run.usage.wall_ms);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the request took {:?}",
        started.elapsed()
    );
}
