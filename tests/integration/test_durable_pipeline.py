"""Pipelined group commit (docs/DURABILITY.md §3), with a real musterd on a PostgreSQL journal
whose commit the test holds up: the test keeps the lease row locked FOR UPDATE, so musterd's
fenced turn (SELECT … FOR SHARE) waits in the journal thread until the test lets it go.

While that commit waits, musterd's loop still answers (`muster status`), and nothing the
commit must cover reaches the caller: no Accepted, no result. The WorkRequest does go (one
commit per call, DURABILITY.md §3: the call's Submitted and Dispatched are in the same
uncommitted batch, so a crash would leave nothing to run it again): the worker runs the call
while the commit waits, and its result waits for the commit too. Once the commit is let go,
the caller gets its job id and the one result; the call ran once. Before pipelining, the loop
itself waited inside the commit and answered nothing; before early dispatch, the worker ran
nothing until the commit."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import _PROCS, BUILD, Daemon, popen, read_log, spawn, wait_for
from test_durable import COUNTING_WORKER
from test_failover import cli, database, launch, postgres  # noqa: F401  (fixtures)

MUSTER = BUILD / "tools" / "muster"


def test_musterd_answers_while_a_commit_waits_and_sends_nothing_that_depends_on_it(tmp_path, postgres, database):
    runtime = tmp_path / "run"
    # A long ping interval: the loop may run ahead of a waiting commit for half of it (10 s).
    d = Daemon(runtime_dir=runtime, data_dir=tmp_path / "data",
               args=["--ping-interval-ms", "20000", "--journal", postgres.uri(database),
                     "--lease-ms", "60000", "--log-level", "debug"],
               env=dict(os.environ, MUSTER_RUNTIME_DIR=str(runtime)))
    launch(d)
    wait_for(lambda: "ready" in read_log(d.proc) or d.proc.poll() is not None, 15, "musterd")
    assert d.proc.poll() is None, read_log(d.proc)
    script, log = tmp_path / "counting_worker.py", tmp_path / "executions.log"
    script.write_text(COUNTING_WORKER)
    spawn([sys.executable, script, "counter", log, tmp_path / "gate"], d.env, tmp_path / "counter.log")
    wait_for(lambda: any(w["state"] == "ready" for w in json.loads(cli(d, "workers", "--json").stdout or "[]")),
             15, "the counting worker")

    # Hold the lease row: musterd's next turn with a record waits for it.
    holder = popen(["psql", "-X", "-q", "-A", "-t", "-h", str(postgres.socket_dir), "-p", "5432",
                    "-U", "muster", "-d", database], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                   text=True, env={"PATH": "/usr/bin:/bin"}, start_new_session=True)
    _PROCS.append(holder)
    holder.stdin.write("BEGIN;\nSELECT shard FROM leases FOR UPDATE;\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "default"  # locked

    err = tmp_path / "call.err"
    caller = popen([str(MUSTER), "call", "--durable", "count", '{"i": 1}'], env=d.env,
                   stdout=subprocess.PIPE, stderr=open(err, "wb"), text=True,
                   start_new_session=True)  # (conftest stops _PROCS by process group)
    _PROCS.append(caller)
    waiting = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'musterd' "
               "AND wait_event_type = 'Lock'")
    wait_for(lambda: postgres.psql(waiting, database) == "1", 15, "musterd's commit to wait for the lock")

    # The commit waits; the loop does not.
    r = cli(d, "status", "--json", timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["workers"] == 1
    # The WorkRequest went before the commit: the worker runs the call meanwhile.
    wait_for(lambda: log.exists() and log.read_text().split() == ["1"], 15, "the worker to run the call")
    # Nothing the commit must cover went out: no Accepted (the CLI prints "job N" on it), no result.
    assert "job " not in err.read_text()
    assert caller.poll() is None

    holder.stdin.write("ROLLBACK;\n")
    holder.stdin.close()
    holder.wait(10)
    out, _ = caller.communicate(timeout=30)
    assert caller.returncode == 0, err.read_text()
    assert json.loads(out)
    assert err.read_text().startswith("job 1 (durable: ")
    assert log.read_text().split() == ["1"]  # ran once
