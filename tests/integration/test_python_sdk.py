"""The Python SDK against a real musterd: the Python example worker called through the `muster`
CLI and through the Python Client, and the Python Client calling the C++ example worker.

Needs the build (musterd, muster, muster-example-worker) and the `muster` package installed in
the interpreter running pytest (tools/test: .venv with `pip install ./worker/python`).
Every process started here is killed by conftest's autouse fixture; every wait is bounded.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import struct
import sys
import threading

import pytest

from conftest import REPO, read_log, spawn, stop, wait_for

muster = pytest.importorskip("muster", reason="the Python SDK is not installed (pip install ./worker/python)")

EXAMPLE = REPO / "worker" / "examples" / "python" / "example_worker.py"

# Every value kind and its edge cases (JSON-representable, so the CLI can carry them too).
ALL_KINDS = {
    "null": None,
    "true": True,
    "false": False,
    "int_min": -(2**63),
    "int_max": 2**63 - 1,
    "zero": 0,
    "float_whole": 2.0,
    "float_neg_zero": -0.0,
    "float_small": 2.5e-7,
    "float_big": 1.7976931348623157e308,
    "float_subnormal": 5e-324,
    "string_empty": "",
    "string_unicode": "héllo wörld ✓ 日本語 🎉",
    "bytes_empty": b"",
    "bytes": bytes(range(256)),
    "list_empty": [],
    "map_empty": {},
    "nested": {"z": [1, [2.5, [None, {"k": b"\x00"}]]], "a": {"b": {"c": []}}},
    "error": muster.ErrorValue("QUOTA", "over quota"),
}


def strict_equal(a, b) -> bool:
    """Tells 1 from 1.0 and True, -0.0 from 0.0, and compares map order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


def through_cpp_encoder(sent: dict, got: dict) -> dict:
    """What `sent` looks like after muster's C++ value encoder (the CLI parsing JSON, the C++
    worker echoing): exact, except that it drops the sign of -0.0 (FlatBuffers skips a scalar
    equal to its default 0.0; reported, see tests/unit/vectors_test.cpp). Only that one
    difference is tolerated."""
    expected = dict(sent)
    if struct.pack("<d", got.get("float_neg_zero", -0.0)) == struct.pack("<d", 0.0):
        expected["float_neg_zero"] = 0.0
    return expected


def start_python_worker(daemon, worker_id: str, *args: str):
    log = daemon.runtime_dir.parent / f"pyworker-{worker_id}.log"
    proc = spawn(
        [sys.executable, EXAMPLE, "--prefix", "py.", "--worker-id", worker_id, "--log-level", "debug", *args],
        daemon.env,
        log,
    )
    return proc


def wait_ready(client, worker_id: str, proc=None, timeout: float = 20.0):
    def ready():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"worker {worker_id} exited:\n{read_log(proc)}")
        try:
            return any(w.worker_id == worker_id and w.state == "ready" for w in client.workers())
        except muster.Unavailable:
            return False

    wait_for(ready, timeout, f"worker {worker_id} to be ready")


@pytest.fixture
def client(daemon):
    c = muster.Client(daemon.client_address, connect_timeout=5.0, list_timeout=10.0)
    yield c
    c.close()


@pytest.fixture
def pyworker(daemon, client):
    proc = start_python_worker(daemon, "pyw-1")
    wait_ready(client, "pyw-1", proc)
    yield proc
    stop(proc)


def test_cli_calls_python_worker(daemon, pyworker, run_cli):
    out = run_cli(daemon, "call", "py.hello", '{"name": "Ada"}')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"greeting": "Hello Ada", "shout": "HELLO ADA"}

    out = run_cli(daemon, "call", "py.hello", "{}")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"greeting": "Hello world", "shout": "HELLO WORLD"}

    text = muster.values.dumps(ALL_KINDS)
    out = run_cli(daemon, "call", "py.echo", text)
    assert out.returncode == 0, out.stderr
    got = muster.values.loads(out.stdout)
    assert strict_equal(got, through_cpp_encoder(ALL_KINDS, got))

    out = run_cli(daemon, "call", "py.fail", '{"message": "no luck"}')
    assert out.returncode != 0
    assert "error: WORKER_ERROR: no luck" in out.stderr

    out = run_cli(daemon, "call", "py.sleep", "{}")
    assert out.returncode != 0
    # musterd answers before the worker sees it (PROTOCOL.md §5.1)
    assert "error: INVALID_REQUEST: node 'py.sleep': missing required input \"ms\"" in out.stderr

    out = run_cli(daemon, "call", "py.stats", '{"values": [2, 4, 4, 4, 5, 5, 7, 9]}')
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["count"] == 8 and stats["mean"] == 5.0 and stats["median"] == 4.5
    assert math.isclose(stats["stdev"], 2.138089935299, rel_tol=1e-9)


