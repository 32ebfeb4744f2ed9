# bench_scratch.sh — sourced by the benchmark scripts (tools/bench/*.sh): the scratch directory of
# one run and the processes it started, stopped and removed when the script exits, however it
# exits (an error under `set -e`, Ctrl-C, the end).
# Owns: SCRATCH (the directory), SCRATCH_PIDS (the processes to stop: a script adds each one it
# starts, and empties the list once it stopped them itself), SCRATCH_KEEP (1: keep the directory
# and say where), and the EXIT trap.
# Must never: stop a process no script added to SCRATCH_PIDS, or remove anything but SCRATCH.
#
#   source "$ROOT/tools/lib/bench_scratch.sh"
#   scratch_begin muster-cost            # SCRATCH=/tmp/muster-cost.XXXXXX
#   musterd ... & SCRATCH_PIDS+=($!)

scratch_begin() {  # scratch_begin NAME
  SCRATCH="$(mktemp -d "/tmp/$1.XXXXXX")"
  SCRATCH_PIDS=()
  SCRATCH_KEEP="${SCRATCH_KEEP:-0}"
  trap scratch_end EXIT
}

scratch_end() {
  local p
  for p in "${SCRATCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$SCRATCH_KEEP" = 1 ]; then echo "run directory kept: $SCRATCH" >&2; else rm -rf "$SCRATCH"; fi
}
