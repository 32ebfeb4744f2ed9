// answer-acks.test.ts — the Worker without an Ack per answer (PROTOCOL.md §7.7) and with idle
// pongs (§7.3), against the fake daemon granting them or not: answers kept and listed in Pongs,
// confirmed by the Ack to a Pong, sent again when it names them missing, an early Pong once the
// kept bytes pass confirmKeptBytes, every-k-th idle pong, and the old behaviour with a daemon
// that grants neither.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';

import { type Handler, type NodeDefinition, Worker, type WorkerOptions, decodeValues } from '../src';
import { FakeDaemon, type FromWorker, sleep, testWorkerOptions, until } from './fake-daemon';

let daemon: FakeDaemon;
const workers: Worker[] = [];
let nextRequestId = 5000n;

function makeWorker(workerId: string, options: Partial<WorkerOptions> = {}, nodes: [NodeDefinition, Handler][] = []): Worker {
  const w = new Worker({ ...testWorkerOptions(daemon), workerId, capacity: 4, ...options });
  for (const [def, handler] of nodes) w.node(def, handler);
  workers.push(w);
  return w;
}

const echo: [NodeDefinition, Handler] = [{ name: 'echo' }, (ctx) => ({ x: ctx.inputs.x })];

const workRequest = (workerId: string, node: string, inputs: Record<string, unknown> = {}, requestId = nextRequestId++) =>
  daemon.workRequest(workerId, requestId, node, inputs);

/** Starts `w`, waits for its confirming Pong; returns its Attach. */
async function attached(w: Worker) {
  await w.start();
  const attach = await daemon.nextFromWorker('Attach', (b) => b.workerId === w.workerId);
  await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === w.workerId);
  return attach.body;
}

/** Publishes a broadcast ping and returns the worker's Pong to it. */
async function pongTo(w: Worker): Promise<Extract<FromWorker['msg']['body'], { type: 'Pong' }>> {
  const seq = daemon.ping('b:');
  const pong = await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === w.workerId && b.seq === seq);
  return pong.body;
}

/** Every message from worker `id` with a body of `type` received so far. */
function received(id: string, type: string): FromWorker[] {
  return daemon.fromWorkers.all.filter((r) => r.msg.workerId === id && r.msg.body.type === type);
}

const ids = (list: bigint[]) => [...list].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

before(async () => {
  daemon = await FakeDaemon.start({ liveness: 50 });
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('test over')));
  daemon.replyHook = null;
  daemon.pongMissing = null;
  daemon.pinging = true;
  daemon.grantNoAnswerAcks = false;
  daemon.idlePongEvery = 0;
});

after(async () => {
  await daemon.close();
});

