"""Callers of durable calls (docs/DURABILITY.md §6): job ids that outlive the caller and musterd.

Real musterd, a real Python SDK worker whose node waits for a gate file (so a call finishes
exactly when the test says), and the real `muster` CLI as the C++ client: `muster call
--durable` printing its job id, `muster job get|ls|cancel`, and a call resumed after musterd was
SIGKILLed with its outcome journaled but never delivered (a proxy between the CLI and musterd
drops the reply on the way, as a crash between the journal's commit and the send would).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from conftest import _PROCS, BUILD, make_daemon, popen, spawn, wait_for
from test_cli import free_port
from test_durable import COUNTING_WORKER

MUSTER = BUILD / "tools" / "muster"


@pytest.fixture
def gated(start_daemon, tmp_path, run_cli):
    """A daemon and a counting worker (capacity 1): call {"i": 0} waits for the gate file."""
    daemon = start_daemon()
    log, gate = tmp_path / "executions.log", tmp_path / "gate"
    script = tmp_path / "counting_worker.py"
    script.write_text(COUNTING_WORKER)
    spawn([sys.executable, script, "counter", log, gate], daemon.env, tmp_path / "counter.log")

    def ready():
        r = run_cli(daemon, "workers", "--json")
        return r.returncode == 0 and any(w["state"] == "ready" for w in json.loads(r.stdout))
    wait_for(ready, 15, "the counting worker")
    return daemon, log, gate


def start_call(daemon, tmp_path, i, *cli_args, name=None, node="count", inputs=None):
    """`muster call --durable count {"i": i}` (or NODE INPUTS) in the background; returns
    (proc, its job id, read from the line the CLI prints on stderr once musterd accepted it)."""
    out = tmp_path / f"{name or f'call-{i}'}.out"
    err = tmp_path / f"{name or f'call-{i}'}.err"
    args = [MUSTER, *cli_args, "call", "--durable", node, json.dumps({"i": i} if inputs is None else inputs)]
    proc = popen([str(a) for a in args], env=daemon.env, stdout=open(out, "wb"),
                 stderr=open(err, "wb"), start_new_session=True)
    _PROCS.append(proc)
    line = wait_for(lambda: next((l for l in err.read_text().splitlines() if l.startswith("job ")), None),
                    15, f"the job id of call {i} on stderr")
    job = int(line.split()[1])
    assert f"`muster job get {job}` fetches its outcome" in line
    proc.out_path, proc.err_path = out, err
    return proc, job


def jobs(run_cli, daemon):
    r = run_cli(daemon, "job", "ls", "--json")
    assert r.returncode == 0, r.stderr
    return {j["job_id"]: j for j in json.loads(r.stdout)}


def test_a_call_that_finished_while_its_caller_was_away_is_fetched_once_then_acked(gated, tmp_path, run_cli):
    daemon, log, gate = gated
    caller, job = start_call(daemon, tmp_path, 0)
    assert jobs(run_cli, daemon)[job]["state"] == "running"
    caller.send_signal(signal.SIGKILL)  # the caller goes away; the durable call is not cancelled
    caller.wait(10)
    gate.touch()
    wait_for(lambda: jobs(run_cli, daemon).get(job, {}).get("state") == "finished", 15, "the job to finish")
    listed = jobs(run_cli, daemon)[job]
    assert listed["code"] == "NONE" and listed["node"] == "count" and listed["workspace"] == "default"
    r = run_cli(daemon, "job", "get", str(job))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)  # the outputs, as `muster call` prints them
    # Fetched and acknowledged: musterd forgot it.
    r = run_cli(daemon, "job", "get", str(job))
    assert r.returncode == 1
    assert f"error: INVALID_REQUEST: no such job {job}" in r.stderr
    assert job not in jobs(run_cli, daemon)
    assert log.read_text().split() == ["0"]  # it ran once


def test_job_get_keep_and_json_and_an_open_job_is_pending(gated, tmp_path, run_cli):
    daemon, log, gate = gated
    caller, job = start_call(daemon, tmp_path, 0)
    r = run_cli(daemon, "job", "get", str(job))
    assert r.returncode == 6  # pending
    assert r.stderr.startswith(f"job {job} running (node count")
    r = run_cli(daemon, "job", "get", str(job), "--json")
    assert r.returncode == 6
    info = json.loads(r.stdout)
    assert info["state"] == "running" and info["attempts"] == 1 and info["worker_id"] == "counter"
    gate.touch()
    assert caller.wait(15) == 0  # the caller itself gets the result...
    assert len(caller.out_path.read_text().splitlines()) == 1
    # ...and acknowledged it when it exited: nothing is left to fetch.
    wait_for(lambda: job not in jobs(run_cli, daemon), 10, "the caller's JobAck")
    # A job fetched with --keep stays.
    gate.unlink()
    caller, job = start_call(daemon, tmp_path, 0, name="second")
    caller.send_signal(signal.SIGKILL)
    caller.wait(10)
    gate.touch()
    wait_for(lambda: jobs(run_cli, daemon).get(job, {}).get("state") == "finished", 15, "job to finish")
    for _ in range(2):
        r = run_cli(daemon, "job", "get", str(job), "--keep", "--json")
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got["job_id"] == job and got["state"] == "finished" and "outputs" in got
    assert run_cli(daemon, "job", "get", str(job)).returncode == 0
    assert run_cli(daemon, "job", "get", str(job)).returncode == 1


def test_job_ls_and_cancel_running_and_queued(gated, tmp_path, run_cli):
    daemon, log, gate = gated
    running, first = start_call(daemon, tmp_path, 0)
    queued, second = start_call(daemon, tmp_path, 1)
    listed = jobs(run_cli, daemon)
    assert listed[first]["state"] == "running" and listed[second]["state"] == "queued"
    r = run_cli(daemon, "job", "ls")
    assert r.returncode == 0
    assert r.stdout.splitlines()[0].split() == ["JOB", "STATE", "NODE", "WORKER", "ATTEMPTS", "AGE", "OUTCOME"]
    assert len(r.stdout.splitlines()) == 3
    r = run_cli(daemon, "job", "cancel", str(second), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["code"] == "CANCELLED"
    assert f"job {second} cancelled" in r.stderr
    r = run_cli(daemon, "job", "cancel", str(first))
    assert r.returncode == 0 and f"job {first} cancelled" in r.stderr
    # Each caller gets its one terminal reply, CANCELLED (exit 130), and acknowledges it.
    for caller in (running, queued):
        assert caller.wait(15) == 130
        assert "error: CANCELLED: cancelled by local (JobCancel)" in caller.err_path.read_text()
        assert caller.out_path.read_text() == ""
    wait_for(lambda: not jobs(run_cli, daemon), 10, "both callers' JobAck")
    r = run_cli(daemon, "job", "cancel", str(first))
    assert r.returncode == 1 and "no such job" in r.stderr
    gate.touch()  # the worker was told to abort; call 0 may still finish: its result is dropped
    assert not log.exists() or "1" not in log.read_text().split()  # the queued one never ran


def test_ctrl_c_detaches_a_durable_call_instead_of_cancelling_it(gated, tmp_path, run_cli):
    daemon, log, gate = gated
    caller, job = start_call(daemon, tmp_path, 0)
    caller.send_signal(signal.SIGINT)
    assert caller.wait(10) == 130
    assert f"detached: job {job} runs on" in caller.err_path.read_text()
    assert jobs(run_cli, daemon)[job]["state"] == "running"
    gate.touch()
    r = run_cli(daemon, "job", "get", str(job), "--wait")
    assert r.returncode == 0, r.stderr
    assert log.read_text().split() == ["0"]


def test_another_workspace_sees_no_such_job(tmp_base, tmp_path, start_worker, run_cli):
    cport, eport = free_port(), free_port()
    d = make_daemon(tmp_base / "ws", "--client-address", f"tcp://127.0.0.1:{cport}",
                    "--enrollment-address", f"tcp://127.0.0.1:{eport}")
    start_worker(d).wait_ready()
    caller, running = start_call(d, tmp_path, 0, node="sleep", inputs={"ms": 60000})
    r = run_cli(d, "call", "--durable", "echo", '{"x": 1}')  # finished and acked by its caller
    assert r.returncode == 0, r.stderr
    token = run_cli(d, "token", "create", "--role", "client", "--workspace", "other", "--ttl", "10m").stdout.strip()
    env = dict(d.env, MUSTER_RUNTIME_DIR=str(tmp_base / "none"), MUSTER_ENROLLMENT_TOKEN=token,
               XDG_CONFIG_HOME=str(tmp_base / "cfg-other"))

    def other(*args):  # a client enrolled in workspace "other", over tcp:// with CURVE
        return subprocess.run([str(MUSTER), "--client-address", f"tcp://127.0.0.1:{cport}",
                               "--enrollment-address", f"tcp://127.0.0.1:{eport}",
                               "--data-dir", str(tmp_base / "other"), "--enroll-timeout", "5s", *args],
                              env=env, capture_output=True, text=True, timeout=60)
    for args in (("job", "get", str(running)), ("job", "cancel", str(running))):
        r = other(*args)
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stderr.strip() == f"error: INVALID_REQUEST: no such job {running} (unknown, expired or acknowledged)"
    r = other("job", "ls", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    # The job's own workspace still has it, untouched, and its caller still waits for it.
    assert jobs(run_cli, d)[running]["state"] == "running"
    assert caller.poll() is None
    r = run_cli(d, "job", "cancel", str(running))
    assert r.returncode == 0 and f"job {running} cancelled" in r.stderr
    assert caller.wait(15) == 130


class DroppingProxy:
    """Forwards unix-socket connections to musterd's client socket byte for byte. While holding,
    what musterd sends is kept back; when musterd's side closes, the client's side is closed
    too and what was kept back is dropped: the reply is lost on the way, as when musterd dies
    after its journal's commit and before its send."""

    def __init__(self, listen: str, target: str):
        self.target, self.holding = target, False
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(listen)
        self.server.listen(8)
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:  # musterd is down: the client retries (libzmq reconnects)
                client.close()
                upstream.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src, dst, from_daemon):
        try:
            while data := src.recv(65536):
                if from_daemon and self.holding:
                    self.dropped += len(data)
                    continue
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        if from_daemon:
            self.holding = False  # the next connection goes through

    def close(self):
        self.server.close()


