"""Durable calls running when musterd stops are adopted by their worker after the restart
(docs/DURABILITY.md §5, §7; PROTOCOL.md §7.6): real musterd, the C++, Python and TypeScript
workers counting their executions in a file, SIGKILL or SIGTERM of musterd, a restart on the
same journal and endpoints. The journal is read after musterd stopped (it holds it locked).
"""
from __future__ import annotations

import json
import signal
import sqlite3

import pytest

import counting_workers
from conftest import BUILD, make_daemon, read_log, spawn, stop, wait_for

SIGNALS = [signal.SIGKILL, signal.SIGTERM]


def rows(path):
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM call_rows ORDER BY job_id")]


def start_counter(sdk, daemon, worker_id, log, scratch):
    return spawn(counting_workers.command(sdk, BUILD, worker_id, log, scratch),
                 counting_workers.env(daemon.env), scratch / f"{worker_id}-{sdk}.log")


def call(daemon, scratch, node, i, ms=-1):
    """A durable call from the CLI, in the background. It resumes after the restart and prints
    the outcome; `--keep` leaves the outcome unacknowledged, so the journal row the test reads
    stays."""
    return spawn([BUILD / "tools" / "muster", "call", "--durable", "--keep", "--timeout-ms", "60000", node,
                  json.dumps({"i": i, "ms": ms})], daemon.env, scratch / f"call-{i}.log")


def journaled(scratch, i) -> bool:
    """Whether call i's caller was told Accepted ("job N" on its stderr): sent only once the
    call's records are committed. A call may start on its worker before that (one commit per
    call, docs/DURABILITY.md §3), so "running" alone does not mean the journal holds it."""
    log = scratch / f"call-{i}.log"
    return log.exists() and "job " in log.read_text()


def status(run_cli, daemon):
    r = run_cli(daemon, "status", "--json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def worker_ready(run_cli, daemon, worker_id):
    r = run_cli(daemon, "workers", "--json")
    return r.returncode == 0 and any(w["worker_id"] == worker_id and w["state"] == "ready"
                                     for w in json.loads(r.stdout))


def idle(run_cli, daemon):
    s = status(run_cli, daemon)
    return s is not None and s["in_flight"] == 0 and s["queued"] == 0


@pytest.mark.parametrize("sig", SIGNALS, ids=["sigkill", "sigterm"])
@pytest.mark.parametrize("sdk", counting_workers.SDKS)
def test_running_durable_calls_are_adopted_not_rerun(sdk, sig, tmp_base, tmp_path, run_cli):
    """Two non-idempotent durable calls run on a worker when musterd stops: one finishes while
    musterd is down (the worker keeps its answer), the other after the restart. The new instance
    adopts both when the worker re-attaches: each ends once, with its result, and ran once."""
    d = make_daemon(tmp_base / "d", "--shutdown-grace-ms", "200")
    log = tmp_path / "executions.log"
    worker = start_counter(sdk, d, "counter", log, tmp_path)
    wait_for(lambda: worker_ready(run_cli, d, "counter"), 20, f"the {sdk} counting worker")
    callers = []
    for i in (1, 2):  # one at a time: job ids follow i
        callers.append(call(d, tmp_path, "count", i))
        wait_for(lambda: counting_workers.executions(log)["start"].get(i) == 1, 20, f"call {i} running")
        wait_for(lambda: journaled(tmp_path, i), 20, f"call {i} journaled (accepted)")
    wait_for(lambda: counting_workers.executions(log)["start"] == {1: 1, 2: 1}, 20, "both calls running")
    assert d.stop(sig) == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
    if sig == signal.SIGTERM:
        assert "durable call left in the journal for the next instance" in d.log
    (log.parent / f"{log.name}.gate-1").touch()  # call 1 ends while musterd is down
    wait_for(lambda: counting_workers.executions(log)["done"] == {1: 1}, 20, "call 1 answered")
    d.start()
    wait_for(lambda: d.log.count("durable call adopted") == 2, 20, "both calls adopted")
    (log.parent / f"{log.name}.gate-2").touch()
    wait_for(lambda: idle(run_cli, d), 20, "both calls ended")
    for c in callers:  # each caller resumed on the new instance and printed its result
        assert c.wait(30) == 0, c.log_path.read_text()
    assert d.stop() == 0
    assert "lost while musterd restarted" not in d.log and "re-queued" not in d.log
    calls = rows(d.data_dir / "journal.db")
    assert [c["state"] for c in calls] == [2, 2]  # finished
    assert [c["outcome_code"] for c in calls] == [0, 0]
    assert all(c["outputs"] for c in calls)
    assert [c["attempts"] for c in calls] == [1, 1]
    assert counting_workers.executions(log) == {"start": {1: 1, 2: 1}, "done": {1: 1, 2: 1}}
    # Call 1's answer was kept across the restart and sent again when the new instance asked.
    assert "sending 1 kept answer(s) again" in read_log(worker)


@pytest.mark.parametrize("back", ["other-worker", "same-id-new-process"])
def test_running_durable_calls_whose_worker_is_gone(back, tmp_base, tmp_path, run_cli):
    """musterd and the worker running two durable calls die together. When a worker that does
    not hold them takes over (another worker after the re-attach window, or a new process under
    the same worker id at once), the idempotent call runs once more, the other ends WORKER_LOST
    naming the worker, and is not run again."""
    d = make_daemon(tmp_base / "d")
    log = tmp_path / "executions.log"
    first = start_counter("cpp", d, "first", log, tmp_path)
    wait_for(lambda: worker_ready(run_cli, d, "first"), 20, "the first worker")
    call(d, tmp_path, "count", 1)  # job 1 (one at a time: job ids follow i)
    wait_for(lambda: counting_workers.executions(log)["start"] == {1: 1}, 20, "call 1 running")
    call(d, tmp_path, "count_idem", 2)
    wait_for(lambda: counting_workers.executions(log)["start"] == {1: 1, 2: 1}, 20, "both calls running")
    wait_for(lambda: journaled(tmp_path, 1) and journaled(tmp_path, 2), 20, "both calls journaled (accepted)")
    stop(first, signal.SIGKILL)
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    for i in (1, 2):
        (log.parent / f"{log.name}.gate-{i}").touch()
    d.start()
    start_counter("cpp", d, "first" if back == "same-id-new-process" else "second", log, tmp_path)
    wait_for(lambda: counting_workers.executions(log)["done"].get(2) == 1, 20, "call 2 run again")
    wait_for(lambda: idle(run_cli, d), 20, "both calls ended")
    assert d.stop() == 0
    calls = rows(d.data_dir / "journal.db")
    assert [c["state"] for c in calls] == [2, 2]
    assert calls[0]["outcome_code"] == 3  # WORKER_LOST
    how = "came back without it" if back == "same-id-new-process" else "did not come back"
    assert f"worker first {how} while musterd restarted; the node is not idempotent" in calls[0]["message"]
    assert calls[1]["outcome_code"] == 0 and calls[1]["attempts"] == 2
    assert counting_workers.executions(log) == {"start": {1: 1, 2: 2}, "done": {2: 1}}
