"""jobs.py — the client side of durable calls (docs/DURABILITY.md §6): which durable calls are
open and under which request ids, which job ids were already handed to the application, what a
reconnect sends (JobResume, JobAck again), and ``Job``, what ``job_get`` returns.

Owns: the bookkeeping both clients (client.Client, aio.AsyncClient) share; it knows no socket.
A durable call is known by its job id from its Accepted on; after a reconnect it is bound again
under a new request id (the old one stays an alias, so a late reply on it still counts). A
terminal reply for a job id already delivered is a duplicate: dropped, and acknowledged again.
Must never: let a job's terminal reply reach the application twice, or acknowledge a job
before its reply was handed over.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, List, NamedTuple, Optional, Tuple, TypeVar, Union

from . import messages as m
from .errors import ErrorCode, MusterError, error_for

T = TypeVar("T")

# How many delivered job ids a client remembers to drop a second reply for, and re-acknowledges
# after a reconnect (the daemon may have died before it journaled the JobAck).
REMEMBER_DELIVERED = 4096


class Reconnect(NamedTuple, Generic[T]):
    """What a client sends on a new connection, and the calls it binds there."""

    resume: Optional[bytes]  # the JobResume (None: no open durable call)
    resume_id: int  # its own request id (answered only if musterd refuses it as a whole)
    ack: Optional[bytes]  # the JobAck repeating the lost connection's acknowledgements
    bound: Dict[int, T]  # new request id -> call


class DurableJobs(Generic[T]):
    """Open durable calls of one client by job id (``T`` is the client's handle of a call) and
    the job ids already delivered. Not thread-safe: the client's I/O thread or event loop owns
    it."""

    def __init__(self, remember: int = REMEMBER_DELIVERED) -> None:
        self.open: Dict[int, T] = {}
        self._delivered: "OrderedDict[int, None]" = OrderedDict()
        self._remember = remember
        # acknowledged on the current connection / on the one that was lost
        self._acked_now: List[int] = []
        self._acked_before: List[int] = []

    def opened(self, job_id: int, call: T) -> None:
        """``call`` got its job id (from its Accepted, or a terminal reply): it can be resumed."""
        if job_id and job_id not in self._delivered:
            self.open[job_id] = call

    def delivered(self, job_id: int) -> bool:
        """Whether the terminal reply of ``job_id`` was handed to the application already."""
        return job_id in self._delivered

    def finish(self, job_id: int) -> None:
        """The terminal reply of ``job_id`` was handed over: remember it (to drop a second one)
        and count it among the acknowledgements a reconnect repeats."""
        self.open.pop(job_id, None)
        self._delivered[job_id] = None
        self._delivered.move_to_end(job_id)
        while len(self._delivered) > self._remember:
            self._delivered.popitem(last=False)
        self.acked(job_id)

    def acked(self, job_id: int) -> None:
        self._acked_now.append(job_id)
        if len(self._acked_now) > self._remember:
            del self._acked_now[: len(self._acked_now) - self._remember]

    def forget(self, job_id: int) -> None:
        """``job_id`` ended without a reply to hand over (failed locally): not resumed again."""
        self.open.pop(job_id, None)

    def connection_lost(self) -> None:
        """The acknowledgements sent on the lost connection may not have reached the journal."""
        self._acked_before = (self._acked_before + self._acked_now)[-self._remember :]
        self._acked_now = []

    def reconnected(self, calls: List[Tuple[int, T]], next_id: Callable[[], int]) -> "Reconnect[T]":
        """For a new connection: the JobResume of ``calls`` (job id, handle) each under a new
        request id, and the JobAck repeating the acknowledgements of the lost connection."""
        bound: Dict[int, T] = {}
        refs: List[m.JobRef] = []
        for job_id, call in calls:
            rid = next_id()
            bound[rid] = call
            refs.append(m.JobRef(job_id=job_id, request_id=rid))
        resume_id = next_id() if refs else 0
        resume = m.encode(m.ClientMessage(request_id=resume_id, body=m.JobResume(jobs=refs))) if refs else None
        again, self._acked_before = self._acked_before, []
        ack = ack_message(next_id(), again) if again else None
        return Reconnect(resume, resume_id, ack, bound)


def ack_message(request_id: int, job_ids: List[int]) -> bytes:
    """A JobAck of ``job_ids`` (never answered by the daemon)."""
    return m.encode(m.ClientMessage(request_id=request_id, body=m.JobAck(job_ids=list(job_ids))))


def resume_timed_out(job_id: int, address: str, seconds: float, connected: bool) -> str:
    """The message of a durable call that no daemon took back within ``seconds``."""
    why = (f"no answer to its resume from the daemon at {address}" if connected
           else f"the connection to the daemon at {address} was lost and no daemon came back")  # fmt: skip
    return f"durable job {job_id}: {why} within {seconds}s; it stays with musterd (job_get({job_id}) fetches its outcome)"


def terminal_job_id(body: Any) -> int:
    """The job id of a terminal reply (Result, Failure) of a durable call; 0 otherwise."""
    if isinstance(body, (m.Result, m.Failure)):
        return int(body.job_id)
    return 0


def plain_failure(body: Any) -> bool:
    """A Failure that is not a durable call's kept outcome (no job id): an error of the request
    itself, such as "no such job"."""
    return isinstance(body, m.Failure) and not body.job_id


@dataclass(frozen=True)
class Job:
    """A durable call fetched by job id (``job_get``): ``info`` while it is open (queued,
    running, recovering); once finished, ``outputs`` (a Result) or ``error`` (its Failure as the
    SDK's MusterError subclass) and ``info`` None. ``result()`` gives the outputs or raises."""

    job_id: int
    state: Union[m.JobState, int]
    info: Optional[m.JobInfo] = None
    outputs: Optional[Dict[str, Any]] = None
    error: Optional[MusterError] = None

    @property
    def done(self) -> bool:
        return self.state == m.JobState.FINISHED

    def result(self) -> Dict[str, Any]:
        """The outputs of a finished job; raises its error, or ``InvalidRequest`` while it is
        still open."""
        if self.error is not None:
            raise self.error
        if not self.done:
            state = self.state.name if isinstance(self.state, m.JobState) else str(self.state)
            raise error_for(ErrorCode.INVALID_REQUEST, f"job {self.job_id} is not finished (state {state})")
        return dict(self.outputs or {})


def job_from_reply(job_id: int, body: Any) -> Job:
    """The ``Job`` a JobGet answer describes: a JobInfo, or the kept Result/Failure (a Failure
    without job id, "no such job", is raised as its error)."""
    if isinstance(body, m.JobInfo):
        return Job(job_id=body.job_id or job_id, state=body.state, info=body)
    if isinstance(body, m.Result):
        return Job(job_id=body.job_id or job_id, state=m.JobState.FINISHED, outputs=body.outputs or {})
    if isinstance(body, m.Failure):
        err = error_for(body.code, body.message or "")
        if not body.job_id:
            raise err
        return Job(job_id=body.job_id, state=m.JobState.FINISHED, error=err)
    raise error_for(ErrorCode.BAD_MESSAGE, f"unexpected {type(body).__name__} in answer to JobGet")


__all__ = ["DurableJobs", "Reconnect", "resume_timed_out", "Job", "job_from_reply", "ack_message", "terminal_job_id", "plain_failure"]
