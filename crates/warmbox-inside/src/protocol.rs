//! The messages between the server and a container's init, and their framing.
//!
//! A frame is `[u32 LE header length][u32 LE payload length][JSON header][payload]` on a
//! unix stream socket. File descriptors ride as SCM_RIGHTS on the first byte of a frame.
//! The init side uses the blocking functions here; the server side has its async twin in
//! `warmbox_sandbox::channel`. Both sides are trusted code: the job process never holds the socket.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

/// Largest header accepted (headers carry argv, env and file lists, never contents).
pub const MAX_HEADER: usize = 4 << 20;
/// Largest payload accepted (file contents of one batch).
pub const MAX_PAYLOAD: usize = 1 << 30;
/// At most this many fds ride on one frame.
pub const MAX_FDS: usize = 4;

/// Errors of the framing layer.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The peer closed the socket.
    #[error("peer closed the channel")]
    Closed,
    /// A socket call failed.
    #[error("{op} on the init channel: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The peer sent something we do not understand.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Settings of a container, sent once by the server right after clone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InitConfig {
    /// Container id (for messages).
    pub id: String,
    /// Initial size of the one tmpfs that holds `/box`, `/tmp` and `/dev/shm`, bytes.
    pub disk_bytes: u64,
    /// The payload of this frame is the seccomp policy (`CompiledPolicy::to_bytes`).
    pub has_seccomp: bool,
}

/// The most path components of a file moved into or out of `/box` (`a/b/c` has 3): the
/// read-back of a compile's `/box` leaves deeper files out (and says so).
pub const MAX_PATH_DEPTH: usize = 64;
/// The longest path, in bytes, of a file moved into or out of `/box` (relative to it).
pub const MAX_PATH_BYTES: usize = 4096;

/// A file moved into or out of `/box`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileMeta {
    /// Path relative to `/box`.
    pub path: String,
    /// Byte length of the content inside the frame's payload.
    pub len: u64,
    /// Whether the file is executable.
    pub executable: bool,
}

/// Resource limits the init applies to the job process itself (the cgroup holds the rest).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobLimits {
    /// Elapsed time after which the init kills the job, ms.
    pub wall_ms: u64,
    /// RLIMIT_CPU backstop, seconds.
    pub cpu_secs: u64,
    /// RLIMIT_FSIZE, bytes.
    pub file_size_bytes: u64,
    /// RLIMIT_STACK, bytes.
    pub stack_bytes: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_NPROC.
    pub processes: u64,
    /// Size of the one tmpfs of `/box`, `/tmp` and `/dev/shm`, bytes (resized when it
    /// differs).
    pub disk_bytes: u64,
}

/// What the job process runs. Its stdin, stdout and stderr ride on the frame as fds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobSpec {
    /// argv; `argv[0]` without a `/` is looked up in the env's PATH.
    pub argv: Vec<String>,
    /// Environment as `KEY=value`.
    pub env: Vec<String>,
    /// Limits enforced by the init and the kernel for this process.
    pub limits: JobLimits,
}

/// Server to init.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToInit {
    /// Set the container up (first message only).
    Setup(InitConfig),
    /// Size the writable tmpfs to `disk_bytes` (the step's disk limit), then write these
    /// files into `/box`; contents are the payload, in order.
    WriteFiles {
        files: Vec<FileMeta>,
        disk_bytes: u64,
    },
    /// Start the job (with 3 fds: stdin, stdout, stderr).
    Run(JobSpec),
    /// Kill the job and everything else in the container now.
    Kill,
    /// Send back the regular files of `/box`, at most this many bytes and files.
    Collect { max_bytes: u64, max_files: u64 },
    /// After a run: end what is left of it, mount a fresh writable tmpfs of `disk_bytes`
    /// for `/box`, `/tmp` and `/dev/shm`, make the next run's job process, and answer
    /// `Ready` (or `Error`, and the container is not reused).
    Reset { disk_bytes: u64 },
}

/// How the job process ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ExitKind {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// Why a job could not be started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum StartFailure {
    /// exec itself failed (the user's command is missing or not executable).
    Exec(String),
    /// The sandbox setup of the job process failed (warmbox's fault).
    Setup(String),
}

/// A forbidden system call, as the init's seccomp listener saw it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Violation {
    /// Syscall number (host architecture).
    pub nr: i32,
    /// The caller's pid in the container.
    pub pid: u32,
}

/// Init to server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromInit {
    /// Setup (or a reset) done: the container is warm.
    Ready,
    /// Files written.
    FilesWritten,
    /// The job ended and everything else in the container was killed and reaped (the
    /// container can be reset for another run).
    Exited {
        /// The job process's end; `None` when it never started.
        exit: Option<ExitKind>,
        /// Why it never started.
        failure: Option<StartFailure>,
        /// From fork to reap, by the init's monotonic clock, ns.
        wall_ns: u64,
        /// The init killed it at the wall-time limit.
        wall_timeout: bool,
        /// A process of the container made a forbidden system call (the container was
        /// killed then).
        #[serde(default)]
        violation: Option<Violation>,
    },
    /// The files of `/box` (contents are the payload); `truncated` says why, when a bound
    /// left some out (see [`MAX_PATH_DEPTH`], [`MAX_PATH_BYTES`] and the `Collect` bounds).
    Files {
        files: Vec<FileMeta>,
        truncated: Option<String>,
    },
    /// A request failed; the container is no longer usable.
    Error { message: String },
}

