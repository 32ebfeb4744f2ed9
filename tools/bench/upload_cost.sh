#!/usr/bin/env bash
# tools/bench/upload_cost.sh — what the C++ worker SDK spends per MiB it RECEIVES (a chunked
# input read through Context::input_stream), counted in ways the load of a shared machine does
# not move. musterd runs natively; the worker is one of:
#   --node consume (default): muster-bench-stream-worker's `consume`, which reads the stream with
#     InputStream::next and only counts it: the SDK's receive path and its SHA-256 check alone;
#   --node sha256: muster-example-worker's `sha256`, which also hashes every byte with libsodium.
# The input goes as `muster call NODE --input data=@FILE` of SMALL and of LARGE MiB.
# Printed per MiB (callgrind of the worker, the difference between the two sizes divided by
# LARGE - SMALL, so the start and the attach cancel out): instructions in all, in libcrypto (the
# SDK's SHA-256: under valgrind OpenSSL runs without SHA-NI, so this part is far larger than
# natively), in libsodium (the sha256 node's own hash), outside both, and in memcpy (1 copy of
# each byte ≈ 1.05 M per MiB).
# With --native RUNS: the worker's CPU time and page faults (perf stat -e task-clock,page-faults,
# every thread) over the LARGE MiB call, RUNS times, natively (the time moves with the load:
# give `uptime` with it).
#
#   tools/bench/upload_cost.sh                       # build/, consume, 16 and 48 MiB
#   tools/bench/upload_cost.sh --node sha256 --worker /tmp/before/muster-example-worker
#   tools/bench/upload_cost.sh --small 1 --large 256 --no-callgrind --native 5
#
# Needs valgrind (callgrind_annotate) and, for --native, perf. Never part of the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$ROOT/build" WORKER="" NODE=consume SMALL=16 LARGE=48 NATIVE=0 CALLGRIND=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --worker) WORKER="$2"; shift 2 ;;
    --node) NODE="$2"; shift 2 ;;
    --small) SMALL="$2"; shift 2 ;;
    --large) LARGE="$2"; shift 2 ;;
    --native) NATIVE="$2"; shift 2 ;;
    --no-callgrind) CALLGRIND=0; shift ;;
    *) echo "usage: $0 [--build DIR] [--worker BIN] [--node consume|sha256] [--small MIB] [--large MIB] [--native RUNS] [--no-callgrind]" >&2
       exit 2 ;;
  esac
done
BUILD="$(realpath "$BUILD")"
case "$NODE" in
  consume) WORKER="$(realpath "${WORKER:-$BUILD/tools/bench/muster-bench-stream-worker}")" ;;
  sha256) WORKER="$(realpath "${WORKER:-$BUILD/worker/muster-example-worker}")" ;;
  *) echo "--node: consume or sha256" >&2; exit 2 ;;
