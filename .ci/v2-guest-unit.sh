#!/usr/bin/env bash
# In the v2 guest (.ci/v2-guest-tests.sh): installs warmbox as README's "Deploy" says and
# starts deploy/systemd/warmbox.service's ExecStart= the way systemd would with its
# settings. The guest has no systemd, so this emulates what the unit asks systemd for:
# Delegate=yes (the unit's cgroup system.slice/warmbox.service, memory/pids/cpu enabled
# for it, marked trusted.delegate=1 as systemd 251+ does), RuntimeDirectory= and
# StateDirectory=, KillMode=mixed (SIGTERM to the main process) and TimeoutStopSec=.
# The hardening options (ProtectSystem=, PrivateTmp=, ...) are not emulated here; README
# says how they were checked. Then asserts: /readyz, a run, everything warmbox made
# inside the unit's cgroup and nothing written above it, a clean stop (exit 0) leaving
# only the unit's leaf. Exits non-zero on the first failure.
set -euo pipefail
# $1: the output directory, target/v2-guest of the repository.
cd "$1/../.."
unit=deploy/systemd/warmbox.service
cg=/sys/fs/cgroup
svc=$cg/system.slice/warmbox.service
fail() { echo "unit: FAIL: $*" >&2; exit 1; }
value() { sed -n "s/^$1=//p" "$unit"; }

install -m 0755 target/debug/warmbox /usr/local/bin/warmbox
mkdir -p /usr/local/share/warmbox /etc/warmbox
rm -rf /usr/local/share/warmbox/profiles
cp -r profiles /usr/local/share/warmbox/profiles
install -m 0600 deploy/systemd/warmbox.toml /etc/warmbox/warmbox.toml
mkdir -p "/run/$(value RuntimeDirectory)" "/var/lib/$(value StateDirectory)"
[ "$(value Delegate)" = yes ] || fail "the unit does not say Delegate=yes"
[ "$(value KillMode)" = mixed ] || fail "the unit's KillMode is not mixed"
stop_timeout=$(value TimeoutStopSec | tr -d s)
exec_start=$(value ExecStart)

# What systemd has before the unit starts: controllers on down to the slice.
echo "+memory +pids +cpu" > $cg/cgroup.subtree_control
mkdir -p "$svc"
echo "+memory +pids +cpu" > $cg/system.slice/cgroup.subtree_control
python3 -c 'import os, sys; os.setxattr(sys.argv[1], "trusted.delegate", b"1")' "$svc"
root_before=$(ls $cg; cat $cg/cgroup.subtree_control $cg/system.slice/cgroup.subtree_control)

log=$1/unit.log
# shellcheck disable=SC2086
sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$svc" $exec_start > "$log" 2>&1 &
main=$!
token=change-me
grep -q "tokens = \[\"$token\"\]" /etc/warmbox/warmbox.toml || fail "the settings' token changed"
ready=0
for _ in $(seq 600); do
    if curl -sf -o /dev/null http://127.0.0.1:8080/readyz; then ready=1; break; fi
    kill -0 $main 2>/dev/null || { cat "$log"; fail "warmbox serve exited before it was ready"; }
    sleep 1
done
[ $ready = 1 ] || { cat "$log"; fail "/readyz never answered 200 in 600 s"; }
echo "unit: ready"

resp=$(curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"profile": "bash", "files": [{"name": "main.sh", "content": "echo hi from the unit"}]}' \
    http://127.0.0.1:8080/v1/run) || fail "POST /v1/run failed"
python3 - "$resp" <<'PY' || fail "the run's response: $resp"
import json, sys
r = json.loads(sys.argv[1])
assert r["status"] == "ok" and r["run"]["stdout"] == "hi from the unit\n", r
PY
echo "unit: a run answered"

# Everything is inside the unit: warmbox in its leaf, its containers under the parent.
[ "$(cat "$svc/daemon/cgroup.procs" | head -1)" = $main ] || fail "warmbox is not in $svc/daemon"
[ -z "$(cat "$svc/cgroup.procs")" ] || fail "processes left in $svc itself"
[ -n "$(ls -d "$svc"/warmbox/*/ 2>/dev/null)" ] || fail "no container cgroups under $svc/warmbox"
[ "$(ls $cg; cat $cg/cgroup.subtree_control $cg/system.slice/cgroup.subtree_control)" = "$root_before" ] ||
    fail "something was written above the unit's cgroup"
echo "unit: cgroups inside the unit, nothing above"

kill -TERM $main
code=0
timeout "$stop_timeout" tail --pid=$main -f /dev/null || fail "warmbox did not stop within TimeoutStopSec"
wait $main || code=$?
[ $code = 0 ] || { cat "$log"; fail "warmbox exited $code after SIGTERM"; }
left=$(cd "$svc" && find . -mindepth 1 -type d | sort | tr '\n' ' ')
[ "$left" = "./daemon " ] || fail "left in the unit's cgroup: $left"
[ -z "$(cat "$svc/daemon/cgroup.procs")" ] || fail "processes left in the unit"
echo "unit: stopped with exit 0, only the empty leaf left"
rmdir "$svc/daemon" "$svc"
