//! A request becomes steps: compile, then run.
