"""messages.py — every muster wire message as a Python dataclass, and their FlatBuffers
encoding (through the flatc-generated builders in ``muster.wire``) and verified decoding.

Owns: the Python shape of the schema. One dataclass per table, fields named and ordered as in
schema/*.fbs; each field's metadata says its wire kind, from which the verifier layout, the
encoder, the decoder and the description format (tests/vectors/README.md) are all derived.

Conventions: a string, table or vector field is ``None`` when absent on the wire (an empty
string is present); scalars always have a value (the schema default when absent); nested
``Values`` payloads (inputs, parameters, outputs) are dicts of Python values (see values.py)
or ``None`` when absent; a union field holds the member dataclass, or ``None`` (NONE).
Must never: read a field of a buffer that did not pass the verifier, or let any exception
other than ``BadMessage`` escape from a decode function.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple, Union

import flatbuffers

from . import _flat
from . import values as _values
from .errors import BadMessage, ErrorCode

Buffer = _flat.Buffer


class _NoDefault:
    """Marks a Port without a default value (distinct from a default of None, i.e. Null)."""

    _instance: Optional["_NoDefault"] = None

    def __new__(cls) -> "_NoDefault":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> Tuple[type, Tuple[()]]:
        return (_NoDefault, ())


NO_DEFAULT: Any = _NoDefault()


class JobState(enum.IntEnum):
    """Where a durable call is (schema/reply.fbs ``JobState``; docs/DURABILITY.md §2)."""

    QUEUED = 0  # waiting for a worker
    RUNNING = 1  # dispatched to JobInfo.worker_id
    RECOVERING = 2  # was running when the daemon died; waiting for its worker to re-attach
    FINISHED = 3  # its terminal reply is kept until acknowledged or the result TTL passes


class EventKind(enum.IntEnum):
    """What an Event of a Watch says (schema/reply.fbs ``EventKind``; PROTOCOL.md §8.2)."""

    SNAPSHOT = 0
    NODE_ADDED = 1
    NODE_CHANGED = 2
    NODE_REMOVED = 3
    WORKER_JOINED = 4
    WORKER_CHANGED = 5
    WORKER_LEFT = 6
    CALL_STATE = 7
    OVERFLOW = 8


def _m(kind: str, default: Any = None, ref: Optional[str] = None, required: bool = False) -> Any:
    return field(default=default, metadata={"kind": kind, "ref": ref, "required": required})


def _list(kind: str, ref: Optional[str] = None) -> Any:
    return field(default=None, metadata={"kind": kind, "ref": ref, "required": False})


# ---- common.fbs ----------------------------------------------------------------------------


@dataclass
class BatchItem:
    """One whole message of the enclosing root type, as the bytes it would be sent as alone
    (PROTOCOL.md §2.2); written 8-byte aligned. This SDK never sends or receives a Batch: the
    class is the schema's, for the golden vectors."""

    message: Optional[bytes] = _m("[u8]")


@dataclass
class Batch:
    items: Optional[List[BatchItem]] = _list("[table]", "BatchItem")


@dataclass
class Port:
    """One input, output or parameter of a node. ``type`` is one of PORT_TYPES (absent means
    "any"); ``default_value`` is NO_DEFAULT when the port has no default."""

    name: str = _m("str", required=True)
    type: Optional[str] = _m("str")
    description: Optional[str] = _m("str")
    required: bool = _m("bool", False)
    default_value: Any = _m("value", NO_DEFAULT)


@dataclass
class NodeSpec:
    name: str = _m("str", required=True)
    description: Optional[str] = _m("str")
    category: Optional[str] = _m("str")
    version: Optional[str] = _m("str")
    inputs: Optional[List[Port]] = _list("[table]", "Port")
    outputs: Optional[List[Port]] = _list("[table]", "Port")
    parameters: Optional[List[Port]] = _list("[table]", "Port")
    idempotent: bool = _m("bool", False)
    default_timeout_ms: int = _m("u64", 0)
    # every call to the node is durable (docs/DURABILITY.md), whether or not the caller asked
    durable: bool = _m("bool", False)


@dataclass
class CallerContext:
    identity: Optional[str] = _m("str")
    name: Optional[str] = _m("str")
    workspace: Optional[str] = _m("str")
    role: Optional[str] = _m("str")
    trace_id: Optional[str] = _m("str")


@dataclass
class Progress:
    request_id: int = _m("u64", 0)
    step: int = _m("u64", 0)
    total: int = _m("u64", 0)
    message: Optional[str] = _m("str")


@dataclass
class Result:
    request_id: int = _m("u64", 0)
    outputs: Optional[Dict[str, Any]] = _m("nested", ref="Values")
    # daemon -> client, only to a Submit with payload_frames (which this SDK never sends): the
    # outputs travel in the frame before this one
    outputs_in_frame: bool = _m("bool", False)
    job_id: int = _m("u64", 0)  # daemon -> client: a durable call's job id (0: not durable)


@dataclass
class Failure:
    request_id: int = _m("u64", 0)
    code: Union[ErrorCode, int] = _m("code", ErrorCode.INTERNAL)
    message: Optional[str] = _m("str")
    job_id: int = _m("u64", 0)  # daemon -> client: a durable call's job id (0: not durable)


