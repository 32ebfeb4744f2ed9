"""The Python SDK worker without an Ack per answer (PROTOCOL.md §7.7) against a real musterd: many
pipelined calls each answered once, with no per-answer Ack on the wire and every kept answer
confirmed by a Pong; a musterd restart with answers kept across it (the durable call's sent again
when the new instance asks, the other's forgotten).

The worker and the client run in this process (the worker's replies are counted by wrapping its
reply handler); musterd is the build's. Every wait is bounded.
"""
from __future__ import annotations

import collections
import logging
import signal
import threading

import pytest

from conftest import wait_for

muster = pytest.importorskip("muster", reason="the Python SDK is not installed (pip install ./worker/python)")
from muster import messages as m  # noqa: E402

CALLS = 2000
IN_FLIGHT = 250


def in_process_worker(daemon, worker_id, capacity=8):
    """A Worker on `daemon`'s sockets, with its replies from the daemon recorded:
    (kind awaited, body type, Ack.pong_seq or None)."""
    w = muster.Worker(worker_id=worker_id, capacity=capacity,
                      request_address=f"ipc://{daemon.runtime_dir}/request.sock",
                      response_address=f"ipc://{daemon.runtime_dir}/response.sock")
    replies = []
    on_reply = w._on_reply

    def recorded(kind, body):
        replies.append((kind, type(body).__name__, body.pong_seq if isinstance(body, m.Ack) else None))
        on_reply(kind, body)

    w._on_reply = recorded  # type: ignore[method-assign]
    w.replies = replies  # type: ignore[attr-defined]
    return w


def client(daemon):
    return muster.Client(daemon.client_address, connect_timeout=5.0, list_timeout=10.0)


def test_many_calls_each_answered_once_without_an_ack_per_answer(daemon):
    """2,000 calls, 250 in flight at a time, sync and async handlers."""
    w = in_process_worker(daemon, "pyacks")
    runs = collections.Counter()
    lock = threading.Lock()

    @w.node(name="echo_once", idempotent=True)
    def echo_once(ctx):
        with lock:
            runs[ctx.inputs["i"]] += 1
        return {"i": ctx.inputs["i"]}

    @w.node(name="echo_async")
    async def echo_async(ctx):
        with lock:
            runs[ctx.inputs["i"]] += 1
        return {"i": ctx.inputs["i"]}

    w.start()
    try:
        assert w.wait_attached(10)
        with client(daemon) as c:
            c.wait_for_nodes(["echo_once", "echo_async"])
            # musterd granted both opt-ins (its defaults)
            assert (w._answer_acks, w._idle_pong_every) == (False, 2)
            got = []
            for start in range(0, CALLS, IN_FLIGHT):  # (the client's send queue holds 1,000)
                calls = [c.submit("echo_once" if i % 2 else "echo_async", {"i": i}, timeout_ms=60_000)
                         for i in range(start, start + IN_FLIGHT)]
                got += [call.result(60)["i"] for call in calls]
            assert got == list(range(CALLS))
        assert runs == collections.Counter(range(CALLS))  # each ran once
        wait_for(lambda: not w._kept, 10, "every kept answer confirmed by a Pong")
        replies = list(w.replies)
        # The daemon replied to the Attach and to Pongs only: no Ack per answer.
        assert all(kind in ("attach", "pong") for kind, _, _ in replies), replies[:20]
        assert all(seq for _, body, seq in replies if body == "Ack"), "an Ack that answers no Pong"
        pong_acks = sum(1 for kind, _, _ in replies if kind == "pong")
        assert 0 < pong_acks < CALLS // 10
    finally:
        w.stop(timeout=10)
    # nothing lost on the way (a request re-sent) nor answered twice (a late answer dropped)
    assert "never reached its worker" not in daemon.log and "late answer" not in daemon.log


def test_answers_kept_across_a_restart_are_sent_again_or_forgotten(start_daemon, caplog):
    """musterd is SIGKILLed while a durable call and an ordinary one run on a Python worker; both
    are answered while it is down (kept). The restarted musterd adopts the durable call: the Ack
    to the worker's first Pong names it missing, the worker sends it again and the resumed caller
    gets it; the other call died with the old instance (its caller got Unavailable): its answer
    is forgotten, not sent again. Each ran once."""
    d = start_daemon()
    w = in_process_worker(d, "pykeep", capacity=4)
    gate = threading.Event()
    runs = collections.Counter()

    @w.node(name="gated")
    def gated(ctx):
        runs[ctx.inputs["i"]] += 1
        gate.wait(30)
        return {"i": ctx.inputs["i"]}

    caplog.set_level(logging.INFO, logger="muster.worker")
    w.start()
    try:
        assert w.wait_attached(10)
        with client(d) as c:
            c.wait_for_nodes(["gated"])
            durable = c.submit("gated", {"i": 1}, timeout_ms=60_000, durable=True)
            assert durable.accepted.wait(15) and durable.job_id
            ordinary = c.submit("gated", {"i": 2}, timeout_ms=60_000)
            wait_for(lambda: runs == {1: 1, 2: 1}, 10, "both calls running")
            assert d.stop(signal.SIGKILL) == -signal.SIGKILL
            gate.set()
            wait_for(lambda: len(w._kept) == 2 and not w._jobs, 10, "both answers kept")
            d.start()
            assert durable.result(30) == {"i": 1}
            with pytest.raises(muster.Unavailable):
                ordinary.result(30)
        wait_for(lambda: not w._kept, 10, "the kept answers confirmed or forgotten")
    finally:
        w.stop(timeout=10)
    assert runs == {1: 1, 2: 1}
    resent = [r.getMessage() for r in caplog.records if "kept answer(s) again" in r.getMessage()]
    assert resent == ["sending 1 kept answer(s) again, as the daemon asked"]
    assert d.log.count("durable call adopted") == 1
