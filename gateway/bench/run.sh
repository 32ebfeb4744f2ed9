#!/usr/bin/env bash
# gateway/bench/run.sh — starts musterd, the C++ example worker (capacity 64) and muster-gateway
# in a private runtime dir, runs gateway_bench (direct C++ client vs the gateway's WebSocket and
# REST, sequential and pipelined), prints its table, and stops everything.
#   gateway/bench/run.sh [gateway_bench flags, e.g. --calls 2000 --pipelined 10000]
# It also prints the CPU time per pipelined call of each process (utime+stime, /proc/PID/stat):
# the steady figure on a shared machine, where wall-clock ratios swing with the other load.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
B="${MUSTER_BUILD_DIR:-$ROOT/build}"
cmake --build "$B" --target musterd muster-example-worker muster-gateway muster-gateway-bench >/dev/null
TMP="$(mktemp -d /tmp/muster-gwbench-XXXXXX)"
export MUSTER_RUNTIME_DIR="$TMP/run"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
"$B/broker/musterd" --data-dir "$TMP/data" --log-level warn 2>"$TMP/musterd.log" & PIDS+=($!)
for _ in $(seq 100); do [ -S "$MUSTER_RUNTIME_DIR/client.sock" ] && break; sleep 0.05; done
"$B/worker/muster-example-worker" --capacity 64 --log-level warn 2>"$TMP/worker.log" & PIDS+=($!)
echo bench-pw | "$B/gateway/muster-gateway" user add bench --role call --data-dir "$TMP/gw" >/dev/null
"$B/gateway/muster-gateway" --log-level info serve --data-dir "$TMP/gw" --listen 127.0.0.1:0 \
  --max-executions-per-socket 100000 2>"$TMP/gateway.log" & PIDS+=($!)
PORT=""
for _ in $(seq 100); do
  PORT="$(grep -o 'listening on 127.0.0.1:[0-9]*' "$TMP/gateway.log" 2>/dev/null | grep -o '[0-9]*$' || true)"
  [ -n "$PORT" ] && break
  sleep 0.05
done
[ -n "$PORT" ] || { echo "run.sh: the gateway did not start:" >&2; cat "$TMP/gateway.log" >&2; exit 1; }
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$B/gateway/muster-gateway-bench" --gateway "127.0.0.1:$PORT" --user bench --password bench-pw \
  --cpu "musterd=${PIDS[0]}" --cpu "worker=${PIDS[1]}" --cpu "gateway=${PIDS[2]}" "$@"
