"""A failover pair of musterd on PostgreSQL (docs/DURABILITY.md §12).

Real PostgreSQL (tests/integration/postgres_server.py: initdb in a temp dir as a user that is
not root, a unix socket only, stopped by the test), two real musterd sharing its journal
(``--journal postgresql://…``), real Python workers counting their executions, the real
``muster`` CLI.

Both daemons run on this host, so they cannot bind the same endpoints: each has its own
runtime dir (its own ipc:// sockets), and the test's clients ask the one they mean. Workers do
not take address lists yet: each daemon gets a worker of its own, started pointed at it from
the beginning — the one of the standby waits (its connects are retried by libzmq) and attaches
once the standby took over and bound its sockets.

Failover time (not asserted: speed belongs in benchmarks) is printed by test_failover_time:
MUSTER_FAILOVER_RUNS=5 MUSTER_FAILOVER_LEASE_MS=4000 pytest -s -k failover_time.
"""
from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BUILD, Daemon, read_log, spawn, stop, wait_for
from test_durable import COUNTING_WORKER  # call 0 holds the worker until the gate file exists
from postgres_server import PostgresServer, absent_reason

LEASE_MS = int(os.environ.get("MUSTER_FAILOVER_LEASE_MS", "1000"))


@pytest.fixture(scope="module")
def postgres():
    why = absent_reason()
    if why:
        pytest.skip(why)
    server = PostgresServer().start()
    yield server
    server.stop()


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def database(postgres):
    """A fresh database of the module's server."""
    name = f"pair{next(_databases)}"
    postgres.psql(f"CREATE DATABASE {name}")
    return name


def daemon(base: Path, uri: str, *args) -> Daemon:
    """A musterd of the pair (not started): its own runtime dir, data dir and endpoints."""
    base.mkdir(parents=True, exist_ok=True)
    runtime = base / "run"
    return Daemon(runtime_dir=runtime, data_dir=base / "data",
                  args=["--ping-interval-ms", "200", "--liveness", "3", "--log-level", "debug",
                        "--journal", uri, "--lease-ms", str(LEASE_MS), *map(str, args)],
                  env=dict(os.environ, MUSTER_RUNTIME_DIR=str(runtime)))


def launch(d: Daemon):
    """Starts musterd without waiting for "ready" (a standby is not)."""
    d.starts += 1
    d.proc = spawn([BUILD / "broker" / "musterd", "--data-dir", d.data_dir, *d.args], d.env,
                   d.runtime_dir.parent / f"musterd-{d.starts}.log")
    return d


def cli(d: Daemon, *args, timeout=30):
    return subprocess.run([str(BUILD / "tools" / "muster"), *map(str, args)], env=d.env,
                          capture_output=True, text=True, timeout=timeout)


