"""credit.py — the credit windows of a stream of items (docs/STREAMS.md §1), for both ends.

Credit is cumulative: the receiver grants ``items`` and ``bytes`` as totals since the stream
began, so a lost or repeated grant is harmless and the newest (largest) one wins. The sender
may send item ``seq`` only while ``seq < items`` and while the bytes it sent before it are
``< bytes`` (the item's own size does not count, so a large item is never stuck). An item's
size is the length of its ``values`` buffer. PROTOCOL.md §7.8 is normative.

Owns: ``SendWindow`` (a worker's side: blocks an emitter, sync or async, until the caller's
credit covers its next item, and hands out the item's ``seq`` in order) and ``ReceiveWindow``
(a caller's side: counts what the application consumed and says when a new grant is due).
Must never: let a sender pass the credit it was granted; grant more than ``consumed + window``;
leave an emitter blocked after the stream was closed (abort, deadline, worker stopping).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Callable, List, Optional, Tuple, TypeVar

from .errors import ErrorCode, MusterError

#: The window a caller asks for by default (docs/STREAMS.md §1): 64 items, 4 MiB.
DEFAULT_WINDOW_ITEMS = 64
DEFAULT_WINDOW_BYTES = 4 * 1024 * 1024

T = TypeVar("T")


class StreamNotRequested(MusterError):
    """Raised in a handler that emits an item for a call whose caller asked for no items
    (a plain ``call``, not ``stream``): the handler's author learns it at once. Uncaught, it
    fails the call with WORKER_ERROR like any exception of the handler. ``ctx.streaming``
    tells beforehand."""

    default_code = ErrorCode.WORKER_ERROR


class SendWindow:
    """The credit one sender holds for one stream. Thread-safe: ``take`` and ``take_async``
    may be called from any thread or event loop; ``grant`` and ``close`` from any other."""

    def __init__(self, items: int, bytes_: int):
        self._cond = threading.Condition()
        self.granted_items = int(items)
        self.granted_bytes = int(bytes_)
        self.sent_items = 0
        self.sent_bytes = 0
        self.closed = False
        self._async_waiters: List[Tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]] = []

    def grant(self, items: int, bytes_: int) -> bool:
        """A grant from the receiver (cumulative totals); a stale one (lower totals) changes
        nothing. Returns whether the window grew."""
        with self._cond:
            grew = False
            if items > self.granted_items:
                self.granted_items = int(items)
                grew = True
            if bytes_ > self.granted_bytes:
                self.granted_bytes = int(bytes_)
                grew = True
            if grew:
                self._wake()
            return grew

    def close(self) -> None:
        """Ends the stream for the sender: every waiting and later ``take`` returns None."""
        with self._cond:
            if not self.closed:
                self.closed = True
                self._wake()

    def open(self) -> bool:
        """Whether the next item is within the credit now."""
        with self._cond:
            return self._open()

    def take(self, size: int, send: Callable[[int], T], timeout: Optional[float] = None) -> Optional[T]:
        """Waits until the next item (``size`` bytes) is within the credit, then calls
        ``send(seq)`` under the window's lock (so items leave in ``seq`` order whatever thread
        emits them) and returns what it returned. None once the stream is closed, or when
        ``timeout`` seconds passed first."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.closed or self._open(), timeout):
                return None
            if self.closed:
                return None
            return self._commit(size, send)

    async def take_async(self, size: int, send: Callable[[int], T]) -> Optional[T]:
        """``take`` for a coroutine: waits without blocking its event loop."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self.closed:
                    return None
                if self._open():
                    return self._commit(size, send)
                waiter: "asyncio.Future[None]" = loop.create_future()
                self._async_waiters.append((loop, waiter))
            try:
                await waiter
            finally:
                with self._cond:
                    self._async_waiters = [(lp, w) for lp, w in self._async_waiters if w is not waiter]

    def _open(self) -> bool:
        return self.sent_items < self.granted_items and self.sent_bytes < self.granted_bytes

    def _commit(self, size: int, send: Callable[[int], T]) -> T:
        seq = self.sent_items
        out = send(seq)
        self.sent_items += 1
        self.sent_bytes += size
        return out

    def _wake(self) -> None:
        wake_all(self._cond, self._async_waiters)


AsyncWaiters = List[Tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]]


def wake_all(cond: threading.Condition, waiters: AsyncWaiters) -> None:
    """Wakes every thread waiting on ``cond`` (the caller holds it) and resolves every asyncio
    waiter in ``waiters`` on its own loop, then empties ``waiters``."""
    cond.notify_all()
    for loop, waiter in waiters:
        try:
            loop.call_soon_threadsafe(_resolve, waiter)
        except RuntimeError:
            pass  # that loop is closed: its waiter is gone with it
    waiters.clear()


def _resolve(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)


class ReceiveWindow:
    """The credit one receiver grants for one stream. ``consumed`` counts each item the
    application took; ``due`` says which cumulative grant to send now, if any: once half a
    window (items or bytes) was consumed since the last grant (``consumed + window``, as
    PROTOCOL.md §7.8 says). Not thread-safe: one consumer."""

    def __init__(self, items: int, bytes_: int):
        if items < 1 or bytes_ < 1:
            raise ValueError("a stream's window needs at least one item and one byte")
        self.window_items = int(items)
        self.window_bytes = int(bytes_)
        self.consumed_items = 0
        self.consumed_bytes = 0
        self.granted_items = self.window_items  # the initial window comes with the Submit
        self.granted_bytes = self.window_bytes

    def consumed(self, size: int) -> None:
        self.consumed_items += 1
        self.consumed_bytes += size

    def due(self) -> Optional[Tuple[int, int]]:
        items = self.consumed_items + self.window_items
        bytes_ = self.consumed_bytes + self.window_bytes
        more_items = items - self.granted_items
        more_bytes = bytes_ - self.granted_bytes
        if more_items < max(1, self.window_items // 2) and more_bytes < max(1, self.window_bytes // 2):
            return None
        self.granted_items, self.granted_bytes = items, bytes_
        return items, bytes_


__all__ = ["StreamNotRequested", "SendWindow", "ReceiveWindow", "DEFAULT_WINDOW_ITEMS", "DEFAULT_WINDOW_BYTES"]
