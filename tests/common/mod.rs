//! The end-to-end tests' binding of warmbox-testkit to the `warmbox` binary.
//!
//! The tests in this directory need a real engine, and the engine forks its containers from
//! the `warmbox` binary, whose path cargo gives (`CARGO_BIN_EXE_warmbox`) only to this
//! package's tests: that is why they live here rather than with the crate they exercise.
//! Tests that need no container live in `crates/*/tests/`. Every helper is in
//! `crates/warmbox-testkit`; this module only hands it the binary.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::path::Path;

use warmbox_testkit::harness::{self, Harness};

/// The `warmbox` binary cargo built for these tests.
pub(crate) fn warmbox() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warmbox"))
}

/// The engine shared by the tests of this binary, or `None` (after a skip) where the host
/// cannot sandbox.
pub(crate) fn harness() -> Option<&'static Harness> {
    harness::shared(warmbox())
}

/// An engine with its own cgroup parent, or `None` (after a skip).
pub(crate) fn private_harness(cgroup_parent: &str) -> Option<Harness> {
    harness::private(warmbox(), cgroup_parent)
}

/// [`warmbox_testkit::server`], starting this package's `warmbox`.
pub(crate) mod server {
    pub(crate) use warmbox_testkit::server::*;

    /// [`warmbox_testkit::server::start`] of this package's `warmbox`.
    pub(crate) fn start(parent: &str, uid_base: u32, extra: &[&str]) -> Server {
        warmbox_testkit::server::start(super::warmbox(), parent, uid_base, extra)
    }

    /// [`warmbox_testkit::server::start_with`] of this package's `warmbox`.
    pub(crate) fn start_with(
        parent: &str,
        uid_base: u32,
        extra: &[&str],
        soft_nofile: Option<u64>,
    ) -> Server {
        warmbox_testkit::server::start_with(super::warmbox(), parent, uid_base, extra, soft_nofile)
    }

    /// [`warmbox_testkit::server::start_fresh`] of this package's `warmbox`.
    pub(crate) fn start_fresh(parent: &str, uid_base: u32, extra: &[&str]) -> Server {
        warmbox_testkit::server::start_fresh(super::warmbox(), parent, uid_base, extra)
    }
}
