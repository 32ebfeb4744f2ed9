"""Encoders for the messages a stream sends once per item or per grant — a worker's
``WorkerMessage{Item}`` and a caller's ``ClientMessage{Credit}`` — that write the same bytes as
``messages.encode`` at a fraction of its cost (docs/STREAMS.md §2).

Owns: a small cache of message layouts. A FlatBuffers layout depends only on which scalar fields
are zero (they are left out) and on the lengths of the strings and vectors, never on the other
values; so the first message of a shape is encoded by ``messages.encode`` with sentinel values,
the sentinels' positions are found, and later messages of that shape are a copy of that buffer
with their values written in place. Must never: send bytes ``messages.encode`` would not write
(a sentinel found twice, or not at all, falls back to ``messages.encode`` for that shape).
"""

from __future__ import annotations

import os
import struct
from typing import Callable, Dict, List, Optional, Tuple

from . import messages as m

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_MAX_SHAPES = 256  # the cache is emptied when full: item sizes vary, the common ones come back

# A shape's layout: the buffer, then (offset, width) of each scalar in the order the encoder
# takes its values (None: the value is zero, left out), then the payload's offset (-1: none).
_Layout = Tuple[bytes, Tuple[Optional[Tuple[int, int]], ...], int]
_layouts: Dict[Tuple[object, ...], Optional[_Layout]] = {}
_Encoder = Callable[[List[int], bytes], bytes]


def _sentinel(width: int) -> int:
    """A random non-zero value whose bytes are unlikely to occur anywhere else in the buffer."""
    while True:
        v = int.from_bytes(os.urandom(width), "little")
        if v and all(v >> (8 * i) & 0xFF for i in range(width)):
            return v


def _learn(encode_with: _Encoder, widths: Tuple[int, ...], nonzero: Tuple[bool, ...], payload_len: int) -> Optional[_Layout]:
    values = [_sentinel(w) if nz else 0 for w, nz in zip(widths, nonzero)]
    payload = os.urandom(payload_len) if payload_len else b""
    buf = encode_with(values, payload)
    places: List[Optional[Tuple[int, int]]] = []
    for v, w, nz in zip(values, widths, nonzero):
        if not nz:
            places.append(None)
            continue
        pattern = v.to_bytes(w, "little")
        at = buf.find(pattern)
        if at < 0 or buf.find(pattern, at + 1) >= 0:
            return None
        places.append((at, w))
    at = -1
    if payload_len:
        at = buf.find(payload)
        if at < 0 or buf.find(payload, at + 1) >= 0:
            return None
    return buf, tuple(places), at


def _build(key: Tuple[object, ...], encode_with: _Encoder, widths: Tuple[int, ...], values: Tuple[int, ...], payload: bytes) -> bytes:
    if key in _layouts:
        layout = _layouts[key]
    else:
        if len(_layouts) >= _MAX_SHAPES:
            _layouts.clear()
        layout = _layouts[key] = _learn(encode_with, widths, tuple(bool(v) for v in values), len(payload))
    if layout is None:
        return encode_with(list(values), payload)
    template, places, at = layout
    out = bytearray(template)
    for place, v in zip(places, values):
        if place is not None:
            (_U64 if place[1] == 8 else _U32).pack_into(out, place[0], v)
    if at >= 0:
        out[at : at + len(payload)] = payload
    return bytes(out)


def worker_item(worker_id: str, request_id: int, seq: int, payload: bytes) -> bytes:
    """A worker's ``WorkerMessage{Item}`` whose ``values`` is the encoded Values buffer
    ``payload`` (byte for byte what ``messages.encode`` writes)."""

    def encode_with(v: List[int], p: bytes) -> bytes:
        return m.encode(m.WorkerMessage(worker_id=worker_id, body=m.Item(request_id=v[0], seq=v[1], values=p)))  # type: ignore[arg-type]

    key = ("item", worker_id, request_id != 0, seq != 0, len(payload))
    return _build(key, encode_with, (8, 8), (request_id, seq), payload)


def client_credit(request_id: int, stream: int, items: int, nbytes: int) -> bytes:
    """A caller's ``ClientMessage{Credit}`` (the root's request id is the credit's)."""

    def encode_with(v: List[int], _: bytes) -> bytes:
        return m.encode(m.ClientMessage(request_id=v[0], body=m.Credit(request_id=v[1], stream=v[2], items=v[3], bytes=v[4])))

    values = (request_id, request_id, stream, items, nbytes)
    key = ("credit", tuple(v != 0 for v in values))
    return _build(key, encode_with, (8, 8, 4, 8, 8), values, b"")
