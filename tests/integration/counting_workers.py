"""counting_workers.py — one worker per SDK that counts its executions in a file, for the
durability tests (test_adoption.py, test_durable.py) and tools/fault's durable mix.

All three serve the same two nodes (the C++ one is tests/support/counting_worker.cpp):
  count      (not idempotent) {i, ms} -> {i}
  count_idem (idempotent)     {i, ms} -> {i}
Each execution appends "start <i>" to the log, sleeps `ms` ms (ms < 0: until the file
"<log>.gate-<i>" exists), then appends "done <i>". Given `addresses` (request, response), a
worker connects there (a failover pair's comma-separated lists), else to the default endpoints;
`insecure`: tcp:// in clear text (a musterd --insecure in tools/fault's network namespaces).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PYTHON = '''
import logging, os, sys, time
import muster

logging.basicConfig(level=logging.INFO)

worker_id, log = sys.argv[1], sys.argv[2]
addresses = dict(zip(("request_address", "response_address"), sys.argv[3:5]))
worker = muster.Worker(worker_id=worker_id, capacity=4, insecure=sys.argv[5:6] == ["insecure"], **addresses)

def note(line):
    with open(log, "a") as f:
        f.write(line + "\\n")

def count(ctx, i: int, ms: int = 0) -> dict:
    note(f"start {i}")
    gate = f"{log}.gate-{i}"
    if ms < 0:
        while not os.path.exists(gate):
            time.sleep(0.02)
    else:
        time.sleep(ms / 1000)
    note(f"done {i}")
    return {"i": i}

for name, idempotent in (("count", False), ("count_idem", True)):
    worker.add_node({"name": name, "idempotent": idempotent,
                     "inputs": [{"name": "i", "type": "int", "required": True},
                                {"name": "ms", "type": "int"}],
                     "outputs": [{"name": "i", "type": "int"}]},
                    lambda ctx: count(ctx, int(ctx.inputs["i"]), int(ctx.inputs.get("ms") or 0)))
worker.run()
'''

TYPESCRIPT = '''
'use strict';
const fs = require('node:fs');
const { Worker } = require(process.env.MUSTER_TS_SDK);
const [workerId, log, requestAddress, responseAddress, insecure] = process.argv.slice(2);
const worker = new Worker({ workerId, capacity: 4, logger: 'debug', requestAddress, responseAddress,
                            insecure: insecure === 'insecure' });
const note = (line) => fs.appendFileSync(log, line + '\\n');
for (const [name, idempotent] of [['count', false], ['count_idem', true]]) {
  worker.node(
    { name, idempotent,
      inputs: [{ name: 'i', type: 'int', required: true }, { name: 'ms', type: 'int' }],
      outputs: [{ name: 'i', type: 'int' }] },
    async (ctx) => {
      const i = Number(ctx.inputs.i);
      const ms = Number(ctx.inputs.ms ?? 0);
      note(`start ${i}`);
      if (ms < 0) {
        while (!fs.existsSync(`${log}.gate-${i}`)) await new Promise((r) => setTimeout(r, 20));
      } else {
        await new Promise((r) => setTimeout(r, ms));
      }
      note(`done ${i}`);
      return { i: ctx.inputs.i };
    });
}
worker.run().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
'''

SDKS = ("cpp", "python", "typescript")


def command(sdk: str, build: Path, worker_id: str, log: Path, scratch: Path, addresses: tuple = (),
            insecure: bool = False) -> list:
    """The command line of the counting worker of `sdk` (scripts are written to `scratch`);
    `addresses`: (request, response) endpoints or lists, else the defaults; `insecure` needs them."""
    clear = ["insecure"] if insecure else []
    if sdk == "cpp":
        where = ["--request-address", addresses[0], "--response-address", addresses[1]] if addresses else []
        return [build / "tests" / "muster-test-counting-worker", "--worker-id", worker_id, "--log", log, *where,
                *(["--insecure"] if insecure else [])]
    if sdk == "python":
        script = scratch / "counting_worker.py"
        script.write_text(PYTHON)
        return [sys.executable, script, worker_id, log, *addresses, *clear]
    script = scratch / "counting_worker.js"
    script.write_text(TYPESCRIPT)
    return ["node", script, worker_id, log, *addresses, *clear]


def env(base: dict) -> dict:
    """`base` plus what the TypeScript twin needs to find the SDK."""
    return dict(base, MUSTER_TS_SDK=str(REPO / "worker" / "typescript"))


def executions(log: Path) -> dict:
    """{"start": {i: n}, "done": {i: n}} from a counting worker's log."""
    out: dict = {"start": {}, "done": {}}
    if log.exists():
        for line in log.read_text().split("\n"):
            if line:
                what, i = line.split()
                out[what][int(i)] = out[what].get(int(i), 0) + 1
    return out
