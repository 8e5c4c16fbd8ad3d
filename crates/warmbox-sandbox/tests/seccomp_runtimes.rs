//! The six runtimes and their compilers run to completion under the `default` policy.
//!
//! Each program is spawned with `std::process::Command`; its `pre_exec` hook (which runs
//! in the forked child, right before exec, like the job process) sets RLIMIT_CORE=0 and
//! installs the policy. The test asserts the exact exit status and output. A runtime
//! missing from the host is skipped with a message.

use std::path::Path;
use std::process::Output;

use warmbox_testkit::kernel::{default_policy, installed, seccomp_available};
use warmbox_testkit::listener::assert_clean_exit as assert_ok;

/// Runs `program args` in `dir` with the default policy installed right before exec;
/// lock calls (handed to the init, see `warmbox_inside::locks`) run as made, anything else
/// fails with ENOSYS (these runtimes make no forbidden call).
fn run_filtered(dir: &Path, program: &str, args: &[&str]) -> Output {
    warmbox_testkit::listener::run_confined(dir, program, args, default_policy(), None)
}

#[test]
fn python3_runs() {
    if !seccomp_available() || !installed("/usr/bin/python3") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_filtered(
        dir.path(),
        "/usr/bin/python3",
        &["-c", "import threading,json;print(1)"],
    );
    assert_ok(&out, "python3 -c print", "1\n");

    // Threads, a subprocess, a pipe and a temporary file.
    let script = "import threading, subprocess, tempfile, json\n\
                  r = []\n\
                  t = threading.Thread(target=lambda: r.append(sum(range(10))))\n\
                  t.start(); t.join()\n\
                  p = subprocess.run(['/usr/bin/echo', 'sub'], capture_output=True, text=True)\n\
                  with tempfile.TemporaryFile() as f:\n    f.write(b'x'); f.seek(0); d = f.read()\n\
                  print(json.dumps([r[0], p.stdout.strip(), d.decode()]))\n";
    let out = run_filtered(dir.path(), "/usr/bin/python3", &["-c", script]);
    assert_ok(&out, "python3 threads+subprocess", "[45, \"sub\", \"x\"]\n");
}

#[test]
fn node_runs() {
    if !seccomp_available() || !installed("/usr/bin/node") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_filtered(dir.path(), "/usr/bin/node", &["-e", "console.log(1)"]);
    assert_ok(&out, "node -e console.log", "1\n");

    // A worker thread and the file system through libuv's thread pool.
    let script = "const { Worker } = require('worker_threads');\n\
                  const fs = require('fs');\n\
                  fs.writeFileSync('f.txt', 'ok');\n\
                  const w = new Worker('require(\"worker_threads\").parentPort.postMessage(6*7)', { eval: true });\n\
                  w.on('message', (m) => fs.readFile('f.txt', 'utf8', (e, d) => { console.log(m, d); }));\n";
    let out = run_filtered(dir.path(), "/usr/bin/node", &["-e", script]);
    assert_ok(&out, "node worker+fs", "42 ok\n");
}

#[test]
fn java_and_javac_run() {
    if !seccomp_available() || !installed("/usr/bin/java") || !installed("/usr/bin/javac") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_filtered(dir.path(), "/usr/bin/java", &["-version"]);
    assert_ok(&out, "java -version", "");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("version \"17"),
        "java -version: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let source = "public class Main {\n\
                  public static void main(String[] a) throws Exception {\n\
                  int[] r = new int[1];\n\
                  Thread t = new Thread(() -> r[0] = 6 * 7); t.start(); t.join();\n\
                  System.out.println(r[0]);\n\
                  }\n}\n";
    std::fs::write(dir.path().join("Main.java"), source).expect("write Main.java");
    let out = run_filtered(dir.path(), "/usr/bin/javac", &["Main.java"]);
    assert_ok(&out, "javac Main.java", "");
    let out = run_filtered(dir.path(), "/usr/bin/java", &["-cp", ".", "Main"]);
    assert_ok(&out, "java Main", "42\n");
}

#[test]
fn bash_runs() {
    if !seccomp_available() || !installed("/usr/bin/bash") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_filtered(dir.path(), "/usr/bin/bash", &["-c", "echo $((1+1)) | cat"]);
    assert_ok(&out, "bash pipeline", "2\n");

    // Coreutils the way scripts use them.
    let script = "set -e; mkdir d; echo b > d/f; cp d/f d/g; mv d/g d/h; ln -s f d/l; \
                  chmod 600 d/h; test -x /usr/bin/ls; ls d | sort | tr '\\n' ' '; \
                  cat d/l d/h | wc -l; rm -r d; seq 3 | sort -r | head -n 1; \
                  timeout 5 sleep 0.01; date +%Y >/dev/null; echo done";
    let out = run_filtered(dir.path(), "/usr/bin/bash", &["-c", script]);
    assert_ok(&out, "bash coreutils", "f h l 2\n3\ndone\n");
}

#[test]
fn gcc_compiles_and_its_output_runs() {
    if !seccomp_available() || !installed("/usr/bin/gcc") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let source = "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 6 * 7); return 0; }\n";
    std::fs::write(dir.path().join("x.c"), source).expect("write x.c");
    let out = run_filtered(dir.path(), "/usr/bin/gcc", &["-O2", "-o", "x", "x.c"]);
    assert_ok(&out, "gcc -o x x.c", "");
    let out = run_filtered(dir.path(), "./x", &[]);
    assert_ok(&out, "./x", "42\n");
}

#[test]
fn gxx_compiles_and_its_threaded_output_runs() {
    if !seccomp_available() || !installed("/usr/bin/g++") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let source = "#include <iostream>\n#include <thread>\n\
                  int main() { int r = 0; std::thread t([&] { r = 6 * 7; }); t.join();\n\
                  std::cout << r << std::endl; }\n";
    std::fs::write(dir.path().join("x.cpp"), source).expect("write x.cpp");
    let out = run_filtered(
        dir.path(),
        "/usr/bin/g++",
        &["-O2", "-pthread", "-o", "xx", "x.cpp"],
    );
    assert_ok(&out, "g++ -o xx x.cpp", "");
    let out = run_filtered(dir.path(), "./xx", &[]);
    assert_ok(&out, "./xx", "42\n");
}
