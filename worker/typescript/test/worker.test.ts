// worker.test.ts — the Worker against a fake daemon (PUB + ROUTER) that checks PROTOCOL.md §7
// message by message: attach and confirmation, ping/pong with in-flight ids, dispatch, progress,
// failures, abort, re-sent ids, capacity, re-attach and graceful detach.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';

import * as zmq from 'zeromq';

import {
  ErrorCode,
  type Handler,
  MusterError,
  type NodeDefinition,
  Worker,
  type WorkerOptions,
  decodeValues,
  encodeValues,
  float,
  valuesEqual,
} from '../src';
import { FakeDaemon, sleep, tempDir, testWorkerOptions, until, workerTopic } from './fake-daemon';

let daemon: FakeDaemon;
const workers: Worker[] = [];
let nextRequestId = 100n;

function makeWorker(options: Partial<WorkerOptions> = {}, nodes: [NodeDefinition, Handler][] = []): Worker {
  const w = new Worker({ ...testWorkerOptions(daemon), workerId: options.workerId ?? `tw${workers.length}`, capacity: 2, ...options });
  for (const [def, handler] of nodes) w.node(def, handler);
  workers.push(w);
  return w;
}

function workRequest(
  workerId: string,
  node: string,
  inputs: Record<string, unknown> = {},
  extra: { requestId?: bigint; parameters?: Record<string, unknown>; attempt?: number; rawInputs?: Uint8Array; inputsInFrame?: boolean } = {},
): bigint {
  const requestId = extra.requestId ?? nextRequestId++;
  daemon.publish(workerTopic(workerId), {
    type: 'WorkRequest',
    requestId,
    node,
    inputs: extra.rawInputs ?? encodeValues(inputs as never),
    parameters: extra.parameters ? encodeValues(extra.parameters as never) : new Uint8Array(0),
    timeoutMs: 5000n,
    attempt: extra.attempt ?? 1,
    caller: { identity: 'local', name: 'tester', workspace: 'default', role: 'admin', traceId: 'trace-1' },
    inputsInFrame: extra.inputsInFrame ?? false,
  });
  return requestId;
}

/** Resolves when released; records how many run at once. */
class Gate {
  private waiters: (() => void)[] = [];
  running = 0;
  maxRunning = 0;
  started = 0;
  async enter(signal?: AbortSignal): Promise<void> {
    this.started += 1;
    this.running += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      await new Promise<void>((resolve, reject) => {
        this.waiters.push(resolve);
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    } finally {
      this.running -= 1;
    }
  }
  releaseAll(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
}

before(async () => {
  daemon = await FakeDaemon.start({ liveness: 20 }); // 2 s: 'no ping for the liveness window' waits it out
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('test over')));
  daemon.replyHook = null;
  daemon.pinging = true;
  daemon.instance = 'fake-instance-1';
  daemon.maxMessageBytes = 16n << 20n;
});

after(async () => {
  await daemon.close();
});

