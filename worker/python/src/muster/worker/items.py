"""items.py — a handler's partial results on the worker's side (docs/STREAMS.md §2):
``ctx.emit``/``ctx.emit_async``, and the driving of generator and async generator handlers,
each yielded value being one item.

Owns: one request's ``ItemSender`` (encodes an item, waits for the caller's credit in its
SendWindow, hands the encoded Item to the I/O thread in ``seq`` order) and the loops that pull
from a handler's generator.
Must never: send an item beyond the caller's credit; pull the next value from a generator while
the window is full or once the request was aborted (the generator is closed then, so its
``finally`` blocks run); block the worker's event loop; emit for a caller that asked for no
items (``StreamNotRequested`` in the handler instead).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncGenerator, Callable, Generator, Mapping, Optional

from .. import messages as m
from .. import templates
from ..credit import SendWindow, StreamNotRequested
from ..values import encode_values

#: Bytes an Item message adds around its values (request id, seq, tables, identifiers, the
#: worker id): used only to refuse an item that can never fit one message.
ITEM_OVERHEAD = 256


class ItemSender:
    """The items of one request. ``window`` is None when the caller asked for none
    (``WorkRequest.stream_window_items == 0``)."""

    def __init__(
        self,
        request_id: int,
        node: str,
        window_items: int,
        window_bytes: int,
        worker_id: str,
        post: Callable[[int, bytes], None],
        max_message_bytes: Callable[[], int],
        loop_thread: Callable[[], Optional[threading.Thread]],
    ):
        self.request_id = request_id
        self.node = node
        self.window: Optional[SendWindow] = SendWindow(window_items, window_bytes) if window_items > 0 else None
        self._worker_id = worker_id
        self._post = post
        self._max_message_bytes = max_message_bytes
        self._loop_thread = loop_thread

    @property
    def streaming(self) -> bool:
        return self.window is not None

    def close(self) -> None:
        """The request is over (aborted, answered, the worker stopping): emitters wake up and
        get False."""
        if self.window is not None:
            self.window.close()

    def _payload(self, values: Any) -> bytes:
        """The item's encoded Values, checked: a dict of values that fits one message. Raises StreamNotRequested, TypeError or ValueError in the handler."""
        if self.window is None:
            raise StreamNotRequested(
                message=f"node {self.node}: the caller of request {self.request_id} asked for no items "
                "(call the node with stream(), or check ctx.streaming before emitting)"
            )
        if not isinstance(values, Mapping):
            raise TypeError(f"node {self.node}: an item is a dict of values, not a {type(values).__name__}")
        payload = encode_values(dict(values))
        limit = self._max_message_bytes()
        if len(payload) + ITEM_OVERHEAD > limit:
            raise ValueError(
                f"node {self.node}: an item of {len(payload)} bytes does not fit the daemon's limit of {limit} "
                "bytes (--max-message-bytes)"
            )
        return payload

    def _send(self, payload: bytes) -> Callable[[int], bool]:
        def send(seq: int) -> bool:
            # the encoded Values buffer goes as is, in a cached layout (templates.py)
            self._post(seq, templates.worker_item(self._worker_id, self.request_id, seq, payload))
            return True

        return send

    def emit(self, values: Any) -> bool:
        """Sends one item, waiting while the caller's window is full. True once it is on its
        way; False when the request was aborted (deadline, cancel, the worker stopping)."""
        if threading.current_thread() is self._loop_thread():
            raise RuntimeError(
                f"node {self.node}: ctx.emit would block the event loop of async handlers: "
                "use `await ctx.emit_async(values)` or an async generator"
            )
        payload = self._payload(values)
        assert self.window is not None
        return self.window.take(len(payload), self._send(payload)) is not None

    async def emit_async(self, values: Any) -> bool:
        """``emit`` for coroutines: waits for credit without blocking the event loop."""
        payload = self._payload(values)
        assert self.window is not None
        return await self.window.take_async(len(payload), self._send(payload)) is not None


def drive_generator(items: ItemSender, aborted: Callable[[], bool], gen: Generator[Any, Any, Any]) -> Any:
    """Pulls a sync generator handler to its end, emitting each yielded value; returns its
    return value (the outputs). An error of an item (StreamNotRequested, a value that cannot
    be encoded) is raised inside the generator, at its ``yield``. Stops pulling and closes the
    generator once the request is aborted."""
    error: Optional[BaseException] = None
    try:
        while True:
            if aborted():
                return None
            try:
                value = gen.throw(error) if error is not None else next(gen)
            except StopIteration as stop:
                return stop.value
            error = None
            try:
                if not items.emit(value):
                    return None  # aborted while waiting for credit
            except Exception as e:  # noqa: BLE001 - handed to the generator
                error = e
    finally:
        gen.close()


async def drive_async_generator(items: ItemSender, agen: AsyncGenerator[Any, Any]) -> None:
    """``drive_generator`` for an async generator handler (it has no return value: its outputs
    are empty). The worker cancels the task on abort; the generator is closed then."""
    error: Optional[BaseException] = None
    try:
        while True:
            try:
                value = await (agen.athrow(error) if error is not None else agen.__anext__())
            except StopAsyncIteration:
                return None
            error = None
            try:
                if not await items.emit_async(value):
                    return None
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - handed to the generator
                error = e
    finally:
        await agen.aclose()


__all__ = ["ItemSender", "drive_generator", "drive_async_generator", "ITEM_OVERHEAD"]
