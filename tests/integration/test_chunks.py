"""Chunked values through a real musterd (PROTOCOL.md §7.9, docs/STREAMS.md §3).

The peers speak the wire by hand with the Python SDK's message codec (muster.messages): a
caller that uploads a chunked input and reads a chunked output, and a worker that echoes its
input stream to an output stream. So these tests check musterd alone: its forwarding, its
credit checks, its memory (VmHWM) while a large value passes, cancel mid-upload. The SDKs'
chunkers are not built yet (STREAMS.md §3 status).

MUSTER_CHUNK_TEST_MIB sets the echoed size (default 256 MiB; tools/bench/stream.sh runs 1 GiB).
Every wait is bounded; everything started here is killed by conftest's autouse fixture.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from chunk_peers import CHUNK, WINDOW, MiB, RawClient, RawWorker, block, vm_hwm_kib
from conftest import read_log, wait_for
from muster import messages as m
from muster.errors import ErrorCode
from muster.values import ChunkedValue

ECHO_MIB = int(os.environ.get("MUSTER_CHUNK_TEST_MIB", "256"))


def echo_worker(w: RawWorker, stop: threading.Event, errors: list) -> None:
    """Echoes the input stream 1 of each call to its output stream 2, holding at most one input
    window: it grants input credit only as it passes bytes on within the caller's output credit."""
    try:
        while not stop.is_set():
            msg = w.next_published(0.1)
            if not isinstance(msg, m.WorkRequest):
                continue
            rid, ref = msg.request_id, msg.inputs["data"]
            out_granted, echoed, pending, sha = msg.chunk_window_bytes, 0, [], hashlib.sha256()
            w.send(m.Credit(rid, ref.stream, 0, WINDOW))
            granted_in = WINDOW
            while echoed < ref.size and not stop.is_set():
                msg = w.next_published(0.1)
                if isinstance(msg, m.Abort):
                    break
                if isinstance(msg, m.Chunk) and msg.request_id == rid:
                    pending.append(msg.data)
                    sha.update(msg.data)
                elif isinstance(msg, m.Credit) and msg.request_id == rid and msg.stream == 2:
                    out_granted = max(out_granted, msg.bytes)
                while pending and echoed + len(pending[0]) <= out_granted:
                    data = pending.pop(0)
                    w.send(m.Chunk(rid, 2, echoed, data))
                    echoed += len(data)
                if echoed + WINDOW - granted_in >= MiB:
                    granted_in = echoed + WINDOW
                    w.send(m.Credit(rid, ref.stream, 0, granted_in))
            else:
                if echoed == ref.size:
                    assert sha.digest() == ref.sha256, "the worker received other bytes than the caller sent"
                    w.send(m.Result(rid, {"data": ChunkedValue(2, ref.size, sha.digest())}))
    except Exception as e:  # reported by the test
        errors.append(e)


@pytest.fixture
def echo(daemon):
    w = RawWorker(daemon, "raw-echo", "echo")
    stop, errors = threading.Event(), []
    t = threading.Thread(target=echo_worker, args=(w, stop, errors), daemon=True)
    t.start()
    yield w, errors
    stop.set()
    t.join(10)
    w.close()


