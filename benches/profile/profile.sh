#!/bin/bash
# Where the server's own CPU goes per trivial run (docs/server-cpu.md): starts a release
# `warmbox serve` under its own cgroup parent, drives it with trivial runs from one
# keep-alive client, and records per-thread CPU, perf profiles (flat and with call graphs),
# syscall counts and scheduler wake-ups into $OUT. Needs root, perf, strace, and
# `cargo build --release`; run it alone (`flock /tmp/warmbox-tests.lock bash benches/profile/profile.sh`).
# Afterwards: `perf report -i $OUT/perf.flat.data --no-children --sort dso,sym`, and
# `perf script -i $OUT/perf.dwarf.data -F tid,ip,sym | python3 benches/profile/fold.py /dev/stdin TIDS`
# (TIDS: the blocking-pool threads' ids, comma-separated, from $OUT/tasks.after).
set -euxo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
OUT=${OUT:-/tmp/warmbox-profile}
PORT=${PORT:-38791}
mkdir -p "$OUT"
"$repo/target/release/warmbox" serve --listen 127.0.0.1:$PORT --cgroup-parent warmbox-perf --uid-base 720000 \
  --state-dir /run/warmbox-perf --jobs-db /run/warmbox-perf/jobs.redb --profiles-dir "$repo/profiles" --max-queue 1024 \
  > "$OUT/server.log" 2>&1 &
SP=$!
echo $SP > "$OUT/server.pid"
for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.3; done
sleep 1
drive() { python3 "$here/drive.py" $PORT "$1"; }
drive 300
# 1. per-thread cost over 3000 runs, no tracer attached
bash "$here/tasks.sh" $SP > "$OUT/tasks.before"
drive 3000 > "$OUT/drive-plain.txt"
bash "$here/tasks.sh" $SP > "$OUT/tasks.after"
# 2. flat perf profile over 5000 runs
perf record -F 2000 -o "$OUT/perf.flat.data" -p $SP -- python3 "$here/drive.py" $PORT 5000 > "$OUT/drive-perf.txt" 2> "$OUT/perf-flat.err"
# 3. call graphs (dwarf) over 1500 runs
perf record -F 800 --call-graph dwarf,16384 -o "$OUT/perf.dwarf.data" -p $SP -- python3 "$here/drive.py" $PORT 1500 > "$OUT/drive-dwarf.txt" 2> "$OUT/perf-dwarf.err"
# 4. syscall counts over 500 runs
timeout 120 strace -f -c -o "$OUT/strace-c.txt" -p $SP & ST=$!
sleep 1; drive 500 > "$OUT/drive-strace.txt"; sleep 0.5; kill -INT $ST; wait $ST || true
# 5. scheduler: wake-ups over 500 runs
perf sched record -o "$OUT/perf.sched.data" -p $SP -- python3 "$here/drive.py" $PORT 500 > "$OUT/drive-sched.txt" 2> "$OUT/perf-sched.err" || true
kill -TERM $SP; wait $SP || true
rm -rf /run/warmbox-perf
