// stream.ts — a call's items on the caller's side (docs/STREAMS.md §2, PROTOCOL.md §7.8): the
// async iterable `client.stream(...)` returns.
//
//   const s = client.stream('count', { n: 3 });
//   for await (const item of s) console.log(item);   // { i: 0 }, { i: 1 }, { i: 2 }
//   const outputs = await s.result;                   // the terminal outputs
//
// Owns: the items received for one call, in seq order, until the application takes them; the
// credit it grants as it consumes them (cumulative consumed + window, once half a window was
// consumed since the last grant); ending the iteration with the terminal reply.
// Must never: hold more than one window of items (the daemon cannot send more); grant credit for
// items the application has not taken; hide an error: after the items received, the iteration
// throws the call's error (Timeout, Cancelled, WorkerLost, ...).
import { ReceiveWindow } from './credit';
import { ErrorCode, MusterError } from './errors';
import { takeValues } from './decoded-payloads';
import type { Values } from './value';

/**
 * A streaming call. `Item` and `Out` are the shapes the caller expects of its items and outputs
 * (compile-time only). Iterate it (`for await`) for the items; leaving the loop early (break,
 * throw) cancels the call. `result` settles with the terminal outputs or error.
 */
export interface CallStream<Item extends object = Values, Out extends object = Values> extends AsyncIterable<Item> {
  /** This client's id of the request. */
  readonly requestId: number;
  /** Its token once the daemon accepted it (a stream is resumable unless `resumable: false`: PROTOCOL.md §8.3). */
  readonly callToken?: bigint;
  /** The outputs, or a MusterError (Timeout, Cancelled, WorkerError, WorkerLost, ...). */
  readonly result: Promise<Out>;
  /** Items received so far (taken or not). */
  readonly itemsReceived: number;
  /** Asks the daemon to cancel; the iteration then ends with Cancelled (unless it finished first). */
  cancel(): Promise<void>;
}

export interface StreamHooks {
  /** Sends a cumulative grant to the daemon. */
  credit(items: number, bytes: number): void;
  cancel(): Promise<void>;
}

/** The receiving end of one call's items: fed by the client, read by the application. */
export class ItemQueue<Item extends object> implements AsyncIterable<Item> {
  private readonly window: ReceiveWindow;
  private queue: Uint8Array[] = [];
  private head = 0;
  private nextSeq = 0n;
  private ended: { error: unknown } | null = null;
  private waiter: (() => void) | null = null;
  received = 0;

  constructor(
    windowItems: number,
    windowBytes: number,
    private readonly hooks: StreamHooks,
  ) {
    this.window = new ReceiveWindow(windowItems, windowBytes);
  }

  /** An Item from the daemon; returns why the stream is broken, or null. */
  push(seq: bigint, values: Uint8Array): string | null {
    if (this.ended) return null;
    if (seq !== this.nextSeq) return `item ${seq} arrived where item ${this.nextSeq} was due`;
    this.nextSeq += 1n;
    this.received += 1;
    this.queue.push(values);
    this.wake();
    return null;
  }

  /** The terminal reply arrived (or the call failed locally): the iteration ends after the queued items. */
  end(error: unknown = null): void {
    if (this.ended) return;
    this.ended = { error };
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private take(): Item {
    const values = this.queue[this.head]!;
    this.queue[this.head] = undefined as unknown as Uint8Array;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.window.consumed(values.length);
    const grant = this.window.due();
    if (grant && !this.ended) this.hooks.credit(grant.items, grant.bytes);
    return takeValues(values) as Item; // decoded once, when the Item was verified
  }

  async next(): Promise<IteratorResult<Item>> {
    for (;;) {
      if (this.head < this.queue.length) return { done: false, value: this.take() };
      if (this.ended) {
        if (this.ended.error !== null) throw this.ended.error;
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Item> {
    return {
      next: () => this.next(),
      return: async () => {
        // the loop was left early: the call is of no more use
        if (!this.ended) await this.hooks.cancel().catch(() => undefined);
        return { done: true, value: undefined };
      },
    };
  }
}

/** Checks a window option: a positive integer (items at most 2^32 - 1, a uint32 on the wire). */
export function windowOption(value: number | undefined, fallback: number, name: string, max: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1 || v > max) {
    throw new MusterError(ErrorCode.InvalidRequest, `${name} must be an integer from 1 to ${max}, got ${value}`);
  }
  return v;
}
