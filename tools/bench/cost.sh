#!/usr/bin/env bash
# tools/bench/cost.sh — what one muster call costs, in figures that do not move with the load of
# a shared machine: instructions (callgrind), syscalls and context switches (perf software
# counters) per call of musterd, the C++ SDK workers and the C++ client library, for a fixed
# number of pipelined echo calls (muster-bench-cost-client).
#
#   tools/bench/cost.sh                                  # ipc and tcp, 50,000 x 64 B, 256 in flight
#   tools/bench/cost.sh --transport tcp --calls 20000 --depth 32 --payload 4096
#   tools/bench/cost.sh --no-callgrind                   # syscalls and switches only (fast)
#   tools/bench/cost.sh --strace                         # + which syscalls each process makes (strace -c)
#   MUSTER_BENCH_BUILD=/tmp/b tools/bench/cost.sh        # binaries of another build
#   tools/bench/cost.sh --durable --journal-sync normal --musterd-only   # durable calls (SQLite
#                      journal in the run directory), callgrind on musterd only (the workers and
#                      the client run natively: faster, and musterd's count does not change)
#   tools/bench/cost.sh --musterd /tmp/before/musterd    # another musterd, the rest of this build
#   tools/bench/cost.sh --musterd-arg --journal-gather-ms --musterd-arg 100   # an extra musterd flag
#   PATH=$PWD/.venv/bin:$PATH tools/bench/cost.sh --worker-bin tools/bench/sdk/python_echo_worker \
#                      --musterd-only --calls 20000   # another SDK's echo worker (takes muster-bench-worker's
#                      flags); --musterd-only: callgrind on musterd, the workers' figures native
#   tools/bench/cost.sh --worker-arg --no-direct         # an extra muster-bench-worker flag
#
# Instructions: everything runs under `valgrind --tool=callgrind` twice, with N and N/10 calls;
# per call = (Ir(N) - Ir(N/10)) / (0.9 N), so start-up, attach and shut-down cancel out.
# Syscalls (`raw_syscalls:sys_enter`), context switches (voluntary + involuntary) and CPU time
# (`task-clock`) are counted natively by `perf stat -p` over the N calls only, all threads of
# each process.
# Never part of the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${MUSTER_BENCH_BUILD:-$ROOT/build-bench}"
TRANSPORTS="ipc,tcp" CALLS=50000 DEPTH=256 PAYLOAD=64 WORKERS=2 CALLGRIND=1 STRACE=0 KEEP=0
DURABLE=0 JOURNAL_SYNC=full MUSTERD_ONLY=0 MUSTERD="" MUSTERD_ARGS=() WORKER="" WORKER_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --transport) TRANSPORTS="$2"; shift 2 ;;
    --calls) CALLS="$2"; shift 2 ;;
    --depth) DEPTH="$2"; shift 2 ;;
    --payload) PAYLOAD="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --no-callgrind) CALLGRIND=0; shift ;;
    --strace) STRACE=1; shift ;;
    --keep) KEEP=1; shift ;;
    --durable) DURABLE=1; shift ;;
    --journal-sync) JOURNAL_SYNC="$2"; shift 2 ;;
    --musterd-only) MUSTERD_ONLY=1; shift ;;
    --musterd) MUSTERD="$2"; shift 2 ;;
    --worker-bin) WORKER="$2"; shift 2 ;;
    --musterd-arg) MUSTERD_ARGS+=("$2"); shift 2 ;;
    --worker-arg) WORKER_ARGS+=("$2"); shift 2 ;;
    -h|--help) sed -n 2,26p "$0"; exit 0 ;;
    *) echo "cost.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done
MUSTERD="${MUSTERD:-$BUILD/broker/musterd}"
WORKER="${WORKER:-$BUILD/tools/bench/muster-bench-worker}"
CLIENT="$BUILD/tools/bench/muster-bench-cost-client"
for b in "$MUSTERD" "$WORKER" "$CLIENT"; do
  [ -x "$b" ] || { echo "cost.sh: $b missing: cmake --build $BUILD --target muster-bench" >&2; exit 2; }
