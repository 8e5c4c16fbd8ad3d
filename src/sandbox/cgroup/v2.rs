//! cgroup v2 backend.
