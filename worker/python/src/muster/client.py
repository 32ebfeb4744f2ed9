"""client.py — calling nodes through musterd's client socket (docs/PROTOCOL.md §8).

Owns: the client's DEALER socket, request ids, and the correlation of replies (Accepted,
Progress, Result, Failure, NodeList, WorkerList, StatusReport, NodeStatsReport) to the calls
that wait for them. One I/O thread owns the socket; any thread may call, submit, cancel and list.
Must never: leave a caller waiting on a daemon that is gone: a lost connection, or no
connection within ``connect_timeout``, fails the open calls with UNAVAILABLE.

    with muster.Client() as client:
        out = client.call("hello", {"name": "Ada"}, timeout_ms=5000)
        call = client.submit("sleep", {"ms": 5000}, progress=print)
        call.cancel()
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
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import messages as m
from .endpoints import Curve, check_endpoint, connect, default_endpoint
from .enrollment import DEFAULT_ENROLLMENT_TIMEOUT, needs_curve, prepare_curve
from .errors import BadMessage, Cancelled, MusterError, Unavailable, error_for

log = logging.getLogger("muster.client")

ProgressCallback = Callable[[int, int, str], Any]


class Call:
    """A submitted request. ``result()`` waits for its outputs (or raises its error);
    ``cancel()`` asks the daemon to cancel it."""

    def __init__(self, client: "Client", request_id: int, node: str, progress: Optional[ProgressCallback]):
        self.client = client
        self.request_id = request_id
        self.node = node
        self.progress_callback = progress
        self.future: "concurrent.futures.Future[Dict[str, Any]]" = concurrent.futures.Future()
        self.queued: Optional[bool] = None  # set by Accepted, if asked for
        self.accepted = threading.Event()
        self.sent_at = 0.0

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
    __slots__ = ("call", "future", "kind", "sent_at", "data")

    def __init__(self, kind: str, future: "concurrent.futures.Future[Any]", call: Optional[Call], data: bytes):
        self.kind = kind
        self.future = future
        self.call = call
        self.sent_at = 0.0
        self.data = data


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
    ``insecure=True`` allows clear-text tcp:// instead."""

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
    ):
        self.address = client_address or default_endpoint("client")
        curve = client_curve(
            self.address, curve, insecure, data_dir=data_dir, enrollment_address=enrollment_address,
            enrollment_token_file=enrollment_token_file, name=name, role=role, enrollment_timeout=enrollment_timeout,
        )  # fmt: skip
        self.curve = curve
        self.insecure = insecure
        self.connect_timeout = connect_timeout
        self.list_timeout = list_timeout
        self.max_message_bytes = max_message_bytes
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
    ) -> Call:
        """Submits a request and returns at once with its Call. ``progress(step, total,
        message)`` is called (from the client's I/O thread: keep it short) for each
        Progress the worker sends."""
        rid = self._next_id()
        msg = m.ClientMessage(
            request_id=rid,
            body=m.Submit(
                node=node,
                inputs=dict(inputs or {}),
                parameters=dict(parameters) if parameters else None,
                timeout_ms=int(timeout_ms),
                want_progress=progress is not None,
                want_accepted=want_accepted,
                trace_id=trace_id,
            ),
        )
        data = m.encode(msg)  # TypeError/ValueError/OverflowError for values it cannot encode
        call = Call(self, rid, node, progress)
        self._start(rid, _Pending("submit", call.future, call, data))
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
    ) -> Dict[str, Any]:
        """Calls a node and returns its outputs, or raises a MusterError subclass for its
        code (NoWorker, Timeout, WorkerError, InvalidRequest, ...)."""
        c = self.submit(node, inputs, timeout_ms, progress, parameters, trace_id=trace_id)
        # The daemon enforces the deadline; the local bound only guards against a hung daemon.
        local = timeout_ms / 1000.0 + 30.0 if timeout_ms else None
        return c.result(local)

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
        self._start(rid, _Pending(type(body).__name__, fut, None, m.encode(m.ClientMessage(request_id=rid, body=body))))
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

    def _fail(self, rid: int, err: MusterError) -> None:
        p = self._pending.pop(rid, None)
        if p is not None and not p.future.done():
            p.future.set_exception(err)

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
        if self._pending and not self._connected:
            return 100
        return 1000

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
                try:
                    self._dealer.send(p.data, zmq.NOBLOCK)
                except zmq.Again:
                    self._fail(rid, Unavailable(f"cannot send to the daemon at {self.address}: queue full"))
            elif what == "cancel":
                _, rid = item
                p = self._pending.get(rid)
                if p is None:
                    continue
                if not self._connected:
                    self._fail(rid, Cancelled("cancelled before the daemon was reached"))
                    continue
                try:
                    self._dealer.send(m.encode(m.ClientMessage(request_id=rid, body=m.Cancel())), zmq.NOBLOCK)
                except zmq.Again:
                    pass
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
            if event in (zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_SUCCEEDED):
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED or not self._connected:
                    self._connected = True
                    self._ever_connected = True
            elif event == zmq.EVENT_DISCONNECTED:
                was = self._connected
                self._connected = False
                if was:
                    log.warning("lost the connection to the daemon at %s", self.address)
                    for rid in list(self._pending):
                        self._fail(rid, Unavailable(f"lost the connection to the daemon at {self.address}"))

    def _check_timeouts(self) -> None:
        if self._connected or not self._pending:
            return
        now = time.monotonic()
        for rid, p in list(self._pending.items()):
            if now - p.sent_at >= self.connect_timeout:
                self._fail(rid, Unavailable(f"cannot reach the daemon at {self.address} (is musterd running?)"))

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
            self._on_reply(reply)

    def _on_reply(self, reply: m.ClientReply) -> None:
        rid = reply.request_id
        body = reply.body
        p = self._pending.get(rid)
        if p is None:
            if isinstance(body, m.Failure) and rid == 0:
                log.warning("the daemon could not read a message: %s: %s", body.code, body.message)
            return
        if isinstance(body, m.Accepted):
            if p.call is not None:
                p.call.queued = body.queued
                p.call.accepted.set()
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
            self._pending.pop(rid, None)
            if not p.future.done():
                p.future.set_result(body.outputs or {})
        elif isinstance(body, m.Failure):
            self._fail(rid, error_for(body.code, body.message or ""))
        elif isinstance(
            body, (m.NodeList, m.WorkerList, m.StatusReport, m.NodeStatsReport, m.TokenCreated, m.AdminReport)
        ):
            self._pending.pop(rid, None)
            if not p.future.done():
                p.future.set_result(body)


__all__ = ["Client", "Call", "client_curve"]