@dataclass
class Item:
    """One partial result of a call (PROTOCOL.md §7.8), in ``seq`` order before the terminal reply."""

    request_id: int = _m("u64", 0)
    seq: int = _m("u64", 0)
    values: Optional[Dict[str, Any]] = _m("nested", ref="Values")


@dataclass
class Credit:
    """Cumulative flow-control credit of one stream of a call (PROTOCOL.md §7.8)."""

    request_id: int = _m("u64", 0)
    stream: int = _m("u32", 0)  # 0: the call's items
    items: int = _m("u64", 0)
    bytes: int = _m("u64", 0)
    resume_offset: int = _m("u64", 0)  # with resume: the bytes the receiver has (PROTOCOL.md §7.9)
    resume: bool = _m("bool", False)  # stream >= 1: chunks were lost; send again from resume_offset


@dataclass
class Chunk:
    """One piece of a chunked bytes value of a call's stream (PROTOCOL.md §7.9)."""

    request_id: int = _m("u64", 0)
    stream: int = _m("u32", 0)  # >= 1: odd, the caller's; even, the worker's
    offset: int = _m("u64", 0)
    # at least one byte; 8-byte aligned like a Batch item. Decoded as a read-only memoryview of
    # the received message (no copy); bytes-like data of any kind is accepted when encoding.
    data: Optional[Union[bytes, memoryview]] = _m("[u8]")


# ---- daemon.fbs ----------------------------------------------------------------------------


@dataclass
class Ping:
    seq: int = _m("u64", 0)
    instance: Optional[str] = _m("str")


@dataclass
class WorkRequest:
    request_id: int = _m("u64", 0)
    node: str = _m("str", required=True)
    inputs: Optional[Dict[str, Any]] = _m("nested", ref="Values")
    parameters: Optional[Dict[str, Any]] = _m("nested", ref="Values")
    timeout_ms: int = _m("u64", 0)
    attempt: int = _m("u32", 1)
    caller: Optional[CallerContext] = _m("table", ref="CallerContext")
    # only to a worker that attached with payload_frames (this SDK never does): the inputs
    # travel in the frame before this one
    inputs_in_frame: bool = _m("bool", False)
    stream_window_items: int = _m("u32", 0)  # the caller reads Items (0: none; PROTOCOL.md §7.8)
    stream_window_bytes: int = _m("u64", 0)
    chunk_window_bytes: int = _m("u64", 0)  # the caller takes chunked outputs (0: none; §7.9)


@dataclass
class Abort:
    request_id: int = _m("u64", 0)
    code: Union[ErrorCode, int] = _m("code", ErrorCode.CANCELLED)
    reason: Optional[str] = _m("str")


@dataclass
class Attached:
    worker_id: Optional[str] = _m("str")
    instance: Optional[str] = _m("str")
    topic: Optional[str] = _m("str")
    broadcast_topic: Optional[str] = _m("str")
    ping_interval_ms: int = _m("u64", 0)
    liveness: int = _m("u32", 0)
    max_message_bytes: int = _m("u64", 0)
    no_answer_acks: bool = _m("bool", False)
    batches: bool = _m("bool", False)  # the daemon reads Batch (PROTOCOL.md §2.2)
    idle_pong_every: int = _m("u32", 0)
    direct: bool = _m("bool", False)  # everything on the response connection (PROTOCOL.md §7.10)


@dataclass
class Ack:
    late: bool = _m("bool", False)
    pong_seq: int = _m("u64", 0)
    missing: Optional[List[int]] = _list("[u64]")


@dataclass
class Rejected:
    code: Union[ErrorCode, int] = _m("code", ErrorCode.BAD_MESSAGE)
    message: Optional[str] = _m("str")
    reattach: bool = _m("bool", False)


@dataclass
class DaemonMessage:
    body: Any = _m("union", ref="DaemonBody")


# ---- worker.fbs ----------------------------------------------------------------------------


@dataclass
class Attach:
    worker_id: str = _m("str", required=True)
    hostname: Optional[str] = _m("str")
    sdk: Optional[str] = _m("str")
    pid: int = _m("u32", 0)
    session: Optional[str] = _m("str")
    capacity: int = _m("u32", 1)
    nodes: Optional[List[NodeSpec]] = _list("[table]", "NodeSpec")
    payload_frames: bool = _m("bool", False)  # this SDK keeps payloads inside the message
    no_answer_acks: bool = _m("bool", False)  # no Ack per answer: the Pong confirms (PROTOCOL.md §7.7)
    batches: bool = _m("bool", False)  # this SDK reads no Batch (PROTOCOL.md §2.2)
    idle_pongs: bool = _m("bool", False)  # may leave idle broadcast pings unanswered (§7.3)
    direct: bool = _m("bool", False)  # everything on the DEALER, no SUB (PROTOCOL.md §7.10)


@dataclass
class Pong:
    seq: int = _m("u64", 0)
    instance: Optional[str] = _m("str")
    in_flight: Optional[List[int]] = _list("[u64]")
    answered: Optional[List[int]] = _list("[u64]")  # answers kept, not yet confirmed (§7.6, §7.7)


