// chunk-resume.test.ts — resumption of chunked streams (PROTOCOL.md §7.9 "Resumption", R1-R4 and
// R9-R11) through the Worker and the Client against a fake daemon that loses chunks on purpose:
// a receiver answers a gap with exactly one resume Credit and a stall (the last chunk dropped)
// with one after resumeAfterMs, then takes the chunks sent again (trimming overlaps) and the
// value checks; a sender on a resume Credit sends again from its offset the same bytes, and the
// sha256 of its Chunked reference does not change; a stream that cannot seek goes back at most
// 16 MiB, else the documented failure; a worker keeps its chunked outputs until the Result is
// confirmed; after re-attaching to the same daemon instance it sends resume Credits and the call
// completes, to another instance it aborts the call.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';

import {
  ByteSource,
  ChunkedValue,
  Client,
  ErrorCode,
  MusterError,
  type NodeDefinition,
  type Handler,
  type ReplyBody,
  Worker,
  decodeValues,
  encodeValues,
} from '../src';
import { FakeDaemon, type FromClient, sleep, tempDir, until, workerTopic } from './fake-daemon';

const MiB = 1024 * 1024;
const workers: Worker[] = [];
const daemons: FakeDaemon[] = [];
let nextRequestId = 9000n;
let shared: FakeDaemon;

function pattern(n: number, seed = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 12)) & 0xff;
  return b;
}
const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

before(async () => {
  shared = await FakeDaemon.start();
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('test over')));
  await Promise.all(daemons.splice(0).map((d) => d.close()));
});
after(async () => {
  await shared.close();
});

/** A daemon of its own, for a test that changes its instance or stops its pings. */
async function ownDaemon(liveness?: number): Promise<FakeDaemon> {
  const d = await FakeDaemon.start({ pingIntervalMs: 50, liveness });
  daemons.push(d);
  return d;
}

async function startWorker(
  daemon: FakeDaemon,
  id: string,
  nodes: [NodeDefinition, Handler][],
  resumeAfterMs = 60_000,
): Promise<Worker> {
  const w = new Worker({
    workerId: id,
    capacity: 2,
    requestAddress: daemon.requestAddress,
    responseAddress: daemon.responseAddress,
    logger: 'off',
    chunkThreshold: MiB,
    resumeAfterMs,
  });
  for (const [def, handler] of nodes) w.node(def, handler);
  workers.push(w);
  await w.start();
  return w;
}

function request(daemon: FakeDaemon, workerId: string, node: string, inputs: Record<string, unknown>, chunkWindowBytes = 0n): bigint {
  const requestId = nextRequestId++;
  daemon.publish(workerTopic(workerId), {
    type: 'WorkRequest',
    requestId,
    node,
    inputs: encodeValues(inputs as never),
    parameters: new Uint8Array(0),
    timeoutMs: 20000n,
    attempt: 1,
    caller: { identity: 'local', name: 't', workspace: 'default', role: 'admin', traceId: '' },
    inputsInFrame: false,
    chunkWindowBytes,
  });
  return requestId;
}

/** Publishes the chunks of [from, to) in pieces of `step` bytes (1 MiB). */
function publishChunks(daemon: FakeDaemon, workerId: string, requestId: bigint, stream: number, value: Uint8Array, from: number, to: number, step = MiB): void {
  for (let at = from; at < to; at += step) {
    daemon.publish(workerTopic(workerId), { type: 'Chunk', requestId, stream, offset: BigInt(at), data: value.subarray(at, Math.min(to, at + step)) });
  }
}

function credit(daemon: FakeDaemon, workerId: string, requestId: bigint, stream: number, bytes: number, resumeAt?: number): void {
  daemon.publish(workerTopic(workerId), {
    type: 'Credit',
    requestId,
    stream,
    items: 0n,
    bytes: BigInt(bytes),
    resumeOffset: BigInt(resumeAt ?? 0),
    resume: resumeAt !== undefined,
  });
}

