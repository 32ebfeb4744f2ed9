// client.test.ts — the Client against a fake daemon's client ROUTER (PROTOCOL.md §8): Submit
// fields, progress, interleaved replies correlated by request_id, failures as MusterError,
// cancel, listings, and Unavailable when there is no daemon or it goes away.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import * as zmq from 'zeromq';

import { Client, ErrorCode, MusterError, type ProgressEvent, decodeValues, encodeValues, float, valuesEqual } from '../src';
import { FakeDaemon, tempDir } from './fake-daemon';

let daemon: FakeDaemon;
let client: Client;

before(async () => {
  daemon = await FakeDaemon.start({ ping: false });
  client = new Client({ clientAddress: daemon.clientAddress, logger: 'off' });
});

after(async () => {
  client.close();
  await daemon.close();
});

function isCode(code: ErrorCode) {
  return (e: unknown) => e instanceof MusterError && e.codeNumber === code;
}

describe('client', () => {
  it('submits with inputs, parameters, timeout and progress, and returns the outputs', async () => {
    const progress: ProgressEvent[] = [];
    const accepted: boolean[] = [];
    const call = client.call('ts.hello', { name: 'Ada', n: 2n ** 63n - 1n }, {
      timeoutMs: 1500,
      parameters: { p: float(1) },
      onProgress: (p) => progress.push(p),
      onAccepted: (a) => accepted.push(a.queued),
      traceId: 'trace-9',
    });
    const submit = await daemon.nextFromClient('Submit');
    const body = submit.msg.body;
    assert.equal(body.type, 'Submit');
    if (body.type !== 'Submit') return;
    assert.equal(body.node, 'ts.hello');
    assert.equal(body.timeoutMs, 1500n);
    assert.equal(body.wantProgress, true);
    assert.equal(body.wantAccepted, true);
    assert.equal(body.traceId, 'trace-9');
    assert.equal(body.payloadFrames, false); // outputs stay inside the Result
    assert.ok(valuesEqual(decodeValues(body.inputs), { name: 'Ada', n: 2n ** 63n - 1n }));
    assert.ok(valuesEqual(decodeValues(body.parameters), { p: float(1) }));
    const id = submit.msg.requestId;
    daemon.clientReply(submit, { type: 'Accepted', queued: false, jobId: 0n });
    daemon.clientReply(submit, { type: 'Progress', requestId: id, step: 1n, total: 2n, message: 'half' });
    daemon.clientReply(submit, { type: 'Result', requestId: id, outputs: encodeValues({ greeting: 'Hello Ada' }), outputsInFrame: false });
    assert.deepEqual(await call, { greeting: 'Hello Ada' });
    assert.deepEqual(progress, [{ step: 1, total: 2, message: 'half' }]);
    assert.deepEqual(accepted, [false]);
  });

  it('a call that fails before its result is awaited is no unhandled rejection; awaited later it rejects', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const handle = client.submit('n', { which: 'late' });
      const s = await daemon.nextFromClient('Submit');
      daemon.clientReply(s, { type: 'Failure', requestId: s.msg.requestId, code: ErrorCode.Cancelled, message: 'cancelled by local (JobCancel)' });
      await new Promise((r) => setTimeout(r, 200)); // the Failure arrives while nobody awaits the result
      assert.deepEqual(unhandled, []);
      await assert.rejects(handle.result, isCode(ErrorCode.Cancelled));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('correlates interleaved replies by request_id', async () => {
    const a = client.call('n', { which: 'a' });
    const b = client.call('n', { which: 'b' });
    const sa = await daemon.nextFromClient('Submit');
    const sb = await daemon.nextFromClient('Submit');
    assert.notEqual(sa.msg.requestId, sb.msg.requestId);
    const which = (s: typeof sa) => (s.msg.body.type === 'Submit' ? decodeValues(s.msg.body.inputs) : {});
    daemon.clientReply(sb, { type: 'Result', requestId: sb.msg.requestId, outputs: encodeValues({ echo: (which(sb) as { which: string }).which }), outputsInFrame: false });
    daemon.clientReply(sa, { type: 'Failure', requestId: sa.msg.requestId, code: ErrorCode.WorkerError, message: 'a failed' });
    assert.deepEqual(await b, { echo: 'b' });
    await assert.rejects(a, (e: unknown) => isCode(ErrorCode.WorkerError)(e) && (e as Error).message === 'a failed');
  });

  it('cancels with the same request id', async () => {
    const handle = client.submit('slow', {});
    assert.equal(typeof handle.requestId, 'number'); // a plain number, not a bigint
    assert.ok(Number.isSafeInteger(handle.requestId) && handle.requestId > 0);
    const submit = await daemon.nextFromClient('Submit');
    assert.strictEqual(submit.msg.requestId, BigInt(handle.requestId));
    await handle.cancel();
    const cancel = await daemon.nextFromClient('Cancel');
    assert.strictEqual(cancel.msg.requestId, BigInt(handle.requestId));
    daemon.clientReply(submit, { type: 'Failure', requestId: BigInt(handle.requestId), code: ErrorCode.Cancelled, message: 'cancelled by the client' });
    await assert.rejects(handle.result, isCode(ErrorCode.Cancelled));
  });

  it('cancels through an AbortSignal', async () => {
    const ac = new AbortController();
    const handle = client.submit('slow', {}, { signal: ac.signal });
    const submit = await daemon.nextFromClient('Submit');
    ac.abort();
    const cancel = await daemon.nextFromClient('Cancel');
    assert.strictEqual(cancel.msg.requestId, BigInt(handle.requestId));
    daemon.clientReply(submit, { type: 'Failure', requestId: BigInt(handle.requestId), code: ErrorCode.Cancelled, message: 'c' });
    await assert.rejects(handle.result, isCode(ErrorCode.Cancelled));
  });

  it('lists nodes and workers and gets the status', async () => {
    const nodes = client.nodes();
    const ln = await daemon.nextFromClient('ListNodes');
    daemon.clientReply(ln, {
      type: 'NodeList',
      nodes: [{ spec: { name: 'x', description: '', category: '', version: '', inputs: [], outputs: [], parameters: [], idempotent: false, defaultTimeoutMs: 0n }, workspace: 'default', workers: 1, capacity: 2, inFlight: 0, queueDepth: 0 }],
    });
    assert.equal((await nodes)[0]!.spec!.name, 'x');
    assert.strictEqual((await nodes)[0]!.spec!.defaultTimeoutMs, 0); // numbers, not bigints

    const workers = client.workers();
    const lw = await daemon.nextFromClient('ListWorkers');
    daemon.clientReply(lw, {
      type: 'WorkerList',
      workers: [{ workerId: 'w', hostname: 'h', sdk: 's', pid: 1, state: 'ready', capacity: 2, inFlight: 1, nodes: ['a'], workspace: 'ws', identity: 'local', attachedMs: 1500n, lastSeenMs: 20n, direct: true }],
    });
    const [w] = await workers;
    assert.strictEqual(w!.attachedMs, 1500);
    assert.strictEqual(w!.lastSeenMs, 20);
    assert.strictEqual(w!.direct, true);

    const status = client.status();
    const gs = await daemon.nextFromClient('GetStatus');
    daemon.clientReply(gs, { type: 'StatusReport', version: '0.1.0', instance: 'i', uptimeMs: 1n, workers: 0, nodes: 0, queued: 0, inFlight: 0, submitted: 7n, completed: 5n, failed: 2n, failures: [{ code: ErrorCode.Timeout, count: 2n }], redispatched: 0n, rate1m: 0 });
    const s = await status;
    assert.equal(s.version, '0.1.0');
    assert.equal(s.instance, 'i');
    assert.deepStrictEqual(
      [s.uptimeMs, s.submitted, s.completed, s.failed, s.redispatched, s.failures],
      [1, 7, 5, 2, 0, [{ code: ErrorCode.Timeout, count: 2 }]],
    );
    assert.equal('type' in s, false);

    const stats = client.nodeStats();
    const gn = await daemon.nextFromClient('GetNodeStats');
    const hist = { upperBoundsUs: [32n, 45n], counts: [1n, 2n, 0n], count: 3n, sumUs: 120n, p50Us: 40n, p90Us: 44n, p99Us: 45n };
    daemon.clientReply(gn, {
      type: 'NodeStatsReport',
      nodes: [{ workspace: 'default', node: 'hello', workers: 1, inFlight: 0, queueDepth: 0, completed: 3n, failed: 1n, failures: [{ code: ErrorCode.WorkerError, count: 1n }], rate1m: 0.5, queueWait: null, service: hist }],
      recentFailures: [{ workspace: 'default', node: 'hello', code: ErrorCode.WorkerError, message: 'boom', ageMs: 1200n }],
    });
    const ns = await stats;
    assert.deepStrictEqual(ns, {
      nodes: [{ workspace: 'default', node: 'hello', workers: 1, inFlight: 0, queueDepth: 0, completed: 3, failed: 1, failures: [{ code: ErrorCode.WorkerError, count: 1 }], rate1m: 0.5, queueWait: null, service: { upperBoundsUs: [32, 45], counts: [1, 2, 0], count: 3, sumUs: 120, p50Us: 40, p90Us: 44, p99Us: 45 } }],
      recentFailures: [{ workspace: 'default', node: 'hello', code: ErrorCode.WorkerError, message: 'boom', ageMs: 1200 }],
    });
  });

  it('ignores garbage and replies for unknown ids', async () => {
    const call = client.call('n', {});
    const submit = await daemon.nextFromClient('Submit');
    daemon.clientReplyRaw(submit, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]));
    daemon.clientReply(submit, { type: 'Result', requestId: 999999n, outputs: new Uint8Array(0), outputsInFrame: false }, 999999n);
    daemon.clientReply(submit, { type: 'Result', requestId: submit.msg.requestId, outputs: new Uint8Array(0), outputsInFrame: false });
    assert.deepEqual(await call, {});
  });

  it('fails with BadMessage a Result whose outputs are in a separate frame: it never asked for that', async () => {
    const call = client.call('n', {});
    const submit = await daemon.nextFromClient('Submit');
    daemon.clientReply(submit, { type: 'Result', requestId: submit.msg.requestId, outputs: new Uint8Array(0), outputsInFrame: true });
    await assert.rejects(call, (e: unknown) => isCode(ErrorCode.BadMessage)(e) && (e as Error).message === 'outputs in a separate frame were not requested');
  });

  it('rejects inputs with no muster form before sending', async () => {
    await assert.rejects(client.call('n', { f: (() => 1) as never }), isCode(ErrorCode.InvalidRequest));
  });

  it('fails with Unavailable when no daemon listens, or the connection is lost', async () => {
    const dir = tempDir();
    const lonely = new Client({ clientAddress: `ipc://${dir}/client.sock` });
    await assert.rejects(lonely.call('n', {}), isCode(ErrorCode.Unavailable));
    lonely.close();

    // A socket file nobody answers on (a daemon that crashed): no handshake, Unavailable.
    const net = await import('node:net');
    const held: import('node:net').Socket[] = [];
    const stale = net.createServer((sock) => void held.push(sock)); // accepts, never speaks ZMTP
    await new Promise<void>((resolve) => stale.listen(`${dir}/stale.sock`, resolve));
    const staleClient = new Client({ clientAddress: `ipc://${dir}/stale.sock`, connectTimeoutMs: 300, logger: 'off' });
    try {
      await assert.rejects(staleClient.call('n', {}), (e: unknown) => isCode(ErrorCode.Unavailable)(e) && /handshake/.test((e as Error).message));
    } finally {
      staleClient.close();
      for (const sock of held) sock.destroy();
      stale.close();
    }

    const other = await FakeDaemon.start({ ping: false });
    const c = new Client({ clientAddress: other.clientAddress });
    try {
      const call = c.call('n', {});
      await other.nextFromClient('Submit');
      other.closeClientSocket();
      await assert.rejects(call, isCode(ErrorCode.Unavailable));
    } finally {
      c.close();
      await other.close();
    }
  });

  it('calls over tcp:// with CURVE keys', async () => {
    const server = zmq.curveKeyPair();
    const mine = zmq.curveKeyPair();
    const secure = await FakeDaemon.start({ curveSecretKey: server.secretKey, ping: false });
    const c = new Client({
      clientAddress: secure.clientAddress,
      curve: { serverKey: server.publicKey, publicKey: mine.publicKey, secretKey: mine.secretKey },
      logger: 'off',
    });
    try {
      const call = c.call('n', { x: 1 });
      const submit = await secure.nextFromClient('Submit');
      secure.clientReply(submit, { type: 'Result', requestId: submit.msg.requestId, outputs: encodeValues({ ok: true }), outputsInFrame: false });
      assert.deepEqual(await call, { ok: true });
    } finally {
      c.close();
      await secure.close();
    }
  });

  it('refuses tcp:// without CURVE keys from enrollment unless insecure', async () => {
    // No keys, not insecure: the client enrolls before its first request, and has no token.
    const dir = tempDir();
    const saved = { token: process.env.MUSTER_ENROLLMENT_TOKEN, xdg: process.env.XDG_CONFIG_HOME };
    delete process.env.MUSTER_ENROLLMENT_TOKEN;
    process.env.XDG_CONFIG_HOME = `${dir}/config`;
    try {
      const c = new Client({ clientAddress: 'tcp://127.0.0.1:7901', dataDir: `${dir}/data`, logger: 'off' });
      await assert.rejects(
        c.nodes(),
        (e: unknown) => isCode(ErrorCode.PermissionDenied)(e) && /insecure/.test((e as Error).message) && /MUSTER_ENROLLMENT_TOKEN/.test((e as Error).message),
      );
      c.close();
    } finally {
      if (saved.token !== undefined) process.env.MUSTER_ENROLLMENT_TOKEN = saved.token;
      if (saved.xdg !== undefined) process.env.XDG_CONFIG_HOME = saved.xdg;
      else delete process.env.XDG_CONFIG_HOME;
    }
    new Client({ clientAddress: 'tcp://127.0.0.1:7901', insecure: true }).close();
    assert.throws(() => new Client({ clientAddress: 'http://x' }), isCode(ErrorCode.InvalidRequest));
    assert.throws(() => new Client({ clientAddress: 'tcp://127.0.0.1:7901', name: '../x' }), RangeError);
  });
});
