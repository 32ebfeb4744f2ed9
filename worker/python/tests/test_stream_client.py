"""Items on the caller's side (docs/STREAMS.md §2, PROTOCOL.md §7.8) against a fake client
socket: the Submit asks for the window, the items come out in order, the credit is cumulative
(consumed + window, once half a window was consumed), the terminal reply ends the iteration,
and an error comes after the items received before it. Sync and asyncio clients alike."""

from __future__ import annotations

import asyncio
import threading

import pytest

import muster
from muster import messages as m
from muster.errors import ErrorCode
from muster.values import encode_values

from conftest import WAIT
from test_client import FakeClientSocket


@pytest.fixture
def daemon(short_tmp):
    d = FakeClientSocket(short_tmp)
    yield d
    d.close()


def serve(daemon, fake):
    """Runs the fake daemon's side in a thread. If it fails (an assertion, a message that never
    came), it closes its socket: the client sees the daemon go and fails its calls UNAVAILABLE,
    so the test ends instead of iterating forever; `errors` holds what failed."""
    errors = []

    def run():
        try:
            fake()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            daemon.router.close(0)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.errors = errors  # type: ignore[attr-defined]
    return t


def done(t) -> None:
    t.join(WAIT)
    assert not t.errors, t.errors[0]


def item(rid: int, seq: int, values) -> m.Item:
    return m.Item(request_id=rid, seq=seq, values=encode_values(values))


def size(values) -> int:
    return len(encode_values(values))


def test_stream_items_credit_and_outputs(daemon):
    """Window of 4 items: after the 2nd item taken the client grants (2 + 4); the grants are
    cumulative totals of items and bytes, never increments."""
    credits = []

    def fake():
        peer, raw, msg = daemon.recv()
        sub = msg.body
        rid = msg.request_id
        assert (sub.stream_window_items, sub.stream_window_bytes) == (4, 1000)
        assert raw == m.encode(m.ClientMessage(rid, m.Submit("count", {"n": 10}, None, 0, stream_window_items=4, stream_window_bytes=1000, chunk_window_bytes=4 << 20, resumable=True)))
        sent = 0
        consumed_bytes = 0
        granted = 4
        while sent < 10:
            while sent < granted and sent < 10:
                daemon.reply(peer, rid, item(rid, sent, {"i": sent}))
                sent += 1
            if sent == 10:
                break
            _, craw, cmsg = daemon.recv()
            assert isinstance(cmsg.body, m.Credit), cmsg
            credits.append((cmsg.body.items, cmsg.body.bytes))
            assert cmsg.request_id == rid and cmsg.body.request_id == rid and cmsg.body.stream == 0
            granted = cmsg.body.items
        daemon.reply(peer, rid, m.Result(rid, {"total": 10}))

    t = serve(daemon, fake)
    with muster.Client(daemon.address, connect_timeout=2.0) as client:
        s = client.stream("count", {"n": 10}, window_items=4, window_bytes=1000)
        got = list(s)
        assert got == [{"i": i} for i in range(10)]
        assert s.result(WAIT) == {"total": 10}
        assert s.items_received == 10
    done(t)
    taken = lambda n: sum(size({"i": i}) for i in range(n))  # noqa: E731 - bytes of the first n items
    # Granted after 2, 4 and 6 items taken: consumed + window, in items and bytes.
    assert credits == [(2 + 4, taken(2) + 1000), (4 + 4, taken(4) + 1000), (6 + 4, taken(6) + 1000)]


def test_stream_error_after_items(daemon):
    def fake():
        peer, raw, msg = daemon.recv()
        rid = msg.request_id
        daemon.reply(peer, rid, item(rid, 0, {"i": 0}))
        daemon.reply(peer, rid, m.Failure(rid, ErrorCode.WORKER_LOST, "the worker was lost after 1 items"))

    t = serve(daemon, fake)
    with muster.Client(daemon.address, connect_timeout=2.0) as client:
        s = client.stream("count", {"n": 10})
        it = iter(s)
        assert next(it) == {"i": 0}
        with pytest.raises(muster.WorkerLost, match="lost after 1 items"):
            next(it)
        with pytest.raises(muster.WorkerLost):
            s.result(WAIT)
    done(t)


def test_items_out_of_order_fail_the_call_and_cancel_it(daemon):
    seen = []

    def fake():
        peer, raw, msg = daemon.recv()
        rid = msg.request_id
        daemon.reply(peer, rid, item(rid, 0, {"i": 0}))
        daemon.reply(peer, rid, item(rid, 2, {"i": 2}))  # item 1 is missing
        _, _, cancel = daemon.recv()
        seen.append(cancel)

    t = serve(daemon, fake)
    with muster.Client(daemon.address, connect_timeout=2.0) as client:
        s = client.stream("count", {"n": 10})
        with pytest.raises(muster.BadMessage, match="item 2 arrived where item 1 was due"):
            for _ in s:
                pass
    done(t)
    assert isinstance(seen[0].body, m.Cancel) and seen[0].request_id == s.request_id


