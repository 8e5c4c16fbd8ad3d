//! The runtimes under the job process's full confinement: landlock (read and execute
//! everywhere, write only to a scratch directory standing in for `/box`, to `/tmp` and to
//! `/dev/null`) and then the `default` seccomp policy, both applied in `pre_exec` right
//! before exec, in that order, as the job process does. Exact exit status and output are
//! asserted; a missing runtime or kernel feature is skipped with a message.

use std::path::{Path, PathBuf};
use std::process::Output;

use warmbox_inside::landlock::{prepare, LandlockRules};
use warmbox_testkit::kernel::{default_policy, installed, landlock_available};
use warmbox_testkit::listener::assert_clean_exit as assert_ok;

/// Whether landlock and `program` are there (else skipped, or a failure in CI).
fn available(program: &str) -> bool {
    landlock_available() && installed(program)
}

/// Runs `program args` in `dir`, confined as a job process whose `/box` is `dir`.
fn run_confined(dir: &Path, program: &str, args: &[&str]) -> Output {
    let rules = LandlockRules {
        read_exec: vec![PathBuf::from("/")],
        read_write: vec![dir.to_owned(), PathBuf::from("/tmp")],
        write_files: vec![PathBuf::from("/dev/null")],
    };
    let landlock = prepare(&rules).unwrap_or_else(|e| panic!("{e}"));
    warmbox_testkit::listener::run_confined(dir, program, args, default_policy(), Some(landlock))
}

#[test]
fn python3_confined() {
    if !available("/usr/bin/python3") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = "import threading, json, pathlib\n\
                  t = threading.Thread(target=lambda: pathlib.Path('out.txt').write_text('ok'))\n\
                  t.start(); t.join()\n\
                  try:\n    open('/etc/warmbox-test', 'w')\nexcept PermissionError as e:\n    print('denied', e.errno)\n\
                  print(json.dumps(pathlib.Path('out.txt').read_text()))\n";
    let out = run_confined(dir.path(), "/usr/bin/python3", &["-c", script]);
    assert_ok(&out, "python3", "denied 13\n\"ok\"\n");
    assert!(!Path::new("/etc/warmbox-test").exists());
}

#[test]
fn node_confined() {
    if !available("/usr/bin/node") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = "const fs = require('fs'); fs.writeFileSync('a.txt', '1');\n\
                  console.log(fs.readFileSync('a.txt', 'utf8'));";
    let out = run_confined(dir.path(), "/usr/bin/node", &["-e", script]);
    assert_ok(&out, "node", "1\n");
}

#[test]
fn javac_and_java_confined() {
    if !available("/usr/bin/javac") || !available("/usr/bin/java") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let source = "public class Main { public static void main(String[] a) throws Exception {\n\
                  Thread t = new Thread(() -> System.out.println(42)); t.start(); t.join(); } }\n";
    std::fs::write(dir.path().join("Main.java"), source).expect("write Main.java");
    let out = run_confined(dir.path(), "/usr/bin/javac", &["Main.java"]);
    assert_ok(&out, "javac", "");
    let out = run_confined(dir.path(), "/usr/bin/java", &["-cp", ".", "Main"]);
    assert_ok(&out, "java", "42\n");
}

#[test]
fn gcc_and_bash_confined() {
    if !available("/usr/bin/gcc") || !available("/usr/bin/bash") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("x.c"),
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
    )
    .expect("write x.c");
    let out = run_confined(dir.path(), "/usr/bin/gcc", &["-o", "x", "x.c"]);
    assert_ok(&out, "gcc", "");
    let out = run_confined(
        dir.path(),
        "/usr/bin/bash",
        &["-c", "./x | cat; echo $((1+1)) > /dev/null; echo done"],
    );
    assert_ok(&out, "bash", "hi\ndone\n");
}
