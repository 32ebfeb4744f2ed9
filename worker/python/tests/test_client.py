"""The client against a fake daemon client socket (a ROUTER in the test)."""

from __future__ import annotations

import threading

import pytest
import zmq

import muster
from muster import messages as m
from muster.errors import ErrorCode
from muster.values import encode_values

from conftest import WAIT


class FakeClientSocket:
    def __init__(self, directory: str):
        self.ctx = zmq.Context()
        self.address = f"ipc://{directory}/client.sock"
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(self.address)

    def recv(self):
        assert self.router.poll(int(WAIT * 1000)), "no message from the client"
        frames = self.router.recv_multipart()
        assert len(frames) == 2, "a DEALER client sends one frame"
        return frames[0], frames[1], m.decode_client_message(frames[1])

    def reply(self, peer, rid, body):
        self.router.send_multipart([peer, m.encode(m.ClientReply(request_id=rid, body=body))])

    def close(self):
        self.router.close(0)
        self.ctx.term()


@pytest.fixture
def daemon(short_tmp):
    d = FakeClientSocket(short_tmp)
    yield d
    d.close()


@pytest.fixture
def client(daemon):
    c = muster.Client(daemon.address, connect_timeout=2.0, list_timeout=WAIT)
    yield c
    c.close()


def serve_one(daemon, handler):
    t = threading.Thread(target=handler, daemon=True)
    t.start()
    return t


def test_call_sends_submit_and_returns_outputs(daemon, client):
    def fake():
        peer, raw, msg = daemon.recv()
        # every Submit takes chunked outputs, in a 4 MiB window (PROTOCOL.md §7.9)
        submit = m.Submit("hello", {"name": "Ada"}, None, 1500, chunk_window_bytes=4 << 20)
        assert raw == m.encode(m.ClientMessage(msg.request_id, submit))
        assert msg.body.payload_frames is False  # outputs stay inside the Result (PROTOCOL.md §2.1)
        daemon.reply(peer, msg.request_id, m.Result(msg.request_id, {"greeting": "Hello Ada"}))

    t = serve_one(daemon, fake)
    assert client.call("hello", {"name": "Ada"}, timeout_ms=1500) == {"greeting": "Hello Ada"}
    t.join(WAIT)


def test_progress_accepted_and_parameters(daemon, client):
    seen = []

    def fake():
        peer, raw, msg = daemon.recv()
        sub = msg.body
        assert sub.want_progress and sub.want_accepted and sub.parameters == {"p": 1} and sub.trace_id == "t"
        rid = msg.request_id
        daemon.reply(peer, rid, m.Accepted(queued=True))
        daemon.reply(peer, rid, m.Progress(rid, 1, 3, "one"))
        daemon.reply(peer, rid, m.Progress(rid, 2, 3, "two"))
        daemon.reply(peer, rid, m.Result(rid, None))

    t = serve_one(daemon, fake)
    call = client.submit("n", {}, progress=lambda s, tot, msg: seen.append((s, tot, msg)), parameters={"p": 1}, trace_id="t", want_accepted=True)
    assert call.result(WAIT) == {}
    assert call.queued is True
    assert seen == [(1, 3, "one"), (2, 3, "two")]
    t.join(WAIT)


@pytest.mark.parametrize(
    "code,exc",
    [
        (ErrorCode.NO_WORKER, muster.NoWorker),
        (ErrorCode.TIMEOUT, muster.Timeout),
        (ErrorCode.WORKER_ERROR, muster.WorkerError),
        (ErrorCode.INVALID_REQUEST, muster.InvalidRequest),
        (ErrorCode.QUEUE_FULL, muster.QueueFull),
    ],
)
def test_failures_raise_their_exception(daemon, client, code, exc):
    def fake():
        peer, raw, msg = daemon.recv()
        daemon.reply(peer, msg.request_id, m.Failure(msg.request_id, code, "why"))

    t = serve_one(daemon, fake)
    with pytest.raises(exc) as info:
        client.call("x")
    assert info.value.code == code and info.value.message == "why"
    t.join(WAIT)


def test_outputs_in_a_separate_frame_are_refused(daemon, client):
    # This client never submits with payload_frames: a Result saying its outputs are in another
    # frame fails the call with BAD_MESSAGE instead of returning empty outputs.
    def fake():
        peer, raw, msg = daemon.recv()
        rid = msg.request_id
        outputs = encode_values({"lost": True})  # the frame form: a Values buffer of its own
        result = m.encode(m.ClientReply(request_id=rid, body=m.Result(rid, None, outputs_in_frame=True)))
        daemon.router.send_multipart([peer, outputs, result])

    t = serve_one(daemon, fake)
    with pytest.raises(muster.BadMessage) as info:
        client.call("x", timeout_ms=1500)
    assert info.value.code == ErrorCode.BAD_MESSAGE
    assert info.value.message == "outputs in a separate frame were not requested"
    t.join(WAIT)


def test_cancel_and_interleaved_replies(daemon, client):
    c1 = client.submit("slow", {"i": 1})
    c2 = client.submit("slow", {"i": 2})
    peer, _, m1 = daemon.recv()
    _, _, m2 = daemon.recv()
    assert {m1.body.inputs["i"], m2.body.inputs["i"]} == {1, 2}
    ids = {m1.body.inputs["i"]: m1.request_id, m2.body.inputs["i"]: m2.request_id}
    assert ids[1] != ids[2]
    c1.cancel()
    _, raw, cancel = daemon.recv()
    assert raw == m.encode(m.ClientMessage(ids[1], m.Cancel()))
    daemon.reply(peer, ids[2], m.Result(ids[2], {"i": 2}))
    daemon.reply(peer, ids[1], m.Failure(ids[1], ErrorCode.CANCELLED, "cancelled by the client"))
    assert c2.result(WAIT) == {"i": 2}
    with pytest.raises(muster.Cancelled):
        c1.result(WAIT)