def test_leaving_the_with_block_early_cancels(daemon):
    seen = []

    def fake():
        peer, raw, msg = daemon.recv()
        rid = msg.request_id
        for seq in range(3):
            daemon.reply(peer, rid, item(rid, seq, {"i": seq}))
        _, _, cancel = daemon.recv()
        seen.append(cancel)
        daemon.reply(peer, rid, m.Failure(rid, ErrorCode.CANCELLED, "cancelled by the client"))

    t = serve(daemon, fake)
    with muster.Client(daemon.address, connect_timeout=2.0) as client:
        with client.stream("count", {"n": 10}) as s:
            for got in s:
                if got["i"] == 1:
                    break
        with pytest.raises(muster.Cancelled):
            s.result(WAIT)
    done(t)
    assert isinstance(seen[0].body, m.Cancel)


def test_a_plain_call_sends_no_window_and_drops_stray_items(daemon):
    def fake():
        peer, raw, msg = daemon.recv()
        rid = msg.request_id
        assert msg.body.stream_window_items == 0 and msg.body.stream_window_bytes == 0
        daemon.reply(peer, rid, item(rid, 0, {"i": 0}))
        daemon.reply(peer, rid, m.Result(rid, {"ok": True}))

    t = serve(daemon, fake)
    with muster.Client(daemon.address, connect_timeout=2.0) as client:
        assert client.call("count", {"n": 1}) == {"ok": True}
    done(t)


def test_bad_windows_are_refused(daemon):
    with muster.Client(daemon.address, connect_timeout=2.0) as client:
        for bad in ({"window_items": 0}, {"window_items": 2**32}, {"window_bytes": 0}, {"window_items": True}):
            with pytest.raises(ValueError):
                client.stream("count", **bad)


def test_async_stream(daemon):
    credits = []

    def fake():
        peer, raw, msg = daemon.recv()
        rid = msg.request_id
        assert (msg.body.stream_window_items, msg.body.stream_window_bytes) == (2, 4 * 1024 * 1024)
        daemon.reply(peer, rid, item(rid, 0, {"i": 0}))
        daemon.reply(peer, rid, item(rid, 1, {"i": 1}))
        _, _, cmsg = daemon.recv()
        credits.append((cmsg.body.items, cmsg.body.bytes))
        daemon.reply(peer, rid, item(rid, 2, {"i": 2}))
        daemon.reply(peer, rid, m.Result(rid, {"total": 3}))

    t = serve(daemon, fake)

    async def main():
        async with muster.AsyncClient(daemon.address, connect_timeout=2.0) as client:
            s = client.stream("count", {"n": 3}, window_items=2)
            got = [x async for x in s]
            return got, await s

    got, outputs = asyncio.run(main())
    done(t)
    assert got == [{"i": 0}, {"i": 1}, {"i": 2}] and outputs == {"total": 3}
    assert credits == [(1 + 2, size({"i": 0}) + 4 * 1024 * 1024)]


def test_async_stream_error_and_early_exit(daemon):
    seen = []

    def fake():
        peer, raw, msg = daemon.recv()
        rid = msg.request_id
        daemon.reply(peer, rid, item(rid, 0, {"i": 0}))
        daemon.reply(peer, rid, m.Failure(rid, ErrorCode.TIMEOUT, "deadline passed"))
        peer, raw, msg = daemon.recv()
        rid2 = msg.request_id
        daemon.reply(peer, rid2, item(rid2, 0, {"i": 0}))
        _, _, cancel = daemon.recv()
        seen.append((rid2, cancel))
        daemon.reply(peer, rid2, m.Failure(rid2, ErrorCode.CANCELLED, "cancelled"))

    t = serve(daemon, fake)

    async def main():
        async with muster.AsyncClient(daemon.address, connect_timeout=2.0) as client:
            got = []
            with pytest.raises(muster.Timeout):
                async for x in client.stream("count", {"n": 3}):
                    got.append(x)
            assert got == [{"i": 0}]
            async with client.stream("count", {"n": 3}) as s:
                async for x in s:
                    break
            with pytest.raises(muster.Cancelled):
                await s

    asyncio.run(main())
    done(t)
    assert isinstance(seen[0][1].body, m.Cancel) and seen[0][1].request_id == seen[0][0]
