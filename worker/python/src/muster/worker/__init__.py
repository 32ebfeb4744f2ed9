"""muster.worker — the Python worker: serves nodes to a musterd over ZeroMQ, following
docs/PROTOCOL.md §7 to the letter.

Owns: the worker's sockets and its protocol state machine (attach, confirmation pings, pongs
with in-flight ids, dispatch, abort, re-attach, detach; answers kept until the daemon confirms
them, without an Ack per answer where it agrees, §7.7; everything on one connection, its DEALER,
where the daemon grants it, §7.10), run by one I/O thread; handlers run
elsewhere — sync ones in a thread pool of ``capacity`` threads, ``async def`` ones on an asyncio
loop in a thread of its own — and hand their replies back through a queue.
Must never: let a handler, a bad message or a dead daemon take the I/O thread down; answer a
request twice; leave a request without an answer while it runs, except those its shutdown
drain gave up on (they are the daemon's to re-run or fail, §7.5); attach again once it
is stopping (it would leave a ghost worker behind); send a Failure code other than
WORKER_ERROR or INVALID_REQUEST, or a message larger than the daemon's --max-message-bytes.

Typical use::

    worker = muster.Worker(capacity=4)

    @worker.node(name="hello", inputs={"name": "string"}, outputs=["greeting"])
    def hello(ctx):
        return {"greeting": f"Hello {ctx.inputs.get('name') or 'world'}"}

    worker.run()          # until SIGINT/SIGTERM or worker.stop()

Chunked values (docs/STREAMS.md §3, PROTOCOL.md §7.9): a chunked input is assembled and
checked before an ordinary handler runs (it gets plain bytes); an input named in the node's
``stream_inputs`` is read by the handler as it arrives (``ctx.input_stream(port)``), the
worker granting credit as it reads. A bytes output over ``chunk_threshold``, or one returned as
a stream (a binary file object, a path, an iterator of bytes), is sent as chunks under the
caller's credit before the Result, from the handler's thread (async handlers: a thread of its
own), never from the I/O thread. Lost chunks are asked for again (PROTOCOL.md §7.9
"Resumption"): input streams send a resume Credit on a gap, a stall of ``resume_after``
seconds, or a re-attach to the same daemon instance (after a restart their calls are aborted);
output streams go back to a resume Credit's offset, until their Result is confirmed (what they
send again after the Result goes from the I/O thread: at most a window's worth).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import errno
import inspect
import logging
import os
import queue
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Tuple, Union, overload

import zmq
from zmq.utils.monitor import recv_monitor_message

from .. import messages as m
from .._version import SDK
from ..chunks import (
    DEFAULT_CHUNK_THRESHOLD, MAX_CHUNK_STREAMS, InputStream, OutputPieces, OutputSender, abort_error, credit_body,
    is_stream_output, worker_chunk,
)  # fmt: skip
from ..resume import RESUME_AFTER, check_resume_after
from ..endpoints import Curve, check_endpoint, connect, default_endpoint, endpoint_list
from ..enrollment import DEFAULT_ENROLLMENT_TIMEOUT, needs_curve, prepare_curve
from ..keys import local_identity_paths
from ..errors import BadMessage, ErrorCode, InvalidRequest, MusterError, WorkerError, code_name
from ..values import ChunkedValue
from ..nodes import Handler, HandlerT, Node, Registry, valid_worker_id
from .items import ItemSender, drive_async_generator, drive_generator

log = logging.getLogger("muster.worker")

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Unconfirmed answers kept past this many bytes ask the daemon to confirm them before the next
# ping (PROTOCOL.md §7.7 "Early confirmation"; the C++ SDK's WorkerOptions::confirm_kept_bytes).
DEFAULT_CONFIRM_KEPT_BYTES = 32 * 1024 * 1024
# What the daemon answers with nothing once it granted no_answer_acks (PROTOCOL.md §7.7; musterd
# answers an Item, a Chunk and a Credit of such a worker with nothing too).
_UNANSWERED = frozenset({"result", "failure", "progress", "item", "chunk", "credit"})
# The daemon's replies on the response socket (each answers a message the worker sent); anything
# else there is what it would publish for the worker, sent on its DEALER (direct, PROTOCOL.md §7.10).
_REPLIES = (m.Attached, m.Ack, m.Rejected)


@dataclass(frozen=True)
class Caller:
    """Who asked, as stamped by the daemon (never by the client)."""

    identity: str = ""
    name: str = ""
    workspace: str = ""
    role: str = ""
    trace_id: str = ""


class Context:
    """What a handler gets: the request and ways to talk back while it runs."""

    def __init__(self, job: "_Job", inputs: Dict[str, Any], parameters: Dict[str, Any]):
        self._job = job
        self.request_id: int = job.request_id
        self.node: str = job.node.name
        self.attempt: int = job.attempt
        self.timeout_ms: int = job.timeout_ms
        # monotonic time by which the daemon will have given up (None: no deadline given)
        self.deadline: Optional[float] = (
            job.received + job.timeout_ms / 1000.0 if job.timeout_ms else None
        )
        self.inputs: Dict[str, Any] = inputs
        self.parameters: Dict[str, Any] = parameters
        self.caller: Caller = job.caller
        self.log = logging.getLogger(f"muster.node.{job.node.name}")
        self._streams: Dict[str, InputStream] = {}  # input streams by port (the chunked ones first)

    def input_stream(self, port: str) -> InputStream:
        """A bytes input as a binary file object (``read(n)``; ``await aread(n)`` in async
        handlers). For a port named in the node's ``stream_inputs`` a chunked value is read as
        its chunks arrive, the worker granting the caller credit as the handler reads (memory
        stays bounded by the 4 MiB window, whatever the size); ``.size`` is known at once, the
        sha256 is checked at the end (a mismatch raises InvalidRequest at the read that reaches
        it, and fails the call). Any other bytes input (inline, or assembled before the handler
        ran) reads from memory. KeyError for an absent input, TypeError for one that is not
        bytes."""
        s = self._streams.get(port)
        if s is not None:
            return s
        if port not in self.inputs:
            raise KeyError(f"node {self.node}: no input {port!r}")
        v = self.inputs[port]
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise TypeError(f"node {self.node}: input {port!r} is not bytes but {type(v).__name__}")
        s = self._streams[port] = InputStream.of_bytes(port, bytes(v))
        return s

    def progress(self, step: int, total: int = 0, message: str = "") -> None:
        """Reports progress (forwarded to the client if it asked for it). Never blocks."""
        if self._job.abort_event.is_set():
            return
        self._job.worker._post(
            ("progress", self.request_id, m.Progress(self.request_id, int(step), int(total), str(message)))
        )

    @property
    def streaming(self) -> bool:
        """True when the caller reads items (it called ``stream``): only then may the handler
        emit (docs/STREAMS.md §2)."""
        return self._job.items.streaming

    def emit(self, values: Mapping[str, Any]) -> bool:
        """Sends one item (a dict of values, like outputs) to the caller before the handler
        returns. Blocks while the caller's window is full (its credit reopens it); returns
        True once the item is on its way, False when the request was aborted (stop then).
        Raises StreamNotRequested when the caller asked for no items, TypeError/ValueError for
        an item that cannot be sent. Sync handlers (any thread but the worker's event loop:
        async handlers use ``emit_async``)."""
        return self._job.items.emit(values)

    async def emit_async(self, values: Mapping[str, Any]) -> bool:
        """``emit`` for async handlers: waits for credit without blocking the event loop."""
        return await self._job.items.emit_async(values)

    def aborted(self) -> bool:
        """True once the daemon aborted the request (deadline, cancel) or the worker is
        stopping: stop working, whatever you return will be dropped."""
        return self._job.abort_event.is_set()

    @property
    def abort_reason(self) -> str:
        return self._job.abort_reason

    @property
    def abort_code(self) -> Optional[ErrorCode]:
        return self._job.abort_code

    def wait_aborted(self, timeout: Optional[float] = None) -> bool:
        """Sleeps up to ``timeout`` seconds; returns True as soon as the request is aborted
        (sync handlers: use instead of time.sleep)."""
        return self._job.abort_event.wait(timeout)

    def check_aborted(self) -> None:
        """Raises the abort's error (Timeout, Cancelled, ...) if the request was aborted."""
        if self.aborted():
            raise MusterError(self._job.abort_code or ErrorCode.CANCELLED, self._job.abort_reason)

    def __repr__(self) -> str:
        return f"<Context {self.node} request {self.request_id} attempt {self.attempt}>"


class _Job:
    __slots__ = (
        "worker", "request_id", "node", "attempt", "timeout_ms", "caller", "received",
        "abort_event", "abort_code", "abort_reason", "task", "loop", "items",
        "chunk_window", "in_streams", "out_streams", "waiting", "input_error", "output_error", "instance",
    )  # fmt: skip

    def __init__(self, worker: "Worker", req: m.WorkRequest, node: Node):
        self.worker = worker
        self.request_id = req.request_id
        self.node = node
        self.attempt = req.attempt
        self.timeout_ms = req.timeout_ms
        c = req.caller or m.CallerContext()
        self.caller = Caller(
            c.identity or "", c.name or "", c.workspace or "", c.role or "", c.trace_id or ""
        )
        self.received = time.monotonic()
        self.abort_event = threading.Event()
        self.abort_code: Optional[ErrorCode] = None
        self.abort_reason = ""
        self.task: "Optional[asyncio.Task[None]]" = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.items = ItemSender(
            req.request_id, node.name, req.stream_window_items or 0, req.stream_window_bytes or 0, worker.worker_id,
            lambda seq, data: worker._post(("item", self, seq, data)),
            lambda: worker.max_message_bytes, lambda: worker._aloop_thread,
        )  # fmt: skip
        self.chunk_window: int = req.chunk_window_bytes or 0  # the caller takes chunked outputs (> 0)
        self.in_streams: Dict[int, InputStream] = {}  # chunked inputs by stream
        self.out_streams: Dict[int, OutputSender] = {}  # chunked outputs, by stream
        self.waiting: Optional[Context] = None  # not dispatched yet: chunked inputs being assembled
        self.input_error: Optional[MusterError] = None  # a chunked input that broke (sha256...)
        # a chunked output sent whole that a resume Credit asked for from where it cannot go back
        self.output_error: Optional[MusterError] = None
        self.instance = worker.instance  # the daemon instance that dispatched it

    def chunking(self) -> bool:
        """Bytes of its chunked values are on the way: an input not received whole, or an
        output being sent (a daemon restart ends them: the new instance knows neither)."""
        return bool(self.out_streams) or any(not s.complete for s in self.in_streams.values())

    def abort(self, code: Any, reason: str) -> None:
        if self.abort_event.is_set():
            return
        try:
            self.abort_code = ErrorCode(code)
        except ValueError:
            self.abort_code = ErrorCode.CANCELLED
        self.abort_reason = reason
        self.abort_event.set()
        self.items.close()
        error = abort_error(self.abort_code, reason)
        for s in list(self.in_streams.values()):
            s.fail(error)
        for c in list(self.out_streams.values()):
            c.close()
        if self.task is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)


