"""A worker's connection to musterd breaks and comes back while it runs calls (a network blip:
both ends live on, libzmq connects again by itself). The calls must survive: musterd refuses the
worker's messages from the new connection with `Rejected{reattach}`, the worker attaches again
with its session, and musterd moves it to the new connection with its requests (PROTOCOL.md
§7.3). Before that, musterd refused them without `reattach`, declared the worker dead after its
liveness window and failed every call it ran `WORKER_LOST`.

The break is real: link_cutter.py is a byte proxy between the worker and musterd's two ipc
sockets that aborts both connections at once, losing whatever was on the way. Every SDK's
example worker, through one real musterd.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import BUILD, _PROCS, popen, read_log, wait_for
from link_cutter import LinkCutter
from test_stream_sdk import muster_cli, start_worker

PREFIX = {"cpp": "", "py": "py.", "ts": "ts."}
# What a direct worker (one connection, PROTOCOL.md §7.10) logs when it attaches again on its
# connection made again, by SDK.
DIRECT = {
    "cpp": "the connection to the daemon was made again: attaching again (direct)",
    "py": "the connection to the daemon was made again: attaching again (direct)",
    "ts": "attaching again: the response connection broke",
}


@pytest.fixture
def daemon(start_daemon):
    """Pinging every second: the worker's reconnect and Attach must come within the liveness
    window (3 s), which 3 × 200 ms would not leave on a loaded machine."""
    return start_daemon(ping_ms=1000)


def in_flight(daemon) -> int:
    r = muster_cli(daemon, "status", "--json")
    return json.loads(r.stdout)["in_flight"] if r.returncode == 0 else -1


@pytest.mark.parametrize("lang", ["cpp", "py", "ts"])
def test_running_calls_survive_their_workers_link_breaking(lang, daemon, tmp_path):
    with LinkCutter(daemon.runtime_dir, tmp_path / "via-proxy") as link:
        worker = start_worker(daemon, lang, 4, env=dict(daemon.env, MUSTER_RUNTIME_DIR=str(link.listen_dir)))
        calls = [popen([str(BUILD / "tools" / "muster"), "call", f"{PREFIX[lang]}sleep",
                        json.dumps({"ms": 2500}), "--timeout", "60s"], env=daemon.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        _PROCS.extend(calls)
        wait_for(lambda: in_flight(daemon) == 3, 15, "three calls running on the worker")
        connections = link.connections
        link.cut()
        for c in calls:
            out, err = c.communicate(timeout=60)
            assert c.returncode == 0, err  # not WORKER_LOST
            assert json.loads(out)["slept_ms"] >= 2500
        # Every socket connected again: a direct worker's one (PROTOCOL.md §7.10), or both.
        assert link.connections >= connections + (1 if lang in DIRECT else 2)
        assert "re-attached (same session)" in daemon.log
        assert "3 request(s) kept" in daemon.log
        assert "worker is gone" not in daemon.log
        if lang in DIRECT:
            # Direct (PROTOCOL.md §7.10): musterd sent to the broken connection until the worker
            # attached again from the new one, which it did as soon as it was made, not after a
            # liveness window without pings; no request needed sending again, each ran once.
            log = read_log(worker)
            assert DIRECT[lang] in log
            assert "no ping for" not in log and "no ping from the daemon" not in log
            assert "sending again" not in daemon.log
        # And it goes on serving.
        r = muster_cli(daemon, "call", f"{PREFIX[lang]}sleep", json.dumps({"ms": 1}))
        assert r.returncode == 0, r.stderr
        workers = json.loads(muster_cli(daemon, "workers", "--json").stdout)
        assert [(w["worker_id"], w["state"]) for w in workers] == [(worker.worker_id, "ready")]