/** The worker messages of one type and request seen so far. */
function seen(daemon: FakeDaemon, type: string, requestId: bigint, extra: (b: any) => boolean = () => true) {
  return daemon.fromWorkers.all.map((r) => r.msg.body as any).filter((b) => b.type === type && b.requestId === requestId && extra(b));
}

/** A node hashing its `data` input (assembled before it runs). */
const hashNode: [NodeDefinition, Handler] = [
  { name: 'r.hash' },
  (ctx) => ({ hex: hex(sha(ctx.inputs.data as Uint8Array)), size: (ctx.inputs.data as Uint8Array).length }),
];

/** Collects `count` chunks of a request from the worker, in the order sent. */
async function chunksFrom(daemon: FakeDaemon, requestId: bigint, count: number) {
  const got = [];
  for (let i = 0; i < count; i++) got.push((await daemon.nextFromWorker('Chunk', (b) => b.requestId === requestId)).body);
  return got;
}

/** The chunks of a request from the worker that cover [from, to) exactly, in order, none past the credit. */
async function chunksUpTo(daemon: FakeDaemon, requestId: bigint, from: number, to: number) {
  const got = [];
  for (let at = from; at < to; ) {
    const c = (await daemon.nextFromWorker('Chunk', (b) => b.requestId === requestId)).body;
    assert.equal(c.offset, BigInt(at), 'the next chunk starts where the last ended');
    assert.ok(c.data!.length >= 1 && c.data!.length <= MiB);
    at += c.data!.length;
    assert.ok(at <= to, 'within the credit');
    got.push(c);
  }
  return got;
}

describe('worker as receiver (input streams, R1-R3)', () => {
  it('answers a gap with exactly one resume Credit at R, then takes the chunks sent again (trimming an overlap)', async () => {
    await startWorker(shared, 'rw1', [hashNode]);
    const value = pattern(4 * MiB + 100, 1);
    const rid = request(shared, 'rw1', 'r.hash', { data: new ChunkedValue(1, value.length, sha(value)) });
    const first = await shared.nextFromWorker('Credit', (b) => b.requestId === rid);
    assert.equal(first.body.resume, false);
    publishChunks(shared, 'rw1', rid, 1, value, 0, MiB); // taken: R = 1 MiB
    publishChunks(shared, 'rw1', rid, 1, value, 2 * MiB, 4 * MiB); // the chunk at 1 MiB was lost: three gaps
    const resume = await shared.nextFromWorker('Credit', (b) => b.requestId === rid && b.resume === true);
    assert.deepEqual([resume.body.stream, resume.body.resumeOffset], [1, BigInt(MiB)]);
    assert.ok(resume.body.bytes >= BigInt(MiB), 'the grant is at least R');
    // the chunks after the gap are dropped without a Credit each (one per loss)
    await sleep(300);
    assert.equal(seen(shared, 'Credit', rid, (b) => b.resume).length, 1, 'exactly one resume Credit for one gap');
    assert.equal(seen(shared, 'Result', rid).length, 0);
    // the sender goes back: an overlapping chunk is trimmed (R1), one wholly before R dropped
    publishChunks(shared, 'rw1', rid, 1, value, 0, MiB); // bytes it has: dropped
    publishChunks(shared, 'rw1', rid, 1, value, MiB / 2, 3 * MiB + MiB / 2); // [0.5, 1.5) trimmed to [1, 1.5)
    publishChunks(shared, 'rw1', rid, 1, value, 3 * MiB + MiB / 2, value.length);
    const r = await shared.nextFromWorker('Result', (b) => b.requestId === rid);
    assert.deepEqual(decodeValues(r.body.outputs), { hex: hex(sha(value)), size: value.length });
    assert.equal(seen(shared, 'Credit', rid, (b) => b.resume).length, 1);
  });

  it('sends a resume Credit for a stall (the last chunk dropped) after resumeAfterMs, and again after each further one', async () => {
    await startWorker(shared, 'rw2', [hashNode], 150);
    const value = pattern(3 * MiB + MiB / 2, 2);
    const rid = request(shared, 'rw2', 'r.hash', { data: new ChunkedValue(1, value.length, sha(value)) });
    await shared.nextFromWorker('Credit', (b) => b.requestId === rid);
    publishChunks(shared, 'rw2', rid, 1, value, 0, 3 * MiB); // the last chunk is lost: no gap shows it
    // (a machine slower than resumeAfterMs between two chunks may add one at an earlier offset)
    const atR = (b: { requestId: bigint; resume?: boolean; resumeOffset?: bigint }) => b.requestId === rid && b.resume === true && b.resumeOffset === BigInt(3 * MiB);
    const resume = await shared.nextFromWorker('Credit', atR);
    assert.equal(resume.body.stream, 1);
    assert.ok(resume.body.bytes >= BigInt(value.length));
    await shared.nextFromWorker('Credit', atR); // repeated while nothing comes
    publishChunks(shared, 'rw2', rid, 1, value, 3 * MiB, value.length);
    const r = await shared.nextFromWorker('Result', (b) => b.requestId === rid);
    assert.deepEqual(decodeValues(r.body.outputs), { hex: hex(sha(value)), size: value.length });
  });
});

