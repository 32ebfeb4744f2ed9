"""values.py — muster Values <-> Python, <-> FlatBuffers (schema/value.fbs) and <-> the JSON form
of docs/PROTOCOL.md §4.

Owns: the Python value model.

    muster kind   Python
    Null          None
    Bool          bool
    Int           int (must fit in int64)
    Float         float
    String        str
    Bytes         bytes (bytearray and memoryview are accepted when encoding)
    List          list (tuples are accepted when encoding)
    Map           dict with str keys, order kept
    Error         muster.ErrorValue(code, message)
    Chunked       muster.ChunkedValue(stream, size, sha256): a reference to bytes that travel as
                  chunks of one of the call's streams (PROTOCOL.md §7.9); the client and the
                  worker chunk and reassemble them (chunks.py), so applications see it only
                  where they ask to stream (an output_sink's outputs, a stream input's ctx.inputs)

Must never: lose information on a round trip (an int stays an int, bytes stay bytes, map order
is kept, -0.0 keeps its sign), or accept a value it cannot encode exactly.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, NoReturn, Optional, Protocol

import flatbuffers
from flatbuffers import Builder

from . import _flat
from .errors import BadMessage
from .wire import Entry as _EntryModule
from .wire import Value as _ValueModule
from .wire import Values as _ValuesModule


# flatc 2.0.8 writes untyped builder functions; these protocols give the ones this module calls
# their types (mypy checks each generated module against its protocol).
class _ValueBuilders(Protocol):
    def Start(self, builder: Builder) -> None: ...
    def AddKind(self, builder: Builder, kind: int) -> None: ...
    def AddBoolValue(self, builder: Builder, boolValue: bool) -> None: ...
    def AddIntValue(self, builder: Builder, intValue: int) -> None: ...
    def AddStringValue(self, builder: Builder, stringValue: int) -> None: ...
    def AddBytesValue(self, builder: Builder, bytesValue: int) -> None: ...
    def AddListValue(self, builder: Builder, listValue: int) -> None: ...
    def StartListValueVector(self, builder: Builder, numElems: int) -> int: ...
    def AddMapValue(self, builder: Builder, mapValue: int) -> None: ...
    def StartMapValueVector(self, builder: Builder, numElems: int) -> int: ...
    def AddErrorCode(self, builder: Builder, errorCode: int) -> None: ...
    def AddErrorMessage(self, builder: Builder, errorMessage: int) -> None: ...
    def AddChunkedStream(self, builder: Builder, chunkedStream: int) -> None: ...
    def AddChunkedSize(self, builder: Builder, chunkedSize: int) -> None: ...
    def AddChunkedSha256(self, builder: Builder, chunkedSha256: int) -> None: ...
    def End(self, builder: Builder) -> int: ...


class _EntryBuilders(Protocol):
    def Start(self, builder: Builder) -> None: ...
    def AddKey(self, builder: Builder, key: int) -> None: ...
    def AddValue(self, builder: Builder, value: int) -> None: ...
    def End(self, builder: Builder) -> int: ...


class _ValuesBuilders(Protocol):
    def Start(self, builder: Builder) -> None: ...
    def AddEntries(self, builder: Builder, entries: int) -> None: ...
    def StartEntriesVector(self, builder: Builder, numElems: int) -> int: ...
    def End(self, builder: Builder) -> int: ...


_Value: _ValueBuilders = _ValueModule
_Entry: _EntryBuilders = _EntryModule
_Values: _ValuesBuilders = _ValuesModule

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
VALUES_IDENTIFIER = b"MSVL"

# ValueKind (schema/value.fbs)
NULL, BOOL, INT, FLOAT, STRING, BYTES, LIST, MAP, ERROR, CHUNKED = range(10)
KIND_NAMES = ("null", "bool", "int", "float", "string", "bytes", "list", "map", "error", "chunked")
UINT32_MAX = (1 << 32) - 1
UINT64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class ErrorValue:
    """The Error kind of value: an error carried as data, ``{"$error": {code, message}}`` in
    JSON."""

    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class ChunkedValue:
    """The Chunked kind of value (PROTOCOL.md §7.9): ``size`` bytes whose SHA-256 is ``sha256``
    travel as Chunk messages of the call's stream ``stream`` (odd: the caller's, even: the
    worker's). ``{"$chunked": {"stream", "size", "sha256": hex}}`` in JSON."""

    stream: int
    size: int
    sha256: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.stream, int) or not 1 <= self.stream <= UINT32_MAX:
            raise ValueError(f"a chunked value's stream must be 1..{UINT32_MAX}, not {self.stream!r}")
        if not isinstance(self.size, int) or not 0 <= self.size <= UINT64_MAX:
            raise ValueError(f"a chunked value's size must be 0..{UINT64_MAX}, not {self.size!r}")
        if not isinstance(self.sha256, bytes) or len(self.sha256) != 32:
            raise ValueError("a chunked value's sha256 must be 32 bytes")


