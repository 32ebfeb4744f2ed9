// call-resume.test.ts — resumable calls in the Client (PROTOCOL.md §8.3, rule C6) against a fake
// daemon whose client ROUTER is closed and bound again, so that the client's connection breaks
// and it connects again: a new peer, as musterd sees a caller whose link broke. The fake plays
// musterd's side: it answers the CallResume for each CallRef (Accepted and the call goes on, the
// kept terminal reply, or "no such call") and checks what the client says it received (items
// taken, each chunked output's offset).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';

import { ChunkedValue, Client, ErrorCode, MusterError, type ReplyBody, encodeValues } from '../src';
import { FakeDaemon, type FromClient, sleep, until } from './fake-daemon';

const MiB = 1024 * 1024;
const TOKEN = 0x9e3779b97f4a7c15n; // the vectors' call token
const NO_SUCH_CALL = 'no such call (it ended more than --resume-keep-ms ago, or another daemon instance accepted it)';

const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

/** `n` bytes where each MiB differs from the others (a misplaced chunk shows). */
function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(i / MiB) % 251;
  return b;
}

function isCode(code: ErrorCode, text?: RegExp) {
  return (e: unknown) => e instanceof MusterError && e.codeNumber === code && (!text || text.test(e.message));
}

async function withDaemon(run: (daemon: FakeDaemon, client: Client) => Promise<void>, options: { resumeTimeoutMs?: number; chunkThreshold?: number } = {}): Promise<void> {
  const daemon = await FakeDaemon.start({ ping: false });
  const client = new Client({ clientAddress: daemon.clientAddress, logger: 'off', resumeAfterMs: 60_000, resumeTimeoutMs: 10_000, ...options });
  try {
    await run(daemon, client);
  } finally {
    client.close();
    await daemon.close();
  }
}

/** Reads the next Submit and answers Accepted with `token` (musterd does for a resumable call, C1) unless it is 0n. */
async function submitted(daemon: FakeDaemon, token = TOKEN): Promise<{ submit: FromClient; rid: bigint; body: Extract<FromClient['msg']['body'], { type: 'Submit' }> }> {
  const submit = await daemon.nextFromClient('Submit');
  assert.ok(submit.msg.body.type === 'Submit');
  if (token) daemon.clientReply(submit, { type: 'Accepted', queued: false, jobId: 0n, callToken: token });
  return { submit, rid: submit.msg.requestId, body: submit.msg.body };
}

async function untilToken(call: { callToken?: bigint }): Promise<void> {
  await until(() => call.callToken !== undefined, 5000, 'the call token');
}

/** Breaks the client's connection; the CallResume it sends on the next one. */
async function reconnected(daemon: FakeDaemon) {
  await daemon.reopenClientSocket();
  const resume = await daemon.nextFromClient('CallResume');
  assert.ok(resume.msg.body.type === 'CallResume');
  return { resume, calls: resume.msg.body.calls };
}

function reply(daemon: FakeDaemon, to: FromClient, requestId: bigint, body: Record<string, unknown>): void {
  daemon.clientReply(to, { requestId, ...body } as unknown as ReplyBody, requestId);
}

function chunk(daemon: FakeDaemon, to: FromClient, requestId: bigint, data: Uint8Array, offset: number): void {
  reply(daemon, to, requestId, { type: 'Chunk', stream: 2, offset: BigInt(offset), data: data.subarray(offset, offset + MiB) });
}

async function next(daemon: FakeDaemon, type: 'Credit' | 'Chunk' | 'Cancel') {
  const m = await daemon.nextFromClient(type);
  return { requestId: m.msg.requestId, body: m.msg.body as Extract<FromClient['msg']['body'], { type: typeof type }> & Record<string, unknown> };
}

