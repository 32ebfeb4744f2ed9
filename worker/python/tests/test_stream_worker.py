"""Items on the worker's side (docs/STREAMS.md §2, PROTOCOL.md §7.8) against the fake daemon:
generator, async generator and ctx.emit handlers; the credit window (nothing beyond it, Credit
reopens it, a stale Credit changes nothing); StreamNotRequested; Abort closes the generator.
Every Item is checked byte for byte against what the encoder makes of the expected message."""

from __future__ import annotations

import asyncio
import threading

import pytest

import muster
from muster import messages as m
from muster.errors import ErrorCode
from muster.values import encode_values

from conftest import WAIT, worker_topic
from test_worker_protocol import attach_and_confirm, request, wire

MiB = 1024 * 1024


def item_wire(worker_id: str, rid: int, seq: int, values) -> bytes:
    return wire(worker_id, m.Item(request_id=rid, seq=seq, values=encode_values(values)))


@pytest.fixture
def streaming_worker(fake_daemon):
    w = muster.Worker(
        worker_id="sw1", capacity=4, request_address=fake_daemon.request_address,
        response_address=fake_daemon.response_address, shutdown_grace=5.0,
    )  # fmt: skip
    w.closed = threading.Event()  # type: ignore[attr-defined]
    w.emitted = []  # type: ignore[attr-defined]

    @w.node(name="count", inputs={"n": "int"})
    def count(ctx):
        try:
            for i in range(ctx.inputs["n"]):
                yield {"i": i}
        finally:
            w.closed.set()  # type: ignore[attr-defined]
        return {"total": ctx.inputs["n"]}

    @w.node(name="acount", inputs={"n": "int"})
    async def acount(ctx):
        try:
            for i in range(ctx.inputs["n"]):
                yield {"i": i}
                await asyncio.sleep(0)
        finally:
            w.closed.set()  # type: ignore[attr-defined]

    @w.node(name="emitter", inputs={"n": "int"})
    def emitter(ctx):
        for i in range(ctx.inputs["n"]):
            if not ctx.emit({"i": i}):
                w.emitted.append(("aborted at", i))  # type: ignore[attr-defined]
                return {"stopped": i}
        return {"sent": ctx.inputs["n"]}

    @w.node(name="aemitter", inputs={"n": "int"})
    async def aemitter(ctx):
        for i in range(ctx.inputs["n"]):
            if not await ctx.emit_async({"i": i}):
                return {"stopped": i}
        return {"sent": ctx.inputs["n"]}

    @w.node(name="wrong_emit")
    async def wrong_emit(ctx):
        ctx.emit({"x": 1})  # blocks the event loop: refused

    @w.node(name="polite")
    def polite(ctx):
        try:
            ctx.emit({"x": 1})
        except muster.StreamNotRequested as e:
            return {"streaming": ctx.streaming, "error": str(e)}
        return {"streaming": ctx.streaming}

    @w.node(name="bad_item")
    def bad_item(ctx):
        try:
            yield ["not", "a", "dict"]
        except TypeError as e:
            yield {"recovered": str(e)}

    w.start()
    try:
        yield w
    finally:
        w.stop(now=True, timeout=WAIT)


def test_generator_items_follow_the_window_and_credit_reopens_it(fake_daemon, streaming_worker):
    w = streaming_worker
    attach_and_confirm(fake_daemon, w, ping_interval_ms=10_000)  # no pings needed here
    request(fake_daemon, w, 7, "count", {"n": 5}, stream_window_items=2, stream_window_bytes=MiB)
    for seq in range(2):
        peer, raw, item = fake_daemon.expect(m.Item)
        assert raw == item_wire(w.worker_id, 7, seq, {"i": seq})
        fake_daemon.reply(peer, m.Ack())
    assert fake_daemon.nothing(0.3), "an item beyond the window of 2 was sent"
    # A stale and a repeated grant change nothing; a larger one reopens the window.
    fake_daemon.publish(worker_topic(w.worker_id), m.Credit(request_id=7, stream=0, items=1, bytes=MiB))
    fake_daemon.publish(worker_topic(w.worker_id), m.Credit(request_id=7, stream=0, items=2, bytes=MiB))
    assert fake_daemon.nothing(0.3)
    fake_daemon.publish(worker_topic(w.worker_id), m.Credit(request_id=7, stream=0, items=4, bytes=2 * MiB))
    for seq in (2, 3):
        peer, raw, item = fake_daemon.expect(m.Item)
        assert raw == item_wire(w.worker_id, 7, seq, {"i": seq})
        fake_daemon.reply(peer, m.Ack())
    assert fake_daemon.nothing(0.3)
    fake_daemon.publish(worker_topic(w.worker_id), m.Credit(request_id=7, stream=0, items=100, bytes=3 * MiB))
    peer, raw, item = fake_daemon.expect(m.Item)
    assert raw == item_wire(w.worker_id, 7, 4, {"i": 4})
    fake_daemon.reply(peer, m.Ack())
    # The generator's return value is the outputs, after the last item.
    peer, raw, res = fake_daemon.expect(m.Result)
    assert raw == wire(w.worker_id, m.Result(7, {"total": 5}))
    fake_daemon.reply(peer, m.Ack())


