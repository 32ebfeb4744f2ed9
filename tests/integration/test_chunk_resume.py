"""Resumption of chunked streams through a real musterd: the daemon's rules R5-R8 of
PROTOCOL.md §7.9 "Resumption" (docs/STREAMS.md §3).

Raw peers (chunk_peers.py) speak the wire by hand, so each test loses exactly the chunk it
means to and reads exactly what musterd sends: a worker whose output skips a chunk (musterd asks
it to resume, the caller gets every byte once), a worker that asks the caller to resume an input
stream (the caller gets the resume Credit) and the other way round, a worker whose Result comes before its last chunk
(musterd holds the Result until the chunk came).

Every wait is bounded; everything started here is killed by conftest's autouse fixture.
"""
from __future__ import annotations

import hashlib

from chunk_peers import WINDOW, KeepingRawWorker, RawClient, RawWorker
from muster import messages as m
from muster.values import ChunkedValue

PIECE = 64 * 1024  # small chunks: the tests are about offsets, not throughput


def piece(i: int) -> bytes:
    """Chunk i of a value: PIECE bytes, different for every i."""
    return bytes([i % 251]) * PIECE


def value_of(n: int) -> tuple[bytes, bytes]:
    data = b"".join(piece(i) for i in range(n))
    return data, hashlib.sha256(data).digest()


def work_request(w: RawWorker) -> m.WorkRequest:
    work = w.next_published(10)
    assert isinstance(work, m.WorkRequest), work
    return work


def next_resume_credit(w: RawWorker) -> m.Credit:
    """The next message musterd publishes to `w`: a resume Credit."""
    credit = w.next_published(10)
    assert isinstance(credit, m.Credit) and credit.resume, credit
    return credit


def read_output(c: RawClient, rid: int) -> tuple[list[tuple[int, int]], bytes, object]:
    """The chunks the caller got ((offset, length) each), their bytes in order, and its terminal
    reply; it asserts each chunk starts where the previous one ended (nothing twice, no gap)."""
    chunks, data = [], b""
    while True:
        r = c.next_reply(10)
        assert r is not None, f"no reply for 10 s after {len(data)} bytes"
        if not isinstance(r, m.Chunk):
            return chunks, data, r
        assert r.stream == 2 and r.offset == len(data), (r.stream, r.offset, len(data))
        chunks.append((r.offset, len(r.data)))
        data += r.data


def test_a_gap_in_a_workers_output_is_resumed_and_the_caller_gets_every_byte_once(daemon):
    w, c = RawWorker(daemon, "raw-gap", "echo"), RawClient(daemon)
    data, digest = value_of(8)
    c.send(1, m.Submit("echo", {"data": b"x"}, None, 30_000, chunk_window_bytes=WINDOW))
    rid = work_request(w).request_id
    w.send(m.Chunk(rid, 2, 0, piece(0)))
    # The chunk at PIECE is lost between the worker and musterd: the next ones reveal the gap.
    for i in (2, 3):
        w.send(m.Chunk(rid, 2, i * PIECE, piece(i)))
    credit = next_resume_credit(w)
    assert (credit.request_id, credit.stream, credit.resume_offset, credit.bytes) == (rid, 2, PIECE, WINDOW)
    # One resume Credit for one loss, not one per chunk after it.
    assert w.next_published(0.5) is None
    # The worker goes back to PIECE (R9) and sends the rest.
    for i in range(1, 8):
        w.send(m.Chunk(rid, 2, i * PIECE, piece(i)))
    w.send(m.Result(rid, {"data": ChunkedValue(2, len(data), digest)}))
    chunks, got, result = read_output(c, 1)
    assert isinstance(result, m.Result), result
    assert result.outputs == {"data": ChunkedValue(2, len(data), digest)}
    assert chunks == [(i * PIECE, PIECE) for i in range(8)]
    assert got == data
    assert c.next_reply(0.5) is None  # exactly one terminal reply
    w.close()
    c.close()


