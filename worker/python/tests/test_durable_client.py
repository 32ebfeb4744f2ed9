"""Durable calls in Client and AsyncClient against a fake daemon client socket (a ROUTER in the
test, closed and bound again to play a daemon restart): the Submit asks durable and Accepted,
a terminal reply is acknowledged with JobAck once handed over, a reconnect resumes the open
durable calls under new request ids and repeats the lost connection's acknowledgements, a
second reply of a delivered job is dropped, and job_get/job_list/job_cancel (docs/DURABILITY.md
§6)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List

import pytest
import zmq

import muster
from muster import messages as m
from muster.errors import ErrorCode

from conftest import WAIT

JOB = (1 << 40) + 7


class FakeDaemonClientSocket:
    """The daemon's client ROUTER; ``restart()`` closes it and binds a new one (a daemon restart)."""

    def __init__(self, directory: str):
        self.ctx = zmq.Context()
        self.address = f"ipc://{directory}/client.sock"
        self.router: Any = None
        self._bind()

    def _bind(self) -> None:
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(self.address)

    def stop(self) -> None:
        self.router.close(0)

    def restart(self) -> None:
        self.stop()
        self._bind()

    def recv(self):
        assert self.router.poll(int(WAIT * 1000)), "no message from the client"
        frames = self.router.recv_multipart()
        return frames[0], m.decode_client_message(frames[1])

    def recv_body(self, kind: type):
        """The next message of type ``kind`` (skipping others, such as a repeated JobAck)."""
        while True:
            peer, msg = self.recv()
            if isinstance(msg.body, kind):
                return peer, msg

    def nothing_within(self, seconds: float) -> bool:
        return not self.router.poll(int(seconds * 1000))

    def reply(self, peer, rid, body):
        self.router.send_multipart([peer, m.encode(m.ClientReply(request_id=rid, body=body))])

    def close(self):
        self.router.close(0)
        self.ctx.term()


@pytest.fixture
def daemon(short_tmp):
    d = FakeDaemonClientSocket(short_tmp)
    yield d
    d.close()


@pytest.fixture
def client(daemon):
    c = muster.Client(daemon.address, connect_timeout=2.0, list_timeout=WAIT, resume_timeout=WAIT)
    yield c
    c.close()


def accept_durable(daemon, job_id=JOB):
    """Reads a durable Submit and answers Accepted with ``job_id``."""
    peer, msg = daemon.recv()
    assert isinstance(msg.body, m.Submit)
    assert msg.body.durable is True and msg.body.want_accepted is True
    daemon.reply(peer, msg.request_id, m.Accepted(queued=False, job_id=job_id))
    return peer, msg.request_id


def test_a_durable_call_is_acknowledged_once_handed_over(daemon, client):
    call = client.submit("echo", {"x": 1}, durable=True)
    peer, rid = accept_durable(daemon)
    assert call.accepted.wait(WAIT) and call.job_id == JOB
    daemon.reply(peer, rid, m.Result(rid, {"x": 1}, job_id=JOB))
    assert call.result(WAIT) == {"x": 1}
    _, ack = daemon.recv()
    assert ack.body == m.JobAck(job_ids=[JOB])


def test_a_non_durable_call_is_not_acknowledged(daemon, client):
    call = client.submit("echo", {"x": 1})
    peer, msg = daemon.recv()
    assert msg.body.durable is False and msg.body.want_accepted is False
    daemon.reply(peer, msg.request_id, m.Result(msg.request_id, {"x": 1}))
    assert call.result(WAIT) == {"x": 1}
    assert daemon.nothing_within(0.3)


def test_after_a_restart_the_call_is_resumed_and_delivered_once(daemon, client):
    call = client.submit("echo", {"x": 1}, durable=True)
    accept_durable(daemon)
    assert call.accepted.wait(WAIT)
    old_rid = call.request_id
    daemon.restart()  # the client sees its connection go and a new daemon come
    peer, msg = daemon.recv_body(m.JobResume)
    (ref,) = msg.body.jobs
    assert ref.job_id == JOB and ref.request_id != old_rid and ref.request_id != msg.request_id
    assert not call.done()  # a lost connection does not fail a durable call
    daemon.reply(peer, ref.request_id, m.Result(ref.request_id, {"x": 1}, job_id=JOB))
    # The same reply again (a redelivery): dropped, and acknowledged again.
    daemon.reply(peer, ref.request_id, m.Result(ref.request_id, {"x": 2}, job_id=JOB))
    assert call.result(WAIT) == {"x": 1}
    assert call.request_id == ref.request_id
    acks = [daemon.recv_body(m.JobAck)[1].body.job_ids for _ in range(2)]
    assert acks == [[JOB], [JOB]]