def test_a_large_chunked_value_is_echoed_through_musterd_in_bounded_memory(daemon, echo):
    w, errors = echo
    n = ECHO_MIB
    size = n * CHUNK
    sha = hashlib.sha256()
    for i in range(n):
        sha.update(block(i))
    digest = sha.digest()
    c = RawClient(daemon)
    c.send(1, m.Submit("echo", {"data": ChunkedValue(1, size, digest)}, None, 600_000, chunk_window_bytes=WINDOW))
    sent = granted_in = received = 0
    granted_out = WINDOW
    got = hashlib.sha256()
    result = None
    deadline = time.monotonic() + 600
    while result is None:
        assert time.monotonic() < deadline, "the echo did not finish in 600 s"
        while sent < size and sent + CHUNK <= granted_in:
            c.send(1, m.Chunk(1, 1, sent, block(sent // CHUNK)))
            sent += CHUNK
        r = c.next_reply(10)
        assert r is not None, f"no reply for 10 s (sent {sent}, received {received}); worker: {errors}"
        if isinstance(r, m.Credit):
            assert r.stream == 1
            granted_in = max(granted_in, r.bytes)
        elif isinstance(r, m.Chunk):
            assert (r.stream, r.offset) == (2, received)
            got.update(r.data)
            received += len(r.data)
            if received + WINDOW - granted_out >= MiB:
                granted_out = received + WINDOW
                c.send(1, m.Credit(1, 2, 0, granted_out))
        else:
            result = r
    assert not errors, errors
    assert isinstance(result, m.Result), result
    assert result.outputs == {"data": ChunkedValue(2, size, digest)}
    assert received == size and got.digest() == digest, "the caller got other bytes than it sent"
    hwm = vm_hwm_kib(daemon.proc.pid)
    print(f"echoed {n} MiB through musterd; musterd VmHWM {hwm} KiB")
    assert hwm < 64 * 1024, f"musterd's peak RSS was {hwm} KiB echoing {n} MiB (bound: 64 MiB)"
    c.close()


def test_a_chunk_beyond_the_workers_credit_fails_the_call_bad_message(daemon):
    w = RawWorker(daemon, "raw-holder", "echo")
    c = RawClient(daemon)
    c.send(5, m.Submit("echo", {"data": ChunkedValue(1, 2 * MiB, bytes(32))}, None, 30_000))
    work = w.next_published(10)
    assert isinstance(work, m.WorkRequest)
    c.send(5, m.Chunk(5, 1, 0, b"x" * 1024))  # the worker granted nothing yet
    r = c.next_reply(10)
    assert isinstance(r, m.Failure), r
    assert r.code == ErrorCode.BAD_MESSAGE
    assert r.message == "chunk of stream 1 at offset 0 (1024 bytes) beyond the credit of 0 bytes"
    abort = w.next_published(10)
    assert isinstance(abort, m.Abort) and abort.request_id == work.request_id
    assert abort.code == ErrorCode.BAD_MESSAGE
    assert c.next_reply(0.5) is None  # exactly one terminal reply
    w.close()
    c.close()


def test_a_worker_chunk_beyond_the_callers_window_fails_the_call_worker_error(daemon):
    w = RawWorker(daemon, "raw-flooder", "echo")
    c = RawClient(daemon)
    c.send(6, m.Submit("echo", {"data": b"small"}, None, 30_000, chunk_window_bytes=MiB))
    work = w.next_published(10)
    assert work.chunk_window_bytes == MiB
    w.send(m.Chunk(work.request_id, 2, 0, b"y" * MiB))
    w.send(m.Chunk(work.request_id, 2, MiB, b"y"))  # one byte beyond
    r = c.next_reply(10)
    assert isinstance(r, m.Chunk) and len(r.data) == MiB
    r = c.next_reply(10)
    assert isinstance(r, m.Failure) and r.code == ErrorCode.WORKER_ERROR, r
    assert "broke the chunk protocol" in r.message and "beyond the credit of 1048576 bytes" in r.message
    replies = []
    wait_for(lambda: replies.extend(w.drain_replies()) or any(isinstance(x, m.Rejected) for x in replies), 10,
             "Rejected to the worker")
    assert c.next_reply(0.5) is None
    w.close()
    c.close()


def test_cancel_mid_upload_ends_the_call_once_and_stops_the_chunks_at_musterd(daemon):
    w = RawWorker(daemon, "raw-reader", "echo")
    c = RawClient(daemon)
    c.send(7, m.Submit("echo", {"data": ChunkedValue(1, 64 * MiB, bytes(32))}, None, 30_000))
    work = w.next_published(10)
    w.send(m.Credit(work.request_id, 1, 0, 2 * MiB))
    credit = c.next_reply(10)
    assert isinstance(credit, m.Credit) and (credit.stream, credit.bytes) == (1, 2 * MiB)
    c.send(7, m.Chunk(7, 1, 0, b"a" * MiB))
    first = w.next_published(10)
    assert isinstance(first, m.Chunk) and first.offset == 0 and first.request_id == work.request_id
    c.send(7, m.Cancel())
    c.send(7, m.Chunk(7, 1, MiB, b"b" * MiB))  # after the cancel: not forwarded
    r = c.next_reply(10)
    assert isinstance(r, m.Failure) and r.code == ErrorCode.CANCELLED, r
    abort = w.next_published(10)
    assert isinstance(abort, m.Abort) and abort.code == ErrorCode.CANCELLED
    assert w.next_published(1) is None, "a chunk reached the worker after the cancel"
    assert c.next_reply(0.5) is None
    assert "caller broke" not in read_log(daemon.proc)
    w.close()
    c.close()
