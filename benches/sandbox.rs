//! Sandbox latency, printed beside baselines measured in the same run:
//!
//! - baseline A: bare fork + exec + wait of a static `true`;
//! - baseline B: bare clone of all seven namespaces + exec + wait of the same binary;
//! - baseline C: bare clone of a pid and an IPC namespace + exec + wait of the same binary
//!   (the least a run in a recycled container pays: issue 15);
//! - create: a ready container (clone3, id maps, cgroup, mounts, init ready), vs B;
//! - run: the static `true` (and `/bin/true`) in an already-ready container, vs A;
//! - end to end: create + run + destroy.
//!
//! Needs root. `cargo bench --bench sandbox` (WARMBOX_BENCH_ITERS to change the count).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warmbox_testkit::bench;

use warmbox_runner::profile::Limits;
use warmbox_sandbox::config::EngineConfig;
use warmbox_sandbox::{BoxFile, Layout, Sandbox, StepSpec};

fn stats(name: &str, mut v: Vec<Duration>) -> f64 {
    v.sort();
    // The p-th percentile (p in whole percent), nearest rank below.
    let pct = |p: usize| v[(v.len() - 1) * p / 100].as_secs_f64() * 1e3;
    let mean = v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len() as f64 * 1e3;
    println!(
        "{name:<44} p50 {:>7.3} ms   p90 {:>7.3} ms   mean {:>7.3} ms   (n={})",
        pct(50),
        pct(90),
        mean,
        v.len()
    );
    pct(50)
}

fn static_true(dir: &Path) -> PathBuf {
    let src = dir.join("true.c");
    let bin = dir.join("true-static");
    std::fs::write(&src, "int main(void){return 0;}\n").expect("write true.c");
    let ok = std::process::Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("run gcc");
    assert!(ok.success(), "gcc -static failed");
    bin
}

fn main() {
    if !bench::root_or_skip("sandbox") {
        return;
    }
    let iters: usize = bench::count_from_env("WARMBOX_BENCH_ITERS", 300);
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = static_true(dir.path());
    let cbin = CString::new(bin.to_str().expect("utf-8 path")).expect("no NUL");
    let bin_true = CString::new("/bin/true").expect("no NUL");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = repo.join("target/release/warmbox");
    assert!(
        exe.exists(),
        "{} missing: cargo build --release first",
        exe.display()
    );
    let config = EngineConfig {
        init_exe: exe,
        state_dir: PathBuf::from("/run/warmbox-bench"),
        cgroup_parent: "warmbox-bench".into(),
        uid_base: 800_000,
        slots: 64,
        profiles_dir: repo.join("profiles"),
    };
    let sandbox: Arc<Sandbox> = Sandbox::new(config).expect("sandbox engine");
    let layout = Layout {
        binds: ["/usr", "/bin", "/lib", "/lib64", "/etc/ld.so.cache"]
            .iter()
            .map(PathBuf::from)
            .collect(),
        seccomp: "default".into(),
        disk_bytes: 64 << 20,
    };
    let limits = Limits {
        cpu_ms: 2000,
        wall_ms: 5000,
        memory_mb: 256,
        pids: 64,
        output_bytes: 65536,
        file_size_bytes: 1 << 20,
        disk_mb: 64,
        stack_mb: None,
    };
    let spec = |argv: &str| StepSpec {
        argv: vec![argv.to_string()],
        env: vec!["PATH=/usr/bin:/bin".into()],
        limits,
        cpu_cores: None,
        stdin: Vec::new(),
        output: warmbox_sandbox::OutputMode::Separate,
    };
    let cg = warmbox_sandbox::step::cgroup_limits(&limits, None);
    let true_file = BoxFile {
        path: "true-static".into(),
        content: std::fs::read(&bin).expect("read static true"),
        executable: true,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!("warmbox sandbox bench: {iters} iterations each, 3 baselines from this same run\n");
    // Interleave so that drift on a shared machine hits every series alike.
    let (mut a, mut b, mut pid_ipc, mut create, mut run_static, mut run_bin, mut e2e) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut init_wall = vec![];
    rt.block_on(async {
        for _ in 0..5 {
            let c = sandbox.create(&layout, &cg).await.expect("warm-up create");
            c.destroy().await;
        }
        for _ in 0..iters {
            a.push(bench::fork_exec_wait(&cbin, &[]));
            b.push(bench::clone_ns_exec_wait(&cbin));
            pid_ipc.push(bench::clone_pid_ipc_exec_wait(&cbin));

            let t = Instant::now();
            let mut c = sandbox.create(&layout, &cg).await.expect("create");
            create.push(t.elapsed());
            c.write_files(&[&true_file], layout.disk_bytes)
                .await
                .expect("write");
            let t = Instant::now();
            let r = c.run(&spec("./true-static")).await.expect("run");
            run_static.push(t.elapsed());
            assert_eq!(r.exit_code, Some(0));
            c.destroy().await;

            let mut c = sandbox.create(&layout, &cg).await.expect("create");
            let t = Instant::now();
            let r = c.run(&spec("/bin/true")).await.expect("run");
            run_bin.push(t.elapsed());
            init_wall.push(Duration::from_secs_f64(r.usage.wall_ms / 1e3));
            assert_eq!(r.exit_code, Some(0));
            c.destroy().await;

            let t = Instant::now();
            let mut c = sandbox.create(&layout, &cg).await.expect("create");
            let r = c.run(&spec("/bin/true")).await.expect("run");
            c.destroy().await;
            e2e.push(t.elapsed());
            assert_eq!(r.exit_code, Some(0));
        }
    });
    let bin_true_base: Vec<Duration> = (0..iters)
        .map(|_| bench::fork_exec_wait(&bin_true, &[]))
        .collect();

    let a50 = stats("baseline A: fork+exec+wait static true", a);
    let at50 = stats("baseline A': fork+exec+wait /bin/true", bin_true_base);
    let b50 = stats("baseline B: clone 7 namespaces+exec+wait", b);
    let p50 = stats("baseline C: clone pid+ipc ns+exec+wait", pid_ipc);
    let c50 = stats("create a ready container", create);
    let r50 = stats("run static true in a ready container", run_static);
    let rb50 = stats("run /bin/true in a ready container", run_bin);
    stats("  of which the init's fork..reap of the job", init_wall);
    stats("create + run /bin/true + destroy", e2e);
    println!();
    println!(
        "create / B                  = {:.2}x  (target <= 1.5x)",
        c50 / b50
    );
    println!(
        "run static true / A         = {:.2}x  (target <= 1.5x)",
        r50 / a50
    );
    println!("run /bin/true / A'          = {:.2}x", rb50 / at50);
    println!(
        "C / A                       = {:.2}x  (a recycled container's floor: issue 15)",
        p50 / a50
    );
}
