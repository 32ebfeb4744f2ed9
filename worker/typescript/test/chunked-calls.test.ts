// chunked-calls.test.ts — chunked values (PROTOCOL.md §7.9) through the Worker and the Client,
// against a fake daemon that checks the messages one by one: the worker grants input credit,
// assembles or streams inputs, checks their sha256, chunks large outputs within the caller's
// credit and stops on Abort, and a handler waiting for chunks does not hold up other requests;
// the client announces large inputs by reference, sends no chunk before the worker's credit and
// none past it, assembles or sinks outputs and checks their sha256, and refuses durable calls
// with chunked values.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';

import {
  ChunkedValue,
  Client,
  DURABLE_CHUNKS_MESSAGE,
  ErrorCode,
  MusterError,
  type NodeDefinition,
  type Handler,
  Worker,
  decodeValues,
  encodeValues,
} from '../src';
import { FakeDaemon, sleep, workerTopic } from './fake-daemon';

const MiB = 1024 * 1024;
let daemon: FakeDaemon;
const workers: Worker[] = [];
let nextRequestId = 5000n;

function pattern(n: number, seed = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed + (i >> 16)) & 0xff;
  return b;
}
const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

before(async () => {
  daemon = await FakeDaemon.start();
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('test over')));
});
after(async () => {
  await daemon.close();
});

async function startWorker(id: string, nodes: [NodeDefinition, Handler][], chunkThreshold = MiB): Promise<Worker> {
  const w = new Worker({
    workerId: id,
    capacity: 2,
    requestAddress: daemon.requestAddress,
    responseAddress: daemon.responseAddress,
    logger: 'off',
    chunkThreshold,
  });
  for (const [def, handler] of nodes) w.node(def, handler);
  workers.push(w);
  await w.start();
  return w;
}

function request(workerId: string, node: string, inputs: Record<string, unknown>, chunkWindowBytes = 0n): bigint {
  const requestId = nextRequestId++;
  daemon.publish(workerTopic(workerId), {
    type: 'WorkRequest',
    requestId,
    node,
    inputs: encodeValues(inputs as never),
    parameters: new Uint8Array(0),
    timeoutMs: 10000n,
    attempt: 1,
    caller: { identity: 'local', name: 't', workspace: 'default', role: 'admin', traceId: '' },
    inputsInFrame: false,
    chunkWindowBytes,
  });
  return requestId;
}

function publishChunks(workerId: string, requestId: bigint, stream: number, value: Uint8Array, from = 0, to = value.length): void {
  for (let at = from; at < to; at += MiB) {
    daemon.publish(workerTopic(workerId), { type: 'Chunk', requestId, stream, offset: BigInt(at), data: value.subarray(at, Math.min(to, at + MiB)) });
  }
}

const echoNode: [NodeDefinition, Handler] = [{ name: 'c.echo' }, (ctx) => ctx.rawInputs];

