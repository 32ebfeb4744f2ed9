"""Message build/parse, the verifier, and the Python layouts against the generated bindings."""

from __future__ import annotations

import importlib
import random
import re

import pytest

import muster
from muster import _flat
from muster import messages as m
from muster.errors import BadMessage, ErrorCode

NODE = m.NodeSpec(
    name="py.hello",
    description="says hello",
    category="demo",
    version="1.0",
    inputs=[m.Port("name", "string", "who", False, "world"), m.Port("n", "int", None, True)],
    outputs=[m.Port("greeting", "string")],
    parameters=[m.Port("loud", "bool", default_value=None)],
    idempotent=True,
    default_timeout_ms=1500,
)

SAMPLES = [
    m.WorkerMessage("w1", m.Attach("w1", "host", "muster-python/0.1.0", 42, "sess", 4, [NODE])),
    m.WorkerMessage("w1", m.Pong(7, "inst", [1, 2, 2**64 - 1])),
    m.WorkerMessage("w1", m.Progress(3, 1, 10, "step one")),
    m.WorkerMessage("w1", m.Result(3, {"greeting": "Hello", "n": -(2**63)})),
    m.WorkerMessage("w1", m.Failure(3, ErrorCode.WORKER_ERROR, "boom")),
    m.WorkerMessage("w1", m.Detach("bye")),
    m.DaemonMessage(m.Ping(1, "inst")),
    m.DaemonMessage(m.WorkRequest(9, "py.hello", {"name": "Ada"}, {"loud": True}, 5000, 2, m.CallerContext("local", "me", "default", "admin", "tr"))),
    m.DaemonMessage(m.Abort(9, ErrorCode.TIMEOUT, "deadline")),
    m.DaemonMessage(m.Attached("w1", "inst", "w:w1:", "b:", 1000, 3, 16 << 20)),
    m.DaemonMessage(m.Ack(True)),
    m.DaemonMessage(m.Rejected(ErrorCode.INVALID_REQUEST, "no", True)),
    m.ClientMessage(1, m.Submit("py.hello", {"name": "Ada"}, None, 100, True, True, "trace")),
    m.ClientMessage(1, m.Cancel()),
    m.ClientMessage(2, m.ListNodes()),
    m.ClientMessage(3, m.ListWorkers()),
    m.ClientMessage(4, m.GetStatus()),
    m.ClientReply(1, m.Accepted(True)),
    m.ClientReply(1, m.Progress(1, 2, 3, "p")),
    m.ClientReply(1, m.Result(1, {})),
    m.ClientReply(1, m.Failure(1, ErrorCode.NO_WORKER, "none")),
    m.ClientReply(2, m.NodeList([m.NodeInfo(NODE, "default", 1, 4, 0, 0)])),
    m.ClientReply(3, m.WorkerList([m.WorkerInfo("w1", "h", "sdk", 1, "ready", 4, 1, ["a", "b"], "default", "local", 10, 1)])),
    m.ClientReply(4, m.StatusReport("0.1.0", "inst", 5, 1, 2, 0, 1, 10, 8, 2, [m.CodeCount(ErrorCode.TIMEOUT, 2)], 1, 0.25)),
    # the payload-frames flags (PROTOCOL.md §2.1): this SDK never sets them, but reads them
    m.WorkerMessage("w1", m.Attach("w1", nodes=[NODE], payload_frames=True)),
    m.DaemonMessage(m.WorkRequest(10, "py.hello", None, {"loud": True}, inputs_in_frame=True)),
    m.ClientMessage(5, m.Submit("py.hello", {"name": "Ada"}, payload_frames=True)),
    m.ClientReply(5, m.Result(5, None, outputs_in_frame=True)),
    m.EnrollRequest("tok", "k" * 40, "worker", "w", "h"),
    m.EnrollResponse(True, "id", "worker", "default", "w", ErrorCode.NONE, None),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(getattr(x, "body", x)).__name__)
def test_round_trip(msg):
    data = m.encode(msg)
    root = type(msg).__name__
    assert data[4:8] == m.ROOTS[root][1]
    assert m.decode(data, root) == msg
    # Deterministic: the same message always encodes to the same bytes.
    assert m.encode(msg) == data


def test_wrong_root_or_identifier_is_bad_message():
    data = m.encode(SAMPLES[0])
    with pytest.raises(BadMessage, match="identifier"):
        m.decode_daemon_message(data)
    with pytest.raises(BadMessage, match="limit"):
        m.decode_worker_message(data, max_bytes=10)


def test_none_union_and_unknown_member_are_bad_messages():
    with pytest.raises(BadMessage, match="NONE"):
        m.decode_worker_message(m.encode(m.WorkerMessage("w1", None)))
    data = bytearray(m.encode(m.DaemonMessage(m.Ack())))
    # Find the body_type byte (5 = Ack) in the root table and make it unknown.
    r = _flat.Reader(bytes(data))
    root = r.root()
    fo = r.field_offset(root, 0)
    assert data[root + fo] == 5
    data[root + fo] = 99
    with pytest.raises(BadMessage, match="unknown"):
        m.decode_daemon_message(bytes(data))


def test_required_fields():
    with pytest.raises(ValueError, match="required"):
        m.encode(m.DaemonMessage(m.WorkRequest(1, None)))  # type: ignore[arg-type]


