"""_flat.py — reading FlatBuffers safely in Python: table layouts, a Verifier that mirrors the
C++ ``flatbuffers::Verifier`` (2.0.8) rule for rule, and a raw reader for verified buffers.

Owns: what "verified" means for the Python SDK. The Python flatbuffers runtime has no
Verifier, so this module is one: every received buffer goes through ``verify_buffer`` before a
single field is read (docs/PROTOCOL.md §3, rule 2), with the same limits the C++ programs use
(schema/include/muster/messages.hpp): depth 128 and 10 000 000 tables for a message, and the
C++ defaults (depth 64, 1 000 000 tables) for a nested ``Values`` payload, which is what
``VerifyNestedFlatBuffer`` uses. The table budget is further capped at one table per 4 bytes
of buffer: a tree-shaped buffer can never need more, and the cap bounds how long a hostile
buffer that points many times at the same table can keep Python busy.
Must never: let a read go outside the buffer, or accept a buffer the C++ Verifier rejects.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Literal, NamedTuple, Optional, Tuple, Union, overload

Buffer = Union[bytes, bytearray, memoryview]
#: What a scalar field reads as: bool for "bool", float for "f64", int for the others.
Scalar = Union[bool, int, float]

MAX_BUFFER_SIZE = (1 << 31) - 1  # FLATBUFFERS_MAX_BUFFER_SIZE
MIN_BUFFER_SIZE = 12  # FLATBUFFERS_MIN_BUFFER_SIZE: root offset, soffset, vtable header
MESSAGE_MAX_DEPTH = 128  # muster::kVerifierMaxDepth
MESSAGE_MAX_TABLES = 10_000_000  # muster::kVerifierMaxTables
NESTED_MAX_DEPTH = 64  # flatbuffers::Verifier::Options defaults, used for nested buffers
NESTED_MAX_TABLES = 1_000_000

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")

SCALARS: Dict[str, Tuple[struct.Struct, int]] = {
    "bool": (_U8, 1),
    "u8": (_U8, 1),
    "u16": (_U16, 2),
    "code": (_U16, 2),  # ErrorCode : ushort
    "u32": (_U32, 4),
    "u64": (_U64, 8),
    "i64": (_I64, 8),
    "f64": (_F64, 8),
}


class Field(NamedTuple):
    """One field of a table layout. ``kind`` is a scalar name from SCALARS, or one of
    "str", "table", "[table]", "[str]", "[u8]", "[u64]", "nested" (a [ubyte] holding a
    separately finished buffer of root ``ref``), "union_type" and "union" (``ref`` names the
    union in UNIONS)."""

    name: str
    kind: str
    slot: int
    ref: Optional[str] = None
    required: bool = False


# table name -> fields in slot order
LAYOUTS: Dict[str, List[Field]] = {
    "Value": [
        Field("kind", "u8", 0),
        Field("bool_value", "bool", 1),
        Field("int_value", "i64", 2),
        Field("float_value", "f64", 3),
        Field("string_value", "str", 4),
        Field("bytes_value", "[u8]", 5),
        Field("list_value", "[table]", 6, "Value"),
        Field("map_value", "[table]", 7, "Entry"),
        Field("error_code", "str", 8),
        Field("error_message", "str", 9),
        Field("chunked_stream", "u32", 10),
        Field("chunked_size", "u64", 11),
        Field("chunked_sha256", "[u8]", 12),
    ],
    "Entry": [Field("key", "str", 0, required=True), Field("value", "table", 1, "Value")],
    "Values": [Field("entries", "[table]", 0, "Entry")],
}

# union name -> {type index: table name}
UNIONS: Dict[str, Dict[int, str]] = {}


class VerifyError(Exception):
    """The buffer is not a valid FlatBuffer of the expected root type."""


class _Verifier:
    __slots__ = ("buf", "size", "depth", "tables", "max_depth", "max_tables", "check_nested")

    def __init__(self, buf: Buffer, max_depth: int, max_tables: int, check_nested: bool = True):
        self.check_nested = check_nested
        self.buf = buf
        self.size = len(buf)
        self.depth = 0
        self.tables = 0
        self.max_depth = max_depth
        self.max_tables = min(max_tables, self.size // 4 + 1)

    # --- primitives, named after the C++ Verifier's -----------------------------------
    def check(self, ok: bool, what: str) -> None:
        if not ok:
            raise VerifyError(what)

    def verify_range(self, elem: int, length: int, what: str) -> None:
        if not (0 <= elem and length < self.size and elem <= self.size - length):
            raise VerifyError(f"{what}: range {elem}+{length} outside a {self.size}-byte buffer")

    def verify_scalar(self, elem: int, size: int, what: str) -> None:
        if elem & (size - 1):
            raise VerifyError(f"{what}: misaligned at {elem}")
        self.verify_range(elem, size, what)

    def verify_offset(self, start: int, what: str) -> int:
        """Checks the uoffset at ``start`` and returns the absolute position it points to."""
        self.verify_scalar(start, 4, what)
        o: int = _U32.unpack_from(self.buf, start)[0]
        # The checks below build their message only when they fail: a passing check costs no
        # string (this runs for every field of every received message).
        if o == 0:
            raise VerifyError(f"{what}: offset points to itself")
        if o >= 0x80000000:
            raise VerifyError(f"{what}: offset wraps around")
        self.verify_range(start + o, 1, what)
        return start + o

    def verify_vector(self, vec: int, elem_size: int, what: str) -> int:
        """Checks a vector (or string) at ``vec``; returns its element count."""
        self.verify_scalar(vec, 4, what)
        n: int = _U32.unpack_from(self.buf, vec)[0]
        if n >= MAX_BUFFER_SIZE // elem_size:
            raise VerifyError(f"{what}: vector too long")
        self.verify_range(vec, 4 + elem_size * n, what)
        return n

    def verify_string(self, s: int, what: str) -> None:
        n = self.verify_vector(s, 1, what)
        end = s + 4 + n
        self.verify_range(end, 1, what)
        if self.buf[end] != 0:
            raise VerifyError(f"{what}: string is not zero-terminated")

    # --- tables -------------------------------------------------------------------------
    def verify_table(self, table: int, name: str) -> None:
        what = name
        self.verify_scalar(table, 4, what)
        self.depth += 1
        self.tables += 1
        if self.depth > self.max_depth:
            raise VerifyError(f"{what}: nested too deep")
        if self.tables > self.max_tables:
            raise VerifyError(f"{what}: too many tables")
        layout = _compiled(name)
        vtable = table - _I32.unpack_from(self.buf, table)[0]
        self.verify_scalar(vtable, 2, layout.vtable_what)
        vsize = _U16.unpack_from(self.buf, vtable)[0]
        if vsize & 1:
            raise VerifyError(f"{what}: odd vtable size")
        self.verify_range(vtable, vsize, layout.vtable_what)
        for f in layout.fields:
            self._verify_field(table, vtable, vsize, f)
        self.depth -= 1

    def _field_offset(self, vtable: int, vsize: int, slot: int) -> int:
        vo = 4 + 2 * slot
        return _U16.unpack_from(self.buf, vtable + vo)[0] if vo < vsize else 0

    def _verify_field(self, table: int, vtable: int, vsize: int, f: "_CompiledField") -> None:
        fo = self._field_offset(vtable, vsize, f.slot)
        kind = f.kind
        if kind == _K_SCALAR:
            if fo:
                self.verify_scalar(table + fo, f.size, f.what)
            return
        if fo == 0:
            if f.required:
                raise VerifyError(f"{f.what}: required field missing")
            return
        what = f.what
        target = self.verify_offset(table + fo, what)
        if kind == _K_STR:
            self.verify_string(target, what)
        elif kind == _K_TABLE:
            self.verify_table(target, f.ref)
        elif kind == _K_TABLES:
            n = self.verify_vector(target, 4, what)
            for i in range(n):
                e = target + 4 + 4 * i
                self.verify_table(e + _U32.unpack_from(self.buf, e)[0], f.ref)
        elif kind == _K_STRS:
            n = self.verify_vector(target, 4, what)
            for i in range(n):
                e = target + 4 + 4 * i
                self.verify_string(e + _U32.unpack_from(self.buf, e)[0], what)
        elif kind == _K_U8S:
            self.verify_vector(target, 1, what)
        elif kind == _K_U64S:
            self.verify_vector(target, 8, what)
        elif kind == _K_NESTED:
            n = self.verify_vector(target, 1, what)
            if not self.check_nested:
                return
            if n < MIN_BUFFER_SIZE:
                raise VerifyError(f"{what}: nested buffer shorter than {MIN_BUFFER_SIZE} bytes")
            nested = memoryview(self.buf)[target + 4 : target + 4 + n]
            try:
                verify_buffer(nested, f.ref, None, NESTED_MAX_DEPTH, NESTED_MAX_TABLES)
            except VerifyError as e:
                raise VerifyError(f"{what}: {e}") from None
        elif kind == _K_UNION:
            to = self._field_offset(vtable, vsize, f.size)  # `size` holds the union type field's slot
            utype = self.buf[table + to] if to else 0
            member = UNIONS[f.ref].get(utype)
            if member is not None:  # NONE and unknown members pass, as in C++
                self.verify_table(target, member)
        else:  # pragma: no cover - layouts are static
            raise AssertionError(f"unknown field kind {kind}")


# What the Verifier reads of a layout, worked out once per table (LAYOUTS is complete once the
# modules that add to it are imported; a table is compiled the first time a buffer uses it).
_K_SCALAR, _K_STR, _K_TABLE, _K_TABLES, _K_STRS, _K_U8S, _K_U64S, _K_NESTED, _K_UNION = range(9)
_KINDS = {"str": _K_STR, "table": _K_TABLE, "[table]": _K_TABLES, "[str]": _K_STRS, "[u8]": _K_U8S,
          "[u64]": _K_U64S, "nested": _K_NESTED, "union": _K_UNION}  # fmt: skip


class _CompiledField(NamedTuple):
    slot: int
    kind: int
    size: int  # a scalar's size; for a union, the slot of its type field
    ref: str  # the table, root or union a table/[table]/nested/union field names
    required: bool
    what: str  # "Table.field", for error messages


class _CompiledTable(NamedTuple):
    fields: Tuple[_CompiledField, ...]
    vtable_what: str


_COMPILED: Dict[str, _CompiledTable] = {}


def _compiled(name: str) -> _CompiledTable:
    table = _COMPILED.get(name)
    if table is None:
        fields = []
        for f in LAYOUTS[name]:
            what = f"{name}.{f.name}"
            if f.kind == "union_type" or f.kind in SCALARS:
                fields.append(_CompiledField(f.slot, _K_SCALAR, SCALARS[f.kind][1] if f.kind in SCALARS else 1,
                                             "", f.required, what))  # fmt: skip
            elif f.kind == "union":
                type_slot = next(x.slot for x in LAYOUTS[name] if x.kind == "union_type" and x.ref == f.ref)
                fields.append(_CompiledField(f.slot, _K_UNION, type_slot, f.ref or "", f.required, what))
            else:
                fields.append(_CompiledField(f.slot, _KINDS[f.kind], 0, f.ref or "", f.required, what))
        table = _CompiledTable(tuple(fields), f"{name} vtable")
        _COMPILED[name] = table
    return table


def verify_buffer(
    buf: Buffer,
    root: str,
    identifier: Optional[bytes],
    max_depth: int = MESSAGE_MAX_DEPTH,
    max_tables: int = MESSAGE_MAX_TABLES,
    check_nested: bool = True,
) -> None:
    """Raises VerifyError unless ``buf`` is a valid buffer of table ``root`` (and carries
    ``identifier`` at bytes 4..8, when one is given). ``check_nested=False`` treats nested
    payloads as plain byte vectors (used only to find the request id of a bad message)."""
    v = _Verifier(buf, max_depth, max_tables, check_nested)
    v.check(v.size >= MIN_BUFFER_SIZE, f"{root}: buffer of {v.size} bytes is too short")
    v.check(v.size < MAX_BUFFER_SIZE, f"{root}: buffer too large")
    if identifier is not None:
        v.check(bytes(buf[4:8]) == identifier, f"{root}: file identifier is not {identifier.decode()}")
    try:
        root_pos = v.verify_offset(0, root)
        v.verify_table(root_pos, root)
    except RecursionError:
        raise VerifyError(f"{root}: nested too deep") from None


class Reader:
    """Reads fields of a buffer that ``verify_buffer`` accepted. Strings and byte vectors are
    memoised by position, so a buffer that points many times at one string costs one copy."""

    __slots__ = ("buf", "_strings", "_bytes")

    def __init__(self, buf: Buffer):
        self.buf = buf
        self._strings: Dict[int, str] = {}
        self._bytes: Dict[int, bytes] = {}

    def root(self) -> int:
        root: int = _U32.unpack_from(self.buf, 0)[0]
        return root

    def field_offset(self, table: int, slot: int) -> int:
        vtable = table - _I32.unpack_from(self.buf, table)[0]
        vsize = _U16.unpack_from(self.buf, vtable)[0]
        vo = 4 + 2 * slot
        return _U16.unpack_from(self.buf, vtable + vo)[0] if vo < vsize else 0

    @overload
    def scalar(self, table: int, slot: int, kind: Literal["bool"], default: bool) -> bool: ...
    @overload
    def scalar(self, table: int, slot: int, kind: Literal["f64"], default: float) -> float: ...
    @overload
    def scalar(
        self, table: int, slot: int, kind: Literal["u8", "u16", "code", "u32", "u64", "i64"], default: int
    ) -> int: ...
    @overload
    def scalar(self, table: int, slot: int, kind: str, default: Scalar) -> Scalar: ...

    def scalar(self, table: int, slot: int, kind: str, default: Scalar) -> Scalar:
        """The scalar field at ``slot`` (``default`` when absent), read as its kind says."""
        fo = self.field_offset(table, slot)
        if not fo:
            return default
        value: Scalar = SCALARS[kind][0].unpack_from(self.buf, table + fo)[0]
        return bool(value) if kind == "bool" else value

    def ref(self, table: int, slot: int) -> int:
        """Absolute position of an offset field's target, or 0 if the field is absent."""
        fo = self.field_offset(table, slot)
        if not fo:
            return 0
        p = table + fo
        target: int = p + _U32.unpack_from(self.buf, p)[0]
        return target

    def string_at(self, pos: int) -> str:
        s = self._strings.get(pos)
        if s is None:
            n = _U32.unpack_from(self.buf, pos)[0]
            s = bytes(self.buf[pos + 4 : pos + 4 + n]).decode("utf-8")
            self._strings[pos] = s
        return s

    def string(self, table: int, slot: int) -> Optional[str]:
        p = self.ref(table, slot)
        return self.string_at(p) if p else None

    def bytes_at(self, pos: int) -> bytes:
        b = self._bytes.get(pos)
        if b is None:
            n = _U32.unpack_from(self.buf, pos)[0]
            b = bytes(self.buf[pos + 4 : pos + 4 + n])
            self._bytes[pos] = b
        return b

    def view_at(self, pos: int) -> memoryview:
        """A [ubyte] vector as a read-only view of the buffer (no copy; it keeps the buffer alive)."""
        n = _U32.unpack_from(self.buf, pos)[0]
        return memoryview(self.buf).cast("B")[pos + 4 : pos + 4 + n].toreadonly()

    def vector_len(self, pos: int) -> int:
        n: int = _U32.unpack_from(self.buf, pos)[0]
        return n

    def offsets(self, vec: int) -> List[int]:
        """Absolute positions of the elements of a vector of tables or strings."""
        n = _U32.unpack_from(self.buf, vec)[0]
        out = []
        for i in range(n):
            e = vec + 4 + 4 * i
            out.append(e + _U32.unpack_from(self.buf, e)[0])
        return out

    def u64s(self, vec: int) -> List[int]:
        n = _U32.unpack_from(self.buf, vec)[0]
        return list(struct.unpack_from(f"<{n}Q", self.buf, vec + 4))

    def u8_at(self, pos: int) -> int:
        return self.buf[pos]
