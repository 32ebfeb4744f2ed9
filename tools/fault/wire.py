"""wire.py — just enough of the muster wire protocol (docs/PROTOCOL.md) for the fault tools,
written from the spec with the plain `flatbuffers` runtime: no SDK involved, so the fault
driver checks the daemon with an independent implementation and keeps working while the SDKs
change.

Owns: Submit templates whose request id (and echo nonce) are patched in place, so a submit
costs a bytes copy and two struct.pack_into calls; a minimal ClientReply reader; the worker
messages the bad worker sends (Attach, Pong) and the daemon messages it reads.
Must never: guess a field slot: every slot number below is the field's position in schema/*.fbs.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import flatbuffers

# ---- enums (schema/common.fbs, client.fbs, reply.fbs, worker.fbs, daemon.fbs) ----------------

CODE_NAMES = ["NONE", "NO_WORKER", "TIMEOUT", "WORKER_LOST", "CANCELLED", "INVALID_REQUEST",
              "PERMISSION_DENIED", "QUEUE_FULL", "WORKER_ERROR", "BAD_MESSAGE", "INTERNAL",
              "SHUTTING_DOWN", "UNAVAILABLE"]
CODE = {name: i for i, name in enumerate(CODE_NAMES)}


def code_name(code: int) -> str:
    return CODE_NAMES[code] if 0 <= code < len(CODE_NAMES) else f"CODE_{code}"


CLIENT_SUBMIT, CLIENT_CANCEL, CLIENT_LIST_NODES, CLIENT_LIST_WORKERS, CLIENT_GET_STATUS = 1, 2, 3, 4, 5
REPLY_ACCEPTED, REPLY_PROGRESS, REPLY_RESULT, REPLY_FAILURE = 1, 2, 3, 4
REPLY_NODE_LIST, REPLY_WORKER_LIST, REPLY_STATUS = 5, 6, 7
WORKER_ATTACH, WORKER_PONG, WORKER_PROGRESS, WORKER_RESULT, WORKER_FAILURE, WORKER_DETACH = 1, 2, 3, 4, 5, 6
DAEMON_PING, DAEMON_WORK, DAEMON_ABORT, DAEMON_ATTACHED, DAEMON_ACK, DAEMON_REJECTED = 1, 2, 3, 4, 5, 6

VALUE_INT, VALUE_STRING = 2, 4

# ---- building -------------------------------------------------------------------------------


def _nested(b: flatbuffers.Builder, data: bytes) -> int:
    """A [ubyte] vector whose data starts on an 8-byte boundary (PROTOCOL.md §3 rule 3)."""
    b.StartVector(1, len(data), 8)
    b.head -= len(data)
    b.Bytes[b.head:b.head + len(data)] = data
    return b.EndVector()


def encode_values(entries: Dict[str, object]) -> bytes:
    """A Values buffer (identifier MSVL) of int and string entries."""
    b = flatbuffers.Builder(128)
    offs = []
    for key, value in entries.items():
        k = b.CreateString(key)
        s = b.CreateString(value) if isinstance(value, str) else None
        b.StartObject(10)  # Value
        if isinstance(value, str):
            b.PrependUint8Slot(0, VALUE_STRING, 0)
            b.PrependUOffsetTRelativeSlot(4, s, 0)
        else:
            b.PrependUint8Slot(0, VALUE_INT, 0)
            b.PrependInt64Slot(2, int(value), 0)
        v = b.EndObject()
        b.StartObject(2)  # Entry
        b.PrependUOffsetTRelativeSlot(0, k, 0)
        b.PrependUOffsetTRelativeSlot(1, v, 0)
        offs.append(b.EndObject())
    b.StartVector(4, len(offs), 4)
    for o in reversed(offs):
        b.PrependUOffsetTRelative(o)
    vec = b.EndVector()
    b.StartObject(1)  # Values
    b.PrependUOffsetTRelativeSlot(0, vec, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"MSVL")
    return bytes(b.Output())


def client_message(request_id: int, body_type: int, build_body) -> bytes:
    b = flatbuffers.Builder(256)
    body = build_body(b)
    b.StartObject(3)  # ClientMessage
    b.PrependUint64Slot(0, request_id, 0)
    b.PrependUint8Slot(1, body_type, 0)
    b.PrependUOffsetTRelativeSlot(2, body, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"MSCL")
    return bytes(b.Output())


def empty_body(b: flatbuffers.Builder) -> int:
    b.StartObject(0)
    return b.EndObject()


def status_request(request_id: int) -> bytes:
    return client_message(request_id, CLIENT_GET_STATUS, empty_body)


def cancel_request(request_id: int) -> bytes:
    return client_message(request_id, CLIENT_CANCEL, empty_body)


_RID_SENTINEL = 0x5EED_F00D_CAFE_B0B1
_NONCE_SENTINEL = 0x7A11_D0C5_0B5E_55ED


def _find_once(data: bytes, value: int) -> int:
    needle = struct.pack("<Q", value)
    at = data.find(needle)
    if at < 0 or data.find(needle, at + 1) >= 0:
        raise AssertionError("sentinel not found exactly once")
    return at


class SubmitTemplate:
    """A Submit for one node and fixed inputs; `make(rid)` patches the request id in place,
    and, if the inputs carry a nonce, sets it to the request id too (echo returns it, which lets
    the driver check that each result belongs to its request)."""

    def __init__(self, node: str, inputs: Dict[str, object], timeout_ms: int,
                 nonce_key: Optional[str] = None, want_accepted: bool = False,
                 want_progress: bool = False, durable: bool = False):
        self.node = node
        self.timeout_ms = timeout_ms
        values = dict(inputs)
        if nonce_key:
            values[nonce_key] = _NONCE_SENTINEL
        payload = encode_values(values) if values else b""

        def body(b: flatbuffers.Builder) -> int:
            nested = _nested(b, payload) if payload else 0
            n = b.CreateString(node)
            b.StartObject(9 if durable else 7)  # Submit
            b.PrependUOffsetTRelativeSlot(0, n, 0)
            if nested:
                b.PrependUOffsetTRelativeSlot(1, nested, 0)
            b.PrependUint64Slot(3, timeout_ms, 0)
            b.PrependBoolSlot(4, want_progress, False)
            b.PrependBoolSlot(5, want_accepted, False)
            if durable:
                b.PrependBoolSlot(8, True, False)  # Submit.durable
            return b.EndObject()

        self.data = client_message(_RID_SENTINEL, CLIENT_SUBMIT, body)
        self.rid_at = _find_once(self.data, _RID_SENTINEL)
        self.nonce_at = _find_once(self.data, _NONCE_SENTINEL) if nonce_key else -1

    def make(self, rid: int) -> bytearray:
        out = bytearray(self.data)
        struct.pack_into("<Q", out, self.rid_at, rid)
        if self.nonce_at >= 0:
            struct.pack_into("<Q", out, self.nonce_at, rid)
        return out


def nonce_bytes(rid: int) -> bytes:
    return struct.pack("<Q", rid)


# ---- reading ----------------------------------------------------------------------------------

_u8 = struct.Struct("<B").unpack_from
_u16 = struct.Struct("<H").unpack_from
_i32 = struct.Struct("<i").unpack_from
_u32 = struct.Struct("<I").unpack_from
_u64 = struct.Struct("<Q").unpack_from


def _field(buf: bytes, table: int, slot: int) -> int:
    """Absolute position of a table field, or 0 when absent."""
    vt = table - _i32(buf, table)[0]
    vt_size = _u16(buf, vt)[0]
    at = 4 + 2 * slot
    if at >= vt_size:
        return 0
    off = _u16(buf, vt + at)[0]
    return table + off if off else 0


def _deref(buf: bytes, pos: int) -> int:
    return pos + _u32(buf, pos)[0]


def _string(buf: bytes, table: int, slot: int) -> str:
    f = _field(buf, table, slot)
    if not f:
        return ""
    s = _deref(buf, f)
    n = _u32(buf, s)[0]
    return bytes(buf[s + 4:s + 4 + n]).decode("utf-8", "replace")


def _bytes(buf: bytes, table: int, slot: int) -> bytes:
    f = _field(buf, table, slot)
    if not f:
        return b""
    s = _deref(buf, f)
    n = _u32(buf, s)[0]
    return bytes(buf[s + 4:s + 4 + n])


def _scalar(buf: bytes, table: int, slot: int, unpack, default):
    f = _field(buf, table, slot)
    return unpack(buf, f)[0] if f else default


@dataclass
class Reply:
    request_id: int
    kind: int          # REPLY_*
    code: int = 0      # Failure code; 0 for a Result
    message: str = ""
    outputs: bytes = b""
    body: int = 0      # position of the body table (for status replies)
    raw: bytes = b""
    job_id: int = 0    # Accepted.job_id: a durable call's job id


def read_reply(buf: bytes) -> Optional[Reply]:
    """A ClientReply, trusting the daemon's encoding (the daemon is what is under test: a
    malformed reply raises, and the driver counts it)."""
    if len(buf) < 8 or buf[4:8] != b"MSCR":
        return None
    root = _u32(buf, 0)[0]
    rid = _scalar(buf, root, 0, _u64, 0)
    kind = _scalar(buf, root, 1, _u8, 0)
    bf = _field(buf, root, 2)
    body = _deref(buf, bf) if bf else 0
    r = Reply(rid, kind, body=body, raw=buf)
    if kind == REPLY_FAILURE and body:
        r.code = _scalar(buf, body, 1, _u16, CODE["INTERNAL"])
        r.message = _string(buf, body, 2)
    elif kind == REPLY_RESULT and body:
        r.outputs = _bytes(buf, body, 1)
    elif kind == REPLY_ACCEPTED and body:
        r.job_id = _scalar(buf, body, 1, _u64, 0)
    return r


def read_status(r: Reply) -> Dict[str, object]:
    """StatusReport fields (reply.fbs) as a dict."""
    buf, t = r.raw, r.body
    out: Dict[str, object] = {
        "version": _string(buf, t, 0), "instance": _string(buf, t, 1),
        "uptime_ms": _scalar(buf, t, 2, _u64, 0), "workers": _scalar(buf, t, 3, _u32, 0),
        "nodes": _scalar(buf, t, 4, _u32, 0), "queued": _scalar(buf, t, 5, _u32, 0),
        "in_flight": _scalar(buf, t, 6, _u32, 0), "submitted": _scalar(buf, t, 7, _u64, 0),
        "completed": _scalar(buf, t, 8, _u64, 0), "failed": _scalar(buf, t, 9, _u64, 0),
        "redispatched": _scalar(buf, t, 11, _u64, 0),
    }
    failures = {}
    f = _field(buf, t, 10)
    if f:
        vec = _deref(buf, f)
        for i in range(_u32(buf, vec)[0]):
            item = _deref(buf, vec + 4 + 4 * i)
            failures[code_name(_scalar(buf, item, 0, _u16, 0))] = _scalar(buf, item, 1, _u64, 0)
    out["failures"] = failures
    return out


# ---- the worker side (for the bad worker) -----------------------------------------------------


def worker_message(worker_id: str, body_type: int, build_body) -> bytes:
    b = flatbuffers.Builder(256)
    body = build_body(b)
    wid = b.CreateString(worker_id)
    b.StartObject(3)  # WorkerMessage
    b.PrependUOffsetTRelativeSlot(0, wid, 0)
    b.PrependUint8Slot(1, body_type, 0)
    b.PrependUOffsetTRelativeSlot(2, body, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"MSWK")
    return bytes(b.Output())


def attach(worker_id: str, session: str, capacity: int, nodes: List[Tuple[str, bool]],
           hostname: str = "fault", pid: int = 0, description: Optional[str] = None) -> bytes:
    def body(b: flatbuffers.Builder) -> int:
        specs = []
        for name, idempotent in nodes:
            n = b.CreateString(name)
            d = b.CreateString(description or "fault-injection node: never answers")
            b.StartObject(9)  # NodeSpec
            b.PrependUOffsetTRelativeSlot(0, n, 0)
            b.PrependUOffsetTRelativeSlot(1, d, 0)
            b.PrependBoolSlot(7, idempotent, False)
            specs.append(b.EndObject())
        b.StartVector(4, len(specs), 4)
        for s in reversed(specs):
            b.PrependUOffsetTRelative(s)
        vec = b.EndVector()
        wid = b.CreateString(worker_id)
        host = b.CreateString(hostname)
        sdk = b.CreateString("muster-fault/0")
        sess = b.CreateString(session)
        b.StartObject(7)  # Attach
        b.PrependUOffsetTRelativeSlot(0, wid, 0)
        b.PrependUOffsetTRelativeSlot(1, host, 0)
        b.PrependUOffsetTRelativeSlot(2, sdk, 0)
        b.PrependUint32Slot(3, pid, 0)
        b.PrependUOffsetTRelativeSlot(4, sess, 0)
        b.PrependUint32Slot(5, capacity, 1)
        b.PrependUOffsetTRelativeSlot(6, vec, 0)
        return b.EndObject()
    return worker_message(worker_id, WORKER_ATTACH, body)


def pong(worker_id: str, seq: int, instance: str, in_flight: List[int]) -> bytes:
    def body(b: flatbuffers.Builder) -> int:
        inst = b.CreateString(instance)
        b.StartVector(8, len(in_flight), 8)
        for i in reversed(in_flight):
            b.PrependUint64(i)
        vec = b.EndVector()
        b.StartObject(3)  # Pong
        b.PrependUint64Slot(0, seq, 0)
        b.PrependUOffsetTRelativeSlot(1, inst, 0)
        b.PrependUOffsetTRelativeSlot(2, vec, 0)
        return b.EndObject()
    return worker_message(worker_id, WORKER_PONG, body)


@dataclass
class DaemonMsg:
    kind: int
    seq: int = 0
    instance: str = ""
    request_id: int = 0
    reattach: bool = False
    code: int = 0
    message: str = ""
    topic: str = ""     # Attached: the worker topic to subscribe to (the only one applied)


def read_daemon(buf: bytes) -> Optional[DaemonMsg]:
    if len(buf) < 8 or buf[4:8] != b"MSDM":
        return None
    root = _u32(buf, 0)[0]
    kind = _scalar(buf, root, 0, _u8, 0)
    bf = _field(buf, root, 1)
    if not bf:
        return DaemonMsg(kind)
    t = _deref(buf, bf)
    if kind == DAEMON_PING:
        return DaemonMsg(kind, seq=_scalar(buf, t, 0, _u64, 0), instance=_string(buf, t, 1))
    if kind in (DAEMON_WORK, DAEMON_ABORT):
        return DaemonMsg(kind, request_id=_scalar(buf, t, 0, _u64, 0))
    if kind == DAEMON_ATTACHED:
        return DaemonMsg(kind, instance=_string(buf, t, 1), topic=_string(buf, t, 2))
    if kind == DAEMON_REJECTED:
        return DaemonMsg(kind, code=_scalar(buf, t, 0, _u16, CODE["BAD_MESSAGE"]),
                         message=_string(buf, t, 1), reattach=bool(_scalar(buf, t, 2, _u8, 0)))
    return DaemonMsg(kind)
