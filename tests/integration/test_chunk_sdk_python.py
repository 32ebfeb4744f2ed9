"""Chunked values through a real musterd with the Python SDK on both sides (PROTOCOL.md §7.9,
docs/STREAMS.md §3): the sync and asyncio clients as callers, the Python worker (the example
worker in its own process, or a Worker in this one) as worker, and the raw peers of
chunk_peers.py where a test must break the protocol on purpose (a wrong sha256).

MUSTER_CHUNK_SDK_MIB sets the size of the large echoes (default 40 MiB: over the 16 MiB
message limit); the echo prints its throughput. Every wait is bounded; everything started
here is stopped by conftest's autouse fixture or the fixtures below.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import muster
from chunk_peers import CHUNK, MiB, RawClient, RawWorker, vm_hwm_kib
from conftest import REPO, read_log, spawn, wait_for
from muster import messages as m
from muster.errors import ErrorCode
from muster.values import ChunkedValue

EXAMPLE = REPO / "worker" / "examples" / "python" / "example_worker.py"
SIZE = int(os.environ.get("MUSTER_CHUNK_SDK_MIB", "40")) * MiB
RSS_BOUND_KIB = 64 * 1024


def addresses(daemon) -> dict:
    return {"request_address": f"ipc://{daemon.runtime_dir}/request.sock",
            "response_address": f"ipc://{daemon.runtime_dir}/response.sock"}


def wait_ready(client, worker_id: str, proc=None, timeout: float = 20.0):
    def ready():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"worker {worker_id} exited:\n{read_log(proc)}")
        return any(w.worker_id == worker_id and w.state == "ready" for w in client.workers())
    wait_for(ready, timeout, f"worker {worker_id} to be ready")


class RssSampler:
    """Samples musterd's VmRSS every 20 ms while a block runs; ``peak_kib`` is the largest."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._sample()

    def __enter__(self) -> "RssSampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()


def check_musterd_memory(daemon, rss: RssSampler) -> None:
    hwm = vm_hwm_kib(daemon.proc.pid)
    print(f"musterd VmRSS peak (sampled) {rss.peak_kib} KiB, VmHWM {hwm} KiB")
    assert rss.peak_kib < RSS_BOUND_KIB, f"musterd's RSS reached {rss.peak_kib} KiB (bound 64 MiB)"
    assert hwm < RSS_BOUND_KIB, f"musterd's peak RSS was {hwm} KiB (bound 64 MiB)"


@pytest.fixture
def client(daemon):
    c = muster.Client(daemon.client_address, connect_timeout=5.0, list_timeout=10.0)
    yield c
    c.close()


@pytest.fixture
def py_worker(daemon, client):
    """The Python example worker (echo, sha256, ...) in its own process."""
    wid = f"pychunks-{os.getpid()}"
    proc = spawn([sys.executable, EXAMPLE, "--worker-id", wid, "--log-level", "info"], daemon.env,
                 daemon.runtime_dir.parent / f"pyworker-{wid}.log")
    wait_ready(client, wid, proc)
    yield proc


@pytest.fixture
def inproc_worker(daemon, client):
    """A Worker in this process (nodes added by the test before ``start``)."""
    w = muster.Worker(f"inproc-{os.getpid()}", capacity=4, **addresses(daemon))
    yield w
    w.stop(timeout=10)


def test_sync_client_and_python_worker_echo_a_large_value_both_ways_in_bounded_memory(daemon, py_worker, client):
    data = os.urandom(SIZE)
    with RssSampler(daemon.proc.pid) as rss:
        start = time.monotonic()
        out = client.call("echo", {"data": data}, timeout_ms=300_000)
        took = time.monotonic() - start
    assert isinstance(out["data"], bytes)
    assert hashlib.sha256(out["data"]).digest() == hashlib.sha256(data).digest()
    print(f"echoed {SIZE // MiB} MiB Python -> musterd -> Python -> musterd -> Python in {took:.2f} s: "
          f"{SIZE / MiB / took:.1f} MiB/s each way")
    check_musterd_memory(daemon, rss)


def test_async_client_echoes_and_the_sha256_node_reads_its_input_as_a_stream(daemon, py_worker, tmp_path):
    data = os.urandom(SIZE + 12345)  # not a whole number of chunks: the last grant reaches the size
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / "input.bin"
    path.write_bytes(data)

    async def main():
        async with muster.AsyncClient(daemon.client_address) as c:
            echoed = await c.call("echo", {"data": data}, timeout_ms=300_000)
            with open(path, "rb") as f:  # a binary file object: hashed first, then sent as chunks
                hashed = await c.call("sha256", {"data": f}, timeout_ms=300_000)
            small = await c.call("sha256", {"data": b"abc"}, timeout_ms=30_000)  # inline, read the same way
            return echoed, hashed, small

    with RssSampler(daemon.proc.pid) as rss:
        echoed, hashed, small = asyncio.run(asyncio.wait_for(main(), 300))
    assert hashlib.sha256(echoed["data"]).hexdigest() == digest
    assert hashed == {"hex": digest}
    assert small == {"hex": hashlib.sha256(b"abc").hexdigest()}
    check_musterd_memory(daemon, rss)


