// messages.test.ts — every root message type encodes and decodes back the same, and malformed
// buffers (wrong identifier, NONE union, truncation, corruption) are BadMessage, never a crash.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import * as flatbuffers from 'flatbuffers';

import {
  type ClientMessage,
  type ClientReply,
  type DaemonMessage,
  type EnrollRequest,
  type EnrollResponse,
  ErrorCode,
  MusterError,
  type NodeSpec,
  type WorkerMessage,
  decodeClientMessage,
  decodeClientReply,
  decodeDaemonMessage,
  decodeEnrollRequest,
  decodeEnrollResponse,
  decodeValues,
  decodeWorkerMessage,
  encodeClientMessage,
  encodeClientReply,
  encodeDaemonMessage,
  encodeEnrollRequest,
  encodeEnrollResponse,
  encodeValues,
  encodeWorkerMessage,
  float,
  JobState,
} from '../src';
import * as W from '../src/generated';

const values = encodeValues({ name: 'Ada', n: 2n ** 63n - 1n, f: float(1) });
const spec: NodeSpec = {
  name: 'ns.node',
  description: 'desc',
  category: 'cat',
  version: '1.2',
  inputs: [{ name: 'a', type: 'int', description: 'an a', required: true, defaultValue: 5 }],
  outputs: [{ name: 'o', type: 'any', description: '', required: false }],
  parameters: [{ name: 'p', type: 'string', description: '', required: false, defaultValue: null }],
  idempotent: true,
  defaultTimeoutMs: 1000n,
  durable: true,
};
const caller = { identity: 'id', name: 'n', workspace: 'ws', role: 'client', traceId: 't' };

