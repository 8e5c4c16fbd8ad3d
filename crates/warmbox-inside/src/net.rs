//! The container's network: a fresh network namespace whose only interface is loopback,
//! brought up here so that programs may talk to themselves (landlock still forbids TCP).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `IFF_UP | IFF_RUNNING` (bits 0 and 6 of a c_int) as `ifr_flags`, a short.
#[allow(clippy::cast_possible_truncation)]
const UP: libc::c_short = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;

/// Sets `lo` up (SIOCGIFFLAGS / SIOCSIFFLAGS on a datagram socket).
pub fn loopback_up() -> std::io::Result<()> {
    // SAFETY: socket() returns a new fd or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    // SAFETY: `req` is a valid ifreq for these ioctls; the union field read is the one
    // the kernel wrote.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= UP;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