def test_python_client_calls_python_worker(daemon, pyworker, client):
    assert client.call("py.hello", {"name": "Grace"}, timeout_ms=10000) == {
        "greeting": "Hello Grace",
        "shout": "HELLO GRACE",
    }
    # Values cross musterd exactly (including the sign of -0.0 and NUL bytes).
    back = client.call("py.echo", ALL_KINDS)
    assert strict_equal(back, ALL_KINDS)
    big = {"blob": os.urandom(1 << 20), "list": list(range(10000))}
    assert client.call("py.echo", big) == big

    digest = client.call("py.hash", {"data": b"abc"}, parameters={"algorithm": "sha1"})
    assert digest["hex"] == "a9993e364706816aba3e25717850c26c9cd0d89d"

    with pytest.raises(muster.WorkerError, match="went wrong"):
        client.call("py.fail", {"message": "went wrong"})
    with pytest.raises(muster.InvalidRequest, match='missing required input "ms"'):
        client.call("py.sleep", {})
    with pytest.raises(muster.NoWorker):
        client.call("py.no-such-node", {})

    steps = []
    out = client.call("py.sleep", {"ms": 200}, timeout_ms=20000, progress=lambda s, t, m: steps.append((s, t)))
    assert "slept_ms" in out
    assert steps and steps[-1] == (10, 10)

    names = {n.spec.name for n in client.nodes()}
    assert {"py.echo", "py.hello", "py.sleep", "py.fail", "py.stats", "py.hash"} <= names
    (me,) = [w for w in client.workers() if w.worker_id == "pyw-1"]
    assert me.sdk == muster.SDK and me.capacity == 4 and me.pid == pyworker.pid
    assert client.status().workers >= 1


def test_abort_on_timeout_and_cancel_reach_the_python_worker(daemon, pyworker, client):
    with pytest.raises(muster.Timeout):
        client.call("py.sleep", {"ms": 20000}, timeout_ms=300)
    wait_for(lambda: "aborted after" in read_log(pyworker) and "TIMEOUT" in read_log(pyworker), 10,
             "the Python worker to see the abort")

    started = threading.Event()
    call = client.submit("py.sleep", {"ms": 20000}, timeout_ms=60000, progress=lambda *a: started.set())
    assert started.wait(20), "no progress from py.sleep"
    call.cancel()
    with pytest.raises(muster.Cancelled):
        call.result(20)
    wait_for(lambda: read_log(pyworker).count("aborted after") >= 2, 10, "the Python worker to see the cancel")
    # The worker is still healthy afterwards.
    assert client.call("py.hello", {"name": "again"})["greeting"] == "Hello again"


def test_python_client_calls_cpp_worker(daemon, start_worker, client):
    w = start_worker(daemon, worker_id="cpp-1")
    wait_ready(client, "cpp-1", w.proc)
    assert client.call("hello", {"name": "Ada"}) == {"greeting": "Hello Ada", "shout": "HELLO ADA"}
    assert client.call("hello", {}) == {"greeting": "Hello world", "shout": "HELLO WORLD"}
    back = client.call("echo", ALL_KINDS)
    assert strict_equal(back, through_cpp_encoder(ALL_KINDS, back))

    steps = []
    out = client.call("sleep", {"ms": 100}, progress=lambda s, t, m: steps.append(s))
    assert isinstance(out["slept_ms"], int) and steps and steps[-1] == 10
    with pytest.raises(muster.Timeout):
        client.call("sleep", {"ms": 20000}, timeout_ms=300)
    wait_for(lambda: "aborted after" in w.log, 10, "the C++ worker to see the abort")
    with pytest.raises(muster.WorkerError, match="from python"):
        client.call("fail", {"message": "from python"})


def test_python_worker_reattaches_after_daemon_restart(daemon, pyworker, client):
    first = read_log(pyworker).count("attached to daemon instance")
    client.close()
    daemon.restart()
    with muster.Client(daemon.client_address) as c2:
        wait_ready(c2, "pyw-1", pyworker)
        assert c2.call("py.hello", {"name": "back"})["greeting"] == "Hello back"
    assert read_log(pyworker).count("attached to daemon instance") > first


