// direct.test.ts — the Worker with one connection (PROTOCOL.md §7.10), against a fake daemon of
// its own per test that grants `direct` or not: granted, no SUB connection and everything (the
// confirming Ping, broadcast Pings, WorkRequests, Aborts) on the DEALER, answered there, garbage
// there survived and a WorkRequest with bad inputs refused; every
// Ping answered until the Ack of a Pong; the response connection made again after a break
// attaches again and carries the work (as does one made again while an Attach was on its way);
// not granted (an older daemon) or not asked, a SUB as before; and a daemon replaced at the same
// address by one that answers the other way (a rolling upgrade or downgrade of musterd under a
// running worker): direct then not granted opens the SUB; not granted then direct closes it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { afterEach, describe, it } from 'node:test';

import * as zmq from 'zeromq';

import { ErrorCode, type Handler, type NodeDefinition, Worker, type WorkerOptions, decodeValues, decodeWorkerMessage, encodeDaemonMessage } from '../src';
import { FakeDaemon, type FromWorker, sleep, tempDir, testWorkerOptions, until, workRequestBody, workerTopic } from './fake-daemon';

const daemons: FakeDaemon[] = [];
const workers: Worker[] = [];
const dirs: string[] = [];
let nextRequestId = 7000n;
/** Runs of the `count` node, by request id. */
const runs = new Map<number, number>();

async function ownDaemon(grantDirect: boolean, options: { dir?: string; instance?: string } = {}): Promise<FakeDaemon> {
  const d = await FakeDaemon.start({ liveness: 50, ...options });
  d.grantDirect = grantDirect;
  d.grantNoAnswerAcks = true; // as musterd: direct comes with the other opt-ins
  daemons.push(d);
  return d;
}

function makeWorker(d: FakeDaemon, workerId: string, options: Partial<WorkerOptions> = {}): Worker {
  const w = new Worker({ ...testWorkerOptions(d), workerId, capacity: 4, ...options });
  for (const [def, handler] of nodes) w.node(def, handler);
  workers.push(w);
  return w;
}

const nodes: [NodeDefinition, Handler][] = [
  [{ name: 'echo' }, (ctx) => ({ x: ctx.inputs.x })],
  [
    { name: 'count' },
    (ctx) => {
      runs.set(ctx.requestId, (runs.get(ctx.requestId) ?? 0) + 1);
      return { x: ctx.inputs.x };
    },
  ],
  [
    { name: 'wait' },
    (ctx) =>
      new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
      }),
  ],
];

/** Starts `w` and waits for its Attach and its confirming Pong; returns the Attach. */
async function attached(d: FakeDaemon, w: Worker) {
  await w.start();
  const attach = await d.nextFromWorker('Attach', (b) => b.workerId === w.workerId);
  await d.nextFromWorker('Pong', (_b, r) => r.msg.workerId === w.workerId);
  return attach;
}

/** Sends `echo {x}` to worker `id` and returns the x of its Result. */
async function echoOnce(d: FakeDaemon, id: string, x: number): Promise<unknown> {
  const rid = d.workRequest(id, nextRequestId++, 'echo', { x });
  const r = await d.nextFromWorker('Result', (b) => b.requestId === rid);
  return (decodeValues(r.body.outputs) as Record<string, unknown>).x;
}

function pongSeqs(d: FakeDaemon, id: string): bigint[] {
  return d.fromWorkers.all.filter((r) => r.msg.workerId === id && r.msg.body.type === 'Pong').map((r) => (r.msg.body as { seq: bigint }).seq);
}

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('test over')));
  await Promise.all(daemons.splice(0).map((d) => d.close()));
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  runs.clear();
});

/** A daemon whose sockets live in a directory of the test's, so that another can replace it there. */
async function replaceableDaemon(grantDirect: boolean): Promise<FakeDaemon> {
  const dir = tempDir();
  dirs.push(dir);
  return ownDaemon(grantDirect, { dir, instance: 'before-restart' });
}

/** `old` stops and another daemon, granting direct or not, binds the same addresses (a restart into another version). */
async function restartAs(old: FakeDaemon, grantDirect: boolean, instance = 'after-restart'): Promise<FakeDaemon> {
  await old.close();
  daemons.splice(daemons.indexOf(old), 1);
  return ownDaemon(grantDirect, { dir: old.dir, instance });
}

/** The worker's Attach to `d` after a restart (the same session: its requests stay) and its confirming Pong. */
async function attachedAgain(d: FakeDaemon, w: Worker) {
  const attach = await d.nextFromWorker('Attach', (b) => b.workerId === w.workerId);
  assert.equal(attach.body.session, w.session);
  assert.equal(attach.body.direct, true); // it asks every time
  await d.nextFromWorker('Pong', (b, r) => r.msg.workerId === w.workerId && b.instance === d.instance);
  await until(() => w.isAttached, 5000, 'Attached');
  return attach;
}

