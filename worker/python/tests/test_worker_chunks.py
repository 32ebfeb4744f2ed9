"""The worker's chunked values against a fake daemon (PROTOCOL.md §7.9): the first grant and
credit as inputs are consumed, inputs assembled before an ordinary handler or read as a
stream, outputs chunked under the caller's credit (strict send rule) before the Result."""

from __future__ import annotations

import hashlib
import threading

import pytest

from muster import messages as m
from muster.errors import ErrorCode
from muster.values import ChunkedValue

from conftest import WAIT, worker_topic
from test_worker_protocol import attach_and_confirm, make_worker, request

MiB = 1 << 20
DATA = bytes(range(256)) * (10 * 1024) + b"tail"  # 2.5 MiB + 4 bytes: not a whole number of chunks


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def chunks_of(data: bytes, rid: int, stream: int):
    return [m.Chunk(rid, stream, off, data[off:off + MiB]) for off in range(0, len(data), MiB)]


@pytest.fixture
def chunk_worker(fake_daemon):
    w = make_worker(fake_daemon, worker_id="cw1", chunk_threshold=1000)
    gate = threading.Semaphore(0)
    w.reads = []  # type: ignore[attr-defined]

    @w.node(name="digest", inputs={"data": "bytes"}, stream_inputs=["data"])
    def digest(ctx):
        s = ctx.input_stream("data")
        h = hashlib.sha256()
        while True:
            assert gate.acquire(timeout=WAIT)  # the test lets it read one block at a time
            block = s.read(MiB)
            w.reads.append(len(block))  # type: ignore[attr-defined]
            if not block:
                return {"hex": h.hexdigest(), "size": s.size}
            h.update(block)

    @w.node(name="pieces", inputs={"mib": "int"})
    def pieces(ctx):
        return {"data": (bytes(MiB) for _ in range(ctx.inputs["mib"]))}

    w.gate = gate  # type: ignore[attr-defined]
    w.start()
    attach_and_confirm(fake_daemon, w, ping_interval_ms=0)  # no liveness checks: the test paces it
    try:
        yield w
    finally:
        for _ in range(16):
            gate.release()
        w.stop(now=True, timeout=WAIT)


def test_a_chunked_input_is_granted_assembled_and_checked_before_the_handler(fake_daemon, chunk_worker):
    w = chunk_worker
    request(fake_daemon, w, 5, "echo", inputs={"data": ChunkedValue(1, len(DATA), sha(DATA))})
    _, raw, credit = fake_daemon.expect(m.Credit)
    assert credit == m.Credit(5, 1, 0, 4 * MiB)  # the first grant, before any chunk
    for chunk in chunks_of(DATA, 5, 1):
        fake_daemon.publish(worker_topic(w.worker_id), chunk)
    _, _, result = fake_daemon.expect(m.Result)
    # the handler got plain bytes; its output (no chunk window: chunk_window_bytes 0) is inline
    assert result.outputs == {"data": DATA}

    request(fake_daemon, w, 6, "echo", inputs={"data": ChunkedValue(1, len(DATA), bytes(32))})
    fake_daemon.expect(m.Credit)
    for chunk in chunks_of(DATA, 6, 1):
        fake_daemon.publish(worker_topic(w.worker_id), chunk)
    _, _, failure = fake_daemon.expect(m.Failure)
    assert (failure.request_id, failure.code, failure.message) == (
        6, ErrorCode.INVALID_REQUEST, "input data: chunked stream 1: sha256 mismatch")


