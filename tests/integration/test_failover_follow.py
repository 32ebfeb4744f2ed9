"""Workers and callers follow a failover (docs/DURABILITY.md §12, "How to run the pair").

The pair of test_failover.py (two real musterd on one real PostgreSQL journal; the standby binds
nothing until it takes the lease), but the worker and the caller are each given BOTH daemons'
addresses, as comma-separated lists: one C++ muster-example-worker and one `muster call
--durable`, started once, never restarted nor pointed anew. The active daemon is SIGKILLed while
the call runs on the worker; the worker re-attaches to the standby by itself with its in-flight
list, the standby adopts the call, and the caller, resumed on the standby, prints its one outcome.

The time from the SIGKILL to the worker attached on the standby is printed (not asserted: speed
belongs in benchmarks): pytest -s -k follow.
"""
from __future__ import annotations

import json
import signal
import time

from conftest import BUILD, read_log, spawn, stop, wait_for
from test_failover import cli, calls, postgres, database, start_pair  # noqa: F401 (fixtures)


def both(a, b, role: str) -> str:
    """The pair's endpoints of a role as one address list (each daemon has its own ipc dir)."""
    return f"ipc://{a.runtime_dir}/{role}.sock,ipc://{b.runtime_dir}/{role}.sock"


def worker_on(d, worker_id: str):
    """The worker's entry in `muster workers` of d, or None (also when d does not answer)."""
    r = cli(d, "workers", "--json")
    if r.returncode != 0:
        return None
    return next((w for w in json.loads(r.stdout) if w["worker_id"] == worker_id), None)


def test_a_worker_and_a_durable_caller_given_both_addresses_follow_a_sigkill_failover(tmp_path, postgres, database):
    a, b = start_pair(tmp_path, postgres, database)
    worker = spawn([BUILD / "worker" / "muster-example-worker", "--durable",
                    "--worker-id", "follower", "--capacity", "1", "--log-level", "debug",
                    "--request-address", both(a, b, "request"), "--response-address", both(a, b, "response")],
                   a.env, tmp_path / "worker.log")
    wait_for(lambda: (worker_on(a, "follower") or {}).get("state") == "ready", 15, "the worker on the active daemon")

    caller = spawn([BUILD / "tools" / "muster", "--client-address", both(a, b, "client"),
                    "call", "--durable", "--keep", "sleep", json.dumps({"ms": 6000})],
                   a.env, tmp_path / "caller.log")
    wait_for(lambda: (cli(a, "status", "--json").returncode == 0
                      and json.loads(cli(a, "status", "--json").stdout)["in_flight"] == 1),
             15, "the call running on the worker")
    # Running is not journaled yet: the caller's "job N" comes once the commit is done (§3).
    wait_for(lambda: "job " in read_log(caller), 15, "the call journaled (its caller told Accepted)")

    killed = time.monotonic()
    a.stop(signal.SIGKILL)
    wait_for(lambda: "standby: took over" in read_log(b.proc), 30, "the standby to take over")
    wait_for(lambda: worker_on(b, "follower"), 30, "the worker to attach to the standby", interval=0.02)
    attached = time.monotonic() - killed
    print(f"\nSIGKILL of the active daemon → the worker (given both addresses) attached on the standby: "
          f"{attached * 1000:.0f} ms (--ping-interval-ms 200 --liveness 3)")

    # The caller resumed its durable call on the standby and prints its one outcome.
    caller.wait(60)
    out = read_log(caller).splitlines()
    assert caller.returncode == 0, out
    results = [line for line in out if line.startswith("{")]
    assert len(results) == 1 and "slept_ms" in json.loads(results[0]), out
    # Run once: the standby adopted the running call from the worker's in-flight list; the
    # worker was never handed it again, and the journal holds one success with one attempt.
    assert worker.poll() is None
    wlog = read_log(worker)
    assert wlog.count("attached as follower") == 2, wlog
    assert "sleep request" not in wlog  # not aborted
    time.sleep(1)  # a second run would show up here (bounded wait, asserts nothing about speed)
    rows = postgres.psql("SELECT job_id, state, outcome_code, attempts FROM calls ORDER BY job_id", database)
    assert [line.split("|") for line in rows.splitlines() if line] == [["1", "2", "0", "1"]]
    assert cli(b, "status", "--json").returncode == 0
    assert b.stop() == 0
    assert stop(worker) == 0


def test_muster_check_given_both_addresses_finds_the_active_daemon(tmp_path, postgres, database):
    """`muster check` of a pair: the active daemon's socket found, the standby's missing as a
    standby's is (it binds nothing), the daemon answering."""
    a, b = start_pair(tmp_path, postgres, database)
    r = cli(a, "--client-address", both(a, b, "client"), "check")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in r.stdout.splitlines()[1:]}
    assert rows["endpoint"] == ["ok", f"ipc://{a.runtime_dir}/client.sock (ipc://{b.runtime_dir}/client.sock: "
                                      "no socket, as a standby's)"], r.stdout
    assert rows["daemon"][0] == "ok"
    r = cli(a, "--client-address", f"{both(a, b, 'client')},", "check")
    assert r.returncode != 0 and "empty endpoint in the address list" in r.stdout + r.stderr
    assert a.stop() == 0
    wait_for(lambda: "ready" in read_log(b.proc), 15, "the standby to take over")
    assert b.stop() == 0