describe('worker construction', () => {
  it('refuses invalid ids, capacity, node names and tcp without CURVE', async () => {
    assert.throws(() => new Worker({ workerId: 'bad:id', logger: 'off' }), MusterError);
    assert.throws(() => new Worker({ workerId: 'ok', capacity: 0, logger: 'off' }), MusterError);
    // tcp:// without keys or insecure: keys from enrollment at start(); without a token, refused.
    const dir = tempDir();
    const saved = { token: process.env.MUSTER_ENROLLMENT_TOKEN, xdg: process.env.XDG_CONFIG_HOME };
    delete process.env.MUSTER_ENROLLMENT_TOKEN;
    process.env.XDG_CONFIG_HOME = `${dir}/config`;
    try {
      const t = new Worker({
        workerId: 'ok',
        requestAddress: 'tcp://127.0.0.1:7899',
        responseAddress: 'tcp://127.0.0.1:7898',
        dataDir: `${dir}/data`,
        logger: 'off',
      });
      t.node({ name: 'n' }, () => ({}));
      await assert.rejects(t.start(), (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.PermissionDenied && /insecure/.test(e.message));
      await t.stop();
    } finally {
      if (saved.token !== undefined) process.env.MUSTER_ENROLLMENT_TOKEN = saved.token;
      if (saved.xdg !== undefined) process.env.XDG_CONFIG_HOME = saved.xdg;
      else delete process.env.XDG_CONFIG_HOME;
    }
    assert.throws(() => new Worker({ workerId: 'ok', requestAddress: 'tcp://127.0.0.1:7899', name: '-x', logger: 'off' }), RangeError);
    new Worker({ workerId: 'ok', requestAddress: 'tcp://127.0.0.1:7899', responseAddress: 'tcp://127.0.0.1:7898', insecure: true, logger: 'off' });
    const w = new Worker({ workerId: 'ok', logger: 'off' });
    assert.throws(() => w.node({ name: 'has space' }, () => ({})), MusterError);
    assert.throws(() => w.node({ name: 'n', inputs: [{ name: 'x', type: 'integer' as never }] }, () => ({})), MusterError);
    w.node({ name: 'n' }, () => ({}));
    assert.throws(() => w.node({ name: 'n' }, () => ({})), MusterError);
  });

  it('uses the runtime directory defaults', () => {
    const saved = { ...process.env };
    try {
      process.env.MUSTER_RUNTIME_DIR = '/run/x';
      assert.equal(new Worker({ workerId: 'a', logger: 'off' }).requestAddress, 'ipc:///run/x/request.sock');
      delete process.env.MUSTER_RUNTIME_DIR;
      process.env.XDG_RUNTIME_DIR = '/run/user/7';
      assert.equal(new Worker({ workerId: 'a', logger: 'off' }).responseAddress, 'ipc:///run/user/7/muster/response.sock');
      delete process.env.XDG_RUNTIME_DIR;
      assert.equal(new Worker({ workerId: 'a', logger: 'off' }).requestAddress, `ipc:///tmp/muster-${process.getuid!()}/request.sock`);
    } finally {
      process.env = saved;
    }
  });
});

describe('attach and heartbeat', () => {
  it('attaches with its full node list, confirms through the PUB path, and answers pings', async () => {
    const w = makeWorker({ workerId: 'attach1', capacity: 3 }, [
      [{ name: 'a.one', description: 'd', category: 'c', version: '1', idempotent: true, timeoutMs: 1234,
         inputs: [{ name: 'x', type: 'int', required: true }], parameters: [{ name: 'p', type: 'string', default: 'dflt' }] }, () => ({})],
      [{ name: 'a.two' }, () => ({})],
    ]);
    await w.start();
    const attach = await daemon.nextFromWorker('Attach', (b) => b.workerId === 'attach1');
    assert.equal(attach.msg.workerId, 'attach1');
    assert.equal(attach.body.capacity, 3);
    assert.equal(attach.body.session, w.session);
    assert.equal(attach.body.pid, process.pid);
    assert.match(attach.body.sdk, /^muster-typescript\//);
    assert.deepEqual(attach.body.nodes.map((n) => n.name), ['a.one', 'a.two']);
    assert.equal(attach.body.payloadFrames, false); // inputs stay inside the WorkRequest
    const one = attach.body.nodes[0]!;
    assert.equal(one.idempotent, true);
    assert.equal(one.defaultTimeoutMs, 1234n);
    assert.strictEqual(w.specs[0]!.defaultTimeoutMs, 1234); // a number for the user
    assert.deepEqual(one.inputs, [{ name: 'x', type: 'int', description: '', required: true }]);
    assert.deepEqual(one.parameters, [{ name: 'p', type: 'string', description: '', required: false, defaultValue: 'dflt' }]);
    // The confirming ping on the worker's own topic gets a Pong.
    const pong = await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === 'attach1');
    assert.equal(pong.body.instance, daemon.instance);
    assert.deepEqual(pong.body.inFlight, []);
    // And a broadcast ping gets one too, with its seq.
    const seq = daemon.ping('b:');
    await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'attach1' && b.seq === seq);
    assert.ok(w.isAttached);
  });

  it('takes work only on the topic Attached assigned, not on w:<id>:', async () => {
    const w = makeWorker({ workerId: 'topic1' }, [[{ name: 't.node' }, (ctx) => ({ x: ctx.inputs.x })]]);
    await w.start();
    await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === 'topic1');
    // The pre-XPUB topic: musterd never applies it, and the worker does not subscribe to it.
    daemon.publish('w:topic1:', {
      type: 'WorkRequest', requestId: 900n, node: 't.node', inputs: encodeValues({ x: 1 }),
      parameters: new Uint8Array(0), timeoutMs: 5000n, attempt: 1, caller: null, inputsInFrame: false,
    });
    const id = workRequest('topic1', 't.node', { x: 2 });
    const res = await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    assert.deepEqual(decodeValues(res.body.outputs), { x: 2 });
    // Published before it on the same pipe: it would have been handled first.
    await sleep(200);
    assert.equal(daemon.fromWorkers.all.some((r) => r.msg.body.type === 'Result' && r.msg.body.requestId === 900n), false);
  });

  it('re-attaches on Rejected{reattach} with the same session and all nodes', async () => {
    const w = makeWorker({ workerId: 'reatt1' }, [[{ name: 'r.node' }, () => ({})]]);
    await w.start();
    const first = await daemon.nextFromWorker('Attach', (b) => b.workerId === 'reatt1');
    await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === 'reatt1');
    let rejected = false;
    daemon.replyHook = (r) => {
      if (!rejected && r.msg.workerId === 'reatt1' && r.msg.body.type === 'Pong') {
        rejected = true;
        return { type: 'Rejected', code: ErrorCode.BadMessage, message: 'who are you', reattach: true };
      }
      return undefined;
    };
    const second = await daemon.nextFromWorker('Attach', (b) => b.workerId === 'reatt1');
    assert.equal(second.body.session, first.body.session);
    assert.deepEqual(second.body.nodes.map((n) => n.name), ['r.node']);
  });

  it('re-attaches at once when a ping carries a different daemon instance', async () => {
    const w = makeWorker({ workerId: 'inst1' }, [[{ name: 'i.node' }, () => ({})]]);
    await w.start();
    await daemon.nextFromWorker('Attach', (b) => b.workerId === 'inst1');
    daemon.instance = 'fake-instance-2';
    daemon.ping('b:');
    const again = await daemon.nextFromWorker('Attach', (b) => b.workerId === 'inst1');
    assert.equal(again.body.session, w.session);
    // It then answers pings of the new instance.
    await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'inst1' && b.instance === 'fake-instance-2');
  });

  it('reconnects both sockets and attaches again when pings stop', async () => {
    const w = makeWorker({ workerId: 'live1' }, [[{ name: 'l.node' }, () => ({})]]);
    await w.start();
    const first = await daemon.nextFromWorker('Attach', (b) => b.workerId === 'live1');
    await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === 'live1');
    daemon.pinging = false;
    daemon.replyHook = (r) => (r.msg.body.type === 'Attach' ? null : undefined); // stay silent
    const second = await daemon.nextFromWorker('Attach', (b) => b.workerId === 'live1', 10000);
    // A new DEALER socket: a new routing id.
    assert.notDeepEqual(second.routingId, first.routingId);
    assert.equal(second.body.session, first.body.session);
  });

  it('fails start() when the daemon refuses the Attach', async () => {
    daemon.replyHook = (r) =>
      r.msg.body.type === 'Attach' && r.msg.workerId === 'refused1'
        ? { type: 'Rejected', code: ErrorCode.PermissionDenied, message: 'not yours', reattach: false }
        : undefined;
    const w = makeWorker({ workerId: 'refused1' }, [[{ name: 'x' }, () => ({})]]);
    await assert.rejects(w.start(), (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.PermissionDenied);
  });

  it('survives garbage on its topics and keeps answering pings', async () => {
    const w = makeWorker({ workerId: 'garbage1' }, [[{ name: 'g.node' }, () => ({ ok: true })]]);
    await w.start();
    await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === 'garbage1');
    daemon.publishRaw(workerTopic('garbage1'), new Uint8Array([1, 2, 3]));
    daemon.publishRaw(workerTopic('garbage1'), new Uint8Array(64).fill(0xff));
    const good = encodeValues({ a: 1 });
    daemon.publishRaw('b:', good); // a valid buffer of the wrong type
    const seq = daemon.ping('b:');
    await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'garbage1' && b.seq === seq);
    const id = workRequest('garbage1', 'g.node');
    const res = await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    assert.deepEqual(decodeValues(res.body.outputs), { ok: true });
  });
});

