//! The engine: the server's side of containers. The `Sandbox` creates warm containers
//! (clone3, id maps, cgroup, setup over the init channel); a `Container` then serves
//! steps, each with fresh state (`Container::recycle` between two), and is destroyed,
//! leaving nothing behind; the `Pool` keeps them warm and recycles them.
//!
//! It knows nothing of HTTP, requests or profiles: its vocabulary is [`Limits`], a
//! [`StepSpec`], a [`StepOutcome`] and its [`Usage`]. What runs inside a container is
//! `warmbox-inside`.
//!
//! The map of the crate:
//!
//! - [`engine`]: the [`Sandbox`], host resources shared by all containers, and the
//!   creation of a warm container of a [`Layout`];
//! - [`container`]: a [`Container`], its files ([`BoxFile`]) and its removal;
//! - [`step`]: running one step in a container and supervising it to its [`StepOutcome`];
//! - [`pool`]: warm containers kept ready per layout;
//! - [`cgroup`]: cgroup v1 and v2 behind one trait;
//! - [`seccomp`]: policy JSON compiled into BPF programs;
//! - [`forkserver`] and [`spawn`]: how an init is cloned into its namespaces and cgroup;
//! - [`channel`]: the server's end of the init channel;
//! - [`config`]: the engine's settings; [`check`]: what this host offers;
//! - [`error`]: the crate's one error type, [`SandboxError`].

pub mod cgroup;
pub mod channel;
pub mod check;
pub mod config;
pub mod container;
pub mod engine;
pub mod error;
pub mod forkserver;
pub mod pool;
pub mod seccomp;
pub mod spawn;
pub mod step;

pub use container::{BoxFile, Container};
pub use engine::{probe_cgroup_features, CgroupFeatures, Layout, Sandbox};
pub use error::SandboxError;
pub use step::{Limits, OutputMode, Piped, StepOutcome, StepSpec, StepStatus, Usage};
// What the runner must know of the box: how many files and inodes fit, and the exit code
// of a job that could not exec.
pub use warmbox_inside::job::EXEC_FAILED;
pub use warmbox_inside::mount::{
    disk_inodes, DISK_OWN_INODES, MAX_FILES, MAX_FILE_DEPTH, MIN_DISK_INODES,
};