@dataclass
class Detach:
    reason: Optional[str] = _m("str")


@dataclass
class WorkerMessage:
    worker_id: Optional[str] = _m("str")
    body: Any = _m("union", ref="WorkerBody")


# ---- client.fbs ----------------------------------------------------------------------------


@dataclass
class Submit:
    node: str = _m("str", required=True)
    inputs: Optional[Dict[str, Any]] = _m("nested", ref="Values")
    parameters: Optional[Dict[str, Any]] = _m("nested", ref="Values")
    timeout_ms: int = _m("u64", 0)
    want_progress: bool = _m("bool", False)
    want_accepted: bool = _m("bool", False)
    trace_id: Optional[str] = _m("str")
    payload_frames: bool = _m("bool", False)  # this SDK keeps payloads inside the message
    durable: bool = _m("bool", False)  # journaled: survives a daemon restart (DURABILITY.md)
    batch_replies: bool = _m("bool", False)  # this SDK reads no Batch (PROTOCOL.md §2.2)
    stream_window_items: int = _m("u32", 0)  # initial item credit (0: no items; PROTOCOL.md §7.8)
    stream_window_bytes: int = _m("u64", 0)
    chunk_window_bytes: int = _m("u64", 0)  # I take chunked outputs (0: none; PROTOCOL.md §7.9)
    resumable: bool = _m("bool", False)  # survives a break of the connection (PROTOCOL.md §8.3)


@dataclass
class Cancel:
    pass


@dataclass
class ListNodes:
    pass


@dataclass
class ListWorkers:
    pass


@dataclass
class GetStatus:
    pass


@dataclass
class GetNodeStats:
    """Per-node statistics and recent failures of the caller's workspace; answered NodeStatsReport."""


# admin commands: only from the local owner (ipc://) or an identity enrolled as admin


@dataclass
class TokenCreate:
    """Mints an enrollment token (docs/SECURITY.md §4); answered TokenCreated."""

    role: Optional[str] = _m("str")  # "worker" (daemon default), "client", "admin"
    ttl_ms: int = _m("u64", 0)  # 0: 24 hours
    uses: int = _m("u32", 1)
    workspace: Optional[str] = _m("str")  # absent: "default"
    name: Optional[str] = _m("str")  # a label for listings and the enrolled identity's name


@dataclass
class TokenList:
    pass


@dataclass
class TokenRevoke:
    id: str = _m("str", required=True)


@dataclass
class KeyList:
    pass


@dataclass
class KeyRevoke:
    id: str = _m("str", required=True)


# durable calls (docs/DURABILITY.md §6): all scoped to the caller's workspace


@dataclass
class JobRef:
    """One durable call to bind to this connection under ``request_id`` (a new id of this client)."""

    job_id: int = _m("u64", 0)
    request_id: int = _m("u64", 0)


@dataclass
class JobResume:
    """Binds open durable calls to this connection after a reconnect; each JobRef is answered
    under its own request_id (Accepted, the kept Result/Failure, or "no such job")."""

    jobs: Optional[List[JobRef]] = _list("[table]", "JobRef")


# a caller's reconnect (PROTOCOL.md §8.3)


@dataclass
class StreamOffset:
    """How many bytes of one of the worker's chunked output streams the caller has."""

    stream: int = _m("u32", 0)
    offset: int = _m("u64", 0)


@dataclass
class CallRef:
    """One resumable call to bind to this connection under ``request_id``, with what the caller
    received of it before the break."""

    call_token: int = _m("u64", 0)
    request_id: int = _m("u64", 0)
    items_received: int = _m("u64", 0)
    outputs: Optional[List[StreamOffset]] = _list("[table]", "StreamOffset")


@dataclass
class CallResume:
    """Binds resumable calls to this connection after its previous one broke (same daemon
    instance); each CallRef is answered under its own request_id (Accepted, the kept terminal
    reply, or Failure{Unavailable} "no such call")."""

    calls: Optional[List[CallRef]] = _list("[table]", "CallRef")


@dataclass
class JobAck:
    """The caller holds these jobs' terminal replies: the daemon forgets them. Never answered."""

    job_ids: Optional[List[int]] = _list("[u64]")


@dataclass
class JobGet:
    """Answered JobInfo while the call is open, its Result/Failure (job_id set) once finished."""

    job_id: int = _m("u64", 0)


@dataclass
class JobList:
    """Answered JobInfoList: the workspace's durable calls the daemon holds, oldest first: at
    most ``limit`` (0: the daemon's maximum, 1000) with a job id above ``after_job_id``."""

    limit: int = _m("u32", 0)
    after_job_id: int = _m("u64", 0)


@dataclass
class JobCancel:
    """Cancels a durable call; answered JobInfo (state FINISHED) or "no such job"."""

    job_id: int = _m("u64", 0)


@dataclass
class Watch:
    """Subscribes to changes of the caller's workspace: Events until Cancel (PROTOCOL.md §8.2)."""

    nodes: bool = _m("bool", False)
    workers: bool = _m("bool", False)
    calls: bool = _m("bool", False)