CALLER = textwrap.dedent("""
    import json, os, sys, pathlib
    import muster

    def rss(field):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))

    address, src, out_dir = sys.argv[1:4]
    with muster.Client(address) as c:
        c.nodes()
        before = rss("VmRSS")
        out = c.call("echo", {"data": pathlib.Path(src)}, timeout_ms=300_000, output_dir=out_dir)
        print(json.dumps({"before": before, "hwm": rss("VmHWM"), "path": str(out["data"])}))
""")


def test_a_caller_streams_a_file_input_and_an_output_to_a_file_without_holding_them(daemon, py_worker, tmp_path):
    src = tmp_path / "src.bin"
    sha = hashlib.sha256()
    with open(src, "wb") as f:
        for i in range(SIZE // CHUNK):
            block = hashlib.sha256(i.to_bytes(8, "little")).digest() * (CHUNK // 32)
            sha.update(block)
            f.write(block)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = subprocess.run([sys.executable, "-c", CALLER, daemon.client_address, str(src), str(out_dir)],
                       env=daemon.env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["path"] == str(out_dir / "data")
    assert sorted(p.name for p in out_dir.iterdir()) == ["data"]  # the part file was renamed
    with open(out_dir / "data", "rb") as f:
        assert hashlib.file_digest(f, "sha256").digest() == sha.digest()
    grew = got["hwm"] - got["before"]
    print(f"the caller's peak RSS grew by {grew} KiB for a {SIZE // MiB} MiB file sent and received")
    assert grew < SIZE // 1024 // 2, f"the caller held the value: its RSS grew by {grew} KiB"


def test_handlers_waiting_for_input_chunks_or_output_credit_do_not_block_the_workers_other_calls(daemon, client, inproc_worker):
    w = inproc_worker
    first_read = threading.Event()
    big = os.urandom(12 * MiB)

    @w.node(name="ahash", inputs={"data": "bytes"}, outputs={"hex": "string"}, stream_inputs=["data"])
    async def ahash(ctx):
        s = ctx.input_stream("data")
        h = hashlib.sha256(await s.aread(CHUNK))
        first_read.set()
        async for block in s:  # waits for the caller's chunks without blocking the event loop
            h.update(block)
        return {"hex": h.hexdigest()}

    @w.node(name="big", outputs={"data": "bytes"})
    def big_output(ctx):
        return {"data": big}

    @w.node(name="ahello")
    async def ahello(ctx):
        return {"ok": True}

    @w.node(name="hello")
    def hello(ctx):
        return {"ok": True}

    w.start()
    wait_ready(client, w.worker_id)

    # An async handler waiting for input chunks the caller withholds.
    size = 9 * MiB
    payload = os.urandom(size)
    raw = RawClient(daemon)
    raw.send(1, m.Submit("ahash", {"data": ChunkedValue(1, size, hashlib.sha256(payload).digest())}, None, 60_000))
    credit = raw.next_reply(10)
    assert isinstance(credit, m.Credit) and credit.stream == 1 and credit.bytes == 4 * MiB, credit
    raw.send(1, m.Chunk(1, 1, 0, payload[:CHUNK]))
    assert first_read.wait(10)
    assert client.call("ahello", timeout_ms=10_000) == {"ok": True}
    assert client.call("hello", timeout_ms=10_000) == {"ok": True}
    sent, granted = CHUNK, credit.bytes
    result = None
    while result is None:
        while sent < size and sent + CHUNK <= granted:
            raw.send(1, m.Chunk(1, 1, sent, payload[sent:sent + CHUNK]))
            sent += CHUNK
        r = raw.next_reply(10)
        assert r is not None, f"no reply (sent {sent} of {size})"
        if isinstance(r, m.Credit):
            granted = max(granted, r.bytes)
        else:
            result = r
    assert isinstance(result, m.Result) and result.outputs == {"hex": hashlib.sha256(payload).hexdigest()}, result
    raw.close()

    # A sync handler waiting for output credit the caller does not grant (its sink is stuck).
    got, first_write, release = bytearray(), threading.Event(), threading.Event()

    def stuck_sink(data):
        got.extend(data)
        first_write.set()
        assert release.wait(30)

    with muster.Client(daemon.client_address) as other:
        call = other.submit("big", timeout_ms=60_000, output_sink=stuck_sink)
        assert first_write.wait(10)
        assert client.call("hello", timeout_ms=10_000) == {"ok": True}
        assert client.call("ahello", timeout_ms=10_000) == {"ok": True}
        release.set()
        out = call.result(60)
    assert out == {"data": ChunkedValue(2, len(big), hashlib.sha256(big).digest())}
    assert bytes(got) == big


def test_outputs_returned_as_streams_from_sync_and_async_handlers(daemon, client, inproc_worker, tmp_path):
    w = inproc_worker
    big = os.urandom(10 * MiB + 3)
    path = tmp_path / "out.bin"
    path.write_bytes(big)

    @w.node(name="frompath", outputs={"data": "bytes"})
    def from_path(ctx):
        return {"data": path}  # a path: read and sent in chunks

    @w.node(name="fromfile", outputs={"data": "bytes"})
    async def from_file(ctx):  # an async handler: its chunks leave from a thread of their own
        return {"data": open(path, "rb")}

    @w.node(name="fromiter", inputs={"n": "int"}, outputs={"data": "bytes"})
    def from_iter(ctx):
        return {"data": (bytes([i % 256]) * 1000 for i in range(ctx.inputs["n"]))}

    @w.node(name="abig", outputs={"data": "bytes"})
    async def abig(ctx):
        return {"data": big}

    @w.node(name="huge", outputs={"data": "bytes"})
    def huge(ctx):
        return {"data": bytes(20 * MiB)}

    w.start()
    wait_ready(client, w.worker_id)
    for node in ("frompath", "fromfile", "abig"):
        assert client.call(node, timeout_ms=60_000) == {"data": big}, node
    # a stream that ends within the threshold travels inline: the sink is not used
    pieces = []
    assert client.call("fromiter", {"n": 3}, timeout_ms=30_000, output_sink=pieces.append) == \
        {"data": b"\0" * 1000 + b"\1" * 1000 + b"\2" * 1000}
    assert pieces == []
    out = client.call("fromiter", {"n": 9000}, timeout_ms=60_000)  # 9 MB: over the threshold, chunked
    assert out["data"] == b"".join(bytes([i % 256]) * 1000 for i in range(9000))
    # a durable call takes no chunks: its outputs go inline, and one over the message limit fails
    with pytest.raises(muster.WorkerError) as e:
        client.call("huge", timeout_ms=30_000, durable=True)
    assert "exceeds the daemon's limit" in e.value.message and "takes no chunked outputs" in e.value.message
    assert client.call("huge", timeout_ms=60_000) == {"data": bytes(20 * MiB)}


def raw_caller_upload(daemon, node: str, size: int, wrong: bool):
    """A raw caller sends `size` bytes as stream 1 of a call to `node`, its reference carrying a
    wrong sha256 if `wrong`; returns the terminal reply."""
    payload = os.urandom(size)
    digest = bytes(32) if wrong else hashlib.sha256(payload).digest()
    raw = RawClient(daemon)
    raw.send(3, m.Submit(node, {"data": ChunkedValue(1, size, digest)}, None, 60_000))
    sent, granted = 0, 0
    try:
        while True:
            while sent < size and sent + CHUNK <= granted:
                raw.send(3, m.Chunk(3, 1, sent, payload[sent:sent + CHUNK]))
                sent += CHUNK
            r = raw.next_reply(10)
            assert r is not None, f"no reply (sent {sent} of {size})"
            if isinstance(r, m.Credit):
                granted = max(granted, r.bytes)
            else:
                assert raw.next_reply(0.5) is None  # exactly one terminal reply
                return r
    finally:
        raw.close()


@pytest.mark.parametrize("node", ["echo", "sha256"])  # assembled before the handler / read as a stream
def test_a_raw_caller_with_a_wrong_sha256_fails_the_python_worker_invalid_request(daemon, py_worker, node):
    r = raw_caller_upload(daemon, node, 9 * MiB, wrong=True)
    assert isinstance(r, m.Failure), r
    assert (r.code, r.message) == (ErrorCode.INVALID_REQUEST, "input data: chunked stream 1: sha256 mismatch")


def raw_output_worker(w: RawWorker, size: int, wrong: bool, stop: threading.Event) -> None:
    """Answers each call with `size` bytes on stream 2 (its Result's reference carrying a wrong
    sha256 if `wrong`), within the caller's credit."""
    while not stop.is_set():
        work = w.next_published(0.1)
        if not isinstance(work, m.WorkRequest):
            continue
        rid, granted, sent = work.request_id, work.chunk_window_bytes, 0
        payload = os.urandom(size)
        while sent < size and not stop.is_set():
            if sent + CHUNK <= granted:
                w.send(m.Chunk(rid, 2, sent, payload[sent:sent + CHUNK]))
                sent += CHUNK
                continue
            msg = w.next_published(0.1)
            if isinstance(msg, m.Credit) and msg.request_id == rid and msg.stream == 2:
                granted = max(granted, msg.bytes)
            elif isinstance(msg, m.Abort):
                break
        else:
            digest = bytes(32) if wrong else hashlib.sha256(payload).digest()
            w.send(m.Result(rid, {"data": ChunkedValue(2, size, digest)}))


@pytest.fixture
def wrong_worker(daemon):
    w = RawWorker(daemon, "raw-wrong-sha", "wrongsha")
    stop = threading.Event()
    t = threading.Thread(target=raw_output_worker, args=(w, 6 * MiB, True, stop), daemon=True)
    t.start()
    yield w
    stop.set()
    t.join(10)
    w.close()


def test_a_raw_worker_with_a_wrong_sha256_fails_the_python_callers_worker_error(daemon, client, wrong_worker, tmp_path):
    payload = {"data": b"x"}
    with pytest.raises(muster.WorkerError) as e:
        client.call("wrongsha", payload, timeout_ms=30_000)
    assert e.value.message == "output data: chunked stream 2: sha256 mismatch"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(muster.WorkerError) as e:
        client.call("wrongsha", payload, timeout_ms=30_000, output_dir=out_dir)
    assert e.value.message == "output data: chunked stream 2: sha256 mismatch"
    assert list(out_dir.iterdir()) == []  # the part file is gone with the failed call

    async def main():
        async with muster.AsyncClient(daemon.client_address) as c:
            await c.call("wrongsha", payload, timeout_ms=30_000)

    with pytest.raises(muster.WorkerError) as e:
        asyncio.run(asyncio.wait_for(main(), 60))
    assert e.value.message == "output data: chunked stream 2: sha256 mismatch"


def test_cancel_mid_stream_stops_both_directions(daemon, client, inproc_worker):
    w = inproc_worker
    reading, seen = threading.Event(), []

    @w.node(name="slowread", inputs={"data": "bytes"}, stream_inputs=["data"])
    def slowread(ctx):
        s = ctx.input_stream("data")
        s.read(CHUNK)
        reading.set()
        ctx.wait_aborted(30)
        try:
            s.read(CHUNK)
        except muster.MusterError as e:
            seen.append(e.code)
        return {}

    big = os.urandom(24 * MiB)

    @w.node(name="big", outputs={"data": "bytes"})
    def big_output(ctx):
        return {"data": big}

    w.start()
    wait_ready(client, w.worker_id)

    # Upload: cancelled once the handler read its first chunk; the handler's next read raises.
    call = client.submit("slowread", {"data": os.urandom(SIZE)}, timeout_ms=60_000)
    assert reading.wait(10)
    call.cancel()
    with pytest.raises(muster.Cancelled):
        call.result(30)
    wait_for(lambda: seen == [ErrorCode.CANCELLED], 10, "the handler's read to raise CANCELLED")
    wait_for(lambda: w.in_flight == [], 10, "the worker to drop the call")

    # Download: cancelled from the sink after the first chunk; the worker stops sending.
    calls, pieces = [], []

    def sink(data):
        pieces.append(len(data))
        if len(pieces) == 1:
            calls[0].cancel()

    calls.append(client.submit("big", timeout_ms=60_000, output_sink=sink))
    with pytest.raises(muster.Cancelled):
        calls[0].result(30)
    wait_for(lambda: w.in_flight == [], 10, "the worker to stop sending")
    assert sum(pieces) < len(big)


def test_a_worker_killed_mid_stream_ends_the_call_worker_lost_once(daemon, py_worker, client):
    data = os.urandom(SIZE)
    first, release = threading.Event(), threading.Event()

    def stuck_sink(piece):
        first.set()
        release.wait(30)

    call = client.submit("echo", {"data": data}, timeout_ms=120_000, output_sink=stuck_sink)
    assert first.wait(60), "no output chunk arrived"
    # The worker waits for credit the stuck sink does not grant: kill it mid-stream.
    os.killpg(py_worker.pid, signal.SIGKILL)
    py_worker.wait(10)
    release.set()
    with pytest.raises(muster.WorkerLost):
        call.result(60)
    stats = {s.node: s for s in client.node_stats().nodes}["echo"]
    failures = {c.code: c.count for c in stats.failures or []}
    assert (stats.completed, stats.failed, failures) == (0, 1, {ErrorCode.WORKER_LOST: 1}), stats


def test_a_durable_call_never_chunks(daemon, client):
    with pytest.raises(muster.InvalidRequest) as e:
        client.call("echo", {"data": bytes(9 * MiB)}, durable=True)
    assert e.value.message.startswith("a durable call carries its values inline")
