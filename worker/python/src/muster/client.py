"""client.py — calling nodes through musterd's client socket (docs/PROTOCOL.md §8).

Owns: the client's DEALER socket, request ids, and the correlation of replies (Accepted,
Progress, Result, Failure, NodeList, WorkerList, StatusReport, NodeStatsReport, JobInfo,
JobInfoList) to the calls that wait for them; for durable calls (docs/DURABILITY.md §6) their
resumption after a reconnect, the acknowledgement of each terminal reply once handed over, and
dropping a second one (jobs.py keeps the books); for resumable calls (PROTOCOL.md §8.3) their
binding to the next connection when this one breaks, with what they received (call_resume.py).
One I/O thread owns the socket; any thread may call, submit, cancel and list.
Must never: leave a caller waiting on a daemon that is gone: a lost connection, or no
connection within ``connect_timeout``, fails the open calls with UNAVAILABLE — except durable
calls with a job id and resumable calls with their token, which wait up to ``resume_timeout``
for the daemon to come back (a resumable call at most until its deadline); hand a call's
terminal reply to the application twice.

    with muster.Client() as client:
        out = client.call("hello", {"name": "Ada"}, timeout_ms=5000)
        call = client.submit("sleep", {"ms": 5000}, progress=print)
        call.cancel()
        out = client.call("charge", {"cents": 500}, durable=True)   # survives a daemon restart
        out = client.call("echo", {"data": pathlib.Path("big.bin")}, output_dir="out/")  # chunked

Chunked values (docs/STREAMS.md §3): a bytes input over ``chunk_threshold``, or a file (a path
or a binary file object), travels as chunks under the worker's credit; a chunked output is
checked (size, sha256) and returned as bytes, or written to ``output_dir`` / ``output_sink``
as it arrives. The I/O thread reads the input files and writes the sinks.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import logging
import os
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import messages as m
from .chunks import CHUNK_WINDOW_BYTES, DEFAULT_CHUNK_THRESHOLD, CallChunks, check_sinks, chunk_error, split_inputs
from .resume import RESUME_AFTER, check_resume_after
from .credit import DEFAULT_WINDOW_BYTES, DEFAULT_WINDOW_ITEMS
from .endpoints import Curve, check_endpoint, connect, default_endpoint, drop_unsent, endpoint_list
from .enrollment import DEFAULT_ENROLLMENT_TIMEOUT, needs_curve, prepare_curve
from .errors import BadMessage, Cancelled, MusterError, Unavailable, error_for
from .jobs import DurableJobs, Job, ack_message, job_from_reply, plain_failure, resume_timed_out, terminal_job_id
from .call_resume import Waiting, asks_resumable, call_ref, given_up, keep_until, rebind, refused_as_a_whole

if TYPE_CHECKING:
    from . import stream as stream_module
    from .watch import Watch

log = logging.getLogger("muster.client")

ProgressCallback = Callable[[int, int, str], Any]


def _stream() -> Any:
    """stream.py, which builds on this module (imported on first use)."""
    from . import stream

    return stream


class Call:
    """A submitted request. ``result()`` waits for its outputs (or raises its error);
    ``cancel()`` asks the daemon to cancel it. A durable call's ``job_id``, a resumable call's
    ``call_token``, are set by its Accepted (``accepted`` is set then); ``request_id`` changes
    when it is resumed after a reconnect."""

    def __init__(
        self, client: "Client", request_id: int, node: str, progress: Optional[ProgressCallback], durable: bool = False
    ):
        self.client = client
        self.request_id = request_id
        self.node = node
        self.progress_callback = progress
        self.future: "concurrent.futures.Future[Dict[str, Any]]" = concurrent.futures.Future()
        self.queued: Optional[bool] = None  # set by Accepted, if asked for
        self.accepted = threading.Event()
        self.sent_at = 0.0
        self.durable = durable
        self.job_id: Optional[int] = None  # a durable call's job id, from its Accepted
        self.call_token: Optional[int] = None  # a resumable call's token, from its Accepted

    def result(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The outputs; raises the call's MusterError (Timeout, WorkerError, ...), or
        ``Unavailable`` if ``timeout`` seconds pass first."""
        try:
            return self.future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise Unavailable(f"no reply for request {self.request_id} ({self.node}) within {timeout}s") from None

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        try:
            return self.future.exception(timeout)
        except concurrent.futures.TimeoutError:
            raise Unavailable(f"no reply for request {self.request_id} within {timeout}s") from None

    def done(self) -> bool:
        return self.future.done()

    def cancel(self) -> None:
        """Asks the daemon to cancel: the call then fails with CANCELLED (unless its result
        arrived first)."""
        if not self.future.done():
            self.client._post(("cancel", self.request_id))

    def __repr__(self) -> str:
        state = "done" if self.done() else "open"
        return f"<Call {self.node} request {self.request_id} {state}>"