describe('dispatch', () => {
  it('runs a request with inputs, parameter defaults, caller and progress, and answers once', async () => {
    let seen: unknown;
    const w = makeWorker({ workerId: 'disp1' }, [
      [
        { name: 'd.add', inputs: [{ name: 'a', type: 'int', required: true }, { name: 'b', type: 'float', default: float(0.5) }],
          parameters: [{ name: 'scale', type: 'int', default: 10 }] },
        async (ctx) => {
          seen = { caller: ctx.caller, attempt: ctx.attempt, requestId: ctx.requestId, node: ctx.node, params: ctx.parameters };
          ctx.progress(1, 2, 'half');
          ctx.progress(2, 2, 'done');
          return { sum: (ctx.inputs.a + Number(ctx.inputs.b)) * ctx.parameters.scale, big: 2n ** 63n - 1n };
        },
      ],
    ]);
    await w.start();
    const id = workRequest('disp1', 'd.add', { a: 2 }, { attempt: 2 });
    const p1 = await daemon.nextFromWorker('Progress', (b) => b.requestId === id);
    const p2 = await daemon.nextFromWorker('Progress', (b) => b.requestId === id);
    assert.deepEqual([p1.body.step, p1.body.total, p1.body.message], [1n, 2n, 'half']);
    assert.deepEqual([p2.body.step, p2.body.message], [2n, 'done']);
    const res = await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    assert.ok(valuesEqual(decodeValues(res.body.outputs), { sum: 25, big: 2n ** 63n - 1n }));
    assert.deepEqual(seen, {
      caller: { identity: 'local', name: 'tester', workspace: 'default', role: 'admin', traceId: 'trace-1' },
      attempt: 2,
      requestId: Number(id),
      node: 'd.add',
      params: { scale: 10 },
    });
    assert.strictEqual(seen.requestId, Number(id)); // a plain number, not a bigint
  });

  it('answers failures with the right codes', async () => {
    const w = makeWorker({ workerId: 'fail1' }, [
      [{ name: 'f.throw' }, () => { throw new Error('boom'); }],
      [{ name: 'f.muster' }, () => { throw new MusterError(ErrorCode.InvalidRequest, 'nope'); }],
      // A worker sends only WorkerError and InvalidRequest (PROTOCOL.md §6): others become WorkerError.
      [{ name: 'f.denied' }, () => { throw new MusterError(ErrorCode.PermissionDenied, 'not yours'); }],
      [{ name: 'f.badmsg' }, () => { throw new MusterError(ErrorCode.BadMessage, 'odd bytes'); }],
      [{ name: 'f.req', inputs: [{ name: 'x', required: true }, { name: 'n', type: 'int' }] }, () => ({})],
      [{ name: 'f.badout' }, () => ({ f: () => 1 }) as never],
      [{ name: 'f.scalar' }, () => 42 as never],
    ]);
    await w.start();
    const cases: [string, Record<string, unknown>, ErrorCode, RegExp][] = [
      ['f.throw', {}, ErrorCode.WorkerError, /boom/],
      ['f.muster', {}, ErrorCode.InvalidRequest, /nope/],
      ['f.denied', {}, ErrorCode.WorkerError, /^not yours$/],
      ['f.badmsg', {}, ErrorCode.WorkerError, /^odd bytes$/],
      ['f.req', {}, ErrorCode.InvalidRequest, /missing required input 'x'/],
      ['f.badout', {}, ErrorCode.WorkerError, /cannot be sent/],
      ['f.scalar', {}, ErrorCode.WorkerError, /not a map/],
      ['f.unknown', {}, ErrorCode.InvalidRequest, /does not serve node f\.unknown/],
    ];
    for (const [node, inputs, code, msg] of cases) {
      const id = workRequest('fail1', node, inputs);
      const f = await daemon.nextFromWorker('Failure', (b) => b.requestId === id);
      assert.equal(f.body.code, code, `${node}: ${f.body.message}`);
      assert.match(f.body.message, msg);
    }
  });

  it('answers InvalidRequest to a WorkRequest whose inputs are not a valid Values payload, and never runs it', async () => {
    let ran = 0;
    const w = makeWorker({ workerId: 'badin1' }, [[{ name: 'b.node' }, () => ({ ran: ++ran })]]);
    await w.start();
    const notValues = workRequest('badin1', 'b.node', {}, { rawInputs: new Uint8Array([9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]) });
    const notUtf8 = encodeValues({ s: 'abc' });
    notUtf8[Buffer.from(notUtf8).indexOf('abc')] = 0xff;
    const badString = workRequest('badin1', 'b.node', {}, { rawInputs: notUtf8 });
    for (const [id, why] of [[notValues, /not a valid muster Values buffer/], [badString, /not valid UTF-8/]] as const) {
      const f = await daemon.nextFromWorker('Failure', (b) => b.requestId === id);
      assert.equal(f.body.code, ErrorCode.InvalidRequest);
      assert.match(f.body.message, why);
    }
    const good = workRequest('badin1', 'b.node', {});
    await daemon.nextFromWorker('Result', (b) => b.requestId === good);
    assert.equal(ran, 1);
    const seq = daemon.ping('b:');
    const pong = await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'badin1' && b.seq === seq);
    assert.deepEqual(pong.body.inFlight, []);
  });

  it('answers InvalidRequest to a WorkRequest whose inputs are in a separate frame: it never asked for that', async () => {
    let ran = 0;
    const w = makeWorker({ workerId: 'frame1' }, [[{ name: 'fr.node' }, () => ({ ran: ++ran })]]);
    await w.start();
    const id = workRequest('frame1', 'fr.node', {}, { inputsInFrame: true });
    const f = await daemon.nextFromWorker('Failure', (b) => b.requestId === id);
    assert.equal(f.body.code, ErrorCode.InvalidRequest);
    assert.equal(f.body.message, 'inputs in a separate frame were not requested');
    const good = workRequest('frame1', 'fr.node', {});
    await daemon.nextFromWorker('Result', (b) => b.requestId === good);
    assert.equal(ran, 1);
  });

  it('lists running requests in pongs, ignores a re-sent id, and re-sends a finished answer', async () => {
    const gate = new Gate();
    let calls = 0;
    const w = makeWorker({ workerId: 'inflight1' }, [
      [{ name: 'slow' }, async (ctx) => { calls += 1; await gate.enter(ctx.signal); return { n: calls }; }],
    ]);
    await w.start();
    await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === 'inflight1');
    const id = workRequest('inflight1', 'slow');
    await until(() => gate.started === 1, 5000, 'the handler to start');
    const seq = daemon.ping('b:');
    const pong = await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'inflight1' && b.seq === seq);
    assert.deepEqual(pong.body.inFlight, [id]);
    workRequest('inflight1', 'slow', {}, { requestId: id, attempt: 2 }); // a re-send
    const seq2 = daemon.ping('b:');
    await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'inflight1' && b.seq === seq2);
    assert.equal(gate.started, 1);
    gate.releaseAll();
    const res = await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    assert.deepEqual(decodeValues(res.body.outputs), { n: 1 });
    const seq3 = daemon.ping('b:');
    const pong3 = await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'inflight1' && b.seq === seq3);
    assert.deepEqual(pong3.body.inFlight, []);
    // The daemon did not get it and sends it again: the same answer goes back, nothing re-runs.
    workRequest('inflight1', 'slow', {}, { requestId: id, attempt: 3 });
    const again = await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    assert.deepEqual(decodeValues(again.body.outputs), { n: 1 });
    assert.equal(calls, 1);
  });

  it('keeps what runs and the unconfirmed answers across a daemon restart, and sends a kept answer again when asked (§7.6)', async () => {
    const gate = new Gate();
    let calls = 0;
    const w = makeWorker({ workerId: 'restart1' }, [
      [{ name: 'slow' }, async (ctx) => { calls += 1; await gate.enter(ctx.signal); return {}; }],
      [{ name: 'fast' }, () => { calls += 1; return { n: 1 }; }],
    ]);
    await w.start();
    await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === 'restart1');
    // The daemon dies before it confirms the fast one's Result: no Ack for it.
    daemon.replyHook = (r) => (r.msg.workerId === 'restart1' && r.msg.body.type === 'Result' ? null : undefined);
    const running = workRequest('restart1', 'slow');
    await until(() => gate.started === 1, 5000, 'the handler to start');
    const answered = workRequest('restart1', 'fast');
    const first = await daemon.nextFromWorker('Result', (b) => b.requestId === answered);
    // A new instance: the worker attaches again and lists both in its Pong to it.
    daemon.instance = 'fake-instance-2';
    let listed: { seq: bigint } | null = null;
    daemon.replyHook = (r) => {
      const b = r.msg.body;
      if (r.msg.workerId !== 'restart1' || b.type !== 'Pong' || b.instance !== 'fake-instance-2') return undefined;
      if (listed) return { type: 'Ack', late: false, pongSeq: b.seq, missing: [] };
      listed = { seq: b.seq };
      assert.deepEqual(b.inFlight, [running]);
      assert.deepEqual(b.answered, [answered]);
      return { type: 'Ack', late: false, pongSeq: b.seq, missing: [answered] }; // adopted: send it again
    };
    daemon.ping('b:');
    const again = await daemon.nextFromWorker('Result', (b) => b.requestId === answered, 10000);
    assert.ok(listed);
    assert.deepEqual(Buffer.from(again.body.outputs), Buffer.from(first.body.outputs));
    gate.releaseAll();
    await daemon.nextFromWorker('Result', (b) => b.requestId === running);
    assert.equal(calls, 2); // nothing ran twice
  });

  it('aborts a running request and answers with the abort code and reason', async () => {
    let sawAbort = false;
    const w = makeWorker({ workerId: 'abort1' }, [
      [{ name: 'wait' }, async (ctx) => {
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        sawAbort = ctx.aborted;
        ctx.throwIfAborted();
        return {};
      }],
    ]);
    await w.start();
    const id = workRequest('abort1', 'wait');
    await until(() => w.inFlight.includes(Number(id)), 5000, 'the request to arrive');
    daemon.publish(workerTopic('abort1'), { type: 'Abort', requestId: id, code: ErrorCode.Timeout, reason: 'deadline passed' });
    const f = await daemon.nextFromWorker('Failure', (b) => b.requestId === id);
    assert.equal(f.body.code, ErrorCode.Timeout); // the handler saw Timeout; a worker may send it (PROTOCOL.md §6)
    assert.equal(f.body.message, 'deadline passed');
    assert.ok(sawAbort);
  });

  it('runs at most `capacity` handlers at once and queues the rest', async () => {
    const gate = new Gate();
    const w = makeWorker({ workerId: 'cap1', capacity: 2 }, [
      [{ name: 'hold' }, async (ctx) => { await gate.enter(ctx.signal); return {}; }],
    ]);
    await w.start();
    const ids = [workRequest('cap1', 'hold'), workRequest('cap1', 'hold'), workRequest('cap1', 'hold')];
    await until(() => w.inFlight.length === 3, 5000, 'three requests to arrive');
    assert.deepStrictEqual([...w.inFlight].sort(), ids.map(Number).sort()); // numbers, not bigints
    await until(() => gate.started === 2, 5000, 'two handlers to start');
    await sleep(50);
    assert.equal(gate.started, 2);
    // All three are in flight (received and unanswered), so pongs list all three.
    const seq = daemon.ping('b:');
    const pong = await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'cap1' && b.seq === seq);
    assert.deepEqual([...pong.body.inFlight].sort(), [...ids].sort());
    while (gate.started < 3 || gate.running > 0) {
      gate.releaseAll();
      await sleep(10);
    }
    for (const id of ids) await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    assert.equal(gate.maxRunning, 2);
  });

  it('detaches on stop(), finishes running work, then stops', async () => {
    const gate = new Gate();
    const w = makeWorker({ workerId: 'detach1' }, [
      [{ name: 'hold' }, async () => { await gate.enter(); return { finished: true }; }],
    ]);
    await w.start();
    const id = workRequest('detach1', 'hold');
    await until(() => gate.started === 1, 5000, 'the handler to start');
    const stopped = w.stop('test stop');
    const detach = await daemon.nextFromWorker('Detach', (_b, r) => r.msg.workerId === 'detach1');
    assert.equal(detach.body.reason, 'test stop');
    // PROTOCOL.md §7.5: a WorkRequest published before the daemon processed the Detach is run
    // like the others, and the drain waits for it (it used to be refused with ShuttingDown).
    const late = workRequest('detach1', 'hold');
    await until(() => gate.started === 2, 5000, 'the late request to start');
    gate.releaseAll();
    const res = await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    assert.deepEqual(decodeValues(res.body.outputs), { finished: true });
    const lateRes = await daemon.nextFromWorker('Result', (b) => b.requestId === late);
    assert.deepEqual(decodeValues(lateRes.body.outputs), { finished: true });
    await stopped;
    const fromMe = daemon.fromWorkers.all.filter((r) => r.msg.workerId === 'detach1').map((r) => r.msg.body.type);
    assert.ok(!fromMe.includes('Failure'), fromMe.join(' '));
    assert.ok(!w.isAttached);
  });

  it('aborts what is still running when the shutdown grace runs out, and leaves it unanswered', async () => {
    let sawAbort = false;
    const w = makeWorker({ workerId: 'grace1', shutdownGraceMs: 100 }, [
      [{ name: 'forever' }, (ctx) => new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => { sawAbort = true; reject(ctx.signal.reason); }, { once: true });
      })],
    ]);
    await w.start();
    const id = workRequest('grace1', 'forever');
    await until(() => w.inFlight.includes(Number(id)), 5000, 'the request to arrive');
    await w.stop();
    await sleep(300);
    // PROTOCOL.md §7.5: no answer (it used to be Failure{ShuttingDown}); the daemon applies its
    // worker-death rules: a re-run elsewhere, or WorkerLost.
    assert.ok(sawAbort, 'the handler was not aborted');
    const kinds = daemon.fromWorkers.all.filter((r) => r.msg.workerId === 'grace1').map((r) => r.msg.body.type);
    assert.ok(!kinds.includes('Failure') && !kinds.includes('Result'), kinds.join(' '));
  });

  it("fails a result over the daemon's --max-message-bytes instead of sending it, also when the request comes again", async () => {
    daemon.maxMessageBytes = 4096n;
    let runs = 0;
    const w = makeWorker({ workerId: 'big1' }, [
      [{ name: 'big' }, (ctx) => {
        runs += 1;
        ctx.progress(1, 2, 'x'.repeat(5000)); // too large as well: not sent
        return { blob: new Uint8Array(ctx.inputs.n) };
      }],
      [{ name: 'loud' }, () => { throw new Error('y'.repeat(5000)); }],
    ]);
    await w.start();
    const small = workRequest('big1', 'big', { n: 100 });
    const res = await daemon.nextFromWorker('Result', (b) => b.requestId === small);
    assert.equal((decodeValues(res.body.outputs) as Record<string, Uint8Array>).blob.length, 100);
    const id = workRequest('big1', 'big', { n: 10000 });
    const f = await daemon.nextFromWorker('Failure', (b) => b.requestId === id);
    assert.equal(f.body.code, ErrorCode.WorkerError);
    assert.match(f.body.message, /^result of \d+ bytes exceeds the daemon's limit of 4096 bytes \(--max-message-bytes\); the caller takes no chunked outputs \(chunk_window_bytes 0: a durable call, or a caller without chunks\)$/);
    // The daemon sends it again (its Pong no longer lists it): the same small Failure goes back.
    workRequest('big1', 'big', { n: 10000 }, { requestId: id, attempt: 2 });
    const again = await daemon.nextFromWorker('Failure', (b) => b.requestId === id);
    assert.equal(again.body.message, f.body.message);
    assert.equal(runs, 2);
    const loud = workRequest('big1', 'loud');
    const lf = await daemon.nextFromWorker('Failure', (b) => b.requestId === loud);
    assert.match(lf.body.message, /^failure of \d+ bytes exceeds the daemon's limit of 4096 bytes/);
    const fromBig = daemon.fromWorkers.all.filter((r) => r.msg.workerId === 'big1');
    assert.ok(fromBig.every((r) => r.msg.body.type !== 'Progress' || r.msg.body.requestId === small), 'an oversize Progress was sent');
    assert.ok(!fromBig.some((r) => r.msg.body.type === 'Result' && r.msg.body.requestId === id));
  });
});