def test_a_stream_input_is_granted_as_the_handler_reads(fake_daemon, chunk_worker):
    w = chunk_worker
    data = bytes(range(256)) * (24 * 1024) + b"x"  # 6 MiB + 1
    request(fake_daemon, w, 7, "digest", inputs={"data": ChunkedValue(3, len(data), sha(data))})
    _, _, credit = fake_daemon.expect(m.Credit)
    assert (credit.stream, credit.bytes) == (3, 4 * MiB)
    chunks = chunks_of(data, 7, 3)
    for chunk in chunks[:4]:
        fake_daemon.publish(worker_topic(w.worker_id), chunk)
    assert fake_daemon.nothing(0.3), "a grant before the handler read anything"
    w.gate.release()  # one read of 1 MiB
    _, _, credit = fake_daemon.expect(m.Credit)
    assert (credit.stream, credit.bytes) == (3, 5 * MiB)
    w.gate.release()
    _, _, credit = fake_daemon.expect(m.Credit)
    assert credit.bytes == 6 * MiB
    w.gate.release()
    _, _, credit = fake_daemon.expect(m.Credit)
    assert credit.bytes == len(data)  # the last grant ends at the size
    for chunk in chunks[4:]:
        fake_daemon.publish(worker_topic(w.worker_id), chunk)
    for _ in range(5):
        w.gate.release()
    _, _, result = fake_daemon.expect(m.Result)
    assert result.outputs == {"hex": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert w.reads[-1] == 0 and sum(w.reads) == len(data)


def test_an_output_over_the_threshold_is_chunked_within_the_callers_credit(fake_daemon, chunk_worker):
    w = chunk_worker
    request(fake_daemon, w, 8, "echo", inputs={"data": DATA}, chunk_window_bytes=2 * MiB)
    got = []
    for _ in range(2):
        _, _, chunk = fake_daemon.expect(m.Chunk)
        got.append(chunk)
    assert [(c.request_id, c.stream, c.offset, len(c.data)) for c in got] == [(8, 2, 0, MiB), (8, 2, MiB, MiB)]
    assert fake_daemon.nothing(0.3), "a chunk past the caller's credit"
    fake_daemon.publish(worker_topic(w.worker_id), m.Credit(8, 2, 0, 2 * MiB + 4))  # one byte short
    assert fake_daemon.nothing(0.3), "a chunk past the caller's credit"
    fake_daemon.publish(worker_topic(w.worker_id), m.Credit(8, 2, 0, 3 * MiB))
    _, _, last = fake_daemon.expect(m.Chunk)
    assert (last.offset, bytes(last.data)) == (2 * MiB, DATA[2 * MiB:])
    _, _, result = fake_daemon.expect(m.Result)
    assert result.outputs == {"data": ChunkedValue(2, len(DATA), sha(DATA))}
    assert b"".join(bytes(c.data) for c in got + [last]) == DATA


def test_an_abort_stops_the_output_stream(fake_daemon, chunk_worker):
    w = chunk_worker
    request(fake_daemon, w, 9, "echo", inputs={"data": DATA}, chunk_window_bytes=MiB)
    fake_daemon.expect(m.Chunk)
    fake_daemon.publish(worker_topic(w.worker_id), m.Abort(9, ErrorCode.CANCELLED, "cancelled by the caller"))
    _, _, failure = fake_daemon.expect(m.Failure)  # no more chunks (a Chunk here fails the test)
    assert failure.request_id == 9 and failure.message == "aborted: cancelled by the caller"
    assert w.in_flight == []


def test_without_a_chunk_window_a_stream_output_goes_inline_or_fails_saying_why(fake_daemon, chunk_worker):
    w = chunk_worker
    request(fake_daemon, w, 10, "pieces", inputs={"mib": 2})  # chunk_window_bytes 0: a durable call
    _, _, result = fake_daemon.expect(m.Result)
    assert result.outputs == {"data": bytes(2 * MiB)}
    request(fake_daemon, w, 11, "pieces", inputs={"mib": 17})  # over the 16 MiB message limit
    _, _, failure = fake_daemon.expect(m.Failure)
    assert failure.code == ErrorCode.WORKER_ERROR
    assert failure.message == ("node pieces: output data is a stream of more than 16777216 bytes (--max-message-bytes) "
                               "and the caller takes no chunked outputs (a durable call carries its values inline)")