def kind_of(value: Any) -> str:
    """The muster kind name ("int", "map", ...) of a Python value; TypeError if it has none."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, numbers.Real):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, ErrorValue):
        return "error"
    if isinstance(value, ChunkedValue):
        return "chunked"
    raise TypeError(f"a {type(value).__name__} is not a muster value")


# ---- FlatBuffers encoding ------------------------------------------------------------------


def _check_key(key: Any, path: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{path}: map keys must be str, not {type(key).__name__}")
    return key


def encode_value(b: flatbuffers.Builder, value: Any, path: str = "$") -> int:
    """Writes one ``Value`` table and returns its offset."""
    if value is None:
        _Value.Start(b)
        return _Value.End(b)
    if isinstance(value, bool):
        _Value.Start(b)
        _Value.AddKind(b, BOOL)
        _Value.AddBoolValue(b, value)
        return _Value.End(b)
    if isinstance(value, numbers.Integral):
        i = int(value)
        if not INT64_MIN <= i <= INT64_MAX:
            raise OverflowError(f"{path}: integer {i} does not fit in int64")
        _Value.Start(b)
        _Value.AddKind(b, INT)
        _Value.AddIntValue(b, i)
        return _Value.End(b)
    if isinstance(value, numbers.Real):
        f = float(value)
        _Value.Start(b)
        _Value.AddKind(b, FLOAT)
        # Written even when it equals the default 0.0, so that -0.0 keeps its sign.
        b.PrependFloat64Slot(3, f, None)
        return _Value.End(b)
    if isinstance(value, str):
        s = b.CreateString(value)
        _Value.Start(b)
        _Value.AddKind(b, STRING)
        _Value.AddStringValue(b, s)
        return _Value.End(b)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = b.CreateByteVector(bytes(value))
        _Value.Start(b)
        _Value.AddKind(b, BYTES)
        _Value.AddBytesValue(b, data)
        return _Value.End(b)
    if isinstance(value, (list, tuple)):
        items = [encode_value(b, item, f"{path}[{i}]") for i, item in enumerate(value)]
        _Value.StartListValueVector(b, len(items))
        for off in reversed(items):
            b.PrependUOffsetTRelative(off)
        vec = b.EndVector()
        _Value.Start(b)
        _Value.AddKind(b, LIST)
        _Value.AddListValue(b, vec)
        return _Value.End(b)
    if isinstance(value, Mapping):
        vec = _encode_entries(b, value, path, _Value.StartMapValueVector)
        _Value.Start(b)
        _Value.AddKind(b, MAP)
        _Value.AddMapValue(b, vec)
        return _Value.End(b)
    if isinstance(value, ErrorValue):
        code = b.CreateString(str(value.code))
        msg = b.CreateString(str(value.message))
        _Value.Start(b)
        _Value.AddKind(b, ERROR)
        _Value.AddErrorCode(b, code)
        _Value.AddErrorMessage(b, msg)
        return _Value.End(b)
    if isinstance(value, ChunkedValue):
        sha = b.CreateByteVector(value.sha256)
        _Value.Start(b)
        _Value.AddKind(b, CHUNKED)
        _Value.AddChunkedStream(b, value.stream)
        _Value.AddChunkedSize(b, value.size)
        _Value.AddChunkedSha256(b, sha)
        return _Value.End(b)
    raise TypeError(f"{path}: a {type(value).__name__} is not a muster value")


def _encode_entries(
    b: flatbuffers.Builder,
    mapping: Mapping[Any, Any],
    path: str,
    start_vector: Callable[[Builder, int], int],
) -> int:
    entries = []
    for key, item in mapping.items():
        key = _check_key(key, path)
        k = b.CreateString(key)
        v = encode_value(b, item, f"{path}.{key}")
        _Entry.Start(b)
        _Entry.AddKey(b, k)
        _Entry.AddValue(b, v)
        entries.append(_Entry.End(b))
    start_vector(b, len(entries))
    for off in reversed(entries):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def encode_values(mapping: Optional[Mapping[str, Any]]) -> bytes:
    """A complete ``Values`` buffer finished with identifier MSVL, as carried in the nested
    ``inputs``, ``parameters`` and ``outputs`` fields. Raises TypeError / OverflowError naming
    the path of a value that cannot be encoded."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise TypeError(f"values must be a dict, not {type(mapping).__name__}")
    b = flatbuffers.Builder(256)
    entries = _encode_entries(b, mapping, "$", _Values.StartEntriesVector)
    _Values.Start(b)
    _Values.AddEntries(b, entries)
    root = _Values.End(b)
    b.Finish(root, file_identifier=VALUES_IDENTIFIER)
    return bytes(b.Output())


