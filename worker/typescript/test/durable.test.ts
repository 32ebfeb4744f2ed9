// durable.test.ts — durable calls in the Client against a fake daemon's client ROUTER, closed and
// bound again to play a daemon restart (docs/DURABILITY.md §6): the Submit asks durable and
// Accepted, a terminal reply is acknowledged with JobAck once handed over, a reconnect resumes
// the open durable calls under new request ids and repeats the lost connection's
// acknowledgements, a second reply of a delivered job is dropped, a call whose daemon never
// comes back fails naming its job id; jobGet, jobList, jobCancel; nodes declared durable.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Client, ErrorCode, JobState, MusterError, decodeValues, encodeValues, toNodeSpec } from '../src';
import { FakeDaemon, type FromClient } from './fake-daemon';

const JOB = (1n << 40n) + 7n;

function isCode(code: ErrorCode, text?: RegExp) {
  return (e: unknown) => e instanceof MusterError && e.codeNumber === code && (!text || text.test(e.message));
}

async function withDaemon(run: (daemon: FakeDaemon, client: Client) => Promise<void>, resumeTimeoutMs = 10000): Promise<void> {
  const daemon = await FakeDaemon.start({ ping: false });
  const client = new Client({ clientAddress: daemon.clientAddress, logger: 'off', resumeTimeoutMs });
  try {
    await run(daemon, client);
  } finally {
    client.close();
    await daemon.close();
  }
}

/** Reads a durable Submit and answers Accepted with `jobId`. */
async function acceptDurable(daemon: FakeDaemon, jobId = JOB): Promise<FromClient> {
  const submit = await daemon.nextFromClient('Submit');
  const body = submit.msg.body;
  assert.ok(body.type === 'Submit' && body.durable && body.wantAccepted);
  daemon.clientReply(submit, { type: 'Accepted', queued: false, jobId });
  return submit;
}

function result(to: FromClient, requestId: bigint, outputs: object, jobId = JOB) {
  return { type: 'Result' as const, requestId, outputs: encodeValues(outputs as never), outputsInFrame: false, jobId };
}

async function untilJobId(call: { jobId?: bigint }): Promise<void> {
  for (let i = 0; i < 500 && call.jobId === undefined; i++) await new Promise((r) => setTimeout(r, 10));
}

async function nextAck(daemon: FakeDaemon): Promise<bigint[]> {
  const ack = await daemon.nextFromClient('JobAck');
  return ack.msg.body.type === 'JobAck' ? ack.msg.body.jobIds : [];
}

