// watch.ts — pushed events of musterd (a Watch, docs/PROTOCOL.md §8.2): the changes of the
// caller's workspace (nodes appearing, changing, leaving; workers joining, changing state,
// leaving; the caller's own calls) as an async iterator of Events.
// Owns: a connection of its own to musterd's client socket, the Watch on it, reading its events
// and its end (return() / break cancels it; the daemon's refusal or shutdown, a lost connection
// or no snapshot within connectTimeoutMs throw MusterError).
// Must never: hide a gap: events come with seq 1, 2, 3...; a watcher that fell behind gets an
// Overflow event, then a fresh Snapshot, from musterd itself.
import * as zmq from 'zeromq';

import { type TransportSecurity, applySecurity, defaultEndpoint } from './endpoints';
import { ErrorCode, MusterError } from './errors';
import { type EventBody, decodeClientReply, encodeClientMessage } from './messages';

export interface WatchOptions extends TransportSecurity {
  /** Default: ipc://<runtime dir>/client.sock. */
  clientAddress?: string;
  nodes?: boolean;
  workers?: boolean;
  /** This identity's own calls (queued, running, finished). */
  calls?: boolean;
  /** No snapshot within this long: MusterError(Unavailable). Default 5000. */
  connectTimeoutMs?: number;
}

const REQUEST_ID = 1n; // the one request of the connection

/**
 *   for await (const event of watch({ nodes: true, workers: true })) {
 *     console.log(event.seq, EventKind[event.kind], event.node ?? event.worker ?? event.call);
 *   }
 */
export async function* watch(options: WatchOptions = {}): AsyncGenerator<EventBody, void, undefined> {
  const address = options.clientAddress ?? defaultEndpoint('client');
  const socket = new zmq.Dealer({ linger: 0 });
  let lost: MusterError | null = null;
  let snapshotSeen = false;
  socket.events.on('disconnect', () => {
    lost = new MusterError(ErrorCode.Unavailable, `lost the connection to musterd at ${address}; watch again`);
  });
  applySecurity(socket, address, options);
  socket.connect(address);
  const scope = { nodes: options.nodes ?? true, workers: options.workers ?? true, calls: options.calls ?? false };
  let ended = false;
  try {
    await socket.send(encodeClientMessage({ requestId: REQUEST_ID, body: { type: 'Watch', ...scope } }));
    const giveUp = Date.now() + (options.connectTimeoutMs ?? 5000);
    for (;;) {
      if (lost) throw lost;
      socket.receiveTimeout = snapshotSeen ? 1000 : Math.max(1, giveUp - Date.now());
      let frames: Buffer[];
      try {
        frames = await socket.receive();
      } catch (e) {
        if ((e as { code?: string }).code !== 'EAGAIN') throw e;
        if (!snapshotSeen && Date.now() >= giveUp)
          throw new MusterError(ErrorCode.Unavailable, `musterd at ${address} did not answer the watch (is it running?)`);
        continue;
      }
      let reply;
      try {
        reply = decodeClientReply(new Uint8Array(frames[frames.length - 1]));
      } catch {
        continue; // not ours to understand
      }
      if (reply.requestId !== REQUEST_ID) continue;
      const body = reply.body;
      if (body.type === 'Failure') {
        ended = true;
        throw new MusterError(body.code, body.message || 'the watch ended');
      }
      if (body.type !== 'Event') continue;
      if (body.kind === 0) snapshotSeen = true;
      yield body;
    }
  } finally {
    if (!ended && !lost) {
      // The consumer stopped (break, return): musterd ends the watch.
      try {
        socket.linger = 200;
        await socket.send(encodeClientMessage({ requestId: REQUEST_ID, body: { type: 'Cancel' } }));
      } catch {
        // the daemon is gone: nothing to cancel
      }
    }
    socket.close();
  }
}
