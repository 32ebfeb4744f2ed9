// items.ts — a handler's partial results on the worker's side (docs/STREAMS.md §2, PROTOCOL.md
// §7.8): `ctx.emit`, and the driving of handlers that return an async iterator (an `async
// function*`) or a generator, each yielded value being one item.
// Owns: one request's ItemSender (checks and encodes an item, waits for the caller's credit in
// its SendWindow, hands the encoded Item to the worker's outbox in seq order) and the loop that
// pulls from a handler's iterator.
// Must never: send an item beyond the caller's credit; pull the next value from an iterator while
// the window is full or once the request was aborted (the iterator is closed with return(), so
// its finally blocks run); emit for a caller that asked for no items (StreamNotRequested).
import { SendWindow, StreamNotRequested, grantNumber } from './credit';
import { ErrorCode, MusterError } from './errors';
import { encodeWorkerMessage } from './messages';
import { type Values, encodeValues, kindOf } from './value';

/** Bytes an Item message adds around its values: to refuse an item that can never fit one message. */
export const ITEM_OVERHEAD = 256;

export interface ItemSenderOptions {
  requestId: bigint;
  node: string;
  workerId: string;
  windowItems: number;
  windowBytes: bigint | number;
  /** Queues an encoded Item (WorkerMessage) for sending, in call order. */
  post: (bytes: Uint8Array) => void;
  /** The daemon's --max-message-bytes (0: not known yet). */
  maxMessageBytes: () => number;
}

/** The items of one request; `window` is null when the caller asked for none. */
export class ItemSender {
  readonly window: SendWindow | null;

  constructor(private readonly o: ItemSenderOptions) {
    this.window = o.windowItems > 0 ? new SendWindow(o.windowItems, grantNumber(o.windowBytes)) : null;
  }

  get streaming(): boolean {
    return this.window !== null;
  }

  /** The request is over: waiting emitters resolve false. */
  close(): void {
    this.window?.close();
  }

  /**
   * Sends one item (a map of values, like outputs), waiting while the caller's window is full.
   * Resolves true once it is queued, false when the request was aborted (stop emitting then).
   * Rejects with StreamNotRequested when the caller asked for no items, and with a MusterError
   * (WorkerError) for an item that cannot be sent.
   */
  async emit(values: unknown): Promise<boolean> {
    const window = this.window;
    if (window === null) {
      throw new StreamNotRequested(
        `node ${this.o.node}: the caller of request ${this.o.requestId} asked for no items (call the node with stream(), or check ctx.streaming before emitting)`,
      );
    }
    if (values === null || typeof values !== 'object' || kindOf(values as Values) !== 'map') {
      throw new MusterError(ErrorCode.WorkerError, `node ${this.o.node}: an item is a map of values, not a ${values === null ? 'null' : kindOf(values as Values)}`);
    }
    let payload: Uint8Array;
    try {
      payload = encodeValues(values as Values);
    } catch (e) {
      throw new MusterError(ErrorCode.WorkerError, `node ${this.o.node}: an item that cannot be sent: ${(e as Error).message}`);
    }
    const limit = this.o.maxMessageBytes();
    if (limit > 0 && payload.length + ITEM_OVERHEAD > limit) {
      throw new MusterError(
        ErrorCode.WorkerError,
        `node ${this.o.node}: an item of ${payload.length} bytes does not fit the daemon's limit of ${limit} bytes (--max-message-bytes)`,
      );
    }
    return window.take(payload.length, (seq) =>
      this.o.post(
        encodeWorkerMessage({
          workerId: this.o.workerId,
          body: { type: 'Item', requestId: this.o.requestId, seq: BigInt(seq), values: payload },
        }),
      ),
    );
  }
}

/** An async iterator or a generator object a handler returned (not a Map, array or other value). */
export function isItemSource(out: unknown): out is AsyncIterator<unknown> | Iterator<unknown> {
  if (out === null || typeof out !== 'object') return false;
  if (typeof (out as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') return true;
  return Object.prototype.toString.call(out) === '[object Generator]';
}

/**
 * Pulls a handler's async iterator (or generator) to its end, emitting each value; resolves to
 * its return value (the outputs of an `async function*` that returns them). An item's error
 * (StreamNotRequested, a value that cannot be sent) is thrown into the iterator at its
 * `yield`. Stops pulling and closes the iterator once the request is aborted.
 */
export async function driveIterator(items: ItemSender, aborted: () => boolean, source: AsyncIterator<unknown> | Iterator<unknown>): Promise<unknown> {
  const asyncIterator = (source as unknown as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator];
  const it: AsyncIterator<unknown> | Iterator<unknown> = typeof asyncIterator === 'function' ? asyncIterator.call(source) : source;
  let error: { e: unknown } | null = null;
  let finished = false;
  try {
    for (;;) {
      if (aborted()) return undefined;
      let r: IteratorResult<unknown>;
      if (error !== null) {
        if (typeof it.throw !== 'function') throw error.e;
        const e = error.e;
        error = null;
        r = await it.throw(e);
      } else {
        r = await it.next();
      }
      if (r.done) {
        finished = true;
        return r.value;
      }
      try {
        if (!(await items.emit(r.value))) return undefined; // aborted while waiting for credit
      } catch (e) {
        error = { e };
      }
    }
  } finally {
    if (!finished && typeof it.return === 'function') {
      try {
        await it.return(undefined);
      } catch {
        /* the iterator's own cleanup failed: the request is over anyway */
      }
    }
  }
}
