// per-call.test.ts — what a worker saves per call gives the same results as the work it
// replaced: a reused flatbuffers Builder encodes byte-identical messages (also after a large one
// and after an encoding that threw midway), a WorkRequest's payload decoded during verification
// is handed out once and then decoded afresh, a request's AbortSignal made late agrees with the
// abort that came first, and applyPorts copies only when a port changes something.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { type DaemonMessage, type Port, type WorkerMessage, applyPorts, decodeDaemonMessage, decodeValues, encodeDaemonMessage, encodeValues, encodeWorkerMessage } from '../src';
import { KEEP_BYTES } from '../src/builder-pool';
import { takeValues } from '../src/decoded-payloads';
import { LazyAbort } from '../src/lazy-abort';

const result: WorkerMessage = {
  workerId: 'w1',
  body: { type: 'Result', requestId: 7n, outputs: encodeValues({ out: new Uint8Array(64).fill(7), n: 3 }), outputsInFrame: false },
};

describe('a reused Builder', () => {
  it('encodes the same bytes as the first encoding, after other messages, a large one, and a failed one', () => {
    const first = encodeWorkerMessage(result);
    const snapshot = Uint8Array.from(first);
    const firstValues = encodeValues({ a: 'x', b: [1, 2, 3] });
    encodeWorkerMessage({ workerId: 'w1', body: { type: 'Failure', requestId: 8n, code: 8, message: 'a message of some length' } });
    assert.deepEqual(first, snapshot); // a copy, not a view of the reused buffer
    assert.deepEqual(encodeWorkerMessage(result), first);
    // one larger than the kept buffer: a new builder, left to the GC
    encodeWorkerMessage({ workerId: 'w1', body: { type: 'Result', requestId: 9n, outputs: encodeValues({ big: new Uint8Array(2 * KEEP_BYTES) }), outputsInFrame: false } });
    assert.deepEqual(encodeWorkerMessage(result), first);
    // an encoding that throws midway (a lone surrogate in the second key) drops its builder
    assert.throws(() => encodeValues({ a: 1, ['\uD800']: 2 }));
    assert.deepEqual(encodeValues({ a: 'x', b: [1, 2, 3] }), firstValues);
    assert.deepEqual(encodeWorkerMessage(result), first);
    assert.deepEqual(decodeValues(firstValues), { a: 'x', b: [1, 2, 3] });
  });
});

describe('a WorkRequest payload decoded once', () => {
  const request: DaemonMessage = {
    body: {
      type: 'WorkRequest',
      requestId: 5n,
      node: 'echo',
      inputs: encodeValues({ x: 1, y: 'two' }),
      parameters: new Uint8Array(0),
      timeoutMs: 1000n,
      attempt: 1,
      caller: null,
      inputsInFrame: false,
      streamWindowItems: 0,
      streamWindowBytes: 0n,
      chunkWindowBytes: 0n,
    },
  };

  it('gives the values its verification decoded the first time, fresh ones after', () => {
    const msg = decodeDaemonMessage(encodeDaemonMessage(request));
    assert.equal(msg.body.type, 'WorkRequest');
    const inputs = (msg.body as { inputs: Uint8Array }).inputs;
    const first = takeValues(inputs) as Record<string, unknown>;
    assert.deepEqual(first, { x: 1, y: 'two' });
    first.x = 99; // its reader may change it
    const second = takeValues(inputs);
    assert.notEqual(second, first);
    assert.deepEqual(second, { x: 1, y: 'two' });
    // bytes no message decoded are decoded as decodeValues does
    assert.deepEqual(takeValues(encodeValues({ z: null })), { z: null });
    assert.deepEqual(takeValues(new Uint8Array(0)), {});
  });
});

describe('LazyAbort', () => {
  it('makes a signal that agrees with an abort that came first', () => {
    const a = new LazyAbort();
    assert.equal(a.aborted, false);
    const why = new Error('deadline');
    a.abort(why);
    a.abort(new Error('second'));
    assert.equal(a.aborted, true);
    assert.equal(a.signal.aborted, true);
    assert.equal(a.signal.reason, why);
    assert.equal(a.signal, a.signal);
  });

  it('fires the listeners of a signal made before the abort, once', () => {
    const a = new LazyAbort();
    const signal = a.signal;
    let fired = 0;
    signal.addEventListener('abort', () => (fired += 1));
    assert.equal(signal.aborted, false);
    a.abort('cancel');
    a.abort('again');
    assert.equal(fired, 1);
    assert.equal(signal.reason, 'cancel');
  });
});

describe('applyPorts', () => {
  const ports: Port[] = [
    { name: 'x', type: 'int', description: '', required: true },
    { name: 'y', type: 'string', description: '', required: false, defaultValue: 'dflt' },
  ];

  it('returns the values themselves when no port changes anything', () => {
    const v = { x: 1, y: 'given', extra: true };
    assert.equal(applyPorts(v, ports, 'input'), v);
  });

  it('applies defaults to a copy, and refuses a missing required port', () => {
    const v = { x: 1, y: null };
    const out = applyPorts(v, ports, 'input');
    assert.notEqual(out, v);
    assert.deepEqual(out, { x: 1, y: 'dflt' });
    assert.deepEqual(v, { x: 1, y: null });
    assert.deepEqual(applyPorts({ x: 2 }, ports, 'input'), { x: 2, y: 'dflt' });
    assert.throws(() => applyPorts({ y: 'a' }, ports, 'input'), /missing required input 'x'/);
  });
});
