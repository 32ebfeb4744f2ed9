"""chunk_peers.py — raw peers of chunked values (PROTOCOL.md §7.9) for the integration tests:
a worker and a caller that speak the wire by hand with the Python SDK's message codec, so a
test can play either side exactly (a wrong sha256, chunks withheld) against a real musterd.

Used by test_chunks.py (musterd alone), chunk_caller.py, test_chunk_sdk_python.py and
test_chunk_sdk_typescript.py (each SDK against them). Every wait is bounded; each peer's sockets are closed by its close().
"""
from __future__ import annotations

import os
import queue
import threading
import time

import zmq

from muster import messages as m

MiB = 1024 * 1024
CHUNK = MiB
WINDOW = 4 * MiB


def addr(daemon, role: str) -> str:
    return f"ipc://{daemon.runtime_dir}/{role}.sock"


def vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


def block(i: int) -> bytes:
    """Chunk i of the uploaded value: 1 MiB, different for every i (so a lost, repeated or
    reordered chunk changes the sha256)."""
    return i.to_bytes(8, "little") * (CHUNK // 8)


class RawWorker:
    """Attaches one node and runs a thread that owns its sockets: it answers every ping (a Pong
    listing the calls it holds, so musterd never takes one for lost), sends what the test queues,
    and queues what musterd publishes on its topic (Pings excepted) and answers on the DEALER."""

    def __init__(self, daemon, worker_id: str, node: str):
        self.id = worker_id
        self.daemon = daemon
        self.node = node
        self.published: queue.Queue = queue.Queue()
        self.replies: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        self.holding: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        reply = self.replies.get(timeout=10)
        assert isinstance(reply, m.Attached), reply

    def _run(self) -> None:
        ctx = zmq.Context()
        try:
            sub = ctx.socket(zmq.SUB)
            sub.linger = 0
            sub.rcvhwm = 0
            sub.connect(addr(self.daemon, "request"))
            sub.subscribe(b"b:")
            dealer = ctx.socket(zmq.DEALER)
            dealer.linger = 0
            dealer.connect(addr(self.daemon, "response"))
            time.sleep(0.2)  # the SUB's subscription reaches musterd
            spec = m.NodeSpec(self.node, inputs=[m.Port("data", "bytes", required=True)])
            dealer.send(m.encode(m.WorkerMessage(self.id, m.Attach(self.id, "localhost", "raw-test", os.getpid(),
                                                                   "s1", 1, [spec]))))
            poller = zmq.Poller()
            poller.register(sub, zmq.POLLIN)
            poller.register(dealer, zmq.POLLIN)
            instance = ""
            while not self.stop.is_set():
                while True:
                    try:
                        body = self.outbox.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(body, (m.Result, m.Failure)):
                        self.holding.discard(body.request_id)
                    dealer.send(m.encode(m.WorkerMessage(self.id, body)))
                for sock, _ in poller.poll(10):
                    msg = m.decode_daemon_message(sock.recv_multipart()[-1]).body
                    if sock is dealer:
                        if isinstance(msg, m.Attached):
                            sub.subscribe(msg.topic.encode())
                            instance = msg.instance
                        self.replies.put(msg)
                    elif isinstance(msg, m.Ping):
                        pong = m.Pong(msg.seq, msg.instance or instance, sorted(self.holding))
                        dealer.send(m.encode(m.WorkerMessage(self.id, pong)))
                    else:
                        if isinstance(msg, m.WorkRequest):
                            self.holding.add(msg.request_id)
                        elif isinstance(msg, m.Abort):
                            self.holding.discard(msg.request_id)
                        self.published.put(msg)
        finally:
            ctx.destroy(0)

    def send(self, body) -> None:
        self.outbox.put(body)

    def next_published(self, timeout: float):
        """The next message musterd published to it other than a Ping; None after `timeout` s."""
        try:
            return self.published.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain_replies(self) -> list:
        out = []
        while True:
            try:
                out.append(self.replies.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


class RawClient:
    def __init__(self, daemon):
        self.ctx = zmq.Context()
        self.s = self.ctx.socket(zmq.DEALER)
        self.s.linger = 0
        self.s.connect(daemon.client_address)

    def send(self, rid: int, body) -> None:
        self.s.send(m.encode(m.ClientMessage(rid, body)))

    def next_reply(self, timeout: float):
        if not self.s.poll(int(timeout * 1000)):
            return None
        return m.decode_client_reply(self.s.recv_multipart()[-1]).body

    def close(self) -> None:
        self.ctx.destroy(0)


class _KeptCalls(set):
    """A RawWorker's `holding` that forgets nothing: its thread discards a call when the worker
    answers it, this set keeps it (see KeepingRawWorker)."""

    def discard(self, request_id) -> None:
        pass


class KeepingRawWorker(RawWorker):
    """A RawWorker whose Pongs go on listing every call it was given as in flight, also once it
    sent the call's Result: musterd may hold that Result unanswered while an output stream it
    names is short (PROTOCOL.md §7.9 rule R8), and a call its worker no longer lists would be
    taken for lost. (An SDK lists such an answer in Pong.answered instead; the raw worker's test
    sends its Result again itself.)"""

    def __init__(self, daemon, worker_id: str, node: str):
        super().__init__(daemon, worker_id, node)
        self.holding = _KeptCalls(self.holding)  # before any call: the constructor waited for Attached