def test_a_late_reply_on_the_old_request_id_counts_once(daemon, client):
    call = client.submit("echo", {}, durable=True)
    peer, old_rid = accept_durable(daemon)
    assert call.accepted.wait(WAIT)
    daemon.restart()
    peer, msg = daemon.recv_body(m.JobResume)
    new_rid = msg.body.jobs[0].request_id
    # The old instance's Result, then the new one's redelivery of the same job.
    daemon.reply(peer, old_rid, m.Result(old_rid, {"from": "old"}, job_id=JOB))
    daemon.reply(peer, new_rid, m.Result(new_rid, {"from": "new"}, job_id=JOB))
    assert call.result(WAIT) == {"from": "old"}
    assert [daemon.recv_body(m.JobAck)[1].body.job_ids for _ in range(2)] == [[JOB], [JOB]]


def test_no_such_job_on_resume_fails_the_call(daemon, client):
    call = client.submit("echo", {}, durable=True)
    accept_durable(daemon)
    assert call.accepted.wait(WAIT)
    daemon.restart()
    peer, msg = daemon.recv_body(m.JobResume)
    rid = msg.body.jobs[0].request_id
    daemon.reply(peer, rid, m.Failure(rid, ErrorCode.INVALID_REQUEST, "no such job (expired or acknowledged)"))
    with pytest.raises(muster.InvalidRequest, match="no such job"):
        call.result(WAIT)


def test_a_reconnect_repeats_the_acknowledgements_of_the_lost_connection(daemon, client):
    call = client.submit("echo", {}, durable=True)
    peer, rid = accept_durable(daemon)
    daemon.reply(peer, rid, m.Result(rid, {}, job_id=JOB))
    assert call.result(WAIT) == {}
    assert daemon.recv()[1].body == m.JobAck(job_ids=[JOB])
    daemon.restart()  # the daemon may have died before it journaled that JobAck
    _, msg = daemon.recv_body(m.JobAck)
    assert msg.body.job_ids == [JOB]


def test_without_a_daemon_a_durable_call_fails_after_resume_timeout_naming_its_job(daemon):
    with muster.Client(daemon.address, connect_timeout=2.0, resume_timeout=0.5) as c:
        call = c.submit("echo", {}, durable=True)
        accept_durable(daemon)
        assert call.accepted.wait(WAIT)
        plain = c.submit("echo", {})
        daemon.recv()
        daemon.stop()
        with pytest.raises(muster.Unavailable, match="lost the connection"):
            plain.result(WAIT)  # not durable: fails at once
        with pytest.raises(muster.Unavailable, match=f"durable job {JOB}.*job_get\\({JOB}\\)"):
            call.result(WAIT)
        daemon._bind()  # for the fixture's close


def test_a_resume_refused_as_a_whole_fails_the_calls_it_named(daemon, client):
    call = client.submit("echo", {}, durable=True)
    accept_durable(daemon)
    assert call.accepted.wait(WAIT)
    daemon.restart()
    peer, msg = daemon.recv_body(m.JobResume)  # e.g. a daemon that does not know JobResume
    daemon.reply(peer, msg.request_id, m.Failure(msg.request_id, ErrorCode.BAD_MESSAGE, "unknown message body"))
    with pytest.raises(muster.BadMessage, match=f"resuming durable job {JOB}: unknown message body"):
        call.result(WAIT)


def test_an_unanswered_resume_fails_after_resume_timeout(daemon):
    with muster.Client(daemon.address, connect_timeout=2.0, resume_timeout=0.5) as c:
        call = c.submit("echo", {}, durable=True)
        accept_durable(daemon)
        assert call.accepted.wait(WAIT)
        daemon.restart()
        daemon.recv_body(m.JobResume)  # and never answered
        with pytest.raises(muster.Unavailable, match=f"durable job {JOB}: no answer to its resume"):
            call.result(WAIT)