# ---- FlatBuffers decoding ------------------------------------------------------------------


def decode_value(r: _flat.Reader, pos: int) -> Any:
    """Reads the verified ``Value`` table at ``pos`` (0: absent, which reads as None)."""
    if not pos:
        return None
    kind = r.scalar(pos, 0, "u8", 0)
    if kind == NULL:
        return None
    if kind == BOOL:
        return r.scalar(pos, 1, "bool", False)
    if kind == INT:
        return r.scalar(pos, 2, "i64", 0)
    if kind == FLOAT:
        return r.scalar(pos, 3, "f64", 0.0)
    if kind == STRING:
        s = r.string(pos, 4)
        return "" if s is None else s
    if kind == BYTES:
        p = r.ref(pos, 5)
        return r.bytes_at(p) if p else b""
    if kind == LIST:
        p = r.ref(pos, 6)
        return [decode_value(r, item) for item in r.offsets(p)] if p else []
    if kind == MAP:
        return decode_entries(r, r.ref(pos, 7))
    if kind == ERROR:
        return ErrorValue(r.string(pos, 8) or "", r.string(pos, 9) or "")
    if kind == CHUNKED:
        p = r.ref(pos, 12)
        try:
            return ChunkedValue(r.scalar(pos, 10, "u32", 0), r.scalar(pos, 11, "u64", 0), r.bytes_at(p) if p else b"")
        except ValueError as e:
            raise BadMessage(str(e)) from None
    # An unknown kind from a newer writer reads as null rather than failing the message.
    return None


