//! cgroup v1 backend.