def test_sigkill_after_the_outcome_was_journaled_but_never_delivered_resumes_and_delivers_once(gated, tmp_path, run_cli):
    daemon, log, gate = gated
    proxy = DroppingProxy(str(tmp_path / "proxy.sock"), str(daemon.runtime_dir / "client.sock"))
    try:
        caller, job = start_call(daemon, tmp_path, 0, "--client-address", f"ipc://{tmp_path}/proxy.sock")
        proxy.holding = True  # from now on, nothing musterd sends reaches the caller
        gate.touch()
        wait_for(lambda: jobs(run_cli, daemon).get(job, {}).get("state") == "finished", 15, "the job to finish")
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL  # before the caller could ack
        wait_for(lambda: proxy.dropped > 0, 10, "the Result on its way")  # ...and lost with musterd
        assert caller.poll() is None  # the caller waits for musterd to come back
        daemon.start()
        # The caller reconnects, resumes its job, gets the kept Result once, prints it, acks it.
        assert caller.wait(30) == 0, caller.err_path.read_text()
        lines = caller.out_path.read_text().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])
        wait_for(lambda: job not in jobs(run_cli, daemon), 10, "the resumed caller's JobAck")
        r = run_cli(daemon, "job", "get", str(job))
        assert r.returncode == 1 and "no such job" in r.stderr
        assert log.read_text().split() == ["0"]  # delivered after the restart, never re-run
        assert "jobs resumed: 0 open bound to the caller's connection, 1 outcome(s) delivered again" in daemon.log
    finally:
        proxy.close()


