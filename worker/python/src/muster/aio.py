"""aio.py — the asyncio client: calling nodes through musterd's client socket from a coroutine
(docs/PROTOCOL.md §8), over pyzmq's asyncio sockets; the same wire messages as client.Client.

    async with muster.AsyncClient() as client:
        out = await client.call("hello", {"name": "Ada"})
        call = client.call_with_progress("sleep", {"ms": 500})
        async for p in call:              # muster.Progress(step, total, message)
            print(p.step, p.total)
        out = await call                  # the outputs, or raises the call's MusterError

Cancelling the task that awaits a call (``asyncio.wait_for``, ``task.cancel()``, a
``TaskGroup`` failing) sends Cancel to the daemon, so the worker is told to abort. Durable
calls (``durable=True``) are resumed after a reconnect and get their terminal reply exactly
once, as with ``muster.Client`` (jobs.py keeps the books); so are resumable calls (by default
those that stream) after a break of the connection while musterd lives on (PROTOCOL.md §8.3,
call_resume.py).

Chunked values (docs/STREAMS.md §3) as with ``muster.Client``: bytes inputs over
``chunk_threshold`` and files travel as chunks, chunked outputs are checked and returned as
bytes or written to ``output_dir`` / ``output_sink`` (from the event loop: input files are
read and sinks written there, a chunk at a time).

Owns: one DEALER socket, its reader task, request ids and the futures waiting for replies.
Must never: leave an awaiting coroutine hanging on a daemon that is gone: a lost connection,
or no connection within ``connect_timeout``, fails the open calls with UNAVAILABLE (a durable
call with its job id, a resumable call with its token, waits up to ``resume_timeout``, the
latter at most until its deadline); use its socket from another event loop than the one it was
opened on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Dict, Generator, List, Mapping, Optional, Set, Tuple, Union

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from . import messages as m
from .chunks import CHUNK_WINDOW_BYTES, DEFAULT_CHUNK_THRESHOLD, CallChunks, check_sinks, chunk_error, split_inputs
from .resume import RESUME_AFTER, check_resume_after
from .client import client_curve
from .credit import DEFAULT_WINDOW_BYTES, DEFAULT_WINDOW_ITEMS
from .endpoints import Curve, connect, default_endpoint, drop_unsent, endpoint_list
from .enrollment import DEFAULT_ENROLLMENT_TIMEOUT
from .errors import BadMessage, MusterError, Unavailable, error_for
from .jobs import DurableJobs, Job, ack_message, job_from_reply, plain_failure, resume_timed_out, terminal_job_id
from .call_resume import Waiting, asks_resumable, call_ref, given_up, keep_until, rebind, refused_as_a_whole

if TYPE_CHECKING:
    from . import stream as stream_module

log = logging.getLogger("muster.client")

_END = object()  # closes a call's progress queue


@dataclass(frozen=True)
class Progress:
    """One progress report of a running call, as the worker sent it."""

    step: int
    total: int
    message: str


class AsyncCall:
    """A submitted call: ``await call`` gives its outputs (or raises its MusterError);
    ``async for p in call`` yields its Progress reports until it ends (then raises its error,
    if it failed); ``await call.cancel()`` asks the daemon to cancel it. A durable call's
    ``job_id``, a resumable call's ``call_token``, are set by its Accepted; ``request_id``
    changes when it is resumed."""

    def __init__(self, client: "AsyncClient", request_id: int, node: str, durable: bool = False):
        self.client = client
        self.request_id = request_id
        self.node = node
        self.durable = durable
        self.job_id: Optional[int] = None
        self.call_token: Optional[int] = None  # a resumable call's, from its Accepted (PROTOCOL.md §8.3)
        self.future: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self._progress: "asyncio.Queue[Union[Progress, object]]" = asyncio.Queue()
        self._rids: List[int] = [request_id]  # every request id it had, newest last
        # durable or resumable: since when it waits for a daemon to take it back (connection
        # lost, or its JobResume / CallResume unanswered); None once an answer for it arrived
        self._lost_at: Optional[float] = None
        self._cancel_wanted = False  # durable or resumable: cancel asked while disconnected
        self._deadline: Optional[float] = None  # loop time of its deadline (timeout_ms), if any
        self._item_grant: Optional[Tuple[int, int]] = None  # a stream's last item Credit, sent again on resume
        self._chunks: Optional[CallChunks] = None  # its chunked inputs and outputs (chunks.py)

    def __await__(self) -> Generator[Any, None, Dict[str, Any]]:
        return self._result().__await__()

    async def _result(self) -> Dict[str, Any]:
        try:
            return await asyncio.shield(self.future)
        except asyncio.CancelledError:
            if not self.future.done():
                await self.cancel()
            raise

    def __aiter__(self) -> AsyncIterator[Progress]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Progress]:
        try:
            while True:
                item = await self._progress.get()
                if item is _END:
                    break
                assert isinstance(item, Progress)
                yield item
        except asyncio.CancelledError:
            if not self.future.done():
                await self.cancel()
            raise
        await self._result()  # raises the call's error, if it failed

    def done(self) -> bool:
        return self.future.done()

    async def cancel(self) -> None:
        """Asks the daemon to cancel: the call then fails with CANCELLED (unless its result
        arrived first)."""
        await self.client._cancel(self.request_id)

    def _finish(self, outputs: Optional[Dict[str, Any]], error: Optional[BaseException]) -> None:
        if self._chunks is not None:
            if error is None and outputs is not None:
                try:
                    outputs = self._chunks.outputs(outputs)
                except (MusterError, OSError, ValueError) as e:
                    outputs, error = None, chunk_error(e, "output")
            self._chunks.close(error is not None)
        if not self.future.done():
            if error is not None:
                self.future.set_exception(error)
                self.future.exception()  # retrieved: no "never retrieved" warning if nobody awaits
            else:
                self.future.set_result(outputs or {})
        self._progress.put_nowait(_END)

    def __repr__(self) -> str:
        return f"<AsyncCall {self.node} request {self.request_id} {'done' if self.done() else 'open'}>"


class AsyncClient:
    """An asyncio connection to musterd's client socket (default ``ipc://<runtime
    dir>/client.sock``). Options as ``muster.Client`` (``tcp://`` needs CURVE keys: ``curve``,
    or enrollment done in the constructor, which may block up to ``enrollment_timeout``).
    Use ``async with`` or ``await client.close()``."""

    def __init__(
        self,
        client_address: Optional[str] = None,
        *,
        curve: Optional[Curve] = None,
        insecure: bool = False,
        data_dir: Optional[str] = None,
        enrollment_address: Optional[str] = None,
        enrollment_token_file: Optional[str] = None,
        name: Optional[str] = None,
        role: str = "client",
        enrollment_timeout: float = DEFAULT_ENROLLMENT_TIMEOUT,
        connect_timeout: float = 5.0,
        list_timeout: float = 10.0,
        max_message_bytes: int = 16 * 1024 * 1024,
        resume_timeout: float = 60.0,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
        resume_after: float = RESUME_AFTER,
    ):
        self.address = client_address or default_endpoint("client")
        if isinstance(chunk_threshold, bool) or not isinstance(chunk_threshold, int) or chunk_threshold < 1:
            raise ValueError(f"chunk_threshold must be a positive integer, got {chunk_threshold!r}")
        self.chunk_threshold = chunk_threshold
        # seconds without a chunk before a chunked output waiting for bytes asks for them again
        # (PROTOCOL.md §7.9 R3), and between two resume Credits for one gap (R2)
        self.resume_after = check_resume_after(resume_after)
        # A failover pair's two endpoints (docs/DURABILITY.md §12) connect with ZMQ_IMMEDIATE
        # (endpoints.connect): a connection takes messages only once its handshake completed,
        # so only that counts as connected (the durable calls' JobResume goes out then).
        self._pair = len(endpoint_list(self.address)) > 1
        self._up_events: Tuple[int, ...] = (
            (zmq.EVENT_HANDSHAKE_SUCCEEDED,) if self._pair else (zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_SUCCEEDED))
        self.curve = client_curve(
            self.address, curve, insecure, data_dir=data_dir, enrollment_address=enrollment_address,
            enrollment_token_file=enrollment_token_file, name=name, role=role, enrollment_timeout=enrollment_timeout,
        )  # fmt: skip
        self.insecure = insecure
        self.connect_timeout = connect_timeout
        self.list_timeout = list_timeout
        self.max_message_bytes = max_message_bytes
        self.resume_timeout = resume_timeout
        self._jobs: DurableJobs[AsyncCall] = DurableJobs()
        self._resume_id = 0  # the request id of the last JobResume
        self._waiting: Dict[int, AsyncCall] = {}  # id(call) -> durable/resumable calls waiting to be taken back
        self._call_resume_id = 0  # the request id of the last CallResume
        self._ever_connected = False
        self._ids = itertools.count(1)
        self._calls: Dict[int, AsyncCall] = {}
        self._lists: Dict[int, "asyncio.Future[Any]"] = {}
        # sent while not connected: request id -> (since, message), sent again on a new pipe
        self._waiting_since: Dict[int, Tuple[float, bytes]] = {}
        self._ctx: Optional[zmq.asyncio.Context] = None
        self._dealer: Optional[zmq.asyncio.Socket] = None
        self._monitor: Optional[zmq.asyncio.Socket] = None
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._connected = False
        self._closed = False

    async def open(self) -> "AsyncClient":
        """Creates the socket and starts reading; ``async with`` calls it."""
        if self._dealer is not None:
            return self
        self._ctx = zmq.asyncio.Context()
        dealer = self._ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        self._monitor = dealer.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
        )
        try:
            connect(dealer, self.address, self.curve, self.insecure)
        except Exception:
            dealer.disable_monitor()
            self._monitor.close(0)
            dealer.close(0)
            self._ctx.term()
            raise
        self._dealer = dealer
        for coro in (self._read_replies(), self._read_monitor(), self._watch_connect()):
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)
        return self

    async def __aenter__(self) -> "AsyncClient":
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Fails every open call with UNAVAILABLE ("client closed") and closes the socket."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_all(Unavailable("client closed"))
        if self._dealer is not None:
            try:
                self._dealer.disable_monitor()
            except zmq.ZMQError:
                pass
            self._dealer.close(0)
        if self._monitor is not None:
            self._monitor.close(0)
        if self._ctx is not None:
            self._ctx.term()

    # ---- calls -------------------------------------------------------------------------

    async def submit(
        self,
        node: str,
        inputs: Optional[Mapping[str, Any]] = None,
        timeout_ms: int = 0,
        parameters: Optional[Mapping[str, Any]] = None,
        *,
        progress: bool = False,
        trace_id: Optional[str] = None,
        durable: bool = False,
        output_dir: Any = None,
        output_sink: Any = None,
        resumable: Optional[bool] = None,
    ) -> AsyncCall:
        """Sends a Submit and returns its AsyncCall at once (``progress``: ask the worker's
        progress reports, read with ``async for``; ``durable``: journaled by musterd, resumed
        after a reconnect, as ``muster.Client.submit``). Chunked inputs (bytes over
        ``chunk_threshold``, a path, a binary file object), ``output_dir``, ``output_sink``
        and ``resumable``: as ``muster.Client.submit``."""
        return await self._submit(node, inputs, timeout_ms, parameters, progress, trace_id, durable, None,
                                  output_dir, output_sink, resumable)  # fmt: skip

    def stream(
        self,
        node: str,
        inputs: Optional[Mapping[str, Any]] = None,
        timeout_ms: int = 0,
        parameters: Optional[Mapping[str, Any]] = None,
        *,
        window_items: int = DEFAULT_WINDOW_ITEMS,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
        progress: bool = False,
        trace_id: Optional[str] = None,
        resumable: Optional[bool] = None,
    ) -> "stream_module.PendingStream":
        """Calls a node that emits items (partial results), as ``muster.Client.stream``:
        ``async for item in s`` yields each item (a dict of values) in order, then ``await s``
        gives the terminal outputs (the iteration raises the call's error after the items
        received before it). The Submit is sent on first use; ``async with client.stream(...)
        as s`` cancels the call when the block is left early, as does cancelling the task
        that iterates. The worker runs ahead by at most ``window_items`` items and
        ``window_bytes`` bytes (docs/STREAMS.md §1). Not durable; resumable unless
        ``resumable=False`` (as ``muster.Client.stream``)."""
        from .stream import PendingStream, check_window  # stream.py builds on AsyncCall

        window = check_window(window_items, window_bytes)

        def submitting() -> "asyncio.Future[stream_module.AsyncStream]":
            return asyncio.ensure_future(self._submit(node, inputs, timeout_ms, parameters, progress, trace_id, False, window,  # type: ignore[arg-type]
                                                      resumable=resumable))  # fmt: skip

        return PendingStream(submitting)

    async def _submit(
        self, node: str, inputs: Optional[Mapping[str, Any]], timeout_ms: int, parameters: Optional[Mapping[str, Any]],
        progress: bool, trace_id: Optional[str], durable: bool, window: Optional[Tuple[int, int]],
        output_dir: Any = None, output_sink: Any = None, resumable: Optional[bool] = None,
    ) -> AsyncCall:  # fmt: skip
        sinks = check_sinks(output_dir, output_sink)
        wire_inputs, senders = split_inputs(inputs or {}, self.chunk_threshold, durable)
        resumable = asks_resumable(resumable, durable, bool(senders), window is not None, sinks is not None)
        rid = next(self._ids)
        chunks = CallChunks(senders, sinks, rid, self.resume_after)
        try:
            data = self._submit_message(rid, node, wire_inputs, timeout_ms, parameters, progress, trace_id, durable, window,
                                        resumable)  # fmt: skip
        except BaseException:
            chunks.close(True)
            raise
        if window:
            from .stream import AsyncStream

            call: AsyncCall = AsyncStream(self, rid, node, *window)
        else:
            call = AsyncCall(self, rid, node, durable)
        call._chunks = chunks
        if timeout_ms:
            call._deadline = asyncio.get_running_loop().time() + int(timeout_ms) / 1000.0
        self._calls[rid] = call
        await self._send(rid, data)
        return call

    def _submit_message(
        self, rid: int, node: str, inputs: Dict[str, Any], timeout_ms: int, parameters: Optional[Mapping[str, Any]],
        progress: bool, trace_id: Optional[str], durable: bool, window: Optional[Tuple[int, int]], resumable: bool,
    ) -> bytes:  # fmt: skip
        return m.encode(
            m.ClientMessage(
                request_id=rid,
                body=m.Submit(
                    node=node,
                    inputs=inputs,
                    parameters=dict(parameters) if parameters else None,
                    timeout_ms=int(timeout_ms),
                    want_progress=progress,
                    want_accepted=durable,  # a durable call needs its job id
                    trace_id=trace_id,
                    durable=durable,
                    stream_window_items=window[0] if window else 0,
                    stream_window_bytes=window[1] if window else 0,
                    # the worker may chunk outputs (PROTOCOL.md §7.9); a durable call's stay inline
                    chunk_window_bytes=0 if durable else CHUNK_WINDOW_BYTES,
                    resumable=resumable,
                ),
            )
        )  # TypeError/ValueError/OverflowError for values it cannot encode

    async def call(
        self,
        node: str,
        inputs: Optional[Mapping[str, Any]] = None,
        timeout_ms: int = 0,
        parameters: Optional[Mapping[str, Any]] = None,
        *,
        trace_id: Optional[str] = None,
        durable: bool = False,
        output_dir: Any = None,
        output_sink: Any = None,
        resumable: Optional[bool] = None,
    ) -> Dict[str, Any]:
        """Calls a node and returns its outputs, or raises the MusterError of its code
        (NoWorker, Timeout, WorkerError, InvalidRequest, ...). Cancelling the awaiting task
        cancels the call on the daemon. ``durable``, chunked values, ``output_dir``,
        ``output_sink`` and ``resumable``: as ``submit``."""
        return await (await self.submit(node, inputs, timeout_ms, parameters, trace_id=trace_id, durable=durable,
                                        output_dir=output_dir, output_sink=output_sink, resumable=resumable))  # fmt: skip

    def call_with_progress(
        self,
        node: str,
        inputs: Optional[Mapping[str, Any]] = None,
        timeout_ms: int = 0,
        parameters: Optional[Mapping[str, Any]] = None,
        *,
        trace_id: Optional[str] = None,
        durable: bool = False,
    ) -> "_CallWithProgress":
        """``async for p in client.call_with_progress(...)`` yields Progress until the call
        ends (raising its error if it failed); ``await`` it afterwards for the outputs. A
        resumed durable call shows no progress from before the reconnect."""
        return _CallWithProgress(
            self.submit(node, inputs, timeout_ms, parameters, progress=True, trace_id=trace_id, durable=durable)
        )

    async def nodes(self) -> List[m.NodeInfo]:
        return list((await self._list(m.ListNodes())).nodes or [])

    async def workers(self) -> List[m.WorkerInfo]:
        return list((await self._list(m.ListWorkers())).workers or [])

    async def status(self) -> m.StatusReport:
        report: m.StatusReport = await self._list(m.GetStatus())
        return report

    async def node_stats(self) -> m.NodeStatsReport:
        """As Client.node_stats: per-node statistics of this client's workspace since musterd started (every
        caller's calls, not only this client's), and its newest failures (PROTOCOL.md §8).
        ``report.nodes``: NodeStats (``node``, ``workers``, ``in_flight``, ``queue_depth``,
        ``completed``, ``failed``, ``failures`` by code, ``rate_1m`` per second, ``queue_wait``
        and ``service`` as LatencyHistogram with ``count``, ``p50_us``, ``p90_us``, ``p99_us``
        and the buckets); ``report.recent_failures``: RecentFailure (``node``, ``code``,
        ``message``, ``age_ms``), newest first. The local owner over ipc:// sees every
        workspace."""
        report: m.NodeStatsReport = await self._list(m.GetNodeStats())
        return report

    # ---- durable calls, detached (docs/DURABILITY.md §6): as Client.job_get, ... -------------

    async def job_get(self, job_id: int) -> Job:
        """As Client.job_get: ``Job.info`` while open; ``outputs``/``error`` once finished (this
        fetch acknowledges it); InvalidRequest "no such job" for a job the daemon does not hold."""
        return job_from_reply(int(job_id), await self._list(m.JobGet(job_id=int(job_id))))

    async def job_list(self) -> List[m.JobInfo]:
        """The durable calls of this client's workspace the daemon holds, oldest first."""
        reply = await self._list(m.JobList())
        if not isinstance(reply, m.JobInfoList):
            raise BadMessage(f"unexpected {type(reply).__name__} in answer to JobList")
        return list(reply.jobs or [])

    async def job_cancel(self, job_id: int) -> m.JobInfo:
        """Cancels a durable call by job id; returns its JobInfo (FINISHED, CANCELLED)."""
        reply = await self._list(m.JobCancel(job_id=int(job_id)))
        if not isinstance(reply, m.JobInfo):
            raise BadMessage(f"unexpected {type(reply).__name__} in answer to JobCancel")
        return reply

    # ---- plumbing ----------------------------------------------------------------------

    async def _send(self, rid: int, data: bytes) -> None:
        if self._closed:
            self._forget(rid)
            raise Unavailable("client is closed")
        if self._dealer is None:
            await self.open()
        assert self._dealer is not None
        if not self._connected:
            self._waiting_since[rid] = (asyncio.get_running_loop().time(), data)
            if self._pair:
                # A failover pair (ZMQ_IMMEDIATE): nothing is queued before a connection
                # completes; wait for one, at most connect_timeout (then UNAVAILABLE).
                await self._dealer.poll(int(self.connect_timeout * 1000), zmq.POLLOUT)  # type: ignore[call-arg]  # pyzmq takes flags; its stub does not say so
        try:
            await self._dealer.send(data, zmq.NOBLOCK)
        except zmq.Again:
            self._fail(rid, Unavailable(f"cannot send to the daemon at {self.address}: queue full"))

    async def _cancel(self, rid: int) -> None:
        call = self._calls.get(rid)
        if call is None or self._dealer is None or self._closed:
            return
        if not self._connected:
            if call.job_id or call.call_token:  # the daemon still holds it: cancel it once resumed
                call._cancel_wanted = True
                return
            self._fail(rid, error_for("CANCELLED", "cancelled before the daemon was reached"))
            # Its Submit still waits in the socket for a daemon that may come later: dropped,
            # so a call reported cancelled never runs (docs/DURABILITY.md §13).
            self._drop_unsent_and_requeue()
            return
        self._send_now(m.encode(m.ClientMessage(request_id=call._rids[-1], body=m.Cancel())))

    def _credit(self, rid: int, grant: Tuple[int, int]) -> None:
        """Grants a stream more credit (its consumer took items: stream.py)."""
        from .stream import credit_message

        call = self._calls.get(rid)
        if call is None:
            return
        call._item_grant = grant  # sent again if the call is resumed (its last one may be lost)
        if self._connected:
            self._send_now(credit_message(call._rids[-1], grant))

    def _send_now(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Sends without waiting (from the reader): the socket queues it, or it is dropped with
        a warning when that queue is full."""
        assert self._dealer is not None
        sent = asyncio.ensure_future(self._dealer.send(data, zmq.NOBLOCK))
        sent.add_done_callback(self._sent)

    def _sent(self, sent: "asyncio.Future[Any]") -> None:
        if not sent.cancelled() and sent.exception() is not None:
            log.warning("cannot send to the daemon at %s: %s", self.address, sent.exception())

    async def _list(self, body: Any) -> Any:
        rid = next(self._ids)
        fut: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
        self._lists[rid] = fut
        await self._send(rid, m.encode(m.ClientMessage(request_id=rid, body=body)))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.list_timeout)
        except asyncio.TimeoutError:
            raise Unavailable(f"no answer from the daemon at {self.address} within {self.list_timeout}s") from None
        finally:
            self._lists.pop(rid, None)

    def _forget(self, rid: int) -> None:
        self._calls.pop(rid, None)
        self._lists.pop(rid, None)
        self._waiting_since.pop(rid, None)

    def _fail(self, rid: int, err: MusterError) -> None:
        call = self._calls.get(rid)
        fut = self._lists.get(rid)
        self._forget(rid)
        if call is not None:
            for alias in call._rids:
                self._forget(alias)
            if call.job_id:
                self._jobs.forget(call.job_id)
            call._finish(None, err)
        if fut is not None and not fut.done():
            fut.set_exception(err)

    def _open_calls(self) -> List[AsyncCall]:
        """Each open call once (a resumed durable call is under several ids)."""
        return list({id(c): c for c in self._calls.values()}.values())

    def _fail_all(self, err: MusterError) -> None:
        for call in self._open_calls():
            self._fail(call._rids[-1], err)
        for rid in list(self._lists):
            self._fail(rid, err)

    async def _read_replies(self) -> None:
        assert self._dealer is not None
        while True:
            frames = await self._dealer.recv_multipart()
            if not frames:
                continue
            try:
                reply = m.decode_client_reply(frames[-1], self.max_message_bytes)
            except BadMessage as e:
                rid = getattr(e, "request_id", None)
                log.warning("bad reply from the daemon: %s", e.message)
                if rid:
                    self._fail(rid, e)
                continue
            self._on_reply(reply, frames[-1])

    def _on_reply(self, reply: m.ClientReply, frame: bytes = b"") -> None:
        rid, body = reply.request_id, reply.body
        call = self._calls.get(rid)
        fut = self._lists.get(rid)
        job_id = terminal_job_id(body)
        if fut is None and job_id and self._jobs.delivered(job_id):
            # A second terminal reply of a job already handed over: dropped, acknowledged again.
            log.debug("dropping a second reply for durable job %d", job_id)
            self._send_now(ack_message(next(self._ids), [job_id]))
            self._jobs.acked(job_id)
            return
        if call is not None:
            was_lost, call._lost_at = call._lost_at is not None, None  # an answer for it: taken back (or ended below)
            if isinstance(body, m.Accepted):
                if body.job_id and not call.job_id:
                    call.job_id = body.job_id
                    self._jobs.opened(body.job_id, call)
                elif body.call_token and not call.job_id and not call.call_token:
                    call.call_token = body.call_token  # resumable from now on (PROTOCOL.md §8.3 C1)
                if was_lost and call.call_token and call._item_grant is not None:
                    # Taken back (C2): the item Credit it sent last may have been lost with the
                    # old connection; credit is cumulative, so sending it again is harmless.
                    from .stream import credit_message

                    self._send_now(credit_message(call._rids[-1], call._item_grant))
            elif isinstance(body, m.Item):
                self._on_item(call, body, frame)
            elif isinstance(body, (m.Credit, m.Chunk)):
                if call._chunks is not None:
                    try:
                        if isinstance(body, m.Credit):
                            call._chunks.on_credit(body, self._send_now)
                        else:
                            call._chunks.on_chunk(body, self._send_now)
                    except (MusterError, OSError, ValueError, TypeError) as e:
                        # a chunked value broke on this side: cancelled at the daemon, failed here
                        self._send_now(m.encode(m.ClientMessage(request_id=call._rids[-1], body=m.Cancel())))
                        self._fail(rid, chunk_error(e, "input" if isinstance(body, m.Credit) else "output"))
            elif isinstance(body, m.Progress):
                call._progress.put_nowait(Progress(body.step, body.total, body.message or ""))
            elif isinstance(body, m.Result) and body.outputs_in_frame:
                # only for a Submit with payload_frames: never this client's
                self._fail(rid, BadMessage("outputs in a separate frame were not requested"))
            elif isinstance(body, (m.Result, m.Failure)):
                self._deliver(call, body)
            return
        if fut is not None:
            if isinstance(body, m.Failure) and plain_failure(body):
                self._fail(rid, error_for(body.code, body.message or ""))
            elif not fut.done():
                self._forget(rid)
                fut.set_result(body)
                if job_id:  # JobGet of a finished job: this delivery counts (DURABILITY.md §6)
                    own = self._jobs.open.get(job_id)
                    if own is not None:
                        self._deliver(own, body)
                    else:
                        self._jobs.acked(job_id)
                        self._send_now(ack_message(next(self._ids), [job_id]))
        elif isinstance(body, m.Failure) and rid and rid in (self._resume_id, self._call_resume_id):
            waiting = [Waiting(c._rids[-1], c.node, c.job_id, c.call_token) for c in self._waiting_calls()]
            for failed, error in refused_as_a_whole(body, rid == self._resume_id, self.address, waiting):
                self._fail(failed, error)
        elif isinstance(body, m.Failure) and rid == 0:
            log.warning("the daemon could not read a message: %s: %s", body.code, body.message)

    def _on_item(self, call: AsyncCall, item: m.Item, frame: bytes) -> None:
        from .stream import item_size

        on_item = getattr(call, "_on_item", None)  # an AsyncStream's
        if on_item is None:
            log.warning("item for request %d, which asked for none: dropped", call.request_id)
            return
        broken = on_item(item, item_size(frame))
        if broken is not None:  # the daemon checks the order: this is not musterd talking
            self._send_now(m.encode(m.ClientMessage(request_id=call.request_id, body=m.Cancel())))
            self._fail(call.request_id, BadMessage(f"request {call.request_id}: {broken}"))

    def _deliver(self, call: AsyncCall, body: Any) -> None:
        """Hands a call its terminal reply, then, for a durable call's, acknowledges it."""
        for alias in call._rids:
            self._forget(alias)
        if isinstance(body, m.Result):
            call._finish(body.outputs or {}, None)
        else:
            call._finish(None, error_for(body.code, body.message or ""))
        if body.job_id:
            if call.job_id is None:
                call.job_id = body.job_id
            self._jobs.finish(body.job_id)
            self._send_now(ack_message(next(self._ids), [body.job_id]))
        elif call.job_id:
            self._jobs.forget(call.job_id)

    async def _read_monitor(self) -> None:
        assert self._monitor is not None
        while True:
            event = parse_monitor_message(await self._monitor.recv_multipart())["event"]
            if event in self._up_events:
                was, self._connected = self._connected, True
                self._waiting_since.clear()
                if not was and self._ever_connected:
                    self._resume()
                self._ever_connected = True
            elif event == zmq.EVENT_DISCONNECTED:
                was, self._connected = self._connected, False
                if was:
                    log.warning("lost the connection to the daemon at %s", self.address)
                    self._jobs.connection_lost()
                    now = asyncio.get_running_loop().time()
                    lost = Unavailable(f"lost the connection to the daemon at {self.address}")
                    for call in self._open_calls():
                        if call.job_id or call.call_token:
                            # durable with its job id, resumable with its token: resumed when a
                            # connection is back (PROTOCOL.md §8.3 C6)
                            call._lost_at = now
                            self._waiting[id(call)] = call
                        else:
                            self._fail(call._rids[-1], lost)
                    for rid in list(self._lists):
                        self._fail(rid, lost)
                    # What the socket still queues for the lost connection belongs to calls just
                    # failed: never delivered to the next daemon (docs/DURABILITY.md §13). A
                    # pair's socket (ZMQ_IMMEDIATE) has dropped it with the connection already.
                    if not self._pair and self._dealer is not None:
                        drop_unsent(self._dealer, self.address)

    def _resume(self) -> None:
        """A new connection: JobResume for the open durable calls, CallResume for the resumable
        calls kept since the last one broke (with what each received), each under a new request
        id; the acknowledgements the lost connection may have lost, the cancels asked meanwhile."""
        open_calls = self._open_calls()
        calls = [(c.job_id, c) for c in open_calls if c.job_id]
        again = self._jobs.reconnected(calls, lambda: next(self._ids))
        kept = [(c, call_ref(c.call_token, getattr(c, "items_received", 0), c._chunks))
                for c in open_calls if c.call_token and c._lost_at is not None]  # fmt: skip
        bind = rebind(kept, lambda: next(self._ids))
        now = asyncio.get_running_loop().time()
        for rid, call in list(again.bound.items()) + list(bind.bound.items()):
            self._calls[rid] = call
            call._rids.append(rid)
            call.request_id = rid
            call._lost_at = now  # until the daemon answers for it (resume_timeout bounds that too)
            self._waiting[id(call)] = call
            if call._chunks is not None:
                call._chunks.request_id = rid  # its Chunks and Credits go under the new id
        self._resume_id = again.resume_id
        self._call_resume_id = bind.request_id
        if again.bound:
            log.info("resuming %d durable call(s) at %s", len(again.bound), self.address)
        if bind.bound:
            log.info("resuming %d call(s) on the new connection to %s", len(bind.bound), self.address)
        for data in (again.resume, bind.message, again.ack):
            if data is not None:
                self._send_now(data)
        for call in list(again.bound.values()) + list(bind.bound.values()):
            if call._cancel_wanted:
                self._send_now(m.encode(m.ClientMessage(request_id=call._rids[-1], body=m.Cancel())))

    async def _watch_connect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(0.1, self.resume_after / 2))
            now = loop.time()
            if self._connected:
                stalls_now = time.monotonic()  # the chunk streams' clock
                for call in self._open_calls():
                    if call._chunks is not None:
                        call._chunks.check_stalls(stalls_now, self._send_now)  # R3: a resume Credit
            for call in self._waiting_calls():
                lost_at = call._lost_at if call._lost_at is not None else now
                if call.job_id:
                    if now - lost_at >= self.resume_timeout:
                        message = resume_timed_out(call.job_id, self.address, self.resume_timeout, self._connected)
                        self._fail(call._rids[-1], Unavailable(message))
                elif now >= keep_until(lost_at, self.resume_timeout, call._deadline):
                    past = call._deadline is not None and now >= call._deadline
                    message = given_up(call._rids[-1], call.node, self.address, self.resume_timeout, self._connected, past)
                    self._fail(call._rids[-1], Unavailable(message))
            if self._connected:
                continue
            failed = False
            for rid, (since, _) in list(self._waiting_since.items()):
                if now - since >= self.connect_timeout:
                    self._fail(rid, Unavailable(f"cannot reach the daemon at {self.address} (is musterd running?)"))
                    failed = True
            if failed:
                self._drop_unsent_and_requeue()

    def _drop_unsent_and_requeue(self) -> None:
        """Calls just failed while unconnected: their messages still wait in the socket for a
        daemon that may come later. Dropped with everything it queues; the calls still waiting
        for a first connection are queued again, in order (with a pair nothing is queued
        unconnected)."""
        if self._pair or self._dealer is None:
            return
        drop_unsent(self._dealer, self.address)
        for _, data in self._waiting_since.values():
            self._send_now(data)

    def _waiting_calls(self) -> List[AsyncCall]:
        """The durable and resumable calls waiting for a daemon to take them back (few; none
        most of the time)."""
        for key, c in list(self._waiting.items()):
            if c._lost_at is None or c.future.done():
                del self._waiting[key]  # taken back, or ended
        return list(self._waiting.values())


class _CallWithProgress:
    """What ``call_with_progress`` returns before its Submit is sent: iterate it, then await it."""

    def __init__(self, submitting: Awaitable[AsyncCall]):
        self._submitting = submitting
        self._call: Optional[AsyncCall] = None

    async def _get(self) -> AsyncCall:
        if self._call is None:
            self._call = await self._submitting
        return self._call

    def __aiter__(self) -> AsyncIterator[Progress]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Progress]:
        call = await self._get()
        async for p in call:
            yield p

    def __await__(self) -> Generator[Any, None, Dict[str, Any]]:
        return self._result().__await__()

    async def _result(self) -> Dict[str, Any]:
        return await (await self._get())

    async def cancel(self) -> None:
        await (await self._get()).cancel()


__all__ = ["AsyncClient", "AsyncCall", "Progress"]
