//! Engine configuration.