def status(d: Daemon):
    """`muster status` of d, or None when it does not answer (a standby binds nothing)."""
    r = cli(d, "status", "--json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def calls(postgres, db):
    out = postgres.psql("SELECT job_id, state, outcome_code, convert_from(node, 'UTF8') "
                        "FROM calls ORDER BY job_id", db)
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def start_pair(tmp_path, postgres, database, *args):
    """Two musterd on one PostgreSQL journal, each given `args` too: a leads, b waits."""
    uri = postgres.uri(database)
    a = launch(daemon(tmp_path / "a", uri, *args))
    wait_for(lambda: "ready" in read_log(a.proc) or a.proc.poll() is not None, 15, "the first musterd")
    assert a.proc.poll() is None, read_log(a.proc)
    b = launch(daemon(tmp_path / "b", uri, *args))
    wait_for(lambda: "standby:" in read_log(b.proc) or b.proc.poll() is not None, 15, "the standby")
    assert b.proc.poll() is None, read_log(b.proc)
    return a, b


JOB_GET = """
import json, sys, muster
client = muster.Client()
jobs = []
for job_id in map(int, sys.argv[1:]):
    job = client.job_get(job_id)
    jobs.append([job_id, job.outputs, type(job.error).__name__ if job.error else None])
print(json.dumps(jobs))
"""


def job_get(d: Daemon, *job_ids):
    """The callers' view of jobs on daemon d (the Python SDK's job_get; it acknowledges them)."""
    r = subprocess.run([sys.executable, "-c", JOB_GET, *map(str, job_ids)], env=d.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def counting_worker(tmp_path, d: Daemon, name: str):
    script = tmp_path / "counting_worker.py"
    script.write_text(COUNTING_WORKER)
    log = tmp_path / f"{name}.executions"
    spawn([sys.executable, script, name, log, tmp_path / "gate"], d.env, tmp_path / f"{name}.log")
    return log


def executions(log: Path):
    return log.read_text().split() if log.exists() else []


def queue_five_durable_calls(tmp_path, a: Daemon):
    """Call 0 runs on a's worker (held by the gate), calls 1-4 queue behind it."""
    def ready():
        r = cli(a, "workers", "--json")
        return r.returncode == 0 and any(w["state"] == "ready" for w in json.loads(r.stdout))
    wait_for(ready, 15, "the worker of the active daemon")
    callers = []
    for i in range(5):  # one at a time: job ids follow i
        callers.append(spawn([BUILD / "tools" / "muster", "call", "--durable", "count", json.dumps({"i": i})],
                             a.env, tmp_path / f"call-{i}.log"))
        # Accepted (the CLI says "job N" on stderr) comes once the call's journal commit did: a
        # call musterd only shows queued may still be uncommitted, and lost with a SIGKILL then.
        log = tmp_path / f"call-{i}.log"
        wait_for(lambda: log.exists() and "job " in log.read_text(), 15, f"call {i} accepted")
        if i == 0:
            wait_for(lambda: (status(a) or {}).get("in_flight") == 1, 15, "call 0 running")
        else:
            wait_for(lambda: (status(a) or {}).get("queued") == i, 15, f"{i} call(s) queued")
    return callers


def test_the_standby_binds_nothing_until_it_leads(tmp_path, postgres, database):
    a, b = start_pair(tmp_path, postgres, database)
    assert not (b.runtime_dir / "client.sock").exists()
    assert cli(b, "status", timeout=30).returncode != 0
    assert "ready" not in read_log(b.proc)
    assert f"is led by {os.uname().nodename}:{a.proc.pid}:" in read_log(b.proc)
    # A clean stop of the active one frees the lease: the standby takes over without waiting.
    assert a.stop() == 0
    wait_for(lambda: "ready" in read_log(b.proc), 15, "the standby to take over")
    assert "standby: took over postgresql://muster@" in read_log(b.proc)
    assert status(b) is not None
    # A standby stopped by SIGTERM before it led exits 0, having bound nothing.
    c = launch(daemon(tmp_path / "c", postgres.uri(database)))
    wait_for(lambda: "standby:" in read_log(c.proc), 15, "a second standby")
    assert c.stop() == 0
    assert "received while standby: stopping" in read_log(c.proc)
    assert not (c.runtime_dir / "client.sock").exists()
    assert b.stop() == 0


def test_the_standby_answers_metrics_as_standby_and_as_leader_after_taking_over(tmp_path, postgres, database):
    from test_observability import http_get, samples
    a, b = start_pair(tmp_path, postgres, database, "--metrics-address", "127.0.0.1:0")

    def leading(d):
        m = re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", read_log(d.proc))
        assert m, read_log(d.proc)
        status, text, _ = http_get(m.group(1))
        assert status == 200, text
        return samples(text)["muster_daemon_leading"]
    # The standby serves /metrics while it waits (and nothing else: no client socket).
    assert leading(a) == 1 and leading(b) == 0
    assert not (b.runtime_dir / "client.sock").exists()
    a.stop(signal.SIGKILL)
    wait_for(lambda: "ready" in read_log(b.proc), 30, "the standby to take over")
    wait_for(lambda: leading(b) == 1, 10, "the new leader's /metrics to say so")
    assert b.stop() == 0


def test_two_daemons_started_at_once_exactly_one_leads(tmp_path, postgres, database):
    """Both start on an empty database: they create the schema in turn and one takes the lease."""
    pair = [launch(daemon(tmp_path / name, postgres.uri(database))) for name in ("a", "b")]
    wait_for(lambda: all("ready" in read_log(d.proc) or "standby:" in read_log(d.proc) for d in pair),
             30, "both daemons to settle")
    time.sleep(1)  # a second leader would show up here (each renews every 250 ms)
    assert sorted("ready" in read_log(d.proc) for d in pair) == [False, True]
    assert all(d.proc.poll() is None for d in pair)
    assert sum(status(d) is not None for d in pair) == 1
    for d in pair:
        assert d.stop() == 0


def test_sigkill_of_the_active_daemon_the_standby_completes_its_queued_durable_calls(tmp_path, postgres, database):
    a, b = start_pair(tmp_path, postgres, database)
    log_a = counting_worker(tmp_path, a, "wa")
    log_b = counting_worker(tmp_path, b, "wb")  # waits for b to bind
    callers = queue_five_durable_calls(tmp_path, a)
    a.stop(signal.SIGKILL)
    wait_for(lambda: "ready" in read_log(b.proc), 30, "the standby to take over")
    log = read_log(b.proc)
    assert "standby: took over" in log
    assert "restored 4 durable call(s)" in log
    # Their daemon died: each waits for it to come back (a CLI given only a's address cannot
    # follow to b; test_failover_follow.py gives it both).
    assert all(c.poll() is None for c in callers)
    (tmp_path / "gate").touch()  # call 0 finishes on a's worker; its result has nowhere to go
    wait_for(lambda: len(executions(log_b)) >= 4, 30, "the four queued calls on the standby's worker")
    wait_for(lambda: [c[1] for c in calls(postgres, database)] == ["2"] * 5, 30, "five finished calls")
    time.sleep(1)  # a duplicate would show up here (bounded wait, asserts nothing about speed)
    assert executions(log_b) == ["1", "2", "3", "4"]  # once each, in their queue's order
    assert executions(log_a) == ["0"]
    rows = calls(postgres, database)
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[0][2] == "3"  # WORKER_LOST: it ran on a's worker when a died; not run again
    assert [r[2] for r in rows[1:]] == ["0"] * 4
    # Detached from their waiting callers, the outcomes are found on the new active daemon.
    assert job_get(b, 1, 2, 3, 4, 5) == [[1, None, "WorkerLost"], [2, {"result": 1}, None],
                                         [3, {"result": 2}, None], [4, {"result": 3}, None],
                                         [5, {"result": 4}, None]]
    assert calls(postgres, database) == []  # fetched, hence acknowledged: gone from the journal
    for c in callers:
        stop(c, signal.SIGINT)  # Ctrl-C: the CLI detaches from its durable call
    assert b.stop() == 0


def test_a_paused_old_leader_is_refused_and_exits_after_the_standby_took_over(tmp_path, postgres, database):
    a, b = start_pair(tmp_path, postgres, database)
    ran_a = counting_worker(tmp_path, a, "wa")
    ran_b = counting_worker(tmp_path, b, "wb")
    queue_five_durable_calls(tmp_path, a)
    a.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: "ready" in read_log(b.proc), 30, "the standby to take over")
        wait_for(lambda: len(executions(ran_b)) >= 4, 30, "the queued calls on the standby's worker")
        # a's worker finishes call 0 and sends its Result to the stopped daemon, which still
        # believes calls 1-4 queued and the worker free: without fencing it would run them again.
        (tmp_path / "gate").touch()
        wait_for(lambda: executions(ran_a) == ["0"], 15, "call 0 to finish on a's worker")
    finally:
        a.proc.send_signal(signal.SIGCONT)
    a.proc.wait(15)
    assert a.proc.returncode == 1
    # Stopped between turns (nearly always): its own clock, a renewal or the fencing read says
    # it lost the lease. Stopped inside a turn, PostgreSQL ended its session after one term
    # (so that the standby could take over) and that turn failed, unsent.
    log_a = read_log(a.proc)
    assert ("lost the lease of shard default" in log_a
            or "the journal failed; stopping, nothing of this turn was sent" in log_a), log_a
    time.sleep(1)  # a duplicate would show up here
    assert executions(ran_a) == ["0"]
    assert executions(ran_b) == ["1", "2", "3", "4"]
    assert b.proc.poll() is None
    assert b.stop() == 0


def test_a_postgresql_journal_that_cannot_be_reached_stops_musterd(tmp_path):
    d = launch(daemon(tmp_path / "x", "postgresql://muster:s3cret@127.0.0.1:1/none?connect_timeout=5"))
    d.proc.wait(30)
    assert d.proc.returncode == 1
    log = read_log(d.proc)
    assert "musterd: error: journal postgresql://muster@127.0.0.1:1/none (shard default): cannot connect" in log
    assert "s3cret" not in log


def test_failover_time(tmp_path, postgres):
    """SIGKILL of the active daemon → the standby answers a client: printed, p50 and max."""
    runs = int(os.environ.get("MUSTER_FAILOVER_RUNS", "1"))
    times = []
    for n in range(runs):
        db = f"time{n}"
        postgres.psql(f"CREATE DATABASE {db}")
        a, b = start_pair(tmp_path / f"run{n}", postgres, db)
        time.sleep(LEASE_MS / 1000 * 0.6 * (n % 3) / 2)  # kill at several points of a renewal period
        killed = time.monotonic()
        a.stop(signal.SIGKILL)
        wait_for(lambda: status(b) is not None, 60, "the standby to answer", interval=0.01)
        times.append(time.monotonic() - killed)
        stop(b.proc)
    print(f"\nfailover (SIGKILL → standby answers `muster status`), --lease-ms {LEASE_MS}, "
          f"{runs} run(s): p50 {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms; all: {[round(t * 1000) for t in times]}")
