"""Shared fixtures: a fake musterd written with pyzmq (XPUB + ROUTER) that lets a test play the
daemon's side of docs/PROTOCOL.md §7 message by message, and see what the worker subscribes to
and how many connections its request socket accepted."""

from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any, List, Optional, Tuple

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from muster import messages as m

WAIT = 10.0  # seconds any single expected message may take (generous: never a timing assertion)


def worker_topic(worker_id: str, identity: str = "local") -> str:
    """The topic musterd assigns a worker in Attached.topic (PROTOCOL.md §2): over ipc the
    identity is the local owner's, ``local``."""
    return f"w:{identity}:{worker_id}:"


class FakeDaemon:
    def __init__(self, directory: str):
        self.dir = directory
        self.request_address = f"ipc://{directory}/request.sock"
        self.response_address = f"ipc://{directory}/response.sock"
        self.client_address = f"ipc://{directory}/client.sock"
        self._open()

    def _open(self) -> None:
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.XPUB)  # a PUB that also shows the (un)subscriptions
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.XPUB_VERBOSER, 1)
        self.pub.bind(self.request_address)
        # The connections made to the request socket and closed (a direct worker makes none,
        # PROTOCOL.md §7.10).
        self.pub_monitor = self.pub.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.pub_accepted = self.pub_disconnected = 0
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(self.response_address)
        self.last_peer: Optional[bytes] = None

    # ---- response socket ----------------------------------------------------------------

    def recv_raw(self, timeout: float = WAIT) -> Tuple[bytes, List[bytes]]:
        """(routing id, the frames after it) of the next message on the ROUTER."""
        if not self.router.poll(int(timeout * 1000)):
            raise AssertionError(f"no message from the worker within {timeout}s")
        frames = self.router.recv_multipart()
        self.last_peer = frames[0]
        return frames[0], frames[1:]

    def recv(self, timeout: float = WAIT) -> Tuple[bytes, bytes, m.WorkerMessage]:
        """(routing id, payload bytes, decoded message); asserts the DEALER envelope: one frame."""
        peer, frames = self.recv_raw(timeout)
        assert len(frames) == 1, f"expected one frame from a DEALER worker, got {len(frames)}"
        return peer, frames[0], m.decode_worker_message(frames[0])

    def expect(self, body_type: type, timeout: float = WAIT, skip: Tuple[type, ...] = ()) -> Tuple[bytes, bytes, Any]:
        """Receives until a message of ``body_type`` arrives, replying Ack to skipped kinds
        (``skip``); anything else is a test failure."""
        deadline = time.monotonic() + timeout
        while True:
            peer, raw, msg = self.recv(max(0.01, deadline - time.monotonic()))
            if isinstance(msg.body, body_type):
                return peer, raw, msg.body
            if skip and isinstance(msg.body, skip):
                self.reply(peer, m.Ack())
                continue
            raise AssertionError(f"expected {body_type.__name__}, got {msg.body!r}")

    def reply(self, peer: bytes, body: Any) -> bytes:
        data = m.encode(m.DaemonMessage(body=body))
        self.router.send_multipart([peer, data])
        return data

    def nothing(self, timeout: float = 0.3) -> bool:
        return not self.router.poll(int(timeout * 1000))

    # ---- request socket -----------------------------------------------------------------

    def publish(self, topic: str, body: Any) -> bytes:
        data = m.encode(m.DaemonMessage(body=body))
        self.pub.send_multipart([topic.encode(), data])
        return data

    def subscriptions(self, timeout: float = 0.0) -> List[bytes]:
        """The (un)subscriptions received since the last call: b"\\x01topic" or b"\\x00topic";
        waits up to ``timeout`` s for the first one."""
        out: List[bytes] = []
        while self.pub.poll(int(timeout * 1000) if not out else 0):
            out.append(self.pub.recv())
        return out

    def subscribed(self, count: int, timeout: float = WAIT) -> List[bytes]:
        """The next ``count`` (un)subscriptions, sorted (they may come in more than one read)."""
        deadline = time.monotonic() + timeout
        out: List[bytes] = []
        while len(out) < count and time.monotonic() < deadline:
            out += self.subscriptions(max(0.01, deadline - time.monotonic()))
        return sorted(out)

    def request_connections(self) -> int:
        """How many connections the request socket (XPUB) accepted so far."""
        self._read_pub_monitor()
        return self.pub_accepted

    def request_disconnections(self) -> int:
        """How many of them have been closed so far (by the worker: its SUB went)."""
        self._read_pub_monitor()
        return self.pub_disconnected

    def _read_pub_monitor(self) -> None:
        while self.pub_monitor.poll(0):
            if recv_monitor_message(self.pub_monitor)["event"] == zmq.EVENT_ACCEPTED:
                self.pub_accepted += 1
            else:
                self.pub_disconnected += 1

    def confirm(self, worker_id: str, instance: str, seq: int = 1, timeout: float = WAIT) -> Tuple[bytes, bytes, m.Pong]:
        """Publishes Ping on the worker's own topic every 50 ms until a Pong comes back (the
        slow-joiner confirmation of PROTOCOL.md §7.1); returns it unanswered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publish(worker_topic(worker_id), m.Ping(seq=seq, instance=instance))
            if self.router.poll(50):
                peer, raw, msg = self.recv()
                assert isinstance(msg.body, m.Pong), f"expected Pong, got {msg.body!r}"
                return peer, raw, msg.body
        raise AssertionError("the worker never answered the confirming ping")

    def drop_connections(self) -> None:
        """Closes the response socket and binds a new one at the same address: the worker's
        connection breaks and ZeroMQ connects it again (a connection musterd did not see
        attach)."""
        self.router.close(0)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(self.response_address)

    def restart(self) -> None:
        """The daemon restarts at the same addresses (a rolling upgrade or downgrade): every
        connection breaks, the workers' sockets connect again to new ones. The counts of
        connections and subscriptions start again from nothing."""
        self.close()
        self._open()

    def close(self) -> None:
        self.pub.disable_monitor()
        self.pub_monitor.close(0)
        self.pub.close(0)
        self.router.close(0)
        self.ctx.term()


@pytest.fixture
def short_tmp():
    """A short directory for ipc:// socket paths (they are limited to ~100 characters)."""
    d = tempfile.mkdtemp(prefix="mst-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake_daemon(short_tmp):
    d = FakeDaemon(short_tmp)
    try:
        yield d
    finally:
        d.close()


# The daemon's ping interval a test's Attached gives by default: 10 s, so a 30 s liveness window.
# The worker under test shares this process with the fake daemon, which sends no ping of its
# own: with a short window a test that ran longer than it on a loaded machine saw the worker
# give the daemon up and attach again mid-test. Tests of the window pass their own.
QUIET_PING_INTERVAL_MS = 10_000


def attached_reply(
    worker_id: str, instance: str = "inst-1", ping_interval_ms: int = QUIET_PING_INTERVAL_MS, liveness: int = 3
) -> m.Attached:
    return m.Attached(
        worker_id=worker_id,
        instance=instance,
        topic=worker_topic(worker_id),
        broadcast_topic="b:",
        ping_interval_ms=ping_interval_ms,
        liveness=liveness,
        max_message_bytes=16 * 1024 * 1024,
    )