describe('worker: chunked inputs and outputs', () => {
  it('grants input credit, assembles the input, and chunks the output only within the caller credit', async () => {
    await startWorker('cw1', [echoNode]);
    const value = pattern(3 * MiB);
    const rid = request('cw1', 'c.echo', { data: new ChunkedValue(1, value.length, sha(value)) }, BigInt(2 * MiB));
    const credit = await daemon.nextFromWorker('Credit', (b) => b.requestId === rid);
    assert.deepEqual([credit.body.stream, credit.body.bytes], [1, BigInt(4 * MiB)]);
    publishChunks('cw1', rid, 1, value);
    const first = await daemon.nextFromWorker('Chunk', (b) => b.requestId === rid);
    const second = await daemon.nextFromWorker('Chunk', (b) => b.requestId === rid);
    assert.deepEqual([first.body.stream, first.body.offset, second.body.offset], [2, 0n, BigInt(MiB)]);
    await sleep(200);
    assert.equal(daemon.fromWorkers.all.filter((r) => r.msg.body.type === 'Chunk' && r.msg.body.requestId === rid).length, 2, 'a chunk past the credit of 2 MiB');
    // waiting for the caller's credit holds up no other request
    const other = request('cw1', 'c.echo', { x: 1 });
    assert.deepEqual(decodeValues((await daemon.nextFromWorker('Result', (b) => b.requestId === other)).body.outputs), { x: 1 });
    daemon.publish(workerTopic('cw1'), { type: 'Credit', requestId: rid, stream: 2, items: 0n, bytes: BigInt(6 * MiB), resumeOffset: 0n });
    const third = await daemon.nextFromWorker('Chunk', (b) => b.requestId === rid);
    assert.equal(third.body.offset, BigInt(2 * MiB));
    const result = await daemon.nextFromWorker('Result', (b) => b.requestId === rid);
    const out = decodeValues(result.body.outputs) as Record<string, unknown>;
    assert.ok(out.data instanceof ChunkedValue);
    assert.deepEqual([out.data.stream, out.data.size], [2, BigInt(value.length)]);
    assert.deepEqual(out.data.sha256, sha(value));
    const sent = Buffer.concat([first, second, third].map((c) => Buffer.from(c.body.data!)));
    assert.deepEqual(sent, Buffer.from(value));
  });

  it('fails a chunked input whose sha256 is wrong with InvalidRequest, before the handler runs', async () => {
    let ran = false;
    await startWorker('cw2', [[{ name: 'c.take' }, () => void (ran = true)]]);
    const value = pattern(2 * MiB);
    const rid = request('cw2', 'c.take', { data: new ChunkedValue(1, value.length, new Uint8Array(32)) });
    await daemon.nextFromWorker('Credit', (b) => b.requestId === rid);
    publishChunks('cw2', rid, 1, value);
    const f = await daemon.nextFromWorker('Failure', (b) => b.requestId === rid);
    assert.equal(f.body.code, ErrorCode.InvalidRequest);
    assert.equal(f.body.message, 'input data: chunked stream 1: sha256 mismatch');
    assert.equal(ran, false);
  });

  it('starts a stream port at once; a handler waiting for its chunks does not hold up another request', async () => {
    await startWorker('cw3', [
      [
        { name: 'c.hash', inputs: [{ name: 'data', type: 'bytes', stream: true }] },
        async (ctx) => {
          const h = createHash('sha256');
          for await (const piece of ctx.inputStream('data')) h.update(piece as Buffer);
          return { hex: h.digest('hex'), size: Number((ctx.inputs.data as ChunkedValue).size) };
        },
      ],
      [{ name: 'c.hello' }, () => ({ hi: 1 })],
    ]);
    const value = pattern(5 * MiB + 17);
    const rid = request('cw3', 'c.hash', { data: new ChunkedValue(1, value.length, sha(value)) });
    await daemon.nextFromWorker('Credit', (b) => b.requestId === rid);
    const other = request('cw3', 'c.hello', {});
    const hello = await daemon.nextFromWorker('Result', (b) => b.requestId === other);
    assert.deepEqual(decodeValues(hello.body.outputs), { hi: 1 });
    publishChunks('cw3', rid, 1, value, 0, 4 * MiB); // the first window
    await daemon.nextFromWorker('Credit', (b) => b.requestId === rid && b.bytes > BigInt(4 * MiB));
    publishChunks('cw3', rid, 1, value, 4 * MiB);
    const r = await daemon.nextFromWorker('Result', (b) => b.requestId === rid);
    assert.deepEqual(decodeValues(r.body.outputs), { hex: Buffer.from(sha(value)).toString('hex'), size: value.length });
  });

  it('stops sending output chunks on Abort', async () => {
    await startWorker('cw4', [[{ name: 'c.big' }, () => ({ data: pattern(8 * MiB) })]]);
    const rid = request('cw4', 'c.big', {}, BigInt(MiB));
    await daemon.nextFromWorker('Chunk', (b) => b.requestId === rid);
    daemon.publish(workerTopic('cw4'), { type: 'Abort', requestId: rid, code: ErrorCode.Cancelled, reason: 'cancelled' });
    const f = await daemon.nextFromWorker('Failure', (b) => b.requestId === rid);
    assert.equal(f.body.code, ErrorCode.WorkerError); // Cancelled is not a worker's code: sent as WorkerError, and late anyway
    daemon.publish(workerTopic('cw4'), { type: 'Credit', requestId: rid, stream: 2, items: 0n, bytes: BigInt(100 * MiB), resumeOffset: 0n });
    await sleep(200);
    assert.equal(daemon.fromWorkers.all.filter((r) => r.msg.body.type === 'Chunk' && r.msg.body.requestId === rid).length, 1);
  });
});

