#!/usr/bin/env bash
# tools/bench/sdk/idle_cost.sh — what N idle SDK workers cost: musterd and N workers of one
# program (any that takes muster-bench-worker's flags: python_echo_worker, typescript_echo_worker,
# muster-bench-worker) on ipc, nothing called; after they attached, the CPU time of musterd and
# of the workers (all threads, /proc/PID/stat utime+stime) and musterd's syscalls (perf stat)
# over a window, and at its end musterd's resident memory (VmRSS, RssAnon) and open sockets (the
# listening ones and one per worker connection: two a worker with a SUB, one a direct worker,
# PROTOCOL.md §7.10). The heartbeat is all they do, so this is its cost (§7.3 idle pongs).
#
#   PATH=$PWD/.venv/bin:$PATH tools/bench/sdk/idle_cost.sh tools/bench/sdk/python_echo_worker 20 30
#   MUSTERD=/tmp/other/musterd tools/bench/sdk/idle_cost.sh WORKER_BIN [N=20] [SECONDS=30]
#   WORKER_ARGS=--no-direct tools/bench/sdk/idle_cost.sh WORKER_BIN   # extra worker flags
# musterd: $MUSTERD, else $MUSTER_BENCH_BUILD/broker/musterd, else build/broker/musterd; its
# default ping interval (1 s). Never part of the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
WORKER="${1:?usage: idle_cost.sh WORKER_BIN [N] [SECONDS]}" N="${2:-20}" SECS="${3:-30}"
MUSTERD="${MUSTERD:-${MUSTER_BENCH_BUILD:-$ROOT/build}/broker/musterd}"
source "$ROOT/tools/lib/bench_scratch.sh"
scratch_begin muster-idle
DIR="$SCRATCH"
mkdir -p "$DIR/data" "$DIR/rt"
req="ipc://$DIR/req.sock" resp="ipc://$DIR/resp.sock"
MUSTER_RUNTIME_DIR="$DIR/rt" "$MUSTERD" --data-dir "$DIR/data" --request-address "$req" --response-address "$resp" \
  --client-address "ipc://$DIR/cli.sock" --log-level warn >"$DIR/musterd.log" 2>&1 &
DAEMON=$!
SCRATCH_PIDS+=("$DAEMON")
WORKERS=()
for i in $(seq 1 "$N"); do
  # shellcheck disable=SC2086 # WORKER_ARGS: words
  "$WORKER" --worker-id "idle-$i" --request-address "$req" --response-address "$resp" ${WORKER_ARGS:-} >"$DIR/worker-$i.log" 2>&1 &
  WORKERS+=($!)
  SCRATCH_PIDS+=($!)
done
sleep 10  # attached and confirmed (an interpreter takes a moment to start)
ticks() {  # utime + stime of the processes given, in clock ticks
  local sum=0 p
  for p in "$@"; do sum=$((sum + $(awk '{print $14 + $15}' /proc/"$p"/stat))); done
  echo "$sum"
}
HZ=$(getconf CLK_TCK)
d0=$(ticks "$DAEMON") w0=$(ticks "${WORKERS[@]}")
perf stat -x, -e raw_syscalls:sys_enter -p "$DAEMON" -o "$DIR/perf" -- sleep "$SECS"
d1=$(ticks "$DAEMON") w1=$(ticks "${WORKERS[@]}")
sc=$(awk -F, '$3=="raw_syscalls:sys_enter"{print $1}' "$DIR/perf")
rss=$(awk '/^VmRSS/{print $2}' /proc/"$DAEMON"/status) anon=$(awk '/^RssAnon/{print $2}' /proc/"$DAEMON"/status)
sockets=$(find /proc/"$DAEMON"/fd -lname 'socket:*' 2>/dev/null | wc -l)
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $N idle workers $WORKER ${WORKER_ARGS:-}, musterd $MUSTERD, ${SECS} s"
echo "musterd: VmRSS $((rss / 1024)).$(( (rss % 1024) * 10 / 1024 )) MiB (RssAnon $((anon / 1024)).$(( (anon % 1024) * 10 / 1024 )) MiB), $sockets open sockets"
python3 - "$d0" "$d1" "$w0" "$w1" "$HZ" "$SECS" "$N" "$sc" <<'EOF'
import sys
d0, d1, w0, w1, hz, secs, n, sc = map(float, sys.argv[1:])
print(f"musterd: {100 * (d1 - d0) / hz / secs:.2f} % of a core, {sc / secs:.0f} syscalls/s")
print(f"workers: {100 * (w1 - w0) / hz / secs / n:.3f} % of a core each ({100 * (w1 - w0) / hz / secs:.2f} % all {n:.0f})")
EOF