@dataclass
class OnBehalfOf:
    """A gateway's assertion of the end user (PROTOCOL.md §8.1); only gateways send it."""

    user: str = _m("str", required=True)
    workspace: str = _m("str", required=True)
    role: Optional[str] = _m("str")


@dataclass
class ClientMessage:
    request_id: int = _m("u64", 0)
    body: Any = _m("union", ref="ClientBody")
    on_behalf_of: Optional[OnBehalfOf] = _m("table", ref="OnBehalfOf")


# ---- reply.fbs -----------------------------------------------------------------------------


@dataclass
class Accepted:
    queued: bool = _m("bool", False)
    job_id: int = _m("u64", 0)  # a durable call's job id; 0: not durable
    call_token: int = _m("u64", 0)  # a resumable call's token for CallResume; 0: not resumable


@dataclass
class NodeInfo:
    spec: Optional[NodeSpec] = _m("table", ref="NodeSpec")
    workspace: Optional[str] = _m("str")
    workers: int = _m("u32", 0)
    capacity: int = _m("u32", 0)
    in_flight: int = _m("u32", 0)
    queue_depth: int = _m("u32", 0)


@dataclass
class NodeList:
    nodes: Optional[List[NodeInfo]] = _list("[table]", "NodeInfo")


@dataclass
class WorkerInfo:
    worker_id: Optional[str] = _m("str")
    hostname: Optional[str] = _m("str")
    sdk: Optional[str] = _m("str")
    pid: int = _m("u32", 0)
    state: Optional[str] = _m("str")
    capacity: int = _m("u32", 0)
    in_flight: int = _m("u32", 0)
    nodes: Optional[List[str]] = _list("[str]")
    workspace: Optional[str] = _m("str")
    identity: Optional[str] = _m("str")
    attached_ms: int = _m("u64", 0)
    last_seen_ms: int = _m("u64", 0)
    direct: bool = _m("bool", False)  # attached with Attach.direct: one connection (§7.10)


@dataclass
class WorkerList:
    workers: Optional[List[WorkerInfo]] = _list("[table]", "WorkerInfo")


@dataclass
class CodeCount:
    code: Union[ErrorCode, int] = _m("code", ErrorCode.NONE)
    count: int = _m("u64", 0)


@dataclass
class StatusReport:
    version: Optional[str] = _m("str")
    instance: Optional[str] = _m("str")
    uptime_ms: int = _m("u64", 0)
    workers: int = _m("u32", 0)
    nodes: int = _m("u32", 0)
    queued: int = _m("u32", 0)
    in_flight: int = _m("u32", 0)
    submitted: int = _m("u64", 0)
    completed: int = _m("u64", 0)
    failed: int = _m("u64", 0)
    failures: Optional[List[CodeCount]] = _list("[table]", "CodeCount")
    redispatched: int = _m("u64", 0)
    rate_1m: float = _m("f64", 0.0)
    recovering: int = _m("u32", 0)


@dataclass
class LatencyHistogram:
    """Durations in fixed buckets: counts[i] for upper_bounds_us[i-1] < d <= upper_bounds_us[i];
    one count more than bounds (the last: above every bound)."""

    upper_bounds_us: Optional[List[int]] = _list("[u64]")
    counts: Optional[List[int]] = _list("[u64]")
    count: int = _m("u64", 0)
    sum_us: int = _m("u64", 0)
    p50_us: int = _m("u64", 0)
    p90_us: int = _m("u64", 0)
    p99_us: int = _m("u64", 0)


@dataclass
class NodeStats:
    workspace: Optional[str] = _m("str")
    node: Optional[str] = _m("str")
    workers: int = _m("u32", 0)
    in_flight: int = _m("u32", 0)
    queue_depth: int = _m("u32", 0)
    completed: int = _m("u64", 0)
    failed: int = _m("u64", 0)
    failures: Optional[List[CodeCount]] = _list("[table]", "CodeCount")
    rate_1m: float = _m("f64", 0.0)
    queue_wait: Optional[LatencyHistogram] = _m("table", ref="LatencyHistogram")
    service: Optional[LatencyHistogram] = _m("table", ref="LatencyHistogram")


@dataclass
class RecentFailure:
    workspace: Optional[str] = _m("str")
    node: Optional[str] = _m("str")
    code: Union[ErrorCode, int] = _m("code", ErrorCode.NONE)
    message: Optional[str] = _m("str")
    age_ms: int = _m("u64", 0)


@dataclass
class NodeStatsReport:
    nodes: Optional[List[NodeStats]] = _list("[table]", "NodeStats")
    recent_failures: Optional[List[RecentFailure]] = _list("[table]", "RecentFailure")


@dataclass
class TokenCreated:
    """The answer to TokenCreate: the only time the token's secret exists in clear."""

    token: Optional[str] = _m("str")
    id: Optional[str] = _m("str")
    expires_at: Optional[str] = _m("str")  # ISO 8601 UTC


@dataclass
class AdminReport:
    """The answer to the other admin commands: a JSON document (docs/SECURITY.md)."""

    json: Optional[str] = _m("str")