class _HandlerPool:
    """``capacity`` daemon threads running sync handlers. Daemon threads, so a handler that
    ignores its abort cannot keep the process alive after the worker stopped."""

    def __init__(self, size: int):
        self._q: "queue.SimpleQueue[Optional[Tuple[Callable[..., Any], Tuple[Any, ...]]]]" = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"muster-node-{i}", daemon=True) for i in range(size)
        ]
        self._lock = threading.Lock()
        self.busy = 0
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._q.put((fn, args))

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            fn, args = item
            with self._lock:
                self.busy += 1
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001
                log.exception("handler thread failed")
            finally:
                with self._lock:
                    self.busy -= 1

    def shutdown(self) -> None:
        for _ in self._threads:
            self._q.put(None)


class State(enum.Enum):
    IDLE = "idle"  # no nodes to serve, not attached
    ATTACHING = "attaching"  # Attach sent, no Attached yet
    ATTACHED = "attached"  # Attached received (confirming or ready, as the daemon sees it)
    DETACHING = "detaching"  # Detach sent: finishing open requests
    STOPPED = "stopped"


# The codes a worker's Failure may carry (PROTOCOL.md §6): WORKER_ERROR (the node's own code
# failed), INVALID_REQUEST (inputs or parameters it cannot accept), and what a worker that
# forwards calls to others met downstream.
WORKER_MAY_SEND = frozenset({
    ErrorCode.WORKER_ERROR, ErrorCode.INVALID_REQUEST,
    ErrorCode.NO_WORKER, ErrorCode.WORKER_LOST, ErrorCode.TIMEOUT, ErrorCode.SHUTTING_DOWN,
})


def failure(request_id: int, code: Any, message: str) -> m.Failure:
    """A worker's Failure: it carries only a code of WORKER_MAY_SEND; any other becomes
    WORKER_ERROR (musterd would map it so too)."""
    kept = code if code in WORKER_MAY_SEND else ErrorCode.WORKER_ERROR
    return m.Failure(request_id, kept, message)


def default_worker_id() -> str:
    host = "".join(c if (c.isascii() and (c.isalnum() or c in "_.-")) else "-" for c in socket.gethostname())
    return f"py-{host or 'host'}-{os.getpid()}"[:64]


