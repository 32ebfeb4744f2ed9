// stream.test.ts — items (docs/STREAMS.md §2, PROTOCOL.md §7.8) against the fake daemon: the
// worker's async generator, generator and ctx.emit handlers under the credit window (nothing
// beyond it, Credit reopens it, a stale one changes nothing), StreamNotRequested, Abort closing
// the iterator; the client's stream(): the Submit's window, items in order, cumulative credit,
// the terminal reply ending the loop, an error after the items, cancel on an early break.
// Every test is bounded (a failing fake daemon would otherwise leave a loop waiting for items).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';

import {
  type Context,
  Client,
  ErrorCode,
  type Handler,
  MusterError,
  type NodeDefinition,
  StreamNotRequested,
  Worker,
  decodeValues,
  encodeValues,
} from '../src';
import { FakeDaemon, sleep, until, workerTopic } from './fake-daemon';

let daemon: FakeDaemon;
const workers: Worker[] = [];
let nextRequestId = 5000n;
const MiB = 1024 * 1024;

before(async () => {
  daemon = await FakeDaemon.start();
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('test over')));
});
after(async () => {
  await daemon.close();
});

async function startWorker(workerId: string, nodes: [NodeDefinition, Handler][]): Promise<Worker> {
  const w = new Worker({
    workerId,
    capacity: 4,
    requestAddress: daemon.requestAddress,
    responseAddress: daemon.responseAddress,
    logger: 'off',
    shutdownGraceMs: 1000,
  });
  for (const [def, handler] of nodes) w.node(def, handler);
  workers.push(w);
  await w.start();
  await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === workerId);
  return w;
}

function streamRequest(workerId: string, node: string, inputs: Record<string, unknown>, windowItems: number, windowBytes: number): bigint {
  return daemon.workRequest(workerId, nextRequestId++, node, inputs, {
    caller: null,
    streamWindowItems: windowItems,
    streamWindowBytes: BigInt(windowBytes),
  });
}

function credit(workerId: string, requestId: bigint, items: number, bytes: number, stream = 0): void {
  daemon.publish(workerTopic(workerId), { type: 'Credit', requestId, stream, items: BigInt(items), bytes: BigInt(bytes) });
}

/** Nothing of `type` for `requestId` from the worker within `ms` (a bounded wait, no timing claim). */
async function noneWithin(type: 'Item' | 'Result' | 'Failure', requestId: bigint, ms = 300): Promise<void> {
  await assert.rejects(daemon.nextFromWorker(type, (b) => b.requestId === requestId, ms), /timed out/);
}

async function expectItems(requestId: bigint, from: number, to: number): Promise<void> {
  for (let seq = from; seq < to; seq++) {
    const item = await daemon.nextFromWorker('Item', (b) => b.requestId === requestId);
    assert.equal(item.body.seq, BigInt(seq));
    assert.deepEqual(decodeValues(item.body.values), { i: seq });
  }
}

