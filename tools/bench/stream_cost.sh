#!/usr/bin/env bash
# tools/bench/stream_cost.sh — what the C++ worker SDK spends per MiB it streams, counted in a
# way the load of a shared machine does not move (muster-bench-stream's ms/MiB does): the SDK
# stream worker of `muster-bench-stream --items 0 --transports ipc` (its `produce` node: an
# OutputSource sent as chunks) run under callgrind, once for SMALL and once for LARGE MiB; the
# difference divided by LARGE - SMALL is the cost per MiB without the start and the warm-up call.
# Printed per MiB: instructions in all, in libcrypto (the SHA-256: under valgrind OpenSSL runs
# without SHA-NI, so this part is far larger than on the machine itself), outside it, and in
# memcpy (the bench's source copies each byte once into the buffer it is given: 1 copy ≈ 1.05 M).
# Then, natively, the worker's page faults at both sizes (perf stat; counts, not time).
#
#   tools/bench/stream_cost.sh                 # build/, 32 and 96 MiB (past the first 16 MiB, which
#                                              # fill the resend keep)
#   tools/bench/stream_cost.sh build-bench 32 160
#
# Needs valgrind (callgrind_annotate) and, for the page faults, perf. Never part of the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$(realpath "${1:-$ROOT/build}")"
SMALL="${2:-32}"
LARGE="${3:-96}"
WORK="$(mktemp -d /tmp/muster-stream-cost-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# One bench run whose SDK worker runs under `wrap` (the --baseline worker runs as it is).
run() {  # run NAME MIB WRAP...
  local name=$1 mib=$2
  shift 2
  local d="$WORK/$name"
  mkdir -p "$d/bin"
  cp "$BUILD/tools/bench/muster-bench-stream" "$BUILD/tools/bench/muster-bench-forwarder" "$d/bin/"
  {
    echo '#!/usr/bin/env bash'
    echo "for a in \"\$@\"; do [ \"\$a\" = --baseline ] && exec '$BUILD/tools/bench/muster-bench-stream-worker' \"\$@\"; done"
    echo "exec $* '$BUILD/tools/bench/muster-bench-stream-worker' \"\$@\""
  } >"$d/bin/muster-bench-stream-worker"
  chmod +x "$d/bin/muster-bench-stream-worker"
  "$d/bin/muster-bench-stream" --mib "$mib" --items 0 --transports ipc --dir "$d/run" >"$d/bench.txt" 2>&1 ||
    { cat "$d/bench.txt" >&2; exit 1; }
}

# Instructions of a callgrind profile: total, libcrypto, memcpy.
counts() {
  callgrind_annotate --threshold=100 "$1" 2>/dev/null | awk '
    /PROGRAM TOTALS/ { gsub(",", "", $1); t = $1 }
    /libcrypto/ { gsub(",", "", $1); c += $1 }
    /memcpy|memmove/ { gsub(",", "", $1); m += $1 }
    END { printf "%.0f %.0f %.0f\n", t, c, m }'
}

for mib in "$SMALL" "$LARGE"; do
  run "cg-$mib" "$mib" valgrind --tool=callgrind "--callgrind-out-file=$WORK/cg-$mib.out"
done
read -r t1 c1 m1 < <(counts "$WORK/cg-$SMALL.out")
read -r t2 c2 m2 < <(counts "$WORK/cg-$LARGE.out")
awk -v t1="$t1" -v c1="$c1" -v m1="$m1" -v t2="$t2" -v c2="$c2" -v m2="$m2" -v n="$((LARGE - SMALL))" 'BEGIN {
  printf "worker instructions per MiB (callgrind, %d MiB more): all %.2f M, libcrypto %.2f M, outside it %.2f M, memcpy %.2f M\n",
         n, (t2 - t1) / n / 1e6, (c2 - c1) / n / 1e6, ((t2 - c2) - (t1 - c1)) / n / 1e6, (m2 - m1) / n / 1e6 }'

# The worker's page faults, natively: perf stat attached to the SDK worker the bench starts.
faults() {  # faults MIB -> the worker's page faults in all
  local d="$WORK/pf-$1"
  mkdir -p "$d"
  "$BUILD/tools/bench/muster-bench-stream" --mib "$1" --items 0 --transports ipc --dir "$d/run" >"$d/bench.txt" 2>&1 &
  local bench=$! worker="" c args
  while [ -z "$worker" ] && kill -0 "$bench" 2>/dev/null; do
    for c in $(pgrep -P "$bench" || true); do
      args="$({ tr '\0' ' ' <"/proc/$c/cmdline"; } 2>/dev/null || true)"
      [[ "$args" == *muster-bench-stream-worker* && "$args" != *--baseline* ]] && worker=$c
    done
    sleep 0.05
  done
  [ -n "$worker" ] && perf stat -x, -e page-faults -p "$worker" -o "$d/perf.txt" 2>/dev/null || true
  wait "$bench" || { cat "$d/bench.txt" >&2; exit 1; }
  awk -F, '/page-faults/ { print $1 }' "$d/perf.txt"
}
if command -v perf >/dev/null; then
  f1=$(faults "$SMALL")
  f2=$(faults "$LARGE")
  awk -v f1="$f1" -v f2="$f2" -v n="$((LARGE - SMALL))" -v s="$SMALL" -v l="$LARGE" 'BEGIN {
    printf "worker page faults (perf stat): %.0f at %d MiB, %.0f at %d MiB: %.2f per MiB more\n", f1, s, f2, l, (f2 - f1) / n }'
fi
