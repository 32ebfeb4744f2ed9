"""Resumption of chunked streams (PROTOCOL.md §7.9 "Resumption") in the Python SDK, against
fake daemon sockets: the worker (tests/conftest.py FakeDaemon) as the receiver of input streams
(R1–R4) and the sender of output streams (R9–R11); the client (a ROUTER, test_client.py) as the
sender of input streams (R9, R10) and the receiver of output streams (R1–R3)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

import muster
from muster import messages as m
from muster.errors import ErrorCode
from muster.values import ChunkedValue

from conftest import WAIT, attached_reply, worker_topic
from test_client import FakeClientSocket
from test_worker_protocol import attach_and_confirm, make_worker, request

MiB = 1 << 20


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def numbered(mib: int, tail: bytes = b"") -> bytes:
    """``mib`` MiB whose every MiB differs (a chunk sent at the wrong offset shows), then ``tail``."""
    return b"".join(bytes([i % 251]) * MiB for i in range(mib)) + tail


def chunk(data: bytes, rid: int, stream: int, offset: int, n: int = MiB) -> m.Chunk:
    return m.Chunk(rid, stream, offset, data[offset:offset + n])


def resume(rid: int, stream: int, granted: int, at: int) -> m.Credit:
    return m.Credit(rid, stream, 0, granted, at, True)


# ---- the daemon's side of a worker (tests/conftest.py FakeDaemon) ------------------------


def to_worker(fake_daemon, w: muster.Worker, body) -> None:
    """Publishes ``body`` on the worker's own topic."""
    fake_daemon.publish(worker_topic(w.worker_id), body)


def expect_chunks(fake_daemon, n: int, ack: bool = False) -> list:
    """The next ``n`` Chunks from the worker (each answered Ack with ``ack``)."""
    got = []
    for _ in range(n):
        peer, _, c = fake_daemon.expect(m.Chunk)
        if ack:
            fake_daemon.reply(peer, m.Ack())
        got.append(c)
    return got


def confirm_by_pongs(fake_daemon, w: muster.Worker, seqs: range) -> None:
    """Pings with each seq, answering every Pong with the Ack naming it, until a Pong no longer
    lists an answer (§7.6: the Ack to a Pong that listed it confirms it; a Ping that reaches
    the worker before that Ack is answered from before it, so a few rounds)."""
    for seq in seqs:
        to_worker(fake_daemon, w, m.Ping(seq=seq, instance="inst-1"))
        peer, _, pong = fake_daemon.expect(m.Pong)
        fake_daemon.reply(peer, m.Ack(pong_seq=seq))
        if not pong.answered:
            return
    raise AssertionError(f"still unconfirmed after Pong {seq}: answered={pong.answered}")


def assert_sends_no_more_chunks(fake_daemon, w: muster.Worker, rid: int) -> None:
    """The answer of ``rid`` is confirmed: a resume Credit for its output gets no chunk (R11)."""
    to_worker(fake_daemon, w, resume(rid, 2, 3 * MiB, 0))
    assert fake_daemon.nothing(0.5), "chunks sent again after the Result was confirmed"


# ---- the worker ------------------------------------------------------------------------


def resume_worker(fd, worker_id: str, **kw) -> muster.Worker:
    """The protocol tests' worker (echo...) with a chunk threshold of 1000 bytes, a node that
    reads its input as a stream (``digest``) and one that returns an iterator (``pieces``)."""
    w = make_worker(fd, worker_id=worker_id, chunk_threshold=1000, **kw)

    @w.node(name="digest", inputs={"data": "bytes"}, stream_inputs=["data"])
    def digest(ctx):
        s = ctx.input_stream("data")
        h = hashlib.sha256()
        while block := s.read(MiB):
            h.update(block)
        return {"hex": h.hexdigest(), "size": s.size}

    @w.node(name="pieces", inputs={"mib": "int"})
    def pieces(ctx):
        return {"data": (bytes([i % 251]) * MiB for i in range(ctx.inputs["mib"]))}  # cannot seek

    @w.node(name="late_pieces", inputs={"mib": "int"})
    def late_pieces(ctx):
        w.test_release.wait(WAIT)  # type: ignore[attr-defined]
        return {"data": (bytes([i % 251]) * MiB for i in range(ctx.inputs["mib"]))}

    return w


