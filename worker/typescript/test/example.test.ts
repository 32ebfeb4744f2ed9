// example.test.ts — the example worker (worker/examples/typescript/example-worker.js) as a
// process against the fake daemon: its nodes under a prefix, what hello/echo/digest answer, the
// items count streams, and a clean detach and exit on SIGTERM.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { after, before, it } from 'node:test';

import { ErrorCode, type Values, decodeValues, encodeValues, float, valuesEqual } from '../src';
import { FakeDaemon, until, workerTopic } from './fake-daemon';

const example = path.resolve(__dirname, '..', '..', '..', 'examples', 'typescript', 'example-worker.js');
let daemon: FakeDaemon;
let child: ChildProcess | null = null;
let stderr = '';
let nextId = 1n;

before(async () => {
  daemon = await FakeDaemon.start();
});

after(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await daemon.close();
});

async function call(node: string, inputs: Values, parameters?: Values, streamWindowItems = 0) {
  const requestId = nextId++;
  daemon.publish(workerTopic('ex1'), {
    type: 'WorkRequest',
    requestId,
    node,
    inputs: encodeValues(inputs),
    parameters: parameters ? encodeValues(parameters) : new Uint8Array(0),
    timeoutMs: 5000n,
    attempt: 1,
    caller: null,
    inputsInFrame: false,
    streamWindowItems,
    streamWindowBytes: streamWindowItems ? 1n << 20n : 0n,
  });
  const answer = await daemon.fromWorkers.next(
    (r) => (r.msg.body.type === 'Result' || r.msg.body.type === 'Failure') && r.msg.body.requestId === requestId,
    10000,
    `the answer to ${node}`,
  );
  return answer.msg.body;
}

async function outputs(node: string, inputs: Values, parameters?: Values): Promise<Values> {
  const body = await call(node, inputs, parameters);
  assert.equal(body.type, 'Result', JSON.stringify(body, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
  return body.type === 'Result' ? decodeValues(body.outputs) : {};
}

it('serves prefixed hello, echo, digest, sleep and count, then detaches and exits on SIGTERM', { timeout: 60000 }, async () => {
  child = spawn(
    process.execPath,
    [example, '--prefix', 'ts.', '--worker-id', 'ex1', '--capacity', '2', '--log-level', 'info',
     '--request-address', daemon.requestAddress, '--response-address', daemon.responseAddress],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));

  const attach = await daemon.nextFromWorker('Attach', (b) => b.workerId === 'ex1', 20000);
  assert.deepEqual(attach.body.nodes.map((n) => n.name), ['ts.hello', 'ts.echo', 'ts.digest', 'ts.sha256', 'ts.sleep', 'ts.count']);
  assert.equal(attach.body.nodes[4]!.idempotent, false); // sleep
  assert.equal(attach.body.capacity, 2);
  await daemon.nextFromWorker('Pong', (_b, r) => r.msg.workerId === 'ex1', 10000);

  assert.deepEqual(await outputs('ts.hello', { name: 'Ada' }), { greeting: 'Hello Ada', shout: 'HELLO ADA' });
  assert.deepEqual(await outputs('ts.hello', {}), { greeting: 'Hello world', shout: 'HELLO WORLD' });
  assert.deepEqual(await outputs('ts.hello', { name: '' }), { greeting: 'Hello world', shout: 'HELLO WORLD' });
  assert.deepEqual(await outputs('ts.hello', { name: 'Zoë' }), { greeting: 'Hello Zoë', shout: 'HELLO ZOË' });

  const everything = new Map<string, unknown>([
    ['z', null], ['1', true], ['int', 2n ** 63n - 1n], ['min', -(2n ** 63n)], ['f', float(1)], ['pi', 3.14159],
    ['s', 'ünïcödé 😀'], ['b', new Uint8Array([0, 255])], ['l', [[], {}, [1, [2]]]], ['m', { y: 1, x: 2 }],
  ]);
  const echoed = await outputs('ts.echo', everything as Values);
  assert.ok(valuesEqual(echoed, everything as Values));
  assert.ok(echoed instanceof Map);
  assert.deepEqual([...echoed.keys()], [...everything.keys()]);
  assert.deepEqual(await outputs('ts.echo', {}), {});

  const d = (await outputs('ts.digest', { data: 'abc' })) as Record<string, unknown>;
  assert.equal(d.hex, crypto.createHash('sha256').update('abc').digest('hex'));
  assert.equal(d.algorithm, 'sha256');
  assert.equal(d.size, 3);
  assert.ok(d.digest instanceof Uint8Array && d.digest.length === 32);
  const md5 = (await outputs('ts.digest', { data: new Uint8Array([1, 2, 3]) }, { algorithm: 'md5' })) as Record<string, unknown>;
  assert.equal(md5.hex, crypto.createHash('md5').update(Buffer.from([1, 2, 3])).digest('hex'));
  const bad = await call('ts.digest', { data: 'x' }, { algorithm: 'nope' });
  assert.equal(bad.type === 'Failure' && bad.code, ErrorCode.InvalidRequest);
  const missing = await call('ts.digest', {});
  assert.equal(missing.type === 'Failure' && missing.code, ErrorCode.InvalidRequest);
  // sha256 reads its input as a stream (here it came inline: one piece)
  assert.deepEqual(await outputs('ts.sha256', { data: new Uint8Array([1, 2, 3]) }), { hex: crypto.createHash('sha256').update(Buffer.from([1, 2, 3])).digest('hex') });
  const slept = (await outputs('ts.sleep', { ms: 20 })) as Record<string, unknown>;
  assert.equal(typeof slept.slept_ms, 'number');
  const noMs = await call('ts.sleep', {});
  assert.equal(noMs.type === 'Failure' && noMs.code, ErrorCode.InvalidRequest);

  // count streams its items (the window of 16 holds them all), then its outputs.
  const counted = await call('ts.count', { n: 3 }, undefined, 16);
  assert.equal(counted.type, 'Result');
  const items = daemon.fromWorkers.all.filter((r) => r.msg.body.type === 'Item' && r.msg.body.requestId === (counted as { requestId: bigint }).requestId);
  assert.deepEqual(items.map((r) => (r.msg.body.type === 'Item' ? [r.msg.body.seq, decodeValues(r.msg.body.values)] : null)), [[0n, { i: 0 }], [1n, { i: 1 }], [2n, { i: 2 }]]);
  assert.deepEqual(counted.type === 'Result' && decodeValues(counted.outputs), { count: 3 });
  const notStreamed = await call('ts.count', { n: 3 });
  assert.equal(notStreamed.type === 'Failure' && notStreamed.code, ErrorCode.WorkerError); // StreamNotRequested

  child.kill('SIGTERM');
  await daemon.nextFromWorker('Detach', (_b, r) => r.msg.workerId === 'ex1', 10000);
  assert.equal(await exited, 0, stderr);
  await until(() => child!.exitCode !== null, 1000);
});
