"""Issue 17's "Done when", across languages and packages: against the musterd of the installed
.deb (its runtime dir given by MUSTER_INSTALLED_RUNTIME_DIR, its CLI by MUSTER_INSTALLED_BIN),
  - a Python worker installed from the wheel (its console script, `muster-python-worker`) is
    called by a TypeScript client installed from the npm tarball, and
  - a TypeScript worker installed from the tarball is called by a Python client installed from
    the wheel,
each with a good call and a refused one (musterd's input check, the same code on both sides).

tests/packaging/run.sh runs this file once the packages are installed and musterd runs as the
unit does; without MUSTER_INSTALLED_RUNTIME_DIR (ctest) it is skipped. The wheel and the
tarball are built once for both tests (package_builds.py, as the single-language package tests).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import read_log, spawn, stop, wait_for
from package_builds import build_python_dists, npm_pack, npm_project_with, run, venv_with_wheel

RUNTIME_DIR = os.environ.get("MUSTER_INSTALLED_RUNTIME_DIR")
pytestmark = [
    pytest.mark.skipif(not RUNTIME_DIR, reason="run by tests/packaging/run.sh against the installed .deb's musterd "
                                               "(MUSTER_INSTALLED_RUNTIME_DIR)"),
    pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed"),
]
CLI = Path(os.environ.get("MUSTER_INSTALLED_BIN", "/usr/bin")) / "muster"

PYTHON_WORKER = '''
import muster

@muster.node(name="xlang.py.add", idempotent=True)
def add(a: int, b: int = 1) -> {"sum": int}:
    """Adds two integers (a Python worker from the wheel)."""
    return {"sum": a + b}
'''

TS_CLIENT = r"""
const { Client, MusterError } = require('muster-sdk');
const c = new Client();
(async () => {
  const out = await c.call('xlang.py.add', { a: 2, b: 40 });
  console.log('sum', String(out.sum));
  try { await c.call('xlang.py.add', { b: 1 }); } catch (e) {
    console.log('refused', e instanceof MusterError, String(e));
  }
  c.close();
})().catch((e) => { console.error(String(e)); process.exit(1); });
"""

TS_WORKER = r"""
const { Worker } = require('muster-sdk');
const w = new Worker({ workerId: process.argv[2] });
w.node({ name: 'xlang.ts.concat', inputs: { a: 'string', b: 'string' }, outputs: { joined: 'string' } },
       (ctx) => ({ joined: ctx.inputs.a + ctx.inputs.b }));
w.run().then(() => process.exit(0), (e) => { console.error(String(e)); process.exit(1); });
"""

PY_CLIENT = '''
import muster

assert "site-packages" in muster.__file__, muster.__file__
with muster.Client() as c:
    print("joined", c.call("xlang.ts.concat", {"a": "ts", "b": "-from-py"})["joined"])
    try:
        c.call("xlang.ts.concat", {"a": 7, "b": "x"})
    except muster.InvalidRequest as e:
        print("refused", e)
'''


@pytest.fixture(scope="module")
def installs():
    """(venv with the wheel, npm project with the tarball), built once for this file."""
    with tempfile.TemporaryDirectory(prefix="mst-xlang-") as d:
        base = Path(d)
        wheel, _ = build_python_dists(base / "dist")
        venv = venv_with_wheel(wheel, base / "venv")
        project = npm_project_with(npm_pack(base), base / "app")
        yield venv, project


@pytest.fixture
def env():
    return dict(os.environ, MUSTER_RUNTIME_DIR=RUNTIME_DIR)


def wait_attached(env, worker_id, proc):
    def ready():
        if proc.poll() is not None:
            pytest.fail(f"the installed worker exited:\n{read_log(proc)}")
        out = subprocess.run([CLI, "workers", "--json"], env=env, capture_output=True, text=True, timeout=30)
        return out.returncode == 0 and any(w["worker_id"] == worker_id and w["state"] == "ready"
                                           for w in json.loads(out.stdout))
    wait_for(ready, 30, f"{worker_id} to attach to the installed musterd")


def test_python_worker_from_the_wheel_serves_a_typescript_client_from_the_tarball(installs, env, tmp_path):
    venv, project = installs
    node_file = tmp_path / "xlang_nodes.py"
    node_file.write_text(PYTHON_WORKER)
    worker_id = f"xlang-py-{os.getpid()}"
    worker = spawn([venv / "bin" / "muster-python-worker", "--worker-id", worker_id, node_file], env,
                   tmp_path / "worker.log")
    wait_attached(env, worker_id, worker)
    (project / "client.js").write_text(TS_CLIENT)
    out = run(["node", project / "client.js"], cwd=project, env=env).stdout
    assert "sum 42" in out, out
    assert """refused true MusterError: INVALID_REQUEST: node 'xlang.py.add': missing required input "a" (int)""" in out, out
    assert stop(worker) == 0, read_log(worker)


def test_typescript_worker_from_the_tarball_serves_a_python_client_from_the_wheel(installs, env, tmp_path):
    venv, project = installs
    (project / "worker.js").write_text(TS_WORKER)
    worker_id = f"xlang-ts-{os.getpid()}"
    worker = spawn(["node", project / "worker.js", worker_id], env, tmp_path / "worker.log", cwd=project)
    wait_attached(env, worker_id, worker)
    client = tmp_path / "client.py"
    client.write_text(PY_CLIENT)
    out = run([venv / "bin" / "python", client], env=env, cwd=tmp_path).stdout
    assert "joined ts-from-py" in out, out
    assert """refused INVALID_REQUEST: node 'xlang.ts.concat': input "a": expected string, got int""" in out, out
    assert stop(worker) == 0, read_log(worker)
