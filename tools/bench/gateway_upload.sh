#!/usr/bin/env bash
# tools/bench/gateway_upload.sh — a 2 GiB file uploaded through muster-gateway's WebSocket and
# used as a call's input, sent chunked from the upload on disk to a raw Python worker that hashes
# it (docs/GATEWAY.md "Using a file in a call"): the long case of
# tests/integration/test_gateway_chunked_upload.py, printing the upload and call times, musterd's
# peak RSS (VmHWM) and the gateway's RSS during the call. The uploader and the worker are
# Python (base64 over JSON, hashlib), so the times measure them more than the gateway or musterd.
#
#   tools/bench/gateway_upload.sh           # 2048 MiB
#   tools/bench/gateway_upload.sh 4096      # 4 GiB
#
# Needs about twice the size free in /tmp (the upload's part file and finished file). Never part
# of the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export MUSTER_BUILD_DIR="${MUSTER_BUILD_DIR:-$ROOT/build}"
export MUSTER_LONG=1 MUSTER_UPLOAD_MIB="${1:-2048}"
"$ROOT/.venv/bin/python" -m pytest -q -s "$ROOT/tests/integration/test_gateway_chunked_upload.py" \
  -k test_a_2_gib_upload_reaches_a_worker 2>&1 | grep -E "MiB:|passed|failed|Error"
