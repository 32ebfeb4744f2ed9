"""Chunked streams go on across a broken worker connection (PROTOCOL.md §7.9 *Resumption*,
docs/STREAMS.md §3): each SDK's caller echoes a 40 MiB value through each language's example
worker while link_cutter.py breaks the worker's connections to musterd twice — once while the
input's chunks flow to the worker, once while the output's chunks flow back — losing whatever
was on the way. The worker attaches again with its session (test_worker_link_loss.py), the
receivers ask for what they miss with resume Credits, the senders go back, and every call ends
with the whole value echoed, its sha256 checked at each end.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import _PROCS, popen
from chunk_peers import MiB
from link_cutter import LinkCutter
from test_chunk_matrix import (NODE_PREFIX, VALUE_MIB, caller_args, echoed_sha256, outputs_of, write_input)
from test_stream_sdk import start_worker, typescript_ready


@pytest.fixture
def daemon(start_daemon):
    """Pinging every second (a worker hashing 40 MiB on a loaded machine must not be declared
    dead for a late Pong); a reconnect takes well under the 3 s liveness window."""
    return start_daemon(ping_ms=1000)


@pytest.mark.parametrize("caller", ["cpp", "py", "ts"])
@pytest.mark.parametrize("worker", ["cpp", "py", "ts"])
def test_a_40_mib_echo_goes_on_while_the_workers_link_breaks_twice(daemon, tmp_path, worker, caller):
    if "ts" in (worker, caller) and not typescript_ready():
        pytest.skip("the TypeScript SDK is not built (tools/test builds it)")
    source = tmp_path / "input.bin"
    want = write_input(source)
    with LinkCutter(daemon.runtime_dir, tmp_path / "via-proxy") as link:
        start_worker(daemon, worker, env=dict(daemon.env, MUSTER_RUNTIME_DIR=str(link.listen_dir)))
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        args = [str(a) for a in caller_args(caller, daemon, NODE_PREFIX[worker] + "echo", source, out_dir)]
        proc = popen(args, env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _PROCS.append(proc)
        if link.wait_down(link.down + 12 * MiB, 120, proc):  # the input is on its way to the worker
            link.cut()
        if link.wait_up(link.up + 12 * MiB, 120, proc):  # the echo is on its way back
            link.cut()
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"{caller} caller -> {worker} echo:\n{out}\n{err}"
        outputs = outputs_of(caller, json.loads(out.strip().splitlines()[-1]))
        assert echoed_sha256(caller, outputs, out_dir) == want
        assert link.cuts == 2  # the call saw both breaks
    assert "worker is gone" not in daemon.log