describe('stopping never attaches again (PROTOCOL.md §7.5)', () => {
  // A worker that is detaching treats each of these as "the daemon forgot me": it must not
  // attach again (that would leave a ghost worker behind once it exits), it aborts what it
  // still runs, leaves it unanswered (the daemon forgot it) and stops. Each scenario keeps a
  // request running so that the worker is still draining when the signal comes.
  const scenarios: [string, (workerId: string) => void][] = [
    ['Rejected{reattach} to its Pong', () => daemon.ping('b:')],
    ['a Ping of a new daemon instance', () => {
      daemon.instance = 'fake-instance-2';
      daemon.ping('b:');
    }],
    ['no ping for the liveness window', () => {
      daemon.pinging = false;
    }],
  ];
  for (const [what, forget] of scenarios) {
    it(`after ${what}`, async () => {
      const workerId = `forgot${scenarios.findIndex(([w]) => w === what)}`;
      const gate = new Gate();
      const w = makeWorker({ workerId, shutdownGraceMs: 60000 }, [
        [{ name: 'hold' }, async (ctx) => { await gate.enter(ctx.signal); return {}; }],
      ]);
      try {
        await w.start();
        await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === workerId);
        const id = workRequest(workerId, 'hold');
        await until(() => gate.started === 1, 5000, 'the handler to start');
        let detached = false;
        daemon.replyHook = (r) => {
          if (r.msg.workerId !== workerId) return undefined;
          if (r.msg.body.type === 'Detach') {
            detached = true;
            return undefined; // Ack
          }
          // From its Detach on, the daemon no longer knows this worker.
          return detached ? { type: 'Rejected', code: ErrorCode.InvalidRequest, message: 'unknown worker', reattach: true } : undefined;
        };
        const stopped = w.stop('SIGTERM');
        await daemon.nextFromWorker('Detach', (_b, r) => r.msg.workerId === workerId);
        forget(workerId);
        await stopped;
        await until(() => gate.running === 0, 5000, 'the handler to see the abort');
        await sleep(300); // what a stopped worker would still send has arrived by now
        const kinds = daemon.fromWorkers.all.filter((r) => r.msg.workerId === workerId).map((r) => r.msg.body.type);
        assert.deepEqual(kinds.filter((k) => k === 'Attach'), ['Attach'], kinds.join(' '));
        assert.ok(!daemon.fromWorkers.all.some((r) => r.msg.workerId === workerId && r.msg.body.type === 'Failure' && r.msg.body.requestId === id), kinds.join(' '));
      } finally {
        gate.releaseAll();
      }
    });
  }

  it('sends Detach when stopped while a reconnect is under way', async () => {
    const w = makeWorker({ workerId: 'recon1', attachTimeoutMs: 60000 }, [[{ name: 'r.node' }, () => ({})]]);
    await w.start();
    const first = await daemon.nextFromWorker('Attach', (b) => b.workerId === 'recon1');
    await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === 'recon1');
    daemon.pinging = false;
    daemon.replyHook = (r) => (r.msg.workerId === 'recon1' && r.msg.body.type === 'Attach' ? null : undefined);
    const second = await daemon.nextFromWorker('Attach', (b) => b.workerId === 'recon1', 10000);
    assert.notDeepEqual(second.routingId, first.routingId);
    assert.ok(!w.isAttached);
    const stopped = w.stop('SIGTERM');
    // The daemon may have attached it already: without a Detach it would keep a ghost.
    const detach = await daemon.nextFromWorker('Detach', (_b, r) => r.msg.workerId === 'recon1');
    assert.deepEqual(detach.routingId, second.routingId);
    assert.equal(detach.body.reason, 'SIGTERM');
    await stopped;
    const attaches = daemon.fromWorkers.all.filter((r) => r.msg.workerId === 'recon1' && r.msg.body.type === 'Attach');
    assert.equal(attaches.length, 2);
  });
});

