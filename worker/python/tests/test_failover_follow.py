"""A worker given both daemons' addresses of a failover pair (docs/DURABILITY.md §12) follows a
failover, and so does a client with a durable call: two fake daemons each (tests/conftest.py,
test_durable_client.py), the second bound only once the first is gone, as a standby binds
nothing until it takes the lease."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace

import pytest

import muster
from muster import messages as m
from muster.endpoints import endpoint_list

from conftest import WAIT, FakeDaemon, attached_reply, worker_topic
from test_durable_client import JOB, FakeDaemonClientSocket, accept_durable
from test_worker_protocol import attach_and_confirm, make_worker, request


def test_endpoint_list_splits_a_pair_and_refuses_empty_items():
    assert endpoint_list("ipc:///x/client.sock") == ["ipc:///x/client.sock"]
    assert endpoint_list("tcp://a:7901, tcp://b:7901") == ["tcp://a:7901", "tcp://b:7901"]
    for bad in ("", "tcp://a:1,", ",tcp://a:1", "tcp://a:1,,tcp://b:1"):
        with pytest.raises(ValueError, match="empty endpoint in the address list"):
            endpoint_list(bad)
    with pytest.raises(ValueError, match="tcp:// endpoints are CURVE-encrypted"):
        muster.Worker(worker_id="x", request_address="ipc:///x/r.sock,tcp://b:7899",
                      response_address="ipc:///x/s.sock,tcp://b:7898")


def test_a_worker_given_both_addresses_moves_to_the_standby_with_its_in_flight_list(short_tmp):
    a_dir, b_dir = os.path.join(short_tmp, "a"), os.path.join(short_tmp, "b")
    os.mkdir(a_dir)
    os.mkdir(b_dir)
    a = FakeDaemon(a_dir)
    pair = SimpleNamespace(request_address=f"ipc://{a_dir}/request.sock,ipc://{b_dir}/request.sock",
                           response_address=f"ipc://{a_dir}/response.sock,ipc://{b_dir}/response.sock")
    # attach_timeout: an Attach lost on the way would be retried only after the test's WAIT
    w = make_worker(pair, worker_id="follower", attach_timeout=3 * WAIT)
    w.start()
    b = None
    try:
        # No pings of the daemons' own: a liveness window (it was 100 ms) is shorter than what a
        # loaded machine can hold the fake daemon up, and the worker then attaches again too
        # early (before it got the request, or while the standby confirms it).
        attach_and_confirm(a, w, instance="active", ping_interval_ms=0)
        request(a, w, 8, "block")
        a.publish(worker_topic("follower"), m.Ping(seq=2, instance="active"))
        peer, _, pong = a.expect(m.Pong)
        assert pong.in_flight == [8]  # it has the request (a.close() drops what is on the way)
        a.close()  # the active daemon dies; the standby takes over and binds
        b = FakeDaemon(b_dir)
        # The worker's connection to the active daemon broke; connected to the standby, it
        # attaches again, and only the standby hears it.
        peer, raw, att = b.expect(m.Attach, timeout=WAIT)
        assert att.worker_id == "follower"
        b.reply(peer, attached_reply("follower", "standby", ping_interval_ms=0))
        peer, raw, pong = b.confirm("follower", "standby", seq=1)
        assert pong.in_flight == [8]  # what still runs, reported to the new daemon to adopt
        b.reply(peer, m.Ack())
        w.test_release.set()  # type: ignore[attr-defined]
        peer, raw, result = b.expect(m.Result, skip=(m.Pong,))
        assert result.request_id == 8
        b.reply(peer, m.Ack())
    finally:
        w.test_release.set()  # type: ignore[attr-defined]
        w.stop(now=True, timeout=WAIT)
        if b is not None:
            b.close()


def test_a_client_given_both_addresses_resumes_its_durable_call_on_the_standby(short_tmp):
    a_dir, b_dir = os.path.join(short_tmp, "a"), os.path.join(short_tmp, "b")
    os.mkdir(a_dir)
    os.mkdir(b_dir)
    a = FakeDaemonClientSocket(a_dir)
    b = None
    client = muster.Client(f"{a.address},ipc://{b_dir}/client.sock", connect_timeout=2.0,
                           list_timeout=WAIT, resume_timeout=WAIT)
    try:
        call = client.submit("echo", {"x": 1}, durable=True)
        accept_durable(a)
        assert call.accepted.wait(WAIT)
        a.close()  # the active daemon dies; the standby takes over and binds
        b = FakeDaemonClientSocket(b_dir)
        peer, msg = b.recv_body(m.JobResume)
        (ref,) = msg.body.jobs
        assert ref.job_id == JOB
        b.reply(peer, ref.request_id, m.Result(ref.request_id, {"x": 1}, job_id=JOB))
        assert call.result(WAIT) == {"x": 1}
        assert b.recv_body(m.JobAck)[1].body.job_ids == [JOB]
    finally:
        client.close()
        if b is not None:
            b.close()


def test_an_async_client_given_both_addresses_resumes_its_durable_call_on_the_standby(short_tmp):
    a_dir, b_dir = os.path.join(short_tmp, "a"), os.path.join(short_tmp, "b")
    os.mkdir(a_dir)
    os.mkdir(b_dir)
    a = FakeDaemonClientSocket(a_dir)
    standby: list = []

    def failover():  # the fake daemons' side, blocking, in a thread
        a.close()  # the active daemon dies; the standby takes over and binds
        b = FakeDaemonClientSocket(b_dir)
        standby.append(b)
        peer, msg = b.recv_body(m.JobResume)
        (ref,) = msg.body.jobs
        assert ref.job_id == JOB
        b.reply(peer, ref.request_id, m.Result(ref.request_id, {"x": 1}, job_id=JOB))
        return b.recv_body(m.JobAck)[1].body.job_ids

    async def main():
        loop = asyncio.get_running_loop()
        async with muster.AsyncClient(f"{a.address},ipc://{b_dir}/client.sock", connect_timeout=2.0,
                                      resume_timeout=WAIT) as c:
            call = await c.submit("echo", {"x": 1}, durable=True)
            await loop.run_in_executor(None, accept_durable, a)
            deadline = loop.time() + WAIT
            while call.job_id is None and loop.time() < deadline:  # its Accepted read
                await asyncio.sleep(0.01)
            assert call.job_id == JOB
            acked = loop.run_in_executor(None, failover)
            assert await asyncio.wait_for(call, WAIT) == {"x": 1}
            assert await asyncio.wait_for(acked, WAIT) == [JOB]

    try:
        asyncio.run(main())
    finally:
        if standby:
            standby[0].close()
