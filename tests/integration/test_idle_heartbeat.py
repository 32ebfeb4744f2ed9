"""An idle worker's heartbeat costs less (docs/PROTOCOL.md §7.3 idle pongs, §7.7 Acks to Pongs).

A raw worker speaks the wire protocol with the Python SDK's message codec, so the test sees
which replies musterd really sends; the C++ SDK worker, which opts in, must stay attached and
serve calls while it answers only every k-th ping. Every wait is bounded.
"""
from __future__ import annotations

import json
import time

import pytest
import zmq

from muster import messages as m

from conftest import wait_for


def addr(daemon, role: str) -> str:
    return f"ipc://{daemon.runtime_dir}/{role}.sock"


class IdleWorker:
    """A worker that attaches with no_answer_acks and idle_pongs and answers pings by hand."""

    def __init__(self, daemon, worker_id: str):
        self.ctx = zmq.Context()
        self.id = worker_id
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.connect(addr(daemon, "request"))
        self.sub.subscribe(b"b:")
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.linger = 0
        self.dealer.connect(addr(daemon, "response"))
        time.sleep(0.2)  # the subscription reaches musterd
        attach = m.Attach(worker_id, session="s1", nodes=[m.NodeSpec(name="idle.node")],
                          no_answer_acks=True, idle_pongs=True)
        self.send(attach)
        self.attached = self.reply(10.0)
        assert self.attached is not None and isinstance(self.attached, m.Attached), self.attached
        self.sub.subscribe(self.attached.topic.encode())

    def send(self, body) -> None:
        self.dealer.send(m.encode(m.WorkerMessage(worker_id=self.id, body=body)))

    def reply(self, timeout: float):
        """The daemon's next reply on the response socket, or None after `timeout` s."""
        if not self.dealer.poll(int(timeout * 1000)):
            return None
        return m.decode_daemon_message(self.dealer.recv_multipart()[-1]).body

    def ping(self, own_topic: bool, timeout: float = 10.0) -> m.Ping:
        """The next Ping on the worker's own topic (confirming) or on the broadcast topic."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.sub.poll(50):
                continue
            frames = self.sub.recv_multipart()
            msg = m.decode_daemon_message(frames[-1]).body
            if isinstance(msg, m.Ping) and frames[0].startswith(b"w:") == own_topic:
                return msg
        raise AssertionError("no ping came")

    def pong(self, ping: m.Ping, answered=None) -> None:
        self.send(m.Pong(ping.seq, ping.instance, [], answered))

    def close(self) -> None:
        self.ctx.destroy(0)


def test_an_idle_pong_gets_no_ack_and_the_grant_is_in_attached(start_daemon):
    # 1 s pings: the worker may stay silent 3 + 3 - 1 = 5 s, longer than the test waits.
    d = start_daemon("--idle-pong-every", "3", ping_ms=1000)
    w = IdleWorker(d, "idle-raw")
    try:
        assert w.attached.no_answer_acks
        assert w.attached.idle_pong_every == 3
        # The Pong that confirms it is Acked (it may wait for that to know it is dispatchable).
        confirming = w.ping(own_topic=True)
        w.pong(confirming)
        ack = w.reply(10.0)
        assert isinstance(ack, m.Ack) and ack.pong_seq == confirming.seq
        # An idle Pong (nothing answered): the Ack would say nothing, and none comes.
        w.pong(w.ping(own_topic=False))
        assert w.reply(1.5) is None
        # A Pong listing answers is Acked: the worker forgets them on that Ack (§7.7).
        listed = w.ping(own_topic=False)
        w.pong(listed, answered=[424242])
        ack = w.reply(10.0)
        assert isinstance(ack, m.Ack) and ack.pong_seq == listed.seq and not ack.missing
    finally:
        w.close()


def test_a_worker_that_does_not_ask_is_not_granted_idle_pongs(start_daemon):
    d = start_daemon("--idle-pong-every", "3")
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(addr(d, "response"))
        dealer.send(m.encode(m.WorkerMessage(worker_id="plain", body=m.Attach(
            "plain", session="s1", nodes=[m.NodeSpec(name="idle.node")]))))
        assert dealer.poll(10000)
        attached = m.decode_daemon_message(dealer.recv_multipart()[-1]).body
        assert isinstance(attached, m.Attached)
        assert attached.idle_pong_every == 0 and not attached.no_answer_acks
    finally:
        ctx.destroy(0)


@pytest.mark.parametrize("every", ["3", "1"])
def test_an_idle_cpp_worker_stays_ready_and_serves_calls(start_daemon, start_worker, run_cli, every):
    """The C++ SDK opts in: while idle it lets pings go unanswered (k = 3) and musterd keeps it
    ready across many ping intervals; a call then runs on it, and it stays ready afterwards."""
    d = start_daemon("--idle-pong-every", every, ping_ms=100)
    w = start_worker(d).wait_ready()
    # 30 ping intervals idle: longer than any liveness window (3 + 3 - 1 = 5 intervals).
    time.sleep(3.0)
    workers = json.loads(run_cli(d, "workers", "--json").stdout)
    assert [x["state"] for x in workers if x["worker_id"] == w.worker_id] == ["ready"], w.log
    r = run_cli(d, "call", "hello", json.dumps({"name": "Ada"}), timeout=30)
    assert r.returncode == 0, r.stderr
    assert "Hello Ada" in r.stdout
    time.sleep(1.5)
    wait_for(lambda: any(x["worker_id"] == w.worker_id and x["state"] == "ready"
                         for x in json.loads(run_cli(d, "workers", "--json").stdout)), 5, "still ready")
    assert "reconnecting" not in w.log and "attaching again" not in w.log, w.log
