"""Process-level tests of musterd, the C++ example worker and the muster CLI over IPC."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest
import zmq

from conftest import BUILD, popen, read_log, wait_for


def call(run_cli, daemon, node, inputs=None, *args, timeout=60):
    return run_cli(daemon, "call", node, json.dumps(inputs or {}), *args, timeout=timeout)


def test_each_example_node_round_trips(daemon, start_worker, run_cli):
    start_worker(daemon).wait_ready()
    r = call(run_cli, daemon, "hello", {"name": "Ada"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"greeting": "Hello Ada", "shout": "HELLO ADA"}
    r = call(run_cli, daemon, "hello", {})
    assert json.loads(r.stdout) == {"greeting": "Hello world", "shout": "HELLO WORLD"}

    value = {"i": -9223372036854775808, "j": 9223372036854775807, "f": 2.0, "s": "héllo 世界",
             "b": {"$bytes": "AAEC/w=="}, "l": [], "m": {}, "n": None, "t": True,
             "deep": [[{"x": [1, {"y": None}]}]]}
    r = call(run_cli, daemon, "echo", value)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == value
    assert '"f":2.0' in r.stdout  # a float stays a float

    r = call(run_cli, daemon, "sleep", {"ms": 300}, "--progress")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["slept_ms"] >= 300
    assert "progress: 10/10" in r.stderr

    r = call(run_cli, daemon, "fail", {"message": "boom"})
    assert r.returncode == 1
    assert r.stderr.strip() == "error: WORKER_ERROR: boom"

    r = call(run_cli, daemon, "sleep", {})
    assert r.returncode == 1
    assert "INVALID_REQUEST" in r.stderr and "ms" in r.stderr


def test_listings(daemon, start_worker, run_cli):
    start_worker(daemon, "--capacity", "3").wait_ready()
    nodes = json.loads(run_cli(daemon, "nodes", "--json").stdout)
    by_name = {n["name"]: n for n in nodes}
    assert set(by_name) == {"echo", "sha256", "hello", "sleep", "fail", "count"}
    assert [p["name"] for p in by_name["hello"]["outputs"]] == ["greeting", "shout"]
    assert by_name["hello"]["workers"] == 1 and by_name["hello"]["capacity"] == 3
    text = run_cli(daemon, "nodes").stdout
    assert "hello" in text and "greeting,shout" in text
    status = json.loads(run_cli(daemon, "status", "--json").stdout)
    assert status["workers"] == 1 and status["nodes"] == 6
    assert "uptime" in run_cli(daemon, "status").stdout


def test_timeout_aborts_the_worker(daemon, start_worker, run_cli):
    w = start_worker(daemon).wait_ready()
    r = call(run_cli, daemon, "sleep", {"ms": 3000}, "--timeout-ms", "300")
    assert r.returncode == 4  # the CLI's exit status for TIMEOUT (README, Exit codes)
    assert r.stderr.startswith("error: TIMEOUT: ")
    wait_for(lambda: "aborted: deadline passed" in w.log, 5, "the worker to see the abort")
    wait_for(lambda: "sleep request" in w.log and "aborted after" in w.log, 5, "the sleep to stop")


def test_cancel_with_ctrl_c(daemon, start_worker, run_cli):
    w = start_worker(daemon).wait_ready()
    cli = popen([str(BUILD / "tools" / "muster"), "call", "sleep", '{"ms": 20000}',
                 "--progress"], env=daemon.env, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "1/10" in w.log or json.loads(run_cli(daemon, "status", "--json").stdout)["in_flight"] == 1,
                 10, "the request to run")
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=10)
    finally:
        cli.kill()
    assert cli.returncode == 130
    assert "error: CANCELLED: cancelled by the client" in err
    wait_for(lambda: "cancelled by the client" in w.log, 5, "the worker to see the abort")


def test_unknown_node_fails_at_once(daemon, run_cli):
    r = call(run_cli, daemon, "no-such-node")
    assert r.returncode == 1
    assert r.stderr.strip() == "error: NO_WORKER: no worker serves node 'no-such-node'"
    r = call(run_cli, daemon, "bad/name")
    assert "INVALID_REQUEST" in r.stderr


def test_bad_inputs_on_the_command_line(daemon, run_cli):
    r = run_cli(daemon, "call", "echo", "{not json")
    assert r.returncode == 2 and "invalid JSON" in r.stderr
    r = run_cli(daemon, "call", "echo", "[1, 2]")
    assert r.returncode == 2 and "JSON object" in r.stderr


def test_cli_without_a_daemon_is_unavailable(tmp_base):
    env = dict(os.environ, MUSTER_RUNTIME_DIR=str(tmp_base / "nothing"))
    r = subprocess.run([str(BUILD / "tools" / "muster"), "call", "hello"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3  # the CLI's exit status for UNAVAILABLE
    assert "error: UNAVAILABLE: cannot reach musterd" in r.stderr


def test_worker_killed_mid_request_gives_worker_lost(daemon, start_worker, run_cli):
    w = start_worker(daemon).wait_ready()
    cli = popen([str(BUILD / "tools" / "muster"), "call", "sleep", '{"ms": 20000}'],
                env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: json.loads(run_cli(daemon, "status", "--json").stdout)["in_flight"] == 1,
                 10, "the request to run")
        os.kill(w.proc.pid, signal.SIGKILL)
        out, err = cli.communicate(timeout=15)
    finally:
        cli.kill()
    assert cli.returncode == 1
    assert err.startswith("error: WORKER_LOST: ")
    assert "not idempotent" in err


def test_idempotent_request_completes_on_the_other_worker(daemon, start_worker, run_cli):
    a = start_worker(daemon, "--idempotent", "--capacity", "1").wait_ready()
    b = start_worker(daemon, "--idempotent", "--capacity", "1").wait_ready()
    cli = popen([str(BUILD / "tools" / "muster"), "call", "sleep", '{"ms": 1500}'],
                env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def running_on():
            ws = json.loads(run_cli(daemon, "workers", "--json").stdout)
            busy = [w["worker_id"] for w in ws if w["in_flight"] == 1]
            return busy[0] if busy else None
        victim_id = wait_for(running_on, 10, "the request to run")
        victim, survivor = (a, b) if victim_id == a.worker_id else (b, a)
        os.kill(victim.proc.pid, signal.SIGKILL)
        out, err = cli.communicate(timeout=20)
    finally:
        cli.kill()
    assert cli.returncode == 0, err
    assert json.loads(out)["slept_ms"] >= 1500
    assert "re-queued after losing worker" in daemon.log
    assert "attempt" in survivor.log or survivor.proc.poll() is None
    status = json.loads(run_cli(daemon, "status", "--json").stdout)
    assert status["redispatched"] >= 1


def test_daemon_restart_worker_reattaches_within_three_ping_intervals(start_daemon, start_worker, run_cli):
    ping_ms = 1000
    daemon = start_daemon(ping_ms=ping_ms)
    w = start_worker(daemon).wait_ready()
    daemon.stop()
    daemon.start()
    started = time.monotonic()
    w.wait_ready(timeout=3 * ping_ms / 1000)
    elapsed = time.monotonic() - started
    r = call(run_cli, daemon, "hello", {"name": "again"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["greeting"] == "Hello again"
    nodes = {n["name"] for n in json.loads(run_cli(daemon, "nodes", "--json").stdout)}
    assert nodes == {"echo", "sha256", "hello", "sleep", "fail", "count"}  # the full node list came back
    print(f"re-attached and ready {elapsed:.2f} s after the daemon restarted")


def test_queue_full(start_daemon, start_worker, run_cli):
    daemon = start_daemon("--queue-limit", "1")
    start_worker(daemon, "--capacity", "1").wait_ready()
    procs = [popen([str(BUILD / "tools" / "muster"), "call", "sleep", '{"ms": 1500}'],
                   env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        wait_for(lambda: json.loads(run_cli(daemon, "status", "--json").stdout)["queued"] == 1,
                 10, "one running and one queued")
        r = call(run_cli, daemon, "sleep", {"ms": 10})
        assert r.returncode == 1
        assert r.stderr.startswith("error: QUEUE_FULL: ")
        results = [p.communicate(timeout=20) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), results


def test_payload_budget_refuses_what_would_pass_it(start_daemon, start_worker, run_cli):
    daemon = start_daemon("--max-open-bytes", "50000")
    start_worker(daemon).wait_ready()
    r = call(run_cli, daemon, "echo", {"text": "x" * 100_000})
    assert r.returncode == 1
    assert r.stderr.startswith("error: QUEUE_FULL: ") and "--max-open-bytes" in r.stderr, r.stderr
    r = call(run_cli, daemon, "echo", {"text": "y" * 40_000})  # under the budget: served
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"text": "y" * 40_000}
    status = json.loads(run_cli(daemon, "status", "--json").stdout)
    assert status["queued"] == 0 and status["in_flight"] == 0


def test_sigterm_gives_every_request_a_terminal_reply(start_daemon, start_worker, run_cli):
    daemon = start_daemon("--shutdown-grace-ms", "300", "--queue-limit", "5")
    start_worker(daemon, "--capacity", "1").wait_ready()
    procs = [popen([str(BUILD / "tools" / "muster"), "call", "sleep", '{"ms": 20000}'],
                   env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    try:
        wait_for(lambda: json.loads(run_cli(daemon, "status", "--json").stdout)["queued"] == 2,
                 10, "one running and two queued")
        assert daemon.stop() == 0
        results = [p.communicate(timeout=10) for p in procs]
    finally:
        for p in procs:
            p.kill()
    errors = sorted(err.strip() for _, err in results)
    assert len(errors) == 3
    assert all(e.startswith("error: SHUTTING_DOWN: ") for e in errors), errors
    assert "every request got its terminal reply" in daemon.log


def _send_raw(path, data: bytes):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(path)
        try:
            s.sendall(data)
            s.recv(64)
        except OSError:
            pass


def _reply(sock: zmq.Socket) -> bytes:
    assert sock.poll(5000), "no reply from the daemon"
    return sock.recv_multipart()[-1]


def _client_message_buffer() -> bytes:
    """A valid ClientMessage{ListNodes} FlatBuffer, built by hand."""
    import flatbuffers
    b = flatbuffers.Builder(64)
    b.StartObject(0)
    body = b.EndObject()
    b.StartObject(3)
    b.PrependUint64Slot(0, 5, 0)
    b.PrependUint8Slot(1, 3, 0)  # ClientBody.ListNodes
    b.PrependUOffsetTRelativeSlot(2, body, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"MSCL")
    return bytes(b.Output())


def test_garbage_on_every_socket_gets_clear_errors_and_the_daemon_keeps_serving(start_daemon, start_worker, run_cli):
    daemon = start_daemon("--max-message-bytes", "4096")
    start_worker(daemon).wait_ready()
    ctx = zmq.Context.instance()
    rt = daemon.runtime_dir
    try:
        worker_side = ctx.socket(zmq.DEALER)
        worker_side.linger = 0
        worker_side.connect(f"ipc://{rt}/response.sock")
        client_side = ctx.socket(zmq.DEALER)
        client_side.linger = 0
        client_side.connect(f"ipc://{rt}/client.sock")

        valid_client_message = _client_message_buffer()
        client_side.send(valid_client_message)
        assert b"MSCR" in _reply(client_side)[:8]  # the hand-built message is understood

        cases = [
            ([os.urandom(64)], b"not a WorkerMessage"),
            ([b"a", b"b"], b"expected one payload frame"),
            ([valid_client_message], b"a ClientMessage was sent where a WorkerMessage was expected"),
            ([b"\0" * 5000], b"exceeds the limit of 4096 bytes"),
        ]
        for frames, expected in cases:
            worker_side.send_multipart(frames)
            reply = _reply(worker_side)
            assert reply[4:8] == b"MSDM"
            assert expected in reply, (frames[0][:16], reply)

        for frames, expected in [
            ([os.urandom(64)], b"not a ClientMessage"),
            ([b"a", b"b", b"c"], b"expected one payload frame"),
            ([b"\0" * 5000], b"exceeds the limit"),
        ]:
            client_side.send_multipart(frames)
            reply = _reply(client_side)
            assert reply[4:8] == b"MSCR"
            assert expected in reply

        # Bytes that are not even ZMTP, on all three sockets (including the PUB socket).
        for name in ("request", "response", "client"):
            _send_raw(str(rt / f"{name}.sock"), os.urandom(512))
    finally:
        ctx.destroy(linger=0)

    r = call(run_cli, daemon, "hello", {"name": "still here"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["greeting"] == "Hello still here"
    assert daemon.proc.poll() is None


def test_runtime_dir_is_private(daemon):
    mode = os.stat(daemon.runtime_dir).st_mode & 0o777
    assert mode == 0o700


def test_enrollment_endpoint_is_refused_with_insecure(build_dir, tmp_base):
    r = subprocess.run([str(build_dir / "broker" / "musterd"), "--data-dir", str(tmp_base / "d"),
                        "--insecure", "--enrollment-address", "tcp://127.0.0.1:0"],
                       env=dict(os.environ, MUSTER_RUNTIME_DIR=str(tmp_base / "r")),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "cannot be used with --insecure" in r.stderr


def test_second_daemon_on_the_same_runtime_dir_is_refused(daemon, build_dir):
    r = subprocess.run([str(build_dir / "broker" / "musterd"), "--data-dir", str(daemon.data_dir)],
                       env=daemon.env, capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "in use" in r.stderr
