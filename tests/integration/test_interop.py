"""Interop: one musterd with a C++, a Python and a TypeScript worker attached at once; clients
in each language (the C++ `muster` CLI, the Python client, the TypeScript example client) call
the `echo` node of the workers in the other two languages, and every value kind must come back
exactly: int64 limits, floats (integral ones stay floats), unicode, bytes, empty and nested
lists and maps, null, booleans."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BUILD, REPO, muster_cli, spawn, wait_for

# The JSON form (PROTOCOL.md §4) of the values every language must carry unchanged.
VALUES_JSON = (
    '{"int_min": -9223372036854775808, "int_max": 9223372036854775807, "zero": 0,'
    ' "float": 3.141592653589793, "whole_float": 2.0, "tiny": 5e-324, "neg": -1.5e300,'
    ' "unicode": "h\\u00e9llo \\u4e16\\u754c \\ud83c\\udf89", "empty_string": "",'
    ' "bytes": {"$bytes": "AAEC/w=="}, "no_bytes": {"$bytes": ""},'
    ' "empty_list": [], "empty_map": {}, "nested": {"a": [1, [2, [3, {"b": null}]]], "c": {"d": {}}},'
    ' "null": null, "t": true, "f": false, "list": [1, "two", 3.0, null, false]}'
)
TS_CLIENT = REPO / "worker" / "examples" / "typescript" / "example-client.js"
TS_WORKER = REPO / "worker" / "examples" / "typescript" / "example-worker.js"
PY_WORKER = REPO / "worker" / "examples" / "python" / "example_worker.py"


def exact(text: str):
    """Parses JSON keeping the int/float distinction (Python's json does: 2.0 is a float)."""
    return json.loads(text)


def same(a, b) -> bool:
    """Equality that also compares kinds: 2 != 2.0, True != 1."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture
def three_workers(daemon, start_worker):
    if shutil.which("node") is None or not (REPO / "worker" / "typescript" / "dist").exists():
        pytest.skip("the TypeScript SDK is not built (tools/test builds it)")
    start_worker(daemon, worker_id="cpp").wait_ready()
    spawn([sys.executable, PY_WORKER, "--prefix", "py.", "--worker-id", "py"], daemon.env,
          daemon.runtime_dir.parent / "py.log")
    spawn(["node", TS_WORKER, "--prefix", "ts.", "--worker-id", "ts"], daemon.env,
          daemon.runtime_dir.parent / "ts.log")

    def all_ready():
        ws = json.loads(muster_cli(daemon, "workers", "--json").stdout)
        return {w["worker_id"] for w in ws if w["state"] == "ready"} >= {"cpp", "py", "ts"}
    wait_for(all_ready, 20, "the C++, Python and TypeScript workers")
    return daemon


def call_cpp(daemon, node):
    r = muster_cli(daemon, "call", node, VALUES_JSON)
    assert r.returncode == 0, r.stderr
    return exact(r.stdout)


def call_ts(daemon, node):
    r = subprocess.run(["node", str(TS_CLIENT), "call", node, VALUES_JSON], env=daemon.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return exact(r.stdout)


def call_py(daemon, node):
    import muster
    from muster.values import from_json, to_json
    old = os.environ.get("MUSTER_RUNTIME_DIR")
    os.environ["MUSTER_RUNTIME_DIR"] = str(daemon.runtime_dir)
    try:
        with muster.Client() as client:
            outputs = client.call(node, from_json(exact(VALUES_JSON)), timeout_ms=10000)
    finally:
        if old is None:
            os.environ.pop("MUSTER_RUNTIME_DIR")
        else:
            os.environ["MUSTER_RUNTIME_DIR"] = old
    return to_json(outputs)


@pytest.mark.parametrize("client,nodes", [
    ("cpp", ["py.echo", "ts.echo"]),
    ("py", ["echo", "ts.echo"]),
    ("ts", ["echo", "py.echo"]),
])
def test_values_cross_every_language_pair_exactly(three_workers, client, nodes):
    call = {"cpp": call_cpp, "py": call_py, "ts": call_ts}[client]
    expected = exact(VALUES_JSON)
    for node in nodes:
        got = call(three_workers, node)
        assert same(got, expected), f"{client} client -> {node}:\n{got}\n!=\n{expected}"