/** Sends `count {x}` to worker `id` and waits for its Result. */
async function countOnce(d: FakeDaemon, id: string, x: number): Promise<bigint> {
  const rid = d.workRequest(id, nextRequestId++, 'count', { x });
  const r = await d.nextFromWorker('Result', (b) => b.requestId === rid);
  assert.equal((decodeValues(r.body.outputs) as Record<string, unknown>).x, x);
  return rid;
}

/** How many messages of `type` worker `id` sent to `d` for request `rid`. */
function answersTo(d: FakeDaemon, id: string, rid: bigint, type: 'Result' | 'Failure' = 'Result'): number {
  return d.fromWorkers.all.filter((r) => r.msg.workerId === id && r.msg.body.type === type && (r.msg.body as { requestId: bigint }).requestId === rid).length;
}

describe('a daemon replaced at the same address by one that answers direct the other way (PROTOCOL.md §7.10)', () => {
  it('granted, then an older daemon that ignores the field: connects and subscribes its SUB, and is served through it', async () => {
    const d1 = await replaceableDaemon(true);
    const w = makeWorker(d1, 'rd1');
    await attached(d1, w);
    const before = await countOnce(d1, 'rd1', 1);
    assert.equal(d1.subscriberConnections, 0);

    const d2 = await restartAs(d1, false);
    await attachedAgain(d2, w); // the confirming Ping came on its topic: the SUB is connected and subscribed
    assert.equal(d2.subscriberConnections, 1);
    // Work comes through the SUB (the older daemon publishes it on the topic), each call run once.
    const rids = await Promise.all([2, 3, 4].map((x) => countOnce(d2, 'rd1', x)));
    for (const rid of [before, ...rids]) assert.equal(runs.get(Number(rid)), 1);
    // A broadcast Ping on b: reaches it through the SUB and is answered.
    d2.pinging = false;
    const seq = d2.ping('b:');
    await d2.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'rd1' && b.seq === seq);
    // The DEALER carries only replies now: a WorkRequest there (which the older daemon never
    // sends) is not taken as work, while the same request on the topic is.
    const attach = d2.fromWorkers.all.find((r) => r.msg.workerId === 'rd1' && r.msg.body.type === 'Attach')!;
    const stray = nextRequestId++;
    d2.replyRaw(attach, encodeDaemonMessage({ body: workRequestBody(stray, 'count', { x: 9 }) }));
    await sleep(200);
    assert.equal(runs.get(Number(stray)), undefined);
    d2.publish(workerTopic('rd1'), workRequestBody(stray, 'count', { x: 9 }));
    await d2.nextFromWorker('Result', (b) => b.requestId === stray);
    assert.equal(runs.get(Number(stray)), 1);
    assert.equal(d2.subscriberConnections, 1);
    assert.ok(w.isAttached);
  });

  it('not granted, then a daemon that grants it: closes its SUB and takes each call on the DEALER, run and answered once', async () => {
    const d1 = await replaceableDaemon(false);
    const w = makeWorker(d1, 'rd2');
    await attached(d1, w);
    assert.equal(d1.subscriberConnections, 1);
    const before = await countOnce(d1, 'rd2', 1);

    const d2 = await restartAs(d1, true);
    await attachedAgain(d2, w); // the confirming Ping came on the DEALER
    // The SUB is closed, not merely left unsubscribed: whatever connection it made to the new
    // daemon's request socket ended, and none is made again (its reconnect interval is 100 ms).
    await until(() => d2.subscriberDisconnects === d2.subscriberConnections, 5000, 'the SUB to close');
    await sleep(300);
    assert.equal(d2.subscriberConnections - d2.subscriberDisconnects, 0);
    // Work on the DEALER; the same requests also published on the request socket (which musterd
    // never does to a direct worker) would reach a SUB left subscribed: each runs and is answered once.
    const rids = [2, 3, 4, 5].map((x) => {
      const rid = nextRequestId++;
      d2.publishOnRequestSocket(workerTopic('rd2'), workRequestBody(rid, 'count', { x }));
      d2.workRequest('rd2', rid, 'count', { x });
      return rid;
    });
    for (const rid of rids) await d2.nextFromWorker('Result', (b) => b.requestId === rid);
    // Broadcast Pings go on the DEALER and on b: of the request socket: each answered once.
    d2.pinging = false;
    const seqs = [d2.ping('b:'), d2.ping('b:'), d2.ping('b:')];
    await d2.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'rd2' && b.seq === seqs[2]);
    await sleep(200);
    for (const rid of [before, ...rids]) assert.equal(runs.get(Number(rid)), 1);
    for (const rid of rids) assert.equal(answersTo(d2, 'rd2', rid), 1);
    for (const seq of seqs) assert.equal(pongSeqs(d2, 'rd2').filter((s) => s === seq).length, 1);
    assert.ok(w.isAttached);
  });

  it('granted, older, granted again (an upgrade rolled back and forward): the SUB opened for the older daemon closes again', async () => {
    const d1 = await replaceableDaemon(true);
    const w = makeWorker(d1, 'rd3');
    await attached(d1, w);
    const d2 = await restartAs(d1, false);
    await attachedAgain(d2, w);
    assert.equal(d2.subscriberConnections, 1);
    const middle = await countOnce(d2, 'rd3', 1);
    const d3 = await restartAs(d2, true, 'after-second-restart');
    await attachedAgain(d3, w);
    await until(() => d3.subscriberDisconnects === d3.subscriberConnections, 5000, 'the SUB to close');
    await sleep(300);
    assert.equal(d3.subscriberConnections - d3.subscriberDisconnects, 0);
    const last = await countOnce(d3, 'rd3', 2);
    for (const rid of [middle, last]) assert.equal(runs.get(Number(rid)), 1);
    assert.ok(w.isAttached);
  });
});