@dataclass
class JobInfo:
    """One durable call as the daemon holds it (times: wall clock, ms since the Unix epoch)."""

    job_id: int = _m("u64", 0)
    state: Union[JobState, int] = _m("jobstate", JobState.QUEUED)
    node: Optional[str] = _m("str")
    workspace: Optional[str] = _m("str")
    submitted_ms: int = _m("u64", 0)
    worker_id: Optional[str] = _m("str")  # RUNNING, RECOVERING: the worker that has it
    attempts: int = _m("u32", 0)  # dispatches so far
    code: Union[ErrorCode, int] = _m("code", ErrorCode.NONE)  # FINISHED: NONE for a Result
    finished_ms: int = _m("u64", 0)


@dataclass
class JobInfoList:
    jobs: Optional[List[JobInfo]] = _list("[table]", "JobInfo")
    more: bool = _m("bool", False)


@dataclass
class CallInfo:
    """One of the watcher's own calls (Event.call, Event.calls)."""

    request_id: int = _m("u64", 0)
    job_id: int = _m("u64", 0)
    node: Optional[str] = _m("str")
    state: Union[JobState, int] = _m("jobstate", JobState.QUEUED)
    worker_id: Optional[str] = _m("str")
    attempts: int = _m("u32", 0)
    code: Union[ErrorCode, int] = _m("code", ErrorCode.NONE)
    trace_id: Optional[str] = _m("str")


@dataclass
class Event:
    """One pushed event of a Watch: a Snapshot (lists), a delta (one node, worker or call), or
    an Overflow (a Snapshot follows)."""

    seq: int = _m("u64", 0)
    kind: Union[EventKind, int] = _m("eventkind", EventKind.SNAPSHOT)
    nodes: Optional[List[NodeInfo]] = _list("[table]", "NodeInfo")
    workers: Optional[List[WorkerInfo]] = _list("[table]", "WorkerInfo")
    calls: Optional[List[CallInfo]] = _list("[table]", "CallInfo")
    node: Optional[NodeInfo] = _m("table", ref="NodeInfo")
    worker: Optional[WorkerInfo] = _m("table", ref="WorkerInfo")
    call: Optional[CallInfo] = _m("table", ref="CallInfo")


@dataclass
class ClientReply:
    request_id: int = _m("u64", 0)
    body: Any = _m("union", ref="ReplyBody")


# ---- enroll.fbs / enrolled.fbs -------------------------------------------------------------


@dataclass
class EnrollRequest:
    token: str = _m("str", required=True)
    public_key: str = _m("str", required=True)
    role: Optional[str] = _m("str")
    name: Optional[str] = _m("str")
    hostname: Optional[str] = _m("str")


@dataclass
class EnrollResponse:
    ok: bool = _m("bool", False)
    identity_id: Optional[str] = _m("str")
    role: Optional[str] = _m("str")
    workspace: Optional[str] = _m("str")
    name: Optional[str] = _m("str")
    code: Union[ErrorCode, int] = _m("code", ErrorCode.NONE)
    error: Optional[str] = _m("str")


# ---- registry: unions, roots, layouts ------------------------------------------------------

UNION_MEMBERS: Dict[str, Tuple[type, ...]] = {
    # index 0 is NONE; member i has type value i
    "WorkerBody": (Attach, Pong, Progress, Result, Failure, Detach, Batch, Item, Chunk, Credit),
    "DaemonBody": (Ping, WorkRequest, Abort, Attached, Ack, Rejected, Batch, Credit, Chunk),
    "ClientBody": (
        Submit, Cancel, ListNodes, ListWorkers, GetStatus, TokenCreate, TokenList, TokenRevoke,
        KeyList, KeyRevoke, GetNodeStats, JobResume, JobAck, JobGet, JobList, JobCancel, Batch,
        Watch, Credit, Chunk, CallResume,
    ),
    "ReplyBody": (
        Accepted, Progress, Result, Failure, NodeList, WorkerList, StatusReport, TokenCreated,
        AdminReport, NodeStatsReport, JobInfo, JobInfoList, Batch, Event, Item, Chunk, Credit,
    ),
}

def union_member(union: str, type_value: int) -> Optional[type]:
    """The member class of ``union`` with type value ``type_value``, or None if unknown."""
    members = UNION_MEMBERS[union]
    return members[type_value - 1] if 0 < type_value <= len(members) else None


ROOTS: Dict[str, Tuple[type, bytes]] = {
    "WorkerMessage": (WorkerMessage, b"MSWK"),
    "DaemonMessage": (DaemonMessage, b"MSDM"),
    "ClientMessage": (ClientMessage, b"MSCL"),
    "ClientReply": (ClientReply, b"MSCR"),
    "EnrollRequest": (EnrollRequest, b"MSEQ"),
    "EnrollResponse": (EnrollResponse, b"MSER"),
}

