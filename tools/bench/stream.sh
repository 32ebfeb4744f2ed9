#!/usr/bin/env bash
# tools/bench/stream.sh — a large chunked value through musterd (docs/STREAMS.md §3): the
# integration test tests/integration/test_chunks.py::test_a_large_chunked_value_is_echoed_through_musterd_in_bounded_memory
# with a bigger value (default 1024 MiB; the test suite runs 256 MiB), printing musterd's peak
# RSS (VmHWM) and the time it took. The peers are the test's raw Python peers (the SDKs'
# chunkers are not built yet), so the time measures them more than musterd: it is no bandwidth
# figure against the bare libzmq forwarder.
#
#   tools/bench/stream.sh            # 1 GiB
#   tools/bench/stream.sh 4096       # 4 GiB
#   MUSTER_BUILD_DIR=/tmp/b tools/bench/stream.sh
#
# Never part of the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MIB="${1:-1024}"
export MUSTER_BUILD_DIR="${MUSTER_BUILD_DIR:-$ROOT/build}"
export MUSTER_CHUNK_TEST_MIB="$MIB"
start=$(date +%s.%N)
"$ROOT/.venv/bin/python" -m pytest -q -s "$ROOT/tests/integration/test_chunks.py" \
  -k test_a_large_chunked_value_is_echoed_through_musterd_in_bounded_memory 2>&1 | grep -E "echoed|passed|failed|Error"
end=$(date +%s.%N)
echo "wall time, musterd start to stop included: $(echo "$end - $start" | bc) s for $MIB MiB each way"
