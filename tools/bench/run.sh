#!/usr/bin/env bash
# tools/bench/run.sh — the standard benchmark of issue 5, by hand: builds muster-bench (Release)
# and runs the matrix (ipc, tcp, curve × 64 B, 4 KiB, 1 MiB × one-at-a-time, pipelined,
# muster against the bare-libzmq baseline) and then the scale scenario (1,000 simulated
# workers, 10,000 queued requests, an attach storm). About three minutes on 2 cores.
#
#   tools/bench/run.sh                    # everything, table on stdout, JSON in $OUT
#   tools/bench/run.sh --repeat 3         # extra flags go to muster-bench (see --help)
#   MUSTER_BENCH_BUILD=/tmp/b tools/bench/run.sh
#
# Never part of the tests: numbers depend on the machine and on what else runs on it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${MUSTER_BENCH_BUILD:-$ROOT/build-bench}"
SKIP="${MUSTER_SKIP_DIRS-bridge}"
OUT="${MUSTER_BENCH_OUT:-$BUILD/bench-results}"

if [ "${MUSTER_BENCH_NO_BUILD:-0}" != 1 ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMUSTER_TESTS=OFF \
        -DMUSTER_SKIP_DIRS="$SKIP" >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target muster-bench >/dev/null
fi

mkdir -p "$OUT"
STAMP="$(date +%Y%m%dT%H%M%S)"
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)" >&2
"$BUILD/tools/bench/muster-bench" --scale --json-file "$OUT/bench-$STAMP.json" "$@" | tee "$OUT/bench-$STAMP.txt"
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "results: $OUT/bench-$STAMP.txt and .json" >&2
