"""One connection per worker (PROTOCOL.md §7.10), against the fake daemon: the worker asks for
everything on its DEALER; granted, it connects no SUB and reads the daemon's messages (Pings,
WorkRequests, Aborts, Credits) on the DEALER, interleaved with the replies, and attaches again
as soon as that connection is made again; not granted (an older daemon), it connects its SUB
after Attached and goes on as before (the rest of test_worker_protocol.py runs that way)."""

from __future__ import annotations

import dataclasses
import os

from muster import messages as m
from muster.errors import ErrorCode

from conftest import WAIT, FakeDaemon, attached_reply, worker_topic
from test_worker_no_answer_acks import settled, worker  # noqa: F401 (worker: the fixture that starts workers)
from test_worker_protocol import make_worker, wire

INSTANCE = "inst-1"


def direct_attached(w, **kw) -> m.Attached:
    """The Attached of a daemon that grants direct and no_answer_acks (today's musterd)."""
    return dataclasses.replace(attached_reply(w.worker_id, INSTANCE), direct=True, no_answer_acks=True, **kw)


def send(fd, peer, body) -> None:
    """What musterd would publish for the worker, sent on its DEALER (a direct worker's)."""
    fd.reply(peer, body)


def pong_to(fd, peer, seq, instance=INSTANCE) -> m.Pong:
    send(fd, peer, m.Ping(seq=seq, instance=instance))
    _, _, pong = fd.expect(m.Pong)
    assert pong.seq == seq
    return pong


def attach_direct(fd, w, **kw) -> bytes:
    """§7.1 for a direct worker: Attach (asking) -> Attached{direct} -> the confirming Ping, on
    the DEALER -> Pong -> its Ack. Returns the peer (the worker's DEALER connection)."""
    peer, _, body = fd.expect(m.Attach)
    assert body.direct is True and body.session == w.session
    fd.reply(peer, direct_attached(w, **kw))
    assert pong_to(fd, peer, 1).in_flight == []
    fd.reply(peer, m.Ack(pong_seq=1))
    assert w.wait_attached(WAIT)
    return peer


def work(rid, node="echo", inputs=None, **kw) -> m.WorkRequest:
    return m.WorkRequest(request_id=rid, node=node, inputs=inputs if inputs is not None else {"x": rid}, timeout_ms=5000, **kw)


def test_granted_the_worker_connects_no_sub_and_serves_on_its_dealer(fake_daemon, worker):
    """Sync and async handlers answer WorkRequests that came on the DEALER; an Abort there
    aborts; the request socket never saw a connection nor a subscription."""
    w = worker()
    peer = attach_direct(fake_daemon, w)
    send(fake_daemon, peer, work(11, inputs={"s": "héllo"}))
    _, raw, _ = fake_daemon.recv()
    assert raw == wire(w.worker_id, m.Result(11, {"s": "héllo"}))
    send(fake_daemon, peer, work(12, "async_add", {"a": 2, "b": 40}))
    _, raw, _ = fake_daemon.recv()
    assert raw == wire(w.worker_id, m.Result(12, {"sum": 42}))
    send(fake_daemon, peer, work(13, "wait"))
    _, _, progress = fake_daemon.expect(m.Progress)
    assert progress.request_id == 13
    pong = pong_to(fake_daemon, peer, 2)
    assert (pong.in_flight, pong.answered) == ([13], [11, 12])  # running; answered, kept
    fake_daemon.reply(peer, m.Ack(pong_seq=2))
    send(fake_daemon, peer, m.Abort(request_id=13, code=ErrorCode.TIMEOUT, reason="deadline passed"))
    _, raw, _ = fake_daemon.recv()
    assert raw == wire(w.worker_id, m.Failure(13, ErrorCode.TIMEOUT, "aborted: deadline passed"))
    pong = pong_to(fake_daemon, peer, 3)
    assert (pong.in_flight, pong.answered) == ([], [13])
    fake_daemon.reply(peer, m.Ack(pong_seq=3))
    settled(lambda: not w._kept, "forgot the answers the Ack confirmed")
    assert fake_daemon.request_connections() == 0 and fake_daemon.subscriptions() == []
    assert w._sub is None and w._direct and not w._pending


def test_a_bad_work_request_on_the_dealer_is_answered_invalid_request(fake_daemon, worker):
    w = worker()
    peer = attach_direct(fake_daemon, w)
    bad = m.encode(m.DaemonMessage(body=work(21, inputs={"s": "abc"}))).replace(b"abc", b"\xffbc")
    fake_daemon.router.send_multipart([peer, bad])
    _, _, fail = fake_daemon.expect(m.Failure)
    assert fail.request_id == 21 and fail.code == ErrorCode.INVALID_REQUEST
    send(fake_daemon, peer, work(22))
    _, _, res = fake_daemon.expect(m.Result)
    assert res.request_id == 22 and not w._pending