done
CAPACITY=$(( (DEPTH + WORKERS - 1) / WORKERS ))
source "$ROOT/tools/lib/bench_scratch.sh"
SCRATCH_KEEP="$KEEP"
scratch_begin muster-cost
DIR="$SCRATCH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_stack TRANSPORT TAG WRAP... : musterd + WORKERS SDK workers, each under WRAP (may be
# empty), with MUSTER_COST_ROLE=musterd|worker in its environment (callgrind's file names).
start_stack() {
  local t="$1" tag="$2"; shift 2
  local run="$DIR/$tag" req resp cli extra=()
  mkdir -p "$run/data" "$run/rt"
  if [ "$t" = ipc ]; then
    req="ipc://$run/req.sock" resp="ipc://$run/resp.sock" cli="ipc://$run/cli.sock"
  else
    req="tcp://127.0.0.1:$(free_port)" resp="tcp://127.0.0.1:$(free_port)" cli="tcp://127.0.0.1:$(free_port)"
    extra=(--insecure)
  fi
  CLIENT_ADDR="$cli" CLIENT_EXTRA=("${extra[@]}")
  local journal=() LOG_LEVEL=warn
  if [ "$DURABLE" = 1 ]; then
    journal=(--journal "sqlite:$run/journal.db" --journal-sync "$JOURNAL_SYNC")
    LOG_LEVEL=info  # its journal counts at exit
    CLIENT_EXTRA+=(--durable)
  fi
  MUSTER_RUNTIME_DIR="$run/rt" MUSTER_COST_ROLE=musterd "$@" "$MUSTERD" --data-dir "$run/data" --request-address "$req" \
    --response-address "$resp" --client-address "$cli" --log-level "$LOG_LEVEL" "${extra[@]}" "${journal[@]}" "${MUSTERD_ARGS[@]}" \
    >"$run/musterd.log" 2>&1 &
  DAEMON_PID=$!
  SCRATCH_PIDS+=("$DAEMON_PID")
  WORKER_PIDS=()
  [ "$MUSTERD_ONLY" = 1 ] && set --  # callgrind on musterd only
  for i in $(seq 1 "$WORKERS"); do
    MUSTER_COST_ROLE=worker "$@" "$WORKER" --worker-id "cost-$i" --request-address "$req" --response-address "$resp" \
      --capacity "$CAPACITY" "${extra[@]}" ${WORKER_ARGS[@]+"${WORKER_ARGS[@]}"} >"$run/worker-$i.log" 2>&1 &
    WORKER_PIDS+=($!)
    SCRATCH_PIDS+=($!)
  done
}

stop_stack() {
  kill "${WORKER_PIDS[@]}" 2>/dev/null || true
  wait "${WORKER_PIDS[@]}" 2>/dev/null || true
  kill "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
  SCRATCH_PIDS=()
}

client() {  # client CALLS WRAP...
  local n="$1"; shift
  "$@" "$CLIENT" --client-address "$CLIENT_ADDR" "${CLIENT_EXTRA[@]}" --calls "$n" --depth "$DEPTH" \
    --payload "$PAYLOAD" --workers "$WORKERS"
}

# perf stat -x, output -> "switches syscalls cpu-ms"
perf_figures() {
  awk -F, '$3=="context-switches"{c=$1} $3=="raw_syscalls:sys_enter"{s=$1} $3=="task-clock"{t=$1}
           END{print c, s, t}' "$1"
}

per_call() { python3 -c "import sys; print(f'{(float(sys.argv[1]))/float(sys.argv[2]):.2f}')" "$1" "$2"; }

