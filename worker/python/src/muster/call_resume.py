"""call_resume.py — the client side of resumable calls (PROTOCOL.md §8.3, rule C6): which calls
ask ``Submit.resumable``, what a caller tells musterd it received of each when its connection
comes back (``CallResume``: items taken, each chunked output's offset), how long it keeps them
meanwhile, and the messages of the ones it gives up.

A resumable call's Accepted brings its ``call_token``. When the connection to musterd breaks
(libzmq connects again: musterd sees a new peer) the client keeps the calls that have their
token, for as long as it waits for a durable call's daemon to come back (``resume_timeout``)
and at most until the call's deadline; on the next connection it sends one CallResume naming
them, each under a new request id (the old one stays an alias, as for a resumed durable call).
musterd answers each CallRef under its request id: Accepted (the call goes on here: its
receivers keep their offsets, its input senders go back on musterd's resume Credits), the
call's kept terminal reply, or a Failure (Unavailable "no such call") that ends it.

Owns: the default of ``resumable``, the CallResume message and the request ids it binds, the
time a kept call may wait, and which waiting calls a resume refused as a whole fails (a
CallResume's, and a durable call's JobResume's alike). Shared by client.Client and aio.AsyncClient; it knows no socket.
Must never: keep a call that has no token (it fails Unavailable as before), or keep one past
its deadline or the reconnect wait; name a byte or an item the caller does not have.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, Generic, Iterable, List, NamedTuple, Optional, Sequence, Tuple, TypeVar

from . import messages as m
from .chunks import CallChunks
from .errors import MusterError, error_for

log = logging.getLogger("muster.client")

T = TypeVar("T")


def asks_resumable(resumable: Optional[bool], durable: bool, chunked_inputs: bool, items: bool, output_sink: bool) -> bool:
    """``Submit.resumable`` for a call: as ``resumable`` says when given (True/False), else True
    for a call that streams — chunked inputs, items (``stream``), or an ``output_dir`` /
    ``output_sink`` for chunked outputs — and False for the others: a small call would pay an
    Accepted for nothing. Never for a durable call (its job id does more: it survives a daemon
    restart too)."""
    if durable:
        return False
    if resumable is not None:
        return bool(resumable)
    return chunked_inputs or items or output_sink


def call_ref(call_token: int, items_received: int, chunks: Optional[CallChunks]) -> m.CallRef:
    """What the caller has of a call (its request id is set by ``rebind``): the Items it took
    (every one up to its highest ``seq``) and, for each output stream chunks came of, the bytes
    it has in order (PROTOCOL.md §8.3 C3, C4)."""
    outputs = [] if chunks is None else [m.StreamOffset(stream=s, offset=r.received) for s, r in sorted(chunks.receivers.items())]
    return m.CallRef(call_token=call_token, request_id=0, items_received=items_received, outputs=outputs)


class Rebind(NamedTuple, Generic[T]):
    """The CallResume a new connection sends, and the calls it binds there."""

    message: Optional[bytes]  # None: no call to resume
    request_id: int  # the CallResume's own id (answered only if musterd refuses it as a whole)
    bound: Dict[int, T]  # new request id -> call


def rebind(calls: Sequence[Tuple[T, m.CallRef]], next_id: Callable[[], int]) -> "Rebind[T]":
    """One CallResume for ``calls`` (handle, what it received), each under a new request id."""
    bound: Dict[int, T] = {}
    refs: List[m.CallRef] = []
    for call, ref in calls:
        rid = next_id()
        bound[rid] = call
        refs.append(m.CallRef(call_token=ref.call_token, request_id=rid, items_received=ref.items_received, outputs=ref.outputs))
    if not refs:
        return Rebind(None, 0, bound)
    resume_id = next_id()
    return Rebind(m.encode(m.ClientMessage(request_id=resume_id, body=m.CallResume(calls=refs))), resume_id, bound)


def keep_until(lost_at: float, resume_timeout: float, deadline: Optional[float]) -> float:
    """Until when a call waits to be taken back: the reconnect wait, and at most its deadline."""
    until = lost_at + resume_timeout
    return until if deadline is None else min(until, deadline)


def given_up(request_id: int, node: str, address: str, seconds: float, connected: bool, past_deadline: bool) -> str:
    """The Unavailable message of a resumable call no daemon took back in time."""
    if past_deadline:
        why = "its deadline passed"
    elif connected:
        why = f"no answer to its CallResume within {seconds}s"
    else:
        why = f"no connection came back within {seconds}s"
    return f"request {request_id} ({node}): lost the connection to the daemon at {address} and {why}"


class Waiting(NamedTuple):
    """A call waiting for a daemon to take it back: its request id now, its node, and what
    takes it back (a durable call's job id, a resumable call's token; 0 or None: not that)."""

    request_id: int
    node: str
    job_id: Optional[int]
    call_token: Optional[int]


def refused_as_a_whole(
    refusal: m.Failure, job_resume: bool, address: str, waiting: Iterable[Waiting]
) -> List[Tuple[int, MusterError]]:
    """musterd answered the JobResume (``job_resume``) or the CallResume itself: it refused it as
    a whole (more jobs or calls than it takes, or a daemon that does not know JobResume). Each
    call it named that got no answer of its own (the durable ones, or the resumable ones, of
    ``waiting``) fails with its error: (request id, error) for each. Logs the refusal."""
    what = "durable calls" if job_resume else "calls"
    log.warning("the daemon at %s refused to resume %s: %s", address, what, refusal.message)
    failed: List[Tuple[int, MusterError]] = []
    for w in waiting:
        if job_resume and w.job_id:
            call = f"durable job {w.job_id}"
        elif not job_resume and w.call_token:
            call = f"request {w.request_id} ({w.node})"
        else:
            continue
        failed.append((w.request_id, error_for(refusal.code, f"resuming {call}: {refusal.message or ''}")))
    return failed


__all__ = ["asks_resumable", "call_ref", "Rebind", "rebind", "keep_until", "given_up", "Waiting", "refused_as_a_whole"]
