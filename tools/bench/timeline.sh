#!/usr/bin/env bash
# tools/bench/timeline.sh — where a pipelined call waits: runs one muster-bench throughput cell
# per system (64 B, 2 workers, --depth 256 unless given), one system after the other, and in
# the middle of each records the scheduler (`perf sched record`, every CPU, 2 s) and then every
# syscall of the stack's processes (`perf record -e raw_syscalls:*`, 2 s). timeline.py prints,
# per process and thread kind, the share of the window spent running, runnable but waiting for
# a CPU, and sleeping, each CPU's idle share, and the batches at each hop: calls per loop turn
# and per socket read/write (bytes per syscall over bytes per call). Tracing adds ~0.7 µs per
# syscall: compare systems of the same invocation only. docs/PERFORMANCE.md, "Pipelined ×256,
# session 16". Never part of the tests; needs root (or perf_event_paranoid ≤ 1).
#
#   tools/bench/timeline.sh OUT [ipc|tcp] [SYSTEMS] [muster-bench flags...]
#   tools/bench/timeline.sh /tmp/t ipc baseline,muster
#   tools/bench/timeline.sh /tmp/t ipc muster,alt --alt-musterd /work/before/musterd \
#       --alt-worker-bin /work/before/muster-bench-worker
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${MUSTER_BENCH_BUILD:-$ROOT/build}"
OUT="$1" T="${2:-ipc}" SYSTEMS="${3:-baseline,muster}"
shift; [ $# -gt 0 ] && shift; [ $# -gt 0 ] && shift
mkdir -p "$OUT"
for S in ${SYSTEMS//,/ }; do
  D="$OUT/$S"; mkdir -p "$D"
  "$BUILD/tools/bench/muster-bench" --system "$S" -t "$T" -p 64 -m throughput -w 2 -d 256 --duration 9 \
    --slice 9 "$@" >"$D/bench.txt" 2>&1 &
  BP=$!
  sleep 4
  CHILDREN=$(pgrep -P "$BP" | paste -sd,)
  : >"$D/pids.txt"
  for p in $BP ${CHILDREN//,/ }; do echo "$p $(tr '\0' ' ' </proc/$p/cmdline | cut -c1-100)" >>"$D/pids.txt"; done
  perf sched record -q -o "$D/sched.data" -- sleep 2 >/dev/null 2>&1
  perf record -q -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -p "$BP,$CHILDREN" -o "$D/sys.data" -- sleep 2 \
    >/dev/null 2>&1
  wait "$BP" || true
  perf sched timehist -i "$D/sched.data" >"$D/sched.txt" 2>/dev/null
  perf script --ns -i "$D/sys.data" -F comm,pid,tid,time,event,trace >"$D/sys.txt" 2>/dev/null
  rm -f "$D/sched.data" "$D/sys.data"
  python3 "$ROOT/tools/bench/timeline.py" "$D" "$S" "${GANTT_MS:-3}"
done
