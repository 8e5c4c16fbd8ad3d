//! The runner: a request becomes compile and run steps on the engine. No HTTP: the service
//! crate serves it.
//!
//! - [`profile`]: language profiles, and the host probe of their runtimes;
//! - [`request`]: the run request and response, and their validation;
//! - [`runner`]: a validated request's compile and run steps, and the compile cache;
//! - [`judging`]: tests, checkers, interactors, verdicts;
//! - [`admission`]: how many requests run at once, how many wait.

pub mod admission;
mod error;
pub mod judging;
pub mod profile;
pub mod request;
pub mod runner;

pub use error::Error;
pub use runner::Runner;