@pytest.fixture
def worker_factory(fake_daemon):
    """start(worker_id, **options): a resume_worker started, attached and confirmed (§7.1), with
    no pings of the daemon's own (the tests send each Ping they need)."""
    started = []

    def start(worker_id: str, **kw) -> muster.Worker:
        w = resume_worker(fake_daemon, worker_id, **kw)
        w.start()
        started.append(w)
        attach_and_confirm(fake_daemon, w, ping_interval_ms=0)
        return w

    yield start
    for w in started:
        w.test_release.set()  # type: ignore[attr-defined]
        w.stop(now=True, timeout=WAIT)


def test_worker_input_gap_gets_exactly_one_resume_credit_then_takes_the_chunks_again(fake_daemon, worker_factory):
    """R1, R2: chunk 1 lost; chunks 2 and 3 after it make one resume Credit at 1 MiB (not one
    per chunk); the chunks sent again from there (a stale one, one overlapping what it has)
    are trimmed or dropped, and the value checks."""
    w = worker_factory("rg1", resume_after=30.0)  # no stall Credit in this test
    data = numbered(3, b"tail")
    request(fake_daemon, w, 5, "echo", inputs={"data": ChunkedValue(1, len(data), sha(data))})
    _, _, first = fake_daemon.expect(m.Credit)
    assert first == m.Credit(5, 1, 0, 4 * MiB)
    for offset in (0, 2 * MiB, 3 * MiB):
        to_worker(fake_daemon, w, chunk(data, 5, 1, offset))
    _, _, again = fake_daemon.expect(m.Credit)
    assert again == resume(5, 1, 4 * MiB, MiB)
    assert fake_daemon.nothing(0.5), "more than one resume Credit for one loss"
    to_worker(fake_daemon, w, chunk(data, 5, 1, 0))  # all of it here already: dropped
    to_worker(fake_daemon, w, chunk(data, 5, 1, MiB - 100, MiB + 100))  # overlaps: trimmed
    for offset in (2 * MiB, 3 * MiB):
        to_worker(fake_daemon, w, chunk(data, 5, 1, offset))
    _, _, result = fake_daemon.expect(m.Result)
    assert result == m.Result(5, {"data": data})  # assembled, sha256 checked, echoed inline


def test_worker_input_stall_gets_a_resume_credit_after_resume_after_and_again(fake_daemon, worker_factory):
    """R3: the last chunk never comes (no later chunk shows its loss): a resume Credit after
    resume_after without a chunk, and again after each further one."""
    w = worker_factory("rs1", resume_after=0.2)
    data = numbered(2, b"last")
    request(fake_daemon, w, 6, "echo", inputs={"data": ChunkedValue(1, len(data), sha(data))})
    fake_daemon.expect(m.Credit)
    for offset in (0, MiB):
        to_worker(fake_daemon, w, chunk(data, 6, 1, offset))
    for _ in range(2):
        again = next_resume_at(fake_daemon, 2 * MiB)
        assert again == resume(6, 1, 4 * MiB, 2 * MiB)
    to_worker(fake_daemon, w, chunk(data, 6, 1, 2 * MiB))
    _, _, result = fake_daemon.expect(m.Result, skip=(m.Credit,))
    assert result == m.Result(6, {"data": data})


def next_resume_at(fake_daemon, at: int) -> m.Credit:
    """The next resume Credit at ``at``, passing over those at a smaller offset (a stall seen
    before the test's chunks came, on a machine loaded enough to delay them)."""
    while True:
        _, _, credit = fake_daemon.expect(m.Credit)
        assert credit.resume and credit.resume_offset <= at, credit
        if credit.resume_offset == at:
            return credit


def start_streamed_input(fake_daemon, w, rid: int, data: bytes) -> bytes:
    """A ``digest`` call whose first chunk the handler read (the worker's second grant shows
    it); returns the routing id of the worker's connection."""
    request(fake_daemon, w, rid, "digest", inputs={"data": ChunkedValue(1, len(data), sha(data))})
    _, _, first = fake_daemon.expect(m.Credit)
    assert first == m.Credit(rid, 1, 0, 4 * MiB)
    to_worker(fake_daemon, w, chunk(data, rid, 1, 0))
    peer, _, more = fake_daemon.expect(m.Credit)
    assert more == m.Credit(rid, 1, 0, 5 * MiB)  # read 1 MiB: granted 1 + 4 MiB
    return peer