describe('resumable calls: which ask', () => {
  it('only calls that stream ask resumable unless told (a small call pays no Accepted)', () =>
    withDaemon(async (daemon, client) => {
      const cases: [() => unknown, boolean][] = [
        [() => client.submit('plain', { x: 1 }), false],
        [() => client.stream('items'), true],
        [() => client.submit('upload', { data: new Uint8Array(MiB + 1) }), true],
        [() => client.submit('download', {}, { outputSink: () => undefined }), true],
        [() => client.submit('plain', { x: 1 }, { resumable: true }), true],
        [() => client.stream('items', {}, { resumable: false }), false],
        [() => client.submit('upload', { data: new Uint8Array(MiB + 1) }, { resumable: false }), false],
        [() => client.submit('plain', { x: 1 }, { durable: true, resumable: true }), false],
      ];
      for (const [make, resumable] of cases) {
        make();
        const { body } = await submitted(daemon, 0n);
        assert.equal(body.resumable, resumable, `${body.node}`);
        if (!body.durable) assert.equal(body.wantAccepted, false); // musterd sends a resumable call's Accepted anyway
      }
    }, { chunkThreshold: MiB }));
});

describe('resumable calls after a break of the connection', () => {
  it('a chunked download goes on from the offset the caller has', () =>
    withDaemon(async (daemon, client) => {
      const data = pattern(4 * MiB + 3);
      const call = client.submit('download', {}, { resumable: true });
      const { submit, rid, body } = await submitted(daemon);
      assert.equal(body.resumable, true);
      await untilToken(call);
      assert.equal(call.callToken, TOKEN);
      chunk(daemon, submit, rid, data, 0);
      chunk(daemon, submit, rid, data, MiB);
      // the grants as it took both chunks: it has them when the link breaks
      assert.deepEqual([(await next(daemon, 'Credit')).body.bytes, (await next(daemon, 'Credit')).body.bytes], [BigInt(5 * MiB), BigInt(6 * MiB)]);
      const { resume, calls } = await reconnected(daemon);
      assert.equal(calls.length, 1);
      const ref = calls[0]!;
      const fresh = ref.requestId;
      assert.deepEqual(ref, { callToken: TOKEN, requestId: fresh, itemsReceived: 0n, outputs: [{ stream: 2, offset: BigInt(2 * MiB) }] });
      assert.ok(fresh !== rid && fresh !== resume.msg.requestId);
      reply(daemon, resume, fresh, { type: 'Accepted', queued: false, jobId: 0n, callToken: TOKEN });
      chunk(daemon, resume, fresh, data, 2 * MiB);
      const credit = await next(daemon, 'Credit'); // it grants on under its new request id
      assert.deepEqual([credit.requestId, credit.body.requestId, credit.body.stream, credit.body.bytes], [fresh, fresh, 2, BigInt(7 * MiB)]);
      chunk(daemon, resume, fresh, data, 3 * MiB);
      chunk(daemon, resume, fresh, data, 4 * MiB);
      reply(daemon, resume, fresh, { type: 'Result', outputs: encodeValues({ data: new ChunkedValue(2, data.length, sha(data)) }), outputsInFrame: false, jobId: 0n });
      const out = (await call.result) as { data: Uint8Array };
      assert.deepEqual(Buffer.from(out.data), Buffer.from(data));
      assert.equal(call.requestId, Number(fresh));
    }));

  it('a stream of items goes on and grants its credit again', () =>
    withDaemon(async (daemon, client) => {
      const s = client.stream('count', {}, { windowItems: 2, windowBytes: MiB });
      const { submit, rid, body } = await submitted(daemon);
      assert.deepEqual([body.resumable, body.streamWindowItems], [true, 2]);
      const items = s[Symbol.asyncIterator]();
      for (const i of [0, 1]) reply(daemon, submit, rid, { type: 'Item', seq: BigInt(i), values: encodeValues({ i }) });
      assert.deepEqual([(await items.next()).value, (await items.next()).value], [{ i: 0 }, { i: 1 }]);
      const grants = [(await next(daemon, 'Credit')).body.items, (await next(daemon, 'Credit')).body.items];
      assert.deepEqual(grants, [3n, 4n]); // consumed + window, each half window
      const { resume, calls } = await reconnected(daemon);
      const ref = calls[0]!;
      assert.deepEqual([ref.callToken, ref.itemsReceived, ref.outputs], [TOKEN, 2n, []]);
      reply(daemon, resume, ref.requestId, { type: 'Accepted', queued: false, jobId: 0n, callToken: TOKEN });
      // The grant it sent last may have been lost with the link: sent again, under the new id.
      const again = await next(daemon, 'Credit');
      assert.deepEqual([again.requestId, again.body.requestId, again.body.stream, again.body.items], [ref.requestId, ref.requestId, 0, 4n]);
      reply(daemon, resume, ref.requestId, { type: 'Item', seq: 2n, values: encodeValues({ i: 2 }) });
      reply(daemon, resume, ref.requestId, { type: 'Result', outputs: encodeValues({ n: 3 }), outputsInFrame: false, jobId: 0n });
      assert.deepEqual((await items.next()).value, { i: 2 });
      assert.equal((await items.next()).done, true);
      assert.deepEqual(await s.result, { n: 3 });
      assert.equal(s.itemsReceived, 3);
    }));

  it('a chunked upload goes back to the daemon\'s resume Credit, under the new id', () =>
    withDaemon(async (daemon, client) => {
      const data = pattern(3 * MiB);
      const call = client.submit('upload', { data });
      const { submit, rid, body } = await submitted(daemon);
      assert.equal(body.resumable, true);
      await untilToken(call);
      reply(daemon, submit, rid, { type: 'Credit', stream: 1, items: 0n, bytes: BigInt(2 * MiB), resumeOffset: 0n, resume: false });
      const sent = [await next(daemon, 'Chunk'), await next(daemon, 'Chunk')];
      assert.deepEqual(sent.map((c) => [c.requestId, c.body.offset]), [[rid, 0n], [rid, BigInt(MiB)]]);
      const { resume, calls } = await reconnected(daemon);
      const ref = calls[0]!;
      assert.deepEqual(ref.outputs, []); // inputs: musterd knows what it forwarded
      reply(daemon, resume, ref.requestId, { type: 'Accepted', queued: false, jobId: 0n, callToken: TOKEN });
      // musterd forwarded 1 MiB of stream 1: the rest was lost in the break (C4)
      reply(daemon, resume, ref.requestId, { type: 'Credit', stream: 1, items: 0n, bytes: BigInt(4 * MiB), resumeOffset: BigInt(MiB), resume: true });
      const again = [await next(daemon, 'Chunk'), await next(daemon, 'Chunk')];
      assert.deepEqual(again.map((c) => [c.requestId, c.body.requestId, c.body.offset]), [[ref.requestId, ref.requestId, BigInt(MiB)], [ref.requestId, ref.requestId, BigInt(2 * MiB)]]);
      assert.deepEqual(Buffer.concat(again.map((c) => c.body.data as Uint8Array)), Buffer.from(data.subarray(MiB)));
      reply(daemon, resume, ref.requestId, { type: 'Result', outputs: encodeValues({ ok: true }), outputsInFrame: false, jobId: 0n });
      assert.deepEqual(await call.result, { ok: true });
    }, { chunkThreshold: MiB }));

  it('a kept reply is the call\'s reply, delivered once', () =>
    withDaemon(async (daemon, client) => {
      const call = client.submit('x', { x: 1 }, { resumable: true });
      const { submit, rid } = await submitted(daemon);
      await untilToken(call);
      const { resume, calls } = await reconnected(daemon);
      const fresh = calls[0]!.requestId;
      const result = (n: number) => ({ type: 'Result', outputs: encodeValues({ n }), outputsInFrame: false, jobId: 0n });
      reply(daemon, resume, fresh, result(1)); // the reply the break lost, kept by musterd
      reply(daemon, resume, fresh, result(2)); // never sent twice by musterd: dropped
      reply(daemon, submit, rid, result(3)); // nor on the old id (that peer is gone)
      assert.deepEqual(await call.result, { n: 1 });
      await sleep(300);
      const after = daemon.fromClients.all.filter((r) => r.msg.body.type !== 'CallResume' && r.msg.body.type !== 'Submit');
      assert.deepEqual(after.map((r) => r.msg.body.type), [], 'nothing to acknowledge, nothing to cancel');
    }));

  it('"no such call" fails the call with musterd\'s Failure', () =>
    withDaemon(async (daemon, client) => {
      const s = client.stream('count');
      await submitted(daemon);
      await untilToken(s);
      const { resume, calls } = await reconnected(daemon);
      const fresh = calls[0]!.requestId;
      reply(daemon, resume, fresh, { type: 'Failure', code: ErrorCode.Unavailable, message: NO_SUCH_CALL, jobId: 0n });
      await assert.rejects(s.result, isCode(ErrorCode.Unavailable, /no such call/));
    }));

  it('a call without its token yet fails Unavailable as before, and none is resumed', () =>
    withDaemon(async (daemon, client) => {
      const call = client.submit('upload', { data: new Uint8Array(MiB + 1) });
      await submitted(daemon, 0n); // no Accepted came: nothing to resume it with
      const plain = client.submit('x', {});
      await submitted(daemon, 0n);
      await daemon.reopenClientSocket();
      await assert.rejects(call.result, isCode(ErrorCode.Unavailable, /lost the connection/));
      await assert.rejects(plain.result, isCode(ErrorCode.Unavailable, /lost the connection/));
      await sleep(300);
      assert.equal(daemon.fromClients.all.filter((r) => r.msg.body.type === 'CallResume').length, 0);
    }, { chunkThreshold: MiB }));

  it('a kept call fails Unavailable when no connection comes back', () =>
    withDaemon(async (daemon, client) => {
      const s = client.stream('count');
      await submitted(daemon);
      await untilToken(s);
      daemon.closeClientSocket();
      await assert.rejects(s.result, isCode(ErrorCode.Unavailable, /no connection came back within 500 ms/));
    }, { resumeTimeoutMs: 500 }));

  it('a kept call fails Unavailable at its deadline', () =>
    withDaemon(async (daemon, client) => {
      const s = client.stream('count', {}, { timeoutMs: 300 });
      await submitted(daemon);
      await untilToken(s);
      daemon.closeClientSocket();
      await assert.rejects(s.result, isCode(ErrorCode.Unavailable, /its deadline passed/));
    }));

  it('a CallResume refused as a whole fails the calls it named', () =>
    withDaemon(async (daemon, client) => {
      const call = client.submit('x', {}, { resumable: true });
      await submitted(daemon);
      await untilToken(call);
      const { resume } = await reconnected(daemon);
      reply(daemon, resume, resume.msg.requestId, { type: 'Failure', code: ErrorCode.InvalidRequest, message: 'too many calls', jobId: 0n });
      await assert.rejects(call.result, isCode(ErrorCode.InvalidRequest, /resuming request .*too many calls/));
    }));

  it('a cancel while disconnected is sent after the CallResume', () =>
    withDaemon(async (daemon, client) => {
      const call = client.submit('x', {}, { resumable: true });
      await submitted(daemon);
      await untilToken(call);
      daemon.closeClientSocket();
      await until(() => !client['connected'], 5000, 'the client to see the loss');
      await call.cancel();
      const { resume, calls } = await reconnected(daemon);
      const fresh = calls[0]!.requestId;
      const cancel = await next(daemon, 'Cancel');
      assert.equal(cancel.requestId, fresh);
      reply(daemon, resume, fresh, { type: 'Failure', code: ErrorCode.Cancelled, message: 'cancelled', jobId: 0n });
      await assert.rejects(call.result, isCode(ErrorCode.Cancelled));
    }));
});
