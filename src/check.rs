//! `warmbox check`: what the host supports.
