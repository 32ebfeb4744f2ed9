"""Items across the SDKs (docs/STREAMS.md §2, PROTOCOL.md §7.8): one real musterd, the example
workers' `count` node (Python generator, TypeScript async generator, C++ ctx.emit) called by the
Python client (sync and asyncio) and the TypeScript client (tests/integration/stream_caller.js),
each language as worker and as caller:

- 100,000 small items arrive in order, then the outputs;
- a slow consumer: the worker never runs ahead of the caller by more than its window (counted
  at the caller: items received but not taken);
- cancel mid-stream: the caller gets CANCELLED and the worker's generator is stopped (a worker
  of capacity 1 serves the next call);
- the worker SIGKILLed mid-stream: the caller gets WORKER_LOST after the items it had (the C++
  worker declares `count` idempotent here: a re-run would repeat items, so musterd never does).

Items/s figures are a benchmark, not a test: `MUSTER_BUILD_DIR=$PWD/build .venv/bin/python
tests/integration/test_stream_sdk.py --bench` prints them for each pair (BENCH_ITEMS=n items,
default 100,000)."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BUILD, REPO, muster_cli, popen, spawn, wait_for

PY_WORKER = REPO / "worker" / "examples" / "python" / "example_worker.py"
TS_WORKER = REPO / "worker" / "examples" / "typescript" / "example-worker.js"
TS_CALLER = Path(__file__).resolve().parent / "stream_caller.js"
CPP_WORKER = BUILD / "worker" / "muster-example-worker"
NODE = {"py": "py.count", "ts": "ts.count", "cpp": "count"}


@pytest.fixture
def daemon(start_daemon):
    """musterd pinging every second (3 s liveness, not conftest's 0.6 s): a worker streaming
    100,000 items on a loaded machine must not be declared dead for answering a ping late."""
    return start_daemon(ping_ms=1000)


def typescript_ready() -> bool:
    return shutil.which("node") is not None and (REPO / "worker" / "typescript" / "dist").exists()


def cpp_streams() -> bool:
    """The C++ example worker has the `count` node (the C++ SDK's items)."""
    if not CPP_WORKER.exists():
        return False
    try:
        out = subprocess.run([str(CPP_WORKER), "--help"], capture_output=True, text=True, timeout=10)
    except OSError:
        return False
    return "count" in out.stdout + out.stderr


def start_worker(daemon, lang: str, capacity: int = 4, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """Starts the `lang` example worker against `daemon` (with `env` instead of the daemon's, if
    given); returns once musterd lists it ready."""
    if lang == "ts" and not typescript_ready():
        pytest.skip("the TypeScript SDK is not built (tools/test builds it)")
    if lang == "cpp" and not cpp_streams():
        pytest.skip("the C++ example worker has no count node")
    wid = f"{lang}-{os.getpid()}-{time.monotonic_ns() % 100000}"
    common = ["--worker-id", wid, "--capacity", str(capacity), "--log-level", "debug", *extra]
    if lang == "py":
        args = [sys.executable, PY_WORKER, "--prefix", "py.", *common]
    elif lang == "ts":
        args = ["node", TS_WORKER, "--prefix", "ts.", *common]
    else:
        args = [CPP_WORKER, *common]
    proc = spawn(args, env or daemon.env, daemon.runtime_dir.parent / f"worker-{wid}.log")

    def ready():
        out = muster_cli(daemon, "workers", "--json")
        return out.returncode == 0 and any(w["worker_id"] == wid and w["state"] == "ready" for w in json.loads(out.stdout))

    wait_for(ready, 20, f"the {lang} worker {wid}")
    proc.worker_id = wid  # type: ignore[attr-defined]
    return proc


# ---- the callers: each returns {"items", "in_order", "max_ahead", "outputs", "error", "seconds"} --


# A deadline long enough for 100,000 items from the slowest pair on a loaded machine (Python's
# flatbuffers encode and decode each item in pure Python: a few thousand items/s).
TIMEOUT_MS = 600_000


def py_stream(daemon, node: str, inputs: dict, window_items: int = 64, delay: float = 0.0,
              cancel_after: int | None = None, on_item=None) -> dict:
    import muster

    items, in_order, max_ahead, outputs, error = 0, True, 0, None, None
    started = time.monotonic()
    with muster.Client(f"ipc://{daemon.runtime_dir}/client.sock") as client:
        try:
            with client.stream(node, inputs, timeout_ms=TIMEOUT_MS, window_items=window_items) as s:
                for item in s:
                    # received but not taken yet (this one is taken): at most the window
                    max_ahead = max(max_ahead, s.items_received - (items + 1))
                    in_order = in_order and item.get("i") == items
                    items += 1
                    if on_item is not None:
                        on_item(items)
                    if cancel_after is not None and items >= cancel_after:
                        break
                    if delay:
                        time.sleep(delay)
            outputs = s.result(60)
        except muster.MusterError as e:
            error = {"code": e.code.name, "message": e.message}
    return {"items": items, "in_order": in_order, "max_ahead": max_ahead, "outputs": outputs, "error": error,
            "seconds": time.monotonic() - started}


def py_async_stream(daemon, node: str, inputs: dict, window_items: int = 64) -> dict:
    import muster

    async def run() -> dict:
        items, in_order, started = 0, True, time.monotonic()
        async with muster.AsyncClient(f"ipc://{daemon.runtime_dir}/client.sock") as client:
            s = client.stream(node, inputs, TIMEOUT_MS, window_items=window_items)
            try:
                async for item in s:
                    in_order = in_order and item.get("i") == items
                    items += 1
                outputs, error = await s, None
            except muster.MusterError as e:
                outputs, error = None, {"code": e.code.name, "message": e.message}
        return {"items": items, "in_order": in_order, "outputs": outputs, "error": error, "seconds": time.monotonic() - started}

    return asyncio.run(run())


def ts_stream_process(daemon, node: str, inputs: dict, *flags: str) -> subprocess.Popen:
    if not typescript_ready():
        pytest.skip("the TypeScript SDK is not built (tools/test builds it)")
    return popen(["node", str(TS_CALLER), node, json.dumps(inputs), *flags], env=daemon.env,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ts_stream(daemon, node: str, inputs: dict, *flags: str, timeout: float = TIMEOUT_MS / 1000) -> dict:
    proc = ts_stream_process(daemon, node, inputs, *flags)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def stream_with(caller: str, daemon, node: str, inputs: dict, window_items: int = 64, delay: float = 0.0,
                cancel_after: int | None = None) -> dict:
    if caller == "py":
        return py_stream(daemon, node, inputs, window_items, delay, cancel_after)
    flags = ["--window-items", str(window_items), "--delay-ms", str(int(delay * 1000)), "--timeout-ms", str(TIMEOUT_MS)]
    if cancel_after is not None:
        flags += ["--cancel-after", str(cancel_after)]
    return ts_stream(daemon, node, inputs, *flags)


# Worker language -> caller language: each language as worker and as caller (the same-language
# pairs are the SDKs' own tests' business; --bench measures them too).
PAIRS = [("py", "ts"), ("ts", "py"), ("cpp", "py"), ("cpp", "ts")]
PAIR_IDS = [f"{w}-worker-{c}-caller" for w, c in PAIRS]


@pytest.mark.parametrize("worker,caller", PAIRS, ids=PAIR_IDS)
def test_100k_small_items_in_order(daemon, worker, caller):
    start_worker(daemon, worker)
    n = 100_000
    got = stream_with(caller, daemon, NODE[worker], {"n": n})
    assert got["error"] is None, got
    assert got["items"] == n and got["in_order"], got
    assert got["outputs"] == {"count": n}
    assert got["max_ahead"] <= 64, got


def test_asyncio_caller(daemon):
    start_worker(daemon, "py")
    got = py_async_stream(daemon, NODE["py"], {"n": 5000}, window_items=16)
    assert got["error"] is None and got["items"] == 5000 and got["in_order"], got
    assert got["outputs"] == {"count": 5000}


@pytest.mark.parametrize("worker,caller", PAIRS, ids=PAIR_IDS)
def test_slow_consumer_holds_the_worker_to_its_window(daemon, worker, caller):
    start_worker(daemon, worker)
    window = 8
    got = stream_with(caller, daemon, NODE[worker], {"n": 60}, window_items=window, delay=0.02)
    assert got["error"] is None and got["items"] == 60 and got["in_order"], got
    # While the consumer slept, the worker could have sent everything: it sent at most a window
    # more than was taken.
    assert got["max_ahead"] <= window, got


@pytest.mark.parametrize("worker,caller", PAIRS, ids=PAIR_IDS)
def test_cancel_mid_stream_stops_the_worker(daemon, worker, caller):
    start_worker(daemon, worker, capacity=1)
    got = stream_with(caller, daemon, NODE[worker], {"n": 10**12}, window_items=4, cancel_after=10)
    assert got["items"] == 10 and got["in_order"], got
    assert got["error"] is not None and got["error"]["code"] == "CANCELLED", got
    # The generator was stopped: the worker (capacity 1) is free for the next call.
    again = stream_with(caller, daemon, NODE[worker], {"n": 3})
    assert again["error"] is None and again["items"] == 3 and again["outputs"] == {"count": 3}, again


@pytest.mark.parametrize("worker,caller", PAIRS, ids=PAIR_IDS)
def test_worker_killed_mid_stream_is_worker_lost(daemon, worker, caller):
    proc = start_worker(daemon, worker, 4, *(["--idempotent"] if worker == "cpp" else []))
    if caller == "py":
        killed = []

        def kill_at_5(taken: int) -> None:
            if taken == 5 and not killed:
                os.killpg(proc.pid, signal.SIGKILL)
                killed.append(True)

        import muster  # noqa: F401  (py_stream imports it too)

        got = py_stream(daemon, NODE[worker], {"n": 10**12}, window_items=4, delay=0.01, on_item=kill_at_5)
    else:
        caller_proc = ts_stream_process(daemon, NODE[worker], {"n": 10**12}, "--window-items", "4", "--delay-ms", "10",
                                        "--notify-at", "5", "--timeout-ms", str(TIMEOUT_MS))
        assert caller_proc.stdout is not None
        assert json.loads(caller_proc.stdout.readline()) == {"got": 5}
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = caller_proc.communicate(timeout=60)
        assert caller_proc.returncode == 0, err
        got = json.loads(out.strip().splitlines()[-1])
    assert got["items"] >= 5 and got["in_order"], got
    assert got["error"] is not None and got["error"]["code"] == "WORKER_LOST", got


# ---- figures (not a test): python tests/integration/test_stream_sdk.py --bench ----------------


def bench() -> None:  # pragma: no cover - run by hand
    import tempfile

    from conftest import make_daemon, _PROCS

    n = int(os.environ.get("BENCH_ITEMS", "100000"))
    with tempfile.TemporaryDirectory(prefix="mst-") as base:
        daemon = make_daemon(Path(base) / "d", ping_ms=1000)
        try:
            for worker in ("py", "ts", "cpp"):
                try:
                    proc = start_worker(daemon, worker)
                except BaseException as e:  # pytest.skip outside pytest
                    print(f"{worker} worker: skipped ({e})")
                    continue
                for caller in ("py", "ts"):
                    got = stream_with(caller, daemon, NODE[worker], {"n": n})
                    rate = got["items"] / got["seconds"] if got["seconds"] else 0
                    print(f"{worker} worker -> {caller} caller: {got['items']} items in {got['seconds']:.2f} s = {rate:,.0f} items/s"
                          f" (error: {got['error']})")
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
        finally:
            daemon.stop()
            for p in _PROCS:
                if p.poll() is None:
                    p.kill()


if __name__ == "__main__" and "--bench" in sys.argv:
    bench()
