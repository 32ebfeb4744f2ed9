#!/usr/bin/env bash
# tools/bench/hops.sh — where one call at a time spends its time, hop by hop: runs one
# muster-bench latency cell (64 B, 1 worker), records every syscall of every process of it with
# `perf record -e raw_syscalls:*` for 3 s in the middle, and prints per stack the medians of the
# hops between the syscalls that carry a call's bytes (client send → broker recv → broker send →
# worker recv → worker send → broker recv → broker send → client recv) and, inside the broker
# and the worker, the split of each dwell: I/O thread's read → its eventfd write (the hand-off)
# → the loop thread's wake → the loop's eventfd write (its send) → the I/O thread's send, with
# the loop's syscalls before its send. Tracing adds ~0.7 µs per syscall: compare stacks of the
# same run, not these figures with muster-bench's. docs/PERFORMANCE.md, "One call at a time,
# session 15". Never part of the tests; needs root (or perf_event_paranoid ≤ 1).
#
#   tools/bench/hops.sh OUT [tcp|ipc] [muster-bench flags...]
#   tools/bench/hops.sh /tmp/h tcp --system muster,alt --alt-musterd /work/before/musterd \
#       --alt-worker-bin /work/before/muster-bench-worker
#   PIN="taskset -c 1" tools/bench/hops.sh /tmp/h tcp      # every process on one CPU
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${MUSTER_BENCH_BUILD:-$ROOT/build}"
OUT="$1" T="${2:-tcp}"; shift; [ $# -gt 0 ] && shift
mkdir -p "$OUT"
ARGS=("$@"); [ ${#ARGS[@]} -eq 0 ] && ARGS=(--system baseline,muster)
${PIN:-} "$BUILD/tools/bench/muster-bench" "${ARGS[@]}" -t "$T" -p 64 -m latency -w 1 --duration 8 \
  >"$OUT/bench.txt" 2>&1 &
BP=$!
sleep 4
CHILDREN=$(pgrep -P "$BP" | paste -sd,)
: >"$OUT/pids.txt"
for p in ${CHILDREN//,/ }; do echo "$p $(tr '\0' ' ' </proc/$p/cmdline | cut -c1-100)" >>"$OUT/pids.txt"; done
perf record -q -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -p "$BP,$CHILDREN" -o "$OUT/perf.data" -- sleep 3 2>/dev/null
wait "$BP" || true
perf script --ns -i "$OUT/perf.data" -F comm,pid,tid,time,event,trace >"$OUT/perf.txt" 2>/dev/null
BROKERS=$(awk '$2 ~ /musterd$|forwarder$/ {print $1}' "$OUT/pids.txt" | paste -sd,)
WORKERS=$(awk '$2 ~ /worker$/ {print $1}' "$OUT/pids.txt" | paste -sd,)
cat "$OUT/pids.txt"
python3 "$ROOT/tools/bench/hops.py" "$OUT/perf.txt" "$BP" "$BROKERS" "$WORKERS"
grep -A1 "1-at-a-time" "$OUT/bench.txt" || true