describe('worker as sender (output streams, R9-R11)', () => {
  for (const kind of ['bytes', 'stream'] as const) {
    it(`sends again from a resume Credit's offset the same bytes, its sha256 unchanged (${kind})`, async () => {
      const value = pattern(6 * MiB + 333, kind === 'bytes' ? 3 : 4);
      const produce = () =>
        kind === 'bytes'
          ? value
          : (async function* () {
              for (let at = 0; at < value.length; at += 700 * 1024) yield value.slice(at, at + 700 * 1024);
            })();
      const id = `rw3${kind}`;
      await startWorker(shared, id, [[{ name: 'r.make' }, () => ({ data: produce() as never })]]);
      const rid = request(shared, id, 'r.make', {}, BigInt(3 * MiB));
      const first = await chunksUpTo(shared, rid, 0, 3 * MiB);
      // the receiver has 1.5 MiB: back to there, with a grant of 4 MiB
      const R = MiB + MiB / 2;
      credit(shared, id, rid, 2, 4 * MiB, R);
      const again = await chunksUpTo(shared, rid, R, 4 * MiB);
      // a resume Credit beyond what was sent is ignored
      credit(shared, id, rid, 2, 4 * MiB, 5 * MiB);
      credit(shared, id, rid, 2, 100 * MiB);
      const rest = await chunksUpTo(shared, rid, 4 * MiB, value.length);
      for (const c of [...first, ...again, ...rest]) {
        assert.deepEqual(Buffer.from(c.data!), Buffer.from(value.subarray(Number(c.offset), Number(c.offset) + c.data!.length)), 'the same bytes');
      }
      const result = await shared.nextFromWorker('Result', (b) => b.requestId === rid);
      const out = decodeValues(result.body.outputs) as Record<string, ChunkedValue>;
      assert.deepEqual([out.data!.stream, out.data!.size], [2, BigInt(value.length)]);
      assert.equal(hex(out.data!.sha256), hex(sha(value)), 'each byte hashed once');
      assert.equal(seen(shared, 'Chunk', rid).length, first.length + again.length + rest.length, 'nothing else was sent');
    });
  }

  it('fails a stream that cannot seek when a resume Credit goes back more than the 16 MiB it keeps', async () => {
    const value = pattern(20 * MiB, 5);
    await startWorker(shared, 'rw4', [
      [
        { name: 'r.stream' },
        () => ({
          data: (async function* () {
            for (let at = 0; at < value.length; at += MiB) yield value.slice(at, at + MiB);
          })() as never,
        }),
      ],
    ]);
    const rid = request(shared, 'rw4', 'r.stream', {}, BigInt(18 * MiB));
    await chunksFrom(shared, rid, 18);
    // 2 MiB back is within what it keeps
    credit(shared, 'rw4', rid, 2, 18 * MiB, 16 * MiB);
    const again = await chunksFrom(shared, rid, 2);
    assert.deepEqual(again.map((c) => c.offset), [BigInt(16 * MiB), BigInt(17 * MiB)]);
    assert.deepEqual(Buffer.from(again[0]!.data!), Buffer.from(value.subarray(16 * MiB, 17 * MiB)));
    // back to 0: the first 2 MiB are no longer kept
    credit(shared, 'rw4', rid, 2, 18 * MiB, 0);
    const f = await shared.nextFromWorker('Failure', (b) => b.requestId === rid);
    assert.equal(f.body.code, ErrorCode.WorkerError);
    assert.match(f.body.message, /^output data: chunked stream 2: cannot resume at offset 0: /);
    assert.equal(seen(shared, 'Result', rid).length, 0);
  });

  it('keeps its chunked output after the Result until it is confirmed (a Result sent again on missing is served too)', async () => {
    const d = await ownDaemon();
    const value = pattern(3 * MiB, 6);
    await startWorker(d, 'rw5', [[{ name: 'r.big' }, () => ({ data: value })]]);
    let rid = 0n;
    let pongAcks: bigint[][] = [];
    // musterd holds a Result whose stream is short and answers it with nothing (R8); the Pongs
    // listing it are answered as the test says (missing: the ids in pongAcks[0])
    d.replyHook = (m) => {
      const b = m.msg.body;
      if (b.type === 'Result' && b.requestId === rid) return null;
      if (b.type === 'Pong' && b.answered.includes(rid) && pongAcks.length > 0) {
        return { type: 'Ack', late: false, pongSeq: b.seq, missing: pongAcks.shift()! };
      }
      return undefined;
    };
    rid = request(d, 'rw5', 'r.big', {}, BigInt(8 * MiB));
    await chunksFrom(d, rid, 3);
    await d.nextFromWorker('Result', (b) => b.requestId === rid);
    credit(d, 'rw5', rid, 2, 8 * MiB, 2 * MiB);
    const again = await d.nextFromWorker('Chunk', (b) => b.requestId === rid);
    assert.equal(again.body.offset, BigInt(2 * MiB));
    assert.deepEqual(Buffer.from(again.body.data!), Buffer.from(value.subarray(2 * MiB)));
    // the daemon asks for the Result again (named missing): sent again, its streams still kept
    pongAcks = [[rid]];
    await d.nextFromWorker('Result', (b) => b.requestId === rid);
    credit(d, 'rw5', rid, 2, 8 * MiB, MiB);
    const third = await chunksFrom(d, rid, 2);
    assert.deepEqual(third.map((c) => c.offset), [BigInt(MiB), BigInt(2 * MiB)]);
    // a Pong's Ack that does not name it confirms it: nothing is sent again any more
    pongAcks = [[]];
    await until(() => pongAcks.length === 0, 5000, 'the confirming Ack');
    await sleep(100);
    const before = seen(d, 'Chunk', rid).length;
    credit(d, 'rw5', rid, 2, 8 * MiB, 0);
    await sleep(300);
    assert.equal(seen(d, 'Chunk', rid).length, before, 'no chunk after the Result was confirmed');
  });
});

