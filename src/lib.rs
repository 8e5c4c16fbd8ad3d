//! warmbox, the service: run untrusted code in pre-warmed minimal Linux containers over
//! HTTP. The HTTP API, the Judge0 and Piston drop-in APIs, the async job queue with its
//! store and callbacks, and the settings. The layers below are crates of their own,
//! each knowing only the one below (docs/architecture.md):
//!
//! `warmbox` (this) → `warmbox-runner` (profiles, requests, judging) → `warmbox-sandbox`
//! (the engine) → `warmbox-inside` (what runs in a container).
//!
//! Inside this crate, the same: `api` (which mounts the compat routes) → `compat` →
//! `service` (the state and the run both front-ends use) → `queue`; `settings` → `queue`.
//! The queue knows no front-end: the compat APIs' callbacks are rendered by the function
//! given to [`queue::Jobs::start`].

pub mod api;
pub mod compat;
pub mod queue;
pub mod service;
pub mod settings;