/// A decoded frame.
#[derive(Debug)]
pub struct Frame<T> {
    /// The message.
    pub msg: T,
    /// Raw payload bytes.
    pub payload: Vec<u8>,
    /// Received fds (in order).
    pub fds: Vec<OwnedFd>,
}

/// Encodes the 8-byte prefix and header of a frame.
pub fn encode_head<T: Serialize>(msg: &T, payload_len: usize) -> Result<Vec<u8>, ProtocolError> {
    let header = serde_json::to_vec(msg).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let too_large = || {
        ProtocolError::Malformed(format!(
            "frame too large: header {} payload {}",
            header.len(),
            payload_len
        ))
    };
    if header.len() > MAX_HEADER || payload_len > MAX_PAYLOAD {
        return Err(too_large());
    }
    // Within the bounds, both lengths fit their u32 fields.
    let header_len = u32::try_from(header.len()).map_err(|_| too_large())?;
    let payload_len = u32::try_from(payload_len).map_err(|_| too_large())?;
    let mut out = Vec::with_capacity(8 + header.len());
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&header);
    Ok(out)
}

/// Parses the 8-byte prefix into (header length, payload length), checking bounds.
pub fn decode_prefix(prefix: [u8; 8]) -> Result<(usize, usize), ProtocolError> {
    let h = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let p = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]) as usize;
    if h == 0 || h > MAX_HEADER || p > MAX_PAYLOAD {
        return Err(ProtocolError::Malformed(format!(
            "bad frame lengths: header {h} payload {p}"
        )));
    }
    Ok((h, p))
}

/// Sends `head` with `fds` attached to its first byte, via sendmsg. Returns bytes sent.
pub fn send_with_fds(sock: RawFd, head: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [IoSlice::new(head)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None).map_err(std::io::Error::from)
}

/// Blocking: writes one frame (the init side).
pub fn write_frame<T: Serialize>(
    sock: &mut std::os::unix::net::UnixStream,
    msg: &T,
    payload: &[u8],
) -> Result<(), ProtocolError> {
    let head = encode_head(msg, payload.len())?;
    let io = |source| ProtocolError::Io {
        op: "write",
        source,
    };
    sock.write_all(&head).map_err(io)?;
    sock.write_all(payload).map_err(io)?;
    Ok(())
}

/// Blocking: reads one frame with any fds attached (the init side).
pub fn read_frame<T: for<'de> Deserialize<'de>>(
    sock: &mut std::os::unix::net::UnixStream,
) -> Result<Frame<T>, ProtocolError> {
    let mut prefix = [0u8; 8];
    let mut got = 0;
    let mut fds = Vec::new();
    while got < prefix.len() {
        let (n, mut more) = recv_with_fds(sock.as_raw_fd(), &mut prefix[got..])?;
        fds.append(&mut more);
        if n == 0 {
            return Err(ProtocolError::Closed);
        }
        got += n;
    }
    let (hlen, plen) = decode_prefix(prefix)?;
    let mut header = vec![0u8; hlen];
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::UnexpectedEof => ProtocolError::Closed,
        _ => ProtocolError::Io { op: "read", source },
    };
    sock.read_exact(&mut header).map_err(io)?;
    let mut payload = vec![0u8; plen];
    sock.read_exact(&mut payload).map_err(io)?;
    let msg =
        serde_json::from_slice(&header).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    Ok(Frame { msg, payload, fds })
}

/// recvmsg into `buf`, collecting SCM_RIGHTS fds (received CLOEXEC).
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), ProtocolError> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            sock,
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(ProtocolError::Io {
                    op: "recvmsg",
                    source: e.into(),
                })
            }
        }
    };
    let mut fds = Vec::new();
    let cmsgs = msg.cmsgs().map_err(|e| ProtocolError::Io {
        op: "recvmsg control data",
        source: e.into(),
    })?;
    for c in cmsgs {
        if let ControlMessageOwned::ScmRights(list) = c {
            for fd in list {
                // SAFETY: the kernel just installed `fd` in our table for us; nothing else
                // owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(ProtocolError::Malformed("too many fds on one frame".into()));
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn frame_round_trip_with_payload_and_fds() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let msg = ToInit::WriteFiles {
            files: vec![FileMeta {
                path: "a/b.txt".into(),
                len: 3,
                executable: false,
            }],
            disk_bytes: 1 << 20,
        };
        let (r, _w) = nix::unistd::pipe().unwrap();
        let head = encode_head(&msg, 3).unwrap();
        send_with_fds(a.as_raw_fd(), &head, &[r.as_raw_fd()]).unwrap();
        a.write_all(b"xyz").unwrap();
        let f: Frame<ToInit> = read_frame(&mut b).unwrap();
        assert_eq!(f.msg, msg);
        assert_eq!(f.payload, b"xyz");
        assert_eq!(f.fds.len(), 1);
    }

    #[test]
    fn closed_peer_is_reported() {
        let (a, mut b) = UnixStream::pair().unwrap();
        drop(a);
        assert!(matches!(
            read_frame::<ToInit>(&mut b),
            Err(ProtocolError::Closed)
        ));
    }

    #[test]
    fn bad_lengths_are_rejected() {
        let malformed = |p| matches!(decode_prefix(p), Err(ProtocolError::Malformed(_)));
        assert!(malformed([0; 8]));
        let mut p = [0u8; 8];
        p[..4].copy_from_slice(&(u32::try_from(MAX_HEADER).unwrap() + 1).to_le_bytes());
        assert!(malformed(p));
        p[..4].copy_from_slice(&10u32.to_le_bytes());
        assert_eq!(decode_prefix(p).unwrap(), (10, 0));
    }
}
