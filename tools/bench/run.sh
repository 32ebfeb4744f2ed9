#!/usr/bin/env bash
# tools/bench/run.sh — the standard benchmark of issue 5, by hand: builds muster-bench (Release)
# and runs the matrix (ipc, tcp, curve × 64 B, 4 KiB, 1 MiB × one-at-a-time, pipelined,
# muster against the bare-libzmq baseline) and then the scale scenario (1,000 simulated
# workers, 10,000 queued requests, an attach storm). About three minutes on 2 cores.
#
#   tools/bench/run.sh                    # everything, table on stdout, JSON in $OUT
#   tools/bench/run.sh --repeat 3         # extra flags go to muster-bench (see --help)
#   MUSTER_BENCH_BUILD=/tmp/b tools/bench/run.sh
#   tools/bench/run.sh --system baseline,muster,nats -t tcp -p 64,4KiB -d 256 --no-scale
#                                         # + NATS (issue 19): Debian's nats-server and a nats.go
#                                         # client (tools/bench/nats), same run, after muster-bench
#   tools/bench/run.sh --system baseline,muster,nats -t tcp,curve -p 64,4KiB -w 1,2 -d 32,256 --no-scale
#                                         # issue 19's whole table: -w and -d take lists here (one
#                                         # muster-bench run per worker count and depth; one-at-a-time
#                                         # cells only with the first depth) and NATS gets the same
#                                         # responder counts and depths. NATS is measured on tcp only:
#                                         # it has no CURVE (its TLS is another protocol, certificates
#                                         # and Go's crypto), so CURVE cells compare muster with the
#                                         # forwarder over CURVE alone.
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

# `nats` in --system is run.sh's, not muster-bench's: taken out of the list given to it, and
# measured by tools/bench/nats (nats-bench matrix) right after it, in the same run.
NATS=0 MUSTER=1 SCALE=(--scale) ARGS=() WORKERS=2 DEPTHS=32 MODE="" PAYLOADS="" TRANSPORTS="ipc,tcp,curve"
while [ $# -gt 0 ]; do
  case "$1" in
    -w|--workers) WORKERS="$2"; shift 2 ;;
    -d|--depth) DEPTHS="$2"; shift 2 ;;
    -m|--mode) MODE="$2"; ARGS+=("$1" "$2"); shift 2 ;;
    -p|--payload) PAYLOADS="$2"; ARGS+=("$1" "$2"); shift 2 ;;
    -t|--transport) TRANSPORTS="$2"; ARGS+=("$1" "$2"); shift 2 ;;
    --system)
      IFS=, read -ra systems <<<"$2"
      kept=()
      for s in "${systems[@]}"; do [ "$s" = nats ] && NATS=1 || kept+=("$s"); done
      [ ${#kept[@]} -gt 0 ] && ARGS+=(--system "$(IFS=,; echo "${kept[*]}")")
      [ ${#kept[@]} -eq 0 ] && MUSTER=0
      shift 2 ;;
    --no-scale) SCALE=(); shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
if [ "$NATS" = 1 ]; then
  if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
    echo "installing Debian's nats-server (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
  fi
  NATS_SERVER="$(command -v nats-server || echo /usr/sbin/nats-server)"
  (cd "$ROOT/tools/bench/nats" && go build -o "$BUILD/tools/bench/nats-bench" .)
fi

mkdir -p "$OUT"
STAMP="$(date +%Y%m%dT%H%M%S)"
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)" >&2
IFS=, read -ra WLIST <<<"$WORKERS"
IFS=, read -ra DLIST <<<"$DEPTHS"
if [ "$MUSTER" = 1 ]; then
  : >"$OUT/bench-$STAMP.txt"
  for w in "${WLIST[@]}"; do
    for i in "${!DLIST[@]}"; do
      d="${DLIST[$i]}" extra=()
      # One-at-a-time cells do not depend on the depth: measured with the first one only.
      if [ "$i" -gt 0 ]; then
        [ -n "$MODE" ] && [[ "$MODE" != *throughput* ]] && continue
        [ -z "$MODE" ] && extra=(-m throughput)
      fi
      echo "== muster-bench: $w worker(s), $d in flight (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/bench-$STAMP.txt" >&2
      "$BUILD/tools/bench/muster-bench" "${SCALE[@]}" --json-file "$OUT/bench-$STAMP-w$w-d$d.json" \
        "${ARGS[@]}" "${extra[@]}" -w "$w" -d "$d" | tee -a "$OUT/bench-$STAMP.txt"
      SCALE=()  # the scale scenario once
    done
  done
fi
if [ "$NATS" = 1 ]; then
  echo >&2
  [[ ",$TRANSPORTS," == *,curve,* || ",$TRANSPORTS," == *,ipc,* ]] &&
    echo "NATS runs on tcp only (no ipc transport; no CURVE: its TLS is not an equivalent), so the ipc and CURVE cells have no NATS figure" | tee -a "$OUT/bench-$STAMP.txt" >&2
  if [[ ",$TRANSPORTS," == *,tcp,* ]]; then
    echo "load before NATS: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    "$BUILD/tools/bench/nats-bench" matrix -server "$NATS_SERVER" -payload "${MUSTER_BENCH_NATS_PAYLOAD:-${PAYLOADS:-64,4KiB}}" \
      -responders "${MUSTER_BENCH_NATS_RESPONDERS:-$WORKERS}" -depth "${MUSTER_BENCH_NATS_DEPTH:-$DEPTHS}" \
      | tee -a "$OUT/bench-$STAMP.txt"
  fi
fi
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "results: $OUT/bench-$STAMP.txt and bench-$STAMP-w*-d*.json" >&2
