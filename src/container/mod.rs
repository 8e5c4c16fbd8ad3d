//! Code that runs inside the container: the init and the job process.
pub mod landlock;