class _Pending:
    """An open request of the I/O thread. A durable or resumable call resumed after a reconnect
    is reachable under each request id it had (``rids``, newest last) until it ends."""

    __slots__ = ("call", "future", "kind", "sent_at", "data", "rids", "job_id", "lost_at", "cancel_wanted", "chunks",
                 "timeout", "call_token", "item_grant")  # fmt: skip

    def __init__(
        self, kind: str, future: "concurrent.futures.Future[Any]", call: Optional[Call], data: bytes, rid: int,
        chunks: Optional[CallChunks] = None,
    ):  # fmt: skip
        self.chunks = chunks  # a call's chunked inputs and outputs (chunks.py)
        self.kind = kind
        self.future = future
        self.call = call
        self.sent_at = 0.0
        self.data = data
        self.rids: List[int] = [rid]
        self.job_id = 0  # a durable call's job id, from its Accepted
        self.call_token = 0  # a resumable call's token, from its Accepted (PROTOCOL.md §8.3)
        self.timeout = 0.0  # its Submit's timeout_ms in seconds (0: the node's default)
        self.item_grant: Optional[Tuple[int, int]] = None  # a stream's last item Credit (items, bytes)
        # durable or resumable: since when it waits for a daemon to take it back (its connection
        # was lost, or its JobResume / CallResume is unanswered); None once an answer for it came
        self.lost_at: Optional[float] = None
        self.cancel_wanted = False  # durable or resumable: cancel asked while disconnected, sent on resume


def client_curve(
    address: str,
    curve: Optional[Curve],
    insecure: bool,
    *,
    data_dir: Optional[str],
    enrollment_address: Optional[str],
    enrollment_token_file: Optional[str],
    name: Optional[str],
    role: str,
    enrollment_timeout: float,
) -> Optional[Curve]:
    """The CURVE keys a client connects with: ``curve`` as given, none for ipc:// or
    ``insecure``, else (tcp://) the saved identity or a new enrollment (docs/SECURITY.md §5)."""
    if not needs_curve((address,), curve, insecure):
        return curve
    if role not in ("client", "admin"):
        raise ValueError(f"a client enrolls as 'client' or 'admin', not {role!r}")
    check_endpoint(address, None, True)
    return prepare_curve(
        (address,),
        role=role,
        name=name or role,  # "client" (or "admin"), as the C++ programs
        data_dir=data_dir,
        enrollment_address=enrollment_address,
        enrollment_token_file=enrollment_token_file,
        timeout=enrollment_timeout,
    )