def test_a_node_declared_durable_makes_every_call_durable(daemon, start_worker, run_cli):
    start_worker(daemon, "--durable").wait_ready()  # declares `sleep` durable
    nodes = {n["name"]: n for n in json.loads(run_cli(daemon, "nodes", "--json").stdout)}
    assert nodes["sleep"]["durable"] is True and "durable" not in nodes["echo"]
    r = run_cli(daemon, "call", "sleep", '{"ms": 10}', "--keep")  # not asked durable
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("job 1 (durable: ")
    assert json.loads(r.stdout)["slept_ms"] >= 10
    assert run_cli(daemon, "call", "echo", "{}").stderr == ""  # the other nodes are not durable
    r = run_cli(daemon, "job", "get", "1")
    assert r.returncode == 0 and json.loads(r.stdout)["slept_ms"] >= 10
    assert (daemon.data_dir / "journal.db").exists()  # opened for the first durable call


def _reply(request_id: int, body_type: int, build) -> bytes:
    import flatbuffers
    from muster.wire import ClientReply
    b = flatbuffers.Builder(128)
    body = build(b)
    ClientReply.Start(b)
    ClientReply.AddRequestId(b, request_id)
    ClientReply.AddBodyType(b, body_type)
    ClientReply.AddBody(b, body)
    b.Finish(ClientReply.End(b), b"MSCR")
    return bytes(b.Output())


