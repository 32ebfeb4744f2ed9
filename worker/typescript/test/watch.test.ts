// watch.test.ts — watch() against a fake daemon's client ROUTER (PROTOCOL.md §8.2): the Watch it
// sends, events yielded in order, the end of the iteration sending Cancel, a Failure thrown as
// MusterError, and Unavailable when no daemon answers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ErrorCode, EventKind, MusterError, type EventBody, type NodeInfo, watch } from '../src';
import { FakeDaemon, tempDir } from './fake-daemon';

let daemon: FakeDaemon;

before(async () => {
  daemon = await FakeDaemon.start({ ping: false });
});

after(async () => {
  await daemon.close();
});

function event(seq: bigint, kind: EventKind, node: NodeInfo | null = null): EventBody {
  return { type: 'Event', seq, kind, nodes: [], workers: [], calls: [], node, worker: null, call: null };
}

const HELLO: NodeInfo = { spec: { name: 'hello', description: '', category: '', version: '', inputs: [], outputs: [], parameters: [], idempotent: false, defaultTimeoutMs: 0n, durable: false }, workspace: 'default', workers: 1, capacity: 1, inFlight: 0, queueDepth: 0 };

describe('watch', () => {
  it('sends a Watch, yields the snapshot and the deltas in order, and cancels when the loop stops', async () => {
    daemon.fromClients.clear();
    const it = watch({ clientAddress: daemon.clientAddress, calls: true });
    const first = it.next();
    const w = await daemon.fromClients.next((m) => m.msg.body.type === 'Watch', 5000, 'the Watch');
    assert.deepEqual(w.msg.body, { type: 'Watch', nodes: true, workers: true, calls: true });
    daemon.clientReply(w, event(1n, EventKind.Snapshot));
    daemon.clientReply(w, event(2n, EventKind.NodeAdded, HELLO));
    daemon.clientReply(w, event(3n, EventKind.Overflow));
    const seen: EventBody[] = [(await first).value as EventBody];
    for await (const e of it) {
      seen.push(e);
      if (seen.length === 3) break; // ends the watch
    }
    assert.deepEqual(seen.map((e) => [e.seq, e.kind]), [[1n, EventKind.Snapshot], [2n, EventKind.NodeAdded], [3n, EventKind.Overflow]]);
    assert.equal(seen[1].node?.spec?.name, 'hello');
    const cancel = await daemon.fromClients.next((m) => m.msg.body.type === 'Cancel', 5000, 'the Cancel');
    assert.equal(cancel.msg.requestId, w.msg.requestId);
  });

  it('throws the Failure that ends the watch', async () => {
    daemon.fromClients.clear();
    const it = watch({ clientAddress: daemon.clientAddress });
    const first = it.next();
    const w = await daemon.fromClients.next((m) => m.msg.body.type === 'Watch', 5000, 'the Watch');
    daemon.clientReply(w, { type: 'Failure', requestId: w.msg.requestId, code: ErrorCode.ShuttingDown, message: 'the daemon is shutting down', jobId: 0n });
    await assert.rejects(first, (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.ShuttingDown);
  });

  it('is Unavailable when no daemon answers', async () => {
    const it = watch({ clientAddress: `ipc://${tempDir()}/nobody.sock`, connectTimeoutMs: 300 });
    await assert.rejects(it.next(), (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.Unavailable);
  });
});
