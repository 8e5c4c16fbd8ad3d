// piston-client (npm), unchanged, against warmbox's Piston API: the runtimes, each of the
// first six languages, and Go, Rust and Kotlin. Prints one line per check; exits non-zero on the first mismatch. The
// server's base URL is WARMBOX_URL.
import piston from "piston-client";

const client = piston({ server: process.env.WARMBOX_URL });
function check(what, got, want) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) {
    console.log(`${what}: got ${g}, want ${w}`);
    process.exit(1);
  }
  console.log(`${what}: ok`);
}

const runtimes = await client.runtimes();
// Every language this host has is listed; these must be among them.
const listed = new Set(runtimes.map(r => r.language));
check("runtimes",
  ["bash", "c", "c++", "go", "java", "javascript", "kotlin", "python", "rust"].filter(l => !listed.has(l)),
  []);
const programs = {
  python: ["print(input()[::-1])", "cba\n"],
  c: ['#include <stdio.h>\nint main(void){char s[64]; scanf("%63s", s); printf("%s\\n", s); return 0;}', "abc\n"],
  "c++": ['#include <iostream>\nint main(){std::string s; std::cin>>s; std::cout<<s<<"\\n";}', "abc\n"],
  java: ["import java.util.*;\npublic class Main{public static void main(String[] a){System.out.println(new Scanner(System.in).next());}}", "abc\n"],
  javascript: ["process.stdin.on('data', d => console.log(d.toString().trim()))", "abc\n"],
  bash: ['read x; echo "$x"', "abc\n"],
  go: ['package main\nimport "fmt"\nfunc main(){var s string; fmt.Scan(&s); fmt.Println(s)}', "abc\n"],
  rust: ["use std::io::*;\nfn main(){let mut s=String::new(); stdin().read_line(&mut s).unwrap(); println!(\"{}\", s.trim());}", "abc\n"],
  kotlin: ["fun main() { println(readLine()!!.trim()) }", "abc\n"],
};
for (const [language, [source, want]] of Object.entries(programs)) {
  const r = await client.execute(language, source, { stdin: "abc" });
  check(language, [r.run.output, r.run.code, r.run.status], [want, 0, null]);
}
const bad = await client.execute("python", "import sys\nsys.exit(3)");
check("exit code", [bad.run.code, bad.run.status], [3, "RE"]);
