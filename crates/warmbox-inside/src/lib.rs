//! Everything that runs inside a container: the init (PID 1 of the container, trusted),
//! each run's own init in the run's fresh namespaces (`runinit`), the job process it forks
//! (which becomes the user's program), the mounts, landlock,
//! loopback, the lock mediator, the protocol with the server and the seccomp install.
//!
//! Kept apart from the server's code and small: it is the security boundary. It depends on
//! no other warmbox crate. What its setup can fail at meets in one [`Error`].

pub mod error;
pub mod init;
pub mod job;
pub mod landlock;
pub mod locks;
pub mod mount;
pub mod net;
pub mod protocol;
pub mod runinit;
pub mod seccomp;

pub use error::Error;