TABLES: Dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Port, NodeSpec, CallerContext, Progress, Result, Failure, Ping, WorkRequest, Abort,
        Attached, Ack, Rejected, DaemonMessage, Attach, Pong, Detach, WorkerMessage, Submit,
        Cancel, ListNodes, ListWorkers, GetStatus, TokenCreate, TokenList, TokenRevoke, KeyList,
        KeyRevoke, OnBehalfOf, ClientMessage, Accepted, NodeInfo, NodeList, WorkerInfo, WorkerList, CodeCount,
        StatusReport, TokenCreated, AdminReport, ClientReply, EnrollRequest, EnrollResponse,
        GetNodeStats, LatencyHistogram, NodeStats, RecentFailure, NodeStatsReport,
        JobRef, JobResume, JobAck, JobGet, JobList, JobCancel, JobInfo, JobInfoList, BatchItem, Batch,
        Watch, CallInfo, Event, Item, Credit, Chunk, StreamOffset, CallRef, CallResume,
    )
}  # fmt: skip


# Field kinds stored as scalars: the wire scalars, and the ubyte enums JobState and EventKind.
ENUM_KINDS: Dict[str, Any] = {"jobstate": JobState, "eventkind": EventKind}
SCALAR_KINDS = frozenset(_flat.SCALARS) | frozenset(ENUM_KINDS)


def _camel(name: str) -> str:
    """flatc's Python method names: ``rate_1m`` -> ``Rate1m``."""
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


class _F:
    """A dataclass field with its wire slot and the generated builder functions it uses."""

    __slots__ = ("name", "kind", "ref", "required", "slot", "default", "add", "add_type", "start_vector")

    def __init__(self, f: "dataclasses.Field[Any]", slot: int, mod: Any):
        md = f.metadata
        self.name = f.name
        self.kind: str = md["kind"]
        self.ref: Optional[str] = md["ref"]
        self.required: bool = md["required"]
        self.slot = slot
        self.default: Any = f.default
        camel = _camel(f.name)
        # flatc's untyped builder functions, with the types of their calls here.
        self.add: Callable[[flatbuffers.Builder, Any], None] = getattr(mod, "Add" + camel)
        self.add_type: Callable[[flatbuffers.Builder, int], None] = (
            getattr(mod, "Add" + camel + "Type") if self.kind == "union" else _not_generated
        )
        self.start_vector: Callable[[flatbuffers.Builder, int], int] = (
            getattr(mod, "Start" + camel + "Vector") if self.kind.startswith("[") else _not_generated
        )


def _not_generated(b: flatbuffers.Builder, n: int) -> NoReturn:
    raise TypeError("flatc generates no such builder function for this field's kind")


def nested_vector(b: flatbuffers.Builder, data: Union[bytes, memoryview]) -> int:
    """A [ubyte] vector holding a nested Values buffer, its data on an 8-byte boundary of the
    finished message (PROTOCOL.md §3 rule 3: receivers refuse a misaligned payload). The
    generated ``Make*VectorFromBytes`` aligns to 4 only."""
    b.StartVector(1, len(data), 8)
    b.head -= len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    return b.EndVector()


_FIELDS: Dict[type, List[_F]] = {}
_MODULES: Dict[type, Any] = {}


def _register() -> None:
    for name, cls in TABLES.items():
        mod = importlib.import_module(f"muster.wire.{name}")
        _MODULES[cls] = mod
        out: List[_F] = []
        layout: List[_flat.Field] = []
        slot = 0
        for f in dataclasses.fields(cls):
            kind = f.metadata["kind"]
            if kind == "union":
                layout.append(_flat.Field(f.name + "_type", "union_type", slot, f.metadata["ref"]))
                slot += 1
            out.append(_F(f, slot, mod))
            flat_kind = "u8" if kind in ENUM_KINDS else {"value": "table", "code": "code"}.get(kind, kind)
            ref = "Value" if kind == "value" else f.metadata["ref"]
            layout.append(_flat.Field(f.name, flat_kind, slot, ref, f.metadata["required"]))
            slot += 1
        _FIELDS[cls] = out
        _flat.LAYOUTS[name] = layout
    for union, members in UNION_MEMBERS.items():
        _flat.UNIONS[union] = {i + 1: m.__name__ for i, m in enumerate(members)}


_register()


def _ref_name(f: _F) -> str:
    """The table or union a table, vector-of-tables or union field refers to."""
    if f.ref is None:
        raise TypeError(f"field {f.name} of kind {f.kind} names no table or union")
    return f.ref


def union_type(union: str, body: Any) -> int:
    """The type value of a union member instance (0 for None)."""
    if body is None:
        return 0
    try:
        return UNION_MEMBERS[union].index(type(body)) + 1
    except ValueError:
        raise TypeError(f"a {type(body).__name__} is not a member of {union}") from None


# ---- encoding ------------------------------------------------------------------------------