def test_messages_on_the_dealer_leave_the_replies_matched_in_order(fake_daemon, worker):
    """From a daemon that Acks each answer, a Ping and a WorkRequest that come between an answer
    and its Ack are not taken for replies: the Ack still confirms that answer."""
    w = worker()
    peer, _, _ = fake_daemon.expect(m.Attach)
    fake_daemon.reply(peer, dataclasses.replace(direct_attached(w), no_answer_acks=False))
    pong_to(fake_daemon, peer, 1)
    fake_daemon.reply(peer, m.Ack(pong_seq=1))
    send(fake_daemon, peer, work(31))
    fake_daemon.expect(m.Result)
    send(fake_daemon, peer, m.Ping(seq=2, instance=INSTANCE))  # before the Result's Ack
    send(fake_daemon, peer, work(32))
    fake_daemon.reply(peer, m.Ack())  # the Result's
    _, _, got = fake_daemon.recv()
    _, _, other = fake_daemon.recv()
    kinds = sorted(type(x.body).__name__ for x in (got, other))
    assert kinds == ["Pong", "Result"]
    pong = got.body if isinstance(got.body, m.Pong) else other.body
    assert pong.seq == 2
    fake_daemon.reply(peer, m.Ack(pong_seq=2))  # the Pong's
    fake_daemon.reply(peer, m.Ack())  # the Result of 32's
    settled(lambda: not w._kept and not w._pending, "matched every reply to its message")


def test_every_ping_is_answered_until_a_pongs_ack_then_idle_pongs_apply(fake_daemon, worker):
    """A direct worker cannot tell the confirming Ping from a broadcast one (§7.10 "Pings"): it
    answers each until it reads the Ack of a Pong; from then on idle pongs apply (k = 3: at
    most two in a row unanswered)."""
    w = worker()
    peer, _, _ = fake_daemon.expect(m.Attach)
    fake_daemon.reply(peer, direct_attached(w, idle_pong_every=3))
    pong_to(fake_daemon, peer, 1)  # not Acked (lost, say): the next Ping may be the confirming one
    pong_to(fake_daemon, peer, 2)
    pong_to(fake_daemon, peer, 3)
    fake_daemon.reply(peer, m.Ack(pong_seq=3))
    settled(lambda: not w._answer_every_ping, "read the Ack")
    send(fake_daemon, peer, m.Ping(seq=4, instance=INSTANCE))
    send(fake_daemon, peer, m.Ping(seq=5, instance=INSTANCE))
    assert fake_daemon.nothing(0.3)  # idle: two left unanswered
    assert pong_to(fake_daemon, peer, 6).seq == 6


def test_a_connection_made_again_attaches_again_at_once_and_the_answer_follows(fake_daemon, worker):
    """The DEALER's connection breaks (musterd would still send to the old one): as soon as
    ZeroMQ has made it again the worker attaches again with its session, long before a liveness
    window without pings (30 s here); the answer of the request that ran across the break goes
    once Attached came, on the new connection, and work goes on there."""
    w = worker()
    first = attach_direct(fake_daemon, w)
    send(fake_daemon, first, work(41, "block"))
    assert pong_to(fake_daemon, first, 2).in_flight == [41]
    attaches = w.attach_count
    fake_daemon.drop_connections()
    peer, raw, attach = fake_daemon.expect(m.Attach)
    assert peer != first and attach.direct and attach.session == w.session
    assert w.attach_count == attaches + 1
    w.test_release.set()  # 41 answers while the new connection is not attached: held
    fake_daemon.reply(peer, direct_attached(w))
    _, _, res = fake_daemon.expect(m.Result)
    assert res.request_id == 41
    send(fake_daemon, peer, work(42))
    _, _, res = fake_daemon.expect(m.Result)
    assert res.request_id == 42
    assert fake_daemon.request_connections() == 0


def test_not_granted_the_worker_connects_its_sub_after_attached(fake_daemon, worker):
    """An older daemon ignores Attach.direct: the worker connects its SUB once Attached comes,
    subscribed to `b:` and to Attached.topic, and is confirmed and served there."""
    w = worker()
    peer, _, attach = fake_daemon.expect(m.Attach)
    assert attach.direct is True
    assert fake_daemon.nothing(0.3) and fake_daemon.request_connections() == 0
    fake_daemon.reply(peer, attached_reply(w.worker_id, INSTANCE))
    _, _, pong = fake_daemon.confirm(w.worker_id, INSTANCE, seq=1)
    fake_daemon.reply(peer, m.Ack())
    assert fake_daemon.request_connections() == 1 and not w._direct
    fake_daemon.publish(worker_topic(w.worker_id), work(51))
    _, _, res = fake_daemon.expect(m.Result)
    assert res.request_id == 51