describe('worker items', () => {
  it('an async generator streams within the window; Credit reopens it; its return value is the outputs', { timeout: 20000 }, async () => {
    await startWorker('sg1', [
      [
        { name: 'count', inputs: [{ name: 'n', type: 'int' }] },
        async function* (ctx: Context) {
          for (let i = 0; i < Number(ctx.inputs.n); i++) yield { i };
          return { total: Number(ctx.inputs.n) };
        },
      ],
    ]);
    const id = streamRequest('sg1', 'count', { n: 5 }, 2, MiB);
    await expectItems(id, 0, 2);
    await noneWithin('Item', id);
    credit('sg1', id, 1, MiB); // stale
    credit('sg1', id, 2, MiB); // repeated
    credit('sg1', id, 4, MiB, 1); // another stream
    await noneWithin('Item', id);
    credit('sg1', id, 4, 2 * MiB);
    await expectItems(id, 2, 4);
    await noneWithin('Item', id);
    credit('sg1', id, 100, 3 * MiB);
    await expectItems(id, 4, 5);
    const res = await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    assert.deepEqual(decodeValues(res.body.outputs), { total: 5 });
  });

  it('counts the bytes of the values sent before an item, not the item itself', { timeout: 20000 }, async () => {
    await startWorker('sg2', [
      [
        { name: 'emitter', inputs: [{ name: 'n', type: 'int' }] },
        async (ctx) => {
          for (let i = 0; i < Number(ctx.inputs.n); i++) if (!(await ctx.emit({ i }))) return { stopped: i };
          return { sent: Number(ctx.inputs.n) };
        },
      ],
    ]);
    const s0 = encodeValues({ i: 0 }).length;
    const s1 = encodeValues({ i: 1 }).length;
    assert.ok(s1 > s0);
    const id = streamRequest('sg2', 'emitter', { n: 4 }, 1000, 2 * s0);
    await expectItems(id, 0, 2); // 0 and s0 bytes before them: both < 2*s0
    await noneWithin('Item', id); // s0 + s1 > 2*s0
    credit('sg2', id, 1000, s0 + s1 + 1);
    await expectItems(id, 2, 3);
    await noneWithin('Item', id);
    credit('sg2', id, 1000, 100 * s1);
    await expectItems(id, 3, 4);
    const res = await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    assert.deepEqual(decodeValues(res.body.outputs), { sent: 4 });
  });

  it('Abort closes the generator and stops emitting, even with credit', { timeout: 20000 }, async () => {
    let closed = false;
    await startWorker('sg3', [
      [
        { name: 'count', inputs: [{ name: 'n', type: 'int' }] },
        function* (ctx: Context) {
          try {
            for (let i = 0; i < Number(ctx.inputs.n); i++) yield { i };
          } finally {
            closed = true;
          }
        },
      ],
    ]);
    const id = streamRequest('sg3', 'count', { n: 1000 }, 3, MiB);
    await expectItems(id, 0, 3);
    assert.equal(closed, false);
    daemon.publish(workerTopic('sg3'), { type: 'Abort', requestId: id, code: ErrorCode.Timeout, reason: 'deadline passed' });
    const fail = await daemon.nextFromWorker('Failure', (b) => b.requestId === id);
    assert.equal(fail.body.code, ErrorCode.Timeout);
    await until(() => closed, 5000, 'the generator to be closed');
    credit('sg3', id, 100, MiB);
    await noneWithin('Item', id);
  });

  it('emitting when the caller asked for no items throws StreamNotRequested in the handler', { timeout: 20000 }, async () => {
    await startWorker('sg4', [
      [
        { name: 'polite' },
        async (ctx) => {
          try {
            await ctx.emit({ x: 1 });
          } catch (e) {
            return { streaming: ctx.streaming, error: e instanceof StreamNotRequested ? e.message : 'other' };
          }
          return { streaming: ctx.streaming };
        },
      ],
      [
        { name: 'count' },
        async function* () {
          yield { i: 0 };
        },
      ],
    ]);
    const id = streamRequest('sg4', 'polite', {}, 0, 0);
    const res = await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    const out = decodeValues(res.body.outputs) as Record<string, unknown>;
    assert.equal(out.streaming, false);
    assert.match(String(out.error), /asked for no items/);
    const id2 = streamRequest('sg4', 'count', {}, 0, 0);
    const fail = await daemon.nextFromWorker('Failure', (b) => b.requestId === id2);
    assert.equal(fail.body.code, ErrorCode.WorkerError);
    assert.match(fail.body.message, /the caller of request \d+ asked for no items/);
  });

  it('a value that is not a map is an error thrown at the yield', { timeout: 20000 }, async () => {
    await startWorker('sg5', [
      [
        { name: 'bad' },
        async function* () {
          try {
            yield [1, 2] as unknown as object;
          } catch (e) {
            yield { recovered: (e as Error).message };
          }
        },
      ],
    ]);
    const id = streamRequest('sg5', 'bad', {}, 4, MiB);
    const item = await daemon.nextFromWorker('Item', (b) => b.requestId === id);
    assert.equal(item.body.seq, 0n);
    assert.match(String((decodeValues(item.body.values) as Record<string, unknown>).recovered), /an item is a map of values, not a list/);
    const res = await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    assert.deepEqual(decodeValues(res.body.outputs), {});
  });
});

