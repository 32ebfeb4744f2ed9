"""The worker without an Ack per answer (PROTOCOL.md §7.7) and with idle pongs (§7.3), against
the fake daemon: the Pong lists the kept answers, the Ack to it names those to send again and
confirms the others, an early Pong once the kept bytes pass the bound; an older daemon (an
Attached without the grants) gets the old behaviour."""

from __future__ import annotations

import dataclasses
import time

import pytest

from muster import messages as m

from conftest import WAIT, attached_reply, worker_topic
from test_worker_protocol import make_worker, request, wire

INSTANCE = "inst-1"


def attach(fd, w, no_answer_acks=True, idle_pong_every=0):
    """§7.1 with a daemon that grants (or not) no_answer_acks and idle pongs: Attach (asking for
    both) -> Attached -> confirming Ping 1 -> Pong -> the Ack a daemon gives a confirming Pong."""
    peer, _, body = fd.expect(m.Attach)
    assert (body.no_answer_acks, body.idle_pongs) == (True, True)
    reply = dataclasses.replace(
        attached_reply(w.worker_id, INSTANCE, ping_interval_ms=0),
        no_answer_acks=no_answer_acks, idle_pong_every=idle_pong_every,
    )  # fmt: skip
    fd.reply(peer, reply)
    peer, _, pong = fd.confirm(w.worker_id, INSTANCE, seq=1)
    assert (pong.seq, pong.in_flight, pong.answered) == (1, [], None)
    fd.reply(peer, m.Ack(pong_seq=1) if no_answer_acks else m.Ack())
    assert w.wait_attached(WAIT)
    return peer