def _encode_table(b: flatbuffers.Builder, obj: Any) -> int:
    cls = type(obj)
    fields_ = _FIELDS.get(cls)
    if fields_ is None:
        raise TypeError(f"a {cls.__name__} is not a muster wire table")
    mod = _MODULES[cls]
    offsets: Dict[str, int] = {}
    for f in fields_:
        v = getattr(obj, f.name)
        kind = f.kind
        if kind in SCALAR_KINDS:
            continue
        if v is None and kind != "value":
            if f.required:
                raise ValueError(f"{cls.__name__}.{f.name} is required")
            continue
        if kind == "str":
            if not isinstance(v, str):
                raise TypeError(f"{cls.__name__}.{f.name} must be a str, not {type(v).__name__}")
            offsets[f.name] = b.CreateString(v)
        elif kind == "table" or kind == "union":
            offsets[f.name] = _encode_table(b, v)
        elif kind == "[table]":
            items = [_encode_table(b, x) for x in v]
            f.start_vector(b, len(items))
            for off in reversed(items):
                b.PrependUOffsetTRelative(off)
            offsets[f.name] = b.EndVector()
        elif kind == "[str]":
            items = [b.CreateString(x) for x in v]
            f.start_vector(b, len(items))
            for off in reversed(items):
                b.PrependUOffsetTRelative(off)
            offsets[f.name] = b.EndVector()
        elif kind == "[u64]":
            f.start_vector(b, len(v))
            for x in reversed(list(v)):
                b.PrependUint64(int(x))
            offsets[f.name] = b.EndVector()
        elif kind == "[u8]":
            # 8-byte aligned, as a Batch item must be; bytes-like data is copied once, into the buffer
            data = memoryview(v).cast("B") if isinstance(v, (bytes, bytearray, memoryview)) else bytes(v)
            offsets[f.name] = nested_vector(b, data)
        elif kind == "nested":
            if isinstance(v, (bytes, bytearray, memoryview)):
                data = bytes(v)  # an already encoded Values buffer, forwarded as is
            else:
                try:
                    data = _values.encode_values(v)
                except (TypeError, ValueError, OverflowError) as e:
                    raise type(e)(f"{f.name}: {e}") from None
            offsets[f.name] = nested_vector(b, data)
        elif kind == "value":
            if v is not NO_DEFAULT:
                offsets[f.name] = _values.encode_value(b, v, f"{f.name}")
    mod.Start(b)
    for f in fields_:
        kind = f.kind
        if kind in SCALAR_KINDS:
            v = getattr(obj, f.name)
            if kind == "bool":
                f.add(b, bool(v))
            elif kind == "f64":
                f.add(b, float(v))
            else:
                f.add(b, int(v))
        elif kind == "union":
            body = getattr(obj, f.name)
            if body is not None:
                f.add_type(b, union_type(_ref_name(f), body))
                f.add(b, offsets[f.name])
        elif f.name in offsets:
            f.add(b, offsets[f.name])
    end: int = mod.End(b)
    return end


def encode(message: Any) -> bytes:
    """Encodes a root message (WorkerMessage, DaemonMessage, ClientMessage, ClientReply,
    EnrollRequest, EnrollResponse) into one buffer finished with its file identifier."""
    name = type(message).__name__
    if name not in ROOTS:
        raise TypeError(f"a {name} is not a root message")
    b = flatbuffers.Builder(256)
    root = _encode_table(b, message)
    b.Finish(root, file_identifier=ROOTS[name][1])
    return bytes(b.Output())


# ---- decoding ------------------------------------------------------------------------------


def _decode_code(v: int) -> Union[ErrorCode, int]:
    try:
        return ErrorCode(v)
    except ValueError:
        return v  # a code from a newer peer


def _decode_enum(kind: str, v: int) -> Any:
    try:
        return ENUM_KINDS[kind](v)
    except ValueError:
        return v  # a value from a newer peer


def _decode_table(r: _flat.Reader, pos: int, cls: type) -> Any:
    kwargs: Dict[str, Any] = {}
    for f in _FIELDS[cls]:
        kind = f.kind
        if kind in SCALAR_KINDS:
            if kind == "code":
                kwargs[f.name] = _decode_code(r.scalar(pos, f.slot, "code", f.default))
            elif kind in ENUM_KINDS:
                kwargs[f.name] = _decode_enum(kind, r.scalar(pos, f.slot, "u8", f.default))
            else:
                kwargs[f.name] = r.scalar(pos, f.slot, kind, f.default)
            continue
        if kind == "union":
            utype = r.scalar(pos, f.slot - 1, "u8", 0)
            p = r.ref(pos, f.slot)
            member = union_member(_ref_name(f), utype)
            if member is None:
                raise BadMessage(f"{cls.__name__}.{f.name}: union type {utype} is NONE or unknown")
            if not p:
                raise BadMessage(f"{cls.__name__}.{f.name}: union member is missing")
            kwargs[f.name] = _decode_table(r, p, member)
            continue
        p = r.ref(pos, f.slot)
        if not p:
            kwargs[f.name] = NO_DEFAULT if kind == "value" else None
            continue
        if kind == "str":
            kwargs[f.name] = r.string_at(p)
        elif kind == "table":
            kwargs[f.name] = _decode_table(r, p, TABLES[_ref_name(f)])
        elif kind == "[table]":
            sub = TABLES[_ref_name(f)]
            kwargs[f.name] = [_decode_table(r, e, sub) for e in r.offsets(p)]
        elif kind == "[str]":
            kwargs[f.name] = [r.string_at(e) for e in r.offsets(p)]
        elif kind == "[u64]":
            kwargs[f.name] = r.u64s(p)
        elif kind == "[u8]":
            # a chunk's data is a view of the received message: the one large field read without a copy
            kwargs[f.name] = r.view_at(p) if cls is Chunk else r.bytes_at(p)
        elif kind == "nested":
            data = r.bytes_at(p)
            try:  # decode() verified the message with its nested payloads: not again
                kwargs[f.name] = _values.decode_values(data, verified=True)
            except BadMessage as e:
                raise BadMessage(f"{cls.__name__}.{f.name}: {e.message}") from None
        elif kind == "value":
            kwargs[f.name] = _values.decode_value(r, p)
    return cls(**kwargs)


