#!/usr/bin/env bash
# CI stage: the tests on a real cgroup v2 host. Boots Debian's own 6.1 kernel with only the
# unified hierarchy (`cgroup_no_v1=all`) under qemu through virtme-ng, the guest's root a
# copy-on-write view of this machine's (so the runtimes, the repository and the test
# binaries built here are there), and runs .ci/v2-guest-tests.sh in it. This machine's
# /dev/kvm runs only specially built kernels, so the guest runs under qemu's emulator
# (TCG); set WARMBOX_V2_KVM=1 where KVM can run a stock kernel.
#
# Exits non-zero when the guest's checks fail, or when the guest never reported.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

started=$(date +%s)
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
compgen -G '/boot/vmlinuz-6.1.*' >/dev/null || need+=(linux-image-amd64)
if [ ${#need[@]} -gt 0 ]; then
    echo "v2 stage: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
kernel=$(ls /boot/vmlinuz-6.1.* | sort -V | tail -1)

VNG_VERSION=1.42
venv=target/vng-venv
if ! "$venv/bin/vng" --version 2>/dev/null | grep -qx "virtme-ng $VNG_VERSION"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "virtme-ng==$VNG_VERSION"
fi
# vng runs virtme-run, beside it.
export PATH="$PWD/$venv/bin:$PATH"

# The binaries the guest runs are built here (the guest only runs them).
cargo build --locked --bin warmbox
cargo test --locked --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' > target/v2-guest-binaries
echo "v2 stage: built in $(( $(date +%s) - started )) s"

out=target/v2-guest
rm -rf "$out"
mkdir -p "$out/scripts"
# The guest sees this tree live: it runs copies of its scripts, so that an edit here
# meanwhile cannot change a script bash is still reading.
cp .ci/v2-guest-tests.sh .ci/v2-guest-unit.sh "$out/scripts/"
accel=(--disable-kvm)
[ "${WARMBOX_V2_KVM:-0}" = 1 ] && accel=()
boot=$(date +%s)
# qemu reopens its stdout: through cat, its output stays in order in CI's log.
timeout 2400 vng --run "$kernel" "${accel[@]}" --cpus 2 --memory 8G \
    --rwdir "$PWD/$out" --overlay-rwdir "$PWD" \
    --append 'systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all mitigations=off' \
    --exec "$PWD/$out/scripts/v2-guest-tests.sh $PWD/$out" 2>&1 | cat || true
echo "v2 stage: guest ran $(( $(date +%s) - boot )) s, whole stage $(( $(date +%s) - started )) s"
if [ ! -f "$out/status" ]; then
    echo "v2 stage: the guest never reported (no $out/status): it did not boot or was killed" >&2
    exit 1
fi
cat "$out/summary"
[ "$(cat "$out/status")" = 0 ]
