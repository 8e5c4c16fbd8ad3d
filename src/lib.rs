//! warmbox: run untrusted code in pre-warmed minimal Linux containers.
//!
//! Layers, top to bottom: `job` (a request becomes compile and run steps), `sandbox` (the
//! server's side of one container: spawn, cgroup, supervision), `container` (the code that
//! runs inside the container: init and job process), and `profile`/`request` (data).

pub mod api;
pub mod check;
pub mod compat;
pub mod config;
pub mod container;
pub mod job;
pub mod judge;
pub mod pool;
pub mod profile;
pub mod protocol;
pub mod queue;
pub mod request;
pub mod sandbox;