def test_sigterm_finishes_open_requests_then_exits(daemon, pyworker, client):
    call = client.submit("py.sleep", {"ms": 600}, timeout_ms=30000)
    wait_for(lambda: re.search(r"request \d+: py\.sleep", read_log(pyworker)), 10,
             "the request to reach the worker")
    pyworker.send_signal(signal.SIGTERM)
    assert "slept_ms" in call.result(30)
    assert pyworker.wait(20) == 0
    log = read_log(pyworker)
    assert "detaching worker pyw-1" in log and "stopped" in log
    wait_for(lambda: not any(w.worker_id == "pyw-1" for w in client.workers()), 10,
             "the daemon to forget the worker")


def test_a_result_over_the_daemons_limit_fails_fast(start_daemon, start_worker):
    # Issue 12 item 14: a Result over musterd's --max-message-bytes used to leave the caller
    # waiting its whole deadline while the worker re-sent it. The worker learns the limit from
    # Attached and fails the call at once, naming both sizes. The call itself fits (40 kB of
    # name); the greeting and its shout do not (80 kB); the C++ worker's hello does the same.
    daemon = start_daemon("--max-message-bytes", "65536")
    with muster.Client(daemon.client_address, connect_timeout=5.0, list_timeout=10.0) as c:
        proc = start_python_worker(daemon, "pyw-limit")
        wait_ready(c, "pyw-limit", proc)
        start_worker(daemon, worker_id="cpp-limit").wait_ready()
        for node in ("hello", "py.hello"):
            with pytest.raises(muster.MusterError) as err:
                c.call(node, {"name": "x" * 40000}, timeout_ms=30000)
            assert err.value.code == muster.ErrorCode.WORKER_ERROR, (node, err.value)
            assert re.search(r"result of \d+ bytes exceeds the daemon's limit of 65536 bytes \(--max-message-bytes\)",
                             err.value.message), (node, err.value.message)
            assert c.call(node, {"name": "small"})["greeting"] == "Hello small"


def test_requests_left_when_the_grace_runs_out_are_the_daemons_to_fail(daemon, client):
    # PROTOCOL.md §7.5: a worker whose shutdown grace ran out does not answer what it still
    # runs; musterd applies its worker-death rules: py.sleep is not idempotent, so the caller
    # gets WORKER_LOST (the Python worker used to answer SHUTTING_DOWN itself, a code that
    # tells the caller the daemon was stopping).
    proc = start_python_worker(daemon, "pyw-grace", "--shutdown-grace", "0.3")
    wait_ready(client, "pyw-grace", proc)
    call = client.submit("py.sleep", {"ms": 60000}, timeout_ms=120000)
    wait_for(lambda: re.search(r"request \d+: py\.sleep", read_log(proc)), 10, "the request to reach the worker")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    with pytest.raises(muster.WorkerLost):
        call.result(30)
    assert "left unanswered" in read_log(proc)


def test_asyncio_client_calls_progress_and_cancels_on_task_cancellation(daemon, pyworker):
    import asyncio

    async def main():
        async with muster.AsyncClient(daemon.client_address, connect_timeout=5.0) as c:
            assert await c.call("py.hello", {"name": "Ada"}) == {"greeting": "Hello Ada", "shout": "HELLO ADA"}
            # Many calls at once on one socket, each answered to its own awaiter.
            outs = await asyncio.gather(*(c.call("py.echo", {"i": i}) for i in range(50)))
            assert [o["i"] for o in outs] == list(range(50))
            with pytest.raises(muster.InvalidRequest, match='missing required input "ms"'):  # musterd's check
                await c.call("py.sleep", {})
            with pytest.raises(muster.NoWorker):
                await c.call("py.no-such-node")

            call = c.call_with_progress("py.sleep", {"ms": 200}, timeout_ms=20000)
            steps = [(p.step, p.total) async for p in call]
            assert steps[-1] == (10, 10) and "slept_ms" in await call

            failing = c.call_with_progress("py.fail", {"message": "nope"})
            with pytest.raises(muster.WorkerError, match="nope"):
                async for _ in failing:
                    pass

            # Cancelling the awaiting task cancels the call on the daemon: the worker aborts it.
            task = asyncio.ensure_future(c.call("py.sleep", {"ms": 60000}, timeout_ms=120000))
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.call("py.sleep", {"ms": 60000}, timeout_ms=120000), 0.5)
            names = {n.spec.name for n in await c.nodes()}
            assert "py.sleep" in names
            assert any(w.worker_id == "pyw-1" for w in await c.workers())

    asyncio.run(main())
    wait_for(lambda: read_log(pyworker).count("aborted after") >= 2, 10,
             "the worker to see both cancellations")


