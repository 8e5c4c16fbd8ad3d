//! The security suite: each test is one technique a hostile submission would try, and
//! asserts both that the attack failed (the exact status, exit code, signal, errno or bytes)
//! and that the host is unchanged (no process left in this binary's uid block, no file
//! created on the host, no connection accepted, no cgroup left under a private parent).
//!
//! Tests that look at the whole uid block, or whose assertions are about timing, hold the
//! suite's gate exclusively: the uid block is shared by every container of this binary, and
//! a 2-core machine running other containers beside a CPU-limit test would blur it.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use warmbox_runner::request::{self, RunRequest, RunStatus, StepResult, StepStatus};

use warmbox_testkit::emulation::{budget, budget_ms};
use warmbox_testkit::harness::{expect, expect_ok, Harness};

const MIB: u64 = 1 << 20;
const SIGKILL: i32 = 9;
const SIGXFSZ: i32 = 25;
const SIGSYS: i32 = 31;

static GATE: RwLock<()> = RwLock::const_new(());

/// For tests that only run containers.
async fn shared() -> RwLockReadGuard<'static, ()> {
    GATE.read().await
}

/// For tests that check the whole uid block or measure time.
async fn exclusive() -> RwLockWriteGuard<'static, ()> {
    GATE.write().await
}

/// A name no earlier run or other test can have made: for "no such file on the host".
fn marker(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("warmbox-sec-{tag}-{}-{nanos}", std::process::id())
}

async fn run(h: &Harness, req: Value) -> StepResult {
    h.run(req).await.run.expect("run step present")
}

/// A bash script as the run command, with `limits`.
async fn sh(h: &Harness, script: &str, limits: Value) -> StepResult {
    run(
        h,
        json!({"profile": "bash", "cmd": ["/bin/bash", "-c", script], "limits": limits}),
    )
    .await
}

/// A python3 program, with `limits`.
async fn py(h: &Harness, code: &str, limits: Value) -> StepResult {
    run(
        h,
        json!({"profile": "python3", "files": [{"name": "main.py", "content": code}],
               "limits": limits}),
    )
    .await
}

/// Nothing runs under this binary's container uids (hold `exclusive()`).
fn assert_no_leftovers() {
    let left = warmbox_testkit::processes_in_uid_block();
    assert!(
        left.is_empty(),
        "processes left in the uid block after the run: {left:?}"
    );
}

/// The private harness's cgroup parent is empty.
fn assert_no_cgroups(h: &Harness) {
    let left = h.sandbox.cgroups().list().expect("list cgroups");
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

// ---------------------------------------------------------------------------------------
// 1. Network
// ---------------------------------------------------------------------------------------

/// A listener on the host's loopback, and a check that it accepted nothing.
struct HostListener {
    listener: std::net::TcpListener,
}

impl HostListener {
    fn new() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking");
        HostListener { listener }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().expect("local addr").port()
    }

    fn assert_nothing_accepted(&self) {
        match self.listener.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("the host listener accepted a connection from {peer}"),
            Err(e) => panic!("accept on the host listener: {e}"),
        }
    }
}

