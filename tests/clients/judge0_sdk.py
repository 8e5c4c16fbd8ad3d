"""Judge0's official Python SDK (judge0 on PyPI), unchanged, against warmbox's Judge0 API:
each of the first six languages, Go, Rust and Kotlin, an asynchronous submission and a batch. Prints one line per
check; exits non-zero on the first mismatch. The server's base URL is WARMBOX_URL."""

import os
import sys

import judge0

client = judge0.Client(os.environ["WARMBOX_URL"])
PROGRAMS = {
    "python": (judge0.PYTHON, "print(input()[::-1])", "cba\n"),
    "c": (judge0.C, '#include <stdio.h>\nint main(void){char s[64]; scanf("%63s", s); printf("%s\\n", s); return 0;}', "abc\n"),
    "cpp": (judge0.CPP, '#include <iostream>\nint main(){std::string s; std::cin>>s; std::cout<<s<<"\\n";}', "abc\n"),
    "java": (judge0.JAVA, "import java.util.*;\npublic class Main{public static void main(String[] a){System.out.println(new Scanner(System.in).next());}}", "abc\n"),
    "javascript": (judge0.JAVASCRIPT, "process.stdin.on('data', d => console.log(d.toString().trim()))", "abc\n"),
    "bash": (judge0.BASH, 'read x; echo "$x"', "abc\n"),
    "go": (judge0.GO, 'package main\nimport "fmt"\nfunc main(){var s string; fmt.Scan(&s); fmt.Println(s)}', "abc\n"),
    "rust": (judge0.RUST, 'use std::io::*;\nfn main(){let mut s=String::new(); stdin().read_line(&mut s).unwrap(); println!("{}", s.trim());}', "abc\n"),
    "kotlin": (judge0.KOTLIN, "fun main() { println(readLine()!!.trim()) }", "abc\n"),
}


def check(what, got, want):
    if got != want:
        print(f"{what}: got {got!r}, want {want!r}")
        sys.exit(1)
    print(f"{what}: ok")


for name, (language, source, want) in PROGRAMS.items():
    r = judge0.run(client=client, source_code=source, language=language, stdin="abc")
    check(name, (r.status.name, r.stdout), ("ACCEPTED", want))

s = judge0.async_run(client=client, source_code="print(6*7)", language=judge0.PYTHON)
judge0.wait(client=client, submissions=s)
check("async", (s.status.name, s.stdout), ("ACCEPTED", "42\n"))

subs = [judge0.Submission(source_code=f"print({i})", language=judge0.PYTHON) for i in range(3)]
done = judge0.run(client=client, submissions=subs)
check("batch", [(x.status.name, x.stdout) for x in done], [("ACCEPTED", f"{i}\n") for i in range(3)])

r = judge0.run(client=client, source_code="import sys\nsys.exit(3)", language=judge0.PYTHON)
check("nzec", r.status.name, "RUNTIME_ERROR_NZEC")