const workerMessages: WorkerMessage[] = [
  { workerId: 'w', body: { type: 'Attach', workerId: 'w', hostname: 'h', sdk: 's', pid: 42, session: 'sess', capacity: 1, nodes: [spec], payloadFrames: true, noAnswerAcks: true, batches: true, idlePongs: true, direct: true } },
  { workerId: 'w', body: { type: 'Attach', workerId: 'w', hostname: '', sdk: '', pid: 0, session: '', capacity: 0, nodes: [], payloadFrames: false, noAnswerAcks: false, batches: false, idlePongs: false, direct: false } },
  { workerId: 'w', body: { type: 'Pong', seq: 2n ** 64n - 1n, instance: 'i', inFlight: [1n, 2n ** 63n], answered: [7n] } },
  { workerId: 'w', body: { type: 'Progress', requestId: 3n, step: 1n, total: 0n, message: 'm' } },
  { workerId: 'w', body: { type: 'Result', requestId: 4n, outputs: values, outputsInFrame: false, jobId: 0n } },
  { workerId: 'w', body: { type: 'Result', requestId: 4n, outputs: new Uint8Array(0), outputsInFrame: false, jobId: 0n } },
  { workerId: 'w', body: { type: 'Failure', requestId: 5n, code: ErrorCode.None, message: 'x', jobId: 0n } },
  { workerId: '', body: { type: 'Detach', reason: 'bye' } },
  { workerId: 'w', body: { type: 'Item', requestId: 6n, seq: 2n ** 64n - 1n, values } },
  { workerId: 'w', body: { type: 'Item', requestId: 6n, seq: 0n, values: new Uint8Array(0) } },
  { workerId: 'w', body: { type: 'Chunk', requestId: 3n, stream: 2, offset: 1n << 40n, data: new Uint8Array([1, 2, 3]) } },
  { workerId: 'w', body: { type: 'Chunk', requestId: 3n, stream: 2 ** 32 - 1, offset: 0n, data: null } },
  { workerId: 'w', body: { type: 'Credit', requestId: 3n, stream: 1, items: 0n, bytes: 4n << 20n, resumeOffset: 0n, resume: false } },
];
const daemonMessages: DaemonMessage[] = [
  { body: { type: 'Ping', seq: 1n, instance: 'inst' } },
  { body: { type: 'WorkRequest', requestId: 9n, node: 'n', inputs: values, parameters: values, timeoutMs: 30000n, attempt: 3, caller, inputsInFrame: false, streamWindowItems: 64, streamWindowBytes: 4n << 20n, chunkWindowBytes: 2n ** 64n - 1n } },
  { body: { type: 'WorkRequest', requestId: 9n, node: 'n', inputs: new Uint8Array(0), parameters: new Uint8Array(0), timeoutMs: 0n, attempt: 1, caller: null, inputsInFrame: true, streamWindowItems: 0, streamWindowBytes: 0n, chunkWindowBytes: 0n } },
  { body: { type: 'Credit', requestId: 9n, stream: 0, items: 2n ** 64n - 1n, bytes: 1n << 40n, resumeOffset: 0n, resume: false } },
  { body: { type: 'Abort', requestId: 9n, code: ErrorCode.Timeout, reason: 'late' } },
  { body: { type: 'Attached', workerId: 'w', instance: 'i', topic: 'w:w:', broadcastTopic: 'b:', pingIntervalMs: 1000n, liveness: 3, maxMessageBytes: 1n << 24n, noAnswerAcks: false, batches: true, idlePongEvery: 2, direct: true } },
  { body: { type: 'Ack', late: true, pongSeq: 0n, missing: [] } },
  { body: { type: 'Ack', late: false, pongSeq: 17n, missing: [4n] } },
  { body: { type: 'Rejected', code: ErrorCode.BadMessage, message: 'no', reattach: true } },
  { body: { type: 'Credit', requestId: 9n, stream: 0, items: 64n, bytes: 2n ** 64n - 1n, resumeOffset: 0n, resume: false } },
  { body: { type: 'Chunk', requestId: 9n, stream: 1, offset: 0n, data: new Uint8Array(1024).fill(7) } },
];
const clientMessages: ClientMessage[] = [
  { requestId: 1n, body: { type: 'Submit', node: 'n', inputs: values, parameters: new Uint8Array(0), timeoutMs: 5n, wantProgress: true, wantAccepted: false, traceId: 'tr', payloadFrames: true, durable: true, batchReplies: true, streamWindowItems: 2 ** 32 - 1, streamWindowBytes: 2n ** 64n - 1n, chunkWindowBytes: 0n, resumable: false } },
  { requestId: 1n, body: { type: 'Submit', node: 'n', inputs: values, parameters: new Uint8Array(0), timeoutMs: 5n, wantProgress: true, wantAccepted: false, traceId: 'tr', payloadFrames: true, durable: true, batchReplies: true, streamWindowItems: 1, streamWindowBytes: 0n, chunkWindowBytes: 4n << 20n, resumable: true } },
  { requestId: 13n, body: { type: 'Credit', requestId: 13n, stream: 0, items: 96n, bytes: (4n << 20n) + 512n, resumeOffset: 0n, resume: false } },
  { requestId: 2n, body: { type: 'Cancel' } },
  { requestId: 3n, body: { type: 'ListNodes' } },
  { requestId: 4n, body: { type: 'ListWorkers' } },
  { requestId: 5n, body: { type: 'GetStatus' } },
  { requestId: 6n, body: { type: 'ListNodes' }, onBehalfOf: { user: 'ada', workspace: 'alpha', role: 'call' } },
  { requestId: 7n, body: { type: 'JobResume', jobs: [{ jobId: 1n << 40n, requestId: 8n }, { jobId: 2n ** 64n - 1n, requestId: 9n }] } },
  { requestId: 8n, body: { type: 'JobResume', jobs: [] } },
  { requestId: 9n, body: { type: 'JobAck', jobIds: [1n << 40n, 3n] } },
  { requestId: 10n, body: { type: 'JobGet', jobId: 1n << 40n } },
  { requestId: 11n, body: { type: 'JobList', limit: 0, afterJobId: 0n } },
  { requestId: 12n, body: { type: 'JobList', limit: 50, afterJobId: 7n } },
  { requestId: 12n, body: { type: 'JobCancel', jobId: 5n } },
  { requestId: 13n, body: { type: 'Credit', requestId: 13n, stream: 2, items: 0n, bytes: 8n << 20n, resumeOffset: 0n, resume: false } },
  { requestId: 13n, body: { type: 'Chunk', requestId: 13n, stream: 1, offset: 5n, data: new Uint8Array([9]) } },
  { requestId: 14n, body: { type: 'CallResume', calls: [{ callToken: 2n ** 64n - 1n, requestId: 15n, itemsReceived: 3n, outputs: [{ stream: 2, offset: 3n << 20n }, { stream: 2 ** 32 - 2, offset: 2n ** 64n - 1n }] }, { callToken: 1n, requestId: 16n, itemsReceived: 0n, outputs: [] }] } },
  { requestId: 17n, body: { type: 'CallResume', calls: [] } },
];
const jobInfo = { jobId: 1n << 40n, state: JobState.Recovering, node: 'n', workspace: 'ws', submittedMs: 1796554041123n, workerId: 'w1', attempts: 2, code: ErrorCode.None, finishedMs: 0n };
const clientReplies: ClientReply[] = [
  { requestId: 1n, body: { type: 'Accepted', queued: true, jobId: 7n, callToken: 0n } },
  { requestId: 1n, body: { type: 'Accepted', queued: false, jobId: 0n, callToken: 2n ** 64n - 1n } },
  { requestId: 1n, body: { type: 'Progress', requestId: 1n, step: 2n, total: 3n, message: 'p' } },
  { requestId: 1n, body: { type: 'Item', requestId: 1n, seq: 5n, values } },
  { requestId: 1n, body: { type: 'Result', requestId: 1n, outputs: values, outputsInFrame: false, jobId: 7n } },
  { requestId: 1n, body: { type: 'Result', requestId: 1n, outputs: new Uint8Array(0), outputsInFrame: true, jobId: 0n } },
  { requestId: 0n, body: { type: 'Failure', requestId: 0n, code: ErrorCode.BadMessage, message: 'bad', jobId: 0n } },
  { requestId: 2n, body: { type: 'Failure', requestId: 2n, code: ErrorCode.WorkerLost, message: 'lost', jobId: 2n ** 64n - 1n } },
  { requestId: 3n, body: { type: 'JobInfo', ...jobInfo } },
  { requestId: 4n, body: { type: 'JobInfoList', jobs: [jobInfo, { ...jobInfo, state: JobState.Finished, workerId: '', code: ErrorCode.Cancelled, finishedMs: 1796554042000n }], more: false } },
  { requestId: 4n, body: { type: 'JobInfoList', jobs: [], more: true } },
  { requestId: 3n, body: { type: 'Item', requestId: 3n, seq: 0n, values: new Uint8Array(0) } },
  { requestId: 3n, body: { type: 'Chunk', requestId: 3n, stream: 2, offset: 0n, data: new Uint8Array([0xff]) } },
  { requestId: 3n, body: { type: 'Credit', requestId: 3n, stream: 1, items: 0n, bytes: 1n, resumeOffset: 0n, resume: false } },
  { requestId: 3n, body: { type: 'NodeList', nodes: [{ spec, workspace: 'ws', workers: 2, capacity: 8, inFlight: 1, queueDepth: 0 }, { spec: null, workspace: '', workers: 0, capacity: 0, inFlight: 0, queueDepth: 0 }] } },
  { requestId: 4n, body: { type: 'WorkerList', workers: [{ workerId: 'w', hostname: 'h', sdk: 's', pid: 1, state: 'ready', capacity: 2, inFlight: 1, nodes: ['a', 'b'], workspace: 'ws', identity: 'local', attachedMs: 10n, lastSeenMs: 5n, direct: false }] } },
  { requestId: 5n, body: { type: 'StatusReport', version: '0.1.0', instance: 'i', uptimeMs: 100n, workers: 1, nodes: 2, queued: 0, inFlight: 1, submitted: 10n, completed: 8n, failed: 1n, failures: [{ code: ErrorCode.Timeout, count: 1n }], redispatched: 0n, rate1m: 0.25, recovering: 2 } },
];
const enrollRequests: EnrollRequest[] = [{ token: 'tok', publicKey: 'k'.repeat(40), role: 'worker', name: 'n', hostname: 'h' }];
const enrollResponses: EnrollResponse[] = [
  { ok: true, identityId: 'uuid', role: 'worker', workspace: 'default', name: 'n', code: ErrorCode.None, error: '' },
  { ok: false, identityId: '', role: '', workspace: '', name: '', code: ErrorCode.PermissionDenied, error: 'expired' },
];

