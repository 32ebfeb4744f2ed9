// call-resume.ts — the client side of resumable calls (PROTOCOL.md §8.3, rule C6): which calls
// ask `Submit.resumable`, what a caller tells musterd it received of each when its connection
// comes back (one CallResume: items taken, each chunked output's offset), how long it keeps them
// meanwhile, and the message of one it gives up.
// A resumable call's Accepted brings its call token. When the connection to musterd breaks
// (musterd then sees a new peer) the client keeps the calls that have their token, for its
// durable reconnect wait (resumeTimeoutMs) and at most until the call's deadline; on the next
// connection it names them in one CallResume, each under a new request id. musterd answers each
// CallRef under that id: Accepted (the call goes on there), its kept terminal reply, or a Failure.
// Owns: that bookkeeping for client.ts; it knows no socket.
// Must never: keep a call that has no token (it fails Unavailable as before), or past its
// deadline or the reconnect wait; name a byte or an item the caller does not have.
import type { CallRef, ClientBody, StreamOffset } from './messages';

/**
 * `Submit.resumable` for a call: `option` when given, else true for a call that streams — chunked
 * inputs, items (`stream`), or an `outputSink` for chunked outputs — and false for the others (a
 * small call would pay an Accepted for nothing). Never for a durable call (its job id does more).
 */
export function asksResumable(option: boolean | undefined, durable: boolean, chunkedInputs: boolean, items: boolean, outputSink: boolean): boolean {
  if (durable) return false;
  if (option !== undefined) return !!option;
  return chunkedInputs || items || outputSink;
}

/** What the caller has of one call: its token, the Items it took, each output stream's bytes in order. */
export interface Received {
  callToken: bigint;
  itemsReceived: number;
  outputs: StreamOffset[];
}

/**
 * One CallResume for `calls` ([handle, what it received]), each under a new request id from
 * `nextId`; null when there is none to resume.
 */
export function rebind<T>(calls: [T, Received][], nextId: () => number): { resume: ClientBody | null; bound: Map<number, T> } {
  const bound = new Map<number, T>();
  const refs: CallRef[] = [];
  for (const [call, got] of calls) {
    const requestId = nextId();
    bound.set(requestId, call);
    refs.push({ callToken: got.callToken, requestId: BigInt(requestId), itemsReceived: BigInt(got.itemsReceived), outputs: got.outputs });
  }
  return { resume: refs.length > 0 ? { type: 'CallResume', calls: refs } : null, bound };
}

/** How long (ms from now) a call whose connection was lost waits to be taken back: the reconnect wait, at most until its deadline. */
export function keepFor(resumeTimeoutMs: number, deadline: number | undefined, now = Date.now()): number {
  return deadline === undefined ? resumeTimeoutMs : Math.max(0, Math.min(resumeTimeoutMs, deadline - now));
}

/** The Unavailable message of a resumable call no daemon took back in time. */
export function givenUp(requestId: number, node: string, address: string, waitedMs: number, connected: boolean, pastDeadline: boolean): string {
  const why = pastDeadline
    ? 'its deadline passed'
    : connected
      ? `no answer to its CallResume within ${waitedMs} ms`
      : `no connection came back within ${waitedMs} ms`;
  return `request ${requestId} (${node}): lost the connection to the daemon at ${address} and ${why}`;
}
