//! The runner: a request becomes compile and run steps on the engine. Language profiles,
//! requests and their validation, the compile cache, judging (tests, checkers,
//! interactors, verdicts) and admission. No HTTP: the service crate serves it.

pub mod admission;
pub mod judging;
pub mod profile;
pub mod request;
pub mod runner;

pub use runner::Runner;