describe('answers without an Ack (PROTOCOL.md §7.7)', () => {
  it('asks for it; granted, keeps each answer until the Ack to a Pong that listed it confirms it', async () => {
    daemon.grantNoAnswerAcks = true;
    daemon.pinging = false; // the test's pings only
    const w = makeWorker('na1', {}, [echo]);
    const attach = await attached(w);
    assert.equal(attach.noAnswerAcks, true);
    assert.equal(attach.idlePongs, true);
    const sent = [workRequest('na1', 'echo', { x: 1 }), workRequest('na1', 'echo', { x: 2 }), workRequest('na1', 'echo', { x: 3 })];
    for (const id of sent) await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    // No Ack came for them (the fake sends none): each is kept and listed, not in flight.
    const first = await pongTo(w);
    assert.deepEqual(ids(first.answered), sent);
    assert.deepEqual(first.inFlight, []);
    // The fake Acked that Pong naming nothing missing: all three are confirmed and forgotten.
    const second = await pongTo(w);
    assert.deepEqual(second.answered, []);
    // A re-send of a confirmed request still gets its answer again (remembered), never a re-run.
    workRequest('na1', 'echo', { x: 1 }, sent[0]);
    const again = await daemon.nextFromWorker('Result', (b) => b.requestId === sent[0]);
    assert.deepEqual(decodeValues(again.body.outputs), { x: 1 });
  });

  it('sends again the answers the Ack names missing, keeps them, and forgets the others', async () => {
    daemon.grantNoAnswerAcks = true;
    daemon.pinging = false;
    const w = makeWorker('na2', {}, [echo]);
    await attached(w);
    const lost = workRequest('na2', 'echo', { x: 'lost' });
    const delivered = workRequest('na2', 'echo', { x: 'delivered' });
    const firstLost = await daemon.nextFromWorker('Result', (b) => b.requestId === lost);
    await daemon.nextFromWorker('Result', (b) => b.requestId === delivered);
    daemon.pongMissing = (pong) => pong.answered.filter((id) => id === lost);
    const pong = await pongTo(w);
    assert.deepEqual(ids(pong.answered), [lost, delivered]);
    const resent = await daemon.nextFromWorker('Result', (b) => b.requestId === lost);
    assert.deepEqual(Buffer.from(resent.body.outputs), Buffer.from(firstLost.body.outputs)); // the same answer, not a re-run
    // Still kept (listed) until an Ack does not name it; the delivered one is forgotten.
    daemon.pongMissing = null;
    assert.deepEqual((await pongTo(w)).answered, [lost]);
    assert.deepEqual((await pongTo(w)).answered, []);
    assert.equal(received('na2', 'Result').filter((r) => (r.msg.body as { requestId: bigint }).requestId === delivered).length, 1);
  });

  it('an Ack confirms only what its Pong listed: an answer sent after that Pong stays kept', async () => {
    daemon.grantNoAnswerAcks = true;
    daemon.pinging = false;
    const w = makeWorker('na3', {}, [echo]);
    await attached(w);
    const early = workRequest('na3', 'echo', { x: 1 });
    await daemon.nextFromWorker('Result', (b) => b.requestId === early);
    let held: FromWorker | null = null;
    daemon.replyHook = (r) => {
      if (r.msg.workerId !== 'na3' || r.msg.body.type !== 'Pong' || held) return undefined;
      held = r; // its Ack comes later, after another answer
      return null;
    };
    const seq = daemon.ping('b:');
    await until(() => held !== null, 5000, 'the Pong listing the first answer');
    const late = workRequest('na3', 'echo', { x: 2 });
    await daemon.nextFromWorker('Result', (b) => b.requestId === late);
    daemon.reply(held!, { type: 'Ack', late: false, pongSeq: seq, missing: [] });
    const next = await pongTo(w);
    assert.deepEqual(next.answered, [late]);
  });

  it('asks early once the kept answers pass confirmKeptBytes, with at most one early Pong awaiting its Ack', async () => {
    daemon.grantNoAnswerAcks = true;
    daemon.pinging = false;
    const big: [NodeDefinition, Handler] = [{ name: 'big' }, () => ({ b: new Uint8Array(600) })];
    const w = makeWorker('na4', { confirmKeptBytes: 1000 }, [big]);
    await attached(w);
    // One answer of ~700 bytes: under the bound. The Pong that lists it is Acked (read).
    const a = workRequest('na4', 'big');
    await daemon.nextFromWorker('Result', (b) => b.requestId === a);
    const listed = await pongTo(w);
    assert.deepEqual(listed.answered, [a]);
    // (The fake Acked that Pong before the test saw it: read before the next answers come.)
    const b1 = workRequest('na4', 'big');
    await daemon.nextFromWorker('Result', (b) => b.requestId === b1);
    // Over the bound now (b1 and b2): a Pong repeating the last seq, no ping sent.
    let earlyAck: FromWorker | null = null;
    daemon.replyHook = (r) => {
      if (r.msg.workerId !== 'na4' || r.msg.body.type !== 'Pong') return undefined;
      earlyAck = r; // its Ack held back: no second early Pong may follow
      return null;
    };
    const b2 = workRequest('na4', 'big');
    const early = await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'na4' && b.seq === listed.seq && b.answered.length > 0);
    assert.deepEqual(ids(early.body.answered), ids([b1, b2]));
    const pongs = received('na4', 'Pong').length;
    const c = workRequest('na4', 'big');
    await daemon.nextFromWorker('Result', (b) => b.requestId === c);
    await sleep(300); // a second early Pong would have come by now
    assert.equal(received('na4', 'Pong').length, pongs);
    // Its Ack confirms b1 and b2 (listed in it), not c (answered after it).
    daemon.replyHook = null;
    daemon.reply(earlyAck!, { type: 'Ack', late: false, pongSeq: listed.seq, missing: [] });
    assert.deepEqual((await pongTo(w)).answered, [c]);
  });

  it('with a daemon that does not grant it (an older one), reads an Ack per answer and answers every ping', async () => {
    daemon.idlePongEvery = 0;
    const w = makeWorker('na5', {}, [echo]);
    const attach = await attached(w);
    assert.equal(attach.noAnswerAcks, true); // asked, not granted
    daemon.pinging = false;
    const id = workRequest('na5', 'echo', { x: 1 });
    await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    // Acked by the (old) fake: confirmed, so no Pong lists it; no ping goes unanswered.
    for (let i = 0; i < 3; i++) assert.deepEqual((await pongTo(w)).answered, []);
    // The replies pair one per message: a Result refused with reattach makes it attach again.
    daemon.replyHook = (r) =>
      r.msg.workerId === 'na5' && r.msg.body.type === 'Result' ? { type: 'Rejected', code: 3, message: 'unknown worker', reattach: true } : undefined;
    const attaches = received('na5', 'Attach').length;
    workRequest('na5', 'echo', { x: 2 });
    await until(() => received('na5', 'Attach').length > attaches, 5000, 'a new Attach');
  });

  it('attaches again when an answer (not paired with any reply) is refused with reattach', async () => {
    daemon.grantNoAnswerAcks = true;
    const w = makeWorker('na6', {}, [echo]);
    await attached(w);
    daemon.replyHook = (r) =>
      r.msg.workerId === 'na6' && r.msg.body.type === 'Result' ? { type: 'Rejected', code: 3, message: 'unknown worker', reattach: true } : undefined;
    const id = workRequest('na6', 'echo', { x: 1 });
    await daemon.nextFromWorker('Attach', (b) => b.workerId === 'na6');
    daemon.replyHook = null;
    // Still kept: listed in the Pongs after the new Attached, until an Ack confirms it.
    await until(() => received('na6', 'Pong').some((r) => (r.msg.body as { answered: bigint[] }).answered.includes(id)), 5000, 'a Pong listing it');
    assert.ok(w.isAttached);
  });
});