def test_worker_reattached_to_the_same_instance_resumes_its_input_streams(fake_daemon, worker_factory):
    """R4: the daemon forgot the worker's connection (Rejected{reattach}), the Attach on it goes
    unanswered, the worker reconnects and attaches again to the same instance: the chunks on the
    way are lost, so it sends a resume Credit at what it has (instead of aborting the call), and
    the call completes with the chunks sent again."""
    w = worker_factory("rr1", resume_after=30.0, attach_timeout=0.5)
    # Only the Attach on the old connection must time out: the one on the new connection is
    # answered below, and on a loaded machine the answer may come after 0.5 s (the worker then
    # reconnected once more and the test answered a connection it had closed).
    send_attach, sent = w._send_attach, []  # type: ignore[attr-defined]

    def send_attach_with_a_long_timeout_the_second_time() -> None:
        sent.append(True)
        if len(sent) == 2:
            w.attach_timeout = 6 * WAIT
        send_attach()

    w._send_attach = send_attach_with_a_long_timeout_the_second_time  # type: ignore[method-assign]
    data = numbered(6)
    peer = start_streamed_input(fake_daemon, w, 7, data)
    fake_daemon.reply(peer, m.Rejected(code=ErrorCode.INVALID_REQUEST, message="unknown worker", reattach=True))
    first_attach_peer, _, _ = fake_daemon.expect(m.Attach)  # on the old connection, unanswered
    peer, _, _ = fake_daemon.expect(m.Attach)  # after attach_timeout: a new connection
    assert peer != first_attach_peer
    fake_daemon.reply(peer, attached_reply(w.worker_id, "inst-1", ping_interval_ms=0))
    _, _, again = fake_daemon.expect(m.Credit)
    assert again == resume(7, 1, 5 * MiB, MiB)
    peer, _, pong = fake_daemon.confirm(w.worker_id, "inst-1", seq=2)  # the new SUB hears the topic
    assert pong.in_flight == [7]
    fake_daemon.reply(peer, m.Ack())
    for offset in range(MiB, len(data), MiB):
        to_worker(fake_daemon, w, chunk(data, 7, 1, offset))
    _, _, result = fake_daemon.expect(m.Result, skip=(m.Credit,))
    assert result == m.Result(7, {"hex": hashlib.sha256(data).hexdigest(), "size": len(data)})


def test_worker_whose_connection_comes_back_attaches_again_and_resumes(fake_daemon, worker_factory):
    """R4 after a real reconnect: the response connection breaks and ZeroMQ connects it again
    (musterd would refuse its messages: it did not attach there); the worker attaches again at
    once, resumes its input stream, and holds the output chunks it may send until Attached."""
    w = worker_factory("rc1", resume_after=30.0)
    data = numbered(6)
    start_streamed_input(fake_daemon, w, 14, data)
    out = numbered(2, b"tail")
    request(fake_daemon, w, 15, "echo", inputs={"data": out}, chunk_window_bytes=MiB)
    fake_daemon.expect(m.Chunk)  # the first MiB; the next waits for credit
    fake_daemon.drop_connections()
    peer, _, _ = fake_daemon.expect(m.Attach)
    to_worker(fake_daemon, w, m.Credit(15, 2, 0, 3 * MiB))
    assert fake_daemon.nothing(0.5), f"sent before the daemon took the connection back: {fake_daemon.recv()[2].body!r}"
    fake_daemon.reply(peer, attached_reply(w.worker_id, "inst-1", ping_interval_ms=0))
    _, _, again = fake_daemon.expect(m.Credit)
    assert again == resume(14, 1, 5 * MiB, MiB)
    got = expect_chunks(fake_daemon, 2)
    assert [(c.offset, bytes(c.data)) for c in got] == [(MiB, out[MiB:2 * MiB]), (2 * MiB, out[2 * MiB:])]
    _, _, result = fake_daemon.expect(m.Result)
    assert result.request_id == 15
    fake_daemon.confirm(w.worker_id, "inst-1", seq=2)
    for offset in range(MiB, len(data), MiB):
        to_worker(fake_daemon, w, chunk(data, 14, 1, offset))
    _, _, result = fake_daemon.expect(m.Result, skip=(m.Credit, m.Pong))
    assert result == m.Result(14, {"hex": hashlib.sha256(data).hexdigest(), "size": len(data)})


