//! Code that runs inside the container: the init (PID 1 of the container, trusted) and the
//! job process it forks (which becomes the user's program). Kept apart from the server's
//! code and small: it is the security boundary.

pub mod init;
pub mod job;
pub mod landlock;
pub mod locks;
pub mod mount;
pub mod net;