def test_a_direct_worker_granted_after_an_older_daemon_drops_its_sub(fake_daemon, worker):
    """Attached without direct (an older daemon), then, after a restart, one granting it: the
    SUB goes, the work comes on the DEALER."""
    w = worker()
    peer, _, _ = fake_daemon.expect(m.Attach)
    fake_daemon.reply(peer, attached_reply(w.worker_id, "old"))
    fake_daemon.confirm(w.worker_id, "old", seq=1)
    fake_daemon.reply(peer, m.Ack())
    assert w._sub is not None
    fake_daemon.publish("b:", m.Ping(seq=2, instance=INSTANCE))  # a new instance
    peer, _, _ = fake_daemon.expect(m.Attach)
    fake_daemon.reply(peer, direct_attached(w))
    pong_to(fake_daemon, peer, 3)
    settled(lambda: w._sub is None, "closed its SUB")
    send(fake_daemon, peer, work(61))
    _, _, res = fake_daemon.expect(m.Result)
    assert res.request_id == 61


def test_no_direct_keeps_two_connections_and_asks_for_nothing(fake_daemon, worker):
    w = worker(direct=False)
    peer, _, attach = fake_daemon.expect(m.Attach)
    assert attach.direct is False
    assert fake_daemon.subscriptions(WAIT) == [b"\x01b:"]
    fake_daemon.reply(peer, direct_attached(w))  # (a daemon grants only what was asked; still)
    fake_daemon.confirm(w.worker_id, INSTANCE, seq=1)
    assert not w._direct and w._sub is not None and fake_daemon.request_connections() == 1


def test_a_direct_attach_that_found_no_daemon_goes_when_a_connection_is_made(short_tmp, caplog):
    """A failover pair's DEALER (ZMQ_IMMEDIATE) drops an Attach sent while neither daemon is
    bound; a direct worker hears no Ping to tell it, so it attaches as soon as its connection to
    a daemon is made, not at its attach timeout (30 s here: the old way cannot pass)."""
    a_dir, b_dir = os.path.join(short_tmp, "a"), os.path.join(short_tmp, "b")
    os.mkdir(a_dir)
    os.mkdir(b_dir)
    pair = FakeDaemon.__new__(FakeDaemon)  # only its addresses, for make_worker: nothing bound yet
    pair.request_address = f"ipc://{a_dir}/request.sock,ipc://{b_dir}/request.sock"
    pair.response_address = f"ipc://{a_dir}/response.sock,ipc://{b_dir}/response.sock"
    w = make_worker(pair, attach_timeout=30.0)
    w.start()
    fd = None
    try:
        settled(lambda: "dropped a attach" in caplog.text, "dropped its first Attach")
        assert w.attach_count == 1
        fd = FakeDaemon(a_dir)
        peer, _, attach = fd.expect(m.Attach)
        assert attach.direct and w.attach_count == 2
        fd.reply(peer, direct_attached(w))
        pong_to(fd, peer, 1)
    finally:
        w.test_release.set()  # type: ignore[attr-defined]
        w.stop(now=True, timeout=WAIT)
        if fd is not None:
            fd.close()


# ---- a daemon replaced at the same address by one that answers the other way (issue 19) -------


def results(fd, rids, ack=False) -> None:
    """Exactly the Results of ``rids`` come (in any order), each once, and then nothing: not
    run twice, not answered twice. ``ack``: Acked one by one, as an older daemon does (§7.7)."""
    got = []
    for _ in rids:
        peer, _, res = fd.expect(m.Result)
        got.append(res.request_id)
        if ack:
            fd.reply(peer, m.Ack())
    assert sorted(got) == sorted(rids)
    assert fd.nothing(0.5), "a call answered twice"