ir_total() {  # sum of callgrind totals of the files given
  local sum=0 v
  for f in "$@"; do
    v=$(awk '/^(summary|totals):/{print $2; exit}' "$f")
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

# Voluntary context switches of every thread of the processes given: a thread that blocks
# (waits for a message) switches voluntarily, so this counts the hand-offs between threads;
# involuntary ones are preemption and grow with the machine's load.
voluntary() {
  local sum=0 v p t
  for p in "$@"; do
    for t in /proc/"$p"/task/*/status; do
      v=$(awk '/^voluntary_ctxt_switches/{print $2}' "$t" 2>/dev/null || true)
      sum=$((sum + ${v:-0}))
    done
  done
  echo "$sum"
}

EVENTS=context-switches,raw_syscalls:sys_enter,task-clock
what="not durable"; [ "$DURABLE" = 1 ] && what="durable, --journal-sync $JOURNAL_SYNC"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $CALLS calls x $PAYLOAD B ($what), $DEPTH in flight, $WORKERS SDK workers (capacity $CAPACITY), musterd $MUSTERD, workers $WORKER"
IFS=, read -ra TLIST <<<"$TRANSPORTS"
for t in "${TLIST[@]}"; do
  # --- syscalls and context switches, native, over the N calls only ---
  start_stack "$t" "native-$t"
  client 0 >/dev/null
  perf stat -x, -e "$EVENTS" -p "$DAEMON_PID" -o "$DIR/perf-d-$t" &
  PD=$!
  perf stat -x, -e "$EVENTS" -p "$(IFS=,; echo "${WORKER_PIDS[*]}")" -o "$DIR/perf-w-$t" &
  PW=$!
  sleep 0.3
  dvol0=$(voluntary "$DAEMON_PID") wvol0=$(voluntary "${WORKER_PIDS[@]}")
  perf stat -x, -e "$EVENTS" -o "$DIR/perf-c-$t" -- /usr/bin/time -f %w -o "$DIR/vol-c-$t" "$CLIENT" \
    --client-address "$CLIENT_ADDR" "${CLIENT_EXTRA[@]}" --calls "$CALLS" --depth "$DEPTH" --payload "$PAYLOAD" \
    --workers "$WORKERS" >/dev/null
  dvol=$(( $(voluntary "$DAEMON_PID") - dvol0 )) wvol=$(( $(voluntary "${WORKER_PIDS[@]}") - wvol0 ))
  kill -INT "$PD" "$PW"; wait "$PD" "$PW" 2>/dev/null || true
  stop_stack
  read -r dsw dsc dms < <(perf_figures "$DIR/perf-d-$t")
  read -r wsw wsc wms < <(perf_figures "$DIR/perf-w-$t")
  read -r csw csc cms < <(perf_figures "$DIR/perf-c-$t")
  # the client's figure includes its start (connect, waiting for the workers): small next to N calls
  echo "$t syscalls/call:    musterd $(per_call "$dsc" "$CALLS")  workers $(per_call "$wsc" "$CALLS")  client $(per_call "$csc" "$CALLS")"
  echo "$t ctx switches/call: musterd $(per_call "$dsw" "$CALLS")  workers $(per_call "$wsw" "$CALLS")  client $(per_call "$csw" "$CALLS")"
  echo "$t   of which voluntary (a thread blocked): musterd $(per_call "$dvol" "$CALLS")  workers $(per_call "$wvol" "$CALLS")  client $(per_call "$(tail -1 "$DIR/vol-c-$t")" "$CALLS")"
  # task-clock: CPU time of all the process's threads (ms) -> µs per call
  echo "$t CPU µs/call:       musterd $(per_call "${dms}e3" "$CALLS")  workers $(per_call "${wms}e3" "$CALLS")  client $(per_call "${cms}e3" "$CALLS")"

  # --- which syscalls each process makes: strace -c on all its threads, N/10 calls ---
  if [ "$STRACE" = 1 ]; then
    start_stack "$t" "strace-$t"
    client 0 >/dev/null
    strace -c -f -o "$DIR/strace-$t-musterd.txt" -p "$DAEMON_PID" 2>/dev/null &  # -p: all its threads
    PS=$!
    strace -c -f -o "$DIR/strace-$t-workers.txt" $(printf -- '-p %s ' "${WORKER_PIDS[@]}") 2>/dev/null &
    PSW=$!
    sleep 0.5
    client $((CALLS / 10)) strace -c -f -o "$DIR/strace-$t-client.txt" >/dev/null
    kill -INT "$PS" "$PSW"; wait "$PS" "$PSW" 2>/dev/null || true
    stop_stack
    for who in musterd workers client; do
      echo "$t $who syscalls per call (strace -c, $((CALLS / 10)) calls):"
      awk -v n=$((CALLS / 10)) '$1 ~ /^[0-9.]+$/ && NF >= 5 {printf "    %-16s %.2f\n", $NF, $4 / n}' \
        "$DIR/strace-$t-$who.txt" | sort -k2 -rn | head -8
    done
  fi

  # --- instructions, callgrind, N and N/10 calls ---
  if [ "$CALLGRIND" = 1 ]; then
    declare -A IR=()
    small=$((CALLS / 10))
    for n in "$small" "$CALLS"; do
      cg="$DIR/cg-$t-$n"
      mkdir -p "$cg"
      VG=(valgrind --tool=callgrind --log-file="$cg/valgrind.%p.log" --callgrind-out-file="$cg/%q{MUSTER_COST_ROLE}.%p")
      start_stack "$t" "cg-$t-$n" "${VG[@]}"
      if [ "$MUSTERD_ONLY" = 1 ]; then client "$n" >/dev/null
      else MUSTER_COST_ROLE=client client "$n" "${VG[@]}" >/dev/null; fi
      stop_stack
      IR[d$n]=$(ir_total "$cg"/musterd.*)
      if [ "$MUSTERD_ONLY" = 0 ]; then
        IR[c$n]=$(ir_total "$cg"/client.*)
        IR[w$n]=$(ir_total "$cg"/worker.*)
      fi
    done
    span=$((CALLS - small))
    [ "$DURABLE" = 1 ] && echo "$t $(grep -ho 'journal: .*' "$cg/musterd.log" | tail -1)"
    if [ "$MUSTERD_ONLY" = 1 ]; then
      echo "$t instructions/call: musterd $(per_call $((IR[d$CALLS] - IR[d$small])) $span)  (callgrind files: $DIR/cg-$t-*)"
    else
      echo "$t instructions/call: musterd $(per_call $((IR[d$CALLS] - IR[d$small])) $span)  workers $(per_call $((IR[w$CALLS] - IR[w$small])) $span)  client $(per_call $((IR[c$CALLS] - IR[c$small])) $span)"
    fi
  fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