def decode(data: Buffer, root: str, max_bytes: Optional[int] = None) -> Any:
    """Verifies ``data`` as a buffer of root table ``root`` (with its identifier) and decodes
    it. Raises ``BadMessage`` — and nothing else — if the bytes are not a valid message, are
    larger than ``max_bytes``, or carry a NONE or unknown union member. The exception's
    ``request_id`` attribute is set when the envelope was readable and had one (a WorkRequest
    whose payload is bad can still be answered)."""
    cls, identifier = ROOTS[root]
    try:
        size = len(data)
        if size < 8 or size >= _flat.MAX_BUFFER_SIZE:
            raise BadMessage(f"{root}: a {size}-byte buffer is not a muster message")
        if max_bytes is not None and size > max_bytes:
            raise BadMessage(f"{root}: {size} bytes is over the {max_bytes}-byte limit")
        if bytes(data[4:8]) != identifier:
            raise BadMessage(
                f"{root}: file identifier {bytes(data[4:8])!r} is not {identifier.decode()}"
            )
        _flat.verify_buffer(data, root, identifier)
    except _flat.VerifyError as e:
        err = BadMessage(f"verification failed: {e}")
        err.request_id = None
        try:  # is only a nested payload bad? then the envelope can be answered
            _flat.verify_buffer(data, root, identifier, check_nested=False)
            _attach_request_id(err, _flat.Reader(data), cls)
        except Exception:
            pass
        raise err from None
    except BadMessage:
        raise
    except Exception as e:  # never crash on bad input
        raise BadMessage(f"{root}: {type(e).__name__}: {e}") from None
    r = _flat.Reader(data)
    try:
        return _decode_table(r, r.root(), cls)
    except BadMessage as e:
        _attach_request_id(e, r, cls)
        raise
    except Exception as e:  # UnicodeDecodeError, RecursionError, ...
        err = BadMessage(f"{root}: {type(e).__name__}: {e}")
        _attach_request_id(err, r, cls)
        raise err from None


def _attach_request_id(err: BadMessage, r: _flat.Reader, cls: type) -> None:
    """Best effort: the request id of the message that failed to decode, if it has one."""
    err.request_id = None
    try:
        root = r.root()
        if cls is DaemonMessage and r.scalar(root, 0, "u8", 0) == 2:  # WorkRequest
            err.request_id = r.scalar(r.ref(root, 1), 0, "u64", 0)
        elif cls in (ClientMessage, ClientReply):
            err.request_id = r.scalar(root, 0, "u64", 0)
    except Exception:
        pass


def decode_worker_message(data: Buffer, max_bytes: Optional[int] = None) -> WorkerMessage:
    message: WorkerMessage = decode(data, "WorkerMessage", max_bytes)
    return message


def decode_daemon_message(data: Buffer, max_bytes: Optional[int] = None) -> DaemonMessage:
    message: DaemonMessage = decode(data, "DaemonMessage", max_bytes)
    return message


def decode_client_message(data: Buffer, max_bytes: Optional[int] = None) -> ClientMessage:
    message: ClientMessage = decode(data, "ClientMessage", max_bytes)
    return message


def decode_client_reply(data: Buffer, max_bytes: Optional[int] = None) -> ClientReply:
    message: ClientReply = decode(data, "ClientReply", max_bytes)
    return message


def decode_enroll_request(data: Buffer, max_bytes: Optional[int] = None) -> EnrollRequest:
    message: EnrollRequest = decode(data, "EnrollRequest", max_bytes)
    return message


def decode_enroll_response(data: Buffer, max_bytes: Optional[int] = None) -> EnrollResponse:
    message: EnrollResponse = decode(data, "EnrollResponse", max_bytes)
    return message


def table_fields(cls: type) -> List[Tuple[str, str, Optional[str], Any]]:
    """(name, kind, ref, default) of each field of a wire dataclass, in schema order."""
    return [(f.name, f.kind, f.ref, f.default) for f in _FIELDS[cls]]


__all__ = [name for name in TABLES] + [
    "NO_DEFAULT",
    "JobState",
    "EventKind",
    "UNION_MEMBERS",
    "union_member",
    "ROOTS",
    "TABLES",
    "encode",
    "decode",
    "decode_worker_message",
    "decode_daemon_message",
    "decode_client_message",
    "decode_client_reply",
    "decode_enroll_request",
    "decode_enroll_response",
    "union_type",
    "table_fields",
]