describe('durable calls', () => {
  it('asks durable and Accepted, and acknowledges the reply once handed over', () =>
    withDaemon(async (daemon, client) => {
      const accepted: bigint[] = [];
      const call = client.submit('echo', { x: 1 }, { durable: true, onAccepted: (a) => accepted.push(a.jobId) });
      const submit = await acceptDurable(daemon);
      await untilJobId(call);
      assert.equal(call.jobId, JOB);
      daemon.clientReply(submit, result(submit, submit.msg.requestId, { x: 1 }));
      assert.deepEqual(await call.result, { x: 1 });
      assert.deepEqual(accepted, [JOB]);
      assert.deepEqual(await nextAck(daemon), [JOB]);
    }));

  it('a non-durable call is not acknowledged and fails at once when the daemon goes', () =>
    withDaemon(async (daemon, client) => {
      const call = client.submit('echo', {});
      const submit = await daemon.nextFromClient('Submit');
      assert.ok(submit.msg.body.type === 'Submit' && !submit.msg.body.durable && !submit.msg.body.wantAccepted);
      daemon.closeClientSocket();
      await assert.rejects(call.result, isCode(ErrorCode.Unavailable, /lost the connection/));
    }));

  it('resumes after a restart under a new request id and delivers the reply once', () =>
    withDaemon(async (daemon, client) => {
      const call = client.submit('echo', { x: 1 }, { durable: true });
      const other = client.submit('echo', { x: 3 }, { durable: true }); // keeps the client reading
      await acceptDurable(daemon);
      await acceptDurable(daemon, JOB + 1n);
      await untilJobId(call);
      await untilJobId(other);
      const oldId = call.requestId;
      await daemon.reopenClientSocket();
      const resume = await daemon.nextFromClient('JobResume');
      assert.ok(resume.msg.body.type === 'JobResume');
      const [ref, ref2] = resume.msg.body.jobs;
      assert.deepEqual([ref!.jobId, ref2!.jobId], [JOB, JOB + 1n]);
      assert.notEqual(ref!.requestId, BigInt(oldId));
      assert.equal(call.requestId, Number(ref!.requestId));
      daemon.clientReply(resume, result(resume, ref!.requestId, { x: 1 }), ref!.requestId);
      daemon.clientReply(resume, result(resume, ref!.requestId, { x: 2 }), ref!.requestId); // a redelivery
      assert.deepEqual(await call.result, { x: 1 });
      assert.deepEqual([await nextAck(daemon), await nextAck(daemon)], [[JOB], [JOB]]);
      daemon.clientReply(resume, result(resume, ref2!.requestId, { x: 3 }, JOB + 1n), ref2!.requestId);
      assert.deepEqual(await other.result, { x: 3 });
    }));

  it('fails a resumed call whose job the daemon does not hold', () =>
    withDaemon(async (daemon, client) => {
      const call = client.submit('echo', {}, { durable: true });
      await acceptDurable(daemon);
      await untilJobId(call);
      await daemon.reopenClientSocket();
      const resume = await daemon.nextFromClient('JobResume');
      const ref = resume.msg.body.type === 'JobResume' ? resume.msg.body.jobs[0]! : null;
      daemon.clientReply(resume, { type: 'Failure', requestId: ref!.requestId, code: ErrorCode.InvalidRequest, message: 'no such job (expired or acknowledged)' }, ref!.requestId);
      await assert.rejects(call.result, isCode(ErrorCode.InvalidRequest, /no such job/));
    }));

  it('fails the calls a JobResume named when musterd refuses it as a whole', () =>
    withDaemon(async (daemon, client) => {
      const taken = client.submit('echo', {}, { durable: true });
      const refused = client.submit('echo', {}, { durable: true });
      await acceptDurable(daemon, JOB);
      await acceptDurable(daemon, JOB + 1n);
      await untilJobId(refused);
      await daemon.reopenClientSocket();
      const resume = await daemon.nextFromClient('JobResume');
      const refs = resume.msg.body.type === 'JobResume' ? resume.msg.body.jobs : [];
      daemon.clientReply(resume, { type: 'Accepted', queued: false, jobId: JOB }, refs[0]!.requestId); // taken back
      await new Promise((r) => setTimeout(r, 100));
      daemon.clientReply(resume, { type: 'Failure', requestId: resume.msg.requestId, code: ErrorCode.BadMessage, message: 'unknown message body' });
      await assert.rejects(refused.result, isCode(ErrorCode.BadMessage, new RegExp(`resuming durable job ${JOB + 1n}: unknown message body`)));
      daemon.clientReply(resume, result(resume, refs[0]!.requestId, { ok: true }), refs[0]!.requestId);
      assert.deepEqual(await taken.result, { ok: true });
    }));

  it('fails a call whose resume is never answered after resumeTimeoutMs', () =>
    withDaemon(async (daemon, client) => {
      const call = client.submit('echo', {}, { durable: true });
      await acceptDurable(daemon);
      await untilJobId(call);
      await daemon.reopenClientSocket();
      await daemon.nextFromClient('JobResume'); // never answered
      await assert.rejects(call.result, isCode(ErrorCode.Unavailable, new RegExp(`durable job ${JOB}: no answer to its resume`)));
    }, 500));

  it('repeats the acknowledgements of the lost connection after a reconnect', () =>
    withDaemon(async (daemon, client) => {
      const first = client.submit('echo', {}, { durable: true });
      const second = client.submit('echo', {}, { durable: true }); // keeps the connection open
      const s1 = await acceptDurable(daemon, JOB);
      await acceptDurable(daemon, JOB + 1n);
      await untilJobId(second);
      daemon.clientReply(s1, result(s1, s1.msg.requestId, { n: 1 }, JOB));
      assert.deepEqual(await first.result, { n: 1 });
      assert.deepEqual(await nextAck(daemon), [JOB]);
      await daemon.reopenClientSocket(); // that JobAck may not have reached the journal
      const resume = await daemon.nextFromClient('JobResume');
      assert.ok(resume.msg.body.type === 'JobResume');
      assert.deepEqual(resume.msg.body.jobs.map((j) => j.jobId), [JOB + 1n]);
      assert.deepEqual(await nextAck(daemon), [JOB]);
      const ref = resume.msg.body.jobs[0]!;
      daemon.clientReply(resume, { type: 'Failure', requestId: ref.requestId, code: ErrorCode.WorkerLost, message: 'gone', jobId: JOB + 1n }, ref.requestId);
      await assert.rejects(second.result, isCode(ErrorCode.WorkerLost));
    }));

  it('sends a cancel asked while disconnected once resumed', () =>
    withDaemon(async (daemon, client) => {
      const call = client.submit('sleep', {}, { durable: true });
      await acceptDurable(daemon);
      await untilJobId(call);
      daemon.closeClientSocket();
      await new Promise((r) => setTimeout(r, 200)); // the client notices the loss
      await call.cancel();
      await daemon.reopenClientSocket();
      const resume = await daemon.nextFromClient('JobResume');
      const ref = resume.msg.body.type === 'JobResume' ? resume.msg.body.jobs[0]! : null;
      const cancel = await daemon.nextFromClient('Cancel');
      assert.equal(cancel.msg.requestId, ref!.requestId);
      daemon.clientReply(cancel, { type: 'Failure', requestId: ref!.requestId, code: ErrorCode.Cancelled, message: 'cancelled', jobId: JOB });
      await assert.rejects(call.result, isCode(ErrorCode.Cancelled));
    }));

  it('fails after resumeTimeoutMs naming the job when no daemon comes back', () =>
    withDaemon(async (daemon, client) => {
      const call = client.submit('echo', {}, { durable: true });
      await acceptDurable(daemon);
      await untilJobId(call);
      daemon.closeClientSocket();
      await assert.rejects(call.result, isCode(ErrorCode.Unavailable, new RegExp(`durable job ${JOB}.*jobGet\\(${JOB}n\\)`)));
    }, 300));

  it('jobGet, jobList and jobCancel', () =>
    withDaemon(async (daemon, client) => {
      const info = { jobId: JOB, state: JobState.Running, node: 'echo', workspace: 'default', submittedMs: 1796554041123n, workerId: 'w1', attempts: 1, code: ErrorCode.None, finishedMs: 0n };
      const get = client.jobGet(JOB);
      const g = await daemon.nextFromClient('JobGet');
      assert.ok(g.msg.body.type === 'JobGet' && g.msg.body.jobId === JOB);
      daemon.clientReply(g, { type: 'JobInfo', ...info });
      const job = await get;
      assert.equal(job.done, false);
      assert.equal(job.state, JobState.Running);
      assert.deepEqual(job.info, { ...info, submittedMs: 1796554041123, finishedMs: 0 });
      assert.throws(() => job.result(), isCode(ErrorCode.InvalidRequest, /not finished/));

      const list = client.jobList();
      daemon.clientReply(await daemon.nextFromClient('JobList'), { type: 'JobInfoList', jobs: [info] });
      assert.deepEqual((await list).map((j) => [j.jobId, j.state, j.submittedMs]), [[JOB, JobState.Running, 1796554041123]]);

      const cancel = client.jobCancel(JOB);
      const c = await daemon.nextFromClient('JobCancel');
      assert.ok(c.msg.body.type === 'JobCancel' && c.msg.body.jobId === JOB);
      daemon.clientReply(c, { type: 'JobInfo', ...info, state: JobState.Finished, code: ErrorCode.Cancelled, finishedMs: 1796554042000n });
      const cancelled = await cancel;
      assert.equal(cancelled.state, JobState.Finished);
      assert.equal(cancelled.code, ErrorCode.Cancelled);

      const missing = client.jobGet(99);
      const m = await daemon.nextFromClient('JobGet');
      daemon.clientReply(m, { type: 'Failure', requestId: m.msg.requestId, code: ErrorCode.InvalidRequest, message: 'no such job' });
      await assert.rejects(missing, isCode(ErrorCode.InvalidRequest, /no such job/));
    }));

  it('jobGet of a finished job returns its outcome and acknowledges it', () =>
    withDaemon(async (daemon, client) => {
      const get = client.jobGet<{ y: number }>(JOB);
      const g = await daemon.nextFromClient('JobGet');
      daemon.clientReply(g, result(g, g.msg.requestId, { y: 2 }));
      const done = await get;
      assert.equal(done.done, true);
      assert.deepEqual(done.result(), { y: 2 });
      assert.deepEqual(await nextAck(daemon), [JOB]);
      const failed = client.jobGet(JOB + 1n);
      const f = await daemon.nextFromClient('JobGet');
      daemon.clientReply(f, { type: 'Failure', requestId: f.msg.requestId, code: ErrorCode.WorkerLost, message: 'w1 died', jobId: JOB + 1n });
      const job = await failed;
      assert.ok(job.error instanceof MusterError && job.error.codeNumber === ErrorCode.WorkerLost);
      assert.throws(() => job.result(), isCode(ErrorCode.WorkerLost, /w1 died/));
      assert.deepEqual(await nextAck(daemon), [JOB + 1n]);
    }));

  it('nodes declare durable in their NodeSpec', () => {
    assert.equal(toNodeSpec({ name: 'charge', durable: true }).durable, true);
    assert.equal(toNodeSpec({ name: 'plain' }).durable, false);
    assert.deepEqual(decodeValues(encodeValues({})), {});
  });
});
