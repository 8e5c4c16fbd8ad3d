//! Sixteen runs of mixed languages at once on one engine: each gets exactly its own result,
//! and no cgroup is left when they are done.

mod common;

use serde_json::{json, Value};
use warmbox_runner::request::{RunStatus, StepStatus};

/// A request that reads a number n from stdin and prints "<tag> <n*n+1>", and its tag.
fn request(lang: &str, n: u64) -> (Value, String) {
    // Contention (16 runs on a few cores) must not turn into a wall-time verdict.
    let limits = json!({"wall_ms": 30000, "cpu_ms": 5000});
    let (profile, name, code) = match lang {
        "python3" => ("python3", "main.py", "n = int(input())\nprint('py', n * n + 1)\n".to_string()),
        "bash" => ("bash", "main.sh", "read n\necho \"sh $((n * n + 1))\"\n".to_string()),
        "c" => (
            "c",
            "main.c",
            "#include <stdio.h>\nint main(void) { long n; scanf(\"%ld\", &n); printf(\"c %ld\\n\", n * n + 1); return 0; }\n".to_string(),
        ),
        "cpp" => (
            "cpp",
            "main.cpp",
            "#include <iostream>\nint main() { long n; std::cin >> n; std::cout << \"cpp \" << n * n + 1 << '\\n'; }\n".to_string(),
        ),
        "javascript" => (
            "javascript",
            "main.js",
            "const n = Number(require('fs').readFileSync(0, 'utf8').trim());\nconsole.log('js ' + (n * n + 1));\n".to_string(),
        ),
        "java" => (
            "java",
            "Main.java",
            "public class Main { public static void main(String[] a) { long n = new java.util.Scanner(System.in).nextLong(); System.out.println(\"java \" + (n * n + 1)); } }\n".to_string(),
        ),
        other => panic!("no program for {other}"),
    };
    let tag = match lang {
        "python3" => "py",
        "bash" => "sh",
        "javascript" => "js",
        other => other,
    };
    (
        json!({
            "profile": profile,
            "files": [{"name": name, "content": code}],
            "stdin": format!("{n}\n"),
            "limits": limits,
        }),
        format!("{tag} {}\n", n * n + 1),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_mixed_runs_at_once() {
    // A private engine and cgroup parent: other test processes on this host share the
    // common parent, and this test checks that its own parent is empty at the end.
    let Some(h) = common::private_harness("warmbox-test-concurrency") else {
        return;
    };
    let h = std::sync::Arc::new(h);
    h.sandbox.remove_stale().expect("remove stale cgroups");
    let langs: [&'static str; 16] = [
        "python3",
        "c",
        "bash",
        "javascript",
        "cpp",
        "python3",
        "java",
        "bash",
        "c",
        "javascript",
        "python3",
        "cpp",
        "bash",
        "c",
        "java",
        "python3",
    ];
    let mut set = tokio::task::JoinSet::new();
    for (i, lang) in langs.into_iter().enumerate() {
        let (req, expected) = request(lang, 1000 + i as u64);
        let h = h.clone();
        set.spawn(async move { (i, lang, expected, h.run(req).await) });
    }
    let mut done = 0;
    while let Some(joined) = set.join_next().await {
        let (i, lang, expected, resp) = joined.expect("run task");
        assert_eq!(
            resp.status,
            RunStatus::Step(StepStatus::Ok),
            "#{i} {lang}: {resp:#?}"
        );
        let compiled = matches!(lang, "c" | "cpp" | "java");
        assert_eq!(resp.compile.is_some(), compiled, "#{i} {lang}");
        let run = resp.run.expect("run step");
        assert_eq!(run.stdout, expected, "#{i} {lang}: {run:#?}");
        assert_eq!(run.stderr, "", "#{i} {lang}");
        assert_eq!(run.exit_code, Some(0));
        assert_eq!(run.usage.stdout_bytes, expected.len() as u64);
        assert!(run.usage.cpu_ms > 0.0 && run.usage.memory_peak_bytes > 0);
        done += 1;
    }
    assert_eq!(done, 16);
    assert_eq!(h.live_cgroups(), Vec::<String>::new());
}
