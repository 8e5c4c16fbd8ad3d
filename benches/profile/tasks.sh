#!/usr/bin/env bash
# A per-thread snapshot of process $1: tid, comm, utime, stime (ticks), voluntary and
# involuntary context switches (benches/profile/profile.sh diffs two).
pid=$1
for t in /proc/$pid/task/*; do
  tid=${t##*/}
  comm=$(cat $t/comm | tr ' ' '_')
  read -r ut st < <(sed 's/.*) //' $t/stat | awk '{print $12, $13}')
  v=$(awk '/^voluntary_ctxt/{print $2}' $t/status); n=$(awk '/^nonvoluntary_ctxt/{print $2}' $t/status)
  echo "$tid $comm $ut $st $v $n"
done