function isBad(e: unknown): boolean {
  return e instanceof MusterError && e.codeNumber === ErrorCode.BadMessage;
}

describe('message codec', () => {
  it('round-trips every worker, daemon, client, reply and enrollment message', () => {
    for (const m of workerMessages) assert.deepEqual(decodeWorkerMessage(encodeWorkerMessage(m)), m);
    for (const m of daemonMessages) assert.deepEqual(decodeDaemonMessage(encodeDaemonMessage(m)), m);
    for (const m of clientMessages) assert.deepEqual(decodeClientMessage(encodeClientMessage(m)), { onBehalfOf: null, ...m });
    for (const m of clientReplies) assert.deepEqual(decodeClientReply(encodeClientReply(m)), m);
    for (const m of enrollRequests) assert.deepEqual(decodeEnrollRequest(encodeEnrollRequest(m)), m);
    for (const m of enrollResponses) assert.deepEqual(decodeEnrollResponse(encodeEnrollResponse(m)), m);
  });

  it('carries nested Values buffers unchanged and finished with MSVL', () => {
    const m = decodeDaemonMessage(encodeDaemonMessage(daemonMessages[1]!));
    assert.equal(m.body.type, 'WorkRequest');
    if (m.body.type !== 'WorkRequest') return;
    assert.deepEqual(m.body.inputs, values);
    assert.equal(Buffer.from(m.body.inputs.subarray(4, 8)).toString(), 'MSVL');
    assert.deepEqual(Object.keys(decodeValues(m.body.inputs)), ['name', 'n', 'f']);
  });

  it('omits an empty payload instead of writing an empty nested buffer', () => {
    const bytes = encodeWorkerMessage(workerMessages[5]!);
    const root = W.WorkerMessage.getRootAsWorkerMessage(new flatbuffers.ByteBuffer(bytes));
    const result = root.body(new W.Result()) as W.Result;
    assert.equal(result.outputsArray(), null);
  });

  it('checks the file identifier', () => {
    const pong = encodeWorkerMessage(workerMessages[2]!);
    assert.throws(() => decodeDaemonMessage(pong), (e: unknown) => isBad(e) && /identifier/.test((e as Error).message));
    assert.throws(() => decodeClientReply(encodeClientMessage(clientMessages[0]!)), isBad);
  });

  it('refuses a NONE or unknown union and missing required fields', () => {
    const b = new flatbuffers.Builder(64);
    W.DaemonMessage.startDaemonMessage(b);
    b.finish(W.DaemonMessage.endDaemonMessage(b), 'MSDM');
    assert.throws(() => decodeDaemonMessage(b.asUint8Array()), (e: unknown) => isBad(e) && /NONE/.test((e as Error).message));

    const b2 = new flatbuffers.Builder(64);
    // Built field by field: createAck's argument list grows with every field appended to Ack.
    W.Ack.startAck(b2);
    W.Ack.addLate(b2, true);
    const ack = W.Ack.endAck(b2);
    W.DaemonMessage.startDaemonMessage(b2);
    W.DaemonMessage.addBodyType(b2, 42 as W.DaemonBody);
    W.DaemonMessage.addBody(b2, ack);
    b2.finish(W.DaemonMessage.endDaemonMessage(b2), 'MSDM');
    assert.throws(() => decodeDaemonMessage(b2.asUint8Array()), (e: unknown) => isBad(e) && /unknown/.test((e as Error).message));

    // A union type without its table.
    const b3 = new flatbuffers.Builder(64);
    W.DaemonMessage.startDaemonMessage(b3);
    W.DaemonMessage.addBodyType(b3, W.DaemonBody.Ping);
    b3.finish(W.DaemonMessage.endDaemonMessage(b3), 'MSDM');
    assert.throws(() => decodeDaemonMessage(b3.asUint8Array()), isBad);

    // A WorkRequest without its required node (built by hand: the builder would refuse).
    const b4 = new flatbuffers.Builder(64);
    W.WorkRequest.startWorkRequest(b4);
    W.WorkRequest.addRequestId(b4, 1n);
    const wr = b4.endObject();
    W.DaemonMessage.startDaemonMessage(b4);
    W.DaemonMessage.addBodyType(b4, W.DaemonBody.WorkRequest);
    W.DaemonMessage.addBody(b4, wr);
    b4.finish(W.DaemonMessage.endDaemonMessage(b4), 'MSDM');
    assert.throws(() => decodeDaemonMessage(b4.asUint8Array()), (e: unknown) => isBad(e) && /required/.test((e as Error).message));
  });

  it('verifies nested payloads with their message: a present but empty or invalid one is BadMessage', () => {
    const build = (inputs: Uint8Array) => {
      const b = new flatbuffers.Builder(64);
      const node = b.createString('n');
      const vec = W.Submit.createInputsVector(b, inputs);
      W.Submit.startSubmit(b);
      W.Submit.addNode(b, node);
      W.Submit.addInputs(b, vec);
      const submit = W.Submit.endSubmit(b);
      W.ClientMessage.startClientMessage(b);
      W.ClientMessage.addRequestId(b, 1n);
      W.ClientMessage.addBodyType(b, W.ClientBody.Submit);
      W.ClientMessage.addBody(b, submit);
      b.finish(W.ClientMessage.endClientMessage(b), 'MSCL');
      return b.asUint8Array();
    };
    assert.throws(() => decodeClientMessage(build(new Uint8Array(0))), (e: unknown) => isBad(e) && /empty/.test((e as Error).message));
    assert.throws(() => decodeClientMessage(build(new Uint8Array(16).fill(0xee))), isBad);
    const ok = decodeClientMessage(build(values));
    assert.equal(ok.body.type, 'Submit');
  });

  it('refuses short and truncated buffers', () => {
    const full = encodeDaemonMessage(daemonMessages[1]!);
    for (const n of [0, 4, 8, 11, 12, 20, full.length >> 1]) {
      assert.throws(() => decodeDaemonMessage(full.subarray(0, n)), isBad, `length ${n}`);
    }
  });

  it('turns random corruption into BadMessage or a valid message, never a crash', () => {
    const samples: [Uint8Array, (b: Uint8Array) => unknown][] = [
      ...workerMessages.map((m) => [encodeWorkerMessage(m), decodeWorkerMessage] as [Uint8Array, (b: Uint8Array) => unknown]),
      ...daemonMessages.map((m) => [encodeDaemonMessage(m), decodeDaemonMessage] as [Uint8Array, (b: Uint8Array) => unknown]),
      ...clientReplies.map((m) => [encodeClientReply(m), decodeClientReply] as [Uint8Array, (b: Uint8Array) => unknown]),
    ];
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 4000; i++) {
      const [bytes, decode] = samples[i % samples.length]!;
      const b = bytes.slice();
      for (let k = 0; k <= rand(3); k++) b[rand(b.length)] = rand(256);
      try {
        const m = decode(b) as { body: { inputs?: Uint8Array; outputs?: Uint8Array } };
        if (m.body.inputs) decodeValues(m.body.inputs);
        if (m.body.outputs) decodeValues(m.body.outputs);
      } catch (e) {
        assert.ok(isBad(e), String(e));
      }
    }
  });
});
