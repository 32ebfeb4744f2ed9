"""Items (partial results, docs/PROTOCOL.md §7.8) through musterd, process level: the C++
example worker's `count` node, the `muster` CLI's --stream, a raw client speaking the wire
(credit window held, exactly one terminal reply), musterd's memory with a slow consumer, cancel
and a worker SIGKILL mid-stream.

C++ worker -> C++ client (100,000 items, slow consumer, cancel) is in
tests/unit/stream_sdk_test.cpp; the Python and TypeScript sides in their SDKs' tests.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import zmq

from conftest import BUILD, UNDER_ASAN, popen, read_log, spawn, wait_for
from muster import messages as m


def stream_cli(daemon, node, inputs, *args):
    """`muster call --stream NODE INPUTS` running, its stdout a pipe the test reads."""
    return popen([str(BUILD / "tools" / "muster"), "call", "--stream", node, json.dumps(inputs), *args],
                 env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                 start_new_session=True)


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_cli_stream_prints_100000_items_then_the_outputs(daemon, start_worker, run_cli):
    start_worker(daemon).wait_ready()
    r = run_cli(daemon, "call", "--stream", "count", '{"n": 100000}', timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 100001
    assert [json.loads(line)["i"] for line in lines[:-1]] == list(range(100000))
    assert json.loads(lines[-1]) == {"count": 100000}  # the outputs, once, last


def test_cli_without_stream_gets_only_the_outputs_and_the_handler_learns_it(daemon, start_worker, run_cli):
    start_worker(daemon).wait_ready()
    r = run_cli(daemon, "call", "count", '{"n": 3}')
    assert r.returncode == 1
    assert r.stderr.startswith("error: WORKER_ERROR: ") and "asked for no items" in r.stderr
    r = run_cli(daemon, "call", "--stream", "count", '{"n": 0}')
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ['{"count":0}']


def test_durable_stream_is_refused(daemon, start_worker, run_cli):
    start_worker(daemon).wait_ready()
    r = run_cli(daemon, "call", "--stream", "--durable", "count", '{"n": 3}')
    assert r.returncode != 0
    assert "INVALID_REQUEST" in r.stderr and "durable calls do not stream" in r.stderr


def _raw_client(daemon):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(daemon.client_address)
    return s


def _replies(sock, wait_ms: int):
    """Every ClientReply that arrives within wait_ms of the previous one."""
    out = []
    while sock.poll(wait_ms):
        out.append(m.decode(sock.recv(), "ClientReply"))
    return out


def test_wire_credit_window_is_held_and_one_terminal_reply_follows_every_item(daemon, start_worker):
    start_worker(daemon).wait_ready()
    sock = _raw_client(daemon)
    sock.send(m.encode(m.ClientMessage(7, m.Submit("count", {"n": 10}, None, 30000, stream_window_items=4,
                                                   stream_window_bytes=1 << 20))))
    first = _replies(sock, 1000)
    # The window: 4 items, and nothing more while no credit comes (the worker waits).
    assert [(type(r.body).__name__, r.body.seq) for r in first] == [("Item", i) for i in range(4)]
    assert all(r.request_id == 7 and r.body.values == {"i": r.body.seq} for r in first)
    sock.send(m.encode(m.ClientMessage(7, m.Credit(7, 0, 6, 1 << 20))))  # cumulative: 2 more
    more = _replies(sock, 1000)
    assert [r.body.seq for r in more] == [4, 5]
    sock.send(m.encode(m.ClientMessage(7, m.Credit(7, 0, 5, 1 << 20))))  # stale: ignored
    assert _replies(sock, 500) == []
    sock.send(m.encode(m.ClientMessage(7, m.Credit(7, 0, 100, 1 << 20))))
    rest = _replies(sock, 1000)
    kinds = [type(r.body).__name__ for r in rest]
    assert kinds == ["Item"] * 4 + ["Result"]
    assert [r.body.seq for r in rest[:4]] == [6, 7, 8, 9]
    assert rest[-1].body.outputs == {"count": 10}
    # exactly one terminal reply: nothing else for the request, even when credit is offered again
    sock.send(m.encode(m.ClientMessage(7, m.Credit(7, 0, 1000, 1 << 20))))
    sock.send(m.encode(m.ClientMessage(8, m.GetStatus())))
    after = _replies(sock, 1000)
    assert [type(r.body).__name__ for r in after] == ["StatusReport"]


def test_slow_consumer_keeps_musterd_memory_bounded(start_daemon, start_worker):
    # 2,000 items of 64 KiB (125 MiB) produced as fast as the worker can, read slowly: musterd
    # holds at most one window (here 2 MiB) of them, so its RSS grows by far less than the stream.
    daemon = start_daemon("--stream-window-bytes", str(2 << 20))
    start_worker(daemon).wait_ready()
    base = vm_rss_kib(daemon.proc.pid)
    cli = stream_cli(daemon, "count", {"n": 2000, "pad": 65536}, "--timeout", "5m")
    peak, seen = base, 0
    try:
        for line in cli.stdout:
            if line.startswith('{"count"'):
                assert json.loads(line) == {"count": 2000}
                break
            seen += 1
            if seen % 20 == 0:
                peak = max(peak, vm_rss_kib(daemon.proc.pid))
                time.sleep(0.02)  # the slow consumer
        assert cli.wait(60) == 0, cli.stderr.read()
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait(5)
    assert seen == 2000
    # 125 MiB went through; without credit most of it would have waited in musterd's queues.
    # (Not under ASan: musterd's RSS grew 312 MiB there, under 24 MiB with quarantine_size_mb=8.)
    if not UNDER_ASAN:
        assert peak - base < 24 * 1024, f"musterd RSS grew {(peak - base) // 1024} MiB (from {base // 1024} MiB)"


def test_cancel_mid_stream_stops_the_worker(daemon, start_worker):
    worker = start_worker(daemon)
    worker.wait_ready()
    cli = stream_cli(daemon, "count", {"n": 10000000, "delay_ms": 1}, "--window", "4")
    try:
        for _ in range(5):
            assert json.loads(cli.stdout.readline())["i"] >= 0
        cli.send_signal(signal.SIGINT)
        assert cli.wait(15) == 130
        assert "CANCELLED" in cli.stderr.read()
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait(5)
    wait_for(lambda: "count request" in worker.log and "aborted after" in worker.log, 10,
             "the worker's count handler to stop on the abort")


def test_worker_sigkill_mid_stream_is_worker_lost_after_the_items_never_a_rerun(daemon, start_worker):
    # Both workers declare `count` idempotent: without the stream rule the call would be re-run on
    # the second one and repeat the items the caller already has.
    first = start_worker(daemon, "--idempotent", worker_id="first")
    first.wait_ready()
    cli = stream_cli(daemon, "count", {"n": 10000000, "delay_ms": 1}, "--window", "4")
    second = None
    try:
        for _ in range(5):
            cli.stdout.readline()
        second = start_worker(daemon, "--idempotent", worker_id="second")
        second.wait_ready()
        os.kill(first.proc.pid, signal.SIGKILL)
        cli.wait(30)  # a few items at most are still on their way: the pipe does not fill
        out, err = cli.stdout.read(), cli.stderr.read()  # (communicate would skip readline's buffer)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait(5)
    assert cli.returncode != 0
    assert "WORKER_LOST" in err and "item(s) of the stream were delivered" in err, err
    assert [line for line in out.splitlines() if '"i"' not in line] == []  # items only: no outputs line
    assert "count" not in second.log  # never re-run


def test_a_caller_window_larger_than_musterds_does_not_stall(start_daemon, start_worker, run_cli):
    # The CLI grants 64 items ahead; musterd gives the worker at most 2 ahead of what it forwarded
    # and meters the rest of the CLI's grant out as items go through.
    daemon = start_daemon("--stream-window-items", "2")
    start_worker(daemon).wait_ready()
    r = run_cli(daemon, "call", "--stream", "--window", "64", "count", '{"n": 500}', timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 501 and json.loads(lines[-1]) == {"count": 500}