def test_worker_attached_to_another_instance_aborts_its_chunked_calls(fake_daemon, worker_factory):
    """R4: after a daemon restart (another instance) a call with an input stream on the way is
    aborted, as the new instance knows neither the call nor its stream."""
    w = worker_factory("ri1", resume_after=30.0)
    start_streamed_input(fake_daemon, w, 8, numbered(6))
    fake_daemon.publish("b:", m.Ping(seq=1, instance="inst-2"))
    peer, _, _ = fake_daemon.expect(m.Attach)
    fake_daemon.reply(peer, attached_reply(w.worker_id, "inst-2", ping_interval_ms=0))
    _, _, failure = fake_daemon.expect(m.Failure)
    assert (failure.request_id, failure.code, failure.message) == (
        8, ErrorCode.WORKER_LOST,
        "aborted: the daemon restarted (instance inst-1 -> inst-2): its chunked values cannot resume",
    )  # fmt: skip


def test_worker_output_started_after_a_daemon_restart_aborts_its_call(fake_daemon, worker_factory):
    """A call dispatched by the instance before a restart whose handler returns a chunked
    output afterwards: the new instance knows neither the call nor the stream (no credit would
    ever come), so it is aborted instead of sending chunks."""
    w = worker_factory("ra1")
    request(fake_daemon, w, 12, "late_pieces", inputs={"mib": 2}, chunk_window_bytes=4 * MiB)
    to_worker(fake_daemon, w, m.Ping(seq=2, instance="inst-1"))
    peer, _, pong = fake_daemon.expect(m.Pong)
    assert pong.in_flight == [12]  # its handler runs
    fake_daemon.publish("b:", m.Ping(seq=1, instance="inst-2"))
    peer, _, _ = fake_daemon.expect(m.Attach)
    fake_daemon.reply(peer, attached_reply(w.worker_id, "inst-2", ping_interval_ms=0))
    fake_daemon.confirm(w.worker_id, "inst-2", seq=2)
    w.test_release.set()  # type: ignore[attr-defined]
    _, _, failure = fake_daemon.expect(m.Failure)
    assert (failure.request_id, failure.code, failure.message) == (
        12, ErrorCode.WORKER_LOST,
        "aborted: the daemon restarted (instance inst-1 -> inst-2): its chunked values cannot resume",
    )  # fmt: skip


def test_worker_output_goes_back_to_a_resume_credit_with_the_same_bytes_until_confirmed(fake_daemon, worker_factory):
    """R9, R11: a resume Credit sends the output stream back to its offset (the bytes equal the
    first ones, the Chunked reference's sha256 unchanged), also after the Result went, until
    the Result is confirmed."""
    w = worker_factory("ro1")
    data = numbered(2, b"tail")
    request(fake_daemon, w, 9, "echo", inputs={"data": data}, chunk_window_bytes=2 * MiB)
    got = expect_chunks(fake_daemon, 2)
    assert [(c.stream, c.offset, bytes(c.data)) for c in got] == [(2, 0, data[:MiB]), (2, MiB, data[MiB:2 * MiB])]
    to_worker(fake_daemon, w, resume(9, 2, 3 * MiB, MiB))
    got = expect_chunks(fake_daemon, 2)
    assert [(c.offset, bytes(c.data)) for c in got] == [(MiB, data[MiB:2 * MiB]), (2 * MiB, data[2 * MiB:])]
    _, _, result = fake_daemon.expect(m.Result)
    assert result == m.Result(9, {"data": ChunkedValue(2, len(data), sha(data))})
    # The Result is not confirmed yet: a resume Credit (musterd holding it, R8) is served.
    to_worker(fake_daemon, w, resume(9, 2, 3 * MiB, 0))
    again = expect_chunks(fake_daemon, 3)
    assert b"".join(bytes(c.data) for c in again) == data and again[0].offset == 0
    peer = fake_daemon.last_peer
    for _ in range(5):  # the Acks of the 4 chunks and of the Result, in order
        fake_daemon.reply(peer, m.Ack())
    # A Result with chunked outputs is confirmed by the Ack to a Pong that lists it (an Ack
    # that reads as its may be a later message's: a Result held may get no reply at all).
    confirm_by_pongs(fake_daemon, w, range(2, 12))
    assert_sends_no_more_chunks(fake_daemon, w, 9)


