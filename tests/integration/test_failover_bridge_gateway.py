"""The bridge and the gateway follow a failover (docs/DURABILITY.md §12): given both daemons'
addresses (comma-separated, passed as they are to the C++ worker SDK and client library), a
node served through a host bridge and a call through the gateway work again after the active
musterd is SIGKILLed and the standby takes over. The pair is test_failover.py's: two real
musterd on one real PostgreSQL journal, the standby binding nothing until it leads.
"""
from __future__ import annotations

import json
import signal

from conftest import BUILD, read_log, spawn, stop, wait_for
from test_failover import cli, postgres, database, start_pair, status  # noqa: F401 (fixtures)
from test_failover_follow import both, worker_on


def test_a_node_served_by_a_host_bridge_given_both_addresses_works_again_after_a_sigkill_failover(
        tmp_path, postgres, database):
    from test_bridge import start_host, start_reference_worker
    a, b = start_pair(tmp_path, postgres, database)
    host = start_host(a, "--worker-id", "bridge-follower",
                      "--request-address", both(a, b, "request"), "--response-address", both(a, b, "response"))
    start_reference_worker(host.url, tmp_path / "hurozo-worker.log")

    def hello(d):
        r = cli(d, "call", "ws_hello", '{"name":"Ada"}', "--timeout", "10s")
        return json.loads(r.stdout) if r.returncode == 0 else None
    wait_for(lambda: hello(a), 30, "ws_hello served through the bridge by the active daemon")
    assert hello(a) == {"greeting": "Hello Ada", "shout": "HELLO ADA"}

    a.stop(signal.SIGKILL)
    wait_for(lambda: "standby: took over" in read_log(b.proc), 30, "the standby to take over")
    wait_for(lambda: worker_on(b, "bridge-follower"), 30, "the bridge's worker to attach to the standby")
    # Re-attached with its registered node: the same call works on the new active daemon.
    wait_for(lambda: hello(b), 30, "ws_hello served through the bridge by the standby")
    assert hello(b) == {"greeting": "Hello Ada", "shout": "HELLO ADA"}
    assert host.proc.poll() is None
    assert read_log(host.proc).count("attached as bridge-follower to daemon instance") == 2  # a, then b
    assert stop(host.proc) == 0
    assert b.stop() == 0


def test_a_gateway_given_both_addresses_calls_again_after_a_sigkill_failover(tmp_path, postgres, database):
    from test_gateway import DEFAULT_USERS, Gateway, add_user
    a, b = start_pair(tmp_path, postgres, database)
    worker = spawn([BUILD / "worker" / "muster-example-worker", "--worker-id", "gw-follower",
                    "--request-address", both(a, b, "request"), "--response-address", both(a, b, "response")],
                   a.env, tmp_path / "worker.log")
    wait_for(lambda: (worker_on(a, "gw-follower") or {}).get("state") == "ready", 15, "the worker on the active daemon")
    gw = Gateway(a, tmp_path, "--client-address", both(a, b, "client"))
    for user in DEFAULT_USERS:
        add_user(gw.data_dir, *user)
    gw.start()
    token = gw.login()

    def hello():
        status, body, _ = gw.request("POST", "/api/nodes/hello/call", {"inputs": {"name": "pair"}}, token=token)
        return body if status == 200 else None
    assert hello()["outputs"] == {"greeting": "Hello pair", "shout": "HELLO PAIR"}

    a.stop(signal.SIGKILL)
    wait_for(lambda: "standby: took over" in read_log(b.proc), 30, "the standby to take over")
    wait_for(lambda: worker_on(b, "gw-follower"), 30, "the worker to attach to the standby")
    # The gateway reaches the new active daemon through the same --client-address list. What it
    # shows may still be its last poll of the killed daemon for a while (the same worker, ready;
    # /healthz fresh for 3 polls plus grace), so what proves the failover is the daemon instance
    # its /api/status names: the standby's, with the worker listed as the standby lists it.
    standby = status(b)["instance"]

    def from_standby():
        code, st = gw.get("/api/status", token)
        if code != 200 or st["daemon"].get("instance") != standby:
            return False
        code, workers = gw.get("/api/workers", token)
        return code == 200 and [(w["worker_id"], w["state"]) for w in workers] == [("gw-follower", "ready")]
    wait_for(hello, 30, "a gateway call to succeed on the standby")
    assert hello()["outputs"] == {"greeting": "Hello pair", "shout": "HELLO PAIR"}
    wait_for(from_standby, 30, "the gateway to show the standby's instance and its worker list")
    assert gw.get("/healthz")[0] == 200
    assert gw.stop() == 0
    assert stop(worker) == 0
    assert b.stop() == 0
