#!/usr/bin/env bash
# tools/bench/bridge_bench.sh — events per second and added latency per event through
# `muster-bridge uplink`. Starts a private musterd, the C++ example worker and
# muster-bridge-bench (a fake Hurozo backend), points an uplink at it, prints the figures.
# Usage: tools/bench/bridge_bench.sh [muster-bridge-bench options, e.g. --node echo --inputs '{"x":1}']
# Env: MUSTER_BUILD_DIR (default <repo>/build), WORKER_CAPACITY (default 64), UPLINK_PREFIX (a
# command the uplink runs under, e.g. "valgrind --tool=callgrind --callgrind-out-file=/tmp/u.cg").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${MUSTER_BUILD_DIR:-$ROOT/build}"
[ -f "$BUILD/build.ninja" ] || [ -f "$BUILD/Makefile" ] || { echo "no build in $BUILD (run tools/test or tools/demo first)" >&2; exit 2; }
# The benchmarks are not part of the default build (tools/test leaves them out): build them here.
cmake --build "$BUILD" -j2 --target musterd muster-example-worker muster muster-bridge muster-bridge-bench >/dev/null
source "$ROOT/tools/lib/bench_scratch.sh"
scratch_begin mbb
tmp="$SCRATCH"
export MUSTER_RUNTIME_DIR="$tmp/run"
wait_until() {  # wait_until <seconds> <command...>
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "timed out waiting for: $*" >&2; exit 1; }
    sleep 0.1
  done
}

"$BUILD/broker/musterd" --data-dir "$tmp/data" --log-level warn >"$tmp/musterd.log" 2>&1 &
SCRATCH_PIDS+=($!)
wait_until 10 test -S "$MUSTER_RUNTIME_DIR/client.sock"
"$BUILD/worker/muster-example-worker" --capacity "${WORKER_CAPACITY:-64}" --log-level warn >"$tmp/worker.log" 2>&1 &
SCRATCH_PIDS+=($!)
wait_until 10 sh -c "'$BUILD/tools/muster' nodes | grep -q '^hello '"
"$BUILD/bridge/muster-bridge-bench" --port-file "$tmp/port" "$@" &
bench=$!
SCRATCH_PIDS+=($bench)
wait_until 10 test -s "$tmp/port"
HUROZO_TOKEN=bench HUROZO_API_URL="http://127.0.0.1:$(cat "$tmp/port")" \
  ${UPLINK_PREFIX:-} "$BUILD/bridge/muster-bridge" --log-level warn uplink >"$tmp/uplink.log" 2>&1 &
SCRATCH_PIDS+=($!)
rc=0
wait "$bench" || rc=$?
if [ "$rc" -ne 0 ]; then cat "$tmp/uplink.log" >&2; fi
exit "$rc"
