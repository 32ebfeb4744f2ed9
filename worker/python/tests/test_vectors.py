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
