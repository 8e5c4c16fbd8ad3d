//! landlock restrictions observed from a forked child.
//!
//! The parent prepares the ruleset (that only creates an fd), forks, and the child sets
//! no_new_privs, calls `restrict_self`, then tries each access and reports the errno of
//! each attempt (0 for success) over a pipe. Restricting is irreversible, so it never
//! happens in the test runner's own process. The parent asserts every result exactly and
//! that the host side is unchanged (no file created, no connection accepted).

use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use warmbox_inside::landlock::{abi_version, prepare, Enforcement, LandlockRules};

use warmbox_testkit::kernel::landlock_available;

/// The kernel's landlock ABI, or `None` (after saying why) when the test must skip.
fn landlock_abi() -> Option<u32> {
    if !landlock_available() {
        return None;
    }
    abi_version()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// A NUL-terminated copy of `path`, built before fork.
fn c_path(path: &Path) -> Vec<u8> {
    let mut bytes = path.as_os_str().as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// What the child reports, in order.
const REPORTS: usize = 8;
const ENFORCEMENT_FULL: i32 = 1000;
const ENFORCEMENT_PARTIAL: i32 = 1001;
const ENFORCEMENT_NONE: i32 = 1002;
const RESTRICT_FAILED: i32 = 1003;
/// A slot the child did not reach (an earlier step failed).
const NOT_RUN: i32 = -1;

#[test]
fn restrict_self_confines_writes_tcp_and_signals() {
    let Some(abi) = landlock_abi() else {
        return;
    };
    let allowed = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    let writable = other.path().join("writable");
    std::fs::write(&writable, b"old contents").expect("write");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("local_addr").port();
    // An abstract unix socket outside the child's landlock domain.
    let abstract_name = format!("warmbox-landlock-test-{}", std::process::id());
    let abstract_listener = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .expect("abstract addr");
        UnixListener::bind_addr(&addr).expect("bind abstract")
    };
    abstract_listener
        .set_nonblocking(true)
        .expect("nonblocking");

    let rules = LandlockRules {
        read_exec: vec![PathBuf::from("/")],
        read_write: vec![
            allowed.path().to_owned(),
            PathBuf::from("/warmbox-no-such-dir"),
        ],
        write_files: vec![writable.clone(), PathBuf::from("/dev/null")],
    };
    let prepared = prepare(&rules).expect("prepare");

    let created = c_path(&allowed.path().join("created"));
    let denied = c_path(&other.path().join("denied"));
    let writable_c = c_path(&writable);
    let sibling = c_path(&other.path().join("sibling"));
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid (empty) address.
    let mut abstract_addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    abstract_addr.sun_family = libc::sa_family_t::try_from(libc::AF_UNIX).expect("AF_UNIX fits");
    for (i, b) in abstract_name.bytes().enumerate() {
        abstract_addr.sun_path[i + 1] = libc::c_char::from_ne_bytes([b]);
    }
    let abstract_len = libc::socklen_t::try_from(
        std::mem::size_of::<libc::sa_family_t>() + 1 + abstract_name.len(),
    )
    .expect("an abstract address fits socklen_t");
    // Made before fork: the child only makes raw syscalls.
    let inet = libc::sa_family_t::try_from(libc::AF_INET).expect("AF_INET fits");
    let inet_len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>())
        .expect("sockaddr_in fits socklen_t");
    // SAFETY: getpid has no arguments.
    let parent = unsafe { libc::getpid() };

    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only makes raw syscalls, plus restrict_self (a prctl and
    // landlock_restrict_self; glibc keeps malloc usable after fork should it allocate).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let mut report = [NOT_RUN; REPORTS];
        // SAFETY: raw syscalls on buffers built before fork; each result is recorded.
        unsafe {
            libc::close(fds[0]);
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            report[0] = match prepared.restrict_self() {
                Ok(Enforcement::Full) => ENFORCEMENT_FULL,
                Ok(Enforcement::Partial) => ENFORCEMENT_PARTIAL,
                Ok(Enforcement::None) => ENFORCEMENT_NONE,
                Err(_) => RESTRICT_FAILED,
            };
            if report[0] != RESTRICT_FAILED {
                let open = |path: &[u8], flags: i32| {
                    let fd = libc::open(path.as_ptr().cast(), flags | libc::O_CLOEXEC, 0o600);
                    if fd < 0 {
                        return errno();
                    }
                    let n = libc::write(fd, b"new".as_ptr().cast(), 3);
                    libc::close(fd);
                    if n == 3 {
                        0
                    } else {
                        errno()
                    }
                };
                let create = libc::O_CREAT | libc::O_WRONLY | libc::O_EXCL;
                report[1] = open(&created, create);
                report[2] = open(&denied, create);
                report[3] = open(&writable_c, libc::O_WRONLY | libc::O_TRUNC);
                report[4] = open(&sibling, create);
                let tcp = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                let addr = libc::sockaddr_in {
                    sin_family: inet,
                    sin_port: port.to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                report[5] = if libc::connect(
                    tcp,
                    (&addr as *const libc::sockaddr_in).cast(),
                    inet_len,
                ) == 0
                {
                    0
                } else {
                    errno()
                };
                report[6] = if libc::kill(parent, 0) == 0 {
                    0
                } else {
                    errno()
                };
                let unix = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                report[7] = if libc::connect(
                    unix,
                    (&abstract_addr as *const libc::sockaddr_un).cast(),
                    abstract_len,
                ) == 0
                {
                    0
                } else {
                    errno()
                };
            }
            libc::write(
                fds[1],
                report.as_ptr().cast(),
                std::mem::size_of_val(&report),
            );
            libc::_exit(0);
        }
    }
    // SAFETY: fds[1] is ours and open; the parent no longer needs the write end.
    unsafe { libc::close(fds[1]) };
    // SAFETY: fds[0] is an open pipe end owned by nothing else.
    let mut reader = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fds[0]) });
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).expect("read child report");
    let mut status = 0;
    // SAFETY: status is a valid out-pointer; pid is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x}"
    );
    let report: Vec<i32> = bytes
        .chunks_exact(4)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(report.len(), REPORTS, "child report {bytes:?}");

    // This crate asks for the rights of landlock ABI 7; older kernels enforce a subset.
    let enforcement = if abi >= 7 {
        ENFORCEMENT_FULL
    } else {
        ENFORCEMENT_PARTIAL
    };
    assert_eq!(report[0], enforcement, "enforcement (ABI {abi})");
    assert_eq!(report[1], 0, "create a file in the read_write dir");
    assert_eq!(report[2], libc::EACCES, "create a file elsewhere");
    assert_eq!(report[3], 0, "write and truncate a write_files file");
    assert_eq!(
        report[4],
        libc::EACCES,
        "create a sibling of a write_files file"
    );
    let scoped = abi >= 6;
    let tcp = if abi >= 4 { libc::EACCES } else { 0 };
    assert_eq!(
        report[5], tcp,
        "TCP connect to 127.0.0.1:{port} (ABI {abi})"
    );
    let signal = if scoped { libc::EPERM } else { 0 };
    assert_eq!(report[6], signal, "kill(parent, 0) (ABI {abi})");
    assert_eq!(
        report[7], signal,
        "connect to an outside abstract socket (ABI {abi})"
    );

    // The host side is unchanged.
    assert_eq!(
        std::fs::read(allowed.path().join("created")).expect("created file"),
        b"new"
    );
    assert!(!other.path().join("denied").exists());
    assert!(!other.path().join("sibling").exists());
    assert_eq!(std::fs::read(&writable).expect("writable"), b"new");
    if abi >= 4 {
        let accepted = listener.accept().map(|_| ()).map_err(|e| e.kind());
        assert_eq!(
            accepted,
            Err(ErrorKind::WouldBlock),
            "the listener accepted"
        );
    }
    if scoped {
        let accepted = abstract_listener.accept().map(|_| ()).map_err(|e| e.kind());
        assert_eq!(
            accepted,
            Err(ErrorKind::WouldBlock),
            "abstract listener accepted"
        );
    }
}