describe('client: chunked inputs and outputs', () => {
  it('announces a large input by reference, sends it within the worker credit, and assembles a chunked output', async () => {
    const client = new Client({ clientAddress: daemon.clientAddress, logger: 'off', chunkThreshold: MiB });
    try {
      const value = pattern(2.5 * MiB, 3);
      const small = pattern(100);
      const call = client.call('c.echo', { small, data: value });
      const submit = await daemon.nextFromClient('Submit');
      const body = submit.msg.body;
      assert.ok(body.type === 'Submit');
      assert.equal(body.chunkWindowBytes, BigInt(4 * MiB));
      const inputs = decodeValues(body.inputs) as Record<string, unknown>;
      assert.deepEqual(inputs.small, small);
      assert.ok(inputs.data instanceof ChunkedValue);
      assert.deepEqual([inputs.data.stream, inputs.data.size, Buffer.from(inputs.data.sha256)], [1, BigInt(value.length), Buffer.from(sha(value))]);
      await sleep(200);
      assert.equal(daemon.fromClients.all.filter((r) => r.msg.body.type === 'Chunk').length, 0, 'a chunk before the worker granted credit');
      const rid = submit.msg.requestId;
      daemon.clientReply(submit, { type: 'Credit', requestId: rid, stream: 1, items: 0n, bytes: BigInt(2 * MiB), resumeOffset: 0n });
      const c1 = await daemon.nextFromClient('Chunk');
      const c2 = await daemon.nextFromClient('Chunk');
      await sleep(200);
      assert.equal(daemon.fromClients.all.filter((r) => r.msg.body.type === 'Chunk').length, 2, 'a chunk past the credit');
      daemon.clientReply(submit, { type: 'Credit', requestId: rid, stream: 1, items: 0n, bytes: BigInt(6 * MiB), resumeOffset: 0n });
      const c3 = await daemon.nextFromClient('Chunk');
      const chunks = [c1, c2, c3].map((c) => c.msg.body).map((b) => (b.type === 'Chunk' ? b : assert.fail()));
      assert.deepEqual(chunks.map((b) => [b.requestId, b.stream, b.offset, b.data!.length]), [
        [rid, 1, 0n, MiB],
        [rid, 1, BigInt(MiB), MiB],
        [rid, 1, BigInt(2 * MiB), MiB / 2],
      ]);
      // the output: 6 MiB in chunks of stream 2; the client grants more as it takes them
      const out = pattern(6 * MiB, 9);
      for (let at = 0; at < 4 * MiB; at += MiB) daemon.clientReply(submit, { type: 'Chunk', requestId: rid, stream: 2, offset: BigInt(at), data: out.subarray(at, at + MiB) });
      const credit = await daemon.nextFromClient('Credit');
      assert.ok(credit.msg.body.type === 'Credit' && credit.msg.body.stream === 2 && credit.msg.body.bytes > BigInt(4 * MiB));
      for (let at = 4 * MiB; at < out.length; at += MiB) daemon.clientReply(submit, { type: 'Chunk', requestId: rid, stream: 2, offset: BigInt(at), data: out.subarray(at, at + MiB) });
      daemon.clientReply(submit, { type: 'Result', requestId: rid, outputs: encodeValues({ data: new ChunkedValue(2, out.length, sha(out)), n: 1 }), outputsInFrame: false });
      const got = (await call) as Record<string, unknown>;
      assert.equal(got.n, 1);
      assert.deepEqual(Buffer.from(got.data as Uint8Array), Buffer.from(out));
    } finally {
      client.close();
    }
  });

  it('fails an output whose sha256 is wrong with WorkerError naming it; streams another to a sink', async () => {
    const client = new Client({ clientAddress: daemon.clientAddress, logger: 'off' });
    try {
      const out = pattern(2 * MiB);
      const bad = client.call('c.x', {});
      const s1 = await daemon.nextFromClient('Submit');
      daemon.clientReply(s1, { type: 'Chunk', requestId: s1.msg.requestId, stream: 2, offset: 0n, data: out });
      daemon.clientReply(s1, { type: 'Result', requestId: s1.msg.requestId, outputs: encodeValues({ blob: new ChunkedValue(2, out.length, new Uint8Array(32)) }), outputsInFrame: false });
      await assert.rejects(bad, (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.WorkerError && e.message === 'output blob: chunked stream 2: sha256 mismatch');

      const pieces: number[] = [];
      const sunk = client.call('c.x', {}, { outputSink: async (p) => void pieces.push(p.length) });
      const s2 = await daemon.nextFromClient('Submit');
      daemon.clientReply(s2, { type: 'Chunk', requestId: s2.msg.requestId, stream: 2, offset: 0n, data: out.subarray(0, MiB) });
      daemon.clientReply(s2, { type: 'Chunk', requestId: s2.msg.requestId, stream: 2, offset: BigInt(MiB), data: out.subarray(MiB) });
      daemon.clientReply(s2, { type: 'Result', requestId: s2.msg.requestId, outputs: encodeValues({ blob: new ChunkedValue(2, out.length, sha(out)) }), outputsInFrame: false });
      assert.deepEqual(await sunk, { blob: { size: out.length, sha256: Buffer.from(sha(out)).toString('hex') } });
      assert.deepEqual(pieces, [MiB, MiB]);
    } finally {
      client.close();
    }
  });

  it('stops sending an input on cancel, and removes the spool file of a streamed input', async () => {
    const client = new Client({ clientAddress: daemon.clientAddress, logger: 'off', chunkThreshold: MiB });
    const { Readable } = await import('node:stream');
    const fs = await import('node:fs');
    const os = await import('node:os');
    // a private temp dir, so that no other program's spool files are counted
    const saved = process.env.TMPDIR;
    const tmp = fs.mkdtempSync(`${os.tmpdir()}/muster-test-`);
    process.env.TMPDIR = tmp;
    try {
      const spools = () => fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('muster-spool-')).length;
      const spoolsBefore = spools();
      const seen = daemon.fromClients.all.length; // request ids repeat across clients: count from here
      const call = client.submit('c.x', { data: Readable.from([pattern(3 * MiB)]) });
      const submit = await daemon.nextFromClient('Submit');
      const rid = submit.msg.requestId;
      assert.equal(spools(), spoolsBefore + 1, 'a stream of unknown size is spooled to learn its size and sha256');
      daemon.clientReply(submit, { type: 'Credit', requestId: rid, stream: 1, items: 0n, bytes: BigInt(MiB), resumeOffset: 0n });
      await daemon.nextFromClient('Chunk');
      await call.cancel();
      await daemon.nextFromClient('Cancel');
      daemon.clientReply(submit, { type: 'Failure', requestId: rid, code: ErrorCode.Cancelled, message: 'cancelled by the client', jobId: 0n } as never);
      await assert.rejects(call.result, (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.Cancelled);
      daemon.clientReply(submit, { type: 'Credit', requestId: rid, stream: 1, items: 0n, bytes: BigInt(10 * MiB), resumeOffset: 0n });
      await sleep(200);
      assert.equal(daemon.fromClients.all.slice(seen).filter((r) => r.msg.body.type === 'Chunk').length, 1, 'a chunk after the call ended');
      assert.equal(spools(), spoolsBefore, 'the spool file was removed');
    } finally {
      client.close();
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('refuses a durable call with a value that would travel chunked, sending nothing; a durable Submit takes no chunked outputs', async () => {
    const client = new Client({ clientAddress: daemon.clientAddress, logger: 'off', chunkThreshold: 1000 });
    try {
      const before = daemon.fromClients.all.length;
      await assert.rejects(
        client.call('c.x', { data: pattern(1001) }, { durable: true }),
        (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.InvalidRequest && e.message === DURABLE_CHUNKS_MESSAGE,
      );
      await sleep(100);
      // (a Credit of the previous call's sink may still come: it was sent while that call was open)
      assert.deepEqual(daemon.fromClients.all.slice(before).map((r) => r.msg.body.type).filter((t) => t !== 'Credit'), []);
      // a durable call's outputs stay inline: its Submit grants no output window
      const small = client.call('c.x', { data: pattern(10) }, { durable: true });
      const submit = await daemon.nextFromClient('Submit');
      assert.ok(submit.msg.body.type === 'Submit' && submit.msg.body.durable && submit.msg.body.chunkWindowBytes === 0n);
      daemon.clientReply(submit, { type: 'Failure', requestId: submit.msg.requestId, code: ErrorCode.NoWorker, message: 'none', jobId: 0n } as never);
      await assert.rejects(small, MusterError);
    } finally {
      client.close();
    }
  });
});
