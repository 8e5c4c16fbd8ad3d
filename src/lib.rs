//! warmbox, the service: run untrusted code in pre-warmed minimal Linux containers over
//! HTTP. The HTTP API, the Judge0 and Piston drop-in APIs, the async job queue with its
//! store and callbacks, and the settings file. The layers below are crates of their own,
//! each knowing only the one below (docs/architecture.md):
//!
//! `warmbox` (this) → `warmbox-runner` (profiles, requests, judging) → `warmbox-sandbox`
//! (the engine) → `warmbox-inside` (what runs in a container).

pub mod api;
pub mod compat;
pub mod queue;
pub mod settings;
