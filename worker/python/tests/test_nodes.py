"""Declaring nodes (decorator, definition dict, port shorthands) and nodes-directory mode,
including the `python -m muster.worker --nodes-dir` process against the fake daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import muster
from muster import messages as m
from muster.nodes import Registry, make_node, node_from_definition, ports
from muster.nodes_dir import NodesDirectory

from conftest import WAIT, attached_reply, worker_topic


def test_decorator_forms_and_ports():
    reg = Registry()

    @reg.node(
        name="t.node",
        description="d",
        category="c",
        version="2",
        inputs={"a": "string", "b": int, "c": {"type": "float", "required": True, "description": "cee"}, "d": {"type": "map", "default": {"k": 1}}},
        outputs=["x", muster.Port("y", "bytes")],
        parameters={"loud": False, "times": 2, "nothing": None},
        idempotent=True,
        timeout_ms=1234,
    )
    def handler(ctx):
        return {}

    spec = reg.get("t.node").spec
    assert spec == m.NodeSpec(
        name="t.node",
        description="d",
        category="c",
        version="2",
        inputs=[
            m.Port("a", "string"),
            m.Port("b", "int"),
            m.Port("c", "float", "cee", True),
            m.Port("d", "map", None, False, {"k": 1}),
        ],
        outputs=[m.Port("x", "any"), m.Port("y", "bytes")],
        parameters=[m.Port("loud", "bool", default_value=False), m.Port("times", "int", default_value=2), m.Port("nothing", "any", default_value=None)],
        idempotent=True,
        default_timeout_ms=1234,
    )

    @reg.node
    def bare(ctx):
        """Docstring becomes the description.

        Not this part."""

    assert reg.get("bare").spec.description == "Docstring becomes the description."


def test_definition_dict():
    n = node_from_definition(
        {
            "name": "def.node",
            "category": "Processing",
            "inputs": [{"name": "input1", "type": "string", "description": "First input"}],
            "outputs": [{"name": "output1", "type": "string"}],
            "parameters": [{"name": "param1", "type": "boolean", "default": True, "label": "P1"}],
            "timeout_ms": 10,
        },
        lambda ctx: {},
    )
    assert n.spec.parameters == [m.Port("param1", "bool", "P1", False, True)]
    assert n.spec.default_timeout_ms == 10
    with pytest.raises(ValueError, match="unknown key"):
        node_from_definition({"name": "x", "inputz": {}}, lambda ctx: {})
    with pytest.raises(ValueError, match="name"):
        node_from_definition({"description": "x"}, lambda ctx: {})


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "semi;colon", "ünï"])
def test_invalid_node_names(bad):
    with pytest.raises(ValueError, match="invalid node name"):
        make_node(lambda ctx: {}, bad)


def test_invalid_ports():
    with pytest.raises(ValueError, match="unknown type"):
        ports({"a": "strnig"})
    with pytest.raises(ValueError, match="duplicate"):
        ports([{"name": "a"}, "a"])
    with pytest.raises(ValueError, match="cannot be encoded"):
        ports({"a": {"type": "int", "default": 2**64}})


def test_prepare_applies_defaults_and_checks():
    n = make_node(
        lambda ctx: {},
        "p",
        inputs={"req": {"type": "int", "required": True}, "opt": {"type": "string", "default": "d"}, "f": "float"},
        parameters={"k": 1},
    )
    inputs, params = n.prepare({"req": 1, "f": 2}, None)
    assert inputs == {"req": 1, "f": 2, "opt": "d"} and params == {"k": 1}
    with pytest.raises(muster.InvalidRequest, match="missing required input 'req'"):
        n.prepare({}, {})
    with pytest.raises(muster.InvalidRequest, match="parameter 'k' must be int"):
        n.prepare({"req": 1}, {"k": "x"})
    inputs, _ = n.prepare({"req": None}, {})  # null is accepted for any type
    assert inputs["req"] is None


NODE_V1 = '''
import muster
import helper

@muster.node(name="dir.a", inputs={"x": "int"})
def a(ctx):
    return {"y": helper.VALUE}

muster.add_node({"name": "dir.b", "description": "by definition"}, lambda ctx: {"b": True})
'''


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    # Make the change visible to an mtime poll even on coarse clocks.
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000 * int(time.time() % 1000 + 1)))


def test_nodes_directory_load_and_reload(tmp_path):
    root = tmp_path / "nodes"
    write(str(root / "one" / "node.py"), NODE_V1)
    write(str(root / "one" / "helper.py"), "VALUE = 1\n")
    write(str(root / "two" / "deeper" / "node.py"), 'import muster\n@muster.node(name="dir.c")\ndef c(ctx):\n    return {}\n')
    write(str(root / "broken" / "node.py"), "raise RuntimeError('nope')\n")
    d = NodesDirectory(str(root))
    nodes = d.load()
    assert [n.name for n in nodes] == ["dir.a", "dir.b", "dir.c"]
    assert nodes[0].handler(None) == {"y": 1}
    assert not d.changed()
    # A helper changes: reloaded too.
    write(str(root / "one" / "helper.py"), "VALUE = 2\n")
    assert d.changed()
    nodes = d.load()
    assert nodes[0].handler(None) == {"y": 2}
    # A file breaks: its last good nodes stay.
    write(str(root / "one" / "node.py"), "this is not python(\n")
    assert [n.name for n in d.load()] == ["dir.a", "dir.b", "dir.c"]
    # A file goes away: its nodes go.
    os.remove(root / "two" / "deeper" / "node.py")
    assert [n.name for n in d.load()] == ["dir.a", "dir.b"]


def test_cli_nodes_dir_attaches_reloads_and_detaches(fake_daemon, tmp_path):
    root = tmp_path / "nodes"
    write(str(root / "one" / "node.py"), NODE_V1)
    write(str(root / "one" / "helper.py"), "VALUE = 1\n")
    cmd = [
        sys.executable, "-m", "muster.worker",
        "--request-address", fake_daemon.request_address,
        "--response-address", fake_daemon.response_address,
        "--worker-id", "cli-w", "--capacity", "3", "--log-level", "debug",
        "--nodes-dir", str(root), "--reload-interval", "0.1",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # A new Python process imports zmq, flatbuffers and muster first: on a loaded machine
        # that alone took longer than WAIT (12 busy loops beside: no Attach within 10 s, and no
        # line on its stderr yet). Its start is not what this test measures.
        peer, raw, att = fake_daemon.expect(m.Attach, timeout=6 * WAIT)
        assert att.worker_id == "cli-w" and att.capacity == 3 and att.pid == proc.pid
        assert [n.name for n in att.nodes] == ["dir.a", "dir.b"]
        fake_daemon.reply(peer, attached_reply("cli-w"))
        peer, raw, pong = fake_daemon.confirm("cli-w", "inst-1")
        fake_daemon.reply(peer, m.Ack())
        fake_daemon.publish(worker_topic("cli-w"), m.WorkRequest(request_id=1, node="dir.a", inputs={"x": 1}))
        peer, raw, res = fake_daemon.expect(m.Result, skip=(m.Pong,))
        assert res.outputs == {"y": 1}
        fake_daemon.reply(peer, m.Ack())
        # Add a node file: the worker re-attaches with the same session and the new list.
        write(str(root / "three" / "node.py"), 'import muster\n@muster.node(name="dir.new")\ndef n(ctx):\n    return {"new": 1}\n')
        deadline = time.monotonic() + WAIT
        while True:
            fake_daemon.publish("b:", m.Ping(seq=2, instance="inst-1"))  # keep it alive
            peer, raw, msg = fake_daemon.recv()
            if isinstance(msg.body, m.Attach):
                break
            fake_daemon.reply(peer, m.Ack())
            assert time.monotonic() < deadline
        assert msg.body.session == att.session
        assert [n.name for n in msg.body.nodes] == ["dir.a", "dir.b", "dir.new"]
        fake_daemon.reply(peer, attached_reply("cli-w"))
        proc.send_signal(signal.SIGTERM)
        peer, raw, det = fake_daemon.expect(m.Detach, skip=(m.Pong,))
        assert det.reason == "SIGTERM"
        fake_daemon.reply(peer, m.Ack())
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=WAIT)
    assert "attaching worker cli-w" in err


def test_typed_signature_derives_ports_and_calls_with_keywords():
    from typing import Any, Dict, Optional, Union

    reg = muster.Registry()

    @reg.node
    def f(a: int, b: Union[int, float] = 2, c: Optional[bytes] = None, d: Any = None, *, p: str = "x") -> Dict[str, Any]:
        """Does f.

        Details that are not the description."""
        return {"a": a, "b": b, "c": c, "p": p}

    node = reg.get("f")
    assert node.spec.description == "Does f."
    assert [(p.name, p.type, p.required) for p in node.spec.inputs] == [
        ("a", "int", True), ("b", "float", False), ("c", "bytes", False), ("d", "any", False)]
    assert node.spec.outputs == [] and [p.name for p in node.spec.parameters] == ["p"]
    assert f(1) == {"a": 1, "b": 2, "c": None, "p": "x"}  # the decorator returns the function itself

    class Ctx:
        inputs = {"a": 5}
        parameters = {"p": "y"}

    assert node.handler(Ctx()) == {"a": 5, "b": 2, "c": None, "p": "y"}

    @reg.node(name="plain")
    def plain(ctx):  # one unannotated parameter: the classic Context handler
        return {}

    assert reg.get("plain").handler is plain


def test_typed_signature_refuses_what_it_cannot_map():
    reg = muster.Registry()
    with pytest.raises(ValueError, match=r"\*args cannot be a port"):

        @reg.node
        def h(*args: int) -> None:
            return None

    with pytest.raises(ValueError, match="cannot map the annotation"):

        @reg.node
        def g(x: complex) -> None:
            return None