def test_worker_result_held_without_a_reply_keeps_serving_resumes_until_a_pong_confirms_it(fake_daemon, worker_factory):
    """R8, R11 as musterd plays them: a Result whose stream is short gets no reply at all; the
    worker still answers resume Credits (the Acks of those chunks must not pass for the held
    Result's), sends the Result again when the Ack to its Pong names it missing, and stops only
    once a Pong's Ack confirms it."""
    w = worker_factory("rh1")
    data = numbered(2, b"tail")
    request(fake_daemon, w, 13, "echo", inputs={"data": data}, chunk_window_bytes=3 * MiB)
    expect_chunks(fake_daemon, 3, ack=True)
    peer, first, result = fake_daemon.expect(m.Result)  # held: no reply
    assert result == m.Result(13, {"data": ChunkedValue(2, len(data), sha(data))})
    to_worker(fake_daemon, w, resume(13, 2, 3 * MiB, MiB))  # what musterd sends on holding it
    got = expect_chunks(fake_daemon, 2, ack=True)
    assert [(c.offset, bytes(c.data)) for c in got] == [(MiB, data[MiB:2 * MiB]), (2 * MiB, data[2 * MiB:])]
    to_worker(fake_daemon, w, m.Ping(seq=2, instance="inst-1"))
    peer, _, pong = fake_daemon.expect(m.Pong)
    assert pong.answered == [13]
    fake_daemon.reply(peer, m.Ack(pong_seq=2, missing=[13]))  # still held: send it again
    peer, again, _ = fake_daemon.expect(m.Result)
    assert again == first
    to_worker(fake_daemon, w, resume(13, 2, 3 * MiB, 0))
    assert b"".join(bytes(c.data) for c in expect_chunks(fake_daemon, 3)) == data
    confirm_by_pongs(fake_daemon, w, range(3, 13))
    assert_sends_no_more_chunks(fake_daemon, w, 13)


def test_worker_output_that_cannot_seek_goes_back_within_16_mib_and_fails_beyond(fake_daemon, worker_factory):
    """R10: an iterator's output keeps the last 16 MiB sent: a resume within them is served
    from there; one further back fails the call WORKER_ERROR, during the first pass (the Result
    never goes) and after it (the Result is replaced by that Failure)."""
    w = worker_factory("rk1")
    data = numbered(20)

    request(fake_daemon, w, 10, "pieces", inputs={"mib": 20}, chunk_window_bytes=18 * MiB)
    got = expect_chunks(fake_daemon, 18)
    assert b"".join(bytes(c.data) for c in got) == data[:18 * MiB]
    to_worker(fake_daemon, w, resume(10, 2, 18 * MiB, 2 * MiB))  # 16 MiB back: kept
    c, *_ = expect_chunks(fake_daemon, 16)
    assert (c.offset, bytes(c.data)) == (2 * MiB, data[2 * MiB:3 * MiB])
    to_worker(fake_daemon, w, resume(10, 2, 18 * MiB, MiB))  # 17 MiB back: gone
    _, _, failure = fake_daemon.expect(m.Failure)
    assert (failure.request_id, failure.code, failure.message) == (
        10, ErrorCode.WORKER_ERROR,
        "output data: chunked stream 2: cannot resume at offset 1048576: the output is not seekable and only its "
        "last 16777216 bytes sent are kept (from offset 2097152)",
    )  # fmt: skip

    request(fake_daemon, w, 11, "pieces", inputs={"mib": 18}, chunk_window_bytes=18 * MiB)
    expect_chunks(fake_daemon, 18)
    _, _, result = fake_daemon.expect(m.Result)
    assert result == m.Result(11, {"data": ChunkedValue(2, 18 * MiB, sha(data[:18 * MiB]))})
    to_worker(fake_daemon, w, resume(11, 2, 18 * MiB, 0))
    _, _, failure = fake_daemon.expect(m.Failure)
    assert (failure.request_id, failure.code) == (11, ErrorCode.WORKER_ERROR)
    assert failure.message.startswith("output data: chunked stream 2: cannot resume at offset 0: ")