def test_the_client_resumes_under_its_request_id_delivers_one_reply_of_two_and_acks_it(tmp_path):
    """Bytes on the wire, against a scripted daemon: after the connection drops, `muster call
    --durable` sends JobResume{[job 5 under its original request id]}; of two terminal replies
    for job 5 it prints one; then it sends JobAck{[5]}."""
    import zmq
    from muster.wire import (Accepted, ClientBody, ClientMessage, ErrorCode, Failure, JobAck, JobResume,
                             ReplyBody)
    endpoint = f"ipc://{tmp_path}/fake.sock"
    ctx = zmq.Context()
    try:
        router = ctx.socket(zmq.ROUTER)
        router.bind(endpoint)
        out_path, err_path = tmp_path / "call.out", tmp_path / "call.err"
        caller = popen([str(MUSTER), "--client-address", endpoint, "call", "--durable", "echo", "{}"],
                       stdout=open(out_path, "wb"), stderr=open(err_path, "wb"), start_new_session=True)
        _PROCS.append(caller)

        def receive(sock):
            assert sock.poll(15000), "nothing from the client"
            peer, payload = sock.recv_multipart()
            return peer, ClientMessage.ClientMessage.GetRootAs(payload)
        peer, submit = receive(router)
        assert submit.BodyType() == ClientBody.ClientBody.Submit
        rid = submit.RequestId()

        def accepted(b):
            Accepted.Start(b)
            Accepted.AddJobId(b, 5)
            return Accepted.End(b)
        router.send_multipart([peer, _reply(rid, ReplyBody.ReplyBody.Accepted, accepted)])
        wait_for(lambda: "job 5 (durable" in err_path.read_text(), 15, "the client to take the job id")
        router.close(linger=0)  # musterd "restarts": the connection drops, a new socket binds
        router = ctx.socket(zmq.ROUTER)
        router.bind(endpoint)
        peer, resume = receive(router)
        assert resume.BodyType() == ClientBody.ClientBody.JobResume
        body = JobResume.JobResume()
        body.Init(resume.Body().Bytes, resume.Body().Pos)
        assert body.JobsLength() == 1
        assert (body.Jobs(0).JobId(), body.Jobs(0).RequestId()) == (5, rid)  # its own request id

        def failure(b):
            message = b.CreateString("boom")
            Failure.Start(b)
            Failure.AddRequestId(b, rid)
            Failure.AddCode(b, ErrorCode.ErrorCode.WorkerError)
            Failure.AddMessage(b, message)
            Failure.AddJobId(b, 5)
            return Failure.End(b)
        # The kept outcome, redelivered twice (as after a second reconnect): printed once.
        for _ in range(2):
            router.send_multipart([peer, _reply(rid, ReplyBody.ReplyBody.Failure, failure)])
        assert caller.wait(15) == 1
        assert out_path.read_text() == ""
        assert err_path.read_text().splitlines()[1:] == ["error: WORKER_ERROR: boom"]
        peer, ack = receive(router)  # sent as the CLI exits, after printing
        assert ack.BodyType() == ClientBody.ClientBody.JobAck
        body = JobAck.JobAck()
        body.Init(ack.Body().Bytes, ack.Body().Pos)
        assert [body.JobIds(i) for i in range(body.JobIdsLength())] == [5]
        router.close(linger=0)
    finally:
        ctx.term()


def test_job_ls_pages_with_limit_and_after(daemon, start_worker, run_cli):
    """`muster job ls` lists at most --limit jobs (musterd: at most 1000 at a time) and says on
    stderr where the next page starts (JobList.limit/after_job_id, JobInfoList.more)."""
    start_worker(daemon).wait_ready()
    for _ in range(3):
        r = run_cli(daemon, "call", "--durable", "--keep", "echo", "{}")  # kept: listed until acked
        assert r.returncode == 0, r.stderr
    r = run_cli(daemon, "job", "ls", "--json", "--limit", "2")
    assert r.returncode == 0, r.stderr
    assert [j["job_id"] for j in json.loads(r.stdout)] == [1, 2]
    assert "more jobs follow: muster job ls --after 2" in r.stderr
    r = run_cli(daemon, "job", "ls", "--json", "--after", "2")
    assert r.returncode == 0, r.stderr
    assert [j["job_id"] for j in json.loads(r.stdout)] == [3]
    assert "more jobs follow" not in r.stderr
    r = run_cli(daemon, "job", "ls")  # no limit: all three, nothing more
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 4 and "more" not in r.stderr
    r = run_cli(daemon, "status")
    assert r.returncode == 0 and "recovering   0" in r.stdout
    assert json.loads(run_cli(daemon, "status", "--json").stdout)["recovering"] == 0
