"""A Python worker whose Attach a restarted musterd never got attaches again within about a
ping interval, not at its attach timeout (PROTOCOL.md §7.1 "No Attached").

One real musterd (--ping-interval-ms 200 --liveness 3); the worker (the Python SDK, in this
process) is given a failover pair's address lists, musterd's endpoints and ones nothing binds,
as in docs/DURABILITY.md §12: its response socket then queues only on a completed connection
(ZMQ_IMMEDIATE), so the Attach it sends while musterd is down is dropped, not queued. musterd
is restarted on the same endpoints once that Attach is gone. The worker's attach timeout is
30 s, so it can serve again before the test's 20 s bound only by sending the Attach again when
the restarted daemon pings, and it must do so once: the new musterd logs one attach. A direct
worker (PROTOCOL.md §7.10, the default) has no SUB to hear that Ping: it sends the Attach again
as soon as its connection to the restarted daemon is made, once too.
"""
from __future__ import annotations

import json
import logging
import threading

import pytest

import muster

from conftest import muster_cli, wait_for


class _Lines(logging.Handler):
    """Collects the worker's log messages (it logs from its own I/O thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.mutex = threading.Lock()  # not `lock`: logging.Handler holds that one around emit

    def emit(self, record: logging.LogRecord) -> None:
        with self.mutex:
            self.lines.append(record.getMessage())

    def count(self, text: str) -> int:
        with self.mutex:
            return sum(text in line for line in self.lines)


def _ready(daemon, worker_id: str) -> bool:
    out = muster_cli(daemon, "workers", "--json")
    return out.returncode == 0 and any(
        w["worker_id"] == worker_id and w["state"] == "ready" for w in json.loads(out.stdout))


@pytest.mark.parametrize("direct", [False, True])
def test_a_python_worker_attaches_again_when_a_restarted_daemon_pings_not_at_its_attach_timeout(daemon, tmp_base, direct):
    nowhere = tmp_base / "standby"  # the pair's other daemon: never bound here
    nowhere.mkdir()
    run = daemon.runtime_dir
    lines = _Lines()
    logger = logging.getLogger("muster")
    logger.addHandler(lines)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    w = muster.Worker(worker_id="py-reattach",
                      request_address=f"ipc://{run}/request.sock,ipc://{nowhere}/request.sock",
                      response_address=f"ipc://{run}/response.sock,ipc://{nowhere}/response.sock",
                      attach_timeout=30.0, direct=direct)

    @w.node(name="py_echo")
    def echo(ctx):
        return dict(ctx.inputs)

    w.start()
    try:
        assert w.wait_attached(20), (lines.lines, daemon.log)
        wait_for(lambda: _ready(daemon, "py-reattach"), 20, "the worker ready on musterd")
        assert w.attach_count == 1
        daemon.stop()
        # No Ping for ping interval × liveness: the worker reconnects, and its Attach, with no
        # daemon connected, is dropped.
        wait_for(lambda: lines.count("dropped a attach") >= 1, 20, "the worker's Attach dropped")
        assert w.attach_count == 2
        daemon.start()
        wait_for(lambda: _ready(daemon, "py-reattach"), 20, "the worker ready on the restarted musterd")
        out = muster_cli(daemon, "call", "py_echo", json.dumps({"x": 7}))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"x": 7}
        # One Attach for the restarted daemon: sent when it had pinged twice (direct: when the
        # connection to it was made), answered once.
        assert w.attach_count == 3
        if direct:
            assert lines.count("a connection to the daemon was made: attaching") == 1
        else:
            assert lines.count("pings but has not answered the Attach: attaching again") == 1
        assert daemon.log.count("attached worker_id=py-reattach") == 1, daemon.log
    finally:
        w.stop(now=True, timeout=10)
        logger.removeHandler(lines)
        logger.setLevel(old_level)
