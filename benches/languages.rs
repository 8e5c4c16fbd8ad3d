//! Hello world in every available language: the same program run bare on the host (the
//! profile's own run command, after its compile command, in a directory of its own) against
//! a whole `POST /v1/run` of it through a release `warmbox serve` (its compile cached after
//! the first), p50 of each, interleaved in one run. Target: warmbox's overhead ≤ 2 ms for
//! every language.
//!
//! `WARMBOX_BENCH_RUNS` (default 30): runs of each, per language. `WARMBOX_BENCH_LANGUAGES`
//! (comma-separated profile names): only those.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warmbox_runner::profile::{LoadedProfile, ProfileSet};
use warmbox_testkit::bench;

/// A language's hello world, from its test cases (`tests/languages/<profile>.toml`), or
/// the first six's own.
fn hello(profile: &str) -> Option<String> {
    let first_six = match profile {
        "python3" => Some("print('hello, world')\n"),
        "c" => Some("#include <stdio.h>\nint main(void){puts(\"hello, world\");return 0;}\n"),
        "cpp" => Some("#include <iostream>\nint main(){std::cout<<\"hello, world\\n\";}\n"),
        "java" => Some(
            "public class Main{public static void main(String[] a){System.out.println(\"hello, world\");}}\n",
        ),
        "javascript" => Some("console.log('hello, world')\n"),
        "bash" => Some("echo 'hello, world'\n"),
        _ => None,
    };
    if let Some(src) = first_six {
        return Some(src.to_string());
    }
    let path = warmbox_testkit::repo()
        .join("tests/languages")
        .join(format!("{profile}.toml"));
    let text = std::fs::read_to_string(path).ok()?;
    let cases: toml::Table = toml::from_str(&text).ok()?;
    cases.get("hello")?.as_str().map(str::to_string)
}

fn main() {
    if !bench::root_or_skip("languages") {
        return;
    }
    let runs = bench::count_from_env("WARMBOX_BENCH_RUNS", 30).max(3);
    let only: Option<Vec<String>> = std::env::var("WARMBOX_BENCH_LANGUAGES")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let profiles =
        ProfileSet::load_dir(&warmbox_testkit::repo().join("profiles")).expect("load profiles/");
    let (mut child, base) = bench::start_server_with("languages", 950_000, &["--warm", "1"]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    println!(
        "hello world per language, p50 of {runs}: bare on the host (the profile's run command) \
         vs a whole POST /v1/run (compile cached), same run"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10}",
        "language", "bare ms", "warmbox ms", "overhead"
    );
    let mut missed = Vec::new();
    for loaded in profiles.all() {
        let name = loaded.profile.name.as_str();
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        if !loaded.availability.available {
            println!("{name:<12} not installed here");
            continue;
        }
        let Some(src) = hello(name) else { continue };
        let Some(dir) = host_build(loaded, &src) else {
            println!("{name:<12} does not build on the host (see above)");
            continue;
        };
        let url = format!("{base}/v1/run");
        let body = json!({"profile": name,
            "files": [{"name": loaded.profile.source_file, "content": src}]});
        // The first request compiles (and fills the compile cache); not counted.
        let first = post(&agent, &url, &body);
        assert_eq!(first["run"]["stdout"], "hello, world\n", "{name}: {first}");
        let (mut bare, mut boxed) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            bare.push(host_run(loaded, &dir));
            let t = Instant::now();
            let v = post(&agent, &url, &body);
            boxed.push(t.elapsed());
            assert_eq!(v["run"]["stdout"], "hello, world\n", "{name}: {v}");
        }
        let (b, w) = (p50(bare), p50(boxed));
        let over = w - b;
        if over > 2.0 {
            missed.push(name.to_string());
        }
        println!(
            "{name:<12} {b:>10.2} {w:>10.2} {:>+9.2} ms{}",
            over,
            if over > 2.0 {
                "  (target <= +2 ms: missed)"
            } else {
                ""
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "languages over +2 ms: {}",
        if missed.is_empty() {
            "none".to_string()
        } else {
            missed.join(", ")
        }
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid")),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

/// A directory with `src` and, for a compiled language, what its compile command made of
/// it on the host; None (after saying why) when the compile fails.
fn host_build(loaded: &LoadedProfile, src: &str) -> Option<PathBuf> {
    let p = &loaded.profile;
    let dir = std::env::temp_dir().join(format!("warmbox-bench-lang-{}", p.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("make the bench's directory");
    std::fs::write(dir.join(&p.source_file), src).expect("write the source");
    if let Some(compile) = &p.compile {
        let out = command(loaded, compile, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("start the compiler");
        if !out.status.success() {
            println!(
                "{}: host compile failed: {}{}",
                p.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
    }
    Some(dir)
}

/// One bare run of the program in `dir`: the elapsed time.
fn host_run(loaded: &LoadedProfile, dir: &Path) -> Duration {
    let memory_mb = loaded.profile.limits.defaults.memory_mb.to_string();
    let argv: Vec<String> = loaded
        .profile
        .run
        .iter()
        .map(|a| a.replace("{memory_mb}", &memory_mb))
        .collect();
    let t = Instant::now();
    let status = command(loaded, &argv, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the program");
    let took = t.elapsed();
    assert!(
        status.success(),
        "{}: bare run {status}",
        loaded.profile.name
    );
    took
}

/// `argv` as the profile runs it, on the host in `dir`: the profile's environment, with
/// HOME the directory (the container's is /box).
fn command(loaded: &LoadedProfile, argv: &[String], dir: &Path) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .env_clear()
        .envs(&loaded.profile.env)
        .env("HOME", dir);
    cmd
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Value {
    let mut r = agent.post(url).send(body.to_string()).expect("HTTP");
    assert_eq!(r.status().as_u16(), 200);
    serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON")
}

fn p50(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}
