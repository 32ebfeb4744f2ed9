"""Pushed events (Watch, docs/PROTOCOL.md §8.2): `muster watch --json` against a real musterd sees a
worker join with its nodes, a node change, the worker leave, in order, and nothing of another
workspace (CURVE tenants); a watcher that does not read gets OVERFLOW then a fresh SNAPSHOT; the
Python SDK's iterator."""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time

import pytest
import zmq

from conftest import BUILD, REPO, popen, stop, wait_for
from test_security import lan, mint, remote_cli, secure_daemon, start_remote_worker, tcp, wait_worker_ready  # noqa: F401

from muster import messages as m
import muster


class Lines:
    """A process's stdout lines, read by a thread (so every wait is bounded)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.q: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.q.put(line)

    def until(self, pred, timeout: float = 20.0, what: str = "an event") -> list[dict]:
        """Events read until one satisfies `pred` (included)."""
        seen = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.q.get(timeout=0.1)
            except queue.Empty:
                continue
            e = json.loads(line)
            seen.append(e)
            if pred(e):
                return seen
        raise AssertionError(f"no {what} within {timeout} s; saw {seen}")


def about(e: dict) -> str:
    for k, key in (("worker", "worker_id"), ("node", "name"), ("call", "request_id")):
        if k in e:
            return str(e[k][key])
    return ""


def test_muster_watch_sees_join_change_leave_in_order_and_no_other_workspace(lan, secure_daemon, tmp_base):
    d = secure_daemon
    # Workspace beta has a worker before the watch and gets another during it: never seen.
    start_remote_worker(lan, d, tmp_base, mint(d, "--role", "worker", "--workspace", "beta"), "beta-1")
    wait_worker_ready(d, "beta-1")
    alpha_client = mint(d, "--role", "client", "--workspace", "alpha")
    assert remote_cli(lan, tmp_base, "alpha", "nodes", "--json", token=alpha_client).returncode == 0  # enrolls
    env = dict(os.environ, MUSTER_RUNTIME_DIR=str(tmp_base / "none"))
    env.pop("MUSTER_ENROLLMENT_TOKEN", None)
    watch = popen(
        [*lan.run_in("client"), str(BUILD / "tools" / "muster"), "--client-address", tcp(lan.daemon_ip_for_clients, 7901),
         "--data-dir", str(tmp_base / "cd-alpha"), "watch", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = Lines(watch)
        snapshot = lines.until(lambda e: True, what="the snapshot")[0]
        assert snapshot["kind"] == "snapshot" and snapshot["seq"] == 1
        assert snapshot["nodes"] == [] and snapshot["workers"] == []  # beta's are not alpha's

        alpha_token = mint(d, "--role", "worker", "--workspace", "alpha", "--uses", "2")
        start_remote_worker(lan, d, tmp_base, alpha_token, "alpha-1")
        joined = lines.until(lambda e: e["kind"] == "worker_changed" and e["worker"]["state"] == "ready",
                             what="alpha-1 ready")
        start_remote_worker(lan, d, tmp_base, mint(d, "--role", "worker", "--workspace", "beta"), "beta-2")
        wait_worker_ready(d, "beta-2")
        second = start_remote_worker(lan, d, tmp_base, alpha_token, "alpha-2")
        changed = lines.until(lambda e: e["kind"] == "worker_changed" and e["worker"]["worker_id"] == "alpha-2",
                              what="alpha-2 ready")
        stop(second)
        left = lines.until(lambda e: e["kind"] == "worker_left", what="alpha-2 leaving")
        events = [snapshot, *joined, *changed, *left]
        # Let the nodes' change after alpha-2 left arrive too.
        events += lines.until(lambda e: e["kind"] == "node_changed" and e["node"]["name"] == "hello"
                              and e["node"]["workers"] == 1, what="hello back to one worker")
    finally:
        stop(watch)
    kinds = [(e["kind"], about(e)) for e in events]
    # in order: alpha-1 joins, then its nodes appear, then it is ready; alpha-2 joins, the nodes
    # it shares change, it leaves, they change back.
    first_join = kinds.index(("worker_joined", "alpha-1"))
    assert kinds.index(("node_added", "hello")) > first_join
    assert kinds.index(("worker_changed", "alpha-1")) > first_join
    second_join = kinds.index(("worker_joined", "alpha-2"))
    hello_changes = [i for i, k in enumerate(kinds) if k == ("node_changed", "hello")]
    assert len(hello_changes) >= 2 and hello_changes[0] > second_join
    assert second_join < kinds.index(("worker_left", "alpha-2")) < hello_changes[-1]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # Workspace beta never shows, in any field.
    text = json.dumps(events)
    assert "beta" not in text, text
    assert all(e.get("node", {}).get("workspace", "alpha") == "alpha" for e in events)


def _raw_watch(daemon, rcvhwm: int = 1):
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.rcvhwm = rcvhwm
    s.setsockopt(zmq.RCVBUF, 4096)
    s.connect(daemon.client_address)
    s.send(m.encode(m.ClientMessage(1, m.Watch(nodes=True, workers=True))))
    return ctx, s


def _read_event(s, timeout: float = 10.0):
    assert s.poll(int(timeout * 1000)), "no event"
    reply = m.decode_client_reply(s.recv_multipart()[-1])
    return reply.body


def test_a_watcher_that_does_not_read_gets_overflow_then_a_fresh_snapshot(start_daemon):
    d = start_daemon("--watch-backlog", "16")
    ctx, s = _raw_watch(d)
    wctx = zmq.Context()
    try:
        first = _read_event(s)
        assert first.kind == m.EventKind.SNAPSHOT and first.seq == 1
        # A raw worker attaches and detaches 100 nodes, again and again: 202 events a round,
        # far more than libzmq's pipe (100,000 messages) and the socket buffers hold for a
        # watcher that reads nothing.
        w = wctx.socket(zmq.DEALER)
        w.linger = 0
        w.connect(f"ipc://{d.runtime_dir}/response.sock")
        specs = [m.NodeSpec(f"n{i}") for i in range(100)]
        rounds = 700
        for r in range(rounds):  # each message in a turn of its own: its answer before the next
            for body in (m.Attach("churn", session=f"s{r}", nodes=specs), m.Detach("churn")):
                w.send(m.encode(m.WorkerMessage("churn", body)))
                assert w.poll(10000), "musterd did not answer"
                w.recv_multipart()
        wait_for(lambda: "overflow" in d.log, 30, "musterd to log the overflow")
        kinds, seqs = [], []
        last = time.monotonic()
        while time.monotonic() - last < 3:  # idle bound: everything read
            if s.poll(100):
                e = m.decode_client_reply(s.recv_multipart()[-1]).body
                kinds.append(e.kind)
                seqs.append(e.seq)
                last = time.monotonic()
        assert m.EventKind.OVERFLOW in kinds, kinds[-5:]
        i = kinds.index(m.EventKind.OVERFLOW)
        assert kinds[i + 1] == m.EventKind.SNAPSHOT  # a fresh snapshot at once
        assert seqs == list(range(2, 2 + len(seqs)))  # never a silent gap
        assert d.proc.poll() is None
    finally:
        ctx.destroy(0)
        wctx.destroy(0)


def test_python_watch_iterator(daemon, start_worker):
    with muster.Watch(daemon.client_address, nodes=True, workers=True, calls=True) as w:
        it = iter(w)
        snap = next(it)
        assert snap.kind == muster.EventKind.SNAPSHOT and snap.seq == 1 and not snap.workers
        worker = start_worker(daemon, worker_id="py-watched")
        seen = []
        for e in it:
            seen.append(e)
            if e.kind == muster.EventKind.WORKER_CHANGED and e.worker.state == "ready":
                break
        assert seen[0].kind == muster.EventKind.WORKER_JOINED and seen[0].worker.worker_id == "py-watched"
        assert any(e.kind == muster.EventKind.NODE_ADDED and e.node.spec.name == "hello" for e in seen)
        with muster.Client(daemon.client_address) as c:
            c.call("hello", {"name": "x"})
        calls = []
        for e in it:
            if e.kind == muster.EventKind.CALL_STATE:
                calls.append(e.call.state)
                if e.call.state == m.JobState.FINISHED:
                    break
        assert calls[-1] == m.JobState.FINISHED and m.JobState.RUNNING in calls
        w.cancel()
        rest = list(it)  # ends (Failure{Cancelled} confirmed), without raising
        assert all(e.kind != muster.EventKind.SNAPSHOT for e in rest)
        stop(worker.proc)


TS_WATCH_SCRIPT = """
const { watch, EventKind } = require(process.argv[1]);
(async () => {
  // Prints each event as a JSON line until the worker is ready, then stops (which cancels).
  for await (const e of watch({ clientAddress: process.argv[2] })) {
    const what = e.worker ? e.worker.workerId + ' ' + e.worker.state : e.node ? e.node.spec.name : '';
    console.log(JSON.stringify({ seq: Number(e.seq), kind: EventKind[e.kind], what }));
    if (e.kind === EventKind.Snapshot) console.log('READY');
    if (e.kind === EventKind.WorkerChanged && e.worker.state === 'ready') break;
  }
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_typescript_watch_iterator(daemon, start_worker):
    node = shutil.which("node")
    ts_dir = REPO / "worker" / "typescript"
    if node is None or not (ts_dir / "dist" / "src" / "index.js").exists():
        pytest.skip("build the TypeScript SDK first (tools/lib/setup.sh setup_typescript)")
    proc = popen([node, "-e", TS_WATCH_SCRIPT, str(ts_dir / "dist" / "src" / "index.js"), daemon.client_address],
                 env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        def until(word):
            end = time.monotonic() + 20
            while time.monotonic() < end:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line.strip())
                if word in line:
                    return
            raise AssertionError(f"no {word}: {lines} {proc.stderr.read() if proc.poll() is not None else ''}")
        until("READY")
        start_worker(daemon, worker_id="ts-watched")
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
        until_end = [json.loads(x) for x in [*lines, *proc.stdout.read().splitlines()] if x.startswith("{")]
    finally:
        if proc.poll() is None:
            proc.kill()
    kinds = [(e["kind"], e["what"]) for e in until_end]
    assert kinds[0][0] == "Snapshot"
    assert ("WorkerJoined", "ts-watched confirming") in kinds
    assert ("NodeAdded", "hello") in kinds
    assert kinds[-1] == ("WorkerChanged", "ts-watched ready")
    assert [e["seq"] for e in until_end] == list(range(1, len(until_end) + 1))


def test_a_watch_ends_when_its_client_goes_away(daemon, start_worker):
    ctx, s = _raw_watch(daemon)
    try:
        assert _read_event(s).kind == m.EventKind.SNAPSHOT
    finally:
        ctx.destroy(0)  # the client goes away without a Cancel
    start_worker(daemon, worker_id="after-the-watcher").wait_ready()  # an event for nobody
    wait_for(lambda: "watch ended: its connection is gone" in daemon.log, 10, "musterd to forget the watch")
    assert daemon.proc.poll() is None


def test_muster_watch_prints_lines_and_stops_after_count(daemon, start_worker):
    """`muster watch` (text) over ipc: the snapshot line, then the worker joining; --count ends it."""
    w = popen([str(BUILD / "tools" / "muster"), "watch", "--workers", "--count", "2"], env=daemon.env,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        first = w.stdout.readline()
        assert "snapshot" in first and "workers: -" in first, first
        start_worker(daemon, worker_id="printed")
        assert w.wait(timeout=20) == 0, w.stderr.read()
        second = w.stdout.read()
    finally:
        if w.poll() is None:
            w.kill()
    assert "worker_joined" in second and "printed" in second and "confirming" in second, second
    assert "node_added" not in second  # --workers only


def test_muster_watch_without_a_daemon_is_unavailable(tmp_base):
    env = dict(os.environ, MUSTER_RUNTIME_DIR=str(tmp_base / "nobody"))
    r = subprocess.run([str(BUILD / "tools" / "muster"), "watch", "--json"], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 3 and "UNAVAILABLE" in r.stderr.upper(), (r.returncode, r.stderr)