def test_node_stats_from_the_sync_and_asyncio_clients(daemon, pyworker, client):
    """Client.node_stats() / AsyncClient.node_stats(): musterd's per-node statistics (GetNodeStats)
    of calls made by any client, and the workspace's recent failures."""
    import asyncio

    for name in ("Ada", "Grace", "Linus"):
        client.call("py.hello", {"name": name})
    with pytest.raises(muster.WorkerError):
        client.call("py.fail", {"message": "counted by musterd"})

    def check(report):
        by_node = {n.node: n for n in report.nodes or []}
        hello, fail = by_node["py.hello"], by_node["py.fail"]
        assert (hello.completed, hello.failed, hello.workers) == (3, 0, 1)
        assert hello.service.count == 3 and 0 < hello.service.p50_us <= hello.service.p99_us
        assert len(hello.service.counts) == len(hello.service.upper_bounds_us) + 1
        assert sum(hello.service.counts) == 3 and hello.queue_wait.count == 3
        assert (fail.completed, fail.failed) == (0, 1)
        assert [(c.code, c.count) for c in fail.failures] == [(muster.ErrorCode.WORKER_ERROR, 1)]
        newest = report.recent_failures[0]
        assert (newest.node, newest.code, newest.message) == ("py.fail", muster.ErrorCode.WORKER_ERROR,
                                                              "counted by musterd")

    check(client.node_stats())

    async def main():
        async with muster.AsyncClient(daemon.client_address, connect_timeout=5.0) as c:
            return await c.node_stats()

    check(asyncio.run(main()))


def test_asyncio_client_fails_unavailable_without_a_daemon(tmp_path):
    import asyncio

    async def main():
        async with muster.AsyncClient(f"ipc://{tmp_path}/none.sock", connect_timeout=0.3) as c:
            with pytest.raises(muster.Unavailable, match="is musterd running"):
                await c.call("x")

    asyncio.run(main())


TYPED_WORKER = '''
from __future__ import annotations
import sys
from typing import Annotated, List, Optional, TypedDict
import muster

worker = muster.Worker(worker_id=sys.argv[1])

class Summary(TypedDict):
    count: int
    mean: float

@worker.node
def add(a: Annotated[int, "the first addend"], b: int = 1, *, scale: int = 1) -> {"sum": int}:
    """Adds two integers, then scales the sum."""
    return {"sum": (a + b) * scale}

@worker.node(name="upper", idempotent=True)
async def upper(text: str, ctx: muster.Context) -> str:
    ctx.progress(1, 1, "upper")
    return text.upper()

@worker.node
def summary(values: List[float], label: Optional[str]) -> Summary:
    return {"count": len(values), "mean": sum(values) / len(values)}

worker.run()
'''


def test_typed_function_nodes(daemon, client, tmp_path):
    script = tmp_path / "typed_worker.py"
    script.write_text(TYPED_WORKER)
    proc = spawn([sys.executable, script, "typed-1"], daemon.env, tmp_path / "typed.log")
    wait_ready(client, "typed-1", proc)
    specs = {n.spec.name: n.spec for n in client.nodes()}
    add = specs["add"]
    assert add.description == "Adds two integers, then scales the sum."
    assert [(p.name, p.type, p.required, p.description) for p in add.inputs] == [
        ("a", "int", True, "the first addend"), ("b", "int", False, "")]
    assert [(p.name, p.type, p.default_value) for p in add.parameters] == [("scale", "int", 1)]
    assert [(p.name, p.type) for p in add.outputs] == [("sum", "int")]
    assert [(p.name, p.type) for p in specs["upper"].outputs] == [("result", "string")]
    assert specs["upper"].idempotent
    assert [(p.name, p.type, p.required) for p in specs["summary"].inputs] == [
        ("values", "list", True), ("label", "string", False)]
    assert [p.name for p in specs["summary"].outputs] == ["count", "mean"]

    assert client.call("add", {"a": 2, "b": 3}, parameters={"scale": 10}) == {"sum": 50}
    assert client.call("add", {"a": 2}) == {"sum": 3}
    with pytest.raises(muster.InvalidRequest, match='missing required input "a"'):  # musterd's check
        client.call("add", {"b": 3})
    with pytest.raises(muster.InvalidRequest, match='input "a": expected int, got string'):
        client.call("add", {"a": "2"})
    steps = []
    assert client.call("upper", {"text": "abc"}, progress=lambda s, t, m: steps.append(m)) == {"result": "ABC"}
    assert steps == ["upper"]
    assert client.call("summary", {"values": [1.0, 2.0, 6.0]}) == {"count": 3, "mean": 3.0}
    stop(proc)
