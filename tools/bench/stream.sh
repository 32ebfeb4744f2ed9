#!/usr/bin/env bash
# tools/bench/stream.sh — a large chunked value through musterd (docs/STREAMS.md §3), printing
# musterd's peak RSS (VmHWM) and the time each run took. Two runs of the same size:
#   raw:  tests/integration/test_chunks.py's echo between raw Python peers (musterd alone);
#   cpp:  tests/integration/test_chunk_worker_cpp.py's echo through the C++ example worker (its
#         SDK's chunker: the input assembled for the handler, the output sent within the
#         caller's credit), the caller being the same raw Python peer.
# Each echoes the value both ways (default 1024 MiB; the test suite runs 256 and 48 MiB). The
# caller is Python, so the time measures it more than musterd: it is no bandwidth figure against
# the bare libzmq forwarder.
#
#   tools/bench/stream.sh            # 1 GiB, both runs
#   tools/bench/stream.sh 4096 cpp   # 4 GiB, the C++ worker only
#   MUSTER_BUILD_DIR=/tmp/b tools/bench/stream.sh
#
# Never part of the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MIB="${1:-1024}"
WHICH="${2:-raw cpp}"
export MUSTER_BUILD_DIR="${MUSTER_BUILD_DIR:-$ROOT/build}"
export MUSTER_CHUNK_TEST_MIB="$MIB" MUSTER_CHUNK_WORKER_MIB="$MIB"
run() {  # run NAME TEST_FILE TEST_NAME
  local start end
  start=$(date +%s.%N)
  "$ROOT/.venv/bin/python" -m pytest -q -s "$ROOT/tests/integration/$2" -k "$3" 2>&1 | grep -E "echoed|passed|failed|Error"
  end=$(date +%s.%N)
  echo "$1: wall time, musterd start to stop included: $(echo "$end - $start" | bc) s for $MIB MiB each way"
}
for w in $WHICH; do
  case "$w" in
    raw) run raw test_chunks.py test_a_large_chunked_value_is_echoed_through_musterd_in_bounded_memory ;;
    cpp) run cpp test_chunk_worker_cpp.py test_echo_of_a_chunked_input_returns_a_chunked_output_in_bounded_musterd_memory ;;
    *) echo "unknown run '$w' (raw, cpp)" >&2; exit 2 ;;
  esac
done
