"""musterd's reliability rules against real processes (issue 12, items 8, 10, 11, 12, 13;
docs/RELIABILITY.md, docs/PROTOCOL.md §10).

Raw peers speak the wire protocol directly (tools/fault/wire.py), so a test can be the worker
that dies while confirming, forges pongs or attaches too much, or the client that never reads.
Every wait is bounded; everything started here is killed by conftest's autouse fixture.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from conftest import REPO, read_log, spawn, wait_for

sys.path.insert(0, str(REPO / "tools" / "fault"))
import wire  # noqa: E402


def addr(daemon, role: str) -> str:
    return f"ipc://{daemon.runtime_dir}/{role}.sock"


_CONTEXTS: list[zmq.Context] = []


def _context() -> zmq.Context:
    """A context the test's raw peers use, destroyed (linger 0) when the test ends even if it
    failed midway: an open socket would make the interpreter's exit wait on it forever."""
    ctx = zmq.Context()
    _CONTEXTS.append(ctx)
    return ctx


@pytest.fixture(autouse=True)
def _destroy_raw_peers():
    yield
    while _CONTEXTS:
        _CONTEXTS.pop().destroy(0)


class RawWorker:
    """A worker speaking the protocol by hand: a DEALER on the response socket and a SUB on
    the request socket (subscribed to the broadcast topic, then to the topic Attached assigns)."""

    def __init__(self, daemon, worker_id: str, nodes, capacity: int = 1, description: str | None = None):
        self.ctx = _context()
        self.id = worker_id
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.connect(addr(daemon, "request"))
        self.sub.subscribe(b"b:")
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.linger = 0
        self.dealer.connect(addr(daemon, "response"))
        self.instance = ""
        self.work: list[int] = []  # request ids of every WorkRequest received, re-sends included
        self.pings: list[tuple[bool, int]] = []  # (to this worker alone, seq)
        time.sleep(0.2)  # the SUB's subscription reaches musterd
        self.attach_reply = self.send(wire.attach(worker_id, "s1", capacity, nodes, description=description))
        # Its own topic is the one Attached assigns (PROTOCOL.md §2); nothing else is applied.
        if self.attach_reply is not None and self.attach_reply.topic:
            self.sub.subscribe(self.attach_reply.topic.encode())

    def send(self, msg: bytes, timeout: float = 10.0):
        self.dealer.send(msg)
        if not self.dealer.poll(int(timeout * 1000)):
            return None
        return wire.read_daemon(self.dealer.recv_multipart()[-1])

    def read_sub(self, seconds: float):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not self.sub.poll(20):
                continue
            frames = self.sub.recv_multipart()
            m = wire.read_daemon(frames[-1])
            if m is None:
                continue
            if m.kind == wire.DAEMON_PING:
                self.instance = m.instance
                self.pings.append((frames[0].startswith(b"w:"), m.seq))
            elif m.kind == wire.DAEMON_WORK:
                self.work.append(m.request_id)

    def confirm(self):
        """Answers its confirming ping, as an honest worker does."""
        wait_for(lambda: self.read_sub(0.1) or any(own for own, _ in self.pings), 10, "a confirming ping")
        seq = [s for own, s in self.pings if own][-1]
        assert self.send(wire.pong(self.id, seq, self.instance, [])).kind == wire.DAEMON_ACK

    def close(self):
        self.ctx.destroy(0)