describe('worker re-attaching (R4)', () => {
  it('to the same daemon instance: sends resume Credits for its input streams, and the call completes', async () => {
    const d = await ownDaemon(20); // silent for 1 s: the worker attaches again
    await startWorker(d, 'rw6', [hashNode]);
    const value = pattern(3 * MiB, 7);
    const rid = request(d, 'rw6', 'r.hash', { data: new ChunkedValue(1, value.length, sha(value)) });
    await d.nextFromWorker('Credit', (b) => b.requestId === rid);
    publishChunks(d, 'rw6', rid, 1, value, 0, MiB);
    await sleep(100);
    // the daemon goes silent: the worker reconnects and attaches again to the same instance
    const attaches = () => d.fromWorkers.all.filter((r) => r.msg.body.type === 'Attach').length;
    assert.equal(attaches(), 1);
    d.pinging = false;
    await until(() => attaches() === 2, 5000, 'the worker to attach again');
    d.pinging = true;
    const resume = await d.nextFromWorker('Credit', (b) => b.requestId === rid && b.resume === true);
    assert.deepEqual([resume.body.stream, resume.body.resumeOffset], [1, BigInt(MiB)]);
    publishChunks(d, 'rw6', rid, 1, value, MiB, value.length);
    const r = await d.nextFromWorker('Result', (b) => b.requestId === rid);
    assert.deepEqual(decodeValues(r.body.outputs), { hex: hex(sha(value)), size: value.length });
  });

  it('after its response connection broke: attaches again at once on the new one and resumes its input streams', async () => {
    const d = await ownDaemon();
    await startWorker(d, 'rw8', [hashNode]);
    const value = pattern(3 * MiB, 9);
    const rid = request(d, 'rw8', 'r.hash', { data: new ChunkedValue(1, value.length, sha(value)) });
    await d.nextFromWorker('Credit', (b) => b.requestId === rid);
    publishChunks(d, 'rw8', rid, 1, value, 0, MiB);
    await sleep(100);
    // musterd's pings go on (the request connection is fine); only the response connection breaks
    const attaches = () => d.fromWorkers.all.filter((r) => r.msg.body.type === 'Attach').length;
    await d.reopenResponseSocket();
    await until(() => attaches() === 2, 5000, 'the worker to attach again');
    const resume = await d.nextFromWorker('Credit', (b) => b.requestId === rid && b.resume === true);
    assert.deepEqual([resume.body.stream, resume.body.resumeOffset], [1, BigInt(MiB)]);
    publishChunks(d, 'rw8', rid, 1, value, MiB, value.length);
    const r = await d.nextFromWorker('Result', (b) => b.requestId === rid);
    assert.deepEqual(decodeValues(r.body.outputs), { hex: hex(sha(value)), size: value.length });
  });

  it('to another daemon instance (a restart): aborts the calls with chunked streams (running or waiting), sends no resume Credit', async () => {
    const d = await ownDaemon();
    let signalled = false;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    await startWorker(d, 'rw7', [
      [{ name: 'r.block' }, async () => (await released, { done: true })],
      [
        { name: 'r.read', inputs: [{ name: 'data', type: 'bytes', stream: true }] },
        async (ctx) => {
          ctx.signal.addEventListener('abort', () => (signalled = true));
          for await (const piece of ctx.inputStream('data')) void piece;
          return {};
        },
      ],
    ]);
    const value = pattern(3 * MiB, 8);
    const rid = request(d, 'rw7', 'r.read', { data: new ChunkedValue(1, value.length, sha(value)) });
    await d.nextFromWorker('Credit', (b) => b.requestId === rid);
    publishChunks(d, 'rw7', rid, 1, value, 0, MiB);
    // capacity 2: a call without chunks runs beside it, and a chunked one waits
    const plain = request(d, 'rw7', 'r.block', {});
    const waiting = request(d, 'rw7', 'r.read', { data: new ChunkedValue(1, value.length, sha(value)) });
    await sleep(100);
    d.instance = 'fake-instance-2';
    const f = await d.nextFromWorker('Failure', (b) => b.requestId === rid);
    assert.match(f.body.message, /the daemon restarted \(instance fake-instance-1 -> fake-instance-2\)/);
    assert.ok(signalled, 'the handler saw the abort');
    const w = await d.nextFromWorker('Failure', (b) => b.requestId === waiting);
    assert.match(w.body.message, /the daemon restarted/);
    assert.equal(seen(d, 'Credit', rid, (b) => b.resume).length, 0);
    assert.equal(seen(d, 'Credit', waiting).length, 0, 'the waiting call never granted credit');
    // the call without chunks goes on (the new instance may adopt it, PROTOCOL.md §7.6)
    release();
    const r = await d.nextFromWorker('Result', (b) => b.requestId === plain);
    assert.deepEqual(decodeValues(r.body.outputs), { done: true });
  });
});