describe('one connection per worker (PROTOCOL.md §7.10)', () => {
  it('asks for it; granted, connects no SUB and is served on its DEALER: work, pings, aborts', async () => {
    const d = await ownDaemon(true);
    const w = makeWorker(d, 'dr1');
    const attach = await attached(d, w); // the confirming Ping came on the DEALER
    assert.equal(attach.body.direct, true);
    assert.equal(await echoOnce(d, 'dr1', 1), 1);
    // A broadcast Ping reaches it on the DEALER and is answered (every one, while it keeps an answer).
    d.pinging = false;
    const seq = d.ping('b:');
    await d.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'dr1' && b.seq === seq);
    // An Abort on the DEALER stops the handler; the worker answers the aborted request.
    const rid = d.workRequest('dr1', nextRequestId++, 'wait');
    await until(() => w.inFlight.length === 1, 5000, 'the request to run');
    d.publish(workerTopic('dr1'), { type: 'Abort', requestId: rid, code: ErrorCode.Cancelled, reason: 'cancelled by the test' });
    await d.nextFromWorker('Failure', (b) => b.requestId === rid);
    assert.deepEqual(w.inFlight, []);
    // Many calls, each answered once, and the request socket never saw a connection.
    const xs = await Promise.all([2, 3, 4, 5, 6].map((x) => echoOnce(d, 'dr1', x)));
    assert.deepEqual(xs, [2, 3, 4, 5, 6]);
    assert.equal(d.subscriberConnections, 0);
  });

  it('granted: survives garbage on its DEALER and refuses a WorkRequest whose inputs are not valid Values', async () => {
    const d = await ownDaemon(true);
    const w = makeWorker(d, 'dr7');
    const attach = await attached(d, w);
    d.replyRaw(attach, new Uint8Array([1, 2, 3]));
    d.replyRaw(attach, new Uint8Array(64).fill(0xff));
    const bad = d.workRequest('dr7', nextRequestId++, 'echo', {}, { inputs: new Uint8Array([9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]) });
    const f = await d.nextFromWorker('Failure', (b) => b.requestId === bad);
    assert.equal(f.body.code, ErrorCode.InvalidRequest);
    assert.match(f.body.message, /not a valid muster Values buffer/);
    assert.equal(await echoOnce(d, 'dr7', 1), 1);
    assert.ok(w.isAttached);
  });

  it('granted with idle pongs: answers every Ping until the Ack of a Pong, then the idle rule', async () => {
    const d = await ownDaemon(true);
    d.idlePongEvery = 3;
    d.pinging = false;
    const held: FromWorker[] = [];
    d.replyHook = (r) => {
      if (r.msg.body.type !== 'Pong') return undefined;
      held.push(r); // no Ack yet: the worker cannot know its confirming Pong arrived
      return null;
    };
    const w = makeWorker(d, 'dr2');
    await attached(d, w);
    const before = [d.ping('b:'), d.ping('b:'), d.ping('b:')];
    await d.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'dr2' && b.seq === before[2]);
    assert.deepEqual(pongSeqs(d, 'dr2').filter((s) => before.includes(s)), before);
    // The Ack of a Pong: from now on, while idle, every third broadcast Ping.
    d.replyHook = null;
    const last = held[held.length - 1]!;
    d.reply(last, { type: 'Ack', late: false, pongSeq: (last.msg.body as { seq: bigint }).seq, missing: [] });
    await sleep(100);
    const after = [1, 2, 3, 4, 5, 6].map(() => d.ping('b:'));
    await d.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'dr2' && b.seq === after[5]);
    assert.deepEqual(pongSeqs(d, 'dr2').filter((s) => after.includes(s)), [after[2], after[5]]);
    assert.equal(d.subscriberConnections, 0);
  });

  it('attaches again at once when its response connection was made again, and is served on the new one', async () => {
    const d = await ownDaemon(true);
    const w = makeWorker(d, 'dr3', { attachTimeoutMs: 60_000 }); // no help from the attach timeout
    const first = await attached(d, w);
    assert.equal(await echoOnce(d, 'dr3', 1), 1);
    // The daemon's side of the connection goes and comes back: nothing more reaches the old route.
    await d.reopenResponseSocket();
    const again = await d.nextFromWorker('Attach', (b) => b.workerId === 'dr3', 5000);
    assert.notDeepEqual(again.routingId, first.routingId);
    assert.equal(again.body.session, first.body.session); // the same process: its requests stay
    await until(() => w.isAttached, 5000, 'Attached');
    assert.equal(await echoOnce(d, 'dr3', 2), 2);
    assert.equal(d.subscriberConnections, 0);
  });

  it('hands its Attach to the DEALER only once the connection is made again, never when it broke', async (t) => {
    // libzmq reports a disconnect before it tears down the broken connection's pipe: an Attach
    // handed over at 'disconnect' could go into that pipe and be lost (a failover pair's
    // worker then waited out the attach timeout while its running request finished).
    const d = await ownDaemon(true);
    const w = makeWorker(d, 'dr8', { attachTimeoutMs: 60_000 }); // no help from the attach timeout
    await attached(d, w);
    const dealer = (w as unknown as { dealer: zmq.Dealer }).dealer;
    const seen: string[] = [];
    // zeromq's sockets are sealed and send is read-only: the prototype's (configurable) is wrapped.
    let owner = Object.getPrototypeOf(dealer) as object;
    while (!Object.prototype.hasOwnProperty.call(owner, 'send')) owner = Object.getPrototypeOf(owner) as object;
    const original = Object.getOwnPropertyDescriptor(owner, 'send')!;
    const send = original.value as (this: zmq.Dealer, bytes: Uint8Array) => Promise<void>;
    Object.defineProperty(owner, 'send', {
      ...original,
      value: function (this: zmq.Dealer, bytes: Uint8Array) {
        if (this === dealer && decodeWorkerMessage(bytes).body.type === 'Attach') seen.push('Attach handed to the DEALER');
        return send.call(this, bytes);
      },
    });
    t.after(() => Object.defineProperty(owner, 'send', original));
    // The worker's own listeners were added first: on each event, what the worker did is logged
    // before the event's name (an Attach just before 'connect' was handed over on 'connect').
    dealer.events.on('disconnect', () => seen.push('disconnect'));
    dealer.events.on('connect', () => seen.push('connect'));
    await d.reopenResponseSocket();
    await d.nextFromWorker('Attach', (b) => b.workerId === 'dr8', 5000);
    await until(() => w.isAttached, 5000, 'Attached');
    assert.deepEqual(seen.slice(0, 3), ['disconnect', 'Attach handed to the DEALER', 'connect']);
    assert.equal(seen.filter((e) => e === 'Attach handed to the DEALER').length, 1);
    assert.equal(await echoOnce(d, 'dr8', 1), 1);
  });

  it('an Attach on its way when the response connection broke goes again once the connection is made again', async () => {
    const d = await ownDaemon(true);
    d.autoAttach = false; // the first Attach is lost with the connection
    const w = makeWorker(d, 'dr6', { attachTimeoutMs: 60_000 }); // no help from the attach timeout
    const started = w.start();
    const first = await d.nextFromWorker('Attach', (b) => b.workerId === 'dr6');
    d.autoAttach = true;
    await d.reopenResponseSocket();
    const again = await d.nextFromWorker('Attach', (b) => b.workerId === 'dr6', 5000);
    assert.notDeepEqual(again.routingId, first.routingId);
    await started;
    assert.equal(await echoOnce(d, 'dr6', 1), 1);
  });

  it('not granted (an older daemon): connects its SUB after Attached, subscribes, and is served as before', async () => {
    const d = await ownDaemon(false);
    const w = makeWorker(d, 'dr4');
    const attach = await attached(d, w); // the confirming Ping came on its topic, so the SUB subscribed
    assert.equal(attach.body.direct, true); // asked, not granted
    assert.equal(d.subscriberConnections, 1);
    assert.equal(await echoOnce(d, 'dr4', 1), 1);
    d.pinging = false;
    const seq = d.ping('b:');
    await d.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'dr4' && b.seq === seq);
  });

  it('direct: false: does not ask, and connects its SUB as before', async () => {
    const d = await ownDaemon(true);
    const w = makeWorker(d, 'dr5', { direct: false });
    const attach = await attached(d, w);
    assert.equal(attach.body.direct, false);
    assert.equal(d.subscriberConnections, 1);
    assert.equal(await echoOnce(d, 'dr5', 1), 1);
  });
});
