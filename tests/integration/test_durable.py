"""Durable calls (docs/DURABILITY.md): musterd journals them in SQLite before it answers.

Real musterd, real example worker, the real `muster` CLI; the journal file is read with Python's
sqlite3 module after musterd stopped (it holds the file with an exclusive lock while it runs).
"""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import _PROCS, BUILD, make_daemon, popen, read_log, spawn, wait_for


def rows(path):
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM call_rows ORDER BY job_id")]


def test_durable_calls_complete_and_are_journaled(daemon, start_worker, run_cli):
    start_worker(daemon).wait_ready()
    journal = daemon.data_dir / "journal.db"
    # A call that is not durable leaves no journal behind.
    r = run_cli(daemon, "call", "echo", '{"x": 0}')
    assert r.returncode == 0, r.stderr
    assert not journal.exists()
    for i in range(1, 4):
        r = run_cli(daemon, "call", "--durable", "--keep", "echo", json.dumps({"x": i}))
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"x": i}
    r = run_cli(daemon, "call", "--durable", "--keep", "fail", '{"message": "boom"}')
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["job 4 (durable: `muster job get 4` fetches its outcome if this command stops)",
                                     "error: WORKER_ERROR: boom"]
    assert journal.exists()
    assert daemon.stop() == 0
    calls = rows(journal)
    assert [c["job_id"] for c in calls] == [1, 2, 3, 4]
    assert [c["node"] for c in calls] == ["echo", "echo", "echo", "fail"]
    for c in calls:
        assert c["state"] == 2  # finished, kept for its caller until acked or --result-ttl-ms
        assert c["attempts"] == 1 and c["deaths"] == 0
        assert c["worker_id"]
        assert c["inputs"] == b"" and c["parameters"] == b""  # dropped once finished
        assert c["expires_ms"] - c["finished_ms"] == 3_600_000
    assert [c["outcome_code"] for c in calls] == [0, 0, 0, 8]  # WORKER_ERROR
    assert calls[3]["message"] == "boom"
    assert all(c["outputs"] for c in calls[:3])


def test_job_ids_continue_across_restarts(daemon, start_worker, run_cli):
    start_worker(daemon).wait_ready()
    assert run_cli(daemon, "call", "--durable", "--keep", "echo", "{}").returncode == 0
    daemon.restart()
    start_worker(daemon).wait_ready()
    assert run_cli(daemon, "call", "--durable", "--keep", "echo", "{}").returncode == 0
    assert "journal sqlite:" in daemon.log  # opened at start: the file existed
    assert daemon.stop() == 0
    assert [c["job_id"] for c in rows(daemon.data_dir / "journal.db")] == [1, 2]


def test_journal_max_bytes_refuses_durable_calls_with_queue_full(tmp_base, start_worker, run_cli):
    d = make_daemon(tmp_base / "small", "--journal-max-bytes", "64")
    start_worker(d).wait_ready()
    r = run_cli(d, "call", "--durable", "echo", json.dumps({"blob": "x" * 200}))
    assert r.returncode != 0
    assert "QUEUE_FULL: journal full: 0 of 64 bytes" in r.stderr
    r = run_cli(d, "call", "echo", json.dumps({"blob": "x" * 200}))  # not durable: not bounded
    assert r.returncode == 0, r.stderr


def _start_expecting_failure(base, *args):
    base.mkdir(parents=True, exist_ok=True)
    env = {"MUSTER_RUNTIME_DIR": str(base / "run"), "PATH": "/usr/bin:/bin"}
    proc = spawn([BUILD / "broker" / "musterd", "--data-dir", base / "data", *args], env,
                 base / "musterd.log")
    proc.wait(15)
    return proc.returncode, read_log(proc)


def test_a_journal_that_cannot_be_opened_stops_musterd(tmp_base):
    bad = tmp_base / "garbage.db"
    bad.write_bytes(b"this is not a database, it is garbage " * 100)
    code, log = _start_expecting_failure(tmp_base / "a", "--journal", f"sqlite:{bad}")
    assert code == 1
    assert f"musterd: error: journal sqlite:{bad}: not a readable SQLite database" in log
    assert bad.read_bytes().startswith(b"this is not a database")  # left as it was
    code, log = _start_expecting_failure(tmp_base / "b", "--journal", "mysql://x")
    assert code == 1
    assert "--journal mysql://x: expected sqlite:PATH or postgresql://USER@HOST/DATABASE" in log