def decode_entries(r: _flat.Reader, vec: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if not vec:
        return out
    for entry in r.offsets(vec):
        key = r.string(entry, 0)
        if key is None:  # `key` is required: the verifier lets no such entry through
            raise BadMessage("a map entry without a key")
        out[key] = decode_value(r, r.ref(entry, 1))
    return out


def decode_values(
    data: _flat.Buffer,
    *,
    nested: bool = True,
    require_identifier: bool = False,
    verified: bool = False,
) -> Dict[str, Any]:
    """Verifies and decodes a ``Values`` buffer. Empty input is an empty dict. The MSVL
    identifier is optional on nested payloads (PROTOCOL.md §3 rule 3) unless
    ``require_identifier``. ``nested`` selects the verifier limits: the ones the C++ Verifier
    applies to a nested payload (the default), or the ones of a top-level message. Raises
    ``BadMessage`` if the bytes are not a valid Values buffer. ``verified``: the caller
    verified these very bytes as a nested Values buffer already (the message that carries them
    was verified with its nested payloads, messages.decode): not verified twice."""
    if len(data) == 0:
        return {}
    try:
        if not verified:
            _flat.verify_buffer(
                data,
                "Values",
                VALUES_IDENTIFIER if require_identifier else None,
                _flat.NESTED_MAX_DEPTH if nested else _flat.MESSAGE_MAX_DEPTH,
                _flat.NESTED_MAX_TABLES if nested else _flat.MESSAGE_MAX_TABLES,
            )
        r = _flat.Reader(data)
        return decode_entries(r, r.ref(r.root(), 0))
    except _flat.VerifyError as e:
        raise BadMessage(f"not a valid Values buffer: {e}") from None
    except (UnicodeDecodeError, RecursionError, ValueError, IndexError) as e:
        raise BadMessage(f"not a valid Values buffer: {type(e).__name__}: {e}") from None


# ---- JSON form (PROTOCOL.md §4) ------------------------------------------------------------


def to_json(value: Any, path: str = "$") -> Any:
    """The JSON form of a value, as Python objects ready for ``json.dumps``: bytes become
    ``{"$bytes": base64}``, errors ``{"$error": {"code", "message"}}``. Raises ValueError for a
    non-finite float or a map that would read back as bytes or an error, TypeError for a value
    that is not a muster value."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        i = int(value)
        if not INT64_MIN <= i <= INT64_MAX:
            raise OverflowError(f"{path}: integer {i} does not fit in int64")
        return i
    if isinstance(value, numbers.Real):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"{path}: a non-finite float has no JSON form")
        return f
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [to_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        if len(value) == 1:
            ((k, v),) = value.items()
            if (k == "$bytes" and isinstance(v, str)) or (k in ("$error", "$chunked") and isinstance(v, Mapping)):
                raise ValueError(f"{path}: a map whose only key is {k!r} has no JSON form")
        return {_check_key(k, path): to_json(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, ErrorValue):
        return {"$error": {"code": value.code, "message": value.message}}
    if isinstance(value, ChunkedValue):
        return {"$chunked": {"stream": value.stream, "size": value.size, "sha256": value.sha256.hex()}}
    raise TypeError(f"{path}: a {type(value).__name__} is not a muster value")


#: JSON may nest arrays and objects at most this deep (the outermost counts as 1), as in the C++
#: and TypeScript SDKs (PROTOCOL.md §10): deeper than any value a Values buffer carries.
MAX_JSON_DEPTH = 128

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _check_json_depth(text: str) -> None:
    """ValueError if the text nests arrays and objects deeper than MAX_JSON_DEPTH (checked
    before parsing, as muster::json_too_deep)."""
    depth = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
        elif depth:
            depth -= 1


def from_json(j: Any, path: str = "$", _depth: int = 0) -> Any:
    """The value of a JSON form (as parsed by ``json.loads``). Integers outside int64 become
    floats, as in every muster program. ValueError for JSON nested deeper than MAX_JSON_DEPTH."""
    if isinstance(j, (list, dict)):
        _depth += 1
        if _depth > MAX_JSON_DEPTH:
            raise ValueError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels")
    if j is None or isinstance(j, (bool, str)):
        return j
    if isinstance(j, int):
        return j if INT64_MIN <= j <= INT64_MAX else float(j)
    if isinstance(j, float):
        if not math.isfinite(j):
            raise ValueError(f"{path}: a non-finite float has no muster value")
        return j
    if isinstance(j, list):
        return [from_json(item, f"{path}[{i}]", _depth) for i, item in enumerate(j)]
    if isinstance(j, dict):
        if len(j) == 1:
            ((k, v),) = j.items()
            if k == "$bytes" and isinstance(v, str):
                return b64decode(v, f"{path}: $bytes")
            if k == "$error" and isinstance(v, dict):
                code = v.get("code")
                message = v.get("message")
                return ErrorValue(
                    code if isinstance(code, str) else "", message if isinstance(message, str) else ""
                )
            if k == "$chunked" and isinstance(v, dict):
                return _chunked_from_json(v, path)
        return {k: from_json(v, f"{path}.{k}", _depth) for k, v in j.items()}
    raise ValueError(f"{path}: unsupported JSON value {j!r}")


def _chunked_from_json(j: Dict[str, Any], path: str) -> ChunkedValue:
    """``{"stream", "size", "sha256": 64 lowercase hex digits}``, nothing else (as the C++ reader)."""
    sha = j.get("sha256")
    if set(j) != {"stream", "size", "sha256"}:
        raise ValueError(f"{path}: $chunked: expected exactly stream, size and sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError(f"{path}: $chunked: sha256 must be 64 lowercase hex digits")
    stream, size = j["stream"], j["size"]
    if isinstance(stream, bool) or isinstance(size, bool):
        raise ValueError(f"{path}: $chunked: stream and size must be integers")
    try:
        return ChunkedValue(stream, size, bytes.fromhex(sha))
    except ValueError as e:
        raise ValueError(f"{path}: $chunked: {e}") from None


def b64decode(text: str, what: str = "base64") -> bytes:
    """Standard alphabet, padded, nothing else (as muster::base64_decode)."""
    if len(text) % 4:
        raise ValueError(f"{what}: base64 length is not a multiple of 4")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise ValueError(f"{what}: invalid base64: {e}") from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def dumps(value: Any, **kwargs: Any) -> str:
    """Value (usually a dict of values) -> JSON text."""
    return json.dumps(to_json(value), ensure_ascii=False, allow_nan=False, **kwargs)


def loads(text: str) -> Any:
    """JSON text -> value."""
    _check_json_depth(text)
    return from_json(json.loads(text, parse_constant=_reject_constant))


def loads_map(text: str) -> Dict[str, Any]:
    """JSON text whose top level must be an object -> dict of values (as the CLI reads inputs)."""
    _check_json_depth(text)
    j = json.loads(text, parse_constant=_reject_constant)
    if not isinstance(j, dict):
        raise ValueError("expected a JSON object")
    return {k: from_json(v, f"$.{k}", 1) for k, v in j.items()}


__all__ = [
    "ErrorValue",
    "MAX_JSON_DEPTH",
    "INT64_MIN",
    "INT64_MAX",
    "kind_of",
    "encode_values",
    "decode_values",
    "to_json",
    "from_json",
    "dumps",
    "loads",
    "loads_map",
]