/** Starts a call and returns its Submit as the fake daemon saw it. */
async function submitted(client: Client, inputs: Record<string, unknown>, options: Parameters<Client['call']>[2] = {}) {
  const seenBefore = shared.fromClients.all.length;
  const call = client.submit('r.x', inputs, options);
  const submit = await shared.nextFromClient('Submit');
  return { call, submit, rid: submit.msg.requestId, seenBefore };
}

/** The next resume Credit of this submit's client. */
async function resumeCreditOf(submit: FromClient, at?: number) {
  const c = await shared.fromClients.next(
    (r) => r.routingId.equals(submit.routingId) && r.msg.body.type === 'Credit' && r.msg.body.resume === true && (at === undefined || r.msg.body.resumeOffset === BigInt(at)),
    5000,
    'a resume Credit',
  );
  assert.ok(c.msg.body.type === 'Credit');
  return c.msg.body;
}

function reply(submit: FromClient, body: Record<string, unknown>): void {
  shared.clientReply(submit, { requestId: submit.msg.requestId, ...body } as unknown as ReplyBody);
}

/** The next `count` Chunks from this submit's client. */
async function clientChunks(submit: FromClient, count: number) {
  const got = [];
  for (let i = 0; i < count; i++) {
    const c = await shared.fromClients.next((r) => r.routingId.equals(submit.routingId) && r.msg.body.type === 'Chunk', 5000, 'a Chunk');
    assert.ok(c.msg.body.type === 'Chunk');
    got.push(c.msg.body);
  }
  return got;
}

