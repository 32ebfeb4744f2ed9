"""stream.py — a call's items on the caller's side (docs/STREAMS.md §2, PROTOCOL.md §7.8): the
iterators ``Client.stream`` and ``AsyncClient.stream`` return.

    with client.stream("count", {"n": 3}) as s:
        for item in s:              # {"i": 0}, {"i": 1}, {"i": 2}: each a dict of values
            print(item)
        outputs = s.result()        # the terminal outputs (or raises the call's error)

    async with client.stream("count", {"n": 3}) as s:
        async for item in s:
            print(item)
        outputs = await s

Owns: the items received for one call, in ``seq`` order, until the application takes them;
the credit it grants as it consumes them (cumulative ``consumed + window``, sent once half a
window was consumed since the last grant); ending the iteration with the terminal reply.
Must never: hold more than one window of items (the daemon cannot send more); grant credit for
items the application has not taken; hide an error: after the items received, the iteration
raises the call's error (Timeout, Cancelled, WorkerLost, ...).
"""

from __future__ import annotations

import asyncio
import queue
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, Generator, Iterator, Optional, Tuple, Union, cast

from . import _flat
from . import messages as m
from . import templates
from .aio import AsyncCall
from .client import Call, ProgressCallback
from .credit import DEFAULT_WINDOW_BYTES, DEFAULT_WINDOW_ITEMS, ReceiveWindow

if TYPE_CHECKING:
    from .aio import AsyncClient
    from .client import Client

_END = object()  # after the last item: the terminal reply is in the call's future

#: A stream's item: a dict of values (the worker's ``emit``/``yield``).
Item = Dict[str, Any]


def check_window(window_items: int, window_bytes: int) -> Tuple[int, int]:
    """The window a caller asks for: at least one item (``Submit.stream_window_items`` is a
    uint32) and one byte."""
    if isinstance(window_items, bool) or not isinstance(window_items, int) or not 1 <= window_items <= 0xFFFFFFFF:
        raise ValueError(f"window_items must be an integer from 1 to 4294967295, got {window_items!r}")
    if isinstance(window_bytes, bool) or not isinstance(window_bytes, int) or not 1 <= window_bytes < 2**63:
        raise ValueError(f"window_bytes must be a positive integer, got {window_bytes!r}")
    return window_items, window_bytes


def credit_message(request_id: int, grant: Tuple[int, int]) -> bytes:
    return templates.client_credit(request_id, 0, grant[0], grant[1])


def _slot(cls: type, name: str) -> int:
    return next(f.slot for f in m._FIELDS[cls] if f.name == name)


_BODY_SLOT = _slot(m.ClientReply, "body")
_VALUES_SLOT = _slot(m.Item, "values")


def item_size(frame: bytes) -> int:
    """The size of the Item in a verified ClientReply frame, as the credit counts it: the length
    of its ``values`` buffer (PROTOCOL.md §7.8)."""
    r = _flat.Reader(frame)
    values = r.ref(r.ref(r.root(), _BODY_SLOT), _VALUES_SLOT)
    return r.vector_len(values) if values else 0


class _Items:
    """What both iterators share: the order check and the credit (I/O side and consumer side)."""

    def __init__(self, window_items: int, window_bytes: int):
        self.window = ReceiveWindow(window_items, window_bytes)
        self.next_seq = 0

    def check(self, item: m.Item) -> Optional[str]:
        """None if the item is the next one, else why the stream is broken."""
        if item.seq != self.next_seq:
            return f"item {item.seq} arrived where item {self.next_seq} was due"
        self.next_seq += 1
        return None


