#!/usr/bin/env bash
# Builds the container image of deploy/Dockerfile from Debian's packages alone (no registry
# image), then starts a container from it and checks that it serves: `warmbox check`
# passes inside, /readyz answers 200, a run of each profile gives its exact output, and a
# `podman stop` ends warmbox with exit 0, leaving no container and no cgroup behind.
#
#   bash deploy/image.sh               build and check (.ci/run); as root
#   bash deploy/image.sh --build-only  build only
#
# WARMBOX_BIN: the binary to put in the image [target/release/warmbox, built here when
# missing]; CI passes target/debug/warmbox, which its tests have just built (a release build
# with fat LTO costs minutes). The image is `localhost/warmbox:latest` in the container
# storage under target/image/storage (vfs); `podman --root … --runroot …` with the options
# below, or `podman save`, reaches it. Everything else it makes stays under target/image/.
# Each stage prints its time.
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=false
case "${1:-}" in
    "") ;;
    --build-only) build_only=true ;;
    *) echo "usage: bash deploy/image.sh [--build-only]" >&2; exit 2 ;;
esac

work=$PWD/target/image
# One container storage for buildah and podman (vfs: works on any file system, also
# inside a container where overlay on overlay does not), kept across runs as the cache of
# the tarball's layer. podman's own state beside it, so the host's podman is not touched.
storage=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
podman_opts=("${storage[@]}" --tmpdir "$work/libpod" --cgroup-manager cgroupfs --events-backend file)
image=localhost/warmbox:latest