class Client:
    """A connection to musterd's client socket (default: ``ipc://<runtime dir>/client.sock``).

    A ``tcp://`` address needs CURVE: ``curve=muster.Curve(...)``, or (the usual way) keys from
    enrollment, done here before connecting (docs/SECURITY.md §5): the identity saved in
    ``data_dir`` (``<name>-curve.key``, ``<name>-identity.json``; ``name`` defaults to the
    ``role``, "client", or "admin" for a token minted with ``--role admin``), else a new
    enrollment at ``enrollment_address`` (default ``tcp://<host>:7900``) with the token from
    $MUSTER_ENROLLMENT_TOKEN, else ``enrollment_token_file``, else
    $XDG_CONFIG_HOME/muster/enrollment-token. Failures raise ``muster.EnrollmentError``.
    ``insecure=True`` allows clear-text tcp:// instead.

    Durable calls (``durable=True``) survive a daemon crash or restart: when the connection
    comes back (to the same or a new daemon instance) the client resumes every open durable
    call that has its job id, and each call gets its terminal reply exactly once. If no daemon
    is back within ``resume_timeout`` seconds the call fails UNAVAILABLE naming its job id,
    whose outcome ``job_get`` fetches later.

    Resumable calls (PROTOCOL.md §8.3; by default those that stream: chunked inputs,
    ``stream``, ``output_dir`` / ``output_sink``) survive a break of the connection while
    musterd lives on: when libzmq connects again the client binds them to the new connection
    and they go on where they were (items, chunks, the terminal reply). One that does not get
    its connection back within ``resume_timeout`` (nor before its deadline) fails UNAVAILABLE,
    as does one whose Accepted (its token) had not come yet."""

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
        zmq_context: Optional[zmq.Context[zmq.Socket[bytes]]] = None,
        resume_timeout: float = 60.0,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
        resume_after: float = RESUME_AFTER,
    ):
        self.address = client_address or default_endpoint("client")
        # seconds without a chunk before a chunked output waiting for bytes asks for them again
        # (PROTOCOL.md §7.9 R3), and between two resume Credits for one gap (R2)
        self.resume_after = check_resume_after(resume_after)
        # A failover pair's two endpoints (docs/DURABILITY.md §12) connect with ZMQ_IMMEDIATE
        # (endpoints.connect): a connection takes messages only once its handshake completed,
        # so only that counts as connected (the durable calls' JobResume goes out then).
        self._pair = len(endpoint_list(self.address)) > 1
        self._up_events: Tuple[int, ...] = (
            (zmq.EVENT_HANDSHAKE_SUCCEEDED,) if self._pair else (zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_SUCCEEDED))
        curve = client_curve(
            self.address, curve, insecure, data_dir=data_dir, enrollment_address=enrollment_address,
            enrollment_token_file=enrollment_token_file, name=name, role=role, enrollment_timeout=enrollment_timeout,
        )  # fmt: skip
        self.curve = curve
        self.insecure = insecure
        self.connect_timeout = connect_timeout
        self.list_timeout = list_timeout
        self.max_message_bytes = max_message_bytes
        self.resume_timeout = resume_timeout
        if isinstance(chunk_threshold, bool) or not isinstance(chunk_threshold, int) or chunk_threshold < 1:
            raise ValueError(f"chunk_threshold must be a positive integer, got {chunk_threshold!r}")
        self.chunk_threshold = chunk_threshold
        self._jobs: DurableJobs[_Pending] = DurableJobs()
        self._resuming: Dict[int, _Pending] = {}  # id(p) -> durable and resumable calls waiting to be taken back
        self._resume_id = 0  # the request id of the last JobResume
        self._call_resume_id = 0  # the request id of the last CallResume
        self._zctx = zmq_context or zmq.Context()
        self._own_zctx = zmq_context is None
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        self._pending: Dict[int, _Pending] = {}
        self._commands: "queue.SimpleQueue[Tuple[Any, ...]]" = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()
        self._closed = False
        self._connected = False
        self._ever_connected = False
        self._dealer = self._zctx.socket(zmq.DEALER)
        self._dealer.setsockopt(zmq.LINGER, 0)
        self._monitor = self._dealer.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
        )
        try:
            connect(self._dealer, self.address, curve, insecure)
        except Exception:
            self._dealer.disable_monitor()
            self._monitor.close(0)
            self._dealer.close(0)
            raise
        self._thread = threading.Thread(target=self._run, name="muster-client", daemon=True)
        self._thread.start()

    # ---- public API ----------------------------------------------------------------------

    def submit(
        self,
        node: str,
        inputs: Optional[Mapping[str, Any]] = None,
        timeout_ms: int = 0,
        progress: Optional[ProgressCallback] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        *,
        trace_id: Optional[str] = None,
        want_accepted: bool = False,
        durable: bool = False,
        output_dir: Any = None,
        output_sink: Any = None,
        resumable: Optional[bool] = None,
    ) -> Call:
        """Submits a request and returns at once with its Call. ``progress(step, total,
        message)`` is called (from the client's I/O thread: keep it short) for each
        Progress the worker sends. ``durable``: musterd journals the call, which outlives a
        daemon crash or restart and this connection (``call.job_id`` once accepted; see the
        class documentation).

        Chunked values (docs/STREAMS.md §3): an input given as bytes over ``chunk_threshold``,
        a ``pathlib.Path`` or a seekable binary file object travels as chunks (a file is
        hashed first, then sent as the worker grants credit; one up to the threshold travels
        inline). A chunked output is checked (size, sha256: WorkerError "output <port>: chunked
        stream N: sha256 mismatch") and is plain bytes in the outputs, unless ``output_dir``
        (each chunked output is written to ``<output_dir>/<port>`` as it arrives; the outputs
        hold that ``pathlib.Path``) or ``output_sink`` (a binary writable file object or a
        callable taking bytes, fed the call's one chunked output in order from the I/O thread;
        the outputs hold its ``ChunkedValue`` reference). A durable call never chunks:
        InvalidRequest for an input over the threshold.

        ``resumable`` (PROTOCOL.md §8.3): the call survives a break of this connection (see the
        class documentation). None (the default): True for a call with chunked inputs, an
        ``output_dir`` or an ``output_sink``, False otherwise (musterd answers a resumable call
        with an Accepted first: a small call would pay it for nothing). Ignored for a durable
        call."""
        return self._submit(node, inputs, timeout_ms, progress, parameters, trace_id, want_accepted, durable, None,
                            output_dir, output_sink, resumable)  # fmt: skip

    def stream(
        self,
        node: str,
        inputs: Optional[Mapping[str, Any]] = None,
        timeout_ms: int = 0,
        progress: Optional[ProgressCallback] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        *,
        window_items: int = DEFAULT_WINDOW_ITEMS,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
        trace_id: Optional[str] = None,
        want_accepted: bool = False,
        resumable: Optional[bool] = None,
    ) -> "stream_module.Stream":
        """Calls a node that emits items (partial results) and returns at once with its
        Stream: ``for item in stream`` yields each item (a dict of values) in order, then
        ``stream.result()`` gives the terminal outputs; the iteration raises the call's error
        (after the items received before it). The worker may run ahead by at most
        ``window_items`` items and ``window_bytes`` bytes of item values: the stream grants more
        as the application takes items (docs/STREAMS.md §1). Use it in a ``with`` block to
        cancel the call when leaving it early. Not durable (PROTOCOL.md §7.8); resumable unless
        ``resumable=False`` (it goes on after a break of the connection, as ``submit`` says)."""
        from .stream import Stream, check_window  # stream.py builds on Call

        window = check_window(window_items, window_bytes)
        stream = self._submit(node, inputs, timeout_ms, progress, parameters, trace_id, want_accepted, False, window,
                              resumable=resumable)  # fmt: skip
        assert isinstance(stream, Stream)
        return stream

    def _submit(
        self, node: str, inputs: Optional[Mapping[str, Any]], timeout_ms: int, progress: Optional[ProgressCallback],
        parameters: Optional[Mapping[str, Any]], trace_id: Optional[str], want_accepted: bool, durable: bool,
        window: Optional[Tuple[int, int]], output_dir: Any = None, output_sink: Any = None,
        resumable: Optional[bool] = None,
    ) -> Call:  # fmt: skip
        sinks = check_sinks(output_dir, output_sink)
        wire_inputs, senders = split_inputs(inputs or {}, self.chunk_threshold, durable)
        resumable = asks_resumable(resumable, durable, bool(senders), window is not None, sinks is not None)
        rid = self._next_id()
        chunks = CallChunks(senders, sinks, rid, self.resume_after)
        msg = m.ClientMessage(
            request_id=rid,
            body=m.Submit(
                node=node,
                inputs=wire_inputs,
                parameters=dict(parameters) if parameters else None,
                timeout_ms=int(timeout_ms),
                want_progress=progress is not None,
                want_accepted=want_accepted or durable,  # a durable call needs its job id
                trace_id=trace_id,
                durable=durable,
                stream_window_items=window[0] if window else 0,
                stream_window_bytes=window[1] if window else 0,
                # the worker may chunk outputs (PROTOCOL.md §7.9); a durable call's stay inline
                chunk_window_bytes=0 if durable else CHUNK_WINDOW_BYTES,
                resumable=resumable,
            ),
        )
        try:
            data = m.encode(msg)  # TypeError/ValueError/OverflowError for values it cannot encode
        except BaseException:
            chunks.close(True)
            raise
        if window:
            from .stream import Stream

            call: Call = Stream(self, rid, node, progress, *window)
        else:
            call = Call(self, rid, node, progress, durable)
        pending = _Pending("submit", call.future, call, data, rid, chunks)
        pending.timeout = max(0, int(timeout_ms)) / 1000.0
        try:
            self._start(rid, pending)
        except BaseException:
            chunks.close(True)
            raise
        return call

    def call(
        self,
        node: str,
        inputs: Optional[Mapping[str, Any]] = None,
        timeout_ms: int = 0,
        progress: Optional[ProgressCallback] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        *,
        trace_id: Optional[str] = None,
        durable: bool = False,
        output_dir: Any = None,
        output_sink: Any = None,
        resumable: Optional[bool] = None,
    ) -> Dict[str, Any]:
        """Calls a node and returns its outputs, or raises a MusterError subclass for its
        code (NoWorker, Timeout, WorkerError, InvalidRequest, ...). ``durable``: as
        ``submit``; the call waits through a daemon restart. Chunked values,
        ``output_dir``, ``output_sink`` and ``resumable``: as ``submit``."""
        c = self.submit(node, inputs, timeout_ms, progress, parameters, trace_id=trace_id, durable=durable,
                        output_dir=output_dir, output_sink=output_sink, resumable=resumable)  # fmt: skip
        # The daemon enforces the deadline; the local bound only guards against a hung daemon
        # (a durable call may wait for a daemon to come back longer than its deadline).
        local = timeout_ms / 1000.0 + 30.0 + (self.resume_timeout if durable else 0.0) if timeout_ms else None
        return c.result(local)

    # ---- durable calls, detached (docs/DURABILITY.md §6): scoped to this client's workspace --

    def job_get(self, job_id: int) -> Job:
        """A durable call by job id: ``Job.info`` (a JobInfo: state, node, worker, attempts,
        ...) while it is open; once finished its ``outputs`` or ``error`` (``Job.result()``
        returns or raises them), and the daemon forgets it (this fetch acknowledges it).
        Raises InvalidRequest "no such job" for a job the daemon does not hold (unknown,
        expired, acknowledged, another workspace's)."""
        return job_from_reply(int(job_id), self._list(m.JobGet(job_id=int(job_id))))

    def job_list(self) -> List[m.JobInfo]:
        """The durable calls of this client's workspace the daemon holds (open, or finished
        and not yet acknowledged), oldest first."""
        reply = self._list(m.JobList())
        if not isinstance(reply, m.JobInfoList):
            raise BadMessage(f"unexpected {type(reply).__name__} in answer to JobList")
        return list(reply.jobs or [])

    def job_cancel(self, job_id: int) -> m.JobInfo:
        """Cancels a durable call by job id (its caller gets CANCELLED); returns its JobInfo
        (state FINISHED, code CANCELLED). Raises InvalidRequest "no such job"."""
        reply = self._list(m.JobCancel(job_id=int(job_id)))
        if not isinstance(reply, m.JobInfo):
            raise BadMessage(f"unexpected {type(reply).__name__} in answer to JobCancel")
        return reply

    def nodes(self) -> List[m.NodeInfo]:
        """The nodes of this client's workspace (NodeInfo: spec, workers, capacity, ...)."""
        return self._list(m.ListNodes()).nodes or []

    def workers(self) -> List[m.WorkerInfo]:
        return self._list(m.ListWorkers()).workers or []

    def status(self) -> m.StatusReport:
        report: m.StatusReport = self._list(m.GetStatus())
        return report

    def node_stats(self) -> m.NodeStatsReport:
        """Per-node statistics of this client's workspace since musterd started (every
        caller's calls, not only this client's), and its newest failures (PROTOCOL.md §8).
        ``report.nodes``: NodeStats (``node``, ``workers``, ``in_flight``, ``queue_depth``,
        ``completed``, ``failed``, ``failures`` by code, ``rate_1m`` per second, ``queue_wait``
        and ``service`` as LatencyHistogram with ``count``, ``p50_us``, ``p90_us``, ``p99_us``
        and the buckets); ``report.recent_failures``: RecentFailure (``node``, ``code``,
        ``message``, ``age_ms``), newest first. The local owner over ipc:// sees every
        workspace."""
        report: m.NodeStatsReport = self._list(m.GetNodeStats())
        return report

    # ---- admin commands (PROTOCOL.md §8): the local owner over ipc://, or an admin identity --

    def token_create(
        self,
        role: str = "worker",
        ttl_ms: int = 0,
        uses: int = 1,
        workspace: Optional[str] = None,
        name: Optional[str] = None,
    ) -> str:
        """Mints an enrollment token and returns its text (the only time its secret exists in
        clear). ``ttl_ms`` 0: 24 hours; ``workspace`` None: "default"; ``name`` labels the
        token and the identity it enrolls. Raises PermissionDenied unless this client is the
        local owner or an admin, InvalidRequest for a bad argument."""
        reply = self._list(
            m.TokenCreate(role=role, ttl_ms=int(ttl_ms), uses=int(uses), workspace=workspace, name=name)
        )
        if not isinstance(reply, m.TokenCreated) or not reply.token:
            raise BadMessage(f"unexpected {type(reply).__name__} in answer to TokenCreate")
        return reply.token

    def token_list(self) -> Any:
        """Every token the daemon knows (no secrets), as parsed JSON (docs/SECURITY.md)."""
        return self._admin(m.TokenList())

    def token_revoke(self, token_id: str) -> Any:
        """Revokes a token by its id; returns the revoked token (parsed JSON)."""
        return self._admin(m.TokenRevoke(id=token_id))

    def key_list(self) -> Any:
        """Every enrolled identity, revoked ones included, as parsed JSON."""
        return self._admin(m.KeyList())

    def key_revoke(self, identity_id: str) -> Any:
        """Revokes an identity at once (new handshakes and messages of connected peers are
        refused); returns the revoked identity (parsed JSON)."""
        return self._admin(m.KeyRevoke(id=identity_id))

    def _admin(self, body: Any) -> Any:
        reply = self._list(body)
        if not isinstance(reply, m.AdminReport):
            raise BadMessage(f"unexpected {type(reply).__name__} in answer to {type(body).__name__}")
        try:
            return json.loads(reply.json or "null")
        except ValueError as e:
            raise BadMessage(f"the daemon's {type(body).__name__} report is not JSON: {e}") from None

    def watch(self, *, nodes: bool = True, workers: bool = True, calls: bool = False) -> "Watch":
        """Pushed events of this client's workspace (``muster.Watch``, an iterator of Events), on a
        connection of their own to the same daemon with the same keys."""
        from .watch import Watch

        return Watch(self.address, nodes=nodes, workers=workers, calls=calls, curve=self.curve,
                     insecure=self.insecure, connect_timeout=self.connect_timeout)  # fmt: skip

    def wait_for_nodes(self, names: Sequence[str], timeout: float = 10.0, interval: float = 0.05) -> None:
        """Blocks until every node in ``names`` is served (or raises Unavailable)."""
        deadline = time.monotonic() + timeout
        missing: Set[str] = set(names)
        while True:
            served = {n.spec.name for n in self.nodes() if n.spec is not None and n.workers > 0}
            missing = set(names) - served
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise Unavailable(f"nodes not served after {timeout}s: {', '.join(sorted(missing))}")
            time.sleep(interval)

    def close(self) -> None:
        if self._closed:
            return
        self._post(("close",))
        self._thread.join(5.0)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- plumbing ------------------------------------------------------------------------

    def _next_id(self) -> int:
        with self._ids_lock:
            return next(self._ids)

    def _list(self, body: Any) -> Any:
        """Sends a list or admin request and returns the daemon's reply body (its type is the
        one the request's kind answers with: NodeList for ListNodes, ...)."""
        rid = self._next_id()
        fut: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        self._start(rid, _Pending(type(body).__name__, fut, None, m.encode(m.ClientMessage(request_id=rid, body=body)), rid))
        try:
            return fut.result(self.list_timeout)
        except concurrent.futures.TimeoutError:
            self._post(("forget", rid))
            raise Unavailable(f"no answer from the daemon at {self.address} within {self.list_timeout}s") from None

    def _start(self, rid: int, p: _Pending) -> None:
        if self._closed:
            raise Unavailable("client is closed")
        self._post(("send", rid, p))

    def _post(self, item: Tuple[Any, ...]) -> None:
        self._commands.put(item)
        with self._wake_lock:
            if self._closed:
                return
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass

    def _drop(self, p: _Pending) -> None:
        for rid in p.rids:
            self._pending.pop(rid, None)

    def _fail(self, rid: int, err: MusterError) -> None:
        p = self._pending.get(rid)
        if p is None:
            return
        self._drop(p)
        if p.chunks is not None:
            p.chunks.close(True)
        if p.job_id:
            self._jobs.forget(p.job_id)
        if not p.future.done():
            p.future.set_exception(err)

    def _send_now(self, data: Union[bytes, bytearray, memoryview]) -> None:
        try:
            self._dealer.send(data, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("cannot send to the daemon at %s: queue full", self.address)

    def _open_requests(self) -> List[_Pending]:
        """Each open request once (a resumed durable call is under several ids)."""
        return list({id(p): p for p in self._pending.values()}.values())

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._dealer, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while True:
                events = dict(poller.poll(self._poll_timeout()))
                if self._wake_r in events:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                if self._monitor in events:
                    self._read_monitor()
                if not self._commands_step():
                    return
                if self._dealer in events:
                    self._read_replies()
                self._check_timeouts()
        except Exception:
            log.exception("client I/O loop failed")
        finally:
            for rid in list(self._pending):
                self._fail(rid, Unavailable("client closed"))
            with self._wake_lock:
                self._closed = True
                for fd in (self._wake_r, self._wake_w):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            try:
                self._dealer.disable_monitor()
            except zmq.ZMQError:
                pass
            self._monitor.close(0)
            self._dealer.close(0)
            if self._own_zctx:
                self._zctx.term()

    def _poll_timeout(self) -> int:
        if (self._pending and not self._connected) or self._resuming:
            return 100
        stall = self._next_stall()
        if stall is not None:
            return max(0, min(1000, int((stall - time.monotonic()) * 1000) + 1))
        return 1000

    def _next_stall(self) -> Optional[float]:
        """When a chunked output stalls if no chunk comes (PROTOCOL.md §7.9 R3); None: none can."""
        times = [t for p in self._open_requests() if p.chunks is not None for t in (p.chunks.stall_at(),) if t is not None]
        return min(times) if times else None

    def _commands_step(self) -> bool:
        while True:
            try:
                item = self._commands.get_nowait()
            except queue.Empty:
                return True
            what = item[0]
            if what == "send":
                _, rid, p = item
                p.sent_at = time.monotonic()
                self._pending[rid] = p
                if self._pair and not self._connected:
                    # A failover pair (ZMQ_IMMEDIATE): nothing is queued before a connection
                    # completes; wait for one, at most connect_timeout (then UNAVAILABLE).
                    self._dealer.poll(int(self.connect_timeout * 1000), zmq.POLLOUT)
                try:
                    self._dealer.send(p.data, zmq.NOBLOCK)
                except zmq.Again:
                    self._fail(rid, Unavailable(f"cannot send to the daemon at {self.address}: queue full"))
            elif what == "cancel":
                _, rid = item
                p = self._pending.get(rid)
                if p is None:
                    continue
                # A connection may have come since the last poll: its CONNECTED event is posted
                # before any message can flow, so the Submit cannot have reached the daemon
                # unseen (a stale "not connected" sent no Cancel, and the call ran).
                self._read_monitor()
                if not self._connected:
                    if p.job_id or p.call_token:  # the daemon still holds it: cancel it once resumed
                        p.cancel_wanted = True
                        continue
                    self._fail(rid, Cancelled("cancelled before the daemon was reached"))
                    # Its Submit still waits in the socket for a daemon that may come later:
                    # dropped, so a call reported cancelled never runs (docs/DURABILITY.md §13).
                    self._drop_unsent_and_requeue()
                    continue
                self._send_now(m.encode(m.ClientMessage(request_id=p.rids[-1], body=m.Cancel())))
            elif what == "credit":
                _, rid, grant = item
                p = self._pending.get(rid)
                if p is not None:
                    p.item_grant = grant  # sent again if the call is resumed (its last one may be lost)
                    if self._connected:
                        self._send_now(_stream().credit_message(p.rids[-1], grant))
            elif what == "forget":
                self._pending.pop(item[1], None)
            elif what == "close":
                return False

    def _read_monitor(self) -> None:
        while True:
            try:
                evt = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            event = evt["event"]
            if event in self._up_events:
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED or not self._connected:
                    was = self._connected
                    self._connected = True
                    if not was and self._ever_connected:
                        self._resume()
                    self._ever_connected = True
            elif event == zmq.EVENT_DISCONNECTED:
                was = self._connected
                self._connected = False
                if was:
                    log.warning("lost the connection to the daemon at %s", self.address)
                    # Replies that came before the loss first (a durable call's Accepted makes it
                    # resumable, a Result ends its call), as the C++ client does.
                    self._read_replies()
                    self._jobs.connection_lost()
                    now = time.monotonic()
                    for p in self._open_requests():
                        if p.job_id or p.call_token:
                            # durable with its job id, resumable with its token: resumed when
                            # a connection is back (PROTOCOL.md §8.3 C6)
                            p.lost_at = now
                            self._resuming[id(p)] = p
                        else:
                            self._fail(p.rids[-1], Unavailable(f"lost the connection to the daemon at {self.address}"))
                    # What the socket still queues for the lost connection belongs to calls just
                    # failed: never delivered to the next daemon (docs/DURABILITY.md §13). A
                    # pair's socket (ZMQ_IMMEDIATE) has dropped it with the connection already.
                    if not self._pair:
                        drop_unsent(self._dealer, self.address)

    def _resume(self) -> None:
        """A new connection: bind the open durable calls to it (JobResume) and the resumable
        calls kept since the last one broke (CallResume, with what each received), each under a
        new request id; repeat the acknowledgements the lost connection may have lost, and send
        the cancels asked meanwhile."""
        open_requests = self._open_requests()
        calls = [(p.job_id, p) for p in open_requests if p.job_id]
        again = self._jobs.reconnected(calls, self._next_id)
        kept = [(p, call_ref(p.call_token, getattr(p.call, "items_received", 0), p.chunks))
                for p in open_requests if p.call_token and p.lost_at is not None]  # fmt: skip
        bind = rebind(kept, self._next_id)
        for rid, p in list(again.bound.items()) + list(bind.bound.items()):
            self._rebound(rid, p)
        self._resume_id = again.resume_id
        self._call_resume_id = bind.request_id
        if again.bound:
            log.info("resuming %d durable call(s) at %s", len(again.bound), self.address)
        if bind.bound:
            log.info("resuming %d call(s) on the new connection to %s", len(bind.bound), self.address)
        for data in (again.resume, bind.message, again.ack):
            if data is not None:
                self._send_now(data)
        for p in list(again.bound.values()) + list(bind.bound.values()):
            if p.cancel_wanted:
                self._send_now(m.encode(m.ClientMessage(request_id=p.rids[-1], body=m.Cancel())))

    def _rebound(self, rid: int, p: _Pending) -> None:
        """``p`` is asked for again under the new request id ``rid`` (its old ids stay aliases)."""
        self._pending[rid] = p
        p.rids.append(rid)
        p.lost_at = time.monotonic()  # until the daemon answers for it (resume_timeout bounds that too)
        self._resuming[id(p)] = p
        if p.call is not None:
            p.call.request_id = rid
        if p.chunks is not None:
            p.chunks.request_id = rid  # its Chunks and Credits go under the new id

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        if self._connected:
            for p in self._open_requests():
                if p.chunks is not None:
                    p.chunks.check_stalls(now, self._send_now)  # R3: a resume Credit for a stalled output
        for key, p in list(self._resuming.items()):
            if p.lost_at is None or self._pending.get(p.rids[-1]) is not p:
                del self._resuming[key]  # taken back, or ended
            elif p.job_id:
                if now - p.lost_at >= self.resume_timeout:
                    self._fail(p.rids[-1], Unavailable(resume_timed_out(p.job_id, self.address, self.resume_timeout, self._connected)))
            else:
                deadline = p.sent_at + p.timeout if p.timeout else None
                if now >= keep_until(p.lost_at, self.resume_timeout, deadline):
                    node = p.call.node if p.call is not None else ""
                    past = deadline is not None and now >= deadline
                    self._fail(p.rids[-1], Unavailable(given_up(p.rids[-1], node, self.address, self.resume_timeout, self._connected, past)))
        if self._connected or not self._pending:
            return
        failed = False
        for p in self._open_requests():
            if p.lost_at is None and now - p.sent_at >= self.connect_timeout:
                self._fail(p.rids[-1], Unavailable(f"cannot reach the daemon at {self.address} (is musterd running?)"))
                failed = True
        if failed:
            self._drop_unsent_and_requeue()

    def _drop_unsent_and_requeue(self) -> None:
        """Calls just failed while unconnected: their messages still wait in the socket for a
        daemon that may come later. Dropped with everything it queues, and the calls still
        waiting for a first connection are queued again, in order (with a pair nothing is
        queued unconnected)."""
        if self._pair:
            return
        drop_unsent(self._dealer, self.address)
        for p in self._open_requests():
            if p.lost_at is None:
                self._send_now(p.data)

    def _read_replies(self) -> None:
        for _ in range(10000):
            try:
                frames = self._dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
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
        rid = reply.request_id
        body = reply.body
        p = self._pending.get(rid)
        job_id = terminal_job_id(body)
        if (p is None or p.kind == "submit") and job_id and self._jobs.delivered(job_id):
            # A second terminal reply of a job already handed over (redelivered after a
            # reconnect, or late on an old request id): dropped; the daemon still holds it.
            log.debug("dropping a second reply for durable job %d", job_id)
            self._send_now(ack_message(self._next_id(), [job_id]))
            self._jobs.acked(job_id)
            return
        if p is None:
            if isinstance(body, m.Failure) and rid and rid in (self._resume_id, self._call_resume_id):
                waiting = [
                    Waiting(p.rids[-1], p.call.node if p.call is not None else "", p.job_id, p.call_token)
                    for p in self._resuming.values()
                    if p.lost_at is not None and self._pending.get(p.rids[-1]) is p
                ]
                for failed, error in refused_as_a_whole(body, rid == self._resume_id, self.address, waiting):
                    self._fail(failed, error)
            elif isinstance(body, m.Failure) and rid == 0:
                log.warning("the daemon could not read a message: %s: %s", body.code, body.message)
            return
        was_lost, p.lost_at = p.lost_at is not None, None  # an answer for it: taken back (or ended below)
        if p.kind != "submit":
            self._on_answer(p, body, job_id)
            return
        if isinstance(body, m.Accepted):
            if body.job_id and not p.job_id:
                p.job_id = body.job_id
                self._jobs.opened(body.job_id, p)
            elif body.call_token and not p.job_id and not p.call_token:
                p.call_token = body.call_token  # resumable from now on (PROTOCOL.md §8.3 C1)
            if p.call is not None:
                p.call.queued = body.queued
                if body.job_id:
                    p.call.job_id = body.job_id
                if p.call_token:
                    p.call.call_token = p.call_token
                p.call.accepted.set()
            if was_lost and p.call_token and p.item_grant is not None:
                # Taken back (C2): the item Credit it sent last may have been lost with the old
                # connection; credit is cumulative, so sending it again is harmless.
                self._send_now(_stream().credit_message(p.rids[-1], p.item_grant))
        elif isinstance(body, m.Item):
            on_item = getattr(p.call, "_on_item", None)  # a Stream's
            if on_item is None:
                log.warning("item for request %d, which asked for none: dropped", rid)
                return
            broken = on_item(body, _stream().item_size(frame))
            if broken is not None:  # the daemon checks the order: this is not musterd talking
                self._send_now(m.encode(m.ClientMessage(request_id=rid, body=m.Cancel())))
                self._fail(rid, BadMessage(f"request {rid}: {broken}"))
        elif isinstance(body, m.Credit):
            if p.chunks is not None:
                try:
                    p.chunks.on_credit(body, self._send_now)
                except (MusterError, OSError, ValueError, TypeError) as e:
                    self._abandon(p, e, "input")
        elif isinstance(body, m.Chunk):
            if p.chunks is not None:
                try:
                    p.chunks.on_chunk(body, self._send_now)
                except (MusterError, OSError, ValueError, TypeError) as e:
                    self._abandon(p, e, "output")
        elif isinstance(body, m.Progress):
            cb = p.call.progress_callback if p.call is not None else None
            if cb is not None:
                try:
                    cb(body.step, body.total, body.message or "")
                except Exception:
                    log.exception("progress callback failed")
        elif isinstance(body, m.Result):
            if body.outputs_in_frame:  # only for a Submit with payload_frames: never this client's
                self._fail(rid, BadMessage("outputs in a separate frame were not requested"))
                return
            self._deliver(p, body)
        elif isinstance(body, m.Failure):
            self._deliver(p, body)

    def _abandon(self, p: _Pending, error: BaseException, what: str) -> None:
        """A chunked value broke on this side (a sink or an input file failed, a chunk out of
        order): the call is cancelled at the daemon and fails here with the error."""
        self._send_now(m.encode(m.ClientMessage(request_id=p.rids[-1], body=m.Cancel())))
        self._fail(p.rids[-1], chunk_error(error, what))

    def _deliver(self, p: _Pending, body: Any) -> None:
        """Hands a call its terminal reply (a Result's outputs, or a Failure's error), then, for
        a durable call's, acknowledges it to the daemon."""
        self._drop(p)
        outputs: Optional[Dict[str, Any]] = None
        error: Optional[MusterError] = None
        if isinstance(body, m.Result):
            try:
                outputs = p.chunks.outputs(body.outputs or {}) if p.chunks is not None else body.outputs or {}
            except (MusterError, OSError, ValueError) as e:
                error = chunk_error(e, "output")
        else:
            error = error_for(body.code, body.message or "")
        if p.chunks is not None:
            # Before the caller wakes: what the outputs do not hold (a failed call's part files) is gone.
            p.chunks.close(error is not None)
        if not p.future.done():
            if error is not None:
                p.future.set_exception(error)
            else:
                p.future.set_result(outputs or {})
        if body.job_id:
            if p.call is not None and p.call.job_id is None:
                p.call.job_id = body.job_id
            self._jobs.finish(body.job_id)
            self._send_now(ack_message(self._next_id(), [body.job_id]))
        elif p.job_id:
            self._jobs.forget(p.job_id)

    def _on_answer(self, p: _Pending, body: Any, job_id: int) -> None:
        """The answer to a listing, admin or job request."""
        if isinstance(body, m.Failure) and plain_failure(body):
            self._fail(p.rids[-1], error_for(body.code, body.message or ""))
            return
        if not isinstance(
            body,
            (m.NodeList, m.WorkerList, m.StatusReport, m.NodeStatsReport, m.TokenCreated, m.AdminReport,
             m.JobInfo, m.JobInfoList, m.Result, m.Failure),
        ):  # fmt: skip
            return
        self._drop(p)
        if not p.future.done():
            p.future.set_result(body)
        if job_id:  # JobGet of a finished job: this delivery counts (DURABILITY.md §6)
            call = self._jobs.open.get(job_id)
            if call is not None:
                self._deliver(call, body)  # also ends this client's own open call of that job
            else:
                self._jobs.acked(job_id)
                self._send_now(ack_message(self._next_id(), [job_id]))


__all__ = ["Client", "Call", "client_curve"]