def test_empty_nested_vector_is_rejected_like_cpp():
    # flatbuffers' C++ VerifyNestedFlatBuffer refuses a present nested buffer shorter than 12
    # bytes, so an empty `inputs` vector makes the whole message unverifiable.
    data = m.encode(m.DaemonMessage(m.WorkRequest(1, "n", inputs=b"")))
    with pytest.raises(BadMessage, match="nested"):
        m.decode_daemon_message(data)


def test_fuzzed_buffers_only_ever_raise_bad_message():
    rng = random.Random(1234)
    corpus = [(type(s).__name__, m.encode(s)) for s in SAMPLES]
    accepted = rejected = 0
    for _ in range(3000):
        root, data = rng.choice(corpus)
        b = bytearray(data)
        op = rng.random()
        if op < 0.6:
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.8:
            del b[rng.randrange(8, len(b)) :]
        else:
            i = rng.randrange(8, len(b) - 4)
            b[i : i + 4] = rng.randrange(2**32).to_bytes(4, "little")
        try:
            m.decode(bytes(b), root)
            accepted += 1
        except BadMessage:
            rejected += 1
    assert rejected > 0 and accepted > 0


def _generated_source(name: str) -> str:
    mod = importlib.import_module(f"muster.wire.{name}")
    with open(mod.__file__, encoding="utf-8") as f:  # type: ignore[arg-type]
        return f.read()


_PREPEND = {
    "bool": "Bool", "u8": "Uint8", "union_type": "Uint8", "u16": "Uint16", "code": "Uint16",
    "u32": "Uint32", "u64": "Uint64", "i64": "Int64", "f64": "Float64",
}  # fmt: skip


@pytest.mark.parametrize("table", sorted(_flat.LAYOUTS))
def test_layouts_match_generated_bindings(table):
    """The Python layouts (used by the verifier and the codec) are the generated code's."""
    src = _generated_source(table)
    layout = _flat.LAYOUTS[table]
    n = int(re.search(rf"def {table}Start\(builder\): builder.StartObject\((\d+)\)", src).group(1))
    assert n == len(layout)
    for f in layout:
        camel = "".join(p[:1].upper() + p[1:] for p in f.name.split("_"))
        mt = re.search(rf"def {table}Add{camel}\(builder, \w+\): builder.Prepend(\w+)Slot\((\d+),", src)
        assert mt, f"{table}.{f.name} not in the generated code"
        kind, slot = mt.group(1), int(mt.group(2))
        assert slot == f.slot, f"{table}.{f.name}"
        assert kind == _PREPEND.get(f.kind, "UOffsetTRelative"), f"{table}.{f.name}"
        if f.kind in ("[u8]", "nested", "[u64]", "[table]", "[str]"):
            ms = re.search(rf"def {table}Start{camel}Vector\(builder, numElems\): return builder.StartVector\((\d+), numElems, (\d+)\)", src)
            size = {"[u8]": 1, "nested": 1, "[u64]": 8}.get(f.kind, 4)
            assert ms and int(ms.group(1)) == size, f"{table}.{f.name}"


@pytest.mark.parametrize("union", sorted(_flat.UNIONS))
def test_unions_match_generated_bindings(union):
    mod = importlib.import_module(f"muster.wire.{union}")
    cls = getattr(mod, union)
    for value, name in _flat.UNIONS[union].items():
        assert getattr(cls, name) == value


def test_error_codes_match_generated_bindings():
    from muster.wire.ErrorCode import ErrorCode as Gen

    for code in ErrorCode:
        name = code.schema_name
        assert getattr(Gen, name if hasattr(Gen, name) else name + "_") == code.value  # None_
    assert len([k for k in vars(Gen) if not k.startswith("_")]) == len(ErrorCode)


def test_errors_api():
    e = muster.error_for("TIMEOUT", "too slow")
    assert isinstance(e, muster.Timeout) and e.code == ErrorCode.TIMEOUT and str(e) == "TIMEOUT: too slow"
    assert muster.error_for(8, "x").code_name == "WORKER_ERROR"
    assert isinstance(muster.error_for(99, "x"), muster.MusterError)
    with pytest.warns(DeprecationWarning, match="muster.InvalidInput is deprecated: use muster.InvalidRequest"):
        assert muster.InvalidInput is muster.InvalidRequest
    with pytest.warns(DeprecationWarning):
        assert muster.errors.InvalidInput is muster.InvalidRequest
    with pytest.raises(AttributeError):
        muster.NoSuchThing  # noqa: B018
    assert muster.WorkerError("m").code == ErrorCode.WORKER_ERROR
    assert ErrorCode.parse("WorkerError") == ErrorCode.WORKER_ERROR
    import pickle

    e2 = pickle.loads(pickle.dumps(muster.QueueFull("full")))
    assert isinstance(e2, muster.QueueFull) and e2.message == "full"


def test_every_error_class_is_named_as_its_code_in_the_schema():
    # One name on both sides: the class a worker raises is the class its caller catches, and
    # both are the code's name in schema/common.fbs (InvalidRequest, not InvalidInput).
    for code in ErrorCode:
        if code == ErrorCode.NONE:
            continue
        cls = type(muster.error_for(code, "x"))
        assert cls.__name__ == code.schema_name, (code, cls)
        assert getattr(muster, code.schema_name) is cls
        assert code.schema_name in muster.__all__
    assert "InvalidInput" not in muster.__all__