def test_byte_window_counts_the_items_values(fake_daemon, streaming_worker):
    """The send rule: bytes sent before the item < granted bytes; the item's own size does not
    count, so one item larger than the window still goes (PROTOCOL.md §7.8)."""
    w = streaming_worker
    attach_and_confirm(fake_daemon, w, ping_interval_ms=10_000)  # no pings needed here
    s0, s1 = (len(encode_values({"i": i})) for i in range(2))
    assert s1 > s0  # an int 0 is the default, left out of the buffer
    request(fake_daemon, w, 8, "emitter", {"n": 6}, stream_window_items=1000, stream_window_bytes=2 * s0)
    for seq in range(2):  # 0 bytes before item 0, s0 before item 1: both < 2*s0
        peer, raw, _ = fake_daemon.expect(m.Item)
        assert raw == item_wire(w.worker_id, 8, seq, {"i": seq})
        fake_daemon.reply(peer, m.Ack())
    assert fake_daemon.nothing(0.3), "an item beyond the byte window was sent"  # s0 + s1 > 2*s0
    fake_daemon.publish(worker_topic(w.worker_id), m.Credit(request_id=8, stream=0, items=1000, bytes=s0 + s1 + 1))
    peer, raw, _ = fake_daemon.expect(m.Item)  # s0 + s1 before it < s0 + s1 + 1
    assert raw == item_wire(w.worker_id, 8, 2, {"i": 2})
    fake_daemon.reply(peer, m.Ack())
    assert fake_daemon.nothing(0.3)
    fake_daemon.publish(worker_topic(w.worker_id), m.Credit(request_id=8, stream=0, items=1000, bytes=100 * s1))
    for seq in range(3, 6):
        peer, raw, _ = fake_daemon.expect(m.Item)
        assert raw == item_wire(w.worker_id, 8, seq, {"i": seq})
        fake_daemon.reply(peer, m.Ack())
    peer, raw, _ = fake_daemon.expect(m.Result)
    assert raw == wire(w.worker_id, m.Result(8, {"sent": 6}))
    fake_daemon.reply(peer, m.Ack())


def test_credit_for_another_stream_or_request_is_ignored(fake_daemon, streaming_worker):
    w = streaming_worker
    attach_and_confirm(fake_daemon, w, ping_interval_ms=10_000)  # no pings needed here
    request(fake_daemon, w, 9, "count", {"n": 3}, stream_window_items=1, stream_window_bytes=MiB)
    peer, raw, _ = fake_daemon.expect(m.Item)
    fake_daemon.reply(peer, m.Ack())
    topic = worker_topic(w.worker_id)
    fake_daemon.publish(topic, m.Credit(request_id=9, stream=1, items=10, bytes=MiB))  # a chunk stream
    fake_daemon.publish(topic, m.Credit(request_id=99, stream=0, items=10, bytes=MiB))  # not held
    fake_daemon.publish("b:", m.Credit(request_id=9, stream=0, items=10, bytes=MiB))  # not its topic
    assert fake_daemon.nothing(0.3)
    fake_daemon.publish(topic, m.Credit(request_id=9, stream=0, items=10, bytes=MiB))
    for seq in (1, 2):
        peer, raw, _ = fake_daemon.expect(m.Item)
        assert raw == item_wire(w.worker_id, 9, seq, {"i": seq})
        fake_daemon.reply(peer, m.Ack())
    peer, raw, _ = fake_daemon.expect(m.Result)
    fake_daemon.reply(peer, m.Ack())


@pytest.mark.parametrize("node", ["count", "acount"])
def test_abort_mid_stream_closes_the_generator(fake_daemon, streaming_worker, node):
    w = streaming_worker
    attach_and_confirm(fake_daemon, w, ping_interval_ms=10_000)  # no pings needed here
    request(fake_daemon, w, 10, node, {"n": 1000}, stream_window_items=3, stream_window_bytes=MiB)
    for seq in range(3):
        peer, raw, _ = fake_daemon.expect(m.Item)
        assert raw == item_wire(w.worker_id, 10, seq, {"i": seq})
        fake_daemon.reply(peer, m.Ack())
    assert not w.closed.is_set()  # type: ignore[attr-defined]  # suspended at its yield, waiting for credit
    fake_daemon.publish(worker_topic(w.worker_id), m.Abort(request_id=10, code=ErrorCode.CANCELLED, reason="cancelled by the client"))
    assert w.closed.wait(WAIT), "the generator was not closed on Abort"  # type: ignore[attr-defined]
    peer, raw, fail = fake_daemon.expect(m.Failure)
    assert raw == wire(w.worker_id, m.Failure(10, ErrorCode.WORKER_ERROR, "aborted: cancelled by the client"))
    fake_daemon.reply(peer, m.Ack(late=True))
    # No item after the Abort, even with credit.
    fake_daemon.publish(worker_topic(w.worker_id), m.Credit(request_id=10, stream=0, items=100, bytes=MiB))
    assert fake_daemon.nothing(0.3)