# Stage times, from bash's microsecond clock.
stage_start=0
stage() { stage_start=${EPOCHREALTIME//[.,]/}; echo "image.sh: $1"; }
stage_end() {
    local us=$((${EPOCHREALTIME//[.,]/} - stage_start))
    printf 'image.sh: %s: %d.%d s\n' "$1" $((us / 1000000)) $((us / 100000 % 10))
}

# --- tools: Debian's packages; a fresh machine lacks them.
stage "tools"
need=()
for tool in mmdebstrap buildah podman runc slirp4netns; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
stage_end "tools"

# --- the root file system: Debian 12 with the profiles' runtimes, cached under target/image
# keyed on everything that makes it (packages, options, sources). Debian's security updates
# arrive when the key changes or `rm target/image/rootfs-*.tar`.
packages=(
    python3                     # python3 profile
    gcc g++ libc6-dev           # c, cpp: gcc, g++, as, ld, headers, libstdc++
    openjdk-17-jdk-headless     # java: java, javac, /etc/java-17-openjdk
    nodejs                      # javascript (Debian's Node.js 18; the host may have 20)
    bash perl                   # bash, multi; perl for scripts run by bash
    tini                        # PID 1 of the image: reaps orphans, forwards signals
    mount                       # the entrypoint's remount of the cgroup file system
)
mm_args=(
    --variant=apt
    "--include=$(IFS=,; echo "${packages[*]}")"
    # No documentation, manual pages or translations (copyright files stay).
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias'
    # openjdk's postinst links its manual pages into man1 and fails where it is missing.
    --essential-hook='mkdir -p "$1/usr/share/man/man1"'
    --aptopt='Acquire::Languages "none"'
    bookworm
)
sources=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
)
key=$(printf '%s\n' "${mm_args[@]}" "${sources[@]}" | sha256sum | cut -c1-16)
tarball=$work/rootfs-$key.tar
stage "rootfs (mmdebstrap, key $key)"
mkdir -p "$work"
if [ -f "$tarball" ]; then
    echo "cached: $tarball"
else
    rm -f "$work"/rootfs-*.tar "$work"/rootfs-*.tar.part
    mmdebstrap --quiet --format=tar "${mm_args[@]}" "$tarball.part" "${sources[@]}"
    mv "$tarball.part" "$tarball"
fi
# The Dockerfile's default ROOTFS: a hard link, no copy.
ln -f "$tarball" "$work/rootfs.tar"
stage_end "rootfs"

# --- the binary, without its debug information (the image needs none; debug builds
# carry about 150 MB of it). Built on this Debian 12 host, so its glibc is the image's.
bin=${WARMBOX_BIN:-target/release/warmbox}
stage "binary ($bin)"
if [ ! -x "$bin" ] && [ "$bin" = target/release/warmbox ]; then
    cargo build --release --locked
fi
strip --strip-debug -o "$work/warmbox" "$bin"
stage_end "binary"

# --- the image, one layer: without --layers buildah commits once at the end. With vfs
# every committed step copies the whole root file system (800 MB), so caching the ADD's
# layer (--layers) made the build slower (268 s against 62 s, measured); the cache that
# counts is the tarball's. The previous image is removed after.
stage "image (buildah bud)"
buildah "${storage[@]}" bud --isolation chroot --layers=false --quiet \
    --build-arg ROOTFS=target/image/rootfs.tar --build-arg WARMBOX_BIN=target/image/warmbox \
    -f deploy/Dockerfile -t "$image" .
buildah "${storage[@]}" rmi --prune >/dev/null
stage_end "image"

if $build_only; then
    exit 0
fi

# --- the container, with the least privileges warmbox needs (docs/operations.md,
# "Container image", says what each is for and what fails without it):
privileges=(
    # The container's own cgroup as the root of the cgroup file system it sees: the
    # sandboxes' cgroups go below it (and count in its limits), never beside it.
    --cgroupns=private
    # Only these capabilities (podman's default set is dropped): SYS_ADMIN for the
    # namespaces, mounts, pivot_root and the entrypoint's remount of the cgroup file
    # system; SETUID and SETGID to write a sandbox's uid_map and gid_map.
    --cap-drop ALL --cap-add SYS_ADMIN,SETUID,SETGID
)
# podman's AppArmor profile (where AppArmor is on) denies mount.
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ]; then
    privileges+=(--security-opt apparmor=unconfined)
fi
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
run_opts=(
    # runc: crun refuses a host with both cgroup versions when the v2 hierarchy holds a
    # controller ("cgroups in hybrid mode not supported"), as this CI host does.
    --runtime runc
    # Limits the runtime can set: podman's default open-file limit (1048576) is refused
    # above the host's hard limit without CAP_SYS_RESOURCE, which this CI host lacks, and
    # podman lowers its own process limit to 32768 before it starts the runtime.
    --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc"
    # Its own network namespace behind slirp4netns: unlike podman's bridge (netavark), it
    # adds no firewall chains to the host that outlive the container.
    --network slirp4netns:port_handler=slirp4netns
    # The container's cgroups under a parent of this check's, removed at the end.
    --cgroup-parent /warmbox-image-check
    --log-driver k8s-file
)
name=warmbox-image-check-$$
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
    podman "${podman_opts[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Sandboxes start from here on: other users of the machine may ask to take turns
# (WARMBOX_LOCK=/tmp/warmbox-tests.lock, as the project's tests do).
if [ -n "${WARMBOX_LOCK:-}" ]; then
    exec 9>"$WARMBOX_LOCK"
    flock 9
fi

stage "container start"
cid=$(podman "${podman_opts[@]}" run -d --name "$name" -p "127.0.0.1:$port:8080" \
    "${run_opts[@]}" "${privileges[@]}" "$image")
stage_end "container start"

stage "checks"
if ! python3 - "$port" <<'PY'
import json, sys, time, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

deadline = time.monotonic() + 120
t = time.monotonic()
while True:
    try:
        status, body = call("GET", "/readyz")
        if status == 200:
            break
    except OSError as e:
        status, body = None, str(e).encode()
    if time.monotonic() > deadline:
        sys.exit(f"/readyz: no 200 within 120 s; last: {status} {body[:300]!r}")
    time.sleep(0.25)
print(f"/readyz: 200 after {time.monotonic() - t:.1f} s")

# (profile, file, code, limits, expected status, expected stdout)
runs = [
    ("python3", "main.py", "print(6 * 7)\n", {}, "ok", "42\n"),
    ("c", "main.c", '#include <stdio.h>\nint main(void) { printf("c %d\\n", 6 * 7); }\n', {}, "ok", "c 42\n"),
    ("cpp", "main.cpp", '#include <iostream>\nint main() { std::cout << "cpp " << 6 * 7 << "\\n"; }\n', {}, "ok", "cpp 42\n"),
    ("java", "Main.java", 'public class Main { public static void main(String[] a) { System.out.println("java " + 6 * 7); } }\n', {}, "ok", "java 42\n"),
    ("javascript", "main.js", 'console.log("js", 6 * 7);\n', {}, "ok", "js 42\n"),
    ("bash", "main.sh", 'echo "bash $((6 * 7))" | tr a-z A-Z\n', {}, "ok", "BASH 42\n"),
    # A lock on the container's own file: the init takes it with pidfd_getfd (a
    # runtime's seccomp profile may refuse that syscall without CAP_SYS_PTRACE).
    ("python3", "main.py", 'import fcntl\nf = open("x", "w")\nfcntl.flock(f, fcntl.LOCK_EX)\nprint("locked")\n', {}, "ok", "locked\n"),
    # A CPU limit: the sandbox is stopped from outside.
    ("python3", "main.py", "while True:\n    pass\n", {"cpu_ms": 300}, "time_limit", ""),
]
for profile, file, code, limits, want_status, want_stdout in runs:
    t = time.monotonic()
    status, body = call("POST", "/v1/run", {"profile": profile, "limits": limits,
                                            "files": [{"name": file, "content": code}]})
    ms = (time.monotonic() - t) * 1000
    if status != 200:
        sys.exit(f"/v1/run {profile}: HTTP {status}: {body[:500]!r}")
    r = json.loads(body)
    run = r.get("run") or {}
    want = (want_status, want_status, 0 if want_status == "ok" else None, want_stdout, "")
    got = (r.get("status"), run.get("status"), run.get("exit_code"), run.get("stdout"), run.get("stderr"))
    if got != want:
        sys.exit(f"/v1/run {profile}: expected {want}, got {got}\n{r}")
    print(f"/v1/run {profile}: {want_status}, stdout {want_stdout!r} ({ms:.0f} ms)")
PY
then
    podman "${podman_opts[@]}" logs "$name" 2>&1 | tail -20 >&2
    exit 1
fi
echo "warmbox check in the container:"
podman "${podman_opts[@]}" exec "$name" warmbox check --config /etc/warmbox/warmbox.toml
stage_end "checks"

# --- stop: SIGTERM; warmbox removes its sandboxes and cgroups and exits 0.
stage "container stop"
podman "${podman_opts[@]}" stop -t 60 "$name" >/dev/null
exit_code=$(podman "${podman_opts[@]}" inspect --format '{{.State.ExitCode}}' "$name")
if [ "$exit_code" != 0 ]; then
    podman "${podman_opts[@]}" logs "$name" 2>&1 | tail -20 >&2
    echo "deploy/image.sh: warmbox exited $exit_code on SIGTERM, expected 0" >&2
    exit 1
fi
podman "${podman_opts[@]}" rm "$name" >/dev/null
trap - EXIT
stage_end "container stop"

# Nothing left: no container, and below the check's cgroup parent in every hierarchy (v1:
# one per controller; v2: one) only podman's own `conmon` cgroup, with no process in it
# (podman keeps it for the parent's next container), so all of it goes.
left=$(podman "${podman_opts[@]}" ps -a --format '{{.Names}}')
if [ -n "$left" ]; then
    echo "deploy/image.sh: containers left: $left" >&2
    exit 1
fi
parents=$(find /sys/fs/cgroup -maxdepth 2 -type d -name warmbox-image-check)
left=$(for p in $parents; do
    find "$p" -mindepth 1 -type d ! -path "$p/conmon"
    [ ! -s "$p/conmon/cgroup.procs" ] || echo "$p/conmon (processes: $(cat "$p/conmon/cgroup.procs"))"
done)
if [ -n "$left" ]; then
    echo "deploy/image.sh: cgroups left on the host (container $cid):" >&2
    echo "$left" >&2
    exit 1
fi
for p in $parents; do
    [ ! -d "$p/conmon" ] || rmdir "$p/conmon"
    rmdir "$p"
done
echo "deploy/image.sh: the image builds and serves; nothing left behind"