def test_a_durable_call_lost_before_its_accepted_fails_unavailable(daemon, client):
    call = client.submit("echo", {}, durable=True)
    daemon.recv()  # no Accepted: the client has no job id to resume
    daemon.restart()
    with pytest.raises(muster.Unavailable, match="lost the connection"):
        call.result(WAIT)


def test_cancel_while_disconnected_is_sent_after_the_resume(daemon, client):
    call = client.submit("sleep", {}, durable=True)
    accept_durable(daemon)
    assert call.accepted.wait(WAIT)
    daemon.stop()
    deadline = threading.Event()
    while client._connected and not deadline.wait(0.02):  # until the client saw the loss
        pass
    call.cancel()
    daemon._bind()
    peer, resume = daemon.recv_body(m.JobResume)
    new_rid = resume.body.jobs[0].request_id
    _, cancel = daemon.recv_body(m.Cancel)
    assert cancel.request_id == new_rid
    daemon.reply(peer, new_rid, m.Failure(new_rid, ErrorCode.CANCELLED, "cancelled", JOB))
    with pytest.raises(muster.Cancelled):
        call.result(WAIT)


def serve(daemon, answers: List[Any]):
    """Answers the next len(answers) requests in order, each with answers[i](rid); returns what
    was received (JobAcks, never answered, are kept in order among them)."""
    got: List[Any] = []

    def run():
        for make in answers:
            peer, msg = daemon.recv()
            got.append(msg)
            while isinstance(msg.body, m.JobAck):
                peer, msg = daemon.recv()
                got.append(msg)
            daemon.reply(peer, msg.request_id, make(msg.request_id))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got


def test_job_get_list_cancel(daemon, client):
    info = m.JobInfo(JOB, m.JobState.RUNNING, "echo", "default", 1796554041123, "w1", 1)
    cancelled = m.JobInfo(JOB + 1, m.JobState.FINISHED, "echo", "default", 1796554041123, None, 1, ErrorCode.CANCELLED, 1796554042000)
    t, got = serve(daemon, [
        lambda rid: info,
        lambda rid: m.JobInfoList([info, cancelled]),
        lambda rid: cancelled,
        lambda rid: m.Failure(rid, ErrorCode.INVALID_REQUEST, "no such job"),
    ])  # fmt: skip
    job = client.job_get(JOB)
    assert job.info == info and job.state == m.JobState.RUNNING and not job.done
    with pytest.raises(muster.InvalidRequest, match="not finished"):
        job.result()
    assert client.job_list() == [info, cancelled]
    assert client.job_cancel(JOB + 1) == cancelled
    with pytest.raises(muster.InvalidRequest, match="no such job"):
        client.job_get(99)
    t.join(WAIT)
    assert [type(x.body) for x in got] == [m.JobGet, m.JobList, m.JobCancel, m.JobGet]
    assert got[0].body.job_id == JOB and got[2].body.job_id == JOB + 1 and got[3].body.job_id == 99


def test_job_get_of_a_finished_job_returns_its_outcome_and_acknowledges_it(daemon, client):
    t, got = serve(daemon, [
        lambda rid: m.Result(rid, {"y": 2}, job_id=JOB),
        lambda rid: m.Failure(rid, ErrorCode.WORKER_LOST, "worker w1 died", JOB + 1),
    ])  # fmt: skip
    done = client.job_get(JOB)
    assert done.done and done.outputs == {"y": 2} and done.result() == {"y": 2} and done.info is None
    failed = client.job_get(JOB + 1)
    assert isinstance(failed.error, muster.WorkerLost)
    with pytest.raises(muster.WorkerLost, match="w1 died"):
        failed.result()
    t.join(WAIT)
    assert [type(x.body) for x in got] == [m.JobGet, m.JobAck, m.JobGet]
    assert got[1].body.job_ids == [JOB]
    assert daemon.recv()[1].body == m.JobAck(job_ids=[JOB + 1])


