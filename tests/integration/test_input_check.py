"""musterd checks every Submit's inputs against the node's declared ports (PROTOCOL.md §5.1):
the same bad inputs sent to a node served by a C++, a Python and a TypeScript worker get the
same INVALID_REQUEST answer, from musterd, and the worker never sees the request. A worker
declaring a served node differently is refused at Attach, naming the node and the difference."""
from __future__ import annotations

import json
import shutil
import sys

import pytest

from conftest import REPO, muster_cli, spawn, wait_for

PY_WORKER = REPO / "worker" / "examples" / "python" / "example_worker.py"
TS_SDK = REPO / "worker" / "typescript"

# A TypeScript worker serving `ts.sleep` declared as the C++ and Python example workers
# declare `sleep` ({ms: int, required}); every call its handler sees is appended to SEEN.
TS_WORKER = r"""
const fs = require('node:fs');
const { Worker } = require(process.env.TS_SDK);
const w = new Worker({ workerId: 'ts', capacity: 2, logger: 'info' });
w.node({ name: 'ts.sleep', description: 'Sleeps for `ms` milliseconds, reporting progress; stops early on abort.',
         category: 'examples', version: '1.0.0',
         inputs: [{ name: 'ms', type: 'int', required: true }],
         outputs: [{ name: 'slept_ms', type: 'int' }] },
       async (ctx) => { fs.appendFileSync(process.env.SEEN, JSON.stringify(ctx.inputs.ms ?? null) + '\n');
                        return { slept_ms: 0 }; });
w.start();
process.on('SIGTERM', () => w.stop().then(() => process.exit(0)));
"""

BAD_INPUTS = [
    ('{"ms": "x"}', 'node \'{node}\': input "ms": expected int, got string'),
    ('{"ms": 1.5}', 'node \'{node}\': input "ms": expected int, got float'),
    ('{}', 'node \'{node}\': missing required input "ms" (int)'),
    ('{"ms": null}', 'node \'{node}\': missing required input "ms" (null given; expected int)'),
    ('{"msec": 2}', 'node \'{node}\': missing required input "ms" (int)'),
    ('{"ms": [1]}', 'node \'{node}\': input "ms": expected int, got list'),
]


def ready_workers(daemon):
    r = muster_cli(daemon, "workers", "--json")
    return {w["worker_id"] for w in json.loads(r.stdout) if w["state"] == "ready"} if r.returncode == 0 else set()


@pytest.fixture
def three_sleeps(daemon, start_worker, tmp_path):
    if shutil.which("node") is None or not (TS_SDK / "dist").exists():
        pytest.skip("the TypeScript SDK is not built (tools/test builds it)")
    seen = tmp_path / "ts-seen.txt"
    start_worker(daemon, worker_id="cpp")
    spawn([sys.executable, PY_WORKER, "--prefix", "py.", "--worker-id", "py"], daemon.env,
          daemon.runtime_dir.parent / "py.log")
    spawn(["node", "-e", TS_WORKER], dict(daemon.env, TS_SDK=str(TS_SDK), SEEN=str(seen)),
          daemon.runtime_dir.parent / "ts.log")
    wait_for(lambda: ready_workers(daemon) >= {"cpp", "py", "ts"}, 20, "the three workers")
    return daemon, seen


def test_the_same_bad_inputs_get_the_same_answer_from_musterd_whatever_the_worker(three_sleeps):
    daemon, seen = three_sleeps
    for inputs, expected in BAD_INPUTS:
        answers = {}
        for node in ("sleep", "py.sleep", "ts.sleep"):
            r = muster_cli(daemon, "call", node, inputs)
            answers[node] = (r.returncode, r.stderr.strip())
        for node, (rc, err) in answers.items():
            assert (rc, err) == (1, "error: INVALID_REQUEST: " + expected.format(node=node)), answers
    assert not seen.exists() or seen.read_text() == "", "the TypeScript worker saw a refused request"
    # a good call still reaches each of them
    for node in ("sleep", "py.sleep", "ts.sleep"):
        r = muster_cli(daemon, "call", node, '{"ms": 1}')
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["slept_ms"] >= 0
    assert seen.read_text() == "1\n"


def test_a_worker_declaring_a_served_node_differently_is_refused(daemon, start_worker):
    start_worker(daemon, worker_id="cpp").wait_ready()
    # The Python example declares `hello` with an input "name" of type any; the C++ one, string.
    py = spawn([sys.executable, PY_WORKER, "--worker-id", "py"], daemon.env,
               daemon.runtime_dir.parent / "py.log")
    log = daemon.runtime_dir.parent / "py.log"
    wait_for(lambda: "daemon refused Attach" in log.read_text(), 20, "the Python worker's refusal")
    text = log.read_text()
    assert "INVALID_REQUEST: node '" in text
    assert "is already served by worker 'cpp' with a different declaration" in text
    assert py.poll() is None  # it keeps retrying; it is never attached
    assert ready_workers(daemon) == {"cpp"}
    nodes = {n["name"]: n for n in json.loads(muster_cli(daemon, "nodes", "--json").stdout)}
    assert nodes["hello"]["inputs"][0]["type"] == "string"
    assert nodes["hello"]["workers"] == 1
