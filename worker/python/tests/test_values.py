"""Value codec: Python <-> Values buffers <-> the JSON form of PROTOCOL.md §4."""

from __future__ import annotations

import json
import math
import struct

import pytest

import muster
from muster import values as v
from muster.describe import same
from muster.errors import BadMessage

EDGE = {
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "int_min": -(2**63),
    "int_max": 2**63 - 1,
    "minus_one": -1,
    "float_zero": 0.0,
    "float_neg_zero": -0.0,
    "float_one": 1.0,
    "float_small": 2.5e-7,
    "float_big": 1.7976931348623157e308,
    "float_tiny": 5e-324,
    "float_pi": math.pi,
    "empty_string": "",
    "unicode": "héllo wörld ✓ 日本語 🎉 \u0000 nul",
    "empty_bytes": b"",
    "bytes": bytes(range(256)),
    "empty_list": [],
    "empty_map": {},
    "nested": {"list": [1, [2, [3, []]], {"k": {"kk": []}}], "map": {"b": 1, "a": 2}},
    "mixed_list": [None, True, 1, 1.0, "s", b"\x00", [], {}, muster.ErrorValue("E", "m")],
    "error": muster.ErrorValue("QUOTA", "over quota"),
    "empty_error": muster.ErrorValue("", ""),
    "": "empty key",
}