# ---- the client ------------------------------------------------------------------------


@pytest.fixture
def daemon(short_tmp):
    d = FakeClientSocket(short_tmp)
    yield d
    d.close()


def client_recv(daemon):
    """The next message from the client: (routing id, its body)."""
    peer, _, msg = daemon.recv()
    return peer, msg.body


def client(daemon, **options) -> muster.Client:
    return muster.Client(daemon.address, connect_timeout=2.0, **options)


def submitted(daemon):
    """The client's Submit: (routing id, its request id, the Submit)."""
    peer, _, msg = daemon.recv()
    assert isinstance(msg.body, m.Submit), msg.body
    return peer, msg.request_id, msg.body


@pytest.mark.parametrize("sink", ["bytes", "output_dir"])
def test_client_output_gap_gets_exactly_one_resume_credit_then_takes_the_chunks_again(daemon, tmp_path, sink):
    """R1, R2 on the caller's side, with the default sink and with output_dir."""
    data = numbered(4)
    kw = {"output_dir": tmp_path} if sink == "output_dir" else {}
    with client(daemon, resume_after=30.0) as caller:
        call = caller.submit("x", **kw)
        peer, rid, _ = submitted(daemon)
        daemon.reply(peer, rid, chunk(data, rid, 2, 0))
        assert client_recv(daemon)[1] == m.Credit(rid, 2, 0, 5 * MiB)
        for offset in (2 * MiB, 3 * MiB):  # 1 MiB lost
            daemon.reply(peer, rid, chunk(data, rid, 2, offset))
        assert client_recv(daemon)[1] == resume(rid, 2, 5 * MiB, MiB)
        assert not daemon.router.poll(500), "more than one resume Credit for one loss"
        daemon.reply(peer, rid, chunk(data, rid, 2, 0))  # here already: dropped
        daemon.reply(peer, rid, chunk(data, rid, 2, MiB - 7, MiB + 7))  # overlaps: trimmed
        for offset in (2 * MiB, 3 * MiB):
            daemon.reply(peer, rid, chunk(data, rid, 2, offset))
        daemon.reply(peer, rid, m.Result(rid, {"data": ChunkedValue(2, len(data), sha(data))}))
        out = call.result(WAIT)
    if sink == "output_dir":
        assert out == {"data": tmp_path / "data"} and (tmp_path / "data").read_bytes() == data
    else:
        assert out == {"data": data}


def test_client_output_stall_gets_a_resume_credit_after_resume_after(daemon):
    """R3 on the caller's side (sync client): the last chunk lost."""
    data = numbered(2, b"end")
    with client(daemon, resume_after=0.2) as caller:
        call = caller.submit("x")
        peer, rid, _ = submitted(daemon)
        for offset in (0, MiB):
            daemon.reply(peer, rid, chunk(data, rid, 2, offset))
        got = []
        while not got or got[-1] != resume(rid, 2, 6 * MiB, 2 * MiB):
            got.append(client_recv(daemon)[1])
        # the grants as it took the chunks (a stall between them, under load, asks at 1 MiB)
        assert [c for c in got if not c.resume] == [m.Credit(rid, 2, 0, 5 * MiB), m.Credit(rid, 2, 0, 6 * MiB)]
        assert all(c.resume_offset in (MiB, 2 * MiB) for c in got if c.resume)
        daemon.reply(peer, rid, chunk(data, rid, 2, 2 * MiB))
        daemon.reply(peer, rid, m.Result(rid, {"data": ChunkedValue(2, len(data), sha(data))}))
        assert call.result(WAIT) == {"data": data}


