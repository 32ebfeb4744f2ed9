"""The Python SDK as a user gets it: `python -m build` makes a wheel and an sdist of the
distribution `muster-sdk`; the wheel installs into a FRESH virtualenv (its dependencies, pyzmq
and flatbuffers, from the package index or pip's cache); the installed console script serves a
node to a real musterd and a client program run by that venv's Python calls it.

Needs network access to the package index the first time (pip caches what it downloads), as
tools/test does for the project's own virtualenv.
"""
from __future__ import annotations

import tarfile
import zipfile

import pytest

from conftest import read_log, spawn, stop, wait_for
from package_builds import build_python_dists, run, venv_with_wheel

pytest.importorskip("build", reason="`build` is not installed in the test virtualenv (tools/lib/setup.sh installs it)")
muster = pytest.importorskip("muster", reason="the Python SDK is not installed (pip install ./worker/python)")

NODE_FILE = '''
import muster

@muster.node(idempotent=True)
def add(a: int, b: int = 1) -> {"sum": int}:
    """Adds two integers."""
    return {"sum": a + b}
'''

CLIENT = '''
import asyncio, sys
import muster

assert "site-packages" in muster.__file__, muster.__file__
with muster.Client() as c:
    assert c.call("add", {"a": 2, "b": 40}) == {"sum": 42}
    try:
        c.call("add", {})
    except muster.InvalidRequest as e:
        print("refused:", e)

async def main():
    async with muster.AsyncClient() as c:
        return await c.call("add", {"a": 1})

print(asyncio.run(main()))
'''


def test_wheel_and_sdist_install_into_a_fresh_venv_and_work(start_daemon, tmp_path):
    wheel, sdist = build_python_dists(tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    assert "muster/py.typed" in names and "muster/aio.py" in names and "muster/wire/WorkRequest.py" in names
    assert not any(n.startswith("tests/") for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "Name: muster-sdk" in zipfile.ZipFile(wheel).read(metadata).decode()
    members = tarfile.open(sdist).getnames()
    assert any(m.endswith("/src/muster/py.typed") for m in members)
    assert any(m.endswith("/README.md") for m in members)

    venv = venv_with_wheel(wheel, tmp_path / "venv")
    help_text = run([venv / "bin" / "muster-python-worker", "--help"]).stdout
    assert help_text.startswith("usage: muster-python-worker "), help_text
    assert "--log-format" in help_text

    daemon = start_daemon()
    node_file = tmp_path / "add_node.py"
    node_file.write_text(NODE_FILE)
    worker = spawn([venv / "bin" / "muster-python-worker", "--worker-id", "wheel-1", "--log-format", "json", node_file],
                   daemon.env, tmp_path / "worker.log")
    with muster.Client(daemon.client_address) as c:
        def ready():
            if worker.poll() is not None:
                pytest.fail(f"the installed worker exited:\n{read_log(worker)}")
            return any(w.worker_id == "wheel-1" and w.state == "ready" for w in c.workers())
        wait_for(ready, 20, "the installed worker to attach")
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    out = run([venv / "bin" / "python", client], env=daemon.env, cwd=tmp_path)
    assert """refused: INVALID_REQUEST: node 'add': missing required input "a" (int)""" in out.stdout  # musterd's check
    assert out.stdout.strip().endswith("{'sum': 2}")
    assert stop(worker) == 0
    import json
    lines = [json.loads(line) for line in read_log(worker).splitlines() if line.strip()]
    assert any(rec["component"] == "muster.worker" and rec["level"] == "info" for rec in lines), lines