esac
WORK="$(mktemp -d /tmp/muster-upload-cost-XXXXXX)"
MUSTERD_PID="" WORKER_PID=""
cleanup() {
  [ -n "$WORKER_PID" ] && kill "$WORKER_PID" 2>/dev/null || true
  [ -n "$MUSTERD_PID" ] && kill "$MUSTERD_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export MUSTER_RUNTIME_DIR="$WORK/rt" MUSTER_DATA_DIR="$WORK/data"
mkdir -p "$MUSTER_RUNTIME_DIR" "$MUSTER_DATA_DIR"
for mib in "$SMALL" "$LARGE"; do head -c "$((mib << 20))" /dev/urandom >"$WORK/in-$mib.bin"; done

"$BUILD/broker/musterd" --data-dir "$MUSTER_DATA_DIR" --default-timeout-ms 600000 >"$WORK/musterd.log" 2>&1 &
MUSTERD_PID=$!

# Starts the worker (under `wrap`, if any) and waits until `sha256` answers a small call.
start_worker() {  # start_worker LOG WRAP...
  local log=$1
  shift
  local rt="ipc://$MUSTER_RUNTIME_DIR"
  "$@" "$WORKER" --worker-id "upload-cost-$$" --capacity 1 --request-address "$rt/request.sock" \
    --response-address "$rt/response.sock" >"$log" 2>&1 &
  WORKER_PID=$!
  head -c 1000 /dev/zero >"$WORK/tiny.bin"
  for _ in $(seq 1 600); do
    "$BUILD/tools/muster" call "$NODE" --timeout 60s --input "data=@$WORK/tiny.bin" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "the worker did not answer $NODE: $(tail -5 "$log")" >&2
  exit 1
}
stop_worker() {
  kill -TERM "$WORKER_PID"
  wait "$WORKER_PID" || true
  WORKER_PID=""
}
call() {  # call MIB: one call with the file, its answer checked (the sha256, or the size)
  local out want
  out="$("$BUILD/tools/muster" call "$NODE" --timeout 20m --input "data=@$WORK/in-$1.bin")"
  if [ "$NODE" = sha256 ]; then want="$(sha256sum "$WORK/in-$1.bin" | cut -d' ' -f1)"; else want="$(($1 << 20))"; fi
  [[ "$out" == *"$want"* ]] || { echo "wrong answer for $1 MiB: $out" >&2; exit 1; }
}

# Instructions of a callgrind profile: total, libcrypto, libsodium, memcpy.
counts() {
  callgrind_annotate --threshold=100 "$1" 2>/dev/null | awk '
    /PROGRAM TOTALS/ { gsub(",", "", $1); t = $1 }
    /libcrypto/ { gsub(",", "", $1); c += $1 }
    /libsodium/ { gsub(",", "", $1); s += $1 }
    /memcpy|memmove/ { gsub(",", "", $1); m += $1 }
    END { printf "%.0f %.0f %.0f %.0f\n", t, c, s, m }'
}

if [ "$CALLGRIND" = 1 ]; then
  for mib in "$SMALL" "$LARGE"; do
    start_worker "$WORK/worker-cg-$mib.log" valgrind --tool=callgrind "--callgrind-out-file=$WORK/cg-$mib.out"
    call "$mib"
    stop_worker
  done
  # (the tiny calls that wait for the worker are in both: they cancel out, but for their count)
  read -r t1 c1 s1 m1 < <(counts "$WORK/cg-$SMALL.out")
  read -r t2 c2 s2 m2 < <(counts "$WORK/cg-$LARGE.out")
  awk -v t1="$t1" -v c1="$c1" -v s1="$s1" -v m1="$m1" -v t2="$t2" -v c2="$c2" -v s2="$s2" -v m2="$m2" \
    -v n="$((LARGE - SMALL))" 'BEGIN {
    printf "worker instructions per MiB received (callgrind, %d MiB more): all %.2f M, libcrypto %.2f M, libsodium %.2f M, outside both %.2f M, memcpy %.2f M\n",
           n, (t2 - t1) / n / 1e6, (c2 - c1) / n / 1e6, (s2 - s1) / n / 1e6,
           ((t2 - c2 - s2) - (t1 - c1 - s1)) / n / 1e6, (m2 - m1) / n / 1e6 }'
fi

if [ "$NATIVE" -gt 0 ]; then
  start_worker "$WORK/worker-native.log"
  for i in $(seq 1 "$NATIVE"); do
    perf stat -x, -e task-clock,page-faults -p "$WORKER_PID" -o "$WORK/perf-$i.txt" &
    perf_pid=$!
    sleep 0.3  # perf attached
    call "$LARGE"
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    awk -F, -v n="$LARGE" '/task-clock/ { ms = $1 } /page-faults/ { pf = $1 }
      END { printf "worker over a %d MiB upload: CPU %.0f ms, %.3f ms/MiB; %d page faults\n", n, ms, ms / n, pf }' \
      "$WORK/perf-$i.txt"
  done
  stop_worker
fi
