// failover.test.ts — address lists (both daemons of a failover pair, docs/DURABILITY.md §12):
// endpointList's rule, and a Worker given two addresses that moves to the second fake daemon,
// bound only once the first is gone (as a standby binds nothing until it takes the lease).
// The real pair is tests/integration/test_failover_follow_typescript.py.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { ErrorCode, MusterError, Worker, endpointList } from '../src';
import { FakeDaemon, tempDir } from './fake-daemon';

describe('address lists', () => {
  it('split a pair, ignore spaces around commas, and refuse empty items', () => {
    assert.deepEqual(endpointList('ipc:///x/client.sock'), ['ipc:///x/client.sock']);
    assert.deepEqual(endpointList('tcp://a:7901, tcp://b:7901'), ['tcp://a:7901', 'tcp://b:7901']);
    for (const bad of ['', 'tcp://a:1,', ',tcp://a:1', 'tcp://a:1,,tcp://b:1']) {
      assert.throws(() => endpointList(bad), (e: unknown) => e instanceof MusterError && /empty endpoint in the address list/.test(e.message));
    }
    assert.throws(
      () => new Worker({ requestAddress: 'ipc:///x/r.sock,', responseAddress: 'ipc:///x/s.sock' }),
      (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.InvalidRequest,
    );
  });

  it('a worker given both addresses attaches to the one bound, then to the other after it is gone', async () => {
    const root = tempDir();
    const [dirA, dirB] = ['a', 'b'].map((n) => path.join(root, n));
    for (const d of [dirA, dirB]) fs.mkdirSync(d, { mode: 0o700 });
    const a = await FakeDaemon.start({ dir: dirA, instance: 'active', pingIntervalMs: 50, liveness: 2 });
    const w = new Worker({
      workerId: 'follower',
      requestAddress: `ipc://${dirA}/request.sock,ipc://${dirB}/request.sock`,
      responseAddress: `ipc://${dirA}/response.sock,ipc://${dirB}/response.sock`,
      logger: 'off',
      attachTimeoutMs: 1000,
      shutdownGraceMs: 0,
    });
    w.node({ name: 'f.node' }, () => ({}));
    let b: FakeDaemon | null = null;
    try {
      await w.start();
      await a.nextFromWorker('Attach', (m) => m.workerId === 'follower');
      await a.close(); // the active daemon dies; the standby takes over and binds
      b = await FakeDaemon.start({ dir: dirB, instance: 'standby', pingIntervalMs: 50, liveness: 2 });
      // After 100 ms without Pings the worker attaches again; only the standby hears it.
      const again = await b.nextFromWorker('Attach', (m) => m.workerId === 'follower', 10000);
      assert.equal(again.body.session, w.session);
      await b.nextFromWorker('Pong', (m, r) => r.msg.workerId === 'follower' && m.instance === 'standby', 10000);
    } finally {
      await w.stop();
      await b?.close();
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