class Worker:
    """A muster worker. Declare nodes with ``@worker.node(...)`` or ``worker.add_node(...)``,
    then ``run()`` (blocking, handles SIGINT/SIGTERM) or ``start()`` (background thread).

    ``request_address``/``response_address`` default to the daemon's local ipc:// sockets in
    the runtime directory. ``tcp://`` endpoints are CURVE-encrypted: with
    ``curve=muster.Curve(...)``, or with keys from enrollment when the worker starts
    (docs/SECURITY.md §5; see ``ensure_keys``): the identity saved in ``data_dir``
    (``<name>-curve.key``, ``<name>-identity.json``, name "worker"), else a new enrollment at
    ``enrollment_address`` (default ``tcp://<host>:7900``) with the token from
    $MUSTER_ENROLLMENT_TOKEN, else ``enrollment_token_file``, else
    $XDG_CONFIG_HOME/muster/enrollment-token. ``insecure=True`` allows clear text instead.

    ``direct`` (True by default) asks the daemon for everything on the response connection, so
    the worker connects no SUB where it agrees (PROTOCOL.md §7.10); ``direct=False`` keeps a
    SUB and a DEALER, as does a daemon that does not grant it.
    """

    def __init__(
        self,
        worker_id: Optional[str] = None,
        capacity: int = 4,
        request_address: Optional[str] = None,
        response_address: Optional[str] = None,
        *,
        curve: Optional[Curve] = None,
        insecure: bool = False,
        data_dir: Optional[str] = None,
        enrollment_address: Optional[str] = None,
        enrollment_token_file: Optional[str] = None,
        name: str = "worker",
        enrollment_timeout: float = DEFAULT_ENROLLMENT_TIMEOUT,
        hostname: Optional[str] = None,
        shutdown_grace: float = 10.0,
        attach_timeout: float = 5.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        registry: Optional[Registry] = None,
        zmq_context: Optional[zmq.Context[zmq.Socket[bytes]]] = None,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
        resume_after: float = RESUME_AFTER,
        confirm_kept_bytes: int = DEFAULT_CONFIRM_KEPT_BYTES,
        direct: bool = True,
    ):
        self.worker_id = worker_id or default_worker_id()
        # seconds without a chunk before an input stream waiting for bytes asks for them again
        # (PROTOCOL.md §7.9 R3), and between two resume Credits for one gap (R2)
        self.resume_after = check_resume_after(resume_after)
        if isinstance(chunk_threshold, bool) or not isinstance(chunk_threshold, int) or chunk_threshold < 1:
            raise ValueError(f"chunk_threshold must be a positive integer, got {chunk_threshold!r}")
        self.chunk_threshold = chunk_threshold
        if isinstance(confirm_kept_bytes, bool) or not isinstance(confirm_kept_bytes, int) or confirm_kept_bytes < 0:
            raise ValueError(f"confirm_kept_bytes must be a non-negative integer, got {confirm_kept_bytes!r}")
        # bytes of unconfirmed answers that ask for confirmation before the next ping (0: never)
        self.confirm_kept_bytes = confirm_kept_bytes
        # Asks for everything on the DEALER, one connection (PROTOCOL.md §7.10): no SUB unless the
        # daemon does not grant it (an older one).
        self.direct = bool(direct)
        if not valid_worker_id(self.worker_id):
            raise ValueError(f"invalid worker id {self.worker_id!r}: must match [A-Za-z0-9_.-]{{1,64}}")
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError("capacity must be a positive integer")
        self.capacity = capacity
        self.request_address = request_address or default_endpoint("request")
        self.response_address = response_address or default_endpoint("response")
        self.curve = curve
        self.insecure = insecure
        self.data_dir = data_dir
        self.enrollment_address = enrollment_address
        self.enrollment_token_file = enrollment_token_file
        self.name = name
        self.enrollment_timeout = enrollment_timeout
        # tcp:// without keys or insecure: keys come from enrollment at start() (PROTOCOL.md §9)
        self._enrolls = needs_curve((self.request_address, self.response_address), curve, insecure)
        if self._enrolls:
            local_identity_paths(data_dir or ".", name)  # ValueError now for a bad name
        for ep in (self.request_address, self.response_address):
            check_endpoint(ep, curve, insecure or self._enrolls)
        self.hostname = hostname or socket.gethostname()
        self.session = secrets.token_hex(16)
        self.shutdown_grace = shutdown_grace
        self.attach_timeout = attach_timeout
        self.max_message_bytes = max_message_bytes
        self.registry = registry or Registry()
        self._zctx = zmq_context
        self._own_zctx = zmq_context is None

        self.state = State.IDLE
        self.instance: Optional[str] = None
        self.ping_interval_ms = 0
        self.liveness = 0
        self.topic = ""  # the worker topic the daemon assigned (Attached.topic); "" before
        self.broadcast_topic = "b:"

        self._jobs: Dict[int, _Job] = {}
        self._pending: Deque[str] = collections.deque()  # kinds of sent messages awaiting a reply
        self._last_pong: Tuple[Optional[str], int] = (None, -1)  # (instance, seq) last answered
        # Answers sent and not yet confirmed (PROTOCOL.md §7.6): request id -> (kind, message,
        # seq of the newest Pong that listed it, 0 if none). Kept across a reconnect and a daemon
        # restart; confirmed by their Ack, or by the Ack to a Pong that listed them and did not
        # name them missing. `_pending_answers` are the request ids of the answers sent on this
        # connection whose reply is due, in order.
        self._kept: Dict[int, Tuple[str, bytes, int]] = {}
        self._kept_bytes = 0  # the sizes of the kept answers
        self._pending_answers: Deque[int] = collections.deque()
        # Answers without an Ack (PROTOCOL.md §7.7): whether the daemon replies to what this
        # worker sends now of _UNANSWERED: True from each Attach until its Attached says
        # no_answer_acks (an older daemon Acks every answer). While False, only the Ack to a Pong
        # confirms an answer.
        self._answer_acks = True
        # The seq of the last Pong that listed answers while no Ack with that seq (or a later
        # one) has been read (0: none); whether the last Pong sent listed answers. An early
        # confirmation repeats the last Pong only when it listed answers and its Ack was read.
        self._pong_ack_due = 0
        self._last_pong_listed = False
        # Idle pongs (PROTOCOL.md §7.3): Attached.idle_pong_every (0, 1: every ping answered)
        # and the broadcast pings left unanswered in a row while nothing was held.
        self._idle_pong_every = 0
        self._pings_unanswered = 0
        # The chunked outputs of answers sent and not yet confirmed, by request id and stream:
        # a resume Credit may still ask for their chunks again (PROTOCOL.md §7.9 R11).
        self._resend: Dict[int, Dict[int, OutputSender]] = {}
        self._outbox: "queue.SimpleQueue[Tuple[Any, ...]]" = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()
        self._wake_closed = False
        self._stop_requested = threading.Event()
        self._stop_now = False
        self._stop_reason = "stopping"
        self._attached_event = threading.Event()
        self._stopped_event = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._pool: Optional[_HandlerPool] = None
        self._aloop: Optional[asyncio.AbstractEventLoop] = None
        self._aloop_thread: Optional[threading.Thread] = None
        self._sub: Optional[zmq.Socket[bytes]] = None  # None while direct, and until an Attached refuses it
        self._dealer: Optional[zmq.Socket[bytes]] = None
        # Direct (PROTOCOL.md §7.10), granted by the last Attached on this DEALER: the daemon's
        # messages for this worker come on it, after its replies, in the order sent. Until the Ack
        # of a Pong every Ping is answered (the confirming one comes like the broadcast ones).
        self._direct = False
        self._answer_every_ping = False
        self._attach_on_its_way = False  # the last Attach was handed to the DEALER (not dropped)
        # The DEALER's connection events: ZeroMQ reconnects a broken connection by itself, and
        # musterd refuses a worker's messages from a connection that did not attach it.
        self._dealer_monitor: Optional[zmq.Socket[bytes]] = None
        self._dealer_lost = False  # its connection broke: the next one attaches again
        # Chunks and answers held while the daemon would refuse or lose them (the connection
        # broke, or a new one is not attached yet): (kind, running job or None, request id,
        # message), sent in order once Attached comes from the same instance.
        self._held: Optional[List[Tuple[str, Optional[_Job], int, Union[bytes, memoryview]]]] = None
        self._poller: Optional[zmq.Poller] = None
        self._attach_sent_at = 0.0
        self._next_attach_at: Optional[float] = None
        self._last_ping = 0.0
        self._early_ping: Optional[m.Ping] = None
        self._pings_since_attach = 0  # broadcast Pings heard while the last Attach went unanswered
        self._attached_version = -1  # registry version sent in the last Attach
        self._detach_deadline: Optional[float] = None
        self._detach_started = False
        self._abandoning = False  # the drain ended: open and new requests are left unanswered
        self.attach_count = 0  # Attach messages sent (for tests and logs)

    # ---- declaring nodes ---------------------------------------------------------------

    @overload
    def node(self, name: HandlerT) -> HandlerT: ...
    @overload
    def node(self, name: Optional[str] = None, **options: Any) -> Callable[[HandlerT], HandlerT]: ...

    def node(self, name: Union[str, Handler, None] = None, **options: Any) -> Any:
        """Decorator declaring a node: ``@worker.node(name=..., description=..., category=...,
        version=..., inputs=..., outputs=..., parameters={...defaults}, idempotent=False,
        timeout_ms=0)``, or bare ``@worker.node`` on a typed function."""
        if callable(name):  # bare @worker.node: registered now
            out = self.registry.node(name, **options)
            self._nodes_changed()
            return out
        return self._announcing(self.registry.node(name, **options))

    @overload
    def add_node(self, definition: Mapping[str, Any], handler: Handler) -> Node: ...
    @overload
    def add_node(self, definition: Mapping[str, Any], handler: None = None) -> Callable[[HandlerT], HandlerT]: ...

    def add_node(self, definition: Mapping[str, Any], handler: Optional[Handler] = None) -> Any:
        """Declares a node from a definition dict (see nodes.node_from_definition)."""
        if handler is None:  # a decorator: the node exists once it is applied
            return self._announcing(self.registry.add_node(definition, None))
        out = self.registry.add_node(definition, handler)
        self._nodes_changed()
        return out

    def add(self, node: Node, replace: bool = False) -> Node:
        out = self.registry.add(node, replace)
        self._nodes_changed()
        return out

    def set_nodes(self, nodes: Iterable[Node]) -> None:
        """Replaces the whole node list; a running worker re-attaches with the new list."""
        self.registry.replace_all(nodes)
        self._nodes_changed()

    def remove_node(self, name: str) -> bool:
        found = self.registry.remove(name)
        self._nodes_changed()
        return found

    def _announcing(self, register: Callable[[HandlerT], HandlerT]) -> Callable[[HandlerT], HandlerT]:
        """``register`` (a registry decorator), telling the I/O thread of the new node once it
        is registered: told before, the thread found the node list unchanged and a running
        worker never attached again with the node."""

        def registered(fn: HandlerT) -> HandlerT:
            out = register(fn)
            self._nodes_changed()
            return out

        return registered

    def _nodes_changed(self) -> None:
        if self._thread is not None or self.state != State.IDLE:
            self._post(("nodes",))

    # ---- running -----------------------------------------------------------------------

    def ensure_keys(self) -> Optional[Curve]:
        """For tcp:// endpoints without ``curve`` or ``insecure``: reuses the identity saved in
        ``data_dir`` (``<name>-identity.json``) or enrolls with the token (docs/SECURITY.md §5),
        then returns the CURVE keys every socket uses. Called by start() and run(); raises
        EnrollmentError (with the daemon's code and message when it refused)."""
        if self._enrolls and self.curve is None:
            self.curve = prepare_curve(
                (self.request_address, self.response_address),
                role="worker",
                name=self.name,
                data_dir=self.data_dir,
                enrollment_address=self.enrollment_address,
                enrollment_token_file=self.enrollment_token_file,
                hostname=self.hostname,
                timeout=self.enrollment_timeout,
            )
            log.info("CURVE keys of %s ready (public key %s)", self.name, self.curve.public)
        return self.curve

    def start(self) -> "Worker":
        """Runs the worker in a background thread; returns at once (after enrollment, if
        needed: see ensure_keys)."""
        if self._thread is not None:
            raise RuntimeError("worker already started")
        self.ensure_keys()
        self._thread = threading.Thread(target=self._run_io, name=f"muster-worker-{self.worker_id}", daemon=True)
        self._thread.start()
        return self

    def run(self, install_signal_handlers: bool = True) -> None:
        """Runs the worker in this thread until ``stop()`` or SIGINT/SIGTERM (handled when
        called from the main thread): detaches, finishes open requests within
        ``shutdown_grace`` seconds, then returns. A second signal skips the grace."""
        if self._thread is not None:
            raise RuntimeError("worker already started")
        self.ensure_keys()
        self._thread = threading.current_thread()
        previous: Dict[signal.Signals, Any] = {}
        if install_signal_handlers and threading.current_thread() is threading.main_thread():

            def on_signal(signum: int, frame: Optional[FrameType]) -> None:
                name = signal.Signals(signum).name
                if self._stop_requested.is_set():
                    log.warning("%s again: stopping now", name)
                    self.stop(reason=f"{name}", wait=False, now=True)
                else:
                    log.info("%s: detaching", name)
                    self.stop(reason=f"{name}", wait=False)

            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self._run_io()
        finally:
            for sig, h in previous.items():
                signal.signal(sig, h)

    def stop(self, reason: str = "stopping", wait: bool = True, now: bool = False, timeout: Optional[float] = None) -> None:
        """Graceful stop: Detach, finish open requests (within ``shutdown_grace``), exit.
        Requests still running when the grace runs out (or at once with ``now``) are aborted
        and not answered: the daemon re-runs an idempotent one elsewhere and fails any other
        with WORKER_LOST (PROTOCOL.md §7.5). Thread-safe; with ``wait`` blocks until the
        worker stopped."""
        self._stop_reason = reason
        if now:
            self._stop_now = True
        self._stop_requested.set()
        self._wake()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def join(self, timeout: Optional[float] = None) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_attached(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the daemon answered an Attach with Attached."""
        return self._attached_event.wait(timeout)

    @property
    def in_flight(self) -> List[int]:
        return sorted(self._jobs)

    def __enter__(self) -> "Worker":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- cross-thread plumbing ---------------------------------------------------------

    def _post(self, item: Tuple[Any, ...]) -> None:
        self._outbox.put(item)
        self._wake()

    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_closed:
                return
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass  # the pipe is full: a wake-up is pending anyway

    # ---- the I/O thread ----------------------------------------------------------------

    def _run_io(self) -> None:
        try:
            self._io_setup()
            self._io_loop()
        except Exception:
            log.exception("worker I/O loop failed")
            raise
        finally:
            self._io_teardown()

    def _io_setup(self) -> None:
        if self._zctx is None:
            self._zctx = zmq.Context()
        self._pool = _HandlerPool(self.capacity)
        self._connect()
        if len(self.registry):
            self._send_attach()
        else:
            log.warning("worker %s has no nodes: not attaching until it has some", self.worker_id)
        self._attached_version = self.registry.version

    def _connect(self) -> None:
        """(Re)creates the sockets: a DEALER to the response socket, watched, and unless the
        worker asks for direct (PROTOCOL.md §7.10) a SUB subscribed to the broadcast topic
        before anything is sent (the worker topic follows with Attached: _subscribe_topic).
        Asking for direct, the SUB waits for an Attached that refuses it (an older daemon)."""
        self._close_sockets()
        assert self._zctx is not None
        dealer = self._zctx.socket(zmq.DEALER)
        # Closed without lingering when replaced: a late Attach from it could move a direct
        # worker's route to a connection about to close (§7.10); its answers are kept (§7.7).
        dealer.setsockopt(zmq.LINGER, 0)
        monitor = dealer.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        connect(dealer, self.response_address, self.curve, self.insecure)
        self._dealer, self._dealer_monitor = dealer, monitor
        self._dealer_lost = False
        self._direct = self._answer_every_ping = False
        self._poller = zmq.Poller()
        self._poller.register(dealer, zmq.POLLIN)
        self._poller.register(monitor, zmq.POLLIN)
        self._poller.register(self._wake_r, zmq.POLLIN)
        if not self.direct:
            self._connect_sub()
        self._pending.clear()
        self._pending_answers.clear()
        self._early_ping = None
        self._await_a_completed_connection()

    def _await_a_completed_connection(self) -> None:
        """A failover pair's DEALER (ZMQ_IMMEDIATE) drops what it sends until a daemon's
        connection has completed its handshake, which comes after the connect event: the Attach
        about to go waits for it, briefly (the attach timeout retries)."""
        if self._dealer is not None and len(endpoint_list(self.response_address)) > 1:
            self._dealer.poll(1000, zmq.POLLOUT)

    def _connect_sub(self) -> None:
        """The SUB on the request socket, subscribed to the broadcast topic (the worker topic
        follows with Attached: _subscribe_topic)."""
        assert self._zctx is not None and self._poller is not None
        sub = self._zctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, self.broadcast_topic.encode())
        self.topic = ""
        if self.max_message_bytes:
            sub.setsockopt(zmq.MAXMSGSIZE, 2 * self.max_message_bytes + 1024)
        connect(sub, self.request_address, self.curve, self.insecure)
        self._sub = sub
        self._poller.register(sub, zmq.POLLIN)

    def _drop_sub(self) -> None:
        """Direct granted: the SUB (one an older daemon made it connect) goes."""
        if self._sub is None:
            return
        if self._poller is not None:
            self._poller.unregister(self._sub)
        self._sub.close(0)
        self._sub = None
        self.topic = ""

    def _close_sockets(self, linger: int = 0) -> None:
        if self._dealer_monitor is not None:
            if self._dealer is not None:
                try:
                    self._dealer.disable_monitor()
                except zmq.ZMQError:
                    pass
            self._dealer_monitor.close(0)
            self._dealer_monitor = None
        if self._sub is not None:
            self._sub.close(0)
        if self._dealer is not None:
            self._dealer.close(linger)
        self._sub = self._dealer = None

    def _io_teardown(self) -> None:
        for job in list(self._jobs.values()):
            job.abort(ErrorCode.SHUTTING_DOWN, "worker stopped")
        for rid in list(self._resend):
            self._release_outputs(rid)
        if self._pool is not None:
            self._pool.shutdown()
        if self._aloop is not None:
            try:
                self._aloop.call_soon_threadsafe(self._aloop.stop)
            except RuntimeError:
                pass
        self._close_sockets(linger=500)
        if self._own_zctx and self._zctx is not None:
            self._zctx.term()
            self._zctx = None
        self.state = State.STOPPED
        with self._wake_lock:
            self._wake_closed = True
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._stopped_event.set()
        log.info("worker %s stopped", self.worker_id)

    def _io_loop(self) -> None:
        flush_deadline: Optional[float] = None
        while True:
            now = time.monotonic()
            if self._stop_requested.is_set() and not self._detach_started:
                self._detach_started = True
                self._begin_detach(now)
            if self._detach_started and flush_deadline is None:
                if self._stop_now or not self._jobs or now >= (self._detach_deadline or 0):
                    self._abandon_remaining()
                    # Wait (briefly) for the daemon's replies, so Detach and the last results
                    # have left before the socket closes.
                    flush_deadline = now + (0.25 if self._stop_now else 1.0)
            if flush_deadline is not None and (not self._pending or now >= flush_deadline):
                return
            timeout = self._poll_timeout(now, flush_deadline)
            try:
                assert self._poller is not None  # set up by _run_io before the loop
                events = dict(self._poller.poll(timeout))
            except zmq.ZMQError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            if self._wake_r in events:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            if self._dealer_monitor is not None and self._dealer_monitor in events:
                self._read_dealer_monitor()
            self._drain_outbox()
            # Replies first: an Ack that arrived with the next Ping confirms the answers its Pong
            # listed before that Ping is answered (PROTOCOL.md §7.6); _read_sub keeps to it
            # message by message.
            if self._dealer in events:
                self._read_dealer()
            if self._sub in events:
                self._read_sub()
            self._timers(time.monotonic())

    def _poll_timeout(self, now: float, flush_deadline: Optional[float]) -> int:
        deadlines = []
        if self.state == State.ATTACHING:
            deadlines.append(self._attach_sent_at + self.attach_timeout)
        if self.state in (State.ATTACHED, State.DETACHING) and self.ping_interval_ms:
            deadlines.append(self._last_ping + self._liveness_window())
        if self._next_attach_at is not None:
            deadlines.append(self._next_attach_at)
        if self._detach_deadline is not None:
            deadlines.append(self._detach_deadline)
        if flush_deadline is not None:
            deadlines.append(flush_deadline)
        stall = self._next_stall()
        if stall is not None:
            deadlines.append(stall)
        if not deadlines:
            return 1000
        return max(0, min(1000, int((min(deadlines) - now) * 1000) + 1))

    def _liveness_window(self) -> float:
        return self.ping_interval_ms * max(self.liveness, 1) / 1000.0

    def _next_stall(self) -> Optional[float]:
        """When an input stream stalls if no chunk comes (PROTOCOL.md §7.9 R3); None: none can
        (or the worker is not attached: a resume Credit could not go)."""
        if self.state != State.ATTACHED:
            return None
        times = [
            t for job in self._jobs.values() if not job.abort_event.is_set()
            for t in (s.stall_at() for s in job.in_streams.values()) if t is not None
        ]  # fmt: skip
        return min(times) if times else None

    def _check_stalls(self, now: float) -> None:
        """R3: a resume Credit for every input stream that waits for bytes it granted and heard
        nothing for ``resume_after``."""
        if self.state != State.ATTACHED:
            return
        for job in list(self._jobs.values()):
            if job.abort_event.is_set():
                continue
            for s in job.in_streams.values():
                grant = s.stalled(now)
                if grant is not None:
                    log.info("request %d: input %s: no chunk for %.1fs: asking again from offset %d",
                             job.request_id, s.port, self.resume_after, grant.resume_at)  # fmt: skip
                    self._send("credit", credit_body(job.request_id, s.stream, grant))

    def _timers(self, now: float) -> None:
        self._check_stalls(now)
        if self.state == State.ATTACHING and now - self._attach_sent_at >= self.attach_timeout:
            log.warning(
                "no answer to Attach from %s within %.1fs: reconnecting", self.response_address, self.attach_timeout
            )
            self._reconnect_and_attach()
        elif (
            self.state in (State.ATTACHED, State.DETACHING)
            and self.ping_interval_ms
            and now - self._last_ping >= self._liveness_window()
        ):
            if self.state == State.DETACHING:
                if not self._stop_now:
                    log.warning("no ping for %.1fs while detaching: giving up on the daemon", self._liveness_window())
                self._stop_now = True
                self._last_ping = now
                return
            log.warning("no ping from the daemon for %.1fs: reconnecting and attaching again", self._liveness_window())
            self._reconnect_and_attach()
        elif self._next_attach_at is not None and now >= self._next_attach_at:
            self._next_attach_at = None
            self._reconnect_and_attach()

    def _reconnect_and_attach(self) -> None:
        if self._held is None:
            self._held = []  # until the new connection is attached
        self._connect()
        if self._stop_requested.is_set():
            return
        if len(self.registry):
            self._send_attach()
        else:
            self.state = State.IDLE

    # ---- sending -----------------------------------------------------------------------

    def _send(self, kind: str, body: Any, replied: Optional[bool] = None) -> bool:
        data = m.encode(m.WorkerMessage(worker_id=self.worker_id, body=body))
        if len(data) > self.max_message_bytes and kind != "attach":  # the daemon's limit comes in Attached
            log.warning(
                "not sending a %s of %d bytes: over the daemon's limit of %d bytes (--max-message-bytes)",
                kind, len(data), self.max_message_bytes,
            )  # fmt: skip
            return False
        return self._send_bytes(kind, data, replied)

    def _send_bytes(self, kind: str, data: bytes, replied: Optional[bool] = None) -> bool:
        """Sends one message; its reply is awaited (``_pending``) if the daemon sends one:
        ``replied``, or by default unless the daemon granted no_answer_acks and it is one of
        _UNANSWERED."""
        assert self._dealer is not None
        try:
            self._dealer.send(data, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("response socket full: dropped a %s (the daemon will re-send what it misses)", kind)
            return False
        self._await_reply(kind, replied)
        return True

    def _await_reply(self, kind: str, replied: Optional[bool] = None) -> None:
        if replied if replied is not None else (self._answer_acks or kind not in _UNANSWERED):
            self._pending.append(kind)

    def _send_item(self, job: _Job, seq: int, data: bytes) -> None:
        """Sends an item of a running request. Items are not kept nor sent again: one lost on
        the way shows as a seq gap, which musterd ends with WORKER_LOST (docs/STREAMS.md §2)."""
        self._send_stream_message(job, "item", data)

    def _send_stream_message(self, job: Optional[_Job], kind: str, data: Union[bytes, memoryview], rid: int = 0) -> None:
        """Sends an item or a chunk of a request (``job``: a running one; None: a chunk sent
        again after its answer, R11). The credit bounds them, so the socket's queue is full
        only when the daemon stalls; the message then waits for room (up to a second) rather
        than leave a gap. An item that still finds no room ends its request; a chunk is
        dropped: the daemon asks for it again with a resume Credit (PROTOCOL.md §7.9 R7, R8)."""
        assert self._dealer is not None
        if kind == "chunk" and self._held is not None:
            self._held.append((kind, job, job.request_id if job is not None else rid, data))  # the connection is not attached (again) yet
            return
        try:
            self._dealer.send(data, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            if not self._dealer.poll(1000, zmq.POLLOUT):
                rid = job.request_id if job is not None else rid
                if kind == "chunk":
                    log.warning("request %d: response socket full: a chunk dropped (the daemon will ask for it again)", rid)
                    return
                log.warning("request %d: response socket full: an %s not sent, aborting the request", rid, kind)
                if job is not None:
                    job.abort(ErrorCode.WORKER_ERROR, f"an {kind} could not be sent: the response socket stayed full")
                return
            self._dealer.send(data, zmq.NOBLOCK, copy=False)
        self._await_reply(kind)  # answered like a Progress: Ack, or nothing (PROTOCOL.md §7.7-§7.9)

    def _send_answer(self, rid: int, kind: str, data: bytes) -> None:
        """Sends the Result or Failure of request `rid` and keeps it (the bytes sent, not a copy)
        until the daemon confirms it: a daemon that died before its Ack asks for it again after
        the restart (§7.6); one that sends no Ack per answer names it in the Ack to the next
        Pong if it never got it (§7.7)."""
        old = self._kept.get(rid)
        if old is not None:
            self._kept_bytes -= len(old[1])
        self._kept[rid] = (kind, data, 0)
        self._kept_bytes += len(data)
        if self._held is not None:
            self._held.append((kind, None, rid, data))  # after the chunks held before it
            return
        if self._send_bytes(kind, data) and self._answer_acks:
            self._pending_answers.append(rid)
        self._confirm_early_if_large()

    def _fail_now(self, rid: int, code: Any, message: str) -> None:
        """Answers request `rid` with a Failure from the I/O thread (before any handler ran, or
        replacing an answer that cannot stand), kept like any answer."""
        data = m.encode(m.WorkerMessage(worker_id=self.worker_id, body=failure(rid, code, message)))
        self._send_answer(rid, "failure", data)

    def _confirm_early_if_large(self) -> None:
        """Asks for confirmation of the kept answers before the next ping once they pass
        ``confirm_kept_bytes``, by repeating the last Pong (PROTOCOL.md §7.7 "Early
        confirmation"). An Ack confirms what its Pong listed, found by seq, so every Ack with
        that seq must answer a Pong the worker counts on: the Pong repeated listed answers (a
        Pong listing none is Acked only sometimes), its Ack was read, and no other repeated
        Pong's Ack is due. Else an Ack to the first Pong could confirm answers the daemon has
        not checked."""
        if self._answer_acks or not self.confirm_kept_bytes or self._kept_bytes < self.confirm_kept_bytes:
            return
        instance, seq = self._last_pong
        if self.state not in (State.ATTACHED, State.DETACHING) or self._pong_ack_due or not self._last_pong_listed:
            return
        if instance != self.instance or self._held is not None:
            return
        self._send_pong(seq, instance)

    def _reply_to(self, kind: Optional[str]) -> Optional[int]:
        """The request id of the answer whose reply just came (kind result/failure)."""
        if kind in ("result", "failure") and self._pending_answers:
            return self._pending_answers.popleft()
        return None

    def _attach_message(self) -> m.Attach:
        return m.Attach(
            worker_id=self.worker_id,
            hostname=self.hostname,
            sdk=SDK,
            pid=os.getpid(),
            session=self.session,
            capacity=self.capacity,
            nodes=self.registry.specs(),
            no_answer_acks=True,
            idle_pongs=True,
            direct=self.direct,
        )

    def _send_attach(self) -> None:
        # Until its Attached, the daemon it reaches may be an older one that Acks every answer.
        self._answer_acks = True
        self._idle_pong_every = 0
        self._attached_version = self.registry.version
        self._attached_event.clear()
        self.state = State.ATTACHING
        self._attach_sent_at = time.monotonic()
        self._next_attach_at = None
        self._pings_since_attach = 0
        self.attach_count += 1
        nodes = self.registry.specs()
        log.info(
            "attaching worker %s (%d node%s: %s) to %s",
            self.worker_id, len(nodes), "" if len(nodes) == 1 else "s",
            ", ".join(n.name for n in nodes), self.response_address,
        )  # fmt: skip
        self._attach_on_its_way = self._send("attach", self._attach_message())

    def _begin_detach(self, now: float) -> None:
        if self.state in (State.ATTACHED, State.ATTACHING):
            log.info("detaching worker %s (%s): %d open request(s)", self.worker_id, self._stop_reason, len(self._jobs))
            self._send("detach", m.Detach(reason=self._stop_reason))
            self.state = State.DETACHING
            if self.ping_interval_ms == 0:
                self._last_ping = now
        else:
            self.state = State.DETACHING
            self._last_ping = now
        self._next_attach_at = None  # a stopping worker never reconnects nor attaches again
        self._detach_deadline = now + self.shutdown_grace

    def _forgotten(self, why: str) -> None:
        """The daemon no longer knows this stopping worker: its open requests have no one to
        answer to, so it stops now instead of draining, and never attaches again (PROTOCOL.md §7.5)."""
        if not self._stop_now:
            log.info("the daemon forgot worker %s while it was stopping (%s): stopping now", self.worker_id, why)
        self._stop_now = True

    def _abandon_remaining(self) -> None:
        """Ends the drain: handlers still running are aborted and their requests left
        unanswered, so the daemon applies its worker-death rules once this worker is silent
        (PROTOCOL.md §7.5): an idempotent request runs again elsewhere instead of failing, any
        other fails with WORKER_LOST. Requests arriving from now on are not run."""
        self._abandoning = True
        for rid, job in list(self._jobs.items()):
            job.abort(ErrorCode.SHUTTING_DOWN, "worker stopped")
            log.warning(
                "request %d (%s) did not finish before shutdown: left unanswered to the daemon's worker-death rules",
                rid, job.node.name,
            )  # fmt: skip
            self._jobs.pop(rid, None)

    # ---- receiving ---------------------------------------------------------------------

    def _read_sub(self) -> None:
        """[topic, DaemonMessage] on the request socket. An Attached read meanwhile (replies
        first) may drop the SUB (direct granted): the batch ends there."""
        sub = self._sub
        for _ in range(1000):
            if sub is None or self._sub is not sub:
                return
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            if len(frames) != 2:
                log.warning("dropped a %d-frame message on the request socket", len(frames))
                continue
            topic, payload = frames
            mine = topic == self.topic.encode()
            try:
                msg = m.decode_daemon_message(payload, self._max_bytes())
            except BadMessage as e:
                self._bad_published(e, mine)
                continue
            self._read_waiting_replies()
            self._on_published(msg.body, mine, mine)

    def _bad_published(self, e: BadMessage, mine: bool) -> None:
        """A message for this worker (``mine``: on its topic, or on its DEALER once direct)
        that does not decode: a WorkRequest whose inputs or parameters are not a valid payload
        is the request's fault, answered INVALID_REQUEST."""
        rid = getattr(e, "request_id", None)
        log.warning("bad message from the daemon: %s", e.message)
        if rid and mine and rid not in self._jobs and rid not in self._kept:
            self._fail_now(rid, ErrorCode.INVALID_REQUEST, e.message)

    def _read_waiting_replies(self) -> None:
        """Replies first, before each message of the request socket, not only once per poll: a
        batch read there goes on as long as messages keep coming, and an Ack that arrived during
        it confirms the answers its Pong listed before the next Ping is answered (§7.6), before a
        resume Credit sends their chunks again, before a re-sent WorkRequest gets the answer
        again. (Read once per poll, a daemon that pinged again as soon as each Pong came kept the
        worker in one batch, and it read no reply at all: its answers stayed listed as
        unconfirmed Pong after Pong.) Only while a reply is due: without answer Acks (§7.7) most
        messages get none, and looking at an empty socket costs as much as reading it."""
        if (self._pending or self._pong_ack_due) and self._dealer is not None and self._dealer.poll(0, zmq.POLLIN):
            self._read_dealer()

    def _read_dealer(self) -> None:
        assert self._dealer is not None
        for _ in range(1000):
            try:
                frames = self._dealer.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            msg = None
            if len(frames) != 1:
                log.warning("dropped a %d-frame reply on the response socket", len(frames))
            else:
                try:
                    msg = m.decode_daemon_message(frames[0], self._max_bytes())
                except BadMessage as e:
                    if getattr(e, "request_id", None):  # a WorkRequest (direct): not a reply
                        self._bad_published(e, True)
                        continue
                    log.warning("bad reply from the daemon: %s", e.message)
            if msg is not None and not isinstance(msg.body, _REPLIES):
                # What the daemon would publish for this worker, sent on its DEALER (direct,
                # PROTOCOL.md §7.10): in order with the replies, so read as it comes.
                self._on_published(msg.body, True, self._answer_every_ping)
                continue
            if msg is None or not (isinstance(msg.body, m.Ack) and msg.body.pong_seq):
                kind = self._pending.popleft() if self._pending else None
                if msg is None:
                    continue
            elif "pong" in self._pending:
                # The reply to a Pong (it names its seq): the messages before it that got no reply
                # are passed over — a Result musterd holds while an output stream it names is
                # short gets none (PROTOCOL.md §7.9 R8); it stays kept, listed in the next Pong.
                while (kind := self._pending.popleft()) != "pong":
                    self._reply_to(kind)
            else:
                # Without answer Acks, a Pong that listed no answers was not counted on: the
                # daemon Acks it only when it confirms the worker or answers no ping (§7.7).
                kind = "pong"
            try:
                self._on_reply(kind, msg.body)
            except Exception:
                log.exception("failed to handle a %s reply", type(msg.body).__name__)

    def _read_dealer_monitor(self) -> None:
        """The response socket's connection broke and ZeroMQ connected it again: the daemon
        knows this worker by the connection that attached it and refuses the new one's messages
        (PermissionDenied) — and sends a direct worker's to the old one, gone (PROTOCOL.md
        §7.10) — so the worker attaches again at once (same session: the daemon keeps its
        requests and moves its route, and its input streams resume, §7.9 R4). Asking for
        direct, a connection made while no Attach is on its way (a failover pair's socket
        dropped it: no daemon was bound) attaches too: no Ping comes to tell it otherwise.
        Never while detaching or stopped (§7.5)."""
        assert self._dealer_monitor is not None
        while True:
            try:
                event = recv_monitor_message(self._dealer_monitor, zmq.NOBLOCK)["event"]
            except zmq.Again:
                return
            if event == zmq.EVENT_DISCONNECTED:
                if not self._dealer_lost:
                    log.warning("lost the connection to the daemon at %s", self.response_address)
                self._dealer_lost = True
                if self._held is None:
                    self._held = []
            elif event == zmq.EVENT_CONNECTED:
                again, self._dealer_lost = self._dealer_lost, False
                if self._stop_requested.is_set():
                    continue
                if again and self.state in (State.ATTACHED, State.ATTACHING):
                    log.info("the connection to the daemon was made again: attaching again%s (%s)",
                             " (direct)" if self._direct else "", self.response_address)  # fmt: skip
                elif self.direct and self.state == State.ATTACHING and not self._attach_on_its_way:
                    log.info("a connection to the daemon was made: attaching (%s)", self.response_address)
                else:
                    continue
                self._await_a_completed_connection()  # (a standby that took over, say)
                self._send_attach()

    def _max_bytes(self) -> int:
        return max(self.max_message_bytes, 1024)

    def _on_reply(self, kind: Optional[str], body: Any) -> None:
        answered = None if isinstance(body, m.Attached) else self._reply_to(kind)
        if isinstance(body, m.Attached):
            if kind != "attach" and "attach" in self._pending:
                # Resynchronise: whatever was sent before that Attach had its reply or never will.
                while self._pending and (dropped := self._pending.popleft()) != "attach":
                    self._reply_to(dropped)  # its answer stays kept: it may never have arrived
            self._agree_on_acks(body)
            if self.state not in (State.ATTACHING, State.ATTACHED):
                return
            if self.instance is not None and body.instance != self.instance:
                # Its chunked streams cannot go on: the new instance knows none of them.
                self._abort_chunking(f"the daemon restarted (instance {self.instance} -> {body.instance})")
            if self.instance is not None and body.instance != self.instance and (self._jobs or self._kept):
                # A restarted daemon: running requests and unconfirmed answers are listed in the
                # next Pong, so it can adopt its durable calls (PROTOCOL.md §7.6).
                log.info(
                    "daemon restarted: reporting %d running request(s) and %d unconfirmed answer(s) to it",
                    len(self._jobs), len(self._kept),
                )  # fmt: skip
                self._kept = {rid: (k, d, 0) for rid, (k, d, _) in self._kept.items()}
            elif body.instance == self.instance:
                # The same instance kept this worker's requests (PROTOCOL.md §7.9 R4): what was on
                # the way of their input streams may be lost; they go on from what arrived.
                self._resume_inputs()
            self._send_held(body.instance == self.instance)
            self.instance = body.instance
            self.ping_interval_ms = body.ping_interval_ms or 0
            self.liveness = body.liveness or 0
            if body.max_message_bytes:
                self.max_message_bytes = body.max_message_bytes
            # Direct (§7.10): no SUB; else (not asked, or an older daemon) the SUB, on the topic.
            self._direct = self.direct and body.direct
            self._answer_every_ping = self._direct
            if self._direct:
                self._drop_sub()
            else:
                if self._sub is None:
                    self._connect_sub()
                self._subscribe_topic(body.topic or "")
            self.state = State.ATTACHED
            self._idle_pong_every = body.idle_pong_every or 0
            self._pings_unanswered = 0
            self._pong_ack_due = 0  # a Pong's seq means nothing to another instance (§7.6)
            self._last_pong_listed = False
            self._last_ping = time.monotonic()
            self._attached_event.set()
            log.info(
                "attached to daemon instance %s (ping every %d ms, liveness %d%s%s)",
                self.instance, self.ping_interval_ms, self.liveness,
                "" if self._answer_acks else ", answers confirmed by the Pong",
                ", direct: one connection" if self._direct else "",
            )  # fmt: skip
            early, self._early_ping = self._early_ping, None
            if early is not None and early.instance == self.instance:
                self._on_ping(early)
            if self.registry.version != self._attached_version:
                self._send_attach()
        elif isinstance(body, m.Rejected):
            if body.reattach:
                if "attach" in self._pending or self.state in (State.ATTACHING, State.IDLE):
                    return  # an Attach is already on its way
                if self.state == State.DETACHING:
                    self._forgotten(body.message or "Rejected{reattach}")
                    return
                log.info("daemon does not know this worker (%s): attaching again", body.message or "reattach")
                if self._held is None:
                    self._held = []  # refused until it attached again
                self._send_attach()
            elif kind == "attach":
                log.error(
                    "daemon refused Attach: %s: %s (retrying in %.0fs)",
                    code_name(body.code), body.message or "", self.attach_timeout,
                )  # fmt: skip
                self.state = State.IDLE
                self._next_attach_at = time.monotonic() + self.attach_timeout
            else:
                log.warning("daemon rejected a %s: %s: %s", kind or "message", code_name(body.code), body.message or "")
        elif isinstance(body, m.Ack):
            if body.late and kind in ("result", "failure", "progress", "item", "chunk", "credit"):
                log.debug("daemon dropped a late %s", kind)
            if answered is not None and not body.late and answered not in self._resend:
                # The daemon has it. Ack{late} (a restarted daemon that has not adopted its call
                # yet drops it) leaves it kept, for the next Pong to list. So does an Ack to a
                # Result with chunked outputs: musterd answers nothing while it holds one (R8),
                # so an Ack read as its may be a later message's; the Pong's Ack confirms it.
                self._confirmed(answered)
            if body.pong_seq:
                self._answer_every_ping = False  # the confirming Pong was Acked (§7.10 "Pings")
            if kind == "pong" and body.pong_seq:
                if self._pong_ack_due and body.pong_seq >= self._pong_ack_due:
                    self._pong_ack_due = 0
                self._on_pong_ack(body.pong_seq, body.missing or [])
        else:
            log.warning("unexpected %s on the response socket", type(body).__name__)

    def _agree_on_acks(self, attached: m.Attached) -> None:
        """Attached says whether this daemon Acks each answer (an older one does, §7.7). The
        replies awaited for what was sent since the Attach were counted as if it did: without
        answer Acks none of them comes."""
        self._answer_acks = not attached.no_answer_acks
        if not self._answer_acks and any(k in _UNANSWERED for k in self._pending):
            # (An Attached read as another message's reply resynchronised above: what remains
            # was sent after the Attach, and its answers are exactly _pending_answers.)
            self._pending = collections.deque(k for k in self._pending if k not in _UNANSWERED)
            self._pending_answers.clear()

    def _subscribe_topic(self, topic: str) -> None:
        """Subscribes to the worker topic the daemon assigned (it applies no other: PROTOCOL.md
        §2), dropping a previous, different one."""
        if not topic or topic == self.topic:
            return
        assert self._sub is not None
        if self.topic:
            self._sub.setsockopt(zmq.UNSUBSCRIBE, self.topic.encode())
        self._sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.topic = topic

    def _on_published(self, body: Any, mine: bool, answer: bool) -> None:
        """A message the daemon published (the request socket) or, to a direct worker, sent on
        its DEALER (PROTOCOL.md §7.10): one path for both. ``mine``: sent to this worker (on its
        topic, or on its DEALER), else broadcast; ``answer``: a Ping that must be answered (the
        confirming one, §7.1: on its topic, or direct until the Ack of a Pong)."""
        try:
            self._on_daemon_message(body, mine, answer)
        except Exception:
            log.exception("failed to handle a %s", type(body).__name__)

    def _on_daemon_message(self, body: Any, mine: bool, answer: bool) -> None:
        if isinstance(body, m.Ping):
            self._on_ping(body, own_topic=answer)
        elif isinstance(body, m.WorkRequest):
            if not mine:
                log.warning("WorkRequest %d not on this worker's topic: ignored", body.request_id)
                return
            self._on_work_request(body)
        elif isinstance(body, m.Credit):
            if not mine:
                return
            job = self._jobs.get(body.request_id)
            if body.stream == 0:
                if job is not None and job.items.window is not None:
                    job.items.window.grant(body.items, body.bytes)  # cumulative: a stale one changes nothing
                return
            self._on_output_credit(job, body)
        elif isinstance(body, m.Chunk):
            if mine:
                self._on_chunk(body)
        elif isinstance(body, m.Abort):
            job = self._jobs.get(body.request_id)
            if job is not None:
                log.info("request %d (%s) aborted: %s: %s", body.request_id, job.node.name, code_name(body.code), body.reason or "")
                self._abort_job(job, body.code, body.reason or code_name(body.code).lower())
            else:
                self._release_outputs(body.request_id)  # answered: nothing to send again (R11)
        else:
            log.warning("unexpected %s from the daemon", type(body).__name__)

    def _on_ping(self, ping: m.Ping, own_topic: bool = True) -> None:
        if self.state == State.ATTACHING:
            self._early_ping = ping  # answered once Attached tells us the instance
            # A daemon that pings twice (a whole ping interval alive) without answering the
            # Attach never got it: swallowed before it was bound, or dropped by a failover
            # pair's ZMQ_IMMEDIATE socket. It goes again now rather than at the attach timeout,
            # once per ping interval, not once per Ping: the first Ping may overtake an Attach
            # still on its way (PROTOCOL.md §7.1 "No Attached").
            self._pings_since_attach += 1
            if self._pings_since_attach >= 2:
                log.info("daemon %s pings but has not answered the Attach: attaching again", ping.instance)
                self._send_attach()
            return
        if self.state not in (State.ATTACHED, State.DETACHING):
            return
        if ping.instance != self.instance:
            if self.state == State.DETACHING:
                if self.instance is not None:
                    self._forgotten(f"daemon instance changed ({self.instance} -> {ping.instance})")
                return
            log.info("daemon instance changed (%s -> %s): attaching again", self.instance, ping.instance)
            self._send_attach()
            return
        self._last_ping = time.monotonic()
        if (ping.instance, ping.seq) == self._last_pong:
            return  # answered already: a daemon never repeats a seq (a test's fake daemon may)
        if not own_topic and self._skip_idle_pong():
            return
        self._send_pong(ping.seq, ping.instance)

    def _skip_idle_pong(self) -> bool:
        """Whether a broadcast Ping may go unanswered (PROTOCOL.md §7.3, Attached.idle_pong_every
        = k ≥ 2): only while nothing runs and no answer waits to be confirmed, and at most k − 1
        in a row (a ping on the worker's own topic, the confirming one, is always answered)."""
        k = self._idle_pong_every
        if k <= 1 or self._jobs or self._kept or self._pings_unanswered + 1 >= k:
            return False
        self._pings_unanswered += 1
        return True

    def _send_pong(self, seq: int, instance: Optional[str]) -> None:
        """The Pong to ping ``seq``: the requests running, and the answers kept unconfirmed. An
        early confirmation sends it again with the same seq (§7.7)."""
        self._last_pong = (instance, seq)
        answered = sorted(self._kept)
        for rid in answered:
            k, d, listed_in = self._kept[rid]
            if not listed_in:  # the first Pong of this instance to list it: an Ack to any Pong
                self._kept[rid] = (k, d, seq)  # from it on confirms it (PROTOCOL.md §7.6)
        # Without answer Acks the daemon Acks a Pong surely only when it lists answers (§7.7).
        replied = self._answer_acks or bool(answered)
        pong = m.Pong(seq=seq, instance=instance, in_flight=sorted(self._jobs), answered=answered or None)
        sent = self._send("pong", pong, replied)
        if sent and answered and not self._answer_acks:
            self._pong_ack_due = seq
        self._pings_unanswered = 0
        self._last_pong_listed = bool(answered)

    def _on_pong_ack(self, pong_seq: int, missing: List[int]) -> None:
        """The daemon's Ack to the Pong `pong_seq`: the answers it names missing go again (it
        adopted their calls after a restart, or lost them on the way); every other answer that
        Pong listed is confirmed and forgotten (PROTOCOL.md §7.6, §7.7)."""
        again = [rid for rid in missing if rid in self._kept]
        for rid, (_, _, listed_in) in list(self._kept.items()):
            if 0 < listed_in <= pong_seq and rid not in again:
                self._confirmed(rid)
        if again:
            log.info("sending %d kept answer(s) again, as the daemon asked", len(again))
        for rid in again:
            kind, data, _ = self._kept[rid]
            self._send_answer(rid, kind, data)

    def _abort_job(self, job: _Job, code: Any, reason: str) -> None:
        job.abort(code, reason)
        if job.waiting is not None:  # its handler never started: answered here
            job.waiting = None
            self._finish(job, None, None)

    # ---- resumption of chunked streams (PROTOCOL.md §7.9 "Resumption") -----------------

    def _resume_inputs(self) -> None:
        """R4: attached again to the same daemon instance, which kept this worker's requests:
        a resume Credit for every input stream not received whole (what was on the way when
        the connection broke, or what the daemon's PUB dropped, is asked for again)."""
        for job in list(self._jobs.values()):
            if job.abort_event.is_set():
                continue
            for s in job.in_streams.values():
                grant = s.resume_now()
                if grant is not None:
                    log.info("request %d: input %s: attached again: asking for it from offset %d",
                             job.request_id, s.port, grant.resume_at)  # fmt: skip
                    self._send("credit", credit_body(job.request_id, s.stream, grant))

    def _send_held(self, same_instance: bool) -> None:
        """Attached: the chunks and answers held meanwhile go now, in order: chunks of requests
        still open (to another instance none: it knows none of them), answers still kept."""
        held, self._held = self._held, None
        if not held:
            return
        log.info("sending %d message(s) held while the connection was not attached", len(held))
        for kind, job, rid, data in held:
            if kind != "chunk":
                if rid in self._kept:
                    kept_kind, kept_data, _ = self._kept[rid]
                    self._send_answer(rid, kept_kind, kept_data)
            elif not same_instance:
                continue
            elif job is not None and self._jobs.get(job.request_id) is job and not job.abort_event.is_set():
                self._send_stream_message(job, "chunk", data)
            elif rid in self._resend:  # answered meanwhile: its outputs are kept (R11)
                self._send_stream_message(None, "chunk", data, rid)

    def _abort_chunking(self, why: str) -> None:
        """A daemon restart: a request whose chunked values are on the way cannot go on (the
        new instance knows neither the call nor its streams; its caller got UNAVAILABLE). Its
        handler is told to stop; its Failure goes to the new instance, which drops it."""
        for job in list(self._jobs.values()):
            if job.chunking() and not job.abort_event.is_set():
                log.warning("request %d (%s): aborted, its chunked values cannot resume: %s", job.request_id, job.node.name, why)
                self._abort_job(job, ErrorCode.WORKER_LOST, f"{why}: its chunked values cannot resume")

    def _on_output_credit(self, job: Optional[_Job], credit: m.Credit) -> None:
        """A Credit for one of a request's chunked outputs (running, or answered and not yet
        confirmed: R11): more grant, or a resume Credit sending it back (R9). Once its first
        pass is over, what they allow is sent from here."""
        rid = credit.request_id
        streams = job.out_streams if job is not None else self._resend.get(rid)
        sender = streams.get(credit.stream) if streams else None
        if sender is None:
            return
        if credit.resume:
            log.info("request %d: output %s: sending again from offset %d, as asked", rid, sender.port, credit.resume_offset)
            pump = sender.resume(credit.resume_offset, credit.bytes)
        else:
            pump = sender.grant(credit.bytes)
        if pump and (job is None or not job.abort_event.is_set()):
            for offset, data in sender.due():
                self._send_stream_message(job, "chunk", worker_chunk(self.worker_id, rid, sender.stream, offset, data), rid)
        if sender.error is not None and sender.passed:
            self._output_failed(job, rid, WorkerError(sender.error))

    def _output_failed(self, job: Optional[_Job], rid: int, error: MusterError) -> None:
        """A chunked output sent whole cannot go back where a resume Credit asks (R10): the call
        fails WORKER_ERROR. A running request fails when its handler's thread replies (its
        other streams stop); an answered one has its Result replaced by that Failure, sent now
        (the daemon holds a Result whose streams are short, R8)."""
        log.warning("request %d: %s", rid, error.message)
        if job is not None:
            if job.output_error is None:
                job.output_error = error
            for c in list(job.out_streams.values()):
                c.close()
            return
        self._release_outputs(rid)
        if rid in self._kept:
            self._fail_now(rid, error.code, error.message)

    def _confirmed(self, rid: int) -> None:
        """The daemon has the answer of ``rid`` (§7.6): forgotten, with its chunked outputs."""
        kept = self._kept.pop(rid, None)
        if kept is not None:
            self._kept_bytes -= len(kept[1])
        self._release_outputs(rid)

    def _release_outputs(self, rid: int) -> None:
        for sender in self._resend.pop(rid, {}).values():
            sender.release()

    def _on_work_request(self, req: m.WorkRequest) -> None:
        rid = req.request_id
        if rid in self._jobs:
            log.debug("request %d re-sent while running: ignored", rid)
            return
        if rid in self._kept:  # answered already: the answer goes again, never the work (§7.7)
            kind, data, _ = self._kept[rid]
            self._send_answer(rid, kind, data)
            return
        if self._abandoning:
            # The drain is over (grace ran out, a second signal, or the daemon forgot this
            # worker): nothing sent now would be waited for. Unanswered, the request follows
            # the daemon's worker-death rules (PROTOCOL.md §7.5).
            log.warning("request %d (%s) arrived after the drain ended: left to the daemon", rid, req.node)
            return
        # While detaching, a WorkRequest the daemon published before it processed the Detach
        # is run like the others (PROTOCOL.md §7.5): the drain waits for it too.
        if req.inputs_in_frame:  # only for a worker that attached with payload_frames: never this one
            self._fail_now(rid, ErrorCode.INVALID_REQUEST, "inputs in a separate frame were not requested")
            return
        node = self.registry.get(req.node)
        if node is None:
            self._fail_now(rid, ErrorCode.INVALID_REQUEST, f"worker {self.worker_id} does not serve node {req.node}")
            return
        job = _Job(self, req, node)
        try:
            inputs, params = node.prepare(req.inputs, req.parameters)
        except InvalidRequest as e:
            self._fail_now(rid, ErrorCode.INVALID_REQUEST, e.message)
            return
        ctx = Context(job, inputs, params)
        for port, ref in inputs.items():
            if not isinstance(ref, ChunkedValue):
                continue
            if ref.stream % 2 == 0 or len(job.in_streams) >= MAX_CHUNK_STREAMS:
                self._fail_now(rid, ErrorCode.INVALID_REQUEST, f"input {port}: chunked stream {ref.stream} is not one of the caller's")
                return
            s = InputStream(
                port, ref.stream, ref.size, ref.sha256, collect=port not in node.stream_inputs,
                grant=self._granter(job, ref.stream),
                loop_thread=lambda: self._aloop_thread, resume_after=self.resume_after,
            )  # fmt: skip
            if s.error is not None:
                self._fail_now(rid, s.error.code, s.error.message)
                return
            job.in_streams[ref.stream] = s
            ctx._streams[port] = s
        self._jobs[rid] = job
        log.debug("request %d: %s (attempt %d)", rid, node.name, req.attempt)
        for s in job.in_streams.values():
            if s.size:  # the caller sends nothing before this first grant (PROTOCOL.md §7.9)
                self._send("credit", m.Credit(rid, s.stream, 0, s.granted))
        if any(s.collect and not s.complete for s in job.in_streams.values()):
            job.waiting = ctx  # dispatched once they are all here (_on_chunk)
            return
        self._dispatch(job, ctx)

    def _granter(self, job: _Job, stream: int) -> Callable[[int], None]:
        """What an input stream calls (in the handler's thread) to grant more: the I/O thread sends it."""

        def grant(total: int) -> None:
            self._post(("credit", job, stream, total))

        return grant

    def _on_chunk(self, chunk: m.Chunk) -> None:
        """A chunk of one of a request's inputs: into its stream; the grant it earns (a stream
        being assembled) goes at once; a broken stream fails the request INVALID_REQUEST; the
        last chunk of the inputs being assembled starts the handler."""
        job = self._jobs.get(chunk.request_id)
        s = job.in_streams.get(chunk.stream) if job is not None else None
        if job is None or s is None:
            return
        grant = s.feed(chunk.offset, chunk.data or b"")
        if s.error is not None:
            if job.input_error is None and not job.abort_event.is_set():
                log.info("request %d (%s): %s", job.request_id, job.node.name, s.error.message)
                job.input_error = s.error
                if job.waiting is not None:
                    job.waiting = None
                    self._finish(job, None, None)
            return
        if grant is not None:
            if grant.resume_at is not None:
                log.info("request %d: input %s: a chunk at offset %d where %d was due: asking again from there",
                         job.request_id, s.port, chunk.offset, grant.resume_at)  # fmt: skip
            self._send("credit", credit_body(job.request_id, s.stream, grant))
        if job.waiting is not None and all(x.complete for x in job.in_streams.values() if x.collect):
            ctx, job.waiting = job.waiting, None
            self._dispatch(job, ctx)

    def _dispatch(self, job: _Job, ctx: Context) -> None:
        node = job.node
        if node.is_async:
            loop = self._async_loop()
            job.loop = loop
            loop.call_soon_threadsafe(self._start_task, job, ctx)
        else:
            assert self._pool is not None
            self._pool.submit(self._run_sync, job, ctx)

    @property
    def busy_handlers(self) -> int:
        """Sync handlers still running (they may outlive an aborted or failed request)."""
        return self._pool.busy if self._pool is not None else 0

    # ---- running handlers --------------------------------------------------------------

    def _async_loop(self) -> asyncio.AbstractEventLoop:
        if self._aloop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                try:
                    loop.run_forever()
                finally:
                    try:
                        for t in asyncio.all_tasks(loop):
                            t.cancel()
                        loop.run_until_complete(asyncio.sleep(0))
                    except Exception:
                        pass
                    loop.close()

            self._aloop_thread = threading.Thread(target=run, name="muster-async", daemon=True)
            self._aloop_thread.start()
            ready.wait()
            self._aloop = loop
        return self._aloop

    def _start_task(self, job: _Job, ctx: Context) -> None:
        if job.abort_event.is_set():
            self._finish(job, None, None)
            return
        job.task = asyncio.ensure_future(self._run_async(job, ctx))

    @staticmethod
    def _assemble(ctx: Context) -> None:
        """The chunked inputs an ordinary handler gets as bytes: joined (and checked already)
        in the handler's thread, not the I/O thread."""
        for port, s in list(ctx._streams.items()):
            if s.collect:
                ctx.inputs[port] = s.value()
                del ctx._streams[port]

    async def _run_async(self, job: _Job, ctx: Context) -> None:
        try:
            if any(s.collect for s in ctx._streams.values()):
                await asyncio.get_running_loop().run_in_executor(None, self._assemble, ctx)
            out = job.node.handler(ctx)
            if inspect.isasyncgen(out):  # an async generator handler: each value one item, no outputs
                await drive_async_generator(job.items, out)
                out = None
            else:
                out = await out
        except asyncio.CancelledError:
            self._finish(job, None, None)
            return
        except BaseException as e:  # noqa: BLE001 - a handler must not take the worker down
            self._finish(job, None, e)
            return
        self._finish(job, out, None)

    def _run_sync(self, job: _Job, ctx: Context) -> None:
        if job.abort_event.is_set():
            self._finish(job, None, None)
            return
        try:
            self._assemble(ctx)
            out = job.node.handler(ctx)
            if inspect.isgenerator(out):  # a generator handler: each value one item
                out = drive_generator(job.items, job.abort_event.is_set, out)
            elif inspect.isasyncgen(out):
                asyncio.run_coroutine_threadsafe(drive_async_generator(job.items, out), self._async_loop()).result()
                out = None
            elif asyncio.iscoroutine(out):
                out = asyncio.run_coroutine_threadsafe(out, self._async_loop()).result()
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                log.warning("node %s raised %s", job.node.name, type(e).__name__)
            self._finish(job, None, e)
            return
        self._finish(job, out, None)

    def _finish(self, job: _Job, out: Any, error: Optional[BaseException]) -> None:
        """Runs in the handler's thread: builds the one reply and hands it to the I/O thread.
        Outputs to chunk are sent first, from this thread (from a thread of their own when
        this is the event loop's)."""
        if job.input_error is not None:
            out, error = None, job.input_error  # a broken input stream fails the call, whatever the handler did
        if error is None and not job.abort_event.is_set() and isinstance(out, Mapping) and self._chunks_wanted(out):
            if threading.current_thread() is self._aloop_thread:
                threading.Thread(target=self._finish_chunked, args=(job, out), name=f"muster-chunks-{job.request_id}", daemon=True).start()
            else:
                self._finish_chunked(job, out)
            return
        self._reply(job, out, error)

    def _chunks_wanted(self, out: Mapping[str, Any]) -> bool:
        return any(
            is_stream_output(v) or (isinstance(v, (bytes, bytearray, memoryview)) and memoryview(v).nbytes > self.chunk_threshold)
            for v in out.values()
        )

    def _finish_chunked(self, job: _Job, out: Mapping[str, Any]) -> None:
        outputs = dict(out)
        try:
            self._send_output_streams(job, outputs)
        except BaseException as e:  # noqa: BLE001 - a stream that fails fails the call
            self._reply(job, None, e)
            return
        self._reply(job, outputs, None)

    def _send_output_streams(self, job: _Job, outputs: Dict[str, Any]) -> None:
        """Replaces each output to chunk by its ChunkedValue, sending its chunks (streams 2, 4,
        6…) as the caller's credit allows (OutputSender: going back where resume Credits ask).
        A stream output that ends within the threshold stays inline bytes; with no chunk window
        (a durable call, a caller that takes no chunks) every output stays inline (bytes: the
        message limit then decides; a stream longer than the limit fails the call,
        WorkerError). Returns early once aborted, and aborts a call a restarted daemon does not
        know (no credit would ever come)."""
        stream = 2
        for port, v in list(outputs.items()):
            inline = isinstance(v, (bytes, bytearray, memoryview))
            if inline and (memoryview(v).nbytes <= self.chunk_threshold or job.chunk_window == 0):
                continue
            if not inline and not is_stream_output(v):
                continue
            pieces = OutputPieces(v)
            sender: Optional[OutputSender] = None
            try:
                head: List[Any] = []
                if not inline:
                    # read ahead: a stream within the threshold (without a window: within the
                    # message limit) is sent inline
                    limit = self.chunk_threshold if job.chunk_window else self.max_message_bytes
                    held = 0
                    while held <= limit:
                        piece = pieces.next()
                        if not len(piece):
                            break
                        head.append(piece)
                        held += len(piece)
                    if held <= limit:
                        outputs[port] = b"".join(head)
                        continue
                    if job.chunk_window == 0:
                        raise WorkerError(
                            f"node {job.node.name}: output {port} is a stream of more than {limit} bytes (--max-message-bytes) "
                            "and the caller takes no chunked outputs (a durable call carries its values inline)"
                        )
                if stream > 2 * MAX_CHUNK_STREAMS:
                    raise ValueError(f"node {job.node.name}: at most {MAX_CHUNK_STREAMS} outputs may be chunked")
                now_instance = self.instance
                if now_instance != job.instance:
                    why = f"the daemon restarted (instance {job.instance} -> {now_instance})"
                    log.warning("request %d (%s): aborted, its chunked values cannot resume: %s", job.request_id, job.node.name, why)
                    job.abort(ErrorCode.WORKER_LOST, f"{why}: its chunked values cannot resume")
                    return
                pieces.unread(head)
                sender = job.out_streams[stream] = OutputSender(port, stream, pieces, job.chunk_window)
                if job.abort_event.is_set():
                    return
                ref = sender.send_all(self._chunk_poster(job, stream))
                if ref is None:
                    return  # aborted
                outputs[port] = ref
                stream += 2
            finally:
                if sender is None or not sender.passed:
                    pieces.close()  # else kept to send again until the answer is confirmed (R11)

    def _chunk_poster(self, job: _Job, stream: int) -> Callable[[int, Any], None]:
        """What an output stream's first pass calls to send a chunk: the I/O thread sends it."""

        def post(offset: int, data: Any) -> None:
            self._post(("chunk", job, worker_chunk(self.worker_id, job.request_id, stream, offset, data)))

        return post

    def _reply(self, job: _Job, out: Any, error: Optional[BaseException]) -> None:
        rid = job.request_id
        job.items.close()  # an emitter left behind (another thread of the handler) gets False
        if job.output_error is not None and not job.abort_event.is_set():
            out, error = None, job.output_error
        if job.abort_event.is_set():
            body: Any = failure(rid, job.abort_code or ErrorCode.CANCELLED, f"aborted: {job.abort_reason}")
        elif error is not None:
            if isinstance(error, MusterError):
                body = failure(rid, error.code, error.message)
            else:
                msg = str(error)
                body = failure(rid, ErrorCode.WORKER_ERROR, f"{type(error).__name__}: {msg}" if msg else type(error).__name__)
                log.info("node %s failed request %d: %s", job.node.name, rid, body.message)
                log.debug("traceback", exc_info=error)
        elif out is not None and not isinstance(out, Mapping):
            body = failure(rid, ErrorCode.WORKER_ERROR, f"node {job.node.name} returned a {type(out).__name__}, not a dict of outputs")
        else:
            body = m.Result(rid, dict(out or {}))
        try:
            data = m.encode(m.WorkerMessage(worker_id=self.worker_id, body=body))
        except (TypeError, ValueError, OverflowError) as e:
            body = failure(rid, ErrorCode.WORKER_ERROR, f"node {job.node.name}: cannot encode its outputs: {e}")
            data = m.encode(m.WorkerMessage(worker_id=self.worker_id, body=body))
        limit = self.max_message_bytes
        if len(data) > limit:
            # The daemon would refuse it and the caller wait its whole deadline (PROTOCOL.md §10).
            what = "result" if isinstance(body, m.Result) else "failure"
            over = isinstance(out, Mapping) and any(
                isinstance(v, (bytes, bytearray, memoryview)) and memoryview(v).nbytes > self.chunk_threshold
                for v in out.values()
            )
            hint = (
                "; the caller takes no chunked outputs (a durable call carries its values inline)"
                if job.chunk_window == 0 and over and isinstance(body, m.Result) else ""
            )  # fmt: skip
            body = failure(
                rid, ErrorCode.WORKER_ERROR,
                f"node {job.node.name}: {what} of {len(data)} bytes exceeds the daemon's limit of {limit} bytes (--max-message-bytes){hint}",
            )  # fmt: skip
            log.warning("request %d: %s", rid, body.message)
            data = m.encode(m.WorkerMessage(worker_id=self.worker_id, body=body))
        self._post(("done", job, "result" if isinstance(body, m.Result) else "failure", data))

    def _keep_outputs(self, job: _Job, kind: str) -> None:
        """A request answered: the chunked outputs of its Result stay able to send again until
        the answer is confirmed (R11); a Failure's go."""
        passed = {st: s for st, s in job.out_streams.items() if s.passed}
        if kind == "result" and passed and not job.abort_event.is_set():
            self._resend[job.request_id] = passed
        else:
            for s in passed.values():
                s.release()

    def _drain_outbox(self) -> None:
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                return
            what = item[0]
            if what == "done":
                done: _Job = item[1]
                kind, data = item[2], item[3]
                if self._jobs.get(done.request_id) is done:
                    del self._jobs[done.request_id]
                    if kind == "result" and done.output_error is not None:  # came after its reply was built
                        error = done.output_error
                        kind, data = "failure", m.encode(m.WorkerMessage(self.worker_id, failure(done.request_id, error.code, error.message)))
                    self._keep_outputs(done, kind)
                    self._send_answer(done.request_id, kind, data)
            elif what == "item":
                sender: _Job = item[1]
                seq, data = item[2], item[3]
                if self._jobs.get(sender.request_id) is sender and not sender.abort_event.is_set():
                    self._send_item(sender, seq, data)
            elif what == "chunk":
                sender = item[1]
                if self._jobs.get(sender.request_id) is sender and not sender.abort_event.is_set():
                    self._send_stream_message(sender, "chunk", item[2])
            elif what == "credit":
                granter: _Job = item[1]
                if self._jobs.get(granter.request_id) is granter and not granter.abort_event.is_set():
                    self._send("credit", m.Credit(granter.request_id, item[2], 0, item[3]))
            elif what == "progress":
                _, rid, body = item
                job = self._jobs.get(rid)
                if job is not None and not job.abort_event.is_set():
                    self._send("progress", body)
            elif what == "nodes":
                if self.registry.version == self._attached_version or self._stop_requested.is_set():
                    continue
                if self.state == State.ATTACHING:
                    continue  # re-attached once Attached arrives
                if self.state in (State.ATTACHED, State.IDLE) and len(self.registry):
                    log.info("node list changed: attaching again")
                    self._send_attach()
                elif self.state == State.ATTACHED:
                    log.info("no nodes left: detaching")
                    self._send("detach", m.Detach(reason="no nodes left"))
                    self.state = State.IDLE
                    self._attached_version = self.registry.version


__all__ = ["Worker", "Context", "Caller", "State", "default_worker_id"]
