"""Chunked values across languages (PROTOCOL.md §7.9, docs/STREAMS.md §3): each SDK's caller
(the C++ library through `muster call --input NAME=@FILE --output-dir`, the Python Client, the
TypeScript Client through chunk_caller.js) against each language's example worker, through one
real musterd. Every pair echoes a 40 MiB value (over the 16 MiB message limit: chunked both
ways, the input sent from a file, the output streamed to a file) and has the worker's `sha256`
node hash it as a stream; the caller's file, the echoed file and the worker's digest must agree,
and musterd's peak RSS stays under 64 MiB.

The per-SDK tests (test_chunk_client_cpp.py, test_chunk_worker_cpp.py,
test_chunk_sdk_python.py, test_chunk_sdk_typescript.py) cover the failure cases against raw
peers; this one proves the SDKs agree with each other on the wire.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chunk_peers import MiB, block, vm_hwm_kib
from conftest import BUILD
from test_stream_sdk import muster_cli, start_worker, typescript_ready

CALLER_JS = Path(__file__).resolve().parent / "chunk_caller.js"
VALUE_MIB = 40
MUSTERD_RSS_BOUND_KIB = 64 * 1024

PY_CALLER = """
import json, pathlib, sys
import muster
address, node, source, out_dir = sys.argv[1:5]
with muster.Client(address, connect_timeout=10.0) as client:
    kwargs = {"output_dir": out_dir} if out_dir else {}
    outputs = client.call(node, {"data": pathlib.Path(source)}, timeout_ms=120_000, **kwargs)
print(json.dumps({k: str(v) if isinstance(v, pathlib.Path) else v for k, v in outputs.items()}))
"""


@pytest.fixture
def daemon(start_daemon):
    """musterd pinging every second: a worker hashing 40 MiB on a loaded machine must not be
    declared dead for answering a ping late."""
    return start_daemon(ping_ms=1000)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block_ := f.read(MiB):
            h.update(block_)
    return h.hexdigest()


def write_input(path: Path) -> str:
    """VALUE_MIB MiB of chunk_caller.js's pattern (MiB i is the 8-byte i repeated): its sha256."""
    with open(path, "wb") as f:
        for i in range(VALUE_MIB):
            f.write(block(i))
    return sha256_file(path)


def run(args, daemon, timeout=180) -> dict:
    r = subprocess.run([str(a) for a in args], env=daemon.env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args[0]} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def caller_args(caller: str, daemon, node: str, source: Path, out_dir: Path | None) -> list:
    """The command line of `caller`'s call of `node` with `source` as its `data` input: the C++
    client library through `muster call --input NAME=@FILE` (bytes outputs as files named after
    their ports), the Python Client, the TypeScript Client through chunk_caller.js. Its last line
    of output is the outputs as JSON."""
    if caller == "cpp":
        return [BUILD / "tools" / "muster", "call", node, "--input", f"data=@{source}", "--timeout", "120s",
                *(["--output-dir", out_dir] if out_dir else [])]
    if caller == "py":
        return [sys.executable, "-c", PY_CALLER, daemon.client_address, node, source, out_dir or ""]
    flags = ["--mib", str(VALUE_MIB), "--from", "file", "--file", source, "--timeout-ms", "120000"]
    if out_dir:
        flags += ["--output-file", out_dir / "data"]
    return ["node", CALLER_JS, node, *flags]


def outputs_of(caller: str, result: dict) -> dict:
    if caller == "ts":
        assert result["error"] is None, result
        return result["outputs"]
    return result


def call_with(caller: str):
    return lambda daemon, node, source, out_dir: outputs_of(
        caller, run(caller_args(caller, daemon, node, source, out_dir), daemon))


CALLERS = {caller: call_with(caller) for caller in ("cpp", "py", "ts")}
NODE_PREFIX = {"cpp": "", "py": "py.", "ts": "ts."}


def echoed_sha256(caller: str, outputs: dict, out_dir: Path) -> str:
    """The sha256 of what came back from echo, as each caller reports it: C++ names the file
    (with its size and sha256), Python returns its path, the TypeScript sink wrote --output-file."""
    if caller == "cpp":
        assert outputs["data"]["file"] == str(out_dir / "data") and outputs["data"]["size"] == VALUE_MIB * MiB, outputs
        assert outputs["data"]["sha256"] == sha256_file(out_dir / "data")
    elif caller == "py":
        assert outputs["data"] == str(out_dir / "data"), outputs
    else:
        assert outputs["data"]["size"] == VALUE_MIB * MiB, outputs
    return sha256_file(out_dir / "data")


@pytest.mark.parametrize("worker", ["cpp", "py", "ts"])
def test_every_sdk_caller_echoes_and_hashes_40_mib_through_this_languages_worker(daemon, tmp_path, worker):
    if worker == "ts" and not typescript_ready():
        pytest.skip("the TypeScript SDK is not built (tools/test builds it)")
    start_worker(daemon, worker)
    prefix = NODE_PREFIX[worker]
    source = tmp_path / "input.bin"
    want = write_input(source)
    for caller, call in CALLERS.items():
        if caller == "ts" and not typescript_ready():
            continue
        out_dir = tmp_path / f"out-{caller}"
        out_dir.mkdir()
        outputs = call(daemon, prefix + "echo", source, out_dir)
        assert echoed_sha256(caller, outputs, out_dir) == want, f"{caller} caller -> {worker} echo"
        digest = call(daemon, prefix + "sha256", source, None)
        assert digest.get("hex") == want, f"{caller} caller -> {worker} sha256: {digest}"
        assert sha256_file(source) == want  # the caller did not change its input
    hwm = vm_hwm_kib(daemon.proc.pid)
    print(f"musterd VmHWM {hwm} KiB after {len(CALLERS)} callers x 40 MiB each way through the {worker} worker")
    assert hwm < MUSTERD_RSS_BOUND_KIB, f"musterd's peak RSS was {hwm} KiB (bound: 64 MiB)"
    assert muster_cli(daemon, "status").returncode == 0