describe('client stream', () => {
  it('asks for the window, yields items in order, grants cumulative credit, ends with the outputs', { timeout: 20000 }, async () => {
    const client = new Client({ clientAddress: daemon.clientAddress, logger: 'off' });
    try {
      const s = client.stream<{ n: number }, { i: number }, { total: number }>('count', { n: 10 }, { windowItems: 4, windowBytes: 1000 });
      const submit = await daemon.nextFromClient('Submit');
      assert.equal(submit.msg.body.type, 'Submit');
      if (submit.msg.body.type !== 'Submit') return;
      assert.equal(submit.msg.body.streamWindowItems, 4);
      assert.equal(submit.msg.body.streamWindowBytes, 1000n);
      const rid = submit.msg.requestId;
      const credits: [bigint, bigint][] = [];
      const serve = (async () => {
        let sent = 0;
        let granted = 4;
        while (sent < 10) {
          while (sent < granted && sent < 10) {
            daemon.clientReply(submit, { type: 'Item', requestId: rid, seq: BigInt(sent), values: encodeValues({ i: sent }) });
            sent += 1;
          }
          if (sent === 10) break;
          const c = await daemon.nextFromClient('Credit');
          assert.equal(c.msg.requestId, rid);
          if (c.msg.body.type !== 'Credit') throw new Error('not a Credit');
          assert.equal(c.msg.body.stream, 0);
          credits.push([c.msg.body.items, c.msg.body.bytes]);
          granted = Number(c.msg.body.items);
        }
        daemon.clientReply(submit, { type: 'Result', requestId: rid, outputs: encodeValues({ total: 10 }), outputsInFrame: false });
      })();
      const got: unknown[] = [];
      for await (const item of s) got.push(item);
      await serve;
      assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => ({ i })));
      assert.deepEqual(await s.result, { total: 10 });
      const taken = (n: number) => Array.from({ length: n }, (_, i) => encodeValues({ i }).length).reduce((a, b) => a + b, 0);
      assert.deepEqual(credits, [
        [6n, BigInt(taken(2) + 1000)],
        [8n, BigInt(taken(4) + 1000)],
        [10n, BigInt(taken(6) + 1000)],
      ]);
    } finally {
      client.close();
    }
  });

  it('throws the error after the items received before it', { timeout: 20000 }, async () => {
    const client = new Client({ clientAddress: daemon.clientAddress, logger: 'off' });
    try {
      const s = client.stream('count', { n: 10 });
      const submit = await daemon.nextFromClient('Submit');
      const rid = submit.msg.requestId;
      daemon.clientReply(submit, { type: 'Item', requestId: rid, seq: 0n, values: encodeValues({ i: 0 }) });
      daemon.clientReply(submit, { type: 'Failure', requestId: rid, code: ErrorCode.WorkerLost, message: 'the worker was lost after 1 items' });
      const got: unknown[] = [];
      await assert.rejects(
        (async () => {
          for await (const item of s) got.push(item);
        })(),
        (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.WorkerLost,
      );
      assert.deepEqual(got, [{ i: 0 }]);
      await assert.rejects(s.result, MusterError);
    } finally {
      client.close();
    }
  });

  it('a break cancels the call; an item out of order fails it', { timeout: 20000 }, async () => {
    const client = new Client({ clientAddress: daemon.clientAddress, logger: 'off' });
    try {
      const s = client.stream('count', { n: 10 });
      const submit = await daemon.nextFromClient('Submit');
      const rid = submit.msg.requestId;
      for (let i = 0; i < 3; i++) daemon.clientReply(submit, { type: 'Item', requestId: rid, seq: BigInt(i), values: encodeValues({ i }) });
      for await (const item of s) if ((item as { i: number }).i === 1) break;
      const cancel = await daemon.nextFromClient('Cancel');
      assert.equal(cancel.msg.requestId, rid);
      daemon.clientReply(submit, { type: 'Failure', requestId: rid, code: ErrorCode.Cancelled, message: 'cancelled' });
      await assert.rejects(s.result, (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.Cancelled);

      const s2 = client.stream('count', { n: 10 });
      const submit2 = await daemon.nextFromClient('Submit');
      const rid2 = submit2.msg.requestId;
      daemon.clientReply(submit2, { type: 'Item', requestId: rid2, seq: 0n, values: encodeValues({ i: 0 }) });
      daemon.clientReply(submit2, { type: 'Item', requestId: rid2, seq: 2n, values: encodeValues({ i: 2 }) });
      await assert.rejects(s2.result, (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.BadMessage && /item 2 arrived where item 1 was due/.test(e.message));
      const cancel2 = await daemon.nextFromClient('Cancel');
      assert.equal(cancel2.msg.requestId, rid2);
      await sleep(10);
    } finally {
      client.close();
    }
  });

  it('refuses a bad window', { timeout: 20000 }, async () => {
    const client = new Client({ clientAddress: daemon.clientAddress, logger: 'off' });
    try {
      for (const bad of [{ windowItems: 0 }, { windowItems: 2 ** 32 }, { windowBytes: 0 }, { windowItems: 1.5 }]) {
        await assert.rejects(client.stream('count', {}, bad).result, (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.InvalidRequest);
      }
    } finally {
      client.close();
    }
  });
});
