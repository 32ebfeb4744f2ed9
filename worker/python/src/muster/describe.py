"""describe.py — the JSON description of a wire message used by the golden vectors
(tests/vectors/README.md defines the format), both ways.

Owns: message dataclass <-> description dict. Tables become objects with their fields in
schema order under their schema names; scalars are always written (their default when absent
on the wire), ErrorCode, JobState and EventKind values as their names ("WORKER_ERROR", "FINISHED"); strings, tables and vectors
only when present; nested Values payloads and Port default values in the JSON value form of
PROTOCOL.md §4; a union as ``{"type": "<member>", ...member fields}``.
Must never: accept a description with a field the schema does not have (typos would go
unnoticed).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from typing import Any, Dict, Optional, Tuple

from . import messages as _m
from . import values as _values
from .errors import ErrorCode, code_name

ROOT_NAMES = tuple(_m.ROOTS) + ("Values",)


def describe_table(obj: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, kind, ref, _default in _m.table_fields(type(obj)):
        v = getattr(obj, name)
        if kind == "code":
            out[name] = code_name(v) if isinstance(v, ErrorCode) or v in ErrorCode._value2member_map_ else v
        elif kind in _m.ENUM_KINDS:
            enum_cls = _m.ENUM_KINDS[kind]
            out[name] = enum_cls(v).name if v in enum_cls._value2member_map_ else int(v)
        elif kind in ("bool", "u8", "u16", "u32", "u64", "i64"):
            out[name] = bool(v) if kind == "bool" else int(v)
        elif kind == "f64":
            out[name] = float(v)
        elif kind == "value":
            if v is not _m.NO_DEFAULT:
                out[name] = _values.to_json(v)
        elif v is None:
            continue
        elif kind == "str":
            out[name] = v
        elif kind == "table":
            out[name] = describe_table(v)
        elif kind == "[table]":
            out[name] = [describe_table(x) for x in v]
        elif kind in ("[str]", "[u64]"):
            out[name] = list(v)
        elif kind == "[u8]":
            out[name] = base64.b64encode(v).decode("ascii")
        elif kind == "nested":
            out[name] = _values.to_json(v)
        elif kind == "union":
            body = {"type": type(v).__name__}
            body.update(describe_table(v))
            out[name] = body
        else:  # pragma: no cover
            raise AssertionError(kind)
    return out


def describe(root: str, message: Any) -> Dict[str, Any]:
    """``{"root": root, "message": ...}`` for a message dataclass, or for a dict of values when
    ``root`` is "Values"."""
    if root == "Values":
        return {"root": root, "message": _values.to_json(message)}
    if type(message) is not _m.ROOTS[root][0]:
        raise TypeError(f"a {type(message).__name__} is not a {root}")
    return {"root": root, "message": describe_table(message)}


def _check_int(v: Any, what: str, bits: int, signed: bool = False) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{what}: expected an integer, got {v!r}")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= v <= hi:
        raise ValueError(f"{what}: {v} out of range")
    return v


def _named_ref(ref: Optional[str], what: str) -> str:
    """The table or union a field of kind table, [table] or union refers to."""
    if ref is None:
        raise ValueError(f"{what}: the field names no table or union")
    return ref


def table_from_description(cls: type, d: Any, what: str = "") -> Any:
    what = what or cls.__name__
    if not isinstance(d, dict):
        raise ValueError(f"{what}: expected an object")
    known = {name for name, *_ in _m.table_fields(cls)}
    extra = set(d) - known
    if extra:
        raise ValueError(f"{what}: unknown field(s) {sorted(extra)}")
    kwargs: Dict[str, Any] = {}
    for name, kind, ref, default in _m.table_fields(cls):
        w = f"{what}.{name}"
        if name not in d:
            if kind == "value":
                kwargs[name] = _m.NO_DEFAULT
            continue
        v = d[name]
        if kind == "code":
            kwargs[name] = ErrorCode.parse(v) if isinstance(v, str) else _check_int(v, w, 16)
        elif kind in _m.ENUM_KINDS:
            enum_cls = _m.ENUM_KINDS[kind]
            if isinstance(v, str):
                if v not in enum_cls.__members__:
                    raise ValueError(f"{w}: {v!r} is not a {enum_cls.__name__}")
                kwargs[name] = enum_cls[v]
            else:
                kwargs[name] = _check_int(v, w, 8)
        elif kind == "bool":
            if not isinstance(v, bool):
                raise ValueError(f"{w}: expected true or false")
            kwargs[name] = v
        elif kind in ("u8", "u16", "u32", "u64"):
            kwargs[name] = _check_int(v, w, int(kind[1:]))
        elif kind == "i64":
            kwargs[name] = _check_int(v, w, 64, signed=True)
        elif kind == "f64":
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ValueError(f"{w}: expected a number")
            kwargs[name] = float(v)
        elif kind == "str":
            if not isinstance(v, str):
                raise ValueError(f"{w}: expected a string")
            kwargs[name] = v
        elif kind == "table":
            kwargs[name] = table_from_description(_m.TABLES[_named_ref(ref, w)], v, w)
        elif kind == "[table]":
            if not isinstance(v, list):
                raise ValueError(f"{w}: expected an array")
            kwargs[name] = [table_from_description(_m.TABLES[_named_ref(ref, w)], x, f"{w}[{i}]") for i, x in enumerate(v)]
        elif kind == "[str]":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"{w}: expected an array of strings")
            kwargs[name] = list(v)
        elif kind == "[u64]":
            if not isinstance(v, list):
                raise ValueError(f"{w}: expected an array")
            kwargs[name] = [_check_int(x, f"{w}[{i}]", 64) for i, x in enumerate(v)]
        elif kind == "[u8]":
            try:
                kwargs[name] = base64.b64decode(v, validate=True) if isinstance(v, str) else None
            except binascii.Error:
                kwargs[name] = None
            if kwargs[name] is None:
                raise ValueError(f"{w}: expected a base64 string")
        elif kind == "nested":
            if not isinstance(v, dict):
                raise ValueError(f"{w}: expected an object (a Values map)")
            kwargs[name] = {k: _values.from_json(x, f"{w}.{k}") for k, x in v.items()}
        elif kind == "value":
            kwargs[name] = _values.from_json(v, w)
        elif kind == "union":
            if not isinstance(v, dict) or not isinstance(v.get("type"), str):
                raise ValueError(f"{w}: expected an object with a \"type\"")
            members = {c.__name__: c for c in _m.UNION_MEMBERS[_named_ref(ref, w)]}
            member = members.get(v["type"])
            if member is None:
                raise ValueError(f"{w}: {v['type']!r} is not a member of {ref}")
            rest = {k: x for k, x in v.items() if k != "type"}
            kwargs[name] = table_from_description(member, rest, f"{w}<{v['type']}>")
    return cls(**kwargs)


def from_description(desc: Dict[str, Any]) -> Tuple[str, Any]:
    """(root, message) of a description: a message dataclass, or a dict of values for
    "Values"."""
    root = desc.get("root")
    if root == "Values":
        msg = desc.get("message")
        if not isinstance(msg, dict):
            raise ValueError("Values: expected an object")
        return root, {k: _values.from_json(v, f"$.{k}") for k, v in msg.items()}
    if root not in _m.ROOTS:
        raise ValueError(f"unknown root {root!r}")
    return root, table_from_description(_m.ROOTS[root][0], desc.get("message"), root)


def encode_description(desc: Dict[str, Any]) -> bytes:
    root, msg = from_description(desc)
    if root == "Values":
        return _values.encode_values(msg)
    return _m.encode(msg)


def describe_bytes(data: bytes, root: str) -> Dict[str, Any]:
    """Verifies, decodes and describes a buffer of root type ``root``."""
    if root == "Values":
        return describe(root, _values.decode_values(data, nested=False, require_identifier=True))
    return describe(root, _m.decode(data, root))


def same(a: Any, b: Any) -> bool:
    """Strict equality of JSON documents: types must match (true is not 1, 1 is not 1.0),
    floats compare bit for bit (-0.0 is not 0.0), objects compare in order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def dumps(desc: Dict[str, Any]) -> str:
    """The canonical text of a description file."""
    return json.dumps(desc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


__all__ = [
    "describe",
    "describe_table",
    "describe_bytes",
    "from_description",
    "table_from_description",
    "encode_description",
    "same",
    "dumps",
    "ROOT_NAMES",
]