class RawClient:
    def __init__(self, daemon):
        self.ctx = _context()
        self.s = self.ctx.socket(zmq.DEALER)
        self.s.linger = 0
        self.s.connect(daemon.client_address)

    def submit(self, rid: int, node: str, inputs: dict, timeout_ms: int):
        self.s.send(wire.SubmitTemplate(node, inputs, timeout_ms).make(rid))

    def terminal(self, timeout: float):
        """The next Result or Failure, or None after `timeout` s."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.s.poll(50):
                r = wire.read_reply(self.s.recv_multipart()[-1])
                if r and r.kind in (wire.REPLY_RESULT, wire.REPLY_FAILURE):
                    return r
        return None

    def close(self):
        self.ctx.destroy(0)


def worker_states(run_cli, daemon) -> dict:
    r = run_cli(daemon, "workers", "--json")
    assert r.returncode == 0, r.stderr
    return {w["worker_id"]: w["state"] for w in json.loads(r.stdout)}


# ---- item 8: a request never waits its full deadline for a node nobody serves -------------------


def test_a_call_queued_for_a_confirming_worker_that_dies_ends_no_worker(daemon, run_cli):
    w = RawWorker(daemon, "dies-confirming", [("lonely", False)])
    assert w.attach_reply.kind == wire.DAEMON_ATTACHED
    c = RawClient(daemon)
    c.submit(1, "lonely", {"x": 1}, 15000)  # queued: the worker never confirms
    w.close()  # and never answers a ping: declared dead after the liveness window (600 ms)
    r = c.terminal(14)
    assert r is not None, "no reply before the deadline"
    assert wire.code_name(r.code) == "NO_WORKER", r.message  # not TIMEOUT at the 15 s deadline
    assert "--no-worker-grace-ms" in r.message
    c.close()


def test_an_idempotent_call_requeued_after_its_only_worker_died_ends_no_worker(daemon):
    w = RawWorker(daemon, "dies-running", [("again", True)])
    w.confirm()
    c = RawClient(daemon)
    c.submit(1, "again", {"x": 1}, 15000)
    wait_for(lambda: w.read_sub(0.1) or w.work, 10, "the WorkRequest")
    w.close()  # dies holding it: it is re-queued, and nobody serves the node any more
    r = c.terminal(14)
    assert r is not None, "no reply before the deadline"
    assert wire.code_name(r.code) == "NO_WORKER", r.message
    c.close()


# ---- item 10: forged or stale pongs cannot amplify ----------------------------------------------


def test_forged_pongs_neither_confirm_nor_make_musterd_resend(start_daemon, run_cli):
    # Liveness is not what this test is about, and a raw worker in the test's own Python process
    # cannot promise a pong every 600 ms on a loaded machine: with liveness 3 x 200 ms, "never-reads"
    # (forged pongs do not keep a worker alive) could be dead before `muster workers` looked, and
    # "forger" declared silent (WORKER_LOST before any re-send). With liveness 200 x 200 ms the
    # pings still come every 200 ms, so the re-sends below come as quickly, and only pongs decide.
    daemon = start_daemon(liveness=200)
    # A pong to a ping never sent does not confirm a worker whose SUB path is unproven.
    lazy = RawWorker(daemon, "never-reads", [("forged.a", False)])
    for i in range(5):
        assert lazy.send(wire.pong("never-reads", 10**12 + i, "", [])).kind == wire.DAEMON_ACK
    assert worker_states(run_cli, daemon)["never-reads"] == "confirming"
    lazy.close()

    # A confirmed worker that holds a 256 KiB request and sends 200 forged pongs with an empty
    # in-flight list gets no re-send; pongs to real pings re-send it at most --max-resends (3)
    # times, one per ping, then the call fails WORKER_LOST.
    w = RawWorker(daemon, "forger", [("forged.n", False)])
    w.confirm()
    c = RawClient(daemon)
    c.submit(1, "forged.n", {"blob": "x" * (256 * 1024)}, 20000)
    wait_for(lambda: w.read_sub(0.1) or w.work, 10, "the WorkRequest")
    rid = w.work[0]
    answered = {seq for _, seq in w.pings}
    for i in range(200):
        w.dealer.send(wire.pong("forger", 10**12 + i, w.instance, []))
        if i % 20 == 0:  # meanwhile it answers the real pings honestly, so it stays alive
            w.read_sub(0.1)
            for _, seq in w.pings:
                if seq not in answered:
                    answered.add(seq)
                    w.dealer.send(wire.pong("forger", seq, w.instance, [rid]))
    assert len(w.work) == 1, f"forged pongs made musterd re-send {len(w.work) - 1} times"

    reply = None
    deadline = time.monotonic() + 15
    while reply is None and time.monotonic() < deadline:
        w.read_sub(0.05)
        for _, seq in w.pings:
            if seq not in answered:  # 20 pongs to each real ping, in-flight list empty
                answered.add(seq)
                for _ in range(20):
                    w.dealer.send(wire.pong("forger", seq, w.instance, []))
        reply = c.terminal(0.05)
    assert reply is not None
    assert wire.code_name(reply.code) == "WORKER_LOST", reply.message
    assert "never listed the request in its pongs" in reply.message, reply.message  # not silence
    assert 1 < len(w.work) <= 1 + 3, (w.work, reply.message, w.pings[-5:])
    assert set(w.work) == {w.work[0]}
    w.close()
    c.close()


# ---- item 11: exactly one terminal reply, also to a slow reader ---------------------------------


def status(daemon_client: RawClient) -> dict:
    daemon_client.s.send(wire.status_request(1))
    assert daemon_client.s.poll(10000)
    return wire.read_status(wire.read_reply(daemon_client.s.recv_multipart()[-1]))


def test_a_client_that_reads_late_gets_exactly_one_reply_per_call(start_daemon, start_worker):
    n = 130_000
    # Outstanding 20,000: with the pipe's 100,000 the outbox's hard cap (40,000) holds every
    # refusal too, so no reply of any kind is dropped. (With the default 10,000 the client
    # gets every Result, and the refusals beyond the cap of 20,000 waiting are dropped.)
    d = start_daemon("--max-client-outstanding", "20000", "--queue-limit", "100000")
    start_worker(d, "--capacity", "16").wait_ready()
    c, admin = RawClient(d), RawClient(d)
    t = wire.SubmitTemplate("echo", {"x": 1}, 120000)
    for rid in range(1, n + 1):
        c.s.send(t.make(rid))  # reads nothing until the end
        if rid % 2000 == 0:  # paced by what musterd has queued, so the calls are accepted
            # A bound against a hang, not a timing: a sanitized musterd is ~10x slower.
            wait_for(lambda: status(admin)["queued"] < 2000, 180, "the queue to drain")
    replies: dict[int, list] = {}
    last = time.monotonic()
    while len(replies) < n and time.monotonic() - last < 60:  # idle bound: a sanitized musterd is slow
        if c.s.poll(100):
            r = wire.read_reply(c.s.recv_multipart()[-1])
            if r and r.kind in (wire.REPLY_RESULT, wire.REPLY_FAILURE):
                replies.setdefault(r.request_id, []).append(r)
                last = time.monotonic()
    c.close()
    admin.close()
    codes: dict[str, int] = {}
    for rs in replies.values():
        for r in rs:
            k = "RESULT" if r.kind == wire.REPLY_RESULT else wire.code_name(r.code)
            codes[k] = codes.get(k, 0) + 1
    missing = n - len(replies)
    duplicated = sum(len(rs) - 1 for rs in replies.values())
    assert (missing, duplicated) == (0, 0), codes
    assert set(codes) <= {"RESULT", "QUEUE_FULL"}, codes
    # The replies libzmq could not take waited in musterd's outbox; the refusals say so.
    refusals = [rs[0].message for rs in replies.values() if rs[0].kind == wire.REPLY_FAILURE]
    assert refusals, codes
    assert all("read your replies" in m for m in refusals), refusals[:3]
    assert any(re.search(r"and [1-9][0-9]* repl", m) for m in refusals), refusals[:3]
    log = d.log
    assert "was dropped" not in log and "were dropped" not in log


# ---- item 12: a daemon stall is not a worker death ---------------------------------------------


def test_sigstop_of_musterd_is_not_a_worker_death(start_daemon, start_worker, run_cli):
    node, npm = shutil.which("node"), shutil.which("npm")
    ts_worker = REPO / "worker" / "examples" / "typescript" / "example-worker.js"
    ts_built = REPO / "worker" / "typescript" / "dist" / "src" / "index.js"
    if node is None or not ts_built.exists():
        pytest.skip("the TypeScript SDK is not built (tests/integration/test_typescript_sdk.py builds it)")
    d = start_daemon(ping_ms=100)  # liveness 3: a worker silent for 300 ms is dead
    cpp = start_worker(d, "--capacity", "4", worker_id="stall-cpp")
    py = spawn([sys.executable, REPO / "worker" / "examples" / "python" / "example_worker.py",
                "--prefix", "py.", "--worker-id", "stall-py", "--capacity", "4", "--log-level", "debug"],
               d.env, d.runtime_dir.parent / "stall-py.log")
    ts = spawn([node, ts_worker, "--prefix", "ts.", "--worker-id", "stall-ts", "--capacity", "4",
                "--log-level", "debug"], d.env, d.runtime_dir.parent / "stall-ts.log")
    wait_for(lambda: all(worker_states(run_cli, d).get(w) == "ready"
                         for w in ("stall-cpp", "stall-py", "stall-ts")), 30, "three ready workers")

    c = RawClient(d)
    calls = {1: ("sleep", {"ms": 800}), 2: ("sleep", {"ms": 1500}), 3: ("py.sleep", {"ms": 800}),
             4: ("py.sleep", {"ms": 1500}), 5: ("ts.echo", {"x": 5}), 6: ("ts.hello", {"name": "stall"})}
    for rid, (n, inputs) in list(calls.items())[:4]:
        c.submit(rid, n, inputs, 60000)
    time.sleep(0.3)  # the sleeps are running
    d.proc.send_signal(signal.SIGSTOP)
    try:
        for rid, (n, inputs) in list(calls.items())[4:]:
            c.submit(rid, n, inputs, 60000)  # waiting in the socket while musterd is stopped
        time.sleep(3.0)  # ten liveness windows; the sleeps finish meanwhile
    finally:
        d.proc.send_signal(signal.SIGCONT)
    got = {}
    while len(got) < len(calls):
        r = c.terminal(20)
        assert r is not None, f"replies so far: {got}"
        got[r.request_id] = "RESULT" if r.kind == wire.REPLY_RESULT else f"{wire.code_name(r.code)}: {r.message}"
    c.close()
    assert got == {rid: "RESULT" for rid in calls}
    log = d.log
    deaths = [line for line in log.splitlines() if "worker is gone:" in line]
    assert not deaths, deaths
    assert "fresh liveness window" in log
    states = worker_states(run_cli, d)
    assert all(states.get(w) in ("ready", "confirming") for w in ("stall-cpp", "stall-py", "stall-ts")), states
    for p in (py, ts):
        assert p.poll() is None, read_log(p)


# ---- item 13: one worker cannot freeze the daemon --------------------------------------------


def test_attach_limits_are_refused_naming_the_limit(start_daemon):
    # The raw Attaches below never answer a Ping: with the usual 200 ms pings musterd drops each
    # after ping_interval x liveness (0.6 s), so on a loaded machine the first had gone (its slot
    # free again) before the 257th arrived. 10 s pings keep all 256 attached for 30 s.
    daemon = start_daemon(ping_ms=10_000)
    # Node specs of 1.6 MB as JSON (200 nodes, well under --max-attach-nodes and the message
    # size limit) pass --max-attach-spec-bytes (1 MiB).
    big = RawWorker(daemon, "big-specs", [(f"n{i}", False) for i in range(200)], description="d" * 8000)
    assert big.attach_reply.kind == wire.DAEMON_REJECTED
    assert wire.code_name(big.attach_reply.code) == "INVALID_REQUEST"
    assert "--max-attach-spec-bytes" in big.attach_reply.message
    big.close()
    # Over ipc:// every local peer is the socket owner's identity: 256 worker ids at most.
    ctx = zmq.Context()
    d = ctx.socket(zmq.DEALER)
    d.linger = 0
    d.connect(addr(daemon, "response"))
    replies = []
    for i in range(257):
        d.send(wire.attach(f"many-{i}", "s1", 1, [("m", False)]))
        assert d.poll(10000)
        replies.append(wire.read_daemon(d.recv_multipart()[-1]))
    assert all(r.kind == wire.DAEMON_ATTACHED for r in replies[:256])
    assert replies[256].kind == wire.DAEMON_REJECTED
    assert wire.code_name(replies[256].code) == "INVALID_REQUEST"
    assert "--max-workers-per-identity" in replies[256].message
    ctx.destroy(0)