describe('client as sender (input streams, R9-R10)', () => {
  for (const kind of ['bytes', 'file'] as const) {
    it(`sends an input again from a resume Credit's offset, the same bytes (${kind})`, async () => {
      const client = new Client({ clientAddress: shared.clientAddress, logger: 'off', chunkThreshold: MiB });
      const dir = tempDir();
      try {
        const value = pattern(5 * MiB + 9, 10);
        let input: Uint8Array | ByteSource = value;
        if (kind === 'file') {
          fs.writeFileSync(path.join(dir, 'v'), value);
          input = ByteSource.file(path.join(dir, 'v'));
        }
        const { call, submit } = await submitted(client, { data: input });
        reply(submit, { type: 'Credit', stream: 1, items: 0n, bytes: BigInt(3 * MiB), resumeOffset: 0n });
        await clientChunks(submit, 3);
        reply(submit, { type: 'Credit', stream: 1, items: 0n, bytes: BigInt(3 * MiB), resumeOffset: BigInt(MiB), resume: true });
        const again = await clientChunks(submit, 2);
        assert.deepEqual(again.map((c) => c.offset), [BigInt(MiB), BigInt(2 * MiB)]);
        for (const c of again) assert.deepEqual(Buffer.from(c.data!), Buffer.from(value.subarray(Number(c.offset), Number(c.offset) + MiB)));
        reply(submit, { type: 'Credit', stream: 1, items: 0n, bytes: BigInt(10 * MiB), resumeOffset: 0n });
        const rest = await clientChunks(submit, 3);
        assert.deepEqual(rest.map((c) => [c.offset, c.data!.length]), [[BigInt(3 * MiB), MiB], [BigInt(4 * MiB), MiB], [BigInt(5 * MiB), 9]]);
        reply(submit, { type: 'Result', outputs: encodeValues({ ok: true }), outputsInFrame: false });
        assert.deepEqual(await call.result, { ok: true });
      } finally {
        client.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('cancels the call, Unavailable, when a stream that cannot seek is sent back more than the 16 MiB it keeps', async () => {
    const client = new Client({ clientAddress: shared.clientAddress, logger: 'off', chunkThreshold: MiB });
    try {
      const value = pattern(20 * MiB, 11);
      const source = ByteSource.stream(
        (async function* () {
          for (let at = 0; at < value.length; at += MiB) yield value.slice(at, at + MiB);
        })(),
        { size: value.length, sha256: sha(value) },
      );
      const { call, submit } = await submitted(client, { data: source });
      reply(submit, { type: 'Credit', stream: 1, items: 0n, bytes: BigInt(18 * MiB), resumeOffset: 0n });
      await clientChunks(submit, 18);
      reply(submit, { type: 'Credit', stream: 1, items: 0n, bytes: BigInt(18 * MiB), resumeOffset: BigInt(17 * MiB), resume: true });
      const again = await clientChunks(submit, 1);
      assert.deepEqual(Buffer.from(again[0]!.data!), Buffer.from(value.subarray(17 * MiB, 18 * MiB)));
      reply(submit, { type: 'Credit', stream: 1, items: 0n, bytes: BigInt(18 * MiB), resumeOffset: 0n, resume: true });
      await assert.rejects(
        call.result,
        (e: unknown) =>
          e instanceof MusterError && e.codeNumber === ErrorCode.Unavailable && /^input data: chunked stream 1: cannot resume at offset 0: /.test(e.message),
      );
      await shared.fromClients.next((r) => r.routingId.equals(submit.routingId) && r.msg.body.type === 'Cancel', 5000, 'a Cancel');
    } finally {
      client.close();
    }
  });
});

describe('client as receiver (output streams, R1-R3)', () => {
  it('answers a gap with exactly one resume Credit at R, then takes the chunks sent again', async () => {
    const client = new Client({ clientAddress: shared.clientAddress, logger: 'off', resumeAfterMs: 60_000 });
    try {
      const out = pattern(4 * MiB + 7, 12);
      const { call, submit, seenBefore } = await submitted(client, {});
      const chunk = (from: number, to: number) => reply(submit, { type: 'Chunk', stream: 2, offset: BigInt(from), data: out.subarray(from, to) });
      chunk(0, MiB);
      chunk(2 * MiB, 3 * MiB); // the chunk at 1 MiB was lost
      chunk(3 * MiB, 4 * MiB);
      const b = await resumeCreditOf(submit);
      assert.deepEqual([b.stream, b.resume, b.resumeOffset], [2, true, BigInt(MiB)]);
      await sleep(300);
      const resumes = shared.fromClients.all.slice(seenBefore).filter((r) => r.routingId.equals(submit.routingId) && r.msg.body.type === 'Credit' && r.msg.body.resume);
      assert.equal(resumes.length, 1, 'exactly one resume Credit for one gap');
      chunk(MiB / 2, MiB + MiB / 2); // overlaps R: trimmed
      chunk(MiB + MiB / 2, out.length);
      reply(submit, { type: 'Result', outputs: encodeValues({ data: new ChunkedValue(2, out.length, sha(out)) }), outputsInFrame: false });
      const got = (await call.result) as Record<string, Uint8Array>;
      assert.equal(hex(sha(got.data!)), hex(sha(out)));
    } finally {
      client.close();
    }
  });

  it('sends a resume Credit for a stall (the last chunk dropped) after resumeAfterMs, into an outputSink', async () => {
    const client = new Client({ clientAddress: shared.clientAddress, logger: 'off', resumeAfterMs: 150 });
    try {
      const out = pattern(2 * MiB + MiB / 2, 13);
      const pieces: Uint8Array[] = [];
      const { call, submit } = await submitted(client, {}, { outputSink: (p) => void pieces.push(Uint8Array.from(p)) });
      reply(submit, { type: 'Chunk', stream: 2, offset: 0n, data: out.subarray(0, MiB) });
      reply(submit, { type: 'Chunk', stream: 2, offset: BigInt(MiB), data: out.subarray(MiB, 2 * MiB) });
      // the last chunk is lost: nothing shows it but the silence
      // (a machine slower than resumeAfterMs between two chunks may add one at 1 MiB first)
      const resume = await resumeCreditOf(submit, 2 * MiB);
      assert.equal(resume.stream, 2);
      reply(submit, { type: 'Chunk', stream: 2, offset: BigInt(2 * MiB), data: out.subarray(2 * MiB) });
      reply(submit, { type: 'Result', outputs: encodeValues({ data: new ChunkedValue(2, out.length, sha(out)) }), outputsInFrame: false });
      assert.deepEqual(await call.result, { data: { size: out.length, sha256: hex(sha(out)) } });
      assert.deepEqual(Buffer.concat(pieces), Buffer.from(out));
    } finally {
      client.close();
    }
  });
});