class Stream(Call):
    """A call whose worker sends items: iterate it for the items (dicts of values, in order),
    then ``result()`` for the terminal outputs. Iteration raises the call's error once the items
    received before it are taken. ``cancel()``, or leaving a ``with`` block early, cancels the
    call. One consumer thread."""

    def __init__(
        self, client: "Client", request_id: int, node: str, progress: Optional[ProgressCallback],
        window_items: int, window_bytes: int,
    ):  # fmt: skip
        super().__init__(client, request_id, node, progress)
        self._items = _Items(window_items, window_bytes)
        self._queue: "queue.SimpleQueue[Union[Tuple[Item, int], object]]" = queue.SimpleQueue()
        self.items_received = 0
        self.future.add_done_callback(lambda _: self._queue.put(_END))

    # ---- the client's I/O thread ----

    def _on_item(self, item: m.Item, size: int) -> Optional[str]:
        broken = self._items.check(item)
        if broken is None:
            self.items_received += 1
            self._queue.put((item.values or {}, size))
        return broken

    # ---- the consumer ----

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        got = self._queue.get()
        if got is _END:
            self._queue.put(_END)  # iterating again ends again
            self.future.result()  # raises the call's error, if it failed
            raise StopIteration
        values, size = cast(Tuple[Item, int], got)
        self._items.window.consumed(size)
        grant = self._items.window.due()
        if grant is not None and not self.future.done():
            self.client._post(("credit", self.request_id, grant))
        return values

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cancel()  # nothing once it ended

    def __repr__(self) -> str:
        return f"<Stream {self.node} request {self.request_id} {'done' if self.done() else 'open'}>"


class AsyncStream(AsyncCall):
    """``Stream`` for asyncio: ``async for item in s`` for the items, then ``await s`` for the
    outputs. Cancelling the task that iterates or awaits it, or leaving an ``async with``
    block early, cancels the call."""

    def __init__(self, client: "AsyncClient", request_id: int, node: str, window_items: int, window_bytes: int):
        super().__init__(client, request_id, node)
        self._items = _Items(window_items, window_bytes)
        self._queue: "asyncio.Queue[Union[Tuple[Item, int], object]]" = asyncio.Queue()
        self.items_received = 0
        self.future.add_done_callback(lambda _: self._queue.put_nowait(_END))

    def _on_item(self, item: m.Item, size: int) -> Optional[str]:
        broken = self._items.check(item)
        if broken is None:
            self.items_received += 1
            self._queue.put_nowait((item.values or {}, size))
        return broken

    def __aiter__(self) -> AsyncIterator[Item]:  # type: ignore[override]
        return self

    async def __anext__(self) -> Item:
        try:
            got = await self._queue.get()
        except asyncio.CancelledError:
            if not self.future.done():
                await self.cancel()
            raise
        if got is _END:
            self._queue.put_nowait(_END)
            await self._result()  # raises the call's error, if it failed
            raise StopAsyncIteration
        values, size = cast(Tuple[Item, int], got)
        self._items.window.consumed(size)
        grant = self._items.window.due()
        if grant is not None and not self.future.done():
            self.client._credit(self.request_id, grant)
        return values

    async def __aenter__(self) -> "AsyncStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if not self.future.done():
            await self.cancel()

    def __repr__(self) -> str:
        return f"<AsyncStream {self.node} request {self.request_id} {'done' if self.done() else 'open'}>"


class PendingStream:
    """What ``AsyncClient.stream`` returns before its Submit is sent (it is sent on first use):
    iterate it, await it, or use it with ``async with``."""

    def __init__(self, submitting: Callable[[], "asyncio.Future[AsyncStream]"]):
        self._submitting = submitting
        self._task: "Optional[asyncio.Future[AsyncStream]]" = None

    async def _get(self) -> AsyncStream:
        if self._task is None:
            self._task = self._submitting()
        return await self._task

    def __aiter__(self) -> AsyncIterator[Item]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Item]:
        s = await self._get()
        async for item in s:
            yield item

    def __await__(self) -> Generator[Any, None, Dict[str, Any]]:
        return self._result().__await__()

    async def _result(self) -> Dict[str, Any]:
        return await (await self._get())

    async def __aenter__(self) -> AsyncStream:
        return await self._get()

    async def __aexit__(self, *exc: Any) -> None:
        s = await self._get()
        if not s.done():
            await s.cancel()

    async def cancel(self) -> None:
        await (await self._get()).cancel()


__all__ = [
    "Stream", "AsyncStream", "PendingStream", "Item", "check_window", "credit_message", "item_size",
    "DEFAULT_WINDOW_ITEMS", "DEFAULT_WINDOW_BYTES",
]  # fmt: skip