def strict_py_equal(a, b) -> bool:
    """Equality that tells 1 from 1.0 and True, and -0.0 from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(strict_py_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_py_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


def test_round_trip_every_kind():
    data = v.encode_values(EDGE)
    assert data[4:8] == b"MSVL"
    back = v.decode_values(data)
    assert strict_py_equal(back, EDGE)


def test_map_order_is_kept():
    m = {k: i for i, k in enumerate(["z", "a", "m", "b"])}
    assert list(v.decode_values(v.encode_values({"m": m}))["m"]) == ["z", "a", "m", "b"]


def test_int64_range_checked():
    with pytest.raises(OverflowError, match=r"\$\.x"):
        v.encode_values({"x": 2**63})
    with pytest.raises(OverflowError):
        v.encode_values({"x": [-(2**63) - 1]})


def test_unsupported_types_and_keys():
    with pytest.raises(TypeError, match="set"):
        v.encode_values({"x": {1, 2}})
    with pytest.raises(TypeError, match="keys must be str"):
        v.encode_values({"x": {1: 2}})
    with pytest.raises(TypeError):
        v.encode_values([1, 2])  # type: ignore[arg-type]


def test_accepted_python_types():
    back = v.decode_values(v.encode_values({"t": (1, 2), "ba": bytearray(b"ab"), "mv": memoryview(b"cd")}))
    assert back == {"t": [1, 2], "ba": b"ab", "mv": b"cd"}


def test_nan_and_inf_travel_but_have_no_json_form():
    back = v.decode_values(v.encode_values({"nan": float("nan"), "inf": float("inf"), "ninf": -math.inf}))
    assert math.isnan(back["nan"]) and back["inf"] == math.inf and back["ninf"] == -math.inf
    with pytest.raises(ValueError, match="non-finite"):
        v.dumps({"x": float("nan")})


def test_empty_input_is_empty_map_and_bad_input_is_bad_message():
    assert v.decode_values(b"") == {}
    for bad in [b"\x00", b"x" * 16, v.encode_values({"a": "b"})[:-5], b"\x0c\x00\x00\x00MSVL" + b"\xff" * 8]:
        with pytest.raises(BadMessage):
            v.decode_values(bad)
    # The identifier is optional on nested payloads, required when asked.
    data = bytearray(v.encode_values({"a": 1}))
    data[4:8] = b"XXXX"
    assert v.decode_values(bytes(data)) == {"a": 1}
    with pytest.raises(BadMessage, match="identifier"):
        v.decode_values(bytes(data), require_identifier=True)


def test_invalid_utf8_is_bad_message():
    data = bytearray(v.encode_values({"k": "abc"}))
    i = data.index(b"abc")
    data[i] = 0xFF
    with pytest.raises(BadMessage):
        v.decode_values(bytes(data))


def test_depth_limits_match_cpp():
    # Values(1) + Entry(2) + Value(3), then one table per list level: nested payloads are
    # verified with depth 64 (flatbuffers' default for nested buffers), top level with 128.
    def nest(n):
        x = []
        for _ in range(n):
            x = [x]
        return x

    ok = v.encode_values({"x": nest(61)})  # 3 + 61 = 64 tables deep
    assert v.decode_values(ok)["x"] == nest(61)
    too_deep = v.encode_values({"x": nest(62)})
    with pytest.raises(BadMessage, match="deep"):
        v.decode_values(too_deep)
    assert v.decode_values(too_deep, nested=False)["x"] == nest(62)


def test_json_form():
    j = v.to_json(EDGE_JSONABLE)
    text = json.dumps(j)
    assert same(json.loads(text), j)
    assert j["bytes"] == {"$bytes": "AAH/"}
    assert j["error"] == {"$error": {"code": "C", "message": "M"}}
    back = v.from_json(json.loads(text))
    assert strict_py_equal(back, EDGE_JSONABLE)


EDGE_JSONABLE = {
    "null": None,
    "bool": True,
    "int_min": -(2**63),
    "int_max": 2**63 - 1,
    "float": 1.0,
    "neg_zero": -0.0,
    "exp": 2.5e-7,
    "str": "ünïcödé ✓",
    "bytes": b"\x00\x01\xff",
    "list": [1, "two", [3.0]],
    "map": {"z": 1, "a": {"$not_special": 1}},
    "error": muster.ErrorValue("C", "M"),
}


def test_json_reading_rules():
    assert v.loads("1") == 1 and type(v.loads("1")) is int
    assert type(v.loads("1.0")) is float
    assert v.loads("9223372036854775808") == 9223372036854775808.0  # beyond int64: Float
    assert type(v.loads("9223372036854775808")) is float
    assert type(v.loads("-9223372036854775809")) is float
    assert v.loads('{"$bytes": "aGk="}') == b"hi"
    assert v.loads('{"$bytes": 1}') == {"$bytes": 1}  # not a string: a map
    assert v.loads('{"$bytes": "aGk=", "x": 1}') == {"$bytes": "aGk=", "x": 1}  # two keys: a map
    assert v.loads('{"$error": {"code": "X"}}') == muster.ErrorValue("X", "")
    with pytest.raises(ValueError):
        v.loads('{"$bytes": "a"}')
    with pytest.raises(ValueError):
        v.loads('{"$bytes": "a$==" }')
    with pytest.raises(ValueError):
        v.loads("NaN")
    assert v.loads_map('{"b": 1, "a": 2}') == {"b": 1, "a": 2}
    with pytest.raises(ValueError):
        v.loads_map("[1]")


def test_json_writing_floats_keep_their_kind():
    assert v.dumps({"f": 1.0, "i": 1}) == '{"f": 1.0, "i": 1}'
    assert v.dumps(1e300) == "1e+300"
    with pytest.raises(ValueError, match="no JSON form"):
        v.to_json({"$bytes": "abc"})  # would read back as bytes


def test_kind_of():
    chunked = muster.ChunkedValue(1, 0, bytes(32))
    assert [v.kind_of(x) for x in (None, True, 1, 1.0, "", b"", [], {}, muster.ErrorValue(), chunked)] == list(v.KIND_NAMES)


SHA_HELLO = bytes.fromhex("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")


def test_chunked_value_round_trips_through_flatbuffers_and_json():
    c = muster.ChunkedValue(3, 2**64 - 1, SHA_HELLO)
    assert v.decode_values(v.encode_values({"data": c})) == {"data": c}
    text = v.dumps({"data": c})
    assert json.loads(text) == {"data": {"$chunked": {"stream": 3, "size": 2**64 - 1, "sha256": SHA_HELLO.hex()}}}
    assert v.loads(text) == {"data": c}


@pytest.mark.parametrize(
    "bad",
    [
        {"stream": 0, "size": 1, "sha256": "00" * 32},  # stream 0 is the items
        {"stream": 2**32, "size": 1, "sha256": "00" * 32},
        {"stream": 1, "size": -1, "sha256": "00" * 32},
        {"stream": 1, "size": 1, "sha256": "00" * 31},
        {"stream": 1, "size": 1, "sha256": "AB" * 32},  # lowercase only
        {"stream": 1, "size": 1},
        {"stream": 1, "size": 1, "sha256": "00" * 32, "extra": 1},
        {"stream": True, "size": 1, "sha256": "00" * 32},
    ],
)
def test_chunked_json_refuses_what_it_cannot_map(bad):
    with pytest.raises(ValueError, match=r"\$chunked"):
        v.loads(json.dumps({"data": {"$chunked": bad}}))


def test_chunked_value_with_a_short_sha256_on_the_wire_is_a_bad_payload():
    import flatbuffers

    from muster.wire import Entry as wEntry
    from muster.wire import Value as wValue
    from muster.wire import Values as wValues

    b = flatbuffers.Builder(64)
    key = b.CreateString("data")
    sha = b.CreateByteVector(bytes(31))
    wValue.Start(b)
    wValue.AddKind(b, v.CHUNKED)
    wValue.AddChunkedStream(b, 1)
    wValue.AddChunkedSize(b, 5)
    wValue.AddChunkedSha256(b, sha)
    val = wValue.End(b)
    wEntry.Start(b)
    wEntry.AddKey(b, key)
    wEntry.AddValue(b, val)
    entry = wEntry.End(b)
    wValues.StartEntriesVector(b, 1)
    b.PrependUOffsetTRelative(entry)
    vec = b.EndVector()
    wValues.Start(b)
    wValues.AddEntries(b, vec)
    b.Finish(wValues.End(b), file_identifier=b"MSVL")
    with pytest.raises(BadMessage, match="sha256 must be 32 bytes"):
        v.decode_values(bytes(b.Output()))


def test_a_map_whose_only_key_is_chunked_has_no_json_form():
    with pytest.raises(ValueError, match="no JSON form"):
        v.to_json({"$chunked": {"stream": 1}})


def test_json_depth_limit_matches_cpp_and_typescript():
    def nested(depth):  # {"x": [[...]]}: depth levels, the object included
        return '{"x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

    assert v.MAX_JSON_DEPTH == 128
    assert v.loads_map(nested(128)) == v.loads(nested(128))
    for text in (nested(129), nested(100_000)):
        with pytest.raises(ValueError, match="nested deeper than 128 levels"):
            v.loads_map(text)
        with pytest.raises(ValueError, match="nested deeper than 128 levels"):
            v.loads(text)
    # brackets inside strings do not count
    assert v.loads('{"a": "[[[\\"[[[' + "[" * 200 + '"}') == {"a": '[[["[[[' + "[" * 200}
    deep: list = []
    for _ in range(128):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        v.from_json(deep)
