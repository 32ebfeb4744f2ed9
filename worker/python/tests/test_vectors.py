"""The golden vectors of tests/vectors/ (format: tests/vectors/README.md): decode every vector
and compare with its description; encode every description and check it decodes back to the
same description; every invalid vector is refused with BadMessage; and the committed files are
what tests/vectors/generate.py writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from muster import describe as d
from muster.errors import BadMessage
from muster import messages as m
from muster import values as v

VECTORS = Path(__file__).resolve().parents[3] / "tests" / "vectors"
NAMES = sorted(p.stem for p in VECTORS.glob("*.bin")) if VECTORS.is_dir() else []

pytestmark = pytest.mark.skipif(not NAMES, reason=f"no vectors in {VECTORS}")


def load(name):
    data = (VECTORS / f"{name}.bin").read_bytes()
    desc = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    return data, desc


def test_every_root_and_union_member_has_a_vector():
    roots = set()
    members = set()
    for name in NAMES:
        _, desc = load(name)
        if desc.get("valid", True):
            roots.add(desc["root"])
            body = desc["message"].get("body") if desc["root"] != "Values" else None
            if body:
                members.add((desc["root"], body["type"]))
    assert roots == set(m.ROOTS) | {"Values"}
    unions = {"WorkerMessage": "WorkerBody", "DaemonMessage": "DaemonBody", "ClientMessage": "ClientBody", "ClientReply": "ReplyBody"}
    for root, union in unions.items():
        for cls in m.UNION_MEMBERS[union]:
            assert (root, cls.__name__) in members, f"no vector for {root}.{cls.__name__}"


@pytest.mark.parametrize("name", NAMES)
def test_vector(name):
    data, desc = load(name)
    root = desc["root"]
    if not desc.get("valid", True):
        with pytest.raises(BadMessage):
            if root == "Values":
                v.decode_values(data, nested=False, require_identifier=True)
            else:
                m.decode(data, root)
        return
    assert set(desc) == {"root", "message"}
    # bytes -> description
    got = d.describe_bytes(data, root)
    assert d.same(got, desc), f"{name}: decoded\n{json.dumps(got, indent=1)}"
    # description -> bytes -> description
    again = d.encode_description(desc)
    assert d.same(d.describe_bytes(again, root), desc)


def test_committed_vectors_are_up_to_date():
    proc = subprocess.run([sys.executable, str(VECTORS / "generate.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ---- PROTOCOL.md §3 rule 3: a nested payload starts on an 8-byte boundary of its message -----
# Read with a few lines of raw FlatBuffers (not the SDK) so that the check does not depend on
# the reader it is checking. Field indexes are the fields' positions in schema/*.fbs (a union
# takes two: its type, then its table).
_BODY = {"WorkerMessage": (1, 2), "DaemonMessage": (0, 1), "ClientMessage": (1, 2), "ClientReply": (1, 2)}
_PAYLOADS = {
    ("WorkerMessage", 4): [("Result.outputs", 1)],
    ("DaemonMessage", 2): [("WorkRequest.inputs", 2), ("WorkRequest.parameters", 3)],
    ("ClientMessage", 1): [("Submit.inputs", 1), ("Submit.parameters", 2)],
    ("ClientReply", 3): [("Result.outputs", 1)],
}


def _field(buf: bytes, table: int, index: int):
    import struct
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    slot = 4 + 2 * index
    if slot >= struct.unpack_from("<H", buf, vtable)[0]:
        return None
    off = struct.unpack_from("<H", buf, vtable + slot)[0]
    return table + off if off else None


def payload_offsets(buf: bytes, root: str):
    """[(field, offset of the payload's first byte)] for the nested payloads present in `buf`."""
    import struct
    u32 = lambda pos: struct.unpack_from("<I", buf, pos)[0]  # noqa: E731
    if root not in _BODY:
        return []
    table = u32(0)
    type_pos, body_pos = (_field(buf, table, i) for i in _BODY[root])
    if type_pos is None or body_pos is None:
        return []
    body = body_pos + u32(body_pos)
    out = []
    for field, index in _PAYLOADS.get((root, buf[type_pos]), []):
        pos = _field(buf, body, index)
        if pos is not None:
            out.append((field, pos + u32(pos) + 4))
    return out


def test_every_valid_nested_payload_starts_on_an_8_byte_boundary():
    with_payload = 0
    misaligned = []
    for name in NAMES:
        data, desc = load(name)
        if not desc.get("valid", True):
            continue
        # the committed vector, and the same description encoded by this SDK
        for what, buf in (("vector", data), ("SDK encoding", d.encode_description(desc))):
            offsets = payload_offsets(buf, desc["root"])
            with_payload += bool(offsets) and what == "vector"
            misaligned += [f"{name} ({what}): {f} at offset {o}" for f, o in offsets if o % 8]
    assert not misaligned, "nested payloads off an 8-byte boundary:\n" + "\n".join(misaligned)
    assert with_payload >= 10