def test_durable_call_when_the_default_journal_cannot_be_opened_fails_unavailable(tmp_base, start_worker, run_cli):
    d = make_daemon(tmp_base / "nodir")
    start_worker(d).wait_ready()
    (d.data_dir / "journal.db").mkdir(parents=True)  # a directory where the file should be
    r = run_cli(d, "call", "--durable", "echo", "{}")
    assert r.returncode != 0
    assert "UNAVAILABLE: durable calls need the journal, which musterd cannot open: journal sqlite:" in r.stderr
    assert d.proc.poll() is None  # musterd carries on for calls that are not durable
    assert run_cli(d, "call", "echo", "{}").returncode == 0


COUNTING_WORKER = '''
import os, sys, time
import muster

log, gate = sys.argv[2], sys.argv[3]
worker = muster.Worker(worker_id=sys.argv[1], capacity=1)

@worker.node
def count(i: int) -> int:
    """Counts its executions in a file; call 0 holds the worker until the gate file exists."""
    if i == 0:
        while not os.path.exists(gate):
            time.sleep(0.02)
    with open(log, "a") as f:
        f.write(f"{i}\\n")
    return i

worker.run()
'''


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_durable_calls_queued_when_musterd_stops_run_once_after_restart(sig, start_daemon, tmp_path, run_cli):
    """Durable calls queued when musterd is SIGKILLed or SIGTERMed are restored in order after its
    restart and run exactly once each; the one running at the stop finishes while musterd is down,
    and its worker re-attaches with the answer it kept: adopted, its result journaled, not run
    again (test_adoption.py covers every SDK). SIGTERM fails none of them. Their callers (`muster
    call --durable`) wait, resume on the new instance and print one outcome each."""
    daemon = start_daemon("--shutdown-grace-ms", "300")

    log, gate = tmp_path / "executions.log", tmp_path / "gate"
    script = tmp_path / "counting_worker.py"
    script.write_text(COUNTING_WORKER)
    spawn([sys.executable, script, "counter", log, gate], daemon.env, tmp_path / "counter.log")

    def ready():
        r = run_cli(daemon, "workers", "--json")
        return r.returncode == 0 and any(w["state"] == "ready" for w in json.loads(r.stdout))
    wait_for(ready, 15, "the counting worker")
    def status(field, want):
        r = run_cli(daemon, "status", "--json")
        return r.returncode == 0 and json.loads(r.stdout)[field] == want
    callers, errs = [], []
    for i in range(5):  # one at a time: job ids follow i; call 0 runs, 1-4 queue behind it
        errs.append(tmp_path / f"caller{i}.err")
        with open(errs[-1], "w") as err:
            callers.append(popen([str(BUILD / "tools" / "muster"), "call", "--durable", "--keep", "count",
                                  json.dumps({"i": i})], env=daemon.env, stdout=subprocess.PIPE,
                                 stderr=err, text=True, start_new_session=True))
        _PROCS.append(callers[-1])
        # The guarantee is for calls musterd accepted: each caller prints `job N` once its Accepted
        # came, i.e. once the call is committed to the journal. (musterd counts a call queued before
        # that commit, so a kill right after `status` showed it queued could lose a call that was
        # never accepted: its caller then fails UNAVAILABLE, as DURABILITY.md §6 says it must.)
        wait_for(lambda: errs[-1].read_text().startswith("job "), 15, f"call {i} accepted")
        if i == 0:
            wait_for(lambda: status("in_flight", 1), 15, "call 0 running")
        else:
            wait_for(lambda: status("queued", i), 15, f"{i} call(s) queued")
    assert daemon.stop(sig) == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
    if sig == signal.SIGTERM:
        assert "4 durable one(s) kept in the journal" in daemon.log
    assert all(c.poll() is None for c in callers)  # they wait for musterd to come back
    gate.touch()  # call 0 finishes while musterd is down; the worker keeps its result
    daemon.start()
    assert "restored 4 durable call(s)" in daemon.log
    wait_for(lambda: log.exists() and len(log.read_text().split()) >= 5, 30, "five executions")
    time.sleep(1)  # a duplicate would show up here (bounded wait, asserts nothing about speed)
    assert sorted(log.read_text().split()) == ["0", "1", "2", "3", "4"]
    assert log.read_text().split()[1:] == ["1", "2", "3", "4"]  # the queue kept its order
    # Each caller resumed its job on the new instance and printed its one outcome.
    for c in callers:  # call 0 too: adopted, its kept result delivered
        out, _ = c.communicate(timeout=30)
        assert c.returncode == 0, errs[callers.index(c)].read_text()
        assert len(out.splitlines()) == 1
    assert daemon.stop() == 0
    calls = rows(daemon.data_dir / "journal.db")
    assert [c["state"] for c in calls] == [2] * 5
    assert [c["outcome_code"] for c in calls] == [0] * 5  # call 0 adopted with its kept result
