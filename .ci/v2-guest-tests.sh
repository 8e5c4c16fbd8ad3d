#!/usr/bin/env bash
# Runs in the cgroup v2 guest of .ci/v2-guest.sh (as root, the repository at the same path,
# copy-on-write): `warmbox check`, a run per profile, and the cgroup, limits, accounting,
# cleanup, security and service tests. Writes each binary's log, `summary` and `status`
# (0: all passed) into the directory $1, which the host reads.
set -uo pipefail
out=$1
scripts=$(dirname "$0")
cd "$out/../.."
export WARMBOX_REQUIRE_SANDBOX=1
# Budgets that only give a job enough time are multiplied by this under emulation
# (crates/warmbox-testkit/src/emulation.rs says which); the limits a test is about never are.
export WARMBOX_TEST_TIME_SCALE=${WARMBOX_TEST_TIME_SCALE:-10}
export RUST_BACKTRACE=0
failed=0
summary=$out/summary
: > "$summary"

note() { echo "$*" | tee -a "$summary"; }

note "guest: kernel $(uname -r), $(nproc) cpus, cgroup $(stat -fc %T /sys/fs/cgroup)"
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] || [ -d /sys/fs/cgroup/memory ]; then
    note "FAIL: /sys/fs/cgroup is not a pure cgroup v2 hierarchy"
    failed=1
fi

t0=$(date +%s)
if ./target/debug/warmbox check > "$out/check.log" 2>&1; then
    note "ok   warmbox check ($(( $(date +%s) - t0 )) s)"
else
    note "FAIL warmbox check"
    failed=1
fi
cat "$out/check.log"

# name filter...: a test binary and the tests of it to run (none: all).
run_tests() {
    local name=$1
    shift
    local bin
    bin=$(awk -v n="$name" '$1 == n { print $2 }' target/v2-guest-binaries)
    if [ -z "$bin" ]; then
        note "FAIL $name: no such test binary was built"
        failed=1
        return
    fi
    local t0 result
    t0=$(date +%s)
    "$bin" "$@" > "$out/$name.log" 2>&1
    result=$?
    local counts
    counts=$(grep -E '^test result:' "$out/$name.log" | tail -1 | sed 's/^test result: //; s/; finished.*//')
    if [ $result = 0 ]; then
        note "ok   $name ($(( $(date +%s) - t0 )) s): $counts"
    else
        note "FAIL $name ($(( $(date +%s) - t0 )) s): ${counts:-exit $result}"
        grep -E '^test .* FAILED$' "$out/$name.log" | tee -a "$summary"
        # What the failed tests printed (their panics), so that CI's log says why.
        sed -n '/^failures:$/,/^test result:/p' "$out/$name.log" | head -60 | tee -a "$summary"
        failed=1
    fi
}

# The v2 backend (crates/warmbox-sandbox), then `warmbox` in delegated subtrees.
run_tests cgroup_v2
run_tests cgroup_delegation
t0=$(date +%s)
if "$scripts/v2-guest-unit.sh" "$out" > "$out/unit-steps.log" 2>&1; then
    note "ok   systemd unit, delegation emulated ($(( $(date +%s) - t0 )) s)"
else
    note "FAIL systemd unit, delegation emulated: $(tail -1 "$out/unit-steps.log")"
    failed=1
fi
cat "$out/unit-steps.log"
run_tests languages transforms_stdin
run_tests accounting
run_tests limits
run_tests cleanup
run_tests security
# The restart and shutdown tests; the 2,000-run load test is a throughput test, not a
# cgroup one, and takes too long emulated.
run_tests service --skip load_of_two_thousand_mixed_runs
run_tests cli check

echo $failed > "$out/status"