def test_a_direct_worker_whose_daemon_restarts_as_an_older_one_connects_its_sub(fake_daemon, worker):
    """A rolling downgrade: attached direct (no SUB), the daemon restarts as one that ignores
    Attach.direct. The worker attaches again as soon as its DEALER's connection is made again,
    reads Attached without `direct`, connects its SUB (one connection, subscribed to `b:` and
    to Attached.topic), is confirmed there, and serves calls published on its topic while the
    new daemon sends nothing on the DEALER but replies; the call that ran across the restart is
    reported to the new instance and answered once."""
    w = worker()
    peer = attach_direct(fake_daemon, w)
    send(fake_daemon, peer, work(71))
    results(fake_daemon, [71])
    send(fake_daemon, peer, work(72, "block"))
    assert pong_to(fake_daemon, peer, 2).in_flight == [72]
    assert fake_daemon.request_connections() == 0

    fake_daemon.restart()
    peer, _, attach = fake_daemon.expect(m.Attach)
    assert attach.direct is True and attach.session == w.session
    assert fake_daemon.request_connections() == 0  # no SUB before the answer
    fake_daemon.reply(peer, attached_reply(w.worker_id, "inst-2"))  # an older daemon: no `direct`
    assert fake_daemon.subscribed(2) == sorted([b"\x01b:", b"\x01" + worker_topic(w.worker_id).encode()])
    _, _, pong = fake_daemon.confirm(w.worker_id, "inst-2", seq=1)
    assert pong.in_flight == [72]  # the new instance hears of the call running across the restart
    fake_daemon.reply(peer, m.Ack())
    assert fake_daemon.request_connections() == 1 and w._sub is not None and not w._direct
    w.test_release.set()
    results(fake_daemon, [72], ack=True)
    fake_daemon.publish(worker_topic(w.worker_id), work(73))
    fake_daemon.publish(worker_topic(w.worker_id), work(74, "async_add", {"a": 1, "b": 2}))
    results(fake_daemon, [73, 74], ack=True)
    fake_daemon.publish("b:", m.Ping(seq=2, instance="inst-2"))  # a broadcast Ping comes on the SUB too
    assert fake_daemon.expect(m.Pong)[2].seq == 2
    assert fake_daemon.request_connections() == 1 and fake_daemon.request_disconnections() == 0


def test_a_worker_with_a_sub_whose_daemon_restarts_granting_direct_closes_it(fake_daemon, worker):
    """A rolling upgrade: attached with a SUB (an older daemon did not grant direct), the daemon
    restarts as one that grants it. The worker attaches again (asking), and on Attached{direct}
    closes its SUB (the Python SDK closes it, not merely unsubscribes): the request socket sees
    that connection go. Work then comes on the DEALER only; a call published on the old topic
    as well (what a daemon still routing by topic would send) is not taken from there: each
    call runs and is answered exactly once, the one running across the restart included."""
    w = worker()
    peer, _, attach = fake_daemon.expect(m.Attach)
    assert attach.direct is True
    fake_daemon.reply(peer, attached_reply(w.worker_id, "old"))
    fake_daemon.confirm(w.worker_id, "old", seq=1)
    fake_daemon.reply(peer, m.Ack())
    topic = worker_topic(w.worker_id)
    fake_daemon.publish(topic, work(81))
    results(fake_daemon, [81], ack=True)
    fake_daemon.publish(topic, work(82, "block"))
    settled(lambda: 82 in w.in_flight, "took request 82")
    assert w._sub is not None and fake_daemon.request_connections() == 1

    fake_daemon.restart()
    # The SUB connects to the new daemon again by itself, with its subscriptions, before any
    # Attached: so a call published on the topic would reach a worker that kept it.
    assert fake_daemon.subscribed(2) == sorted([b"\x01b:", b"\x01" + topic.encode()])
    peer, _, attach = fake_daemon.expect(m.Attach)
    assert attach.direct is True and attach.session == w.session
    fake_daemon.reply(peer, direct_attached(w, instance="inst-2"))
    assert pong_to(fake_daemon, peer, 1, "inst-2").in_flight == [82]  # the confirming Ping, on the DEALER
    fake_daemon.reply(peer, m.Ack(pong_seq=1))
    settled(lambda: fake_daemon.request_disconnections() == fake_daemon.request_connections() == 1, "closed its SUB")
    assert w._sub is None and w._direct
    assert fake_daemon.subscribed(2) == sorted([b"\x00b:", b"\x00" + topic.encode()])

    fake_daemon.publish(topic, work(83))  # on the old topic (nobody listens there now) ...
    send(fake_daemon, peer, work(83))  # ... and on the DEALER: run once, answered once
    send(fake_daemon, peer, work(84, "async_add", {"a": 2, "b": 3}))
    results(fake_daemon, [83, 84])
    w.test_release.set()
    results(fake_daemon, [82])
    pong = pong_to(fake_daemon, peer, 2, "inst-2")
    assert (pong.in_flight, pong.answered) == ([], [82, 83, 84])
    fake_daemon.reply(peer, m.Ack(pong_seq=2))
    settled(lambda: not w._kept, "forgot the answers the Ack confirmed")
    assert fake_daemon.request_connections() == 1
