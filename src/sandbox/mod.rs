//! The server side of one container.
pub mod cgroup;
pub mod seccomp;