describe('transport security', () => {
  it('attaches and serves over tcp:// with CURVE keys', async () => {
    const server = zmq.curveKeyPair();
    const mine = zmq.curveKeyPair();
    const secure = await FakeDaemon.start({ curveSecretKey: server.secretKey });
    const w = new Worker({
      workerId: 'curve1',
      requestAddress: secure.requestAddress,
      responseAddress: secure.responseAddress,
      curve: { serverKey: server.publicKey, publicKey: mine.publicKey, secretKey: mine.secretKey },
      logger: 'off',
      shutdownGraceMs: 1000,
    });
    w.node({ name: 'c.node' }, (ctx) => ({ got: ctx.inputs.x }));
    try {
      assert.match(secure.requestAddress, /^tcp:\/\/127\.0\.0\.1:\d+$/);
      await w.start();
      await secure.nextFromWorker('Pong', (_b, r) => r.msg.workerId === 'curve1');
      secure.publish(workerTopic('curve1'), {
        type: 'WorkRequest', requestId: 1n, node: 'c.node', inputs: encodeValues({ x: 'secret' }),
        parameters: new Uint8Array(0), timeoutMs: 1000n, attempt: 1, caller: null, inputsInFrame: false,
      });
      const res = await secure.nextFromWorker('Result', (b) => b.requestId === 1n);
      assert.deepEqual(decodeValues(res.body.outputs), { got: 'secret' });
    } finally {
      await w.stop();
      await secure.close();
    }
  });
});
