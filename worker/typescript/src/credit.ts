// credit.ts — the credit windows of a stream of items (docs/STREAMS.md §1, PROTOCOL.md §7.8),
// for both ends. Credit is cumulative: the receiver grants `items` and `bytes` as totals since
// the stream began, so a lost or repeated grant is harmless and the largest one wins. The sender
// may send item `seq` only while `seq < items` and the bytes it sent before it are `< bytes` (the
// item's own size does not count). An item's size is the length of its `values` buffer.
// Owns: SendWindow (a worker's side: makes an emitter wait until the caller's credit covers its
// next item, and hands out seq numbers in order) and ReceiveWindow (a caller's side: counts what
// the application consumed and says when a new grant is due), and StreamNotRequested.
// Must never: let a sender pass the credit it was granted; grant more than consumed + window;
// leave an emitter waiting after the stream was closed (abort, deadline, the worker stopping).
import { ErrorCode, MusterError } from './errors';

/** The window a caller asks for by default: 64 items, 4 MiB of item values. */
export const DEFAULT_WINDOW_ITEMS = 64;
export const DEFAULT_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * Thrown to a handler that emits an item for a call whose caller asked for no items (a plain
 * `call`, not `stream`): the handler's author learns it at once. Uncaught, it fails the call
 * with WorkerError like any error of the handler. `ctx.streaming` tells beforehand.
 */
export class StreamNotRequested extends MusterError {
  constructor(message: string) {
    super(ErrorCode.WorkerError, message);
    this.name = 'StreamNotRequested';
  }
}

/** A grant as a safe integer (a uint64 from the wire beyond 2^53 is as good as infinite). */
export function grantNumber(v: bigint | number): number {
  const n = typeof v === 'bigint' ? (v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v)) : v;
  return Number.isFinite(n) && n > 0 ? Math.trunc(n) : 0;
}

/** The credit one sender holds for one stream. */
export class SendWindow {
  grantedItems: number;
  grantedBytes: number;
  sentItems = 0;
  sentBytes = 0;
  closed = false;
  private waiters: (() => void)[] = [];

  constructor(items: number, bytes: number) {
    this.grantedItems = items;
    this.grantedBytes = bytes;
  }

  /** A grant from the receiver (cumulative totals); a stale one changes nothing. */
  grant(items: number, bytes: number): boolean {
    let grew = false;
    if (items > this.grantedItems) {
      this.grantedItems = items;
      grew = true;
    }
    if (bytes > this.grantedBytes) {
      this.grantedBytes = bytes;
      grew = true;
    }
    if (grew) this.wake();
    return grew;
  }

  /** Ends the stream for the sender: every waiting and later take() resolves false. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wake();
  }

  /** Whether the next item is within the credit now. */
  get open(): boolean {
    return this.sentItems < this.grantedItems && this.sentBytes < this.grantedBytes;
  }

  /**
   * Waits until the next item (`size` bytes) is within the credit, then calls `send(seq)` and
   * resolves true (items leave in seq order, whoever emits them); false once the stream is closed.
   */
  async take(size: number, send: (seq: number) => void): Promise<boolean> {
    while (!this.closed && !this.open) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.closed) return false;
    send(this.sentItems);
    this.sentItems += 1;
    this.sentBytes += size;
    return true;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/**
 * The credit one receiver grants for one stream: `consumed` counts each item the application
 * took; `due` says which cumulative grant (consumed + window) to send now, if any: once half a
 * window (items or bytes) was consumed since the last grant (PROTOCOL.md §7.8).
 */
export class ReceiveWindow {
  consumedItems = 0;
  consumedBytes = 0;
  grantedItems: number;
  grantedBytes: number;

  constructor(
    readonly windowItems: number,
    readonly windowBytes: number,
  ) {
    if (!(windowItems >= 1) || !(windowBytes >= 1)) throw new RangeError("a stream's window needs at least one item and one byte");
    this.grantedItems = windowItems; // the initial window comes with the Submit
    this.grantedBytes = windowBytes;
  }

  consumed(size: number): void {
    this.consumedItems += 1;
    this.consumedBytes += size;
  }

  due(): { items: number; bytes: number } | null {
    const items = this.consumedItems + this.windowItems;
    const bytes = this.consumedBytes + this.windowBytes;
    if (items - this.grantedItems < Math.max(1, Math.floor(this.windowItems / 2)) && bytes - this.grantedBytes < Math.max(1, Math.floor(this.windowBytes / 2))) {
      return null;
    }
    this.grantedItems = items;
    this.grantedBytes = bytes;
    return { items, bytes };
  }
}