def test_async_client_output_stall_gets_a_resume_credit_after_resume_after(daemon):
    """R3 on the caller's side (AsyncClient)."""
    data = numbered(1, b"end")

    async def main():
        async with muster.AsyncClient(daemon.address, connect_timeout=2.0, resume_after=0.2) as caller:
            call = await caller.submit("x")
            loop = asyncio.get_running_loop()
            peer, rid, _ = await loop.run_in_executor(None, submitted, daemon)
            daemon.reply(peer, rid, chunk(data, rid, 2, 0))
            _, body = await loop.run_in_executor(None, client_recv, daemon)
            assert body == m.Credit(rid, 2, 0, 5 * MiB)
            _, body = await loop.run_in_executor(None, client_recv, daemon)
            assert body == resume(rid, 2, 5 * MiB, MiB)
            daemon.reply(peer, rid, chunk(data, rid, 2, MiB))
            daemon.reply(peer, rid, m.Result(rid, {"data": ChunkedValue(2, len(data), sha(data))}))
            return await asyncio.wait_for(call, WAIT)

    assert asyncio.run(main()) == {"data": data}


@pytest.mark.parametrize("kind", ["bytes", "path", "file"])
def test_client_input_goes_back_to_a_resume_credit_with_the_same_bytes(daemon, tmp_path, kind):
    """R9, R10 on the caller's side: bytes, a path and a seekable file are read again from the
    resume offset; a resume beyond what was sent is ignored; the Submit's reference is the one
    of the bytes sent."""
    data = numbered(3, b"tail")
    path = tmp_path / "in.bin"
    path.write_bytes(data)
    f = open(path, "rb")
    value = {"bytes": data, "path": path, "file": f}[kind]
    try:
        with client(daemon, chunk_threshold=MiB) as caller:
            call = caller.submit("echo", {"data": value})
            peer, rid, submit = submitted(daemon)
            assert submit.inputs == {"data": ChunkedValue(1, len(data), sha(data))}
            daemon.reply(peer, rid, m.Credit(rid, 1, 0, 2 * MiB))
            got = [client_recv(daemon)[1] for _ in range(2)]
            assert [(c.offset, bytes(c.data)) for c in got] == [(0, data[:MiB]), (MiB, data[MiB:2 * MiB])]
            daemon.reply(peer, rid, resume(rid, 1, 2 * MiB, 3 * MiB))  # beyond what it sent: ignored
            assert not daemon.router.poll(300)
            daemon.reply(peer, rid, resume(rid, 1, 4 * MiB, MiB))
            got = [client_recv(daemon)[1] for _ in range(3)]
            assert [(c.offset, bytes(c.data)) for c in got] == [
                (MiB, data[MiB:2 * MiB]), (2 * MiB, data[2 * MiB:3 * MiB]), (3 * MiB, data[3 * MiB:])]
            daemon.reply(peer, rid, m.Result(rid, {}))
            assert call.result(WAIT) == {}
    finally:
        f.close()


def test_client_input_that_cannot_be_read_again_cancels_the_call_unavailable(daemon, tmp_path):
    """R10 on the caller's side: a resume to bytes the input cannot give again (the file was
    cut meanwhile) cancels the call, which fails UNAVAILABLE locally."""
    data = numbered(3)
    path = tmp_path / "in.bin"
    path.write_bytes(data)
    with client(daemon, chunk_threshold=MiB) as caller:
        call = caller.submit("echo", {"data": path})
        peer, rid, _ = submitted(daemon)
        daemon.reply(peer, rid, m.Credit(rid, 1, 0, 2 * MiB))
        for _ in range(2):
            client_recv(daemon)
        with open(path, "r+b") as cut:
            cut.truncate(MiB // 2)
        daemon.reply(peer, rid, resume(rid, 1, 3 * MiB, 0))
        assert isinstance(client_recv(daemon)[1], m.Cancel)
        with pytest.raises(muster.Unavailable) as e:
            call.result(WAIT)
        assert e.value.message == (
            "input data: chunked stream 1: cannot resume at offset 0: the input file changed while it was sent (it ended early)")


def test_resume_after_must_be_positive(daemon):
    for bad in (0, -1.0, True, "2"):
        with pytest.raises(ValueError, match="resume_after"):
            muster.Client(daemon.address, resume_after=bad)
        with pytest.raises(ValueError, match="resume_after"):
            muster.Worker(resume_after=bad)
