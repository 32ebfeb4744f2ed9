"""One connection per worker (PROTOCOL.md §7.10): the C++ and Python workers ask musterd to send
them everything on their DEALER and connect no SUB (counted by link_cutter.py, a byte proxy
between the worker and musterd's ipc sockets), and come back at once after a musterd restart,
when their connection is made again, not after a liveness window of silence. Calls surviving a
break of that one connection, exactly once: test_worker_link_loss.py (the C++ and Python cases).
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


PREFIX = {"cpp": "", "py": "py."}


def test_muster_workers_shows_which_workers_are_direct(daemon):
    direct = start_worker(daemon, "cpp", 1)
    two = start_worker(daemon, "cpp", 1, "--no-direct")
    py = start_worker(daemon, "py", 1)
    listed = {w["worker_id"]: w["direct"] for w in json.loads(muster_cli(daemon, "workers", "--json").stdout)}
    assert listed == {direct.worker_id: True, two.worker_id: False, py.worker_id: True}
    table = muster_cli(daemon, "workers").stdout.splitlines()
    column = table[0].split().index("DIRECT")
    rows = {line.split()[0]: line.split()[column] for line in table[1:]}
    assert rows == {direct.worker_id: "yes", two.worker_id: "no", py.worker_id: "yes"}


def test_cpp_and_python_workers_connect_once_and_without_direct_twice(daemon, tmp_path):
    with LinkCutter(daemon.runtime_dir, tmp_path / "via-proxy") as link:
        env = dict(daemon.env, MUSTER_RUNTIME_DIR=str(link.listen_dir))
        start_worker(daemon, "cpp", 2, env=env)
        # The DEALER only: no SUB on the request socket.
        assert link.connections_to == {"request.sock": 0, "response.sock": 1}
        r = muster_cli(daemon, "call", "sleep", json.dumps({"ms": 1}))
        assert r.returncode == 0, r.stderr
        py = start_worker(daemon, "py", 2, env=env)  # the Python SDK too
        assert link.connections_to == {"request.sock": 0, "response.sock": 2}
        for _ in range(3):  # served on that one connection, each call once
            r = muster_cli(daemon, "call", "py.echo", json.dumps({"n": 7}))
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout) == {"n": 7}
        assert "direct: one connection" in read_log(py)
        start_worker(daemon, "py", 2, "--no-direct", env=env)  # SUB + DEALER, as before
        assert link.connections_to == {"request.sock": 1, "response.sock": 3}


@pytest.mark.parametrize("lang", ["cpp", "py"])
def test_a_direct_worker_serves_the_next_musterd_after_a_restart(daemon, lang):
    worker = start_worker(daemon, lang, 2)
    daemon.restart()
    wait_for(lambda: ready_workers(daemon) == [(worker.worker_id, "ready")], 20,
             "the worker attached to the new musterd")
    r = muster_cli(daemon, "call", f"{PREFIX[lang]}sleep", json.dumps({"ms": 1}))
    assert r.returncode == 0, r.stderr
    log = read_log(worker)
    assert "the connection to the daemon was made again: attaching again (direct)" in log
    assert "no ping for" not in log and "no ping from the daemon" not in log