describe('idle pongs (PROTOCOL.md §7.3)', () => {
  it('granted k = 3: answers the confirming ping and every third broadcast ping while idle, every ping while it runs', async () => {
    daemon.idlePongEvery = 3;
    daemon.grantNoAnswerAcks = true;
    daemon.pinging = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const w = makeWorker('ip1', {}, [[{ name: 'wait' }, async () => { await gate; return {}; }]]);
    await attached(w); // the confirming ping was answered
    const seqs: bigint[] = [];
    for (let i = 0; i < 6; i++) seqs.push(daemon.ping('b:'));
    await daemon.nextFromWorker('Pong', (b, r) => r.msg.workerId === 'ip1' && b.seq === seqs[5]);
    const answered = received('ip1', 'Pong').map((r) => (r.msg.body as { seq: bigint }).seq).filter((s) => seqs.includes(s));
    assert.deepEqual(answered, [seqs[2], seqs[5]]);
    // While a request runs, every broadcast ping is answered.
    workRequest('ip1', 'wait');
    await until(() => w.inFlight.length === 1, 5000, 'the request to run');
    for (let i = 0; i < 3; i++) assert.equal((await pongTo(w)).inFlight.length, 1);
    release();
  });

  it('granted k = 3: answers every broadcast ping while it keeps an unconfirmed answer', async () => {
    daemon.idlePongEvery = 3;
    daemon.grantNoAnswerAcks = true;
    daemon.pinging = false;
    const w = makeWorker('ip3', {}, [echo]);
    await attached(w);
    // Pongs not Acked: the answer stays kept, so no ping may go unanswered.
    daemon.replyHook = (r) => (r.msg.workerId === 'ip3' && r.msg.body.type === 'Pong' ? null : undefined);
    const id = workRequest('ip3', 'echo', { x: 1 });
    await daemon.nextFromWorker('Result', (b) => b.requestId === id);
    for (let i = 0; i < 3; i++) assert.deepEqual((await pongTo(w)).answered, [id]);
  });

  it('not granted (idle_pong_every 0): answers every ping', async () => {
    daemon.pinging = false;
    const w = makeWorker('ip2', {}, [echo]);
    await attached(w);
    for (let i = 0; i < 3; i++) await pongTo(w);
  });
});
