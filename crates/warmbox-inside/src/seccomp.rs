//! The seccomp filter as the container receives and installs it: a compiled policy's BPF
//! programs, their byte format on the init channel, and the install in the job process,
//! the last step before exec. Policies are written and compiled by the engine
//! (`warmbox_sandbox::seccomp`; the format is docs/seccomp.md).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Errors reading a compiled policy's bytes or installing it.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Serialized BPF bytes are malformed.
    #[error("seccomp program bytes: {0}")]
    Bytes(String),
    /// The kernel refused to install the filter.
    #[error("install seccomp filter: {0}")]
    Install(io::Error),
}

/// `BPF_RET | BPF_K`: the return instruction, whose `k` is the verdict.
pub const BPF_RET_K: u16 = 0x06;

/// A compiled policy: BPF programs, installed in order; the kernel applies the most
/// restrictive verdict of all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPolicy {
    /// The policy's name (its file stem).
    pub name: String,
    /// The programs, each a list of classic-BPF instructions.
    pub programs: Vec<Vec<libc::sock_filter>>,
}

impl CompiledPolicy {
    /// Serializes to bytes (to ship to the container init).
    ///
    /// Layout, little endian: magic `WBSECCMP`, format version (u32), name length (u32),
    /// name (UTF-8), program count (u32), then per program its instruction count (u32)
    /// followed by the instructions (code u16, jt u8, jf u8, k u32).
    pub fn to_bytes(&self) -> Vec<u8> {
        let insns: usize = self.programs.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(
            MAGIC.len() + 12 + self.name.len() + 4 * self.programs.len() + 8 * insns,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        put_len(&mut out, self.name.len());
        out.extend_from_slice(self.name.as_bytes());
        put_len(&mut out, self.programs.len());
        for program in &self.programs {
            put_len(&mut out, program.len());
            for insn in program {
                out.extend_from_slice(&insn.code.to_le_bytes());
                out.push(insn.jt);
                out.push(insn.jf);
                out.extend_from_slice(&insn.k.to_le_bytes());
            }
        }
        out
    }

    /// Parses what `to_bytes` produced.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FilterError> {
        let mut r = Reader { bytes, pos: 0 };
        let magic = r.take(MAGIC.len(), "magic")?;
        if magic != MAGIC {
            return Err(FilterError::Bytes(format!(
                "bad magic {magic:02x?}, expected {MAGIC:02x?}"
            )));
        }
        let version = r.u32("format version")?;
        if version != FORMAT_VERSION {
            return Err(FilterError::Bytes(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        let name_len = r.u32("name length")? as usize;
        if name_len > MAX_NAME_LEN {
            return Err(FilterError::Bytes(format!(
                "name length {name_len} exceeds {MAX_NAME_LEN}"
            )));
        }
        let name = std::str::from_utf8(r.take(name_len, "name")?)
            .map_err(|e| FilterError::Bytes(format!("name is not UTF-8: {e}")))?
            .to_owned();
        let count = r.u32("program count")? as usize;
        if count == 0 || count > MAX_PROGRAMS {
            return Err(FilterError::Bytes(format!(
                "program count {count} is outside 1..={MAX_PROGRAMS}"
            )));
        }
        let mut programs = Vec::with_capacity(count);
        for index in 0..count {
            let len = r.u32("instruction count")? as usize;
            if len == 0 || len > BPF_MAXINSNS {
                return Err(FilterError::Bytes(format!(
                    "program {index} has {len} instructions, outside 1..={BPF_MAXINSNS}"
                )));
            }
            let raw = r.take(len * 8, "instructions")?;
            let program = raw
                .chunks_exact(8)
                .map(|c| libc::sock_filter {
                    code: u16::from_le_bytes([c[0], c[1]]),
                    jt: c[2],
                    jf: c[3],
                    k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect();
            programs.push(program);
        }
        if r.pos != bytes.len() {
            return Err(FilterError::Bytes(format!(
                "{} trailing bytes after the last program",
                bytes.len() - r.pos
            )));
        }
        Ok(Self { name, programs })
    }

    /// Installs every program on the calling thread. The caller has set no_new_privs.
    /// Called in the job process, the last step before exec; must not allocate. Returns
    /// the listener of the program that notifies forbidden calls (whoever holds it decides
    /// them: it must leave the job process at once).
    ///
    /// On error some programs may already be in place: the caller must not exec.
    pub fn install(&self) -> Result<Option<OwnedFd>, FilterError> {
        // An empty policy would silently leave the job unfiltered: fail closed.
        // (`io::Error::from(ErrorKind)` and `last_os_error` do not allocate.)
        if self.programs.is_empty() {
            return Err(FilterError::Install(io::Error::from(
                io::ErrorKind::InvalidInput,
            )));
        }
        // SAFETY: prctl with integer arguments only; it touches no memory of ours.
        // Setting no_new_privs again is harmless and makes install() safe on its own.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(FilterError::Install(io::Error::last_os_error()));
        }
        let mut listener = None;
        for program in &self.programs {
            let Ok(len) = u16::try_from(program.len()) else {
                return Err(FilterError::Install(io::Error::from(
                    io::ErrorKind::InvalidInput,
                )));
            };
            let fprog = libc::sock_fprog {
                len,
                filter: program.as_ptr().cast_mut(),
            };
            // The one program that notifies gets the (only) listener.
            let notifies = program
                .iter()
                .any(|i| i.code == BPF_RET_K && i.k == libc::SECCOMP_RET_USER_NOTIF);
            let flags = if notifies {
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
            } else {
                0
            };
            // SAFETY: `fprog` points to `len` initialized instructions owned by `self`,
            // which outlives the call; the kernel copies the program (copy_from_user) and
            // never writes through the pointer.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    flags,
                    &fprog as *const libc::sock_fprog,
                )
            };
            if rc < 0 {
                return Err(FilterError::Install(io::Error::last_os_error()));
            }
            if notifies {
                // `syscall` widens the kernel's int result: an fd fits a RawFd.
                #[allow(clippy::cast_possible_truncation)]
                let fd = rc as RawFd;
                // SAFETY: with NEW_LISTENER the kernel returned a new fd (CLOEXEC) for us.
                listener = Some(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        Ok(listener)
    }
}

const MAGIC: &[u8; 8] = b"WBSECCMP";
const FORMAT_VERSION: u32 = 1;
/// The kernel refuses longer programs (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;
/// Far more than a policy compiles to; bounds what garbage can make us allocate.
const MAX_PROGRAMS: usize = 64;
pub const MAX_NAME_LEN: usize = 255;

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Lengths are bounded by BPF_MAXINSNS, MAX_PROGRAMS and file-stem lengths; a length
    // that did not fit would be caught by from_bytes, so saturate rather than panic.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FilterError> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(FilterError::Bytes(format!(
                "truncated: {what} needs {n} bytes at offset {}, {left} left",
                self.pos
            )));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn u32(&mut self, what: &str) -> Result<u32, FilterError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}