def test_a_workers_resume_credit_for_an_input_stream_reaches_the_caller_with_its_offset(daemon):
    w, c = RawWorker(daemon, "raw-reader", "echo"), RawClient(daemon)
    data, digest = value_of(4)
    c.send(2, m.Submit("echo", {"data": ChunkedValue(1, len(data), digest)}, None, 30_000))
    rid = work_request(w).request_id
    w.send(m.Credit(rid, 1, 0, len(data)))
    credit = c.next_reply(10)
    assert isinstance(credit, m.Credit) and not credit.resume and credit.bytes == len(data), credit
    for i in range(3):
        c.send(2, m.Chunk(2, 1, i * PIECE, piece(i)))
    got = [w.next_published(10) for _ in range(3)]
    assert [(x.offset, len(x.data)) for x in got] == [(i * PIECE, PIECE) for i in range(3)]
    # The worker has only the first chunk (say the others were lost on the request socket): it
    # asks the caller, through musterd, to go back to PIECE; the grant is the same as before.
    w.send(m.Credit(rid, 1, 0, len(data), resume_offset=PIECE, resume=True))
    credit = c.next_reply(10)
    assert isinstance(credit, m.Credit), credit
    assert (credit.stream, credit.bytes, credit.resume, credit.resume_offset) == (1, len(data), True, PIECE)
    # A chunk the caller sent before it heard the Credit is dropped by musterd, the call goes on.
    c.send(2, m.Chunk(2, 1, 3 * PIECE, piece(3)))
    for i in range(1, 4):
        c.send(2, m.Chunk(2, 1, i * PIECE, piece(i)))
    again = [w.next_published(10) for _ in range(3)]
    assert [(x.offset, x.data) for x in again] == [(i * PIECE, piece(i)) for i in range(1, 4)]
    assert w.next_published(0.5) is None
    w.send(m.Result(rid, {"ok": True}))
    result = c.next_reply(10)
    assert isinstance(result, m.Result) and result.outputs == {"ok": True}, result
    w.close()
    c.close()


def test_a_callers_resume_credit_for_an_output_stream_reaches_the_worker_with_its_offset(daemon):
    w, c = RawWorker(daemon, "raw-writer", "echo"), RawClient(daemon)
    data, digest = value_of(4)
    c.send(4, m.Submit("echo", {"data": b"x"}, None, 30_000, chunk_window_bytes=WINDOW))
    rid = work_request(w).request_id
    for i in range(3):
        w.send(m.Chunk(rid, 2, i * PIECE, piece(i)))
    got = [c.next_reply(10) for _ in range(3)]
    assert [(x.offset, len(x.data)) for x in got] == [(i * PIECE, PIECE) for i in range(3)]
    # The caller has the first chunk only (say it lost the others): it asks the worker, through
    # musterd, to go back to PIECE, granting no more than before.
    c.send(4, m.Credit(4, 2, 0, WINDOW, resume_offset=PIECE, resume=True))
    credit = next_resume_credit(w)
    assert (credit.request_id, credit.stream, credit.bytes, credit.resume_offset) == (rid, 2, WINDOW, PIECE)
    for i in range(1, 4):
        w.send(m.Chunk(rid, 2, i * PIECE, piece(i)))
    w.send(m.Result(rid, {"data": ChunkedValue(2, len(data), digest)}))
    again = [c.next_reply(10) for _ in range(3)]
    assert [(x.offset, x.data) for x in again] == [(i * PIECE, piece(i)) for i in range(1, 4)]
    result = c.next_reply(10)
    assert isinstance(result, m.Result) and result.outputs == {"data": ChunkedValue(2, len(data), digest)}, result
    assert c.next_reply(0.5) is None
    w.close()
    c.close()


def test_a_result_before_its_last_chunk_is_held_until_the_chunk_came(daemon):
    w, c = KeepingRawWorker(daemon, "raw-early", "echo"), RawClient(daemon)
    data, digest = value_of(3)
    c.send(3, m.Submit("echo", {"data": b"x"}, None, 30_000, chunk_window_bytes=WINDOW))
    rid = work_request(w).request_id
    w.send(m.Chunk(rid, 2, 0, piece(0)))
    w.send(m.Chunk(rid, 2, PIECE, piece(1)))
    # The last chunk is lost: nothing after it reveals the loss, but the Result names the stream.
    result = m.Result(rid, {"files": [ChunkedValue(2, len(data), digest)]})
    w.send(result)
    credit = next_resume_credit(w)
    assert (credit.request_id, credit.stream, credit.resume_offset, credit.bytes) == (rid, 2, 2 * PIECE, WINDOW)
    chunks = [c.next_reply(10) for _ in range(2)]
    assert [(x.offset, len(x.data)) for x in chunks] == [(0, PIECE), (PIECE, PIECE)]
    assert c.next_reply(0.5) is None, "musterd forwarded a Result whose stream is short"
    # The worker asked for an Ack per message: the two chunks have theirs, and the held Result an
    # Ack{late}, which confirms nothing (§7.9 R8): the worker keeps it and sends it again.
    acks = [r for r in w.drain_replies() if isinstance(r, m.Ack) and r.pong_seq == 0]
    assert [a.late for a in acks] == [False, False, True], f"musterd confirmed a held Result: {acks}"
    # The Result again (the worker's Ack-less answer is sent again): another resume Credit.
    w.send(result)
    assert next_resume_credit(w).resume_offset == 2 * PIECE
    w.send(m.Chunk(rid, 2, 2 * PIECE, piece(2)))
    last = c.next_reply(10)
    assert isinstance(last, m.Chunk) and (last.offset, last.data) == (2 * PIECE, piece(2)), last
    got = c.next_reply(10)
    assert isinstance(got, m.Result), got
    assert got.outputs == {"files": [ChunkedValue(2, len(data), digest)]}
    assert c.next_reply(0.5) is None  # exactly one terminal reply
    w.close()
    c.close()