def test_a_call_cancelled_before_the_daemon_was_reached_never_reaches_it(short_tmp):
    # musterd is not there yet: both Submits wait in the client's socket. Cancelling the
    # first fails it locally, and it must not run once the daemon comes (before: its
    # Submit was still queued and delivered after the caller was told CANCELLED).
    address = f"ipc://{short_tmp}/late.sock"
    client = muster.Client(address, connect_timeout=30.0, list_timeout=WAIT)
    try:
        c1 = client.submit("slow", {"i": 1})
        c2 = client.submit("slow", {"i": 2})
        c1.cancel()
        with pytest.raises(muster.Cancelled):
            c1.result(WAIT)
        ctx = zmq.Context()
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.bind(address)
        try:
            assert router.poll(int(WAIT * 1000)), "the open call never reached the daemon"
            peer, raw = router.recv_multipart()
            first = m.decode_client_message(raw)
            assert isinstance(first.body, m.Submit) and first.body.inputs == {"i": 2}
            router.send_multipart([peer, m.encode(m.ClientReply(request_id=first.request_id, body=m.Result(first.request_id, {"i": 2})))])
            assert c2.result(WAIT) == {"i": 2}
            assert not router.poll(300), "a cancelled call's Submit reached the daemon"
        finally:
            router.close(0)
            ctx.term()
    finally:
        client.close()


def test_async_a_call_cancelled_before_the_daemon_was_reached_never_reaches_it(short_tmp):
    import asyncio

    address = f"ipc://{short_tmp}/late-async.sock"

    async def main():
        async with muster.AsyncClient(address, connect_timeout=30.0) as client:
            c1 = await client.submit("slow", {"i": 1})
            c2 = await client.submit("slow", {"i": 2})
            await c1.cancel()
            with pytest.raises(muster.Cancelled):
                await asyncio.wait_for(c1, WAIT)
            ctx = zmq.Context()
            router = ctx.socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            router.bind(address)
            loop = asyncio.get_running_loop()
            try:
                assert await loop.run_in_executor(None, router.poll, int(WAIT * 1000)), "the open call never reached the daemon"
                peer, raw = router.recv_multipart()
                first = m.decode_client_message(raw)
                assert isinstance(first.body, m.Submit) and first.body.inputs == {"i": 2}
                router.send_multipart([peer, m.encode(m.ClientReply(request_id=first.request_id, body=m.Result(first.request_id, {"i": 2})))])
                assert await asyncio.wait_for(c2, WAIT) == {"i": 2}
                assert not await loop.run_in_executor(None, router.poll, 300), "a cancelled call's Submit reached the daemon"
            finally:
                router.close(0)
                ctx.term()

    asyncio.run(asyncio.wait_for(main(), WAIT * 2))


def test_listings(daemon, client):
    node = m.NodeSpec(name="hello", inputs=[m.Port("name", "string")])

    def fake():
        for _ in range(3):
            peer, raw, msg = daemon.recv()
            rid = msg.request_id
            if isinstance(msg.body, m.ListNodes):
                daemon.reply(peer, rid, m.NodeList([m.NodeInfo(node, "default", 1, 4, 0, 0)]))
            elif isinstance(msg.body, m.ListWorkers):
                daemon.reply(peer, rid, m.WorkerList([m.WorkerInfo(worker_id="w", nodes=["hello"], state="ready")]))
            else:
                daemon.reply(peer, rid, m.StatusReport(version="0.1.0", instance="i", workers=1))

    t = serve_one(daemon, fake)
    nodes = client.nodes()
    assert nodes[0].spec.name == "hello" and nodes[0].workers == 1
    assert client.workers()[0].worker_id == "w"
    assert client.status().instance == "i"
    t.join(WAIT)


def test_no_daemon_is_unavailable(short_tmp):
    with muster.Client(f"ipc://{short_tmp}/nobody.sock", connect_timeout=0.3) as c:
        with pytest.raises(muster.Unavailable, match="cannot reach"):
            c.call("hello", {})
        with pytest.raises(muster.Unavailable):
            c.nodes()


def test_lost_connection_fails_open_calls(daemon):
    c = muster.Client(daemon.address)
    try:
        call = c.submit("slow")
        daemon.recv()
        daemon.router.close(0)  # the daemon goes away
        with pytest.raises(muster.Unavailable, match="lost"):
            call.result(WAIT)
    finally:
        c.close()


def test_unencodable_inputs_raise_at_once(client):
    with pytest.raises(OverflowError):
        client.submit("x", {"big": 2**64})
    with pytest.raises(TypeError):
        client.submit("x", {"set": {1}})


def test_tcp_needs_curve_or_insecure(tmp_path, monkeypatch):
    # No keys, not insecure: the client enrolls first, and without a token it cannot.
    monkeypatch.delenv("MUSTER_ENROLLMENT_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with pytest.raises(muster.EnrollmentError, match="insecure") as e:
        muster.Client("tcp://127.0.0.1:7901", data_dir=str(tmp_path / "data"))
    assert e.value.code == muster.ErrorCode.PERMISSION_DENIED
    assert "MUSTER_ENROLLMENT_TOKEN" in e.value.message
    # Its key pair was created on the way (as the C++ plan_enrollment does), nothing else.
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["client-curve.key", "client-curve.pub"]
