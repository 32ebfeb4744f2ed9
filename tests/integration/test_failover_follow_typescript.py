"""The TypeScript SDK follows a failover (docs/DURABILITY.md §12, "Workers and callers are given
both daemons' addresses"): test_failover_follow.py's pair (two real musterd on one real
PostgreSQL journal; the standby binds nothing until it takes the lease), with a TypeScript worker
(tests/integration/counting_workers.py) and a TypeScript durable caller (worker/typescript/dist),
each given BOTH daemons' addresses as comma-separated lists, started once, never pointed anew.

The active daemon is SIGKILLed while the call runs on the TypeScript worker: the worker re-attaches
to the standby by itself with its in-flight list, the standby adopts the call (it is not run
again), and the caller, resumed on the standby, gets its one outcome.
"""
from __future__ import annotations

import json
import shutil
import signal

import pytest

import counting_workers
from conftest import REPO, read_log, spawn, stop, wait_for
from test_failover import cli, postgres, database, start_pair, status  # noqa: F401 (fixtures)
from test_failover_follow import both, worker_on

NODE = shutil.which("node")
TS_DIST = REPO / "worker" / "typescript" / "dist" / "src"
pytestmark = pytest.mark.skipif(NODE is None or not (TS_DIST / "index.js").exists(),
                                reason="node and the built TypeScript SDK (npm run build) are needed")

# A durable call of count {i, ms} through a TypeScript Client given the pair's client addresses;
# prints JOB <id> once accepted, then OUTCOME <json> once.
TS_CALLER = r'''
const { Client } = require(process.env.MUSTER_TS_SDK);
const [address, i, ms] = process.argv.slice(2);
const client = new Client({ clientAddress: address, logger: 'info', resumeTimeoutMs: 60000 });
const call = client.submit('count', { i: Number(i), ms: Number(ms) }, {
  durable: true, onAccepted: ({ jobId }) => console.log(`JOB ${jobId}`) });
call.result.then(
  (out) => console.log(`OUTCOME ${JSON.stringify({ out })}`),
  (e) => console.log(`OUTCOME ${JSON.stringify({ error: e.code, message: e.message })}`),
).finally(() => client.close());
'''


def test_a_typescript_worker_and_durable_caller_given_both_addresses_follow_a_sigkill_failover(tmp_path, postgres, database):
    a, b = start_pair(tmp_path, postgres, database)
    log = tmp_path / "executions"
    worker = spawn(counting_workers.command("typescript", None, "ts-follower", log, tmp_path,
                                            (both(a, b, "request"), both(a, b, "response"))),
                   counting_workers.env(a.env), tmp_path / "worker.log")
    wait_for(lambda: (worker_on(a, "ts-follower") or {}).get("state") == "ready", 20, "the TypeScript worker on the active daemon")

    script = tmp_path / "caller.js"
    script.write_text(TS_CALLER)
    # ms -1: the call runs until the test opens its gate, so it is still running whatever the
    # failover takes (it was a 4 s call, which a slow re-attach could outlast).
    caller = spawn([NODE, script, both(a, b, "client"), 7, -1], dict(a.env, MUSTER_TS_SDK=str(TS_DIST)),
                   tmp_path / "caller.log")
    wait_for(lambda: counting_workers.executions(log)["start"] == {7: 1}, 20, "the call running on the worker")
    # Accepted comes once the call's records are committed, which may be after the worker
    # started it (one commit per call, docs/DURABILITY.md §3): only then does the journal hold it.
    wait_for(lambda: "JOB 1" in read_log(caller), 20, "the caller's Accepted (the call journaled)")

    a.stop(signal.SIGKILL)
    wait_for(lambda: "standby: took over" in read_log(b.proc), 30, "the standby to take over")
    wait_for(lambda: worker_on(b, "ts-follower"), 30, "the TypeScript worker to attach to the standby")
    wait_for(lambda: "daemon restarted: reporting 1 running request(s)" in read_log(worker), 10,
             "the worker to report its running call to the standby")
    (tmp_path / "executions.gate-7").touch()  # the call may finish now

    # The caller resumed its durable call on the standby and got its one outcome: the result.
    assert caller.wait(60) == 0, read_log(caller)
    outcomes = [line for line in read_log(caller).splitlines() if line.startswith("OUTCOME ")]
    assert outcomes == ['OUTCOME {"out":{"i":7}}'], read_log(caller)
    # Run once: the standby adopted the running call from the worker's in-flight list.
    assert worker.poll() is None
    assert counting_workers.executions(log) == {"start": {7: 1}, "done": {7: 1}}
    rows = postgres.psql("SELECT job_id, state, outcome_code, attempts FROM calls ORDER BY job_id", database)
    # Acknowledged by the caller once handed over: the standby forgets it.
    wait_for(lambda: postgres.psql("SELECT count(*) FROM calls", database).strip() == "0", 15,
             f"the caller's JobAck on the standby (rows: {rows})")
    assert cli(b, "status", "--json").returncode == 0
    assert b.stop() == 0
    assert stop(worker) == 0
