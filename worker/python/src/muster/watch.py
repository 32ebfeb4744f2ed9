"""watch.py — pushed events of musterd (a Watch, docs/PROTOCOL.md §8.2): the changes of the
caller's workspace (nodes appearing, changing, leaving; workers joining, changing state, leaving;
the caller's own calls) as an iterator of ``muster.messages.Event``.

Owns: a connection of its own to musterd's client socket, the Watch on it, reading its events,
and its end (``cancel()``, the daemon's refusal or shutdown, the connection lost).
Must never: hide a gap: events come with seq 1, 2, 3...; a watcher that fell behind gets an
``OVERFLOW`` event, then a fresh ``SNAPSHOT``, from musterd itself.

    with muster.Watch(nodes=True, workers=True) as w:
        for event in w:                      # a SNAPSHOT first, then one Event per change
            print(event.seq, event.kind.name, event.node or event.worker or event.call)
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Optional

import zmq

from . import messages as m
from .endpoints import Curve, connect, default_endpoint
from .enrollment import DEFAULT_ENROLLMENT_TIMEOUT
from .errors import BadMessage, ErrorCode, error_for

_REQUEST_ID = 1  # the one request of the connection


class Watch:
    """Watches the caller's workspace: ``nodes``, ``workers``, and ``calls`` (this identity's own).
    Iterating yields Events until the watch ends: after ``cancel()`` the iteration stops; any
    other end raises ``MusterError`` (``SHUTTING_DOWN`` when musterd stops, ``UNAVAILABLE`` when
    it cannot be reached within ``connect_timeout`` or the connection is lost, or musterd's
    refusal). Connection options as for ``muster.Client``."""

    def __init__(
        self,
        client_address: Optional[str] = None,
        *,
        nodes: bool = True,
        workers: bool = True,
        calls: bool = False,
        curve: Optional[Curve] = None,
        insecure: bool = False,
        data_dir: Optional[str] = None,
        enrollment_address: Optional[str] = None,
        enrollment_token_file: Optional[str] = None,
        name: Optional[str] = None,
        role: str = "client",
        enrollment_timeout: float = DEFAULT_ENROLLMENT_TIMEOUT,
        connect_timeout: float = 5.0,
        zmq_context: Optional[zmq.Context[zmq.Socket[bytes]]] = None,
    ):
        from .client import client_curve  # the same keys a Client would connect with

        self.address = client_address or default_endpoint("client")
        self.curve = client_curve(
            self.address, curve, insecure, data_dir=data_dir, enrollment_address=enrollment_address,
            enrollment_token_file=enrollment_token_file, name=name, role=role, enrollment_timeout=enrollment_timeout,
        )  # fmt: skip
        self.connect_timeout = connect_timeout
        self._own_zctx = zmq_context is None
        self._zctx = zmq_context or zmq.Context()
        self._sock = self._zctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._monitor = self._sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        connect(self._sock, self.address, self.curve, insecure)
        self._links = 0
        self._ended: Optional[BaseException] = None
        self._cancelled = False
        self._snapshot_seen = False
        self._give_up = time.monotonic() + connect_timeout
        self._closed = False
        self._sock.send(m.encode(m.ClientMessage(_REQUEST_ID, m.Watch(nodes, workers, calls))))

    # ---- reading ----------------------------------------------------------------------------

    def _read_monitor(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor.poll(0):
            ev = recv_monitor_message(self._monitor)
            if ev["event"] == zmq.EVENT_CONNECTED:
                self._links += 1
            elif ev["event"] == zmq.EVENT_DISCONNECTED:
                self._links = max(0, self._links - 1)
                if self._ended is None and not self._cancelled:
                    self._ended = error_for(ErrorCode.UNAVAILABLE, "lost the connection to musterd; watch again")

    def _handle(self, frame: bytes) -> Optional[m.Event]:
        try:
            reply = m.decode_client_reply(frame)
        except BadMessage:
            return None  # not ours to understand
        if reply.request_id != _REQUEST_ID:
            return None
        body = reply.body
        if isinstance(body, m.Failure):
            if body.code == ErrorCode.CANCELLED and self._cancelled:
                self._ended = StopIteration()
            else:
                self._ended = error_for(body.code, body.message or "the watch ended")
            return None
        if isinstance(body, m.Event):
            if body.kind == m.EventKind.SNAPSHOT:
                self._snapshot_seen = True
            return body
        return None

    def next(self, timeout: Optional[float] = None) -> Optional[m.Event]:
        """The next event, or None if none came within ``timeout`` seconds (None: wait). Raises
        StopIteration after ``cancel()`` once musterd confirmed it, MusterError for any other end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._read_monitor()
            while self._ended is None and self._sock.poll(0):
                frames = self._sock.recv_multipart()
                event = self._handle(frames[-1])
                if event is not None:
                    return event
            if self._ended is not None:
                raise self._ended
            now = time.monotonic()
            if not self._snapshot_seen and now >= self._give_up:
                self._ended = error_for(
                    ErrorCode.UNAVAILABLE, f"musterd at {self.address} did not answer the watch (is it running?)"
                )
                raise self._ended
            if deadline is not None and now >= deadline:
                return None
            wait = 0.25 if deadline is None else min(0.25, max(0.0, deadline - now))
            self._sock.poll(int(wait * 1000) + 1)

    def __iter__(self) -> Iterator[m.Event]:
        while True:
            try:
                event = self.next()
            except StopIteration:
                return
            if event is not None:
                yield event

    # ---- ending -----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Asks musterd to end the watch; iterating yields what was on the way, then stops."""
        if self._cancelled or self._ended is not None:
            return
        self._cancelled = True
        self._sock.send(m.encode(m.ClientMessage(_REQUEST_ID, m.Cancel())))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ended is None and not self._cancelled:
            try:
                self.cancel()
                self._sock.setsockopt(zmq.LINGER, 200)
            except zmq.ZMQError:
                pass
        self._sock.disable_monitor()
        self._monitor.close(0)
        self._sock.close()
        if self._own_zctx:
            self._zctx.term()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["Watch"]
