"""One connection per worker (PROTOCOL.md §7.10): the C++ worker asks musterd to send it
everything on its DEALER and connects no SUB (counted by link_cutter.py, a byte proxy between
the worker and musterd's ipc sockets), and comes back at once after a musterd restart, when its
connection is made again, not after a liveness window of silence. Calls surviving a break of
that one connection, exactly once: test_worker_link_loss.py (the C++ case).
"""
from __future__ import annotations

import json

import pytest

from conftest import read_log, wait_for
from link_cutter import LinkCutter
from test_stream_sdk import muster_cli, start_worker


@pytest.fixture
def daemon(start_daemon):
    # Pinging every second, so that a worker coming back only after a liveness window of silence
    # (3 s) would show in its log ("no ping for"), which these tests rule out.
    return start_daemon(ping_ms=1000)


def ready_workers(daemon) -> list[tuple[str, str]]:
    r = muster_cli(daemon, "workers", "--json")
    return [(w["worker_id"], w["state"]) for w in json.loads(r.stdout)] if r.returncode == 0 else []


def test_muster_workers_shows_which_workers_are_direct(daemon):
    direct = start_worker(daemon, "cpp", 1)
    two = start_worker(daemon, "cpp", 1, "--no-direct")
    listed = {w["worker_id"]: w["direct"] for w in json.loads(muster_cli(daemon, "workers", "--json").stdout)}
    assert listed == {direct.worker_id: True, two.worker_id: False}
    table = muster_cli(daemon, "workers").stdout.splitlines()
    column = table[0].split().index("DIRECT")
    rows = {line.split()[0]: line.split()[column] for line in table[1:]}
    assert rows == {direct.worker_id: "yes", two.worker_id: "no"}


def test_a_cpp_worker_connects_once_and_a_python_worker_twice(daemon, tmp_path):
    with LinkCutter(daemon.runtime_dir, tmp_path / "via-proxy") as link:
        env = dict(daemon.env, MUSTER_RUNTIME_DIR=str(link.listen_dir))
        start_worker(daemon, "cpp", 2, env=env)
        # The DEALER only: no SUB on the request socket.
        assert link.connections_to == {"request.sock": 0, "response.sock": 1}
        r = muster_cli(daemon, "call", "sleep", json.dumps({"ms": 1}))
        assert r.returncode == 0, r.stderr
        start_worker(daemon, "py", 2, env=env)  # the Python SDK keeps SUB + DEALER
        assert link.connections_to == {"request.sock": 1, "response.sock": 2}


def test_a_direct_worker_serves_the_next_musterd_after_a_restart(daemon):
    worker = start_worker(daemon, "cpp", 2)
    daemon.restart()
    wait_for(lambda: ready_workers(daemon) == [(worker.worker_id, "ready")], 20,
             "the worker attached to the new musterd")
    r = muster_cli(daemon, "call", "sleep", json.dumps({"ms": 1}))
    assert r.returncode == 0, r.stderr
    log = read_log(worker)
    assert "the connection to the daemon was made again: attaching again (direct)" in log
    assert "no ping for" not in log