def test_emit_returns_false_once_aborted(fake_daemon, streaming_worker):
    w = streaming_worker
    attach_and_confirm(fake_daemon, w, ping_interval_ms=10_000)  # no pings needed here
    request(fake_daemon, w, 11, "emitter", {"n": 10}, stream_window_items=1, stream_window_bytes=MiB)
    peer, raw, _ = fake_daemon.expect(m.Item)
    fake_daemon.reply(peer, m.Ack())
    fake_daemon.publish(worker_topic(w.worker_id), m.Abort(request_id=11, code=ErrorCode.TIMEOUT, reason="deadline passed"))
    peer, raw, fail = fake_daemon.expect(m.Failure)
    assert raw == wire(w.worker_id, m.Failure(11, ErrorCode.TIMEOUT, "aborted: deadline passed"))
    fake_daemon.reply(peer, m.Ack(late=True))
    assert w.emitted == [("aborted at", 1)]  # type: ignore[attr-defined]


def test_emit_async_waits_for_credit(fake_daemon, streaming_worker):
    w = streaming_worker
    attach_and_confirm(fake_daemon, w, ping_interval_ms=10_000)  # no pings needed here
    request(fake_daemon, w, 12, "aemitter", {"n": 3}, stream_window_items=1, stream_window_bytes=MiB)
    for seq in range(3):
        peer, raw, _ = fake_daemon.expect(m.Item)
        assert raw == item_wire(w.worker_id, 12, seq, {"i": seq})
        fake_daemon.reply(peer, m.Ack())
        if seq < 2:
            assert fake_daemon.nothing(0.2)
            fake_daemon.publish(worker_topic(w.worker_id), m.Credit(request_id=12, stream=0, items=seq + 2, bytes=MiB))
    peer, raw, _ = fake_daemon.expect(m.Result)
    assert raw == wire(w.worker_id, m.Result(12, {"sent": 3}))
    fake_daemon.reply(peer, m.Ack())


def test_emitting_when_no_items_were_asked_for(fake_daemon, streaming_worker):
    w = streaming_worker
    attach_and_confirm(fake_daemon, w, ping_interval_ms=10_000)  # no pings needed here
    # A handler that catches StreamNotRequested goes on; ctx.streaming told it beforehand.
    request(fake_daemon, w, 13, "polite")
    peer, raw, res = fake_daemon.expect(m.Result)
    assert res.outputs["streaming"] is False and "asked for no items" in res.outputs["error"]
    fake_daemon.reply(peer, m.Ack())
    # A generator that does not: the error is raised at its yield and fails the call.
    request(fake_daemon, w, 14, "count", {"n": 3})
    peer, raw, fail = fake_daemon.expect(m.Failure)
    assert fail.code == ErrorCode.WORKER_ERROR and "the caller of request 14 asked for no items" in fail.message
    fake_daemon.reply(peer, m.Ack())
    assert w.closed.wait(WAIT)  # type: ignore[attr-defined]


def test_emit_misuse_is_reported_to_the_handler(fake_daemon, streaming_worker):
    w = streaming_worker
    attach_and_confirm(fake_daemon, w, ping_interval_ms=10_000)  # no pings needed here
    request(fake_daemon, w, 15, "wrong_emit", stream_window_items=4, stream_window_bytes=MiB)
    peer, raw, fail = fake_daemon.expect(m.Failure)
    assert fail.code == ErrorCode.WORKER_ERROR and "emit_async" in fail.message
    fake_daemon.reply(peer, m.Ack())
    # A yielded value that is not a dict: TypeError at the yield, which the generator may catch.
    request(fake_daemon, w, 16, "bad_item", stream_window_items=4, stream_window_bytes=MiB)
    peer, raw, item = fake_daemon.expect(m.Item)
    assert item.seq == 0 and "an item is a dict of values, not a list" in item.values["recovered"]
    fake_daemon.reply(peer, m.Ack())
    peer, raw, res = fake_daemon.expect(m.Result)
    assert raw == wire(w.worker_id, m.Result(16, {}))
    fake_daemon.reply(peer, m.Ack())