def test_nodes_declare_durable():
    reg = muster.Registry()

    @reg.node(durable=True)
    def charge(cents: int) -> int:
        return cents

    @reg.node
    def plain(ctx: muster.Context) -> dict:
        return {}

    reg.add_node({"name": "defined", "durable": True}, lambda ctx: {})
    specs = {s.name: s for s in reg.specs()}
    assert specs["charge"].durable and specs["defined"].durable and not specs["plain"].durable
    wire = m.decode_worker_message(m.encode(m.WorkerMessage("w", m.Attach("w", nodes=reg.specs()))))
    assert [n.durable for n in wire.body.nodes] == [True, False, True]


# ---- AsyncClient -----------------------------------------------------------------------------


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WAIT * 2))


def test_async_durable_call_resumed_after_a_restart(daemon):
    async def main():
        async with muster.AsyncClient(daemon.address, connect_timeout=2.0, resume_timeout=WAIT) as c:
            call = await c.submit("echo", {"x": 1}, durable=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, accept_durable, daemon)
            while call.job_id is None:
                await asyncio.sleep(0.01)
            assert call.job_id == JOB
            await loop.run_in_executor(None, daemon.restart)
            peer, msg = await loop.run_in_executor(None, daemon.recv_body, m.JobResume)
            rid = msg.body.jobs[0].request_id
            for x in (1, 2):  # the second is a duplicate
                daemon.reply(peer, rid, m.Result(rid, {"x": x}, job_id=JOB))
            assert await call == {"x": 1}
            acks = [(await loop.run_in_executor(None, daemon.recv_body, m.JobAck))[1].body.job_ids for _ in range(2)]
            assert acks == [[JOB], [JOB]]

    run(main())


def test_async_resume_refused_and_unanswered(daemon):
    async def main():
        async with muster.AsyncClient(daemon.address, connect_timeout=2.0, resume_timeout=1.0) as c:
            loop = asyncio.get_running_loop()
            refused = await c.submit("echo", {}, durable=True)
            unanswered = await c.submit("echo", {}, durable=True)
            await loop.run_in_executor(None, accept_durable, daemon, JOB)
            await loop.run_in_executor(None, accept_durable, daemon, JOB + 1)
            while refused.job_id is None or unanswered.job_id is None:
                await asyncio.sleep(0.01)
            await loop.run_in_executor(None, daemon.restart)
            peer, msg = await loop.run_in_executor(None, daemon.recv_body, m.JobResume)
            # one call answered (Accepted: taken back), then the JobResume refused as a whole
            ref = msg.body.jobs[0]
            daemon.reply(peer, ref.request_id, m.Accepted(queued=False, job_id=ref.job_id))
            await asyncio.sleep(0.1)
            daemon.reply(peer, msg.request_id, m.Failure(msg.request_id, ErrorCode.INVALID_REQUEST, "too many"))
            with pytest.raises(muster.InvalidRequest, match=f"resuming durable job {JOB + 1}: too many"):
                await unanswered
            assert not refused.done()  # answered for: it waits for its reply as usual
            daemon.reply(peer, ref.request_id, m.Result(ref.request_id, {"ok": True}, job_id=JOB))
            assert await refused == {"ok": True}

    run(main())


def test_async_job_get_list_cancel(daemon):
    info = m.JobInfo(JOB, m.JobState.QUEUED, "echo", "default", 1)

    async def main():
        t, got = serve(daemon, [
            lambda rid: info,
            lambda rid: m.JobInfoList([info]),
            lambda rid: m.JobInfo(JOB, m.JobState.FINISHED, "echo", "default", 1, None, 0, ErrorCode.CANCELLED, 2),
            lambda rid: m.Result(rid, {"z": 3}, job_id=JOB + 1),
            lambda rid: m.Failure(rid, ErrorCode.INVALID_REQUEST, "no such job"),
        ])  # fmt: skip
        async with muster.AsyncClient(daemon.address, connect_timeout=2.0, list_timeout=WAIT) as c:
            assert (await c.job_get(JOB)).info == info
            assert await c.job_list() == [info]
            assert (await c.job_cancel(JOB)).code == ErrorCode.CANCELLED
            assert (await c.job_get(JOB + 1)).result() == {"z": 3}
            with pytest.raises(muster.InvalidRequest, match="no such job"):
                await c.job_get(5)
        t.join(WAIT)
        assert [type(x.body) for x in got] == [m.JobGet, m.JobList, m.JobCancel, m.JobGet, m.JobAck, m.JobGet]

    run(main())
