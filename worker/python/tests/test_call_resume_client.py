"""Resumable calls in Client and AsyncClient (PROTOCOL.md §8.3, rule C6) against a fake daemon
client socket: a ROUTER in the test, closed and bound again so that the client's connection
breaks and libzmq connects it again — a new peer, as musterd sees a caller whose link broke.
The fake plays musterd's side: it answers the CallResume for each CallRef (Accepted and the
call goes on, the kept terminal reply, or "no such call") and checks what the client says it
received (items taken, each chunked output's offset)."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest

import muster
from muster import messages as m
from muster.errors import ErrorCode
from muster.values import ChunkedValue

from conftest import WAIT
from test_durable_client import FakeDaemonClientSocket

MiB = 1 << 20
TOKEN = 0x9E3779B97F4A7C15  # the vectors' call token
NO_SUCH_CALL = "no such call (it ended more than --resume-keep-ms ago, or another daemon instance accepted it)"


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def pattern(n: int) -> bytes:
    """``n`` bytes where each MiB differs from the others (a misplaced chunk shows)."""
    return b"".join(bytes([i % 251]) * MiB for i in range(n // MiB + 1))[:n]


def chunk(data: bytes, rid: int, offset: int, stream: int = 2) -> m.Chunk:
    return m.Chunk(rid, stream, offset, data[offset : offset + MiB])


@pytest.fixture
def daemon(short_tmp):
    d = FakeDaemonClientSocket(short_tmp)
    yield d
    d.close()


def client_for(daemon, **kw) -> muster.Client:
    kw.setdefault("resume_timeout", WAIT)
    kw.setdefault("resume_after", 30.0)  # no stall Credit unless a test wants one
    return muster.Client(daemon.address, connect_timeout=2.0, list_timeout=WAIT, **kw)


def submitted(daemon, token: int = TOKEN):
    """Reads the next Submit; answers Accepted with ``token`` (musterd does for a resumable
    call, C1) unless ``token`` is 0. Returns (peer, request id, Submit)."""
    peer, msg = daemon.recv_body(m.Submit)
    if token:
        daemon.reply(peer, msg.request_id, m.Accepted(queued=False, job_id=0, call_token=token))
    return peer, msg.request_id, msg.body


def reconnected(daemon):
    """Breaks the client's connection; returns (peer, the CallResume message) it sends on its
    next one."""
    daemon.restart()
    peer, msg = daemon.recv_body(m.CallResume)
    return peer, msg


# ---- which calls ask resumable -------------------------------------------------------------


def test_only_calls_that_stream_ask_resumable_unless_told(daemon, tmp_path):
    with client_for(daemon, chunk_threshold=MiB) as client:
        cases = [
            (lambda: client.submit("plain", {"x": 1}), False),  # a small call pays no Accepted
            (lambda: client.stream("items"), True),
            (lambda: client.submit("upload", {"data": b"u" * (MiB + 1)}), True),
            (lambda: client.submit("download", output_dir=tmp_path), True),
            (lambda: client.submit("download", output_sink=lambda b: None), True),
            (lambda: client.submit("plain", {"x": 1}, resumable=True), True),
            (lambda: client.stream("items", resumable=False), False),
            (lambda: client.submit("upload", {"data": b"u" * (MiB + 1)}, resumable=False), False),
            (lambda: client.submit("plain", {"x": 1}, durable=True, resumable=True), False),
        ]
        for make, resumable in cases:
            make()
            _, msg = daemon.recv_body(m.Submit)
            assert msg.body.resumable is resumable, msg.body
            if not msg.body.durable:
                assert msg.body.want_accepted is False  # musterd sends a resumable call's Accepted anyway


# ---- the sync client -----------------------------------------------------------------------


def test_a_chunked_download_goes_on_after_a_reconnect_from_the_offset_the_caller_has(daemon, tmp_path):
    data = pattern(4 * MiB + 3)
    with client_for(daemon) as client:
        call = client.submit("download", output_dir=tmp_path)
        peer, rid, submit = submitted(daemon)
        assert submit.resumable is True
        assert call.accepted.wait(WAIT) and call.call_token == TOKEN
        for offset in (0, MiB):
            daemon.reply(peer, rid, chunk(data, rid, offset))
        # the grants as it took both chunks: it has them when the link breaks
        assert [daemon.recv_body(m.Credit)[1].body.bytes for _ in range(2)] == [5 * MiB, 6 * MiB]
        peer, msg = reconnected(daemon)
        (ref,) = msg.body.calls
        new = ref.request_id
        assert ref == m.CallRef(TOKEN, new, 0, [m.StreamOffset(2, 2 * MiB)])
        assert new not in (0, rid, msg.request_id)
        assert not call.done()  # kept while it waits to be taken back
        daemon.reply(peer, new, m.Accepted(queued=False, job_id=0, call_token=TOKEN))
        daemon.reply(peer, new, chunk(data, new, 2 * MiB))
        _, credit = daemon.recv_body(m.Credit)  # it grants on under its new request id
        assert (credit.request_id, credit.body.request_id, credit.body.stream, credit.body.bytes) == (new, new, 2, 7 * MiB)
        for offset in (3 * MiB, 4 * MiB):
            daemon.reply(peer, new, chunk(data, new, offset))
        daemon.reply(peer, new, m.Result(new, {"data": ChunkedValue(2, len(data), sha(data))}))
        assert call.result(WAIT) == {"data": tmp_path / "data"}
        assert call.request_id == new
    assert (tmp_path / "data").read_bytes() == data


def test_a_stream_of_items_goes_on_after_a_reconnect_and_grants_its_credit_again(daemon):
    with client_for(daemon) as client:
        s = client.stream("count", window_items=2, window_bytes=MiB)
        peer, rid, submit = submitted(daemon)
        assert (submit.resumable, submit.stream_window_items) == (True, 2)
        for i in (0, 1):
            daemon.reply(peer, rid, m.Item(rid, i, {"i": i}))
        items = iter(s)
        assert [next(items), next(items)] == [{"i": 0}, {"i": 1}]
        grants = [daemon.recv_body(m.Credit)[1].body.items for _ in range(2)]
        assert grants == [3, 4]  # consumed + window, each half window
        peer, msg = reconnected(daemon)
        (ref,) = msg.body.calls
        new = ref.request_id
        assert (ref.call_token, ref.items_received, ref.outputs) == (TOKEN, 2, [])
        daemon.reply(peer, new, m.Accepted(queued=False, job_id=0, call_token=TOKEN))
        # The grant it sent last may have been lost with the link: sent again, under the new id.
        _, again = daemon.recv_body(m.Credit)
        assert (again.request_id, again.body.request_id, again.body.stream, again.body.items) == (new, new, 0, 4)
        daemon.reply(peer, new, m.Item(new, 2, {"i": 2}))
        daemon.reply(peer, new, m.Result(new, {"n": 3}))
        assert next(items) == {"i": 2}
        assert list(items) == []
        assert s.result(WAIT) == {"n": 3} and s.items_received == 3


def test_a_chunked_upload_goes_back_to_the_daemons_resume_credit_under_the_new_id(daemon):
    data = pattern(3 * MiB)
    with client_for(daemon, chunk_threshold=MiB) as client:
        call = client.submit("upload", {"data": data})
        peer, rid, submit = submitted(daemon)
        assert submit.resumable is True and submit.inputs == {"data": ChunkedValue(1, len(data), sha(data))}
        assert call.accepted.wait(WAIT)
        daemon.reply(peer, rid, m.Credit(rid, 1, 0, 2 * MiB))
        got = [daemon.recv_body(m.Chunk)[1].body for _ in range(2)]
        assert [(c.request_id, c.offset) for c in got] == [(rid, 0), (rid, MiB)]
        peer, msg = reconnected(daemon)
        (ref,) = msg.body.calls
        new = ref.request_id
        assert ref == m.CallRef(TOKEN, new, 0, [])  # inputs: musterd knows what it forwarded
        daemon.reply(peer, new, m.Accepted(queued=False, job_id=0, call_token=TOKEN))
        # musterd forwarded 1 MiB of stream 1: the rest was lost in the break (C4)
        daemon.reply(peer, new, m.Credit(new, 1, 0, 4 * MiB, MiB, True))
        again = [daemon.recv_body(m.Chunk)[1] for _ in range(2)]
        assert [(c.request_id, c.body.request_id, c.body.offset) for c in again] == [(new, new, MiB), (new, new, 2 * MiB)]
        assert b"".join(c.body.data for c in again) == data[MiB:]
        daemon.reply(peer, new, m.Result(new, {"ok": True}))
        assert call.result(WAIT) == {"ok": True}


def test_a_kept_reply_is_the_calls_reply_delivered_once(daemon):
    with client_for(daemon) as client:
        call = client.submit("x", {"x": 1}, resumable=True)
        peer, rid, _ = submitted(daemon)
        assert call.accepted.wait(WAIT)
        delivered = []
        call.future.add_done_callback(lambda f: delivered.append(f.result()))
        peer, msg = reconnected(daemon)
        new = msg.body.calls[0].request_id
        daemon.reply(peer, new, m.Result(new, {"n": 1}))  # the reply the break lost, kept by musterd
        daemon.reply(peer, new, m.Result(new, {"n": 2}))  # never sent twice by musterd: dropped
        daemon.reply(peer, rid, m.Result(rid, {"n": 3}))  # nor on the old id
        assert call.result(WAIT) == {"n": 1}
        assert daemon.nothing_within(0.3)  # nothing to acknowledge, nothing to cancel
        assert delivered == [{"n": 1}]


def test_no_such_call_on_resume_fails_the_call_with_musterds_failure(daemon):
    with client_for(daemon) as client:
        call = client.stream("count")
        submitted(daemon)
        assert call.accepted.wait(WAIT)
        peer, msg = reconnected(daemon)
        new = msg.body.calls[0].request_id
        daemon.reply(peer, new, m.Failure(new, ErrorCode.UNAVAILABLE, NO_SUCH_CALL))
        with pytest.raises(muster.Unavailable, match="no such call"):
            call.result(WAIT)


def test_a_call_without_its_token_yet_fails_unavailable_as_before(daemon):
    with client_for(daemon) as client:
        call = client.stream("count")
        daemon.recv_body(m.Submit)  # no Accepted came: nothing to resume it with
        daemon.restart()
        with pytest.raises(muster.Unavailable, match="lost the connection"):
            call.result(WAIT)
        assert daemon.nothing_within(0.5)  # no CallResume


def test_a_plain_call_is_not_kept(daemon):
    with client_for(daemon) as client:
        call = client.submit("x", {"x": 1})
        daemon.recv_body(m.Submit)  # musterd sends a call that is not resumable no Accepted
        daemon.restart()
        with pytest.raises(muster.Unavailable, match="lost the connection"):
            call.result(WAIT)
        assert daemon.nothing_within(0.5)


def test_a_kept_call_fails_unavailable_when_no_connection_comes_back(daemon):
    with client_for(daemon, resume_timeout=0.5) as client:
        call = client.stream("count")
        submitted(daemon)
        assert call.accepted.wait(WAIT)
        daemon.stop()
        with pytest.raises(muster.Unavailable, match="no connection came back within 0.5s"):
            call.result(WAIT)
        daemon._bind()  # for the fixture's close


def test_a_kept_call_fails_unavailable_at_its_deadline(daemon):
    with client_for(daemon) as client:  # the reconnect wait (WAIT) is longer than the deadline
        call = client.stream("count", timeout_ms=300)
        submitted(daemon)
        assert call.accepted.wait(WAIT)
        daemon.stop()
        with pytest.raises(muster.Unavailable, match="its deadline passed"):
            call.result(WAIT)
        daemon._bind()


def test_a_call_resume_refused_as_a_whole_fails_the_calls_it_named(daemon):
    with client_for(daemon) as client:
        call = client.stream("count")
        submitted(daemon)
        assert call.accepted.wait(WAIT)
        peer, msg = reconnected(daemon)
        daemon.reply(peer, msg.request_id, m.Failure(msg.request_id, ErrorCode.INVALID_REQUEST, "too many calls"))
        with pytest.raises(muster.InvalidRequest, match="resuming request .*too many calls"):
            call.result(WAIT)


def test_an_unanswered_call_resume_fails_after_the_wait(daemon):
    with client_for(daemon, resume_timeout=0.5) as client:
        call = client.stream("count")
        submitted(daemon)
        assert call.accepted.wait(WAIT)
        reconnected(daemon)  # and never answered
        with pytest.raises(muster.Unavailable, match="no answer to its CallResume"):
            call.result(WAIT)


def test_cancel_while_disconnected_is_sent_after_the_call_resume(daemon):
    with client_for(daemon) as client:
        call = client.stream("count")
        submitted(daemon)
        assert call.accepted.wait(WAIT)
        daemon.stop()
        pause = threading.Event()
        while client._connected and not pause.wait(0.02):  # until the client saw the loss
            pass
        call.cancel()
        daemon._bind()
        peer, resume = daemon.recv_body(m.CallResume)
        new = resume.body.calls[0].request_id
        _, cancel = daemon.recv_body(m.Cancel)
        assert cancel.request_id == new
        daemon.reply(peer, new, m.Failure(new, ErrorCode.CANCELLED, "cancelled"))
        with pytest.raises(muster.Cancelled):
            call.result(WAIT)


# ---- the asyncio client --------------------------------------------------------------------


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WAIT * 2))


def test_async_chunked_download_goes_on_after_a_reconnect(daemon):
    data = pattern(3 * MiB + 1)

    async def main():
        async with muster.AsyncClient(daemon.address, connect_timeout=2.0, resume_timeout=WAIT, resume_after=30.0) as c:
            loop = asyncio.get_running_loop()
            call = await c.submit("download", resumable=True)
            peer, rid, submit = await loop.run_in_executor(None, submitted, daemon)
            assert submit.resumable is True
            for offset in (0, MiB):
                daemon.reply(peer, rid, chunk(data, rid, offset))
            for _ in range(2):
                await loop.run_in_executor(None, daemon.recv_body, m.Credit)
            assert call.call_token == TOKEN
            peer, msg = await loop.run_in_executor(None, reconnected, daemon)
            (ref,) = msg.body.calls
            new = ref.request_id
            assert ref == m.CallRef(TOKEN, new, 0, [m.StreamOffset(2, 2 * MiB)])
            daemon.reply(peer, new, m.Accepted(queued=False, job_id=0, call_token=TOKEN))
            for offset in (2 * MiB, 3 * MiB):
                daemon.reply(peer, new, chunk(data, new, offset))
            daemon.reply(peer, new, m.Result(new, {"data": ChunkedValue(2, len(data), sha(data))}))
            assert await call == {"data": data}
            assert call.request_id == new

    run(main())


def test_async_call_resume_refused_as_a_whole_fails_the_calls_it_named(daemon):
    async def main():
        async with muster.AsyncClient(daemon.address, connect_timeout=2.0, resume_timeout=WAIT, resume_after=30.0) as c:
            loop = asyncio.get_running_loop()
            call = await c.submit("download", resumable=True)
            await loop.run_in_executor(None, submitted, daemon)
            while call.call_token is None:
                await asyncio.sleep(0.01)
            peer, msg = await loop.run_in_executor(None, reconnected, daemon)
            (ref,) = msg.body.calls
            daemon.reply(peer, msg.request_id, m.Failure(msg.request_id, ErrorCode.INVALID_REQUEST, "too many calls"))
            with pytest.raises(muster.InvalidRequest, match=f"resuming request {ref.request_id} \\(download\\): too many calls"):
                await call

    run(main())


def test_async_stream_no_such_call_and_a_call_without_its_token(daemon):
    async def main():
        async with muster.AsyncClient(daemon.address, connect_timeout=2.0, resume_timeout=WAIT) as c:
            loop = asyncio.get_running_loop()
            kept = c.stream("count", window_items=2, window_bytes=MiB)
            items = kept.__aiter__()
            first = asyncio.ensure_future(items.__anext__())  # sends the Submit
            peer, rid, submit = await loop.run_in_executor(None, submitted, daemon)
            assert submit.resumable is True
            daemon.reply(peer, rid, m.Item(rid, 0, {"i": 0}))
            assert await first == {"i": 0}
            await loop.run_in_executor(None, daemon.recv_body, m.Credit)
            tokenless = await c.submit("upload", {"data": b"u" * (c.chunk_threshold + 1)})
            await loop.run_in_executor(None, submitted, daemon, 0)
            peer, msg = await loop.run_in_executor(None, reconnected, daemon)
            (ref,) = msg.body.calls  # only the call that has its token
            assert (ref.call_token, ref.items_received) == (TOKEN, 1)
            with pytest.raises(muster.Unavailable, match="lost the connection"):
                await tokenless
            daemon.reply(peer, ref.request_id, m.Failure(ref.request_id, ErrorCode.UNAVAILABLE, NO_SUCH_CALL))
            with pytest.raises(muster.Unavailable, match="no such call"):
                await items.__anext__()

    run(main())