def settled(condition, what):
    """Waits until the worker's I/O thread has acted on a reply (a reply and the next Ping come
    on two sockets: nothing orders them but this)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"the worker never {what}"
        time.sleep(0.005)


def ping(fd, w, seq, own_topic=True):
    """Publishes Ping `seq` and returns (peer, raw, Pong) of the Pong that answers it."""
    fd.publish(worker_topic(w.worker_id) if own_topic else "b:", m.Ping(seq=seq, instance=INSTANCE))
    peer, raw, pong = fd.expect(m.Pong)
    assert pong.seq == seq
    return peer, raw, pong


def answered(fd, w, rid, node="echo", inputs=None):
    """Dispatches request `rid` and returns the raw Result or Failure the worker sends."""
    request(fd, w, rid, node, inputs if inputs is not None else {"x": rid})
    peer, raw, msg = fd.recv()
    assert isinstance(msg.body, (m.Result, m.Failure)) and msg.body.request_id == rid, msg.body
    return raw


@pytest.fixture
def worker(fake_daemon):
    made = []

    def start(**kw):
        w = make_worker(fake_daemon, **kw)
        made.append(w)
        return w.start()

    yield start
    for w in made:
        w.test_release.set()
        w.stop(now=True, timeout=WAIT)


def test_answers_get_no_ack_and_the_ack_to_the_pong_that_lists_them_confirms_them(fake_daemon, worker):
    """Sync and async handlers alike: nothing is awaited after an answer; the next Pong lists
    the answers (not in in_flight), and the Ack naming none missing makes the worker forget
    them: the Pong after lists nothing."""
    w = worker()
    attach(fake_daemon, w)
    answered(fake_daemon, w, 11)
    answered(fake_daemon, w, 12, "async_add", {"a": 1, "b": 2})
    answered(fake_daemon, w, 13, "boom")  # a Failure is kept the same way
    assert fake_daemon.nothing(0.3)  # the worker waits for no Ack, and sends nothing more
    peer, raw, pong = ping(fake_daemon, w, 2)
    assert raw == wire(w.worker_id, m.Pong(seq=2, instance=INSTANCE, in_flight=[], answered=[11, 12, 13]))
    fake_daemon.reply(peer, m.Ack(pong_seq=2))
    settled(lambda: not w._kept, "forgot the confirmed answers")
    peer, _, pong = ping(fake_daemon, w, 3)
    assert pong.answered is None
    assert w._kept_bytes == 0 and not w._pending


def test_the_answers_named_missing_are_sent_again_byte_for_byte_and_kept(fake_daemon, worker):
    w = worker()
    attach(fake_daemon, w)
    first = answered(fake_daemon, w, 21)
    answered(fake_daemon, w, 22)
    peer, _, pong = ping(fake_daemon, w, 2)
    assert pong.answered == [21, 22]
    fake_daemon.reply(peer, m.Ack(pong_seq=2, missing=[21, 99]))  # 99: not the worker's, ignored
    peer, again, _ = fake_daemon.recv()
    assert again == first
    assert fake_daemon.nothing(0.3)
    peer, _, pong = ping(fake_daemon, w, 3)
    assert pong.answered == [21]  # 22 confirmed; 21 kept until a Pong sent after its re-send is Acked
    fake_daemon.reply(peer, m.Ack(pong_seq=3))
    settled(lambda: not w._kept, "forgot 21")


def test_an_answer_sent_after_the_pong_stays_kept_when_its_ack_comes(fake_daemon, worker):
    """The Ack to Pong 2 confirms what Pong 2 listed, not what was answered after it, even when
    a later Pong listed that answer before the Ack came."""
    w = worker()
    attach(fake_daemon, w)
    answered(fake_daemon, w, 31)
    peer, _, pong = ping(fake_daemon, w, 2)
    answered(fake_daemon, w, 32)  # after Pong 2: its Ack cannot know of it
    _, _, pong = ping(fake_daemon, w, 3)
    assert pong.answered == [31, 32]
    fake_daemon.reply(peer, m.Ack(pong_seq=2))
    settled(lambda: 31 not in w._kept, "forgot 31")
    peer, _, pong = ping(fake_daemon, w, 4)
    assert pong.answered == [32]


def test_a_rerun_of_a_kept_answer_sends_the_answer_not_the_work(fake_daemon, worker):
    w = worker()
    attach(fake_daemon, w)
    first = answered(fake_daemon, w, 41, "caller")
    request(fake_daemon, w, 41, "caller")  # a re-send the daemon decided before the answer came
    _, again, _ = fake_daemon.recv()
    assert again == first


def test_a_pong_listing_nothing_is_not_waited_for_and_a_stray_ack_to_it_confirms_nothing(fake_daemon, worker):
    """The daemon Acks a Pong that lists no answers only sometimes (§7.7). An Ack to an earlier
    Pong that listed nothing, read after an answer was sent, must not confirm that answer."""
    w = worker()
    attach(fake_daemon, w)
    peer, _, pong = ping(fake_daemon, w, 2)
    assert pong.answered is None and not w._pending  # nothing awaited
    first = answered(fake_daemon, w, 51)
    fake_daemon.reply(peer, m.Ack(pong_seq=2))  # (a stray Ack to Pong 2)
    # Read after it on the same connection (so the stray one was read first): sends 51 again
    # only if 51 is still kept.
    fake_daemon.reply(peer, m.Ack(pong_seq=2, missing=[51]))
    _, again, _ = fake_daemon.recv()
    assert again == first
    _, _, pong = ping(fake_daemon, w, 3)
    assert pong.answered == [51]


def test_early_confirmation_once_the_kept_bytes_pass_the_bound(fake_daemon, worker):
    """confirm_kept_bytes: an answer that brings the kept bytes to the bound repeats the last
    Pong (same seq, its current lists), only if that Pong listed answers and its Ack was read,
    and with at most one such repeat awaiting its Ack."""
    w = worker(confirm_kept_bytes=3000)
    attach(fake_daemon, w)
    big = {"b": b"x" * 2000}
    answered(fake_daemon, w, 61, inputs=big)  # 2 kB kept: under the bound
    assert fake_daemon.nothing(0.3)
    peer, _, pong = ping(fake_daemon, w, 2)
    assert pong.answered == [61]
    answered(fake_daemon, w, 62, inputs=big)  # 4 kB, but Pong 2's Ack is not read yet: no repeat
    assert fake_daemon.nothing(0.3)
    fake_daemon.reply(peer, m.Ack(pong_seq=2))  # confirms 61; 62 stays (2 kB)
    settled(lambda: 61 not in w._kept, "forgot 61")
    answered(fake_daemon, w, 63, inputs=big)  # 4 kB again: Pong 2 repeated
    peer, raw, pong = fake_daemon.expect(m.Pong)
    assert raw == wire(w.worker_id, m.Pong(seq=2, instance=INSTANCE, in_flight=[], answered=[62, 63]))
    answered(fake_daemon, w, 64, inputs=big)  # the repeat's Ack is due: no second repeat
    assert fake_daemon.nothing(0.3)
    fake_daemon.reply(peer, m.Ack(pong_seq=2, missing=[63]))  # 62 confirmed, 63 sent again
    _, _, again = fake_daemon.expect(m.Result)
    assert again.request_id == 63
    # 63 (re-sent) and 64 kept: 4 kB, after the Ack was read: the Pong is repeated once more
    peer, _, pong = fake_daemon.expect(m.Pong)
    assert (pong.seq, pong.answered) == (2, [63, 64])
    fake_daemon.reply(peer, m.Ack(pong_seq=2))
    settled(lambda: not w._kept, "forgot 63 and 64")
    assert w._kept_bytes == 0


def test_no_early_confirmation_with_a_bound_of_zero(fake_daemon, worker):
    w = worker(confirm_kept_bytes=0)
    attach(fake_daemon, w)
    answered(fake_daemon, w, 71)
    peer, _, _ = ping(fake_daemon, w, 2)
    fake_daemon.reply(peer, m.Ack(pong_seq=2))
    settled(lambda: not w._kept, "forgot 71")
    answered(fake_daemon, w, 72, inputs={"b": b"x" * 100_000})
    assert fake_daemon.nothing(0.3)


def test_an_older_daemon_acks_every_answer_and_the_worker_reads_those_acks(fake_daemon, worker):
    """Attached without no_answer_acks (a daemon that does not know the field): each answer's
    Ack{late: false} confirms it, as before; every ping is answered (no idle_pong_every)."""
    w = worker()
    attach(fake_daemon, w, no_answer_acks=False)
    answered(fake_daemon, w, 81)
    fake_daemon.reply(fake_daemon.last_peer, m.Ack())
    settled(lambda: not w._kept, "took the Result's Ack as its confirmation")
    for seq in (2, 3, 4):
        peer, _, pong = ping(fake_daemon, w, seq, own_topic=False)
        assert pong.answered is None  # confirmed by its own Ack
        fake_daemon.reply(peer, m.Ack(pong_seq=seq))
    answered(fake_daemon, w, 82)
    fake_daemon.reply(fake_daemon.last_peer, m.Ack(late=True))  # confirms nothing: kept
    _, _, pong = ping(fake_daemon, w, 5)
    assert pong.answered == [82]


def test_an_older_daemons_ack_to_a_failure_sent_before_any_handler_confirms_that_failure(fake_daemon, worker):
    """Replies are matched to answers in order: a Failure sent from the I/O thread (a node this
    worker does not serve) is an answer like the others. (It was not kept, so its Ack confirmed
    the next answer, whose own Ack{late} then could not keep it.)"""
    w = worker()
    attach(fake_daemon, w, no_answer_acks=False)
    request(fake_daemon, w, 111, "nope")
    _, _, fail = fake_daemon.expect(m.Failure)
    assert fail.request_id == 111
    answered(fake_daemon, w, 112)
    fake_daemon.reply(fake_daemon.last_peer, m.Ack())  # the Failure's
    fake_daemon.reply(fake_daemon.last_peer, m.Ack(late=True))  # the Result's: dropped as late, kept
    settled(lambda: not w._pending, "read both Acks")
    _, _, pong = ping(fake_daemon, w, 2)
    assert pong.answered == [112]


def test_the_grant_is_read_per_attach(fake_daemon, worker):
    """Answers sent between an Attach and its Attached are awaited as if Acked; an Attached that
    grants no_answer_acks drops that wait (no Ack comes for them)."""
    w = worker()
    attach(fake_daemon, w, no_answer_acks=False)
    w.test_release.clear()
    request(fake_daemon, w, 91, "block")
    w.remove_node("greet")  # the node list changed: the worker attaches again
    peer, _, _ = fake_daemon.expect(m.Attach)
    w.test_release.set()
    answered_raw = fake_daemon.expect(m.Result)
    assert answered_raw[2].request_id == 91
    fake_daemon.reply(peer, dataclasses.replace(attached_reply(w.worker_id, INSTANCE, ping_interval_ms=0), no_answer_acks=True))
    assert w.wait_attached(WAIT)
    assert not w._pending  # (set only after the Attached was read)
    peer, _, pong = ping(fake_daemon, w, 2)
    assert pong.answered == [91]
    fake_daemon.reply(peer, m.Ack(pong_seq=2))
    settled(lambda: not w._kept, "forgot 91")


def test_idle_broadcast_pings_are_answered_every_kth_time(fake_daemon, worker):
    """idle_pong_every = 3: while nothing runs and nothing is kept, two broadcast pings in a row
    go unanswered and the third is answered; a ping on the worker's own topic always is; while a
    request runs, or an answer is kept, every ping is."""
    w = worker()
    attach(fake_daemon, w, idle_pong_every=3)
    for seq in (2, 3):
        fake_daemon.publish("b:", m.Ping(seq=seq, instance=INSTANCE))
    _, _, pong = ping(fake_daemon, w, 4, own_topic=False)
    fake_daemon.publish("b:", m.Ping(seq=5, instance=INSTANCE))
    _, _, pong = ping(fake_daemon, w, 6, own_topic=True)  # own topic: answered, and counts
    for seq in (7, 8):
        fake_daemon.publish("b:", m.Ping(seq=seq, instance=INSTANCE))
    _, _, pong = ping(fake_daemon, w, 9, own_topic=False)
    w.test_release.clear()
    request(fake_daemon, w, 101, "block")
    for seq in (10, 11):  # running: each one answered
        _, _, pong = ping(fake_daemon, w, seq, own_topic=False)
        assert pong.in_flight == [101]
    w.test_release.set()
    fake_daemon.expect(m.Result)
    peer, _, pong = ping(fake_daemon, w, 12, own_topic=False)  # kept: answered
    assert pong.answered == [101]
    fake_daemon.reply(peer, m.Ack(pong_seq=12))
    settled(lambda: not w._kept, "forgot 101")
    for seq in (13, 14):
        fake_daemon.publish("b:", m.Ping(seq=seq, instance=INSTANCE))
    ping(fake_daemon, w, 15, own_topic=False)


def test_an_older_daemon_gets_a_pong_to_every_ping(fake_daemon, worker):
    w = worker()
    attach(fake_daemon, w, no_answer_acks=False, idle_pong_every=0)
    for seq in (2, 3, 4):
        peer, _, _ = ping(fake_daemon, w, seq, own_topic=False)
        fake_daemon.reply(peer, m.Ack(pong_seq=seq))
