#!/bin/sh
# The image's entrypoint (after tini): makes the container's cgroup file system writable,
# then runs warmbox with the container's arguments.
#
# warmbox makes a cgroup per sandbox below its cgroup parent. A runtime mounts the cgroup
# file system of a non-privileged container read-only (podman and runc on cgroup v1 and
# v2, containerd on Kubernetes); with a private cgroup namespace its root there is the
# container's own cgroup, so writing it only ever reaches the container's subtree. A
# read-only cgroup mount is remounted read-write here, which needs CAP_SYS_ADMIN (the
# sandbox needs it anyway, docs/operations.md "Container image"). Where that fails,
# warmbox starts regardless and names the read-only directory it could not write.
set -eu

# /proc/self/mountinfo: field 5 is the mount point, 6 its options, and the file system
# type follows the " - " separator.
awk '{
    for (i = 7; $i != "-"; i++) {}
    if (($(i + 1) == "cgroup" || $(i + 1) == "cgroup2") && $6 ~ /(^|,)ro(,|$)/) print $5
}' /proc/self/mountinfo | while read -r dir; do
    mount -o remount,bind,rw "$dir" ||
        echo "warmbox-entrypoint: cannot remount $dir read-write (CAP_SYS_ADMIN?)" >&2
done

exec /usr/local/bin/warmbox "$@"
