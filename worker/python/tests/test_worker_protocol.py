"""The worker against a fake daemon (tests/conftest.py): every sequence of PROTOCOL.md §7,
checked byte by byte against what the encoder produces for the expected message."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading

import pytest
import zmq

import muster
from muster import messages as m
from muster.errors import ErrorCode

from conftest import QUIET_PING_INTERVAL_MS, WAIT, attached_reply, worker_topic


def wire(worker_id: str, body) -> bytes:
    return m.encode(m.WorkerMessage(worker_id=worker_id, body=body))


def make_worker(fd, worker_id="pw1", capacity=2, **kw) -> muster.Worker:
    w = muster.Worker(
        worker_id=worker_id,
        capacity=capacity,
        request_address=fd.request_address,
        response_address=fd.response_address,
        shutdown_grace=kw.pop("shutdown_grace", 5.0),
        attach_timeout=kw.pop("attach_timeout", 5.0),
        **kw,
    )
    release = threading.Event()
    w.test_release = release  # type: ignore[attr-defined]

    @w.node(name="echo", description="outputs = inputs")
    def echo(ctx):
        return dict(ctx.inputs)

    @w.node(
        name="greet",
        inputs={"name": {"type": "string", "required": True}},
        outputs={"greeting": "string"},
        parameters={"punctuation": "!"},
    )
    def greet(ctx):
        return {"greeting": f"Hello {ctx.inputs['name']}{ctx.parameters['punctuation']}"}

    @w.node(name="wait")
    def wait(ctx):
        ctx.progress(1, 2, "waiting")
        if ctx.wait_aborted(WAIT):
            return {"aborted": True}
        return {"waited": True}

    @w.node(name="block")
    def block(ctx):
        release.wait(WAIT)
        return {"done": True}

    @w.node(name="boom")
    def boom(ctx):
        raise muster.WorkerError("it went boom")

    @w.node(name="bad_input")
    def bad_input(ctx):
        raise muster.InvalidRequest("x must be positive")

    @w.node(name="crash")
    def crash(ctx):
        return 1 / 0

    @w.node(name="denied")
    def denied(ctx):
        raise muster.MusterError(ErrorCode.PERMISSION_DENIED, "not yours")

    @w.node(name="big")
    def big(ctx):
        ctx.progress(1, 2, "x" * ctx.inputs["n"])
        return {"blob": b"\0" * ctx.inputs["n"]}

    @w.node(name="not_a_dict")
    def not_a_dict(ctx):
        return [1, 2]

    @w.node(name="async_wait")
    async def async_wait(ctx):
        await asyncio.sleep(WAIT)
        return {"slept": True}

    @w.node(name="async_add", inputs={"a": "int", "b": "int"})
    async def async_add(ctx):
        await asyncio.sleep(0)
        return {"sum": ctx.inputs["a"] + ctx.inputs["b"]}

    @w.node(name="caller")
    def caller(ctx):
        c = ctx.caller
        return {
            "identity": c.identity, "name": c.name, "workspace": c.workspace, "role": c.role,
            "trace_id": c.trace_id, "request_id": str(ctx.request_id), "attempt": ctx.attempt,
        }  # fmt: skip

    return w


def expected_attach(w: muster.Worker) -> m.Attach:
    return m.Attach(
        worker_id=w.worker_id,
        hostname=socket.gethostname(),
        sdk=muster.SDK,
        pid=os.getpid(),
        session=w.session,
        capacity=w.capacity,
        nodes=w.registry.specs(),
        no_answer_acks=True,  # answers confirmed by the Pong, where the daemon agrees (§7.7)
        idle_pongs=True,  # idle broadcast pings may go unanswered, where it agrees (§7.3)
        direct=w.direct,  # everything on the DEALER, where it agrees (§7.10; asked by default)
    )


def attach_and_confirm(fd, w, instance="inst-1", ping_interval_ms=QUIET_PING_INTERVAL_MS, liveness=3):
    """Runs §7.1: Attach -> Attached -> confirming Ping -> Pong -> Ack. Returns the peer id."""
    peer, raw, body = fd.expect(m.Attach)
    assert raw == wire(w.worker_id, expected_attach(w))
    fd.reply(peer, attached_reply(w.worker_id, instance, ping_interval_ms, liveness))
    peer, raw, pong = fd.confirm(w.worker_id, instance, seq=1)
    assert raw == wire(w.worker_id, m.Pong(seq=1, instance=instance, in_flight=[]))
    fd.reply(peer, m.Ack())
    assert w.wait_attached(WAIT)
    return peer


@pytest.fixture
def worker(fake_daemon):
    w = make_worker(fake_daemon)
    w.start()
    try:
        yield w
    finally:
        w.test_release.set()  # type: ignore[attr-defined]
        w.stop(now=True, timeout=WAIT)


def request(fd, w, rid, node, inputs=None, parameters=None, **kw):
    return fd.publish(
        worker_topic(w.worker_id),
        m.WorkRequest(request_id=rid, node=node, inputs=inputs, parameters=parameters, timeout_ms=kw.pop("timeout_ms", 5000), **kw),
    )


def test_attach_message_is_exact_and_subscriptions_come_first(fake_daemon, worker):
    peer, raw, body = fake_daemon.expect(m.Attach)
    assert raw == wire(worker.worker_id, expected_attach(worker))
    assert body.session == worker.session and len(worker.session) >= 16
    assert body.payload_frames is False  # payloads stay inside the message (PROTOCOL.md §2.1)
    assert raw[4:8] == b"MSWK"
    # Nothing else is sent before Attached.
    assert fake_daemon.nothing(0.2)


def test_attach_confirm_ping_pong(fake_daemon, worker):
    attach_and_confirm(fake_daemon, worker)
    # A broadcast ping is answered too, with the same bytes rule.
    fake_daemon.publish("b:", m.Ping(seq=2, instance="inst-1"))
    peer, raw, pong = fake_daemon.expect(m.Pong)
    assert raw == wire(worker.worker_id, m.Pong(seq=2, instance="inst-1", in_flight=[]))
    fake_daemon.reply(peer, m.Ack())


def test_dispatch_echo_result_bytes(fake_daemon, worker):
    peer = attach_and_confirm(fake_daemon, worker)
    inputs = {"i": -(2**63), "f": 2.5, "s": "héllo ✓", "b": b"\x00\xff", "l": [], "m": {"z": None, "a": True}}
    request(fake_daemon, worker, 41, "echo", inputs)
    peer, raw, res = fake_daemon.expect(m.Result)
    assert raw == wire(worker.worker_id, m.Result(request_id=41, outputs=inputs))
    assert list(res.outputs) == list(inputs)  # order kept
    fake_daemon.reply(peer, m.Ack())


def test_defaults_parameters_and_required_inputs(fake_daemon, worker):
    attach_and_confirm(fake_daemon, worker)
    request(fake_daemon, worker, 1, "greet", {"name": "Ada"})
    peer, raw, res = fake_daemon.expect(m.Result)
    assert raw == wire(worker.worker_id, m.Result(1, {"greeting": "Hello Ada!"}))
    fake_daemon.reply(peer, m.Ack())
    request(fake_daemon, worker, 2, "greet", {"name": "Bob"}, {"punctuation": "?"})
    peer, raw, res = fake_daemon.expect(m.Result)
    assert res.outputs == {"greeting": "Hello Bob?"}
    fake_daemon.reply(peer, m.Ack())
    request(fake_daemon, worker, 3, "greet", {})
    peer, raw, fail = fake_daemon.expect(m.Failure)
    assert raw == wire(worker.worker_id, m.Failure(3, ErrorCode.INVALID_REQUEST, "node greet: missing required input 'name'"))
    fake_daemon.reply(peer, m.Ack())
    request(fake_daemon, worker, 4, "greet", {"name": 7})
    peer, raw, fail = fake_daemon.expect(m.Failure)
    assert fail.code == ErrorCode.INVALID_REQUEST and "must be string" in fail.message
    fake_daemon.reply(peer, m.Ack())


def test_errors_map_to_codes(fake_daemon, worker):
    attach_and_confirm(fake_daemon, worker)
    cases = [
        ("boom", ErrorCode.WORKER_ERROR, "it went boom"),
        ("bad_input", ErrorCode.INVALID_REQUEST, "x must be positive"),
        ("denied", ErrorCode.WORKER_ERROR, "not yours"),  # a worker sends no other code (PROTOCOL.md §6)
        ("crash", ErrorCode.WORKER_ERROR, "ZeroDivisionError: division by zero"),
        ("not_a_dict", ErrorCode.WORKER_ERROR, "node not_a_dict returned a list, not a dict of outputs"),
        ("nope", ErrorCode.INVALID_REQUEST, "worker pw1 does not serve node nope"),
    ]
    for rid, (node, code, message) in enumerate(cases, start=10):
        request(fake_daemon, worker, rid, node)
        peer, raw, fail = fake_daemon.expect(m.Failure)
        assert raw == wire(worker.worker_id, m.Failure(rid, code, message)), fail
        fake_daemon.reply(peer, m.Ack())


def test_progress_pong_in_flight_and_abort(fake_daemon, worker):
    attach_and_confirm(fake_daemon, worker)
    request(fake_daemon, worker, 77, "wait")
    peer, raw, prog = fake_daemon.expect(m.Progress)
    assert raw == wire(worker.worker_id, m.Progress(77, 1, 2, "waiting"))
    fake_daemon.reply(peer, m.Ack())
    # While it runs, pongs list it.
    fake_daemon.publish("b:", m.Ping(seq=5, instance="inst-1"))
    peer, raw, pong = fake_daemon.expect(m.Pong)
    assert raw == wire(worker.worker_id, m.Pong(5, "inst-1", [77]))
    fake_daemon.reply(peer, m.Ack())
    # A re-sent request id that is running is ignored.
    request(fake_daemon, worker, 77, "wait")
    fake_daemon.publish(worker_topic(worker.worker_id), m.Abort(request_id=77, code=ErrorCode.TIMEOUT, reason="deadline passed"))
    peer, raw, fail = fake_daemon.expect(m.Failure)
    # The handler saw TIMEOUT; a worker sends only WORKER_ERROR or INVALID_REQUEST (PROTOCOL.md §6).
    assert raw == wire(worker.worker_id, m.Failure(77, ErrorCode.TIMEOUT, "aborted: deadline passed"))
    fake_daemon.reply(peer, m.Ack(late=True))
    # Exactly one answer: the next thing the worker says is the pong, with nothing in flight. An
    # Ack{late} confirms nothing (PROTOCOL.md §7.6): the answer is listed once more, and the
    # Ack to that Pong, not naming it missing, lets the worker forget it.
    fake_daemon.publish("b:", m.Ping(seq=6, instance="inst-1"))
    peer, raw, pong = fake_daemon.expect(m.Pong)
    assert raw == wire(worker.worker_id, m.Pong(6, "inst-1", [], [77]))
    fake_daemon.reply(peer, m.Ack(pong_seq=6))
    # That Ack (response socket) and the next Ping (request socket) race inside the worker: a
    # Ping read first still lists 77. Once the Ack is read, no Pong lists it any more.
    for seq in range(7, 15):
        fake_daemon.publish("b:", m.Ping(seq=seq, instance="inst-1"))
        peer, raw, pong = fake_daemon.expect(m.Pong)
        fake_daemon.reply(peer, m.Ack(pong_seq=seq))
        if not pong.answered:
            break
    assert raw == wire(worker.worker_id, m.Pong(seq, "inst-1", []))


def test_async_handlers_and_async_abort(fake_daemon, worker):
    attach_and_confirm(fake_daemon, worker)
    request(fake_daemon, worker, 5, "async_add", {"a": 2, "b": 40})
    peer, raw, res = fake_daemon.expect(m.Result)
    assert raw == wire(worker.worker_id, m.Result(5, {"sum": 42}))
    fake_daemon.reply(peer, m.Ack())
    request(fake_daemon, worker, 6, "async_wait")
    fake_daemon.publish("b:", m.Ping(seq=9, instance="inst-1"))
    peer, raw, pong = fake_daemon.expect(m.Pong)
    assert pong.in_flight == [6]
    fake_daemon.reply(peer, m.Ack())
    fake_daemon.publish(worker_topic(worker.worker_id), m.Abort(request_id=6, code=ErrorCode.CANCELLED, reason="client cancelled"))
    peer, raw, fail = fake_daemon.expect(m.Failure)
    assert raw == wire(worker.worker_id, m.Failure(6, ErrorCode.WORKER_ERROR, "aborted: client cancelled"))
    fake_daemon.reply(peer, m.Ack(late=True))


def test_caller_context_reaches_the_handler(fake_daemon, worker):
    attach_and_confirm(fake_daemon, worker)
    caller = m.CallerContext(identity="local", name="ada", workspace="default", role="admin", trace_id="t-1")
    request(fake_daemon, worker, 2**64 - 1, "caller", attempt=3, caller=caller)
    peer, raw, res = fake_daemon.expect(m.Result)
    assert res.request_id == 2**64 - 1
    assert res.outputs == {
        "identity": "local", "name": "ada", "workspace": "default", "role": "admin",
        "trace_id": "t-1", "request_id": str(2**64 - 1), "attempt": 3,
    }  # fmt: skip
    fake_daemon.reply(peer, m.Ack())


def test_reattach_on_rejected(fake_daemon, worker):
    attach_and_confirm(fake_daemon, worker)
    fake_daemon.publish("b:", m.Ping(seq=3, instance="inst-1"))
    peer, raw, pong = fake_daemon.expect(m.Pong)
    fake_daemon.reply(peer, m.Rejected(code=ErrorCode.BAD_MESSAGE, message="unknown worker", reattach=True))
    peer, raw, att = fake_daemon.expect(m.Attach)
    assert raw == wire(worker.worker_id, expected_attach(worker))  # same session: same process
    fake_daemon.reply(peer, attached_reply(worker.worker_id, "inst-1"))


@pytest.mark.parametrize("direct", [False, True])
def test_subscribes_to_broadcast_first_then_only_to_the_assigned_topic(fake_daemon, direct):
    """musterd applies only `b:` and the topic it assigned in Attached (PROTOCOL.md §2): the
    worker subscribes to `b:` before Attach, to Attached.topic after, and moves to a new one.
    One that asks for direct (§7.10) connects no SUB before Attached: an Attached that does not
    grant it (an older daemon) makes it connect one, subscribed to both at once."""
    worker = make_worker(fake_daemon, direct=direct)
    worker.start()
    try:
        _subscribes_then_moves(fake_daemon, worker)
    finally:
        worker.stop(now=True, timeout=WAIT)


def _subscribes_then_moves(fake_daemon, worker):
    peer, raw, body = fake_daemon.expect(m.Attach)
    assert body.direct == worker.direct
    topic = b"\x01" + worker_topic(worker.worker_id).encode()
    if worker.direct:
        assert fake_daemon.subscriptions(0.3) == [] and fake_daemon.request_connections() == 0
        fake_daemon.reply(peer, attached_reply(worker.worker_id))
        assert fake_daemon.subscribed(2) == sorted([b"\x01b:", topic])
    else:
        assert fake_daemon.subscriptions(WAIT) == [b"\x01b:"]
        fake_daemon.reply(peer, attached_reply(worker.worker_id))
        assert fake_daemon.subscriptions(WAIT) == [topic]
    peer, raw, pong = fake_daemon.confirm(worker.worker_id, "inst-1", seq=1)
    fake_daemon.reply(peer, m.Ack())
    # A re-attach that assigns another topic: the old one is dropped.
    fake_daemon.publish("b:", m.Ping(seq=3, instance="inst-1"))
    peer, raw, pong = fake_daemon.expect(m.Pong)
    fake_daemon.reply(peer, m.Rejected(code=ErrorCode.INVALID_REQUEST, message="unknown worker", reattach=True))
    peer, raw, att = fake_daemon.expect(m.Attach)
    moved = attached_reply(worker.worker_id)
    moved.topic = worker_topic(worker.worker_id, identity="another")
    fake_daemon.reply(peer, moved)
    assert fake_daemon.subscribed(2) == sorted([b"\x00" + worker_topic(worker.worker_id).encode(),
                                               b"\x01" + moved.topic.encode()])
    fake_daemon.publish(moved.topic, m.Ping(seq=4, instance="inst-1"))
    peer, raw, pong = fake_daemon.expect(m.Pong)
    assert pong.seq == 4


def test_reattach_on_new_instance(fake_daemon, worker):
    attach_and_confirm(fake_daemon, worker, instance="old")
    fake_daemon.publish("b:", m.Ping(seq=1, instance="new"))
    peer, raw, att = fake_daemon.expect(m.Attach)
    assert raw == wire(worker.worker_id, expected_attach(worker))
    fake_daemon.reply(peer, attached_reply(worker.worker_id, "new"))
    peer, raw, pong = fake_daemon.confirm(worker.worker_id, "new", seq=2)
    assert raw == wire(worker.worker_id, m.Pong(2, "new", []))
    fake_daemon.reply(peer, m.Ack())


def test_an_unanswered_attach_goes_again_after_a_ping_interval_not_at_the_attach_timeout(fake_daemon):
    """A daemon that swallowed the Attach (restarted, not bound yet, a failover pair's dropped
    send: PROTOCOL.md §7.1 "No Attached") but pings: the worker attaches again once a whole
    ping interval went by unanswered (the second Ping), not at its attach timeout (30 s here,
    so the old behaviour cannot pass), and only once for that interval. (A worker without a SUB
    before Attached, direct: test_worker_direct.py.)"""
    w = make_worker(fake_daemon, attach_timeout=30.0, direct=False)
    w.start()
    try:
        assert b"\x01b:" in fake_daemon.subscriptions(timeout=WAIT)
        fake_daemon.expect(m.Attach)  # swallowed: never answered
        assert w.attach_count == 1
        # The first Ping may overtake an Attach still on its way: no Attach for it.
        fake_daemon.publish("b:", m.Ping(seq=1, instance="up"))
        assert fake_daemon.nothing(0.3)
        assert w.attach_count == 1
        fake_daemon.publish("b:", m.Ping(seq=2, instance="up"))
        peer, raw, att = fake_daemon.expect(m.Attach)
        assert raw == wire(w.worker_id, expected_attach(w))  # the same Attach, same session
        assert w.attach_count == 2
        fake_daemon.reply(peer, attached_reply(w.worker_id, "up", ping_interval_ms=10000))  # no silence re-attach
        peer, raw, pong = fake_daemon.expect(m.Pong)  # the Ping heard while attaching, answered
        assert raw == wire(w.worker_id, m.Pong(2, "up", []))
        fake_daemon.reply(peer, m.Ack())
        assert w.wait_attached(WAIT)
        assert w.attach_count == 2
        assert fake_daemon.nothing(0.3)
    finally:
        w.test_release.set()  # type: ignore[attr-defined]
        w.stop(now=True, timeout=WAIT)


def test_daemon_restart_keeps_running_requests_and_unconfirmed_answers(fake_daemon, worker):
    """PROTOCOL.md §7.6: an answer sent to a daemon that died before its Ack is kept and listed
    (answered) with what still runs (in_flight) in the first Pong to the new instance; Ack{late}
    confirms nothing; the Ack naming it missing gets the same bytes again; nothing runs twice."""
    attach_and_confirm(fake_daemon, worker, instance="old", ping_interval_ms=1000)  # no silence re-attach under load
    request(fake_daemon, worker, 11, "block")
    request(fake_daemon, worker, 12, "echo", inputs={"x": 1})
    peer, first, result = fake_daemon.expect(m.Result)  # 12's; the daemon dies before its Ack
    assert result.request_id == 12
    fake_daemon.publish("b:", m.Ping(seq=1, instance="new"))
    peer, raw, att = fake_daemon.expect(m.Attach)
    fake_daemon.reply(peer, attached_reply(worker.worker_id, "new", ping_interval_ms=1000))
    peer, raw, pong = fake_daemon.confirm(worker.worker_id, "new", seq=2)
    assert raw == wire(worker.worker_id, m.Pong(2, "new", [11], [12]))
    fake_daemon.reply(peer, m.Ack(pong_seq=2, missing=[12]))
    peer, again, _ = fake_daemon.expect(m.Result)
    assert again == first  # the kept answer, byte for byte
    fake_daemon.reply(peer, m.Ack(late=True))  # dropped (not adopted yet): still kept
    fake_daemon.publish(worker_topic(worker.worker_id), m.Ping(seq=3, instance="new"))
    peer, raw, pong = fake_daemon.expect(m.Pong)
    assert (pong.in_flight, pong.answered) == ([11], [12])
    fake_daemon.reply(peer, m.Ack(pong_seq=3))  # not missing: confirmed, forgotten
    # That Ack (response socket) and the next Ping (request socket) race inside the worker: a
    # Ping read first is answered from before the Ack. Ping until a Pong no longer lists 12
    # (it stays listed forever without the rule, so a few rounds prove it).
    for seq in range(4, 12):
        fake_daemon.publish(worker_topic(worker.worker_id), m.Ping(seq=seq, instance="new"))
        peer, raw, pong = fake_daemon.expect(m.Pong)
        fake_daemon.reply(peer, m.Ack(pong_seq=seq))
        assert pong.in_flight == [11]
        if not pong.answered:
            break
    assert not pong.answered
    worker.test_release.set()  # type: ignore[attr-defined]
    peer, raw, result = fake_daemon.expect(m.Result)
    assert result.request_id == 11
    fake_daemon.reply(peer, m.Ack())


def test_the_ack_to_a_pong_is_read_before_the_next_ping_even_inside_one_batch(fake_daemon, worker):
    """§7.6 "replies first": an Ack waiting on the response socket is read before the next
    Ping is answered, also when that Ping comes in the same batch of the request socket (a
    daemon quick to ping again, a flood of chunks): the Pong to it no longer lists the answer
    the Ack confirmed. Forced here: the worker's I/O thread, having answered Ping 2, waits until
    the Ack to that Pong and Ping 3 are both waiting on its sockets (the interleaving a loaded
    machine produced now and then, after which the worker never read a reply again as long as
    the fake daemon answered each Pong with the next Ping)."""
    attach_and_confirm(fake_daemon, worker, ping_interval_ms=0)
    request(fake_daemon, worker, 21, "echo", inputs={"x": 1})
    peer, _, result = fake_daemon.expect(m.Result)
    assert result.request_id == 21
    fake_daemon.reply(peer, m.Ack(late=True))  # confirms nothing: kept, listed in the next Pong

    answer_ping = worker._on_ping

    def answer_then_wait_for_the_ack_and_the_next_ping(ping: m.Ping, **kw) -> None:
        answer_ping(ping, **kw)
        if ping.seq == 2:  # in the I/O thread, the owner of both sockets
            assert worker._dealer.poll(int(WAIT * 1000), zmq.POLLIN), "no Ack to Pong 2"
            assert worker._sub.poll(int(WAIT * 1000), zmq.POLLIN), "no Ping 3"

    worker._on_ping = answer_then_wait_for_the_ack_and_the_next_ping  # type: ignore[method-assign]
    topic = worker_topic(worker.worker_id)
    fake_daemon.publish(topic, m.Ping(seq=2, instance="inst-1"))
    peer, _, pong = fake_daemon.expect(m.Pong)
    assert (pong.seq, pong.answered) == (2, [21])
    fake_daemon.reply(peer, m.Ack(pong_seq=2))  # confirms 21
    fake_daemon.publish(topic, m.Ping(seq=3, instance="inst-1"))
    peer, _, pong = fake_daemon.expect(m.Pong)
    assert (pong.seq, pong.answered) == (3, None)  # 21 no longer listed
    fake_daemon.reply(peer, m.Ack())


# A liveness window for the tests of a silent daemon: short, yet longer than a loaded machine
# holds up the confirming pings (at 100 ms the worker sometimes attached again before one of
# them reached it, and the confirmation got an Attach instead of its Pong).
SHORT_LIVENESS = {"ping_interval_ms": 250, "liveness": 2}


def test_reattach_after_silence_reconnects(fake_daemon):
    w = make_worker(fake_daemon, worker_id="quiet")
    w.start()
    try:
        first_peer = attach_and_confirm(fake_daemon, w, **SHORT_LIVENESS)
        # No more pings: after 500 ms of silence the worker reconnects both sockets.
        peer, raw, att = fake_daemon.expect(m.Attach, skip=(m.Pong,))
        assert raw == wire(w.worker_id, expected_attach(w))
        assert peer != first_peer  # a new DEALER connection
        fake_daemon.reply(peer, attached_reply(w.worker_id, "inst-1", ping_interval_ms=0))
        peer, raw, pong = fake_daemon.confirm(w.worker_id, "inst-1", seq=2)
        fake_daemon.reply(peer, m.Ack())
    finally:
        w.stop(now=True, timeout=WAIT)


def test_no_answer_to_attach_retries(fake_daemon):
    w = make_worker(fake_daemon, worker_id="retry", attach_timeout=0.2)
    w.start()
    try:
        fake_daemon.expect(m.Attach)
        peer, raw, att = fake_daemon.expect(m.Attach)  # re-sent after the attach timeout
        assert raw == wire(w.worker_id, expected_attach(w))
    finally:
        w.stop(now=True, timeout=WAIT)


def test_detach_waits_for_open_requests(fake_daemon):
    w = make_worker(fake_daemon, worker_id="leaver")
    w.start()
    try:
        attach_and_confirm(fake_daemon, w)
        request(fake_daemon, w, 8, "block")
        fake_daemon.publish("b:", m.Ping(seq=2, instance="inst-1"))
        peer, raw, pong = fake_daemon.expect(m.Pong)
        assert pong.in_flight == [8]
        fake_daemon.reply(peer, m.Ack())
        stopper = threading.Thread(target=w.stop, kwargs={"reason": "test over"})
        stopper.start()
        peer, raw, det = fake_daemon.expect(m.Detach)
        assert raw == wire(w.worker_id, m.Detach(reason="test over"))
        fake_daemon.reply(peer, m.Ack())
        # PROTOCOL.md §7.5: a WorkRequest published before the daemon processed the Detach
        # is run like the others (it used to be refused with SHUTTING_DOWN).
        request(fake_daemon, w, 9, "echo", {"late": True})
        peer, raw, res = fake_daemon.expect(m.Result, skip=(m.Pong,))
        assert raw == wire(w.worker_id, m.Result(9, {"late": True}))
        fake_daemon.reply(peer, m.Ack())
        w.test_release.set()
        peer, raw, res = fake_daemon.expect(m.Result, skip=(m.Pong,))
        assert raw == wire(w.worker_id, m.Result(8, {"done": True}))
        fake_daemon.reply(peer, m.Ack())
        stopper.join(WAIT)
        assert not stopper.is_alive()
        assert w.state == muster.worker.State.STOPPED
    finally:
        w.test_release.set()
        w.stop(now=True, timeout=WAIT)


def test_shutdown_grace_bounds_the_wait(fake_daemon):
    w = make_worker(fake_daemon, worker_id="impatient", shutdown_grace=0.2)
    w.start()
    try:
        attach_and_confirm(fake_daemon, w)
        request(fake_daemon, w, 3, "block")
        fake_daemon.publish("b:", m.Ping(seq=2, instance="inst-1"))
        peer, raw, pong = fake_daemon.expect(m.Pong)
        assert pong.in_flight == [3]
        fake_daemon.reply(peer, m.Ack())
        stopper = threading.Thread(target=w.stop)
        stopper.start()
        peer, raw, det = fake_daemon.expect(m.Detach)
        fake_daemon.reply(peer, m.Ack())
        stopper.join(WAIT)
        assert not stopper.is_alive()
        # PROTOCOL.md §7.5: a request still running when the grace ran out is not answered
        # (it used to get Failure{SHUTTING_DOWN}); the daemon applies its worker-death rules.
        while not fake_daemon.nothing(0.3):
            peer, raw, msg = fake_daemon.recv()
            assert isinstance(msg.body, m.Pong), f"a stopped worker sent {msg.body!r}"
        assert w.state == muster.worker.State.STOPPED
    finally:
        w.test_release.set()
        w.stop(now=True, timeout=WAIT)


@pytest.mark.parametrize("how", ["rejected_pong", "new_instance"])
def test_a_stopping_worker_never_attaches_again(fake_daemon, how):
    # PROTOCOL.md §7.5: a detaching worker that learns the daemon forgot it (Rejected{reattach},
    # a Ping of a new instance) stops at once; an Attach now would leave a ghost worker behind.
    w = make_worker(fake_daemon, worker_id=f"forgot-{how}", shutdown_grace=60.0)
    w.start()
    try:
        attach_and_confirm(fake_daemon, w)
        request(fake_daemon, w, 8, "block")
        fake_daemon.publish("b:", m.Ping(seq=2, instance="inst-1"))
        peer, raw, pong = fake_daemon.expect(m.Pong)
        assert pong.in_flight == [8]
        fake_daemon.reply(peer, m.Ack())
        stopper = threading.Thread(target=w.stop, kwargs={"reason": "SIGTERM"})
        stopper.start()
        peer, raw, det = fake_daemon.expect(m.Detach)
        fake_daemon.reply(peer, m.Ack())
        forgotten = m.Rejected(code=ErrorCode.INVALID_REQUEST, message="unknown worker", reattach=True)
        if how == "rejected_pong":
            fake_daemon.publish("b:", m.Ping(seq=3, instance="inst-1"))
            peer, raw, pong = fake_daemon.expect(m.Pong)
            assert pong.in_flight == [8]  # draining, it still lists what it runs
            fake_daemon.reply(peer, forgotten)
        else:
            fake_daemon.publish("b:", m.Ping(seq=3, instance="inst-2"))
        stopper.join(WAIT)
        assert not stopper.is_alive()
        # Neither an Attach nor an answer for request 8 (the daemon forgot it; §7.5).
        assert w.attach_count == 1
        assert fake_daemon.nothing(0.3)
    finally:
        w.test_release.set()
        w.stop(now=True, timeout=WAIT)


def test_stop_during_a_reconnect_still_detaches(fake_daemon):
    w = make_worker(fake_daemon, worker_id="recon", attach_timeout=60.0)
    w.start()
    try:
        first_peer = attach_and_confirm(fake_daemon, w, **SHORT_LIVENESS)
        # No more pings: the worker reconnects and attaches again; the daemon has not answered yet.
        peer, raw, att = fake_daemon.expect(m.Attach, skip=(m.Pong,))
        assert peer != first_peer
        w.stop(reason="SIGTERM", wait=False)
        # The daemon may already have attached it: a Detach follows on the same connection.
        det_peer, raw, det = fake_daemon.expect(m.Detach)
        assert det_peer == peer and raw == wire(w.worker_id, m.Detach(reason="SIGTERM"))
        fake_daemon.reply(peer, attached_reply(w.worker_id, "inst-1"))
        fake_daemon.reply(peer, m.Ack())
        w.join(WAIT)
        assert w.state == muster.worker.State.STOPPED
        assert w.attach_count == 2
    finally:
        w.stop(now=True, timeout=WAIT)


def test_oversize_results_fail_fast(fake_daemon):
    # The daemon's limit arrives in Attached; an answer over it would be refused and the caller
    # wait its whole deadline: the worker fails the request instead, and says why.
    w = make_worker(fake_daemon, worker_id="big")
    w.start()
    try:
        peer, raw, body = fake_daemon.expect(m.Attach)
        attached = attached_reply(w.worker_id, "inst-1")
        attached.max_message_bytes = 4096
        fake_daemon.reply(peer, attached)
        peer, raw, pong = fake_daemon.confirm(w.worker_id, "inst-1")
        fake_daemon.reply(peer, m.Ack())
        assert w.wait_attached(WAIT)
        request(fake_daemon, w, 1, "big", {"n": 100})
        for kind in (m.Progress, m.Result):
            peer, raw, msg = fake_daemon.expect(kind)
            fake_daemon.reply(peer, m.Ack())
        for attempt in (1, 2):  # the daemon sends it again: the same small Failure, never the result
            request(fake_daemon, w, 2, "big", {"n": 5000}, attempt=attempt)
            peer, raw, fail = fake_daemon.expect(m.Failure)  # no Progress of 5000 characters either
            assert fail.request_id == 2 and fail.code == ErrorCode.WORKER_ERROR
            assert re.fullmatch(
                r"node big: result of \d+ bytes exceeds the daemon's limit of 4096 bytes \(--max-message-bytes\)", fail.message
            ), fail.message
            fake_daemon.reply(peer, m.Ack())
        assert fake_daemon.nothing(0.2)
    finally:
        w.stop(now=True, timeout=WAIT)


def test_bad_messages_do_not_hurt(fake_daemon, worker):
    attach_and_confirm(fake_daemon, worker)
    topic = worker_topic(worker.worker_id).encode()
    for junk in [b"", b"\x00" * 3, b"garbage-garbage-garbage", b"\x08\x00\x00\x00MSDM\xff\xff\xff\xff"]:
        fake_daemon.pub.send_multipart([topic, junk])
    fake_daemon.pub.send_multipart([topic])  # wrong frame count
    fake_daemon.pub.send_multipart([topic, b"a", b"b"])
    # A WorkRequest whose inputs are not a Values buffer, or hold a string that is not UTF-8:
    # the request's fault, answered INVALID_REQUEST (PROTOCOL.md §4).
    bad_inputs = m.encode(m.DaemonMessage(body=m.WorkRequest(request_id=12, node="echo", inputs=b"\x0c\x00\x00\x00not values at all")))
    fake_daemon.pub.send_multipart([topic, bad_inputs])
    peer, raw, fail = fake_daemon.expect(m.Failure)
    assert fail.request_id == 12 and fail.code == ErrorCode.INVALID_REQUEST
    fake_daemon.reply(peer, m.Ack())
    not_utf8 = m.encode(m.DaemonMessage(body=m.WorkRequest(request_id=16, node="echo", inputs={"s": "abc"})))
    not_utf8 = not_utf8.replace(b"abc", b"\xffbc")
    fake_daemon.pub.send_multipart([topic, not_utf8])
    peer, raw, fail = fake_daemon.expect(m.Failure)
    assert fail.request_id == 16 and fail.code == ErrorCode.INVALID_REQUEST and "utf-8" in fail.message.lower(), fail
    fake_daemon.reply(peer, m.Ack())
    # A bad reply on the response socket is survived as well.
    fake_daemon.router.send_multipart([peer, b"not a daemon message"])
    request(fake_daemon, worker, 13, "echo", {"still": "alive"})
    peer, raw, res = fake_daemon.expect(m.Result)
    assert res.outputs == {"still": "alive"}
    fake_daemon.reply(peer, m.Ack())


def test_inputs_in_a_separate_frame_are_refused(fake_daemon, worker):
    # This worker never attaches with payload_frames: a WorkRequest saying its inputs are in
    # another frame is answered INVALID_REQUEST, not run with empty inputs.
    attach_and_confirm(fake_daemon, worker)
    request(fake_daemon, worker, 14, "echo", inputs_in_frame=True)
    peer, raw, fail = fake_daemon.expect(m.Failure)
    expected = m.Failure(14, ErrorCode.INVALID_REQUEST, "inputs in a separate frame were not requested")
    assert raw == wire(worker.worker_id, expected)
    fake_daemon.reply(peer, m.Ack())
    request(fake_daemon, worker, 15, "echo", {"still": "alive"})
    peer, raw, res = fake_daemon.expect(m.Result)
    assert res.outputs == {"still": "alive"}
    fake_daemon.reply(peer, m.Ack())


def test_node_list_change_reattaches(fake_daemon, worker):
    attach_and_confirm(fake_daemon, worker)

    @worker.node(name="late.node")
    def late(ctx):
        return {}

    peer, raw, att = fake_daemon.expect(m.Attach)
    assert [n.name for n in att.nodes][-1] == "late.node"
    assert raw == wire(worker.worker_id, expected_attach(worker))
    fake_daemon.reply(peer, attached_reply(worker.worker_id, "inst-1"))


def test_refused_attach_is_retried(fake_daemon):
    w = make_worker(fake_daemon, worker_id="refused", attach_timeout=0.2)
    w.start()
    try:
        peer, raw, att = fake_daemon.expect(m.Attach)
        fake_daemon.reply(peer, m.Rejected(code=ErrorCode.PERMISSION_DENIED, message="taken"))
        peer, raw, att = fake_daemon.expect(m.Attach)
        assert att.session == w.session
    finally:
        w.stop(now=True, timeout=WAIT)


def test_tcp_needs_curve_or_insecure(tmp_path, monkeypatch):
    # No keys, not insecure: the worker enrolls when it starts, and without a token it cannot.
    monkeypatch.delenv("MUSTER_ENROLLMENT_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    w = muster.Worker(
        worker_id="x", request_address="tcp://127.0.0.1:7899", response_address="tcp://127.0.0.1:7898",
        data_dir=str(tmp_path / "data"),
    )
    w.add_node({"name": "n"}, lambda ctx: {})
    with pytest.raises(muster.EnrollmentError, match="insecure"):
        w.start()
    with pytest.raises(ValueError, match="identity name"):
        muster.Worker(request_address="tcp://127.0.0.1:7899", response_address="tcp://127.0.0.1:7898", name="../x")
    muster.Worker(worker_id="x", request_address="tcp://127.0.0.1:7899", response_address="tcp://127.0.0.1:7898", insecure=True)
    pub, sec = muster.Curve.generate_keypair()
    muster.Worker(
        worker_id="x",
        request_address="tcp://127.0.0.1:7899",
        response_address="tcp://127.0.0.1:7898",
        curve=muster.Curve(server_public=pub, public=pub, secret=sec),
    )
    with pytest.raises(ValueError, match="worker id"):
        muster.Worker(worker_id="bad:id")


def test_default_endpoints(monkeypatch):
    monkeypatch.setenv("MUSTER_RUNTIME_DIR", "/run/x")
    assert muster.default_endpoint("request") == "ipc:///run/x/request.sock"
    monkeypatch.setenv("MUSTER_RUNTIME_DIR", "")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert muster.default_endpoint("response") == "ipc:///run/user/7/muster/response.sock"
    monkeypatch.delenv("MUSTER_RUNTIME_DIR")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert muster.default_endpoint("client") == f"ipc:///tmp/muster-{os.getuid()}/client.sock"
    w = muster.Worker(worker_id="d")
    assert w.request_address == f"ipc:///tmp/muster-{os.getuid()}/request.sock"