/// The errno of a TCP connect (or bind) made in a container: landlock refuses it (EACCES)
/// where the kernel has its network rules (ABI 4, Linux 6.7); on an older kernel the
/// container's network namespace answers alone with `without_landlock` (ECONNREFUSED on its
/// own loopback, where nobody listens; ENETUNREACH elsewhere: it has no route). Either way
/// nothing leaves the container, which each test checks on the host side too.
fn tcp_errno(without_landlock: &'static str) -> &'static str {
    if warmbox_inside::landlock::abi_version().is_some_and(|abi| abi >= 4) {
        "EACCES"
    } else {
        without_landlock
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_tcp_connect_to_host_loopback() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let host = HostListener::new();
    let code = format!(
        r#"
import errno, socket
for fam, addr in ((socket.AF_INET, ("127.0.0.1", {port})), (socket.AF_INET6, ("::1", {port}))):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(addr)
        print("connected", addr[0])
    except OSError as e:
        print(addr[0], errno.errorcode[e.errno])
"#,
        port = host.port()
    );
    let r = py(h, &code, json!({})).await;
    expect_ok(&r);
    // landlock refuses TCP connect before the (empty) loopback of the namespace is reached;
    // without it, that loopback refuses: the host's listener is in another namespace.
    let errno = tcp_errno("ECONNREFUSED");
    assert_eq!(
        lines(&r.stdout),
        [format!("127.0.0.1 {errno}"), format!("::1 {errno}")]
    );
    host.assert_nothing_accepted();
}

#[tokio::test(flavor = "multi_thread")]
async fn bash_dev_tcp_connect_to_host_loopback() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let host = HostListener::new();
    let script = format!(
        "echo pwned > /dev/tcp/127.0.0.1/{}; echo rc=$?",
        host.port()
    );
    let r = sh(h, &script, json!({})).await;
    expect_ok(&r);
    assert_eq!(r.stdout, "rc=1\n");
    let refusal = match tcp_errno("ECONNREFUSED") {
        "EACCES" => "connect: Permission denied",
        _ => "connect: Connection refused",
    };
    assert!(r.stderr.contains(refusal), "stderr: {}", r.stderr);
    host.assert_nothing_accepted();
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_to_host_loopback() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let host = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    host.set_nonblocking(true).expect("non-blocking");
    let port = host.local_addr().expect("addr").port();
    let code = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print(s.sendto(b"escape", ("127.0.0.1", {port})))
"#
    );
    let r = py(h, &code, json!({})).await;
    expect_ok(&r);
    // The datagram goes to the container's own loopback, where nobody listens.
    assert_eq!(r.stdout, "6\n");
    let mut buf = [0u8; 64];
    match host.recv_from(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((n, peer)) => panic!("the host received {n} bytes from {peer}"),
        Err(e) => panic!("recv on the host socket: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_loopback_interface_is_visible() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = sh(
        h,
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ls /sys/class/net 2>&1; \
         cat /proc/net/route | wc -l",
        json!({}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        [
            "lo",
            "ls: cannot access '/sys/class/net': No such file or directory",
            // The header only: no route at all.
            "1",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn external_address_is_unreachable() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let code = r#"
import errno, socket
for addr in (("1.1.1.1", 80), ("192.0.2.1", 80)):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(addr)
        print("tcp connected", addr[0])
    except OSError as e:
        print("tcp", addr[0], errno.errorcode[e.errno])
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.sendto(b"x", (addr[0], 53))
        print("udp sent", addr[0])
    except OSError as e:
        print("udp", addr[0], errno.errorcode[e.errno])
try:
    socket.getaddrinfo("example.com", 80)
    print("resolved")
except OSError as e:
    print("dns", type(e).__name__)
"#;
    let r = py(h, code, json!({})).await;
    expect_ok(&r);
    // landlock has no UDP rules: the namespace's missing route answers UDP on every kernel,
    // and TCP where landlock has no network rules.
    let tcp = tcp_errno("ENETUNREACH");
    assert_eq!(
        lines(&r.stdout),
        [
            format!("tcp 1.1.1.1 {tcp}"),
            "udp 1.1.1.1 ENETUNREACH".into(),
            format!("tcp 192.0.2.1 {tcp}"),
            "udp 192.0.2.1 ENETUNREACH".into(),
            "dns gaierror".into(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn abstract_unix_socket_of_the_host() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    use std::os::linux::net::SocketAddrExt;
    let name = marker("abstract");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("abstract address");
    let listener =
        std::os::unix::net::UnixListener::bind_addr(&addr).expect("bind abstract socket");
    listener.set_nonblocking(true).expect("non-blocking");
    let code = format!(
        r#"
import errno, socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0{name}")
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])
"#
    );
    let r = py(h, &code, json!({})).await;
    expect_ok(&r);
    // Abstract names belong to the network namespace: the host's name does not exist here.
    assert_eq!(r.stdout, "ECONNREFUSED\n");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok(_) => panic!("the host's abstract socket accepted a connection"),
        Err(e) => panic!("accept: {e}"),
    }
}

// ---------------------------------------------------------------------------------------
// 2. Reading host files
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn host_files_outside_the_binds() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let paths = [
        "/root",
        "/home",
        "/work",
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/ssh",
        "/run",
        "/var",
        "/sys",
        "/boot",
        "/srv",
        "/opt",
        "/mnt",
        "/media",
        "/lost+found",
        env!("CARGO_MANIFEST_DIR"),
    ];
    let script = format!(
        "for p in {}; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then echo \"present $p\"; \
         else echo \"absent $p\"; fi; done",
        paths.join(" ")
    );
    let r = sh(h, &script, json!({})).await;
    expect_ok(&r);
    let want: Vec<String> = paths.iter().map(|p| format!("absent {p}")).collect();
    assert_eq!(lines(&r.stdout), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn host_etc_files_are_not_the_hosts() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = sh(
        h,
        "cat /etc/hostname; echo ---; cat /etc/passwd; echo ---; ls -A /etc",
        json!({}),
    )
    .await;
    expect_ok(&r);
    let parts: Vec<&str> = r.stdout.split("---\n").collect();
    assert_eq!(parts.len(), 3, "stdout: {}", r.stdout);
    let host_hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    assert_eq!(parts[0], "warmbox\n");
    assert_ne!(parts[0], host_hostname);
    assert_ne!(parts[1], host_passwd);
    assert_eq!(
        lines(parts[1]),
        [
            "root:x:0:0:root:/root:/bin/sh",
            "box:x:1000:1000:box:/box:/bin/sh",
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
        ]
    );
    // Only what the container itself provides, plus the profile's binds under /etc.
    assert_eq!(
        lines(parts[2]),
        [
            "alternatives",
            "group",
            "hostname",
            "hosts",
            "ld.so.cache",
            "passwd"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compiler_includes_host_files() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    for (src, error) in [
        (
            "#include \"/etc/shadow\"\nint main(void) { return 0; }\n",
            "fatal error: /etc/shadow: No such file or directory",
        ),
        (
            "__asm__(\".section .rodata\\n.incbin \\\"/proc/1/environ\\\"\\n.previous\");\n\
             int main(void) { return 0; }\n",
            "Error: file not found: /proc/1/environ",
        ),
    ] {
        let resp = h
            .run(json!({"profile": "c", "files": [{"name": "main.c", "content": src}]}))
            .await;
        assert_eq!(resp.status, RunStatus::CompileError, "{resp:#?}");
        let compile = resp.compile.expect("compile step");
        expect(&compile, StepStatus::RuntimeError, Some(1), None);
        assert!(compile.stderr.contains(error), "stderr: {}", compile.stderr);
        assert!(resp.run.is_none());
    }
}

// ---------------------------------------------------------------------------------------
// 3. Writing to read-only mounts
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn writes_to_read_only_mounts() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let name = marker("ro");
    let passwd_before = std::fs::read("/etc/passwd").expect("read host /etc/passwd");
    let hostname_before = nix::unistd::gethostname().expect("gethostname");
    let targets = [
        format!("/usr/bin/{name}"),
        "/etc/passwd".to_string(),
        format!("/{name}"),
        "/proc/sys/kernel/hostname".to_string(),
        format!("/dev/{name}"),
        format!("/etc/{name}"),
        "/proc/sys/vm/drop_caches".to_string(),
    ];
    let mut script = String::new();
    for t in &targets {
        script.push_str(&format!(
            "(echo pwned > {t}) 2>/dev/null; echo \"{t} $?\"; "
        ));
    }
    script.push_str(&format!(
        "mkdir /{name}-d 2>/dev/null; echo mkdir $?; \
         chmod 777 / 2>/dev/null; echo chmod $?; \
         hostname pwned 2>/dev/null; echo hostname $?; \
         ln -s /etc/passwd /box/l && (echo pwned >> /box/l) 2>/dev/null; echo symlink $?; \
         ln /usr/bin/bash /box/hard 2>/dev/null; echo hardlink $?"
    ));
    let r = sh(h, &script, json!({})).await;
    expect_ok(&r);
    let mut want: Vec<String> = targets.iter().map(|t| format!("{t} 1")).collect();
    want.extend(
        [
            "mkdir 1",
            "chmod 1",
            "hostname 1",
            "symlink 1",
            "hardlink 1",
        ]
        .map(String::from),
    );
    assert_eq!(lines(&r.stdout), want);
    // The host is unchanged.
    for p in [
        format!("/usr/bin/{name}"),
        format!("/{name}"),
        format!("/{name}-d"),
        format!("/dev/{name}"),
        format!("/etc/{name}"),
    ] {
        assert!(
            !std::path::Path::new(&p).exists(),
            "{p} appeared on the host"
        );
    }
    assert_eq!(std::fs::read("/etc/passwd").expect("read"), passwd_before);
    assert_eq!(
        nix::unistd::gethostname().expect("hostname"),
        hostname_before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn proc_sys_and_id_maps_are_not_writable() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let code = r#"
import errno, os
for path, data in (("/proc/sys/kernel/hostname", b"pwned"), ("/proc/sys/kernel/core_pattern", b"|/box/x"),
                   ("/proc/self/uid_map", b"0 0 1\n"), ("/proc/self/gid_map", b"0 0 1\n"),
                   ("/proc/self/setgroups", b"allow"), ("/proc/1/mem", b"x"),
                   ("/proc/self/oom_score_adj", b"-1000")):
    try:
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, data)
        print(path, "written")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
"#;
    let r = py(h, code, json!({})).await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        [
            "/proc/sys/kernel/hostname EACCES",
            "/proc/sys/kernel/core_pattern EACCES",
            "/proc/self/uid_map EACCES",
            "/proc/self/gid_map EACCES",
            "/proc/self/setgroups EACCES",
            "/proc/1/mem EACCES",
            "/proc/self/oom_score_adj EACCES",
        ]
    );
    let core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    assert!(
        !core_pattern.contains("/box/x"),
        "core_pattern: {core_pattern}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Host processes
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn host_processes_are_invisible() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let me = std::process::id();
    let code = format!(
        r#"
import errno, os
print(sorted(int(d) for d in os.listdir("/proc") if d.isdigit()))
print(os.getpid(), os.getppid(), open("/proc/1/comm").read().strip())
print(os.path.exists("/proc/{me}"))
try:
    os.kill({me}, 0)
    print("signalled")
except OSError as e:
    print(errno.errorcode[e.errno])
"#
    );
    let r = py(h, &code, json!({})).await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        ["[1, 2]", "2 1 warmbox", "False", "ESRCH"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn init_process_is_closed_to_the_job() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let code = r#"
import errno, os
for p in ("/proc/1/environ", "/proc/1/mem", "/proc/1/maps", "/proc/1/root/", "/proc/1/cwd/", "/proc/1/fd/", "/proc/1/exe"):
    try:
        if p.endswith("/"):
            os.listdir(p)
        else:
            open(p, "rb").read(1)
        print(p, "open")
    except OSError as e:
        print(p, errno.errorcode[e.errno])
"#;
    let r = py(h, code, json!({})).await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        [
            "/proc/1/environ EACCES",
            "/proc/1/mem EACCES",
            "/proc/1/maps EACCES",
            "/proc/1/root/ EACCES",
            "/proc/1/cwd/ EACCES",
            "/proc/1/fd/ EACCES",
            "/proc/1/exe EACCES",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signals_to_pid_1() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = sh(
        h,
        "for s in KILL TERM STOP SEGV; do kill -$s 1 2>/dev/null; echo \"$s $?\"; done; \
         echo alive",
        json!({}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        ["KILL 1", "TERM 1", "STOP 1", "SEGV 1", "alive"]
    );
}

// ---------------------------------------------------------------------------------------
// 5. Root and capabilities
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn job_has_no_privileges() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let code = r#"
import errno, os
keys = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
for line in open("/proc/self/status"):
    k, _, v = line.partition(":")
    if k in keys:
        print(k, " ".join(v.split()))
for name, call in (("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0)),
                   ("setgroups", lambda: os.setgroups([0])), ("setresuid", lambda: os.setresuid(0, 0, 0)),
                   ("chown", lambda: os.chown("/box", 0, 0))):
    try:
        call()
        print(name, "succeeded")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups())
"#;
    let r = py(h, code, json!({})).await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        [
            "Uid 1000 1000 1000 1000",
            "Gid 1000 1000 1000 1000",
            "Groups ",
            "CapInh 0000000000000000",
            "CapPrm 0000000000000000",
            "CapEff 0000000000000000",
            "CapBnd 0000000000000000",
            "CapAmb 0000000000000000",
            "NoNewPrivs 1",
            "Seccomp 2",
            "setuid EPERM",
            "setgid EPERM",
            "setgroups EPERM",
            "setresuid EPERM",
            "chown EPERM",
            "1000 1000 1000 1000 []",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setuid_binaries_do_not_raise_privileges() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    // newgrp is setuid root on the host and blocks on its password prompt, so its
    // credentials can be read while it runs; su must not give a root shell either.
    let code = r#"
import os, subprocess
print(oct(os.stat("/usr/bin/newgrp").st_mode & 0o7777))
r, w = os.pipe()
p = subprocess.Popen(["/usr/bin/newgrp", "root"], stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.close(r)
import time
time.sleep(0.2)
status = dict(l.split(":", 1) for l in open(f"/proc/{p.pid}/status"))
print(status["Name"].strip(), " ".join(status["Uid"].split()), status["CapEff"].strip())
os.close(w)
print("newgrp exit", p.wait())
s = subprocess.run(["/usr/bin/su", "root", "-c", "id -u"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
print("su exit", s.returncode, repr(s.stdout))
"#;
    let r = py(h, code, json!({})).await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        [
            "0o4755",
            "newgrp 1000 1000 1000 1000 0000000000000000",
            "newgrp exit 1",
            "su exit 1 ''",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// 6. Dangerous syscalls
// ---------------------------------------------------------------------------------------

/// Calls one syscall by name, directly, after announcing it on stdout.
const SYSCALLS_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void *in_thread(void *arg) {
    (void)arg;
    syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
    return 0;
}

static void *count(void *arg) {
    __atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
    return 0;
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    long r = -2;
    printf("before %s\n", w);
    fflush(stdout);
    errno = 0;
    if (!strcmp(w, "ptrace")) r = syscall(SYS_ptrace, 0, 0, 0, 0);
    else if (!strcmp(w, "mount")) r = syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, 0);
    else if (!strcmp(w, "bpf")) r = syscall(SYS_bpf, 0, 0, 0);
    else if (!strcmp(w, "perf_event_open")) r = syscall(SYS_perf_event_open, 0, 0, -1, -1, 0);
    else if (!strcmp(w, "io_uring_setup")) r = syscall(SYS_io_uring_setup, 1, 0);
    else if (!strcmp(w, "userfaultfd")) r = syscall(SYS_userfaultfd, 0);
    else if (!strcmp(w, "keyctl")) r = syscall(SYS_keyctl, 0, 0, 0, 0, 0);
    else if (!strcmp(w, "kexec_load")) r = syscall(SYS_kexec_load, 0, 0, 0, 0);
    else if (!strcmp(w, "init_module")) r = syscall(SYS_init_module, 0, 0, "");
    else if (!strcmp(w, "unshare")) r = syscall(SYS_unshare, CLONE_NEWUSER);
    else if (!strcmp(w, "setns")) r = syscall(SYS_setns, 0, 0);
    else if (!strcmp(w, "clone_newuser")) r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    else if (!strcmp(w, "clone_newns")) r = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    else if (!strcmp(w, "process_vm_readv")) r = syscall(SYS_process_vm_readv, 1, 0, 0, 0, 0, 0);
    else if (!strcmp(w, "open_by_handle_at")) r = syscall(SYS_open_by_handle_at, -100, 0, 0);
    else if (!strcmp(w, "tiocsti")) { char c = 'x'; r = syscall(SYS_ioctl, 0, 0x5412UL, &c); }
    /* The kernel truncates the request to 32 bits: the filter must too. */
    else if (!strcmp(w, "tiocsti_high_bits")) { char c = 'x'; r = syscall(SYS_ioctl, 0, 0x100005412UL, &c); }
    /* x32 ABI: the same syscall numbers with bit 30 set. */
    else if (!strcmp(w, "x32_ptrace")) r = syscall(0x40000000 | SYS_ptrace, 0, 0, 0, 0);
    /* i386 ABI through int 0x80: getpid is 20 there. */
    else if (!strcmp(w, "int80")) { long ret; __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory"); r = ret; }
    else if (!strcmp(w, "thread_ptrace")) { pthread_t t; pthread_create(&t, 0, in_thread, 0); pthread_join(t, 0); r = 0; }
    else if (!strcmp(w, "child_ptrace")) {
        pid_t p = fork();
        if (p == 0) { syscall(SYS_ptrace, 0, 0, 0, 0); _exit(0); }
        int st = 0;
        waitpid(p, &st, 0);
        printf("child signaled %d signal %d\n", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        return 0;
    }
    else if (!strcmp(w, "clone3")) {
        struct clone_args a;
        memset(&a, 0, sizeof a);
        a.flags = CLONE_NEWUSER;
        a.exit_signal = SIGCHLD;
        r = syscall(SYS_clone3, &a, sizeof a);
        if (r == 0) _exit(0);
    }
    else if (!strcmp(w, "threads")) {
        int n = 0;
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            if (pthread_create(&t[i], 0, count, &n)) { perror("pthread_create"); return 2; }
        for (int i = 0; i < 8; i++) pthread_join(t[i], 0);
        printf("threads %d\n", n);
        return 0;
    }
    else if (!strcmp(w, "setuid")) r = syscall(SYS_setuid, 0);
    else if (!strcmp(w, "mknod")) r = syscall(SYS_mknod, "/tmp/sda", 060600, 0x800);
    else { printf("unknown %s\n", w); return 2; }
    printf("%s returned %ld errno %s\n", w, r, strerrorname_np(errno) ? strerrorname_np(errno) : "0");
    return 0;
}
"#;

/// The call is forbidden: it never returned, the container's init was told which syscall
/// was made, and killed the container: `security_violation` naming the syscall.
async fn assert_forbidden(call: &str, syscall: &str) {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = h.c(SYSCALLS_C, &[call], json!({})).await;
    expect(&r, StepStatus::SecurityViolation, None, Some(SIGKILL));
    assert_eq!(r.stdout, format!("before {call}\n"));
    let message = r.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with(&format!("forbidden system call {syscall} (")),
        "{r:#?}"
    );
}

/// The syscall kills the job outright (foreign ABIs, terminal injection):
/// `security_violation` by SIGSYS, and the call never returned.
async fn assert_killed_by_seccomp(call: &str) {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = h.c(SYSCALLS_C, &[call], json!({})).await;
    expect(&r, StepStatus::SecurityViolation, None, Some(SIGSYS));
    assert_eq!(r.signal_name.as_deref(), Some("SIGSYS"));
    assert_eq!(r.stdout, format!("before {call}\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_ptrace() {
    assert_forbidden("ptrace", "ptrace").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_mount() {
    assert_forbidden("mount", "mount").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_bpf() {
    assert_forbidden("bpf", "bpf").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_perf_event_open() {
    assert_forbidden("perf_event_open", "perf_event_open").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_io_uring_setup() {
    assert_forbidden("io_uring_setup", "io_uring_setup").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_userfaultfd() {
    assert_forbidden("userfaultfd", "userfaultfd").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_keyctl() {
    assert_forbidden("keyctl", "keyctl").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_kexec_load() {
    assert_forbidden("kexec_load", "kexec_load").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_init_module() {
    assert_forbidden("init_module", "init_module").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_unshare() {
    assert_forbidden("unshare", "unshare").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_setns() {
    assert_forbidden("setns", "setns").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_clone_newuser() {
    assert_forbidden("clone_newuser", "clone").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_clone_newns() {
    assert_forbidden("clone_newns", "clone").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_process_vm_readv() {
    assert_forbidden("process_vm_readv", "process_vm_readv").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_open_by_handle_at() {
    assert_forbidden("open_by_handle_at", "open_by_handle_at").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_tiocsti() {
    assert_killed_by_seccomp("tiocsti").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_tiocsti_with_high_bits() {
    assert_killed_by_seccomp("tiocsti_high_bits").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_x32_abi() {
    assert_killed_by_seccomp("x32_ptrace").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_i386_int80() {
    assert_killed_by_seccomp("int80").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_ptrace_from_a_thread() {
    assert_forbidden("thread_ptrace", "ptrace").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_ptrace_from_a_child_process() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = h.c(SYSCALLS_C, &["child_ptrace"], json!({})).await;
    // A child made the call: the whole container ends there, the parent included (it
    // never printed how its child ended), and the run is a security violation.
    expect(&r, StepStatus::SecurityViolation, None, Some(SIGKILL));
    assert_eq!(r.stdout, "before child_ptrace\n", "{r:#?}");
    let message = r.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("forbidden system call ptrace (101) by process "),
        "{r:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_clone3_fails_with_enosys() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = h.c(SYSCALLS_C, &["clone3"], json!({})).await;
    expect_ok(&r);
    assert_eq!(r.stdout, "before clone3\nclone3 returned -1 errno ENOSYS\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_threads_still_work() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = h.c(SYSCALLS_C, &["threads"], json!({})).await;
    expect_ok(&r);
    assert_eq!(r.stdout, "before threads\nthreads 8\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_setuid_zero_fails() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = h.c(SYSCALLS_C, &["setuid"], json!({})).await;
    expect_ok(&r);
    assert_eq!(r.stdout, "before setuid\nsetuid returned -1 errno EPERM\n");
}

// ---------------------------------------------------------------------------------------
// 7-11. Resource limits
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn fork_bomb_bash() {
    let Some(h) = common::private_harness("warmbox-sec-forkbomb-bash") else {
        return;
    };
    let _g = exclusive().await;
    let started = Instant::now();
    // The pids limit is the subject; the wall limit only has to give the bomb time to
    // reach it (under emulation, where a fork costs 100x, 1 s may not).
    let wall = budget_ms(1000);
    let r = sh(
        &h,
        ":(){ :|:& };:; sleep 1000",
        json!({"pids": 16, "wall_ms": wall, "cpu_ms": budget_ms(1000)}),
    )
    .await;
    expect(&r, StepStatus::WallTimeLimit, None, Some(SIGKILL));
    assert!(
        r.stderr
            .contains("fork: retry: Resource temporarily unavailable"),
        "{r:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(wall) + budget(Duration::from_secs(2)),
        "{:?}",
        started.elapsed()
    );
    assert_no_leftovers();
    assert_no_cgroups(&h);
    // The job's processes reached the limit; the init is not part of the job's budget.
    assert_eq!(r.usage.pids_peak, Some(16), "{r:#?}");
}

const FORK_BOMB_C: &str = r#"
#include <unistd.h>
int main(void) { for (;;) fork(); }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn fork_bomb_c() {
    let Some(h) = common::private_harness("warmbox-sec-forkbomb-c") else {
        return;
    };
    let _g = exclusive().await;
    let started = Instant::now();
    let r = h
        .c(
            FORK_BOMB_C,
            &[],
            json!({"pids": 16, "wall_ms": budget_ms(1000), "cpu_ms": budget_ms(300)}),
        )
        .await;
    // Every process spins on fork(): the CPU limit ends it, with the pids limit reached.
    expect(&r, StepStatus::TimeLimit, None, Some(SIGKILL));
    let cpu = r.usage.cpu_ms;
    assert!(
        cpu >= budget_ms(300) as f64 && cpu < budget_ms(400) as f64,
        "{r:#?}"
    );
    assert!(
        started.elapsed() < budget(Duration::from_secs(3)),
        "{:?}",
        started.elapsed()
    );
    assert_no_leftovers();
    assert_no_cgroups(&h);
    // The job's processes reached the limit; the init is not part of the job's budget.
    assert_eq!(r.usage.pids_peak, Some(16), "{r:#?}");
}

fn assert_oom(r: &StepResult, limit_mb: u64) {
    expect(r, StepStatus::MemoryLimit, None, Some(SIGKILL));
    assert!(r.usage.oom_killed, "{r:#?}");
    let limit = limit_mb * MIB;
    assert!(
        r.usage.memory_peak_bytes <= limit && limit - r.usage.memory_peak_bytes <= 4096,
        "memory_peak_bytes {} is not the limit {limit}",
        r.usage.memory_peak_bytes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb() {
    let Some(h) = common::private_harness("warmbox-sec-membomb") else {
        return;
    };
    let _g = exclusive().await;
    let r = py(
        &h,
        "b = []\nwhile True:\n    b.append(bytearray(1 << 20))\n",
        json!({"memory_mb": 32, "wall_ms": 3000}),
    )
    .await;
    assert_oom(&r, 32);
    assert_no_leftovers();
    assert_no_cgroups(&h);
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_in_tmpfs() {
    let Some(h) = common::private_harness("warmbox-sec-membomb-tmpfs") else {
        return;
    };
    let _g = exclusive().await;
    // tmpfs pages count toward the cgroup but belong to no process, and dd itself is
    // smaller than the container's init: the OOM killer must still end the job, never
    // the init.
    let r = run(
        &h,
        json!({"profile": "bash",
               "cmd": ["/usr/bin/dd", "if=/dev/zero", "of=/box/fill", "bs=65536"],
               "limits": {"memory_mb": 16, "disk_mb": 64, "file_size_bytes": 32 << 20,
                          "wall_ms": 3000}}),
    )
    .await;
    assert_ne!(
        r.status,
        StepStatus::InternalError,
        "the OOM killer took the container's init: {r:#?}"
    );
    assert_oom(&r, 16);
    assert_no_leftovers();
    assert_no_cgroups(&h);
}

/// 40 children of 2 MiB each, every one smaller than the container's init; the parent
/// reports the first child that dies and fails.
const MEMORY_BOMB_SMALL_PROCESSES_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
int main(void) {
    for (int i = 0; i < 40; i++) {
        if (fork() == 0) {
            volatile char *p = malloc(2 << 20);
            for (int j = 0; j < (2 << 20); j += 4096) p[j] = 1;
            pause();
            _exit(0);
        }
    }
    int st = 0;
    wait(&st);
    printf("child killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return 1;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_of_small_processes() {
    let Some(h) = common::private_harness("warmbox-sec-membomb-small") else {
        return;
    };
    let _g = exclusive().await;
    let r = h
        .c(
            MEMORY_BOMB_SMALL_PROCESSES_C,
            &[],
            json!({"memory_mb": 32, "wall_ms": 3000}),
        )
        .await;
    assert_ne!(
        r.status,
        StepStatus::InternalError,
        "the OOM killer took the container's init: {r:#?}"
    );
    // A child is the OOM victim; the parent sees it and fails. Or, when reclaim at the
    // limit thrashes long enough, the parent is killed at a time limit before it can
    // report: the run is still a memory limit, the cause.
    assert_eq!(r.status, StepStatus::MemoryLimit, "{r:#?}");
    assert!(r.usage.oom_killed, "{r:#?}");
    match (r.exit_code, r.signal) {
        (Some(1), None) => assert_eq!(r.stdout, "child killed by signal 9\n"),
        // Killed before it could report, or (at the limit still, its other children
        // holding their memory) after it wrote its report on the way out.
        (None, Some(SIGKILL)) => assert!(
            r.stdout.is_empty() || r.stdout == "child killed by signal 9\n",
            "{r:#?}"
        ),
        other => panic!("unexpected end {other:?}: {r:#?}"),
    }
    assert_no_leftovers();
    assert_no_cgroups(&h);
}

/// A valid request whose files exceed the memory limit: refused up front, or a
/// `memory_limit`; never warmbox's own `internal_error`.
#[tokio::test(flavor = "multi_thread")]
async fn request_files_bigger_than_the_memory_limit() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let blob = BASE64.encode(vec![0u8; 24 << 20]);
    let req = json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "du -s /box"],
                     "files": [{"name": "blob", "content": blob, "encoding": "base64"}],
                     "limits": {"memory_mb": 16, "disk_mb": 64}});
    let parsed: RunRequest = serde_json::from_value(req.clone()).expect("request JSON");
    match request::validate(&parsed, &h.profiles) {
        Err(e) => assert!(
            e.code == request::RequestError::INVALID_REQUEST && e.message.contains("memory_mb"),
            "{e:?}"
        ),
        Ok(_) => {
            let r = run(h, req).await;
            assert_eq!(r.status, StepStatus::MemoryLimit, "{r:#?}");
        }
    }
}

/// 36 MiB of files with memory_mb 256 and disk_mb 128 is a valid request well inside both
/// limits; it must run.
#[tokio::test(flavor = "multi_thread")]
async fn request_files_within_the_limits_are_written() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let blob = BASE64.encode(vec![0u8; 12 << 20]);
    let files: Vec<Value> = (0..3)
        .map(|i| json!({"name": format!("blob{i}"), "content": blob, "encoding": "base64"}))
        .collect();
    let r = run(
        h,
        json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "du -sm /box | cut -f1"],
               "files": files, "limits": {"memory_mb": 256, "disk_mb": 128}}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(r.stdout, "36\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_loop() {
    let Some(h) = common::harness() else { return };
    let _g = exclusive().await;
    let r = sh(
        h,
        "while :; do :; done",
        json!({"cpu_ms": 300, "wall_ms": 2000}),
    )
    .await;
    expect(&r, StepStatus::TimeLimit, None, Some(SIGKILL));
    assert!(
        r.usage.cpu_ms >= 300.0 && r.usage.cpu_ms < 400.0,
        "cpu_ms {}",
        r.usage.cpu_ms
    );
    assert_no_leftovers();
}

/// Two threads spin; each says when its own CPU clock passes 100 ms. Both are pinned to
/// one CPU, where the scheduler shares it fairly between them: on two CPUs, one of them
/// may share its CPU with load from outside while the other has one to itself.
const TWO_THREAD_LOOP_C: &str = r#"
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>
static double thread_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static void *spin(void *arg) {
    int said = 0;
    for (;;) {
        if (!said && thread_ms() >= 100) {
            printf("thread %ld: 100 ms\n", (long)arg);
            fflush(stdout);
            said = 1;
        }
    }
    return 0;
}
int main(void) {
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) != 0) return 3;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &cpus)) {
            CPU_ZERO(&cpus);
            CPU_SET(c, &cpus);
            break;
        }
    }
    if (sched_setaffinity(0, sizeof cpus, &cpus) != 0) return 4;
    pthread_t t[2];
    for (long i = 0; i < 2; i++) pthread_create(&t[i], 0, spin, (void *)i);
    pthread_join(t[0], 0);
    return 0;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn cpu_loop_in_two_threads() {
    let Some(h) = common::harness() else { return };
    let _g = exclusive().await;
    let r = h
        .c(
            TWO_THREAD_LOOP_C,
            &[],
            json!({"cpu_ms": 300, "wall_ms": 2000}),
        )
        .await;
    expect(&r, StepStatus::TimeLimit, None, Some(SIGKILL));
    let mut said = lines(&r.stdout);
    said.sort();
    // Both threads burnt 100 ms each, and the total is what the limit stopped.
    assert_eq!(said, ["thread 0: 100 ms", "thread 1: 100 ms"]);
    assert!(
        r.usage.cpu_ms >= 300.0 && r.usage.cpu_ms < 400.0,
        "cpu_ms {}",
        r.usage.cpu_ms
    );
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread")]
async fn sleep_past_the_wall_limit() {
    let Some(h) = common::harness() else { return };
    let _g = exclusive().await;
    // On a slow host the limits scale (the sleep outlasts them all the same).
    let (cpu, wall) = (budget_ms(300), budget_ms(500));
    let r = sh(h, "sleep 100", json!({"cpu_ms": cpu, "wall_ms": wall})).await;
    expect(&r, StepStatus::WallTimeLimit, None, Some(SIGKILL));
    assert!(
        r.usage.wall_ms >= wall as f64 && r.usage.wall_ms <= (wall + budget_ms(100)) as f64,
        "wall_ms {}",
        r.usage.wall_ms
    );
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread")]
async fn ignoring_sigterm() {
    let Some(h) = common::harness() else { return };
    let _g = exclusive().await;
    let r = sh(
        h,
        "trap '' TERM INT HUP; echo start; sleep 100; echo end",
        json!({"cpu_ms": budget_ms(300), "wall_ms": budget_ms(500)}),
    )
    .await;
    expect(&r, StepStatus::WallTimeLimit, None, Some(SIGKILL));
    assert_eq!(r.stdout, "start\n");
    let wall = budget_ms(500);
    assert!(
        r.usage.wall_ms >= wall as f64 && r.usage.wall_ms <= (wall + budget_ms(100)) as f64,
        "wall_ms {}",
        r.usage.wall_ms
    );
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_itself() {
    let Some(h) = common::harness() else { return };
    let _g = exclusive().await;
    // The wall limit ends a stopped job; under emulation bash's own start needs more of
    // both budgets (CI's v2 guest once spent 342 ms of CPU before its first echo).
    let wall = budget_ms(500);
    let r = sh(
        h,
        "echo start; kill -STOP $$; echo end",
        json!({"cpu_ms": budget_ms(300), "wall_ms": wall}),
    )
    .await;
    expect(&r, StepStatus::WallTimeLimit, None, Some(SIGKILL));
    assert_eq!(r.stdout, "start\n");
    assert!(
        r.usage.wall_ms >= wall as f64 && r.usage.wall_ms <= (wall + budget_ms(100)) as f64,
        "wall_ms {}",
        r.usage.wall_ms
    );
    assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------
// 12-14. Output, disk, file size
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn stdout_flood() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = run(
        h,
        json!({"profile": "bash", "cmd": ["/usr/bin/yes"],
               "limits": {"output_bytes": 1000, "wall_ms": 3000}}),
    )
    .await;
    expect(&r, StepStatus::OutputLimit, None, Some(SIGKILL));
    assert_eq!(r.stdout, "y\n".repeat(500));
    assert!(r.stdout_truncated && !r.stderr_truncated);
    assert_eq!(r.stderr, "");
    assert_eq!(r.usage.stdout_bytes, 1000, "the bytes returned: {r:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stderr_flood() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = sh(
        h,
        "exec yes >&2",
        json!({"output_bytes": 1000, "wall_ms": 3000}),
    )
    .await;
    expect(&r, StepStatus::OutputLimit, None, Some(SIGKILL));
    assert_eq!(r.stderr, "y\n".repeat(500));
    assert!(r.stderr_truncated && !r.stdout_truncated);
    assert_eq!(r.stdout, "");
    assert_eq!(r.usage.stderr_bytes, 1000, "the bytes returned: {r:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn output_exactly_at_the_limit() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = sh(
        h,
        "head -c 1000 /dev/zero; head -c 1000 /dev/zero >&2",
        json!({"output_bytes": 1000}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(r.stdout, "\0".repeat(1000));
    assert_eq!(r.stderr, "\0".repeat(1000));
    assert!(!r.stdout_truncated && !r.stderr_truncated);
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_fill() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let name = marker("fill");
    let code = format!(
        r#"
import errno, os
chunk = b"x" * 65536
for d in ("/box", "/tmp", "/dev/shm"):
    total, i = 0, 0
    try:
        while True:
            fd = os.open(f"{{d}}/{name}-{{i}}", os.O_WRONLY | os.O_CREAT, 0o644)
            i += 1
            for _ in range(8):
                total += os.write(fd, chunk)
            os.close(fd)
    except OSError as e:
        print(d, errno.errorcode[e.errno], total)
"#
    );
    let r = py(
        h,
        &code,
        json!({"disk_mb": 4, "file_size_bytes": 1 << 20, "wall_ms": 5000}),
    )
    .await;
    expect_ok(&r);
    let got = lines(&r.stdout);
    assert_eq!(got.len(), 3, "{r:#?}");
    for (line, dir) in got.iter().zip(["/box", "/tmp", "/dev/shm"]) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[..2], [dir, "ENOSPC"], "{line}");
        let total: u64 = fields[2].parse().expect("byte count");
        // disk_mb is one budget for the three: /box takes it all (less main.py's page),
        // nothing is left for the others.
        if dir == "/box" {
            assert_eq!(total, 4 * MIB - 4096, "{dir}: {total} bytes");
        } else {
            assert_eq!(total, 0, "{dir}: {total} bytes");
        }
    }
    for d in ["/tmp", "/dev/shm", "/run", "/"] {
        let leaked = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&name));
        assert!(!leaked, "a {name} file appeared in the host's {d}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_file() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = run(
        h,
        json!({"profile": "bash",
               "cmd": ["/usr/bin/dd", "if=/dev/zero", "of=/box/big", "bs=1000", "count=200"],
               "limits": {"file_size_bytes": 100000}}),
    )
    .await;
    expect(&r, StepStatus::FileSizeLimit, None, Some(SIGXFSZ));
    assert_eq!(r.signal_name.as_deref(), Some("SIGXFSZ"));
}

// ---------------------------------------------------------------------------------------
// 15-16. Processes that try to outlive the run
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn background_processes_escape() {
    let Some(h) = common::private_harness("warmbox-sec-background") else {
        return;
    };
    let _g = exclusive().await;
    let started = Instant::now();
    let r = sh(
        &h,
        "setsid nohup sleep 1000 >/dev/null 2>&1 &
         (sleep 1000 &)
         nohup sleep 1000 &
         python3 -c 'import os, time
if os.fork(): os._exit(0)
os.setsid()
if os.fork(): os._exit(0)
time.sleep(1000)' &
         sleep 0.1
         echo spawned",
        json!({"wall_ms": 5000}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(r.stdout, "spawned\n");
    assert!(
        r.usage.wall_ms < budget_ms(1000) as f64,
        "wall_ms {}",
        r.usage.wall_ms
    );
    assert!(
        started.elapsed() < budget(Duration::from_secs(3)),
        "{:?}",
        started.elapsed()
    );
    assert_no_leftovers();
    assert_no_cgroups(&h);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_minus_one() {
    let Some(h) = common::private_harness("warmbox-sec-kill-all") else {
        return;
    };
    let _g = exclusive().await;
    // kill(-1) reaches every process the job may signal except itself and PID 1: its own
    // background sleep dies, the shell and the init live on.
    let r = sh(
        &h,
        "sleep 1000 & kill -9 -1; echo \"kill $?\"; wait $!; echo \"sleep $?\"",
        json!({}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(lines(&r.stdout), ["kill 0", "sleep 137"]);
    let r = py(
        &h,
        "import os, signal, subprocess\n\
         child = subprocess.Popen(['sleep', '1000'])\n\
         os.kill(-1, signal.SIGKILL)\n\
         print('alive', child.wait())\n",
        json!({}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(r.stdout, "alive -9\n");
    // The engine keeps working.
    let r = sh(&h, "echo next", json!({})).await;
    expect_ok(&r);
    assert_eq!(r.stdout, "next\n");
    assert_no_leftovers();
    assert_no_cgroups(&h);
}

// ---------------------------------------------------------------------------------------
// 17. State between runs
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn files_do_not_leak_between_runs() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let name = marker("state");
    let r = sh(
        h,
        &format!(
            "for d in /box /tmp /dev/shm; do echo secret > $d/{name}; done; \
             mkfifo /tmp/{name}.fifo; ls /box /tmp /dev/shm | grep -c {name}"
        ),
        json!({}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(r.stdout, "4\n");
    let r = sh(h, "ls -A /box /tmp /dev/shm", json!({})).await;
    expect_ok(&r);
    assert_eq!(r.stdout, "/box:\n\n/dev/shm:\n\n/tmp:\n");
}

const SYSV_IPC_PY: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
KEY = 0x5741524D
if sys.argv[1:] == ["create"]:
    shm = libc.shmget(KEY, 4096, 0o1666)
    msg = libc.msgget(KEY, 0o1666)
    sem = libc.semget(KEY, 1, 0o1666)
    print(shm >= 0, msg >= 0, sem >= 0)
else:
    for name, call in (("shm", lambda: libc.shmget(KEY, 0, 0)), ("msg", lambda: libc.msgget(KEY, 0)),
                       ("sem", lambda: libc.semget(KEY, 0, 0))):
        r = call()
        print(name, r, os.strerror(ctypes.get_errno()) if r < 0 else "found")
for f in ("shm", "msg", "sem"):
    print(f, len(open(f"/proc/sysvipc/{f}").read().splitlines()) - 1)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn sysv_ipc_does_not_leak_between_runs() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let key = 0x5741_524D_u32.to_string();
    let host_has_key = || {
        ["shm", "msg", "sem"].iter().any(|f| {
            std::fs::read_to_string(format!("/proc/sysvipc/{f}"))
                .unwrap_or_default()
                .lines()
                .any(|l| l.split_whitespace().next() == Some(key.as_str()))
        })
    };
    assert!(!host_has_key(), "the host already has key {key}");
    let req = |arg: &str| {
        json!({"profile": "python3", "files": [{"name": "main.py", "content": SYSV_IPC_PY}],
               "args": [arg]})
    };
    let r = run(h, req("create")).await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        ["True True True", "shm 1", "msg 1", "sem 1"]
    );
    let r = run(h, req("look")).await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        [
            "shm -1 No such file or directory",
            "msg -1 No such file or directory",
            "sem -1 No such file or directory",
            "shm 0",
            "msg 0",
            "sem 0",
        ]
    );
    assert!(
        !host_has_key(),
        "the container's IPC objects appeared on the host"
    );
}

// ---------------------------------------------------------------------------------------
// 18-19. Bytes in and out
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_output() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let script = r#"printf 'ok \xff\xfe\n\x00'; printf '\xc3\x28' >&2"#;
    let resp = h
        .run(json!({"profile": "bash", "cmd": ["/bin/bash", "-c", script]}))
        .await;
    // The whole response serializes to valid JSON and back.
    let text = serde_json::to_string(&resp).expect("response serializes");
    let back: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(back["run"]["stdout"], "ok \u{fffd}\u{fffd}\n\u{0}");
    let r = resp.run.expect("run step");
    expect_ok(&r);
    assert_eq!(r.stdout, "ok \u{fffd}\u{fffd}\n\u{0}");
    assert_eq!(r.stderr, "\u{fffd}(");
    assert_eq!(r.usage.stdout_bytes, 7);
    assert_eq!(r.usage.stderr_bytes, 2);
    let r = run(
        h,
        json!({"profile": "bash", "cmd": ["/bin/bash", "-c", script],
               "output_encoding": "base64"}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(
        BASE64.decode(&r.stdout).expect("base64"),
        b"ok \xff\xfe\n\x00"
    );
    assert_eq!(BASE64.decode(&r.stderr).expect("base64"), b"\xc3\x28");
}

/// 8 MiB of pseudo-random bytes (xorshift), the same on every run.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bits 24-31 of the state.
            x.to_le_bytes()[3]
        })
        .collect()
}

fn host_sha256(data: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run sha256sum on the host");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read sha256sum");
    writer.join().expect("writer").expect("write stdin");
    child.wait().expect("wait");
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn large_stdin() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let data = noise(8 << 20);
    let want = host_sha256(&data);
    let r = run(
        h,
        json!({"profile": "python3",
               "files": [{"name": "main.py", "content":
                   "import hashlib, sys\nd = sys.stdin.buffer.read()\nprint(len(d), hashlib.sha256(d).hexdigest())\n"}],
               "stdin_base64": BASE64.encode(&data),
               "limits": {"wall_ms": 10000}}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(r.stdout, format!("{} {want}\n", 8 << 20));
    // A program that never reads its stdin does not block either.
    let r = run(
        h,
        json!({"profile": "bash", "cmd": ["/bin/bash", "-c", "echo ignored"],
               "stdin_base64": BASE64.encode(&data)}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(r.stdout, "ignored\n");
}

// ---------------------------------------------------------------------------------------
// 20. Devices
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn dev_holds_only_the_five_devices() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = sh(
        h,
        "ls -A /dev; for d in null zero full random urandom; do stat -c '%n %F %t:%T' /dev/$d; done; \
         stat -c '%n %F' /dev/shm; readlink /dev/fd /dev/stdin /dev/stdout /dev/stderr",
        json!({}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        [
            "fd",
            "full",
            "null",
            "random",
            "shm",
            "stderr",
            "stdin",
            "stdout",
            "urandom",
            "zero",
            "/dev/null character special file 1:3",
            "/dev/zero character special file 1:5",
            "/dev/full character special file 1:7",
            "/dev/random character special file 1:8",
            "/dev/urandom character special file 1:9",
            "/dev/shm directory",
            "/proc/self/fd",
            "/proc/self/fd/0",
            "/proc/self/fd/1",
            "/proc/self/fd/2",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mknod_and_dev_full() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let name = marker("mknod");
    let code = format!(
        r#"
import errno, os
for path, dev in (("/tmp/{name}", os.makedev(8, 0)), ("/box/{name}", os.makedev(1, 1)), ("/dev/{name}", os.makedev(1, 3))):
    try:
        os.mknod(path, 0o20666, dev)
        print(path, "made")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
fd = os.open("/dev/full", os.O_WRONLY)
try:
    os.write(fd, b"x")
    print("full written")
except OSError as e:
    print("full", errno.errorcode[e.errno])
print(len(open("/dev/zero", "rb").read(16)), len(open("/dev/urandom", "rb").read(16)))
"#
    );
    let r = py(h, &code, json!({})).await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        [
            format!("/tmp/{name} EPERM").as_str(),
            format!("/box/{name} EPERM").as_str(),
            format!("/dev/{name} EROFS").as_str(),
            "full ENOSPC",
            "16 16",
        ]
    );
    assert!(!std::path::Path::new(&format!("/dev/{name}")).exists());
    assert!(!std::path::Path::new(&format!("/tmp/{name}")).exists());
}

// ---------------------------------------------------------------------------------------
// 21. What else a hostile submission tries
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn host_environment_does_not_leak() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let r = py(
        h,
        "import os\nfor k in sorted(os.environ): print(k + '=' + os.environ[k])\n",
        json!({}),
    )
    .await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        [
            "HOME=/box",
            "LANG=C.UTF-8",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "PYTHONDONTWRITEBYTECODE=1",
            "PYTHONUNBUFFERED=1",
            "TZ=UTC",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_file_descriptors_are_inherited() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let code = r#"
import os
fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
print(fds)
for fd in range(3, 1024):
    try:
        os.fstat(fd)
        print("open", fd, os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        pass
"#;
    let r = py(h, code, json!({})).await;
    expect_ok(&r);
    // 3 is listdir's own directory descriptor, closed again before the loop.
    assert_eq!(r.stdout, "[0, 1, 2, 3]\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn kernel_tables_in_proc_are_masked() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    let names = [
        "cmdline",
        "kallsyms",
        "keys",
        "timer_list",
        "kcore",
        "sched_debug",
        "sysrq-trigger",
        "latency_stats",
    ];
    let script = format!(
        "for f in {}; do if [ -e /proc/$f ]; then echo \"$f $(head -c 4096 /proc/$f 2>/dev/null | wc -c)\"; \
         else echo \"$f absent\"; fi; done; ls -A /proc/acpi /proc/driver 2>/dev/null | grep -v : | grep . | wc -l",
        names.join(" ")
    );
    let r = sh(h, &script, json!({})).await;
    expect_ok(&r);
    let mut want: Vec<String> = names
        .iter()
        .map(|f| {
            if std::path::Path::new("/proc").join(f).exists() {
                format!("{f} 0")
            } else {
                format!("{f} absent")
            }
        })
        .collect();
    want.push("0".to_string());
    assert_eq!(lines(&r.stdout), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn proc_mem_writes() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    // /proc/<pid>/mem writes ignore page protections (the classic way to patch code that
    // seccomp or a runtime guards); landlock refuses the open for writing, even of the
    // job's own memory, and the init's memory is not even readable.
    let code = r#"
import errno, os
for path, flags in (("/proc/self/mem", os.O_RDWR), ("/proc/1/mem", os.O_RDWR), ("/proc/1/mem", os.O_RDONLY)):
    try:
        os.open(path, flags)
        print(path, "opened")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
"#;
    let r = py(h, code, json!({})).await;
    expect_ok(&r);
    assert_eq!(
        lines(&r.stdout),
        [
            "/proc/self/mem EACCES",
            "/proc/1/mem EACCES",
            "/proc/1/mem EACCES"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Found in review: starving the init, and a forbidden call racing the job's exit.
// ---------------------------------------------------------------------------------------

/// 255 busy processes keep the container's CPU quota full; its init, which enforces the
/// wall limit and reports, is starved. The limits still end the run, close to the limit,
/// with the right verdict (never warmbox's own internal_error).
const BUSY_FORKS_C: &str = r#"
#include <unistd.h>
int main(void) {
    for (int i = 0; i < 255; i++) { pid_t p = fork(); if (p == 0) for (;;); if (p < 0) break; }
    for (;;);
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn starving_the_init_at_the_cpu_limit() {
    let Some(h) = common::private_harness("warmbox-sec-starve-cpu") else {
        return;
    };
    let _g = exclusive().await;
    let r = h
        .c(
            BUSY_FORKS_C,
            &[],
            json!({"pids": 256, "cpu_ms": 300, "wall_ms": 5000}),
        )
        .await;
    expect(&r, StepStatus::TimeLimit, None, Some(SIGKILL));
    assert!(r.usage.wall_ms < 1500.0, "{r:#?}");
    assert_no_leftovers();
    assert_no_cgroups(&h);
}

#[tokio::test(flavor = "multi_thread")]
async fn starving_the_init_at_the_wall_limit() {
    let Some(h) = common::private_harness("warmbox-sec-starve-wall") else {
        return;
    };
    let _g = exclusive().await;
    let r = h
        .c(
            BUSY_FORKS_C,
            &[],
            json!({"pids": 256, "cpu_ms": 20000, "wall_ms": 1000}),
        )
        .await;
    expect(&r, StepStatus::WallTimeLimit, None, Some(SIGKILL));
    assert!((1000.0..1300.0).contains(&r.usage.wall_ms), "{r:#?}");
    assert_no_leftovers();
    assert_no_cgroups(&h);
}

/// The child parks in a forbidden call; the parent sees it there and exits 0 at once. The
/// call never runs, and the run is still a security violation.
const FORBIDDEN_CALL_AS_THE_JOB_EXITS_C: &str = r#"
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    pid_t p = fork();
    if (p == 0) { unshare(CLONE_NEWUSER); _exit(3); }
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", p);
    for (int i = 0; i < 100000; i++) {
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        if (!strncmp(buf, "272 ", 4)) return 0;
    }
    return 2;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_call_racing_the_jobs_exit() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    for _ in 0..3 {
        let r = h.c(FORBIDDEN_CALL_AS_THE_JOB_EXITS_C, &[], json!({})).await;
        assert_eq!(r.status, StepStatus::SecurityViolation, "{r:#?}");
        let message = r.message.as_deref().unwrap_or_default();
        assert!(
            message.starts_with("forbidden system call unshare (272) by process "),
            "{r:#?}"
        );
    }
}

const SIGQUEUE_UNTIL_REFUSED_C: &str = r#"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
int main(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_SIGPENDING, &rl);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &set, NULL);
    union sigval v = {0};
    long n = 0;
    while (sigqueue(getpid(), SIGRTMIN, v) == 0) n++;
    printf("limit %llu queued %ld then %s\n", (unsigned long long)rl.rlim_cur, n, strerror(errno));
    return 0;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn queued_signals_are_bounded_per_container() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    // Every container's namespace belongs to host root, whose per-user quota of queued
    // signals all of them would otherwise share: a job queues its own quota and no more.
    let r = h.c(SIGQUEUE_UNTIL_REFUSED_C, &[], json!({})).await;
    expect_ok(&r);
    assert_eq!(
        r.stdout,
        format!(
            "limit {0} queued {0} then Resource temporarily unavailable\n",
            warmbox_inside::job::SIGPENDING_MAX
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cgroup_namespace_is_rooted_at_the_containers_cgroup() {
    let Some(h) = common::harness() else { return };
    let _g = shared().await;
    // Not the host's layout (warmbox's parent, the container's name): every hierarchy
    // shows the container's own cgroup as its root.
    let r = sh(h, "cat /proc/self/cgroup", json!({})).await;
    expect_ok(&r);
    let all = lines(&r.stdout);
    assert!(all.iter().any(|l| l.starts_with("0::")), "{all:?}");
    for line in &all {
        assert!(line.ends_with(":/"), "{line} in {all:?}");
    }
}
